"""The layer extractor: one OCI layer tar applied, entry by entry, into a fresh snapshot dir.

Written for this project (tarfile's extractall is not used; runtime-internals.md §3.5):

- The blob is read once as a stream: gzip (multi-member) / zstd (multi-frame) / bzip2 / xz /
  plain tar, chosen by magic bytes; the decompressed bytes are hashed (the DiffID) and counted
  (a size cap stops decompression bombs) as tarfile reads them, forward only, in one pass.
- Headers are bounded before tarfile holds them: no read of the stream asks for more than
  1 MiB at once (Go's archive/tar limit for a PAX header or GNU long name), the extended
  headers before one entry total at most 2 MiB, global PAX headers at most 1,000 keys, and
  sparse entries are refused before their map is read (their holes would be written as zeros
  that no cap counts).
- Names are cleaned; NUL, empty-after-cleaning non-directories and names that climb above
  the root with `..` are rejected; absolute names are taken relative to the root.
- Every parent directory is resolved with openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS)
  relative to the snapshot dir, so symlinks inside the layer can never lead out of it;
  missing parents are created in-root, copying mode/owner of the same directory in the
  lower layers (like containerd's mkparent). The last component is never followed: the old
  entry is unlinked (or removed as a tree) and the new one created with O_EXCL|O_NOFOLLOW,
  except that a directory over a directory merges.
- Whiteouts become overlayfs whiteouts: `.wh.X` -> a 0:0 character device X; `.wh..wh..opq`
  -> `trusted.overlay.opaque=y` on its directory. In the bottom layer (no lowers) they hide
  nothing and are dropped. A whiteout never removes an entry of its own layer.
- Hardlink targets are resolved inside the snapshot; a target only present in a lower layer
  is copied up first (an overlay upper cannot link to a lower inode). Directories are never
  hardlink targets.
- Devices and FIFOs are created with mknod and never opened; attributes are applied through
  O_PATH fds. Order per entry: chown, xattrs, chmod (chown clears setuid), times. A regular
  file is created with its final permission bits when the umask lets them through, and is
  chowned only when its owner is not the creator: most files cost open, write, futimens and
  close. Directories are made 0700 and get their owner, xattrs, mode and times in one pass at
  the end of the layer (`finish`).
- Lowers may be pending (`lowers_pending`: the layers below are being unpacked in parallel):
  whiteouts are still made, implicit parents get 0755 and are listed in the result for
  `fix_implicit_dirs` to copy the lower directory's owner, mode and times once the lowers
  are committed; a hardlink to a file only a lower layer has raises NeedsLowers (the caller
  unpacks that layer again once its lowers are there).
- Xattrs from PAX `SCHILY.xattr.*`: user.*, security.capability and trusted.* are kept,
  except trusted.overlay.* (overlay control data an image must not smuggle in); others
  (security.selinux, system.*, user.overlay.*) are dropped.
- The layer's unpacked size (`ApplyResult.unpacked`, what `images` shows summed over an image's
  layers) is counted as Docker counts a layer's size: dockerd's overlay2 driver walks the diff
  dir it unpacked into (moby `pkg/directory.Size`) and adds up `st_size` of everything that is
  not a directory, once per inode. That is each regular file's length (a hardlink group once),
  each symlink's target length, and 0 for devices, FIFOs and whiteouts; not the tar stream's
  bytes (headers, padding) nor the blocks on disk. The extractor adds it up as it writes the
  entries; a layer that replaces or removes an entry it made (a name twice in the tar, a
  whiteout over a copy-up), or copies a file up for a hardlink, is walked once instead
  (`unpacked_size`), which is what older snapshots are measured with too (snapshots.py).

On any error an ImageError names the entry; the caller discards the whole snapshot dir.
"""

from __future__ import annotations

import bz2
import errno
import hashlib
import lzma
import os
import posixpath
import queue
import shutil
import stat
import tarfile
import threading
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO, NoReturn, Self, cast

from reconciler import diskfull
from reconciler._dataclass import dataclass
from reconciler.runtime import errors, sparse
from reconciler.runtime.native import openat2

__all__ = ["INFLATE", "STREAM_ERRORS", "ApplyResult", "LayerError", "Limits", "NeedsLowers", "apply_layer",
           "fix_implicit_dirs", "kept_xattr", "open_decompressed", "unpacked_size"]

_CHUNK = 1 << 20
_MAX_READ = 1 << 20         # one read of the stream: a header's declared size cannot ask for more
_MAX_HEADERS = 2 << 20      # the extended headers (PAX, GNU long names) before one entry
_MAX_GLOBAL_KEYS = 1000     # keys in global PAX headers, which tarfile keeps for the whole archive
_WH_PREFIX = ".wh."
_WH_OPAQUE = ".wh..wh..opq"
_WH_META = ".wh..wh."
_OPAQUE_XATTR = "trusted.overlay.opaque"
_O_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


class LayerError(errors.ImageError):
    """A layer is malformed, hostile or over a limit; its snapshot is discarded."""


class NeedsLowers(Exception):
    """Raised with `lowers_pending` when the layer needs the layers below it to be unpacked
    (a hardlink to a file of a lower layer, which is copied up): discard the work and apply
    the layer again with its lowers."""


def _inflate_module() -> tuple[str, Any]:
    """The fastest gzip inflate installed: python-isal (about 2x zlib), zlib-ng, else zlib.
    All three have zlib's decompressobj (wbits=31, max_length, unconsumed_tail, eof)."""
    try:
        from isal import isal_zlib  # type: ignore[import-not-found,unused-ignore]

        return "isal", isal_zlib
    except ImportError:
        pass
    try:
        from zlib_ng import zlib_ng  # type: ignore[import-not-found,unused-ignore]

        return "zlib-ng", zlib_ng
    except ImportError:
        return "zlib", zlib


INFLATE, _INFLATE = _inflate_module()
# what a corrupt or truncated stream raises (a layer, an imported tarball)
STREAM_ERRORS: tuple[type[Exception], ...] = (tarfile.TarError, EOFError, zlib.error, _INFLATE.error)


@dataclass(frozen=True)
class Limits:
    """Caps for one layer: decompressed bytes (absolute, and relative to the compressed size
    above a floor), and tar entries. A gzip bomb expands ~1000x; real layers rarely 20x."""

    max_size: int = 64 << 30
    max_entries: int = 4_000_000
    max_ratio: int = 200            # decompressed / compressed, enforced above ratio_floor
    ratio_floor: int = 1 << 30

    def cap(self, compressed_size: int | None) -> int:
        """The decompressed-size cap for a blob of `compressed_size` bytes."""
        if compressed_size is None:
            return self.max_size
        return min(self.max_size, max(self.ratio_floor, self.max_ratio * compressed_size))


@dataclass(frozen=True)
class ApplyResult:
    """What applying a layer produced: the DiffID of the decompressed stream and its size; the
    bytes of what it unpacked, as Docker counts a layer's size (`unpacked`: module docstring);
    with `lowers_pending`, the implicit parents whose attributes `fix_implicit_dirs` sets."""

    diff_id: str
    size: int
    entries: int
    unpacked: int
    implicit_dirs: tuple[str, ...] = ()


def unpacked_size(path: Path | str) -> int:
    """The unpacked size of the layer in directory `path` as dockerd's overlay2 driver measures
    its diff dir (moby `pkg/directory.Size`): `st_size` of every entry that is not a directory,
    each inode once (hard links), symlinks not followed. A walk: one lstat per entry."""
    seen: set[int] = set()
    total = 0
    todo = [os.fspath(path)]
    while todo:
        try:
            entries = os.scandir(todo.pop())
        except FileNotFoundError:
            continue
        with entries:
            for e in entries:
                try:
                    st = e.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    todo.append(e.path)
                elif st.st_size and st.st_ino not in seen:
                    if st.st_nlink > 1:
                        seen.add(st.st_ino)
                    total += st.st_size
    return total


@dataclass(frozen=True)
class _DirAttrs:
    """A directory's owner, mode and times, set once its layer's files are written."""

    uid: int
    gid: int
    mode: int
    mtime_ns: int
    xattrs: tuple[tuple[str, bytes], ...]
    opaque: bool


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, racing other threads)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o777        # unknown: every mode is set with fchmod


class _Decompressed:
    """A read-only stream of the decompressed layer; hashes and counts what passes."""

    def __init__(self, src: BinaryIO, max_size: int) -> None:
        self.src = src
        self.max_size = max_size
        self.hash = hashlib.sha256()
        self.size = 0
        self._buf = b""
        self._pos = 0
        self._offset = 0
        self._eof = False
        self._in = src.read(4)
        self._z: Any = None
        self._reader: Any = None        # zstd, bzip2, xz: a decompressing file object
        self._gzip = self._in[:2] == b"\x1f\x8b"
        whole = cast("IO[bytes]", _Prefixed(self._in, src))
        # The readers hold nothing to release: their source is the caller's (no close needed).
        if self._in == b"\x28\xb5\x2f\xfd":
            import zstandard  # only needed for zstd layers

            self._reader = zstandard.ZstdDecompressor().stream_reader(whole, read_across_frames=True,
                                                                      read_size=_CHUNK)
        elif self._in[:3] == b"BZh" and self._in[3:4].isdigit():
            self._reader = bz2.BZ2File(whole)
        elif self._in == b"\xfd7zX":
            self._reader = lzma.LZMAFile(whole, format=lzma.FORMAT_XZ)  # noqa: SIM115
        if self._reader is not None:
            self._in = b""

    def _fill(self) -> bytes:
        if self._reader is not None:
            try:
                return bytes(self._reader.read(_CHUNK))
            except (OSError, EOFError, lzma.LZMAError) as exc:    # bz2 and xz; zstd's own errors pass
                raise LayerError(f"the layer's compressed stream is corrupt or truncated: {exc}",
                                 hint="the blob is corrupt or incomplete; pull again") from None
        if not self._gzip:
            out, self._in = self._in + self.src.read(_CHUNK), b""
            return out
        while True:
            if not self._in:
                self._in = self.src.read(_CHUNK)
                if not self._in:
                    if self._z is not None:
                        raise LayerError("the layer's gzip stream is truncated",
                                         hint="the blob is corrupt or incomplete; pull again")
                    return b""
            if self._z is None:
                if not self._in.strip(b"\x00"):
                    self._in = b""          # zero padding after the last member
                    continue
                self._z = _INFLATE.decompressobj(wbits=31)   # the next gzip member
            out = self._z.decompress(self._in, _CHUNK * 4)
            self._in = self._z.unconsumed_tail
            if self._z.eof:
                self._in = self._z.unused_data + self._in
                self._z = None
            if out:
                return bytes(out)

    def _next_chunk(self) -> bool:
        chunk = self._fill()
        if not chunk:
            self._eof = True
            return False
        self.size += len(chunk)
        if self.size > self.max_size:
            raise LayerError(f"the layer decompresses to more than {self.max_size} bytes (cap)",
                             hint="a decompression bomb, or raise the cap for genuinely huge layers")
        self.hash.update(chunk)
        self._buf = chunk
        self._pos = 0
        return True

    def read(self, n: int = _CHUNK) -> bytes:
        """Up to n bytes, n at most _MAX_READ (tarfile reads a header's declared size in one
        request: refuse it rather than hold it); slices, never re-copies the buffer."""
        if not 0 <= n <= _MAX_READ:
            raise LayerError(f"a tar header in the layer declares {n} bytes of extended data (PAX header or "
                             f"GNU long name); at most {_MAX_READ} bytes are read at once",
                             hint="the image is hostile or corrupt; rebuild it with an ordinary tar writer")
        avail = len(self._buf) - self._pos
        if avail >= n:
            out = self._buf[self._pos:self._pos + n]
            self._pos += n
            self._offset += n
            return out
        parts = [self._buf[self._pos:]] if avail else []
        got = avail
        self._pos = len(self._buf)
        while got < n and not self._eof and self._next_chunk():
            take = min(n - got, len(self._buf))
            parts.append(self._buf[:take])
            self._pos = take
            got += take
        self._offset += got
        return b"".join(parts)

    def tell(self) -> int:
        return self._offset

    def seek(self, pos: int, whence: int = 0) -> int:
        """Forward-only: tarfile skips member data it does not read."""
        if whence == 1:
            pos += self._offset
        if whence == 2 or pos < self._offset:
            raise LayerError("the layer stream cannot seek backwards (malformed tar)")
        while self._offset < pos:
            if not self.read(min(pos - self._offset, _CHUNK)):
                break
        return self._offset

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


class _Prefixed:
    """A file-like that yields `head` then the rest of `src` (zstd needs the magic back)."""

    def __init__(self, head: bytes, src: BinaryIO) -> None:
        self.head = head
        self.src = src

    def read(self, n: int = -1) -> bytes:
        if self.head:
            out, self.head = self.head, b""
            return out
        return self.src.read(n)


def open_decompressed(src: BinaryIO, max_size: int = Limits.max_size) -> _Decompressed:
    """A decompressing, DiffID-hashing reader over a layer blob (for tests and tools)."""
    return _Decompressed(src, max_size)


class _Member(tarfile.TarInfo):
    """tarfile's header parser with bounds. A chain of extended headers is parsed recursively,
    each header's data held until the entry they describe is read; the chain, and the global
    PAX keys tarfile keeps for the rest of the archive, are checked before each next header.
    Sparse entries are refused as their header is parsed, before tarfile reads a sparse map
    (an unbounded list, as long as the stream), by overriding tarfile's own private hooks for
    the four sparse formats; `apply_layer` also refuses any member whose `sparse` is set,
    should those hooks ever be renamed."""

    @classmethod
    def fromtarfile(cls, tarfile: tarfile.TarFile) -> Self:
        fileobj = cast("_Decompressed", tarfile.fileobj)
        if fileobj.tell() - tarfile.offset > _MAX_HEADERS:
            raise LayerError(f"the extended headers of one tar entry at offset {tarfile.offset} exceed "
                             f"{_MAX_HEADERS} bytes", hint="the image is hostile or corrupt")
        if len(tarfile.pax_headers) > _MAX_GLOBAL_KEYS:
            raise LayerError(f"the layer's global PAX headers hold more than {_MAX_GLOBAL_KEYS} keys",
                             hint="the image is hostile or corrupt")
        return super().fromtarfile(tarfile)

    def _proc_sparse(self, _tarfile: tarfile.TarFile) -> NoReturn:
        raise _sparse(self.name)

    def _proc_gnusparse_00(self, nxt: tarfile.TarInfo, pax: dict[str, str], _buf: bytes) -> NoReturn:
        raise _sparse(pax.get("GNU.sparse.name") or pax.get("path") or nxt.name)

    def _proc_gnusparse_01(self, nxt: tarfile.TarInfo, pax: dict[str, str]) -> NoReturn:
        raise _sparse(pax.get("GNU.sparse.name") or pax.get("path") or nxt.name)

    def _proc_gnusparse_10(self, nxt: tarfile.TarInfo, pax: dict[str, str], _tarfile: tarfile.TarFile) -> NoReturn:
        raise _sparse(pax.get("GNU.sparse.name") or pax.get("path") or nxt.name)


def _sparse(name: str) -> LayerError:
    return LayerError(f"tar entry {name!r} is a sparse file; sparse entries are refused (their holes "
                      "would be written out in full without counting against the layer's size cap)",
                      hint="recreate the archive without sparse files (GNU tar without --sparse/-S)")


def _clean(name: str) -> str:
    """The entry's path relative to the root ("" for the root); LayerError if it escapes."""
    if "\x00" in name:
        raise LayerError(f"tar entry name {name!r} contains NUL")
    rel = posixpath.normpath("/" + name.lstrip("/"))
    if posixpath.normpath(name.lstrip("/")).split("/")[0] == "..":
        raise LayerError(f"tar entry {name!r} points outside the layer root ('..')")
    return rel.lstrip("/")


def kept_xattr(name: str) -> bool:
    """Whether an xattr of this name is applied from an archive (and so worth recording in one)."""
    if name.startswith("user."):
        return not name.startswith("user.overlay.")
    if name == "security.capability":
        return True
    return name.startswith("trusted.") and not name.startswith("trusted.overlay.")


def _xattrs(member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
    out = []
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            name = key[len("SCHILY.xattr."):]
            if kept_xattr(name):
                out.append((name, value.encode("utf-8", "surrogateescape")))
    return out


def _proc(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


class _Applier:
    def __init__(self, dest: Path, lowers: Sequence[Path], stream: _Decompressed | None, *,
                 root_attrs: bool = True, lowers_pending: bool = False, holes: bool = False,
                 unique: bool = False) -> None:
        self.stream = stream
        # an image layer's entries, each path once (`apply_layer`); None: an archive, any order
        self.named: set[str] | None = set() if unique else None
        self.root_attrs = root_attrs
        # a file's whole blocks of zeros skipped, not written (holes: a volume's sparse files)
        self.holes = holes
        self.root_fd = os.open(dest, _O_DIR)
        self.lower_fds: list[int] = []
        for low in lowers:
            self.lower_fds.append(os.open(low, _O_DIR))
        self.has_lowers = bool(lowers) or lowers_pending
        self.lowers_pending = lowers_pending
        self.created: set[str] = set()          # paths this layer created (explicit or implicit)
        self.whiteouts: set[str] = set()        # whiteouts this layer created
        self.dirs: dict[str, _DirAttrs] = {}    # directories' attributes, set by finish()
        self.implicit: dict[str, None] = {}     # implicit parents waiting for their lowers
        # Into a fresh directory (a pull's snapshot, behind a 0700 parent), a file whose
        # owner is the creator's is made with its final permission bits and never chowned.
        self.owner = (os.geteuid(), os.getegid())
        self.fresh = stream is not None and not os.listdir(_proc(self.root_fd))
        self.umask = _umask()
        # The last parent directory resolved, kept open: consecutive entries mostly share
        # one. Dropped whenever anything is removed (only a removal can change what an
        # already-resolved path resolves to).
        self._pcache: tuple[str, int] | None = None
        self._orphans: list[int] = []   # cached fds invalidated while in use
        self._link_maps: dict[int, dict[int, list[str]]] = {}
        # The unpacked size as Docker counts it (module docstring), added up entry by entry;
        # `recount`: an entry was replaced or removed, or a file copied up: walk instead.
        self.unpacked = 0
        self.recount = False

    def close(self) -> None:
        self._invalidate()
        for fd in [self.root_fd, *self.lower_fds, *self._orphans]:
            os.close(fd)
        self._orphans.clear()

    def _invalidate(self) -> None:
        """Forget the cached parent; its fd may still be in use by the current entry, so it
        is closed when the entry is done."""
        if self._pcache is not None:
            self._orphans.append(self._pcache[1])
            self._pcache = None

    def _parent(self, rel: str) -> int:
        """A borrowed (do not close) fd of directory `rel`, created when missing."""
        if self._pcache is not None and self._pcache[0] == rel:
            return self._pcache[1]
        self._invalidate()
        fd = self._dir_fd(rel)
        self._pcache = (rel, fd)
        return fd

    # -- lookups ---------------------------------------------------------------------------

    def _lower_lookup(self, rel: str) -> tuple[int, os.stat_result] | None:
        """The lower layer (fd) that provides `rel` in the merged view, without following
        symlinks anywhere on the path, or None if no lower shows it."""
        for lfd in self.lower_fds:
            try:
                fd = openat2.openat2(lfd, rel, os.O_PATH | os.O_NOFOLLOW, 0,
                                     openat2.RESOLVE_BENEATH | openat2.RESOLVE_NO_SYMLINKS
                                     | openat2.RESOLVE_NO_MAGICLINKS)
            except OSError as exc:
                if exc.errno == errno.ENOENT and not self._hidden_below(lfd, rel):
                    continue
                return None
            try:
                st = os.fstat(fd)
            finally:
                os.close(fd)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                return None
            return lfd, st
        return None

    def _hidden_below(self, lfd: int, rel: str) -> bool:
        """True if a parent of `rel` in this lower is an opaque dir or a whiteout."""
        parts = rel.split("/")[:-1]
        for i in range(len(parts), 0, -1):
            prefix = "/".join(parts[:i])
            try:
                fd = openat2.openat2(lfd, prefix, os.O_PATH | os.O_NOFOLLOW, 0,
                                     openat2.RESOLVE_BENEATH | openat2.RESOLVE_NO_SYMLINKS)
            except OSError:
                continue
            try:
                st = os.fstat(fd)
                if not stat.S_ISDIR(st.st_mode):
                    return True
                try:
                    return os.getxattr(_proc(fd), _OPAQUE_XATTR) == b"y"
                except OSError:
                    return False
            finally:
                os.close(fd)
        return False

    def _dir_fd(self, rel: str, _depth: int = 0) -> int:
        """An O_PATH fd of directory `rel`, created (with in-root parents) when missing.
        A dangling symlink on the way is followed inside the root and its target created."""
        if rel == "":
            return os.dup(self.root_fd)
        if _depth > 40:
            raise LayerError(f"cannot create {rel!r}: too many levels of symbolic links")
        try:
            return openat2.open_in_root(self.root_fd, rel, _O_DIR)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise
        parts = rel.split("/")
        fd = os.dup(self.root_fd)
        try:
            for i, name in enumerate(parts):
                prefix = "/".join(parts[: i + 1])
                try:
                    nfd = openat2.open_in_root(self.root_fd, prefix, _O_DIR)
                except OSError as exc:
                    if exc.errno == errno.ENOTDIR and prefix in self.whiteouts:
                        self._invalidate()
                        os.unlink(name, dir_fd=fd)     # a dir replaces our own whiteout
                        self.whiteouts.discard(prefix)
                        self._mkdir_implicit(fd, name, prefix, opaque=True)
                    elif exc.errno == errno.ENOENT:
                        st = self._lstat(fd, name)
                        if st is not None and stat.S_ISLNK(st.st_mode):
                            # A dangling symlink: create its target, inside the root.
                            link = os.readlink(name, dir_fd=fd)
                            start = "/" if link.startswith("/") else "/" + posixpath.dirname(prefix)
                            rest = "/".join(parts[i + 1:])
                            resolved = posixpath.normpath(posixpath.join(start, link, rest)).lstrip("/")
                            os.close(fd)
                            fd = -1
                            return self._dir_fd(resolved, _depth + 1)
                        self._mkdir_implicit(fd, name, prefix, opaque=False)
                    else:
                        raise LayerError(f"cannot create {rel!r}: {prefix!r} is not a directory") from None
                    nfd = openat2.open_in_root(self.root_fd, prefix, _O_DIR)
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise

    def _mkdir_implicit(self, pfd: int, name: str, rel: str, *, opaque: bool) -> None:
        """A parent the layer has no entry for: the lower directory's owner, mode and time
        (set by finish, or by fix_implicit_dirs while the lowers are pending), else 0755."""
        low = None if opaque or self.lowers_pending else self._lower_lookup(rel)
        os.mkdir(name, 0o700, dir_fd=pfd)
        if low is not None and stat.S_ISDIR(low[1].st_mode):
            st = low[1]
            self.dirs[rel] = _DirAttrs(st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_mtime_ns, (), opaque)
        else:
            self.dirs[rel] = _DirAttrs(-1, -1, 0o755, -1, (), opaque)
            if self.lowers_pending and not opaque:
                self.implicit[rel] = None
        self.created.add(rel)

    @staticmethod
    def _lstat(pfd: int, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def _clear(self, pfd: int, name: str, *, keep_dir: bool) -> bool:
        """Remove what is at name (never following it); True if a dir was kept."""
        st = self._lstat(pfd, name)
        if st is None:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            self.recount = True         # what it held was counted
            self._invalidate()
            shutil.rmtree(name, dir_fd=pfd)
        else:
            self.recount = self.recount or st.st_size > 0     # a whiteout, device or FIFO counted nothing
            self._invalidate()
            os.unlink(name, dir_fd=pfd)
        return False

    # -- entries ---------------------------------------------------------------------------

    def apply(self, tar: tarfile.TarFile | None, member: tarfile.TarInfo, data: bytes | None = None) -> None:
        """Apply one entry; a regular file's content is `data`, or else read from `tar`."""
        rel = _clean(member.name)
        if self.named is not None:
            if rel in self.named:
                raise LayerError(f"the layer names {member.name!r} twice",
                                 hint="dockerd and podman refuse such a layer too (duplicate paths); rebuild "
                                      "or re-push the image with a tool that writes each path once")
            self.named.add(rel)
        base = posixpath.basename(rel)
        if base.startswith(_WH_PREFIX):
            self._whiteout(rel, base)
            return
        if rel == "":
            if not member.isdir():
                raise LayerError(f"tar entry {member.name!r} would change the type of the root directory")
            if self.root_attrs:
                self._attrs_dir(member, "", opaque=False)
            return
        pfd = self._parent(posixpath.dirname(rel))
        try:
            was_whiteout = rel in self.whiteouts
            self.whiteouts.discard(rel)
            if member.isdir():
                self._directory(pfd, base, rel, member, opaque=was_whiteout)
            elif member.isreg():
                self._file(pfd, base, tar, member, data)
            elif member.issym():
                self._symlink(pfd, base, member)
            elif member.islnk():
                self._hardlink(pfd, base, rel, member)
            elif member.ischr() or member.isblk() or member.isfifo():
                self._node(pfd, base, member)
            else:
                raise LayerError(f"tar entry {member.name!r} has unsupported type {member.type!r}")
        finally:
            while self._orphans:
                os.close(self._orphans.pop())
        self.created.add(rel)

    def _directory(self, pfd: int, name: str, rel: str, m: tarfile.TarInfo, *, opaque: bool) -> None:
        try:
            os.mkdir(name, 0o700, dir_fd=pfd)
        except FileExistsError:
            if not self._clear(pfd, name, keep_dir=True):
                os.mkdir(name, 0o700, dir_fd=pfd)
        self.implicit.pop(rel, None)
        old = self.dirs.get(rel)
        self._attrs_dir(m, rel, opaque=opaque or (old is not None and old.opaque))

    def _attrs_dir(self, m: tarfile.TarInfo, rel: str, *, opaque: bool) -> None:
        """Owner, xattrs, mode and time of a directory entry, applied by finish (a directory
        over a directory merges: the last entry's attributes win)."""
        self.dirs[rel] = _DirAttrs(m.uid, m.gid, m.mode & 0o7777, int(m.mtime * 1e9), tuple(_xattrs(m)), opaque)

    def _create(self, pfd: int, name: str, make: Callable[[], Any]) -> Any:
        """make() creates `name` exclusively; if something is there, remove it (never
        following it) and try once more."""
        try:
            return make()
        except FileExistsError:
            self._clear(pfd, name, keep_dir=False)
            return make()

    def _file(self, pfd: int, name: str, tar: tarfile.TarFile | None, m: tarfile.TarInfo,
              data: bytes | None) -> None:
        mode = m.mode & 0o7777
        # Created with its final bits only when nothing is left to change but the time: the
        # creator's own file (no chown, which would clear setuid), no setuid/setgid/sticky bit.
        final = self.fresh and (m.uid, m.gid) == self.owner and not mode & 0o7000
        fd = self._create(pfd, name, lambda: os.open(
            name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            mode if final else 0o600, dir_fd=pfd))
        self.unpacked += m.size         # its length (holes too, as st_size has them)
        try:
            if data is not None:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            elif m.size and tar is not None and self.stream is not None:
                src = _member_reader(self.stream, tar, m)
                put, skip = sparse.fd_writer(fd)
                left = m.size
                while left > 0:
                    chunk = src.read(min(left, _CHUNK))
                    if not chunk:
                        raise LayerError(f"the layer ends inside file {m.name!r} (truncated)")
                    if self.holes:
                        sparse.write(chunk, m.size - left, put, skip)
                    else:
                        put(memoryview(chunk))
                    left -= len(chunk)
                if self.holes:
                    os.ftruncate(fd, m.size)        # (a hole at the end: the file's length)
            if not final:
                os.fchown(fd, m.uid, m.gid)
            self._set_xattrs(fd, m)
            if not final or mode & self.umask:
                os.fchmod(fd, mode)
            ns = int(m.mtime * 1e9)
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)

    def _symlink(self, pfd: int, name: str, m: tarfile.TarInfo) -> None:
        if "\x00" in m.linkname or not m.linkname:
            raise LayerError(f"symlink {m.name!r} has an empty or NUL-containing target")
        self._create(pfd, name, lambda: os.symlink(m.linkname, name, dir_fd=pfd))
        self.unpacked += len(os.fsencode(m.linkname))      # a symlink's st_size
        os.chown(name, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        ns = int(m.mtime * 1e9)
        os.utime(name, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)

    def _hardlink(self, pfd: int, name: str, rel: str, m: tarfile.TarInfo) -> None:
        target = _clean(m.linkname)
        if target == "" or target == rel:
            raise LayerError(f"hardlink {m.name!r} -> {m.linkname!r} has no valid target")
        tfd = self._dir_fd(posixpath.dirname(target))
        try:
            tname = posixpath.basename(target)
            st = self._lstat(tfd, tname)
            if st is None or target in self.whiteouts:
                if target in self.whiteouts:
                    st = None
                elif self.lowers_pending:
                    raise NeedsLowers(f"hardlink {m.name!r} -> {m.linkname!r} needs the layers below")
                else:
                    self._copy_up(tfd, tname, target)
                    st = self._lstat(tfd, tname)
            if st is None:
                raise LayerError(f"hardlink {m.name!r}: target {m.linkname!r} does not exist in the image")
            if stat.S_ISDIR(st.st_mode):
                raise LayerError(f"hardlink {m.name!r}: target {m.linkname!r} is a directory")
            self._create(pfd, name, lambda: os.link(tname, name, src_dir_fd=tfd, dst_dir_fd=pfd,
                                                    follow_symlinks=False))
        finally:
            os.close(tfd)

    def _copy_up(self, tfd: int, tname: str, target: str) -> None:
        """Copy a lower layer's non-directory at `target` into this layer (for a hardlink)."""
        found = self._lower_lookup(target)
        if found is None:
            return
        lfd, st = found
        if stat.S_ISDIR(st.st_mode):
            return
        self.recount = True             # a file of this layer that no entry of it made
        ldir, lname = posixpath.split(target)
        lpfd = openat2.openat2(lfd, ldir or ".", _O_DIR, 0,
                               openat2.RESOLVE_BENEATH | openat2.RESOLVE_NO_SYMLINKS)
        try:
            if stat.S_ISREG(st.st_mode):
                src = os.open(lname, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=lpfd)
                dst = os.open(tname, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                              0o600, dir_fd=tfd)
                try:
                    while chunk := os.read(src, _CHUNK):
                        view = memoryview(chunk)
                        while view:
                            view = view[os.write(dst, view):]
                    for xname in os.listxattr(src):
                        if kept_xattr(xname):
                            os.setxattr(dst, xname, os.getxattr(src, xname))
                    os.fchown(dst, st.st_uid, st.st_gid)
                    os.fchmod(dst, stat.S_IMODE(st.st_mode))
                    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
                finally:
                    os.close(src)
                    os.close(dst)
                if st.st_nlink > 1:
                    self._copy_up_links(lfd, st, tfd, tname, target)
            elif stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(lname, dir_fd=lpfd), tname, dir_fd=tfd)
                os.chown(tname, st.st_uid, st.st_gid, dir_fd=tfd, follow_symlinks=False)
            else:
                os.mknod(tname, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev, dir_fd=tfd)
                os.chown(tname, st.st_uid, st.st_gid, dir_fd=tfd, follow_symlinks=False)
                self._chmod_node(tfd, tname, stat.S_IMODE(st.st_mode))
        finally:
            os.close(lpfd)

    def _copy_up_links(self, lfd: int, st: os.stat_result, tfd: int, tname: str, target: str) -> None:
        """The copied-up file had other names in its lower layer: link those that the merged
        view still shows to the copy too, so the hardlink group stays whole (as in a flat
        rootfs)."""
        for rel in self._links_in_lower(lfd).get(st.st_ino, []):
            if rel == target or rel in self.created:
                continue
            found = self._lower_lookup(rel)
            if found is None or found[0] != lfd or found[1].st_ino != st.st_ino:
                continue
            pfd = self._dir_fd(posixpath.dirname(rel))
            try:
                name = posixpath.basename(rel)
                if self._lstat(pfd, name) is None:
                    os.link(tname, name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
            finally:
                os.close(pfd)

    def _links_in_lower(self, lfd: int) -> dict[int, list[str]]:
        """Inode -> paths of the multiply-linked regular files of one lower layer (built once
        per lower, on the first cross-layer hardlink that needs it)."""
        cached = self._link_maps.get(lfd)
        if cached is not None:
            return cached
        out: dict[int, list[str]] = {}
        top = _proc(lfd)
        for dirpath, _dirs, files in os.walk(top):
            for f in files:
                path = os.path.join(dirpath, f)
                try:
                    lst = os.lstat(path)
                except OSError:
                    continue
                if stat.S_ISREG(lst.st_mode) and lst.st_nlink > 1:
                    out.setdefault(lst.st_ino, []).append(os.path.relpath(path, top))
        self._link_maps[lfd] = out
        return out

    def _node(self, pfd: int, name: str, m: tarfile.TarInfo) -> None:
        if m.isfifo():
            kind, dev = stat.S_IFIFO, 0
        else:
            if not (0 <= m.devmajor <= 0xFFFFFFFF and 0 <= m.devminor <= 0xFFFFFFFF):
                raise LayerError(f"device {m.name!r} has an out-of-range number {m.devmajor}:{m.devminor}")
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            dev = os.makedev(m.devmajor, m.devminor)
        self._create(pfd, name, lambda: os.mknod(name, kind | 0o600, dev, dir_fd=pfd))
        os.chown(name, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            self._set_xattrs(_proc(fd), m)
            os.chmod(_proc(fd), m.mode & 0o7777)
            ns = int(m.mtime * 1e9)
            os.utime(_proc(fd), ns=(ns, ns))
        finally:
            os.close(fd)

    @staticmethod
    def _chmod_node(pfd: int, name: str, mode: int) -> None:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            os.chmod(_proc(fd), mode)
        finally:
            os.close(fd)

    def _set_xattrs(self, target: int | str, m: tarfile.TarInfo) -> None:
        """The member's xattrs on an open fd, or on a /proc/self/fd path (O_PATH fds of devices)."""
        for xname, value in _xattrs(m):
            self._set_xattr(target, xname, value)

    @staticmethod
    def _set_xattr(target: int | str, xname: str, value: bytes) -> None:
        try:
            os.setxattr(target, xname, value)
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                raise

    def _whiteout(self, rel: str, base: str) -> None:
        self._invalidate()
        parent = posixpath.dirname(rel)
        if base == _WH_OPAQUE:
            fd = self._dir_fd(parent)
            try:
                if self.has_lowers:
                    os.setxattr(_proc(fd), _OPAQUE_XATTR, b"y")
            finally:
                os.close(fd)
            return
        if base.startswith(_WH_META):
            return  # aufs bookkeeping (.wh..wh.plnk etc.): not content
        victim = base[len(_WH_PREFIX):]
        if victim in ("", ".", ".."):
            raise LayerError(f"invalid whiteout {rel!r}: it names {victim or 'nothing'!r}")
        if not self.has_lowers:
            return  # bottom layer: nothing below to hide
        target = posixpath.join(parent, victim)
        pfd = self._dir_fd(parent)
        try:
            st = self._lstat(pfd, victim)
            if target in self.created:
                # A whiteout never deletes its own layer's entry, but the lower one is gone:
                # a directory of this layer must not merge with the lower one any more.
                if st is not None and stat.S_ISDIR(st.st_mode):
                    os.setxattr(_proc_at(pfd, victim), _OPAQUE_XATTR, b"y")
                return
            if st is not None:
                self._clear(pfd, victim, keep_dir=False)
            os.mknod(victim, stat.S_IFCHR, 0, dir_fd=pfd)
            self.whiteouts.add(target)
        finally:
            os.close(pfd)

    def finish(self) -> None:
        """The directories' attributes, in one pass once their contents are in place."""
        for rel, a in self.dirs.items():
            fd = self._open_dir(rel)
            if fd < 0:
                continue  # replaced by a non-directory later in the layer
            try:
                if a.uid >= 0:
                    os.fchown(fd, a.uid, a.gid)
                for xname, value in a.xattrs:
                    self._set_xattr(fd, xname, value)
                if a.opaque:
                    os.setxattr(fd, _OPAQUE_XATTR, b"y")
                os.fchmod(fd, a.mode)
                if a.mtime_ns >= 0:
                    os.utime(fd, ns=(a.mtime_ns, a.mtime_ns))
            finally:
                os.close(fd)

    def _open_dir(self, rel: str) -> int:
        """A read fd of directory `rel` of this layer, never through a symlink; -1 if none."""
        try:
            return openat2.openat2(self.root_fd, rel or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                                   | os.O_CLOEXEC, 0, openat2.RESOLVE_BENEATH | openat2.RESOLVE_NO_SYMLINKS)
        except OSError:
            return -1

    def fix_implicit(self, rels: Sequence[str]) -> None:
        """The lower directory's owner, mode and time on each implicit parent in `rels`."""
        for rel in rels:
            low = self._lower_lookup(rel)
            if low is None or not stat.S_ISDIR(low[1].st_mode):
                continue
            fd = self._open_dir(rel)
            if fd < 0:
                continue
            st = low[1]
            try:
                os.fchown(fd, st.st_uid, st.st_gid)
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
                os.utime(fd, ns=(st.st_mtime_ns, st.st_mtime_ns))
            finally:
                os.close(fd)


def _proc_at(pfd: int, name: str) -> str:
    return f"/proc/self/fd/{pfd}/{name}"


def apply_layer(
    blob: BinaryIO,
    dest: Path,
    *,
    lowers: Sequence[Path] = (),
    expected_diff_id: str | None = None,
    limits: Limits | None = None,
    compressed_size: int | None = None,
    root_attrs: bool = True,
    lowers_pending: bool = False,
    owner: tuple[int, int] | None = None,
    holes: bool = False,
) -> ApplyResult:
    """Apply the layer `blob` (compressed or not) into `dest`, an empty directory (or, for a
    build's ADD of an archive, the destination directory in the rootfs being built).

    `lowers` are the fs dirs of the layers below, TOP-MOST FIRST (as overlayfs orders them);
    they are only read (implicit parents' attributes, hardlink copy-up). Raises LayerError
    (an ImageError) on any problem, including a DiffID different from `expected_diff_id`;
    the caller must then discard `dest` entirely. An image layer (one with an `expected_diff_id`)
    that names a path twice is refused, as dockerd's and podman's layer stores refuse it: which of
    the two a tool shows would depend on the tool (a scanner may read the first, the snapshot
    keeps the last); an archive (docker cp, ADD, a volume import) applies its entries in order. `compressed_size` (the blob's size) turns
    on the ratio cap of `limits`. `root_attrs=False` leaves `dest`'s own owner, mode and times
    when the archive has a root entry ("./"), as Docker's ADD does. A full file system is not the
    layer's fault: that OSError (ENOSPC, EDQUOT) passes unchanged. `owner` (uid, gid): every
    entry's owner instead of the archive's (a build's `ADD --chown` of an archive). `holes=True`:
    a file's whole 4 KiB blocks of zeros are holes (runtime/sparse.py; a volume import: a sparse
    file's holes, which a tar carries as zeros, are holes again, as `cp --sparse=auto` makes them).

    `lowers_pending=True` (and no `lowers`): the layer has lowers that are not unpacked yet.
    The result's `implicit_dirs` then go to `fix_implicit_dirs` once they are; NeedsLowers
    means the layer must be applied again (into an empty `dest`) with its lowers.
    """
    limits = limits or Limits()
    stream = _Decompressed(blob, limits.cap(compressed_size))
    applier = _Applier(dest, lowers, stream, root_attrs=root_attrs, lowers_pending=lowers_pending, holes=holes,
                       unique=expected_diff_id is not None)
    count = 0
    name = ""
    writer = _Writer(applier)
    try:
        try:
            try:
                # "r:" over our forward-only stream: tarfile reads headers straight from it
                # (its "r|" mode re-copies a whole buffer per 512-byte header read).
                with tarfile.open(fileobj=stream, mode="r:", tarinfo=_Member) as tar:  # type: ignore[call-overload]
                    for member in tar:
                        name = member.name
                        count += 1
                        if count > limits.max_entries:
                            raise LayerError(f"the layer has more than {limits.max_entries} entries (cap)")
                        if member.sparse is not None:
                            raise _sparse(member.name)
                        if owner is not None:
                            member.uid, member.gid = owner
                        if member.isreg() and member.size > _INLINE_MAX:
                            writer.drain()                  # big file: stream it from here
                            applier.apply(tar, member)
                        else:
                            data = _read_member(stream, tar, member) if member.isreg() else None
                            writer.put(member, data)
                writer.drain()
            except BaseException:
                writer.stop = True
                if writer.error is not None:
                    name = writer.error_name
                raise
            finally:
                writer.close()
            name = ""
            applier.finish()
            stream.drain()
        except LayerError:
            raise
        except STREAM_ERRORS as exc:
            raise LayerError(f"the layer is not a valid tar stream{_at(name)}: {exc}",
                             hint="the blob is corrupt or truncated; pull again") from None
        except RecursionError:
            raise LayerError(f"the layer chains too many extended tar headers{_at(name)}",
                             hint="the image is hostile or corrupt") from None
        except OSError as exc:
            if diskfull.is_disk_full(exc):
                raise                       # not the layer's fault: the caller says where and how much
            raise LayerError(f"applying the layer failed{_at(name)}: {exc}") from None
        except Exception as exc:
            if type(exc).__module__.startswith("zstd"):
                raise LayerError(f"the layer's zstd stream is corrupt{_at(name)}: {exc}") from None
            raise
    finally:
        applier.close()
    diff_id = "sha256:" + stream.hash.hexdigest()
    if expected_diff_id is not None and diff_id != expected_diff_id:
        raise LayerError(f"wrong diff id: the layer decompresses to {diff_id}, the image config says "
                         f"{expected_diff_id}", hint="the image is corrupt or was tampered with")
    # walked only for a snapshot (`dest` was empty): an ADD's destination holds more than the layer
    unpacked = unpacked_size(dest) if applier.recount and applier.fresh else applier.unpacked
    return ApplyResult(diff_id=diff_id, size=stream.size, entries=count, unpacked=unpacked,
                       implicit_dirs=tuple(applier.implicit))


def fix_implicit_dirs(dest: Path, lowers: Sequence[Path], rels: Sequence[str]) -> None:
    """Finish a layer applied with `lowers_pending`, now that its `lowers` (TOP-MOST FIRST) are
    unpacked: its implicit parents `rels` get the owner, mode and time of the same directory
    in the lowers, as apply_layer gives them when the lowers are there from the start."""
    if not rels:
        return
    applier = _Applier(dest, lowers, None)
    try:
        applier.fix_implicit(rels)
    finally:
        applier.close()


def _member_reader(stream: _Decompressed, tar: tarfile.TarFile, m: tarfile.TarInfo) -> Any:
    """Where a regular member's data is read from: straight from our forward-only stream when
    it is positioned at the data (tarfile's extractfile wrapper costs more than the small
    files it reads), else through tarfile."""
    if stream.tell() == m.offset_data:
        return stream
    return tar.extractfile(m)


def _read_member(stream: _Decompressed, tar: tarfile.TarFile, m: tarfile.TarInfo) -> bytes:
    src = _member_reader(stream, tar, m)
    data = src.read(m.size) if src is not None else b""
    if len(data) != m.size:
        raise LayerError(f"the layer ends inside file {m.name!r} (truncated)")
    return bytes(data)


class _Writer:
    """A second stage that applies entries in tar order while the first stage decompresses,
    hashes and parses the next ones. It is the only thread touching the snapshot (one
    writer, entries in order: the extraction contract holds), and only small files'
    contents travel through it, so memory stays bounded (64 entries of at most 1 MiB)."""

    def __init__(self, applier: _Applier) -> None:
        self.applier = applier
        self.queue: queue.Queue[tuple[tarfile.TarInfo, bytes | None] | None] = queue.Queue(maxsize=64)
        self.error: BaseException | None = None
        self.error_name = ""
        self.stop = False               # set by the reader when it fails: skip the rest
        self.thread = threading.Thread(target=self._run, name="layer-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    return
                if self.error is None and not self.stop:
                    member, data = item
                    try:
                        self.applier.apply(None, member, data)
                    except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
                        self.error, self.error_name = exc, member.name
            finally:
                self.queue.task_done()

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, member: tarfile.TarInfo, data: bytes | None) -> None:
        self.check()
        self.queue.put((member, data))

    def drain(self) -> None:
        """Wait until every queued entry is applied."""
        self.queue.join()
        self.check()

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()


_INLINE_MAX = 1 << 20   # files up to this size go through the writer thread


def _at(name: str) -> str:
    return f" at entry {name!r}" if name else ""
