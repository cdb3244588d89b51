"""`docker cp` against the native engine's Engine API (the archive endpoints): both ways, into a
volume of a running container, from a stopped one, and never through a symlink the container
made to a host path."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

from tests.api.test_engine_api import docker
from tests.api.test_engine_api import engine_api as engine_api  # the fixture
from tests.api.test_engine_api import pytestmark as pytestmark  # root, registry, docker CLI


def _put(sock: str, container: str, path: str, data: bytes) -> tuple[int, bytes]:
    """PUT /containers/{id}/archive, chunked as the docker CLI sends it."""
    import http.client
    import socket as socketmod

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socketmod.socket(socketmod.AF_UNIX, socketmod.SOCK_STREAM)
            self.sock.connect(sock)

    conn = Conn("localhost", timeout=30)
    try:
        conn.request("PUT", f"/v1.41/containers/{container}/archive?path={path}", body=iter([data[:700], data[700:]]),
                     headers={"Content-Type": "application/x-tar"}, encode_chunked=True)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_docker_cp_both_ways(engine_api: str, busybox_image: str, tmp_path: Path) -> None:
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "run", "-d", "--name", "box", "--network", "none", "-v", "cpdata:/data", busybox_image,
           "sleep", "3600")
    try:
        (tmp_path / "note.txt").write_text("into the volume\n")
        (tmp_path / "tree" / "sub").mkdir(parents=True)
        (tmp_path / "tree" / "sub" / "deep.txt").write_text("deep\n")
        os.chmod(tmp_path / "tree" / "sub" / "deep.txt", 0o640)
        docker(engine_api, "cp", str(tmp_path / "note.txt"), "box:/data/")          # into a volume: the
        assert docker(engine_api, "exec", "box", "cat", "/data/note.txt").stdout == "into the volume\n"  # live view
        docker(engine_api, "cp", str(tmp_path / "tree"), "box:/tmp/copied")          # a new name: renamed
        out = docker(engine_api, "exec", "box", "sh", "-c", "cat /tmp/copied/sub/deep.txt; stat -c %a "
                     "/tmp/copied/sub/deep.txt").stdout.split()
        assert out == ["deep", "640"]

        docker(engine_api, "cp", "box:/tmp/copied", str(tmp_path / "back"))
        assert (tmp_path / "back" / "sub" / "deep.txt").read_text() == "deep\n"
        assert oct((tmp_path / "back" / "sub" / "deep.txt").stat().st_mode & 0o777) == "0o640"
        raw = docker_bytes(engine_api, "cp", "box:/data/note.txt", "-")             # a tar on stdout
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            assert tar.getnames() == ["note.txt"]
            member = tar.extractfile("note.txt")
            assert member is not None
            assert member.read() == b"into the volume\n"
        missing = docker(engine_api, "cp", "box:/nope", str(tmp_path / "x"), check=False)
        assert missing.returncode != 0
        assert "Could not find the file /nope in container box" in missing.stderr      # dockerd's words
        # `DIR/.`: its content, named from `.` as dockerd names it; a relative path is from `/`
        docker(engine_api, "cp", "box:/tmp/copied/.", str(tmp_path / "content"))
        assert sorted(p.name for p in (tmp_path / "content").iterdir()) == ["sub"]
        docker(engine_api, "cp", "box:tmp/copied/sub", str(tmp_path / "relative"))
        assert (tmp_path / "relative" / "deep.txt").read_text() == "deep\n"

        docker(engine_api, "stop", "-t", "0", "box")                                  # a stopped one: its rootfs
        docker(engine_api, "cp", "box:/tmp/copied/sub/deep.txt", str(tmp_path / "from-stopped.txt"))
        assert (tmp_path / "from-stopped.txt").read_text() == "deep\n"
    finally:
        docker(engine_api, "rm", "-f", "box", check=False)
        docker(engine_api, "volume", "rm", "cpdata", check=False)


def docker_bytes(sock: str, *args: str) -> bytes:
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
    env.pop("DOCKER_CONTEXT", None)
    return subprocess.run(["docker", *args], capture_output=True, env=env, timeout=60, check=True).stdout


def test_cp_stays_inside_the_container(engine_api: str, busybox_image: str, tmp_path: Path) -> None:
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    (host_dir / "secret").write_text("host only\n")
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "run", "-d", "--name", "trap", "--network", "none", busybox_image, "sh", "-c",
           f"ln -s {host_dir} /link; ln -s ../../../../../../{host_dir} /tmp/rel; mkdir -p {host_dir}; "
           f"echo container > {host_dir}/secret; sleep 3600")
    try:
        for _ in range(50):
            if docker(engine_api, "exec", "trap", "test", "-L", "/tmp/rel", check=False).returncode == 0:
                break
        for link in ("/link", "/tmp/rel"):                     # read through the links: the container's file
            raw = docker_bytes(engine_api, "cp", f"trap:{link}/secret", "-")
            with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
                member = tar.extractfile("secret")
                assert member is not None
                assert member.read() == b"container\n"
            code, body = _put(engine_api, "trap", link, _tar({"dropped": b"x"}))
            assert code == 200, body
            code, body = _put(engine_api, "trap", link, _tar({"../../../escaped": b"y"}))
            assert code == 400                                  # the extractor refuses names outside
            assert "outside" in json.loads(body)["message"]
        assert sorted(os.listdir(host_dir)) == ["secret"]                       # nothing reached the host
        assert (host_dir / "secret").read_text() == "host only\n"
        inside = docker(engine_api, "exec", "trap", "ls", str(host_dir)).stdout.split()
        assert sorted(inside) == ["dropped", "secret"]
        code, body = _put(engine_api, "trap", "/nowhere", _tar({"a": b"a"}))
        assert code == 404
        assert "Could not find the file /nowhere" in json.loads(body)["message"]
    finally:
        docker(engine_api, "rm", "-f", "trap", check=False)


def test_docker_export(engine_api: str, busybox_image: str, tmp_path: Path) -> None:
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "run", "-d", "--name", "exp", "--network", "none", "-v", "expdata:/data", busybox_image,
           "sh", "-c", "echo mine > /marker.txt; echo vol > /data/in-volume; sleep 3600")
    try:
        for _ in range(50):
            if docker(engine_api, "exec", "exp", "test", "-e", "/marker.txt", check=False).returncode == 0:
                break
        out = tmp_path / "exp.tar"
        docker(engine_api, "export", "-o", str(out), "exp")
        with tarfile.open(out) as tar:
            names = set(tar.getnames())
            marker = tar.extractfile("marker.txt")
            assert marker is not None
            assert marker.read() == b"mine\n"
        assert "bin/busybox" in names                                   # the image's files, by their names
        assert "data/in-volume" not in names                            # a volume is not the container's
        assert not any(n.startswith("proc/") for n in names)            # nor the kernel's file systems
    finally:
        docker(engine_api, "rm", "-f", "exp", check=False)
        docker(engine_api, "volume", "rm", "expdata", check=False)


def test_cp_sees_a_stopped_containers_volumes(engine_api: str, busybox_image: str, tmp_path: Path) -> None:
    """`docker create` + `docker cp` into a volume + `docker start` (a config put in place before
    the first start): the file is in the volume, not in the rootfs under it; after the stop, a
    copy out reads the volume and the container's own hostname, as dockerd's. Nothing the copy
    mounted is left on the host."""
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "create", "--name", "made", "--hostname", "madehost", "--network", "none",
           "-v", "cpvol:/data", "-v", "cpro:/locked:ro", busybox_image, "sh", "-c",
           "cat /data/conf.txt; echo changed > /data/conf.txt")
    try:
        cid = docker(engine_api, "inspect", "-f", "{{.Id}}", "made").stdout.strip()
        (tmp_path / "conf.txt").write_text("put before the start\n")
        docker(engine_api, "cp", str(tmp_path / "conf.txt"), "made:/data/")
        assert docker(engine_api, "start", "-a", "made").stdout == "put before the start\n"

        docker(engine_api, "cp", "made:/data/conf.txt", str(tmp_path / "back.txt"))     # stopped: the volume
        assert (tmp_path / "back.txt").read_text() == "changed\n"
        raw = docker_bytes(engine_api, "cp", "made:/etc/hostname", "-")
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            member = tar.extractfile("hostname")
            assert member is not None
            assert member.read() == b"madehost\n"
        refused = docker(engine_api, "cp", str(tmp_path / "conf.txt"), "made:/locked/", check=False)
        assert refused.returncode != 0                       # a read-only volume stays as it was
        assert "read-only" in refused.stderr.lower()
        with open("/proc/self/mountinfo") as f:
            leaked = [line for line in f if cid in line and "/rootfs/" in line.split()[4]]
        assert leaked == []                                  # the copy's mounts were its own
    finally:
        docker(engine_api, "rm", "-f", "made", check=False)
        docker(engine_api, "volume", "rm", "cpvol", "cpro", check=False)
