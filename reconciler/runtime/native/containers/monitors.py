"""Wait for containers' monitors (conmon) to end: one pidfd per monitor in an epoll set.

conmon writes a container's exit file, then ends; a conmon that was killed ends without
writing one. Either way its pidfd (`os.pidfd_open`, any process, not only children) becomes
readable, so the restart manager learns of every exit, and of every lost monitor, from the
kernel the moment it happens, with no per-container work while nothing ends:

    w = MonitorWatch()
    gone = w.track(records)     # watch the monitors of these records; ids whose monitor is already gone
    ended = w.wait(timeout)     # ids whose monitor ended (blocks until one does, or timeout)
    w.unwatched                 # ids left without a pidfd (out of file descriptors): sweep those
    w.wake_on(stop_event)       # wait() returns as soon as the event is set
    w.close()

A pidfd names one process, never a later one with the same pid: the monitor's identity (pid,
start time, boot) is checked once, after its pidfd is open.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from reconciler.runtime.native import procs

if TYPE_CHECKING:
    from reconciler.runtime.native.containers import records

__all__ = ["MonitorWatch", "raise_fd_limit"]


def raise_fd_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit (a pidfd per running
    container: 1000 containers need more than the usual 1024); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


class MonitorWatch:
    """The pidfds of the monitors of running (and created) containers."""

    def __init__(self) -> None:
        import selectors  # here: an engine that watches no monitor (`--once`) loads no selector (#21)

        self._selector = selectors.DefaultSelector()
        self._readable = selectors.EVENT_READ
        self._fds: dict[str, tuple[int, int]] = {}      # container id -> (monitor pid, pidfd)
        self.unwatched: set[str] = set()                # no pidfd to spare: to be swept instead
        self._wake: tuple[int, int] | None = None       # a pipe that wakes wait() (wake_on)
        self._lock = threading.Lock()

    def __enter__(self) -> MonitorWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def watched(self) -> set[str]:
        return set(self._fds)

    def track(self, recs: Iterable[records.Record]) -> set[str]:
        """Watch the monitor of each record that has one running, and stop watching the others
        (removed, ended, or with a new monitor since); returns the ids whose monitor is
        already gone (ended before it could be watched)."""
        want = {r.id: r for r in recs if r.status in ("running", "created") and r.conmon_pid}
        for cid, (pid, _) in list(self._fds.items()):
            if cid not in want or want[cid].conmon_pid != pid:
                self._drop(cid)
        self.unwatched &= set(want)
        gone: set[str] = set()
        for cid, rec in want.items():
            if cid not in self._fds and self._open(rec):
                gone.add(cid)
        return gone

    def _open(self, rec: records.Record) -> bool:
        """Watch `rec`'s monitor; True when it is gone already."""
        pid = rec.conmon_pid or 0
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return True
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOMEM):
                raise
            self.unwatched.add(rec.id)
            return False
        # the pid could have been reused before the pidfd was opened: the fd is the monitor's
        # only if the process it names is the one recorded (a zombie monitor is still it)
        if not procs.alive(pid, rec.conmon_start, rec.boot_id, zombie_ok=True):
            os.close(fd)
            return True
        self.unwatched.discard(rec.id)
        self._selector.register(fd, self._readable, rec.id)
        self._fds[rec.id] = (pid, fd)
        return False

    def wake_on(self, event: threading.Event) -> None:
        """Make wait() return as soon as `event` is set (a thread blocked on it writes to a pipe
        in the epoll set: no wake-ups before)."""
        r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._wake = (r, w)
        self._selector.register(r, self._readable, None)

        def wake() -> None:
            event.wait()
            with self._lock:
                if self._wake is not None:
                    os.write(self._wake[1], b"!")

        threading.Thread(target=wake, name="monitors-wake", daemon=True).start()

    def _drop(self, cid: str) -> None:
        entry = self._fds.pop(cid, None)
        if entry is not None:
            self._selector.unregister(entry[1])
            os.close(entry[1])

    def wait(self, timeout: float | None) -> set[str]:
        """The ids whose monitor ended, waiting up to `timeout` seconds for one (they are
        watched no more)."""
        ended = {key.data for key, _ in self._selector.select(timeout) if key.data is not None}
        for cid in ended:
            self._drop(cid)
        return ended

    def close(self) -> None:
        for cid in list(self._fds):
            self._drop(cid)
        self._selector.close()
        with self._lock:
            if self._wake is not None:
                os.close(self._wake[0])
                os.close(self._wake[1])
                self._wake = None
