"""Compose ports without a host port (`"8080"`) for real on the native engine (root, a real registry).

The engine chooses a free host port from the ephemeral range, `reconcile ps` shows it and
127.0.0.1:THAT_PORT reaches the container's server; a second pass changes nothing and the port
stays, also over a restart and a reboot; two replicas get two ports; removing a service removes its DNAT rules. One engine per
test (tests/helpers/host.py); teardown removes everything and fails the test if anything is left.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.host import Host, reboot

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]

SERVE = "mkdir -p /srv && echo {answer} > /srv/index.html && exec httpd -f -p {port} -h /srv"

COMPOSE = """
    name: rand
    services:
      web:
        image: {image}
        command: ["sh", "-c", "{web}"]
        ports: ["8080"]
        stop_grace_period: 1s
        restart: always
    {api}"""

API = """
      api:
        image: {image}
        command: ["sh", "-c", "{api}"]
        ports: ["127.0.0.1::8000"]
        deploy: {{replicas: 2}}
        stop_grace_period: 1s
        restart: always
    """


def write(project: Path, image: str, *, with_api: bool) -> None:
    api = API.format(image=image, api=SERVE.format(answer="api-$$HOSTNAME", port=8000)) if with_api else ""
    project.joinpath("compose.yaml").write_text(textwrap.dedent(
        COMPOSE.format(image=image, web=SERVE.format(answer="web", port=8080), api=api)))


def published(host: Host, capsys: pytest.CaptureFixture[str]) -> dict[str, list[tuple[str, int, str]]]:
    """Container name -> (host address, host port, container port/protocol) as `reconcile ps` shows them."""
    capsys.readouterr()
    assert host.cli("ps", "--output", "json") == 0
    rows = json.loads(capsys.readouterr().out)
    return {r["name"]: [(m[1], int(m[2]), m[3]) for m in re.finditer(r"([\d.]+):(\d+)->(\d+/\w+)", r["ports"])]
            for r in rows}


def answer(port: int, expect: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    seen: str | None = None
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as resp:
                seen = resp.read().decode().strip()
        except OSError as exc:
            seen = str(exc)
        if seen == expect:
            return
        assert time.monotonic() < deadline, f"127.0.0.1:{port} answered {seen!r}, not {expect!r}"
        time.sleep(0.2)


def dnat_ports(host: Host) -> set[int]:
    """The host ports our nft table redirects (none when the table is gone)."""
    res = subprocess.run(["nft", "list", "table", "ip", host.config.name_prefix],
                         capture_output=True, text=True, check=False)
    return {int(p) for p in re.findall(r"dport (\d+) dnat to", res.stdout)} if res.returncode == 0 else set()


def test_ports_without_a_host_port_get_one_each_keep_it_and_release_it(
    tmp_path: Path, host: Host, busybox_image: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for var in ("COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE"):
        monkeypatch.delenv(var, raising=False)
    project = tmp_path / "rand"
    project.mkdir()
    write(project, busybox_image, with_api=True)
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())

    assert host.cli("apply", str(project)) == 0
    ports = published(host, capsys)
    assert sorted(ports) == ["rand-api-1", "rand-api-2", "rand-web-1"]
    [(web_ip, web_port, web_target)] = ports["rand-web-1"]
    assert (web_ip, web_target) == ("0.0.0.0", "8080/tcp")
    api_ports = [ports[f"rand-api-{n}"][0] for n in (1, 2)]
    assert [(ip, target) for ip, _, target in api_ports] == [("127.0.0.1", "8000/tcp")] * 2
    chosen = [web_port, *(p for _, p, _ in api_ports)]
    assert len(set(chosen)) == 3, chosen                             # each replica its own port
    assert all(low <= p <= high for p in chosen), (chosen, low, high)  # from the ephemeral range
    answer(web_port, "web")
    ids = host.ids()
    for n, (_, port, _) in enumerate(api_ports, start=1):
        answer(port, f"api-{ids[f'rand-api-{n}'][:12]}")          # its own replica (hostname: the id)
    assert dnat_ports(host) == set(chosen)

    # the chosen port is observed state: nothing to do, nothing replaced, no port moved
    assert host.cli("diff", str(project)) == 0
    assert host.cli("apply", str(project)) == 0
    assert host.ids() == ids
    assert published(host, capsys) == ports

    # a restart keeps the port
    rt = host.runtime()
    try:
        rt.stop_container("rand-web-1", timeout=2)
        rt.start_container("rand-web-1")
        inspected = rt.inspect_container("rand-web-1")
    finally:
        rt.close()
    assert [(p.host_port, p.container_port) for p in inspected.ports] == [(web_port, 8080)]
    answer(web_port, "web")

    # so does a reboot of the machine: the next pass brings every container back on its port
    reboot(host.config)
    assert host.cli("apply", str(project)) == 0
    assert published(host, capsys) == ports
    answer(web_port, "web")

    # removing the replicas releases their ports: no rule of ours redirects them any more
    write(project, busybox_image, with_api=False)
    assert host.cli("apply", str(project)) == 0
    assert sorted(published(host, capsys)) == ["rand-web-1"]
    assert dnat_ports(host) == {web_port}
