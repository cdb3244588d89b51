"""One native engine per test, driven through the CLI or directly (root; runc + conmon).

Each Host has its own state root and run dir under the test's tmp_path, its own name prefix and
its own 10.2NN subnet (`subnet`, the first /24 of the engine's private /23 pool). The `host`
fixture (tests/conftest.py) tears it down even when the test failed: containers, mounts,
cgroups, networks, volumes; then it fails the test if anything of the engine is left.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from reconciler.cli.main import main
from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.containers import cgroups
from reconciler.runtime.native.network import ipam
from reconciler.runtime.native.network.network import NetworkManager
from tests.helpers import subnets
from tests.runtime.conftest import cleanup, leftovers, new_prefix


def random_pool() -> str:
    """A private /23 for one test's engine (leased: no other test gets it); its first /24 is the
    test's subnet."""
    return str(next(subnets.lease_block().subnets(new_prefix=23)))


_REST_IS_THE_CONTAINERS = ("run", "exec", "top")     # their trailing words: argparse REMAINDER


class Host:
    def __init__(self, tmp: Path) -> None:
        pool = random_pool()
        self.subnet = pool.replace("/23", "/24")
        self.config = NativeConfig(root=tmp / "root", run_dir=tmp / "run", name_prefix=new_prefix(),
                                   subnet_pool=pool)

    def cli_args(self) -> list[str]:
        """The flags that point a `reconcile` command at this engine."""
        return ["--root", str(self.config.root), "--run-dir", str(self.config.run_dir),
                "--name-prefix", self.config.name_prefix, "--runtime", "native"]

    def cli(self, *args: str) -> int:
        """Run `reconcile <args>` in this process against this engine; its exit code. The engine's
        flags go after the command's words, or right after the command for one whose last words
        are the container's (`run IMG CMD...`: flags after them would be CMD's, and the command
        would run on the host's default root)."""
        if args and args[0] in _REST_IS_THE_CONTAINERS:
            return main([args[0], *self.cli_args(), *args[1:]])
        return main([*args, *self.cli_args()])

    def runtime(self) -> NativeRuntime:
        return NativeRuntime(self.config, network=NetworkManager(self.config))

    def ids(self) -> dict[str, str]:
        """Container name -> id of what the default owner's manifests made."""
        rt = self.runtime()
        try:
            return {c.name: c.id for c in rt.list_containers({"reconciler.owner": "default"})}
        finally:
            rt.close()

    def teardown(self) -> list[str]:
        """Remove everything the engine made; what is still on the host afterwards."""
        rt = self.runtime()
        try:
            cleanup(rt)
            for v in rt.list_volumes():
                rt.remove_volume(v.name)
            return leftovers(self.config)
        finally:
            rt.close()


def engine_processes(run_dir: Path) -> Iterator[tuple[int, list[bytes]]]:
    """(pid, argv) of every process whose command line names `run_dir` (conmon, runc, ...)."""
    marker = str(run_dir).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in b" ".join(argv):
            yield int(entry), argv


def conmon_pids(run_dir: Path) -> dict[str, int]:
    """Container id -> pid of each conmon of the engine on `run_dir`."""
    return {argv[argv.index(b"-c") + 1].decode(): pid
            for pid, argv in engine_processes(run_dir) if argv[0].endswith(b"conmon")}


def host_state(cfg: NativeConfig) -> dict[str, object]:
    """What the engine instance holds on the host, by kind (compared with the records)."""
    prefix = cfg.name_prefix
    mounts = [line.split(" ")[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if line.split(" ")[4].startswith((str(cfg.root), str(cfg.run_dir)))]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()]
    cg = set()
    for hier in cgroups.hierarchies():
        if (hier / prefix).is_dir():
            cg |= {d.name for d in (hier / prefix).iterdir() if d.is_dir() and d.name != cgroups.MONITOR}
    netns = cfg.run_dir / "netns"
    return {
        "rootfs": sorted(Path(mp).parent.name for mp in mounts if mp.endswith("/rootfs")),
        "other_mounts": sorted(mp for mp in mounts if not mp.endswith("/rootfs")
                               and Path(mp).parent != netns and Path(mp) != netns),
        "netns_mounts": sorted(Path(mp).name for mp in mounts if Path(mp).parent == netns),
        "netns": sorted(p.name for p in netns.iterdir()) if netns.is_dir() else [],
        "veths": sum(1 for n in names if n.startswith(prefix + "v")),
        "bridges": sorted(n for n in names if n.startswith(prefix) and not n.startswith(prefix + "v")),
        "conmon": sorted(conmon_pids(cfg.run_dir)),
        "runc": [pid for pid, argv in engine_processes(cfg.run_dir) if argv[0].endswith(b"runc")],
        "cgroups": sorted(cg),
        "dirs": sorted(p.name for p in (cfg.root / "containers").iterdir()),
    }


def assert_holds_exactly(cfg: NativeConfig, names: Iterable[str], *, network: str) -> None:
    """The engine holds exactly the containers `names`, all running on `network`, and nothing
    else of theirs is left: no extra records, rootfs mounts, namespaces, veths, address
    allocations, conmon monitors, runc processes, cgroups or bundle dirs."""
    rt = NativeRuntime(cfg, network=NetworkManager(cfg))
    try:
        recs = rt.containers.records()
        assert sorted(r.name for r in recs) == sorted(names)
        assert all(r.status == "running" for r in recs), [(r.name, r.status) for r in recs]
        ids = sorted(r.id for r in recs)
        assert isinstance(rt.network, NetworkManager)
        _, members = rt.network.inspect_network(network)
        allocations = sorted(m[0] for m in members)
        addresses = [m[2] for m in members]
        names_by_id = {r.id: r.name for r in recs}
    finally:
        rt.close()
    # every container's hosts file names every other one (a pass writes its peers' files in a
    # batch; a process killed while names waited leaves a mark that start-up recovery acts on)
    for cid in ids:
        hosts = (cfg.net_files_dir / cid / "hosts").read_text()
        named = {n for line in hosts.splitlines() for n in line.split()[1:]}
        missing = set(names_by_id.values()) - named
        assert not missing, f"{names_by_id[cid]}'s hosts file lacks {sorted(missing)}"
    assert not cfg.net_stale_dir.is_dir() or os.listdir(cfg.net_stale_dir) == []
    st = host_state(cfg)
    assert allocations == ids
    assert len(set(addresses)) == len(ids)
    assert st["rootfs"] == ids
    assert st["other_mounts"] == []
    assert st["netns"] == ids
    assert st["netns_mounts"] == ids
    assert st["veths"] == len(ids)
    assert st["bridges"] == [f"{cfg.name_prefix}-{network}"]
    assert st["conmon"] == ids
    assert st["runc"] == []
    assert st["cgroups"] == ids
    assert st["dirs"] == ids


def force_remove_all(config: NativeConfig) -> None:
    """Every container (SIGKILL) and network of an engine's root, through an engine with a
    network manager (bridges, nft tables and DOCKER-USER accepts go too)."""
    rt = NativeRuntime(config, network=NetworkManager(config))
    try:
        for c in rt.list_containers():
            rt.remove_container(c.id, force=True)
        for net in rt.list_networks():
            rt.remove_network(net.name)
    finally:
        rt.close()


@contextlib.contextmanager
def native_host(tmp: Path) -> Iterator[Host]:
    """A Host on `tmp`, torn down on exit; fails if the engine left anything behind."""
    h = Host(tmp)
    try:
        yield h
    finally:
        left = h.teardown()
        assert left == [], f"left on the host: {left}"


def reboot(config: NativeConfig) -> None:
    """What a reboot does to the engine on `config`, and only to it: every process of its run dir
    and of its containers killed, its mounts, bridges and nft table gone, its run dir emptied
    (a tmpfs on a real host), the boot id moved on; its state root kept."""
    pids = {pid for pid, _ in engine_processes(config.run_dir)}
    for procs in Path("/sys/fs/cgroup").glob(f"*/{config.name_prefix}/**/cgroup.procs"):
        pids |= {int(x) for x in procs.read_text().split()}    # the containers' own processes
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.2)
    mounted = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
               if line.split()[4].startswith((str(config.root), str(config.run_dir)))]
    for mp in sorted(mounted, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], check=False)
    bridges = [n.bridge for n in ipam.IPAM(config.db()).networks()]
    for br in bridges:
        subprocess.run(["ip", "link", "del", br], capture_output=True, check=False)
    for family in ("ip", "ip6"):
        subprocess.run(["nft", "delete", "table", family, config.name_prefix], capture_output=True, check=False)
    shutil.rmtree(config.run_dir)                     # a tmpfs on a real host
    from reconciler.runtime.native.config import PREFIX_CLAIMS

    (PREFIX_CLAIMS / config.name_prefix).unlink(missing_ok=True)    # /run's host-wide claims go too
    # and the boot id changes: what the records name ran in the boot before
    rt = NativeRuntime(config, network=NetworkManager(config))
    try:
        for rec in rt.containers.records():
            rt.containers.update(rec.id, lambda r: dataclasses.replace(r, boot_id="the-boot-before"))
    finally:
        rt.close()
