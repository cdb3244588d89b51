"""The native engine's real containers (runc + conmon) on NetworkManager's networks."""

from __future__ import annotations

import ipaddress
import subprocess
import urllib.request

import pytest

from reconciler.runtime import base
from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.containers import inspection
from reconciler.runtime.native.network import netlink
from tests.helpers import subnets
from tests.helpers.ports import publish_port
from tests.native.network.conftest import IMAGE, Harness

pytestmark = [pytest.mark.root]

def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def test_containers_serve_by_name_and_on_a_published_port(harness: Harness, engine: NativeRuntime) -> None:
    engine.ensure_network(base.NetworkConfig(name="app"))
    port = publish_port()
    web = engine.create_container(base.ContainerConfig(
        name="web", image=IMAGE, command=("httpd", "-f", "-p", "80", "-h", "/etc"), networks=("app",),
        ports=(base.PortMapping(container_port=80, host_port=port, host_ip="127.0.0.1"),),
    ))
    engine.start_container(web)
    client = engine.create_container(base.ContainerConfig(
        name="client", image=IMAGE, command=("sleep", "1000"), networks=("app",),
    ))
    engine.start_container(client)

    assert "root:x:0:0" in _get(f"http://127.0.0.1:{port}/passwd")
    hosts = engine.exec(client, ["cat", "/etc/hosts"])
    ip = engine.inspect_container(web).ip_addresses["app"]
    assert f"{ip}\tweb" in hosts.stdout.decode()
    by_name = engine.exec(client, ["timeout", "5", "wget", "-q", "-O", "-", "http://web/passwd"])
    assert b"root:x:0:0" in by_name.stdout, by_name.stderr

    engine.remove_container(web, force=True)
    assert "web" not in engine.exec(client, ["cat", "/etc/hosts"]).stdout.decode()


def test_containers_on_a_dual_stack_network_talk_over_ipv6_and_serve_on_ipv6_loopback(
    harness: Harness, engine: NativeRuntime,
) -> None:
    engine.ensure_network(base.NetworkConfig(name="dual", ipv6=True, ipv6_subnet=harness.subnet6(3)))
    port = publish_port()
    web = engine.create_container(base.ContainerConfig(
        name="web", image=IMAGE, command=("httpd", "-f", "-p", "[::]:80", "-h", "/etc"), networks=("dual",),
        ports=(base.PortMapping(container_port=80, host_port=port, host_ip="::1"),),
    ))
    engine.start_container(web)
    client = engine.create_container(base.ContainerConfig(
        name="client", image=IMAGE, command=("sleep", "1000"), networks=("dual",),
    ))
    engine.start_container(client)

    assert "root:x:0:0" in _get(f"http://[::1]:{port}/passwd")
    hosts = engine.exec(client, ["cat", "/etc/hosts"]).stdout.decode()
    web6 = next(line.split("\t")[0] for line in hosts.splitlines()
                if line.split("\t")[1:2] and line.split("\t")[1].split()[0] == "web" and ":" in line)
    assert web6.startswith(harness.subnet6(3).split("::")[0])
    assert engine.inspect_container(web).ip6_addresses == {"dual": web6}
    # by name over IPv6: busybox's ping6 resolves the AAAA answer from the hosts file
    ping = engine.exec(client, ["busybox", "ping6", "-c", "1", "-W", "3", "web"])
    assert ping.exit_code == 0, ping.stdout + ping.stderr
    assert web6.encode() in ping.stdout
    by_name = engine.exec(client, ["timeout", "5", "wget", "-q", "-O", "-", f"http://[{web6}]/passwd"])
    assert b"root:x:0:0" in by_name.stdout, by_name.stderr

    engine.remove_container(web, force=True)
    with pytest.raises(OSError):
        _get(f"http://[::1]:{port}/passwd")


def _inside(engine: NativeRuntime, cid: str, *argv: str) -> str:
    got = engine.exec(cid, list(argv))
    assert got.exit_code == 0, got.stdout + got.stderr
    return got.stdout.decode()


def test_a_running_container_connected_to_a_dual_stack_network_gets_and_gives_back_its_ipv6_address(
    harness: Harness, engine: NativeRuntime,
) -> None:
    """`docker network connect` of a running container to a dual-stack network: an IPv6 address as a
    container created there gets (in its namespace, its record, inspect, its peers' hosts files), and
    after the disconnect and the removal no address, route, neighbour or lease of it is left."""
    engine.ensure_network(base.NetworkConfig(name="v4only"))
    subnet6 = ipaddress.IPv6Network(harness.subnet6(7))
    engine.ensure_network(base.NetworkConfig(name="dual", ipv6=True, ipv6_subnet=str(subnet6)))
    web = engine.create_container(base.ContainerConfig(name="web", image=IMAGE, command=("sleep", "1000"),
                                                       networks=("dual",)))
    engine.start_container(web)
    client = engine.create_container(base.ContainerConfig(name="client", image=IMAGE, command=("sleep", "1000"),
                                                          networks=("v4only",)))
    engine.start_container(client)
    web6 = engine.inspect_container(web).ip6_addresses["dual"]

    rec = engine.containers.connect_running(client, "dual")
    client6 = rec.ip6_addresses.get("dual", "")
    assert ipaddress.IPv6Address(client6) in subnet6
    assert engine.inspect_container(client).ip6_addresses == {"dual": client6}
    doc = inspection.document(engine.containers, engine.containers.get(client))
    assert doc["NetworkSettings"]["Networks"]["dual"]["GlobalIPv6Address"] == client6
    assert f"inet6 {client6}/{subnet6.prefixlen}" in _inside(engine, client, "ip", "-6", "-o", "addr", "show", "eth1")
    assert f"{client6}\tclient" in _inside(engine, web, "cat", "/etc/hosts")
    for src, dst, addr in ((client, "web", web6), (web, "client", client6)):      # by name, both ways
        ping = _inside(engine, src, "busybox", "ping6", "-c", "1", "-W", "3", dst)
        assert addr in ping, ping

    rec = engine.containers.disconnect_running(client, "dual")
    assert (dict(rec.ip_addresses), dict(rec.ip6_addresses)) == ({"v4only": rec.ip_addresses["v4only"]}, {})
    assert engine.inspect_container(client).ip6_addresses == {}
    net6 = str(subnet6).split("::")[0]
    for what in (("addr",), ("route",), ("neigh",)):
        assert net6 not in _inside(engine, client, "ip", "-6", *what), what
    assert client6 not in _inside(engine, web, "cat", "/etc/hosts")
    assert [e.network for e in harness.manager._ipam.endpoints(container_id=client)] == ["v4only"]

    again = engine.containers.connect_running(client, "dual").ip6_addresses["dual"]
    engine.remove_container(client, force=True)
    assert [e.address6 for e in harness.manager._ipam.endpoints(network="dual")] == [web6]
    engine.remove_container(web, force=True)
    engine.remove_network("dual")
    assert [n for n in subnets.routed6() if n.overlaps(subnet6)] == []
    host_neighbours = subprocess.run(["ip", "-6", "neigh", "show"], capture_output=True, text=True,
                                     check=True).stdout
    assert [a for a in (client6, again) if a in host_neighbours] == []


def test_heal_plugs_running_containers_into_a_bridge_made_again(harness: Harness, engine: NativeRuntime) -> None:
    """`ip link del` of a network's bridge while its containers run: the kernel detaches their
    veths and keeps them, so they run on, unreachable, while ps says they run fine (and a start
    plugs in no veth whose namespace is there). heal makes the bridge again and puts every veth
    back on it, up: the container serves on its address, its published port and to its peer by
    name. A veth deleted is made again in the container's namespace with its address and its MAC,
    so the peer's ARP cache still points at it."""
    engine.ensure_network(base.NetworkConfig(name="app"))
    bridge = harness.manager.bridge_name("app")
    port = publish_port()
    web = engine.create_container(base.ContainerConfig(
        name="web", image=IMAGE, command=("httpd", "-f", "-p", "80", "-h", "/etc"), networks=("app",),
        ports=(base.PortMapping(container_port=80, host_port=port, host_ip="127.0.0.1"),),
    ))
    engine.start_container(web)
    client = engine.create_container(base.ContainerConfig(
        name="client", image=IMAGE, command=("sleep", "1000"), networks=("app",),
    ))
    engine.start_container(client)
    address = engine.inspect_container(web).ip_addresses["app"]
    veths = {cid: harness.manager.veth_name(cid, "app") for cid in (web, client)}
    mac = _inside(engine, web, "cat", "/sys/class/net/eth0/address").strip()
    assert mac == harness.manager.mac_address(web, "app")

    def serves() -> None:
        assert "root:x:0:0" in _get(f"http://127.0.0.1:{port}/passwd")
        assert "root:x:0:0" in _get(f"http://{address}/passwd")
        assert "root:x:0:0" in _inside(engine, client, "timeout", "5", "wget", "-q", "-O", "-", "http://web/passwd")

    serves()
    subprocess.run(["ip", "link", "del", bridge], check=True)
    with netlink.host() as h:
        assert all((link := h.link(v)) is not None and link.master is None for v in veths.values())
    assert {str(c.status) for c in engine.list_containers()} == {"running"}     # what ps says meanwhile

    healed = engine.heal()
    assert healed.cut_off == {}
    assert healed.made == (f"bridge {bridge}", f"container client on bridge {bridge} (veth {veths[client]})",
                           f"container web on bridge {bridge} (veth {veths[web]})")
    with netlink.host() as h:
        master = h.link(bridge)
        assert master is not None
        for v in veths.values():
            link = h.link(v)
            assert link is not None
            assert (link.master, link.up) == (master.index, True), link
    serves()

    subprocess.run(["ip", "link", "del", veths[web]], check=True)       # both ends go
    assert engine.heal().made == (f"container web on bridge {bridge} (veth {veths[web]}, made again)",)
    assert _inside(engine, web, "cat", "/sys/class/net/eth0/address").strip() == mac
    assert f"inet {address}/" in _inside(engine, web, "ip", "-o", "-4", "addr", "show", "eth0")
    serves()
    assert engine.heal() == base.Healed()


def _links(engine: NativeRuntime, cid: str) -> list[str]:
    return [line.split(":")[1].strip().split("@")[0] for line in _inside(engine, cid, "ip", "-o", "link").splitlines()]


def test_a_default_network_container_connected_and_disconnected_starts_again_and_with_no_network(
    harness: Harness, engine: NativeRuntime,
) -> None:
    """A container created without networks is on the default network, and stays on it through
    a connect to another network and its disconnect (it was left with none, and refused to start);
    disconnected from the default network too it starts with its loopback alone, as Docker's,
    also once its namespace is gone (a reboot), and can join a network again."""
    engine.ensure_network(base.NetworkConfig(name="app"))
    cid = engine.create_container(base.ContainerConfig(name="c", image=IMAGE, command=("sleep", "1000")))
    engine.start_container(cid)
    ip = engine.inspect_container(cid).ip_addresses["default"]

    rec = engine.containers.connect_running(cid, "app")
    assert rec.config.networks == ("default", "app")
    rec = engine.containers.disconnect_running(cid, "app")
    assert rec.config.networks == ("default",)
    engine.stop_container(cid, timeout=1)
    engine.start_container(cid)
    assert engine.inspect_container(cid).ip_addresses == {"default": ip}
    assert f"inet {ip}/" in _inside(engine, cid, "ip", "-4", "-o", "addr")

    rec = engine.containers.disconnect_running(cid, "default")
    assert (rec.config.networks, dict(rec.ip_addresses)) == (("none",), {})
    engine.stop_container(cid, timeout=1)
    engine.start_container(cid)
    assert _links(engine, cid) == ["lo"]
    engine.stop_container(cid, timeout=1)
    netlink.remove_netns(harness.manager.netns_path(cid))      # what a reboot takes
    engine.start_container(cid)
    assert engine.inspect_container(cid).status == base.ContainerStatus.RUNNING
    assert _links(engine, cid) == ["lo"]
    rec = engine.containers.connect_running(cid, "app")
    assert (rec.config.networks, list(rec.ip_addresses)) == (("app",), ["app"])
    assert len(_links(engine, cid)) == 2
    engine.remove_container(cid, force=True)
    engine.remove_network("app")


def test_a_peer_reaches_a_container_by_its_short_id_as_dockers_embedded_dns_answers_it(
    harness: Harness, engine: NativeRuntime,
) -> None:
    """Docker answers a container's short id (its 12 first hex digits) on the networks it is on:
    its peers' hosts files name it so, beside its name and aliases, until it leaves."""
    engine.ensure_network(base.NetworkConfig(name="app"))
    web = engine.create_container(base.ContainerConfig(name="web", image=IMAGE, command=("sleep", "1000"),
                                                       networks=("app",), aliases=("api",)))
    engine.start_container(web)
    client = engine.create_container(base.ContainerConfig(name="client", image=IMAGE, command=("sleep", "1000"),
                                                          networks=("app",)))
    engine.start_container(client)
    ip = engine.inspect_container(web).ip_addresses["app"]
    assert f"{ip}\tweb api {web[:12]}\n" in _inside(engine, client, "cat", "/etc/hosts")
    ping = _inside(engine, client, "busybox", "ping", "-c", "1", "-W", "3", web[:12])
    assert ip in ping, ping
    engine.containers.disconnect_running(web, "app")
    assert web[:12] not in _inside(engine, client, "cat", "/etc/hosts")
    engine.remove_container(web, force=True)
    engine.remove_container(client, force=True)
    engine.remove_network("app")


def _served(url: str) -> str:
    """`_get(url)` once the container's server listens (up to 10 s after its start)."""
    import time
    import urllib.error

    deadline = time.monotonic() + 10
    while True:
        try:
            return _get(url)
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_a_start_refuses_a_published_port_another_program_listens_on_and_leaves_it_stopped(
        harness: Harness, engine: NativeRuntime) -> None:
    """As `docker start` fails ("Error starting userland proxy: listen tcp4 0.0.0.0:PORT: bind:
    address already in use") when a program of the host took the container's published port
    while it was not running: a created container stays created, an exited one exited, with no
    rule forwarding the port and, of the exited one, no process; once the port is free it starts
    (the start took the port over silently: its rules sent the port's traffic past the program)."""
    import socket

    from reconciler.runtime import errors
    from tests.helpers import host

    port = publish_port()
    web = engine.create_container(base.ContainerConfig(
        name="web", image=IMAGE, command=("httpd", "-f", "-p", "80", "-h", "/etc"),
        ports=(base.PortMapping(container_port=80, host_port=port, host_ip="127.0.0.1"),),
    ))

    def refused(status: str) -> None:
        with socket.socket() as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)     # as servers do: no TIME_WAIT holds it after
            listener.bind(("127.0.0.1", port))
            listener.listen()
            with pytest.raises(errors.Conflict, match=f"host port 127.0.0.1:{port}/tcp is in use by another program"):
                engine.start_container(web)
            rec = engine.containers.get(web)
            assert rec.status == status
            assert harness.manager._ipam.forwarded_ports() == []
            assert rec.published == ()
            if status == "exited":
                assert rec.id not in host.conmon_pids(harness.config.run_dir)      # no runtime container made
            listener.settimeout(0.5)
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                listener.accept()[0].close()        # the program's port reaches the program

    refused("created")
    engine.start_container(web)
    assert "root:x:0:0" in _served(f"http://127.0.0.1:{port}/passwd")
    engine.stop_container(web, timeout=0)
    refused("exited")
    engine.start_container(web)
    assert "root:x:0:0" in _served(f"http://127.0.0.1:{port}/passwd")


def test_a_domain_name_and_a_joined_containers_host_name_are_as_on_dockerd(
        harness: Harness, engine: NativeRuntime) -> None:
    """dockerd 20.10 (checked on the host): `-h myh --domainname dom.test` writes `IP
    myh.dom.test myh` in the container's hosts file (`hostname -f` says the full name); a container
    on `--network container:X` gets X's host name and domain name (the hosts file it shares with X
    names that one: `hostname -i` answers), its NetworkMode names X by its full id, and a host name
    of its own is refused. The domain was left out, and the joiner kept a host name of its own,
    which the shared hosts file did not name (`hostname -i` failed)."""
    from reconciler.runtime import errors

    web = engine.create_container(base.ContainerConfig(
        name="web", image=IMAGE, command=("sleep", "1000"), hostname="myh", domainname="dom.test"))
    engine.start_container(web)
    ip = engine.inspect_container(web).ip_addresses["default"]
    assert f"{ip}\tmyh.dom.test myh web\n" in _inside(engine, web, "cat", "/etc/hosts")
    assert _inside(engine, web, "hostname", "-f").strip() == "myh.dom.test"

    side = engine.create_container(base.ContainerConfig(
        name="side", image=IMAGE, command=("sleep", "1000"), networks=("container:web",)))
    engine.start_container(side)
    assert _inside(engine, side, "hostname").strip() == "myh"
    assert _inside(engine, side, "hostname", "-i").strip() == ip
    assert _inside(engine, side, "cat", "/proc/sys/kernel/domainname").strip() == "dom.test"
    doc = engine.inspect_document(side)
    assert doc["HostConfig"]["NetworkMode"] == f"container:{web}"
    assert (doc["Config"]["Hostname"], doc["Config"]["Domainname"]) == ("myh", "dom.test")
    with pytest.raises(errors.InvalidArgument, match="conflicting options: hostname and the network mode"):
        engine.create_container(base.ContainerConfig(name="own", image=IMAGE, command=("sleep", "1000"),
                                                     networks=("container:web",), hostname="own"))
