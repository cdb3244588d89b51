"""Start-up recovery of the native engine: collect what a crash (kill -9, power loss) left.

A process killed in the middle of `create` or `remove` can leave, for a container id:
  - a bundle dir (containers/<id>/) with its overlay rootfs mounted but no record (killed
    before the INSERT), or a record that never got its process (killed between the INSERT
    and saving conmon's pid);
  - a conmon monitor, a `runc init` process and runc state for an id no record names;
  - cgroup leaves, conmon persist dirs, exit files and lock files of such ids;
  - the network side: veths, namespaces, addresses, rules (NetworkManager.recover).

`recover(runtime)` removes all of that and keeps every container that has a record (running
or not; a stopped container is not garbage). It runs once when a writer opens the engine
(`runtime.opening.open_runtime`), under the state root's store lock, so no other pass is
creating containers at the same time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler._dataclass import dataclass
from reconciler.runtime import errors as rterrors
from reconciler.runtime.native.containers import cgroups, mounts

if TYPE_CHECKING:
    from reconciler.runtime.native.config import NativeConfig

__all__ = ["RecoveryReport", "recover"]


@dataclass(frozen=True)
class RecoveryReport:
    """What recovery removed (container ids), besides the network's own report."""

    half_made: tuple[str, ...] = ()       # records that never got a process, removed
    orphans: tuple[str, ...] = ()         # ids with host state but no record, cleaned
    processes: tuple[int, ...] = ()       # orphan conmon / runc processes killed
    network: Any = None                   # network.RecoveryReport when bridge networking is on
    volumes_restored: tuple[str, ...] = ()  # volumes whose removal did not commit: their data put back
    volumes_swept: tuple[str, ...] = ()     # removed volumes whose data a killed removal left: deleted


def _names_dir(arg: bytes, marker: bytes) -> bool:
    """Whether the argument is `marker` or a path inside it (as itself or after `k8s-file:`):
    a path component match, never a substring (run dir `.../run` must not claim `.../run5`)."""
    _, _, value = arg.rpartition(b":") if arg.startswith(b"k8s-file:") else (b"", b"", arg)
    return value == marker or value.startswith(marker + b"/")


def _cmdline(pid: str) -> list[bytes] | None:
    """The argv of process `pid`, or None (os calls: every process on the host is asked)."""
    try:
        fd = os.open(f"/proc/{pid}/cmdline", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(chunks).split(b"\0")


def _monitor_group_pids(prefix: str) -> set[int] | None:
    """The pids in the engine's monitors' cgroup (`/<prefix>/conmon`, where each conmon is
    moved) over every hierarchy; None when no hierarchy has that group (nothing was moved)."""
    found: set[int] | None = None
    for h in cgroups.hierarchies():
        try:
            text = (h / prefix / cgroups.MONITOR / "cgroup.procs").read_text()
        except OSError:
            continue
        found = (found or set()) | {int(x) for x in text.split()}
    return found


def _conmon_processes(run_dir: Path, prefix: str, recorded: set[int] | None = None) -> dict[int, str]:
    """pid -> container id of every conmon whose command line names this engine's run dir.

    With `recorded` (the monitor pids the records name), only the processes of the monitors'
    cgroup that no record names are looked at, not every process on the host: a start with
    nothing to recover reads one file per hierarchy."""
    group = _monitor_group_pids(prefix) if recorded is not None else None
    candidates = [str(p) for p in group - (recorded or set())] if group is not None else \
        [e for e in os.listdir("/proc") if e.isdigit()]
    found: dict[int, str] = {}
    marker = str(run_dir).rstrip("/").encode()
    for entry in candidates:
        argv = _cmdline(entry)
        if argv is None:
            continue
        if not argv or not argv[0].endswith(b"conmon") or not any(_names_dir(a, marker) for a in argv):
            continue
        for flag in (b"--cid", b"-c"):
            if flag in argv[:-1]:
                found[int(entry)] = argv[argv.index(flag) + 1].decode(errors="replace")
                break
    return found


def _cgroup_pids(prefix: str, cid: str) -> set[int]:
    pids: set[int] = set()
    for leaf in cgroups.leaf_dirs(prefix, cid):
        for path in leaf.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids |= {int(x) for x in path.read_text().split()}
    return pids


def _kill_and_wait(pids: Iterable[int], timeout: float = 10.0) -> list[int]:
    killed = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + timeout
    for pid in killed:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.01)
    return killed


def _unknown_id_dirs(d: Path, known: set[str]) -> set[str]:
    """The subdirectories of `d` named like a container id that no record names (none if `d`
    is missing): the names listed, only those of no record looked at (at 500 containers a
    listing of each dir, not a DirEntry per name)."""
    try:
        names = os.listdir(d)
    except (FileNotFoundError, NotADirectoryError):
        return set()
    return {n for n in names if len(n) == 64 and n not in known and os.path.isdir(os.path.join(d, n))}


def _orphan_ids(manager: Any, known: set[str]) -> set[str]:
    """Ids with a bundle dir, runc state, conmon persist dir or cgroup leaf but no record."""
    config = manager.config
    ids: set[str] = set()
    for d in (config.root / "containers", config.run_dir / "conmon", config.run_dir / manager.runtime_name):
        ids |= _unknown_id_dirs(d, known)
    for h in cgroups.hierarchies():
        ids |= _unknown_id_dirs(h / config.name_prefix, known)
    return ids


def _clean_orphan(manager: Any, cid: str) -> None:
    config = manager.config
    p = manager.paths(cid)
    with contextlib.suppress(rterrors.RuntimeBackendError):
        manager.oci().delete(cid, force=True)
    _kill_and_wait(_cgroup_pids(config.name_prefix, cid))
    for _ in range(8):                      # stacked mounts (a retried create) come off one by one
        if not mounts.is_mounted(p.rootfs):
            break
        mounts.unmount(p.rootfs)
    shutil.rmtree(p.dir, ignore_errors=True)
    shutil.rmtree(p.conmon.persist_dir, ignore_errors=True)
    shutil.rmtree(config.run_dir / manager.runtime_name / cid, ignore_errors=True)
    for f in (p.conmon.exit_file(cid), config.locks_dir / f"{cid}.lock"):
        with contextlib.suppress(FileNotFoundError):
            f.unlink()
    cgroups.remove(config.name_prefix, cid, config.locks_dir)


def _network_leftovers(config: NativeConfig, known: set[str], running: Collection[str] = ()) -> bool:
    """Whether the network side holds anything of a container without a record (an address
    allocation, a namespace or a hosts-file dir), or peers' hosts files a killed batch left
    without a new container's name (network/stale.py), or a recorded network lacks its bridge (a
    reboot took it, with the nft table: a network no container uses would otherwise stay
    recorded, reported and planned as there, with nothing on the host), or a recorded endpoint
    of a container with a namespace has a veth that is no port of its bridge (the bridge deleted
    and made again, or the veth deleted: the container is cut off while `ps` says it runs; one
    without a namespace, after a reboot, gets its veth at its start), or a bridge of the
    engine's names' forms has no record (`_unrecorded_bridge`), or networks are recorded
    and our nft table is gone (a firewall reload flushed it) or lacks a forwarded port's rule, or the embedded DNS server is not
    running while a container on a user-defined network has a namespace. The full network recovery
    makes the bridges again, plugs such veths in again and re-renders the firewall (~50 ms), so
    a clean start skips it. Read from the state DB, the run dir and /sys/class/net, as the
    network manager keeps them, without making the manager (its netlink and firewall modules:
    ~25 ms of a CLI's start, #21)."""
    from reconciler.runtime.native.network import ipam, resolver, stale

    store = ipam.IPAM(config.db())
    if not store.container_ids() <= known:
        return True
    namespaces = set(os.listdir(config.netns_dir)) if config.netns_dir.is_dir() else set()
    networks = store.networks()
    gone, loose = ipam.unplugged(networks, store.veths(namespaces))
    if loose and not gone:
        # only a namespace, or what an unmount left of a running one's (the recovery binds it again
        # from its process): a file left of a stopped one's would run the full recovery at every
        # start, plugging in nothing (one stat each, and only when a veth is loose)
        real = {c for c in namespaces if c in running or _is_netns(config.netns_dir / c)}
        gone, loose = ipam.unplugged(networks, store.veths(real))
    if gone or loose:
        return True
    if _unrecorded_bridge(config.name_prefix, {n.bridge for n in networks}):
        return True
    if networks and not _rules_present(config.name_prefix, store):
        return True
    if stale.dead_marks(config):        # killed while a new container's name waited for its peers
        return True
    if namespaces and resolver.pid(config.run_dir) is None:
        # only then: a no-op pass loads no hosts-file helper (#21)
        from reconciler.runtime.native.network import dns

        if any(dns.embedded([network]) for network, _ in store.veths(namespaces)):
            return True                 # the embedded DNS server died: the recovery starts it again
    if not namespaces <= known:
        return True
    return config.net_files_dir.is_dir() and any(e.name not in known for e in config.net_files_dir.iterdir())


def _unrecorded_bridge(prefix: str, recorded: Collection[str]) -> bool:
    """Whether a bridge of this engine's names' forms (`names.is_bridge`, in full: never a name
    that merely starts with the prefix, which another engine's may begin with) is on the host
    with no network record naming it: what a network removal of an older version killed after
    its record's deletion left (the bridge with its address, DOCKER-USER accepts and rules),
    which the full recovery deletes. A listdir of /sys/class/net, and a stat per name of those
    forms that no record names."""
    from reconciler.runtime.native.network import names

    try:
        links = os.listdir("/sys/class/net")
    except OSError:
        return False
    return any(link not in recorded and names.is_bridge(prefix, link) and os.path.isdir(f"/sys/class/net/{link}/bridge")
               for link in links)


def _rules_present(table: str, store: Any) -> bool:
    """Whether our nft table is in the kernel with as many port rules as ports are forwarded
    (`ipam.forwarded_ports`; those on [::1] have none: a proxy serves them): a firewall reload
    (`nft flush ruleset`, nftables' restart) takes the table, and every published port and the
    networks' NAT with it, and `nft flush chain` the ports' rules, while the records still say
    forwarded. A listing through libnftables (~1.7 ms with the library's load), counted: the
    firewall module, which renders the rules one by one, is loaded only for a change (the
    agent's heal compares them rule by rule); where the library cannot be loaded the answer is
    yes: the next change of the rules says why."""
    from reconciler.runtime.native.network import nftlib

    try:
        listed = nftlib.listed(table)
        if listed is None:
            return False
        ports = [p for p in store.forwarded_ports() if p.host_ip != "::1"]
        if any(":" in p.host_ip for p in ports):
            listed += nftlib.listed(table, "ip6") or ""
    except rterrors.Unavailable:
        return True
    return listed.count(" dnat to ") >= len(ports)


def _is_netns(path: Path) -> bool:
    """Whether `path` is a network namespace (its bind mount: the nsfs file), not a plain file."""
    try:
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False


def recover(runtime: Any) -> RecoveryReport:
    """Clean up after a crash; `runtime` is a NativeRuntime (its `containers` and `network`)."""
    from reconciler import logs

    manager = runtime.containers
    # a record that never got a process (killed between INSERT and saving conmon's pid); the
    # records as stored tell (no refresh: no exit file or process can belong to such a one)
    half_made = [r for r in manager.stored() if r.status == "created" and r.pid is None and r.conmon_pid is None]
    for r in half_made:
        with contextlib.suppress(rterrors.NotFound):
            manager.remove(r.id, force=True)
    stored = manager.stored()                      # read again only if a removal changed them
    known = {r.id for r in stored}
    recorded = {r.conmon_pid for r in stored if r.conmon_pid}
    # monitors of ids without a record first: they would otherwise restart nothing but hold mounts
    orphan_conmons = {pid: cid for pid, cid in _conmon_processes(
        manager.config.run_dir, manager.config.name_prefix, recorded).items() if cid not in known}
    killed = _kill_and_wait(orphan_conmons)
    orphans = sorted(_orphan_ids(manager, known) | set(orphan_conmons.values()))
    for cid in orphans:
        _clean_orphan(manager, cid)
    net_report = None
    net = runtime.network
    if net is not None and callable(getattr(net, "recover", None)) and (
            half_made or orphans or killed or _network_leftovers(
                manager.config, known, {r.id for r in stored if r.status == "running"})):
        net_report = net.recover(sorted(known))
    restored, swept = manager.volumes.sweep()      # what volume removals killed midway left
    if net is not None:
        # a running container whose ports are not forwarded (or a stopped one whose are), whoever left it so
        made, failed = manager.forward_as_running()
        if made or failed:
            logs.get_logger("reconciler.runtime.native.containers.recovery").warning(
                "published ports made to follow what runs", made=made, failed=failed)
    report = RecoveryReport(half_made=tuple(r.id for r in half_made), orphans=tuple(orphans),
                            processes=tuple(killed), network=net_report, volumes_restored=restored,
                            volumes_swept=swept)
    if restored or swept:
        logs.get_logger("reconciler.runtime.native.containers.recovery").warning(
            "crash recovery: volume removals finished", data_deleted=list(swept), removal_undone=list(restored))
    if half_made or orphans or killed:
        logs.get_logger("reconciler.runtime.native.containers.recovery").warning(
            "crash recovery done: removed what an interrupted run left", half_made=len(half_made),
            orphans=len(orphans), processes=len(killed))
    return report
