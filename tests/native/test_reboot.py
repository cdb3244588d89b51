"""After a reboot: a fault of our own that does to one engine what a reboot does (every process
of its run dir killed, its mounts and namespaces gone, its bridges and nft table deleted, its
run dir emptied; the state root kept), then `ps` and `--once` (#13)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from reconciler.runtime.native import ipam
from tests.execution.helpers import write
from tests.helpers.host import Host, engine_processes

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]


def reboot(host: Host) -> None:
    """What a reboot does to this engine, and only to it."""
    pids = {pid for pid, _ in engine_processes(host.config.run_dir)}
    for procs in Path("/sys/fs/cgroup").glob(f"*/{host.config.name_prefix}/**/cgroup.procs"):
        pids |= {int(x) for x in procs.read_text().split()}    # the containers' own processes
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.2)
    mounted = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
               if line.split()[4].startswith((str(host.config.root), str(host.config.run_dir)))]
    for mp in sorted(mounted, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], check=False)
    bridges = [n.bridge for n in ipam.IPAM(host.config.db()).networks()]
    for br in bridges:
        subprocess.run(["ip", "link", "del", br], capture_output=True, check=False)
    subprocess.run(["nft", "delete", "table", "ip", host.config.name_prefix], capture_output=True, check=False)
    shutil.rmtree(host.config.run_dir)                     # a tmpfs on a real host
    # and the boot id changes: what the records name ran in the boot before
    rt = host.runtime()
    try:
        for rec in rt.containers.records():
            rt.containers.update(rec.id, lambda r: dataclasses.replace(r, boot_id="the-boot-before"))
    finally:
        rt.close()


def get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return str(r.read().decode().strip())
    except OSError:
        return None


def test_once_brings_back_a_served_app_with_its_network_port_and_volume_after_a_reboot(
        host: Host, busybox_image: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    port = 20000 + int.from_bytes(os.urandom(2), "big") % 20000
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
    finally:
        rt.close()

    reboot(host)

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
    finally:
        rt.close()
