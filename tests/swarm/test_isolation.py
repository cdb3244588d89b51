"""The tests' swarm runs where it cannot touch the host's network (conftest.py)."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.swarm.conftest import SwarmDaemon, lost_links

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.root, pytest.mark.xdist_group("swarm")]


def test_the_swarm_dockerd_runs_in_a_network_namespace_of_its_own(swarm_daemon: SwarmDaemon) -> None:
    assert swarm_daemon.netns_of() != os.readlink("/proc/self/ns/net")
    # its address is its namespace's, not one of the host's, and it is the manager's
    host_addrs = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True,
                                check=True).stdout
    assert f" {swarm_daemon.address}/" not in host_addrs
    node = swarm_daemon.docker("info", "--format", "{{.Swarm.NodeAddr}}").stdout.strip()
    assert node == swarm_daemon.address


def test_the_guard_names_a_lost_host_link_and_not_a_tests_transient_one() -> None:
    before = {"lo", "eth0", "docker0", "rtabc-stop", "br-0123456789ab", "veth1234567", "bcf0av11e32caff"}
    assert lost_links(before, {"lo", "eth0"}) == ["docker0"]
    assert lost_links(before, before) == []
