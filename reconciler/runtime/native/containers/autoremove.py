"""Who removes an AutoRemove container that exited (`run --rm -d`, docker's AutoRemove).

dockerd removes such a container at its exit because dockerd always runs. The native engine
runs only while a process has it open, so the removal has two homes, as podman's has (conmon's
`--exit-command`, `podman container cleanup --rm`):

- a process that supervises (an agent, `reconcile engine-api`, a pass while its loops run) holds
  the supervisor lock shared (`supervising`, taken by RestartManager's watch) and its restart
  manager removes the container at its exit (restart.py, which also leaves alone one being
  restarted by hand: `docker restart`);
- conmon runs `command` (runtime/native/cleanup.py) when the container exits: if it gets the lock
  exclusively (`unsupervised`), nothing supervises, and it removes the container (its anonymous
  volumes with it) if it is still an exited AutoRemove container; otherwise it leaves it to the
  supervisor.

What neither removes (this command failed, or the host went down first) the next engine start
removes (RestartManager.boot).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reconciler.runtime.native.config import NativeConfig

__all__ = ["LOCK", "command", "supervised", "supervising", "unsupervised"]

LOCK = "supervisor.lock"        # under <run_dir>/locks


def _open_lock(run_dir: Path) -> int:
    locks = run_dir / "locks"
    locks.mkdir(parents=True, exist_ok=True, mode=0o700)
    return os.open(locks / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


@contextlib.contextmanager
def supervising(run_dir: Path) -> Iterator[None]:
    """Held (shared) while this process's restart manager watches exits: conmon's exit command
    then leaves AutoRemove containers to it. Waits for an exit command removing one now."""
    fd = _open_lock(run_dir)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def command(config: NativeConfig, cid: str) -> list[str]:
    """conmon's exit command for the AutoRemove container `cid` of the engine `config`
    (runtime/native/cleanup.py)."""
    return [sys.executable, "-m", "reconciler.runtime.native.cleanup", str(config.root), str(config.run_dir),
            config.name_prefix, config.oci_runtime, cid]


def supervised(run_dir: Path) -> bool:
    """Whether a process supervises now (a restart manager's watch holds the lock shared; this
    process's own too): not when the lock is free, nor when an exit command holds it exclusively,
    which it gets only while none does."""
    fd = _open_lock(run_dir)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return False            # an exit command's: no supervisor meanwhile
            return True
        return False
    finally:
        os.close(fd)


@contextlib.contextmanager
def unsupervised(run_dir: Path) -> Iterator[bool]:
    """Whether no process supervises (the lock taken exclusively, held until the end: no
    supervisor starts meanwhile); False when one does, and then its restart manager removes."""
    fd = _open_lock(run_dir)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
