"""Is a recorded process still the one we started? pid + start time + boot id, from /proc.

A pid alone lies: after a reboot or once reaped, the number can belong to another process, and
a killed child the agent has not reaped yet is a zombie that `kill(pid, 0)` still finds. A
process is taken for ours only when /proc/PID/stat exists, its state is not Z (zombie) or X
(dead), its start time (field 22, clock ticks since boot) is the one recorded when it was
started, and the host's boot id is the one recorded with it.
"""

from __future__ import annotations

import os
import time

__all__ = ["alive", "boot_id", "exists", "send", "start_time", "state", "wait_gone"]


_boot_id: list[str] = []


def boot_id() -> str:
    """This boot's id (/proc/sys/kernel/random/boot_id); changes at every boot. Read once per
    process (not functools.cache, nor pathlib: `ps` without an agent asks this and loads
    neither, #21)."""
    if not _boot_id:
        try:
            with open("/proc/sys/kernel/random/boot_id", encoding="utf-8") as f:
                _boot_id.append(f.read().strip())
        except OSError:
            _boot_id.append("")
    return _boot_id[0]


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None.

    Read with os.open/os.read (half the cost of pathlib's): supervision asks this for every
    running container's processes."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        raw = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    return raw[raw.rfind(b")") + 2:].decode().split()


def start_time(pid: int | None) -> int | None:
    """The process's start time in clock ticks since boot, None if there is no such process."""
    fields = _stat(pid) if pid else None
    return int(fields[19]) if fields and len(fields) > 19 else None


def alive(pid: int | None, start: int | None = None, boot: str | None = None, *,
          zombie_ok: bool = False) -> bool:
    """Whether `pid` is a live process that started at `start` in boot `boot` (either left out
    when it was not recorded: records of older versions). A zombie is dead, unless `zombie_ok`:
    a monitor that has just ended is still finishing its bookkeeping until it is reaped."""
    found = state(pid, start, boot)
    return found is not None and (found != "Z" or zombie_ok)


def state(pid: int | None, start: int | None = None, boot: str | None = None) -> str | None:
    """The state letter of `pid` (R, S, D, ..., Z for a zombie) when it is the process that
    started at `start` in boot `boot` and is not dead (X); None otherwise (as `alive`)."""
    if not pid or (boot and boot != boot_id()):
        return None
    fields = _stat(pid)
    if not fields or fields[0] in ("X", "x"):
        return None
    return fields[0] if start is None or (len(fields) > 19 and int(fields[19]) == start) else None


def exists(pid: int) -> bool:
    """Whether a process `pid` exists (any process: no identity checked, see `alive`)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def send(pid: int | None, start: int | None, boot: str | None, signo: int) -> bool:
    """Send `signo` to `pid` if it is still the process that started at `start` in boot `boot`
    (through a pidfd opened before that check: a pid reused meanwhile gets nothing); whether it
    was sent."""
    if not pid:
        return False
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        if not alive(pid, start, boot):
            return False
        import signal  # here: most callers of this module only read /proc

        signal.pidfd_send_signal(fd, signo)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)


def wait_gone(pid: int | None, timeout: float | None) -> bool:
    """Wait for `pid` to end (a pidfd, woken when it does: no polling sleep); True if it ended
    within `timeout` (None: no limit)."""
    if not pid:
        return True
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except OSError:                             # no pidfd (kernel < 5.3): look every 10 ms
        deadline = None if timeout is None else time.monotonic() + timeout
        while exists(pid):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True
    try:
        import select  # here: `ps` asks whether a monitor runs, and waits for none (#21)

        p = select.poll()
        p.register(fd, select.POLLIN)
        return bool(p.poll(None if timeout is None else max(0, int(timeout * 1000))))
    finally:
        os.close(fd)
