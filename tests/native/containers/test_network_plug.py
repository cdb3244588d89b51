"""Containers on a bridge network: the container engine joins the netns the network manager
made and binds its /etc/hosts and /etc/resolv.conf; removal detaches."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from reconciler.runtime import base
from reconciler.runtime.native import network
from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.config import NativeConfig
from tests.runtime.conftest import cleanup, leftovers, new_prefix

pytestmark = [pytest.mark.root, pytest.mark.registry]


def test_container_on_a_bridge_network(tmp_path: Path, busybox_image: str) -> None:
    a, b = 200 + secrets.randbelow(55), 4 * secrets.randbelow(64)
    config = NativeConfig(root=tmp_path / "root", run_dir=tmp_path / "run", name_prefix=new_prefix(),
                          subnet_pool=f"10.{a}.{b}.0/23")
    nets = network.NetworkManager(config)
    rt = NativeRuntime(config, network=nets)
    try:
        rt.pull_image(busybox_image)
        rt.ensure_network(base.NetworkConfig(name="front", subnet=f"10.{a}.{b}.0/24"))
        server = rt.create_container(base.ContainerConfig(
            name="srv", image=busybox_image, networks=("front",),
            command=("sh", "-c", "echo hello > /tmp/index.html; httpd -f -p 8080 -h /tmp"),
        ))
        rt.start_container(server)
        ip = rt.inspect_container(server).ip_addresses["front"]
        assert ip.startswith(f"10.{a}.{b}.")
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
        NativeRuntime(config).remove_container(server, force=True)    # an engine without networking
        assert not netns.exists()
    finally:
        cleanup(rt)
        for n in rt.list_networks():
            rt.remove_network(n.name)
        nets.recover([])
        left = leftovers(config)
        rt.close()
        assert left == [], left
