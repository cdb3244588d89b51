"""A pass's session on an engine: its supervision loops run while the pass does (#15).

Engines are opened by `reconciler.runtime.opening.open_runtime` (the one place that names the
backends); `session()` wraps one for a pass. On the native engine the healthcheck and
restart-policy loops then run in background threads (what the agent runs), so health gates
work in a one-shot `reconcile --once` too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from reconciler.runtime import base

__all__ = ["session"]


@contextmanager
def session(runtime: base.Runtime, *, supervise: bool = True, poll: float = 0.2) -> Iterator[base.Runtime]:
    """Run the engine's supervision loops (if it has any and `supervise`) while the pass runs;
    close the runtime after. `reconcile diff` opens a session without them: it changes nothing."""
    stop = threading.Event()
    threads = []
    if supervise and isinstance(runtime, base.Supervised):
        # as dockerd does at start: containers that are down (after a reboot, a crash) and that
        # their restart policy runs again start now, before the pass observes, instead of racing
        # the restart loop
        try:
            runtime.restart_manager.boot()
        except Exception:  # noqa: BLE001 - the pass will see what is down and say so
            from reconciler import logs

            logs.get_logger("reconciler.execution").warning("restart at engine start failed", exc_info=True)
        loops: dict[str, base.SupervisionLoop] = {"health_checker": runtime.health_checker,
                                                  "restart_manager": runtime.restart_manager}
        for part, loop in loops.items():
            t = threading.Thread(target=loop.watch, args=(stop,), kwargs={"poll": poll},
                                 name=f"reconcile-{part}", daemon=True)
            t.start()
            threads.append(t)
    try:
        yield runtime
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        runtime.close()
