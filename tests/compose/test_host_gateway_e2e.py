"""Compose's `extra_hosts: ["host.docker.internal:host-gateway"]` for real on the native engine
(root, a real registry, runc + conmon): the container's /etc/hosts names its first network's
gateway (the host's address on that bridge; compose orders a service's networks by name), and
the host answers there; a container of
network none, which has no gateway, is refused with a message that says so. One engine per test
(tests/helpers/host.py); teardown removes everything and fails the test if anything is left.
"""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]

COMPOSE = """
    name: gw
    services:
      app:
        image: {image}
        command: ["sleep", "3600"]
        stop_grace_period: 1s
        extra_hosts: ["host.docker.internal:host-gateway", "db.internal:192.0.2.7"]
        networks: [front, back]
    networks:
      front:
        ipam: {{config: [{{subnet: "{front}"}}]}}
      back:
        ipam: {{config: [{{subnet: "{back}"}}]}}
    """

ALONE = """
    name: gwnone
    services:
      app:
        image: {image}
        command: ["sleep", "3600"]
        network_mode: none
        extra_hosts: ["host.docker.internal:host-gateway"]
    """


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"from the host\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@contextlib.contextmanager
def server(address: str) -> Iterator[int]:
    """A real HTTP server on the host, on `address` (the test's bridge's); its port."""
    srv = http.server.ThreadingHTTPServer((address, 0), _Hello)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def test_host_gateway_is_the_first_networks_gateway(
    tmp_path: Path, host: Host, busybox_image: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE"):
        monkeypatch.delenv(var, raising=False)
    back = ipaddress.IPv4Network(host.subnet)             # back is the first network: compose orders them by name
    front = ipaddress.IPv4Network(f"{back.network_address + 256}/24")       # the pool's other /24
    project = tmp_path / "gw"
    project.mkdir()
    (project / "compose.yaml").write_text(textwrap.dedent(COMPOSE.format(image=busybox_image, front=front, back=back)))

    gateway = str(back.network_address + 1)
    assert host.cli("apply", str(project)) == 0
    rt = host.runtime()
    try:
        hosts = rt.exec("gw-app-1", ["cat", "/etc/hosts"]).stdout.decode().splitlines()
        assert f"{gateway}\thost.docker.internal" in hosts, "\n".join(hosts)
        assert "192.0.2.7\tdb.internal" in hosts
        with server(gateway) as port:        # the bridge has the address now
            got = rt.exec("gw-app-1", ["timeout", "5", "wget", "-qO-", f"http://host.docker.internal:{port}/"])
        assert (got.exit_code, got.stdout) == (0, b"from the host\n"), got.stderr
    finally:
        rt.close()


def test_host_gateway_without_a_network_is_refused_saying_why(
    tmp_path: Path, host: Host, busybox_image: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    for var in ("COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE"):
        monkeypatch.delenv(var, raising=False)
    project = tmp_path / "gwnone"
    project.mkdir()
    (project / "compose.yaml").write_text(textwrap.dedent(ALONE.format(image=busybox_image)))

    assert host.cli("apply", str(project)) != 0
    assert "host.docker.internal:host-gateway needs a network of the container's own" in capsys.readouterr().out
