"""Leases on things tests must not share (address blocks, published ports), across every
process of the host: a JSON file of lease -> pid under an flock, where a lease whose process is
gone is dropped by the next leaser, so a killed worker never strands one for long.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from reconciler.runtime.native import procs

__all__ = ["held"]


@contextlib.contextmanager
def held(kind: str) -> Iterator[dict[str, int]]:
    """The live leases of `kind` (key -> pid), under the host-wide lock; what the caller adds
    or removes in the dict is written back when the block ends."""
    leases, lock = Path(f"/tmp/reconciler-test-{kind}.json"), Path(f"/tmp/reconciler-test-{kind}.lock")
    with lock.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            data = json.loads(leases.read_text())
        except (OSError, ValueError):
            data = {}
        live = {str(k): int(v) for k, v in data.items() if procs.exists(int(v))} if isinstance(data, dict) else {}
        yield live
        tmp = leases.with_suffix(f".{os.getpid()}")
        tmp.write_text(json.dumps(live))
        os.replace(tmp, leases)
