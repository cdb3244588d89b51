"""`reconcile network connect`, `disconnect` and `prune`, as a user types them: the CLI in a process
of its own on the harness's engine (its root, prefix and subnet pool), checked against what the
kernel has (the container's namespace through nsenter, the host's links) and what the engine
records (inspect, ps, the network's members)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from reconciler.runtime import base
from reconciler.runtime.native.backend import NativeRuntime
from tests.native.network.conftest import IMAGE, Harness, Reconcile, inspect_doc

pytestmark = [pytest.mark.root]


def _running(engine: NativeRuntime, name: str, *networks: str) -> str:
    cid = engine.create_container(base.ContainerConfig(name=name, image=IMAGE, command=("sleep", "1000"),
                                                       networks=networks))
    engine.start_container(cid)
    return cid


def _ps_networks(reconcile: Reconcile, *flags: str) -> dict[str, str]:
    """Each container's NETWORKS as `ps --format` prints docker's field (`flags`: -a)."""
    rows = reconcile("ps", *flags, "--format", "{{.Names}} {{.Networks}}").stdout.splitlines()
    return {name: nets for name, _, nets in (line.partition(" ") for line in rows)}


def _kernel_addresses(netns: str) -> list[str]:
    """The IPv4 addresses of the interfaces in the namespace `netns`, as the kernel has them."""
    out = subprocess.run(["nsenter", f"--net={netns}", "ip", "-o", "-4", "addr", "show"], capture_output=True,
                         text=True, check=True).stdout
    return [line.split()[3] for line in out.splitlines()]


def test_connect_and_disconnect_a_running_container_as_docker_network_does(
        harness: Harness, engine: NativeRuntime, cli: Reconcile) -> None:
    """`network connect --alias A --ip IP NET web` of a running container: an interface on NET in
    its namespace with that address (the kernel's), inspect and ps name NET, a peer there reaches
    it by its alias; `disconnect`: the interface, its address and its veth are gone, inspect and
    ps say so, the peer no longer finds the alias; what docker refuses is refused, exit 1 for what
    the engine refuses, 2 for what can never be (nothing changed)."""
    cli("network", "create", "--subnet", harness.subnet(1), "backend")
    web = _running(engine, "web")                               # on the default network
    peer = _running(engine, "peer", "backend")
    netns = inspect_doc(cli, "web")["NetworkSettings"]["SandboxKey"]
    address = harness.subnet(1).replace(".0/24", ".77")
    before = _kernel_addresses(netns)

    done = cli("network", "connect", "--alias", "api", "--ip", address, "backend", "web")
    assert (done.stdout, done.stderr) == ("", "")
    assert f"{address}/24" in _kernel_addresses(netns)
    veth = harness.manager.veth_name(web, "backend")
    assert Path("/sys/class/net", veth).exists()
    nets = inspect_doc(cli, "web")["NetworkSettings"]["Networks"]
    assert sorted(nets) == ["backend", "default"]
    assert nets["backend"]["IPAddress"] == address
    assert nets["backend"]["IPAMConfig"] == {"IPv4Address": address}     # fixed: kept for its next starts
    assert _ps_networks(cli)["web"] == "backend,default"       # sorted, as docker prints them
    ping = engine.exec(peer, ["busybox", "ping", "-c", "1", "-W", "3", "api"])
    assert ping.exit_code == 0, ping.stdout + ping.stderr
    assert address in ping.stdout.decode()

    again = cli("network", "connect", "backend", "web", check=False)
    assert again.returncode == 1
    assert "already connected to network backend" in again.stderr
    for args, code, said in ((("nope", "web"), 1, "network nope not found"),
                             (("backend", "ghost"), 1, "No such container: ghost"),
                             (("host", "web"), 2, "the native engine connects bridge networks only"),
                             (("--alias", "x", "bridge", "peer"), 2, "network-scoped alias is supported only"),
                             (("--ip", "10.1.2.3", "backend", "peer"), 1, "already connected")):
        refused = cli("network", "connect", *args, check=False)
        assert (refused.returncode, refused.stdout) == (code, ""), (args, refused.stderr)
        assert refused.stderr.startswith("error: "), (args, refused.stderr)
        assert said in refused.stderr, (args, refused.stderr)
    outside = cli("network", "connect", "--ip", "10.1.2.3", "default", "peer", check=False)
    assert outside.returncode == 2                  # not an address of that network's: never
    assert "not a usable address of network 'default'" in outside.stderr
    assert sorted(inspect_doc(cli, "peer")["NetworkSettings"]["Networks"]) == ["backend"]

    gone = cli("network", "disconnect", "backend", "web")
    assert (gone.stdout, gone.stderr) == ("", "")
    assert sorted(_kernel_addresses(netns)) == sorted(before)
    assert not Path("/sys/class/net", veth).exists()
    assert sorted(inspect_doc(cli, "web")["NetworkSettings"]["Networks"]) == ["default"]
    assert _ps_networks(cli)["web"] == "default"
    assert [e.container_id for e in harness.manager._ipam.endpoints(network="backend")] == [peer]
    assert engine.exec(peer, ["busybox", "ping", "-c", "1", "-W", "1", "api"]).exit_code != 0
    twice = cli("network", "disconnect", "backend", "web", check=False)
    assert twice.returncode == 1
    assert "web is not connected to network backend" in twice.stderr


def test_a_stopped_container_is_connected_and_disconnected_at_its_next_start(
        harness: Harness, engine: NativeRuntime, cli: Reconcile) -> None:
    """As dockerd: `network connect` of a container that ran and exited records the network for
    its next start (inspect names it, without an address, before the start; a peer there reaches
    it by its alias after), and `disconnect` of a stopped one takes it off for its next start
    (its interface there gone); its exit code stays until then."""
    cli("network", "create", "--subnet", harness.subnet(1), "backend")
    web = _running(engine, "web")
    peer = _running(engine, "peer", "backend")
    engine.stop_container(web, timeout=0)
    exited = inspect_doc(cli, "web")["State"]
    address = harness.subnet(1).replace(".0/24", ".78")

    done = cli("network", "connect", "--alias", "api", "--ip", address, "backend", "web")
    assert (done.stdout, done.stderr) == ("", "")
    doc = inspect_doc(cli, "web")
    assert (doc["State"]["Status"], doc["State"]["ExitCode"]) == ("exited", exited["ExitCode"])
    nets = doc["NetworkSettings"]["Networks"]
    assert sorted(nets) == ["backend", "default"]
    assert nets["backend"]["IPAMConfig"] == {"IPv4Address": address}
    assert nets["backend"]["Aliases"] == ["api"]
    # ps names it on both, as docker ps --format {{.Networks}} of a stopped one (no address yet)
    assert sorted(_ps_networks(cli, "-a")["web"].split(",")) == ["backend", "default"]
    cli("start", "web")
    netns = inspect_doc(cli, "web")["NetworkSettings"]["SandboxKey"]
    assert f"{address}/24" in _kernel_addresses(netns)       # its interface there, in its namespace
    assert inspect_doc(cli, "web")["NetworkSettings"]["Networks"]["backend"]["IPAddress"] == address
    ping = engine.exec(peer, ["busybox", "ping", "-c", "1", "-W", "3", "api"])
    assert ping.exit_code == 0, ping.stdout + ping.stderr

    engine.stop_container(web, timeout=0)
    gone = cli("network", "disconnect", "backend", "web")
    assert (gone.stdout, gone.stderr) == ("", "")
    assert sorted(inspect_doc(cli, "web")["NetworkSettings"]["Networks"]) == ["default"]
    assert _ps_networks(cli, "-a")["web"] == "default"
    cli("start", "web")
    netns = inspect_doc(cli, "web")["NetworkSettings"]["SandboxKey"]
    assert not any(a.startswith(address) for a in _kernel_addresses(netns))
    assert [e.container_id for e in harness.manager._ipam.endpoints(network="backend")] == [peer]
    assert engine.exec(peer, ["busybox", "ping", "-c", "1", "-W", "1", "api"]).exit_code != 0


def test_inspect_shows_each_endpoints_aliases_and_dns_names_as_dockerd(
        harness: Harness, engine: NativeRuntime, cli: Reconcile) -> None:
    """`reconcile inspect` shows each endpoint's Aliases and DNSNames as dockerd 28 keeps them: on
    a user-defined network the aliases given (a manifest's `aliases`, `network connect --alias`),
    and the names its peers resolve (its name, those aliases, short id, host name); null on the
    default network."""
    cli("network", "create", "--subnet", harness.subnet(0).replace(".0/24", ".0/25"), "front")
    cli("network", "create", "--subnet", harness.subnet(0).replace(".0/24", ".128/25"), "backend")
    web = engine.create_container(base.ContainerConfig(name="web", image=IMAGE, command=("sleep", "1000"),
                                                       networks=("front",), aliases=("site",)))
    engine.start_container(web)
    plain = _running(engine, "plain", "front")
    cli("network", "connect", "--alias", "api", "backend", "web")
    cli("network", "connect", "default", "web")

    nets = inspect_doc(cli, "web")["NetworkSettings"]["Networks"]
    assert nets["front"]["Aliases"] == ["site"]
    assert nets["front"]["DNSNames"] == ["web", "site", web[:12]]
    assert nets["backend"]["Aliases"] == ["site", "api"]
    assert nets["backend"]["DNSNames"] == ["web", "site", "api", web[:12]]
    assert (nets["default"]["Aliases"], nets["default"]["DNSNames"]) == (None, None)
    ends = inspect_doc(cli, "plain")["NetworkSettings"]["Networks"]["front"]
    assert (ends["Aliases"], ends["DNSNames"]) == (None, ["plain", plain[:12]])
    # what the names say is what a peer resolves
    ping = engine.exec(plain, ["busybox", "ping", "-c", "1", "-W", "3", "site"])
    assert ping.exit_code == 0, ping.stdout + ping.stderr


def test_connect_and_disconnect_find_networks_and_containers_by_id_as_docker(
        harness: Harness, engine: NativeRuntime, cli: Reconcile) -> None:
    """As docker's: the network by its id or a unique id prefix as well as its name, the container
    by its id, id prefix or name (a prefix several networks' ids begin: test_ipam)."""
    made = cli("network", "create", "--subnet", harness.subnet(1), "backend").stdout.strip()
    web = _running(engine, "web")
    netns = inspect_doc(cli, "web")["NetworkSettings"]["SandboxKey"]
    prefix = harness.subnet(1).rsplit(".", 1)[0] + "."

    cli("network", "connect", made[:7], web[:6])
    assert any(a.startswith(prefix) for a in _kernel_addresses(netns))
    cli("network", "disconnect", made, web)
    assert not any(a.startswith(prefix) for a in _kernel_addresses(netns))
    cli("network", "connect", made, "web")
    cli("network", "disconnect", made[:5], "web")
    assert sorted(inspect_doc(cli, "web")["NetworkSettings"]["Networks"]) == ["default"]
    missing = cli("network", "connect", "0" * 12 if not made.startswith("0" * 12) else "f" * 12, "web", check=False)
    assert missing.returncode == 1
    assert "not found" in missing.stderr


def test_disconnect_f_removes_the_endpoint_a_container_the_engine_no_longer_has_left(
        harness: Harness, engine: NativeRuntime, cli: Reconcile) -> None:
    """An endpoint whose container has no record (a process killed between a removal and its
    detach): `disconnect` says there is no such container; `disconnect -f`, as dockerd's, removes
    the endpoint: its address, its veth, its namespace (its last one)."""
    cli("network", "create", "--subnet", harness.subnet(1), "backend")
    ghost = "e" * 64
    harness.manager.attach(ghost, name="ghost", hostname="ghost", networks=["backend"])
    veth = harness.manager.veth_name(ghost, "backend")
    assert Path("/sys/class/net", veth).exists()

    plain = cli("network", "disconnect", "backend", "ghost", check=False)
    assert plain.returncode == 1
    assert "No such container: ghost" in plain.stderr
    forced = cli("network", "disconnect", "-f", "backend", "ghost")
    assert forced.stdout == ""
    assert harness.manager._ipam.endpoints(network="backend") == []
    assert not Path("/sys/class/net", veth).exists()
    assert not harness.manager.netns_path(ghost).exists()
    missing = cli("network", "disconnect", "-f", "backend", "ghost", check=False)
    assert missing.returncode == 1
    assert "No such container: ghost" in missing.stderr


def test_prune_removes_only_the_networks_no_container_uses(harness: Harness, engine: NativeRuntime,
                                                           cli: Reconcile) -> None:
    """`network prune`: asks first (another answer: nothing removed, exit 0); removes the networks
    no container is on (a running one's and a created one's are kept, the default one always),
    by label when filtered, printing `Deleted Networks:` as docker does; a filter it does not take
    is refused (exit 2)."""
    quarters = [harness.subnet(0).replace(".0/24", f".{64 * i}/26") for i in range(4)]   # (a /23 pool: two /24s)
    for subnet, name in zip(quarters, ("used", "waiting", "old", "spare"), strict=True):
        cli("network", "create", "--subnet", subnet, *(["-l", "tier=old"] if name == "old" else []), name)
    _running(engine, "web", "used")
    engine.create_container(base.ContainerConfig(name="later", image=IMAGE, command=("sleep", "1000"),
                                                 networks=("waiting",)))
    engine.ensure_network(base.NetworkConfig(name="default"))
    bridges = {n.name: n.bridge for n in engine.list_networks()}

    def names() -> list[str]:
        return sorted(n["name"] for n in json.loads(cli("network", "ls", "-o", "json").stdout))

    asked = cli("network", "prune", stdin="n\n")
    assert asked.stdout == ("WARNING! This will remove all custom networks not used by at least one container.\n"
                            "Are you sure you want to continue? [y/N] ")
    assert names() == ["default", "old", "spare", "used", "waiting"]

    labelled = cli("network", "prune", "-f", "--filter", "label=tier=old")
    assert labelled.stdout == "Deleted Networks:\nold\n\n"
    assert cli("network", "prune", "--filter", "until=1h", stdin="y\n").stdout.endswith("[y/N] ")  # all newer
    assert names() == ["default", "spare", "used", "waiting"]
    pruned = cli("network", "prune", stdin="y\n")
    assert pruned.stdout.endswith("[y/N] Deleted Networks:\nspare\n\n")
    assert names() == ["default", "used", "waiting"]
    assert not Path("/sys/class/net", bridges["spare"]).exists()
    assert Path("/sys/class/net", bridges["used"]).exists()
    assert cli("network", "prune", "-f").stdout == ""

    refused = cli("network", "prune", "-f", "--filter", "dangling=true", check=False)
    assert refused.returncode == 2
    assert "invalid filter 'dangling=true'" in refused.stderr
