"""The store lock: one writer per state root (a CLI pass and an agent never race)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reconciler.errors import TemporaryError, TerminalError

__all__ = ["store_lock"]


@contextmanager
def store_lock(root: str | os.PathLike[str]) -> Iterator[None]:
    """Hold `<root>/reconcile.lock` exclusively; fail at once if another writer has it."""
    Path(root).mkdir(parents=True, exist_ok=True)
    fd = os.open(Path(root) / "reconcile.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            agent = _agent(root)
            if agent:                       # the agent holds it for its whole life: usage (exit 2), not a failed pass
                raise TerminalError(
                    f"an agent is running on {root} ({agent}); it applies its own sources",
                    hint="use `reconcile status` / `reconcile reconcile-now`, or stop the agent "
                    "to apply by hand") from exc
            raise TemporaryError(f"another reconcile pass holds {root}/reconcile.lock",
                                 hint="wait for it to finish (or stop the agent) and retry") from exc
        yield
    finally:
        os.close(fd)


def _agent(root: str | os.PathLike[str]) -> str:
    """'pid N, socket S' from <root>/agent.json (written by a running agent), or ''."""
    import json

    try:
        data = json.loads((Path(root) / "agent.json").read_text())
        return f"pid {int(data['pid'])}, socket {data['socket']}"
    except (OSError, ValueError, KeyError, TypeError):
        return ""
