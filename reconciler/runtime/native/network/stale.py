"""Marks of processes whose containers' peers wait for a new container's name.

In a batch (`NetworkManager.batch`) an attach writes the new container's own hosts file and
leaves its peers' files to one rewrite per network a second later or at the batch's end. While
names wait, the process holds a file in the run dir's `net-stale/` (named by its pid, for
people) locked with flock: the kernel drops the lock when the process dies, however it dies.
Start-up recovery finds a mark it can lock (its process is gone: killed mid-batch), writes every
hosts file again (`NetworkManager.recover`) and removes it. Read without the network manager's
modules, as the rest of recovery's look is (#21).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os

from reconciler.runtime.native.config import NativeConfig

__all__ = ["Mark", "dead_marks"]

_serial = itertools.count()     # two engines of one process (an agent's pass and its API) mark apart


class Mark:
    """This process's mark, held from `__init__` until `release`."""

    def __init__(self, config: NativeConfig) -> None:
        config.net_stale_dir.mkdir(parents=True, exist_ok=True)
        self.path = config.net_stale_dir / f"{os.getpid()}.{next(_serial)}"
        while True:
            self._fd = os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            # a recovery that locked the new file before this process did took it for a dead
            # one's and removed it: the name must still be this file, or it is made again
            try:
                if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                    return
            except FileNotFoundError:
                pass
            os.close(self._fd)

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)


def dead_marks(config: NativeConfig, *, remove: bool = False) -> list[str]:
    """The marks no live process holds; with `remove`, deleted (after every hosts file was
    written again)."""
    try:
        names = os.listdir(config.net_stale_dir)
    except FileNotFoundError:
        return []
    dead = []
    for name in names:
        path = config.net_stale_dir / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue                    # released meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue                    # its process holds it: names wait there now
        try:
            dead.append(name)
            if remove:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        finally:
            os.close(fd)
    return dead
