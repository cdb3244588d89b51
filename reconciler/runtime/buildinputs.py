"""What an Image's build is made of, for every engine that builds one (`build:` in a manifest).

- `.dockerignore` (`IgnoreRules`, `ignore_file_for`): moby's rules, the one reading of them (the
  native builder's context, and the context the Docker backend sends);
- the build records (`BuildRecords`, `due`): for each reference, the input digest of its last
  build, the image it made and the input digest each push target last received, kept in the
  state DB, so a pass knows without building whether a build or a push is due, by one rule;
- the context as an engine that is sent one receives it (`SentContext`: Docker's and Podman's
  `POST /build`, as the docker CLI sends it): the files `.dockerignore` keeps, walked by
  directory fd without following a symlink (a link is sent as a link), their input digest, and
  the tar stream.

An input digest is the sha256 of the Dockerfile's bytes, the build args, the target, and every
file of the context the ignore rules keep (name, type, mode, content, link target); secrets are
none of it (a changed secret alone rebuilds nothing).
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import stat
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING

from reconciler._dataclass import dataclass

if TYPE_CHECKING:
    from typing import Self

    from reconciler._sqlite import Database

__all__ = ["BuildRecords", "Built", "IgnoreRules", "SentContext", "due", "glob_regex", "ignore_file_for"]


# ------------------------------------------------------------------------------ .dockerignore

class IgnoreRules:
    """`.dockerignore` patterns (moby's rules): Go filepath.Match syntax plus `**`, `!`
    exceptions, the last matching pattern wins, and a pattern matching a directory matches
    everything below it. A line starting with `#` is a comment (before any trimming, as in
    moby's ignorefile); a UTF-8 BOM before the first line is no part of it."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.patterns: list[tuple[re.Pattern[str], bool]] = []
        # the `!` patterns as literal paths (a trailing /* or /** dropped), or None when one
        # has a wildcard: what may_keep_below looks at (fsutil's walker skips the same way)
        self._negations: list[str] | None = []
        for raw in lines:
            if raw.startswith("#"):
                continue
            line = raw.strip()
            if not line:
                continue
            negate = line.startswith("!")
            if negate:
                line = line[1:].strip()
            line = posixpath.normpath(line).lstrip("/")
            if line in ("", "."):
                continue
            self.patterns.append((re.compile(glob_regex(line)), negate))
            if negate and self._negations is not None:
                literal = line.removesuffix("/**").removesuffix("/*")
                if any(c in literal for c in "*?[]^\\"):
                    self._negations = None
                else:
                    self._negations.append(literal)

    @classmethod
    def parse(cls, text: str) -> Self:
        """The rules of an ignore file's text (a UTF-8 BOM before the first line dropped)."""
        return cls([line.removesuffix("\r") for line in text.removeprefix("\ufeff").split("\n")])

    @property
    def negates(self) -> bool:
        """Some pattern re-includes (`!`): an excluded directory may still hold kept files."""
        return any(neg for _, neg in self.patterns)

    def may_keep_below(self, rel: str) -> bool:
        """Whether a `!` pattern may keep something below the directory `rel` (when `rel` is
        excluded: whether its tree must be walked to find what is kept)."""
        if self._negations is None:
            return True
        prefix = rel + "/"
        return any((lit + "/").startswith(prefix) for lit in self._negations)

    def excluded(self, rel: str) -> bool:
        if not self.patterns:
            return False
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        result = False
        for rx, negate in self.patterns:
            if any(rx.match(p) for p in prefixes):
                result = not negate
        return result


def ignore_file_for(dockerfile: str | None) -> str | None:
    """The Dockerfile's own ignore file, `<Dockerfile path>.dockerignore` next to it, when it
    exists: BuildKit reads it instead of the context's `.dockerignore`."""
    if dockerfile is None:
        return None
    path = dockerfile + ".dockerignore"
    return path if os.path.isfile(path) else None


def glob_regex(pattern: str) -> str:
    """A .dockerignore (or COPY) pattern as an anchored regular expression over a slash path."""
    out = ["^"]
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:end]
                if body.startswith("^"):
                    body = "!" + body[1:]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
                i = end
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 1
        else:
            out.append(re.escape(c))
        i += 1
    out.append("$")
    return "".join(out)




# ------------------------------------------------------------------------------ build records

@dataclass(frozen=True)
class Built:
    """A reference's last build: its input digest, the image it made, and the input digest each
    push target last received."""

    input: str
    image_id: str
    pushed: Mapping[str, str]


class BuildRecords:
    """The last build of each reference and what its push targets received, in the state DB
    (`table`: the engine's own, so that two engines keeping one root never read each other's)."""

    def __init__(self, db: Database, table: str = "build_records") -> None:
        if not re.fullmatch(r"[a-z_]+", table):
            raise ValueError(f"bad table name {table!r}")
        self.db = db
        self.table = table
        db.ensure_schema(f"build-records:{table}", f"""
CREATE TABLE IF NOT EXISTS {table} (
    ref TEXT PRIMARY KEY,          -- the reference the build was tagged as
    input TEXT NOT NULL,           -- input digest of that build
    image_id TEXT NOT NULL,
    pushed TEXT NOT NULL,          -- JSON {{push target: input digest it received}}
    built_at REAL NOT NULL
);
""")

    def get(self, ref: str) -> Built | None:
        row = self.db.connect().execute(
            f"SELECT input, image_id, pushed FROM {self.table} WHERE ref = ?", (ref,)).fetchone()  # noqa: S608
        if row is None:
            return None
        return Built(str(row["input"]), str(row["image_id"]), dict(json.loads(row["pushed"])))

    def built(self, ref: str, digest: str, image_id: str) -> None:
        """`ref` was built from inputs of digest `digest` as `image_id` (what its push targets
        received is kept: a target that has a build of these inputs is not pushed again)."""
        with self.db.tx() as c:
            c.execute(f"INSERT INTO {self.table}(ref, input, image_id, pushed, built_at) VALUES (?,?,?,?,?)"  # noqa: S608
                      " ON CONFLICT(ref) DO UPDATE SET input=excluded.input, image_id=excluded.image_id,"
                      " built_at=excluded.built_at",
                      (ref, digest, image_id, "{}", time.time()))

    def pushed(self, ref: str, dest: str, digest: str) -> None:
        """`dest` received the build of `ref` whose input digest is `digest`."""
        with self.db.tx() as c:
            row = c.execute(f"SELECT pushed FROM {self.table} WHERE ref = ?", (ref,)).fetchone()  # noqa: S608
            if row is None:
                return
            done = dict(json.loads(row["pushed"]))
            done[dest] = digest
            c.execute(f"UPDATE {self.table} SET pushed = ? WHERE ref = ?",  # noqa: S608
                      (json.dumps(done, sort_keys=True), ref))


def due(last: Built | None, digest: str, present: str | None,
        push_targets: Sequence[str]) -> tuple[str | None, tuple[str, ...]]:
    """Why a reference must be built now (None: its build is current), and the push targets
    that have not received its current inputs, from its last build `last`, the input digest of
    the context now `digest`, and the id of the image the reference names on the engine now
    (`present`; None when it names none)."""
    if last is None:
        cause: str | None = "not built yet"
    elif present is None:
        cause = "built image missing"
    elif last.input != digest:
        cause = f"build inputs changed ({last.input[7:19]} -> {digest[7:19]})"
    else:
        cause = None
    pushed = last.pushed if last is not None and cause is None else {}
    return cause, tuple(t for t in push_targets if pushed.get(t) != digest)


# ------------------------------------------------------------------------------ a context as sent

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_DIGESTS: dict[tuple[int, int, int, int, int], str] = {}    # file identity and times -> sha256
_DIGESTS_MAX = 100_000


class ContextError(OSError):
    """The context cannot be read as a context (its Dockerfile is missing, a path is no directory)."""


class SentContext:
    """A build context as an engine that is sent one receives it (the docker CLI's way): every
    file the ignore rules keep (the Dockerfile's own `<file>.dockerignore`, else the context's
    `.dockerignore`), the Dockerfile always, parents before children, names sorted; walked by
    directory fd, no symlink followed (a link is sent as a link; a directory swapped for a link
    while it is read is refused), sockets left out."""

    def __init__(self, path: str, dockerfile: str) -> None:
        self.path = path
        self.dockerfile = posixpath.normpath(dockerfile).lstrip("/")
        if self.dockerfile.startswith("../") or self.dockerfile in ("", ".", ".."):
            raise ContextError(f"the Dockerfile {dockerfile!r} is not in the build context")
        own = ignore_file_for(os.path.join(path, self.dockerfile))
        try:
            if own is not None:
                with open(own, encoding="utf-8", errors="replace") as f:
                    self.rules = IgnoreRules.parse(f.read(1 << 20))
            else:
                text = self._read_text(".dockerignore")
                self.rules = IgnoreRules.parse(text) if text is not None else IgnoreRules([])
        except OSError as exc:
            raise ContextError(f"the ignore file of {path} cannot be read: {exc.strerror}") from None
        self.entries: list[tuple[str, os.stat_result]] = list(self._walk())
        if not any(rel == self.dockerfile and stat.S_ISREG(st.st_mode) for rel, st in self.entries):
            raise ContextError(f"no Dockerfile {dockerfile!r} in the build context {path}")

    def _read_text(self, rel: str) -> str | None:
        fd = os.open(self.path, _DIR)
        try:
            f = os.open(rel, _FILE, dir_fd=fd)
        except FileNotFoundError:
            return None
        finally:
            os.close(fd)
        with os.fdopen(f, "rb") as stream:
            return stream.read(1 << 20).decode("utf-8", "replace")

    def _walk(self) -> Iterator[tuple[str, os.stat_result]]:
        root = os.open(self.path, _DIR)
        try:
            yield from self._walk_dir(root, "")
        finally:
            os.close(root)

    def _walk_dir(self, fd: int, sub: str) -> Iterator[tuple[str, os.stat_result]]:
        for name in sorted(os.listdir(fd)):
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            rel = f"{sub}/{name}" if sub else name
            if stat.S_ISSOCK(st.st_mode):
                continue
            kept = rel == self.dockerfile or not self.rules.excluded(rel)
            if not stat.S_ISDIR(st.st_mode):
                if kept:
                    yield rel, st
                continue
            # an excluded directory is walked only when a `!` pattern may keep something in it,
            # or the Dockerfile is in it; it is sent when something in it is
            if not (kept or self.rules.may_keep_below(rel) or self.dockerfile.startswith(rel + "/")):
                continue
            child = os.open(name, _DIR, dir_fd=fd)
            try:
                below = list(self._walk_dir(child, rel))
            finally:
                os.close(child)
            if kept or below:
                yield rel, st
                yield from below

    def _parent(self, rel: str) -> tuple[int, str]:
        """The directory of `rel` opened by fd, each directory on its way without following a
        link, and its last name."""
        *dirs, name = rel.split("/")
        fd = os.open(self.path, _DIR)
        try:
            for part in dirs:
                nxt = os.open(part, _DIR, dir_fd=fd)
                os.close(fd)
                fd = nxt
        except OSError:
            os.close(fd)
            raise
        return fd, name

    def _open(self, rel: str) -> int:
        """The file `rel` opened for reading (no link followed on the way, nor at its end)."""
        fd, name = self._parent(rel)
        try:
            return os.open(name, _FILE, dir_fd=fd)
        finally:
            os.close(fd)

    def _file_digest(self, rel: str, st: os.stat_result) -> str:
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        known = _DIGESTS.get(key)
        if known is not None:
            return known
        h = hashlib.sha256()
        fd = self._open(rel)
        try:
            while chunk := os.read(fd, 1 << 20):
                h.update(chunk)
        finally:
            os.close(fd)
        if len(_DIGESTS) >= _DIGESTS_MAX:
            _DIGESTS.clear()
        _DIGESTS[key] = h.hexdigest()
        return _DIGESTS[key]

    def _link(self, rel: str) -> str:
        fd, name = self._parent(rel)
        try:
            return os.readlink(name, dir_fd=fd)
        finally:
            os.close(fd)

    def input_digest(self, args: Mapping[str, str], target: str | None) -> str:
        """The build's input digest (the module docstring): what a build of these inputs depends on."""
        h = hashlib.sha256()
        h.update(json.dumps({"dockerfile": self.dockerfile, "args": dict(sorted(args.items())), "target": target},
                            sort_keys=True).encode())
        for rel, st in self.entries:
            h.update(os.fsencode(rel) + b"\0" + f"{stat.S_IFMT(st.st_mode):o} {stat.S_IMODE(st.st_mode):o}".encode())
            if stat.S_ISREG(st.st_mode):
                h.update(b" " + self._file_digest(rel, st).encode())
            elif stat.S_ISLNK(st.st_mode):
                h.update(b" -> " + os.fsencode(self._link(rel)))
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                h.update(f" {os.major(st.st_rdev)},{os.minor(st.st_rdev)}".encode())
            h.update(b"\n")
        return "sha256:" + h.hexdigest()

    def write_tar(self, out: IO[bytes]) -> None:
        """The context as the tar an engine's `POST /build` takes (owners root, as the docker CLI
        sends them; modes and times as they are)."""
        import tarfile  # here: the native builder reads this module's rules, and loads no tarfile (#21)

        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for rel, st in self.entries:
                info = tarfile.TarInfo(rel)
                info.mode = stat.S_IMODE(st.st_mode)
                info.mtime = int(st.st_mtime)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if stat.S_ISREG(st.st_mode):
                    info.size = st.st_size
                    with os.fdopen(self._open(rel), "rb") as f:
                        tar.addfile(info, f)
                    continue
                if stat.S_ISDIR(st.st_mode):
                    info.type = tarfile.DIRTYPE
                elif stat.S_ISLNK(st.st_mode):
                    info.type, info.linkname = tarfile.SYMTYPE, self._link(rel)
                elif stat.S_ISFIFO(st.st_mode):
                    info.type = tarfile.FIFOTYPE
                else:
                    info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
                    info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                tar.addfile(info)
