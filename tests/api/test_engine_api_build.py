"""docker build (the classic Engine API, POST /build with a tar context) against the native
engine's Engine API: the native builder builds it, with Docker's progress, tags, build args and
targets; a failing step fails the CLI; docker-py builds too."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.api.test_engine_api import docker
from tests.api.test_engine_api import engine_api as engine_api  # the fixture
from tests.api.test_engine_api import pytestmark as pytestmark  # root, registry, docker CLI
from tests.build.test_corpus import docker_refs as docker_refs  # the fixture


def _build(sock: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}", "DOCKER_BUILDKIT": "0"}   # the classic API
    env.pop("DOCKER_CONTEXT", None)
    return subprocess.run(["docker", "build", *args], capture_output=True, text=True, env=env, timeout=300,
                          check=False)


def test_docker_build_uses_the_native_builder(engine_api: str, busybox_image: str, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "greeting.txt").write_text("hello from the context\n")
    (ctx / "ignored.txt").write_text("not sent\n")
    (ctx / ".dockerignore").write_text("ignored.txt\n")
    (ctx / "Dockerfile").write_text(f"""FROM {busybox_image} AS base
ARG WHO=nobody
COPY greeting.txt /greeting.txt
RUN echo "built for $WHO" > /who.txt && ls / > /listing.txt
CMD ["cat", "/greeting.txt", "/who.txt"]

FROM base AS other
RUN echo other > /other.txt
""")
    built = _build(engine_api, "-t", "local/built:1", "-t", "local/built:latest", "--build-arg", "WHO=docker-cli",
                   "--target", "base", str(ctx))
    assert built.returncode == 0, built.stdout + built.stderr
    assert "Step 1/5 : FROM" in built.stdout                           # the builder's own progress
    assert "Successfully tagged local/built:1" in built.stdout
    tags = docker(engine_api, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert {"local/built:1", "local/built:latest"} <= set(tags)
    out = docker(engine_api, "run", "--rm", "--network", "none", "local/built:1").stdout
    assert out == "hello from the context\nbuilt for docker-cli\n"
    listing = docker(engine_api, "run", "--rm", "--network", "none", "local/built:1", "cat", "/listing.txt").stdout
    assert "other.txt" not in listing                                  # --target stopped at base
    files = docker(engine_api, "run", "--rm", "--network", "none", "local/built:1", "ls", "/").stdout.split()
    assert "ignored.txt" not in files

    (ctx / "Dockerfile").write_text(f"FROM {busybox_image}\nRUN echo failing; exit 7\n")
    failed = _build(engine_api, "-t", "local/failed", str(ctx))
    assert failed.returncode == 7                      # the RUN's exit code (errorDetail.code), as dockerd's
    assert "exit" in (failed.stdout + failed.stderr).lower()
    assert "local/failed" not in docker(engine_api, "images", "--format", "{{.Repository}}").stdout

    docker_py = pytest.importorskip("docker")
    client = docker_py.DockerClient(base_url=f"unix://{engine_api}", version="1.41", timeout=300)
    try:
        dockerfile = f"FROM {busybox_image}\nLABEL made=docker-py\nCMD [\"echo\", \"py-built\"]\n"
        image, logs = client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag="local/pybuilt:1", rm=True)
        assert image.labels["made"] == "docker-py"
        assert any("Successfully built" in (line.get("stream") or "") for line in logs)
        assert client.containers.run("local/pybuilt:1", network_mode="none", remove=True) == b"py-built\n"
    finally:
        client.close()


def _post_build(sock: str, query: str, context: bytes) -> tuple[int, list[dict[str, object]]]:
    """POST /build with a tar context; the status and the JSON lines of the answer."""
    import http.client
    import json
    import socket as socketmod

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socketmod.socket(socketmod.AF_UNIX, socketmod.SOCK_STREAM)
            self.sock.connect(sock)

    conn = Conn("localhost", timeout=120)
    try:
        conn.request("POST", f"/v1.41/build?{query}", body=context, headers={"Content-Type": "application/x-tar"})
        resp = conn.getresponse()
        return resp.status, [json.loads(line) for line in resp.read().splitlines() if line.strip()]
    finally:
        conn.close()


def test_build_answers_every_failure_and_reads_any_dockerfile(engine_api: str, busybox_image: str) -> None:
    """A Dockerfile with bytes that are not UTF-8 builds, as dockerd builds it (they reach the
    process as U+FFFD there: `od` prints 357 277 275); any failure of a build is an errorDetail
    line (one the builder did not expect ended the stream without a word: `docker build` said
    nothing and exited 0); a RUN's failure carries its exit code, as dockerd's."""
    import tarfile

    docker(engine_api, "pull", busybox_image)
    env = {**os.environ, "DOCKER_HOST": f"unix://{engine_api}", "DOCKER_BUILDKIT": "0"}
    env.pop("DOCKER_CONTEXT", None)
    latin = f"FROM {busybox_image}\nRUN echo caf\xe9 | od -c\n".encode("latin-1")
    built = subprocess.run(["docker", "build", "-"], input=latin, capture_output=True, env=env, timeout=300,
                           check=False)
    assert built.returncode == 0, built.stderr
    assert b"c   a   f 357 277 275" in built.stdout

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in {"Dockerfile": f"FROM {busybox_image}\nRUN exit 3\n".encode()}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    status, lines = _post_build(engine_api, "dockerfile=Docker%00file", buf.getvalue())   # open() refuses a NUL
    assert status == 200
    assert "errorDetail" in lines[-1], lines
    assert lines[-1]["error"]
    assert not any("aux" in line for line in lines)

    status, lines = _post_build(engine_api, "q=1", buf.getvalue())
    assert lines[-1]["errorDetail"]["code"] == 3, lines        # type: ignore[index]


def test_build_stream_ends_as_dockerds_and_docker_py_gets_the_image(engine_api: str, busybox_image: str,
                                                                    tmp_path: Path) -> None:
    """The end of POST /build's stream is dockerd's: the image id as `aux` before `Successfully
    built <its 12 digits>` (the id the last step printed), the tags as people read them
    (`name:latest`); with `q`, the id alone. docker-py's `images.build` gets that image (it
    reads `Successfully built`, after any line of a step's output that ends like an id), and
    `docker build --iidfile` the aux id."""
    import tarfile

    docker(engine_api, "pull", busybox_image)
    dockerfile = f"FROM {busybox_image}\nRUN echo sha256:0123456789ab\nLABEL made=docker-py\n".encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    status, lines = _post_build(engine_api, "t=local/streamed&t=local/streamed:2", buf.getvalue())
    assert status == 200
    streams = [str(x.get("stream", "")) for x in lines]
    (aux,) = [i for i, x in enumerate(lines) if "aux" in x]
    image_id = str(lines[aux]["aux"]["ID"])                     # type: ignore[index]
    assert image_id == json.loads(docker(engine_api, "image", "inspect", "local/streamed").stdout)[0]["Id"]
    assert streams[aux + 1:] == [f"Successfully built {image_id[7:19]}\n", "Successfully tagged local/streamed:latest\n",
                                 "Successfully tagged local/streamed:2\n"]
    assert streams[aux - 1] == f" ---> {image_id[7:19]}\n"     # the last step's image is the built one

    status, lines = _post_build(engine_api, "q=1", buf.getvalue())
    assert lines == [{"stream": image_id + "\n"}]               # the cache: the same image

    iidfile = tmp_path / "iid"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_bytes(dockerfile)
    built = _build(engine_api, "--iidfile", str(iidfile), str(ctx))
    assert built.returncode == 0, built.stderr
    assert iidfile.read_text() == image_id

    docker_py = pytest.importorskip("docker")
    client = docker_py.DockerClient(base_url=f"unix://{engine_api}", version="1.41", timeout=300)
    try:
        image, _logs = client.images.build(fileobj=io.BytesIO(dockerfile), tag="local/pybuilt", rm=True)
        assert image.id == image_id
        assert sorted(image.tags) == ["local/pybuilt:latest", "local/streamed:2", "local/streamed:latest"]
        image, _logs = client.images.build(fileobj=io.BytesIO(dockerfile), quiet=True)
        assert image.id == image_id
    finally:
        client.close()


def test_rm_and_forcerm_are_dockerds(engine_api: str, busybox_image: str, tmp_path: Path) -> None:
    """dockerd's classic builder removes a step's container when the step succeeded and `rm`
    (the default), or whatever happened with `forcerm`; else keeps it: `docker build --rm=false`
    keeps every step's, a metadata step's created (never started) with dockerd's `#(nop)`
    command, a RUN's exited; a failed RUN's is kept without --force-rm. A kept container stays
    through the next builds, and `docker rm` removes it."""
    import re

    docker(engine_api, "pull", busybox_image)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {busybox_image}\nENV KEPT=1\nRUN echo ran > /ran\n")

    def ran_in(out: str) -> list[str]:
        return re.findall(r"(?m)^ ---> Running in ([0-9a-f]{12})$", out)

    def state(cid: str) -> tuple[str, list[str]]:
        doc = json.loads(docker(engine_api, "inspect", cid).stdout)[0]
        assert "reconciler.build" not in (doc["Config"]["Labels"] or {})    # no longer a step's: kept
        return doc["State"]["Status"], doc["Config"]["Cmd"]

    kept = _build(engine_api, "--rm=false", str(ctx))
    assert kept.returncode == 0, kept.stderr
    assert "Removing intermediate container" not in kept.stdout
    env_step, run_step = ran_in(kept.stdout)
    assert state(env_step) == ("created", ["/bin/sh", "-c", "#(nop) ", "ENV KEPT=1"])
    assert state(run_step) == ("exited", ["/bin/sh", "-c", "echo ran > /ran"])

    (ctx / "Dockerfile").write_text(f"FROM {busybox_image}\nRUN echo failing; exit 7\n")
    failed = _build(engine_api, str(ctx))                      # rm, not forcerm: the failed step's is kept
    assert failed.returncode == 7
    (failed_step,) = ran_in(failed.stdout)
    assert "Removing intermediate container" not in failed.stdout
    assert state(failed_step)[0] == "exited"
    forced = _build(engine_api, "--force-rm", str(ctx))
    assert forced.returncode == 7
    (forced_step,) = ran_in(forced.stdout)
    assert f"Removing intermediate container {forced_step}" in forced.stdout
    assert docker(engine_api, "inspect", forced_step, check=False).returncode != 0

    (ctx / "Dockerfile").write_text(f"FROM {busybox_image}\nENV OTHER=1\nRUN echo again\n")
    again = _build(engine_api, str(ctx))                       # the defaults: each removed once done
    assert again.returncode == 0, again.stderr
    for cid in ran_in(again.stdout):
        assert f"Removing intermediate container {cid}" in again.stdout
        assert docker(engine_api, "inspect", cid, check=False).returncode != 0
    for cid in (env_step, run_step, failed_step):             # kept through later builds
        assert state(cid)[0] in ("created", "exited")
        docker(engine_api, "rm", "-f", cid)


def test_an_image_without_a_time_is_shown_as_dockerds(engine_api: str, busybox_image: str, tmp_path: Path) -> None:
    """A build of an image without `created` (the test busybox) with metadata steps only keeps
    1970 in its config but has no time, as its base: the Engine API's history and inspect
    give Go's zero time, as dockerd gives them for such an image (`docker history
    --human=false` prints 0001-01-01T00:00:00Z, not 1970's)."""
    docker(engine_api, "pull", busybox_image)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {busybox_image}\nLABEL x=y\n")
    built = _build(engine_api, "-t", "local/undated", str(ctx))
    assert built.returncode == 0, built.stderr
    times = docker(engine_api, "history", "--human=false", "--format", "{{.CreatedAt}}", "local/undated").stdout
    assert times.splitlines() == ["0001-01-01T00:00:00Z"] * 2
    assert docker(engine_api, "image", "inspect", "-f", "{{.Created}}", "local/undated").stdout.strip() == \
        "0001-01-01T00:00:00Z"


@pytest.mark.docker
def test_docker_build_through_the_api_has_dockerds_history(engine_api: str, busybox_image: str, tmp_path: Path,
                                                           docker_refs: list[str]) -> None:
    """`docker build` through the Engine API (the CLI's own tar of the context) and against
    dockerd itself: `docker history --no-trunc` shows the same CREATED BY texts, the COPY
    hashes of the context as the CLI sent it (an ignored file left out) included."""
    from tests.build import test_corpus

    test_corpus._docker_ready()
    ctx = tmp_path / "ctx"
    (ctx / "d").mkdir(parents=True)
    (ctx / "f").write_text("hello\n")
    (ctx / "d" / "a").write_text("a\n")
    (ctx / "d" / "skip").write_text("ignored\n")
    (ctx / ".dockerignore").write_text("d/skip\n")
    (ctx / "Dockerfile").write_text(f"FROM {busybox_image}\nARG B=2\nRUN echo $B > /b\nCOPY f /f\nCOPY d /d\n"
                                    "COPY . /all/\nCMD [\"sh\"]\n")
    docker_refs.append(busybox_image)
    test_corpus.docker("pull", "-q", busybox_image)
    tag = f"local/history{os.getpid()}:1"
    docker_refs.append(tag)
    theirs = test_corpus.build(docker_refs, "-t", tag, str(ctx))
    assert theirs.returncode == 0, theirs.stderr
    want = test_corpus.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", tag).stdout.splitlines()
    built = _build(engine_api, "-t", tag, str(ctx))
    assert built.returncode == 0, built.stdout + built.stderr
    ours = docker(engine_api, "history", "--no-trunc", "--format", "{{.CreatedBy}}", tag).stdout.splitlines()
    assert ours == want
