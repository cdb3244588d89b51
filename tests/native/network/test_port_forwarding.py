"""A container's published ports are forwarded while it runs, whoever starts or stops it: the
CLI opens the engine without its bridge networking (cli/engines.py), and its `start` once ran
a container with none of its ports where an agent had taken them at its stop (nothing noticed:
passes said converged), and its `stop` left them forwarded to a container that no longer ran.
An engine start (recovery) puts right what such a start or stop left."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from reconciler._dataclass import dataclasses
from reconciler.cli.main import main
from reconciler.runtime.native.containers import records
from reconciler.runtime.native.network.network import NetworkManager
from tests.helpers.host import Host
from tests.helpers.ports import publish_port

pytestmark = [pytest.mark.root, pytest.mark.registry]


def _web(host: Host, tmp_path: Path, image: str) -> tuple[Path, int]:
    port = publish_port()
    m = tmp_path / "m"
    m.mkdir()
    (m / "web.yaml").write_text(f"""
apiVersion: reconciler/v1
kind: Network
metadata: {{name: pnet}}
spec: {{subnet: {host.subnet}}}
---
apiVersion: reconciler/v1
kind: Container
metadata: {{name: web}}
spec:
  image: {image}
  command: [httpd, -f, -p, "80", -h, /etc]
  networks: [pnet]
  ports: ["127.0.0.1:{port}:80"]
  restart: always
""")
    return m, port


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/passwd", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def served(port: int, wait: float = 10) -> bool:
    """Whether the container serves on the host port (within `wait` seconds: httpd just started)."""
    deadline = time.monotonic() + wait
    while not answers(port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def rule(host: Host, port: int) -> bool:
    """Whether the engine's nft table has a DNAT rule for the host port."""
    out = subprocess.run(["nft", "list", "chain", "ip", host.config.name_prefix, "hostports"],
                         capture_output=True, text=True, check=True).stdout
    return f"dport {port} dnat to" in out


def ps_ports(host: Host, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    args = [a for a in host.cli_args() if a not in ("--runtime", "native")]
    assert main(["ps", "-a", "-o", "json", *args]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    return str(row["ports"])


def test_stop_and_start_by_the_cli_take_a_containers_ports_and_give_them_back(
        host: Host, busybox_image: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m, port = _web(host, tmp_path, busybox_image)
    assert host.cli("apply", str(m)) == 0
    assert served(port)
    assert rule(host, port)

    assert host.cli("stop", "web") == 0
    assert not rule(host, port)                         # as Docker: no rule for a container that does not run
    assert records.RecordStore(host.config).get("web").published == ()
    assert host.cli("start", "web") == 0
    assert served(port)
    assert rule(host, port)
    assert ps_ports(host, capsys) == f"127.0.0.1:{port}->80/tcp"


def test_an_engine_start_forwards_the_ports_of_a_running_container_left_without_them(
        host: Host, busybox_image: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What an earlier release's `reconcile start` left while an agent ran: the container runs,
    its ports are held but not forwarded, its record publishes none. The next engine start
    (here `--once`'s, nothing to plan) forwards them, and ps shows them."""
    m, port = _web(host, tmp_path, busybox_image)
    assert host.cli("apply", str(m)) == 0
    rec = records.RecordStore(host.config).get("web")
    NetworkManager(host.config).forward(rec.id, False)
    records.RecordStore(host.config).update(rec.id, lambda r: dataclasses.replace(r, published=()))
    assert not answers(port)
    assert ps_ports(host, capsys) == ""                 # what runs: no port

    assert host.cli("apply", str(m)) == 0
    assert served(port)
    assert ps_ports(host, capsys) == f"127.0.0.1:{port}->80/tcp"


def test_an_engine_start_takes_down_the_ports_a_stopped_container_kept_and_makes_a_lost_rule_again(
        host: Host, busybox_image: str, tmp_path: Path) -> None:
    """What an earlier release's `reconcile stop` left (its ports forwarded to a container that
    no longer runs) is taken down at the next engine start; a rule another program deleted
    (`nft flush chain`), while the records say forwarded, is made again."""
    m, port = _web(host, tmp_path, busybox_image)
    assert host.cli("apply", str(m)) == 0
    subprocess.run(["nft", "flush", "chain", "ip", host.config.name_prefix, "hostports"], check=True)
    assert not answers(port)
    assert host.cli("apply", str(m)) == 0
    assert served(port)

    rt = host.runtime()
    try:
        rt.stop_container("web")
        rec = rt.containers.get("web")
        rt.containers.network.forward(rec.id, True)         # as the old stop left it
    finally:
        rt.close()
    assert rule(host, port)
    rt = host.runtime()
    try:
        from reconciler.runtime.native.containers import recovery

        recovery.recover(rt)
        assert not rule(host, port)
    finally:
        rt.close()
