"""The agent's and the Engine API's socket path appears only once the server listens
(api/server.py `_UnixHTTPServer`): a client that waits for the file, as the tests and a unit's
start-up checks do, never connects to a socket still refusing connections (CI saw one, once)."""

from __future__ import annotations

import os
import socket
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from reconciler.api.server import _UnixHTTPServer


def test_the_path_appears_when_the_socket_listens(tmp_path: Path) -> None:
    path = tmp_path / "agent.sock"
    server = _UnixHTTPServer(str(path), BaseHTTPRequestHandler, bind_and_activate=False)
    try:
        server.server_bind()
        assert not path.exists()                    # bound, not listening: not there yet
        assert [p.name for p in tmp_path.iterdir()] == [f".{os.getpid()}.bind"]
        server.server_activate()
        assert [p.name for p in tmp_path.iterdir()] == ["agent.sock"]
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(path))               # accepted into the listen queue at once
    finally:
        server.server_close()
