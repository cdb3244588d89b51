"""The one module that speaks netlink (pyroute2): links, addresses, routes, netns, conntrack.

Everything pyroute2 returns is converted into the frozen dataclasses below, and every
pyroute2/OS failure leaves this module as a `runtime.errors` kind naming the object, so the rest
of the engine never sees a pyroute2 type (tests/test_architecture.py enforces the single import).

Calls are the ones verified on the target hosts (shared/reference/host-recipes.md §4):
`link("add", kind="bridge"|"veth")`, `addr("add")`, `brport("set", mode=1)` for hairpin,
a bind-mounted nsfs file runc can join (`create_netns`), `IPRoute(netns=path)` inside.
A link's index by name is the kernel's SIOCGIFINDEX (`Host.index`, socket.if_nametoindex): a
fresh attach makes its veth and addresses with six requests and decodes no link message (#21).
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from pyroute2 import Conntrack, IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

from reconciler._dataclass import dataclass
from reconciler.runtime import errors

_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNET = 0x40000000

__all__ = [
    "Address",
    "Host",
    "Link",
    "Route",
    "announce",
    "bind_netns",
    "clear_conntrack",
    "configure_container_side",
    "create_netns",
    "host",
    "is_netns",
    "remove_netns",
    "sysctl",
]


@dataclass(frozen=True)
class Link:
    """One network interface as the kernel reports it."""

    index: int
    name: str
    kind: str            # "bridge", "veth", "" for plain devices
    mtu: int
    mac: str
    up: bool             # administratively up (IFF_UP)
    master: int | None   # index of the bridge this port belongs to


@dataclass(frozen=True)
class Address:
    """An IPv4 or IPv6 address on an interface."""

    address: str
    prefixlen: int

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ":" in self.address else socket.AF_INET


@dataclass(frozen=True)
class Route:
    """An IPv4 route of the main table."""

    dst: str                 # "0.0.0.0" for the default route
    prefixlen: int
    oif: int | None          # index of the link it goes out of
    gateway: str | None      # None: the destination is on the link itself


_DEFAULT_DST = "0.0.0.0"  # noqa: S104 - the default route's destination, not a bind
_IFA_F_NODAD = 0x02         # an IPv6 address usable at once: no duplicate address detection
_SCOPE_LINK = 253           # RT_SCOPE_LINK: an fe80::/10 address's


def _translate(exc: BaseException, what: str) -> errors.RuntimeBackendError:
    code = getattr(exc, "code", None) if isinstance(exc, NetlinkError) else getattr(exc, "errno", None)
    text = f"{what}: {os.strerror(code) if isinstance(code, int) and code > 0 else exc}"
    if code == errno.EEXIST:
        return errors.AlreadyExists(text)
    if code in (errno.ENODEV, errno.ENOENT, errno.ESRCH):
        return errors.NotFound(text)
    if code in (errno.EPERM, errno.EACCES):
        return errors.Unavailable(text, hint="network setup needs root (CAP_NET_ADMIN)")
    if code in (errno.EINVAL, errno.ERANGE, errno.ENAMETOOLONG):
        return errors.InvalidArgument(text)
    if code == errno.EBUSY:
        return errors.Conflict(text)
    return errors.Unavailable(text)


@contextmanager
def _netlink(what: str) -> Iterator[None]:
    try:
        yield
    except (NetlinkError, OSError) as exc:
        raise _translate(exc, what) from exc


@contextmanager
def _thread_in_netns(path: Path) -> Iterator[None]:
    """Run a block with the calling thread (only) inside the namespace at `path`."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(path, os.O_RDONLY)
        try:
            netns.setns(target, flags=0)
        finally:
            os.close(target)
        try:
            yield
        finally:
            netns.setns(home, flags=0)
    finally:
        os.close(home)


def _to_link(msg: Any) -> Link:
    info = msg.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
    return Link(
        index=int(msg["index"]),
        name=str(msg.get_attr("IFLA_IFNAME")),
        kind=str(kind or ""),
        mtu=int(msg.get_attr("IFLA_MTU") or 0),
        mac=str(msg.get_attr("IFLA_ADDRESS") or ""),
        up=bool(msg["flags"] & 1),
        master=msg.get_attr("IFLA_MASTER"),
    )


class Host:
    """An RTNL socket in one network namespace (the host's unless `netns_path` is given)."""

    def __init__(self, netns_path: Path | None = None) -> None:
        where = f"network namespace {netns_path}" if netns_path else "the host's network namespace"
        self._netns = netns_path
        with _netlink(f"open netlink socket in {where}"):
            if netns_path is None:
                self._ipr = IPRoute()
            else:
                # A socket stays in the namespace it was created in: create it there from this
                # thread (setns is per thread) instead of pyroute2's netns= (a forked helper).
                with _thread_in_netns(netns_path):
                    self._ipr = IPRoute()

    def close(self) -> None:
        self._ipr.close()

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # links -------------------------------------------------------------------------------

    def links(self) -> list[Link]:
        with _netlink("list links"):
            return [_to_link(m) for m in self._ipr.link("dump")]

    def index(self, name: str) -> int | None:
        """The index of the link called `name` in this socket's namespace, or None where the
        kernel names none: its SIOCGIFINDEX (if_nametoindex), for a few microseconds, where a
        netlink `get` costs a full link message to decode (#21). A caller that needs more than
        the index, or to tell a missing link from a failed lookup, asks `link`."""
        try:
            if self._netns is None:
                return socket.if_nametoindex(name)
            with _thread_in_netns(self._netns):
                return socket.if_nametoindex(name)
        except OSError:             # "no interface with this name" (the C call returns 0, no errno)
            return None

    def link(self, name: str) -> Link | None:
        """The link called `name`, or None."""
        with _netlink(f"look up link {name}"):
            try:
                msgs = self._ipr.link("get", ifname=name)
            except NetlinkError as exc:
                if exc.code == errno.ENODEV:
                    return None
                raise
        return _to_link(msgs[0]) if msgs else None

    def add_bridge(self, name: str, *, mtu: int, mac: str) -> Link:
        with _netlink(f"create bridge {name}"):
            self._ipr.link("add", ifname=name, kind="bridge", mtu=mtu, address=mac, br_forward_delay=0)
        found = self.link(name)
        if found is None:
            raise errors.Unavailable(f"bridge {name} vanished right after creation")
        return found

    def add_veth(self, name: str, *, peer: str, peer_netns: Path, mtu: int, master: int | None = None,
                 up: bool = False, peer_mac: str | None = None) -> int:
        """A veth pair: `name` here, `peer` created directly inside `peer_netns` (with the MAC
        `peer_mac`, else one the kernel picks); `name` already on the bridge `master` and up when
        asked (one request, as `ip link add ... master BR up`). The index of `name`."""
        extra: dict[str, Any] = {}
        if master is not None:
            extra["master"] = master
        if up:
            extra["state"] = "up"
        fd = os.open(peer_netns, os.O_RDONLY)
        peer_attrs: dict[str, Any] = {"ifname": peer, "net_ns_fd": fd, "mtu": mtu}
        if peer_mac is not None:
            peer_attrs["address"] = peer_mac
        try:
            with _netlink(f"create veth {name} (peer {peer} in {peer_netns})"):
                self._ipr.link("add", ifname=name, kind="veth", mtu=mtu, peer=peer_attrs, **extra)
        finally:
            os.close(fd)
        found = self.index(name)
        if found is None:
            raise errors.Unavailable(f"veth {name} vanished right after creation")
        return found

    def delete_link(self, name: str) -> bool:
        """Delete `name`; False if it did not exist."""
        with _netlink(f"delete link {name}"):
            try:
                self._ipr.link("del", ifname=name)
            except NetlinkError as exc:
                if exc.code == errno.ENODEV:
                    return False
                raise
        return True

    def set_link(self, index: int, **attrs: Any) -> None:
        """`ip link set` with pyroute2's keyword names (state="up", mtu=, master=, ifname=)."""
        with _netlink(f"set link {index} {sorted(attrs)}"):
            self._ipr.link("set", index=index, **attrs)

    def set_hairpin(self, index: int) -> None:
        with _netlink(f"set hairpin mode on bridge port {index}"):
            self._ipr.brport("set", index=index, mode=1)

    # addresses and routes ----------------------------------------------------------------

    def addresses(self, index: int | None = None, *, family: int = socket.AF_INET,
                  link_scope: bool = False) -> list[tuple[int, Address]]:
        """Addresses of `family` as (link index, address), of one link or all. IPv6 ones are
        the global-scope ones only (the kernel's link-local fe80:: addresses are its own), or
        with `link_scope` the link-scope ones only."""
        with _netlink("list addresses"):
            kw: dict[str, Any] = {"family": family}
            if index is not None:
                kw["index"] = index
            return [
                (int(m["index"]), Address(str(m.get_attr("IFA_ADDRESS")), int(m["prefixlen"])))
                for m in self._ipr.addr("dump", **kw)
                if family == socket.AF_INET or int(m["scope"]) == (_SCOPE_LINK if link_scope else 0)
            ]

    def add_address(self, index: int, addr: Address) -> None:
        """Add `addr` (an IPv6 one with `nodad`: usable at once, no DAD delay)."""
        extra: dict[str, Any] = {"flags": _IFA_F_NODAD} if addr.family == socket.AF_INET6 else {}
        with _netlink(f"add address {addr.address}/{addr.prefixlen} to link {index}"):
            try:
                self._ipr.addr("add", index=index, address=addr.address, prefixlen=addr.prefixlen, **extra)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise

    def delete_address(self, index: int, addr: Address) -> None:
        with _netlink(f"remove address {addr.address}/{addr.prefixlen} from link {index}"):
            self._ipr.addr("del", index=index, address=addr.address, prefixlen=addr.prefixlen)

    def routes(self) -> list[Route]:
        """The IPv4 routes of the main table."""
        with _netlink("list routes"):
            out = []
            for m in self._ipr.route("dump", family=socket.AF_INET, table=254):
                dst, oif, gateway = m.get_attr("RTA_DST"), m.get_attr("RTA_OIF"), m.get_attr("RTA_GATEWAY")
                out.append(Route(str(dst) if dst else _DEFAULT_DST, int(m["dst_len"]),
                                 None if oif is None else int(oif), None if gateway is None else str(gateway)))
            return out

    def set_default_route(self, gateway: str) -> None:
        """The default route (IPv4 or IPv6, after the gateway's family) via `gateway`."""
        v6 = ":" in gateway
        with _netlink(f"set default route via {gateway}"):
            self._ipr.route("replace", dst="::/0" if v6 else "0.0.0.0/0", gateway=gateway,
                            family=socket.AF_INET6 if v6 else socket.AF_INET)


@contextmanager
def host(netns_path: Path | None = None) -> Iterator[Host]:
    """An RTNL socket for the duration of a block."""
    h = Host(netns_path)
    try:
        yield h
    finally:
        h.close()


def create_netns(path: Path) -> None:
    """A new network namespace bind-mounted at `path` (its directory becomes a shared mount).

    Made by a thread of its own, not by a forked child as pyroute2's `netns.create` does: unshare(2)
    and setns(2) of CLONE_NEWNET move only the calling thread, and a fork of the engine's process
    (its threads, its heap's page tables) cost ~20 ms of CPU per container. The thread unshares,
    bind-mounts its own namespace (`/proc/thread-self/ns/net`, as `ip netns add` does) and goes
    back; it ends right after, so a thread stuck in the new namespace cannot do other work."""
    failure: list[BaseException] = []

    def make() -> None:
        try:
            home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.unshare(_CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
                try:
                    _announce_addresses()
                    netns.attach(str(path), "thread-self")
                finally:
                    if _libc.setns(home, _CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, f"setns back to the host's namespace: {os.strerror(err)}")
            finally:
                os.close(home)
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=make, name="netns-create", daemon=True)
    worker.start()
    worker.join()
    if failure:
        with _netlink(f"create network namespace {path}"):
            raise failure[0]


def sysctl(path: str, value: str) -> None:
    """Set `/proc/sys/<path>` (written only when it differs), in the network namespace of the
    calling thread for a net.* one: errors.Unavailable when it cannot be set."""
    p = Path("/proc/sys") / path
    try:
        if p.read_text().strip() != value:
            p.write_text(value)
    except OSError as exc:
        raise errors.Unavailable(f"cannot set sysctl {path.replace('/', '.')}={value}: {exc}") from exc


# the namespace's defaults, which every interface made in it takes: when one comes up, it tells the
# network its addresses (a gratuitous ARP, an unsolicited neighbour advertisement), as Docker's
# bridge driver does with its advertise_addr messages. An address a removed container had, given to
# a new one (a fixed IP, an address reused), is otherwise unreachable from the host and its peers
# until their neighbour entries for it (the old MAC) expire: up to ~45 s.
_ANNOUNCE = ("net/ipv4/conf/default/arp_notify", "net/ipv6/conf/default/ndisc_notify")


def _announce_addresses() -> None:
    """In a namespace just made (by the calling thread): `_ANNOUNCE`'s settings, where they can
    be set (no IPv6 in the kernel, a read-only /proc/sys: the namespace works, announcing nothing)."""
    for path in _ANNOUNCE:
        with suppress(errors.RuntimeBackendError):
            sysctl(path, "1")


ANNOUNCE_WAIT = 1.0     # seconds a fresh attach waits for its bridge port to forward (announce)


def announce(netns_path: Path, *, ifname: str, mac: str, address: str, port: str,
             address6: str | None = None) -> bool:
    """A gratuitous ARP for `address` and an unsolicited neighbour advertisement for `address6`
    (on a dual-stack network) from `ifname` (MAC `mac`) in the namespace at `netns_path`, once
    `port` (the veth's host end) forwards on its bridge (up to ANNOUNCE_WAIT); False when it did
    not. The kernel announces an interface's addresses when they are added and it comes up
    (`_ANNOUNCE`), but the bridge drops a frame its port does not forward yet, which it does only
    once the kernel's link watch has seen the veth's carrier: under load that announcement was
    lost (CI). Docker's bridge driver sends its announcements after the endpoint joins."""
    state = Path(f"/sys/class/net/{port}/brport/state")
    deadline = time.monotonic() + ANNOUNCE_WAIT
    while True:
        try:
            if state.read_text().strip() == "3":        # BR_STATE_FORWARDING
                break
        except OSError:
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.002)
    hw = bytes.fromhex(mac.replace(":", ""))
    frames = [_gratuitous_arp(hw, socket.inet_aton(address))]
    if address6:
        frames.append(_unsolicited_na(hw, socket.inet_pton(socket.AF_INET6, address6)))
    with _netlink(f"announce {address} on {ifname} in {netns_path}"), _thread_in_netns(netns_path), \
            socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((ifname, 0))
        for frame in frames:
            sock.send(frame)
    return True


def _gratuitous_arp(hw: bytes, ip: bytes) -> bytes:
    """Ethernet to everyone, ARP (IPv4 over Ethernet) request: who has `ip`? tell `ip`."""
    return b"\xff" * 6 + hw + b"\x08\x06" + b"\x00\x01\x08\x00\x06\x04\x00\x01" + hw + ip + b"\x00" * 6 + ip


_ALL_NODES = socket.inet_pton(socket.AF_INET6, "ff02::1")


def _unsolicited_na(hw: bytes, ip6: bytes) -> bytes:
    """Ethernet to the all-nodes group (33:33:00:00:00:01), IPv6 from `ip6` with hop limit 255
    (a receiver drops neighbour discovery with any other), ICMPv6 neighbour advertisement
    (RFC 4861 4.4): Override set, Solicited not (a receiver then updates the entry it holds for
    `ip6` to `hw`, and makes none), `ip6` the target, `hw` in the target link-layer option."""
    icmp = bytearray(b"\x88\x00\x00\x00" + b"\x20\x00\x00\x00" + ip6 + b"\x02\x01" + hw)
    pseudo = ip6 + _ALL_NODES + len(icmp).to_bytes(4, "big") + b"\x00\x00\x00\x3a"
    icmp[2:4] = _checksum(pseudo + bytes(icmp)).to_bytes(2, "big")
    header = b"\x60\x00\x00\x00" + len(icmp).to_bytes(2, "big") + b"\x3a\xff" + ip6 + _ALL_NODES
    return b"\x33\x33\x00\x00\x00\x01" + hw + b"\x86\xdd" + header + bytes(icmp)


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum of
    the 16-bit words."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def is_netns(path: Path) -> bool:
    """Whether `path` holds a network namespace (a namespace file bound there, as `create_netns`
    leaves it), not a plain file left by an unmount, nor nothing."""
    try:
        return os.stat(path).st_dev == os.stat("/proc/thread-self/ns/net").st_dev     # nsfs
    except OSError:
        return False


def bind_netns(path: Path, pid: int) -> None:
    """Bind the network namespace of process `pid` at `path` again (its file unmounted or
    deleted while the process lives in it); a plain file left at `path` is replaced, and none is
    left when the bind fails (the process gone: its container's next start makes a namespace)."""
    with _netlink(f"bind the network namespace of process {pid} at {path}"):
        if os.path.lexists(path) and not is_netns(path):
            path.unlink()
        try:
            netns.attach(str(path), pid)
        except BaseException:
            if os.path.lexists(path) and not is_netns(path):
                path.unlink()
            raise


def remove_netns(path: Path) -> bool:
    """Unmount and delete a namespace file; False if it was not there."""
    if not path.exists():
        return False
    with _netlink(f"remove network namespace {path}"):
        netns.remove(str(path))
    return True


def configure_container_side(
    netns_path: Path,
    *,
    ifname: str,
    address: Address,
    gateway: str | None,
    address6: Address | None = None,
    gateway6: str | None = None,
    fresh: bool = False,
    mac: str | None = None,
    link_local: tuple[Address, ...] = (),
) -> None:
    """Inside the namespace: `ifname` and `lo` up, `ifname`'s MAC address `mac` (None: as it is),
    the addresses on `ifname` (IPv6 without DAD) and its `link_local` ones, default routes. An
    IPv4 address or a global IPv6 one that is not asked for goes (None: all); link-local IPv6
    ones are only added (the kernel's own fe80:: address is among them, and an interface is made
    anew when what it asks changes). `fresh`: `ifname` was made just now (with its veth, of MAC
    `mac`), down and with no address: nothing to look at, one request per change (#21)."""
    with host(netns_path) as ns:
        if fresh:
            lo_index, index = ns.index("lo"), ns.index(ifname)
            if lo_index is None or index is None:
                raise errors.NotFound(f"{ifname} is missing in network namespace {netns_path}")
            ns.set_link(lo_index, state="up")           # as it is when the namespace is new
            for wanted in (address, address6, *link_local):
                if wanted is not None:
                    ns.add_address(index, wanted)
            ns.set_link(index, state="up")
            _default_routes(ns, gateway, gateway6 if address6 is not None else None)
            return
        lo = ns.link("lo")
        iface = ns.link(ifname)
        if iface is None or lo is None:
            raise errors.NotFound(f"{ifname} is missing in network namespace {netns_path}")
        if not lo.up:
            ns.set_link(lo.index, state="up")
        if mac is not None and iface.mac.lower() != mac.lower():
            ns.set_link(iface.index, address=mac)
        local4 = {a for a in link_local if a.family == socket.AF_INET}
        local6 = {a for a in link_local if a.family == socket.AF_INET6}
        for family, want, extra in ((socket.AF_INET, address, local4), (socket.AF_INET6, address6, set())):
            present = set() if fresh else {a for _, a in ns.addresses(iface.index, family=family)}
            for other in present - {want} - extra:
                ns.delete_address(iface.index, other)
            for wanted in ({want} if want is not None else set()) | extra:
                if wanted not in present:
                    ns.add_address(iface.index, wanted)
        if local6:
            # the kernel's own fe80:: address (of the MAC) is not ours: only the /64 ones asked for
            present6 = set() if fresh else {a for _, a in ns.addresses(iface.index, family=socket.AF_INET6,
                                                                        link_scope=True)}
            for wanted in local6 - present6:
                ns.add_address(iface.index, wanted)
        if not iface.up:
            ns.set_link(iface.index, state="up")
        _default_routes(ns, gateway, gateway6 if address6 is not None else None)


def _default_routes(ns: Host, *gateways: str | None) -> None:
    for gateway in gateways:
        if gateway is not None:
            ns.set_default_route(gateway)


def clear_conntrack(*, protocol: str, port: int) -> int:
    """Delete conntrack entries whose original destination port is `port`; returns the count.

    Stale UDP flows keep their old DNAT target after a container got a new address (CNI's
    portmap does the same after adding rules).
    """
    proto = socket.IPPROTO_UDP if protocol == "udp" else socket.IPPROTO_TCP
    count = 0
    with _netlink(f"clear conntrack entries for {protocol} port {port}"):
        ct = Conntrack()
        try:
            for entry in list(ct.dump_entries(tuple_orig=NFCTAttrTuple(proto=proto, dport=port))):
                try:
                    ct.delete(entry)
                    count += 1
                except NetlinkError as exc:
                    if exc.code != errno.ENOENT:
                        raise
        finally:
            ct.close()
    return count
