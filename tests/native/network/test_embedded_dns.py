"""The native engine's embedded DNS server (127.0.0.11 on user-defined networks), with real
containers (runc + conmon), real namespaces and real sockets.

Every container that could forward a query names an upstream of the test's own (`Upstream`, on
a loopback address of the host: forwarded from the host's namespace), so no query leaves the
host."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rcode
import dns.rrset
import pytest

from reconciler.runtime import base
from reconciler.runtime.native import procs
from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.containers import recovery
from reconciler.runtime.native.network import resolver
from tests.native.network.conftest import IMAGE, Harness

pytestmark = [pytest.mark.root]

UPSTREAM_NAME = "upstream.example."
UPSTREAM_ADDRESS = "192.0.2.7"


class Upstream:
    """A nameserver of the test's own on a host loopback address: UPSTREAM_NAME's A record,
    NXDOMAIN for anything else."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind((address, 53))
        except OSError as exc:
            self.sock.close()
            pytest.skip(f"cannot listen on {address}:53 for a fake upstream nameserver: {exc}")
        self.asked: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                wire, peer = self.sock.recvfrom(65535)
            except OSError:
                return
            query = dns.message.from_wire(wire)
            response = dns.message.make_response(query)
            name = query.question[0].name.to_text()
            self.asked.append(name)
            if name == UPSTREAM_NAME and query.question[0].rdtype == 1:
                response.answer.append(dns.rrset.from_text(UPSTREAM_NAME, 60, "IN", "A", UPSTREAM_ADDRESS))
            elif name != UPSTREAM_NAME:
                response.set_rcode(dns.rcode.NXDOMAIN)
            try:
                self.sock.sendto(response.to_wire(), peer)
            except OSError:
                return          # closed meanwhile

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def upstream(harness: Harness) -> Iterator[Upstream]:
    # an address of 127/8 made of the test's leased subnet block: no other test's
    up = Upstream(f"127.53.{harness.a}.{harness.b}")
    try:
        yield up
    finally:
        up.close()


def _run(engine: NativeRuntime, name: str, networks: tuple[str, ...], **how: object) -> str:
    cid = engine.create_container(base.ContainerConfig(
        name=name, image=IMAGE, command=("sleep", "1000"), networks=networks, **how))  # type: ignore[arg-type]
    engine.start_container(cid)
    return cid


def _nslookup(engine: NativeRuntime, cid: str, *args: str) -> tuple[int, str]:
    result = engine.exec(cid, ["timeout", "20", "busybox", "nslookup", *args])
    return result.exit_code, result.stdout.decode() + result.stderr.decode()


def _addresses(output: str) -> set[str]:
    """The addresses nslookup printed for the name (after the server's own lines)."""
    answer = output.split("\n\n", 1)[1] if "\n\n" in output else ""
    return {line.split()[-1] for line in answer.splitlines() if line.startswith("Address")}


def _ip(engine: NativeRuntime, cid: str, network: str) -> str:
    return engine.inspect_container(cid).ip_addresses[network]


def test_containers_resolve_each_other_through_127_0_0_11(
        harness: Harness, engine: NativeRuntime, upstream: Upstream) -> None:
    engine.ensure_network(base.NetworkConfig(name="app"))
    engine.ensure_network(base.NetworkConfig(name="other"))
    web1 = _run(engine, "web1", ("app",), aliases=("svc",))
    web2 = _run(engine, "web2", ("app",), aliases=("svc",))
    _run(engine, "stranger", ("other",), dns=(upstream.address,))
    client = _run(engine, "client", ("app",), dns=(upstream.address,))

    resolv = engine.exec(client, ["cat", "/etc/resolv.conf"]).stdout.decode()
    assert "nameserver 127.0.0.11" in resolv.splitlines(), resolv
    assert "options ndots:0" in resolv.splitlines(), resolv
    assert [line for line in resolv.splitlines() if line.startswith("nameserver")] == ["nameserver 127.0.0.11"]

    code, out = _nslookup(engine, client, "web1", "127.0.0.11")
    assert code == 0, out
    assert _addresses(out) == {_ip(engine, web1, "app")}, out
    code, out = _nslookup(engine, client, "web2")             # through resolv.conf
    assert code == 0, out
    assert _addresses(out) == {_ip(engine, web2, "app")}, out
    code, out = _nslookup(engine, client, web1[:12])          # the short id
    assert code == 0, out
    assert _addresses(out) == {_ip(engine, web1, "app")}, out
    code, out = _nslookup(engine, client, "svc")              # an alias two containers share: both
    assert code == 0, out
    assert _addresses(out) == {_ip(engine, web1, "app"), _ip(engine, web2, "app")}, out
    code, out = _nslookup(engine, client, "web1.app")         # NAME.NETWORK
    assert code == 0, out
    assert _addresses(out) == {_ip(engine, web1, "app")}, out

    # a container on no network of the client's: not answered here (the upstream says NXDOMAIN)
    code, out = _nslookup(engine, client, "stranger")
    assert code != 0, out
    assert "NXDOMAIN" in out, out
    assert "stranger." in upstream.asked

    # PTR for a peer's address
    code, out = _nslookup(engine, client, _ip(engine, web1, "app"))
    assert code == 0, out
    assert "web1.app" in out, out

    # over TCP too, asked from the client's namespace
    netns = harness.manager.netns_path(client)
    script = ("import dns.message, dns.query; "
              "r = dns.query.tcp(dns.message.make_query('web2', 'A'), '127.0.0.11', timeout=10); "
              "print(r.answer[0][0].address)")
    tcp = subprocess.run(["nsenter", f"--net={netns}", sys.executable, "-c", script],
                         capture_output=True, text=True, timeout=60, check=False)
    assert tcp.stdout.strip() == _ip(engine, web2, "app"), tcp.stderr


def test_a_containers_host_name_resolves_for_its_peers_as_on_dockerd(
        harness: Harness, engine: NativeRuntime, upstream: Upstream) -> None:
    """dockerd adds a container's host name (`--hostname`, compose's `hostname:`) to its aliases
    on a user-defined network: its peers resolve it through 127.0.0.11 (and, here, their hosts
    files name it). It was not answered: the upstream was asked, and said NXDOMAIN."""
    engine.ensure_network(base.NetworkConfig(name="app"))
    web = _run(engine, "web", ("app",), hostname="webhost")
    client = _run(engine, "client", ("app",), dns=(upstream.address,))
    code, out = _nslookup(engine, client, "webhost", "127.0.0.11")
    assert code == 0, out
    assert _addresses(out) == {_ip(engine, web, "app")}, out
    assert "webhost." not in upstream.asked
    assert f"{_ip(engine, web, 'app')}\tweb {web[:12]} webhost\n" in engine.exec(client, ["cat", "/etc/hosts"]).stdout.decode()


def test_other_names_are_forwarded_to_the_containers_nameservers(
        harness: Harness, engine: NativeRuntime, upstream: Upstream) -> None:
    engine.ensure_network(base.NetworkConfig(name="app"))
    client = _run(engine, "client", ("app",), dns=(upstream.address,))
    # a loopback upstream: asked from the host's namespace (nothing listens there in the container's)
    code, out = _nslookup(engine, client, UPSTREAM_NAME.rstrip("."))
    assert code == 0, out
    assert _addresses(out) == {UPSTREAM_ADDRESS}, out
    assert UPSTREAM_NAME in upstream.asked
    # no upstream answers: SERVFAIL
    upstream.close()
    code, out = _nslookup(engine, client, "gone.example", "127.0.0.11")
    assert code != 0, out
    assert "SERVFAIL" in out, out


def test_a_killed_dns_server_comes_back_complete(harness: Harness, engine: NativeRuntime, upstream: Upstream) -> None:
    engine.ensure_network(base.NetworkConfig(name="app"))
    web = _run(engine, "web", ("app",))
    client = _run(engine, "client", ("app",), dns=(upstream.address,))
    assert _addresses(_nslookup(engine, client, "web")[1]) == {_ip(engine, web, "app")}

    # killed: the next attach starts it again, and it serves the containers attached before
    pid = resolver.pid(harness.config.run_dir)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert procs.wait_gone(pid, 60)
    assert resolver.pid(harness.config.run_dir) is None
    _run(engine, "late", ("app",))
    code, out = _nslookup(engine, client, "web")
    assert code == 0, out
    assert _addresses(out) == {_ip(engine, web, "app")}, out

    # killed again: the engine's start-up recovery starts it again
    pid = resolver.pid(harness.config.run_dir)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert procs.wait_gone(pid, 60)
    report = recovery.recover(engine)
    assert report.network is not None
    assert resolver.pid(harness.config.run_dir) is not None
    code, out = _nslookup(engine, client, "late")
    assert code == 0, out
    assert out.count("Address") >= 2, out

    # killed while an agent runs: its look before each pass (heal) starts it again
    pid = resolver.pid(harness.config.run_dir)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert procs.wait_gone(pid, 60)
    assert "embedded DNS server" in engine.heal().made
    code, out = _nslookup(engine, client, "web")
    assert code == 0, out
    assert engine.heal().made == ()                  # running: nothing to do


_SIOCGSKNS = 0x894C
_SYS_PIDFD_GETFD = 438
_libc = ctypes.CDLL(None, use_errno=True)


def _held_namespaces(pid: int) -> list[int]:
    """The network namespaces (inodes) of the sockets process `pid` holds, one per socket."""
    out: list[int] = []
    pidfd = os.pidfd_open(pid)
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if not os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                    continue
            except OSError:
                continue
            mine = _libc.syscall(_SYS_PIDFD_GETFD, pidfd, int(fd), 0)
            if mine < 0:
                continue
            try:
                import fcntl

                ns = fcntl.ioctl(mine, _SIOCGSKNS)
                try:
                    out.append(os.fstat(ns).st_ino)
                finally:
                    os.close(ns)
            except OSError:
                pass
            finally:
                os.close(mine)
    finally:
        os.close(pidfd)
    return out


def test_a_removed_container_leaves_nothing_behind(harness: Harness, engine: NativeRuntime, upstream: Upstream) -> None:
    engine.ensure_network(base.NetworkConfig(name="app"))
    web = _run(engine, "web", ("app",))
    client = _run(engine, "client", ("app",), dns=(upstream.address,))
    pid = resolver.pid(harness.config.run_dir)
    assert pid is not None
    web_ns = os.stat(harness.manager.netns_path(web)).st_ino
    client_ns = os.stat(harness.manager.netns_path(client)).st_ino
    held = _held_namespaces(pid)
    assert (held.count(web_ns), held.count(client_ns)) == (2, 2), held     # UDP + TCP in each
    veth = harness.manager.veth_name(web, "app")

    engine.remove_container(web, force=True)
    held = _held_namespaces(pid)
    assert web_ns not in held, held
    assert held.count(client_ns) == 2, held
    assert veth not in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert not Path(harness.manager.netns_path(web)).exists()

    # the last container gone: so is the server (its pid file and socket with it)
    engine.remove_container(client, force=True)
    assert procs.wait_gone(pid, 60)
    assert resolver.pid(harness.config.run_dir) is None
    assert not resolver.socket_path(harness.config.run_dir).exists()


def test_resolv_conf_names_127_0_0_11_on_user_networks_only(harness: Harness, engine: NativeRuntime,
                                                            upstream: Upstream) -> None:
    engine.ensure_network(base.NetworkConfig(name="app"))
    user = _run(engine, "user", ("app",), dns=(upstream.address,), dns_search=("example.test",))
    default = _run(engine, "default", (), dns=(upstream.address,))
    none = _run(engine, "none", ("none",), dns=(upstream.address,))
    host = _run(engine, "host", ("host",), dns=(upstream.address,))

    def resolv(cid: str) -> list[str]:
        return engine.exec(cid, ["cat", "/etc/resolv.conf"]).stdout.decode().splitlines()

    assert [x for x in resolv(user) if x.split()[:1] in (["nameserver"], ["search"], ["options"])] == [
        "search example.test", "nameserver 127.0.0.11", "options ndots:0"]
    for cid in (default, none, host):
        lines = resolv(cid)
        assert f"nameserver {upstream.address}" in lines, lines
        assert "nameserver 127.0.0.11" not in lines, lines
