"""Reading conmon's k8s-file container logs: reassembly, --since, --tail, --follow.

Line format (conmon src/ctr_logging.c): `<RFC3339Nano with offset> <stdout|stderr> <F|P> <data>`.
`P` is a partial chunk (conmon's 8 KiB buffer, or output without a newline); chunks of one
stream are joined until its `F`.

Rotation (Docker's json-file max-size/max-file, done as kubelet does for CRI logs): the
engine's supervision loop calls `rotate()`, which renames `ctr.log` to `ctr.log.1` (shifting
older files up to `max_files - 1`) and asks conmon to reopen through its ctl fifo. Readers
take the rotated files oldest first with one reassembler, so a partial line continues across
a boundary, and a follower finishes the old file and goes on with the new one. A rotated file
may exceed the size by what was written between two supervision ticks. conmon's own
`--log-size-max` cut (it replaces the file) stays as a backstop: a hard link (`ctr.log.pin`)
keeps the file it drops until the next tick rotates it in.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from reconciler.runtime import base
from reconciler.runtime import errors as rterrors

__all__ = ["parse_since", "pin_path", "read_logs", "rotate", "rotated_files"]

# patterns compiled at their first use (re caches them), not by every command that imports this (#21)
REOPEN_WAIT = 0.5      # seconds a rotation waits for conmon's fresh file, to pin it (rotate)
_DURATION = r"^(?:(\d+(?:\.\d+)?)(h|m|s|ms))+$"
_PART = r"(\d+(?:\.\d+)?)(ms|h|m|s)"


def parse_since(value: str, *, now: datetime | None = None) -> datetime:
    """Docker's --since: RFC 3339 time, Unix timestamp, or a duration ago ("10m", "1h30m")."""
    v = value.strip()
    now = now or datetime.now(UTC)
    if re.match(_DURATION, v):
        seconds = 0.0
        for num, unit in re.findall(_PART, v):
            seconds += float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
        return now - timedelta(seconds=seconds)
    try:
        return datetime.fromtimestamp(float(v), UTC)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise rterrors.InvalidArgument(
            f"invalid --since value {value!r}",
            hint="use an RFC 3339 time, a Unix timestamp or a duration such as 10m",
        ) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _parse_time(ts: str) -> datetime | None:
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None


class _Assembler:
    """Joins P chunks per stream until their F line."""

    def __init__(self) -> None:
        self.pending: dict[str, tuple[str, list[bytes]]] = {}

    def feed(self, raw: bytes) -> base.LogLine | None:
        parts = raw.split(b" ", 3)
        if len(parts) < 3:
            return None
        ts, stream, tag = parts[0].decode(errors="replace"), parts[1].decode(errors="replace"), parts[2]
        data = parts[3] if len(parts) == 4 else b""
        first_ts, chunks = self.pending.get(stream, (ts, []))
        chunks.append(data)
        if tag == b"P":
            self.pending[stream] = (first_ts, chunks)
            return None
        self.pending.pop(stream, None)
        return base.LogLine(time=first_ts, stream=stream, data=b"".join(chunks))

    def flush(self) -> list[base.LogLine]:
        """Partial lines left at the end (a process that exited without a final newline)."""
        out = [base.LogLine(time=ts, stream=s, data=b"".join(c), newline=False) for s, (ts, c) in self.pending.items()]
        self.pending.clear()
        return out


def _keep(line: base.LogLine, since: datetime | None) -> bool:
    if since is None:
        return True
    t = _parse_time(line.time)
    return t is None or t >= since


# ---------------------------------------------------------------------------- rotation

def rotated_files(path: Path) -> list[Path]:
    """The rotated files of a log (`ctr.log.N` ... `ctr.log.1`), oldest first."""
    prefix = path.name + "."
    found: list[tuple[int, Path]] = []
    try:
        with os.scandir(path.parent) as it:
            for e in it:
                suffix = e.name[len(prefix):]
                if e.name.startswith(prefix) and suffix.isdigit():
                    found.append((int(suffix), Path(e.path)))
    except OSError:
        return []
    return [p for _, p in sorted(found, reverse=True)]


def pin_path(path: Path) -> Path:
    """A second hard link to the current log file, kept by `rotate` (see there)."""
    return path.with_name(path.name + ".pin")


def _stat(path: Path | str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def _make_room(path: Path, keep: int) -> None:
    """Shift `ctr.log.N` to `.N+1` and delete what would exceed `keep` rotated files."""
    for old in rotated_files(path):
        if int(old.name.rsplit(".", 1)[1]) >= keep:
            old.unlink(missing_ok=True)
    for n in range(keep - 1, 0, -1):
        with contextlib.suppress(FileNotFoundError):
            os.rename(f"{path}.{n}", f"{path}.{n + 1}")


def rotate(path: Path, ctl: Path, *, max_size: int, max_files: int) -> bool:
    """One supervision step for a running container's k8s-file log; True when it rotated.

    At `max_size` bytes or more, `ctr.log` becomes `ctr.log.1` (older ones shift up, the files
    beyond `max_files` in all are deleted), then conmon is asked through its ctl fifo (message
    "2 0 0": reopen the log, conmon src/ctrl.c) to start a fresh `ctr.log`. Lines conmon writes
    between the rename and the reopen land at the end of `ctr.log.1`: nothing is lost or
    reordered. Nothing happens when conmon is gone (no reader on the fifo).

    conmon's own `--log-size-max` cut replaces `ctr.log` with a new file, which would drop
    the old one; the backstop is harmless because `ctr.log.pin`, a hard link to the current
    file made here, keeps it, and the next step rotates it in as `ctr.log.1`. conmon counts
    toward its cut across the reopens asked of it, so a cut can strike the fresh file a rotation
    just had made: that file is pinned as soon as conmon has made it (up to REOPEN_WAIT), not
    at the next step. A process that finds another one rotating the same log leaves it alone.
    """
    pin = pin_path(path)
    st, pst = _stat(path), _stat(pin)
    if st is None or (pst is not None and pst.st_ino == st.st_ino and (max_size <= 0 or st.st_size < max_size)):
        return False                        # not reopened yet after a rotation, or nothing to do
    try:
        lock_fd = os.open(path.parent / (path.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        st, pst = _stat(path), _stat(pin)
        keep = max(max_files, 1) - 1        # rotated files besides the current one
        rotated = False
        if st is not None and pst is not None and pst.st_ino != st.st_ino:
            one = _stat(f"{path}.1")
            if one is not None and one.st_ino == pst.st_ino:
                pin.unlink()                # our own rotation: the pinned file is ctr.log.1
            else:
                _make_room(path, keep)      # conmon cut the file: keep the one it dropped
                if keep:
                    os.rename(pin, f"{path}.1")
                else:
                    pin.unlink()
                rotated = True
            pst = None
        if st is not None and max_size > 0 and st.st_size >= max_size:
            try:
                ctl_fd = os.open(ctl, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:
                ctl_fd = -1                 # ENXIO: conmon has exited, nothing writes the log
            if ctl_fd >= 0:
                try:
                    _make_room(path, keep)
                    if keep:
                        os.rename(path, f"{path}.1")
                    else:
                        path.unlink()       # max_files 1: Docker truncates; conmon starts anew
                    if pst is not None:     # it named the file just rotated away: the fresh one's now
                        pin.unlink(missing_ok=True)
                    asked = False
                    with contextlib.suppress(OSError):   # exited meanwhile: its next start creates it
                        asked = os.write(ctl_fd, b"2 0 0\n") > 0
                    st = _reopened(path) if asked else None
                    pst = None
                    rotated = True
                finally:
                    os.close(ctl_fd)
        if st is not None and pst is None:
            with contextlib.suppress(OSError):
                os.link(path, pin)
        return rotated
    finally:
        os.close(lock_fd)


def _reopened(path: Path) -> os.stat_result | None:
    """`path` once conmon has made it again after a rotation's reopen (it does at its next turn
    of its loop, after an fsync of the old file), or None after REOPEN_WAIT."""
    deadline = time.monotonic() + REOPEN_WAIT
    while True:
        st = _stat(path)
        if st is not None or time.monotonic() >= deadline:
            return st
        time.sleep(0.002)


# ---------------------------------------------------------------------------- reading

def _open_all(path: Path) -> list[BinaryIO]:
    """Open the log's files, return them oldest first.

    Opened newest first (`ctr.log`, the pin, then `.1`, `.2`...) and a file seen already by
    inode is skipped: a rotation between two opens shifts names but never hides a file or shows
    one twice, and a file conmon cut that is not rotated in yet is read from its pin.
    """
    files: list[BinaryIO] = []
    seen: set[int] = set()
    for p in [path, pin_path(path), *reversed(rotated_files(path))]:
        try:
            f = open(p, "rb")  # noqa: SIM115 - returned open
        except FileNotFoundError:
            continue
        ino = os.fstat(f.fileno()).st_ino
        if ino in seen:
            f.close()
            continue
        seen.add(ino)
        files.append(f)
    files.reverse()
    return files


def _newer_than(path: Path, ino: int | None) -> list[BinaryIO]:
    """The log's files written after the one with inode `ino` (all when it is gone), oldest first."""
    files = _open_all(path)
    for i, f in enumerate(files):
        if os.fstat(f.fileno()).st_ino == ino:
            for g in files[: i + 1]:
                g.close()
            return files[i + 1:]
    return files


class _Reader:
    """Splits bytes into k8s-file lines and reassembles them; one per reader, across files."""

    def __init__(self, since: datetime | None) -> None:
        self.asm = _Assembler()
        self.since = since
        self.buf = b""

    def feed(self, data: bytes) -> list[base.LogLine]:
        self.buf += data
        *complete, self.buf = self.buf.split(b"\n")
        out = []
        for raw in complete:
            line = self.asm.feed(raw)
            if line is not None and _keep(line, self.since):
                out.append(line)
        return out

    def end_of_file(self) -> None:
        """A file ended: conmon never splits a record across files, drop a torn one."""
        self.buf = b""

    def flush(self) -> list[base.LogLine]:
        return [ln for ln in self.asm.flush() if _keep(ln, self.since)]


def read_logs(
    path: Path,
    *,
    follow: bool = False,
    since: str | None = None,
    tail: int | None = None,
    is_running: Callable[[], bool] | None = None,
    poll: float = 0.1,
    idle: Callable[[float], object] = time.sleep,
) -> Iterator[base.LogLine]:
    """Yield reassembled lines of `path` and its rotated files (oldest first); with `follow`,
    keep reading, into the fresh file after each rotation, until the container stops.
    Between looks it calls `idle(poll)`: a sleep, or a wait that ends early when the container's
    monitor does (its exit is then seen at once, not up to `poll` later)."""
    reader = _Reader(parse_since(since) if since else None)
    files = _open_all(path)
    f = files.pop() if files else None          # the newest: followed
    try:
        backlog: deque[base.LogLine] | None = deque(maxlen=tail) if tail is not None and tail >= 0 else None
        out: Callable[[base.LogLine], None] | None = backlog.append if backlog is not None else None
        for g in files:
            with g:
                for line in reader.feed(g.read()):
                    if out is not None:
                        out(line)
                    else:
                        yield line
            reader.end_of_file()
        if f is not None:
            for line in reader.feed(f.read()):
                if out is not None:
                    out(line)
                else:
                    yield line
            if follow and reader.buf:
                f.seek(-len(reader.buf), os.SEEK_CUR)     # a line conmon is still writing
                reader.buf = b""
        if not follow:
            for line in reader.flush():
                if out is not None:
                    out(line)
                else:
                    yield line
            if backlog is not None:
                yield from backlog
            return
        if backlog is not None:
            yield from backlog
        while True:
            if f is not None:
                chunk = f.read(65536)
                if chunk:
                    yield from reader.feed(chunk)
                    continue
            running = is_running() if is_running is not None else False
            try:
                st: os.stat_result | None = os.stat(path)
            except FileNotFoundError:
                st = None                       # renamed away, conmon has not reopened yet
            if st is not None and (f is None or st.st_ino != os.fstat(f.fileno()).st_ino):
                # rotated (or cut by conmon): conmon closed the old file before the new one
                # appeared, so finish it, then read what came after it
                old = None
                if f is not None:
                    yield from reader.feed(f.read())
                    old = os.fstat(f.fileno()).st_ino
                    f.close()
                    f = None
                reader.end_of_file()
                newer = _newer_than(path, old)
                if newer:
                    f = newer.pop()
                    for g in newer:
                        with g:
                            yield from reader.feed(g.read())
                        reader.end_of_file()
                    continue
            elif st is not None and f is not None and st.st_size < f.tell():
                f.seek(0)                       # truncated in place
                reader.end_of_file()
                continue
            if not running:
                # one more read after the exit: conmon syncs the log before the exit file
                if f is not None:
                    yield from reader.feed(f.read())
                yield from reader.flush()
                return
            idle(poll)
    finally:
        if f is not None:
            f.close()
