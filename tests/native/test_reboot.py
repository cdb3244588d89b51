"""After a reboot: a fault of our own that does to one engine what a reboot does (every process
of its run dir killed, its mounts and namespaces gone, its bridges and nft table deleted, its
run dir emptied; the state root kept), then `ps` and `--once` (#13)."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from reconciler.runtime import base
from tests.execution.helpers import write
from tests.helpers.host import Host, reboot
from tests.helpers.ports import publish_port

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]


def get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return str(r.read().decode().strip())
    except OSError:
        return None


def resolving(rt: base.Runtime) -> tuple[str, str]:
    """The seed container's /etc/hosts and /etc/resolv.conf."""
    seed = next(c.id for c in rt.list_containers() if c.name == "seed")
    return (rt.exec(seed, ["cat", "/etc/hosts"]).stdout.decode(),
            rt.exec(seed, ["cat", "/etc/resolv.conf"]).stdout.decode())


def test_once_brings_back_a_served_app_with_its_network_port_and_volume_after_a_reboot(
        host: Host, busybox_image: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    port = publish_port()
    write(tmp_path / "m", "app.yaml", f"""
        apiVersion: reconciler/v1
        kind: Network
        metadata: {{name: appnet}}
        spec: {{subnet: {host.subnet}}}
        ---
        apiVersion: reconciler/v1
        kind: Volume
        metadata: {{name: appdata}}
        ---
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: web}}
        spec:
          image: {busybox_image}
          command: [sh, -c, "mkdir -p /www; while ! test -s /data/greeting; do sleep 0.1; done; cat /data/greeting > /www/index.html; httpd -f -p 80 -h /www"]
          networks: [appnet]
          ports: ["127.0.0.1:{port}:80"]
          volumes: ["appdata:/data"]
          restart: always
        ---
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: seed}}
        spec:
          image: {busybox_image}
          command: [sh, -c, "test -f /data/greeting || echo kept-across-reboot > /data/greeting; sleep 3600"]
          networks: [appnet]
          volumes: ["appdata:/data"]
          restart: always
          extraHosts: ["db.internal:10.1.2.3"]
          dns: [192.0.2.53]
          dnsSearch: [corp.example]
        """)
    m = str(tmp_path / "m")
    assert host.cli("apply", m) == 0
    deadline = time.monotonic() + 30
    while get(f"http://127.0.0.1:{port}/") != "kept-across-reboot":
        assert time.monotonic() < deadline, "the app never served"
        time.sleep(0.2)
    rt = host.runtime()
    try:
        ips = {c.name: dict(c.ip_addresses) for c in rt.list_containers()}
        names = resolving(rt)
    finally:
        rt.close()
    assert "10.1.2.3\tdb.internal" in names[0]
    assert "search corp.example" in names[1].splitlines()

    reboot(host.config)

    capfd.readouterr()
    args = [a for a in host.cli_args() if a not in ("--runtime", "native")]
    from reconciler.cli.main import main

    assert main(["ps", "-a", "-o", "json", *args]) == 0
    rows = json.loads(capfd.readouterr().out)
    assert sorted(str(r.get("status", r.get("Status", ""))).split()[0].lower() for r in rows) == ["exited", "exited"]

    assert host.cli("apply", m) == 0                       # --once brings them back
    deadline = time.monotonic() + 30
    while get(f"http://127.0.0.1:{port}/") != "kept-across-reboot":
        assert time.monotonic() < deadline, "not serving after the reboot"
        time.sleep(0.2)
    rt = host.runtime()
    try:
        assert {c.name: dict(c.ip_addresses) for c in rt.list_containers()} == ips   # the same addresses
        assert resolving(rt) == names       # its extra hosts and DNS settings too (the start made them again)
    finally:
        rt.close()


def test_a_network_no_container_uses_gets_its_bridge_and_rules_back_after_a_reboot(
        host: Host, tmp_path: Path) -> None:
    """A reboot takes every bridge and the nft table; the records keep the network. The next
    `reconcile` makes them again (as dockerd does for its networks at start), not only those a
    restarted container needs: a network is never reported there while the host lacks it."""
    import subprocess

    from reconciler.runtime.native.network import ipam

    write(tmp_path / "m", "net.yaml", f"""
        apiVersion: reconciler/v1
        kind: Network
        metadata: {{name: spare}}
        spec: {{subnet: {host.subnet}}}
        """)
    m = str(tmp_path / "m")
    assert host.cli("apply", m) == 0
    [net] = ipam.IPAM(host.config.db()).networks()
    bridge = Path("/sys/class/net") / net.bridge

    def table() -> bool:
        return subprocess.run(["nft", "list", "table", "ip", host.config.name_prefix],
                              capture_output=True, check=False).returncode == 0

    assert bridge.exists()
    assert table()

    reboot(host.config)
    assert not bridge.exists()
    assert not table()

    assert host.cli("apply", m) == 0
    assert bridge.exists()
    assert table()
