"""`docker cp` for native containers: stat a path, read it as a tar stream, unpack a tar into it.

The container's file system is reached through a directory fd: `/proc/<pid>/root` of a running
container (its mount namespace's view: volumes, binds and tmpfs included), the overlay rootfs of
one that does not run. Every path is resolved inside that root (openat2 RESOLVE_IN_ROOT, via
openat2.open_in_root): a symlink the container made, absolute or full of `..`, never leads to
the host. Reading walks the tree by directory fds with O_NOFOLLOW (a process in the container
that swaps a directory for a symlink meanwhile gets the symlink copied, not followed).
Unpacking goes through the image layer extractor (layers.apply_layer, its limits included),
with the destination directory as the extractor's `/`.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import queue
import stat
import tarfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from reconciler.runtime import errors as rterrors
from reconciler.runtime import pathcopy
from reconciler.runtime.native import openat2
from reconciler.runtime.native.images import layers

__all__ = ["archive", "extract", "path_stat", "stat_header"]

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# Go's os.FileMode type bits, which the docker CLI decodes from the stat header
_GO_MODE = ((stat.S_ISDIR, 1 << 31), (stat.S_ISLNK, 1 << 27), (stat.S_ISFIFO, 1 << 25),
            (stat.S_ISSOCK, 1 << 24), (stat.S_ISBLK, 1 << 26), (stat.S_ISCHR, (1 << 26) | (1 << 21)))
_CHUNK = 1 << 16


def _split(path: str) -> tuple[str, str]:
    """(parent, last component) of an absolute container path; ("", "") names the root."""
    norm = posixpath.normpath("/" + path)
    if norm == "/":
        return "/", ""
    parent, base = posixpath.split(norm)
    return parent, base


def _open_parent(root_fd: int, path: str) -> tuple[int, str]:
    parent, base = _split(path)
    try:
        return openat2.open_in_root(root_fd, parent, _O_DIR), base
    except FileNotFoundError:
        raise rterrors.NotFound(f"Could not find the file {path} in container") from None
    except OSError as exc:
        raise rterrors.InvalidArgument(f"{path}: {exc.strerror}") from None


def _lstat(pfd: int, base: str, path: str) -> os.stat_result:
    try:
        return os.stat(base or ".", dir_fd=pfd, follow_symlinks=False)
    except FileNotFoundError:
        raise rterrors.NotFound(f"Could not find the file {path} in container") from None


def _go_mode(st: os.stat_result) -> int:
    mode = stat.S_IMODE(st.st_mode) & 0o777
    for test, bit in _GO_MODE:
        if test(st.st_mode):
            mode |= bit
    for flag, bit in ((stat.S_ISUID, 1 << 23), (stat.S_ISGID, 1 << 22), (stat.S_ISVTX, 1 << 20)):
        if st.st_mode & flag:
            mode |= bit
    return mode


def path_stat(root_fd: int, path: str) -> dict[str, Any]:
    """Docker's PathStat of `path` (the last component not followed): name, size, mode, mtime,
    linkTarget."""
    pfd, base = _open_parent(root_fd, path)
    try:
        st = _lstat(pfd, base, path)
        target = os.readlink(base, dir_fd=pfd) if stat.S_ISLNK(st.st_mode) else ""
    finally:
        os.close(pfd)
    mtime = datetime.fromtimestamp(st.st_mtime, UTC).isoformat().replace("+00:00", "Z")
    return {"name": base or "/", "size": st.st_size, "mode": _go_mode(st), "mtime": mtime, "linkTarget": target}


def stat_header(doc: dict[str, Any]) -> str:
    """The `X-Docker-Container-Path-Stat` header value: base64 of the JSON."""
    return base64.b64encode(json.dumps(doc).encode()).decode()


class _QueueWriter:
    """A file object for tarfile that hands its writes to the reading side, bounded."""

    def __init__(self) -> None:
        self.q: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=64)
        self.cancelled = False

    def write(self, data: bytes) -> int:
        if self.cancelled:
            raise BrokenPipeError("the reader went away")
        self.q.put(bytes(data))
        return len(data)


def _info(name: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime)
    return info


def _add(tar: tarfile.TarFile, pfd: int, base: str, name: str) -> None:
    """Add the entry `base` of the directory `pfd` as `name`; directories recursively, by fds."""
    st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
    info = _info(name, st)
    if stat.S_ISREG(st.st_mode):
        fd = os.open(base, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        with os.fdopen(fd, "rb") as f:
            info.size = os.fstat(f.fileno()).st_size
            tar.addfile(info, f)
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        dfd = os.open(base, _O_DIR | os.O_NOFOLLOW, dir_fd=pfd)
        try:
            for child in sorted(os.listdir(dfd)):
                _add(tar, dfd, child, f"{name}/{child}")
        finally:
            os.close(dfd)
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(base, dir_fd=pfd)
        tar.addfile(info)
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
        tar.addfile(info)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        tar.addfile(info)
    # sockets have no tar form: left out, as Docker does


def _names_dot(path: str) -> bool:
    """Whether `path` ends in `/.` (`docker cp CTR:/dir/. DEST`): a directory's content is asked
    for, its entries named `./...` as dockerd names them, so they land in DEST itself."""
    return posixpath.basename(path.rstrip("/") if path.rstrip("/") else path) == "."


def archive(root_fd: int, path: str) -> Iterator[bytes]:
    """`path` as a tar stream, its entries named from its last component (a directory's
    content below it; `DIR/.`: from `.`, dockerd's names; for `/`, its entries by their own
    names: `docker export`). Raises NotFound before the stream starts when `path` does not
    exist."""
    pfd, base = _open_parent(root_fd, path)
    try:
        st = _lstat(pfd, base, path)
    except BaseException:
        os.close(pfd)
        raise
    top = "." if base and stat.S_ISDIR(st.st_mode) and _names_dot(path) else base
    if not base:                                   # the root itself: its entries, named from there
        os.close(pfd)
        pfd = openat2.open_in_root(root_fd, "/", _O_DIR)
    out = _QueueWriter()

    def produce() -> None:
        try:
            # (Go's tar writer's end, as dockerd's: no padding to a 10 KiB record)
            with pathcopy.UnpaddedTar.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                for name in ([base] if base else sorted(os.listdir(pfd))):
                    _add(tar, pfd, name, top if base else name)
            out.q.put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the reading side
            out.q.put(exc)
        finally:
            os.close(pfd)

    threading.Thread(target=produce, name="cp-archive", daemon=True).start()

    def chunks() -> Iterator[bytes]:
        try:
            while True:
                item = out.q.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    if isinstance(item, BrokenPipeError):
                        return
                    raise item
                yield item
        finally:
            out.cancelled = True
            while not out.q.empty():                # unblock the producer
                out.q.get_nowait()
    return chunks()


def extract(root_fd: int, path: str, src: BinaryIO, *, limits: layers.Limits | None = None,
            owner: tuple[int, int] | None = None) -> None:
    """Unpack the tar stream `src` into the directory `path` through the layer extractor: no
    entry reaches outside that directory; owners, modes and times as the archive has them, or
    every entry owned by `owner` (uid, gid: `docker cp -a` into a container with a user)."""
    try:
        dfd = openat2.open_in_root(root_fd, path, _O_DIR)
    except FileNotFoundError:
        raise rterrors.NotFound(f"Could not find the file {path} in container") from None
    except NotADirectoryError:
        raise rterrors.InvalidArgument(f"extraction point is not a directory: {path}") from None
    try:
        layers.apply_layer(src, Path(f"/proc/self/fd/{dfd}"), limits=limits, root_attrs=False, owner=owner)
    except layers.LayerError as exc:
        raise rterrors.InvalidArgument(f"cannot unpack the archive into {path}: {exc.message}",
                                       hint=exc.hint) from None
    finally:
        os.close(dfd)
