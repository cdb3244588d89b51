"""Docker-like bridge networks for native containers: NetworkManager.

One Linux bridge per network (gateway address on it), one network namespace per container
(a bind-mounted nsfs file under `run_dir/netns/<container id>` that runc joins through
`linux.namespaces[{"type": "network", "path": ...}]`), one veth pair per (container, network)
with the peer created inside the namespace as `eth0`, `eth1`, ... Addresses come from the
persistent IPAM (`ipam`), filtering and NAT from `firewall`, names from `dns`.

A dual-stack network (`ipv6`) has an IPv6 /64 beside its IPv4 subnet: the gateway ::1 on the
bridge, one address per container (no DAD, so it works at once), an IPv6 default route, AAAA
answers through the hosts file (both addresses listed per name), ip6 NAT in our own table.
Ports published on [::1] go through a userland proxy (`portproxy`): the kernel has no
`route_localnet` for IPv6.

Every step "ensures" (CNI's ensureBridge style): it creates what is missing, verifies what it
finds and repairs what differs, and a failed attach undoes what it did. The DB records are
the source of truth: `recover()` at start-up removes whatever a crash left behind (records of
dead containers, veths, namespaces, bridges and iptables rules no record names), makes the
bridges again, plugs the recorded veths in again and re-renders the firewall from the records;
`heal()` (the agent, before each pass) makes again what another program took while the engine
ran (a bridge, a veth, the nft table) and says which running containers it left cut off.

Mutations are serialised by a thread lock plus an flock under `run_dir/locks`, so two engines
on one host (or CLI + agent) cannot interleave; IPAM transactions are BEGIN IMMEDIATE besides.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import ipaddress
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler import logs
from reconciler._dataclass import dataclass, dataclasses, field
from reconciler.runtime import base, errors
from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.network import dns, firewall, ipam, names, resolver, stale

if TYPE_CHECKING:
    from reconciler.runtime.native.network import netlink

# netlink (pyroute2, ~120 ms to import) is imported where a link is touched: a pass whose
# containers have no network, and recovery with nothing to recover, never load it

__all__ = ["DEFAULT_NETWORK", "Attachment", "NetworkManager", "RecoveryReport", "unmount_all"]

DEFAULT_NETWORK = dns.DEFAULT_NETWORK
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")     # Docker's (compose makes <project>_<net>)
_HOSTNAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})$")
_RESERVED = frozenset({"none", "host", "bridge"})
_LOOPBACK6 = "::1"
_PROXY_MODULE = "reconciler.runtime.native.network.portproxy"
# in a batch, a new container's name reaches its peers' hosts files within this many seconds (a
# timer), or at the batch's end, instead of at each attach: N attaches on one network rewrote
# N(N-1)/2 files
_STALE_PEERS_MAX = 1.0
_CHOOSE_TRIES = 64                  # ports the kernel offers before choosing gives up (each one held by us)
_proxies: dict[int, subprocess.Popen[bytes]] = {}    # the proxies this process started, to reap them

log = logs.get_logger("reconciler.runtime.native.network.network")


@dataclass(frozen=True)
class Attachment:
    """What the container runtime needs to start a container on its networks."""

    netns_path: Path                      # join with linux.namespaces network path
    ip_addresses: dict[str, str]          # network -> address
    hosts_path: Path                      # bind-mount at /etc/hosts
    resolv_conf_path: Path                # bind-mount at /etc/resolv.conf
    ip6_addresses: dict[str, str] = field(default_factory=dict)   # network -> IPv6 address (dual stack)
    ports: tuple[base.PortMapping, ...] = ()    # as published: a host port 0 asked for is the one chosen


@dataclass(frozen=True)
class RecoveryReport:
    """What `recover()` cleaned up."""

    containers: tuple[str, ...] = ()      # detached (not live any more)
    links: tuple[str, ...] = ()           # leaked veths/bridges deleted
    netns: tuple[str, ...] = ()           # leaked namespaces removed
    iptables_rules: int = 0               # leaked accept rules removed
    host_files: tuple[str, ...] = field(default=())
    plugged: tuple[str, ...] = ()         # veths put on their bridges again (made again if gone)


def _short_hash(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _mount_count(path: Path) -> int:
    """How many mounts are stacked on `path` (os.path.ismount misses same-device bind mounts)."""
    target = str(path.resolve())
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return 0
    return sum(1 for line in lines if len(line.split()) > 4 and line.split()[4] == target)


def unmount_all(path: Path) -> None:
    """Unmount every mount stacked on `path` (the netns dir's bind mount of itself)."""
    for _ in range(_mount_count(path)):
        subprocess.run(["umount", str(path)], capture_output=True, check=False, timeout=30)
    if _mount_count(path):
        raise errors.Unavailable(f"cannot unmount {path}", hint=f"check `findmnt {path}` for users")


@contextmanager
def _flocked(thread_lock: threading.Lock | threading.RLock, path: Path) -> Iterator[None]:
    """Held by one thread of this process (`thread_lock`) and one engine process on the root
    (an flock of `path`) at a time."""
    with thread_lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _options(macs: Mapping[str, str] | None, link_local: Mapping[str, Sequence[str]] | None,
             gw_priorities: Mapping[str, int] | None,
             aliases: Mapping[str, Sequence[str]] | None = None) -> dict[str, ipam.EndpointOptions]:
    """A container's interface settings and own aliases by network, for the IPAM's records."""
    macs, link_local, gw_priorities, aliases = macs or {}, link_local or {}, gw_priorities or {}, aliases or {}
    return {n: ipam.EndpointOptions(macs.get(n), tuple(link_local.get(n) or ()), int(gw_priorities.get(n) or 0),
                                    tuple(aliases.get(n) or ()))
            for n in {*macs, *link_local, *gw_priorities, *aliases}}


def _addresses(e: ipam.EndpointRecord) -> list[str]:
    return [e.address, e.address6] if e.address6 else [e.address]


def _link_entries(links: Sequence[str], mine: Sequence[ipam.EndpointRecord],
                  containers: Mapping[str, ipam.ContainerRecord],
                  by_container: Mapping[str, Sequence[ipam.EndpointRecord]]) -> list[dns.HostEntry]:
    """The hosts lines of a container's links ("TARGET:ALIAS"): ALIAS at TARGET's addresses on
    the networks of `mine` (the container's endpoints) that TARGET is on too; none for a target
    that is not there or shares no network with it (dockerd's alias then resolves to nothing).
    A peer that comes or goes on a shared network rewrites this file (`_refresh_peers`)."""
    if not links:
        return []
    names = {cid: c.name for cid, c in containers.items()}
    nets = {e.network for e in mine}
    out = []
    for link in links:
        target, _, alias = link.partition(":")
        cid = dns.link_target(target, names)
        for e in by_container.get(cid or "", ()):
            if e.network in nets:
                out += [dns.HostEntry(a, (alias,)) for a in _addresses(e)]
    return out


def _proxy_pid(pidfile: Path) -> int | None:
    """The pid in `pidfile` if that process is alive and is our port proxy (pids are reused)."""
    try:
        pid = int(pidfile.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if _PROXY_MODULE.encode() in cmdline else None


def _start_proxy(p: ipam.PortRecord) -> int:
    """Start the [::1] proxy of a published port, detached; its pid once it listens."""
    import reconciler

    package_root = str(Path(reconciler.__file__).resolve().parent.parent)    # the proxy imports this copy
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [sys.executable, "-m", _PROXY_MODULE, _LOOPBACK6, str(p.host_port), p.address, str(p.container_port)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        start_new_session=True, close_fds=True,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    line = proc.stdout.readline() if ready else b""
    proc.stdout.close()
    if line.strip() != b"ready":
        proc.kill()
        proc.wait(timeout=10)
        err = proc.stderr.read().decode(errors="replace").strip()
        proc.stderr.close()
        raise errors.Unavailable(
            f"the proxy for [::1]:{p.host_port} did not start: {err or 'no answer in 10s'}",
            hint=f"check that nothing else listens on [::1]:{p.host_port} (`ss -lnt`)",
        )
    proc.stderr.close()
    _proxies[proc.pid] = proc
    return proc.pid


class NetworkManager:
    """Bridges, namespaces, veths, addresses, rules and hosts files of the native engine."""

    def __init__(self, config: NativeConfig) -> None:
        if not names.PREFIX.match(config.name_prefix):
            raise errors.InvalidArgument(
                f"name prefix {config.name_prefix!r} must be 1-7 lowercase letters/digits starting with a letter",
                hint="interface names have 15 characters at most; the prefix must leave room",
            )
        if config.name_prefix in names.RESERVED:
            raise errors.InvalidArgument(
                f"name prefix {config.name_prefix!r} would name bridges as Docker names its own (br-<id>)",
                hint="choose another --name-prefix: the engine leaves traffic to br-* interfaces to Docker's rules",
            )
        self.config = config
        self.prefix = config.name_prefix
        self.netns_dir = config.netns_dir
        self.files_dir = config.net_files_dir
        self._ipam = ipam.IPAM(config.db())
        self._fw = firewall.Firewall(config.name_prefix, applied=config.locks_dir / "firewall.applied")
        self._thread_lock = threading.RLock()
        self._lock_path = config.locks_dir / "network.lock"
        self._netns_dir_shared = False    # seen mounted (read again after this process unmounted it)
        self._fw_thread_lock = threading.Lock()
        self._fw_lock_path = config.locks_dir / "firewall.lock"
        self._fw_rendered = 0       # rulesets this process began to render (under the rules' lock)
        self._fw_applied = 0        # the number of the last one it applied
        self._batches = 0           # open batch() contexts
        self._stale: set[str] = set()   # networks whose containers' hosts files lack a new peer
        self._stale_timer: threading.Timer | None = None
        self._stale_mark: stale.Mark | None = None     # this process's mark while names wait
        self._unserved: set[str] = set()    # on a user network, but the DNS server could not serve them

    # names ----------------------------------------------------------------------------------

    def bridge_name(self, network: str) -> str:
        """`<prefix>-<network>`, or `<prefix>_<hash>` for a name that cannot be an interface's
        (`names.bridge_name`)."""
        return names.bridge_name(self.prefix, network)

    def veth_name(self, container_id: str, network: str) -> str:
        return names.veth_name(self.prefix, container_id, network)

    @staticmethod
    def mac_address(container_id: str, network: str) -> str:
        """The MAC of a container's interface on `network` when it asks for none (its network
        entry's `macAddress`, recorded with its endpoint, goes first): locally administered, from
        a hash as its veth's name, the same each time the interface is made, so a veth made again
        (heal, a repairing attach) does not leave its peers' ARP caches pointing at a MAC gone."""
        digest = _short_hash("mac/" + container_id + "/" + network, 10)
        return "02:" + ":".join(digest[i:i + 2] for i in range(0, 10, 2))

    def netns_path(self, container_id: str) -> Path:
        return self.netns_dir / container_id

    def files(self, container_id: str) -> tuple[Path, Path]:
        """The hosts and resolv.conf the manager keeps for a container (bound into it, and into those joining it)."""
        d = self.files_dir / container_id
        return d / "hosts", d / "resolv.conf"

    @staticmethod
    def _check_container_id(container_id: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", container_id):
            raise errors.InvalidArgument(f"container id {container_id!r} is not a valid identifier")

    # locking ----------------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with _flocked(self._thread_lock, self._lock_path):
            yield

    # networks ---------------------------------------------------------------------------------

    def ensure_network(self, config: base.NetworkConfig) -> base.NetworkState:
        """Create or verify the network: record, bridge, gateway address, MTU, rules."""
        if not _NAME.match(config.name) or config.name in _RESERVED:
            raise errors.InvalidArgument(
                f"network name {config.name!r} is not allowed",
                hint="use letters, digits, '_', '.' and '-', starting with a letter or digit (not none/host/bridge)",
            )
        if not 68 <= config.mtu <= 65535:
            raise errors.InvalidArgument(f"network {config.name!r}: MTU {config.mtu} is out of range 68-65535")
        with self._locked():
            existed = self._ipam.network(config.name) is not None
            bridge = self.bridge_name(config.name)
            record = self._ipam.add_network(
                config, bridge=bridge, pool=self.config.subnet_pool,
                host=() if existed else self._host_networks(bridge),
                host6=() if existed or not config.ipv6 else self._host_networks6(bridge),
            )
            created: list[str] = []
            try:
                self._ensure_bridge(record, created=created)
                self._fw.ensure_accepts(record)
                self._apply_firewall(force=True)
            except BaseException:
                if not existed:
                    self._undo_network(record, delete_bridge=bool(created))
                raise
            log.info("network ensured", network=record.name, bridge=record.bridge, subnet=record.subnet,
                     ipv6_subnet=record.subnet6)
            return record.state()

    def _host_networks(self, bridge: str) -> list[ipam.HostNetwork]:
        """What the host uses besides this engine's bridges (and `bridge`, the one a new network
        gets): every address, and every route but the default (docker0's, the uplink's, a VPN's)."""
        from reconciler.runtime.native.network import netlink

        ours = {r.bridge for r in self._ipam.networks()} | {bridge}
        with netlink.host() as h:
            names = {link.index: link.name for link in h.links()}
            out = [ipam.HostNetwork(ipaddress.IPv4Network(f"{a.address}/{a.prefixlen}", strict=False),
                                    names.get(index, ""), on_link=True)
                   for index, a in h.addresses() if names.get(index) not in ours]
            for r in h.routes():
                name = names.get(r.oif, "") if r.oif is not None else ""
                if r.prefixlen == 0 or name in ours:
                    continue
                with suppress(ValueError):
                    out.append(ipam.HostNetwork(ipaddress.IPv4Network(f"{r.dst}/{r.prefixlen}", strict=False),
                                                name, on_link=r.gateway is None))
            return out

    def _host_networks6(self, bridge: str) -> list[ipaddress.IPv6Network]:
        """The IPv6 networks of the host's global addresses, but this engine's bridges'."""
        from reconciler.runtime.native.network import netlink

        ours = {r.bridge for r in self._ipam.networks()} | {bridge}
        with netlink.host() as h:
            names = {link.index: link.name for link in h.links()}
            return [ipaddress.IPv6Network(f"{a.address}/{a.prefixlen}", strict=False)
                    for index, a in h.addresses(family=socket.AF_INET6) if names.get(index) not in ours]

    def _ensure_bridge(self, record: ipam.NetworkRecord, *, created: list[str] | None = None) -> None:
        from reconciler.runtime.native.network import netlink

        mac = "02:" + ":".join(_short_hash("mac/" + record.bridge, 10)[i:i + 2] for i in range(0, 10, 2))
        want = netlink.Address(record.gateway, record.prefixlen)
        want6 = netlink.Address(record.gateway6, record.prefixlen6) if record.gateway6 else None
        with netlink.host() as h:
            link = h.link(record.bridge)
            if link is None:
                try:
                    link = h.add_bridge(record.bridge, mtu=record.mtu, mac=mac)
                    if created is not None:
                        created.append(record.bridge)
                except errors.AlreadyExists:
                    link = h.link(record.bridge)
                    if link is None:
                        raise
            if link.kind != "bridge":
                raise errors.Conflict(
                    f"interface {record.bridge} exists but is a {link.kind or 'plain'} device, not a bridge",
                    hint=f"delete it (ip link del {record.bridge}) or rename the network",
                )
            if link.mtu != record.mtu:
                h.set_link(link.index, mtu=record.mtu)
            if want6 is not None:
                netlink.sysctl(f"net/ipv6/conf/{record.bridge}/disable_ipv6", "0")
            for family, address in ((socket.AF_INET, want), (socket.AF_INET6, want6)):
                present = {a for _, a in h.addresses(link.index, family=family)}
                for other in present - {address}:
                    h.delete_address(link.index, other)
                if address is not None and address not in present:
                    h.add_address(link.index, address)
            if not link.up:
                h.set_link(link.index, state="up")
        netlink.sysctl(f"net/ipv4/conf/{record.bridge}/route_localnet", "1")
        if Path(f"/proc/sys/net/ipv6/conf/{record.bridge}").exists():
            netlink.sysctl(f"net/ipv6/conf/{record.bridge}/accept_ra", "0")
        if not record.internal:
            netlink.sysctl("net/ipv4/ip_forward", "1")
            if want6 is not None:
                netlink.sysctl("net/ipv6/conf/all/forwarding", "1")

    def _undo_network(self, record: ipam.NetworkRecord, *, delete_bridge: bool) -> None:
        from reconciler.runtime.native.network import netlink

        if delete_bridge:
            with suppress(errors.RuntimeBackendError), netlink.host() as h:
                h.delete_link(record.bridge)
        with suppress(errors.RuntimeBackendError):
            self._fw.remove_accepts([record.bridge])
        with suppress(errors.RuntimeBackendError):
            self._ipam.remove_network(record.name)
        with suppress(errors.RuntimeBackendError):
            self._apply_firewall()

    def remove_network(self, name: str) -> None:
        """Remove a network with no containers attached (Conflict otherwise, NotFound if absent).

        What is on the host goes first (the bridge with its addresses, its DOCKER-USER accepts,
        its rules in our table), the record last: a process killed midway leaves a recorded
        network without (some of) them, which the next engine start makes again (a recorded
        network without its bridge: `containers/recovery.py` `_network_leftovers`) and the
        removal can be asked again. The record first left a bridge, its address and its rules
        that no record named: never removed, and its subnet refused as a foreign interface's."""
        from reconciler.runtime.native.network import netlink

        with self._locked():
            record = self._ipam.removable_network(name)
            with netlink.host() as h:
                h.delete_link(record.bridge)
            self._fw.remove_accepts([record.bridge])
            self._apply_firewall(force=True, without=name)
            self._ipam.remove_network(name)
            log.info("network removed", network=name, bridge=record.bridge)

    def list_networks(self, selector: Mapping[str, str] | None = None) -> list[base.NetworkState]:
        """Networks whose labels include every `selector` item."""
        return [r.state() for r in self._ipam.networks() if base.labels_match(r.labels, selector)]

    def find(self, term: str) -> str:
        """The name of the network `term` names, by its name, id or unique id prefix, as dockerd
        finds one (`ipam.find_network`): what `network inspect` and `network rm` take."""
        from reconciler.runtime.native.network import ipam

        names = {r.id: r.name for r in self._ipam.networks()}
        return names[ipam.find_network(term, {i: (name,) for i, name in names.items()})]

    def inspect_network(self, name: str) -> tuple[base.NetworkState, list[tuple[str, str, str]]]:
        """The network and its containers as (container id, name, address)."""
        record = self._ipam.network(name)
        if record is None:
            raise errors.NotFound(f"network {name!r} not found")
        names = {c.container_id: c.name for c in self._ipam.containers()}
        members = [(e.container_id, names.get(e.container_id, ""), e.address)
                   for e in self._ipam.endpoints(network=name)]
        return record.state(), sorted(members, key=lambda m: m[1])

    def ensure_default_network(self) -> base.NetworkState:
        return self.ensure_network(base.NetworkConfig(name=DEFAULT_NETWORK))

    @contextmanager
    def _fw_locked(self) -> Iterator[None]:
        """The rules' own lock (taken inside the manager's lock where both are held, never the other
        way round): each ruleset is rendered from the records and applied under it, so the last
        applied is rendered from the newest records, whichever process applied it."""
        with _flocked(self._fw_thread_lock, self._fw_lock_path):
            yield

    def _fw_ticket(self) -> int:
        """Taken once records are committed: the number the next ruleset to be rendered will have."""
        return self._fw_rendered + 1

    def _apply_firewall(self, *, force: bool = False, ticket: int | None = None, without: str | None = None) -> None:
        """Replace our tables with the ruleset of the records (`without` that network's: it is
        being removed). With a `ticket`: skipped when this process applied a ruleset rendered
        after it was taken (attaches waiting for the lock while another thread applied share its
        transaction: one `nft` for them all)."""
        with self._fw_locked():
            if ticket is not None and self._fw_applied >= ticket:
                return
            self._fw_rendered += 1
            number = self._fw_rendered
            networks = [n for n in self._ipam.networks() if n.name != without]
            self._fw.apply(networks, self._ipam.forwarded_ports(), force=force)
            self._fw_applied = number

    # ports ------------------------------------------------------------------------------------

    def check_ports(self, ports: Sequence[base.PortMapping], *, container_id: str | None = None) -> None:
        """Raise InvalidArgument/Conflict if a mapping is malformed or its host port is taken.

        Taken means published by another of our containers that runs (one that does not gives
        it up: `ipam._yield_ports`), or bound by a listening socket on this host (docker-proxy,
        a local server). Callable at plan time.
        """
        seen: set[tuple[str, str, int]] = set()
        for p in ports:
            self._validate_port(p)
            key = (p.protocol, p.host_ip, p.host_port)
            if key in seen:
                raise errors.InvalidArgument(f"host port {p.host_ip}:{p.host_port}/{p.protocol} is published twice")
            seen.add(key)
        running = self._ipam.publishers()
        for rec in self._ipam.ports():
            if rec.container_id == container_id or not running.get(rec.container_id):
                continue
            for p in ports:
                if rec.protocol == p.protocol and rec.host_port == p.host_port and ipam.same_port_address(
                        rec.host_ip, p.host_ip):
                    owner = next((c.name for c in self._ipam.containers() if c.container_id == rec.container_id), "?")
                    raise errors.PortInUse(
                        f"host port {p.host_ip}:{p.host_port}/{p.protocol} is already published by container {owner!r}",
                        hint="choose another host port or remove that container",
                    )
        for p in ports:
            self._probe_listener(p)

    def _taken(self, port: base.PortMapping, container_id: str) -> bool:
        """Is the host port of `port` taken now (check_ports' PortInUse)?"""
        try:
            self.check_ports([port], container_id=container_id)
        except errors.PortInUse:
            return True
        return False

    def _choose_ports(self, ports: Sequence[base.PortMapping]) -> list[base.PortMapping]:
        """`ports` with each host port 0 replaced by a free one (Docker's way): one the kernel
        picks from the ephemeral range (net.ipv4.ip_local_port_range) that no container of this
        engine publishes. Call under the lock."""
        held = [(r.protocol, r.host_ip, r.host_port) for r in self._ipam.ports()]
        held += [(p.protocol, p.host_ip, p.host_port) for p in ports if p.host_port]
        out: list[base.PortMapping] = []
        for p in ports:
            if p.host_port:
                out.append(p)
                continue
            chosen = self._free_port(p, held)
            held.append((p.protocol, p.host_ip, chosen))
            out.append(dataclasses.replace(p, host_port=chosen))
        return out

    def _free_port(self, p: base.PortMapping, held: Sequence[tuple[str, str, int]]) -> int:
        """A host port for `p` that nothing listens on and `held` does not take. The kernel's
        offer is free when made, not after: the socket that asked is closed, and another program
        may bind the port before it is probed (a server started at that moment on a port its
        maker had chosen the same way): such a port is passed over, as one of ours is, where a
        port the manifest names is refused (check_ports)."""
        def taken(port: int) -> bool:
            return any(proto == p.protocol and number == port and ipam.same_port_address(ip, p.host_ip)
                       for proto, ip, number in held)

        self._validate_port(dataclasses.replace(p, host_port=1))
        for _ in range(_CHOOSE_TRIES):
            port = self._kernel_port(p)
            if taken(port):
                continue
            try:
                self._probe_listener(dataclasses.replace(p, host_port=port))
            except errors.Conflict:
                continue
            return port
        raise errors.Unavailable(
            f"no free host port for container port {p.container_port}/{p.protocol} on {p.host_ip}: "
            f"the kernel offered {_CHOOSE_TRIES} that containers of this engine publish or other programs took",
            hint="widen net.ipv4.ip_local_port_range, or name the host port (published:)")

    @staticmethod
    def _kernel_port(p: base.PortMapping) -> int:
        """A port of the ephemeral range free on `p.host_ip` right now (bind to port 0, as Docker does)."""
        kind = socket.SOCK_STREAM if p.protocol == "tcp" else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET6 if ":" in p.host_ip else socket.AF_INET, kind) as s:
            if ":" in p.host_ip:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                s.bind((p.host_ip, 0))
            except OSError as exc:
                raise errors.InvalidArgument(
                    f"cannot choose a host port for container port {p.container_port}/{p.protocol} "
                    f"on {p.host_ip}: {exc.strerror}",
                    hint="publish on an address of this host (or leave hostIP out)",
                ) from exc
            return int(s.getsockname()[1])

    @staticmethod
    def _validate_port(p: base.PortMapping) -> None:
        if p.protocol not in ("tcp", "udp"):
            raise errors.InvalidArgument(f"port protocol {p.protocol!r} is not tcp or udp")
        for what, num in (("host", p.host_port), ("container", p.container_port)):
            if not 1 <= num <= 65535:
                raise errors.InvalidArgument(f"{what} port {num} is out of range 1-65535")
        try:
            ipaddress.ip_address(p.host_ip)
        except ValueError as exc:
            raise errors.InvalidArgument(
                f"host address {p.host_ip!r} of port {p.host_port} is not an IP address",
            ) from exc
        if p.host_ip == _LOOPBACK6 and p.protocol != "tcp":
            raise errors.InvalidArgument(
                f"port {p.host_port}/{p.protocol} on [::1]: only TCP can be published on the IPv6 loopback",
                hint="publish it on 127.0.0.1, or on [::] (reachable at the host's other IPv6 addresses)",
            )

    @staticmethod
    def _probe_listener(p: base.PortMapping) -> None:
        kind = socket.SOCK_STREAM if p.protocol == "tcp" else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET6 if ":" in p.host_ip else socket.AF_INET, kind) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if ":" in p.host_ip:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                s.bind((p.host_ip, p.host_port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise errors.PortInUse(
                        f"host port {p.host_ip}:{p.host_port}/{p.protocol} is in use by another program on this host",
                        hint=f"find it with `ss -lnp | grep :{p.host_port}` or publish another port",
                    ) from exc
                if exc.errno == errno.EADDRNOTAVAIL:
                    raise errors.InvalidArgument(
                        f"host address {p.host_ip} of port {p.host_port} is not an address of this host",
                    ) from exc
                raise errors.Unavailable(f"cannot probe host port {p.host_ip}:{p.host_port}: {exc}") from exc

    # attach / detach --------------------------------------------------------------------------

    def attach(
        self,
        container_id: str,
        *,
        name: str,
        hostname: str,
        networks: Sequence[str],
        ports: Sequence[base.PortMapping] = (),
        aliases: Sequence[str] = (),
        static_ips: Mapping[str, str] | None = None,
        static_ips6: Mapping[str, str] | None = None,
        extra_hosts: Sequence[str] = (),
        dns: Sequence[str] = (),
        dns_search: Sequence[str] = (),
        dns_options: Sequence[str] = (),
        domainname: str | None = None,
        forward: bool = True,
        macs: Mapping[str, str] | None = None,
        link_local: Mapping[str, Sequence[str]] | None = None,
        gw_priorities: Mapping[str, int] | None = None,
        network_aliases: Mapping[str, Sequence[str]] | None = None,
        links: Sequence[str] = (),
        ports_at_start: bool = False,
    ) -> Attachment:
        """Give a container its namespace, interfaces, addresses, published ports and names (its
        `aliases` on every network, its `network_aliases` on theirs alone, and the names its
        `links` ("TARGET:ALIAS") give other containers to it alone); its
        interface on a network the MAC address `macs` names and the extra `link_local` addresses
        there, its default route through the network of the highest `gw_priorities` (Docker's rule).

        Idempotent: attaching an attached container to the same networks verifies and repairs
        its interfaces; different networks are a Conflict (detach first). A host port 0 is one
        chosen at the first attach and held (restarts, reboots) until detach; the attachment's
        `ports` say which, once forwarded: at once, or (not `forward`: a container created, not
        yet started) from `forward()` on. `ports_at_start` (a create through the Engine API, as
        dockerd binds a port at a start): a host port taken now (a running container publishes
        it, another program listens on it) is not held, not refused: the start takes it
        (`forward`), or fails.
        """
        self._check_container_id(container_id)
        for label in (name, hostname, *aliases, *(a for given in (network_aliases or {}).values() for a in given),
                      *(link.partition(":")[2] for link in links)):
            if label and not _HOSTNAME.match(label):
                raise errors.InvalidArgument(
                    f"{label!r} (container {name!r}) is not a valid host name for /etc/hosts",
                    hint="use letters, digits, '.', '-' and '_' (up to 253 characters)",
                )
        static = dict(static_ips or {})
        # no network named: the default one; "none": disconnected from every one, its namespace
        # with no interface but its loopback (what Docker starts such a container with)
        nets = [n for n in dict.fromkeys(networks) if n != "none"] if networks else [DEFAULT_NETWORK]
        if DEFAULT_NETWORK in nets and self._ipam.network(DEFAULT_NETWORK) is None:
            self.ensure_default_network()
        with self._locked():
            existing = self._ipam.container(container_id)
            if existing is not None:
                eps = self._ipam.endpoints(container_id=container_id)
                if [e.network for e in eps] != nets:
                    raise errors.Conflict(
                        f"container {name!r} is attached to {[e.network for e in eps]}, not {nets}",
                        hint="detach it before attaching it to other networks",
                    )
                # its ports where its default route is now (the rule may have changed since they
                # were recorded: name order, no ports on internal networks only)
                self._ipam.route_ports(container_id)
                self._ensure_interfaces(container_id, eps)
                self._write_files(container_id)
                self._apply_firewall(force=True)
                self._ensure_proxies(container_id)
                self._serve_dns(container_id, nets)       # its namespace may be a new one (a reboot)
                return self._attachment(container_id, eps)
            ports = self._choose_ports(ports)
            try:
                self.check_ports(ports, container_id=container_id)
            except errors.PortInUse:
                if not ports_at_start:
                    raise
                ports = [p for p in ports if not self._taken(p, container_id)]
            record = ipam.ContainerRecord(
                container_id=container_id, name=name, hostname=hostname or name,
                aliases=tuple(aliases), netns=str(self.netns_path(container_id)),
                extra_hosts=tuple(extra_hosts), dns=tuple(dns), dns_search=tuple(dns_search),
                dns_options=tuple(dns_options), domainname=domainname or "", links=tuple(links),
            )
            endpoints, port_records = self._ipam.add_container(
                record, networks=nets, static_ips=static, ports=ports, static_ips6=static_ips6,
                veth_name={n: self.veth_name(container_id, n) for n in nets}, forwarding=forward,
                options=_options(macs, link_local, gw_priorities, network_aliases),
            )
            try:
                if not self._netns_dir_shared:
                    # the first namespace makes its directory a shared bind mount: once, under the lock
                    if not _mount_count(self.netns_dir):
                        self._ensure_netns(container_id)
                    self._netns_dir_shared = True
                self._ensure_proxies(container_id)
                if self._batches:
                    self._write_files(container_id)     # its own file names every peer already
                    self._mark_stale(nets)              # theirs learn its name within a second
                else:
                    self._write_files(container_id, peers=self._peers(container_id, nets))   # one read of the records
            except BaseException:
                self._undo_attach(container_id, endpoints)
                raise
        ticket = self._fw_ticket()          # any ruleset rendered from now on has this container's ports
        try:
            # outside the lock: the namespace, veths and addresses are this container's alone (its
            # records, made above, hold its addresses and names), so containers attach in parallel
            self._ensure_interfaces(container_id, endpoints, locked=False)
            self._apply_firewall(ticket=ticket)
            for pr in port_records:
                if pr.protocol == "udp":
                    self._clear_udp_flows(pr.host_port)
        except BaseException:
            with self._locked():
                self._undo_attach(container_id, endpoints)
            raise
        # its interfaces are up: its first lookup, once its process starts, has an answer
        self._serve_dns(container_id, nets, locked=False)
        log.info("container attached", container=name, addresses={e.network: e.address for e in endpoints},
                 ipv6_addresses={e.network: e.address6 for e in endpoints if e.address6})
        return self._attachment(container_id, endpoints)

    def _undo_attach(self, container_id: str, endpoints: Sequence[ipam.EndpointRecord]) -> None:
        """A failed attach leaves nothing: interfaces, namespace, records, rules, peers' names."""
        nets = [e.network for e in endpoints]
        self._teardown(container_id, endpoints)
        with suppress(errors.RuntimeBackendError):
            self._apply_firewall()
        with suppress(OSError):
            self._refresh_peers(container_id, nets)

    @staticmethod
    def _clear_udp_flows(port: int) -> None:
        """Forget UDP flows to `port` that still point at an old address (best effort, like CNI)."""
        from reconciler.runtime.native.network import netlink

        try:
            netlink.clear_conntrack(protocol="udp", port=port)
        except errors.RuntimeBackendError as exc:
            log.warning("stale UDP conntrack entries not cleared; clients may need a new source port",
                        port=port, error=str(exc))

    def _attachment(self, container_id: str, endpoints: Sequence[ipam.EndpointRecord]) -> Attachment:
        hosts, resolv = self.files(container_id)
        return Attachment(
            netns_path=self.netns_path(container_id),
            ip_addresses={e.network: e.address for e in endpoints},
            ip6_addresses={e.network: e.address6 for e in endpoints if e.address6},
            hosts_path=hosts, resolv_conf_path=resolv,
            ports=tuple(base.PortMapping(container_port=r.container_port, host_port=r.host_port, protocol=r.protocol,
                                         host_ip=r.host_ip)
                        for r in self._ipam.forwarded_ports(container_id)),
        )

    def _ensure_interfaces(self, container_id: str, endpoints: Sequence[ipam.EndpointRecord], *,
                           locked: bool = True) -> None:
        """`locked`: the caller holds the manager's lock (else a missing bridge is made under it)."""
        from reconciler.runtime.native.network import netlink

        path = self._ensure_netns(container_id)
        records = {n.name: n for n in self._ipam.networks()}
        default_net = self._default_network(endpoints, records)
        with netlink.host() as h:
            for ep in endpoints:
                self._plug(h, path, records[ep.network], ep, default=ep.network == default_net, locked=locked)

    @staticmethod
    def _default_network(endpoints: Sequence[ipam.EndpointRecord], records: Mapping[str, ipam.NetworkRecord]) -> str | None:
        """The network of a container's default route: that of the endpoint that serves its
        published ports (`ipam.port_endpoint`: none on internal networks only, no way out)."""
        ep = ipam.port_endpoint(endpoints, {n for n, r in records.items() if r.internal})
        return None if ep is None else ep.network

    def _ensure_netns(self, container_id: str) -> Path:
        from reconciler.runtime.native.network import netlink

        path = self.netns_path(container_id)
        self.netns_dir.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            netlink.create_netns(path)
        return path

    def _plug(self, h: netlink.Host, path: Path, net: ipam.NetworkRecord, ep: ipam.EndpointRecord, *,
              default: bool, locked: bool = True) -> bool:
        """The endpoint's veth on its bridge (made if missing) and its addresses in the namespace
        (with the default routes when this is the container's `default` network). Whether the
        veth was made (else it was there)."""
        from reconciler.runtime.native.network import netlink

        bridge = h.index(net.bridge)
        if bridge is None:
            if locked:
                self._ensure_bridge(net)
            else:
                with self._locked():            # a bridge is shared: made under the lock
                    self._ensure_bridge(net)
            bridge = h.index(net.bridge)
            if bridge is None:
                raise errors.Unavailable(f"bridge {net.bridge} of network {net.name!r} is missing")
        fresh = False
        if h.index(ep.veth) is None:
            try:
                # the MAC asked for, else one derived from the container and the network; made
                # on its bridge and up, so nothing of it needs a look (#21)
                index = h.add_veth(ep.veth, peer=ep.ifname, peer_netns=path, mtu=net.mtu, master=bridge,
                                   up=True, peer_mac=ep.mac or self.mac_address(ep.container_id, ep.network))
                fresh = True
            except errors.AlreadyExists:
                pass                            # made meanwhile by another process: a heal outside the lock
        if not fresh:
            veth = h.link(ep.veth)
            if veth is None:
                raise errors.Unavailable(f"veth {ep.veth} of network {net.name!r} is missing")
            if veth.kind != "veth":
                raise errors.Conflict(f"interface {ep.veth} exists and is not a veth")
            index = veth.index
            if veth.master != bridge:
                h.set_link(index, master=bridge)
            if not veth.up:
                h.set_link(index, state="up")
        h.set_hairpin(index)
        netlink.configure_container_side(
            path, ifname=ep.ifname, address=netlink.Address(ep.address, net.prefixlen),
            gateway=net.gateway if default else None,
            address6=netlink.Address(ep.address6, net.prefixlen6) if ep.address6 else None,
            gateway6=net.gateway6 if default else None, fresh=fresh, mac=ep.mac,
            link_local=tuple(netlink.Address(a, 64 if ":" in a else 16) for a in ep.link_local),
        )
        if fresh:
            # the kernel's announcement at the interface's start can go before its port forwards
            with suppress(errors.RuntimeBackendError):     # best effort, as that one
                netlink.announce(path, ifname=ep.ifname, address=ep.address, address6=ep.address6, port=ep.veth,
                                 mac=ep.mac or self.mac_address(ep.container_id, ep.network))
        return fresh

    def connect(self, container_id: str, network: str, aliases: Sequence[str] = (), *,
                address: str | None = None, address6: str | None = None, mac: str | None = None,
                link_local: Sequence[str] = (), gw_priority: int = 0) -> Attachment:
        """Join an attached (running) container to one more network: a veth into its namespace
        (of MAC `mac` when given), its addresses (`address`/`address6` when given, else ones the
        network chooses; IPv6 only on a dual-stack network: the endpoint is made and plugged as at
        attach; and the `link_local` ones), its name (and `aliases`, its names on that network alone,
        as Docker's are an endpoint's) in its peers' hosts files there; the default route moves to it when its `gw_priority` says so. Its attachment now."""
        from reconciler.runtime.native.network import netlink

        self._check_container_id(container_id)
        with self._locked():
            before = self._ipam.forwarded_ports(container_id)
            ep = self._ipam.add_endpoint(container_id, network, veth=self.veth_name(container_id, network),
                                         aliases=aliases, static=address, static6=address6,
                                         options=ipam.EndpointOptions(mac, tuple(link_local), gw_priority))
            records = {n.name: n for n in self._ipam.networks()}
            net = records[network]              # add_endpoint found it
            default = self._default_network(self._ipam.endpoints(container_id=container_id), records) == network
            try:
                with netlink.host() as h:
                    self._plug(h, self.netns_path(container_id), net, ep, default=default)
                self._write_files(container_id)
                self._serve_dns(container_id, [network])
                self._apply_firewall()
                self._ports_moved(container_id, before)
                self._refresh_peers(container_id, [network])
            except BaseException:
                self._unplug(container_id, network)
                raise
            log.info("container connected", container=container_id[:12], network=network, address=ep.address,
                     address6=ep.address6)
            return self._attachment(container_id, self._ipam.endpoints(container_id=container_id))

    def forward(self, container_id: str, on: bool, ports: Sequence[base.PortMapping] = ()) -> Attachment:
        """Forward a container's published ports (`on`: it starts) or stop (it stopped or
        exited): Docker publishes a container's ports while it runs. Its host ports stay held
        for it either way, until a container made while it does not run asks for one of them
        (`ipam._yield_ports`, as Docker binds ports at a start): at its start those of `ports`
        (the ones it publishes) it no longer holds are taken back, and one a running container
        holds is a Conflict (dockerd's start fails likewise: "port is already allocated"). One
        another program of the host listens on meanwhile is a Conflict and nothing is forwarded
        (Docker's start fails likewise: its proxy cannot bind the port). Its attachment now."""
        self._check_container_id(container_id)
        with self._locked():
            if on and ports:
                self._take_back(container_id, ports)
            before = self._ipam.forwarded_ports(container_id)
            if on:
                for p in self._ipam.ports():
                    if p.container_id == container_id and p.forwarded and p not in before:
                        self._probe_listener(base.PortMapping(container_port=p.container_port, host_port=p.host_port,
                                                              protocol=p.protocol, host_ip=p.host_ip))
            if self._ipam.set_forwarding(container_id, on):
                try:
                    self._apply_firewall()
                except BaseException:
                    self._ipam.set_forwarding(container_id, not on)    # the rules did not change
                    raise
                self._ports_moved(container_id, before)
            return self._attachment(container_id, self._ipam.endpoints(container_id=container_id))

    def disconnect(self, container_id: str, network: str) -> Attachment:
        """Take a container off one network: its veth (both ends), addresses and names there.
        The network of its default route and published ports (its gateway endpoint) passes them
        to the network that is its gateway endpoint now, as Docker's does; with none left its
        ports are held but not forwarded. Its attachment now."""
        self._check_container_id(container_id)
        with self._locked():
            if not self._ipam.endpoints(network=network, container_id=container_id):
                raise errors.NotFound(f"container {container_id[:12]} is not connected to network {network!r}")
            self._unplug(container_id, network)
            log.info("container disconnected", container=container_id[:12], network=network)
            return self._attachment(container_id, self._ipam.endpoints(container_id=container_id))

    def drop_leftover(self, name_or_id: str, network: str) -> str:
        """`docker network disconnect -f` of a container the engine has no record of (the caller
        checked): the endpoint it left on `network` (a process killed between a container's
        removal and its detach, before a start-up recovery took it), found by the container's name,
        id or an id prefix as the network's members name it, removed: its veth, its address and
        its names in its peers' hosts files; with its last endpoint its namespace and files too,
        as `detach`. The container's id; NotFound when no member of `network` is so named."""
        from reconciler.runtime.native.network import netlink

        with self._locked():
            names = {c.container_id: c.name for c in self._ipam.containers()}
            found = sorted({e.container_id for e in self._ipam.endpoints(network=network)
                            if name_or_id in (names.get(e.container_id), e.container_id)
                            or (len(name_or_id) >= 3 and e.container_id.startswith(name_or_id))})
            if len(found) != 1:
                raise errors.NotFound(f"No such container: {name_or_id}" if not found else
                                      f"container id prefix {name_or_id} is ambiguous on network {network}",
                                      hint=f"see its members: `reconcile network inspect {network}`")
            cid = found[0]
            endpoints = self._ipam.endpoints(container_id=cid)
            if len(endpoints) == 1:
                self._teardown(cid, endpoints)
            else:
                ep = self._ipam.remove_endpoint(cid, network)
                with netlink.host() as h:
                    h.delete_link(ep.veth if ep is not None else self.veth_name(cid, network))
            self._apply_firewall()
            self._refresh_peers(cid, [network])
            self._release_netns_dir()
            log.info("leftover endpoint removed", container=cid[:12], network=network)
            return cid

    def _unplug(self, container_id: str, network: str) -> None:
        from reconciler.runtime.native.network import netlink

        before = self._ipam.forwarded_ports(container_id)
        records = {n.name: n for n in self._ipam.networks()}
        had_default = self._default_network(self._ipam.endpoints(container_id=container_id), records) == network
        ep = self._ipam.remove_endpoint(container_id, network)
        left = self._ipam.endpoints(container_id=container_id)
        default = self._default_network(left, records) if had_default else None
        with netlink.host() as h:
            h.delete_link(ep.veth if ep is not None else self.veth_name(container_id, network))
            for e in left:
                if e.network == default:        # the default route went with the interface that had it
                    self._plug(h, self.netns_path(container_id), records[e.network], e, default=True)
        self._write_files(container_id)
        self._apply_firewall()
        self._ports_moved(container_id, before)
        self._refresh_peers(container_id, [network])

    def _take_back(self, container_id: str, ports: Sequence[base.PortMapping]) -> None:
        """Under the lock, at a start: the host ports of `ports` the container gave up while it did
        not run held for it again (a port it had chosen, host port 0, chosen anew)."""
        rows = [r for r in self._ipam.ports() if r.container_id == container_id]
        missing = []
        for chosen in (False, True):        # the ports given first, then those it had chosen
            for p in ports:
                if bool(p.host_port) == chosen:
                    continue
                held = next((r for r in rows if (r.protocol, r.host_ip) == (p.protocol, p.host_ip)
                             and (r.container_port == p.container_port if chosen else r.host_port == p.host_port)), None)
                if held is None:
                    missing.append(p)
                else:
                    rows.remove(held)
        if missing:
            missing = self._choose_ports(missing)
            # a running container of this engine first, so the error names it (its proxy listens
            # on a port it publishes on [::] or [::1]: a probe alone blamed another program)
            self.check_ports(missing, container_id=container_id)
            yielded = self._ipam.take_ports(container_id, missing)
            log.info("host ports taken back", container=container_id[:12],
                     ports=[f"{p.host_ip}:{p.host_port}/{p.protocol}" for p in missing], **{"from": yielded})

    def _ports_moved(self, container_id: str, before: Sequence[ipam.PortRecord]) -> None:
        """After the rules changed: the [::1] proxies of ports forwarded elsewhere than `before`
        started again towards their new address, and UDP flows to the old one forgotten."""
        after = self._ipam.forwarded_ports(container_id)
        if after == before:
            return
        self._stop_proxies(container_id)
        self._ensure_proxies(container_id)
        for port in sorted({p.host_port for p in [*before, *after] if p.protocol == "udp"}):
            self._clear_udp_flows(port)

    def rename(self, container_id: str, name: str) -> None:
        """A container's new name: its own hosts file and its peers' name it from now on."""
        self._check_container_id(container_id)
        if not _HOSTNAME.match(name):
            raise errors.InvalidArgument(f"{name!r} is not a valid host name for /etc/hosts")
        with self._locked():
            if not self._ipam.rename_container(container_id, name):
                return
            self._write_files(container_id)
            self._refresh_peers(container_id, [e.network for e in self._ipam.endpoints(container_id=container_id)])
            log.info("container renamed", container=container_id[:12], name=name)

    def detach(self, container_id: str) -> None:
        """Remove a container's veths, namespace, rules, addresses and files (partial state is fine)."""
        self._check_container_id(container_id)
        with self._locked():
            endpoints = self._ipam.endpoints(container_id=container_id)
            nets = [e.network for e in endpoints]
            self._teardown(container_id, endpoints)
            self._apply_firewall()
            self._refresh_peers(container_id, nets)
            self._release_netns_dir()

    def _release_netns_dir(self) -> None:
        """Unmount the namespace dir once the last container left (pyroute2 made it a bind mount)."""
        if not self._ipam.containers() and self.netns_dir.is_dir() and not any(self.netns_dir.iterdir()):
            self._netns_dir_shared = False
            unmount_all(self.netns_dir)

    def _teardown(self, container_id: str, endpoints: Sequence[ipam.EndpointRecord]) -> None:
        from reconciler.runtime.native.network import netlink

        names = {e.veth for e in endpoints}
        names |= {self.veth_name(container_id, n.name) for n in self._ipam.networks()}
        problems: list[str] = []
        with netlink.host() as h:
            for veth in sorted(names):
                try:
                    h.delete_link(veth)
                except errors.RuntimeBackendError as exc:
                    problems.append(str(exc))
        try:
            # before its namespace goes: the server's sockets there would keep it (and its veth) alive
            resolver.drop(self.config.run_dir, container_id)
        except errors.RuntimeBackendError as exc:
            problems.append(str(exc))
        self._unserved.discard(container_id)
        try:
            netlink.remove_netns(self.netns_path(container_id))
        except errors.RuntimeBackendError as exc:
            problems.append(str(exc))
        self._stop_proxies(container_id)
        self._ipam.remove_container(container_id)
        shutil.rmtree(self.files_dir / container_id, ignore_errors=True)
        if problems:
            log.warning("detach left something behind; recover() will retry", container=container_id,
                        problems=problems)

    # the [::1] proxies -------------------------------------------------------------------------

    def _proxy_pidfile(self, container_id: str, port: int) -> Path:
        return self.files_dir / container_id / f"proxy-{port}.pid"

    def _ensure_proxies(self, container_id: str) -> None:
        """A running `portproxy` per TCP port this container publishes on [::1] or [::]."""
        for p in self._ipam.forwarded_ports(container_id):
            if p.host_ip not in (_LOOPBACK6, ipam.ANY_IP6):
                continue
            if p.protocol != "tcp":
                continue
            pidfile = self._proxy_pidfile(container_id, p.host_port)
            if _proxy_pid(pidfile) is not None:
                continue
            pidfile.parent.mkdir(parents=True, exist_ok=True)
            pidfile.write_text(str(_start_proxy(p)))

    def _stop_proxies(self, container_id: str) -> None:
        d = self.files_dir / container_id
        for pidfile in sorted(d.glob("proxy-*.pid")) if d.is_dir() else ():
            pid = _proxy_pid(pidfile)
            if pid is not None:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                proc = _proxies.pop(pid, None)
                if proc is not None:
                    proc.wait(timeout=10)
            pidfile.unlink(missing_ok=True)

    # the embedded DNS server -------------------------------------------------------------------

    def _serve_dns(self, container_id: str, networks: Sequence[str], *, locked: bool = True) -> None:
        """The engine's DNS server (`resolver`, started if none runs) answering at 127.0.0.11 in
        the namespace of a container on a user-defined network. When it cannot, the container
        goes on with the nameservers it would have had without it, its peers' names in its hosts
        file alone, and a warning: the next attach (a start after a reboot, a connect) or start-up
        recovery tries again. `locked`: the caller holds the manager's lock."""
        if not dns.embedded(networks):
            return
        try:
            resolver.serve(self.config, container_id, self.netns_path(container_id))
        except errors.RuntimeBackendError as exc:
            log.warning("no embedded DNS server for the container: its peers' names resolve through its hosts file alone",
                        container=container_id[:12], error=str(exc))
            if container_id in self._unserved:
                return
            self._unserved.add(container_id)
        else:
            if container_id not in self._unserved:
                return
            self._unserved.discard(container_id)
        if locked:
            self._write_files(container_id)         # its resolv.conf with or without 127.0.0.11
        else:
            with self._locked():
                self._write_files(container_id)

    def _serve_recorded(self, known: set[str]) -> None:
        """Under the lock: the DNS server serving each recorded container on a user-defined network
        whose namespace is there (a server that died is started again)."""
        from reconciler.runtime.native.network import netlink

        nets: dict[str, list[str]] = {}
        for e in self._ipam.endpoints():
            nets.setdefault(e.container_id, []).append(e.network)
        for cid in sorted(known):
            if dns.embedded(nets.get(cid, ())) and netlink.is_netns(self.netns_path(cid)):
                self._serve_dns(cid, nets[cid])

    # names ------------------------------------------------------------------------------------

    def _write_files(self, *container_ids: str, peers: Sequence[str] = ()) -> None:
        """(Re)write the hosts and resolv.conf files of `container_ids`, and the hosts files alone of
        `peers` (a peer's resolv.conf names no other container), from one read of the records."""
        containers = {c.container_id: c for c in self._ipam.containers()}
        gateways = {n.name: n.gateway for n in self._ipam.networks()}
        by_network: dict[str, list[tuple[str, dns.HostEntry]]] = {}    # each peer's lines, made once
        by_container: dict[str, list[ipam.EndpointRecord]] = {}
        for e in self._ipam.endpoints():
            by_container.setdefault(e.container_id, []).append(e)
            peer = containers.get(e.container_id)
            if peer is not None:
                names = dns.peer_names(peer.name, (*peer.aliases, *e.aliases), e.container_id,
                                       peer.hostname)       # as the DNS server answers
                by_network.setdefault(e.network, []).extend(
                    (e.container_id, dns.HostEntry(a, names)) for a in _addresses(e))
        blocks: dict[str, dns.NetworkHosts] = {}      # a network's lines, for its containers with one endpoint
        host_resolv = ""
        if container_ids:
            with suppress(OSError):
                host_resolv = Path("/etc/resolv.conf").read_text()
        for container_id in (*container_ids, *peers):
            rec = containers.get(container_id)
            if rec is None:
                continue
            own_files = container_id in container_ids
            hosts_path, resolv_path = self.files(container_id)
            if own_files:
                hosts_path.parent.mkdir(parents=True, exist_ok=True)
            elif not hosts_path.parent.is_dir():
                continue                # a peer whose files are not made yet: its own attach writes them
            mine = by_container.get(container_id, [])
            # as Docker's: `IP hostname.domainname hostname`, the full name first (`hostname -f`)
            fqdn = (f"{rec.hostname}.{rec.domainname}",) if rec.domainname else ()
            own = [dns.HostEntry(a, tuple(dict.fromkeys((*fqdn, rec.hostname, rec.name, *rec.aliases, *e.aliases))))
                   for e in mine for a in _addresses(e)]
            own += dns.extra_entries(rec.extra_hosts, gateways.get(mine[0].network) if mine else None)
            own += _link_entries(rec.links, mine, containers, by_container)
            text = None
            if len(mine) == 1:
                net = mine[0].network
                if net not in blocks:
                    blocks[net] = dns.NetworkHosts(by_network.get(net, ()))
                text = blocks[net].render(container_id, own)
            if text is None:
                others = [entry for e in mine for other, entry in by_network.get(e.network, ()) if other != container_id]
                text = dns.render_hosts(own, others)
            dns.write_in_place(hosts_path, text)
            if own_files:
                embedded = dns.embedded(e.network for e in mine) and container_id not in self._unserved
                dns.write_in_place(resolv_path, dns.render_resolv_conf(host_resolv, rec.dns, rec.dns_search,
                                                                            rec.dns_options, embedded=embedded))

    def _refresh_peers(self, container_id: str, networks: Sequence[str]) -> None:
        """Rewrite the hosts files of every container sharing one of `networks` (at once, in a
        batch too: a name that goes or changes must not keep pointing at a released address)."""
        self._write_files(peers=self._peers(container_id, networks))
        self._stale.difference_update(networks)
        if not self._stale:
            self._unmark_stale()

    # batches ----------------------------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Within it, an attach writes the new container's own files and leaves its peers' hosts
        files to one rewrite per network, within `_STALE_PEERS_MAX` seconds or at the end: a pass
        that attaches N containers to one network writes O(N) hosts files a second instead of
        N(N-1)/2 in all (a converge of 200 from empty: 19,900). A removal, rename or (dis)connect
        still rewrites its peers at once. A file in the run dir marks the process while names
        wait, so that start-up recovery writes every hosts file again after a crash (recover)."""
        self.begin_batch()
        try:
            yield
        finally:
            self.end_batch()

    def begin_batch(self) -> None:
        """`batch()` entered by hand (backend.LazyNetwork, for batches opened before the
        manager was made); `end_batch` ends it."""
        with self._thread_lock:
            self._batches += 1

    def end_batch(self) -> None:
        with self._locked():
            self._batches -= 1
            if not self._batches:
                self._flush_stale_or_warn()

    def _mark_stale(self, networks: Sequence[str]) -> None:
        """Note that the containers on `networks` wait for a new peer's name (under the lock)."""
        if not self._stale:
            if self._stale_mark is None:
                self._stale_mark = stale.Mark(self.config)
            timer = threading.Timer(_STALE_PEERS_MAX, self._flush_stale_timer)
            timer.daemon = True
            timer.start()
            self._stale_timer = timer
        self._stale.update(networks)

    def _flush_stale_timer(self) -> None:
        with self._locked():
            self._flush_stale_or_warn()

    def _flush_stale_or_warn(self) -> None:
        """`_flush_stale`, a failure said and not raised: the names of the actions that attached
        are in place (their own files), and the networks stay stale with the mark held, so the
        next flush of this process, or an engine start after it ended, writes them."""
        try:
            self._flush_stale()
        except Exception as exc:  # noqa: BLE001 - the end of a pass or a timer: nothing to fail
            log.warning("peers' hosts files not written; the next pass or engine start writes them",
                        networks=sorted(self._stale), error=str(exc))

    def _flush_stale(self) -> None:
        """Write the hosts files of every container on a stale network (under the lock)."""
        if not self._stale:
            return
        networks, self._stale = self._stale, set()
        try:
            self._write_files(peers=sorted({e.container_id for n in networks for e in self._ipam.endpoints(network=n)}))
        except BaseException:
            self._stale |= networks     # the mark stays: the batch's end or recovery tries again
            raise
        self._unmark_stale()

    def _unmark_stale(self) -> None:
        if self._stale_timer is not None:
            self._stale_timer.cancel()
            self._stale_timer = None
        if self._stale_mark is not None:
            self._stale_mark.release()
            self._stale_mark = None

    def _peers(self, container_id: str, networks: Sequence[str]) -> list[str]:
        """The other containers on one of `networks`."""
        peers = {e.container_id for n in networks for e in self._ipam.endpoints(network=n)}
        return sorted(peers - {container_id})

    # recovery ---------------------------------------------------------------------------------

    def heal(self, running: Callable[[], Mapping[str, int]] | None = None) -> base.Healed:
        """Make again what another program took of the recorded networks' host plumbing while
        the engine ran: a bridge deleted (its ports, the containers' veths, left unplugged), a
        container's veth deleted, the engine's nft table gone (a firewall reload that flushes
        the ruleset), or the rule of a port it forwards gone (`nft flush chain`, a rule deleted
        by hand). The ruleset is only rendered again when its text changes, so a table flushed
        under it stays gone, with every published port, until the next change; a start plugs in
        no veth whose namespace is there, so a container cut off stays cut off. A listdir per
        bridge and of the namespaces, three queries and one `nft list table` (holding every
        forwarded port's rule) when nothing is missing: the agent asks before each pass. Each
        veth of a container with a namespace file (or what an unmount left of it) that is no
        port of its bridge is plugged in again (`_plug_again`); `running` gives the pids of the
        running containers, asked only for a container whose namespace file is no namespace.
        What was made again, as words ("bridge X", "nft table Y", "nft rule of port
        127.0.0.1:8080/tcp", "container web on bridge X (veth V)"), and the containers left cut off."""
        networks = self._ipam.networks()
        if not networks:
            return base.Healed()
        veths = self._ipam.veths(self._namespaced())
        gone, loose = ipam.unplugged(networks, veths)
        lost = self._fw.unforwarded(self._ipam.forwarded_ports())
        table = lost is not None
        dns_back = self._dns_again(veths)
        if not gone and not loose and table and not lost:
            return base.Healed(made=dns_back)
        with self._locked():
            networks = self._ipam.networks()                          # as they are under the lock
            gone, loose = ipam.unplugged(networks, self._ipam.veths(self._namespaced()))
            if lost:        # looked at again under the lock: a change in flight is no loss
                lost = self._fw.unforwarded(self._ipam.forwarded_ports())
                table = lost is not None
            for n in gone:
                self._ensure_bridge(n)
            for n in networks if not table else gone:
                # (a flushed ruleset took the iptables-nft accepts in Docker's FORWARD chain too)
                self._fw.ensure_accepts(n)
            if gone or not table or lost:
                self._apply_firewall(force=True)
            plugged, cut = self._plug_again({veth for _, veth in loose}, running)
        made = [f"bridge {n.bridge}" for n in gone] + ([] if table else [f"nft table {self._fw.table}"]) + plugged
        made += [f"nft rule of port {p.host_ip}:{p.host_port}/{p.protocol}" for p in lost or ()]
        made += dns_back
        if made or cut:
            log.warning("network plumbing made again", made=made, cut_off=cut)
        return base.Healed(made=tuple(made), cut_off=cut)

    def _dns_again(self, veths: Sequence[tuple[str, str]]) -> tuple[str, ...]:
        """The embedded DNS server started again if it died while containers with a namespace
        are on a user-defined network (the daemon serves every recorded one at its start)."""
        if not any(dns.embedded([network]) for network, _ in veths):
            return ()
        try:
            return ("embedded DNS server",) if resolver.ensure(self.config) else ()
        except errors.RuntimeBackendError as exc:
            log.warning("the embedded DNS server did not start again", error=str(exc))
            return ()

    def _namespaced(self) -> set[str]:
        """The containers with a namespace file (or what an unmount left of one), whose veths
        belong on their bridges: one without (after a reboot) gets its veth at its start."""
        try:
            return set(os.listdir(self.netns_dir))
        except FileNotFoundError:
            return set()

    def _plug_again(self, veths: set[str], running: Callable[[], Mapping[str, int]] | None,
                    ) -> tuple[list[str], dict[str, str]]:
        """Under the lock: the recorded endpoints whose host-side veth is in `veths` (no port of
        its bridge) plugged in again, as an attach plugs them: the veth put on its bridge again,
        hairpin and up, or, gone, made again in the container's namespace with its recorded
        addresses and MAC (the one asked for, else `mac_address`) and its routes. A container's namespace file lost
        while it runs (an unmount) is bound again from its process (`running()`: the running
        containers' pids); one that does not run is left as it is. What was plugged in, as
        words, and the running containers that stay cut off (name -> why)."""
        from reconciler.runtime.native.network import netlink

        if not veths:
            return [], {}
        records = {n.name: n for n in self._ipam.networks()}
        names = {c.container_id: c.name for c in self._ipam.containers()}
        by_container: dict[str, list[ipam.EndpointRecord]] = {}
        for e in self._ipam.endpoints():
            by_container.setdefault(e.container_id, []).append(e)
        pids: Mapping[str, int] | None = None
        made: list[str] = []
        cut: dict[str, str] = {}

        def runs(cid: str) -> int | None:
            nonlocal pids
            if pids is None:
                pids = running() if running is not None else {}
            return pids.get(cid)

        def cut_off(cid: str, name: str, why: str) -> None:
            if running is None or runs(cid) is not None:      # one that does not run is cut off from nothing
                cut[name] = f"{cut[name]}; {why}" if name in cut else why
            else:
                log.warning("a stopped container's veth not plugged in again; the next heal tries again",
                            container=name, error=why)

        with netlink.host() as h:
            for cid, eps in sorted(by_container.items(), key=lambda item: (names.get(item[0], ""), item[0])):
                todo = [e for e in eps if e.veth in veths]
                if not todo:
                    continue
                name = names.get(cid, cid[:12])
                nets = ", ".join(e.network for e in todo)
                path = self.netns_path(cid)
                if not netlink.is_netns(path):
                    pid = runs(cid)
                    if pid is None:
                        continue            # not running: nothing to cut off
                    try:
                        netlink.bind_netns(path, pid)
                    except errors.RuntimeBackendError as exc:
                        cut_off(cid, name, f"cut off from network {nets}: its network namespace file is gone "
                                           f"and could not be bound again ({exc}); restart it")
                        continue
                default = self._default_network(eps, records)
                for e in todo:
                    net = records[e.network]
                    try:
                        fresh = self._plug(h, path, net, e, default=e.network == default)
                    except errors.RuntimeBackendError as exc:
                        cut_off(cid, name, f"cut off from network {e.network}: its veth {e.veth} not plugged in "
                                           f"again ({exc}); the next heal tries again")
                        continue
                    made.append(f"container {name} on bridge {net.bridge} (veth {e.veth}{', made again' if fresh else ''})")
        return made, cut

    def recover(self, live_container_ids: Sequence[str] = ()) -> RecoveryReport:
        """At start-up: release what dead containers held and delete leaked host objects."""
        from reconciler.runtime.native.network import netlink

        live = set(live_container_ids)
        with self._locked():
            dead = [c.container_id for c in self._ipam.containers() if c.container_id not in live]
            for cid in dead:
                self._teardown(cid, self._ipam.endpoints(container_id=cid))
            networks = self._ipam.networks()
            bridges = {n.bridge for n in networks}
            veths = {e.veth for e in self._ipam.endpoints()}
            for n in networks:
                self._ensure_bridge(n)
                self._fw.ensure_accepts(n)
            deleted: list[str] = []
            with netlink.host() as h:
                for link in h.links():
                    # a link of our forms in full, not any that starts with the prefix: another
                    # engine's prefix may begin with ours (rxc, rxc2: its bridge rxc2-n2)
                    leaked = (link.kind == "veth" and names.is_veth(self.prefix, link.name)
                              and link.name not in veths) or (
                        link.kind == "bridge" and names.is_bridge(self.prefix, link.name) and link.name not in bridges)
                    if leaked and h.delete_link(link.name):
                        deleted.append(link.name)
            # veths a bridge deleted while the engine was away left unplugged (their namespaces
            # are there: the containers may run); after a reboot none has a namespace: its start
            # makes it
            loose = ipam.unplugged(networks, self._ipam.veths(self._namespaced()))[1]
            plugged, cut = self._plug_again({v for _, v in loose}, None)
            if cut:
                log.warning("containers left cut off from their networks", cut_off=cut)
            known = {c.container_id for c in self._ipam.containers()}
            for cid in sorted(known):
                self._ensure_proxies(cid)
            leaked_ns = []
            if self.netns_dir.is_dir():
                for f in sorted(self.netns_dir.iterdir()):
                    if f.name not in known:
                        netlink.remove_netns(f)
                        leaked_ns.append(f.name)
            leaked_files = []
            if self.files_dir.is_dir():
                for d in sorted(self.files_dir.iterdir()):
                    if d.name not in known:
                        self._stop_proxies(d.name)
                        shutil.rmtree(d, ignore_errors=True)
                        leaked_files.append(d.name)
            self._release_netns_dir()
            rules = self._fw.remove_accepts(self._fw.accept_bridges() - bridges)
            self._apply_firewall(force=True)
            self._write_files(*sorted(known))
            self._serve_recorded(known)
            stale.dead_marks(self.config, remove=True)
            report = RecoveryReport(
                containers=tuple(dead), links=tuple(deleted), netns=tuple(leaked_ns),
                iptables_rules=rules, host_files=tuple(leaked_files), plugged=tuple(plugged),
            )
            log.info("network recovery done", report=report)
            return report
