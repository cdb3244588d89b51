"""A real Debian `docker-registry` (distribution 2.8) on 127.0.0.1 and a free port.

Each instance has its own storage directory and config; it is ended by its pid on close.
`auth` is the registry config's `auth:` section (htpasswd or token), or None for an open one.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

__all__ = ["Hangup", "RegistryServer", "free_port", "hangup", "wait_http"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(host: str, port: int, path: str = "/v2/", timeout: float = 15.0) -> None:
    """Wait until an HTTP server answers (any status) on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1) as s:
                s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
                if s.recv(12).startswith(b"HTTP/"):
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"no HTTP server on {host}:{port} after {timeout}s")


class RegistryServer:
    """One docker-registry process; `host` is "127.0.0.1:PORT", `url` its base URL."""

    def __init__(self, workdir: Path, *, auth: dict[str, Any] | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.auth = auth
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RegistryServer:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise RuntimeError("docker-registry is not installed (scripts/install-system-deps.sh)")
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
            "http": {"addr": self.host, "secret": "test-secret"},
        }
        if self.auth:
            config["auth"] = self.auth
        cfg = self.workdir / "config.yml"
        cfg.write_text(yaml.safe_dump(config))
        self.log = open(self.workdir / "registry.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([binary, "serve", str(cfg)], stdout=self.log, stderr=self.log)
        try:
            wait_http("127.0.0.1", self.port)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()


class Hangup:
    """A loopback server that accepts each connection and closes it unanswered (a registry
    whose process died behind its load balancer), counting the connections: a fault the real
    registry cannot produce on demand."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()
        self._thread.join(5)


@pytest.fixture
def hangup() -> Iterator[Hangup]:
    """A Hangup, closed after the test (import it into a test module to use it)."""
    server = Hangup()
    try:
        yield server
    finally:
        server.close()
