"""cgroups of native containers on v1, v2 and the v1/v2 hybrid layout.

runc creates and fills the leaf cgroups from `linux.cgroupsPath` and `linux.resources`; this
module names the path (an absolute `/<prefix>/<id>`, so every hierarchy has the same parent we
can find and remove) and cleans up what runc leaves: `runc delete` removes the leaves but not
the parent, in each v1 hierarchy and in `/sys/fs/cgroup/unified` (host-recipes §1, §6).

The parent is shared by every container of the engine, so removing it races with a runc create
that has made `/<prefix>` but not yet `/<prefix>/<id>` (runc then fails on the missing parent,
e.g. "openat2 /sys/fs/cgroup/cpuset/<prefix>/cpuset.cpus: no such file or directory"). A create
holds `creating()` (a shared flock per prefix, across threads and processes); `remove()` takes
the parent only when it gets that lock exclusively at once, and else leaves it to the creator.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["CGROUP_ROOT", "blkio_weight", "cgroups_path", "cpusets", "creating", "frozen", "hierarchies", "leaf_dirs",
           "leave_monitors", "move_monitor", "oom_kill_count", "remove", "remove_leaves"]

MONITOR = "conmon"

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroups_path(prefix: str, cid: str) -> str:
    """The `linux.cgroupsPath` of a container: one parent per engine instance (name prefix)."""
    return f"/{prefix}/{cid}"


def hierarchies(root: Path = CGROUP_ROOT) -> list[Path]:
    """Every mounted cgroup hierarchy: the v1 controllers, `unified`, or the v2 root alone."""
    if (root / "cgroup.controllers").exists():
        return [root]                               # pure v2
    found: list[Path] = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return []
    for e in entries:
        if e.is_dir(follow_symlinks=False) and os.path.ismount(e.path):
            found.append(Path(e.path))
    return found


def leaf_dirs(prefix: str, cid: str) -> list[Path]:
    """The container's cgroup directory in every hierarchy where it exists."""
    rel = cgroups_path(prefix, cid).lstrip("/")
    return [h / rel for h in hierarchies() if (h / rel).is_dir()]


def frozen(prefix: str, cid: str) -> bool:
    """Whether the container's cgroup is frozen (`runc pause`): v1's freezer.state, v2's
    cgroup.freeze."""
    for d in leaf_dirs(prefix, cid):
        for name, value in (("freezer.state", "FROZEN"), ("cgroup.freeze", "1")):
            try:
                if (d / name).read_text().strip() == value:
                    return True
            except OSError:
                continue
    return False


def _rmdir(path: Path) -> None:
    try:
        os.rmdir(path)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EBUSY):
            raise


def _parent_lock(locks: Path, prefix: str) -> int:
    locks.mkdir(parents=True, exist_ok=True)
    return os.open(locks / f"cgroup-{prefix}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


@contextlib.contextmanager
def creating(locks: Path, prefix: str) -> Iterator[None]:
    """Held while a runtime makes a container's groups under `/<prefix>` (and its monitor is
    moved into `/<prefix>/conmon`): `remove()` leaves the parent meanwhile."""
    fd = _parent_lock(locks, prefix)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def remove(prefix: str, cid: str | None, locks: Path) -> None:
    """rmdir the container's leaf (if runc left it), then the monitors' group and the parent
    once they are empty (busy ones stay for the containers still there) and no create is under
    way (`creating`: that one needs the parent, and the last removal after it takes it)."""
    hiers = hierarchies()
    if cid is not None:
        for h in hiers:
            _rmdir(h / prefix / cid)
    fd = _parent_lock(locks, prefix)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        for h in hiers:
            _rmdir(h / prefix / MONITOR)
            _rmdir(h / prefix)
    finally:
        os.close(fd)


def remove_leaves(prefix: str, cid: str) -> bool:
    """rmdir the container's leaf in every hierarchy; False if one stays (it still has
    processes or child groups: `runc delete` kills and removes those)."""
    for h in hierarchies():
        try:
            os.rmdir(h / prefix / cid)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno in (errno.EBUSY, errno.ENOTEMPTY):
                return False
            raise
    return True


def _mkdir_cpuset_ready(path: Path) -> None:
    """mkdir, and on a v1 cpuset hierarchy copy cpus/mems from the parent (empty ones refuse tasks)."""
    if path.is_dir():
        return
    _mkdir_cpuset_ready(path.parent)
    path.mkdir(exist_ok=True)
    for f in ("cpuset.cpus", "cpuset.mems"):
        src = path.parent / f
        if src.exists() and not (path / f).read_text().strip():
            (path / f).write_text(src.read_text().strip() or "\n")


def move_monitor(prefix: str, pid: int) -> None:
    """Move a conmon process into `/<prefix>/conmon` in every hierarchy: out of the engine's own
    cgroup, so stopping the engine (e.g. its systemd service) does not kill the monitors."""
    for h in hierarchies():
        target = h / prefix / MONITOR
        try:
            _mkdir_cpuset_ready(target)
            (target / "cgroup.procs").write_text(str(pid))
        except OSError:
            continue            # that hierarchy keeps it where it was; nothing depends on it


def leave_monitors(prefix: str) -> None:
    """Move this process out of `/<prefix>/conmon` (to the hierarchy's root) where it is in it:
    conmon's exit command is conmon's child, in conmon's group, and a group a process is in
    cannot be removed, nor then the parent (`remove`: an autoremove left both behind)."""
    me = str(os.getpid())
    for h in hierarchies():
        try:
            if me in (h / prefix / MONITOR / "cgroup.procs").read_text().split():
                (h / "cgroup.procs").write_text(me)
        except OSError:
            continue


def oom_kill_count(prefix: str, cid: str) -> int:
    """How many processes the OOM killer took in the container's memory cgroup (v1 or v2)."""
    rel = cgroups_path(prefix, cid).lstrip("/")
    for f, key in ((CGROUP_ROOT / "memory" / rel / "memory.oom_control", "oom_kill"),
                   (CGROUP_ROOT / rel / "memory.events", "oom_kill"),
                   (CGROUP_ROOT / "unified" / rel / "memory.events", "oom_kill")):
        try:
            for line in f.read_text().splitlines():
                k, _, v = line.partition(" ")
                if k == key and v.strip().isdigit():
                    return int(v)
        except OSError:
            continue
    return 0


def cpusets(root: Path = CGROUP_ROOT) -> tuple[str, str]:
    """The CPUs and memory nodes containers may be given (`cpuset.cpus`, `cpuset.mems` of the
    cpuset hierarchy's root on v1; the effective ones on v2), as the kernel writes lists
    ("0-3,6"); the online CPUs and node 0 when neither can be read."""
    for cpus, mems in ((root / "cpuset" / "cpuset.cpus", root / "cpuset" / "cpuset.mems"),
                       (root / "cpuset.cpus.effective", root / "cpuset.mems.effective")):
        try:
            return cpus.read_text().strip(), mems.read_text().strip()
        except OSError:
            continue
    try:
        online = Path("/sys/devices/system/cpu/online").read_text().strip()
    except OSError:
        online = f"0-{(os.cpu_count() or 1) - 1}"
    return online, "0"


def blkio_weight(root: Path = CGROUP_ROOT) -> bool:
    """Whether the kernel weighs containers' block I/O (a weight file of CFQ's or BFQ's: v1
    `blkio.weight` / `blkio.bfq.weight`; v2's `io` controller), as dockerd's sysinfo asks: on
    a kernel without one, docker discards a blkio weight with a warning."""
    if (root / "cgroup.controllers").exists():
        try:
            return "io" in (root / "cgroup.controllers").read_text().split()
        except OSError:
            return False
    return any((root / "blkio" / f).exists() for f in ("blkio.weight", "blkio.bfq.weight"))
