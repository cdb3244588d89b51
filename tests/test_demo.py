"""The README's main job, `bash scripts/demo.sh`, run as it is but isolated.

Its own state root, run dir, name prefix, address pool and free ports for the registry and
the published page (the script's environment settings); the packages and .venv are used as
they are (DEMO_SKIP_INSTALL). Run twice (the second run changes nothing), then `down`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.network.network import NetworkManager
from tests.helpers import subnets
from tests.helpers.ports import publish_port
from tests.helpers.registry import free_port
from tests.runtime.conftest import cleanup, leftovers, new_prefix

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent


class Demo:
    def __init__(self, tmp: Path) -> None:
        self.config = NativeConfig(root=tmp / "root", run_dir=tmp / "run", name_prefix=new_prefix())
        self.registry_port, self.host_port = free_port(), publish_port()
        self.env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "DEMO_SKIP_INSTALL": "1",
            "RECONCILER_ROOT": str(self.config.root), "RECONCILER_RUN_DIR": str(self.config.run_dir),
            "RECONCILER_PREFIX": self.config.name_prefix,
            "RECONCILER_SUBNET_POOL": str(next(subnets.lease_block().subnets(new_prefix=24))),
            "DEMO_REGISTRY_PORT": str(self.registry_port), "DEMO_HOST_PORT": str(self.host_port),
        }
        self.pidfile = self.config.root / "demo" / "registry.pid"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(REPO / "scripts" / "demo.sh"), *args], env=self.env, cwd=REPO,
                              capture_output=True, text=True, timeout=600, check=False)

    def runtime(self) -> NativeRuntime:
        return NativeRuntime(self.config, network=NetworkManager(self.config))

    def registry_pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text())
        except (OSError, ValueError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    d = Demo(tmp_path)
    try:
        yield d
    finally:
        pid = d.registry_pid()
        if pid is not None and b"docker-registry" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, 15)
        rt = d.runtime()
        cleanup(rt)
        left = leftovers(d.config)
        rt.close()
        assert left == [], left


def test_the_demo_serves_the_page_twice_and_tears_down(demo: Demo) -> None:
    first = demo.run()
    assert first.returncode == 0, first.stdout + first.stderr
    assert "<h1>Hello from reconciler</h1>" in first.stdout            # printed by the script
    with urllib.request.urlopen(f"http://127.0.0.1:{demo.host_port}/", timeout=5) as resp:
        assert b"Hello from reconciler" in resp.read()
    pid = demo.registry_pid()
    assert pid is not None
    assert f"pid {pid}" in first.stdout                                 # it says what it started
    assert str(demo.config.root) in first.stdout
    rt = demo.runtime()
    try:
        [hello] = rt.list_containers()
        assert hello.name == "hello"
        assert hello.status == "running"
    finally:
        rt.close()

    second = demo.run()                                                 # idempotent
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nothing to do" in second.stdout
    assert f"registry already running on 127.0.0.1:{demo.registry_port} (pid {pid})" in second.stdout
    rt = demo.runtime()
    try:
        assert [c.id for c in rt.list_containers()] == [hello.id]
    finally:
        rt.close()

    down = demo.run("down")
    assert down.returncode == 0, down.stdout + down.stderr
    rt = demo.runtime()
    try:
        assert rt.list_containers() == []
    finally:
        rt.close()
    assert demo.registry_pid() is None
