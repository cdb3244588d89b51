"""Containers on a bridge network: the container engine joins the netns the network manager
made and binds its /etc/hosts and /etc/resolv.conf; removal detaches."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from reconciler.runtime import base
from reconciler.runtime.native.backend import NativeRuntime
from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.registry]


def test_container_on_a_bridge_network(host: Host, busybox_image: str) -> None:
    rt = host.runtime()
    try:
        rt.pull_image(busybox_image)
        rt.ensure_network(base.NetworkConfig(name="front", subnet=host.subnet))
        server = rt.create_container(base.ContainerConfig(
            name="srv", image=busybox_image, networks=("front",),
            command=("sh", "-c", "echo hello > /tmp/index.html; httpd -f -p 8080 -h /tmp"),
        ))
        rt.start_container(server)
        ip = rt.inspect_container(server).ip_addresses["front"]
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(host.subnet)
        client = rt.create_container(base.ContainerConfig(
            name="cli", image=busybox_image, networks=("front",),
            command=("sh", "-c", "grep -w srv /etc/hosts >/dev/null && echo named; "
                     "for i in 1 2 3 4 5; do timeout 3 wget -qO- http://srv:8080/index.html && break; sleep 0.5; done"),
        ))
        rt.start_container(client)
        assert rt.wait_container(client, timeout=60) == 0
        assert [ln.data for ln in rt.logs(client)] == [b"named", b"hello"]
        doc = rt.inspect_document(server)
        assert doc["NetworkSettings"]["Networks"]["front"]["IPAddress"] == ip
        netns = Path(doc["NetworkSettings"]["SandboxKey"])
        assert netns.exists()
        NativeRuntime(host.config).remove_container(server, force=True)    # an engine without networking
        assert not netns.exists()
    finally:
        rt.close()
