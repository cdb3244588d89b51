"""The content store: blobs by digest under `<root>/blobs/sha256/<hex>`, written through ingests.

An ingest (`<root>/ingest/<hex>/data`) is a download in progress, named by the digest it is
expected to have, so a download interrupted by a crash or a network error resumes where it
stopped (`Ingest.offset`, send `Range: bytes=offset-`). Bytes are hashed while written; on
commit the size and digest are checked and the file is renamed into place, read-only. A blob
path therefore always holds the right bytes after any process crash (kill -9).

Durability against power loss is a choice (`durable`): with it, data and directory are
fsynced before and after the rename (containerd's way). Without it (the default, Docker's
way) nothing is fsynced: on ext4 in ordered mode every fsync during a pull also flushes all
the layer files being extracted, which made pulls 2-3x slower on the test machines. A blob
torn by a power loss is caught by the DiffID check when it is extracted (the pull then
deletes it and the next pull downloads it again). Two writers of the same digest serialise on the ingest's lock file; the second finds
the blob committed. Digest strings are validated before they touch a path (CVE-2024-3727).

A full file system (ENOSPC, EDQUOT) while writing is `errors.DiskFull` naming the blob, its size
and the file system; the ingest is then dropped at once (its bytes hold the very space a retry
needs, and resuming it would only fill the disk again).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from reconciler import diskfull
from reconciler._dataclass import dataclass
from reconciler.errors import DiskFull
from reconciler.runtime import errors
from reconciler.runtime.native.images.digestpaths import (  # re-exported: their home is digestpaths.py
    SNAPSHOT_NAME_LEN,
    digest_hex,
    is_digest,
    validate_digest,
)

if TYPE_CHECKING:
    import hashlib

__all__ = ["SNAPSHOT_NAME_LEN", "ContentStore", "Ingest", "IngestInfo", "digest_hex", "link_tmpfile", "validate_digest"]

_CHUNK = 1 << 20


def _sha256(data: bytes = b"") -> hashlib._Hash:
    """A sha256 (hashlib imported here: loading OpenSSL costs ~5 ms, and `run` of a stored image
    only reads blobs)."""
    import hashlib

    return hashlib.sha256(data)


@dataclass(frozen=True)
class IngestInfo:
    """An ingest directory seen by GC: the digest it is for, bytes so far, last write."""

    digest: str
    path: Path
    size: int
    updated: float


class Ingest:
    """One locked, resumable write of a blob expected to have `digest`.

    Use as a context manager: entering takes the lock and re-hashes any bytes a previous
    attempt left (so `offset` can be used to resume); `write()` appends; `commit()` verifies
    and publishes. Leaving without commit keeps the data for a later resume (call `reset()`
    to drop it, e.g. after the server ignored a Range request, or `discard()` to leave nothing).
    """

    def __init__(self, store: ContentStore, digest: str, expected_size: int | None) -> None:
        self.store = store
        self.digest = validate_digest(digest)
        self.expected_size = expected_size
        self.dir = store.ingest_dir / digest_hex(digest)
        self._lock_fd = -1
        self._fd = -1
        self._hash = _sha256()
        self.offset = 0
        self.committed = False
        self._discard = False       # the caller cancelled: removed on close
        self.dropped = False        # the file system filled up: removed on close, never resumed

    def __enter__(self) -> Ingest:
        with diskfull.translated(self._writing(), self.store.ingest_dir, needed=self.expected_size):
            self._lock_fd = self._lock()
        if self.store.has(self.digest):
            self.committed = True
            return self
        try:
            self._fd = os.open(self.store.ingest_data(self.digest), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise self._full(exc) from exc
        self._rehash()
        return self

    def _writing(self) -> str:
        return f"writing blob {self.digest[:19]} to {self.store.ingest_dir}"

    def _full(self, exc: OSError) -> DiskFull | OSError:
        """What to raise for a failed write: for a full file system, drop the partial data first
        (so the free space the error reports is what a retry has) and say how much is needed;
        any other error unchanged."""
        if not diskfull.is_disk_full(exc):
            return exc
        self.dropped = True
        if self._fd >= 0:
            os.ftruncate(self._fd, 0)
            self.offset = 0
            self._hash = _sha256()
        quota = exc.errno == errno.EDQUOT
        return diskfull.error(self._writing(), self.dir, needed=self.expected_size, quota=quota)

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _lock(self) -> int:
        """The ingest's lock, held; taken again when the holder removed the directory meanwhile
        (it committed or discarded it), so the lock held is always the one at the path."""
        path = self.dir / "lock"
        while True:
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except (FileExistsError, FileNotFoundError):
                # the holder removed the directory meanwhile (mkdir saw it, then it was gone;
                # or it went between the mkdir and the open): make it again
                continue
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)

    def _rehash(self) -> None:
        self._hash = _sha256()
        os.lseek(self._fd, 0, os.SEEK_SET)
        n = 0
        while chunk := os.read(self._fd, _CHUNK):
            self._hash.update(chunk)
            n += len(chunk)
        if self.expected_size is not None and n > self.expected_size:
            self.reset()
            return
        self.offset = n

    def reset(self) -> None:
        """Drop the bytes written so far and start from 0."""
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        self._hash = _sha256()
        self.offset = 0

    def discard(self) -> None:
        """Leave nothing of this ingest: its directory goes when it is closed (still under
        its lock, so a concurrent writer of the same digest starts afresh)."""
        self._discard = True

    def write(self, data: bytes | memoryview) -> None:
        """Append and hash `data`; raise ImageError past the expected size."""
        if self.expected_size is not None and self.offset + len(data) > self.expected_size:
            raise errors.ImageError(
                f"blob {self.digest} is larger than the {self.expected_size} bytes its descriptor says")
        self._hash.update(data)
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            raise self._full(exc) from exc
        self.offset += len(data)
        os.utime(self._fd)

    def sink(self) -> _Sink:
        """An unbuffered writer positioned at `offset` for a downloader that hashes by itself
        (the registry client verifies the digest); commit with `verified=True` afterwards.
        Unbuffered, so a kill -9 loses nothing that was written (the next pull resumes)."""
        return _Sink(self, self.offset)

    def prefix_hash(self) -> Any:
        """A copy of the hash of the bytes already held (to resume a verified download)."""
        return self._hash.copy()

    def commit(self, *, verified: bool = False) -> Path:
        """Verify size and digest, fsync, rename into the store; returns the blob path.

        `verified=True`: the bytes were written through `sink()` by a writer that checked the
        digest itself; only the size is checked here (no second hashing pass)."""
        if self.committed:
            return self.store.blob_path(self.digest)
        if verified:
            self.offset = os.fstat(self._fd).st_size
        if self.expected_size is not None and self.offset != self.expected_size:
            raise errors.ImageError(
                f"blob {self.digest}: got {self.offset} bytes, descriptor says {self.expected_size}")
        actual = self.digest if verified else "sha256:" + self._hash.hexdigest()
        if actual != self.digest:
            self.reset()
            raise errors.ImageError(f"blob {self.digest} has digest {actual}: the download is corrupt",
                                    hint="pull again; if it repeats, the registry serves a damaged blob")
        if self.store.durable:
            os.fsync(self._fd)
        os.fchmod(self._fd, 0o444)
        dest = self.store.blob_path(self.digest)
        os.rename(self.store.ingest_data(self.digest), dest)
        if self.store.durable:
            self.store.fsync_dir(dest.parent)
        self.committed = True
        return dest

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock_fd >= 0:
            if self.committed or self._discard or self.dropped:
                shutil.rmtree(self.dir, ignore_errors=True)
            os.close(self._lock_fd)
            self._lock_fd = -1


class _Sink:
    """Writes go straight to the ingest fd (complete writes, no user-space buffer); seekable
    and truncatable so a downloader can restart a blob from 0. A full file system drops the
    ingest (DiskFull)."""

    def __init__(self, ingest: Ingest, offset: int) -> None:
        self._ingest = ingest
        self._fd = os.dup(ingest._fd)
        os.lseek(self._fd, offset, os.SEEK_SET)

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            raise self._ingest._full(exc) from exc
        return len(data)

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        return os.lseek(self._fd, pos, whence)

    def truncate(self, size: int | None = None) -> int:
        size = os.lseek(self._fd, 0, os.SEEK_CUR) if size is None else size
        os.ftruncate(self._fd, size)
        return size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> _Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ContentStore:
    """Blobs under `<root>/blobs/sha256`, ingests under `<root>/ingest`."""

    def __init__(self, root: Path, *, durable: bool = False) -> None:
        self.root = root
        self.durable = durable
        self.blob_dir = root / "blobs" / "sha256"
        self.ingest_dir = root / "ingest"
        for d in (self.blob_dir, self.ingest_dir):
            d.mkdir(parents=True, exist_ok=True)

    def blob_path(self, digest: str) -> Path:
        return self.blob_dir / digest_hex(digest)

    def ingest_data(self, digest: str) -> Path:
        """The file an ingest of `digest` writes (read while it grows by a pull that unpacks
        as it downloads, extractors.Follow)."""
        return self.ingest_dir / digest_hex(digest) / "data"

    def has(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            raise errors.NotFound(f"blob {digest} is not in the content store") from None

    def open(self, digest: str) -> BinaryIO:
        """The committed blob for reading (NotFound if absent)."""
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise errors.NotFound(f"blob {digest} is not in the content store") from None

    def read(self, digest: str, *, max_size: int = 16 << 20) -> bytes:
        """A small blob (manifest, config) in full."""
        with self.open(digest) as f:
            data = f.read(max_size + 1)
        if len(data) > max_size:
            raise errors.ImageError(f"blob {digest} is larger than {max_size} bytes")
        return data

    def ingest(self, digest: str, expected_size: int | None = None) -> Ingest:
        return Ingest(self, digest, expected_size)

    def write_blob(self, data: bytes, digest: str | None = None) -> str:
        """Store `data` (verifying `digest` when given); returns its digest."""
        digest = digest or "sha256:" + _sha256(data).hexdigest()
        if self.has(digest):
            return digest
        with self.ingest(digest, len(data)) as ing:
            if not ing.committed:
                ing.reset()
                ing.write(data)
                ing.commit()
        return digest

    def delete(self, digest: str) -> bool:
        try:
            self.blob_path(digest).unlink()
            return True
        except FileNotFoundError:
            return False

    def digests(self) -> Iterator[str]:
        for p in self.blob_dir.iterdir():
            if is_digest("sha256:" + p.name):
                yield "sha256:" + p.name

    def ingests(self) -> list[IngestInfo]:
        out = []
        for d in self.ingest_dir.iterdir():
            if not is_digest("sha256:" + d.name):
                continue
            try:
                st = (d / "data").stat()
                size, updated = st.st_size, st.st_mtime
            except FileNotFoundError:
                size, updated = 0, d.stat().st_mtime
            out.append(IngestInfo("sha256:" + d.name, d, size, updated))
        return out

    def remove_ingest(self, info: IngestInfo) -> bool:
        """Remove an ingest nobody holds (non-blocking lock); False if it is in use."""
        try:
            fd = os.open(info.path / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            shutil.rmtree(info.path, ignore_errors=True)
            return True
        finally:
            os.close(fd)

    @staticmethod
    def fsync_dir(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def link_tmpfile(fd: int, dest: Path) -> None:
    """Give the O_TMPFILE `fd` the name `dest`: linkat(2) through /proc/self/fd, following the
    magic link (a plain link(2) of the /proc path fails with EXDEV): a blob written unnamed
    (`load`, `image import`) appears whole or not at all."""
    proc = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with contextlib.suppress(FileExistsError):           # another writer stored it meanwhile
            os.link(str(fd), dest, src_dir_fd=proc, follow_symlinks=True)
    finally:
        os.close(proc)
