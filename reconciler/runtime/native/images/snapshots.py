"""Layer snapshots keyed by ChainID: `<root>/snapshots/<short id>/fs`.

A snapshot is one layer applied on top of its parents (the layers below it in the image),
stored as an overlayfs lower dir. Its key is the layer's ChainID (image-spec config.md), so
images sharing a base share those snapshots. The directory name is a short id (the first 16
hex digits of the ChainID) so paths stay short; the full ChainID is written in
`<short>/chainid` and checked, so a (practically impossible) prefix clash is an error, never a
mix-up.

Commit protocol (crash safety): a snapshot is built in `snapshots/extract-<pid>-<rand>/fs`
and renamed to `snapshots/<short>` only after the layer was applied and its DiffID verified.
A directory with a short-id name is therefore always complete; `extract-*` and `remove-*`
leftovers are debris that GC deletes. Removal renames to `remove-*` first for the same reason.
A per-ChainID lock file (fcntl) makes concurrent pulls (threads or processes) extract a
layer once: the second waits, then finds it committed. Extracted files are not fsynced one by
one (as Docker and containerd do not); with `durable` one syncfs(2) of the snapshot's file
system precedes the commit, and the directories around the rename are fsynced.

Where a snapshot's inodes go (#21). On an ext4 without a journal a new inode is never taken
from those freed in the last minute(s) (ext4's `recently_deleted`: one buffer lookup per freed
inode, for every file created in that block group), so unpacking beside a snapshot just removed
(an `rmi`, then a pull) made pulls 2-5x slower, and the kernel time of one pull swung 0.9-5 s.
Two things keep new snapshots away from freed inodes: the snapshots dir carries the "top of a
directory hierarchy" flag (`chattr +T`, set at the first snapshot a process makes), so each
`extract-*` dir, and the files under it, go to a flex group of their own (Orlov's spread), and
a removal leaves a mark `<lock dir>/freed-inodes/<window>` (the run dir: the kernel's memory
of freed inodes does not outlive a boot either) naming the inode window (one flex group in
ext4's default layout) it freed: a new `extract-*` dir that lands in a window freed in the last
`_RECENT` seconds is made again elsewhere (a few tries, each reject held until the placement is
done, since Orlov picks the flex group with the fewest directories; then the last try stays). Both only steer where
inodes go; where the flag is not supported (xfs, btrfs, tmpfs) or the layout differs, nothing
but the speed changes.

A snapshot's `meta.json` holds its layer's unpacked size as Docker counts a layer's (`unpacked`:
layers.py says what is counted), counted by the extractor as it unpacked the layer. A snapshot
an older version made has none: `unpacked()` measures it once (a walk of its files,
layers.unpacked_size) and writes it into its `meta.json`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from reconciler._dataclass import dataclass
from reconciler.runtime import errors
from reconciler.runtime.native import procs
from reconciler.runtime.native.images import content

__all__ = ["FS_TOPDIR_FL", "SnapshotInfo", "SnapshotStore", "chain_ids", "spread_subdirs"]

SHORT_LEN = content.SNAPSHOT_NAME_LEN
_TEMP_PREFIXES = ("extract-", "remove-")


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """ChainID of each layer: C0 = D0, Cn = sha256(C(n-1) + " " + Dn)."""
    import hashlib  # here: loading OpenSSL costs ~5 ms, and `run` of a stored image needs no ChainID

    out: list[str] = []
    for d in diff_ids:
        content.validate_digest(d)
        if not out:
            out.append(d)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


def _unique() -> str:
    """A name part no other process or call uses (secrets imported here: resolving an image
    for `run` loads this module and needs no random names)."""
    import secrets

    return f"{os.getpid()}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class SnapshotInfo:
    """A committed snapshot."""

    chain_id: str
    short_id: str
    path: Path              # the snapshot dir; the layer's files are in path / "fs"
    parent: str | None
    diff_id: str
    size: int               # decompressed layer bytes (the tar stream)
    unpacked: int | None    # its files' bytes as Docker counts a layer's size; None: not measured yet


class SnapshotStore:
    """Committed snapshots under `<root>/snapshots`, locks under `lock_dir`."""

    def __init__(self, root: Path, lock_dir: Path, *, durable: bool = False) -> None:
        self.durable = durable      # fsync the metadata around the commit rename
        self.dir = root / "snapshots"
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self.lock_dir = lock_dir
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        self._thread_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._spread = False        # the TOPDIR flag checked by this store

    @staticmethod
    def short_id(chain_id: str) -> str:
        return content.digest_hex(chain_id)[:SHORT_LEN]

    def path(self, chain_id: str) -> Path:
        return self.dir / self.short_id(chain_id)

    def fs_dir(self, chain_id: str) -> Path:
        return self.path(chain_id) / "fs"

    def exists(self, chain_id: str) -> bool:
        try:
            stored = (self.path(chain_id) / "chainid").read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            return False
        if stored != chain_id:
            raise errors.ImageError(
                f"snapshot {self.short_id(chain_id)} holds {stored}, not {chain_id}",
                hint="two layer chains share an id prefix; remove the image using it and pull again")
        return True

    def info(self, chain_id: str) -> SnapshotInfo:
        if not self.exists(chain_id):
            raise errors.NotFound(f"snapshot {chain_id} does not exist")
        meta = json.loads((self.path(chain_id) / "meta.json").read_text())
        unpacked = meta.get("unpacked")
        return SnapshotInfo(chain_id, self.short_id(chain_id), self.path(chain_id),
                            meta.get("parent"), meta["diff_id"], int(meta.get("size", 0)),
                            None if unpacked is None else int(unpacked))

    def unpacked(self, chain_id: str) -> int | None:
        """The unpacked size of the layer of snapshot `chain_id` (Docker's layer size), from its
        `meta.json`; one an older version made is measured now, once (a walk of its files), and
        the number kept there. None when the snapshot does not exist."""
        try:
            known = json.loads((self.path(chain_id) / "meta.json").read_text()).get("unpacked")
        except (OSError, ValueError):
            known = None
        if known is not None:
            return int(known)
        # the extractor is loaded only to measure what an older version unpacked
        from reconciler.runtime.native.images import layers

        with self.lock(chain_id):               # no removal meanwhile
            if not self.exists(chain_id):
                return None
            meta_path = self.path(chain_id) / "meta.json"
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                meta = {}
            if meta.get("unpacked") is None:
                meta["unpacked"] = layers.unpacked_size(self.fs_dir(chain_id))
                tmp = meta_path.with_name(f"meta.json.{_unique()}")
                try:
                    tmp.write_text(json.dumps(meta, sort_keys=True))
                    os.replace(tmp, meta_path)
                except OSError:                 # not kept (a full disk): measured again next time
                    with contextlib.suppress(OSError):
                        tmp.unlink()
            return int(meta["unpacked"])

    @contextlib.contextmanager
    def lock(self, chain_id: str) -> Iterator[None]:
        """Exclusive per-ChainID lock across threads and processes."""
        short = self.short_id(chain_id)
        with self._guard:
            tlock = self._thread_locks.setdefault(short, threading.Lock())
        with tlock:
            fd = os.open(self.lock_dir / f"snapshot-{short}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def create(
        self,
        chain_id: str,
        parents: Sequence[str],
        apply: Callable[[Path, list[Path]], dict[str, Any]],
        *,
        parents_ready: Callable[[], None] | None = None,
    ) -> bool:
        """Build the snapshot for `chain_id` unless it exists; True if this call built it.

        `parents` are the ChainIDs of the layers below, BOTTOM FIRST. `apply(fs_dir, lowers)`
        fills the empty `fs_dir`, given the parents' fs dirs TOP-MOST FIRST, and returns a
        dict with at least "diff_id", "size" and "unpacked" (ApplyResult's); anything it raises
        discards the work.
        `parents_ready` (a parallel unpack): blocks until the parents are committed, or raises
        if they will not be. `apply` then starts at once and must call it before it reads the
        lowers; the snapshot is committed only once it returned.
        """
        with self.lock(chain_id):
            if self.exists(chain_id):
                return False
            if parents_ready is None:
                self._check_parents(chain_id, parents)
            tmp = self._new_dir()
            try:
                fs = tmp / "fs"
                fs.mkdir()
                os.chmod(fs, 0o755)  # noqa: S103 - the image root, as in the image
                meta = apply(fs, [self.fs_dir(p) for p in reversed(parents)])
                if parents_ready is not None:
                    parents_ready()
                    self._check_parents(chain_id, parents)
                meta = {**meta, "chain_id": chain_id, "parent": parents[-1] if parents else None,
                        "created": time.time()}
                (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True))
                (tmp / "chainid").write_text(chain_id)
                if self.durable:
                    _syncfs(tmp)                # the layer's files: one sync, not one per file
                    content.ContentStore.fsync_dir(tmp)
                os.rename(tmp, self.path(chain_id))
                if self.durable:
                    content.ContentStore.fsync_dir(self.dir)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            return True

    def _new_dir(self) -> Path:
        """A fresh private `extract-*` dir (debris if this process dies before the commit), in
        an inode window no removal freed lately (module docstring)."""
        if not self._spread:
            self._spread = True
            spread_subdirs(self.dir)
        freed = self._recently_freed()
        rejected: list[Path] = []
        try:
            while True:
                tmp = self.dir / f"extract-{_unique()}"
                tmp.mkdir(mode=0o700)
                if len(rejected) + 1 >= _PLACEMENT_TRIES or _window(tmp) not in freed:
                    return tmp              # the last try is kept wherever it lands
                # Held, not removed at once: Orlov puts a TOPDIR's subdir in the flex group with
                # the fewest directories (the name only breaks ties), and a removal made the freed
                # group that one; each held reject counts there until another group wins.
                rejected.append(tmp)
        finally:
            for r in rejected:
                with contextlib.suppress(OSError):
                    r.rmdir()

    def _recently_freed(self) -> set[int]:
        """The inode windows a removal freed in the last `_RECENT` seconds (older marks go)."""
        marks = self.lock_dir / _FREED
        out: set[int] = set()
        now = time.time()
        try:
            entries = list(os.scandir(marks))
        except FileNotFoundError:
            return out
        for e in entries:
            with contextlib.suppress(OSError, ValueError):
                if e.stat().st_mtime > now - _RECENT:
                    out.add(int(e.name))
                else:
                    os.unlink(e.path)
        return out

    def _note_freed(self, window: int) -> None:
        """Mark `window` as freed now (its mark's mtime)."""
        marks = self.lock_dir / _FREED
        marks.mkdir(mode=0o700, exist_ok=True)
        (marks / str(window)).touch()

    def _check_parents(self, chain_id: str, parents: Sequence[str]) -> None:
        for p in parents:
            if not self.exists(p):
                raise errors.ImageError(f"parent snapshot {p} of {chain_id} is missing",
                                        hint="pull the image again")

    def remove(self, chain_id: str) -> bool:
        """Delete a committed snapshot (rename first: never a half-deleted committed one)."""
        with self.lock(chain_id):
            if not self.exists(chain_id):
                return False
            tmp = self.dir / f"remove-{_unique()}"
            os.rename(self.path(chain_id), tmp)
            window = _window(tmp)
            shutil.rmtree(tmp, ignore_errors=True)
            self._note_freed(window)
            return True

    def debris(self) -> list[Path]:
        """Leftovers of interrupted extractions and removals whose process is gone."""
        out = []
        for d in self.dir.iterdir():
            if not d.name.startswith(_TEMP_PREFIXES):
                continue
            try:
                pid = int(d.name.split("-")[1])
            except (IndexError, ValueError):
                out.append(d)
                continue
            if pid == os.getpid() or procs.exists(pid):
                continue
            out.append(d)
        return out

    def list(self) -> list[SnapshotInfo]:
        out = []
        for d in self.dir.iterdir():
            if d.name.startswith(_TEMP_PREFIXES):
                continue
            try:
                chain_id = (d / "chainid").read_text().strip()
                out.append(self.info(chain_id))
            except (OSError, ValueError, KeyError, errors.RuntimeBackendError):
                continue
        return out


_FREED = "freed-inodes"    # in the lock dir: marks of recently freed inode windows
_RECENT = 360.0            # ext4 skips inodes freed 60 s ago, 360 s while their table block is unwritten
_WINDOW_INODES = 8192 * 16  # one flex group in mke2fs's default layout (8192 inodes x 16 groups)
_PLACEMENT_TRIES = 16


def _window(path: Path) -> int:
    """The inode window (flex group) of `path`'s inode."""
    return (os.stat(path).st_ino - 1) // _WINDOW_INODES


_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
FS_TOPDIR_FL = 0x00020000


def spread_subdirs(path: Path) -> None:
    """Mark `path` as the top of directory hierarchies (ext4's TOPDIR flag, `chattr +T`), so
    that its subdirectories are spread over the block groups; nothing where the file system
    does not support it."""
    import array

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    # not ext2/3/4 (ENOTTY, EOPNOTSUPP): their allocators place directories their own way
    with contextlib.suppress(OSError):
        flags = array.array("i", [0])
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags)
        if not flags[0] & FS_TOPDIR_FL:
            flags[0] |= FS_TOPDIR_FL
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, flags)
    os.close(fd)


def _syncfs(path: Path) -> None:
    """syncfs(2) of the file system holding `path` (os has no wrapper)."""
    import ctypes  # only for durable stores (a re-pull's start-up does not pay for it)

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if ctypes.CDLL(None, use_errno=True).syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs {path}: {os.strerror(err)}")
    finally:
        os.close(fd)

