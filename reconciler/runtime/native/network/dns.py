"""Name resolution for native containers: a hosts file and a resolv.conf per container, and the
names the embedded DNS server (`dnsd`) answers.

Each container's hosts file lists its own names and every container it shares a network with (by
container name, aliases, short id and host name, `peer_names`, at the address on the shared network). The
runtime bind-mounts the files into the container, so they are rewritten **in place** (same
inode: truncate + write) when containers come and go; a rename would leave the container looking
at the old file. A container on a user-defined network (any but the default one) also has
Docker's embedded DNS server at 127.0.0.11 (`dnsd`), which answers the same names by the same
rule (`peer_names`) and forwards the rest to the nameservers the container would have had
(`upstreams`).

resolv.conf is the host's with loopback nameservers removed (they mean nothing inside the
container's namespace), falling back to the public resolvers Docker uses when none remain; a
container's own `dns` nameservers and `dnsSearch` domains replace the host's, as with
`docker run --dns/--dns-search`. With the embedded server (`embedded`), its only nameserver is
127.0.0.11 with `options ndots:0` (Docker's), the search domains and options as without.
Its `extraHosts` are lines of its hosts file (`extra_entries`), and so is each of its links
(Docker's legacy links on a user-defined network, "TARGET:ALIAS"): ALIAS at TARGET's address on a
network they share (`link_target`), in its own file alone; the DNS server answers ALIAS to it alone.
"""
from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from reconciler._dataclass import dataclass
from reconciler.runtime import errors

__all__ = [
    "DEFAULT_NETWORK",
    "EMBEDDED_DNS",
    "HostEntry",
    "NetworkHosts",
    "embedded",
    "extra_entries",
    "link_target",
    "peer_names",
    "render_hosts",
    "render_resolv_conf",
    "upstreams",
    "write_in_place",
]

_FALLBACK_NAMESERVERS = ("8.8.8.8", "8.8.4.4")
EMBEDDED_DNS = "127.0.0.11"     # Docker's embedded DNS server's address, in every container's namespace
DEFAULT_NETWORK = "default"     # the engine's default network (Docker's `bridge`): no embedded DNS on it
# dockerd's words for an alias on the default bridge, host or none (runconfig.ErrUnsupportedNetworkAndAlias):
# the Engine API's create and the engine's connect (`backend.py` `NativeRuntime.network_connect`) say them
ALIAS_ON_PREDEFINED = "network-scoped alias is supported only for containers in user defined networks"


def embedded(networks: Iterable[str]) -> bool:
    """Whether a container on `networks` has the embedded DNS server (Docker's rule: one on a
    user-defined network has it; one on the default network alone, `none` or `host` has not)."""
    return any(n not in (DEFAULT_NETWORK, "none", "host") for n in networks)


def peer_names(name: str, aliases: Sequence[str], container_id: str, hostname: str = "") -> tuple[str, ...]:
    """The names a container is known by to the containers it shares a network with: its name,
    its aliases (compose's service names), its short id and its host name (`--hostname`,
    compose's `hostname:`; the short id when none was given), the names Docker's embedded DNS
    answers (dockerd adds the last two to the endpoint's aliases). The one rule for the peers'
    hosts files and the embedded DNS server's answers."""
    return tuple(dict.fromkeys(n for n in (name, *aliases, container_id[:12], hostname) if n))


def link_target(target: str, names: Mapping[str, str]) -> str | None:
    """The container a link's TARGET names, given each container's name by id: the one of that
    name, else of that id, else the one whose id it begins (as dockerd finds a container); None
    when none (or several) does: the link's alias resolves to nothing, as on dockerd."""
    named = [cid for cid, name in names.items() if name == target]
    if named:
        return named[0]
    if target in names:
        return target
    begun = [cid for cid in names if target and cid.startswith(target)]
    return begun[0] if len(begun) == 1 else None


@dataclass(frozen=True)
class HostEntry:
    """One hosts line: an address and its names."""

    address: str
    names: tuple[str, ...]


def _order(entry: HostEntry) -> tuple[tuple[str, ...], str]:
    return entry.names, entry.address


def render_hosts(own: Sequence[HostEntry], peers: Iterable[HostEntry]) -> str:
    """The hosts file text: localhost lines, the container's own names, then its peers."""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    seen: set[tuple[str, str]] = set()
    for entry in [*own, *sorted(peers, key=_order)]:
        names = [n for n in dict.fromkeys(entry.names) if n and (entry.address, n) not in seen]
        seen.update((entry.address, n) for n in names)
        if names:
            lines.append(f"{entry.address}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


class NetworkHosts:
    """The hosts lines of every container on one network, sorted and rendered once, for the hosts
    files of many of them: a container's file is `render_hosts(own, <the others>)`, without
    building and sorting the others' entries again for each (at N containers on a network the
    N-th attach rewrites N-1 files). The others' lines are one text with each container's lines
    cut out, so a file costs a few slices, not a step per peer (#21). `render` answers None
    where render_hosts would drop a name from a peer's line: an address of the container's own
    lines (an extra host) that a peer has too, or two peers at one address."""

    def __init__(self, entries: Iterable[tuple[str, HostEntry]]) -> None:
        ordered = sorted(entries, key=lambda item: _order(item[1]))
        self._held: dict[str, dict[str, int]] = {}     # address -> its lines' containers, with how many
        self._spans: dict[str, list[tuple[int, int]]] = {}
        pieces, pos = [], 0
        for cid, e in ordered:
            line = _entry_line(e)
            piece = f"{line}\n" if line else ""
            self._spans.setdefault(cid, []).append((pos, pos + len(piece)))
            pieces.append(piece)
            pos += len(piece)
            lines = self._held.setdefault(e.address, {})
            lines[cid] = lines.get(cid, 0) + 1
        self._text = "".join(pieces)
        # addresses of more than one line: one container's view may see two peers there
        self._shared = [lines for lines in self._held.values() if sum(lines.values()) > 1]

    def render(self, container_id: str, own: Sequence[HostEntry]) -> str | None:
        for lines in self._shared:
            if sum(n for cid, n in lines.items() if cid != container_id) > 1:
                return None
        if any(self._held.get(e.address, {}).keys() - {container_id} for e in own):
            return None
        parts, pos = [render_hosts(own, ())], 0
        for begin, end in self._spans.get(container_id, ()):
            parts.append(self._text[pos:begin])
            pos = end
        parts.append(self._text[pos:])
        return "".join(parts)


def _entry_line(entry: HostEntry) -> str:
    names = [n for n in dict.fromkeys(entry.names) if n]
    return f"{entry.address}\t{' '.join(names)}" if names else ""


HOST_GATEWAY = "host-gateway"   # Docker's name, in an extra host, for the host's address on the container's network


def extra_entries(extra_hosts: Iterable[str], gateway: str | None = None) -> list[HostEntry]:
    """Hosts entries of `name:address` strings (the address may hold colons: IPv6); the address
    `host-gateway` is `gateway` (the container's first network's), as Docker's is its bridge's."""
    out = []
    for name, _, address in (h.partition(":") for h in extra_hosts):
        if address == HOST_GATEWAY:
            if gateway is None:
                raise errors.InvalidArgument(
                    f"extra host {name}:{HOST_GATEWAY} needs a network of the container's own, whose gateway it names",
                    hint="join a Network (not host or none), or name the address")
            address = gateway
        out.append(HostEntry(address, (name,)))
    return out


def render_resolv_conf(host_text: str, nameservers: Sequence[str] = (), search: Sequence[str] = (),
                       options: Sequence[str] = (), *, embedded: bool = False) -> str:
    """The host's resolv.conf minus loopback nameservers (Docker's rule); `nameservers`,
    `search` and `options`, when given, replace the host's. `embedded`: the embedded DNS server
    is the only nameserver (it forwards to the others), with `ndots:0` unless an option sets
    ndots (Docker's resolv.conf on a user-defined network)."""
    out: list[str] = []
    servers = 0
    for line in host_text.splitlines():
        words = line.split()
        if (nameservers and words[:1] == ["nameserver"]) or (search and words[:1] in (["search"], ["domain"])) \
                or (options and words[:1] == ["options"]):
            continue
        if words[:1] == ["nameserver"] and len(words) > 1:
            try:
                if embedded or ipaddress.ip_address(words[1].split("%")[0]).is_loopback:
                    continue
            except ValueError:
                continue
            servers += 1
        out.append(line)
    if search:
        out.append("search " + " ".join(search))
    if options:
        out.append("options " + " ".join(options))
    if embedded:
        out.append(f"nameserver {EMBEDDED_DNS}")
        if not any(w.startswith("ndots:") for line in out if line.split()[:1] == ["options"] for w in line.split()):
            out.append("options ndots:0")
        return "\n".join(out) + "\n"
    out += [f"nameserver {ns}" for ns in nameservers]
    if servers == 0 and not nameservers:
        out += [f"nameserver {ns}" for ns in _FALLBACK_NAMESERVERS]
    return "\n".join(out) + "\n"


def upstreams(host_text: str, nameservers: Sequence[str] = ()) -> list[str]:
    """Where the embedded DNS server forwards a container's other queries: its own `dns`
    nameservers, else the host's (loopback ones too: the server asks those from the host's
    namespace, as Docker >= 26 does), else the public resolvers Docker falls back to."""
    if nameservers:
        return list(nameservers)
    found = []
    for line in host_text.splitlines():
        words = line.split()
        if words[:1] == ["nameserver"] and len(words) > 1:
            try:
                found.append(str(ipaddress.ip_address(words[1].split("%")[0])))
            except ValueError:
                continue
    return found or list(_FALLBACK_NAMESERVERS)


def write_in_place(path: Path, text: str) -> None:
    """Replace the content of `path` keeping its inode (bind mounts of it see the change)."""
    data = text.encode()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.fchmod(fd, 0o644)  # /etc/hosts and resolv.conf in the container: every user reads them
        current = b""
        size = os.fstat(fd).st_size
        if size == len(data):
            current = os.pread(fd, size, 0)
        if current == data:
            return
        # write first, then cut: truncating to 0 makes ext4 flush on close (auto_da_alloc)
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
