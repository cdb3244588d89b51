"""Reading manifests: files to YAML documents that can locate any of their nodes.

Hostile input is stopped here, before anything expands it (limits are a `Limits` value;
the defaults are the MAX_* constants):
- a file larger than `MAX_FILE_BYTES`, a revision larger than `MAX_REVISION_BYTES`, or more
  than `MAX_FILES` manifest files;
- anything but a regular file (a FIFO, a device, a socket: opened through an O_PATH descriptor,
  checked with fstat, and only then re-opened O_NONBLOCK, so nothing blocks or has a side
  effect of being opened), and a file under a directory that is a symlink leading out of it
  (openat2 RESOLVE_BENEATH; git checkouts keep symlinks as the commit has them);
- bytes that are not UTF-8 text (a NUL byte, or a failed decode);
- a document that expands to more than `MAX_DOCUMENT_NODES` nodes through aliases (a
  "billion laughs" bomb is stopped after that many nodes, in milliseconds), a recursive
  alias, or nesting deeper than `MAX_DEPTH`.

Values follow `yaml.safe_load` semantics (the SafeConstructor builds every scalar), except
that duplicate mapping keys and non-string keys are reported instead of silently accepted,
and an explicit tag the text does not fit is a located problem.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler._dataclass import dataclass, field
from reconciler.spec import errors

if TYPE_CHECKING:
    from reconciler.spec.parsecache import ParseCache

__all__ = [
    "MAX_DEPTH",
    "MAX_DOCUMENT_NODES",
    "MAX_FILES",
    "MAX_FILE_BYTES",
    "MAX_REVISION_BYTES",
    "Document",
    "Limits",
    "Refused",
    "SourceFile",
    "collect",
    "parse",
    "read_regular",
    "read_source",
]

MAX_FILE_BYTES = 1 << 20            # 1 MiB per manifest file
MAX_REVISION_BYTES = 16 << 20       # 16 MiB for all manifests of a revision
MAX_FILES = 10_000                  # manifest files of a revision (the directory source's limit)
MAX_DOCUMENT_NODES = 50_000         # nodes of one document after alias expansion
MAX_DEPTH = 64                      # nesting of mappings/sequences
MAX_REFERENCED_FILE_BYTES = 16 << 20  # an env file, bind source or Dockerfile whose content is hashed


@dataclass(frozen=True)
class Limits:
    """Size limits for one load; the defaults suit any real set of manifests."""

    file_bytes: int = MAX_FILE_BYTES                    # per manifest file
    revision_bytes: int = MAX_REVISION_BYTES            # all manifest files of a revision
    document_nodes: int = MAX_DOCUMENT_NODES            # one document after alias expansion
    depth: int = MAX_DEPTH                              # nesting of mappings and lists
    referenced_file_bytes: int = MAX_REFERENCED_FILE_BYTES  # files whose content is hashed
    files: int = MAX_FILES                              # manifest files of a revision

Path_ = tuple[str | int, ...]

_EDITOR_TEMP_SUFFIXES = ("~", ".swp", ".swo", ".swx", ".tmp", ".bak", ".orig")


@dataclass(frozen=True)
class SourceFile:
    """A manifest file's decoded text. `path` is what messages show; `base` resolves relative paths."""

    path: str
    base: str                       # absolute directory for relative paths in the manifests
    text: str


@dataclass
class Document:
    """One YAML document: plain data, and its node tree to locate any path in it on demand."""

    file: str
    base: str
    index: int                      # 0-based position in its file
    line: int
    column: int
    data: Any
    node: Any = None                # the composed root yaml.Node (marks are 0-based)
    problems: list[errors.Problem] = field(default_factory=list)        # found while building it
    # Documents made from another format (a compose file) locate their fields there instead:
    # (path, at the key?) -> (file, line, column, field as that format names it)
    locate: Callable[[Path_, bool], tuple[str, int, int, str]] | None = None
    # env keys a compose service took from a SOPS-encrypted env_file, by that file's keyed digest
    # (building marks them secret, as it marks an encrypted envFiles entry's keys)
    secret_env: Mapping[str, str] = field(default_factory=dict)
    # where `env:` secrets read their variables (a compose project's environment: the shell over
    # .env); None: the reconciler's own environment
    environ: Mapping[str, str] | None = None
    # the file's text, for a document a parse cache gave without its node tree (`where` parses it)
    text: str | None = None
    # the sha256 of the canonical JSON of `data` (validity.data_digest), when a parse cache has it
    digest: str | None = None

    def where(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """1-based line and column of the node at `path`, or of its key in the enclosing mapping.

        A path that does not (fully) exist resolves to the deepest part that does, so a missing
        field is reported at its parent.
        """
        from reconciler.spec import yamltree  # a message's position: YAML's node tree

        if self.node is None and self.text is not None:
            self.node = yamltree.node_at(self.text, self.index)
        if self.node is None:
            return self.line, self.column
        return yamltree.locate(self.node, path, key=key)


def _problem(file: str, line: int, column: int, message: str, field: str = "") -> errors.Problem:
    return errors.Problem(file=file, line=line, column=column, kind="", name="", field=field, message=message)


def _ignored(name: str) -> bool:
    return (
        name.startswith((".", "#", "~"))
        or name.endswith(_EDITOR_TEMP_SUFFIXES)
        or not name.endswith((".yaml", ".yml"))
    )


def collect(path: str, problems: list[errors.Problem]) -> list[Path]:
    """Manifest files under `path` (a file, or a directory searched recursively), sorted."""
    root = Path(path)
    try:
        if root.exists() and not root.is_dir():     # a file, or a pipe such as /dev/stdin
            return [root]
        if not root.is_dir():
            problems.append(_problem(path, 0, 0, "no such file or directory; give a manifest file, a directory or - for stdin"))
            return []
        found: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(root, onerror=None):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found.extend(Path(dirpath) / n for n in filenames if not _ignored(n))
        return sorted(found, key=_parts)             # Path's order, each path's parts taken once
    except OSError as exc:
        problems.append(_problem(path, 0, 0, f"cannot read: {exc.strerror or exc}"))
        return []


def _parts(p: Path) -> tuple[str, ...]:
    return p.parts


def decode(name: str, raw: bytes, problems: list[errors.Problem]) -> str | None:
    """UTF-8 text, or None with a problem for binary/undecodable bytes."""
    if b"\0" in raw:
        problems.append(_problem(name, 1, 1, "binary file (contains NUL bytes); manifests must be UTF-8 YAML text"))
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        problems.append(_problem(name, line, col, f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"))
        return None
    return text.removeprefix("\ufeff")


def read_source(path: str, problems: list[errors.Problem], limits: Limits = Limits()) -> list[SourceFile]:
    """Read and decode every manifest file of `path` ("-" reads stdin), enforcing size limits.

    Only regular files are read; under a directory, a file whose path (symlinks included)
    leads out of the directory is refused. A file named on its own is its own source.
    """
    sources: list[SourceFile] = []
    root: str | None = None
    if path == "-":
        raw = sys.stdin.buffer.read(limits.file_bytes + 1)
        items: list[tuple[str, str, bytes | None]] = [("<stdin>", os.getcwd(), raw)]
    else:
        found = collect(path, problems)
        if len(found) > limits.files:
            problems.append(_problem(path, 0, 0, f"more than {limits.files} manifest files; split the source or move unrelated .yaml files out of it"))
            return []
        root = path if os.path.isdir(path) else None
        items = [(str(p), "", None) for p in found]
    beneath = _Beneath(root)
    try:
        _read_all(items, beneath, sources, problems, limits)
    finally:
        beneath.close()
    return sources


class _Beneath:
    """The source directory, opened once for all its files (None: files named on their own)."""

    def __init__(self, root: str | None) -> None:
        self.root = root
        self.fd: int | None = None
        # the files found under it start with the directory as named (`collect`): their
        # relative paths are what follows it (relpath is a tenth of reading 500 small files)
        self.prefix = "" if root is None else os.path.join(str(Path(root)), "")

    def read(self, name: str, limit: int) -> bytes:
        if self.root is None:
            return read_regular(name, None, limit)
        if self.fd is None:
            self.fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        rel = name[len(self.prefix):] if name.startswith(self.prefix) and self.prefix != os.sep \
            else os.path.relpath(name, self.root)
        return _read_beneath(self.fd, self.root, name, rel, limit)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _read_all(items: list[tuple[str, str, bytes | None]], beneath: _Beneath, sources: list[SourceFile],
              problems: list[errors.Problem], limits: Limits) -> None:
    """Read and decode `items` (name, base, bytes when read already) into `sources`."""
    total = 0
    dirs: dict[str, str] = {}
    for name, base, data in items:
        raw = data
        if raw is None:
            try:
                raw = beneath.read(name, limits.file_bytes + 1)
            except Refused as exc:
                problems.append(_problem(name, 0, 0, str(exc)))
                continue
            except OSError as exc:
                problems.append(_problem(name, 0, 0, f"cannot read: {exc.strerror or exc}"))
                continue
            base = _real_dir(name, dirs)
        if len(raw) > limits.file_bytes:
            problems.append(_problem(name, 1, 1, f"file larger than {limits.file_bytes} bytes; split it into several files"))
            continue
        total += len(raw)
        if total > limits.revision_bytes:
            problems.append(_problem(name, 1, 1, f"the manifests exceed {limits.revision_bytes} bytes in total; reading stopped here"))
            break
        text = decode(name, raw, problems)
        if text is not None:
            sources.append(SourceFile(path=name, base=base, text=text))


def _real_dir(name: str, dirs: dict[str, str]) -> str:
    """The real directory of the file `name` (symlinks resolved, its own too): where relative
    paths in it start. `dirs` keeps each directory's, so that a directory of many files is
    resolved once (a file that is a symlink is resolved on its own)."""
    if os.path.islink(name):
        return os.path.dirname(os.path.realpath(name))
    parent = os.path.dirname(name)          # as named: realpath takes a ".." after a symlink as the kernel does
    if parent not in dirs:
        dirs[parent] = os.path.realpath(parent)
    return dirs[parent]


class Refused(Exception):
    """A path (manifest or referenced file) that is not a regular file, or leads out of its source."""


_FILE_TYPES = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def read_regular(name: str, root: str | None, limit: int) -> bytes:
    """At most `limit` bytes of the regular file `name`, found beneath `root` when given.

    An O_PATH descriptor is opened first (opening it has no effect on a FIFO or device) and
    checked with fstat; only a regular file is then re-opened for reading through it, with
    O_NONBLOCK, so the file read is the file checked.
    """
    if root is None:
        return _read_path_fd(os.open(name, os.O_PATH | os.O_CLOEXEC), limit)
    dfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _read_beneath(dfd, root, name, os.path.relpath(name, root), limit)
    finally:
        os.close(dfd)


def _read_beneath(dfd: int, root: str, name: str, rel: str, limit: int) -> bytes:
    """`read_regular` of `name` (`rel` to the directory `root`, open as `dfd`)."""
    from reconciler.runtime.native import openat2

    flags = os.O_PATH | os.O_CLOEXEC
    try:
        if openat2.have_openat2():
            pfd = openat2.openat2(dfd, rel, flags, 0, openat2.RESOLVE_BENEATH | openat2.RESOLVE_NO_MAGICLINKS)
        else:
            real, top = os.path.realpath(name), os.path.realpath(root)
            if os.path.commonpath([real, top]) != top:
                raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), name)
            pfd = os.open(name, flags)
    except OSError as exc:
        if exc.errno in (errno.EXDEV, errno.ELOOP):
            raise Refused(
                f"a symlink that leads outside the source directory {root} (to {os.path.realpath(name)}); "
                "manifests must be files inside the source: copy the file in instead of linking it"
            ) from None
        raise
    return _read_path_fd(pfd, limit)


def _read_path_fd(pfd: int, limit: int) -> bytes:
    """At most `limit` bytes of the regular file open as the O_PATH descriptor `pfd` (closed here)."""
    try:
        st = os.fstat(pfd)
        if not stat.S_ISREG(st.st_mode):
            what = next((word for test, word in _FILE_TYPES if test(st.st_mode)), "not a regular file")
            raise Refused(f"{what}, not a regular file; manifests must be regular files (nothing was read from it)")
        fd = os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    finally:
        os.close(pfd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Refused("not a regular file; manifests must be regular files")
        chunks: list[bytes] = []
        size = 0
        while size < limit:
            chunk = os.read(fd, min(1 << 20, limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _fmt(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def parse(
    source: SourceFile, problems: list[errors.Problem], limits: Limits = Limits(), *, loader: Any = None,
    cache: ParseCache | None = None,
) -> list[Document]:
    """Every non-empty document of a file; YAML errors become problems located at their mark.

    `loader` replaces the YAML loader class (compose files resolve scalars as YAML 1.2 does).
    With `cache` (reconciler.spec.parsecache: files parsed in earlier loads, by their text), a
    file it holds is not parsed again (its documents' node trees are parsed from the text when
    `where` needs one), and one that parses with no problem is added to it."""
    if cache is None or loader is not None:
        from reconciler.spec import yamltree

        return yamltree.parse(source, problems, limits, loader or yamltree.Loader)
    salt = f"{limits.document_nodes}\0{limits.depth}"     # the parser's own part: parsecache's digest
    kept = cache.get(source.text, salt)
    if kept is not None:
        return [Document(file=source.path, base=source.base, index=index, line=line, column=column, data=data,
                         text=source.text, digest=digest) for index, line, column, data, digest in kept]
    from reconciler.spec import yamltree

    found: list[errors.Problem] = []
    docs = yamltree.parse(source, found, limits, yamltree.Loader)
    if not found and not any(d.problems for d in docs):
        cache.put(source.text, salt, docs)
    problems.extend(found)
    return docs
