"""Reading conmon's k8s-file container logs: reassembly, --since, --tail, --follow.

Line format (conmon src/ctr_logging.c): `<RFC3339Nano with offset> <stdout|stderr> <F|P> <data>`.
`P` is a partial chunk (conmon's 8 KiB buffer, or output without a newline); chunks of one
stream are joined until its `F`. conmon may truncate the file when it reaches
`--log-size-max` (it reopens a fresh file), which the follower notices by inode or size.
"""

from __future__ import annotations

import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.runtime import base
from reconciler.runtime import errors as rterrors

__all__ = ["parse_since", "read_logs"]

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|m|s|ms))+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_since(value: str, *, now: datetime | None = None) -> datetime:
    """Docker's --since: RFC 3339 time, Unix timestamp, or a duration ago ("10m", "1h30m")."""
    v = value.strip()
    now = now or datetime.now(UTC)
    if _DURATION.match(v):
        seconds = 0.0
        for num, unit in _PART.findall(v):
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
        out = [base.LogLine(time=ts, stream=s, data=b"".join(c)) for s, (ts, c) in self.pending.items()]
        self.pending.clear()
        return out


def _keep(line: base.LogLine, since: datetime | None) -> bool:
    if since is None:
        return True
    t = _parse_time(line.time)
    return t is None or t >= since


def read_logs(
    path: Path,
    *,
    follow: bool = False,
    since: str | None = None,
    tail: int | None = None,
    is_running: Callable[[], bool] | None = None,
    poll: float = 0.1,
) -> Iterator[base.LogLine]:
    """Yield reassembled lines; with `follow`, keep reading until the container stops."""
    since_dt = parse_since(since) if since else None
    try:
        f = open(path, "rb")  # noqa: SIM115 - kept open across the follow loop
    except FileNotFoundError:
        if not follow:
            return
        f = None
    asm = _Assembler()
    try:
        backlog: deque[base.LogLine] | None = deque(maxlen=tail) if tail is not None and tail >= 0 else None
        if f is not None:
            for raw in f:
                if not raw.endswith(b"\n"):
                    f.seek(-len(raw), os.SEEK_CUR)      # a line conmon is still writing
                    break
                line = asm.feed(raw[:-1])
                if line is None or not _keep(line, since_dt):
                    continue
                if backlog is not None:
                    backlog.append(line)
                else:
                    yield line
        if not follow:
            for line in asm.flush():
                if _keep(line, since_dt):
                    if backlog is not None:
                        backlog.append(line)
                    else:
                        yield line
            if backlog is not None:
                yield from backlog
            return
        if backlog is not None:
            yield from backlog
        buf = b""
        while True:
            if f is None:
                try:
                    f = open(path, "rb")  # noqa: SIM115
                except FileNotFoundError:
                    f = None
            chunk = f.read(65536) if f is not None else b""
            if chunk:
                buf += chunk
                *complete, buf = buf.split(b"\n")
                for raw in complete:
                    line = asm.feed(raw)
                    if line is not None and _keep(line, since_dt):
                        yield line
                continue
            running = is_running() if is_running is not None else False
            if f is not None:
                # conmon truncates by replacing the file: follow the new one
                try:
                    st = os.stat(path)
                    if st.st_ino != os.fstat(f.fileno()).st_ino or st.st_size < f.tell():
                        f.close()
                        f = open(path, "rb")  # noqa: SIM115
                        buf = b""
                        continue
                except FileNotFoundError:
                    pass
            if not running:
                # one more read after the exit: conmon syncs the log before the exit file
                if f is not None:
                    rest = f.read()
                    if rest:
                        buf += rest
                        *complete, buf = buf.split(b"\n")
                        for raw in complete:
                            line = asm.feed(raw)
                            if line is not None and _keep(line, since_dt):
                                yield line
                for line in asm.flush():
                    if _keep(line, since_dt):
                        yield line
                return
            time.sleep(poll)
    finally:
        if f is not None:
            f.close()
