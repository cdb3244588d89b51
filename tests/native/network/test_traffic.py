"""Traffic through native networks, with dockerd running: names, isolation, egress, ports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.runtime import base
from tests.helpers.ports import publish_port
from tests.native.network.conftest import Harness

pytestmark = [pytest.mark.root]


def _port() -> int:
    return publish_port()


def test_two_containers_talk_by_name_and_alias(harness: Harness) -> None:
    m = harness.manager
    m.ensure_network(base.NetworkConfig(name="front"))
    a = m.attach("ctr-a", name="web", hostname="web", networks=["front"])
    b = m.attach("ctr-b", name="db", hostname="db", networks=["front"], aliases=["database"])
    harness.serve(b.netns_path, "serve-tcp", "5432", "db-server")

    by_name = harness.probe(a.netns_path, "tcp", "db", "5432", hosts=a.hosts_path)
    assert by_name.returncode == 0, by_name.stderr
    assert by_name.stdout.startswith(f"db-server peer={a.ip_addresses['front']}")
    by_alias = harness.probe(a.netns_path, "tcp", "database", "5432", hosts=a.hosts_path)
    assert by_alias.returncode == 0, by_alias.stderr

    # changes propagate into the same file (bind mounts keep seeing it)
    inode = os.stat(a.hosts_path).st_ino
    c = m.attach("ctr-c", name="cache", hostname="cache", networks=["front"])
    assert f"{c.ip_addresses['front']}\tcache" in a.hosts_path.read_text()
    m.detach("ctr-b")
    assert "database" not in a.hosts_path.read_text()
    assert os.stat(a.hosts_path).st_ino == inode
    gone = harness.probe(a.netns_path, "tcp", "db", "5432", hosts=a.hosts_path)
    assert gone.returncode == 1


def test_different_networks_cannot_talk(harness: Harness) -> None:
    m = harness.manager
    m.ensure_network(base.NetworkConfig(name="red"))
    m.ensure_network(base.NetworkConfig(name="blue"))
    red = m.attach("ctr-red", name="red1", hostname="red1", networks=["red"])
    blue = m.attach("ctr-blue", name="blue1", hostname="blue1", networks=["blue"])
    harness.serve(blue.netns_path, "serve-tcp", "8000", "blue")
    assert "blue1" not in red.hosts_path.read_text()

    # the host reaches both, the red container cannot reach the blue one
    assert harness.probe(None, "tcp", blue.ip_addresses["blue"], "8000").returncode == 0
    cross = harness.probe(red.netns_path, "tcp", blue.ip_addresses["blue"], "8000")
    assert cross.returncode == 1


def test_networks_of_two_engines_meet_only_through_published_ports(harness: Harness, tmp_path: Path) -> None:
    """Each engine (name prefix) isolated only its own networks from each other, and its
    DOCKER-USER accept let all that leaves its bridges go: a container of one engine reached
    the unpublished ports of another engine's containers. Now an engine's bridge takes from
    other interfaces only replies and what is DNAT'ed to a published port, whoever sent it."""
    (tmp_path / "other").mkdir()
    other = Harness(tmp_path / "other")
    try:
        harness.manager.ensure_network(base.NetworkConfig(name="mine"))
        other.manager.ensure_network(base.NetworkConfig(name="theirs"))
        port = _port()
        mine = harness.manager.attach("ctr-mine", name="mine1", hostname="mine1", networks=["mine"],
                                      ports=[base.PortMapping(container_port=80, host_port=port)])
        theirs = other.manager.attach("ctr-theirs", name="theirs1", hostname="theirs1", networks=["theirs"])
        harness.serve(mine.netns_path, "serve-tcp", "80", "published")
        harness.serve(mine.netns_path, "serve-tcp", "7000", "unpublished")
        gateway = other.manager.list_networks()[0].gateway
        address = mine.ip_addresses["mine"]

        assert harness.probe(theirs.netns_path, "tcp", address, "7000").returncode == 1
        assert harness.probe(theirs.netns_path, "tcp", address, "80").returncode == 1
        published = harness.probe(theirs.netns_path, "tcp", gateway, str(port))
        assert published.stdout.startswith("published"), published.stderr
        # and the other way: the other engine's container is as far
        other.serve(theirs.netns_path, "serve-tcp", "7000", "theirs")
        assert harness.probe(mine.netns_path, "tcp", theirs.ip_addresses["theirs"], "7000").returncode == 1
    finally:
        try:
            other.cleanup()
        finally:
            left = other.leftovers()
        assert left == [], f"the test left host objects behind: {left}"


def test_egress_is_masqueraded_and_internal_networks_have_none(harness: Harness) -> None:
    world = harness.outside(0)
    harness.serve(world.netns, "serve-tcp", "8080", "world")
    m = harness.manager
    m.ensure_network(base.NetworkConfig(name="out"))
    m.ensure_network(base.NetworkConfig(name="sealed", internal=True))
    out = m.attach("ctr-out", name="out1", hostname="out1", networks=["out"])
    sealed = m.attach("ctr-sealed", name="sealed1", hostname="sealed1", networks=["sealed"])

    reply = harness.probe(out.netns_path, "tcp", world.ip, "8080")
    assert reply.returncode == 0, reply.stderr
    # the world sees the host's address, not the container's: NAT
    assert reply.stdout.strip() == f"world peer={world.host_ip}"

    blocked = harness.probe(sealed.netns_path, "tcp", world.ip, "8080")
    assert blocked.returncode == 1


def test_published_port_on_localhost_outside_and_hairpin(harness: Harness) -> None:
    client = harness.outside(1)
    m = harness.manager
    m.ensure_network(base.NetworkConfig(name="pub"))
    port = _port()
    web = m.attach("ctr-web", name="web", hostname="web", networks=["pub"],
                   ports=[base.PortMapping(container_port=80, host_port=port)])
    other = m.attach("ctr-other", name="other", hostname="other", networks=["pub"])
    harness.serve(web.netns_path, "serve-tcp", "80", "web")
    gateway = m.list_networks()[0].gateway

    local = harness.probe(None, "tcp", "127.0.0.1", str(port))
    assert local.returncode == 0, local.stderr
    assert local.stdout.startswith("web peer=")
    from_outside = harness.probe(client.netns, "tcp", client.host_ip, str(port))
    assert from_outside.returncode == 0, from_outside.stderr
    # hairpin: the container itself, and a neighbour, through the host port
    itself = harness.probe(web.netns_path, "tcp", gateway, str(port))
    assert itself.returncode == 0, itself.stderr
    neighbour = harness.probe(other.netns_path, "tcp", gateway, str(port))
    assert neighbour.returncode == 0, neighbour.stderr

    m.detach("ctr-web")
    assert harness.probe(None, "tcp", "127.0.0.1", str(port)).returncode == 1


def test_udp_port_works_after_reattach(harness: Harness) -> None:
    client = harness.outside(0)
    m = harness.manager
    m.ensure_network(base.NetworkConfig(name="udp"))
    port = _port()
    mapping = [base.PortMapping(container_port=53, host_port=port, protocol="udp")]
    first = m.attach("ctr-dns", name="dns", hostname="dns", networks=["udp"], ports=mapping)
    server = harness.serve(first.netns_path, "serve-udp", "53", "dns-1")
    sport = str(_port())
    one = harness.probe(client.netns, "udp", client.host_ip, str(port), sport)
    assert one.stdout.startswith("dns-1"), one.stderr

    # "restart": a new namespace and (round robin) a new address behind the same host port
    harness.stop(server)
    m.detach("ctr-dns")
    second = m.attach("ctr-dns", name="dns", hostname="dns", networks=["udp"], ports=mapping)
    assert second.ip_addresses != first.ip_addresses
    harness.serve(second.netns_path, "serve-udp", "53", "dns-2")
    two = harness.probe(client.netns, "udp", client.host_ip, str(port), sport)
    assert two.stdout.startswith("dns-2"), two.stderr
