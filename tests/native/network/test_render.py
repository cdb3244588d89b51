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
    assert "type nat hook output priority -100" in text        # nft 1.0.6 refuses dstnat here
