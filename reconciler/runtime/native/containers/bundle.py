"""The OCI runtime bundle: `config.json` from an image config plus a `ContainerConfig`.

Pure functions over values, except for the two reads of the image's `/etc/passwd` and
`/etc/group` (through in-root path resolution, size-capped) and the creation of the working
directory. Docker's defaults (moby daemon/pkg/oci/defaults.go, caps/defaults.go) are copied as
data: mounts, masked and read-only paths, capabilities and device rules; the seccomp filter is
Docker's default profile translated for the container's capabilities (`seccomp.py`).

    build_spec(BundleInputs) -> dict       the config.json document
    resolve_user(rootfs, "app:app")        -> User(uid, gid, additional_gids, home)
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reconciler._dataclass import dataclass, field
from reconciler.runtime import base
from reconciler.runtime import errors as rterrors
from reconciler.runtime.native import openat2
from reconciler.runtime.native.containers import seccomp, summaries
from reconciler.runtime.native.containers.signals import parse_signal

__all__ = [
    "DEFAULT_CAPS",
    "BundleInputs",
    "User",
    "build_spec",
    "capabilities",
    "ensure_dir_in_root",
    "live_resources",
    "merge_env",
    "open_in_root",
    "parse_signal",
    "resolve_user",
    "with_resources",
]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# moby daemon/pkg/oci/caps/defaults.go
DEFAULT_CAPS: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

ALL_CAPS: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

MASKED_PATHS = summaries.MASKED_PATHS
READONLY_PATHS = summaries.READONLY_PATHS

# Device cgroup rules: deny everything, then Docker's allow list (and its explicit fuse deny).
DEVICE_RULES: tuple[dict[str, Any], ...] = (
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},    # zero
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},    # null
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},    # urandom
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},    # random
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},    # full
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},    # tty
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},    # console
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},    # ptmx
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},              # pts/*
    {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},  # fuse
)

MAX_ID = 2**31 - 1          # uids/gids above int32 are refused (CVE-2024-40635 class)
PASSWD_LIMIT = 4 << 20      # read at most 4 MiB of /etc/passwd or /etc/group


@dataclass(frozen=True)
class User:
    """The resolved identity of the container's process."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()
    home: str = "/"


@dataclass(frozen=True)
class BundleInputs:
    """Everything `build_spec` needs; paths are host paths."""

    config: base.ContainerConfig
    image_config: Mapping[str, Any]     # the image config's "config" object
    rootfs: Path                        # the mounted overlay
    hostname: str
    user: User
    argv: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    cgroups_path: str
    etc_files: Mapping[str, Path]       # "/etc/hosts" etc. -> host file to bind read-only
    netns_path: str | None = None       # join this netns; None = a new one (unless host)
    host_network: bool = False
    volume_mounts: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)
    terminal: bool = False
    annotations: Mapping[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------- path safety

def open_in_root(root: Path, path: str, flags: int = os.O_RDONLY) -> int:
    """Open `path` inside `root` with openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS)."""
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return openat2.open_in_root(root_fd, path.lstrip("/"), flags)
    finally:
        os.close(root_fd)


def _read_in_root(root: Path, path: str, limit: int = PASSWD_LIMIT) -> str | None:
    try:
        fd = open_in_root(root, path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise rterrors.InvalidArgument(f"cannot read {path} in the image: {exc.strerror}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise rterrors.InvalidArgument(f"{path} in the image is not a regular file")
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise rterrors.InvalidArgument(f"{path} in the image is larger than {limit} bytes")
    return data.decode("utf-8", "replace")


def ensure_dir_in_root(root: Path, path: str) -> None:
    """Create directory `path` inside `root` (and parents), as Docker does for WorkingDir and mounts."""
    target = openat2.secure_join(root, path)
    if not target.is_relative_to(root):  # pragma: no cover - secure_join guarantees it
        raise rterrors.InvalidArgument(f"{path} resolves outside the container")
    missing = [target, *(p for p in target.parents if p.is_relative_to(root) and p != root)]
    for d in reversed(missing):
        if not d.exists():
            d.mkdir()
            os.chmod(d, 0o755)  # noqa: S103 - inside the container, as Docker makes it; not the umask's 0700


# ---------------------------------------------------------------------------- users

def _parse_id(value: str, what: str) -> int:
    n = int(value)
    if not 0 <= n <= MAX_ID:
        raise rterrors.InvalidArgument(f"{what} {value} is out of range (0..{MAX_ID})")
    return n


def resolve_user(rootfs: Path, spec: str | None, *, group_add: Sequence[str] = ()) -> User:
    """Docker's `User` forms: user, uid, user:group, uid:gid, uid:group, user:gid.

    Names are looked up in the image's /etc/passwd and /etc/group. With only a user, its
    primary group and the groups that list it are used; with a group, supplementary groups
    from the image are not added. `group_add` (names or gids) are supplementary groups on top,
    as `docker run --group-add` adds them. The supplementary groups begin with the primary
    group, as dockerd's (containerd's) additionalGids do: `docker run -u app IMG id` says
    `groups=1000(app)` there, and a process that drops its gid keeps that group.
    """
    spec = (spec or "").strip() or "0"
    user_part, _, group_part = spec.partition(":")
    passwd = [line.split(":") for line in (_read_in_root(rootfs, "/etc/passwd") or "").splitlines()]
    passwd = [p for p in passwd if len(p) >= 7]
    uid: int | None = None
    gid: int | None = None
    name: str | None = None
    home = "/"
    if user_part.isdigit():
        uid = _parse_id(user_part, "uid")
        for p in passwd:
            if p[2].isdigit() and int(p[2]) == uid:
                name, gid, home = p[0], int(p[3]) if p[3].isdigit() else 0, p[5] or "/"
                break
    else:
        for p in passwd:
            if p[0] == user_part:
                name = p[0]
                uid = _parse_id(p[2], "uid")
                gid = _parse_id(p[3], "gid")
                home = p[5] or "/"
                break
        if uid is None:
            raise rterrors.InvalidArgument(
                f"unable to find user {user_part}: no matching entries in the image's /etc/passwd",
                hint="use a numeric uid, or a user the image defines",
            )
    groups_txt = _read_in_root(rootfs, "/etc/group") or ""
    groups = [line.split(":") for line in groups_txt.splitlines()]
    groups = [g for g in groups if len(g) >= 4]
    additional: list[int] = []
    if group_part:
        gid = _group_id(groups, group_part, "use a numeric gid, or a group the image defines")
        additional.append(gid)
    else:
        if gid is None:
            gid = 0
        additional.append(gid)
        if name is not None:
            for g in groups:
                members = [m for m in g[3].split(",") if m]
                if name in members and g[2].isdigit():
                    n = _parse_id(g[2], "gid")
                    if n not in additional:
                        additional.append(n)
    for group in group_add:
        n = _group_id(groups, group, "use a numeric gid in groupAdd, or a group the image defines")
        if n not in additional:
            additional.append(n)
    return User(uid=uid, gid=gid, additional_gids=tuple(additional), home=home)


def _group_id(groups: list[list[str]], group: str, hint: str) -> int:
    """A group's id: a number as it is, a name looked up in the image's /etc/group rows."""
    if group.isdigit():
        return _parse_id(group, "gid")
    found = [g for g in groups if g[0] == group]
    if not found:
        raise rterrors.InvalidArgument(
            f"unable to find group {group}: no matching entries in the image's /etc/group", hint=hint)
    return _parse_id(found[0][2], "gid")


# ---------------------------------------------------------------------------- process

def merge_env(
    image_env: Sequence[str] | None, env: Mapping[str, str], *, hostname: str, home: str,
) -> tuple[str, ...]:
    """The process's environment, as dockerd makes it: PATH and HOSTNAME, each replaced by the
    container's Config.Env (`summaries.config_env`: its variables over its image's) where it names
    them, then the rest of it; HOME when none names it."""
    out = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname}
    for item in summaries.config_env(image_env, env):
        k, _, v = item.partition("=")
        out[k] = v
    out.setdefault("HOME", home)
    return tuple(f"{k}={v}" for k, v in out.items())


def capabilities(cap_add: Sequence[str], cap_drop: Sequence[str]) -> list[str]:
    """Docker's defaults plus `cap_add` minus `cap_drop`; "ALL" works on either side."""
    def norm(c: str) -> str:
        c = c.strip().upper()
        if c == "ALL":
            return c
        c = c if c.startswith("CAP_") else "CAP_" + c
        if c not in ALL_CAPS:
            raise rterrors.InvalidArgument(f"unknown capability {c}")
        return c

    add = [norm(c) for c in cap_add]
    drop = [norm(c) for c in cap_drop]
    caps = [] if "ALL" in drop else list(DEFAULT_CAPS)
    if "ALL" in add:        # every capability this process can hand on (its bounding set)
        bounding = _bounding_set()
        caps = [c for bit, c in enumerate(ALL_CAPS) if bounding >> bit & 1]
    caps += [c for c in add if c != "ALL" and c not in caps]
    return [c for c in caps if c not in drop]


def _bounding_set() -> int:
    """This process's capability bounding set (a kernel without a capability, or an agent
    started without it, cannot give it to a container)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return (1 << len(ALL_CAPS)) - 1


# ---------------------------------------------------------------------------- spec

def _default_mounts(*, host_network: bool, shm_size: int | None = None, privileged: bool = False) -> list[dict[str, Any]]:
    sysfs: dict[str, Any] = {
        "destination": "/sys", "type": "sysfs", "source": "sysfs",
        "options": ["nosuid", "noexec", "nodev", "ro"],
    }
    if host_network:
        # sysfs cannot be mounted without an own network namespace: bind the host's read-only
        sysfs = {"destination": "/sys", "type": "bind", "source": "/sys",
                 "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
    if privileged:      # Docker: /sys and the cgroup tree writable
        sysfs["options"] = [o for o in sysfs["options"] if o != "ro"]
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        sysfs,
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": [*([] if privileged else ["ro"]), "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size or summaries.DEFAULT_SHM_SIZE}"]},
    ]


# what Docker leaves out of a privileged container's /dev (moby pkg/devices HostDevices)
_HOST_DEV_SKIP = ("pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev")


def _device_node(host: str, container: str) -> dict[str, Any]:
    """The runtime spec's `linux.devices` entry for host device node `host`, at `container`."""
    try:
        st = os.stat(host)
    except OSError as exc:
        raise rterrors.InvalidArgument(f"device {host}: {exc.strerror} on this host",
                                       hint="name a device node the host has (ls -l /dev)") from None
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise rterrors.InvalidArgument(f"device {host} is not a character or block device node",
                                       hint="name a device node (a file under /dev), or mount it with volumes:")
    return {"path": container, "type": "c" if stat.S_ISCHR(st.st_mode) else "b", "major": os.major(st.st_rdev),
            "minor": os.minor(st.st_rdev), "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """Every device node of the host's /dev (a privileged container's), as Docker lists them."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not (dirpath == root and d in _HOST_DEV_SKIP))
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if path == "/dev/console":
                continue
            try:
                out.append(_device_node(path, path))
            except rterrors.InvalidArgument:
                continue            # a symlink, socket or file: not a device node
    return out


def _devices(cfg: base.ContainerConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`linux.devices` (nodes made in the container's /dev) and the extra cgroup rules for them."""
    nodes = host_devices() if cfg.privileged else []
    rules: list[dict[str, Any]] = [{"allow": True, "access": "rwm"}] if cfg.privileged else []
    for entry in cfg.devices:
        host, container, perms = entry.split(":")
        node = _device_node(host, container)
        nodes = [n for n in nodes if n["path"] != container] + [node]
        rules.append({"allow": True, "type": node["type"], "major": node["major"], "minor": node["minor"],
                      "access": perms})
    return nodes, rules


def _resources(r: base.Resources) -> dict[str, Any]:
    res: dict[str, Any] = {"devices": [dict(d) for d in DEVICE_RULES]}
    # the limits are checked before (`runtime/limits.py`: the engine's create and update)
    if r.memory is not None:
        # swap = limit: no swap beyond the memory limit (v1 memsw; v2 swap.max 0)
        res["memory"] = {"limit": r.memory, "swap": r.memory if r.memory_swap is None else r.memory_swap}
    if r.cpus is not None:
        period = 100_000
        res["cpu"] = {"quota": int(r.cpus * period), "period": period}
    else:           # docker's --cpu-period / --cpu-quota: the two numbers as given (limits.py checks them)
        cfs = {k: v for k, v in (("period", r.cpu_period), ("quota", r.cpu_quota)) if v is not None}
        if cfs:
            res["cpu"] = cfs
    if r.cpu_shares is not None:
        res.setdefault("cpu", {})["shares"] = r.cpu_shares
    if r.cpuset is not None:
        res.setdefault("cpu", {})["cpus"] = r.cpuset
    if r.cpuset_mems is not None:
        res.setdefault("cpu", {})["mems"] = r.cpuset_mems
    if r.blkio_weight is not None:
        res["blockIO"] = {"weight": r.blkio_weight}
    if r.memory_reservation is not None:
        res.setdefault("memory", {})["reservation"] = r.memory_reservation
    if r.pids is not None:
        res["pids"] = {"limit": r.pids}
    return res


def live_resources(r: base.Resources) -> dict[str, Any]:
    """The OCI `linux.resources` of `r` that a running container's cgroups take (`runc update`):
    memory, CPU, pids and block I/O, without the device rules that only `create` sets; no pids
    limit is -1 (`max`), which takes away one the container had (left out, runc keeps it)."""
    res = _resources(r)
    del res["devices"]
    res.setdefault("pids", {"limit": -1})
    return res


def with_resources(spec: dict[str, Any], r: base.Resources) -> dict[str, Any]:
    """`spec` (a bundle's config.json) with the limits of `r`, its device rules kept: what a
    stopped container starts with after `docker update`."""
    linux = spec.setdefault("linux", {})
    devices = (linux.get("resources") or {}).get("devices")
    res = _resources(r)
    if devices is not None:
        res["devices"] = devices
    linux["resources"] = res
    return spec


def _depth(m: Mapping[str, Any]) -> int:
    return len([p for p in str(m["destination"]).split("/") if p])


def build_spec(inp: BundleInputs) -> dict[str, Any]:
    """The OCI runtime config (runtime-spec 1.0) for this container."""
    cfg = inp.config
    caps = capabilities(("ALL",) if cfg.privileged else cfg.cap_add, () if cfg.privileged else cfg.cap_drop)
    namespaces: list[dict[str, str]] = [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]
    if not inp.host_network:
        ns: dict[str, str] = {"type": "network"}
        if inp.netns_path:
            ns["path"] = inp.netns_path
        namespaces.append(ns)
    mounts = _default_mounts(host_network=inp.host_network, shm_size=cfg.shm_size, privileged=cfg.privileged)
    user_mounts = sorted((dict(m) for m in inp.volume_mounts), key=_depth)  # parents before children
    mounts += user_mounts
    for dest, src in sorted(inp.etc_files.items()):
        mounts.append({"destination": dest, "type": "bind", "source": str(src),
                       "options": ["rbind", "rprivate", "nosuid", "nodev", "noexec"] + (["ro"] if cfg.read_only else [])})
    process: dict[str, Any] = {
        "terminal": inp.terminal,
        "user": {"uid": inp.user.uid, "gid": inp.user.gid},
        "args": list(inp.argv),
        "env": list(inp.env),
        "cwd": inp.cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": cfg.no_new_privileges,
        # only the rlimits asked for: the process inherits ours; default rlimits asking for more
        # than the inherited hard limit fail without CAP_SYS_RESOURCE (podman's do, on the test machines)
    }
    if cfg.oom_score_adj is not None:
        process["oomScoreAdj"] = cfg.oom_score_adj
    if cfg.ulimits:
        process["rlimits"] = [{"type": "RLIMIT_" + u.name.upper(), "soft": _rlimit(u.soft), "hard": _rlimit(u.hard)}
                              for u in cfg.ulimits]
    if inp.user.additional_gids:
        process["user"]["additionalGids"] = list(inp.user.additional_gids)
    nodes, device_rules = _devices(cfg)
    resources = _resources(cfg.resources)
    resources["devices"] += device_rules
    confinement: dict[str, Any] = {} if cfg.privileged else {
        "seccomp": seccomp.linux_seccomp(caps), "maskedPaths": list(MASKED_PATHS), "readonlyPaths": list(READONLY_PATHS)}
    return {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": str(inp.rootfs), "readonly": cfg.read_only},
        "hostname": inp.hostname,
        "mounts": mounts,
        "annotations": dict(inp.annotations),
        "linux": {
            "namespaces": namespaces,
            "cgroupsPath": inp.cgroups_path,
            "resources": resources,
            **confinement,
            **({"devices": nodes} if nodes else {}),
            **_sysctls(cfg),
        },
    }


def _sysctls(cfg: base.ContainerConfig) -> dict[str, Any]:
    """`linux.sysctl`: the container's own, and its domain name. runc 1.1 does not apply the
    spec's `domainname`, but sets the UTS namespace's kernel.domainname sysctl (the same value
    setdomainname(2) writes), which every runtime the engine runs honours."""
    out = dict(cfg.sysctls)
    if cfg.domainname:
        if out.get("kernel.domainname", cfg.domainname) != cfg.domainname:
            raise rterrors.InvalidArgument("domainname and the sysctl kernel.domainname both set the domain name",
                                           hint="keep one")
        out["kernel.domainname"] = cfg.domainname
    return {"sysctl": out} if out else {}


def _rlimit(value: int) -> int:
    """An rlimit as the runtime spec has it (uint64): -1 is RLIM_INFINITY."""
    return (1 << 64) - 1 if value < 0 else value
