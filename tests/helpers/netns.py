"""A network namespace of a test's own, a veth pair into it, and loopback forwards.

For a daemon that must not touch the host's network (a second dockerd: with `--bridge=none` in
the host's namespace it deletes the host's `docker0`): it runs under `nsenter --net=`, so its
links, routes, bridges and firewall rules are the namespace's. The host reaches it over a veth
pair in a /30 leased from tests/helpers/subnets.py; it reaches a server of the host's loopback
(a test registry on 127.0.0.1:PORT) through a forward: a listener on the namespace's own
127.0.0.1:PORT, made by a thread that entered the namespace (setns(2) changes only the calling
thread's namespace), whose connections are relayed to the host's 127.0.0.1:PORT.

`delete()` removes the namespace and the veth (both ends), ends the forwards and releases the
lease; it is safe to call after a partial `create()`.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import secrets
import socket
import socketserver
import string
import subprocess
import threading
from pathlib import Path

from tests.helpers import subnets

__all__ = ["NetNamespace", "host_links"]

CLONE_NEWNET = 0x40000000


def host_links() -> set[str]:
    """The names of the links in the calling thread's network namespace."""
    return {name for _, name in socket.if_nameindex()}


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _in_namespace(path: Path, make: type[socketserver.ThreadingTCPServer], port: int) -> socketserver.ThreadingTCPServer:
    """A server listening on 127.0.0.1:`port` of the namespace at `path`, made by a thread that
    entered it (the thread ends there; the listening socket stays in the namespace)."""
    made: list[socketserver.ThreadingTCPServer | BaseException] = []

    def enter_and_listen() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({path}): {os.strerror(err)}")
            finally:
                os.close(fd)
            made.append(make(("127.0.0.1", port), _Relay))
        except BaseException as exc:  # handed to the caller's thread
            made.append(exc)

    t = threading.Thread(target=enter_and_listen)
    t.start()
    t.join()
    result = made[0]
    if isinstance(result, BaseException):
        raise result
    return result


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class _Relay(socketserver.BaseRequestHandler):
    """One connection in the namespace, relayed to the same port on the host's loopback (this
    handler's thread is a host thread: its socket is in the host's namespace)."""

    def handle(self) -> None:
        port = self.server.server_address[1]
        with socket.create_connection(("127.0.0.1", port), timeout=30) as upstream:
            upstream.settimeout(None)
            back = threading.Thread(target=_pump, args=(upstream, self.request), daemon=True)
            back.start()
            _pump(self.request, upstream)
            back.join()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class NetNamespace:
    """`ip netns add` of a unique name, with `lo` up and (`host_link`) a veth pair: `host_ip` on
    the host end, `ip` on the namespace's `eth0`; `link` joins two namespaces by a veth pair of
    their own (no route through the host)."""

    def __init__(self, prefix: str = "rt") -> None:
        suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(6))
        self.name = f"{prefix}{suffix}"[:12]
        self.path = Path("/run/netns") / self.name
        self.veth = f"{self.name}h"
        self.block: ipaddress.IPv4Network | None = None
        self.host_ip = ""
        self.ip = ""
        self._forwards: list[socketserver.ThreadingTCPServer] = []
        self._links = 0

    def create(self, *, host_link: bool = True) -> NetNamespace:
        self.block = subnets.lease_block()
        _ip("netns", "add", self.name)
        _ip("-n", self.name, "link", "set", "lo", "up")
        if host_link:
            self._host_link()
        return self

    def _next_30(self) -> tuple[str, str]:
        assert self.block is not None, "create() first"
        self._links += 1
        first, second = list(list(self.block.subnets(new_prefix=30))[self._links - 1].hosts())
        return str(first), str(second)

    def link(self, other: NetNamespace) -> tuple[str, str]:
        """A veth pair from this namespace (`eth<N>`) to `other`; (this end's address, other's)."""
        mine, theirs = self._next_30()
        name = f"eth{self._links}"
        _ip("-n", self.name, "link", "add", name, "type", "veth", "peer", "name", f"to{self.name}",
            "netns", other.name)
        _ip("-n", self.name, "addr", "add", f"{mine}/30", "dev", name)
        _ip("-n", self.name, "link", "set", name, "up")
        _ip("-n", other.name, "addr", "add", f"{theirs}/30", "dev", f"to{self.name}")
        _ip("-n", other.name, "link", "set", f"to{self.name}", "up")
        return mine, theirs

    def _host_link(self) -> None:
        host, ns = self._next_30()
        self.host_ip, self.ip = host, ns
        _ip("link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.name)
        _ip("addr", "add", f"{self.host_ip}/30", "dev", self.veth)
        _ip("link", "set", self.veth, "up")
        _ip("-n", self.name, "addr", "add", f"{self.ip}/30", "dev", "eth0")
        _ip("-n", self.name, "link", "set", "eth0", "up")

    def argv(self, *command: str) -> list[str]:
        """`command` run in the namespace, and in the host's other namespaces: its mounts are the
        host's, cgroups included (`ip netns exec` would give it a mount namespace of its own with a
        fresh /sys, hiding the cgroup v1 hierarchies). nsenter execs it: its pid is the command's."""
        return ["nsenter", f"--net={self.path}", "--", *command]

    def forward(self, port: int) -> socketserver.ThreadingTCPServer:
        """Serve the host's 127.0.0.1:`port` on the namespace's 127.0.0.1:`port` until `delete()`
        (or the returned server's `shutdown()`)."""
        server = _in_namespace(self.path, _Server, port)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._forwards.append(server)
        return server

    def delete(self) -> None:
        for server in self._forwards:
            server.shutdown()
            server.server_close()
        self._forwards.clear()
        subprocess.run(["ip", "netns", "delete", self.name], check=False, capture_output=True)
        if self.veth in host_links():  # normally gone with its peer
            subprocess.run(["ip", "link", "delete", self.veth], check=False, capture_output=True)
        if self.block is not None:
            subnets.release(self.block)
            self.block = None
