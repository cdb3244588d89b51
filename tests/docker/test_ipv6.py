"""Dual-stack networks on the Docker backend (#18): EnableIPv6 and the IPAM v6 config."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.runtime import base, errors
from reconciler.runtime.docker import DockerRuntime
from tests.docker.conftest import Scope
from tests.helpers import subnets

pytestmark = [pytest.mark.docker]

FORWARDING6 = Path("/proc/sys/net/ipv6/conf/all/forwarding")


@pytest.fixture
def forwarding6() -> Iterator[None]:
    """dockerd turns IPv6 forwarding on for an IPv6 network; the host gets its value back."""
    before = FORWARDING6.read_text()
    try:
        yield
    finally:
        FORWARDING6.write_text(before)


def _inspect(name: str) -> dict[str, object]:
    out = subprocess.run(["docker", "network", "inspect", name], capture_output=True, text=True, check=True).stdout
    data: dict[str, object] = json.loads(out)[0]
    return data


@pytest.mark.usefixtures("forwarding6")
def test_a_dual_stack_network_shows_its_v6_subnet_in_inspect(docker: DockerRuntime, scope: Scope) -> None:
    block6 = subnets.lease_block6()
    subnet6 = str(next(block6.subnets(new_prefix=64)))
    name = scope.name("networks", "dual")
    cfg = base.NetworkConfig(name, subnet=scope.subnet(), internal=True, labels=scope.labels,
                             ipv6=True, ipv6_subnet=subnet6)
    state = docker.ensure_network(cfg)
    assert state.ipv6_subnet == subnet6
    assert docker.ensure_network(cfg) == state                       # idempotent
    seen = _inspect(name)
    assert seen["EnableIPv6"] is True
    assert subnet6 in [c["Subnet"] for c in seen["IPAM"]["Config"]]  # type: ignore[index]
    with pytest.raises(errors.Conflict):                             # an IPv4-only twin is not this one
        docker.ensure_network(base.NetworkConfig(name, subnet=cfg.subnet, internal=True, labels=scope.labels))

    pooled = scope.name("networks", "pooled")
    got = docker.ensure_network(base.NetworkConfig(pooled, subnet=scope.subnet(), internal=True,
                                                   labels=scope.labels, ipv6=True))
    net6 = ipaddress.IPv6Network(got.ipv6_subnet)
    assert net6.prefixlen == 64
    assert net6.subnet_of(ipaddress.IPv6Network("fd00::/8"))
    subnets.release6(block6)
