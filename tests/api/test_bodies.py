"""Request bodies on the Engine API socket, sent raw to a real `reconcile engine-api` (#14 item
10): the same length rule as the agent's API (reconciler/httpbody.py), answered Docker's way."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.test_engine_api import serving
from tests.helpers.host import Host

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def engine_api(host: Host, tmp_path: Path) -> Iterator[Path]:
    """`reconcile engine-api` on the test's own engine; its socket (the process is ended by pid)."""
    with serving(host, tmp_path / "docker.sock") as sock:
        yield Path(sock)


def exchange(sock: Path, length_headers: list[str]) -> bytes:
    """A container create with these length headers and no body, the connection left open; the reply."""
    head = ["POST /v1.41/containers/create?name=x HTTP/1.1", "Host: docker", "Content-Type: application/json",
            *length_headers]
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5.0)                      # a read to EOF would never end: the client does not close
        s.connect(str(sock))
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := s.recv(65536):
                data += chunk
        return data


@pytest.mark.parametrize(("lengths", "status"), [
    (["Content-Length: -1"], 400),
    (["Content-Length: \xb2"], 400),           # '²' passed str.isdigit() and then failed int(): no answer at all
    (["Content-Length: 2", "Content-Length: 3"], 400),
    ([f"Content-Length: {(1 << 20) + 1}"], 413),
], ids=["-1", "superscript-2", "two-values", "over-1-MiB"])
def test_a_bad_length_is_refused_unread(engine_api: Path, lengths: list[str], status: int) -> None:
    reply = exchange(engine_api, lengths)
    assert reply.startswith(f"HTTP/1.1 {status} ".encode()), reply[:200]
    assert b"Connection: close" in reply
    message = json.loads(reply.split(b"\r\n\r\n", 1)[1])["message"]
    assert ("Content-Length" if status == 400 else "1048576") in message


def test_a_malformed_chunked_body_is_refused(engine_api: Path) -> None:
    """A tar body (build, docker cp) is read as a stream of chunks: a bad chunk size is a 400
    naming it, and the server goes on serving."""
    head = "POST /v1.41/build?t=x HTTP/1.1\r\nHost: docker\r\nTransfer-Encoding: chunked\r\n\r\n"
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10.0)
        s.connect(str(engine_api))
        s.sendall(head.encode() + b"zz\r\nnot a chunk\r\n")
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := s.recv(65536):
                data += chunk
    assert data.startswith(b"HTTP/1.1 400 "), data[:200]
    assert "malformed chunk size" in json.loads(data.split(b"\r\n\r\n", 1)[1])["message"]
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10.0)
        s.connect(str(engine_api))
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 200 ")
