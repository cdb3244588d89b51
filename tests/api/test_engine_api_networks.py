"""Networks through the native engine's Engine API as docker users and docker-py see them, each
answer checked against the kernel or the engine's records (dockerd 20.10 is the model):

- a container on the default network that was connected to another and disconnected again
  starts again, on its default network; disconnected from every network it starts with none
  (dockerd: loopback only), through `docker restart` and through `reconcile start`;
- network ids are Docker's (64 hex digits, stable), one id in create, list, inspect, connect,
  disconnect, remove, events and the container's endpoints, resolved as dockerd resolves them
  (full id, name, unique prefix);
- network inspect has `Containers` and `Created`; a container's endpoints their gateway, prefix
  length, MAC (the kernel's), network id, endpoint id and aliases (with the short id and the
  host name, which peers resolve); inspect's top-level addresses are the default network's;
- the native default network is Docker's `bridge` (its name `default` accepted too), `host`
  and `none` are listed as predefined networks; none of them is created, removed or pruned,
  and a network any container is on is not pruned.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from typing import Any

import pytest

from tests.api.test_engine_api import docker
from tests.api.test_engine_api import engine_api as engine_api  # the fixture
from tests.api.test_engine_api import pytestmark as pytestmark  # root, registry, docker CLI
from tests.api.test_engine_api_live import _events
from tests.helpers.host import Host

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _inspect(sock: str, *args: str) -> Any:
    return json.loads(docker(sock, "inspect", *args).stdout)[0]


def _net(sock: str, name: str) -> Any:
    return json.loads(docker(sock, "network", "inspect", name).stdout)[0]


def _links(sock: str, container: str) -> list[str]:
    """The interfaces in the container's network namespace, as the kernel lists them."""
    out = docker(sock, "exec", container, "ip", "-o", "link").stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def _mac(sock: str, container: str, ifname: str) -> str:
    return docker(sock, "exec", container, "cat", f"/sys/class/net/{ifname}/address").stdout.strip()


def test_a_container_disconnected_from_a_network_it_was_connected_to_starts_again(
        engine_api: str, host: Host, busybox_image: str) -> None:
    n1 = f"{host.config.name_prefix}n1"
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "network", "create", n1)
    docker(engine_api, "run", "-d", "--name", "c", busybox_image, "sleep", "300")
    on_default = _inspect(engine_api, "c")["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]

    docker(engine_api, "network", "connect", n1, "c")
    assert sorted(_inspect(engine_api, "c")["NetworkSettings"]["Networks"]) == sorted(["bridge", n1])
    docker(engine_api, "network", "disconnect", n1, "c")
    docker(engine_api, "restart", "-t", "1", "c")           # dockerd: running, on its bridge
    doc = _inspect(engine_api, "c")
    assert doc["State"]["Status"] == "running"
    assert list(doc["NetworkSettings"]["Networks"]) == ["bridge"]
    assert doc["HostConfig"]["NetworkMode"] == "default"
    ip = doc["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    assert ip == on_default
    assert f"inet {ip}/" in docker(engine_api, "exec", "c", "ip", "-4", "-o", "addr").stdout

    # disconnected from the default network too: no network left, and it starts with none, as dockerd
    docker(engine_api, "network", "disconnect", "bridge", "c")
    assert _inspect(engine_api, "c")["NetworkSettings"]["Networks"] == {}
    assert _links(engine_api, "c") == ["lo"]
    docker(engine_api, "restart", "-t", "1", "c")
    doc = _inspect(engine_api, "c")
    assert (doc["State"]["Status"], doc["NetworkSettings"]["Networks"]) == ("running", {})
    assert _links(engine_api, "c") == ["lo"]

    # the reconciler's own CLI starts it too
    docker(engine_api, "stop", "-t", "1", "c")
    assert host.cli("start", "c") == 0
    assert _inspect(engine_api, "c")["State"]["Status"] == "running"
    assert _links(engine_api, "c") == ["lo"]

    docker(engine_api, "network", "connect", n1, "c")      # and it can join one again
    assert list(_inspect(engine_api, "c")["NetworkSettings"]["Networks"]) == [n1]
    assert len(_links(engine_api, "c")) == 2
    docker(engine_api, "rm", "-f", "c")
    docker(engine_api, "network", "rm", n1)


def test_a_created_container_connected_before_its_start_keeps_its_default_network(
        engine_api: str, host: Host, busybox_image: str) -> None:
    """`docker create` (default network), `network connect n1`, `start`: on both, as dockerd."""
    n1 = f"{host.config.name_prefix}n1"
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "network", "create", n1)
    docker(engine_api, "create", "--name", "c", busybox_image, "sleep", "300")
    docker(engine_api, "network", "connect", n1, "c")
    docker(engine_api, "start", "c")
    networks = _inspect(engine_api, "c")["NetworkSettings"]["Networks"]
    assert sorted(networks) == sorted(["bridge", n1])
    assert len(_links(engine_api, "c")) == 3
    docker(engine_api, "rm", "-f", "c")
    docker(engine_api, "network", "rm", n1)


def test_docker_py_creates_finds_connects_and_removes_networks_by_id(
        engine_api: str, host: Host, busybox_image: str) -> None:
    docker_py = pytest.importorskip("docker")
    client = docker_py.DockerClient(base_url=f"unix://{engine_api}", version="1.41")
    name = f"{host.config.name_prefix}py"
    try:
        client.images.pull(busybox_image)
        net = client.networks.create(name, labels={"who": "py"})     # raised NotFound: its id was not found
        assert HEX64.match(net.id), net.id
        assert net.name == name
        assert client.networks.get(name).id == net.id
        assert client.networks.get(net.id[:12]).id == net.id      # a unique prefix, as dockerd
        assert [n.id for n in client.networks.list(ids=[net.id])] == [net.id]
        assert [n.id for n in client.networks.list(names=[name])] == [net.id]
        assert client.networks.get(net.id).attrs["Created"].endswith("Z")

        c = client.containers.run(busybox_image, ["sleep", "300"], name="pyc", detach=True)
        net.connect(c, aliases=["web"])
        net.reload()
        assert [x.id for x in net.containers] == [c.id]
        c.reload()
        ep = c.attrs["NetworkSettings"]["Networks"][name]
        assert ep["NetworkID"] == net.id
        assert ep["Aliases"] == ["web", c.id[:12]]
        member = net.attrs["Containers"][c.id]
        assert member["Name"] == "pyc"
        assert member["EndpointID"] == ep["EndpointID"]
        assert member["IPv4Address"] == f"{ep['IPAddress']}/{ep['IPPrefixLen']}"
        assert member["MacAddress"] == ep["MacAddress"]

        net.disconnect(c)
        net.reload()
        assert net.containers == []
        c.reload()
        assert list(c.attrs["NetworkSettings"]["Networks"]) == ["bridge"]
        c.remove(force=True)
        idle = client.networks.create(f"{name}i")
        assert client.networks.prune(filters={"label": "who=py"}) == {"NetworksDeleted": [name]}
        assert client.networks.prune() == {"NetworksDeleted": [idle.name]}
        assert sorted(n.name for n in client.networks.list()) == ["bridge", "host", "none"]
    finally:
        client.close()


def test_network_ids_resolve_as_dockerd_resolves_them(engine_api: str, host: Host, busybox_image: str) -> None:
    a, b = f"{host.config.name_prefix}a", f"{host.config.name_prefix}b"
    since = time.time()
    made = docker(engine_api, "network", "create", a).stdout.strip()
    assert HEX64.match(made), made
    docker(engine_api, "network", "create", b)
    listed = {n["Name"]: n["ID"] for n in map(json.loads, docker(
        engine_api, "network", "ls", "--no-trunc", "--format", "{{json .}}").stdout.splitlines())}
    assert listed[a] == made
    assert _net(engine_api, made)["Name"] == a
    assert _net(engine_api, made[:5])["Id"] == made           # a prefix no other id shares
    assert docker(engine_api, "network", "ls", "-q", "--filter", f"id={made[:8]}").stdout.split() == [made[:12]]
    assert _net(engine_api, a)["Id"] == _net(engine_api, a)["Id"] == made      # stable
    missing = docker(engine_api, "network", "inspect", "f" * 64, check=False)
    assert missing.returncode != 0
    assert "not found" in missing.stderr

    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "run", "-d", "--name", "byid", "--network", made[:12], busybox_image, "sleep", "300")
    doc = _inspect(engine_api, "byid")
    assert list(doc["NetworkSettings"]["Networks"]) == [a]
    assert doc["NetworkSettings"]["Networks"][a]["NetworkID"] == made
    assert "bridge" not in docker(engine_api, "network", "ls", "--format", "{{.Name}}").stdout.split()
    docker(engine_api, "network", "connect", "bridge", "byid")     # no container made it yet: made now
    assert sorted(_inspect(engine_api, "byid")["NetworkSettings"]["Networks"]) == sorted([a, "bridge"])
    assert sorted(docker(engine_api, "network", "ls", "-q", "--filter", "type=custom").stdout.split()) == sorted(
        [made[:12], _net(engine_api, b)["Id"][:12]])
    b_id = _net(engine_api, b)["Id"]
    docker(engine_api, "network", "connect", b_id, "byid")
    assert doc["Id"] in _net(engine_api, b)["Containers"]
    docker(engine_api, "network", "disconnect", b_id[:12], "byid")
    assert _net(engine_api, b)["Containers"] == {}
    actors = {(e["Action"], e["Actor"]["ID"]) for e in _events(engine_api, since, "type=network")}
    assert {("create", made), ("connect", b_id), ("disconnect", b_id)} <= actors
    docker(engine_api, "rm", "-f", "byid")
    docker(engine_api, "network", "rm", made[:12], b_id)
    assert docker(engine_api, "network", "ls", "-q", "--filter", f"name={host.config.name_prefix}").stdout == ""


def test_network_and_container_inspect_say_what_the_kernel_has(engine_api: str, host: Host,
                                                                busybox_image: str) -> None:
    n1 = f"{host.config.name_prefix}n1"
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "network", "create", "--subnet", host.subnet, n1)
    docker(engine_api, "run", "-d", "--name", "one", busybox_image, "sleep", "300")
    docker(engine_api, "run", "-d", "--name", "two", "--network", n1, "--network-alias", "api", "--hostname", "twohost",
           busybox_image, "sleep", "300")
    docker(engine_api, "network", "connect", n1, "one")
    one, two = _inspect(engine_api, "one"), _inspect(engine_api, "two")
    net, bridge = _net(engine_api, n1), _net(engine_api, "bridge")

    # network inspect: when it was made, and who is on it, as the container's own endpoints say
    assert net["Created"].endswith("Z")
    assert net["Created"] != "0001-01-01T00:00:00Z"
    assert sorted(net["Containers"]) == sorted([one["Id"], two["Id"]])
    assert list(bridge["Containers"]) == [one["Id"]]
    for doc, on in ((one, net), (two, net), (one, bridge)):
        ep = doc["NetworkSettings"]["Networks"][on["Name"]]
        member = on["Containers"][doc["Id"]]
        subnet = ipaddress.ip_network(on["IPAM"]["Config"][0]["Subnet"])
        assert ipaddress.ip_address(ep["IPAddress"]) in subnet
        assert (ep["NetworkID"], ep["Gateway"], ep["IPPrefixLen"]) == (
            on["Id"], on["IPAM"]["Config"][0]["Gateway"], subnet.prefixlen)
        assert HEX64.match(ep["EndpointID"])
        assert member == {"Name": doc["Name"].lstrip("/"), "EndpointID": ep["EndpointID"],
                          "MacAddress": ep["MacAddress"], "IPv4Address": f"{ep['IPAddress']}/{subnet.prefixlen}",
                          "IPv6Address": ""}
        # the MAC the kernel gave the interface that holds the address
        addrs = docker(engine_api, "exec", doc["Name"].lstrip("/"), "ip", "-4", "-o", "addr").stdout
        ifname = next(line.split()[1] for line in addrs.splitlines() if f" {ep['IPAddress']}/" in line)
        assert ep["MacAddress"] == _mac(engine_api, doc["Name"].lstrip("/"), ifname)
    assert one["NetworkSettings"]["Networks"][n1]["Aliases"] == [one["Id"][:12]]
    # dockerd adds the short id and the host name to an endpoint's aliases on a user-defined network
    assert two["NetworkSettings"]["Networks"][n1]["Aliases"] == ["api", two["Id"][:12], "twohost"]
    # and, as dockerd 28, the names its peers resolve there (none on the default bridge)
    assert one["NetworkSettings"]["Networks"][n1]["DNSNames"] == ["one", one["Id"][:12]]
    assert two["NetworkSettings"]["Networks"][n1]["DNSNames"] == ["two", "api", two["Id"][:12], "twohost"]
    assert one["NetworkSettings"]["Networks"]["bridge"]["DNSNames"] is None

    # top level: the default network's endpoint, as dockerd fills it for the default bridge
    settings, on_bridge = one["NetworkSettings"], one["NetworkSettings"]["Networks"]["bridge"]
    for key in ("IPAddress", "Gateway", "IPPrefixLen", "MacAddress", "EndpointID", "GlobalIPv6Address"):
        assert settings[key] == on_bridge[key], key
    assert settings["Bridge"] == ""                     # dockerd's without --bridge
    assert (two["NetworkSettings"]["IPAddress"], two["NetworkSettings"]["EndpointID"]) == ("", "")

    # a peer resolves the short id on a network they share, as dockerd's embedded DNS answers it
    ping = docker(engine_api, "exec", "two", "busybox", "ping", "-c", "1", "-W", "3", one["Id"][:12])
    assert one["NetworkSettings"]["Networks"][n1]["IPAddress"] in ping.stdout
    ping = docker(engine_api, "exec", "one", "busybox", "ping", "-c", "1", "-W", "3", "twohost")
    assert two["NetworkSettings"]["Networks"][n1]["IPAddress"] in ping.stdout
    docker(engine_api, "rm", "-f", "one", "two")
    docker(engine_api, "network", "rm", n1)


def test_a_stopped_container_joins_and_leaves_a_network_at_its_next_start(
        engine_api: str, host: Host, busybox_image: str) -> None:
    """As dockerd: `docker network connect` of a stopped container is recorded for its next start
    (inspect lists the network, no address yet; the start gives it an interface there), and so is
    a disconnect (the start has none there); by the network's id prefix too."""
    n1 = f"{host.config.name_prefix}n1"
    docker(engine_api, "pull", busybox_image)
    nid = docker(engine_api, "network", "create", "--subnet", host.subnet, n1).stdout.strip()
    sid = docker(engine_api, "run", "-d", "--name", "s", busybox_image, "sleep", "300").stdout.strip()
    docker(engine_api, "stop", "-t", "0", "s")

    docker(engine_api, "network", "connect", "--alias", "late", nid[:10], "s")
    nets = _inspect(engine_api, "s")["NetworkSettings"]["Networks"]
    assert sorted(nets) == sorted(["bridge", n1])
    assert (nets[n1]["IPAddress"], nets[n1]["Aliases"]) == ("", ["late", sid[:12]])
    assert sid not in _net(engine_api, n1)["Containers"]      # no endpoint until its start
    docker(engine_api, "start", "s")
    ip = _inspect(engine_api, "s")["NetworkSettings"]["Networks"][n1]["IPAddress"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(host.subnet)
    assert f"inet {ip}/" in docker(engine_api, "exec", "s", "ip", "-4", "-o", "addr").stdout

    docker(engine_api, "stop", "-t", "0", "s")
    docker(engine_api, "network", "disconnect", n1, "s")
    assert list(_inspect(engine_api, "s")["NetworkSettings"]["Networks"]) == ["bridge"]
    docker(engine_api, "start", "s")
    assert f"inet {ip}/" not in docker(engine_api, "exec", "s", "ip", "-4", "-o", "addr").stdout
    docker(engine_api, "rm", "-f", "s")
    docker(engine_api, "network", "rm", n1)


def test_the_default_network_is_dockers_bridge_and_host_and_none_are_listed(
        engine_api: str, host: Host, busybox_image: str) -> None:
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "run", "-d", "--name", "web", "--network", "bridge", busybox_image, "sleep", "300")
    docker(engine_api, "run", "-d", "--name", "lone", "--network", "none", busybox_image, "sleep", "300")
    listed = {n["Name"]: n for n in map(json.loads, docker(
        engine_api, "network", "ls", "--no-trunc", "--format", "{{json .}}").stdout.splitlines())}
    assert {k: listed[k]["Driver"] for k in ("bridge", "host", "none")} == \
        {"bridge": "bridge", "host": "host", "none": "null"}
    assert all(HEX64.match(n["ID"]) for n in listed.values())
    assert "default" not in listed
    bridge = _net(engine_api, "bridge")
    assert _net(engine_api, "default")["Id"] == bridge["Id"]        # the native name, accepted too
    assert bridge["Options"]["com.docker.network.bridge.default_bridge"] == "true"
    web = _inspect(engine_api, "web")
    assert web["NetworkSettings"]["Networks"]["bridge"]["NetworkID"] == bridge["Id"]
    ip = docker(engine_api, "inspect", "-f", "{{.NetworkSettings.Networks.bridge.IPAddress}}", "web").stdout.strip()
    assert f"inet {ip}/" in docker(engine_api, "exec", "web", "ip", "-4", "-o", "addr").stdout
    assert docker(engine_api, "ps", "--filter", "network=bridge", "--format", "{{.Names}}").stdout.split() == ["web"]
    assert docker(engine_api, "ps", "--filter", "network=none", "--format", "{{.Names}}").stdout.split() == ["lone"]
    assert docker(engine_api, "ps", "--format", "{{.Networks}}", "--filter", "name=web").stdout.strip() == "bridge"
    none = _net(engine_api, "none")
    assert list(none["Containers"]) == [_inspect(engine_api, "lone")["Id"]]
    assert list(_inspect(engine_api, "lone")["NetworkSettings"]["Networks"]) == ["none"]
    assert _net(engine_api, "host")["Containers"] == {}

    for name in ("bridge", "default", "host", "none"):
        made = docker(engine_api, "network", "create", name, check=False)
        assert made.returncode != 0
        assert "operation is not permitted on predefined" in made.stderr, (name, made.stderr)
        gone = docker(engine_api, "network", "rm", name, check=False)
        assert gone.returncode != 0
        assert "is a pre-defined network and cannot be removed" in gone.stderr, (name, gone.stderr)
    docker(engine_api, "rm", "-f", "web", "lone")


def test_prune_keeps_predefined_networks_and_every_network_a_container_is_on(
        engine_api: str, host: Host, busybox_image: str) -> None:
    used, idle, labelled = (f"{host.config.name_prefix}{s}" for s in ("u", "i", "l"))
    docker(engine_api, "pull", busybox_image)
    for name in (used, idle):
        docker(engine_api, "network", "create", name)
    docker(engine_api, "network", "create", "--label", "keep=1", labelled)
    docker(engine_api, "run", "-d", "--name", "c", busybox_image, "sleep", "300")      # default network
    docker(engine_api, "network", "connect", used, "c")

    pruned = docker(engine_api, "network", "prune", "-f", "--filter", "label!=keep").stdout
    assert pruned.split() == ["Deleted", "Networks:", idle], pruned
    names = docker(engine_api, "network", "ls", "--format", "{{.Name}}").stdout.split()
    assert sorted(names) == sorted(["bridge", "host", "none", used, labelled])

    docker(engine_api, "rm", "-f", "c")         # nothing on the default network now: still never pruned
    docker(engine_api, "system", "prune", "-f")
    names = docker(engine_api, "network", "ls", "--format", "{{.Name}}").stdout.split()
    assert sorted(names) == ["bridge", "host", "none"]
    docker(engine_api, "run", "--rm", busybox_image, "true")     # the default network still serves


def test_a_mac_asked_for_on_a_network_named_by_id_prefix_is_the_one_listed_and_seen(
        engine_api: str, host: Host, busybox_image: str) -> None:
    """`EndpointsConfig` keyed by a network's id prefix, with a MacAddress: the settings follow
    the network's name (not refused as settings of a network the container does not join), and
    the list shows the MAC asked for, which inspect and the kernel show too."""
    docker_py = pytest.importorskip("docker")
    docker(engine_api, "pull", busybox_image)
    net_id = docker(engine_api, "network", "create", "--subnet", host.subnet, "macnet").stdout.strip()
    client = docker_py.APIClient(base_url=f"unix://{engine_api}", version="1.41")
    try:
        wanted = "02:42:0a:00:00:05"
        created = client.create_container(
            busybox_image, ["sleep", "600"], name="macc", host_config=client.create_host_config(network_mode=net_id[:12]),
            networking_config=client.create_networking_config({net_id[:12]: client.create_endpoint_config(
                mac_address=wanted)}))
        client.start(created["Id"])
        listed = client.containers(filters={"name": "macc"})[0]["NetworkSettings"]["Networks"]
        assert listed["macnet"]["MacAddress"] == wanted
        assert _inspect(engine_api, "macc")["NetworkSettings"]["Networks"]["macnet"]["MacAddress"] == wanted
        assert _mac(engine_api, "macc", "eth0") == wanted
    finally:
        client.close()
        docker(engine_api, "rm", "-f", "macc", check=False)
        docker(engine_api, "network", "rm", "macnet", check=False)


def test_the_network_list_filters_as_dockerd_and_refuses_what_it_does_not_know(
        engine_api: str, host: Host, busybox_image: str) -> None:
    """`docker network ls -f dangling=true | xargs docker network rm` must act on the unused ones
    only, and a filter the list does not have is refused, not ignored (it would widen a script)."""
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "network", "create", "--subnet", host.subnet, "inuse")
    docker(engine_api, "network", "create", "unused")
    docker(engine_api, "run", "-d", "--name", "on", "--network", "inuse", busybox_image, "sleep", "600")
    try:
        def names(*filters: str) -> list[str]:
            args = [a for f in filters for a in ("-f", f)]
            return sorted(docker(engine_api, "network", "ls", *args, "--format", "{{.Name}}").stdout.split())

        assert names("dangling=true") == ["unused"]
        assert "inuse" in names("dangling=false")
        assert "unused" not in names("dangling=false")
        assert names("scope=local", "type=custom") == ["inuse", "unused"]
        assert names("scope=swarm") == []
        refused = docker(engine_api, "network", "ls", "-f", "bogus=1", check=False)
        assert refused.returncode != 0
        assert "Invalid filter 'bogus'" in refused.stderr
    finally:
        docker(engine_api, "rm", "-f", "on", check=False)
        docker(engine_api, "network", "rm", "inuse", "unused", check=False)


def _aliases(sock: str, container: str) -> dict[str, Any]:
    """Each network's endpoint aliases of `container`, as inspect shows them."""
    return {n: ep["Aliases"] for n, ep in _inspect(sock, container)["NetworkSettings"]["Networks"].items()}


def _hosts_names(sock: str, container: str) -> set[str]:
    out = docker(sock, "exec", container, "cat", "/etc/hosts").stdout
    return {name for line in out.splitlines() if line and not line.startswith("#") for name in line.split()[1:]}


def test_an_alias_is_its_endpoints_own_as_on_dockerd(engine_api: str, host: Host, busybox_image: str) -> None:
    """dockerd 20.10 keeps aliases per endpoint: `network connect --alias gamma n1 c` names c
    `gamma` on n1 alone, and the disconnect takes it away; the default bridge has none (inspect:
    null; an alias there is a 400). The alias was the container's, on all its networks: inspect
    listed it on `bridge` and n2, the hosts files of containers on those networks named it, and it
    stayed after the disconnect. A created container connected before its start (compose's way)
    keeps each network's aliases on that network."""
    n1, n2 = f"{host.config.name_prefix}n1", f"{host.config.name_prefix}n2"
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "network", "create", n1)
    docker(engine_api, "network", "create", n2)
    cid = docker(engine_api, "run", "-d", "--name", "c", busybox_image, "sleep", "300").stdout.strip()
    docker(engine_api, "network", "connect", "--alias", "gamma", n1, "c")
    docker(engine_api, "network", "connect", "--alias", "delta", n2, "c")
    assert _aliases(engine_api, "c") == {"bridge": None, n1: ["gamma", cid[:12]], n2: ["delta", cid[:12]]}
    docker(engine_api, "run", "-d", "--name", "peer2", "--network", n2, busybox_image, "sleep", "300")
    docker(engine_api, "run", "-d", "--name", "peer0", busybox_image, "sleep", "300")
    assert {"delta", "c"} <= _hosts_names(engine_api, "peer2")
    assert "gamma" not in _hosts_names(engine_api, "peer2")
    assert {"gamma", "delta"}.isdisjoint(_hosts_names(engine_api, "peer0"))
    lookup = docker(engine_api, "exec", "peer2", "busybox", "nslookup", "delta", "127.0.0.11").stdout
    assert _inspect(engine_api, "c")["NetworkSettings"]["Networks"][n2]["IPAddress"] in lookup

    docker(engine_api, "network", "disconnect", n1, "c")
    assert _aliases(engine_api, "c") == {"bridge": None, n2: ["delta", cid[:12]]}
    docker(engine_api, "network", "connect", n1, "c")       # again, without an alias: none of the old one
    assert _aliases(engine_api, "c")[n1] == [cid[:12]]
    refused = docker(engine_api, "network", "connect", "--alias", "z", "bridge", "peer2", check=False)
    assert refused.returncode != 0
    assert "network-scoped alias is supported only for containers in user defined networks" in refused.stderr

    kid = docker(engine_api, "create", "--name", "k", "--network", n1, "--network-alias", "a1", busybox_image,
                 "sleep", "300").stdout.strip()
    docker(engine_api, "network", "connect", "--alias", "a2", n2, "k")
    docker(engine_api, "start", "k")
    assert _aliases(engine_api, "k") == {n1: ["a1", kid[:12]], n2: ["a2", kid[:12]]}
    assert "a1" not in _hosts_names(engine_api, "peer2")
    assert "a2" in _hosts_names(engine_api, "peer2")
    for name in ("c", "peer2", "peer0", "k"):
        docker(engine_api, "rm", "-f", name)
    docker(engine_api, "network", "rm", n1, n2)


def test_what_the_native_engine_has_not_is_refused_naming_it_not_dropped(
        engine_api: str, host: Host, busybox_image: str) -> None:
    """A network create's IPAM range and reserved addresses, and a run's legacy links on the
    default bridge, were taken and dropped: a network allocating from its whole subnet, a
    container without its link. Each
    is a 400 naming what the engine has not (nothing made); `--attachable`, which the engine has
    nothing more to do for on one host, is recorded and shown as dockerd shows it."""
    name = f"{host.config.name_prefix}n"
    for flags, words in ((("--ip-range", host.subnet.replace(".0/24", ".16/28")), "IPAM.Config IPRange"),
                         (("--aux-address", f"gw2={host.subnet.replace('.0/24', '.9')}"), "IPAM.Config AuxiliaryAddresses"),
                         (("--ipam-driver", "other"), "IPAM.Driver 'other'"),
                         (("--ipam-opt", "a=b"), "IPAM.Options")):
        refused = docker(engine_api, "network", "create", "--subnet", host.subnet, *flags, name, check=False)
        assert refused.returncode != 0, flags
        assert words in refused.stderr, (flags, refused.stderr)
        assert "is not supported" in refused.stderr
    assert name not in docker(engine_api, "network", "ls", "--format", "{{.Name}}").stdout.split()

    docker(engine_api, "network", "create", "--attachable", name)
    assert _net(engine_api, name)["Attachable"] is True
    docker(engine_api, "network", "rm", name)

    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "run", "-d", "--name", "db", busybox_image, "sleep", "300")
    linked = docker(engine_api, "run", "-d", "--name", "app", "--link", "db:database", busybox_image, "sleep", "300",
                    check=False)
    assert linked.returncode != 0
    assert "HostConfig.Links (docker run --link) on the default bridge, host or none is not supported" in linked.stderr
    assert "app" not in docker(engine_api, "ps", "-a", "--format", "{{.Names}}").stdout.split()
    docker(engine_api, "rm", "-f", "db")


def test_a_run_on_a_network_that_is_not_there_says_so_and_pulls_nothing(
        engine_api: str, host: Host, busybox_image: str) -> None:
    """`docker run --network typo IMG` said "Unable to find image 'IMG' locally" and tried the
    registry: the create's 404 (the network's) is what the docker CLI takes for a missing image.
    Now it is refused as dockerd refuses it, `network typo not found`, with no pull (an image
    built or tagged here only could not be found anywhere), and nothing is made. The same for a
    container to join that is not there (`--network container:X`)."""
    docker(engine_api, "pull", busybox_image)
    local = f"127.0.0.1:1/{host.config.name_prefix}/local:1"   # in no registry (a pull goes nowhere but loopback)
    docker(engine_api, "tag", busybox_image, local)
    for network, words in (("nosuchnet", "network nosuchnet not found"),
                           ("container:nosuchctr", "nosuchctr")):
        ran = docker(engine_api, "run", "--name", "typo", "--network", network, local, "true", check=False)
        assert ran.returncode == 125, ran.stderr
        assert words in ran.stderr
        assert "Unable to find image" not in ran.stderr
        assert "pulling" not in ran.stderr
        assert docker(engine_api, "ps", "-aq").stdout.strip() == ""
    docker(engine_api, "rmi", local)


def test_disconnect_force_removes_the_endpoint_a_container_the_engine_no_longer_has_left(
        engine_api: str, host: Host) -> None:
    """`docker network disconnect -f NET NAME` of a container the engine has no record of (a
    process killed between its removal and its detach left its endpoint): removed, as dockerd's
    ForceEndpointDelete (its veth, namespace and address gone, the network removable again);
    without -f, "No such container". `Force` was not read: the endpoint stayed."""
    from pathlib import Path

    from reconciler.runtime.native.network.network import NetworkManager

    net = f"{host.config.name_prefix}g"
    docker(engine_api, "network", "create", net)
    ghost = "d" * 64
    manager = NetworkManager(host.config)
    manager.attach(ghost, name="ghost", hostname="ghost", networks=[net])
    try:
        veth = manager.veth_name(ghost, net)
        assert Path("/sys/class/net", veth).exists()

        plain = docker(engine_api, "network", "disconnect", net, "ghost", check=False)
        assert plain.returncode != 0
        assert "No such container: ghost" in plain.stderr
        docker(engine_api, "network", "disconnect", "-f", net, "ghost")
        assert manager._ipam.endpoints(network=net) == []
        assert not Path("/sys/class/net", veth).exists()
        assert not manager.netns_path(ghost).exists()
        docker(engine_api, "network", "rm", net)
    finally:
        manager.detach(ghost)           # (what a failure left: the host fixture then removes the network)
