"""Persistent network records and address management in the engine's sqlite DB.

What host-local IPAM keeps in one file per address (shared/reference/runtime-internals.md §6.2)
lives here in tables, each change one `BEGIN IMMEDIATE` transaction, so two processes creating
containers at once can never hand out the same address, subnet or host port:

    net_networks    name, bridge, subnet, gateway, internal, mtu, labels, last allocated address,
                    Docker's `attachable` flag as created;
                    for a dual-stack network its IPv6 /64, gateway and last allocated IPv6 address
    net_containers  one row per attached container: name, hostname, aliases (on every network
                    it joins), netns path,
                    `resolve` (JSON: its extra hosts, nameservers, search domains and domain name), and
                    `forwarding`: whether its published ports are forwarded (while it runs)
    net_endpoints   (network, address) -> container, its interface name and host-side veth,
                    and its IPv6 address on a dual-stack network; the interface's own settings
                    asked for: its MAC address (one endpoint's per network), extra link-local
                    addresses (JSON) and gateway priority; its aliases on that network alone
                    (JSON: Docker's are an endpoint's, `network connect --alias`)
    net_ports       published ports (protocol, host ip, host port) -> container endpoint: the
                    container's gateway endpoint (`port_endpoint`), moved with it by a connect
                    or disconnect; none (address '') while the container has no endpoint on a
                    network with a way out (none, or internal ones only: Docker's rule). A port
                    is forwarded while it has an address and its container `forwarding`; else
                    the host port is held for the container, with no rule, until another
                    container asks for that very port: one that does not run gives it up
                    (`_yield_ports`), as Docker binds a port at a container's start, and takes
                    it back at its own start if none that runs holds it then (`take_ports`)

Allocation is round robin from gateway + 1 to the last usable address (like host-local), so a
just-released address is not handed out again at once. A new network's subnet never overlaps
what the host uses outside these records (`HostNetwork`, read by the caller from netlink): the
pool skips every such address and route, and an explicit subnet on an interface the engine did
not make is refused, naming the interface. The records are the source of truth the
firewall ruleset, hosts files and start-up recovery are rebuilt from.

IPv6 (`ipv6: true`): a network's /64 is the manifest's or one of the ULA pool fd00::/8 (RFC 4193:
a random 40-bit global ID per network, so two hosts' networks do not collide when routed
together), the gateway its ::1, containers' addresses round robin from ::2 like IPv4's.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import sqlite3
from collections.abc import Container, Iterable, Mapping, Sequence
from datetime import UTC, datetime

from reconciler._dataclass import dataclass, field, replace
from reconciler._sqlite import Database
from reconciler.runtime import base, errors

__all__ = [
    "IPAM",
    "ContainerRecord",
    "EndpointOptions",
    "EndpointRecord",
    "HostNetwork",
    "NetworkRecord",
    "PortRecord",
    "network_id",
    "network_ids",
    "predefined_id",
]

_DDL = """
CREATE TABLE IF NOT EXISTS net_networks (
    name TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    bridge TEXT NOT NULL UNIQUE,
    subnet TEXT NOT NULL UNIQUE,
    gateway TEXT NOT NULL,
    internal INTEGER NOT NULL,
    mtu INTEGER NOT NULL,
    labels TEXT NOT NULL,
    created TEXT NOT NULL,
    last_address TEXT
);
CREATE TABLE IF NOT EXISTS net_containers (
    container_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hostname TEXT NOT NULL,
    aliases TEXT NOT NULL,
    netns TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS net_endpoints (
    network TEXT NOT NULL REFERENCES net_networks(name),
    address TEXT NOT NULL,
    container_id TEXT NOT NULL REFERENCES net_containers(container_id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    ifname TEXT NOT NULL,
    veth TEXT NOT NULL UNIQUE,
    PRIMARY KEY (network, address),
    UNIQUE (container_id, network)
);
CREATE TABLE IF NOT EXISTS net_ports (
    protocol TEXT NOT NULL,
    host_ip TEXT NOT NULL,
    host_port INTEGER NOT NULL,
    container_id TEXT NOT NULL REFERENCES net_containers(container_id) ON DELETE CASCADE,
    container_port INTEGER NOT NULL,
    address TEXT NOT NULL,
    network TEXT NOT NULL,
    PRIMARY KEY (protocol, host_ip, host_port)
);
"""

ANY_IP = "0.0.0.0"  # noqa: S104 - "all host addresses", as in Docker's port syntax
ANY_IP6 = "::"
ULA_POOL = ipaddress.IPv6Network("fd00::/8")
_NEW_COLUMNS = (                # (table, column, declaration) added since the tables were made
    ("net_containers", "resolve", "TEXT NOT NULL DEFAULT '{}'"),
    ("net_networks", "subnet6", "TEXT"),
    ("net_networks", "gateway6", "TEXT"),
    ("net_networks", "last_address6", "TEXT"),
    ("net_endpoints", "address6", "TEXT"),
    ("net_containers", "forwarding", "INTEGER NOT NULL DEFAULT 1"),
    ("net_endpoints", "mac", "TEXT"),
    ("net_endpoints", "link_local", "TEXT NOT NULL DEFAULT '[]'"),
    ("net_endpoints", "gw_priority", "INTEGER NOT NULL DEFAULT 0"),
    ("net_endpoints", "aliases", "TEXT NOT NULL DEFAULT '[]'"),
    ("net_networks", "attachable", "INTEGER NOT NULL DEFAULT 0"),
)


def same_port_address(a: str, b: str) -> bool:
    """Whether two host addresses of a published port take the same sockets: equal, or one is
    the any-address of the other's family."""
    fa, fb = ":" in a, ":" in b
    return fa == fb and (a == b or (ANY_IP6 if fa else ANY_IP) in (a, b))


@dataclass(frozen=True)
class NetworkRecord:
    """A network as stored."""

    name: str
    id: str
    bridge: str
    subnet: str
    gateway: str
    internal: bool
    mtu: int
    labels: Mapping[str, str] = field(default_factory=dict)
    created: str = ""
    subnet6: str | None = None      # dual stack: the IPv6 network
    gateway6: str | None = None
    attachable: bool = False        # Docker's flag, recorded (base.NetworkConfig.attachable)

    @property
    def prefixlen(self) -> int:
        return ipaddress.IPv4Network(self.subnet).prefixlen

    @property
    def prefixlen6(self) -> int:
        return ipaddress.IPv6Network(self.subnet6).prefixlen if self.subnet6 else 0

    def state(self) -> base.NetworkState:
        return base.NetworkState(
            id=self.id, name=self.name, subnet=self.subnet, gateway=self.gateway,
            internal=self.internal, labels=dict(self.labels), bridge=self.bridge,
            ipv6_subnet=self.subnet6 or "", ipv6_gateway=self.gateway6 or "", mtu=self.mtu,
            created=self.created, attachable=self.attachable,
        )


@dataclass(frozen=True)
class HostNetwork:
    """A network the host uses outside this engine's records: an interface's address, or a route."""

    network: ipaddress.IPv4Network
    interface: str          # the link it is on or goes out of ("" when the kernel names none)
    on_link: bool           # an address or a route without a gateway: the interface is in it

    def describe(self) -> str:
        return f"{self.network} on host interface {self.interface}" if self.interface else f"the host's route to {self.network}"


@dataclass(frozen=True)
class ContainerRecord:
    """An attached container."""

    container_id: str
    name: str
    hostname: str
    aliases: tuple[str, ...]
    netns: str
    extra_hosts: tuple[str, ...] = ()           # "name:address" lines of its hosts file
    dns: tuple[str, ...] = ()                   # its own nameservers (): the host's
    dns_search: tuple[str, ...] = ()            # its own search domains (): the host's
    dns_options: tuple[str, ...] = ()           # its own resolver options (): the host's
    domainname: str = ""                        # its NIS domain: its own hosts line names hostname.domainname first
    links: tuple[str, ...] = ()                 # "TARGET:ALIAS": names it alone resolves (Docker's links)


@dataclass(frozen=True)
class EndpointRecord:
    """One container's interface on one network."""

    network: str
    address: str
    container_id: str
    position: int           # 0 for eth0, 1 for eth1, ...
    ifname: str
    veth: str               # host-side name
    address6: str | None = None     # on a dual-stack network
    mac: str | None = None          # the interface's MAC address asked for (None: the kernel's random one)
    link_local: tuple[str, ...] = ()    # extra link-local addresses (169.254/16 as a /16, fe80::/10 as a /64)
    gw_priority: int = 0            # the highest gives the container's default route (gateway_endpoint)
    aliases: tuple[str, ...] = ()   # its names on this network alone (a connect's), beside the container's


@dataclass(frozen=True)
class EndpointOptions:
    """What a container asks of its interface on one network, besides a fixed address; and its
    names on that network alone."""

    mac: str | None = None
    link_local: tuple[str, ...] = ()
    gw_priority: int = 0
    aliases: tuple[str, ...] = ()


def _container(r: sqlite3.Row) -> ContainerRecord:
    resolve = json.loads(r["resolve"])
    return ContainerRecord(r["container_id"], r["name"], r["hostname"], tuple(json.loads(r["aliases"])), r["netns"],
                           tuple(resolve.get("extra_hosts", ())), tuple(resolve.get("dns", ())),
                           tuple(resolve.get("dns_search", ())), tuple(resolve.get("dns_options", ())),
                           str(resolve.get("domainname", "")), tuple(resolve.get("links", ())))


def _endpoint(r: sqlite3.Row) -> EndpointRecord:
    return EndpointRecord(r["network"], r["address"], r["container_id"], int(r["position"]), r["ifname"], r["veth"],
                          r["address6"], r["mac"], tuple(json.loads(r["link_local"] or "[]")), int(r["gw_priority"]),
                          tuple(json.loads(r["aliases"] or "[]")))


@dataclass(frozen=True)
class PortRecord:
    """One published port: a host port held for a container, forwarded to `address` on `network`
    (both '' while it is not forwarded)."""

    protocol: str
    host_ip: str
    host_port: int
    container_id: str
    container_port: int
    address: str
    network: str

    @property
    def forwarded(self) -> bool:
        return bool(self.address)


def gateway_endpoint(endpoints: Sequence[EndpointRecord], internal: Container[str]) -> EndpointRecord | None:
    """The endpoint that holds a container's default route, as Docker's gateway endpoint
    (libnetwork's sandbox orders its endpoints so, `Endpoint.Less`: the higher gateway priority
    first, then a network not `internal`, then by network name, whatever order they were joined
    in; the gateway is the first with a way out, `getGatewayEndpoint`): of those on a network not
    `internal`, the one of the highest `gw_priority`, ties to the first by name; else (only
    internal networks: no default route) the first in that order; None without any."""
    ordered = sorted(endpoints, key=lambda e: (-e.gw_priority, e.network))
    return next((e for e in ordered if e.network not in internal), ordered[0] if ordered else None)


def unplugged(networks: Sequence[NetworkRecord],
              veths: Iterable[tuple[str, str]] = ()) -> tuple[list[NetworkRecord], list[tuple[str, str]]]:
    """What the host lacks of the recorded networks' plumbing: the networks whose bridge is gone
    (a reboot, an `ip link del`), and of `veths`, the recorded endpoints as (network, host-side
    veth), those that are no port of their network's bridge (deleting a bridge detaches its
    ports and leaves the veths, unplugged, and a veth deleted by hand takes its container's end
    with it) or whose link is down (`ip link set VETH down` on the host, or the container's end
    set down in its namespace, which takes the host end's carrier: its operstate says both; a
    container so cut off is as unreachable as an unplugged one, while `ps` says it runs). A
    listdir of /sys/class/net/<bridge>/brif each and a read of each port's operstate, no netlink
    (crash recovery asks at every engine start, heal before each agent pass). An interface of the
    bridge's name that is no bridge is not gone (making the bridge would fail on it) and its
    ports are not judged."""
    ports: dict[str, frozenset[str] | None] = {}
    gone = []
    for n in networks:
        try:
            ports[n.name] = frozenset(os.listdir(f"/sys/class/net/{n.bridge}/brif"))
        except OSError:
            if os.path.lexists(f"/sys/class/net/{n.bridge}"):
                ports[n.name] = None            # not a bridge: ensure_network says so
            else:
                gone.append(n)
                ports[n.name] = frozenset()
    loose = [(net, veth) for net, veth in veths
             if (p := ports.get(net)) is not None and (veth not in p or _link_down(veth))]
    return gone, loose


def _link_down(name: str) -> bool:
    """Whether the interface `name` is there and down: its operstate is "down" (set down, or
    its veth peer is: no carrier) or "lowerlayerdown"; "up", "unknown" (a driver that does not
    say) and an interface gone (judged by its absence from the bridge) are not."""
    try:
        with open(f"/sys/class/net/{name}/operstate", "rb") as f:
            return f.read().strip() in (b"down", b"lowerlayerdown")
    except OSError:
        return False


def port_endpoint(endpoints: Sequence[EndpointRecord], internal: Container[str]) -> EndpointRecord | None:
    """The endpoint a container's published ports are forwarded to: its gateway endpoint, if on
    a network with a way out; None when it joins `internal` networks only (or none), whose ports
    are then held with no rule, as Docker publishes no port of a container on internal networks
    only (an internal network is cut off from the host too). A connect to a network with a way
    out forwards them from then on."""
    ep = gateway_endpoint(endpoints, internal)
    return ep if ep is not None and ep.network not in internal else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def network_id(stored: str) -> str:
    """A network's id as Docker has them, 64 hex digits: the one stored, or, of a network made
    when ids were 32 (a uuid4), that one with 32 more from its hash: the same each time it is
    read, so an id given out before is a prefix of it and still finds it."""
    return stored if len(stored) >= 64 else stored + hashlib.sha256(stored.encode()).hexdigest()[:64 - len(stored)]


def network_ids(conn: sqlite3.Connection) -> dict[str, str]:
    """Each network's id (`network_id`) by its name, read with `conn` (inside a caller's
    transaction too); none when the engine never made its network tables."""
    try:
        rows = conn.execute("SELECT name, id FROM net_networks").fetchall()
    except sqlite3.OperationalError:
        return {}
    return {str(r[0]): network_id(str(r[1])) for r in rows}


def find_network(term: str, ids: Mapping[str, Sequence[str]]) -> str:
    """The id of the network `term` names among `ids` (each network's id: the names it answers
    to), as dockerd finds one (daemon.FindNetwork): its full id, else its name, else the one id
    it begins; NotFound when none, InvalidArgument (dockerd's 400) when it begins several. The
    one rule of the Engine API's network routes and the engine's connect and disconnect
    (`backend.py` `NativeRuntime.network_connect`: `reconcile network connect|disconnect`)."""
    if term in ids:
        return term
    named = [i for i, names in ids.items() if term in names]
    if named:
        return named[0]
    prefixed = [i for i in ids if term and i.startswith(term)]
    if len(prefixed) == 1:
        return prefixed[0]
    if prefixed:
        raise errors.InvalidArgument(f"network {term} is ambiguous ({len(prefixed)} matches found based on ID prefix)",
                                     hint="give more of its id, or its name (`reconcile network ls`)")
    raise errors.NotFound(f"network {term} not found",
                          hint="see `reconcile network ls`, or create it: `reconcile network create NAME`")


def predefined_id(prefix: str, name: str) -> str:
    """The id of "host" or "none" as Docker lists them, which the engine keeps no record of (they
    are network modes): made of the name and the engine's name prefix (a state root's own), so
    the same on every read and in every process."""
    return hashlib.sha256(f"reconciler/{prefix}/network/{name}".encode()).hexdigest()


def _network(row: sqlite3.Row) -> NetworkRecord:
    return NetworkRecord(
        name=row["name"], id=network_id(row["id"]), bridge=row["bridge"], subnet=row["subnet"],
        gateway=row["gateway"], internal=bool(row["internal"]), mtu=int(row["mtu"]),
        labels=json.loads(row["labels"]), created=row["created"],
        subnet6=row["subnet6"], gateway6=row["gateway6"], attachable=bool(row["attachable"]),
    )


def validate_subnet(subnet: str, gateway: str | None) -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Address]:
    """The subnet and gateway of a manifest, checked; gateway defaults to network + 1."""
    try:
        net = ipaddress.IPv4Network(subnet, strict=True)
    except ValueError as exc:
        raise errors.InvalidArgument(
            f"subnet {subnet!r} is not an IPv4 network in CIDR form ({exc})",
            hint="write it like 10.90.0.0/24, with no host bits set",
        ) from exc
    if net.prefixlen > 30:
        raise errors.InvalidArgument(f"subnet {subnet} is too small; use a /30 or larger")
    try:
        gw = ipaddress.IPv4Address(gateway) if gateway else net.network_address + 1
    except ValueError as exc:
        raise errors.InvalidArgument(f"gateway {gateway!r} is not an IPv4 address") from exc
    if gw not in net or gw in (net.network_address, net.broadcast_address):
        raise errors.InvalidArgument(f"gateway {gw} is not a usable address of subnet {net}")
    return net, gw


def validate_subnet6(subnet: str) -> tuple[ipaddress.IPv6Network, ipaddress.IPv6Address]:
    """An IPv6 subnet of a manifest, checked; its gateway is network + 1."""
    try:
        net = ipaddress.IPv6Network(subnet, strict=True)
    except ValueError as exc:
        raise errors.InvalidArgument(
            f"IPv6 subnet {subnet!r} is not an IPv6 network in CIDR form ({exc})",
            hint="write it like fd12:3456:789a:1::/64, with no host bits set",
        ) from exc
    if net.prefixlen > 124:
        raise errors.InvalidArgument(f"IPv6 subnet {subnet} is too small; use a /124 or larger (a /64 is usual)")
    return net, net.network_address + 1


def _ula_subnet(seed: str, taken: Sequence[ipaddress.IPv6Network], name: str) -> ipaddress.IPv6Network:
    """A /64 of the ULA pool (a pseudo-random global ID from `seed`) that overlaps none of `taken`."""
    for attempt in range(64):
        global_id = int.from_bytes(hashlib.sha256(f"{seed}/{attempt}".encode()).digest()[:5], "big")
        cand = ipaddress.IPv6Network((int(ULA_POOL.network_address) | global_id << 80, 64))
        if not any(cand.overlaps(t) for t in taken):
            return cand
    raise errors.Conflict(f"no free IPv6 /64 found in {ULA_POOL} for network {name!r}",
                          hint="give the network an explicit ipv6Subnet")


class IPAM:
    """Networks, endpoints and ports in the state DB."""

    def __init__(self, db: Database) -> None:
        self._db = db
        db.ensure_schema("native.network", _DDL, _NEW_COLUMNS)

    # networks ----------------------------------------------------------------------------

    def networks(self) -> list[NetworkRecord]:
        rows = self._db.connect().execute("SELECT * FROM net_networks ORDER BY name").fetchall()
        return [_network(r) for r in rows]

    def network(self, name: str) -> NetworkRecord | None:
        row = self._db.connect().execute("SELECT * FROM net_networks WHERE name = ?", (name,)).fetchone()
        return _network(row) if row else None

    def add_network(
        self,
        config: base.NetworkConfig,
        *,
        bridge: str,
        pool: str,
        host: Sequence[HostNetwork] = (),
        host6: Sequence[ipaddress.IPv6Network] = (),
    ) -> NetworkRecord:
        """Record `config` (subnet from the manifest, or the first free /24 of `pool`).

        A new network's subnet comes from the pool around every network in `host`; an explicit
        one overlapping an address or on-link route of `host` is a Conflict naming the interface.
        An existing record of the same name is returned if it agrees with `config`; one that
        disagrees on subnet, gateway or internal is a Conflict (remove the network first).
        """
        with self._db.tx() as conn:
            row = conn.execute("SELECT * FROM net_networks WHERE name = ?", (config.name,)).fetchone()
            others = conn.execute("SELECT subnet, subnet6 FROM net_networks WHERE name != ?", (config.name,)).fetchall()
            taken = [ipaddress.IPv4Network(r["subnet"]) for r in others]
            taken6 = [ipaddress.IPv6Network(r["subnet6"]) for r in others if r["subnet6"]]
            if row is not None:
                found = _network(row)
                self._check_same(found, config)
                if dict(found.labels) != dict(config.labels) or found.mtu != config.mtu:
                    conn.execute(
                        "UPDATE net_networks SET labels = ?, mtu = ? WHERE name = ?",
                        (json.dumps(dict(config.labels), sort_keys=True), config.mtu, config.name),
                    )
                    found = NetworkRecord(**{**found.__dict__, "labels": dict(config.labels), "mtu": config.mtu})
                return found
            if config.subnet is not None:
                net, gw = validate_subnet(config.subnet, config.gateway)
                clash = next((t for t in taken if t.overlaps(net)), None)
                if clash is not None:
                    raise errors.Conflict(
                        f"subnet {net} of network {config.name!r} overlaps {clash} of another network",
                        hint="choose a subnet no other network uses, or omit it to get one from the pool",
                    )
                used = next((h for h in host if h.on_link and h.network.overlaps(net)), None)
                if used is not None:
                    raise errors.Conflict(
                        f"subnet {net} of network {config.name!r} overlaps {used.describe()}, "
                        "which this engine did not make",
                        hint="choose a subnet the host does not use (`ip -4 addr` and `ip -4 route` list "
                        "them), or omit it to get a free one from the pool",
                    )
            else:
                net = self._free_subnet(pool, [*taken, *(h.network for h in host)], config.name)
                net, gw = validate_subnet(str(net), config.gateway)
            net_id = os.urandom(32).hex()       # 64 hex digits, as Docker's network ids
            subnet6, gateway6 = self._subnet6(config, net_id, taken6, host6)
            record = NetworkRecord(
                name=config.name, id=net_id, bridge=bridge, subnet=str(net),
                gateway=str(gw), internal=config.internal, mtu=config.mtu,
                labels=dict(config.labels), created=_now(), subnet6=subnet6, gateway6=gateway6,
                attachable=config.attachable,
            )
            try:
                conn.execute(
                    "INSERT INTO net_networks (name, id, bridge, subnet, gateway, internal, mtu, labels, created,"
                    " subnet6, gateway6, attachable) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (record.name, record.id, record.bridge, record.subnet, record.gateway,
                     int(record.internal), record.mtu, json.dumps(dict(record.labels), sort_keys=True),
                     record.created, record.subnet6, record.gateway6, int(record.attachable)),
                )
            except sqlite3.IntegrityError as exc:
                raise errors.Conflict(
                    f"network {config.name!r}: bridge name {bridge} or subnet {net} is already used ({exc})",
                ) from exc
            return record

    @staticmethod
    def _subnet6(
        config: base.NetworkConfig, seed: str, taken: Sequence[ipaddress.IPv6Network],
        host: Sequence[ipaddress.IPv6Network],
    ) -> tuple[str | None, str | None]:
        """The IPv6 subnet and gateway of a new network (None, None: IPv4 only)."""
        if not config.ipv6:
            if config.ipv6_subnet is not None:
                raise errors.InvalidArgument(
                    f"network {config.name!r} has an IPv6 subnet but ipv6 is off", hint="set ipv6: true",
                )
            return None, None
        if config.ipv6_subnet is None:
            net = _ula_subnet(seed, [*taken, *host], config.name)
        else:
            net, _ = validate_subnet6(config.ipv6_subnet)
            clash = next((t for t in taken if t.overlaps(net)), None)
            if clash is not None:
                raise errors.Conflict(
                    f"IPv6 subnet {net} of network {config.name!r} overlaps {clash} of another network",
                    hint="choose an IPv6 subnet no other network uses, or omit it to get one from the ULA pool",
                )
            used = next((h for h in host if h.overlaps(net)), None)
            if used is not None:
                raise errors.Conflict(
                    f"IPv6 subnet {net} of network {config.name!r} overlaps {used}, an address of this host "
                    "that this engine did not make",
                    hint="choose another IPv6 subnet (`ip -6 addr` lists the host's), or omit it to get one "
                    "from the ULA pool",
                )
        return str(net), str(net.network_address + 1)

    @staticmethod
    def _check_same(found: NetworkRecord, config: base.NetworkConfig) -> None:
        diffs = []
        if config.ipv6 != bool(found.subnet6):
            diffs.append(f"ipv6 {bool(found.subnet6)} -> {config.ipv6}")
        elif config.ipv6_subnet is not None and found.subnet6 is not None and (
                ipaddress.IPv6Network(config.ipv6_subnet, strict=False) != ipaddress.IPv6Network(found.subnet6)):
            diffs.append(f"ipv6 subnet {found.subnet6} -> {config.ipv6_subnet}")
        if config.subnet is not None and ipaddress.IPv4Network(config.subnet, strict=False) != ipaddress.IPv4Network(found.subnet):
            diffs.append(f"subnet {found.subnet} -> {config.subnet}")
        if config.gateway is not None and config.gateway != found.gateway:
            diffs.append(f"gateway {found.gateway} -> {config.gateway}")
        if config.internal != found.internal:
            diffs.append(f"internal {found.internal} -> {config.internal}")
        if diffs:
            raise errors.Conflict(
                f"network {found.name!r} exists with different settings: {', '.join(diffs)}",
                hint="remove the network (and its containers) to change these",
            )

    @staticmethod
    def _free_subnet(pool: str, taken: Sequence[ipaddress.IPv4Network], name: str) -> ipaddress.IPv4Network:
        try:
            pool_net = ipaddress.IPv4Network(pool, strict=True)
        except ValueError as exc:
            raise errors.InvalidArgument(f"subnet pool {pool!r} is not an IPv4 network ({exc})") from exc
        candidates = pool_net.subnets(new_prefix=24) if pool_net.prefixlen <= 24 else iter([pool_net])
        for cand in candidates:
            if not any(cand.overlaps(t) for t in taken):
                return cand
        raise errors.Conflict(
            f"no free /24 left in the subnet pool {pool} for network {name!r}",
            hint="remove unused networks, give this one an explicit subnet, or widen the pool",
        )

    def removable_network(self, name: str) -> NetworkRecord:
        """The record of a network that may be removed: Conflict while endpoints use it,
        NotFound if absent (what `remove_network` checks, asked before its host objects go)."""
        with self._db.tx() as conn:
            return self._removable(conn, name)

    def remove_network(self, name: str) -> NetworkRecord:
        """Delete the record; Conflict while endpoints use it, NotFound if absent."""
        with self._db.tx() as conn:
            record = self._removable(conn, name)
            conn.execute("DELETE FROM net_networks WHERE name = ?", (name,))
            return record

    @staticmethod
    def _removable(conn: sqlite3.Connection, name: str) -> NetworkRecord:
        row = conn.execute("SELECT * FROM net_networks WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise errors.NotFound(f"network {name!r} not found")
        users = [r["name"] for r in conn.execute(
            "SELECT c.name FROM net_endpoints e JOIN net_containers c USING (container_id)"
            " WHERE e.network = ? ORDER BY c.name", (name,))]
        if users:
            raise errors.Conflict(
                f"network {name!r} is in use by {len(users)} container(s): {', '.join(users)}",
                hint="remove those containers (or detach them) first",
            )
        return _network(row)

    # containers, endpoints, ports ------------------------------------------------------

    def add_container(
        self,
        container: ContainerRecord,
        *,
        networks: Sequence[str],
        static_ips: Mapping[str, str],
        ports: Sequence[base.PortMapping],
        veth_name: Mapping[str, str],
        static_ips6: Mapping[str, str] | None = None,
        forwarding: bool = True,
        options: Mapping[str, EndpointOptions] | None = None,
    ) -> tuple[list[EndpointRecord], list[PortRecord]]:
        """Record an attachment: one address per network (static or allocated) and its ports,
        forwarded from the start or (not `forwarding`) held until `set_forwarding`.

        All or nothing: a refused static address or a taken host port leaves no trace.
        """
        static6 = dict(static_ips6 or {})
        own = dict(options or {})
        unknown = (set(static_ips) | set(static6) | set(own)) - set(networks)
        if unknown:
            raise errors.InvalidArgument(
                f"container {container.name!r} has static addresses or interface settings for networks it does "
                f"not join: {', '.join(sorted(unknown))}",
            )
        with self._db.tx() as conn:
            if conn.execute("SELECT 1 FROM net_containers WHERE container_id = ?",
                            (container.container_id,)).fetchone():
                raise errors.AlreadyExists(
                    f"container {container.name!r} ({container.container_id[:12]}) is attached already",
                    hint="detach it first",
                )
            conn.execute(
                "INSERT INTO net_containers (container_id, name, hostname, aliases, netns, resolve, forwarding)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (container.container_id, container.name, container.hostname,
                 json.dumps(list(container.aliases)), container.netns,
                 json.dumps({"extra_hosts": list(container.extra_hosts), "dns": list(container.dns),
                             "dns_search": list(container.dns_search), "dns_options": list(container.dns_options),
                             **({"domainname": container.domainname} if container.domainname else {}),
                             **({"links": list(container.links)} if container.links else {})}),
                 int(forwarding)),
            )
            endpoints = []
            for pos, net_name in enumerate(networks):
                row = conn.execute("SELECT * FROM net_networks WHERE name = ?", (net_name,)).fetchone()
                if row is None:
                    raise errors.NotFound(
                        f"network {net_name!r} not found (container {container.name!r})",
                        hint="create it first (`reconcile network create NAME`, or a Network manifest)",
                    )
                endpoints.append(self._insert_endpoint(
                    conn, row, container.container_id, container.name, position=pos, veth=veth_name[net_name],
                    static=static_ips.get(net_name), static6=static6.get(net_name), options=own.get(net_name)))
            self._yield_ports(conn, ports, container.container_id)
            port_records = self._reserve_ports(conn, container, ports, endpoints)
            return endpoints, port_records

    def take_ports(self, container_id: str, ports: Sequence[base.PortMapping]) -> list[str]:
        """Hold `ports` (host ports given) for an attached container that gave them up while it
        did not run (`_yield_ports`): at its start, from a holder that does not run either; one
        that runs holds them: a Conflict, nothing taken. The names of the containers that gave
        theirs up."""
        with self._db.tx() as conn:
            row = conn.execute("SELECT * FROM net_containers WHERE container_id = ?", (container_id,)).fetchone()
            if row is None:
                raise errors.NotFound(f"container {container_id[:12]} is not attached")
            eps = [_endpoint(r) for r in conn.execute(
                "SELECT * FROM net_endpoints WHERE container_id = ? ORDER BY position", (container_id,))]
            yielded = self._yield_ports(conn, ports, container_id)
            self._reserve_ports(conn, _container(row), ports, eps)
            return yielded

    @staticmethod
    def _yield_ports(conn: sqlite3.Connection, ports: Sequence[base.PortMapping], to: str) -> list[str]:
        """The host ports of `ports` held by containers that do not run (not `forwarding`: created,
        or stopped) other than `to`, given up by them for `to`, as dockerd binds a port at a
        start, not at a create: compose's recreate makes the new container before it removes the
        old one, stopped. Those containers' names."""
        out = []
        for p in ports:
            if not p.host_port:
                continue
            rows = conn.execute(
                "SELECT p.host_ip, p.container_id, c.name, c.forwarding FROM net_ports p JOIN net_containers c"
                " USING (container_id) WHERE p.protocol = ? AND p.host_port = ?", (p.protocol, p.host_port)).fetchall()
            for r in rows:
                if r["container_id"] != to and not r["forwarding"] and same_port_address(r["host_ip"], p.host_ip):
                    conn.execute("DELETE FROM net_ports WHERE protocol = ? AND host_ip = ? AND host_port = ?",
                                 (p.protocol, r["host_ip"], p.host_port))
                    out.append(str(r["name"]))
        return out

    def _insert_endpoint(
        self, conn: sqlite3.Connection, net_row: sqlite3.Row, container_id: str, who: str, *, position: int,
        veth: str, static: str | None = None, static6: str | None = None, options: EndpointOptions | None = None,
    ) -> EndpointRecord:
        """A container's endpoint on one network, recorded: its IPv4 address and, on a dual-stack
        network, its IPv6 one (static, else the next free after the network's last), interface
        eth<position>, and the interface's own settings (`options`: a MAC address no other
        endpoint of the network has). The one place an endpoint is made: at attach and at a connect."""
        net = _network(net_row)
        opts = options or EndpointOptions()
        if opts.mac is not None:
            holder = conn.execute("SELECT c.name FROM net_endpoints e JOIN net_containers c USING (container_id)"
                                  " WHERE e.network = ? AND e.mac = ?", (net.name, opts.mac)).fetchone()
            if holder is not None:
                raise errors.Conflict(f"MAC address {opts.mac} of {who!r} is already used on network {net.name!r} "
                                      f"by container {holder['name']!r}",
                                      hint="pick another MAC address, or let the kernel choose one")
        address = self._allocate(conn, net, static, who, last=net_row["last_address"])
        address6 = self._allocate6(conn, net, who, last=net_row["last_address6"], static=static6)
        ep = EndpointRecord(network=net.name, address=address, container_id=container_id, position=position,
                            ifname=f"eth{position}", veth=veth, address6=address6, mac=opts.mac,
                            link_local=tuple(opts.link_local), gw_priority=opts.gw_priority,
                            aliases=tuple(dict.fromkeys(opts.aliases)))
        conn.execute(
            "INSERT INTO net_endpoints (network, address, container_id, position, ifname, veth, address6, mac,"
            " link_local, gw_priority, aliases) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (ep.network, ep.address, ep.container_id, ep.position, ep.ifname, ep.veth, ep.address6, ep.mac,
             json.dumps(list(ep.link_local)), ep.gw_priority, json.dumps(list(ep.aliases))),
        )
        if static is None:
            conn.execute("UPDATE net_networks SET last_address = ? WHERE name = ?", (address, net.name))
        if address6 is not None and static6 is None:
            conn.execute("UPDATE net_networks SET last_address6 = ? WHERE name = ?", (address6, net.name))
        return ep

    @staticmethod
    def _allocate(
        conn: sqlite3.Connection, net: NetworkRecord, static: str | None, who: str, *, last: str | None,
    ) -> str:
        subnet = ipaddress.IPv4Network(net.subnet)
        used = {r["address"] for r in conn.execute(
            "SELECT address FROM net_endpoints WHERE network = ?", (net.name,))}
        reserved = {str(subnet.network_address), str(subnet.broadcast_address), net.gateway}
        if static is not None:
            try:
                addr = ipaddress.IPv4Address(static)
            except ValueError as exc:
                raise errors.InvalidArgument(f"static address {static!r} of {who!r} is not IPv4") from exc
            if addr not in subnet or str(addr) in reserved:
                raise errors.InvalidArgument(
                    f"static address {addr} of {who!r} is not a usable address of network "
                    f"{net.name!r} ({net.subnet}, gateway {net.gateway})",
                )
            if str(addr) in used:
                raise errors.Conflict(
                    f"static address {addr} of {who!r} is already used on network {net.name!r}",
                    hint="pick another address or let the engine allocate one",
                )
            return str(addr)
        # the next free host address after `last`, round robin, as integers: no list of the
        # subnet's hosts (65,534 strings per container on a /16). A free one is among the first
        # len(used) + len(reserved) + 1 looked at, as _allocate6 counts.
        lo, hi = int(subnet.network_address), int(subnet.broadcast_address)
        if subnet.prefixlen < 31:
            lo, hi = lo + 1, hi - 1                 # subnet.hosts(): neither network nor broadcast
        size = hi - lo + 1
        start = 0
        if last is not None and last not in reserved:
            try:
                after = int(ipaddress.IPv4Address(last))
            except ValueError:
                after = -1
            if lo <= after <= hi:
                start = after + 1 - lo
        for i in range(min(size, len(used) + len(reserved) + 1)):
            cand = str(ipaddress.IPv4Address(lo + (start + i) % size))
            if cand not in used and cand not in reserved:
                return cand
        raise errors.Conflict(
            f"network {net.name!r} ({net.subnet}) has no free address left for {who!r}",
            hint="remove containers from it or recreate it with a larger subnet",
        )

    @staticmethod
    def _allocate6(conn: sqlite3.Connection, net: NetworkRecord, who: str, *, last: str | None,
                   static: str | None = None) -> str | None:
        """`static` once checked, else the next free IPv6 address after `last` (round robin from
        gateway + 1); None for an IPv4-only network."""
        if not net.subnet6 or not net.gateway6:
            if static is not None:
                raise errors.InvalidArgument(f"static IPv6 address {static} of {who!r}: network {net.name!r} has no IPv6",
                                             hint="set ipv6: true on the network, or remove the IPv6 address")
            return None
        subnet = ipaddress.IPv6Network(net.subnet6)
        used = {r["address6"] for r in conn.execute(
            "SELECT address6 FROM net_endpoints WHERE network = ? AND address6 IS NOT NULL", (net.name,))}
        if static is not None:
            return IPAM._static6(net, subnet, used, static, who)
        first, end = int(ipaddress.IPv6Address(net.gateway6)) + 1, int(subnet.broadcast_address)
        size = end - first
        start = int(ipaddress.IPv6Address(last)) + 1 - first if last and ipaddress.IPv6Address(last) in subnet else 0
        for i in range(min(size, len(used) + 1)):
            cand = str(ipaddress.IPv6Address(first + (start + i) % size))
            if cand not in used:
                return cand
        raise errors.Conflict(f"network {net.name!r} ({net.subnet6}) has no free IPv6 address left for {who!r}")

    @staticmethod
    def _static6(net: NetworkRecord, subnet: ipaddress.IPv6Network, used: set[str], static: str, who: str) -> str:
        try:
            addr = ipaddress.IPv6Address(static)
        except ValueError as exc:
            raise errors.InvalidArgument(f"static address {static!r} of {who!r} is not IPv6") from exc
        if addr not in subnet or addr in (subnet.network_address, subnet.broadcast_address) \
                or str(addr) == net.gateway6:
            raise errors.InvalidArgument(
                f"static address {addr} of {who!r} is not a usable address of network "
                f"{net.name!r} ({net.subnet6}, gateway {net.gateway6})",
                hint="pick an address of the network's IPv6 subnet other than its gateway",
            )
        if str(addr) in used:
            raise errors.Conflict(f"static address {addr} of {who!r} is already used on network {net.name!r}",
                                  hint="pick another address or let the engine allocate one")
        return str(addr)

    @staticmethod
    def _reserve_ports(
        conn: sqlite3.Connection,
        container: ContainerRecord,
        ports: Sequence[base.PortMapping],
        endpoints: Sequence[EndpointRecord],
    ) -> list[PortRecord]:
        out: list[PortRecord] = []
        if not ports:
            return out
        if not endpoints:
            raise errors.InvalidArgument(f"container {container.name!r} publishes ports but joins no network")
        internal = {r["name"] for r in conn.execute("SELECT name FROM net_networks WHERE internal")}
        ep = port_endpoint(endpoints, internal)
        for p in ports:
            rows = conn.execute(
                "SELECT p.host_ip, c.name FROM net_ports p JOIN net_containers c USING (container_id)"
                " WHERE p.protocol = ? AND p.host_port = ?", (p.protocol, p.host_port)).fetchall()
            for r in rows:
                if same_port_address(r["host_ip"], p.host_ip):
                    owner = "this container" if r["name"] == container.name else f"container {r['name']!r}"
                    raise errors.PortInUse(
                        f"host port {p.host_ip}:{p.host_port}/{p.protocol} is already published by {owner}",
                        hint="choose another host port or remove the container that holds it",
                    )
            address = "" if ep is None else ep.address        # internal networks only: held, not forwarded
            if ":" in p.host_ip and ep is not None:
                if ep.address6 is None:
                    raise errors.InvalidArgument(
                        f"container {container.name!r} publishes port {p.host_port} on IPv6 address "
                        f"{p.host_ip}, but network {ep.network!r}, which serves its ports, has no IPv6",
                        hint="set ipv6: true on that network, or publish on an IPv4 address",
                    )
                address = ep.address6
            rec = PortRecord(
                protocol=p.protocol, host_ip=p.host_ip, host_port=p.host_port,
                container_id=container.container_id, container_port=p.container_port,
                address=address, network="" if ep is None else ep.network,
            )
            conn.execute(
                "INSERT INTO net_ports VALUES (?, ?, ?, ?, ?, ?, ?)",
                (rec.protocol, rec.host_ip, rec.host_port, rec.container_id, rec.container_port,
                 rec.address, rec.network),
            )
            out.append(rec)
        return out

    def add_endpoint(self, container_id: str, network: str, *, veth: str, aliases: Sequence[str] = (),
                     static: str | None = None, static6: str | None = None,
                     options: EndpointOptions | None = None) -> EndpointRecord:
        """One more network for an attached container (`docker network connect` of a running
        one): its addresses on it (`static`, else the next free one; IPv6 too on a dual-stack
        network, `static6` or the next, as at attach) and the next interface (eth<n>); `aliases`
        are its names on that network alone (Docker's are an endpoint's: they go with it)."""
        with self._db.tx() as conn:
            row = conn.execute("SELECT * FROM net_containers WHERE container_id = ?", (container_id,)).fetchone()
            if row is None:
                raise errors.NotFound(f"container {container_id[:12]} is not attached to any network")
            net_row = conn.execute("SELECT * FROM net_networks WHERE name = ?", (network,)).fetchone()
            if net_row is None:
                raise errors.NotFound(f"network {network!r} not found")
            mine = conn.execute("SELECT network, position FROM net_endpoints WHERE container_id = ?",
                                (container_id,)).fetchall()
            if any(r["network"] == network for r in mine):
                raise errors.Conflict(f"container {row['name']!r} is already attached to network {network!r}")
            pos = max((int(r["position"]) for r in mine), default=-1) + 1
            opts = options or EndpointOptions()
            ep = self._insert_endpoint(conn, net_row, container_id, row["name"], position=pos, veth=veth,
                                       static=static, static6=static6,
                                       options=replace(opts, aliases=(*opts.aliases, *aliases)))
            self._route_ports(conn, container_id)
            return ep

    def remove_endpoint(self, container_id: str, network: str) -> EndpointRecord | None:
        """Release a container's address on one network (`docker network disconnect`); the ports
        it served move to the container's gateway endpoint now, or are no longer forwarded."""
        found = self.endpoints(network=network, container_id=container_id)
        with self._db.tx() as conn:
            conn.execute("DELETE FROM net_endpoints WHERE container_id = ? AND network = ?", (container_id, network))
            self._route_ports(conn, container_id)
        return found[0] if found else None

    def route_ports(self, container_id: str) -> None:
        """`_route_ports` on its own: a repairing attach (after a reboot) points the ports at the
        endpoint the rule picks now, which one recorded by an older rule need not be."""
        with self._db.tx() as conn:
            self._route_ports(conn, container_id)

    @staticmethod
    def _route_ports(conn: sqlite3.Connection, container_id: str) -> None:
        """Point each port the container publishes at its gateway endpoint as it is now (the
        address of the port's family there), or at none: no port is left with an address the
        container has no more."""
        rows = conn.execute("SELECT protocol, host_ip, host_port FROM net_ports WHERE container_id = ?",
                            (container_id,)).fetchall()
        if not rows:
            return
        eps = [_endpoint(r) for r in conn.execute("SELECT * FROM net_endpoints WHERE container_id = ?", (container_id,))]
        internal = {r["name"] for r in conn.execute("SELECT name FROM net_networks WHERE internal")}
        ep = port_endpoint(eps, internal)
        for r in rows:
            address = "" if ep is None else (ep.address6 or "") if ":" in r["host_ip"] else ep.address
            conn.execute(
                "UPDATE net_ports SET address = ?, network = ? WHERE protocol = ? AND host_ip = ? AND host_port = ?",
                (address, ep.network if ep is not None and address else "", r["protocol"], r["host_ip"],
                 r["host_port"]))

    def set_forwarding(self, container_id: str, on: bool) -> bool:
        """Forward a container's published ports (it runs) or hold them with no rule (it does
        not); whether that changed anything."""
        with self._db.tx() as conn:
            cur = conn.execute("UPDATE net_containers SET forwarding = ? WHERE container_id = ? AND forwarding != ?",
                               (int(on), container_id, int(on)))
            return cur.rowcount > 0

    def rename_container(self, container_id: str, name: str) -> bool:
        """Record a container's new name; False if it is not attached."""
        with self._db.tx() as conn:
            cur = conn.execute("UPDATE net_containers SET name = ? WHERE container_id = ?", (name, container_id))
            return cur.rowcount > 0

    def remove_container(self, container_id: str) -> bool:
        """Release everything of a container (endpoints and ports cascade)."""
        with self._db.tx() as conn:
            cur = conn.execute("DELETE FROM net_containers WHERE container_id = ?", (container_id,))
            return cur.rowcount > 0

    def containers(self) -> list[ContainerRecord]:
        rows = self._db.connect().execute("SELECT * FROM net_containers ORDER BY name").fetchall()
        return [_container(r) for r in rows]

    def container_ids(self) -> set[str]:
        """The ids of the containers with a network record, no record built (what crash recovery
        compares with the engine's records at every start: #21)."""
        return {r[0] for r in self._db.connect().execute("SELECT container_id FROM net_containers")}

    def container(self, container_id: str) -> ContainerRecord | None:
        """One container's record: its row alone (an attach asks at every start: #21)."""
        row = self._db.connect().execute("SELECT * FROM net_containers WHERE container_id = ?",
                                         (container_id,)).fetchone()
        return None if row is None else _container(row)

    def endpoints(self, *, network: str | None = None, container_id: str | None = None) -> list[EndpointRecord]:
        sql, args = "SELECT * FROM net_endpoints WHERE 1", list[str]()
        if network is not None:
            sql, args = sql + " AND network = ?", [*args, network]
        if container_id is not None:
            sql, args = sql + " AND container_id = ?", [*args, container_id]
        rows = self._db.connect().execute(sql + " ORDER BY container_id, position", args).fetchall()
        return [_endpoint(r) for r in rows]

    def veths(self, containers: Container[str] | None = None) -> list[tuple[str, str]]:
        """Every endpoint (of `containers` only, when given) as (network, host-side veth): what
        `unplugged` checks, no record built."""
        rows = self._db.connect().execute("SELECT network, veth, container_id FROM net_endpoints")
        return [(r[0], r[1]) for r in rows if containers is None or r[2] in containers]

    def ports(self) -> list[PortRecord]:
        """Every host port held for a container, forwarded or not."""
        rows = self._db.connect().execute(
            "SELECT * FROM net_ports ORDER BY protocol, host_port, host_ip").fetchall()
        return [PortRecord(r["protocol"], r["host_ip"], int(r["host_port"]), r["container_id"],
                           int(r["container_port"]), r["address"], r["network"]) for r in rows]

    def publishers(self) -> dict[str, bool]:
        """container id -> whether its ports are forwarded (`forwarding`), for each container that
        holds a host port: what a heal compares with the containers that run (#21: no record built)."""
        rows = self._db.connect().execute(
            "SELECT container_id, forwarding FROM net_containers"
            " WHERE container_id IN (SELECT container_id FROM net_ports)")
        return {r[0]: bool(r[1]) for r in rows}

    def forwarding(self, container_id: str) -> bool | None:
        """Whether a container's ports are forwarded (None: it has no network record)."""
        row = self._db.connect().execute("SELECT forwarding FROM net_containers WHERE container_id = ?",
                                         (container_id,)).fetchone()
        return None if row is None else bool(row[0])

    def forwarded_ports(self, container_id: str | None = None) -> list[PortRecord]:
        """The ports forwarded now (of one container): those with an address, of containers
        `forwarding`. What the firewall's rules and the containers' reports are made of."""
        sql, args = ("SELECT p.* FROM net_ports p JOIN net_containers c USING (container_id)"
                     " WHERE c.forwarding AND p.address != ''"), list[str]()
        if container_id is not None:
            sql, args = sql + " AND p.container_id = ?", [container_id]
        rows = self._db.connect().execute(sql + " ORDER BY p.protocol, p.host_port, p.host_ip", args).fetchall()
        return [PortRecord(r["protocol"], r["host_ip"], int(r["host_port"]), r["container_id"],
                           int(r["container_port"]), r["address"], r["network"]) for r in rows]
