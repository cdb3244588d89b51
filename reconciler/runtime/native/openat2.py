"""openat2(2) through ctypes: open a path *inside* a directory tree, never outside it.

`open_in_root(root_fd, path, flags)` resolves `path` as if `root_fd` were `/`: `..` is
clamped at the root and absolute symlinks are resolved against it (RESOLVE_IN_ROOT), and
magic links such as /proc/self/root are refused (RESOLVE_NO_MAGICLINKS). The layer extractor
resolves every parent directory this way; the container engine can use it for volume and
bind targets inside a rootfs.

Kernels older than 5.6 lack the syscall (ENOSYS); there a user-space walk does the same,
component by component with O_NOFOLLOW and symlink targets re-resolved inside the root. It
is not race-free against a concurrent writer, which the extractor rules out (nothing else
writes into a snapshot while it is being extracted).
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "RESOLVE_BENEATH",
    "RESOLVE_IN_ROOT",
    "RESOLVE_NO_MAGICLINKS",
    "RESOLVE_NO_SYMLINKS",
    "RESOLVE_NO_XDEV",
    "have_openat2",
    "make_dirs_in_root",
    "open_in_root",
    "openat2",
    "secure_join",
]

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

_SYS_OPENAT2 = 437
_MAX_SYMLINKS = 40

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_available: bool | None = None


def openat2(dir_fd: int, path: str | bytes, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """The raw syscall: returns an fd or raises OSError (EAGAIN is retried)."""
    how = _OpenHow(flags=flags | os.O_CLOEXEC, mode=mode, resolve=resolve)
    bpath = os.fsencode(path)
    for _ in range(64):
        fd = _syscall(_SYS_OPENAT2, ctypes.c_int(dir_fd), ctypes.c_char_p(bpath),
                      ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err != errno.EAGAIN:
            raise OSError(err, os.strerror(err), os.fsdecode(bpath))
    raise OSError(errno.EAGAIN, "openat2 kept failing with EAGAIN", os.fsdecode(bpath))


def have_openat2() -> bool:
    """True when the running kernel has openat2 (Linux >= 5.6)."""
    global _available
    if _available is None:
        try:
            os.close(openat2(-100, "/", os.O_PATH))
            _available = True
        except OSError as exc:
            _available = exc.errno != errno.ENOSYS
    return _available


def open_in_root(root_fd: int, path: str, flags: int, mode: int = 0) -> int:
    """Open `path` resolved inside the tree of `root_fd` (RESOLVE_IN_ROOT|NO_MAGICLINKS).

    Symlinks on the way, including the last component unless `flags` has O_NOFOLLOW, are
    followed but can never leave the root. Raises OSError like open(2).
    """
    if have_openat2():
        return openat2(root_fd, path or ".", flags, mode, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    return _walk_in_root(root_fd, path, flags, mode)


def make_dirs_in_root(root_fd: int, path: str, mkdir: Callable[[int, str], None]) -> int:
    """mkdir -p `path` resolved inside the tree of `root_fd` as `open_in_root` resolves it
    (symlinks followed but never out of the root, to directories still missing too: `ln -s
    /srv/app /app` then /app/x makes /srv/app/x), each missing directory made by
    `mkdir(dir_fd, name)`; an O_PATH fd of the directory. Walked one component at a time by fd
    (O_NOFOLLOW), so nothing outside the root is opened or made. Raises OSError like open(2)."""
    return _walk_in_root(root_fd, path, os.O_PATH | os.O_DIRECTORY, 0, missing=mkdir)


def _walk_in_root(root_fd: int, path: str, flags: int, mode: int,
                  missing: Callable[[int, str], None] | None = None) -> int:
    """User-space RESOLVE_IN_ROOT: resolve component by component, clamping at the root;
    `missing(dir_fd, name)`, when given, makes a component that is not there (a directory)."""
    stack: list[int] = []           # fds of the directories walked into, root excluded
    pending = [c for c in path.split("/") if c not in ("", ".")]
    links = 0
    try:
        while pending:
            name = pending.pop(0)
            cur = stack[-1] if stack else root_fd
            if name == "..":
                if stack:
                    os.close(stack.pop())
                continue
            last = not pending and missing is None
            if last:
                try:
                    st = os.stat(name, dir_fd=cur, follow_symlinks=False)
                except FileNotFoundError:
                    st = None
                if st is not None and stat.S_ISLNK(st.st_mode) and not flags & os.O_NOFOLLOW:
                    pass  # fall through to the symlink handling below
                else:
                    return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=cur)
            try:
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
            except FileNotFoundError:
                if missing is None:
                    raise
                missing(cur, name)          # made (or made meanwhile): opened and checked as it is
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode):
                os.close(fd)
                links += 1
                if links > _MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(name, dir_fd=cur)
                if target.startswith("/"):
                    while stack:
                        os.close(stack.pop())
                # `..` of the target walked as the kernel walks it (after a link, not lexically)
                pending = [c for c in target.split("/") if c not in ("", ".")] + pending
                continue
            if not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            stack.append(fd)
        cur = stack[-1] if stack else root_fd
        return os.open(".", flags | os.O_CLOEXEC, mode, dir_fd=cur)
    finally:
        for fd in stack:
            os.close(fd)


def secure_join(root: Path, path: str, *, max_links: int = 40) -> Path:
    """`path` resolved inside `root` as if `root` were `/` (symlinks and `..` clamped).

    Used only on a rootfs no process runs in yet (at create), so nothing can swap a component
    between this walk and the open that follows; the final open still uses O_NOFOLLOW.
    """
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > max_links:
                raise OSError(errno.ELOOP, "too many symlinks", str(path))
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return root.joinpath(*resolved)
