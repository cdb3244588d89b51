"""Start-up recovery (runtime/native/containers/recovery.py) after a writer died mid-create.

The states a SIGKILL can leave are made with the real engine, then the record is taken away
(killed before the INSERT: bundle, mounted rootfs, netns, veth and address with no record) or
left without its process (killed between the INSERT and saving conmon's pid). Recovery must
remove exactly those and keep a healthy neighbour untouched.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from reconciler.runtime import base, opening
from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.containers import cgroups, mounts, recovery
from reconciler.runtime.native.network import netlink
from tests.helpers.host import conmon_pids
from tests.helpers.ports import publish_port
from tests.native.network.conftest import IMAGE, Harness

pytestmark = [pytest.mark.root]

def _links(prefix: str) -> set[str]:
    return {p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith(prefix + "v")}


def _serving_web(harness: Harness, engine: NativeRuntime) -> tuple[str, int]:
    """A container `web` on network `app` serving /etc on a published 127.0.0.1 port: (id, port)."""
    engine.ensure_network(base.NetworkConfig(name="app", subnet=harness.subnet(0)))
    port = publish_port()
    web = engine.create_container(base.ContainerConfig(
        name="web", image=IMAGE, command=("httpd", "-f", "-p", "80", "-h", "/etc"), networks=("app",),
        ports=(base.PortMapping(container_port=80, host_port=port, host_ip="127.0.0.1"),)))
    engine.start_container(web)
    return web, port


def test_recovery_removes_what_a_killed_create_left_and_keeps_the_rest(
        harness: Harness, engine: NativeRuntime) -> None:
    engine.ensure_network(base.NetworkConfig(name="app", subnet=harness.subnet(0)))
    port = publish_port()

    def make(name: str, *, publish: bool = False) -> str:
        ports = (base.PortMapping(container_port=80, host_port=port, host_ip="127.0.0.1"),) if publish else ()
        cid = engine.create_container(base.ContainerConfig(
            name=name, image=IMAGE, command=("httpd", "-f", "-p", "80", "-h", "/etc"), networks=("app",),
            ports=ports))
        engine.start_container(cid)
        return cid

    keep = make("keep", publish=True)
    orphan = make("orphan")
    half = make("half")
    mgr = engine.containers
    with mgr.db.tx() as conn:                       # killed before the INSERT: no record at all
        conn.execute("DELETE FROM containers WHERE id = ?", (orphan,))
    mgr.update(half, lambda r: dataclasses.replace(r, status="created", pid=None, conmon_pid=None))
    assert set(conmon_pids(harness.config.run_dir)) == {keep, orphan, half}
    assert len(_links(harness.prefix)) == 3

    report = recovery.recover(engine)

    assert report.orphans == (orphan,)
    assert report.half_made == (half,)
    assert [r.id for r in mgr.records()] == [keep]
    assert set(conmon_pids(harness.config.run_dir)) == {keep}
    for cid in (orphan, half):
        assert not mgr.paths(cid).dir.exists()
        assert not mounts.is_mounted(mgr.paths(cid).rootfs)
        assert not harness.manager.netns_path(cid).exists()
        assert not cgroups.leaf_dirs(harness.config.name_prefix, cid)
    _, members = harness.manager.inspect_network("app")
    assert [m[0] for m in members] == [keep]
    assert len(_links(harness.prefix)) == 1
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/passwd", timeout=5) as resp:
        assert b"root:x:0:0" in resp.read()          # the neighbour was not disturbed

    again = recovery.recover(engine)
    assert (again.half_made, again.orphans, again.processes, again.network) == ((), (), (), None)


def test_opening_the_engine_for_a_pass_runs_recovery(harness: Harness, engine: NativeRuntime) -> None:
    engine.ensure_network(base.NetworkConfig(name="app", subnet=harness.subnet(0)))
    cid = engine.create_container(base.ContainerConfig(name="gone", image=IMAGE, command=("sleep", "100"),
                                                       networks=("app",)))
    with engine.containers.db.tx() as conn:
        conn.execute("DELETE FROM containers WHERE id = ?", (cid,))
    cfg = harness.config
    place = opening.Place(root=cfg.root, run_dir=cfg.run_dir, name_prefix=cfg.name_prefix)
    diff = opening.open_runtime("native", place, recover=False)     # what `reconcile diff` opens: nothing changes
    diff.close()
    assert engine.containers.paths(cid).dir.exists()
    rt = opening.open_runtime("native", place)
    rt.close()
    assert not engine.containers.paths(cid).dir.exists()
    assert cid not in conmon_pids(cfg.run_dir)
    assert not harness.manager.netns_path(cid).exists()


def test_opening_the_engine_plugs_in_the_veths_a_deleted_bridge_left(harness: Harness, engine: NativeRuntime) -> None:
    """No agent heals (a CLI-only host): a bridge deleted under a running container leaves its
    veth unplugged, and a start would not plug it in. The next writer's start-up recovery (what
    `reconcile --once` opens) sees the bridge gone, or, the bridge made again meanwhile, a veth
    that is no port of it, and plugs the veth in: the container serves again; so with a veth
    set down."""
    web, port = _serving_web(harness, engine)
    m = harness.manager
    bridge, veth = m.bridge_name("app"), m.veth_name(web, "app")
    cfg = harness.config
    place = opening.Place(root=cfg.root, run_dir=cfg.run_dir, name_prefix=cfg.name_prefix)

    def master() -> str | None:
        link = Path(f"/sys/class/net/{veth}/master")
        return link.resolve().name if link.exists() else None

    for made_again in (False, True):
        subprocess.run(["ip", "link", "del", bridge], check=True)
        if made_again:                              # by someone else: its ports are not judged by its presence
            m.ensure_network(base.NetworkConfig(name="app", subnet=harness.subnet(0)))
        assert master() is None
        rt = opening.open_runtime("native", place)
        rt.close()
        assert master() == bridge
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/passwd", timeout=5) as resp:
            assert b"root:x:0:0" in resp.read()
    # nothing unplugged: no full network recovery at the next start
    assert not recovery._network_leftovers(cfg, {web})
    # its veth set down (by hand, or by a network manager that took it): as cut off as unplugged
    subprocess.run(["ip", "link", "set", veth, "down"], check=True)
    assert recovery._network_leftovers(cfg, {web})
    rt = opening.open_runtime("native", place)
    rt.close()
    assert Path(f"/sys/class/net/{veth}/operstate").read_text().strip() == "up"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/passwd", timeout=5) as resp:
        assert b"root:x:0:0" in resp.read()
    assert not recovery._network_leftovers(cfg, {web})

    # what a reboot leaves of a stopped container: no namespace, no veth. Its start makes them,
    # so its missing veth is no leftover (else every engine start would run the full recovery)
    engine.stop_container(web, timeout=0)
    netlink.remove_netns(m.netns_path(web))
    deadline = time.monotonic() + 10
    while Path(f"/sys/class/net/{veth}").exists():     # the kernel ends a namespace in the background
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not recovery._network_leftovers(cfg, {web})
    # nor is a plain file an unmount left where a stopped container's namespace was bound (only a
    # running one's is bound again from its process): counted, it would run the full recovery at
    # every start while plugging in nothing
    m.netns_path(web).touch()
    assert not recovery._network_leftovers(cfg, {web})
    assert recovery._network_leftovers(cfg, {web}, running={web})
    m.netns_path(web).unlink()
    engine.start_container(web)
    assert master() == bridge


def test_opening_the_engine_renders_again_a_table_a_firewall_reload_flushed(
        harness: Harness, engine: NativeRuntime) -> None:
    """No agent heals: a firewall reload (`nft flush ruleset`, here our table deleted alone) takes
    the published ports while the records say forwarded. The next writer's start-up recovery
    (what `reconcile --once` opens) finds the table gone and renders it again: the port serves."""
    web, port = _serving_web(harness, engine)
    cfg = harness.config
    assert not recovery._network_leftovers(cfg, {web})
    subprocess.run(["nft", "delete", "table", "ip", cfg.name_prefix], check=True)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/passwd", timeout=2)
    assert recovery._network_leftovers(cfg, {web})
    place = opening.Place(root=cfg.root, run_dir=cfg.run_dir, name_prefix=cfg.name_prefix)
    opening.open_runtime("native", place).close()
    listed = subprocess.run(["nft", "list", "table", "ip", cfg.name_prefix], capture_output=True, text=True, check=True)
    assert f"dport {port} dnat to" in listed.stdout
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/passwd", timeout=5) as resp:
        assert b"root:x:0:0" in resp.read()
    assert not recovery._network_leftovers(cfg, {web})


# `python -c KILLED_AT STEP ROOT RUN_DIR PREFIX POOL`: a network manager on that engine removes
# network `app`, its process killed (SIGKILL) right when it comes to STEP
KILLED_AT = """
import os, signal, sys
from pathlib import Path
from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.network import firewall, ipam, netlink, network

step, root, run_dir, prefix, pool = sys.argv[1:]
where = {"delete_link": netlink.Host, "remove_accepts": firewall.Firewall, "apply": firewall.Firewall,
         "remove_network": ipam.IPAM}[step]

def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

setattr(where, step, killed)
config = NativeConfig(root=Path(root), run_dir=Path(run_dir), name_prefix=prefix, subnet_pool=pool)
network.NetworkManager(config).remove_network("app")
"""


@pytest.mark.parametrize("step", ["delete_link", "remove_accepts", "apply", "remove_network"])
def test_a_network_removal_killed_at_any_step_leaves_nothing_the_next_engine_start_does_not_put_right(
        harness: Harness, engine: NativeRuntime, step: str) -> None:
    """The removal, killed right before each of its steps (the bridge's deletion, its accepts',
    the ruleset without it, the record's), leaves either the network whole again after the next
    engine start (recorded, its bridge made again: the removal can be asked again) or nothing:
    never a bridge, address or rules no record names. Before, the record went first: killed
    after it, the bridge, its address and rules stayed for good, every start said nothing to
    recover, and the subnet was refused to a new network as "on host interface X, which this
    engine did not make"."""
    subnet = harness.subnet(0)
    engine.ensure_network(base.NetworkConfig(name="app", subnet=subnet))
    bridge = harness.manager.bridge_name("app")
    cfg = harness.config
    proc = subprocess.run([sys.executable, "-c", KILLED_AT, step, str(cfg.root), str(cfg.run_dir),
                           cfg.name_prefix, cfg.subnet_pool], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    place = opening.Place(root=cfg.root, run_dir=cfg.run_dir, name_prefix=cfg.name_prefix)
    opening.open_runtime("native", place).close()               # the next engine start: its recovery
    recorded = [n.name for n in harness.manager.list_networks()]
    assert Path(f"/sys/class/net/{bridge}").exists() == (recorded == ["app"]), recorded
    assert not recovery._network_leftovers(cfg, set())
    if recorded:
        harness.manager.remove_network("app")                   # asked again, it is done
    assert not Path(f"/sys/class/net/{bridge}").exists()
    assert bridge not in harness.manager._fw.accept_bridges()
    engine.ensure_network(base.NetworkConfig(name="again", subnet=subnet))     # the subnet is free
    listed = subprocess.run(["nft", "list", "table", "ip", cfg.name_prefix], capture_output=True, text=True, check=True)
    assert bridge not in listed.stdout
