"""Request bodies on the Engine API socket, sent raw to a real `reconcile engine-api` (#14 item
10): the same length rule as the agent's API (reconciler/httpbody.py), answered Docker's way."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.host import Host

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def engine_api(host: Host, tmp_path: Path) -> Iterator[Path]:
    """`reconcile engine-api` on the test's own engine; its socket (the process is ended by pid)."""
    sock = tmp_path / "docker.sock"
    args = [a for a in host.cli_args() if a not in ("--runtime", "native")]
    with (tmp_path / "engine-api.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "reconciler", "engine-api", "--socket", str(sock), *args],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert proc.poll() is None, (tmp_path / "engine-api.log").read_text()
            assert time.monotonic() < deadline, "the engine API did not start"
            time.sleep(0.05)
        yield sock
    finally:
        proc.terminate()
        proc.wait(timeout=30)


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
