"""The build context: `.dockerignore`, source selection, input hashes, and copies into a rootfs.

Every path is opened relative to the context's directory fd with openat2
RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS (symlinks on the way are followed but can never leave
the context: a source reached through a symlink pointing outside is refused). The context is
the tree `.dockerignore` leaves, as BuildKit sends it: a source's symlinks are followed in that
tree only (`BuildContext.real`: each path reached, by its real place, must be kept), and a
directory reached through a link is filtered by its real path's rules. Symlinks inside a copied
directory are copied as links, never read through. Destinations are resolved inside
the rootfs being built (RESOLVE_IN_ROOT), so an image's own absolute symlinks stay inside it;
directories a copy or WORKDIR makes are made through such symlinks, one component at a time
by fd, never outside the rootfs. Below a destination directory every entry is opened with no
symlink followed at all (RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS). A copy keeps what BuildKit
keeps: modes, times (directories' set last), hardlinks within a source, and the xattrs an
image layer carries (security.capability included); FIFOs and device nodes are made with mknod,
never opened, sockets left out (dockerd's builder). A local archive that ADD unpacks goes
through the image layer extractor (layers.py) into the destination directory, with the image
layers' limits; tarfile never extracts onto host paths.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import posixpath
import re
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler._dataclass import dataclass
from reconciler.runtime import buildinputs, errors
from reconciler.runtime.native import openat2

if TYPE_CHECKING:
    from typing import Self

    # the extractor (tarfile, isal, its threads) loads when ADD unpacks an archive, not for
    # every build (#21: an unchanged rebuild)
    from reconciler.runtime.native.images import layers

__all__ = ["BuildContext", "Chmod", "CopyOptions", "IgnoreRules", "Source", "classic_source_hash", "classic_source_texts",
           "copy_parents", "copy_sources", "ensure_dir",
           "hash_sources", "ignore_file_for", "is_archive", "is_dir_in", "load_digests", "save_digests", "unpack",
           "unpack_context"]

_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_DIGESTS: dict[tuple[int, int, int, int, int], str] = {}    # file identity and times -> sha256
_DIGESTS_MAX = 100_000
_DIGESTS_SAVED = [0]        # len(_DIGESTS) when last loaded or saved: save_digests writes only news
_BENEATH = openat2.RESOLVE_BENEATH | openat2.RESOLVE_NO_MAGICLINKS


class ContextError(errors.InvalidArgument):
    """A source is missing, or reached outside the build context."""


def load_digests(path: Path) -> None:
    """The file digests an earlier build process remembered (`save_digests`), so an unchanged
    build reads no file's content, only its lstat: the key is the file's identity and times
    (device, inode, size, mtime and ctime in ns; any write moves ctime, which no one can set
    back), as for the in-process memo. A missing or unreadable index is an empty one."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            rows = json.load(f)
        for key, digest in rows:
            if len(_DIGESTS) >= _DIGESTS_MAX:
                break
            _DIGESTS.setdefault((int(key[0]), int(key[1]), int(key[2]), int(key[3]), int(key[4])), str(digest))
    except (OSError, ValueError, TypeError, IndexError):
        return
    _DIGESTS_SAVED[0] = len(_DIGESTS)


def save_digests(path: Path) -> None:
    """Write the remembered file digests to `path` (private, replaced atomically) if any is new."""
    import json

    if len(_DIGESTS) == _DIGESTS_SAVED[0]:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump([[list(k), v] for k, v in _DIGESTS.items()], f, separators=(",", ":"))
    os.replace(tmp, path)
    _DIGESTS_SAVED[0] = len(_DIGESTS)


# ------------------------------------------------------------------------------ .dockerignore

class IgnoreRules(buildinputs.IgnoreRules):
    """`.dockerignore` patterns (runtime/buildinputs.py: moby's rules, their one home), read from
    the context through its directory fd."""

    @classmethod
    def read(cls, root_fd: int, ignore_file: str | None = None) -> Self:
        """The context's `.dockerignore`, or `ignore_file` (the Dockerfile's own) instead."""
        try:
            if ignore_file is not None:
                fd = os.open(ignore_file, os.O_RDONLY | os.O_CLOEXEC)
            else:
                fd = openat2.openat2(root_fd, ".dockerignore", os.O_RDONLY, 0, _BENEATH)
        except FileNotFoundError:
            return cls([])
        except OSError as exc:
            raise ContextError(f".dockerignore cannot be read: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            text = f.read(1 << 20).decode("utf-8", "replace")
        return cls.parse(text)


_NO_RULES = IgnoreRules([])
ignore_file_for = buildinputs.ignore_file_for
_glob_regex = buildinputs.glob_regex


def _has_wildcards(path: str) -> bool:
    """Whether a source path is a pattern (Go's rule in BuildKit: `*`, `?` or `[`, a character
    after a backslash taken as it is)."""
    i = 0
    while i < len(path):
        if path[i] == "\\":
            i += 2
            continue
        if path[i] in "*?[":
            return True
        i += 1
    return False


# ------------------------------------------------------------------------------ sources

@dataclass(frozen=True)
class Source:
    """One source argument of COPY/ADD resolved to a path under its root."""

    rel: str            # path relative to the root as named ("" = the root itself)
    is_dir: bool
    real: str | None = None     # where it is, its symlinks followed (None: `rel`), read there

    @property
    def at(self) -> str:
        """The path read: `real`, else `rel`."""
        return self.rel if self.real is None else self.real


class BuildContext:
    """A directory read through an fd; for a stage or image (`--from`) too, then unfiltered."""

    def __init__(self, path: str, *, ignore: bool = True, label: str = "the build context",
                 dockerfile: str | None = None) -> None:
        self.path = path
        self.label = label
        try:
            self.fd = os.open(path, _DIR)
        except OSError as exc:
            raise ContextError(f"{label} {path} cannot be opened: {exc.strerror}") from None
        self.rules = IgnoreRules.read(self.fd, ignore_file_for(dockerfile)) if ignore else _NO_RULES
        self.in_root = not ignore       # a stage's rootfs: absolute symlinks resolve in it
        self.hashes: dict[tuple[object, ...], str] = {}   # hash_sources of this build, by its arguments
        self.first_names: dict[tuple[int, int], str] | None = None  # a hard-linked file's first name (_first_name)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> BuildContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self, rel: str, flags: int) -> int:
        """Open `rel` (symlinks followed inside the root only)."""
        try:
            if self.in_root:
                return openat2.open_in_root(self.fd, rel or ".", flags)
            return openat2.openat2(self.fd, rel or ".", flags, 0, _BENEATH)
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                raise ContextError(f"{rel}: a symlink leads outside {self.label}; refusing to read it",
                                   hint="copy the file into the context instead of linking to it") from None
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                raise ContextError(f"{rel or '.'}: not found in {self.label}") from None
            raise ContextError(f"{rel}: {exc.strerror}") from None

    def lstat(self, rel: str) -> os.stat_result:
        parent, name = posixpath.split(rel)
        fd = self.open(parent, _DIR)
        try:
            return os.stat(name, dir_fd=fd, follow_symlinks=False)
        finally:
            os.close(fd)

    def resolve(self, pattern: str) -> list[Source]:
        """The sources a COPY argument names: a path, or a glob over the tree (BuildKit's
        rules: a path must be there, a glob may match nothing, the directories before its
        first wildcard must be there). What .dockerignore excludes is not there, except a
        directory below which a `!` pattern keeps something: it holds only what is kept."""
        clean = posixpath.normpath("/" + pattern).lstrip("/")
        if clean.startswith("../") or clean == "..":
            raise ContextError(f"{pattern}: outside {self.label}")
        if not _has_wildcards(clean):
            if self.in_root:
                fd = self.open(clean, os.O_PATH)
                try:
                    return [Source(clean, stat.S_ISDIR(os.fstat(fd).st_mode))]
                finally:
                    os.close(fd)
            real, st = self.real(clean, name=pattern)
            return [Source(clean, stat.S_ISDIR(st.st_mode), real)]
        return [Source(rel, is_dir, real) for rel, real, is_dir in self._glob(clean)]

    def real(self, rel: str, *, name: str | None = None) -> tuple[str, os.stat_result]:
        """Where `rel` is in the context as BuildKit sends it (the tree .dockerignore leaves),
        and its stat: each symlink on the way (the last one too) is followed inside that tree
        only, so every path reached, by its real place, must be there itself (a link to an
        excluded file, or into an excluded directory, leads nowhere; a directory reached
        through a link is filtered by the rules of its real path). A link that leaves the
        context (absolute, or `..` above its root) is refused, as openat2's RESOLVE_BENEATH
        refuses it."""
        name = rel if name is None else name
        todo = [p for p in rel.split("/") if p not in ("", ".")]
        done: list[str] = []
        links = 0
        st = os.fstat(self.fd)
        while todo:
            part = todo.pop(0)
            if part == "..":
                if not done:
                    raise ContextError(f"{name}: a symlink leads outside {self.label}; refusing to read it",
                                       hint="copy the file into the context instead of linking to it")
                done.pop()
                continue
            path = "/".join([*done, part])
            st = self._lstat_real(path, name)
            if stat.S_ISLNK(st.st_mode):
                if self.rules.excluded(path):
                    raise ContextError(f"{name}: not found in {self.label} (excluded by .dockerignore)")
                links += 1
                if links > _MAX_LINKS:
                    raise ContextError(f"{name}: too many levels of symbolic links")
                target = self.readlink(path)
                if target.startswith("/"):
                    raise ContextError(f"{name}: a symlink leads outside {self.label}; refusing to read it",
                                       hint="copy the file into the context instead of linking to it")
                todo[:0] = [p for p in target.split("/") if p not in ("", ".")]
                continue
            if not self._visible(path, st):
                raise ContextError(f"{name}: not found in {self.label} (excluded by .dockerignore)")
            done.append(part)
        return "/".join(done), st

    def _lstat_real(self, path: str, name: str) -> os.stat_result:
        """lstat of `path`, a path whose directories are real ones (no symlink on the way)."""
        parent, base = posixpath.split(path)
        try:
            fd = openat2.openat2(self.fd, parent or ".", _DIR, 0, _BENEATH | openat2.RESOLVE_NO_SYMLINKS)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                raise ContextError(f"{name}: not found in {self.label}") from None
            raise ContextError(f"{name}: {exc.strerror}") from None
        try:
            return os.stat(base, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            raise ContextError(f"{name}: not found in {self.label}") from None
        finally:
            os.close(fd)

    def resolve_parents(self, arg: str) -> tuple[list[tuple[Source, str]], bool]:
        """COPY --parents: each path the argument names with the part of it kept below the
        destination, and whether the destination is made. BuildKit's rules: the argument is
        cut at its first `/./` (none: at the root) into a pivot, a path or a glob (which may
        match nothing), and a pattern below it, matched as `.dockerignore` patterns are (`**`
        any number of directories; a directory that matches is copied whole); the pattern
        keeps its path. Without a wildcard anywhere the path must be there."""
        pivot, cut, pattern = arg.partition("/./")
        if not cut:
            pivot, pattern = "", arg
        pattern = posixpath.normpath("/" + pattern).lstrip("/")
        out: list[tuple[Source, str]] = []
        tops = self.resolve(pivot or ".")
        for top in tops:
            if not top.is_dir:
                out.append((top, posixpath.basename(top.rel)))
            elif not pattern:
                out.append((top, ""))
            else:
                out += [(Source(posixpath.join(top.rel, rel), is_dir, posixpath.join(top.at, rel)), rel)
                        for rel, is_dir in self._match_below(top.at, pattern)]
        if not out and tops and not _has_wildcards(pivot) and not _has_wildcards(pattern):
            raise ContextError(f"{arg}: not found in {self.label}")
        return out, bool(tops)

    def _match_below(self, base: str, pattern: str) -> list[tuple[str, bool]]:
        """(path below `base`, is a directory) of each entry matching `pattern`, the topmost
        only (what is below a match is copied with it); symlinks are matched, not followed."""
        rx = re.compile(_glob_regex(pattern))
        parts = [re.compile(_glob_regex(p)) if "**" not in p else None for p in pattern.split("/")]

        def could_match_below(rel: str) -> bool:
            names = rel.split("/")
            for i, name in enumerate(names):
                if i >= len(parts):
                    return False
                part = parts[i]
                if part is None:
                    return True
                if not part.match(name):
                    return False
            return len(names) < len(parts)

        found: list[tuple[str, bool]] = []

        def walk(sub: str) -> None:
            for name, st in self._entries(posixpath.join(base, sub) if sub else base):
                rel = f"{sub}/{name}" if sub else name
                full = posixpath.join(base, rel)
                if not self._visible(full, st):
                    continue
                is_dir = stat.S_ISDIR(st.st_mode)
                if rx.match(rel):
                    found.append((rel, is_dir))
                elif is_dir and could_match_below(rel):
                    walk(rel)

        walk("")
        return found

    def _glob(self, pattern: str) -> list[tuple[str, str | None, bool]]:
        """(path as matched, where it is (None: there), is a directory) of each match; in the
        context, names are matched in the real directories the pattern's path leads to, and
        a symlink matched last is followed as `real` follows it."""
        parts = pattern.split("/")
        first = next((i for i, part in enumerate(parts) if _has_wildcards(part)), len(parts) - 1)
        base = "/".join(parts[:first])
        top = self.resolve(base)[0] if base else Source("", True)
        if not top.is_dir:
            return []
        found: list[tuple[str, str | None, bool]] = [(base, top.real, True)]
        for i, part in enumerate(parts[first:], first):
            rx = re.compile(_glob_regex(part))
            nxt: list[tuple[str, str | None, bool]] = []
            for base, real, is_dir in found:
                if not is_dir:
                    continue
                at = base if real is None else real
                for name, st in self._entries(at):
                    if rx.match(name):
                        rel = f"{base}/{name}" if base else name
                        full = f"{at}/{name}" if at else name
                        if not self._visible(full, st):
                            continue
                        d = stat.S_ISDIR(st.st_mode)
                        where: str | None = None if self.in_root else full
                        if stat.S_ISLNK(st.st_mode) and i == len(parts) - 1:
                            if self.in_root:
                                fd = self.open(rel, os.O_PATH)
                                try:
                                    d = stat.S_ISDIR(os.fstat(fd).st_mode)
                                finally:
                                    os.close(fd)
                            else:
                                where, target = self.real(full, name=rel)
                                d = stat.S_ISDIR(target.st_mode)
                        nxt.append((rel, where, d))
            found = nxt
        return sorted(found, key=lambda x: x[0])

    def _visible(self, rel: str, st: os.stat_result) -> bool:
        """Whether `rel` (`st`: its stat) is in the context as BuildKit sends it: not excluded,
        or a directory with something kept below it."""
        if not self.rules.excluded(rel):
            return True
        if not stat.S_ISDIR(st.st_mode) or not self.rules.may_keep_below(rel):
            return False
        return next(self._walk_dir(rel, "", _NO_RULES), None) is not None

    def _entries(self, rel: str) -> list[tuple[str, os.stat_result]]:
        fd = self.open(rel, os.O_RDONLY | os.O_DIRECTORY)
        try:
            names = sorted(os.listdir(fd))
            return [(n, os.stat(n, dir_fd=fd, follow_symlinks=False)) for n in names]
        finally:
            os.close(fd)

    def walk(self, src: Source, exclude: IgnoreRules | None = None) -> Iterator[tuple[str, os.stat_result]]:
        """(path relative to the source, lstat) of a source and, for a directory, everything
        below it that .dockerignore keeps (and `exclude`, COPY --exclude's patterns matched
        against the path relative to the source), parents before children, names sorted. The
        source itself comes first with rel "" (stat followed)."""
        fd = self.open(src.at, os.O_PATH)
        try:
            yield "", os.fstat(fd)
        finally:
            os.close(fd)
        if src.is_dir:
            yield from self._walk_dir(src.at, "", exclude or _NO_RULES)

    def _walk_dir(self, base: str, sub: str, exclude: IgnoreRules) -> Iterator[tuple[str, os.stat_result]]:
        here = posixpath.join(base, sub) if sub else base
        for name, st in self._entries(here):
            full = f"{here}/{name}" if here else name
            rel = f"{sub}/{name}" if sub else name
            ignored = self.rules.excluded(full)
            left_out = exclude.excluded(rel)
            if ignored or left_out:
                # an excluded directory is walked only if a `!` pattern may keep something in it
                if (stat.S_ISDIR(st.st_mode) and (not ignored or self.rules.may_keep_below(full))
                        and (not left_out or exclude.may_keep_below(rel))):
                    kept = list(self._walk_dir(base, rel, exclude))
                    if kept:
                        yield rel, st
                        yield from kept
                continue
            yield rel, st
            if stat.S_ISDIR(st.st_mode):
                yield from self._walk_dir(base, rel, exclude)

    def file_digest(self, rel: str, *, follow: bool = False, xattrs: bool = False) -> str:
        """sha256 of a file's content; remembered per (device, inode, size, mtime, ctime), so
        the agent re-hashing a context every pass reads only files that changed. `follow`: a
        symlink named as a source is read through (inside the context), as COPY copies it.
        `xattrs`: followed by the extended attributes a copy keeps, if the file has any."""
        fd = self.open(rel, os.O_RDONLY | (0 if follow else os.O_NOFOLLOW))
        try:
            st = os.fstat(fd)
            extra = "".join(f" {n}={v.hex()}" for n, v in _read_xattrs(fd)) if xattrs else ""
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            known = _DIGESTS.get(key)
            if known is not None:
                return known + extra
            h = hashlib.sha256()
            while chunk := os.read(fd, 1 << 20):
                h.update(chunk)
        finally:
            os.close(fd)
        if len(_DIGESTS) >= _DIGESTS_MAX:
            _DIGESTS.clear()
            _DIGESTS_SAVED[0] = -1
        _DIGESTS[key] = h.hexdigest()
        return _DIGESTS[key] + extra

    def readlink(self, rel: str) -> str:
        parent, name = posixpath.split(rel)
        fd = self.open(parent, _DIR)
        try:
            return os.readlink(name, dir_fd=fd)
        finally:
            os.close(fd)


def hash_sources(ctx: BuildContext, sources: Sequence[Source], *, owners: bool,
                 exclude: IgnoreRules | None = None) -> str:
    """A digest of everything the sources would copy: names, types, modes, (owners,) contents.
    Walked once per build and arguments (several COPY of the same sources reuse it)."""
    memo = (tuple(sources), owners, tuple((p.pattern, n) for p, n in exclude.patterns) if exclude else None)
    known = ctx.hashes.get(memo)
    if known is not None:
        return known
    h = hashlib.sha256()
    # names are the file system's bytes (os.fsencode: a name that is no UTF-8 is one too)
    for src in sources:
        h.update(b"src " + os.fsencode(src.rel) + b"\0")
        links: dict[tuple[int, int], str] = {}      # as a copy links them: within one source
        for rel, st in ctx.walk(src, exclude):
            full = posixpath.join(src.at, rel) if rel else src.at
            owner = f" {st.st_uid}:{st.st_gid}" if owners else ""
            h.update(os.fsencode(rel) + f"\0{stat.S_IFMT(st.st_mode)} {stat.S_IMODE(st.st_mode):o}{owner}\0".encode())
            if stat.S_ISREG(st.st_mode):
                h.update(ctx.file_digest(full, follow=rel == "", xattrs=True).encode())
                if st.st_nlink > 1:
                    first = links.setdefault((st.st_dev, st.st_ino), rel)
                    if first != rel:
                        h.update(b" link " + os.fsencode(first) + b"\0")
            elif stat.S_ISLNK(st.st_mode):
                h.update(os.fsencode(ctx.readlink(full)))
            elif _is_node(st.st_mode, st.st_rdev):          # copied since FIFOs and devices are
                h.update(f"node {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}\0".encode())
    ctx.hashes[memo] = h.hexdigest()
    return ctx.hashes[memo]


# dockerd's classic builder names what a COPY/ADD copied in the image's history (`COPY
# file:<hash> in /dst `): a source's tarsum (moby pkg/tarsum Version1: the sha256 of the tar
# header's fields but mtime, then the content), "file:" + it for a file, "dir:" + the sha256 of
# the sorted tarsums of the directory and everything below it joined by commas, and for
# several sources "multi:" + the sha256 of their texts so joined, in order (moby
# builder/dockerfile/copy.go). The tar header is the one dockerd read: for the build context,
# the docker CLI's tar (owners 0:0, no names, the permission bits alone: `archive`); for
# --from (and a URL or heredoc) the file as it is, as dockerd's lazy source reads it (its uid,
# gid and their names on this host, the mode with its file type bits). A symlink is hashed as
# the file it leads to, as dockerd follows it.
_TARSUMS: dict[tuple[object, ...], str] = {}
_TYPEFLAGS = {stat.S_IFREG: "0", stat.S_IFLNK: "2", stat.S_IFCHR: "3", stat.S_IFBLK: "4", stat.S_IFDIR: "5",
              stat.S_IFIFO: "6"}


def classic_source_hash(texts: Sequence[str]) -> str:
    """What dockerd's classic builder writes in a COPY/ADD's history for sources whose
    `classic_source_texts` are `texts` (in order)."""
    return texts[0] if len(texts) == 1 else _hash_list("multi", texts)


def classic_source_texts(ctx: BuildContext, sources: Sequence[Source]) -> list[str]:
    """Each source's `file:<tarsum>` or `dir:<hash>`, as dockerd names it."""
    texts = []
    for src in sources:
        at = _followed(ctx, src.at)
        st = ctx.lstat(at) if at else os.fstat(ctx.fd)
        if not stat.S_ISDIR(st.st_mode):
            texts.append("file:" + _tarsum(ctx, at, st))
            continue
        sums = []
        for rel, est in ctx.walk(Source(at, True)):
            path = posixpath.join(at, rel) if rel else at
            if not path:
                continue                        # the root itself is not walked (a Walk's ".")
            if stat.S_ISLNK(est.st_mode):
                try:
                    path = _followed(ctx, path)
                    est = ctx.lstat(path)
                except (ContextError, OSError):
                    sums.append(path)         # dockerd's Hash answers the path of what it cannot find
                    continue
            sums.append(_tarsum(ctx, path, est))
        texts.append(_hash_list("dir", sorted(sums)))
    return texts


def _hash_list(prefix: str, items: Sequence[str]) -> str:
    return prefix + ":" + hashlib.sha256(",".join(items).encode()).hexdigest()


def _followed(ctx: BuildContext, rel: str) -> str:
    """`rel` with its symlinks followed inside the root (the path dockerd hashes)."""
    if not rel:
        return rel
    fd = ctx.open(rel, os.O_PATH)
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    root = os.readlink(f"/proc/self/fd/{ctx.fd}")
    return "" if real == root else posixpath.relpath(real, root)


def _tarsum(ctx: BuildContext, rel: str, st: os.stat_result) -> str:
    """moby's tarsum (Version1) of the entry `rel` (lstat `st`) as dockerd reads it."""
    kind = stat.S_IFMT(st.st_mode)
    lazy = ctx.in_root
    key = (lazy, rel, st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns,
           st.st_ctime_ns)
    known = _TARSUMS.get(key)
    if known is not None:
        return known
    name = rel + "/" if kind == stat.S_IFDIR else rel
    device = kind in (stat.S_IFCHR, stat.S_IFBLK)
    # the docker CLI's tar sends a file's second name as a hard link to its first, in its
    # walk's order (names sorted, parents first): no size, no content
    first = _first_name(ctx, st) if not lazy and kind == stat.S_IFREG and st.st_nlink > 1 else rel
    if first and first != rel:
        kind = -1
    fields = [
        ("name", name), ("mode", str(st.st_mode if lazy else stat.S_IMODE(st.st_mode))),
        ("uid", str(st.st_uid if lazy else 0)), ("gid", str(st.st_gid if lazy else 0)),
        ("size", str(st.st_size if kind == stat.S_IFREG else 0)), ("typeflag", _TYPEFLAGS.get(kind, "1")),
        ("linkname", ctx.readlink(rel) if kind == stat.S_IFLNK else first if kind == -1 else ""),
        ("uname", _user_name(st.st_uid) if lazy else ""), ("gname", _group_name(st.st_gid) if lazy else ""),
        ("devmajor", str(os.major(st.st_rdev) if device else 0)),
        ("devminor", str(os.minor(st.st_rdev) if device else 0)),
    ]
    h = hashlib.sha256()
    for k, v in fields:
        h.update(k.encode() + os.fsencode(v))
    if kind == stat.S_IFREG:
        fd = ctx.open(rel, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            for xname, value in _read_xattrs(fd):
                if xname == "security.capability":          # the one xattr dockerd's tar header has
                    h.update(xname.encode() + value)
            while chunk := os.read(fd, 1 << 20):
                h.update(chunk)
        finally:
            os.close(fd)
    if len(_TARSUMS) >= _DIGESTS_MAX:
        _TARSUMS.clear()
    _TARSUMS[key] = h.hexdigest()
    return _TARSUMS[key]


def _first_name(ctx: BuildContext, st: os.stat_result) -> str:
    """The first name, in the docker CLI's walk of the context, of the file `st` is of."""
    if ctx.first_names is None:
        ctx.first_names = {}
        for rel, est in ctx.walk(Source("", True)):
            if rel and stat.S_ISREG(est.st_mode) and est.st_nlink > 1:
                ctx.first_names.setdefault((est.st_dev, est.st_ino), rel)
    return ctx.first_names.get((st.st_dev, st.st_ino), "")


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


def _group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


# ------------------------------------------------------------------------------ copying

@dataclass(frozen=True)
class CopyOptions:
    """How COPY/ADD places what it copies: owner, mode and what it leaves out."""

    uid: int | None         # None: keep the source's (copies from a stage), else this owner
    gid: int | None
    chmod: Chmod | None     # for files and directories copied (not created parents)
    exclude: IgnoreRules | None = None      # COPY --exclude


_WHO = {"u": 0o4700, "g": 0o2070, "o": 0o0007, "a": 0o6777}
_PERM = {"r": 0o444, "w": 0o222, "x": 0o111, "s": 0o6000, "t": 0o1000}
_CLAUSE = re.compile(r"([ugoa]*)((?:[-+=](?:[ugo]|[rwxXst]*))+)")
_ACTION = re.compile(r"([-+=])([ugo]|[rwxXst]*)")


@dataclass(frozen=True)
class Chmod:
    """`--chmod`: an octal mode, or chmod(1)'s symbolic clauses (`u+x`, `go-w`, `a=rX,u+w`)
    applied to each copied entry's own mode, as BuildKit does (umask 0: no who means all)."""

    spec: str
    octal: int | None

    @classmethod
    def parse(cls, spec: str) -> Chmod:
        if spec[:1].isdigit():
            try:
                mode = int(spec, 8)
            except ValueError:
                mode = -1
            if not 0 <= mode <= 0o7777:
                raise ContextError(f"--chmod={spec} is not a mode: give octal (0755) or symbolic (u+x,go-w)")
            return cls(spec, mode)
        if not spec or not all(_CLAUSE.fullmatch(c) for c in spec.split(",")):
            raise ContextError(f"--chmod={spec} is not a mode: give octal (0755) or symbolic (u+x,go-w)")
        return cls(spec, None)

    def apply(self, mode: int, *, is_dir: bool) -> int:
        if self.octal is not None:
            return self.octal
        original = mode
        for clause in self.spec.split(","):
            m = _CLAUSE.fullmatch(clause)
            assert m is not None            # checked in parse()
            who = 0
            for w in m.group(1) or "a":
                who |= _WHO[w]
            sticky = not m.group(1) or bool(set(m.group(1)) & set("uga"))
            for op, perms in _ACTION.findall(m.group(2)):
                bits = self._bits(perms, mode, original, is_dir=is_dir) & (who | (0o1000 if sticky else 0))
                if op == "+":
                    mode |= bits
                elif op == "-":
                    mode &= ~bits
                else:
                    mode = (mode & ~who) | bits
        return mode & 0o7777

    @staticmethod
    def _bits(perms: str, mode: int, original: int, *, is_dir: bool) -> int:
        if perms in ("u", "g", "o"):        # copy another class's permissions
            trio = (mode >> {"u": 6, "g": 3, "o": 0}[perms]) & 0o7
            return trio * 0o111
        bits = 0
        for p in perms:
            if p == "X":                    # x only for directories and files executable already
                bits |= 0o111 if is_dir or original & 0o111 else 0
            else:
                bits |= _PERM[p]
        return bits


_IN_COPY = openat2.RESOLVE_BENEATH | openat2.RESOLVE_NO_SYMLINKS     # below a destination made here
_MAX_LINKS = 40


def _open_dir_in(root_fd: int, path: str, *, create: bool, uid: int, gid: int) -> int:
    """An O_PATH fd of directory `path` inside the rootfs, created (mkdir -p) if asked.
    Symlinks on the way are followed inside the rootfs (RESOLVE_IN_ROOT's rules: `..` stops
    at its root, an absolute target starts there), also to directories still missing, which
    are made (Docker's rule: `ln -s /srv/app /app` then `WORKDIR /app` makes /srv/app)."""
    with _walk_errors(path):
        try:
            return openat2.open_in_root(root_fd, path, _DIR)
        except FileNotFoundError:
            if not create:
                raise
        # mkdir -p as openat2.make_dirs_in_root walks it (one component at a time by fd, each
        # symlink resolved again inside the rootfs: nothing outside it is ever opened or made);
        # missing directories are 0755 uid:gid
        return openat2.make_dirs_in_root(root_fd, path, lambda pfd, name: _mkdir(pfd, name, uid, gid))


@contextlib.contextmanager
def _walk_errors(path: str) -> Iterator[None]:
    """A walk's failures in the build's words: a part of `path` that is no directory, a loop of
    symbolic links."""
    try:
        yield
    except NotADirectoryError:
        raise ContextError(f"{path}: a part of it exists and is not a directory",
                           hint="remove that file in an earlier step, or choose another path") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ContextError(f"{path}: too many levels of symbolic links") from None
        raise


def _mkdir(pfd: int, name: str, uid: int, gid: int) -> None:
    try:
        os.mkdir(name, 0o755, dir_fd=pfd)
    except FileExistsError:
        return                      # made meanwhile: it is opened (and checked) as it is
    os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
    dfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
    try:
        os.fchmod(dfd, 0o755)          # as Docker makes it, not masked by the agent's umask 077
    finally:
        os.close(dfd)


def ensure_dir(root_fd: int, path: str, *, uid: int = 0, gid: int = 0) -> None:
    """mkdir -p `path` inside the rootfs: missing directories 0755 uid:gid (WORKDIR)."""
    os.close(_open_dir_in(root_fd, path, create=True, uid=uid, gid=gid))


def is_dir_in(root_fd: int, path: str) -> bool:
    """Whether `path` inside the rootfs is a directory (symlinks followed inside it)."""
    try:
        fd = openat2.open_in_root(root_fd, path, os.O_PATH)
    except OSError:
        return False
    try:
        return stat.S_ISDIR(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def _resolve_link(root_fd: int, path: str) -> str:
    """`path` with its last component's symlinks followed inside the rootfs (as many as the
    kernel would: 40)."""
    for _ in range(_MAX_LINKS):
        parent, name = posixpath.split(posixpath.normpath("/" + path))
        try:
            pfd = openat2.open_in_root(root_fd, parent, _DIR)
        except OSError:
            return path
        try:
            target = os.readlink(name, dir_fd=pfd)
        except OSError:
            return path             # not a symlink (or not there): written as it is
        finally:
            os.close(pfd)
        path = posixpath.normpath(posixpath.join(parent, target))
    raise ContextError(f"{path}: too many levels of symbolic links")


def copy_sources(
    ctx: BuildContext, sources: Sequence[Source], root_fd: int, dest: str, opts: CopyOptions,
) -> int:
    """COPY semantics into the rootfs at `root_fd`; returns the number of entries copied.

    A directory source copies its contents; a file goes to `dest/<name>` when dest ends with
    "/", is an existing directory or there are several sources, else to `dest` itself."""
    many = len(sources) > 1
    dest_is_dir = dest.endswith("/") or is_dir_in(root_fd, dest)
    if many and not dest_is_dir:
        raise ContextError(f"when copying several sources, the destination {dest!r} must be a directory ending in /")
    count = 0
    puid = opts.uid if opts.uid is not None else 0
    pgid = opts.gid if opts.gid is not None else 0
    for src in sources:
        if src.is_dir:
            target_dir = dest
            file_target = None
        elif dest_is_dir:
            target_dir = dest
            file_target = posixpath.basename(src.rel)
        else:
            # a destination that is a symlink is written through (BuildKit resolves the whole
            # destination path inside the rootfs, its last component too)
            target_dir, file_target = posixpath.split(_resolve_link(root_fd, dest.rstrip("/")))
            target_dir = target_dir or "/"
        # a destination directory made here is 0755, owned by --chown's owner or root, whatever
        # the source directory's mode (Docker's MkdirAll): a 0700 context still gives a /ctx
        # any user can read
        dfd = _open_dir_in(root_fd, target_dir, create=True, uid=puid, gid=pgid)
        try:
            copier = _Copier(ctx, dfd, opts)
            for rel, st in ctx.walk(src, opts.exclude):
                if rel == "":
                    if src.is_dir:
                        # the destination takes the source directory's times (BuildKit), not its
                        # owner or mode
                        copier.dirs.append(("", st))
                        continue
                    assert file_target is not None
                    copier.copy(src.at, st, file_target, follow=True)
                else:
                    copier.copy(posixpath.join(src.at, rel), st, rel)
                count += 1
            copier.finish()
        finally:
            os.close(dfd)
    return count


def copy_parents(ctx: BuildContext, src: Source, keep: str, root_fd: int, dest: str, opts: CopyOptions) -> None:
    """COPY --parents: `src` to `dest/keep` (keep: its path below the pivot), the directories on
    the way made as the source's own are (mode, times; owner as every copied entry's). The
    source itself is copied as it is (a symlink as a link, as BuildKit matches it)."""
    if not keep:
        copy_sources(ctx, [src], root_fd, dest.rstrip("/") + "/", opts)
        return
    parts = keep.split("/")
    pivot = src.at[: len(src.at) - len(keep)].rstrip("/")      # (one part kept: no directory made)
    puid = opts.uid if opts.uid is not None else 0
    pgid = opts.gid if opts.gid is not None else 0
    dfd = _open_dir_in(root_fd, dest, create=True, uid=puid, gid=pgid)
    try:
        copier = _Copier(ctx, dfd, opts)
        for i in range(1, len(parts)):
            rel = posixpath.join(pivot, *parts[:i])
            copier.copy(rel, ctx.lstat(rel), "/".join(parts[:i]))
        if src.is_dir:
            for rel, st in ctx.walk(src, opts.exclude):
                copier.copy(posixpath.join(src.at, rel) if rel else src.at, st, f"{keep}/{rel}" if rel else keep)
        else:
            copier.copy(src.at, ctx.lstat(src.at), keep)
        copier.finish()
    finally:
        os.close(dfd)


def _remove_existing(pfd: int, name: str, want_dir: bool) -> bool:
    """Make room for `name`; True if a directory is there and is kept (merged into)."""
    try:
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        if want_dir:
            return True
        raise ContextError(f"cannot replace the directory {name!r} with a file")
    os.unlink(name, dir_fd=pfd)
    return False


class _Copier:
    """Entries of one source copied below the directory `dfd` (named relative to it, every
    component a directory made or kept by this copy: opened with no symlink followed). Files
    that share an inode in the source share one in the copy (BuildKit's inode map, per
    source); directories get their times last, children first, as what is written into a
    directory moves its mtime (fsutil's order: the same input gives the same layer)."""

    def __init__(self, ctx: BuildContext, dfd: int, opts: CopyOptions) -> None:
        self.ctx = ctx
        self.dfd = dfd
        self.opts = opts
        self.links: dict[tuple[int, int], str] = {}     # (device, inode) in the source -> first copy
        self.dirs: list[tuple[str, os.stat_result]] = []

    def copy(self, full: str, st: os.stat_result, rel: str, *, follow: bool = False) -> None:
        """Copy the source entry `full` (`st`: its stat) to `rel`. `follow`: a symlink named as
        the source is copied as what it points to."""
        parent, name = posixpath.split(rel)
        pfd = openat2.openat2(self.dfd, parent or ".", _DIR, 0, _IN_COPY)
        try:
            self._entry(full, st, pfd, name, rel, follow=follow)
        finally:
            os.close(pfd)

    def _entry(self, full: str, st: os.stat_result, pfd: int, name: str, rel: str, *, follow: bool) -> None:
        mode = st.st_mode
        opts = self.opts
        if stat.S_ISDIR(mode):
            if not _remove_existing(pfd, name, True):
                os.mkdir(name, 0o700, dir_fd=pfd)
            fd = os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=pfd)
            try:
                _attrs(fd, st, opts, is_dir=True, xattrs=self._dir_xattrs(full))
            finally:
                os.close(fd)
            self.dirs.append((rel, st))
        elif stat.S_ISLNK(mode) and not follow:
            _remove_existing(pfd, name, False)
            os.symlink(self.ctx.readlink(full), name, dir_fd=pfd)
            uid = opts.uid if opts.uid is not None else st.st_uid
            gid = opts.gid if opts.gid is not None else st.st_gid
            os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=pfd, follow_symlinks=False)
        elif stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            first = self.links.get(key) if st.st_nlink > 1 else None
            if first is not None:
                self._link(first, pfd, name)
                return
            src = self.ctx.open(full, os.O_RDONLY | (0 if follow else os.O_NOFOLLOW))
            try:
                _remove_existing(pfd, name, False)
                out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                              dir_fd=pfd)
                try:
                    size = os.fstat(src).st_size
                    offset = 0
                    while offset < size:
                        n = os.sendfile(out, src, offset, size - offset)
                        if n == 0:
                            break
                        offset += n
                    _attrs(out, st, opts, is_dir=False, xattrs=_read_xattrs(src))
                finally:
                    os.close(out)
            finally:
                os.close(src)
            if st.st_nlink > 1:
                self.links[key] = rel
        elif _is_node(mode, st.st_rdev):
            # a FIFO or a device is made with mknod (never opened), as dockerd's builder copies
            # it; a socket is no content: skipped, as dockerd skips it
            _remove_existing(pfd, name, False)
            os.mknod(name, stat.S_IFMT(mode) | 0o600, st.st_rdev, dir_fd=pfd)
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            try:
                _attrs(fd, st, opts, is_dir=False)
            finally:
                os.close(fd)

    def _link(self, first: str, pfd: int, name: str) -> None:
        """`name` in `pfd` as a hard link to the copy made at `first`."""
        parent, base = posixpath.split(first)
        ffd = openat2.openat2(self.dfd, parent or ".", _DIR, 0, _IN_COPY)
        try:
            _remove_existing(pfd, name, False)
            os.link(base, name, src_dir_fd=ffd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(ffd)

    def _dir_xattrs(self, full: str) -> list[tuple[str, bytes]]:
        fd = self.ctx.open(full, os.O_PATH | os.O_DIRECTORY)
        try:
            return _read_xattrs(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)

    def finish(self) -> None:
        """The directories' times, deepest first."""
        for rel, st in reversed(self.dirs):
            fd = openat2.openat2(self.dfd, rel or ".", _DIR, 0, _IN_COPY)
            try:
                os.utime(f"/proc/self/fd/{fd}", ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(fd)
        self.dirs.clear()


def _is_node(mode: int, rdev: int) -> bool:
    """Whether a copy makes this entry with mknod: a FIFO, a block device, a character device
    but 0:0 (an overlay whiteout in the step's upper dir, which would delete, not copy)."""
    return stat.S_ISFIFO(mode) or stat.S_ISBLK(mode) or (stat.S_ISCHR(mode) and rdev != 0)


def _kept_xattr(name: str) -> bool:
    """The extended attributes a copy keeps: those an image layer carries (the layer
    extractor's rule, images/layers.py): user.*, security.capability (a `setcap` binary
    copied from a stage keeps its capabilities) and trusted.*, never overlayfs' own."""
    if name.startswith("user."):
        return not name.startswith("user.overlay.")
    if name == "security.capability":
        return True
    return name.startswith("trusted.") and not name.startswith("trusted.overlay.")


def _read_xattrs(target: int | str) -> list[tuple[str, bytes]]:
    """The kept extended attributes of an open fd, or of a /proc/self/fd path (O_PATH fds)."""
    try:
        names = os.listxattr(target)
    except OSError:
        return []
    out = []
    for name in sorted(names):
        if _kept_xattr(name):
            try:
                out.append((name, os.getxattr(target, name)))
            except OSError:
                continue
    return out


# setting these fails where the file system or the kernel does not take them: BuildKit logs
# such an xattr and goes on, so does this
_XATTR_SKIPPED = (errno.ENOTSUP, errno.EPERM, errno.EACCES, errno.E2BIG, errno.ERANGE, errno.EINVAL)


def _attrs(fd: int, st: os.stat_result, opts: CopyOptions, *, is_dir: bool,
           xattrs: Sequence[tuple[str, bytes]] = ()) -> None:
    """Owner, xattrs, mode, and (not for a directory: _Copier.finish) times; in that order, as
    chown clears setuid bits and security.capability."""
    uid = opts.uid if opts.uid is not None else st.st_uid
    gid = opts.gid if opts.gid is not None else st.st_gid
    path = f"/proc/self/fd/{fd}"
    os.chown(path, uid, gid)
    for name, value in xattrs:
        try:
            os.setxattr(path, name, value)
        except OSError as exc:
            if exc.errno not in _XATTR_SKIPPED:
                raise
    mode = stat.S_IMODE(st.st_mode)
    os.chmod(path, opts.chmod.apply(mode, is_dir=is_dir) if opts.chmod is not None else mode)
    if not is_dir:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


_READ_MAX = 1 << 20         # compressed bytes read to find an archive's first tar header


def is_archive(ctx: BuildContext, src: Source) -> bool:
    """Whether ADD unpacks a local file: BuildKit's rule, it decompresses (gzip, bzip2, xz,
    zstd, or not compressed) to a valid first tar header. Anything else, a compressed file
    that holds no tar included, is copied as it is."""
    if src.is_dir:
        return False
    fd = ctx.open(src.at, os.O_RDONLY | os.O_NONBLOCK)     # (a FIFO is not waited on: no archive)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        head = os.pread(fd, _READ_MAX, 0)
    finally:
        os.close(fd)
    return _tar_header(_first_block(head))


def unpack_context(path: str, dest: str) -> bool:
    """`reconcile build -`: whether the file `path` (standard input, spooled) is a tar archive,
    plain or gzip/bzip2/xz/zstd (the rule ADD unpacks by); if it is, it is unpacked into the
    empty directory `dest` by the image layer extractor, with the image layers' limits, so no
    entry reaches outside `dest`."""
    from reconciler.runtime.native.images import layers

    with open(path, "rb") as f:
        if not _tar_header(_first_block(f.read(_READ_MAX))):
            return False
        f.seek(0)
        try:
            layers.apply_layer(f, Path(dest), root_attrs=False, compressed_size=os.fstat(f.fileno()).st_size)
        except layers.LayerError as exc:
            raise ContextError(f"the build context on standard input cannot be unpacked: {exc.message}",
                               hint=exc.hint) from None
    return True


def _first_block(head: bytes) -> bytes:
    """The first 512 bytes `head` (a file's start) decompresses to (fewer: not a tar)."""
    import bz2
    import lzma
    import zlib

    try:
        if head.startswith(b"\x1f\x8b"):
            return zlib.decompressobj(wbits=31).decompress(head, 512)
        if head.startswith(b"BZh"):
            return bz2.BZ2Decompressor().decompress(head, 512)
        if head.startswith(b"\xfd7zXZ\x00"):
            return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(head, 512)
        if head.startswith(b"\x28\xb5\x2f\xfd"):
            import io

            import zstandard

            out = b""
            with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(head)) as r:
                while len(out) < 512 and (chunk := r.read(512 - len(out))):
                    out += chunk
            return out
    except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError):
        return b""
    except Exception as exc:        # zstandard.ZstdError
        if type(exc).__module__.startswith("zstd"):
            return b""
        raise
    return head[:512]


_OCTAL = re.compile(rb"[0-7]*")


def _tar_header(block: bytes) -> bool:
    """Whether `block` is a tar header Go's archive/tar reads (what BuildKit asks of an archive
    to unpack): not zeros, its checksum right (unsigned or signed sum), its numbers numbers."""
    if len(block) < 512 or not block.strip(b"\0"):
        return False

    def number(field: bytes) -> int | None:
        if field[:1] and field[0] & 0x80:           # base-256
            return 0
        text = field.strip(b" \0").split(b"\0")[0]
        return int(text, 8) if text and _OCTAL.fullmatch(text) else (0 if not text else None)

    stored = number(block[148:156])
    if stored is None:
        return False
    summed = block[:148] + b" " * 8 + block[156:512]
    if stored not in (sum(summed), sum(b - 256 if b > 127 else b for b in summed)):
        return False
    # mode, uid, gid, size, mtime
    return all(number(block[a:b]) is not None for a, b in ((100, 108), (108, 116), (116, 124), (124, 136), (136, 148)))


def unpack(ctx: BuildContext, src: Source, root_fd: int, dest: str, limits: layers.Limits, *,
           owner: tuple[int, int] | None = None) -> None:
    """ADD of a local archive: apply `src` to the directory `dest` of the rootfs at `root_fd`
    (created when missing, 0755 root or `owner`) through the image layer extractor, with the
    image layers' limits. Every entry is resolved inside `dest` as if it were `/` (Docker's
    untar chroots there too), so no name, symlink or hardlink in the archive reaches anything
    outside it; modes and allowed xattrs are kept, owners too unless `owner` (ADD --chown:
    every entry's, as BuildKit), except that `dest` keeps its own (the archive's "./" entry
    is not applied to it, as in Docker); whiteout entries have nothing below them and are
    dropped."""
    from reconciler.runtime.native.images import layers

    fd = ctx.open(src.at, os.O_RDONLY)
    with os.fdopen(fd, "rb") as f:
        uid, gid = owner if owner is not None else (0, 0)
        try:
            dfd = _open_dir_in(root_fd, dest, create=True, uid=uid, gid=gid)
        except OSError as exc:
            raise ContextError(f"{src.rel}: cannot unpack the archive into {dest}: {exc.strerror}") from None
        try:
            layers.apply_layer(f, Path(f"/proc/self/fd/{dfd}"), limits=limits, root_attrs=False,
                               compressed_size=os.fstat(f.fileno()).st_size, owner=owner)
        except layers.LayerError as exc:
            raise ContextError(f"{src.rel}: cannot unpack the archive: {exc.message}", hint=exc.hint) from None
        finally:
            os.close(dfd)
