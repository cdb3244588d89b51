"""Pure parts: hosts/resolv.conf text, the nft ruleset for given records, in-place writes."""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.runtime.native.network import dns, firewall, ipam


def test_hosts_lists_own_names_then_peers_once() -> None:
    text = dns.render_hosts(
        [dns.HostEntry("10.1.0.2", ("web", "web", "www"))],
        [dns.HostEntry("10.1.0.3", ("db", "database")), dns.HostEntry("10.1.0.3", ("db", "database"))],
    )
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    assert "10.1.0.2\tweb www" in lines
    assert lines.count("10.1.0.3\tdb database") == 1


def test_resolv_conf_drops_loopback_nameservers() -> None:
    host = "search example.org\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 10.0.0.2\noptions ndots:2\n"
    assert dns.render_resolv_conf(host) == "search example.org\nnameserver 10.0.0.2\noptions ndots:2\n"
    only_loopback = dns.render_resolv_conf("nameserver 127.0.0.53\n")
    assert "127.0.0.53" not in only_loopback
    assert "nameserver 8.8.8.8" in only_loopback


def test_resolv_conf_with_the_embedded_server_names_it_alone_and_it_forwards_to_the_others() -> None:
    host = "search example.org\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n"
    assert dns.render_resolv_conf(host, embedded=True) == (
        "search example.org\nnameserver 127.0.0.11\noptions ndots:0\n")
    # an ndots the container asks for stays, alone
    assert dns.render_resolv_conf(host, options=("ndots:2",), embedded=True) == (
        "search example.org\noptions ndots:2\nnameserver 127.0.0.11\n")
    assert dns.upstreams(host) == ["127.0.0.53", "10.0.0.2"]          # loopback too: asked from the host
    assert dns.upstreams(host, ("10.9.9.9",)) == ["10.9.9.9"]
    assert dns.upstreams("") == ["8.8.8.8", "8.8.4.4"]
    assert dns.embedded(["app"])
    assert not dns.embedded([dns.DEFAULT_NETWORK])
    assert not dns.embedded(["none"])


def test_write_in_place_keeps_the_inode(tmp_path: Path) -> None:
    f = tmp_path / "hosts"
    dns.write_in_place(f, "a long first version of the file\n")
    inode = os.stat(f).st_ino
    dns.write_in_place(f, "short\n")
    assert f.read_text() == "short\n"
    assert os.stat(f).st_ino == inode


def test_ruleset_masquerades_only_non_internal_and_publishes_ports() -> None:
    nets = [
        ipam.NetworkRecord("front", "1", "rcl-front", "10.9.0.0/24", "10.9.0.1", False, 1500),
        ipam.NetworkRecord("back", "2", "rcl-back", "10.9.1.0/24", "10.9.1.1", True, 1500),
    ]
    ports = [
        ipam.PortRecord("tcp", "0.0.0.0", 8080, "c" * 64, 80, "10.9.0.2", "front"),
        ipam.PortRecord("udp", "127.0.0.1", 5353, "d" * 64, 53, "10.9.0.3", "front"),
    ]
    text = firewall.Firewall("rcl").render(nets, ports)
    assert text.startswith("table ip rcl\ndelete table ip rcl\n")
    assert 'tcp dport 8080 dnat to 10.9.0.2:80 comment "cccccccccccc"' in text
    assert "ip daddr 127.0.0.1 udp dport 5353 dnat to 10.9.0.3:53" in text
    assert 'ip saddr 10.9.0.0/24 oifname != "rcl-front" masquerade' in text
    assert "ip saddr 10.9.1.0/24 oifname" not in text          # internal: no egress NAT
    assert 'iifname "rcl-back" oifname != "rcl-back" drop' in text
    # a bridge takes from other interfaces only replies and published ports: named as the output,
    # whatever sends (another engine's bridge, Docker's, Podman's)
    assert text.index("ct status dnat accept") < text.index('oifname "rcl-front" iifname != "rcl-front" drop')
    assert text.index("ct state established,related accept") < text.index('oifname "rcl-front" iifname')
    assert "type nat hook output priority -100" in text        # nft 1.0.6 refuses dstnat here


def test_a_networks_hosts_lines_made_once_give_each_container_the_file_render_hosts_gives() -> None:
    """NetworkHosts renders the peers' lines once for many containers' files: each file is what
    render_hosts makes of the container's own entries and the others' (aliases repeating a name,
    empty names, IPv6 beside IPv4, an extra host); where render_hosts would drop a name because an
    address repeats (an extra host at a peer's address, two peers at one address) it declines."""
    import random

    rnd = random.Random(21)
    for _ in range(300):
        n = rnd.randint(1, 8)
        entries: list[tuple[str, dns.HostEntry]] = []
        for i in range(n):
            names = tuple(rnd.choice([f"c{i}", f"c{i}", "shared", "", f"alias{rnd.randint(0, 3)}"])
                          for _ in range(rnd.randint(1, 3)))
            entries.append((f"id{i}", dns.HostEntry(f"10.0.0.{i + 2}", names)))
            if rnd.random() < 0.3:
                entries.append((f"id{i}", dns.HostEntry(f"fd00::{i + 2}", names)))
        if rnd.random() < 0.1 and n > 1:            # two peers at one address
            entries.append(("id1", dns.HostEntry("10.0.0.2", ("twin",))))
        block = dns.NetworkHosts(entries)
        for cid in {c for c, _ in entries}:
            own = [dns.HostEntry(e.address, (f"host-{cid}", *e.names)) for c, e in entries if c == cid]
            if rnd.random() < 0.3:
                own.append(dns.HostEntry(rnd.choice(["192.0.2.1", "10.0.0.2", "10.0.0.3"]),
                                         (rnd.choice(["extra", "shared", "c0", "c1"]),)))
            others = [e for c, e in entries if c != cid]
            expected = dns.render_hosts(own, others)
            got = block.render(cid, own)
            collide = {e.address for e in own} & {e.address for e in others} or \
                len({e.address for e in others}) != len(others)
            if collide:
                assert got is None or got == expected
            else:
                assert got == expected
