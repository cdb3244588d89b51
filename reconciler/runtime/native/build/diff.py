"""An overlay upper dir as an OCI layer: tar+gzip blob in the content store, with its DiffID.

The upper dir of a step's overlay holds exactly what the step changed. It is turned into a
layer tar (PAX, numeric owners, sorted, parents before children) with overlayfs' deletion
markers translated to OCI whiteouts: a 0:0 character device becomes an empty `.wh.<name>`,
a directory with `trusted.overlay.opaque=y` gets a `.wh..wh..opq` entry. Other
`trusted.overlay.*` xattrs are overlay bookkeeping and are dropped. Files with several links
inside the layer become tar hard links. The DiffID is the sha256 of the tar; the blob digest
that of the gzip stream.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import secrets
import stat
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from reconciler._dataclass import dataclass
from reconciler.runtime import errors
from reconciler.runtime.native.images import content

__all__ = ["LayerBlob", "changed", "changes", "write_layer"]

_OPAQUE = "trusted.overlay.opaque"
_CHUNK = 1 << 20
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class LayerBlob:
    """A layer a build wrote: its blob's digest and size, its diff id and entries."""

    digest: str         # of the compressed blob
    size: int           # compressed bytes
    diff_id: str        # of the uncompressed tar
    entries: int


class _HashingWriter:
    """Counts and hashes what passes through to `sink`."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        if self.sink is not None:
            self.sink.write(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        pass


def _entries(upper: Path, skip: frozenset[str],
             prune: Mapping[str, tuple[int, int, int] | None]) -> Iterator[tuple[str, os.stat_result, bool]]:
    """(relative path, lstat, opaque) for everything under `upper`, parents first, sorted;
    `skip` names relative paths left out with everything below them; a directory in `prune`
    is left out when nothing below it is kept and it is as it was ((mode, uid, gid), or None
    when it did not exist before)."""

    def walk(d: Path, rel: str) -> Iterator[tuple[str, os.stat_result, bool]]:
        with os.scandir(d) as it:
            items = sorted(it, key=lambda e: e.name)
        for e in items:
            r = f"{rel}/{e.name}" if rel else e.name
            if r in skip:
                continue
            st = e.stat(follow_symlinks=False)
            for marker in _UNSUPPORTED:
                with contextlib.suppress(OSError):
                    if os.getxattr(e.path, marker, follow_symlinks=False) is not None:
                        raise errors.ImageError(
                            f"{r}: overlayfs left a {marker} entry, which a layer cannot carry",
                            hint="load the overlay module with metacopy=off and redirect_dir=off")
            opaque = False
            if stat.S_ISDIR(st.st_mode):
                with contextlib.suppress(OSError):
                    opaque = os.getxattr(e.path, _OPAQUE, follow_symlinks=False) == b"y"
                children = list(walk(Path(e.path), r))
                if not children and not opaque and (r in _PRUNE_IF_EMPTY or _unchanged(r, st, prune)):
                    continue    # only a parent of skipped mount points
                yield r, st, opaque
                yield from children
            else:
                yield r, st, False

    yield from walk(upper, "")


def changed(upper: Path, *, skip: frozenset[str] = frozenset(), limit: int = 5) -> list[str]:
    """Up to `limit` of the changes `write_layer` would carry, as `/`-rooted paths: files, links,
    deletions (`PATH (deleted)`), opaque directories and directories with nothing changed below
    them (made or changed themselves), never the parents of a change."""
    out: list[str] = []
    pending: str | None = None                  # a directory: a change unless an entry below it follows
    for rel, st, opaque in _entries(upper, skip, {}):
        if pending is not None and not rel.startswith(pending + "/"):
            out.append("/" + pending)
        pending = None
        if len(out) >= limit:
            return out
        if stat.S_ISDIR(st.st_mode) and not opaque:
            pending = rel
        elif stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            out.append(f"/{rel} (deleted)")
        else:
            out.append("/" + rel)
    if pending is not None:
        out.append("/" + pending)
    return out[:limit]


def _whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, _OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _layers_at(lowers: Sequence[Path], rel: str) -> Iterator[tuple[Path, os.stat_result]]:
    """The entries that make what an overlay shows at `rel` below its upper dir (`lowers` top
    first), each (path, lstat), top first: the first is what it shows, and below a directory
    those further down are merged into it, until a layer hides the rest (a whiteout, a file or
    a link, an opaque directory, at `rel` or above it). Nothing is followed: a layer's link
    points into the container, not into this host."""
    parts = rel.split("/")
    for layer in lowers:
        d, hides, present = layer, False, True
        for name in parts[:-1]:
            d = d / name
            try:
                st = os.lstat(d)
            except FileNotFoundError:
                present = False
                break
            if not stat.S_ISDIR(st.st_mode):
                return                      # a whiteout, file or link here hides what lies below
            hides = hides or _opaque(d)
        if present:
            here = d / parts[-1]
            try:
                st = os.lstat(here)
            except FileNotFoundError:
                pass
            else:
                if _whiteout(st):
                    return
                yield here, st
                if not stat.S_ISDIR(st.st_mode) or _opaque(here):
                    return
        if hides:
            return


def _lower_names(lowers: Sequence[Path], rel: str) -> list[str]:
    """The names in the directory `rel` as the overlay's lower layers show it (whiteouts hide)."""
    seen: set[str] = set()
    names: list[str] = []
    for path, st in _layers_at(lowers, rel):
        if not stat.S_ISDIR(st.st_mode):
            break
        with os.scandir(path) as it:
            for e in it:
                if e.name not in seen:
                    seen.add(e.name)
                    if not _whiteout(e.stat(follow_symlinks=False)):
                        names.append(e.name)
    return names


def changes(upper: Path, lowers: Sequence[Path], *, skip: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """What `docker diff` lists of a container whose overlay has `upper` over `lowers` (top
    first): ("A" | "C" | "D", `/`-rooted path) in docker's walk order (each directory's
    entries sorted by name, a directory before what is in it), as dockerd compares the
    container's files with its image's: an entry the image does not have is A; one it has is
    C (a directory only when its mode or owner changed: its times change with its entries);
    what the image has and the container no more is D (a whiteout; in a directory emptied and
    filled again, an opaque one, each entry of the image's it has not again); the directories
    above a change that the image has are C, as docker lists them. `skip`, as commit's
    (`write_layer`): the runtime's mount points, the mounts' targets."""
    kinds: dict[str, str] = {}
    hidden: set[str] = set()            # directories whose image entries the upper dir hides (opaque)
    for rel, st, opaque in _entries(upper, skip, {}):
        parent = rel.rpartition("/")[0]
        if _whiteout(st):
            kinds[rel] = "D"
            continue
        was = next(_layers_at(lowers, rel), (None, None))[1]
        if was is None:
            kinds[rel] = "A"
        elif not (stat.S_ISDIR(st.st_mode) and stat.S_ISDIR(was.st_mode)) or \
                (st.st_mode, st.st_uid, st.st_gid) != (was.st_mode, was.st_uid, was.st_gid):
            kinds[rel] = "C"            # a directory: when its mode or owner changed, not its times
        if stat.S_ISDIR(st.st_mode) and (opaque or parent in hidden):
            hidden.add(rel)
            if was is not None and stat.S_ISDIR(was.st_mode):
                present = set(os.listdir(upper / rel))
                for name in _lower_names(lowers, rel):
                    gone = f"{rel}/{name}"
                    if name not in present and gone not in skip:
                        kinds[gone] = "D"
    for rel in list(kinds):
        parent = rel.rpartition("/")[0]
        while parent and parent not in kinds:
            kinds[parent] = "C"             # the image has it: a new one is listed (A) already
            parent = parent.rpartition("/")[0]
    return [(kinds[rel], "/" + rel) for rel in sorted(kinds, key=lambda r: r.split("/"))]


def _unchanged(rel: str, st: os.stat_result, prune: Mapping[str, tuple[int, int, int] | None]) -> bool:
    if rel not in prune:
        return False
    was = prune[rel]
    return was is None or was == (st.st_mode, st.st_uid, st.st_gid)


# Overlay features that leave entries whose content is elsewhere (off by default; refused).
_UNSUPPORTED = ("trusted.overlay.metacopy", "trusted.overlay.redirect")

# Directories created or copied up only because the runtime put mount points in them.
_PRUNE_IF_EMPTY = frozenset({"etc"})


def _xattrs(path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return out
    for n in names:
        if n.startswith(("trusted.overlay.", "user.overlay.", "security.selinux", "system.")):
            continue
        with contextlib.suppress(OSError):
            out["SCHILY.xattr." + n] = os.getxattr(path, n, follow_symlinks=False).decode("utf-8", "surrogateescape")
    return out


def _clamp(mtime: float, epoch: int | None) -> int:
    return int(mtime) if epoch is None else min(int(mtime), epoch)


def write_layer(upper: Path, store: content.ContentStore, tmp_dir: Path,
                *, skip: frozenset[str] = frozenset(), prune: Mapping[str, tuple[int, int, int] | None] | None = None,
                level: int = 6, epoch: int | None = None) -> LayerBlob:
    """Turn `upper` into a gzip layer blob in `store`; with `epoch` (SOURCE_DATE_EPOCH) no
    entry's mtime is later than it (BuildKit's rewrite-timestamp), so the same inputs give
    the same bytes whenever they are built."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"layer-{secrets.token_hex(6)}.tar.gz"
    count = 0
    try:
        with open(tmp, "wb") as raw:
            compressed = _HashingWriter(raw)
            gz = gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0,
                               compresslevel=level)
            tar_stream = _HashingWriter(gz)
            links: dict[tuple[int, int], str] = {}
            with tarfile.open(fileobj=tar_stream, mode="w", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                for rel, st, opaque in _entries(upper, skip, prune or {}):
                    path = os.path.join(upper, rel)
                    count += 1
                    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                        parent, name = os.path.split(rel)
                        ti = tarfile.TarInfo(os.path.join(parent, ".wh." + name))
                        ti.mtime = _clamp(st.st_mtime, epoch)
                        tar.addfile(ti)
                        continue
                    ti = tarfile.TarInfo(rel)
                    ti.mode = stat.S_IMODE(st.st_mode)
                    ti.uid, ti.gid = st.st_uid, st.st_gid
                    ti.uname = ti.gname = ""
                    ti.mtime = _clamp(st.st_mtime, epoch)
                    ti.pax_headers = _xattrs(path)
                    if stat.S_ISDIR(st.st_mode):
                        ti.type = tarfile.DIRTYPE
                        tar.addfile(ti)
                        if opaque:
                            wh = tarfile.TarInfo(rel + "/.wh..wh..opq")
                            wh.mtime = _clamp(st.st_mtime, epoch)
                            tar.addfile(wh)
                    elif stat.S_ISLNK(st.st_mode):
                        ti.type = tarfile.SYMTYPE
                        ti.linkname = os.readlink(path)
                        tar.addfile(ti)
                    elif stat.S_ISREG(st.st_mode):
                        key = (st.st_dev, st.st_ino)
                        if st.st_nlink > 1 and key in links:
                            ti.type = tarfile.LNKTYPE
                            ti.linkname = links[key]
                            tar.addfile(ti)
                            continue
                        if st.st_nlink > 1:
                            links[key] = rel
                        ti.size = st.st_size
                        with open(path, "rb") as f:
                            tar.addfile(ti, f)
                    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                        ti.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
                        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                        tar.addfile(ti)
                    elif stat.S_ISFIFO(st.st_mode):
                        ti.type = tarfile.FIFOTYPE
                        tar.addfile(ti)
                    # sockets are not content
            gz.close()
        diff_id = "sha256:" + tar_stream.hash.hexdigest()
        digest = "sha256:" + compressed.hash.hexdigest()
        size = compressed.size
        if not store.has(digest):
            with store.ingest(digest, size) as ing:
                if not ing.committed:
                    ing.reset()
                    with open(tmp, "rb") as f:
                        while chunk := f.read(_CHUNK):
                            ing.write(chunk)
                    ing.commit()
        return LayerBlob(digest=digest, size=size, diff_id=diff_id, entries=count)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
