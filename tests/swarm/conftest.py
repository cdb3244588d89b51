"""A single-node Swarm of the tests' own: a second dockerd, never the host's, in a network
namespace of its own.

`docker swarm init` changes an engine's networking (an ingress network, a docker_gwbridge
bridge, gossip and VXLAN ports), and other tests use the host's dockerd in parallel; a second
dockerd with `--bridge=none` in the host's namespace even deletes the host's `docker0`. So the
swarm runs on a dockerd this fixture starts and ends in a network namespace of its own
(tests/helpers/netns.py; `nsenter --net`, so its mounts and cgroups are the host's): its links,
bridges, routes and firewall rules are the namespace's, and `--iptables=false` keeps even those
untouched. It has its own data root, exec root (so its own
containerd), pidfile and Unix socket (a file: no network needed to reach it), and a TCP socket on
its veth address for the DOCKER_HOST=tcp:// test. The manager advertises that address. Its nodes
pull from the tests' registries on the host's 127.0.0.1 through forwards of those ports onto the
namespace's loopback (`forward`), so an image reference means the same on both sides.

Teardown, even when tests fail: `docker swarm leave --force`, SIGTERM to the dockerd (by pid;
its containerd ends with it), unmount what it left under its directories, then the namespace,
the veth and the address lease go. A guard then checks the host lost none of its own links
(`docker0` above all) while this daemon ran.
The swarm tests share one daemon per session (xdist group "swarm": scripts/test.sh passes
`--dist loadgroup`, so one worker runs them all).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socketserver
import string
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reconciler.runtime import errors
from reconciler.runtime.docker import api as docker_api
from reconciler.runtime.swarm import SwarmRuntime
from tests.helpers.netns import NetNamespace, host_links
from tests.helpers.registry import RegistryServer

LABEL = "reconciler.owner"
API_PORT = 2375

# links other tests (and other runs on this host) make and remove at any time: not the host's own
# The links a dockerd started with --bridge=none in the host's namespace would take (docker0), and
# the host's own (loopback, the default route's device). Any other link may be a neighbour test's
# (an engine's bridge, a veth, a docker network) that its own teardown removes meanwhile.
HOST_OWN = ("lo", "docker0")


def _default_devices() -> set[str]:
    out = subprocess.run(["ip", "-o", "route", "show", "default"], capture_output=True, text=True, check=False).stdout
    words = out.split()
    return {words[i + 1] for i, w in enumerate(words[:-1]) if w == "dev"}


def rand(n: int = 4) -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def lost_links(before: set[str], after: set[str]) -> list[str]:
    """The host's own links (docker0, lo, the default route's device) in `before` and not in `after`."""
    own = {*HOST_OWN, *_default_devices()}
    return sorted(name for name in before - after if name in own)


class SwarmDaemon:
    """A dockerd of our own in a network namespace of its own (made by `start`, or given made:
    the nodes of a two-node swarm reach each other over a link of their namespaces)."""

    def __init__(self, ns: NetNamespace | None = None, *, address: str = "") -> None:
        # short paths: containerd's socket lives under the exec root (sun_path is 108 bytes)
        self.work = Path(tempfile.mkdtemp(prefix="rsw", dir="/tmp"))
        self.sock = str(self.work / "d.sock")
        self.given = ns is not None
        self.ns = ns or NetNamespace("rsw")
        self._address = address
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    @property
    def address(self) -> str:
        """The daemon's address (its namespace's end of the veth): the manager's advertise
        address, the TCP API's, and where ports its services publish in host mode are served."""
        return self._address or self.ns.ip

    @property
    def tcp(self) -> str:
        return f"{self.ns.ip}:{API_PORT}"

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The real docker CLI on this daemon."""
        return subprocess.run(["docker", "-H", self.host, *args], capture_output=True, text=True, check=check,
                              timeout=120)

    def forward(self, port: int) -> socketserver.ThreadingTCPServer:
        """Let the nodes reach the host's 127.0.0.1:`port` (a test registry) at their 127.0.0.1,
        until the daemon stops or the returned server's shutdown()."""
        return self.ns.forward(port)

    def start(self, *, join: tuple[str, str] | None = None) -> None:
        """Start the dockerd, then `swarm init`, or `swarm join` (manager address, token)."""
        began = time.monotonic()
        if not self.given:
            self.ns.create()
        # --tls=false says plain TCP is meant: else dockerd sleeps 15 s to warn of it (not on loopback)
        tcp = ["-H", f"tcp://{self.tcp}", "--tls=false"] if self.ns.ip else []
        log = (self.work / "dockerd.log").open("wb")
        self.proc = subprocess.Popen(
            self.ns.argv("dockerd", "--data-root", str(self.work / "data"), "--exec-root", str(self.work / "x"),
                         "--pidfile", str(self.work / "dockerd.pid"), "-H", self.host, *tcp,
                         "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false"),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        api = docker_api.EngineAPI(self.sock)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    api.ping()
                    break
                except errors.Unavailable:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"dockerd did not start: {self.log_tail()}") from None
                    time.sleep(0.2)
        finally:
            api.close()
        if join is None:
            self.docker("swarm", "init", "--advertise-addr", self.address, "--default-addr-pool", "10.96.0.0/12")
        else:
            self.docker("swarm", "join", "--advertise-addr", self.address, "--token", join[1], join[0])
        self.started = time.monotonic() - began

    def node_id(self) -> str:
        return self.docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()

    def netns_of(self) -> str:
        """The network namespace the dockerd runs in (as /proc names it)."""
        assert self.proc is not None
        return os.readlink(f"/proc/{self.proc.pid}/ns/net")

    def log_tail(self, n: int = 2000) -> str:
        try:
            return (self.work / "dockerd.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.docker("swarm", "leave", "--force", check=False)
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            self.unmount()
            if not self.given:
                self.ns.delete()
            shutil.rmtree(self.work, ignore_errors=True)

    def unmount(self) -> None:
        """Unmount what the dockerd left under its directories (its netns bind mount, say)."""
        with open("/proc/self/mounts") as f:
            points = [line.split()[1] for line in f]
        for point in sorted((p for p in points if p.startswith(str(self.work) + "/")), reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def swarm_usable() -> str | None:
    """Why a private swarm cannot run here, or None."""
    if os.geteuid() != 0:
        return "a dockerd of the tests' own needs root"
    for tool in ("dockerd", "docker", "docker-registry"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    return None


@pytest.fixture(scope="session")
def swarm_daemon(registry: RegistryServer) -> Iterator[SwarmDaemon]:
    why = swarm_usable()
    if why:
        pytest.skip(why)
    before = host_links()
    daemon = SwarmDaemon()
    try:
        try:
            daemon.start()
            daemon.forward(registry.port)
        except RuntimeError as exc:                  # dockerd itself did not come up
            pytest.skip(f"this host refuses a second dockerd: {exc}")
        except subprocess.CalledProcessError as exc:  # our set-up is wrong: say so, do not skip
            pytest.fail(f"swarm set-up failed: {' '.join(exc.cmd)}: {exc.stderr}")
        yield daemon
    finally:
        daemon.stop()
    lost = lost_links(before, host_links())
    assert not lost, f"the host lost links while the tests' swarm ran: {lost} (did its dockerd leave its namespace?)"


@pytest.fixture(scope="session")
def two_nodes(registry: RegistryServer) -> Iterator[tuple[SwarmDaemon, SwarmDaemon]]:
    """A manager and a worker, each a dockerd in a namespace of its own; the namespaces are
    joined by a veth pair (no host link, no route through the host), over which the worker joins
    and the nodes gossip. Both pull from the tests' registry through forwards."""
    why = swarm_usable()
    if why:
        pytest.skip(why)
    before = host_links()
    namespaces = [NetNamespace("rsm"), NetNamespace("rsk")]
    nodes: list[SwarmDaemon] = []
    try:
        for ns in namespaces:
            ns.create(host_link=False)
            ns.forward(registry.port)
        manager_addr, worker_addr = namespaces[0].link(namespaces[1])
        nodes.append(SwarmDaemon(namespaces[0], address=manager_addr))
        nodes.append(SwarmDaemon(namespaces[1], address=worker_addr))
        try:
            nodes[0].start()
            token = nodes[0].docker("swarm", "join-token", "-q", "worker").stdout.strip()
            nodes[1].start(join=(f"{manager_addr}:2377", token))
        except RuntimeError as exc:
            pytest.skip(f"this host refuses a second dockerd: {exc}")
        except subprocess.CalledProcessError as exc:
            pytest.fail(f"two-node swarm set-up failed: {' '.join(exc.cmd)}: {exc.stderr}")
        yield nodes[0], nodes[1]
    finally:
        for node in reversed(nodes):
            node.stop()
        for ns in namespaces:
            ns.delete()
    lost = lost_links(before, host_links())
    assert not lost, f"the host lost links while the tests' two-node swarm ran: {lost}"


@dataclass
class Scope:
    """One test's owner (also the prefix of its object names), state root and subnet."""

    daemon: SwarmDaemon
    root: Path
    owner: str = field(default_factory=lambda: "sw" + rand(4))

    def __post_init__(self) -> None:
        self.rt = SwarmRuntime.from_docker_host(self.daemon.host)

    def subnet(self) -> str:
        """An overlay subnet (it lives in the swarm's own namespaces, never on the host)."""
        return f"10.{96 + secrets.randbelow(16)}.{secrets.randbelow(256)}.0/24"

    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.daemon.host}

    def cleanup(self) -> None:
        """Remove the services, secrets, networks and volumes of this test's owner (and wait for Swarm to
        drop the services' tasks first, so their networks and volumes are free)."""
        api = self.rt.api
        removed = set()
        for s in api.service_list({LABEL: self.owner}):
            try:
                api.service_remove(str(s["ID"]))
                removed.add(str(s["ID"]))
            except errors.NotFound:
                pass
        deadline = time.monotonic() + 60
        while removed and time.monotonic() < deadline and any(t.get("ServiceID") in removed for t in api.task_list()):
            time.sleep(0.5)
        for x in api.secret_list({LABEL: self.owner}):
            try:
                api.secret_remove(str(x["ID"]))
            except (errors.NotFound, errors.Conflict, errors.InvalidArgument):
                pass
        for n in api.network_list({LABEL: self.owner}):
            try:
                api.network_remove(str(n["Name"]))
            except errors.NotFound:
                pass
        for v in api.volume_list({LABEL: self.owner}):
            try:
                api.volume_remove(str(v["Name"]))
            except (errors.NotFound, errors.Conflict):
                pass
        self.rt.close()


@pytest.fixture
def swarm(swarm_daemon: SwarmDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Scope]:
    """A test's scope on the shared swarm; DOCKER_HOST points the CLI at its manager."""
    monkeypatch.setenv("DOCKER_HOST", swarm_daemon.host)
    s = Scope(swarm_daemon, tmp_path / "root")
    try:
        yield s
    finally:
        s.cleanup()
