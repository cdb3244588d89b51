"""A single-node Swarm of the tests' own: a second dockerd, never the host's.

`docker swarm init` changes an engine's networking (an ingress network, a docker_gwbridge
bridge, gossip and VXLAN ports), and other tests use the host's dockerd in parallel. So the
swarm runs on a dockerd this fixture starts and ends, with its own data root, exec root (so
its own containerd), pidfile and Unix socket, `--bridge=none`, `--iptables=false` and
`--ip6tables=false` (the host's firewall is not touched: a port published in host mode is
served by docker-proxy), and a TCP socket on 127.0.0.1 for the DOCKER_HOST=tcp:// test. Its
docker_gwbridge is made before `swarm init` with a bridge name and a subnet of its own; the
manager listens and gossips on an address of its own in 127.0.0.0/8, with its own VXLAN port,
so two such swarms (two xdist workers, or two test runs) do not meet.

Teardown, even when tests fail: `docker swarm leave --force`, SIGTERM to the dockerd (by pid;
its containerd ends with it), unmount what is left under its directories, delete its bridge.
The swarm tests share one daemon per session (xdist group "swarm": scripts/test.sh passes
`--dist loadgroup`, so one worker runs them all).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import signal
import socket
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
from tests.docker.conftest import _routed

LABEL = "reconciler.owner"


def rand(n: int = 4) -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def _free_port(host: str, kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _free_udp_port() -> int:
    """A free UDP port for the swarm's VXLAN traffic: Swarm takes 1024-49151; below the
    ephemeral range, so no other test's socket is handed it meanwhile."""
    while True:
        port = 20000 + secrets.randbelow(12000)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port


def _free_subnet(first: int, last: int) -> str:
    used = _routed()
    while True:
        net = ipaddress.IPv4Network(f"10.{first + secrets.randbelow(last - first + 1)}.{secrets.randbelow(256)}.0/24")
        if not any(net.overlaps(u) for u in used):
            return str(net)


class SwarmDaemon:
    """A dockerd of our own, made a single-node Swarm manager."""

    def __init__(self) -> None:
        # short paths: containerd's socket lives under the exec root (sun_path is 108 bytes)
        self.work = Path(tempfile.mkdtemp(prefix="rsw", dir="/tmp"))
        self.sock = str(self.work / "d.sock")
        self.advertise = f"127.{secrets.randbelow(200) + 20}.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}"
        self.tcp = f"127.0.0.1:{_free_port('127.0.0.1')}"
        self.bridge = f"rsw{rand(5)}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The real docker CLI on this daemon."""
        return subprocess.run(["docker", "-H", self.host, *args], capture_output=True, text=True, check=check,
                              timeout=120)

    def start(self) -> None:
        began = time.monotonic()
        log = (self.work / "dockerd.log").open("wb")
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", str(self.work / "data"), "--exec-root", str(self.work / "x"),
             "--pidfile", str(self.work / "dockerd.pid"), "-H", self.host, "-H", f"tcp://{self.tcp}",
             "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
             "--default-address-pool", f"base={_free_subnet(250, 253).rsplit('.', 2)[0]}.0.0/16,size=24"],
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
        self.docker("network", "create", "--driver", "bridge", "--subnet", _free_subnet(250, 253),
                    "--opt", f"com.docker.network.bridge.name={self.bridge}",
                    "--opt", "com.docker.network.bridge.enable_icc=false",
                    "--opt", "com.docker.network.bridge.enable_ip_masquerade=false", "docker_gwbridge")
        port = _free_port(self.advertise)
        self.docker("swarm", "init", "--advertise-addr", f"{self.advertise}:{port}",
                    "--listen-addr", f"{self.advertise}:{port}",
                    "--data-path-port", str(_free_udp_port()),
                    "--default-addr-pool", "10.96.0.0/12")
        self.started = time.monotonic() - began

    def log_tail(self, n: int = 2000) -> str:
        try:
            return (self.work / "dockerd.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.docker("swarm", "leave", "--force", check=False)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with open("/proc/self/mounts") as f:
            points = [line.split()[1] for line in f]
        for point in sorted((p for p in points if p.startswith(str(self.work) + "/")), reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], check=False, capture_output=True)
        shutil.rmtree(self.work, ignore_errors=True)


def swarm_usable() -> str | None:
    """Why a private swarm cannot run here, or None."""
    if os.geteuid() != 0:
        return "a dockerd of the tests' own needs root"
    for tool in ("dockerd", "docker", "docker-registry"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    return None


@pytest.fixture(scope="session")
def swarm_daemon() -> Iterator[SwarmDaemon]:
    why = swarm_usable()
    if why:
        pytest.skip(why)
    daemon = SwarmDaemon()
    try:
        try:
            daemon.start()
        except RuntimeError as exc:                  # dockerd itself did not come up
            pytest.skip(f"this host refuses a second dockerd: {exc}")
        except subprocess.CalledProcessError as exc:  # our set-up is wrong: say so, do not skip
            pytest.fail(f"swarm set-up failed: {' '.join(exc.cmd)}: {exc.stderr}")
        yield daemon
    finally:
        daemon.stop()


@dataclass
class Scope:
    """One test's owner (also the prefix of its object names), state root and subnet."""

    daemon: SwarmDaemon
    root: Path
    owner: str = field(default_factory=lambda: "sw" + rand(4))

    def __post_init__(self) -> None:
        self.rt = SwarmRuntime.from_docker_host(self.daemon.host)

    def subnet(self) -> str:
        """An overlay subnet (it lives in the swarm's own namespaces, not on the host)."""
        return f"10.{96 + secrets.randbelow(16)}.{secrets.randbelow(256)}.0/24"

    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.daemon.host}

    def cleanup(self) -> None:
        """Remove the services, networks and volumes of this test's owner (and wait for Swarm to
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
