"""NetworkManager's ensure/verify/undo/recover behaviour on the real host."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from reconciler.runtime import base, errors
from reconciler.runtime.native.network import netlink, network
from tests.helpers.ports import publish_port
from tests.native.network.conftest import Harness

pytestmark = [pytest.mark.root]


def _port() -> int:
    return publish_port()


def _addresses(name: str) -> set[str]:
    with netlink.host() as h:
        link = h.link(name)
        assert link is not None
        return {f"{a.address}/{a.prefixlen}" for _, a in h.addresses(link.index)}


def test_names_fit_ifnamsiz_and_do_not_collide(harness: Harness) -> None:
    m = harness.manager
    assert m.bridge_name("db") == f"{harness.prefix}-db"
    long_a, long_b = m.bridge_name("a-rather-long-network-name"), m.bridge_name("a-rather-long-network-nam2")
    assert len(long_a) <= 15
    assert long_a != long_b
    assert long_a == m.bridge_name("a-rather-long-network-name")
    # compose's <project>_<name> networks get a hashed bridge name (no "." or "_" in interface names)
    assert m.bridge_name("a-b") == f"{harness.prefix}-a-b"
    assert m.bridge_name("a_b").startswith(f"{harness.prefix}_")
    assert len(m.bridge_name("a.b")) <= 15
    assert len(m.veth_name("c" * 64, "n")) <= 15
    with pytest.raises(errors.InvalidArgument):
        m.ensure_network(base.NetworkConfig(name="bad/name"))   # Docker allows [a-zA-Z0-9][a-zA-Z0-9_.-]*
    with pytest.raises(errors.InvalidArgument):
        m.ensure_network(base.NetworkConfig(name="host"))
    with pytest.raises(errors.InvalidArgument, match="host name"):
        m.attach("ctr-evil", name="evil", hostname="evil", networks=[], aliases=["x\n1.2.3.4 bank"])
    assert not (harness.config.run_dir / "netns" / "ctr-evil").exists()


def test_ensure_network_repairs_what_it_finds_and_refuses_changes(harness: Harness) -> None:
    m = harness.manager
    state = m.ensure_network(base.NetworkConfig(name="repair", subnet=harness.subnet(0), mtu=1400))
    assert state.gateway == f"10.{harness.a}.{harness.b}.1"
    assert _addresses(state.bridge) == {f"{state.gateway}/24"}
    with netlink.host() as h:
        link = h.link(state.bridge)
        assert link is not None
        assert link.mtu == 1400
        assert link.up
        # someone removes the gateway address and sets the bridge down and another MTU
        h.delete_address(link.index, netlink.Address(state.gateway, 24))
        h.add_address(link.index, netlink.Address("192.0.2.1", 24))
        h.set_link(link.index, state="down", mtu=1300)
    assert m.ensure_network(base.NetworkConfig(name="repair", subnet=harness.subnet(0), mtu=1400)) == state
    assert _addresses(state.bridge) == {f"{state.gateway}/24"}
    with netlink.host() as h:
        link = h.link(state.bridge)
        assert link is not None
        assert (link.mtu, link.up) == (1400, True)
        h.delete_link(state.bridge)
    assert m.ensure_network(base.NetworkConfig(name="repair", subnet=harness.subnet(0), mtu=1400)) == state
    assert _addresses(state.bridge) == {f"{state.gateway}/24"}

    with pytest.raises(errors.Conflict, match="different settings"):
        m.ensure_network(base.NetworkConfig(name="repair", subnet=harness.subnet(1)))
    with pytest.raises(errors.Conflict, match="different settings"):
        m.ensure_network(base.NetworkConfig(name="repair", internal=True))


def test_a_foreign_interface_with_the_bridge_name_is_refused_and_nothing_is_recorded(harness: Harness) -> None:
    m = harness.manager
    name = m.bridge_name("taken")
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", f"{harness.link_tag}d"], check=True)
    try:
        with pytest.raises(errors.Conflict, match="not a bridge"):
            m.ensure_network(base.NetworkConfig(name="taken"))
        assert m.list_networks() == []
    finally:
        subprocess.run(["ip", "link", "del", name], check=True)


def test_subnets_a_host_interface_uses_are_skipped_or_refused(harness: Harness) -> None:
    m = harness.manager
    veth, peer = f"{harness.link_tag}h", f"{harness.link_tag}i"      # the test's own, not the engine's
    used, free = harness.subnet(0), harness.subnet(1)                # the pool's two /24s
    subprocess.run(["ip", "link", "add", veth, "type", "veth", "peer", "name", peer], check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"10.{harness.a}.{harness.b}.77/24", "dev", veth], check=True)
        assert m.ensure_network(base.NetworkConfig(name="picked")).subnet == free      # the pool skips it
        m.remove_network("picked")
        with pytest.raises(errors.Conflict, match=re.escape(f"subnet {used} of network 'asked' overlaps {used} on "
                                                            f"host interface {veth}, which this engine did not make")):
            m.ensure_network(base.NetworkConfig(name="asked", subnet=used))
        assert m.list_networks() == []
        with netlink.host() as h:
            assert h.link(m.bridge_name("asked")) is None                # nothing was made for it

        # a route out of the interface (no address) counts too: the whole pool is taken now
        subprocess.run(["ip", "link", "set", veth, "up"], check=True)
        subprocess.run(["ip", "link", "set", peer, "up"], check=True)
        subprocess.run(["ip", "route", "add", free, "dev", veth], check=True)
        with pytest.raises(errors.Conflict, match="no free /24 left in the subnet pool"):
            m.ensure_network(base.NetworkConfig(name="picked"))
        with pytest.raises(errors.Conflict, match=re.escape(f"overlaps {free} on host interface {veth}")):
            m.ensure_network(base.NetworkConfig(name="asked", subnet=free))
        assert m.list_networks() == []
    finally:
        subprocess.run(["ip", "link", "del", veth], check=False)         # its address and route go with it


def test_the_engines_own_bridges_are_no_host_interfaces_to_it(harness: Harness) -> None:
    m = harness.manager
    state = m.ensure_network(base.NetworkConfig(name="own", subnet=harness.subnet(0)))
    with pytest.raises(errors.Conflict, match="of another network"):      # another network of its own: named so
        m.ensure_network(base.NetworkConfig(name="other", subnet=harness.subnet(0)))
    # a crash left the bridge (with the subnet's gateway) but not the record: the network's own
    # bridge, taken up again, not a foreign interface
    m._ipam.remove_network("own")
    again = m.ensure_network(base.NetworkConfig(name="own", subnet=harness.subnet(0)))
    assert (again.bridge, again.subnet, again.gateway) == (state.bridge, state.subnet, state.gateway)
    assert _addresses(state.bridge) == {f"{state.gateway}/24"}


def test_networks_from_the_pool_labels_selector_and_removal(harness: Harness) -> None:
    m = harness.manager
    one = m.ensure_network(base.NetworkConfig(name="one", labels={"reconciler.owner": "t"}))
    two = m.ensure_network(base.NetworkConfig(name="two"))
    assert one.subnet != two.subnet
    for s in (one.subnet, two.subnet):
        assert s.startswith(f"10.{harness.a}.")
    assert [n.name for n in m.list_networks({"reconciler.owner": "t"})] == ["one"]
    m.attach("ctr-1", name="c1", hostname="c1", networks=["one"])
    with pytest.raises(errors.Conflict, match="in use by 1 container"):
        m.remove_network("one")
    m.detach("ctr-1")
    m.remove_network("one")
    with pytest.raises(errors.NotFound):
        m.remove_network("one")
    with netlink.host() as h:
        assert h.link(one.bridge) is None


def test_default_network_static_addresses_and_multiple_networks(harness: Harness) -> None:
    m = harness.manager
    plain = m.attach("ctr-plain", name="plain", hostname="plain", networks=[])
    assert list(plain.ip_addresses) == ["default"]
    m.ensure_network(base.NetworkConfig(name="back", subnet=harness.subnet(1), internal=True))
    both = m.attach("ctr-both", name="both", hostname="both", networks=["default", "back"],
                    static_ips={"back": f"10.{harness.a}.{harness.b + 1}.50"})
    assert both.ip_addresses["back"] == f"10.{harness.a}.{harness.b + 1}.50"
    out = subprocess.run(["nsenter", f"--net={both.netns_path}", "ip", "-4", "-o", "addr"],
                         capture_output=True, text=True, check=True).stdout
    assert f"eth0    inet {both.ip_addresses['default']}/24" in " ".join(out.split("\n"))
    assert f"eth1    inet {both.ip_addresses['back']}/24" in " ".join(out.split("\n"))
    routes = subprocess.run(["nsenter", f"--net={both.netns_path}", "ip", "route"],
                            capture_output=True, text=True, check=True).stdout
    default_gw = m.list_networks()[[n.name for n in m.list_networks()].index("default")].gateway
    assert f"default via {default_gw} dev eth0" in routes
    with pytest.raises(errors.Conflict, match="already used"):
        m.attach("ctr-x", name="x", hostname="x", networks=["back"],
                 static_ips={"back": f"10.{harness.a}.{harness.b + 1}.50"})
    with pytest.raises(errors.InvalidArgument, match="not a usable address"):
        m.attach("ctr-x", name="x", hostname="x", networks=["back"], static_ips={"back": "10.0.0.9"})
    assert not (harness.config.run_dir / "netns" / "ctr-x").exists()
    # attach is idempotent for the same networks and repairs a lost interface
    with netlink.host() as h:
        h.delete_link(m.veth_name("ctr-both", "back"))
    again = m.attach("ctr-both", name="both", hostname="both", networks=["default", "back"])
    assert again == both
    with netlink.host() as h:
        assert h.link(m.veth_name("ctr-both", "back")) is not None
    with pytest.raises(errors.Conflict, match="detach it"):
        m.attach("ctr-both", name="both", hostname="both", networks=["back"])


def test_host_port_in_use_is_a_clear_error_and_leaves_nothing(harness: Harness) -> None:
    m = harness.manager
    m.ensure_network(base.NetworkConfig(name="ports"))
    port = _port()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen(1)
        with pytest.raises(errors.Conflict, match="in use by another program"):
            m.attach("ctr-p1", name="p1", hostname="p1", networks=["ports"], ports=[base.PortMapping(80, port)])
    assert not (harness.config.run_dir / "netns" / "ctr-p1").exists()
    with netlink.host() as h:
        assert h.link(m.veth_name("ctr-p1", "ports")) is None
    m.attach("ctr-p1", name="p1", hostname="p1", networks=["ports"], ports=[base.PortMapping(80, port)])
    with pytest.raises(errors.Conflict, match="already published by container 'p1'"):
        m.attach("ctr-p2", name="p2", hostname="p2", networks=["ports"],
                 ports=[base.PortMapping(81, port, host_ip="127.0.0.1")])
    with pytest.raises(errors.Conflict, match="already published"):
        m.check_ports([base.PortMapping(81, port)])
    m.check_ports([base.PortMapping(81, port, protocol="udp")])
    with pytest.raises(errors.InvalidArgument):
        m.check_ports([base.PortMapping(81, 70000)])


def test_recover_collects_what_a_crash_left(harness: Harness, tmp_path: Path) -> None:
    m = harness.manager
    m.ensure_network(base.NetworkConfig(name="crash"))
    port = _port()
    live = m.attach("ctr-live", name="live", hostname="live", networks=["crash"])
    dead = m.attach("ctr-dead", name="dead", hostname="dead", networks=["crash"],
                    ports=[base.PortMapping(80, port)])
    assert "dead" in live.hosts_path.read_text()
    # leaks no record knows: a veth and a bridge of our names, a netns file, an accept rule
    leak = m.veth_name("ctr-leak", "crash")
    with netlink.host() as h:
        subprocess.run(["ip", "link", "add", leak, "type", "veth", "peer", "name",
                        f"{harness.link_tag}peer"], check=True)
        h.add_bridge(f"{harness.prefix}-gone", mtu=1500, mac="02:00:00:00:00:01")
    netlink.create_netns(harness.config.run_dir / "netns" / "ctr-orphan")
    subprocess.run(["iptables", "-w", "-I", "FORWARD", "-i", f"{harness.prefix}-gone", "-m", "comment",
                    "--comment", "reconciler", "-j", "ACCEPT"], check=True)

    # a new process of the engine starts after the crash and knows only ctr-live is running
    fresh = network.NetworkManager(harness.make_config())
    report = fresh.recover(["ctr-live"])
    assert report.containers == ("ctr-dead",)
    assert set(report.links) >= {leak, f"{harness.prefix}-gone"}
    assert report.netns == ("ctr-orphan",)
    assert report.iptables_rules == 1
    assert "dead" not in live.hosts_path.read_text()
    assert not dead.netns_path.exists()
    assert live.netns_path.exists()
    table = subprocess.run(["nft", "list", "table", "ip", harness.prefix], capture_output=True, text=True,
                           check=True).stdout
    assert f"dport {port}" not in table
    assert "masquerade" in table
    with netlink.host() as h:
        assert h.link(m.veth_name("ctr-dead", "crash")) is None
        assert h.link(m.veth_name("ctr-live", "crash")) is not None
    assert [e.container_id for e in fresh._ipam.endpoints()] == ["ctr-live"]


def test_concurrent_attaches_from_separate_engines_get_distinct_addresses(harness: Harness) -> None:
    import threading

    harness.manager.ensure_network(base.NetworkConfig(name="busy"))
    results: dict[str, str] = {}
    failures: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            own = network.NetworkManager(harness.make_config())     # its own DB connection and lock fd
            for i in range(3):
                att = own.attach(f"ctr-{w}-{i}", name=f"w{w}i{i}", hostname=f"w{w}i{i}", networks=["busy"])
                results[f"ctr-{w}-{i}"] = att.ip_addresses["busy"]
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(set(results.values())) == 18
    with netlink.host() as h:
        for cid in results:
            assert h.link(harness.manager.veth_name(cid, "busy")) is not None
    hosts = (harness.config.run_dir / "net" / "ctr-0-0" / "hosts").read_text()
    assert all(f"{ip}\t" in hosts for ip in results.values())


def test_concurrent_attaches_in_one_engine_and_a_failed_one_leaves_nothing(harness: Harness) -> None:
    """The executor attaches containers from several threads of one engine (their interfaces
    made outside the manager's lock, their rules applied by whichever waiting attach renders
    them first): each gets its own address, its ports published when attach returns, and every
    peer's name, as one after the other would; one whose veth cannot be made leaves no record, link, namespace,
    rule or name in its peers' hosts files, and the next attach of it works."""
    import threading

    m = harness.manager
    m.ensure_network(base.NetworkConfig(name="par"))
    bad = "ctr-bad"
    squatter = m.veth_name(bad, "par")          # a bridge holds the bad one's veth name (the undo deletes it:
                                                # a link named with the engine's prefix is the engine's)
    subprocess.run(["ip", "link", "add", squatter, "type", "bridge"], check=True)
    bad_port = _port()
    results: dict[str, str] = {}
    failures: dict[str, BaseException] = {}
    unpublished: list[int] = []

    def attach(cid: str, ports: list[base.PortMapping]) -> None:
        try:
            results[cid] = m.attach(cid, name=cid[4:], hostname=cid[4:], networks=["par"],
                                    ports=ports).ip_addresses["par"]
        except BaseException as exc:
            failures[cid] = exc
            return
        # its rules are in when attach returns, whichever thread's nft transaction applied them
        table = subprocess.run(["nft", "list", "table", "ip", harness.prefix], capture_output=True, text=True,
                               check=True).stdout
        unpublished.extend(p.host_port for p in ports if f"dport {p.host_port}" not in table)

    try:
        jobs = [(f"ctr-n{i}", [base.PortMapping(80, _port(), host_ip="127.0.0.1")]) for i in range(8)]
        jobs.insert(3, (bad, [base.PortMapping(80, bad_port, host_ip="127.0.0.1")]))
        threads = [threading.Thread(target=attach, args=job) for job in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert list(failures) == [bad]
        assert isinstance(failures[bad], errors.Conflict)
        assert len(set(results.values())) == 8
        assert unpublished == []
        assert bad not in [c.container_id for c in m._ipam.containers()]
        assert not m.netns_path(bad).exists()
        table = subprocess.run(["nft", "list", "table", "ip", harness.prefix], capture_output=True, text=True,
                               check=True).stdout
        assert f"dport {bad_port}" not in table
        with netlink.host() as h:
            for cid in results:
                veth = h.link(m.veth_name(cid, "par"))
                assert veth is not None
                assert veth.up
        for cid in results:
            hosts = (harness.config.run_dir / "net" / cid / "hosts").read_text()
            assert "\tbad" not in hosts
            assert " bad" not in hosts
            assert all(f"{ip}\t" in hosts for ip in results.values())   # itself and every peer
    finally:
        subprocess.run(["ip", "link", "del", squatter], check=False)
    m.attach(bad, name="bad", hostname="bad", networks=["par"])
    hosts = (harness.config.run_dir / "net" / "ctr-n0" / "hosts").read_text()
    assert "bad" in hosts


def test_a_namespace_is_made_without_moving_the_callers_thread(harness: Harness) -> None:
    """create_netns unshares in a thread of its own (no fork of the engine): the new namespace is
    bind-mounted at its path, holds only `lo`, and the calling thread stays where it was, also
    when the path is taken (AlreadyExists, nothing of the first namespace undone)."""
    import os

    ns = harness.config.run_dir / "netns" / "ctr-own"
    ns.parent.mkdir(parents=True, exist_ok=True)
    here = os.stat("/proc/thread-self/ns/net").st_ino
    netlink.create_netns(ns)
    try:
        made = os.stat(ns).st_ino
        assert made != here
        assert os.stat("/proc/thread-self/ns/net").st_ino == here
        with netlink.host(ns) as h:
            assert [link.name for link in h.links()] == ["lo"]
        with pytest.raises(errors.AlreadyExists, match="ctr-own"):
            netlink.create_netns(ns)
        assert os.stat("/proc/thread-self/ns/net").st_ino == here
        assert os.stat(ns).st_ino == made
    finally:
        netlink.remove_netns(ns)


def test_heal_makes_again_a_flushed_table_and_a_deleted_bridge(harness: Harness) -> None:
    """Another program takes the plumbing while the engine runs (a firewall reload flushing the
    ruleset, an `ip link del`): the ruleset's text did not change, so no apply puts it back;
    heal finds what is missing and makes it again, and says what. Deleting the bridge left the
    container's veth unplugged (the kernel detaches a deleted bridge's ports and keeps them):
    heal puts it on the new bridge, and the container answers again at its address and on its
    published port."""
    m = harness.manager
    m.ensure_network(base.NetworkConfig(name="heal", subnet=harness.subnet(0)))
    port = _port()
    att = m.attach("ctr-heal", name="heal", hostname="heal", networks=["heal"],
                   ports=[base.PortMapping(80, port, host_ip="127.0.0.1")])
    harness.serve(att.netns_path, "serve-tcp", "80", "heal")
    address = att.ip_addresses["heal"]
    bridge, veth = m.bridge_name("heal"), m.veth_name("ctr-heal", "heal")

    def table() -> str:
        return subprocess.run(["nft", "list", "table", "ip", harness.prefix], capture_output=True, text=True,
                              check=False).stdout

    assert f"dport {port}" in table()
    assert m.heal() == base.Healed()                            # nothing missing: nothing done
    subprocess.run(["nft", "delete", "table", "ip", harness.prefix], check=True)
    subprocess.run(["ip", "link", "del", bridge], check=True)
    assert _link(veth).master is None                           # the veth outlived its bridge, unplugged
    healed = m.heal()
    assert healed == base.Healed(made=(f"bridge {bridge}", f"nft table {harness.prefix}",
                                       f"container heal on bridge {bridge} (veth {veth})"))
    assert f"dport {port}" in table()
    assert f"{state_gateway(m, 'heal')}/24" in _addresses(bridge)
    plugged = _link(veth)
    assert (plugged.master, plugged.up) == (_link(bridge).index, True)
    for host, to in ((address, "80"), ("127.0.0.1", str(port))):
        got = harness.probe(None, "tcp", host, to)
        assert got.stdout.startswith("heal peer="), (host, got.stderr)
    assert m.heal() == base.Healed()


def test_a_ruleset_another_process_replaced_is_applied_again(harness: Harness) -> None:
    """Two processes on one engine (an agent and a CLI): each applies the ruleset of the records
    when they change. One that skipped a ruleset because it had applied that very text last
    itself left the other's in the kernel: after the CLI's stop took a port away, the agent's
    start of that container forwarded it in its records only. The ruleset applied last is the
    engine's, whichever process applied it."""
    m, other = harness.manager, network.NetworkManager(harness.config)
    m.ensure_network(base.NetworkConfig(name="fw", subnet=harness.subnet(0)))
    port = _port()
    m.attach("ctr-fw", name="fw", hostname="fw", networks=["fw"], ports=[base.PortMapping(80, port, host_ip="127.0.0.1")])

    def rule() -> bool:
        return f"dport {port} dnat" in subprocess.run(["nft", "list", "table", "ip", harness.prefix],
                                                      capture_output=True, text=True, check=True).stdout

    assert rule()
    other.forward("ctr-fw", False)
    assert not rule()
    m.forward("ctr-fw", True)                   # the very ruleset `m` applied last
    assert rule()


def test_heal_makes_again_a_ports_rule_deleted_from_the_table(harness: Harness) -> None:
    """`nft flush chain` (or a rule deleted by hand) takes a published port's rule and leaves the
    table: heal finds the forwarded port with no rule in the kernel's listing and renders the
    ruleset again, and says which port."""
    m = harness.manager
    m.ensure_network(base.NetworkConfig(name="lost", subnet=harness.subnet(0)))
    port = _port()
    m.attach("ctr-lost", name="lost", hostname="lost", networks=["lost"],
             ports=[base.PortMapping(80, port, host_ip="127.0.0.1"), base.PortMapping(53, port, protocol="udp")])
    assert m.heal() == base.Healed()
    subprocess.run(["nft", "flush", "chain", "ip", harness.prefix, "hostports"], check=True)
    assert m.heal() == base.Healed(made=(f"nft rule of port 127.0.0.1:{port}/tcp", f"nft rule of port 0.0.0.0:{port}/udp"))
    listed = subprocess.run(["nft", "list", "chain", "ip", harness.prefix, "hostports"], capture_output=True, text=True,
                            check=True).stdout
    assert f"tcp dport {port} dnat" in listed
    assert f"udp dport {port} dnat" in listed
    assert m.heal() == base.Healed()


def test_heal_makes_a_deleted_veth_again_in_the_containers_namespace(harness: Harness) -> None:
    """A container's veth deleted (which takes its end in the container with it): heal makes the
    pair again, the container's end in its own namespace, with its recorded address, the same
    MAC (`mac_address`: peers' ARP caches stay right) and its default route. A namespace file
    unmounted under a running container is bound again from its process first."""
    m = harness.manager
    m.ensure_network(base.NetworkConfig(name="lan", subnet=harness.subnet(0)))
    att = m.attach("ctr-lost", name="lost", hostname="lost", networks=["lan"])
    server = harness.serve(att.netns_path, "serve-tcp", "80", "lost")
    address, veth = att.ip_addresses["lan"], m.veth_name("ctr-lost", "lan")
    mac = m.mac_address("ctr-lost", "lan")
    assert _link("eth0", att.netns_path).mac == mac

    subprocess.run(["ip", "link", "del", veth], check=True)
    healed = m.heal()
    assert healed.made == (f"container lost on bridge {m.bridge_name('lan')} (veth {veth}, made again)",)
    _assert_plugged(harness, att, "lan", mac)
    assert harness.probe(None, "tcp", address, "80").stdout.startswith("lost peer=")

    # the namespace file unmounted (a plain file left) and the veth deleted while the container
    # runs: bound again from the process that lives in the namespace, then the veth made again
    subprocess.run(["umount", str(att.netns_path)], check=True)
    subprocess.run(["ip", "link", "del", veth], check=True)
    assert not netlink.is_netns(att.netns_path)
    assert m.heal(dict) == base.Healed()          # not running: its start makes a namespace
    healed = m.heal(lambda: {"ctr-lost": server.pid})
    assert healed.cut_off == {}
    assert len(healed.made) == 1, healed
    assert os.stat(att.netns_path).st_ino == os.stat(f"/proc/{server.pid}/ns/net").st_ino
    _assert_plugged(harness, att, "lan", mac)
    assert harness.probe(None, "tcp", address, "80").stdout.startswith("lost peer=")


def test_heal_brings_up_a_veth_set_down_on_either_side(harness: Harness) -> None:
    """A container's veth set down (`ip link set VETH down` on the host), or its end set down in
    its namespace, cuts it off as surely as an unplugged one, while it runs: heal sees it (the
    host end's operstate) and sets both ends up again; it says so, and the container answers."""
    m = harness.manager
    m.ensure_network(base.NetworkConfig(name="lan", subnet=harness.subnet(0)))
    att = m.attach("ctr-down", name="down", hostname="down", networks=["lan"])
    harness.serve(att.netns_path, "serve-tcp", "80", "down")
    address, veth = att.ip_addresses["lan"], m.veth_name("ctr-down", "lan")
    mac = m.mac_address("ctr-down", "lan")
    assert harness.probe(None, "tcp", address, "80").stdout.startswith("down peer=")
    assert m.heal() == base.Healed()                   # as attached: nothing to do

    for down in (["ip", "link", "set", veth, "down"],
                 ["nsenter", f"--net={att.netns_path}", "ip", "link", "set", "eth0", "down"]):
        subprocess.run(down, check=True)
        assert harness.probe(None, "tcp", address, "80").returncode != 0, down       # cut off
        healed = m.heal()
        assert healed.made == (f"container down on bridge {m.bridge_name('lan')} (veth {veth})",), down
        _assert_plugged(harness, att, "lan", mac)
        # it answers again; the host's neighbour entry the failed probe left (FAILED: "no route to
        # host") is resolved again within seconds
        deadline = time.monotonic() + 15
        while not (got := harness.probe(None, "tcp", address, "80")).stdout.startswith("down peer="):
            assert time.monotonic() < deadline, (down, got.stderr)
            time.sleep(0.2)
        assert m.heal() == base.Healed()


def test_heal_says_which_running_containers_stay_cut_off(harness: Harness) -> None:
    """What heal cannot plug in again it names, per container, and why: an interface of another
    kind took the veth's name (each heal tries again; once the name is free it plugs the veth),
    or the namespace of a running container is gone with its file (restart it)."""
    m = harness.manager
    m.ensure_network(base.NetworkConfig(name="lan", subnet=harness.subnet(0)))
    att = m.attach("ctr-cut", name="cut", hostname="cut", networks=["lan"])
    veth = m.veth_name("ctr-cut", "lan")
    subprocess.run(["ip", "link", "del", veth], check=True)
    subprocess.run(["ip", "link", "add", veth, "type", "bridge"], check=True)      # another program's
    try:
        healed = m.heal()                          # not told what runs: each one that failed is said
        assert healed.made == ()
        assert list(healed.cut_off) == ["cut"]
        assert f"cut off from network lan: its veth {veth} not plugged in again" in healed.cut_off["cut"]
        assert "is not a veth" in healed.cut_off["cut"]
        assert m.heal(dict) == base.Healed()     # a container that does not run is cut off from nothing
    finally:
        subprocess.run(["ip", "link", "del", veth], check=True)
    assert m.heal().made == (f"container cut on bridge {m.bridge_name('lan')} (veth {veth}, made again)",)
    _assert_plugged(harness, att, "lan", m.mac_address("ctr-cut", "lan"))

    # the namespace file unmounted (a plain file left), and nothing else held the namespace: it is
    # gone, with its veth, and the process the container ran is gone too
    subprocess.run(["umount", str(att.netns_path)], check=True)
    deadline = time.monotonic() + 10
    while os.path.lexists(f"/sys/class/net/{veth}"):   # the kernel ends a namespace in the background
        assert time.monotonic() < deadline, "the veth outlived its namespace"
        time.sleep(0.05)
    healed = m.heal(lambda: {"ctr-cut": _dead_pid()})
    assert healed.made == ()
    assert "its network namespace file is gone and could not be bound again" in healed.cut_off["cut"]
    assert healed.cut_off["cut"].endswith("restart it")
    assert not att.netns_path.exists()              # nothing left there: its start makes a namespace


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _link(name: str, netns: Path | None = None) -> netlink.Link:
    with netlink.host(netns) as h:
        link = h.link(name)
    assert link is not None, name
    return link


def _assert_plugged(harness: Harness, att: network.Attachment, net: str, mac: str) -> None:
    """The container's veth on its network's bridge and up, its end with its address, MAC and route."""
    m = harness.manager
    veth = _link(m.veth_name(att.netns_path.name, net))
    assert (veth.master, veth.up) == (_link(m.bridge_name(net)).index, True)
    eth0 = _link("eth0", att.netns_path)
    assert (eth0.mac, eth0.up) == (mac, True)
    with netlink.host(att.netns_path) as ns:
        assert [a.address for _, a in ns.addresses(eth0.index)] == [att.ip_addresses[net]]
        assert any(r.prefixlen == 0 and r.gateway == state_gateway(m, net) for r in ns.routes())


def state_gateway(m: network.NetworkManager, name: str) -> str:
    return next(n.gateway for n in m.list_networks() if n.name == name)


def test_a_repairing_attach_points_the_ports_where_the_default_route_is_now(harness: Harness) -> None:
    """Ports recorded by an older rule (the first network by position, not by name) are routed
    again when a start makes the container's plumbing again (after a reboot, an upgrade)."""
    m = harness.manager
    m.ensure_network(base.NetworkConfig(name="zz", subnet=harness.subnet(0)))
    m.ensure_network(base.NetworkConfig(name="aa", subnet=harness.subnet(1)))
    port = _port()
    att = m.attach("ctr-route", name="route", hostname="route", networks=["zz", "aa"],
                   ports=[base.PortMapping(80, port)])
    assert [(p.network, p.address) for p in m._ipam.forwarded_ports("ctr-route")] == [("aa", att.ip_addresses["aa"])]
    with m._ipam._db.tx() as conn:                          # as the rule before this one recorded it
        conn.execute("UPDATE net_ports SET network = 'zz', address = ? WHERE container_id = 'ctr-route'",
                     (att.ip_addresses["zz"],))
    m.attach("ctr-route", name="route", hostname="route", networks=["zz", "aa"], ports=[base.PortMapping(80, port)])
    assert [(p.network, p.address) for p in m._ipam.forwarded_ports("ctr-route")] == [("aa", att.ip_addresses["aa"])]
    table = subprocess.run(["nft", "list", "table", "ip", harness.prefix], capture_output=True, text=True,
                           check=True).stdout
    assert f"dport {port} dnat to {att.ip_addresses['aa']}:80" in table


def test_a_links_index_by_name_is_the_kernels_in_the_sockets_own_namespace(harness: Harness) -> None:
    """Host.index (SIOCGIFINDEX, what a fresh attach looks links up by) answers the index netlink
    reports, in the namespace the socket was made for, and None for a name that namespace lacks."""
    path, name, index = harness.namespace_with_veth("idx", "ix", peer="inside0")
    with netlink.host() as h:
        link = h.link(name)
        assert link is not None
        assert link.index == index == h.index(name)
        assert h.index("inside0") is None                       # the peer is in the other namespace
    with netlink.host(path) as ns:
        inside = ns.link("inside0")
        assert inside is not None
        assert ns.index("inside0") == inside.index
        assert ns.index(name) is None
        assert ns.index("lo") == 1
    assert socket.if_nametoindex(name) == index                 # this thread is back in the host's


def _answers(address: str) -> bool:
    """Whether `address` answers a TCP connection from the host (a refusal is an answer: its
    namespace has no listener) within five seconds: a port is not forwarding before the kernel's
    linkwatch has seen the veth's carrier (it waits for the rtnl lock that busy workers' namespace
    removals hold), so a first ARP request can go unanswered and is asked again a second later."""
    try:
        socket.create_connection((address, 9), timeout=5).close()
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    return True


def _neighbour(address: str, bridge: str) -> str:
    """The host's neighbour entry for `address` on `bridge` (`ip neigh` line, '' when none)."""
    return subprocess.run(["ip", "neigh", "show", address, "dev", bridge], capture_output=True, text=True,
                          check=True).stdout.strip()


def _moves_to(mac: str, address: str, bridge: str, within: float) -> None:
    """Wait until the host's neighbour entry for `address` on `bridge` names `mac` (else fail,
    naming the entry) within `within` seconds."""
    deadline = time.monotonic() + within
    while mac not in _neighbour(address, bridge):
        assert time.monotonic() < deadline, _neighbour(address, bridge)
        time.sleep(0.05)


def _reused(m: network.NetworkManager, net: str, bridge: str, address: str, *, within: float) -> None:
    """`address` (IPv4, or IPv6 on a dual-stack network) taken by one container, whose MAC the
    host learns by reaching it, then, once that one is gone (the host still holds its MAC), by a
    new one: the host's entry names the new one's MAC within `within` seconds, and it answers. A
    third container keeps the bridge up (the last port's removal would flush the entries)."""
    static = {"static_ips6" if ":" in address else "static_ips": {net: address}}
    m.attach("ctr-keep", name="keep", hostname="keep", networks=[net])
    m.attach("ctr-old", name="old", hostname="old", networks=[net], **static)
    assert _answers(address)
    old_mac = m.mac_address("ctr-old", net)
    assert old_mac in _neighbour(address, bridge)
    m.detach("ctr-old")
    assert old_mac in _neighbour(address, bridge)                   # the kernel still holds it
    m.attach("ctr-new", name="new", hostname="new", networks=[net], **static)
    _moves_to(m.mac_address("ctr-new", net), address, bridge, within=within)
    assert _answers(address)


def test_an_address_is_announced_again_once_its_bridge_port_forwards(harness: Harness,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel announces an interface's addresses when it comes up, but a bridge drops what
    its port does not forward yet (under load, until the kernel's link watch saw the veth's
    carrier: CI lost it once). A fresh attach announces again once the port forwards
    (netlink.announce). Made certain here with STP on the bridge: a new port listens and learns
    for 2 s each before it forwards, so the kernel's own announcement is always dropped."""
    from reconciler.runtime.native.network import netlink

    monkeypatch.setattr(netlink, "ANNOUNCE_WAIT", 10.0)
    m = harness.manager
    state = m.ensure_network(base.NetworkConfig(name="stp", subnet=harness.subnet(0)))
    subprocess.run(["ip", "link", "set", state.bridge, "type", "bridge", "forward_delay", "200", "stp_state", "1"],
                   check=True)
    _reused(m, "stp", state.bridge, f"10.{harness.a}.{harness.b}.60", within=1)


def test_a_reused_address_is_announced_so_the_host_reaches_its_new_owner_at_once(harness: Harness) -> None:
    """A container's interface announces its address when it comes up (gratuitous ARP), as
    Docker's bridge driver does: the host's neighbour entry for an address a removed container
    had (its MAC, valid for up to ~45 s more) moves to the new owner's MAC at its attach. A
    third container keeps the bridge up (the last port's removal would flush the entries)."""
    m = harness.manager
    state = m.ensure_network(base.NetworkConfig(name="reuse", subnet=harness.subnet(0)))
    _reused(m, "reuse", state.bridge, f"10.{harness.a}.{harness.b}.50", within=3)
