"""Compose's per-network keys for real on the native engine (root, a real registry, runc + conmon):
a service's `mac_address` (on its main network: the first by `priority`), `link_local_ips` and
`gw_priority`, applied with `reconcile apply`, seen inside the container (busybox `ip`); a changed
`gw_priority` replaces the container and moves its default route. One engine per test
(tests/helpers/host.py: its own root, run dir, prefix and subnet pool); teardown removes everything
and fails the test if anything is left."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]

MAC = "02:5d:00:00:00:01"
COMPOSE = """
    name: macs
    services:
      web:
        image: {image}
        command: ["sleep", "3600"]
        stop_grace_period: 1s
        mac_address: '{mac}'
        networks:
          front: {{gw_priority: {front}}}
          back: {{priority: 5, link_local_ips: [169.254.20.1, 'fe80::20']}}
    networks:
      front: {{}}
      back: {{}}
    """


def inside(host: Host, container: str, *argv: str) -> str:
    rt = host.runtime()
    try:
        res = rt.exec(container, list(argv))
        assert res.exit_code == 0, res.stderr
        return res.stdout.decode()
    finally:
        rt.close()


def gateways(host: Host) -> dict[str, str]:
    rt = host.runtime()
    try:
        return {n.name: n.gateway for n in rt.list_networks()}
    finally:
        rt.close()


def test_a_services_network_keys_reach_its_interfaces_and_routes(
    tmp_path: Path, host: Host, busybox_image: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE"):
        monkeypatch.delenv(var, raising=False)
    project = tmp_path / "macs"
    project.mkdir()
    compose = project / "compose.yaml"
    compose.write_text(textwrap.dedent(COMPOSE.format(image=busybox_image, mac=MAC, front=0)))

    assert host.cli("apply", str(project)) == 0
    # back has the higher priority: eth0, the main network, which the service-level MAC is for
    assert f"link/ether {MAC}" in inside(host, "macs-web-1", "ip", "link", "show", "eth0")
    eth0 = inside(host, "macs-web-1", "ip", "addr", "show", "eth0")
    assert "inet 169.254.20.1/16" in eth0
    assert "inet6 fe80::20/64" in eth0
    gw = gateways(host)
    assert f"default via {gw['macs_back']} dev eth0" in inside(host, "macs-web-1", "ip", "route")
    assert host.cli("diff", str(project)) == 0

    # front's gateway priority above back's: the container is replaced, its default route through front
    ids = host.ids()
    compose.write_text(textwrap.dedent(COMPOSE.format(image=busybox_image, mac=MAC, front=10)))
    assert host.cli("apply", str(project)) == 0
    assert host.ids()["macs-web-1"] != ids["macs-web-1"]
    assert f"default via {gw['macs_front']} dev eth1" in inside(host, "macs-web-1", "ip", "route")
    assert f"link/ether {MAC}" in inside(host, "macs-web-1", "ip", "link", "show", "eth0")
    assert host.cli("diff", str(project)) == 0
