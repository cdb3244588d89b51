"""docker save, docker load and docker history against the native engine's Engine API."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

from tests.api.test_engine_api import docker
from tests.api.test_engine_api import engine_api as engine_api  # the fixture
from tests.api.test_engine_api import pytestmark as pytestmark  # root, registry, docker CLI


def test_docker_save_load_and_history(engine_api: str, busybox_image: str, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {busybox_image}\nRUN echo made > /made.txt\nCMD [\"cat\", \"/made.txt\"]\n")
    env = {**os.environ, "DOCKER_HOST": f"unix://{engine_api}", "DOCKER_BUILDKIT": "0"}
    env.pop("DOCKER_CONTEXT", None)
    subprocess.run(["docker", "build", "-t", "local/saved:1", str(ctx)], env=env, check=True, capture_output=True,
                   timeout=300)
    history = docker(engine_api, "history", "--no-trunc", "--format", "{{.CreatedBy}}", "local/saved:1").stdout
    assert "echo made > /made.txt" in history                        # the build's steps, newest first
    assert history.index("CMD") < history.index("echo made")
    # each step's size is its layer's (0 for a step that made none), as dockerd's; they add up to the image's
    steps = docker(engine_api, "history", "--no-trunc", "--human=false", "--format", "{{.Size}}\t{{.CreatedBy}}",
                   "local/saved:1").stdout.splitlines()
    sizes = {by: int(size) for size, _, by in (line.partition("\t") for line in steps)}
    assert [n for by, n in sizes.items() if "echo made" in by] == [5]          # "made\n"
    assert [n for by, n in sizes.items() if "CMD" in by] == [0]
    total = docker(engine_api, "image", "inspect", "-f", "{{.Size}}", "local/saved:1").stdout.strip()
    assert sum(sizes.values()) == int(total)

    archive = tmp_path / "saved.tar"
    docker(engine_api, "save", "-o", str(archive), "local/saved:1")
    with tarfile.open(archive) as tar:
        assert "manifest.json" in tar.getnames()                     # docker load's layout
    image_id = docker(engine_api, "images", "-q", "--no-trunc", "local/saved:1").stdout.strip()
    docker(engine_api, "rmi", "local/saved:1")
    assert docker(engine_api, "images", "-q", "local/saved").stdout.strip() == ""
    loaded = docker(engine_api, "load", "-i", str(archive)).stdout
    assert "Loaded image: local/saved:1" in loaded
    assert docker(engine_api, "images", "-q", "--no-trunc", "local/saved:1").stdout.strip() == image_id
    assert docker(engine_api, "run", "--rm", "--network", "none", "local/saved:1").stdout == "made\n"
    missing = docker(engine_api, "save", "-o", str(tmp_path / "x.tar"), "local/nothing:1", check=False)
    assert missing.returncode != 0
    assert "No such image" in missing.stderr


def test_docker_commit(engine_api: str, busybox_image: str) -> None:
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "run", "-d", "--name", "src", "--network", "none", busybox_image, "sh", "-c",
           "echo committed > /state.txt; sleep 3600")
    try:
        for _ in range(50):
            if docker(engine_api, "exec", "src", "test", "-e", "/state.txt", check=False).returncode == 0:
                break
        image_id = docker(engine_api, "commit", "-m", "from the api", "-c", "CMD [\"cat\", \"/state.txt\"]",
                          "src", "local/committed:2").stdout.strip()
        assert image_id.startswith("sha256:")
        assert docker(engine_api, "run", "--rm", "--network", "none", "local/committed:2").stdout == "committed\n"
        history = docker(engine_api, "history", "--format", "{{.Comment}}", "local/committed:2").stdout
        assert history.splitlines()[0] == "from the api"
        assert docker(engine_api, "image", "inspect", "-f", "{{.Comment}}", "local/committed:2").stdout == "from the api\n"
        state = docker(engine_api, "inspect", "--format", "{{.State.Status}}", "src").stdout.strip()
        assert state == "running"                                   # paused while read, then resumed
    finally:
        docker(engine_api, "rm", "-f", "src", check=False)
