"""A per-test network harness: its own state root, name prefix and 10.2NN subnets, real netns.

"Containers" are plain processes (tests/native/network/probe.py) run with `nsenter --net=` in
the namespaces NetworkManager creates. Namespaces that play the outside world or an outside
client are joined to the host by a veth of the test's own (not the engine's prefix). Teardown
removes everything, even when the test failed, then checks that nothing of the engine's prefix
is left: links, netns files, the nft tables (ip and ip6), iptables rules, IPv6 addresses and
routes in the test's leased /48.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler.runtime.native import procs
from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.network import netlink, network, resolver
from tests.helpers import images, subnets
from tests.runtime.conftest import (
    BUSYBOX_CONFIG,
    LayerDirImages,
    cleanup,
    net_leftovers,
    new_prefix,
)

PROBE = str(Path(__file__).with_name("probe.py"))
FORWARDING6 = Path("/proc/sys/net/ipv6/conf/all/forwarding")
IMAGE = "test/busybox:latest"     # what `engine` can run, from a local layer dir (no registry)


@dataclass
class Outside:
    """A namespace outside the engine, reachable from the host through a veth."""

    netns: Path
    host_ip: str      # the host's end (what the outside sees as "the host")
    ip: str           # the namespace's own address


class Harness:
    def __init__(self, tmp: Path) -> None:
        self.prefix = new_prefix()                  # leased: no other test's engine names objects with it
        self.link_tag = "tx" + self.prefix[2:]      # test-owned links (not the engine's prefix)
        # a /22 nobody else uses: pool = first /23 of it, outside namespaces in the third and fourth /24
        block = subnets.lease_block()
        self.a, self.b = block.network_address.packed[1], block.network_address.packed[2]
        self.tmp = tmp
        self.config = self.make_config()
        self.manager = network.NetworkManager(self.config)
        self.procs: list[subprocess.Popen[str]] = []
        self.test_links: list[str] = []
        self.test_netns_dir = tmp / "testns"
        self.block6 = subnets.lease_block6()
        # a dual-stack network turns IPv6 forwarding on (as Docker does); the host gets its value back
        self.forwarding6 = FORWARDING6.read_text()
        self.dns_server: int | None = None      # the engine's DNS server's pid at cleanup

    def make_config(self) -> NativeConfig:
        return NativeConfig(
            root=self.tmp / "root", run_dir=self.tmp / "run", name_prefix=self.prefix,
            subnet_pool=f"10.{self.a}.{self.b}.0/23",
        )

    def subnet(self, i: int) -> str:
        """An explicit /24 inside the test's pool (i = 0 or 1)."""
        return f"10.{self.a}.{self.b + i}.0/24"

    def subnet6(self, i: int) -> str:
        """An explicit IPv6 /64 inside the test's leased /48 (i = 0..65535)."""
        return str(ipaddress.IPv6Network((int(self.block6.network_address) + (i << 64), 64)))

    # processes --------------------------------------------------------------------------------

    def serve(self, netns: Path, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            ["nsenter", f"--net={netns}", sys.executable, PROBE, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
        return proc

    def probe(self, netns: Path | None, *args: str, hosts: Path | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, PROBE, *args]
        if netns is not None:
            cmd = ["nsenter", f"--net={netns}", *cmd]
        if hosts is not None:
            script = 'mount --bind "$0" /etc/hosts && exec "$@"'
            cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(hosts), *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)

    def stop(self, proc: subprocess.Popen[str]) -> None:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    # outside namespaces -----------------------------------------------------------------------

    def namespace_with_veth(self, ns: str, link: str, peer: str = "eth0") -> tuple[Path, str, int]:
        """A namespace of the test's own (`ns` in its dir) and a veth from the host into it (the
        host end `<link tag><link>`, the other `peer`), both removed at cleanup: the namespace's
        path, the host end's name and index."""
        self.test_netns_dir.mkdir(exist_ok=True)
        path = self.test_netns_dir / ns
        name = f"{self.link_tag}{link}"
        netlink.create_netns(path)
        self.test_links.append(name)
        with netlink.host() as h:
            return path, name, h.add_veth(name, peer=peer, peer_netns=path, mtu=1500)

    def outside(self, i: int) -> Outside:
        """Namespace number i (0 or 1) on 10.a.(b+2+i).0/24, host end .1, namespace .2."""
        base = f"10.{self.a}.{self.b + 2 + i}"
        path, _, index = self.namespace_with_veth(f"out{i}", f"o{i}")
        with netlink.host() as h:
            h.add_address(index, netlink.Address(f"{base}.1", 24))
            h.set_link(index, state="up")
        netlink.configure_container_side(path, ifname="eth0", address=netlink.Address(f"{base}.2", 24),
                                         gateway=f"{base}.1")
        return Outside(netns=path, host_ip=f"{base}.1", ip=f"{base}.2")

    # teardown ---------------------------------------------------------------------------------

    def cleanup(self) -> None:
        for proc in self.procs:
            self.stop(proc)
        m = self.manager
        try:
            for c in m._ipam.containers():
                m.detach(c.container_id)
            for n in m.list_networks():
                m.remove_network(n.name)
            m.recover([])
        finally:        # the test's own links and namespaces go even when the engine's teardown failed
            with netlink.host() as h:
                for name in self.test_links:
                    h.delete_link(name)
            if self.test_netns_dir.is_dir():
                for f in self.test_netns_dir.iterdir():
                    netlink.remove_netns(f)
            network.unmount_all(self.config.run_dir / "netns")
            network.unmount_all(self.test_netns_dir)
            FORWARDING6.write_text(self.forwarding6)
            # the engine's DNS server ends once it serves nothing (a TICK later); one that does
            # not is killed by the pid it recorded, and reported by leftovers()
            self.dns_server = resolver.pid(self.config.run_dir)
            if self.dns_server is not None and not procs.wait_gone(self.dns_server, 30):
                os.kill(self.dns_server, signal.SIGKILL)

    def leftovers(self) -> list[str]:
        found = net_leftovers(self.prefix)
        with netlink.host() as h:
            found += [f"link {x.name}" for x in h.links() if x.name.startswith(self.link_tag)]
        ns_dir = self.config.run_dir / "netns"
        if ns_dir.is_dir():
            found += [f"netns {f}" for f in ns_dir.iterdir()]
        found += [f"IPv6 address or route {n}" for n in subnets.routed6() if n.overlaps(self.block6)]
        found += [f"mount {d}" for d in (ns_dir, self.test_netns_dir) if network._mount_count(d)]
        if self.dns_server is not None and not procs.wait_gone(self.dns_server, 0):
            found.append(f"DNS server process {self.dns_server} still running after its last container")
        return found


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    try:
        yield h
    finally:
        try:
            h.cleanup()
        finally:
            left = h.leftovers()
        assert left == [], f"the test left host objects behind: {left}"


@pytest.fixture
def engine(harness: Harness) -> Iterator[NativeRuntime]:
    """The native engine (runc + conmon) on the harness's config and NetworkManager."""
    source = LayerDirImages(harness.tmp / "images")
    source.add(IMAGE, [images.busybox_layer()], BUSYBOX_CONFIG)
    rt = NativeRuntime(harness.config, images=source, network=harness.manager)
    try:
        yield rt
    finally:
        cleanup(rt)
        rt.close()


REPO = Path(__file__).resolve().parents[3]
Reconcile = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(harness: Harness, engine: NativeRuntime) -> Reconcile:
    """`reconcile ARGS` in a process of its own on the harness's engine (whose fixtures remove
    what it made); `check`: an exit other than 0 fails the test; `stdin`: what it reads."""
    cfg = harness.config
    env = {**os.environ, "RECONCILER_ROOT": str(cfg.root), "RECONCILER_RUN_DIR": str(cfg.run_dir),
           "RECONCILER_PREFIX": cfg.name_prefix, "RECONCILER_SUBNET_POOL": cfg.subnet_pool}

    def reconcile(*args: str, check: bool = True, stdin: str = "") -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=REPO, env=env, input=stdin,
                              capture_output=True, text=True, check=False, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"reconcile {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc

    return reconcile


def inspect_doc(reconcile: Reconcile, name: str) -> dict[str, Any]:
    """`reconcile inspect NAME`'s document."""
    doc: dict[str, Any] = json.loads(reconcile("inspect", name).stdout)[0]
    return doc
