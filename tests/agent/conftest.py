"""Real agent processes (`python -m reconciler agent --config ...`) for the agent tests.

Each test gets its own root, run dir, socket and name prefix; the agent is stopped by pid
in teardown (SIGTERM, then SIGKILL), whatever the test did.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.api import client as api_client
from reconciler.api import errors as api_errors
from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.network.network import NetworkManager
from tests.runtime.conftest import cleanup, leftovers, new_prefix

WAIT = 60.0                              # generous: a slow CI machine, never a timed assertion


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT, interval: float = 0.1) -> Any:
    """Poll `check()` until it returns something truthy; fail with `what` when it never does."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (api_errors.AgentUnreachable, FileNotFoundError) as e:
            last = e
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what} (last: {last!r})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AgentProc:
    """One agent process and its config; `start()` waits until the API answers."""

    def __init__(self, tmp: Path, *, runtime: str = "fake", **config: Any) -> None:
        self.tmp = tmp
        self.prefix = new_prefix()
        self.root = tmp / "root"
        self.run_dir = tmp / "run"
        self.socket = tmp / "api.sock"
        self.config_path = tmp / "agent.yaml"
        self.log_path = tmp / "agent.log"
        self.config: dict[str, Any] = {
            "root": str(self.root), "run_dir": str(self.run_dir), "runtime": runtime,
            "socket": str(self.socket), "name_prefix": self.prefix, "drift_interval": "1h", **config,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.api = api_client.ApiClient(self.socket, timeout=60)

    def write_config(self, **changes: Any) -> None:
        self.config.update(changes)
        self.config_path.write_text(yaml.safe_dump(self.config))

    def start(self, env: dict[str, str] | None = None) -> AgentProc:
        self.write_config()
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "--log-level", "info", "agent", "--config", str(self.config_path)],
            stdout=log, stderr=log, cwd=Path(__file__).resolve().parents[2],
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        log.close()
        wait_for("the agent's API", lambda: self.proc is not None and (self.proc.poll() is not None or self.api.available()))
        assert self.proc.poll() is None, f"the agent exited: {self.log()}"
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait_exit(self, timeout: float = WAIT) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- API helpers ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        doc: dict[str, Any] = self.api.get("/v1/status")
        return doc

    def source(self, name: str) -> dict[str, Any]:
        doc: dict[str, Any] = self.api.get(f"/v1/sources/{name}")
        return doc

    def reconcile(self, name: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = self.api.post("/v1/reconcile", {"source": name, "wait": True, "timeout": WAIT},
                                            timeout=WAIT + 10)
        return doc

    def events(self) -> list[dict[str, Any]]:
        return list(self.api.events())


@pytest.fixture
def agents() -> Iterator[list[AgentProc]]:
    """Agents a test started; each is stopped (by pid) at teardown."""
    started: list[AgentProc] = []
    try:
        yield started
    finally:
        for a in started:
            a.stop()


@pytest.fixture
def native_agent(tmp_path: Path, agents: list[AgentProc]) -> Iterator[AgentProc]:
    a = AgentProc(tmp_path, runtime="native", sources=[{"name": "host", "directory": str(tmp_path / "m")}],
                  supervision={"flap_limit": 3, "flap_window": "5m"})
    (tmp_path / "m").mkdir()
    agents.append(a)
    try:
        yield a
    finally:
        a.stop()
        rt = NativeRuntime(NativeConfig(root=a.root, run_dir=a.run_dir, name_prefix=a.prefix),
                           network=NetworkManager(NativeConfig(root=a.root, run_dir=a.run_dir, name_prefix=a.prefix)))
        cleanup(rt)                 # and the manifests' networks: a bridge left here stays on the host
        left = leftovers(rt.config)
        rt.close()
        assert left == [], f"left on the host: {left}"
