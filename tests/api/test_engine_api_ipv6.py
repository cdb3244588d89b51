"""The native Engine API creates dual-stack networks (#18): `docker network create --ipv6`, and
`docker network connect` gives a running container its IPv6 address there."""

from __future__ import annotations

import ipaddress
import json
import shutil

import pytest

from tests.api.test_engine_api import docker, engine_api  # noqa: F401 - the fixture
from tests.helpers import subnets
from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")]


def test_docker_cli_creates_a_dual_stack_network(engine_api: str, host: Host) -> None:  # noqa: F811
    block6 = subnets.lease_block6()
    subnet6 = str(next(block6.subnets(new_prefix=64)))
    net = f"{host.config.name_prefix}d"
    docker(engine_api, "network", "create", "--ipv6", "--subnet", host.subnet, "--subnet", subnet6, "--internal", net)
    seen = json.loads(docker(engine_api, "network", "inspect", net).stdout)[0]
    assert seen["EnableIPv6"] is True
    assert [c["Subnet"] for c in seen["IPAM"]["Config"]] == [host.subnet, subnet6]
    docker(engine_api, "network", "rm", net)
    assert [n for n in subnets.routed6() if n.overlaps(block6)] == []
    subnets.release6(block6)


def test_docker_network_connect_of_a_running_container_gives_it_an_ipv6_address(
        engine_api: str, host: Host, busybox_image: str) -> None:  # noqa: F811
    block6 = subnets.lease_block6()
    subnet6 = str(next(block6.subnets(new_prefix=64)))
    net = f"{host.config.name_prefix}d"
    docker(engine_api, "network", "create", "--ipv6", "--subnet", host.subnet, "--subnet", subnet6, net)
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "run", "-d", "--name", "late", busybox_image, "sleep", "3600")   # on the default network
    docker(engine_api, "network", "connect", net, "late")
    address6 = docker(engine_api, "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{net}").GlobalIPv6Address}}}}',
                      "late").stdout.strip()
    assert ipaddress.IPv6Address(address6) in ipaddress.IPv6Network(subnet6)
    assert f"inet6 {address6}/64" in docker(engine_api, "exec", "late", "ip", "-6", "-o", "addr").stdout
    docker(engine_api, "network", "disconnect", net, "late")
    assert address6 not in docker(engine_api, "exec", "late", "ip", "-6", "-o", "addr").stdout
    docker(engine_api, "rm", "-f", "late")
    docker(engine_api, "network", "rm", net)
    assert [n for n in subnets.routed6() if n.overlaps(block6)] == []
    subnets.release6(block6)
