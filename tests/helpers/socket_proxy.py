"""A Unix socket in front of another (the Docker Engine API's), that a test can kill mid-request.

Bytes are copied both ways, one upstream connection per client connection, nothing parsed or
changed. `kill()` closes the listener and every connection at once: the engine is gone, as when
dockerd restarts or the ssh tunnel a DOCKER_HOST goes through is cut, while a request is in
flight. `kill_on` (a regular expression over what a client sends) kills it `after` seconds after
the first request that matches went upstream.

    proxy = SocketProxy(tmp_path / "d.sock", kill_on=rb"POST /v[0-9.]+/containers/[^/]+/stop").start()
    ... DOCKER_HOST=unix://{proxy.path} ...
    assert proxy.killed.wait(10)
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from pathlib import Path

__all__ = ["SocketProxy"]


class SocketProxy:
    def __init__(self, path: Path, upstream: str = "/var/run/docker.sock", *, kill_on: bytes | None = None,
                 after: float = 0.0) -> None:
        self.path = path
        self.upstream = upstream
        self.kill_on = re.compile(kill_on) if kill_on else None
        self.after = after
        self.killed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def start(self) -> SocketProxy:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def kill(self) -> None:
        """Close the listener and every connection: a client sees its connection closed, and a
        new one refused (the socket file stays, as a killed process leaves it)."""
        with self._lock:
            if self.killed.is_set():
                return
            self.killed.set()
            every = [s for s in (self._listener, *self._sockets) if s is not None]
        for s in every:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self.killed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                up.connect(self.upstream)
            except OSError:
                client.close()
                up.close()
                continue
            with self._lock:
                if self.killed.is_set():
                    client.close()
                    up.close()
                    return
                self._sockets += [client, up]
            threading.Thread(target=self._pump, args=(client, up, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        while True:
            try:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
            except OSError:
                break
            if from_client and self.kill_on is not None and self.kill_on.search(data):
                self.kill_on = None
                threading.Timer(self.after, self.kill).start()
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
