"""docker pull against the native engine's Engine API, as dockerd 20.10 answers it: the first
line names the tag and the repository, the last says whether the tag moved (deploy scripts
read it), a reference the registry does not know is a 404 before any byte of a stream, and an
answer has one `Server` header."""

from __future__ import annotations

import json
import socket

import pytest

from tests.api.test_engine_api import docker
from tests.api.test_engine_api import engine_api as engine_api  # the fixture
from tests.api.test_engine_api import pytestmark as pytestmark  # root, registry, docker CLI
from tests.api.test_engine_api_registry import auth_registry as auth_registry  # the fixture
from tests.helpers.registry import RegistryServer


def _raw(sock: str, method: str, path: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """One request on a fresh connection: the status, every header line (repeats kept) and the
    body (chunks joined)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(120)
    s.connect(sock)
    try:
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
    if ("Transfer-Encoding", "chunked") in headers:
        joined = b""
        while body:
            size, _, rest = body.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            joined, body = joined + rest[:n], rest[n + 2:]
        body = joined
    return int(lines[0].split()[1]), headers, body


def _lines(body: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def test_pull_says_what_moved_and_names_the_repository(engine_api: str, busybox_image: str) -> None:
    name, _, tag = busybox_image.rpartition(":")
    first = docker(engine_api, "pull", busybox_image).stdout.splitlines()
    assert first[0] == f"{tag}: Pulling from test/busybox"
    assert first[-2:] == [f"Status: Downloaded newer image for {busybox_image}", busybox_image]
    again = docker(engine_api, "pull", busybox_image).stdout.splitlines()
    assert again[0] == f"{tag}: Pulling from test/busybox"
    assert again[-2] == f"Status: Image is up to date for {busybox_image}"

    code, headers, body = _raw(engine_api, "POST", f"/v1.41/images/create?fromImage={name}&tag={tag}")
    assert code == 200
    assert [v for k, v in headers if k.lower() == "server"] == [dict(headers)["Server"]]   # one
    lines = _lines(body)
    assert lines[0] == {"status": "Pulling from test/busybox", "id": tag}
    assert lines[-1] == {"status": f"Status: Image is up to date for {busybox_image}"}
    digest = str(lines[-2]["status"]).removeprefix("Digest: ")
    code, _, body = _raw(engine_api, "POST", f"/v1.41/images/create?fromImage={name}&tag={digest}")
    lines = _lines(body)
    assert lines[0] == {"status": "Pulling from test/busybox", "id": f"{name}@{digest}"}
    # the tag's pull recorded the digest's name too (dockerd's addDigestReference): nothing moved
    assert lines[-1] == {"status": f"Status: Image is up to date for {name}@{digest}"}


def test_pull_of_what_is_not_there_is_a_404(engine_api: str, busybox_image: str,
                                            auth_registry: RegistryServer) -> None:
    name = busybox_image.rpartition(":")[0]
    code, headers, body = _raw(engine_api, "POST", f"/v1.41/images/create?fromImage={name}&tag=nope")
    assert code == 404, body
    assert json.loads(body) == {"message": f"manifest for {name}:nope not found: manifest unknown: manifest unknown"}
    assert len([k for k, _ in headers if k.lower() == "server"]) == 1          # one, not Python's beside ours
    missing = docker(engine_api, "pull", f"{name.rpartition('/')[0]}/nothere:1", check=False)
    assert missing.returncode == 1
    assert f"manifest for {name.rpartition('/')[0]}/nothere:1 not found" in missing.stderr

    docker_py = pytest.importorskip("docker")
    client = docker_py.APIClient(base_url=f"unix://{engine_api}", version="1.41", timeout=60)
    try:
        with pytest.raises(docker_py.errors.NotFound):
            client.pull(name, tag="nope")
    finally:
        client.close()

    # no credentials for a registry that wants them: dockerd's 500 with the registry's words
    code, _, body = _raw(engine_api, "POST", f"/v1.41/images/create?fromImage={auth_registry.host}/team/box&tag=1")
    assert code == 500, body
    assert "authentication required" in json.loads(body)["message"]
