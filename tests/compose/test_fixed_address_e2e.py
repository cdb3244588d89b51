"""Compose's `ipv4_address` for real on the native engine (root, a real registry, runc + conmon).

Two services on a network with an `ipam` subnet (the test engine's own /24) get exactly the
addresses the compose file names, seen on eth0 inside each container, and one reaches the other
by that address. One engine per test (tests/helpers/host.py); teardown removes everything and
fails the test if anything is left.
"""

from __future__ import annotations

import ipaddress
import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]

COMPOSE = """
    name: fixed
    services:
      web:
        image: {image}
        command: sh -c 'mkdir -p /srv && echo {answer} > /srv/index.html && exec httpd -f -p 8000 -h /srv'
        stop_grace_period: 1s
        networks:
          back:
            ipv4_address: {web}
      client:
        image: {image}
        command: ["sleep", "3600"]
        stop_grace_period: 1s
        networks:
          back:
            ipv4_address: {client}
    networks:
      back:
        ipam:
          config:
            - subnet: {subnet}
    """


def addresses(host: Host) -> tuple[str, str, str]:
    """The test's own subnet and two addresses well inside it (not the first ones the engine hands out)."""
    subnet = ipaddress.IPv4Network(host.subnet)
    return str(subnet), str(subnet.network_address + 77), str(subnet.network_address + 123)


def eth0_address(host: Host, container: str) -> str:
    rt = host.runtime()
    try:
        res = rt.exec(container, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
        assert res.exit_code == 0, res.stderr
        return res.stdout.decode().split(" inet ")[1].split("/")[0]
    finally:
        rt.close()


def fetch(host: Host, container: str, url: str, expect: str, timeout: float = 15.0) -> None:
    rt = host.runtime()
    try:
        deadline = time.monotonic() + timeout
        while True:
            res = rt.exec(container, ["timeout", "3", "wget", "-qO-", url])
            if (res.exit_code, res.stdout.decode().strip()) == (0, expect):
                return
            assert time.monotonic() < deadline, f"{container} got {res.exit_code} {res.stdout!r} {res.stderr!r}"
            time.sleep(0.2)
    finally:
        rt.close()


def test_services_get_the_fixed_addresses_the_compose_file_names(
    tmp_path: Path, host: Host, busybox_image: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE"):
        monkeypatch.delenv(var, raising=False)
    subnet, web, client = addresses(host)
    project = tmp_path / "fixed"
    project.mkdir()
    compose = project / "compose.yaml"
    compose.write_text(textwrap.dedent(COMPOSE.format(image=busybox_image, answer="first", subnet=subnet,
                                                      web=web, client=client)))

    assert host.cli("apply", str(project)) == 0
    assert eth0_address(host, "fixed-web-1") == web
    assert eth0_address(host, "fixed-client-1") == client
    fetch(host, "fixed-client-1", f"http://{web}:8000/", "first")
    assert host.cli("diff", str(project)) == 0

    # another address is a spec change: web is replaced and answers on the new one
    moved = str(ipaddress.IPv4Address(web) + 1)
    ids = host.ids()
    compose.write_text(textwrap.dedent(COMPOSE.format(image=busybox_image, answer="first", subnet=subnet,
                                                      web=moved, client=client)))
    assert host.cli("apply", str(project)) == 0
    after = host.ids()
    assert after["fixed-web-1"] != ids["fixed-web-1"]
    assert after["fixed-client-1"] == ids["fixed-client-1"]
    assert eth0_address(host, "fixed-web-1") == moved
    fetch(host, "fixed-client-1", f"http://{moved}:8000/", "first")


def test_an_address_outside_the_subnet_is_refused_at_load_naming_the_line(
    tmp_path: Path, host: Host, busybox_image: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE"):
        monkeypatch.delenv(var, raising=False)
    subnet, web, _ = addresses(host)
    outside = str(ipaddress.IPv4Network(subnet).broadcast_address + 5)
    project = tmp_path / "fixed"
    project.mkdir()
    text = textwrap.dedent(COMPOSE.format(image=busybox_image, answer="x", subnet=subnet, web=web, client=outside))
    (project / "compose.yaml").write_text(text)
    line = [s.strip() for s in text.splitlines()].index(f"ipv4_address: {outside}") + 1

    assert host.cli("apply", str(project)) != 0
    err = capsys.readouterr().err
    assert f"compose.yaml:{line}:" in err
    assert f"services.client.networks.back.ipv4_address: {outside} is outside the subnet {subnet}" in err
    assert host.ids() == {}
