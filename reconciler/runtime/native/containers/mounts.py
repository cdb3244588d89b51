"""The one module of the native engine that mounts and unmounts.

Overlay mounts use the kernel's new mount API (fsopen/fsconfig/fsmount/move_mount, Linux
>= 5.2; `lowerdir+` needs >= 6.8): each lower layer is passed as its own `lowerdir+` string,
so there is no 4095-byte option-string limit and no path escaping, and no process-wide chdir
is needed. On kernels without `lowerdir+` we fall back to one classic `lowerdir=a:b:c` string
and fail clearly when it does not fit in a page. Bind mounts use open_tree + mount_setattr
(recursive read-only works, unlike a classic remount), tmpfs uses fsopen("tmpfs").

All file descriptors the API hands out are closed before a function returns: an open
fsmount fd keeps the mount busy and makes a later umount fail with EBUSY.

Every failure raises `MountError` (a `runtime.errors.RuntimeBackendError`) naming the target,
with the kernel's own message from the fs context when it gave one.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from reconciler.runtime import errors

__all__ = [
    "MAX_OVERLAY_LOWERS",
    "MountError",
    "bind_mount",
    "clear_volatile",
    "is_mounted",
    "mount_overlay",
    "mount_tmpfs",
    "unmount",
    "volatile_marker",
]

# The kernel's overlay stack limit (fs/overlayfs: OVL_MAX_STACK).
MAX_OVERLAY_LOWERS = 500

# Syscall numbers: the mount-API calls got one shared number on every architecture.
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432
_SYS_MOUNT_SETATTR = 442

_FSOPEN_CLOEXEC = 0x1
_FSCONFIG_SET_FLAG = 0
_FSCONFIG_SET_STRING = 1
_FSCONFIG_CMD_CREATE = 6
_FSMOUNT_CLOEXEC = 0x1
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_OPEN_TREE_CLONE = 0x1
_OPEN_TREE_CLOEXEC = os.O_CLOEXEC
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000

_MOUNT_ATTR_RDONLY = 0x1
_MOUNT_ATTR_NOSUID = 0x2
_MOUNT_ATTR_NODEV = 0x4
_MOUNT_ATTR_NOEXEC = 0x8

# Options that are per-mount attributes rather than filesystem parameters.
_ATTR_OPTIONS = {
    "ro": _MOUNT_ATTR_RDONLY,
    "nosuid": _MOUNT_ATTR_NOSUID,
    "nodev": _MOUNT_ATTR_NODEV,
    "noexec": _MOUNT_ATTR_NOEXEC,
}
_IGNORED_OPTIONS = {"rw", "suid", "dev", "exec", "rprivate", "private", "rbind", "bind"}

_MS_RDONLY = 0x1
_MS_NOSUID = 0x2
_MS_REC = 0x4000
_MS_PRIVATE = 0x40000
_CLONE_NEWNS = 0x20000
_MOVE_MOUNT_T_EMPTY_PATH = 0x40
_MNT_DETACH = 0x2
_UMOUNT_NOFOLLOW = 0x8

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_umount2 = _libc.umount2
_umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_umount2.restype = ctypes.c_int
_mount = _libc.mount
_mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_mount.restype = ctypes.c_int


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


class MountError(errors.RuntimeBackendError):
    """A mount or unmount failed; `errno` is the kernel's error number (0 if none)."""

    def __init__(self, message: str, *, errno: int = 0, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.errno = errno


def _b(path: str | os.PathLike[str]) -> bytes:
    return os.fsencode(os.fspath(path))


def _check(ret: int, what: str, target: str | os.PathLike[str], fs_fd: int = -1) -> int:
    if ret >= 0:
        return ret
    err = ctypes.get_errno()
    detail = _fs_messages(fs_fd) if fs_fd >= 0 else ""
    msg = f"{what} for {os.fspath(target)} failed: {os.strerror(err)}"
    if detail:
        msg += f" ({detail})"
    hint = None
    if err == errno_mod.EPERM:
        hint = "mounting needs root (CAP_SYS_ADMIN in the initial user namespace)"
    raise MountError(msg, errno=err, hint=hint)


def _fs_messages(fs_fd: int) -> str:
    """The kernel's error/warning lines queued on an fs context fd ("e overlayfs: ...")."""
    lines: list[str] = []
    for _ in range(16):
        try:
            data = os.read(fs_fd, 1024)
        except OSError:
            break
        if not data:
            break
        lines.append(data.decode(errors="replace").strip())
    return "; ".join(lines)


def _close(*fds: int) -> None:
    for fd in fds:
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


def _fsconfig_string(fs_fd: int, key: str, value: str | None, target: Path) -> None:
    if value is None:
        ret = _syscall(_SYS_FSCONFIG, ctypes.c_int(fs_fd), ctypes.c_uint(_FSCONFIG_SET_FLAG),
                       ctypes.c_char_p(key.encode()), None, ctypes.c_int(0))
    else:
        ret = _syscall(_SYS_FSCONFIG, ctypes.c_int(fs_fd), ctypes.c_uint(_FSCONFIG_SET_STRING),
                       ctypes.c_char_p(key.encode()), ctypes.c_char_p(_b(value)), ctypes.c_int(0))
    _check(ret, f"setting {key}={value!r}" if value is not None else f"setting {key}", target, fs_fd)


def _fs_mount(fstype: str, params: Sequence[tuple[str, str | None]], attrs: int, target: Path) -> None:
    """fsopen(fstype) + fsconfig(params) + create + fsmount(attrs) + move_mount onto target."""
    fs_fd = mnt_fd = -1
    try:
        fs_fd = _check(_syscall(_SYS_FSOPEN, ctypes.c_char_p(fstype.encode()),
                                ctypes.c_uint(_FSOPEN_CLOEXEC)), f"fsopen({fstype})", target)
        for key, value in params:
            _fsconfig_string(fs_fd, key, value, target)
        _check(_syscall(_SYS_FSCONFIG, ctypes.c_int(fs_fd), ctypes.c_uint(_FSCONFIG_CMD_CREATE),
                        None, None, ctypes.c_int(0)), f"creating the {fstype} superblock", target, fs_fd)
        mnt_fd = _check(_syscall(_SYS_FSMOUNT, ctypes.c_int(fs_fd), ctypes.c_uint(_FSMOUNT_CLOEXEC),
                                 ctypes.c_uint(attrs)), f"fsmount({fstype})", target, fs_fd)
        _check(_syscall(_SYS_MOVE_MOUNT, ctypes.c_int(mnt_fd), ctypes.c_char_p(b""),
                        ctypes.c_int(_AT_FDCWD), ctypes.c_char_p(_b(target)),
                        ctypes.c_uint(_MOVE_MOUNT_F_EMPTY_PATH)), "move_mount", target)
    finally:
        _close(mnt_fd, fs_fd)


def mount_overlay(
    lowerdirs: Sequence[Path],
    upper: Path | None,
    work: Path | None,
    target: Path,
    *,
    volatile: bool = False,
) -> None:
    """Mount an overlay of `lowerdirs` on `target`.

    ORDER: `lowerdirs[0]` is the TOP-MOST lower layer and `lowerdirs[-1]` the bottom one, the
    order overlayfs itself uses. An image's layers come bottom first (`ImageStore.layer_dirs`),
    so pass `list(reversed(layer_dirs))`.

    With `upper` and `work` (separate directories on the same filesystem, work empty) the mount
    is writable; with `upper=None` it is a read-only view (and `work` must be None too).
    More than MAX_OVERLAY_LOWERS lowers raises MountError before anything is mounted.

    `volatile` (a writable mount): overlayfs's option that skips every sync of the upper layer,
    the one its unmount makes included (a sync of the whole file system the upper dir is on:
    2-80 ms on a busy host), for an upper thrown away with the container (`run --rm`, as podman
    does). The kernel marks `work` (`volatile_marker`) and refuses to mount that upper again
    until the mark is removed: see `clear_volatile`. A kernel without the option (< 5.10)
    mounts without it.
    """
    if not lowerdirs:
        raise MountError(f"overlay on {target}: no lower directories given")
    if (upper is None) != (work is None):
        raise MountError(f"overlay on {target}: upper and work must be given together")
    if len(lowerdirs) > MAX_OVERLAY_LOWERS:
        raise MountError(
            f"overlay on {target}: {len(lowerdirs)} lower layers exceed the kernel limit of "
            f"{MAX_OVERLAY_LOWERS}",
            errno=errno_mod.EINVAL,
            hint="squash the image into fewer layers (e.g. rebuild it with fewer RUN/COPY steps)",
        )
    if upper is None and len(lowerdirs) == 1:
        # overlayfs wants two lowers without an upper; a single layer is just a read-only bind.
        bind_mount(lowerdirs[0], target, read_only=True)
        return
    attrs = _MOUNT_ATTR_RDONLY if upper is None else 0
    params: list[tuple[str, str | None]] = [("lowerdir+", os.fspath(d)) for d in lowerdirs]
    if upper is not None and work is not None:
        params += [("upperdir", os.fspath(upper)), ("workdir", os.fspath(work))]
    if volatile and upper is not None:
        try:
            _fs_mount("overlay", [*params, ("volatile", None)], attrs, target)
            return
        except MountError as exc:
            if exc.errno != errno_mod.EINVAL or "setting volatile" not in exc.message:
                raise
            # Kernel < 5.10: no volatile (and no lowerdir+ either): a classic mount below.
    try:
        _fs_mount("overlay", params, attrs, target)
    except MountError as exc:
        if exc.errno != errno_mod.EINVAL or "lowerdir+" not in exc.message:
            raise
        # Kernel < 6.8: no lowerdir+, use one classic option string.
        _mount_overlay_classic(lowerdirs, upper, work, target)


def volatile_marker(work: Path) -> Path:
    """What overlayfs leaves in the work dir of a volatile mount (Documentation/filesystems/
    overlayfs.rst, "Volatile mount"): while it is there, no mount of that upper is accepted."""
    return work / "work" / "incompat" / "volatile"


def clear_volatile(work: Path) -> None:
    """Remove a volatile mount's mark from `work`, so its upper can be mounted again. Only for
    an upper written since the host last booted: after a crash it may be incomplete."""
    shutil.rmtree(volatile_marker(work), ignore_errors=True)       # a directory, with a `dirty` file


def _mount_overlay_classic(
    lowerdirs: Sequence[Path], upper: Path | None, work: Path | None, target: Path,
) -> None:
    for d in [*lowerdirs, upper, work]:
        if d is not None and any(c in os.fspath(d) for c in ":,\\"):
            raise MountError(f"overlay on {target}: path {d} has ':' ',' or '\\' (kernel < 6.8)")
    opts = "lowerdir=" + ":".join(os.fspath(d) for d in lowerdirs)
    if upper is not None and work is not None:
        opts += f",upperdir={upper},workdir={work}"
    if len(opts.encode()) > 4095:
        raise MountError(
            f"overlay on {target}: {len(lowerdirs)} layers do not fit in one page of mount "
            "options on this kernel (< 6.8 has no lowerdir+)",
            errno=errno_mod.EINVAL, hint="use a kernel >= 6.8 or an image with fewer layers",
        )
    flags = _MS_RDONLY if upper is None else 0
    ret = _mount(b"overlay", _b(target), b"overlay", flags, opts.encode())
    _check(ret, "mount(overlay)", target)


def bind_mount(src: Path, dst: Path, read_only: bool = False, *, dst_fd: int = -1) -> None:
    """Recursively bind `src` onto `dst` (dst must exist), or onto the file `dst_fd` is open on
    (`dst` then names it in errors); read-only applies to submounts too."""
    tree_fd = -1
    try:
        tree_fd = _check(_syscall(_SYS_OPEN_TREE, ctypes.c_int(_AT_FDCWD), ctypes.c_char_p(_b(src)),
                                  ctypes.c_uint(_OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC | _AT_RECURSIVE)),
                         f"open_tree({src})", dst)
        if read_only:
            attr = _MountAttr(attr_set=_MOUNT_ATTR_RDONLY, attr_clr=0, propagation=0, userns_fd=0)
            _check(_syscall(_SYS_MOUNT_SETATTR, ctypes.c_int(tree_fd), ctypes.c_char_p(b""),
                            ctypes.c_uint(_AT_EMPTY_PATH | _AT_RECURSIVE), ctypes.byref(attr),
                            ctypes.c_size_t(ctypes.sizeof(attr))), "mount_setattr(ro)", dst)
        to_fd, to_path, flags = ((dst_fd, b"", _MOVE_MOUNT_F_EMPTY_PATH | _MOVE_MOUNT_T_EMPTY_PATH) if dst_fd >= 0
                                 else (_AT_FDCWD, _b(dst), _MOVE_MOUNT_F_EMPTY_PATH))
        _check(_syscall(_SYS_MOVE_MOUNT, ctypes.c_int(tree_fd), ctypes.c_char_p(b""),
                        ctypes.c_int(to_fd), ctypes.c_char_p(to_path), ctypes.c_uint(flags)), "move_mount", dst)
    finally:
        _close(tree_fd)


def private_view(root: Path, binds: Sequence[tuple[str, Path, bool]]) -> tuple[int, int]:
    """The tree at `root` with `binds` (destination inside it, host source, read-only) mounted
    on it as a container's runtime would, seen by no one else: made in a mount namespace of its
    own (a short-lived thread unshares one; its mounts are private, so nothing propagates to the
    host's). Returns (an fd of `root` in that namespace, an fd of the namespace): the mounts
    live while the namespace fd is open and vanish with it, even if this process is killed
    (nothing to unmount, nothing to leak). A missing mount point is made (a directory, or an
    empty file for a file's source), resolved inside `root` (a symlink cannot lead it out).
    What `docker cp` sees of a stopped container: its volumes and binds, not just its rootfs."""
    import threading

    out: list[int] = []
    failure: list[BaseException] = []

    def make() -> None:
        fds: list[int] = []
        try:
            _check(_libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)", root)   # this thread's alone
            _check(_mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "mount(rprivate /)", root)
            fds.append(os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
            for dest, source, read_only in binds:
                target = _mount_point(fds[0], dest, source.is_dir())
                if target < 0:
                    continue
                try:
                    bind_mount(source, root / dest.lstrip("/"), read_only, dst_fd=target)
                finally:
                    _close(target)
            out.extend((fds[0], os.open("/proc/thread-self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)))
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            failure.append(exc)
            _close(*fds)

    worker = threading.Thread(target=make, name="private-view")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return out[0], out[1]


def _mount_point(root_fd: int, dest: str, is_dir: bool) -> int:
    """An O_PATH fd of `dest` inside the tree of `root_fd` (a symlink on the way followed, never
    out of it), made if missing: a directory, or an empty file for a file's mount; -1 for a
    file's that cannot be made (a dangling link at /etc/resolv.conf: the view goes without it)."""
    from reconciler.runtime.native import openat2

    try:
        return openat2.open_in_root(root_fd, dest, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        pass

    def mkdir(dir_fd: int, name: str) -> None:
        os.mkdir(name, 0o755, dir_fd=dir_fd)

    if is_dir:
        return openat2.make_dirs_in_root(root_fd, dest, mkdir)
    parent, _, name = dest.rstrip("/").rpartition("/")
    try:
        pfd = openat2.make_dirs_in_root(root_fd, parent or "/", mkdir)
        try:
            os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                             dir_fd=pfd))
        finally:
            os.close(pfd)
        return openat2.open_in_root(root_fd, dest, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return -1


def mount_tmpfs(dst: Path, options: Sequence[str] = ()) -> None:
    """Mount a fresh tmpfs on `dst`. Options as Docker/fstab spell them: "size=64m",
    "mode=1777", "uid=0", "nr_inodes=1k"; "ro", "nosuid", "nodev", "noexec" become mount
    attributes; "rw" and propagation words are accepted and ignored."""
    params: list[tuple[str, str | None]] = []
    attrs = 0
    for opt in options:
        for part in opt.split(","):
            part = part.strip()
            if not part or part in _IGNORED_OPTIONS:
                continue
            if part in _ATTR_OPTIONS:
                attrs |= _ATTR_OPTIONS[part]
            elif "=" in part:
                key, value = part.split("=", 1)
                params.append((key, value))
            else:
                params.append((part, None))
    _fs_mount("tmpfs", params, attrs, dst)


def unmount(target: Path, *, lazy_fallback: bool = True) -> None:
    """Unmount `target` (the top-most mount there). Not mounted / missing is not an error.
    When busy and `lazy_fallback`, detach it lazily (MNT_DETACH) instead of failing."""
    path = _b(target)
    if _umount2(path, _UMOUNT_NOFOLLOW) == 0:
        return
    err = ctypes.get_errno()
    if err in (errno_mod.ENOENT, errno_mod.ENOTDIR):
        return                  # no such path: nothing can be mounted there (no mountinfo read)
    if err == errno_mod.EINVAL and not is_mounted(target):
        return
    if err == errno_mod.EBUSY and lazy_fallback:
        if _umount2(path, _UMOUNT_NOFOLLOW | _MNT_DETACH) == 0:
            return
        err = ctypes.get_errno()
    raise MountError(f"unmounting {target} failed: {os.strerror(err)}", errno=err,
                     hint="a process may still use it (fuser -m PATH)" if err == errno_mod.EBUSY else None)


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def is_mounted(path: Path) -> bool:
    """True if something is mounted exactly at `path` (per /proc/self/mountinfo)."""
    want = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split(" ", 5)
            if len(fields) > 4 and _unescape(fields[4]) == want:
                return True
    return False
