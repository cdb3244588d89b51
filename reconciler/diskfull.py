"""A full file system as an ordinary error: recognise it, and say where and how much.

    is_disk_full(exc, path)     ENOSPC or EDQUOT from the kernel; SQLITE_FULL; or an SQLite
                                I/O error (a -shm or -wal file that cannot grow) on a file
                                system with (almost) no room left
    error(what, path, needed)   -> errors.DiskFull naming the file system (mount point, type,
                                free of total), what was being written and the bytes it needed:
      no space left on /var (ext4, 1.2MB free of 20GB) while writing blob sha256:0a1b... to
      /var/lib/reconciler/ingest; it needs at least 31.4MB
    translated(what, path)      a context manager turning the above into DiskFull

Callers that can undo what they half-wrote (a partial download) do so first and then build the
error, so that the free space it reports is what a retry has. Anything that slips through is
translated at the edges: the executor's action boundary and the CLI's `main`.

Stdlib only, and no sqlite3 import: an SQLite error is recognised by its `sqlite_errorcode`.
"""

from __future__ import annotations

import collections
import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reconciler.errors import DiskFull

__all__ = ["FileSystem", "error", "file_system", "is_disk_full", "size", "translate", "translated"]

_SQLITE_IOERR = 10
_SQLITE_FULL = 13
# An SQLite I/O error counts as "disk full" when its file system has less room than this: the
# shared-memory index grows in 32 KiB steps and the WAL by pages.
_NEARLY_FULL = 1 << 20
_ESCAPE = re.compile(r"\\([0-7]{3})")


# (collections' namedtuple: typing's compiles each of its string annotations when the class is made,
# ~0.2 ms a field of every command's start, #21; pyproject.toml bans it)
class FileSystem(collections.namedtuple("FileSystem", ("mount", "type", "free", "total"))):
    """The mounted file system that holds a path: its mount point, its type, the bytes an
    unprivileged writer may still use (`free`) and its size (`total`)."""

    __slots__ = ()


def is_disk_full(exc: BaseException, path: str | os.PathLike[str] | None = None) -> bool:
    """True for ENOSPC/EDQUOT, SQLITE_FULL, or an SQLite I/O error while the file system of
    `path` (the database) is nearly full."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(code, int):
        return False
    if code & 0xFF == _SQLITE_FULL:
        return True
    return code & 0xFF == _SQLITE_IOERR and path is not None and file_system(path).free < _NEARLY_FULL


def file_system(path: str | os.PathLike[str]) -> FileSystem:
    """The file system `path` is on (or would be on, for a path not created yet)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    real = os.path.realpath(p)
    mount, fstype = "/", "?"
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                point = _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), fields[4])
                inside = real == point or real.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(mount):     # the innermost; the last one mounted
                    mount, fstype = point, fields[fields.index("-") + 1]
    except (OSError, ValueError, IndexError):
        pass
    try:
        st = os.statvfs(p)
        free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    except OSError:
        free = total = 0
    return FileSystem(mount, fstype, free, total)


def error(what: str, path: str | os.PathLike[str] | None, *, needed: int | None = None,
          quota: bool = False, unpacks: bool = False) -> DiskFull:
    """The DiskFull for `what`, a gerund ("writing blob sha256:..."), that failed on `path`
    (None: the error did not say where). `needed`: the bytes it writes, as far as they are
    known; `unpacks`: it also unpacks what it writes (a pull's layers), which needs more, by
    an amount not known before."""
    fault = "the disk quota is used up" if quota else "no space left"
    if unpacks:
        need = (f"; it needs at least {size(needed)} for the download, more to unpack it" if needed
                else "; it needs room to unpack its layers")
        room = f"more than {size(needed)}" if needed else "space"
    else:
        need = f"; it needs at least {size(needed)}" if needed else ""
        room = f"at least {size(needed)}" if needed else "space"
    if path is None:
        where, on = "", "the file system of the engine's state root"
    else:
        fs = file_system(path)
        where, on = f" on {fs.mount} ({fs.type}, {size(fs.free)} free of {size(fs.total)})", fs.mount
    hint = (f"free {room} on {on} ('reconcile image prune -a' removes the images no container "
            f"uses, and partial downloads) or give it more room, then run the command again")
    return DiskFull(f"{fault}{where} while {what}{need}", path=Path(path) if path is not None else None,
                    needed=needed, quota=quota, hint=hint)


def translate(exc: BaseException, what: str, path: str | os.PathLike[str] | None = None, *,
              needed: int | None = None) -> DiskFull | None:
    """`exc` as a DiskFull (on the file it names, else on `path`), or None when it is not
    about space."""
    if isinstance(exc, DiskFull) or not is_disk_full(exc, path):
        return None
    named = getattr(exc, "filename", None)
    where = os.fsdecode(named) if isinstance(named, str | bytes) and named else path
    quota = isinstance(exc, OSError) and exc.errno == errno.EDQUOT
    return error(what, where, needed=needed, quota=quota)


@contextmanager
def translated(what: str, path: str | os.PathLike[str], *, needed: int | None = None) -> Iterator[None]:
    """Raise DiskFull instead of ENOSPC/EDQUOT/SQLITE_FULL from the block."""
    try:
        yield
    except Exception as exc:
        full = translate(exc, what, path, needed=needed)
        if full is None:
            raise
        raise full from exc


def size(n: int | None) -> str:
    """Bytes in decimal units, as docker prints them: 0B, 512kB, 12.6MB."""
    value = float(n or 0)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.3g}{unit}" if unit != "B" else f"{int(value)}B"
        value /= 1000
    return f"{value:.3g}TB"
