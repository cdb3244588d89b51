"""The native engine's real containers (runc + conmon) on NetworkManager's networks."""

from __future__ import annotations

import urllib.request

import pytest

from reconciler.runtime import base
from reconciler.runtime.native.backend import NativeRuntime
from tests.helpers.ports import publish_port
from tests.native.network.conftest import IMAGE, Harness

pytestmark = [pytest.mark.root]

def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def test_containers_serve_by_name_and_on_a_published_port(harness: Harness, engine: NativeRuntime) -> None:
    engine.ensure_network(base.NetworkConfig(name="app"))
    port = publish_port()
    web = engine.create_container(base.ContainerConfig(
        name="web", image=IMAGE, command=("httpd", "-f", "-p", "80", "-h", "/etc"), networks=("app",),
        ports=(base.PortMapping(container_port=80, host_port=port, host_ip="127.0.0.1"),),
    ))
    engine.start_container(web)
    client = engine.create_container(base.ContainerConfig(
        name="client", image=IMAGE, command=("sleep", "1000"), networks=("app",),
    ))
    engine.start_container(client)

    assert "root:x:0:0" in _get(f"http://127.0.0.1:{port}/passwd")
    hosts = engine.exec(client, ["cat", "/etc/hosts"])
    ip = engine.inspect_container(web).ip_addresses["app"]
    assert f"{ip}\tweb" in hosts.stdout.decode()
    by_name = engine.exec(client, ["timeout", "5", "wget", "-q", "-O", "-", "http://web/passwd"])
    assert b"root:x:0:0" in by_name.stdout, by_name.stderr

    engine.remove_container(web, force=True)
    assert "web" not in engine.exec(client, ["cat", "/etc/hosts"]).stdout.decode()


def test_containers_on_a_dual_stack_network_talk_over_ipv6_and_serve_on_ipv6_loopback(
    harness: Harness, engine: NativeRuntime,
) -> None:
    engine.ensure_network(base.NetworkConfig(name="dual", ipv6=True, ipv6_subnet=harness.subnet6(3)))
    port = publish_port()
    web = engine.create_container(base.ContainerConfig(
        name="web", image=IMAGE, command=("httpd", "-f", "-p", "[::]:80", "-h", "/etc"), networks=("dual",),
        ports=(base.PortMapping(container_port=80, host_port=port, host_ip="::1"),),
    ))
    engine.start_container(web)
    client = engine.create_container(base.ContainerConfig(
        name="client", image=IMAGE, command=("sleep", "1000"), networks=("dual",),
    ))
    engine.start_container(client)

    assert "root:x:0:0" in _get(f"http://[::1]:{port}/passwd")
    hosts = engine.exec(client, ["cat", "/etc/hosts"]).stdout.decode()
    web6 = next(line.split("\t")[0] for line in hosts.splitlines() if line.endswith("\tweb") and ":" in line)
    assert web6.startswith(harness.subnet6(3).split("::")[0])
    assert engine.inspect_container(web).ip6_addresses == {"dual": web6}
    # by name over IPv6: busybox's ping6 resolves the AAAA answer from the hosts file
    ping = engine.exec(client, ["busybox", "ping6", "-c", "1", "-W", "3", "web"])
    assert ping.exit_code == 0, ping.stdout + ping.stderr
    assert web6.encode() in ping.stdout
    by_name = engine.exec(client, ["timeout", "5", "wget", "-q", "-O", "-", f"http://[{web6}]/passwd"])
    assert b"root:x:0:0" in by_name.stdout, by_name.stderr

    engine.remove_container(web, force=True)
    with pytest.raises(OSError):
        _get(f"http://[::1]:{port}/passwd")
