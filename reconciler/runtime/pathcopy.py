"""`docker cp`'s client half, on any engine with `base.PathCopying` (its archive endpoints): what
archive goes where, as the docker CLI decides it (moby's pkg/archive/copy.go `CopyInfo` rules,
cli/command/container/cp.go), and the host side of it: a local path made a tar, and a tar
unpacked into a local path. Engine-neutral, stdlib only.

    split_arg(arg)                       `CTR:PATH` -> (CTR, PATH); a local path -> ("", arg)
    copy_from(rt, ctr, src, dst, out=)   the container's SRC to the local DST (or `-`: the tar to `out`)
    copy_to(rt, ctr, src, dst, stdin=)   the local SRC (or `-`: a tar read from `stdin`) to DST in it

Where a copy lands (SRC a file or a directory; DST there or not, a file or a directory, ending in
`/` or not; `DIR/.`: the directory's content) is `prepare`, moby's PrepareArchiveCopy: the tar is
unpacked into DST's directory with its first name component renamed to DST's name, or into DST
itself when it is a directory. `-L` follows a symlink SRC (its target copied under the link's
name); without it a symlink is copied as one. Into a container the entries keep the owners they
have here (the engine unpacks them; `-a`: the container's user's, as dockerd chowns them); out of
one they are owned by the user copying (no chown: moby's NoLchown), modes and times kept. The
host side never writes outside DST: an entry that climbs out (`..`, through a symlink the
archive or the destination has) is refused, a hard link to outside too, and an entry replaces a
file, link or empty path at its place but never a directory with a non-directory or the reverse
(NoOverwriteDirNonDir).

Both return the bytes of tar moved (what `Successfully copied 2.05kB to DEST` counts, as docker
28 counts them) and the destination as docker names it in that line.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
import threading
from collections.abc import Iterator
from typing import IO, Any

from reconciler._dataclass import dataclass
from reconciler.runtime import errors

__all__ = ["GO_DIR", "GO_SYMLINK", "CopyInfo", "UnpaddedTar", "copy_from", "copy_to", "prepare", "split_arg"]

GO_DIR = 1 << 31            # Go's os.ModeDir and os.ModeSymlink, the bits of a PathStat's mode
GO_SYMLINK = 1 << 27
_GO_KINDS = GO_DIR | GO_SYMLINK | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19)   # not a regular file


class UnpaddedTar(tarfile.TarFile):
    """A tar written as Go's archive/tar writes it (dockerd's, the docker CLI's): its end is its
    two zero blocks, not padded to tarfile's 10 KiB record, so a copy moves (and counts, in
    "Successfully copied 2.05kB") what docker's moves."""

    def close(self) -> None:
        if self.closed:         # type: ignore[has-type]
            return
        if self.mode in ("a", "w", "x"):
            self.fileobj.write(tarfile.NUL * (tarfile.BLOCKSIZE * 2))
            self.offset += tarfile.BLOCKSIZE * 2
        self.closed = True
        if not self._extfileobj:         # type: ignore[attr-defined]
            self.fileobj.close()


@dataclass(frozen=True)
class CopyInfo:
    """A copy's source or destination: its path, whether it exists and is a directory, and the
    name its entries take instead of its own (a followed symlink's: moby's RebaseName)."""

    path: str
    exists: bool = False
    is_dir: bool = False
    rebase: str = ""


def split_arg(arg: str) -> tuple[str, str]:
    """`CTR:PATH` -> (CTR, PATH); a local path -> ("", arg): one that begins with `/`, or `.`
    before its colon (`./file:name.txt`), or has none, as the docker CLI's splitCpArg."""
    if arg.startswith("/"):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep or container.startswith("."):
        return "", arg
    return container, path


# -- paths as Go's filepath and moby's archive package treat them


def _clean(path: str) -> str:
    """Go's filepath.Clean (`//a` is `/a`, unlike posixpath's)."""
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def _base(path: str) -> str:
    """Go's filepath.Base: the last element, trailing slashes dropped; `.` for "", `/` for slashes."""
    if not path:
        return "."
    stripped = path.rstrip("/")
    return stripped.rsplit("/", 1)[-1] if stripped else "/"


def _dir(path: str) -> str:
    """Go's filepath.Dir: all but the last element, cleaned."""
    return _clean(path[:path.rfind("/") + 1] or ".")


def _current_dir(path: str) -> bool:
    return _base(path) == "."


def _asserts_directory(path: str) -> bool:
    """Whether `path` says it is a directory: a trailing `/` or a last element `.`."""
    return path.endswith("/") or _current_dir(path)


def _preserve(cleaned: str, original: str) -> str:
    """moby's PreserveTrailingDotOrSeparator: `cleaned` with the `/.` or `/` `original` ends in."""
    if not _current_dir(cleaned) and _current_dir(original):
        cleaned = cleaned + ("" if cleaned.endswith("/") else "/") + "."
    if not cleaned.endswith("/") and original.endswith("/"):
        cleaned += "/"
    return cleaned


def _split_entry(path: str) -> tuple[str, str]:
    """moby's SplitPathDirEntry: (directory, base) of the cleaned path, a last `.` kept."""
    cleaned = _clean(path)
    if _current_dir(path):
        cleaned += "/."
    return _dir(cleaned), _base(cleaned)


def _rebase_name(path: str, resolved: str) -> tuple[str, str]:
    """moby's GetRebaseName: `resolved` with `path`'s trailing `/.` or `/`, and the name its
    entries take when the resolution changed the last element ("" when it did not)."""
    if _current_dir(path) and not _current_dir(resolved):
        resolved += "/."
    if path.endswith("/") and not resolved.endswith("/"):
        resolved += "/"
    return resolved, (_base(path) if _base(path) != _base(resolved) else "")


def _local(path: str) -> str:
    """A local path made absolute, its trailing `/` or `/.` kept (the docker CLI's resolveLocalPath)."""
    return _preserve(os.path.abspath(path), path)


def _os_error(exc: OSError, op: str, path: str) -> errors.RuntimeBackendError:
    """An OSError in Go's words (`lstat /x: no such file or directory`)."""
    words = f"{op} {path}: {(exc.strerror or str(exc)).lower()}"
    if isinstance(exc, FileNotFoundError):
        return errors.NotFound(words)
    return errors.InvalidArgument(words)


def prepare(src: CopyInfo, dst: CopyInfo) -> tuple[str, tuple[str, str] | None]:
    """moby's PrepareArchiveCopy: the directory the archive of `src` is unpacked into, and the
    renaming of its entries' first component (old, new) that makes it land as `dst`; None: the
    destination is an existing directory, the archive goes in as it is."""
    dst_dir, dst_base = _split_entry(dst.path)
    _, src_base = _split_entry(src.path)
    if dst.exists and dst.is_dir:
        return dst.path, None
    if dst.exists and src.is_dir:
        raise errors.InvalidArgument("cannot copy directory", hint=f"{dst.path} is a file: name a directory, or a new path")
    if not dst.exists and not src.is_dir and _asserts_directory(dst.path):
        raise errors.NotFound("no such directory", hint=f"make {dst.path} first, or leave its trailing / out to copy "
                              "to a file of that name")
    return dst_dir, (src.rebase or src_base, dst_base)


# -- container -> host


def copy_from(rt: Any, container: str, src: str, dst: str, *, follow_link: bool = False,
              out: IO[bytes] | None = None) -> tuple[int, str]:
    """Copy `src` of the container to the local `dst` (`-`: its tar written to `out`); the bytes
    of tar read and the destination's name (for docker's "Successfully copied ... to DST")."""
    if dst != "-":
        dst = _local(dst)
        _valid_output(dst)
    rebase = ""
    if follow_link:
        try:
            st = rt.stat_path(container, src)
        except errors.NotFound:
            st = None                       # (the copy itself says what is missing)
        if st is not None and int(st.get("mode", 0)) & GO_SYMLINK:
            target = str(st.get("linkTarget") or "")
            if not target.startswith("/"):
                target = _clean(posixpath.join(_split_entry(src)[0], target))
            src, rebase = _rebase_name(src, target)
    pathstat, chunks = rt.read_archive(container, src)
    stream = _Chunks(chunks)
    try:
        if dst == "-":
            if out is None:
                raise ValueError("copy_from to - needs `out`")
            while data := stream.read(1 << 16):
                out.write(data)
            out.flush()
            return stream.count, dst
        source = CopyInfo(src, exists=True, is_dir=bool(int(pathstat.get("mode", 0)) & GO_DIR), rebase=rebase)
        renames = [(_split_entry(src)[1], rebase)] if rebase else []
        destination = _destination(dst)
        into, renamed = prepare(source, destination)
        _untar(stream, into, [*renames, *([renamed] if renamed else [])])
        return stream.count, dst
    finally:
        stream.close()


def _valid_output(path: str) -> None:
    """The docker CLI's ValidateOutputPath: the directory of a local destination must exist, and
    what is there already must be a directory or a file."""
    parent = _dir(_clean(path))
    if parent != "." and not os.path.exists(parent):
        raise errors.NotFound(f'invalid output path: directory "{parent}" does not exist')
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _os_error(exc, "stat", path) from None
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise errors.InvalidArgument(f'invalid output path: "{path}": got a device or another special file')


def _destination(path: str) -> CopyInfo:
    """moby's CopyInfoDestinationPath: the local destination, symlinks at its end followed (10
    at most); one that does not exist needs its parent directory."""
    original = path
    for _ in range(11):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            parent = _split_entry(path)[0]
            try:
                parent_st = os.stat(parent)
            except OSError as exc:
                raise _os_error(exc, "stat", parent) from None
            if not stat.S_ISDIR(parent_st.st_mode):
                raise errors.InvalidArgument("not a directory", hint=f"{parent} is not a directory") from None
            return CopyInfo(path)
        except OSError as exc:
            raise _os_error(exc, "lstat", path) from None
        if not stat.S_ISLNK(st.st_mode):
            return CopyInfo(path, exists=True, is_dir=stat.S_ISDIR(st.st_mode))
        target = os.readlink(path)
        path = target if target.startswith("/") else _clean(posixpath.join(_split_entry(path)[0], target))
    raise errors.InvalidArgument(f"too many symlinks in {original}")


class _Chunks:
    """A tar stream's chunks as a file to read, counting the bytes read."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.left = b""
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self.left) < n:
            try:
                self.left += next(self.chunks)
            except StopIteration:
                break
        data, self.left = (self.left, b"") if n < 0 else (self.left[:n], self.left[n:])
        self.count += len(data)
        return data

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()


def _renamed(name: str, renames: list[tuple[str, str]]) -> str:
    """`name` with each rename (old first component, new) applied in turn (moby's
    RebaseArchiveEntries: `/` as the old one renames nothing but prefixes the new one)."""
    for old, new in renames:
        old = "" if old == "/" else old
        if not old:
            name = new + name
        elif name == old or name.startswith(old + "/"):
            name = new + name[len(old):]
    return name


def _untar(src: _Chunks, into: str, renames: list[tuple[str, str]]) -> None:
    """Unpack the tar stream `src` into the local directory `into` (moby's Untar with NoLchown
    and NoOverwriteDirNonDir): entries renamed, owned by this process's user, modes and times as
    the archive has them; nothing written outside `into`."""
    root = os.path.realpath(into)

    def inside(path: str) -> bool:
        return os.path.commonpath([os.path.realpath(path), root]) == root

    def checked(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
        name = posixpath.normpath(_renamed(member.name, renames).lstrip("/") or ".")
        if name == ".." or name.startswith("../"):
            raise errors.InvalidArgument(f"{member.name}: the archive's entry would be outside {into}")
        target = os.path.join(into, name) if name != "." else into
        if not inside(os.path.dirname(target) if name != "." else into):
            raise errors.InvalidArgument(f"{member.name}: the archive's entry would be outside {into} (a symlink "
                                         "on its way leads out)")
        changes: dict[str, Any] = {"name": name, "uid": os.geteuid(), "gid": os.getegid(), "uname": "", "gname": ""}
        if member.islnk():
            link = posixpath.normpath(_renamed(member.linkname, renames).lstrip("/"))
            if link == ".." or link.startswith("../") or not inside(os.path.join(into, link)):
                raise errors.InvalidArgument(f"{member.name}: a hard link to outside {into}")
            changes["linkname"] = link
        try:
            here = os.lstat(target)
        except FileNotFoundError:
            here = None
        if here is not None:
            if stat.S_ISDIR(here.st_mode) and not member.isdir():
                raise errors.InvalidArgument(f"cannot overwrite directory {target!r} with non-directory {member.name!r}")
            if not stat.S_ISDIR(here.st_mode) and member.isdir():
                raise errors.InvalidArgument(f"cannot overwrite non-directory {target!r} with directory {member.name!r}")
            if not member.isdir():
                os.unlink(target)           # replaced, never written through (a symlink there)
        return member.replace(**changes, deep=False)

    try:
        with tarfile.open(fileobj=src, mode="r|") as tar:      # type: ignore[call-overload]
            tar.extractall(into, numeric_owner=True, filter=checked)     # noqa: S202 - `checked` vets each entry
        while src.read(1 << 16):
            pass                # the archive's end, read as docker reads it (its byte count)
    except tarfile.TarError as exc:
        raise errors.InvalidArgument(f"the archive cannot be unpacked into {into}: {exc}") from None
    except OSError as exc:
        raise _os_error(exc, "write", getattr(exc, "filename", None) or into) from None


# -- host -> container


def copy_to(rt: Any, container: str, src: str, dst: str, *, follow_link: bool = False, copy_uid_gid: bool = False,
            stdin: IO[bytes] | None = None) -> tuple[int, str]:
    """Copy the local `src` (`-`: a tar read from `stdin`, unpacked into the directory `dst`) to
    `dst` in the container; the bytes of tar sent and the destination as docker names it."""
    if src != "-":
        src = _local(src)
    destination = CopyInfo(dst)
    st: dict[str, Any] | None = None
    try:
        st = rt.stat_path(container, dst)
        if int(st.get("mode", 0)) & GO_SYMLINK:        # a symlink there: what it points at
            target = str(st.get("linkTarget") or "")
            if not target.startswith("/"):
                target = _clean(posixpath.join(_split_entry(dst)[0], target))
            destination = CopyInfo(target)
            st = None
            st = rt.stat_path(container, target)
    except errors.Unavailable:
        raise
    except errors.RuntimeBackendError:
        pass        # not there (yet): its parent may be, which the copy needs (the engine says if not)
    if st is not None:
        mode = int(st.get("mode", 0))
        if mode & _GO_KINDS and not mode & GO_DIR:
            raise errors.InvalidArgument(f'destination "{container}:{dst}" must be a directory or a regular file')
        destination = CopyInfo(destination.path, exists=True, is_dir=bool(mode & GO_DIR))
    if src == "-":
        if not destination.is_dir:
            raise errors.InvalidArgument(f'destination "{container}:{dst}" must be a directory',
                                         hint="a tar from stdin is unpacked into a directory")
        if stdin is None:
            raise ValueError("copy_to from - needs `stdin`")
        counted = _Counted(stdin)
        rt.write_archive(container, destination.path, counted, copy_uid_gid=copy_uid_gid)
        return counted.count, f"{container}:{destination.path}"
    source = _source(src, follow_link)
    into, renamed = prepare(source, destination)
    name = renamed[1] if renamed else (source.rebase or _split_entry(source.path)[1])
    with _TarPipe(source.path, name) as tar:
        counted = _Counted(tar)
        rt.write_archive(container, into, counted, copy_uid_gid=copy_uid_gid)
    return counted.count, f"{container}:{destination.path}"


def _source(path: str, follow_link: bool) -> CopyInfo:
    """moby's CopyInfoSourcePath: the local source, its directories' symlinks resolved (and with
    `follow_link` its own, its entries then named as the link); it must exist."""
    if follow_link:
        if not os.path.lexists(path.rstrip("/") or "/"):
            raise _os_error(FileNotFoundError(2, "no such file or directory"), "lstat", path)
        resolved, rebase = _rebase_name(path, os.path.realpath(path))
    else:
        head, tail = path[:path.rfind("/") + 1], path[path.rfind("/") + 1:]
        resolved = os.path.realpath(head or ".").rstrip("/") + "/" + tail
        rebase = _base(path) if path.endswith("/") and _base(path) != _base(resolved) else ""
    try:
        st = os.lstat(resolved)
    except OSError as exc:
        raise _os_error(exc, "lstat", resolved) from None
    if path.endswith("/") and not stat.S_ISDIR(st.st_mode):
        raise errors.InvalidArgument(f"lstat {resolved}: not a directory")
    return CopyInfo(resolved, exists=True, is_dir=stat.S_ISDIR(st.st_mode), rebase=rebase)


def _whole_seconds(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """An entry's mtime in whole seconds, as moby's tar writer truncates it (no PAX record for it)."""
    info.mtime = int(info.mtime)
    return info


class _Counted:
    """A file to read, counting the bytes read."""

    def __init__(self, src: Any) -> None:
        self.src = src
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data: bytes = self.src.read(n)
        self.count += len(data)
        return data


class _TarPipe:
    """A local path as a tar stream to read, made by a thread as it is read (moby's TarResource:
    its entries named from `name`, directories recursively, symlinks as symlinks, hard links as
    links, sockets left out; owners, modes and times as they are here). A failure making it is
    raised when the stream is closed (its reader saw an archive cut short)."""

    def __init__(self, path: str, name: str) -> None:
        read, write = os.pipe()
        self.reader = os.fdopen(read, "rb")
        self.error: BaseException | None = None

        def produce() -> None:
            try:
                with os.fdopen(write, "wb") as out, \
                        UnpaddedTar.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    tar.add(path.rstrip("/") or "/", arcname=name, filter=_whole_seconds)
            except BrokenPipeError:
                pass                            # the engine stopped reading: it says why
            except BaseException as exc:  # noqa: BLE001 - handed to the reading side
                self.error = exc

        self.thread = threading.Thread(target=produce, name="cp-tar", daemon=True)
        self.thread.start()

    def read(self, n: int = -1) -> bytes:
        return self.reader.read(n)

    def __enter__(self) -> _TarPipe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reader.close()
        self.thread.join()
        if self.error is not None and exc[0] is None:
            if isinstance(self.error, OSError):
                raise _os_error(self.error, "read", getattr(self.error, "filename", None) or "") from None
            raise self.error
