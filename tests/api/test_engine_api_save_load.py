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


def test_docker_import(engine_api: str, tmp_path: Path) -> None:
    """docker import against the native engine: POST /images/create?fromSrc=- with the tar as its
    body, dockerd's status line; the image runs; a bad tar is refused, nothing left."""
    from tests.helpers.images import busybox_layer
    from tests.native.images.test_import import serving_file

    archive = tmp_path / "rootfs.tar"
    archive.write_bytes(busybox_layer())
    out = docker(engine_api, "import", "-c", 'CMD ["/bin/busybox", "echo", "imported"]', "-c", "ENV A=1",
                 "-m", "through the api", str(archive), "local/imported:3").stdout.strip()
    assert out.startswith("sha256:")
    assert len(out) == 71
    assert docker(engine_api, "images", "-q", "--no-trunc", "local/imported:3").stdout.strip() == out
    assert docker(engine_api, "run", "--rm", "--network", "none", "local/imported:3").stdout == "imported\n"
    assert docker(engine_api, "history", "--format", "{{.Comment}}", "local/imported:3").stdout == "through the api\n"
    assert docker(engine_api, "image", "inspect", "-f", "{{json .Config.Env}}", "local/imported:3").stdout == '["A=1"]\n'
    with archive.open("rb") as f:                               # `-`: stdin, untagged, dockerd's comment
        env = {**os.environ, "DOCKER_HOST": f"unix://{engine_api}"}
        env.pop("DOCKER_CONTEXT", None)
        piped = subprocess.run(["docker", "import", "-"], stdin=f, capture_output=True, text=True, env=env,
                               timeout=120, check=True).stdout.strip()
    assert docker(engine_api, "history", "--format", "{{.Comment}}", piped).stdout == "Imported from -\n"
    with serving_file(archive) as base:                         # fromSrc=URL: the engine fetches it
        fetched = docker(engine_api, "import", f"{base}/{archive.name}", "local/fetched:1").stdout.strip()
    assert docker(engine_api, "history", "--format", "{{.Comment}}", fetched).stdout == \
        f"Imported from {base}/{archive.name}\n"
    images = docker(engine_api, "images", "-a", "-q", "--no-trunc").stdout.split()

    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tar " * 1000)
    refused = docker(engine_api, "import", str(bad), "local/bad:1", check=False)
    assert refused.returncode != 0
    assert "cannot import the tarball" in refused.stderr
    change = docker(engine_api, "import", "-c", "RUN true", str(archive), check=False)
    assert change.returncode != 0
    assert "invalid change" in change.stderr
    assert docker(engine_api, "images", "-a", "-q", "--no-trunc").stdout.split() == images
