"""Request bodies on the agent's API socket, sent raw to a real agent (#14 item 10): a declared
length that is not a plain number of bytes is answered 400 at once, one over 1 MiB 413, and
neither is read (a `-1` used to make the server read until the client closed)."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import pytest

from tests.agent.conftest import AgentProc

ANSWER_WITHIN = 5.0          # the server's own per-read timeout is 30 s: a read to EOF would wait that long


@pytest.fixture
def agent(tmp_path: Path, agents: list[AgentProc]) -> AgentProc:
    (tmp_path / "m").mkdir()
    a = AgentProc(tmp_path, sources=[{"name": "local", "directory": str(tmp_path / "m")}])
    agents.append(a.start())
    return a


def exchange(agent: AgentProc, request: bytes) -> bytes:
    """Send `request` and keep the connection open for writing; what the agent answers until it closes."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(ANSWER_WITHIN)
        s.connect(str(agent.socket))
        s.sendall(request)
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := s.recv(65536):
                data += chunk
        return data


def post(length_headers: list[str], body: bytes = b"") -> bytes:
    head = ["POST /v1/reconcile HTTP/1.1", "Host: agent", "Content-Type: application/json", *length_headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


@pytest.mark.parametrize("lengths", [
    ["Content-Length: -1"],
    ["Content-Length: -100"],
    ["Content-Length: +5"],
    ["Content-Length: 1e3"],
    ["Content-Length: 0x10"],
    ["Content-Length: \xb2"],                     # '²': str.isdigit() says yes, int() says no
    ["Content-Length: " + "9" * 30],
    ["Content-Length: 2", "Content-Length: 3"],
], ids=["-1", "-100", "+5", "1e3", "0x10", "superscript-2", "30-digits", "two-values"])
def test_an_invalid_length_is_400_and_nothing_is_read(agent: AgentProc, lengths: list[str]) -> None:
    reply = exchange(agent, post(lengths))      # no body follows, and the client never closes
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:200]
    assert b"Connection: close" in reply
    assert b"Content-Length" in reply.split(b"\r\n\r\n", 1)[1]      # the message names the header


def test_a_body_over_1_mib_is_413_unread(agent: AgentProc) -> None:
    reply = exchange(agent, post([f"Content-Length: {(1 << 20) + 1}"]))
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:200]
    assert b"1048576" in reply


def test_a_valid_body_is_still_read(agent: AgentProc) -> None:
    body = b'{"source": "local", "wait": false}'
    reply = exchange(agent, post([f"Content-Length: {len(body)}", "Connection: close"], body))
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
