"""A container's own settings on one of its networks, on the native engine's real plumbing (root:
real namespaces, veths and bridges; the harness's own state root, run dir, prefix and subnets):
the interface's MAC address, extra link-local addresses, and the gateway priority that picks the
network of the default route (Docker's rule: the highest, ties to the first by name not internal).
What is asserted is what the kernel has inside the container's namespace (`ip -n`), and what
inspect reports is read from the kernel too."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reconciler.runtime import base, errors
from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.containers import inspection
from reconciler.runtime.native.network import interfaces, netlink
from tests.helpers.ports import publish_port
from tests.native.network.conftest import IMAGE, Harness

pytestmark = [pytest.mark.root]

MAC_A = "02:5a:00:00:00:0a"
MAC_B = "02:5a:00:00:00:0b"


def _ip(netns: Path, *args: str) -> Any:
    """`ip -j ARGS` inside the namespace at `netns`, as JSON."""
    out = subprocess.run(["nsenter", f"--net={netns}", "ip", "-j", *args], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)


def _link(netns: Path, ifname: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = _ip(netns, "addr", "show", "dev", ifname)
    assert len(found) == 1
    return found[0]


def _addresses(link: dict[str, Any]) -> set[str]:
    return {f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"]}


def _default_via(netns: Path) -> str:
    routes = [r for r in _ip(netns, "-4", "route") if r["dst"] == "default"]
    assert len(routes) == 1, routes
    return str(routes[0]["gateway"])


def test_mac_link_local_addresses_and_gateway_priority_in_the_namespace(harness: Harness) -> None:
    m = harness.manager
    aa = m.ensure_network(base.NetworkConfig(name="aa", subnet=harness.subnet(0)))
    zz = m.ensure_network(base.NetworkConfig(name="zz", subnet=harness.subnet(1)))
    port = publish_port()
    att = m.attach("ctr-own", name="own", hostname="own", networks=["aa", "zz"], ports=[base.PortMapping(80, port)],
                   macs={"zz": MAC_A}, link_local={"zz": ["169.254.7.7", "fe80::7"], "aa": ["169.254.8.8"]},
                   gw_priorities={"zz": 10})
    ns = att.netns_path
    eth0, eth1 = _link(ns, "eth0"), _link(ns, "eth1")      # aa, zz: the order asked
    assert eth1["address"] == MAC_A
    assert eth0["address"] != MAC_A
    assert {f"{att.ip_addresses['zz']}/24", "169.254.7.7/16", "fe80::7/64"} <= _addresses(eth1)
    assert {f"{att.ip_addresses['aa']}/24", "169.254.8.8/16"} <= _addresses(eth0)
    # the default route through zz (priority 10), not aa (the first by name), and the port with it
    assert _default_via(ns) == zz.gateway != aa.gateway
    assert [(p.network, p.address) for p in m._ipam.forwarded_ports("ctr-own")] == [("zz", att.ip_addresses["zz"])]
    # the same MAC on another network is fine, on the same network refused, leaving nothing
    other = m.attach("ctr-other", name="other", hostname="other", networks=["aa"], macs={"aa": MAC_A})
    assert _link(other.netns_path, "eth0")["address"] == MAC_A
    with pytest.raises(errors.Conflict, match=f"MAC address {MAC_A} of 'x' is already used on network 'zz'"):
        m.attach("ctr-x", name="x", hostname="x", networks=["zz"], macs={"zz": MAC_A})
    assert not (harness.config.run_dir / "netns" / "ctr-x").exists()
    assert m._ipam.container("ctr-x") is None


def test_a_repairing_attach_gives_back_the_mac_and_the_link_local_addresses(harness: Harness) -> None:
    m = harness.manager
    m.ensure_network(base.NetworkConfig(name="rep", subnet=harness.subnet(0)))
    how: dict[str, Any] = {"macs": {"rep": MAC_B}, "link_local": {"rep": ["169.254.9.9"]}}
    att = m.attach("ctr-rep", name="rep", hostname="rep", networks=["rep"], **how)
    ns = att.netns_path
    subprocess.run(["nsenter", f"--net={ns}", "ip", "link", "set", "eth0", "address", "02:00:00:00:99:99"], check=True)
    subprocess.run(["nsenter", f"--net={ns}", "ip", "addr", "del", "169.254.9.9/16", "dev", "eth0"], check=True)
    m.attach("ctr-rep", name="rep", hostname="rep", networks=["rep"], **how)
    eth0 = _link(ns, "eth0")
    assert eth0["address"] == MAC_B
    assert "169.254.9.9/16" in _addresses(eth0)
    with netlink.host() as h:                   # a lost veth is made again, of its MAC
        h.delete_link(m.veth_name("ctr-rep", "rep"))
    m.attach("ctr-rep", name="rep", hostname="rep", networks=["rep"], **how)
    eth0 = _link(ns, "eth0")
    assert eth0["address"] == MAC_B
    assert "169.254.9.9/16" in _addresses(eth0)
    # what inspect reads: the kernel's (a hand-made change shows)
    subprocess.run(["nsenter", f"--net={ns}", "ip", "link", "set", "eth0", "address", "02:00:00:00:99:98"], check=True)
    seen = interfaces.interfaces(str(ns))
    assert seen["eth0"]["mac"] == "02:00:00:00:99:98"
    assert "169.254.9.9" in seen["eth0"]["ipv4"]


def test_a_connect_of_a_higher_gateway_priority_takes_the_default_route_and_a_disconnect_gives_it_back(
        harness: Harness) -> None:
    m = harness.manager
    aa = m.ensure_network(base.NetworkConfig(name="aa", subnet=harness.subnet(0)))
    zz = m.ensure_network(base.NetworkConfig(name="zz", subnet=harness.subnet(1)))
    att = m.attach("ctr-move", name="move", hostname="move", networks=["aa"])
    ns = att.netns_path
    assert _default_via(ns) == aa.gateway
    m.connect("ctr-move", "zz", mac=MAC_B, link_local=["fe80::b"], gw_priority=1)
    assert _default_via(ns) == zz.gateway
    eth1 = _link(ns, "eth1")
    assert eth1["address"] == MAC_B
    assert "fe80::b/64" in _addresses(eth1)
    m.disconnect("ctr-move", "zz")
    assert _default_via(ns) == aa.gateway
    # a connect of a lower priority leaves the route where it is
    m.connect("ctr-move", "zz", gw_priority=-1)
    assert _default_via(ns) == aa.gateway


def test_an_internal_network_of_a_higher_priority_gives_no_default_route(harness: Harness) -> None:
    """libnetwork's gateway is the first endpoint in priority order that has a way out."""
    m = harness.manager
    out = m.ensure_network(base.NetworkConfig(name="zz", subnet=harness.subnet(0)))
    m.ensure_network(base.NetworkConfig(name="aa", subnet=harness.subnet(1), internal=True))
    att = m.attach("ctr-int", name="int", hostname="int", networks=["aa", "zz"], gw_priorities={"aa": 100})
    assert _default_via(att.netns_path) == out.gateway


def test_a_container_runs_with_its_mac_addresses_and_routes_and_inspect_reads_the_kernel(
        harness: Harness, engine: NativeRuntime) -> None:
    """The engine end to end: a container (runc) created from a ContainerConfig with the settings,
    seen from inside it (busybox `ip`), and inspect's document."""
    engine.ensure_network(base.NetworkConfig(name="front", subnet=harness.subnet(0)))
    back = engine.ensure_network(base.NetworkConfig(name="back", subnet=harness.subnet(1)))
    name = f"{harness.prefix}-mac"
    cid = engine.create_container(base.ContainerConfig(
        name=name, image=IMAGE, command=("sleep", "600"), networks=("front", "back"),
        mac_addresses={"front": MAC_A, "back": MAC_B}, link_local_ips={"back": ("169.254.5.5", "fe80::5")},
        gw_priorities={"back": 5}))
    engine.start_container(cid)
    inside = engine.exec(cid, ["ip", "link"]).stdout.decode()
    assert MAC_A in inside
    assert MAC_B in inside
    addr = engine.exec(cid, ["ip", "addr", "show", "eth1"]).stdout.decode()
    assert "inet 169.254.5.5/16" in addr
    assert "inet6 fe80::5/64" in addr
    assert f"default via {back.gateway} dev eth1" in engine.exec(cid, ["ip", "route"]).stdout.decode()
    manager = engine.containers
    doc = inspection.document(manager, manager.get(cid))
    nets = doc["NetworkSettings"]["Networks"]
    assert (nets["front"]["MacAddress"], nets["back"]["MacAddress"]) == (MAC_A, MAC_B)
    assert nets["back"]["IPAMConfig"] == {"LinkLocalIPs": ["169.254.5.5", "fe80::5"]}
    assert nets["front"]["IPAMConfig"] is None                  # the kernel's own fe80:: is not listed
    assert (nets["front"]["GwPriority"], nets["back"]["GwPriority"]) == (0, 5)
    # observed, not the record: a MAC changed behind the engine's back is what inspect says
    netns = doc["NetworkSettings"]["SandboxKey"]
    subprocess.run(["nsenter", f"--net={netns}", "ip", "link", "set", "eth0", "address", "02:5a:00:00:00:ff"], check=True)
    subprocess.run(["nsenter", f"--net={netns}", "ip", "addr", "del", "fe80::5/64", "dev", "eth1"], check=True)
    nets = inspection.document(manager, manager.get(cid))["NetworkSettings"]["Networks"]
    assert nets["front"]["MacAddress"] == "02:5a:00:00:00:ff"
    assert nets["back"]["IPAMConfig"] == {"LinkLocalIPs": ["169.254.5.5"]}
    engine.stop_container(cid, timeout=1)
    engine.remove_container(cid, force=True)
