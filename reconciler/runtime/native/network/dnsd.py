"""The native engine's embedded DNS server: Docker's 127.0.0.11 on user-defined networks.

    python -m reconciler.runtime.native.network.dnsd ROOT RUN_DIR

One process per engine (per run dir; `resolver` starts it, knows it by its pid file and asks it
on its control socket) serves every container on a user-defined network (`dns.embedded`). For
each served container it holds a UDP and a TCP socket on 127.0.0.11 made inside the container's
network namespace (a thread joins the namespace, makes them and leaves: a socket stays in the
namespace it was made in), on ports the kernel picks, and an nft table of the namespace's own
(`reconciler_dns`) redirects 127.0.0.11:53 to them, as Docker's iptables rules do: a DNS
server the container runs on port 53 itself still gets it. One selector loop serves them all.

Answers, as moby's libnetwork resolver (TTL 600): A and AAAA for the names of the containers
that share a user-defined network with the asker (`dns.peer_names`, the rule of the hosts
files: name, aliases (the container's and its endpoint's there), short id, host name;
`NAME.NETWORK` too), and for the aliases of the asker's own links (to it alone), at their
address on that network, from
the asker's first network (by interface order) that knows the name; several containers with one
alias give every address (compose's scaled services); PTR for those addresses
(`NAME.NETWORK`). A known name with no address of the type asked: an empty answer. Anything
else is forwarded, as the query came, to the nameservers the container would have had
(`dns.upstreams`): non-loopback ones from inside its namespace (a socket made there), loopback
ones (systemd-resolved's 127.0.0.53) from the host's, as Docker >= 26; no answer: SERVFAIL. A
container on internal networks only forwards nothing (Docker's forwarding policy): NXDOMAIN.

Names are read from the state DB's network records at query time (a read-only connection; the
index is rebuilt when sqlite's data_version moves), so a container that joins, leaves or is
renamed is answered right without a message. Control messages (JSON lines): `serve` (id,
netns: sockets made, or remade when the namespace is another one), `drop` (id: sockets
closed: an open socket would keep the namespace, and its veth, alive), `ping`. Every few
seconds (TICK) the served namespaces are looked at: a namespace file gone, or another one at
its path, has its sockets closed too, so a drop that never came leaks nothing. At its start
it serves every recorded container whose namespace is there (after a crash it comes back
complete); it exits once it has served nothing for a TICK.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import selectors
import signal
import socket
import sqlite3
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from reconciler.runtime import errors
from reconciler.runtime.native import procs
from reconciler.runtime.native.network import dns as names
from reconciler.runtime.native.network import dnswire, interfaces, nftlib, resolver

__all__ = ["main"]

TTL = 600                   # moby's respTTL
TICK = 2.0                  # seconds between looks at the served namespaces
_UPSTREAM_TIMEOUT = 2.0     # per upstream nameserver
_TCP_TIMEOUT = 5.0          # a client's TCP connection idle this long is closed
_FORWARDERS = 8             # upstream queries and TCP clients at once
_IP_FREEBIND = 15
_TABLE = "reconciler_dns"


class _Served:
    """One container's sockets in its namespace."""

    def __init__(self, container_id: str, netns: str, inode: int, udp: socket.socket, tcp: socket.socket) -> None:
        self.container_id = container_id
        self.netns = netns
        self.inode = inode
        self.udp = udp
        self.tcp = tcp

    def close(self) -> None:
        self.udp.close()
        self.tcp.close()


def _open_sockets(netns: str) -> tuple[socket.socket, socket.socket]:
    """In the namespace (the calling thread is in it): a UDP and a TCP socket on 127.0.0.11 and
    the rule that sends 127.0.0.11:53 to them."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
    try:
        for s in (udp, tcp):
            s.setsockopt(socket.IPPROTO_IP, _IP_FREEBIND, 1)     # `lo` may come up after
            s.bind((names.EMBEDDED_DNS, 0))
        tcp.listen(64)
        uport, tport = udp.getsockname()[1], tcp.getsockname()[1]
        # the table of this namespace alone: made again whole (an older daemon's ports go)
        nftlib.Nft().run(
            f"table ip {_TABLE}\ndelete table ip {_TABLE}\n"
            f"table ip {_TABLE} {{\n"
            f"  chain output {{\n    type nat hook output priority -100; policy accept;\n"
            f"    ip daddr {names.EMBEDDED_DNS} udp dport 53 dnat to {names.EMBEDDED_DNS}:{uport}\n"
            f"    ip daddr {names.EMBEDDED_DNS} tcp dport 53 dnat to {names.EMBEDDED_DNS}:{tport}\n  }}\n}}\n")
    except BaseException:
        udp.close()
        tcp.close()
        raise
    return udp, tcp


class _Names:
    """The names the server answers, from the state DB's network records (read-only), read
    again when the DB changed (sqlite's data_version, which another connection's commit moves)."""

    def __init__(self, db: Path) -> None:
        self._db = db
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._version: int | None = None
        # asker -> its networks with a resolver, in interface order
        self.networks: dict[str, list[str]] = {}
        self.forwards: dict[str, bool] = {}                 # asker -> whether it has a way out
        self.nameservers: dict[str, tuple[str, ...]] = {}   # asker -> its own `dns`
        self.by_name: dict[tuple[str, str], list[tuple[str | None, str | None]]] = {}  # (network, name) -> addresses
        self.by_address: dict[tuple[str, str], str] = {}    # (network, address) -> name
        self.netns: dict[str, str] = {}                     # container -> its namespace file
        self.links: dict[str, dict[str, str]] = {}          # asker -> its links' aliases -> their targets
        self.names: dict[str, str] = {}                     # container -> its name
        self.by_container: dict[tuple[str, str], list[tuple[str | None, str | None]]] = {}  # (network, container)

    def fresh(self) -> _Names:
        with self._lock:
            if self._conn is None:
                self._conn = sqlite3.connect(f"file:{self._db}?mode=ro", uri=True, timeout=10,
                                             check_same_thread=False, isolation_level=None)
            version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            if version != self._version:
                self._read(self._conn)
                self._version = version
            return self

    def _read(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN")
        try:
            internal = {r[0]: bool(r[1]) for r in conn.execute("SELECT name, internal FROM net_networks")}
            containers = {r[0]: (r[1], tuple(json.loads(r[2])), json.loads(r[3] or "{}"), r[4], r[5])
                          for r in conn.execute("SELECT container_id, name, aliases, resolve, netns, hostname"
                                                " FROM net_containers")}
            endpoints = conn.execute("SELECT network, address, address6, container_id, aliases FROM net_endpoints"
                                     " ORDER BY container_id, position").fetchall()
        finally:
            conn.execute("COMMIT")
        networks: dict[str, list[str]] = {}
        forwards: dict[str, bool] = {}
        by_name: dict[tuple[str, str], list[tuple[str | None, str | None]]] = {}
        by_address: dict[tuple[str, str], str] = {}
        by_container: dict[tuple[str, str], list[tuple[str | None, str | None]]] = {}
        for network, address, address6, cid, own in endpoints:
            forwards[cid] = forwards.get(cid, False) or not internal.get(network, False)
            if cid not in containers or not names.embedded([network]):
                continue
            networks.setdefault(cid, []).append(network)
            name, aliases = containers[cid][0], containers[cid][1]
            for n in names.peer_names(name, (*aliases, *json.loads(own or "[]")), cid, containers[cid][4]):
                by_name.setdefault((network, n.lower()), []).append((address, address6))
            by_container.setdefault((network, cid), []).append((address, address6))
            for a in (address, address6):
                if a:
                    by_address.setdefault((network, a), f"{name}.{network}")
        self.networks, self.forwards, self.by_name, self.by_address = networks, forwards, by_name, by_address
        self.nameservers = {cid: tuple(c[2].get("dns", ())) for cid, c in containers.items()}
        self.netns = {cid: c[3] for cid, c in containers.items() if cid in networks}
        self.by_container, self.names = by_container, {cid: c[0] for cid, c in containers.items()}
        self.links = {cid: {alias.lower(): target for target, _, alias in (str(link).partition(":") for link in links)}
                      for cid, c in containers.items() if (links := c[2].get("links"))}

    def lookup(self, asker: str, qname: str) -> list[tuple[str | None, str | None]] | None:
        """The addresses of `qname` for `asker`: a link's alias of its own (its target's address
        on the first network they share), else from its first network that knows it."""
        nets = self.networks.get(asker, [])
        target = self.links.get(asker, {}).get(qname)
        if target is not None:
            cid = names.link_target(target, self.names)
            for n in nets:
                found = self.by_container.get((n, cid or ""))
                if found:
                    return found
        for n in nets:
            found = self.by_name.get((n, qname))
            if found:
                return found
        for n in nets:          # NAME.NETWORK
            suffix = "." + n.lower()
            if qname.endswith(suffix):
                found = self.by_name.get((n, qname[: -len(suffix)]))
                if found:
                    return found
        return None

    def reverse(self, asker: str, address: str) -> str | None:
        for n in self.networks.get(asker, []):
            found = self.by_address.get((n, address))
            if found:
                return found
        return None


class Server:
    def __init__(self, root: Path, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.names = _Names(root / "state.db")
        self.sel = selectors.DefaultSelector()
        self.served: dict[str, _Served] = {}
        self.pool = ThreadPoolExecutor(_FORWARDERS, thread_name_prefix="dnsd")
        self.control: socket.socket | None = None
        self.stopping = False
        self._host_resolv: tuple[float, str] = (-1.0, "")

    # control ------------------------------------------------------------------------------

    def listen(self) -> None:
        path = resolver.socket_path(self.run_dir)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()               # a dead daemon's (we hold the lock)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        s.bind(str(path))
        os.chmod(path, 0o600)
        s.listen(64)
        self.control = s
        self.sel.register(s, selectors.EVENT_READ, self._on_control)

    def _on_control(self, listener: socket.socket) -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(_TCP_TIMEOUT)
            data = b""
            try:
                while not data.endswith(b"\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                answer = self._request(json.loads(data))
            except (OSError, ValueError) as exc:
                answer = {"ok": False, "error": str(exc)}
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(answer).encode() + b"\n")

    def _request(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        try:
            if op == "serve":
                self.serve(str(req["id"]), str(req["netns"]))
            elif op == "drop":
                self.drop(str(req["id"]))
            elif op != "ping":
                return {"ok": False, "error": f"unknown op {op!r}"}
        except (OSError, KeyError, errors.RuntimeBackendError) as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "served": sorted(self.served)}

    # serving ------------------------------------------------------------------------------

    def serve(self, container_id: str, netns: str) -> None:
        inode = os.stat(netns).st_ino
        old = self.served.get(container_id)
        if old is not None and old.netns == netns and old.inode == inode:
            return
        if old is not None:
            self.drop(container_id)
        udp, tcp = interfaces.in_thread(netns, lambda: _open_sockets(netns))
        if os.stat(netns).st_ino != inode:         # another namespace at that path meanwhile
            udp.close()
            tcp.close()
            raise OSError(f"the network namespace at {netns} changed while it was being served")
        served = _Served(container_id, netns, inode, udp, tcp)
        self.served[container_id] = served
        self.sel.register(udp, selectors.EVENT_READ, lambda s: self._on_udp(served))
        self.sel.register(tcp, selectors.EVENT_READ, lambda s: self._on_tcp(served))

    def drop(self, container_id: str) -> None:
        served = self.served.pop(container_id, None)
        if served is None:
            return
        for s in (served.udp, served.tcp):
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(s)
        served.close()

    def serve_recorded(self) -> None:
        """Every recorded container on a user-defined network whose namespace is there."""
        for cid, netns in self.names.fresh().netns.items():
            try:
                if os.path.exists(netns):
                    self.serve(cid, netns)
            except (OSError, errors.RuntimeBackendError) as exc:
                print(f"dnsd: container {cid[:12]} not served: {exc}", file=sys.stderr, flush=True)

    def look(self) -> None:
        """Close the sockets of a namespace gone (or replaced) without a drop."""
        for cid, served in list(self.served.items()):
            try:
                same = os.stat(served.netns).st_ino == served.inode
            except OSError:
                same = False
            if not same:
                self.drop(cid)

    # queries --------------------------------------------------------------------------------

    def _on_udp(self, served: _Served) -> None:
        for _ in range(64):
            try:
                wire, peer = served.udp.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            local = self._local(served, wire, udp=True)
            if local is _FORWARD:
                self.pool.submit(self._forward_udp, served, wire, peer)
            elif isinstance(local, bytes):
                with contextlib.suppress(OSError):
                    served.udp.sendto(local, peer)

    def _forward_udp(self, served: _Served, wire: bytes, peer: Any) -> None:
        answer = self._forward(served, wire, "udp")
        if answer is not None:
            with contextlib.suppress(OSError):
                served.udp.sendto(answer, peer)

    def _on_tcp(self, served: _Served) -> None:
        try:
            conn, _ = served.tcp.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.setblocking(True)
        conn.settimeout(_TCP_TIMEOUT)
        self.pool.submit(self._tcp_client, served, conn)

    def _tcp_client(self, served: _Served, conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    head = _recv_exact(conn, 2)
                    if head is None:
                        return
                    wire = _recv_exact(conn, int.from_bytes(head, "big"))
                    if wire is None:
                        return
                    answer = self._answer_now(served, wire, "tcp")
                    if answer is None:
                        return
                    conn.sendall(len(answer).to_bytes(2, "big") + answer)
                except OSError:
                    return

    def _answer_now(self, served: _Served, wire: bytes, proto: str) -> bytes | None:
        local = self._local(served, wire, udp=proto == "udp")
        if local is _FORWARD:
            return self._forward(served, wire, proto)
        return local if isinstance(local, bytes) else None

    def _local(self, served: _Served, wire: bytes, *, udp: bool) -> bytes | object | None:
        """The answer made here, _FORWARD for an upstream's, None for no answer (not a query)."""
        query = dnswire.parse(wire)
        if query is None:
            return None
        index = self.names.fresh()
        asker = served.container_id
        if query.qtype == dnswire.PTR:
            address = dnswire.reverse_address(query.name)
            found = index.reverse(asker, address) if address else None
            if found is not None:
                return dnswire.answer(query, [dnswire.name_rdata(found)], authoritative=True, ttl=TTL, udp=udp)
        else:
            found_addresses = index.lookup(asker, query.name)
            if found_addresses is not None:
                got: list[str] = []
                if query.qtype in (dnswire.A, dnswire.AAAA):
                    six = query.qtype == dnswire.AAAA
                    got = [a for a in dict.fromkeys(a6 if six else a4 for a4, a6 in found_addresses) if a]
                # a known name: its addresses, maybe none
                return dnswire.answer(query, [dnswire.address_rdata(a) for a in got], authoritative=True, ttl=TTL,
                                      udp=udp)
        if not index.forwards.get(asker, False):
            return dnswire.answer(query, rcode=dnswire.NXDOMAIN, udp=udp)
        return _FORWARD

    def upstreams(self, asker: str) -> list[str]:
        path = Path("/etc/resolv.conf")
        try:
            mtime = path.stat().st_mtime
            if mtime != self._host_resolv[0]:
                self._host_resolv = (mtime, path.read_text())
        except OSError:
            self._host_resolv = (-1.0, "")
        return names.upstreams(self._host_resolv[1], self.names.nameservers.get(asker, ()))

    def _forward(self, served: _Served, wire: bytes, proto: str) -> bytes | None:
        """The first upstream's answer to `wire`, or SERVFAIL."""
        for upstream in self.upstreams(served.container_id):
            try:
                address = ipaddress.ip_address(upstream.split("%")[0])
            except ValueError:
                continue
            family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM

            def make(family: int = family, kind: int = kind) -> socket.socket:
                return socket.socket(family, kind | socket.SOCK_CLOEXEC)

            try:
                # a loopback nameserver is the host's (systemd-resolved): asked from the host's
                # namespace; any other from the container's, as its own lookups would go
                s = make() if address.is_loopback else interfaces.inside(served.netns, make)
            except OSError:
                continue
            with s:
                try:
                    s.settimeout(_UPSTREAM_TIMEOUT)
                    s.connect((str(address), 53))
                    if proto == "udp":
                        s.send(wire)
                        while True:
                            datagram = s.recv(65535)
                            if datagram[:2] == wire[:2]:
                                return datagram
                    s.sendall(len(wire).to_bytes(2, "big") + wire)
                    head = _recv_exact(s, 2)
                    reply = _recv_exact(s, int.from_bytes(head, "big")) if head else None
                    if reply:
                        return reply
                except OSError:
                    continue
        query = dnswire.parse(wire)
        return dnswire.answer(query, rcode=dnswire.SERVFAIL, udp=proto == "udp") if query is not None else None

    # the loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        idle_since: float | None = None
        last_look = time.monotonic()
        while not self.stopping:
            for key, _ in self.sel.select(TICK):
                try:
                    key.data(key.fileobj)
                except Exception as exc:  # noqa: BLE001 - one query or request; the others go on
                    print(f"dnsd: {exc!r}", file=sys.stderr, flush=True)
            now = time.monotonic()
            if now - last_look >= TICK:
                last_look = now
                self.look()
            if self.served:
                idle_since = None
            elif idle_since is None:
                idle_since = now
            elif now - idle_since >= TICK:
                return

    def close(self) -> None:
        if self.control is not None:
            self.sel.unregister(self.control)
            self.control.close()
            self.control = None
            with contextlib.suppress(FileNotFoundError):
                resolver.socket_path(self.run_dir).unlink()
        for cid in list(self.served):
            self.drop(cid)
        self.pool.shutdown(wait=False, cancel_futures=True)


_FORWARD = object()


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _lock(run_dir: Path) -> int | None:
    """The run dir's daemon lock, held (an fd) or None when another daemon holds it."""
    path = resolver.lock_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    root, run_dir = Path(argv[0]), Path(argv[1])
    deadline = time.monotonic() + 5
    while (lock := _lock(run_dir)) is None:
        if resolver.pid(run_dir) is not None and resolver._ask(run_dir, {"op": "ping"}) is not None:
            print("running", flush=True)        # another one serves this engine
            return 0
        if time.monotonic() > deadline:
            print(f"the lock {resolver.lock_path(run_dir)} is held by a daemon that does not answer",
                  file=sys.stderr, flush=True)
            return 1
        time.sleep(0.05)                        # one exiting: its lock goes with it
    server = Server(root, run_dir)
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "stopping", True))
    pidfile = resolver.pid_path(run_dir)
    try:
        server.listen()
        server.serve_recorded()
        me = os.getpid()
        tmp = pidfile.with_name(f".{pidfile.name}.{me}")
        tmp.write_text(f"{me} {procs.start_time(me)} {procs.boot_id()}\n")
        tmp.rename(pidfile)
        print("ready", flush=True)
        quiet = os.open(os.devnull, os.O_WRONLY)        # the engine stops reading once it is ready
        os.dup2(quiet, 1)
        os.dup2(quiet, 2)
        server.run()
    finally:
        server.close()
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(pidfile.read_text().split()[0]) == os.getpid():
                pidfile.unlink()
        os.close(lock)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
