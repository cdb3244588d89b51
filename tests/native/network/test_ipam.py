"""IPAM records without touching the host: allocation, static addresses, ports, persistence."""

from __future__ import annotations

import ipaddress
import multiprocessing
from pathlib import Path

import pytest

from reconciler._sqlite import Database
from reconciler.runtime import base, errors
from reconciler.runtime.native.network import ipam


def _store(tmp_path: Path) -> ipam.IPAM:
    return ipam.IPAM(Database(tmp_path / "state.db"))


def _add(store: ipam.IPAM, cid: str, *, nets: tuple[str, ...] = ("n",), static: dict[str, str] | None = None,
         ports: tuple[base.PortMapping, ...] = ()) -> list[ipam.EndpointRecord]:
    rec = ipam.ContainerRecord(cid, cid, cid, (), f"/run/x/{cid}")
    eps, _ = store.add_container(rec, networks=nets, static_ips=static or {}, ports=ports,
                                 veth_name={n: f"v{cid}{n}" for n in nets})
    return eps


def _host(net: str, interface: str = "eth9", *, on_link: bool = True) -> ipam.HostNetwork:
    return ipam.HostNetwork(ipaddress.IPv4Network(net), interface, on_link)


def test_pool_allocation_skips_taken_and_host_subnets(tmp_path: Path) -> None:
    store = _store(tmp_path)
    first = store.add_network(base.NetworkConfig("a"), bridge="b-a", pool="10.250.0.0/22",
                              host=[_host("10.250.1.0/24")])
    second = store.add_network(base.NetworkConfig("b"), bridge="b-b", pool="10.250.0.0/22")
    assert (first.subnet, first.gateway) == ("10.250.0.0/24", "10.250.0.1")
    assert second.subnet == "10.250.1.0/24"   # host= applied only to the first call
    third = store.add_network(base.NetworkConfig("c"), bridge="b-c", pool="10.250.0.0/22",
                              host=[_host("10.250.2.0/25", on_link=False)])    # a route via a gateway too
    assert third.subnet == "10.250.3.0/24"
    fourth = store.add_network(base.NetworkConfig("d"), bridge="b-d", pool="10.250.0.0/22")
    assert fourth.subnet == "10.250.2.0/24"
    with pytest.raises(errors.Conflict, match="no free /24"):
        store.add_network(base.NetworkConfig("e"), bridge="b-e", pool="10.250.0.0/22")


def test_network_record_is_verified_against_the_manifest(tmp_path: Path) -> None:
    store = _store(tmp_path)
    rec = store.add_network(base.NetworkConfig("n", subnet="10.251.0.0/24"), bridge="b", pool="10.0.0.0/8")
    again = store.add_network(base.NetworkConfig("n", subnet="10.251.0.0/24", labels={"x": "1"}),
                              bridge="b", pool="10.0.0.0/8")
    assert again.id == rec.id
    assert again.labels == {"x": "1"}
    with pytest.raises(errors.Conflict, match="different settings"):
        store.add_network(base.NetworkConfig("n", subnet="10.251.1.0/24"), bridge="b", pool="10.0.0.0/8")
    with pytest.raises(errors.Conflict, match="overlaps"):
        store.add_network(base.NetworkConfig("m", subnet="10.251.0.0/16".replace("/16", "/23")),
                          bridge="c", pool="10.0.0.0/8")
    with pytest.raises(errors.InvalidArgument, match="no host bits"):
        store.add_network(base.NetworkConfig("k", subnet="10.251.5.1/24"), bridge="d", pool="10.0.0.0/8")


def test_an_explicit_subnet_on_a_host_interface_is_refused_naming_it(tmp_path: Path) -> None:
    store = _store(tmp_path)
    host = [_host("10.251.8.0/24", "wg0"), _host("10.251.16.0/20", "eth0", on_link=False), _host("10.251.9.0/24", "")]
    with pytest.raises(errors.Conflict, match=r"subnet 10\.251\.8\.0/25 of network 'a' overlaps 10\.251\.8\.0/24 on "
                       r"host interface wg0, which this engine did not make") as e:
        store.add_network(base.NetworkConfig("a", subnet="10.251.8.0/25"), bridge="b-a", pool="10.0.0.0/8", host=host)
    assert "omit it to get a free one from the pool" in (e.value.hint or "")
    with pytest.raises(errors.Conflict, match=r"overlaps the host's route to 10\.251\.9\.0/24"):
        store.add_network(base.NetworkConfig("a", subnet="10.251.9.0/24"), bridge="b-a", pool="10.0.0.0/8", host=host)
    assert store.networks() == []
    # a route through a gateway is not the interface's own network: an explicit subnet may take a part
    ok = store.add_network(base.NetworkConfig("a", subnet="10.251.17.0/24"), bridge="b-a", pool="10.0.0.0/8", host=host)
    assert ok.subnet == "10.251.17.0/24"


def test_addresses_round_robin_static_and_release(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.add_network(base.NetworkConfig("n", subnet="10.252.0.0/29"), bridge="b", pool="10.0.0.0/8")
    assert _add(store, "c1")[0].address == "10.252.0.2"
    assert _add(store, "c2", static={"n": "10.252.0.6"})[0].address == "10.252.0.6"
    assert _add(store, "c3")[0].address == "10.252.0.3"
    store.remove_container("c1")
    assert _add(store, "c4")[0].address == "10.252.0.4"     # not the just-released .2
    assert _add(store, "c5")[0].address == "10.252.0.5"
    assert _add(store, "c6")[0].address == "10.252.0.2"     # wraps around to the free one
    with pytest.raises(errors.Conflict, match="no free address"):
        _add(store, "c7")
    assert store.container("c7") is None                     # all or nothing
    with pytest.raises(errors.Conflict, match="already used"):
        _add(store, "c8", static={"n": "10.252.0.6"})
    for bad in ("10.252.0.1", "10.252.0.7", "10.9.9.9", "nonsense"):
        with pytest.raises(errors.InvalidArgument):
            _add(store, "c9", static={"n": bad})
    with pytest.raises(errors.InvalidArgument, match="does not join"):
        _add(store, "c9", static={"other": "10.1.1.1"})
    with pytest.raises(errors.NotFound, match="not found"):
        _add(store, "c9", nets=("missing",))
    assert store.container("c9") is None


def test_a_large_subnet_hands_out_addresses_across_octet_boundaries_in_order(tmp_path: Path) -> None:
    """A /16 (Docker's usual size): host addresses counted as integers, .0.255 and .1.0 included."""
    store = _store(tmp_path)
    store.add_network(base.NetworkConfig("n", subnet="10.253.0.0/16"), bridge="b", pool="10.0.0.0/8")
    got = [_add(store, f"c{i}")[0].address for i in range(256)]
    assert got[0] == "10.253.0.2"                           # .0.1 is the gateway
    assert got[252:256] == ["10.253.0.254", "10.253.0.255", "10.253.1.0", "10.253.1.1"]
    store.remove_container("c0")
    assert _add(store, "next")[0].address == "10.253.1.2"   # after the last one, not the freed .0.2


def test_host_ports_are_exclusive(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.add_network(base.NetworkConfig("n", subnet="10.253.0.0/24"), bridge="b", pool="10.0.0.0/8")
    _add(store, "c1", ports=(base.PortMapping(80, 8080, host_ip="127.0.0.1"),))
    _add(store, "c2", ports=(base.PortMapping(80, 8080, host_ip="127.0.0.2"), base.PortMapping(53, 8080, "udp")))
    with pytest.raises(errors.Conflict, match="already published by container 'c1'"):
        _add(store, "c3", ports=(base.PortMapping(80, 8080),))   # 0.0.0.0 overlaps 127.0.0.1
    assert store.container("c3") is None
    assert [(p.protocol, p.host_ip, p.container_id) for p in store.ports()] == [
        ("tcp", "127.0.0.1", "c1"), ("tcp", "127.0.0.2", "c2"), ("udp", "0.0.0.0", "c2")]
    store.remove_container("c1")
    _add(store, "c4", ports=(base.PortMapping(80, 8080, host_ip="127.0.0.1"),))


def _worker(args: tuple[str, int, int]) -> list[str]:
    db_path, task, n = args
    store = ipam.IPAM(Database(db_path))
    out = []
    for i in range(n):
        cid = f"t{task}-{i}"      # a pool may give one process two tasks: name by task
        out.append(_add(store, cid)[0].address)
    return out


def test_concurrent_processes_never_share_an_address(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.add_network(base.NetworkConfig("n", subnet="10.254.0.0/24"), bridge="b", pool="10.0.0.0/8")
    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.map(_worker, [(str(tmp_path / "state.db"), task, 25) for task in range(4)])
    addresses = [a for r in results for a in r]
    assert len(addresses) == 100
    assert len(set(addresses)) == 100
    assert len({e.address for e in store.endpoints(network="n")}) == 100


def test_records_survive_a_new_process(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.add_network(base.NetworkConfig("n", subnet="10.254.1.0/24"), bridge="b", pool="10.0.0.0/8")
    _add(store, "c1")
    reopened = ipam.IPAM(Database(tmp_path / "state.db"))
    assert [n.name for n in reopened.networks()] == ["n"]
    assert [(e.container_id, e.address) for e in reopened.endpoints()] == [("c1", "10.254.1.2")]
    with pytest.raises(errors.Conflict, match="in use by 1 container"):
        reopened.remove_network("n")
    reopened.remove_container("c1")
    reopened.remove_network("n")
    with pytest.raises(errors.NotFound):
        reopened.remove_network("n")


def test_a_database_from_before_extra_hosts_gets_their_column_and_keeps_its_containers(tmp_path: Path) -> None:
    old = Database(tmp_path / "state.db")
    old.ensure_schema("old", ipam._DDL)         # the tables as they were made: no resolve column (ALTER adds it)
    with old.tx() as conn:
        conn.execute("INSERT INTO net_containers (container_id, name, hostname, aliases, netns) "
                     "VALUES ('c1', 'web', 'web', '[\"www\"]', '/run/x/c1')")
    old.close()
    store = _store(tmp_path)
    assert store.containers() == [ipam.ContainerRecord("c1", "web", "web", ("www",), "/run/x/c1")]
    store.add_network(base.NetworkConfig("n"), bridge="b-n", pool="10.250.0.0/22")
    rec = ipam.ContainerRecord("c2", "api", "api", (), "/run/x/c2", extra_hosts=("db:10.1.2.3",),
                               dns=("192.0.2.53",), dns_search=("corp.example",))
    store.add_container(rec, networks=["n"], static_ips={}, ports=(), veth_name={"n": "vc2n"})
    assert _store(tmp_path).container("c2") == rec


def test_dual_stack_subnets_addresses_and_ports(tmp_path: Path) -> None:
    store = _store(tmp_path)
    given = store.add_network(base.NetworkConfig("n", subnet="10.251.0.0/24", ipv6=True,
                                                 ipv6_subnet="fd12:3456:789a:1::/64"), bridge="b", pool="10.0.0.0/8")
    assert (given.subnet6, given.gateway6) == ("fd12:3456:789a:1::/64", "fd12:3456:789a:1::1")
    pooled = store.add_network(base.NetworkConfig("p", ipv6=True), bridge="b2", pool="10.250.0.0/16")
    pooled6 = ipaddress.IPv6Network(str(pooled.subnet6))
    assert pooled6.prefixlen == 64
    assert pooled6.subnet_of(ipam.ULA_POOL)
    assert store.add_network(base.NetworkConfig("v4", subnet="10.249.0.0/24"), bridge="b3", pool="x").subnet6 is None
    with pytest.raises(errors.Conflict, match="overlaps"):
        store.add_network(base.NetworkConfig("twin", subnet="10.248.0.0/24", ipv6=True,
                                             ipv6_subnet="fd12:3456:789a:1::/64"), bridge="b4", pool="x")
    with pytest.raises(errors.Conflict, match="ipv6 True -> False"):
        store.add_network(base.NetworkConfig("n", subnet="10.251.0.0/24"), bridge="b", pool="x")

    assert _add(store, "c1")[0].address6 == "fd12:3456:789a:1::2"
    assert _add(store, "c2", ports=(base.PortMapping(80, 8080, host_ip="::1"),))[0].address6 == "fd12:3456:789a:1::3"
    store.remove_container("c1")
    assert _add(store, "c3")[0].address6 == "fd12:3456:789a:1::4"       # round robin, as IPv4
    assert [(p.host_ip, p.address) for p in store.ports()] == [("::1", "fd12:3456:789a:1::3")]
    with pytest.raises(errors.Conflict, match="already published"):
        _add(store, "c4", ports=(base.PortMapping(80, 8080, host_ip="::"),))     # [::] takes ::1 too
    _add(store, "c5", ports=(base.PortMapping(80, 8080, host_ip="127.0.0.1"),))  # the other family is free
    with pytest.raises(errors.InvalidArgument, match="has no IPv6"):
        _add(store, "c6", nets=("v4",), ports=(base.PortMapping(80, 8081, host_ip="::1"),))


def test_an_ipv6_subnet_the_host_uses_is_refused_and_the_pool_avoids_it(tmp_path: Path) -> None:
    store = _store(tmp_path)
    host6 = [ipaddress.IPv6Network("fd12:3456:789a:1::/64")]
    with pytest.raises(errors.Conflict, match="an address of this host"):
        store.add_network(base.NetworkConfig("n", subnet="10.247.0.0/24", ipv6=True, ipv6_subnet=str(host6[0])),
                          bridge="b", pool="x", host6=host6)
    whole = [ipaddress.IPv6Network("fd00::/9")]      # half the pool is the host's: the other half serves
    got = store.add_network(base.NetworkConfig("n", subnet="10.247.0.0/24", ipv6=True), bridge="b", pool="x",
                            host6=whole)
    assert not ipaddress.IPv6Network(str(got.subnet6)).overlaps(whole[0])


def test_static_ipv6_addresses_are_handed_out_exactly_once(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.add_network(base.NetworkConfig("n", subnet="10.246.0.0/24", ipv6=True, ipv6_subnet="fd12:3456:789a:2::/64"),
                      bridge="b", pool="x")
    store.add_network(base.NetworkConfig("v4", subnet="10.245.0.0/24"), bridge="b2", pool="x")

    def add6(cid: str, address: str, net: str = "n") -> list[ipam.EndpointRecord]:
        rec = ipam.ContainerRecord(cid, cid, cid, (), f"/run/x/{cid}")
        eps, _ = store.add_container(rec, networks=[net], static_ips={}, static_ips6={net: address}, ports=(),
                                     veth_name={net: f"v{cid}"})
        return eps

    assert add6("c1", "fd12:3456:789a:2::50")[0].address6 == "fd12:3456:789a:2::50"
    assert _add(store, "c2")[0].address6 == "fd12:3456:789a:2::2"      # the round robin is not moved by it
    with pytest.raises(errors.Conflict, match="already used"):
        add6("c3", "fd12:3456:789a:2::50")
    for bad in ("fd12:3456:789a:3::5", "fd12:3456:789a:2::1", "10.246.0.9"):
        with pytest.raises(errors.InvalidArgument, match=r"not a usable address|is not IPv6"):
            add6("c3", bad)
    with pytest.raises(errors.InvalidArgument, match="has no IPv6"):
        add6("c3", "fd12:3456:789a:2::51", net="v4")
    assert store.container("c3") is None                                # all or nothing


def test_an_endpoint_added_later_gets_its_ipv6_address_from_the_same_round_robin(tmp_path: Path) -> None:
    """`docker network connect` (add_endpoint) allocates on a dual-stack network as attach
    (add_container) does: both addresses, one round robin, given back at the disconnect."""
    store = _store(tmp_path)
    store.add_network(base.NetworkConfig("n", subnet="10.244.0.0/24", ipv6=True, ipv6_subnet="fd12:3456:789a:3::/64"),
                      bridge="b", pool="x")
    store.add_network(base.NetworkConfig("v4", subnet="10.243.0.0/24"), bridge="b2", pool="x")
    assert _add(store, "c1")[0].address6 == "fd12:3456:789a:3::2"
    _add(store, "c2", nets=("v4",))
    late = store.add_endpoint("c2", "n", veth="vc2n")
    assert (late.address, late.address6, late.ifname) == ("10.244.0.3", "fd12:3456:789a:3::3", "eth1")
    assert _add(store, "c3")[0].address6 == "fd12:3456:789a:3::4"       # after the connect's, not the same
    assert store.add_endpoint("c3", "v4", veth="vc3v4").address6 is None
    assert store.remove_endpoint("c2", "n") == late
    assert [e.address6 for e in store.endpoints(network="n")] == ["fd12:3456:789a:3::2", "fd12:3456:789a:3::4"]


def test_published_ports_follow_the_gateway_endpoint_and_are_held_without_one(tmp_path: Path) -> None:
    """A container's ports are forwarded to its gateway endpoint (its first network not internal,
    as Docker's): a disconnect of that network moves them to the one it keeps, and with no
    endpoint left on a network with a way out they are held for it (no other container takes the
    host port) but forwarded nowhere; a connect forwards them again. No port keeps an address the
    container gave back."""
    store = _store(tmp_path)
    store.add_network(base.NetworkConfig("in", subnet="10.246.0.0/24", internal=True), bridge="b0", pool="x")
    store.add_network(base.NetworkConfig("a", subnet="10.246.1.0/24"), bridge="b1", pool="x")
    store.add_network(base.NetworkConfig("b", subnet="10.246.2.0/24"), bridge="b2", pool="x")
    web = (base.PortMapping(container_port=80, host_port=8080, host_ip="127.0.0.1"),)

    def forwarded() -> list[tuple[str, str]]:
        return [(p.network, p.address) for p in store.ports() if p.container_id == "c1" and p.address]

    _add(store, "c1", nets=("in", "a"), ports=web)
    assert forwarded() == [("a", "10.246.1.2")]                 # not the internal eth0
    store.add_endpoint("c1", "b", veth="vc1b")
    assert forwarded() == [("a", "10.246.1.2")]
    store.remove_endpoint("c1", "a")
    assert forwarded() == [("b", "10.246.2.2")]
    store.remove_endpoint("c1", "b")
    assert forwarded() == []                # only an internal one left: no way out, none (Docker's)
    store.remove_endpoint("c1", "in")
    assert forwarded() == []
    assert [(p.host_port, p.container_id, p.forwarded) for p in store.ports()] == [(8080, "c1", False)]
    with pytest.raises(errors.Conflict, match="already published by container 'c1'"):
        _add(store, "c2", nets=("a",), ports=web)
    store.add_endpoint("c1", "a", veth="vc1a")
    assert forwarded() == [("a", "10.246.1.3")]                 # round robin: not the address given back
    assert [(p.network, p.address) for p in store.forwarded_ports()] == [("a", "10.246.1.3")]


def test_the_gateway_endpoint_is_the_first_network_by_name_whatever_the_order_joined(tmp_path: Path) -> None:
    """As libnetwork orders a sandbox's endpoints: not internal first, then by network name."""
    store = _store(tmp_path)
    for i, name in enumerate(("zz", "aa", "in")):
        store.add_network(base.NetworkConfig(name, subnet=f"10.246.{i}.0/24", internal=name == "in"),
                          bridge=f"b{i}", pool="x")
    web = (base.PortMapping(container_port=80, host_port=8080, host_ip="127.0.0.1"),)
    _add(store, "c1", nets=("in", "zz", "aa"), ports=web)
    assert [(p.network, p.address) for p in store.forwarded_ports()] == [("aa", "10.246.1.2")]
    eps = store.endpoints(container_id="c1")
    assert ipam.gateway_endpoint(eps, {"in"}).network == "aa"
    assert ipam.gateway_endpoint([e for e in eps if e.network == "in"], {"in"}).network == "in"


def test_a_container_on_internal_networks_only_publishes_no_port_until_it_joins_one_with_a_way_out(
        tmp_path: Path) -> None:
    """Docker publishes no port of a container whose networks are all internal (`docker port` is
    empty, the host's loopback does not reach it): the host port is held for it, forwarded nowhere."""
    store = _store(tmp_path)
    store.add_network(base.NetworkConfig("in", subnet="10.246.0.0/24", internal=True), bridge="b0", pool="x")
    store.add_network(base.NetworkConfig("a", subnet="10.246.1.0/24"), bridge="b1", pool="x")
    web = (base.PortMapping(container_port=80, host_port=8080, host_ip="127.0.0.1"),)
    _add(store, "c1", nets=("in",), ports=web)
    assert store.forwarded_ports() == []
    assert [(p.host_port, p.forwarded) for p in store.ports()] == [(8080, False)]
    with pytest.raises(errors.Conflict, match="already published by container 'c1'"):
        _add(store, "c2", nets=("a",), ports=web)
    store.add_endpoint("c1", "a", veth="vc1a")
    assert [(p.network, p.address) for p in store.forwarded_ports()] == [("a", "10.246.1.2")]


def test_the_highest_gateway_priority_takes_the_gateway_endpoint_and_the_ports(tmp_path: Path) -> None:
    """libnetwork's Endpoint.Less: the higher gw priority first, then not internal, then by name;
    the gateway is the first with a way out (an internal network of a higher priority has none)."""
    store = _store(tmp_path)
    for i, name in enumerate(("zz", "aa", "in")):
        store.add_network(base.NetworkConfig(name, subnet=f"10.246.{i}.0/24", internal=name == "in"),
                          bridge=f"b{i}", pool="x")
    web = (base.PortMapping(container_port=80, host_port=8080, host_ip="127.0.0.1"),)
    rec = ipam.ContainerRecord("c1", "c1", "c1", (), "/run/x/c1")
    store.add_container(rec, networks=("aa", "zz", "in"), static_ips={}, ports=web,
                        veth_name={n: f"vc1{n}" for n in ("aa", "zz", "in")},
                        options={"zz": ipam.EndpointOptions(gw_priority=2), "in": ipam.EndpointOptions(gw_priority=9),
                                 "aa": ipam.EndpointOptions(mac="02:00:00:00:00:01", link_local=("169.254.1.1",))})
    eps = store.endpoints(container_id="c1")
    assert [(e.network, e.mac, e.link_local, e.gw_priority) for e in eps] == [
        ("aa", "02:00:00:00:00:01", ("169.254.1.1",), 0), ("zz", None, (), 2), ("in", None, (), 9)]
    assert ipam.gateway_endpoint(eps, {"in"}).network == "zz"
    assert [(p.network, p.address) for p in store.forwarded_ports()] == [("zz", "10.246.0.2")]
    assert ipam.gateway_endpoint([e for e in eps if e.network != "zz"], {"in"}).network == "aa"
    assert ipam.gateway_endpoint([e for e in eps if e.network == "in"], {"in"}).network == "in"
    with pytest.raises(errors.Conflict, match="MAC address 02:00:00:00:00:01 of 'c2' is already used on network 'aa'"):
        store.add_container(ipam.ContainerRecord("c2", "c2", "c2", (), "/run/x/c2"), networks=("aa",), static_ips={},
                            ports=(), veth_name={"aa": "vc2aa"}, options={"aa": ipam.EndpointOptions(mac="02:00:00:00:00:01")})
    assert store.container("c2") is None
    with pytest.raises(errors.InvalidArgument, match="interface settings for networks it does not join: zz"):
        store.add_container(ipam.ContainerRecord("c3", "c3", "c3", (), "/run/x/c3"), networks=("aa",), static_ips={},
                            ports=(), veth_name={"aa": "vc3aa"}, options={"zz": ipam.EndpointOptions(gw_priority=1)})


def test_a_database_of_before_the_interface_settings_reads_them_unset(tmp_path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(tmp_path / "state.db")
    conn.executescript(ipam._DDL)
    conn.execute("INSERT INTO net_networks VALUES ('n', 'id', 'b', '10.246.0.0/24', '10.246.0.1', 0, 1500, '{}', 'now', NULL)")
    conn.execute("INSERT INTO net_containers VALUES ('c1', 'c1', 'c1', '[]', '/run/x/c1')")
    conn.execute("INSERT INTO net_endpoints VALUES ('n', '10.246.0.2', 'c1', 0, 'eth0', 'vc1')")
    conn.commit()
    conn.close()
    (ep,) = _store(tmp_path).endpoints(container_id="c1")
    assert (ep.mac, ep.link_local, ep.gw_priority) == (None, (), 0)


def test_network_ids_are_dockers_64_hex_digits_and_an_older_32_digit_one_reads_so_stably(tmp_path: Path) -> None:
    """A network's id is what the Engine API gives out (Docker's: 64 hex digits). One recorded
    when ids were a uuid4's 32 digits reads as that id and 32 more from its hash, the same in
    every process, so an id given out before (or its prefix) still begins it."""
    store = _store(tmp_path)
    made = store.add_network(base.NetworkConfig("n"), bridge="b-n", pool="10.252.0.0/22")
    assert len(made.id) == 64
    int(made.id, 16)
    assert made.state().id == made.id
    assert store.network("n").id == made.id            # type: ignore[union-attr]
    old = "0123456789abcdef0123456789abcdef"
    with Database(tmp_path / "state.db").tx() as conn:
        conn.execute("UPDATE net_networks SET id = ? WHERE name = 'n'", (old,))
    first, again = store.network("n"), _store(tmp_path).networks()[0]
    assert first is not None
    assert first.id == again.id == ipam.network_id(old)
    assert len(first.id) == 64
    assert first.id.startswith(old)
    int(first.id, 16)


def test_a_network_is_found_by_id_name_or_unique_id_prefix_as_dockerd_finds_it() -> None:
    """`find_network`, dockerd's FindNetwork: a full id first, then a name (any it answers to),
    then the one id a prefix begins; a prefix of several ids is refused (dockerd's 400), nothing
    found is NotFound (404)."""
    a, b, c = "ab12" + "0" * 60, "ab34" + "0" * 60, "cd" + "0" * 62
    ids = {a: ("front", "front"), b: ("bridge", "default"), c: (a[:12],)}    # c is named like a's prefix
    assert ipam.find_network(a, ids) == a
    assert ipam.find_network("front", ids) == a
    assert ipam.find_network("default", ids) == b
    assert ipam.find_network(a[:12], ids) == c          # a name before an id prefix, as dockerd
    assert ipam.find_network("ab3", ids) == b
    assert ipam.find_network("c", ids) == c
    with pytest.raises(errors.InvalidArgument, match="network ab is ambiguous \\(2 matches found based on ID prefix\\)"):
        ipam.find_network("ab", ids)
    for term in ("ef", "", "back"):
        with pytest.raises(errors.NotFound, match=f"network {term} not found"):
            ipam.find_network(term, ids)
