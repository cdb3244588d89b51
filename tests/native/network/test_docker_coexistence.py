"""Native networks next to dockerd: both engines' published ports work, and Docker's after our teardown."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest

from reconciler.runtime import base
from tests.helpers import images
from tests.helpers.ports import publish_ports
from tests.native.network.conftest import Harness

pytestmark = [pytest.mark.root, pytest.mark.docker]


def _docker_ok() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "info"], capture_output=True, check=False).returncode == 0


@pytest.fixture
def docker_busybox() -> Iterator[str]:
    if not _docker_ok():
        pytest.skip("dockerd is not running")
    tag = f"rtnet-busybox:{secrets.token_hex(3)}"
    subprocess.run(["docker", "import", "-", tag], input=images.busybox_layer(), capture_output=True, check=True)
    try:
        yield tag
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


def _get(url: str, *, wait: float = 0.0) -> str:
    deadline = time.monotonic() + wait
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                return str(resp.read().decode())
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def test_docker_and_native_ports_work_side_by_side(harness: Harness, docker_busybox: str) -> None:
    m = harness.manager
    m.ensure_network(base.NetworkConfig(name="side"))
    ours, theirs = publish_ports(2)
    web = m.attach("ctr-side", name="side", hostname="side", networks=["side"],
                   ports=[base.PortMapping(container_port=80, host_port=ours)])
    harness.serve(web.netns_path, "serve-tcp", "80", "native")
    name = f"rtnet-{secrets.token_hex(3)}"
    subprocess.run(["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{theirs}:80", docker_busybox,
                    "httpd", "-f", "-p", "80", "-h", "/etc"], capture_output=True, check=True)
    try:
        assert "root:x:0:0" in _get(f"http://127.0.0.1:{theirs}/passwd", wait=15)
        assert harness.probe(None, "tcp", "127.0.0.1", str(ours)).stdout.startswith("native")
        # a docker container reaches our container's published port through the host
        gw = subprocess.run(["docker", "exec", name, "ip", "route"], capture_output=True, text=True,
                            check=True).stdout.split("default via ")[1].split()[0]
        out = subprocess.run(["docker", "exec", name, "timeout", "5", "nc", gw, str(ours)],
                             capture_output=True, text=True, check=False)
        assert out.stdout.startswith("native"), out.stderr
        harness.cleanup()
        assert harness.leftovers() == []
        assert "root:x:0:0" in _get(f"http://127.0.0.1:{theirs}/passwd")
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
