"""Native networks next to dockerd: both engines' published ports work, and Docker's after our teardown."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest

from reconciler.runtime import base
from tests.helpers import images
from tests.helpers.ports import publish_ports
from tests.native.network.conftest import Harness

pytestmark = [pytest.mark.root, pytest.mark.docker]


def _docker_ok() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "info"], capture_output=True, check=False).returncode == 0


@pytest.fixture
def docker_busybox() -> Iterator[str]:
    if not _docker_ok():
        pytest.skip("dockerd is not running")
    tag = f"rtnet-busybox:{secrets.token_hex(3)}"
    subprocess.run(["docker", "import", "-", tag], input=images.busybox_layer(), capture_output=True, check=True)
    try:
        yield tag
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


def _get(url: str, *, wait: float = 0.0) -> str:
    deadline = time.monotonic() + wait
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                return str(resp.read().decode())
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def test_docker_and_native_ports_work_side_by_side(harness: Harness, docker_busybox: str) -> None:
    m = harness.manager
    m.ensure_network(base.NetworkConfig(name="side"))
    ours, theirs = publish_ports(2)
    web = m.attach("ctr-side", name="side", hostname="side", networks=["side"],
                   ports=[base.PortMapping(container_port=80, host_port=ours)])
    harness.serve(web.netns_path, "serve-tcp", "80", "native")
    name = f"rtnet-{secrets.token_hex(3)}"
    subprocess.run(["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{theirs}:80", docker_busybox,
                    "httpd", "-f", "-p", "80", "-h", "/etc"], capture_output=True, check=True)
    try:
        assert "root:x:0:0" in _get(f"http://127.0.0.1:{theirs}/passwd", wait=15)
        assert harness.probe(None, "tcp", "127.0.0.1", str(ours)).stdout.startswith("native")
        # a docker container reaches our container's published port through the host
        gw = subprocess.run(["docker", "exec", name, "ip", "route"], capture_output=True, text=True,
                            check=True).stdout.split("default via ")[1].split()[0]
        out = subprocess.run(["docker", "exec", name, "timeout", "5", "nc", gw, str(ours)],
                             capture_output=True, text=True, check=False)
        assert out.stdout.startswith("native"), out.stderr
        harness.cleanup()
        assert harness.leftovers() == []
        assert "root:x:0:0" in _get(f"http://127.0.0.1:{theirs}/passwd")
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout.strip()


def _address(container: str) -> str:
    return _docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container)


def test_native_containers_meet_dockers_isolation_as_the_hosts_other_traffic_does(
        harness: Harness, docker_busybox: str) -> None:
    """Our DOCKER-USER accept of all that leaves a native bridge came before Docker's isolation
    chains: a native container reached the containers of a Docker `--internal` network and the
    unpublished ports of one on a Docker user network. Now what goes to Docker's bridges is
    Docker's to decide, as for the host's other traffic: a published port answers, the rest is
    dropped; egress and the native network's own traffic are accepted as before."""
    m = harness.manager
    net = m.ensure_network(base.NetworkConfig(name="mix"))
    native = m.attach("ctr-mix", name="mix", hostname="mix", networks=["mix"])
    peer = m.attach("ctr-peer", name="peer", hostname="peer", networks=["mix"])
    harness.serve(peer.netns_path, "serve-tcp", "7000", "peer")
    world = harness.outside(0)
    harness.serve(world.netns, "serve-tcp", "8080", "world")
    (theirs,) = publish_ports(1)
    tag = f"rtnet-{secrets.token_hex(3)}"
    nets, ctrs = [f"{tag}-int", f"{tag}-usr"], [f"{tag}-in", f"{tag}-pub"]
    try:
        _docker("network", "create", "--internal", nets[0])
        _docker("network", "create", nets[1])
        _docker("run", "-d", "--name", ctrs[0], "--network", nets[0], docker_busybox,
                "nc", "-ll", "-p", "80", "-e", "echo", "internal")
        # port 80 published on the native network's gateway (a host address), 81 not published
        _docker("run", "-d", "--name", ctrs[1], "--network", nets[1], "-p", f"{net.gateway}:{theirs}:80",
                docker_busybox, "sh", "-c", "nc -ll -p 81 -e echo unpublished & exec nc -ll -p 80 -e echo published")
        internal, user = _address(ctrs[0]), _address(ctrs[1])
        deadline = time.monotonic() + 15
        while harness.probe(None, "tcp", user, "81").returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.2)                     # the host itself reaches both (no FORWARD on its way)
        assert harness.probe(None, "tcp", internal, "80").stdout.startswith("internal")
        assert harness.probe(None, "tcp", user, "81").stdout.startswith("unpublished")

        to_internal = harness.probe(native.netns_path, "tcp", internal, "80")
        assert to_internal.returncode == 1, to_internal.stdout
        to_unpublished = harness.probe(native.netns_path, "tcp", user, "81")
        assert to_unpublished.returncode == 1, to_unpublished.stdout
        published = harness.probe(native.netns_path, "tcp", net.gateway, str(theirs))
        assert published.stdout.startswith("published"), published.stderr
        out = harness.probe(native.netns_path, "tcp", world.ip, "8080")
        assert out.stdout.startswith("world"), out.stderr
        inside = harness.probe(native.netns_path, "tcp", peer.ip_addresses["mix"], "7000")
        assert inside.stdout.startswith("peer"), inside.stderr
    finally:
        subprocess.run(["docker", "rm", "-f", *ctrs], capture_output=True, check=False)
        for name in nets:
            subprocess.run(["docker", "network", "rm", name], capture_output=True, check=False)


def test_docker_containers_reach_a_native_container_only_through_its_published_ports(
        harness: Harness, docker_busybox: str) -> None:
    """Docker accepts what its containers send to any interface that is not their bridge's
    (`-i br-x ! -o br-x -j ACCEPT`), so a Docker container reached a native container's
    unpublished ports, as no Docker network's container reaches another's. Now what comes into a
    native bridge from any other interface is dropped in the engine's nft table unless it is a
    reply or DNAT'ed to a published port: from a Docker user network (`br-<id>`) and from one
    with a bridge name of its own (`com.docker.network.bridge.name`), whose names the rule does
    not know. The native container still reaches the Docker one, and its own network's peer."""
    m = harness.manager
    net = m.ensure_network(base.NetworkConfig(name="iso"))
    (ours,) = publish_ports(1)
    web = m.attach("ctr-iso", name="iso", hostname="iso", networks=["iso"],
                   ports=[base.PortMapping(container_port=80, host_port=ours)])
    peer = m.attach("ctr-isopeer", name="isopeer", hostname="isopeer", networks=["iso"])
    harness.serve(web.netns_path, "serve-tcp", "80", "published")
    harness.serve(web.netns_path, "serve-tcp", "7000", "unpublished")
    address = web.ip_addresses["iso"]
    tag = f"rtnet-{secrets.token_hex(3)}"
    custom = f"{harness.link_tag}dk"            # a test-owned link name: leftovers() looks for it
    nets, ctrs = [f"{tag}-usr", f"{tag}-own"], [f"{tag}-usr", f"{tag}-own"]
    try:
        _docker("network", "create", nets[0])
        _docker("network", "create", "-o", f"com.docker.network.bridge.name={custom}", nets[1])
        for ctr, name in zip(ctrs, nets, strict=True):
            _docker("run", "-d", "--rm", "--name", ctr, "--network", name, "-p", f"{net.gateway}::9", docker_busybox,
                    "sh", "-c", "nc -ll -p 9 -e echo docker & exec sleep 3600")
        for ctr in ctrs:
            gw = _docker("exec", ctr, "ip", "route").split("default via ")[1].split()[0]

            def nc(host: str, port: int, ctr: str = ctr) -> subprocess.CompletedProcess[str]:
                return subprocess.run(["docker", "exec", ctr, "timeout", "3", "nc", host, str(port)],
                                      capture_output=True, text=True, check=False)

            published = nc(gw, ours)
            assert published.stdout.startswith("published"), (ctr, published.stderr)
            unpublished = nc(address, 7000)
            assert not unpublished.stdout, f"{ctr} reached the unpublished port: {unpublished.stdout}"
            direct = nc(address, 80)        # the container's port itself, not through the host's
            assert not direct.stdout, f"{ctr} reached port 80 past its publishing: {direct.stdout}"
            # the native container reaches the Docker one's published port, as before
            (theirs,) = [line.rsplit(":", 1)[1] for line in _docker("port", ctr, "9/tcp").splitlines()]
            back = harness.probe(web.netns_path, "tcp", net.gateway, theirs)
            assert back.stdout.startswith("docker"), (ctr, back.stderr)
        inside = harness.probe(peer.netns_path, "tcp", address, "7000")
        assert inside.stdout.startswith("unpublished"), inside.stderr
        assert harness.probe(None, "tcp", address, "7000").stdout.startswith("unpublished")   # the host
    finally:
        subprocess.run(["docker", "rm", "-f", *ctrs], capture_output=True, check=False)
        for name in nets:
            subprocess.run(["docker", "network", "rm", name], capture_output=True, check=False)
