"""A pass's session on an engine: its supervision loops run while the pass acts (#15).

Engines are opened by `reconciler.runtime.opening.open_runtime` (the one place that names the
backends); `session()` wraps one for a pass. On the native engine the session boots the engine
(containers down after a reboot or a crash that their restart policy runs are started), and the
healthcheck and restart-policy loops (what the agent runs) run in background threads from the
pass's first action (`supervise`, which `passes.run_pass` calls), so health gates work in a
one-shot `reconcile --once` too. A pass with nothing to do starts no loop: it runs no healthcheck
(spawns no process) and does not watch every container's monitor (#21: ~40 ms of CPU at 500
containers).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from reconciler.runtime import base

__all__ = ["session", "supervise"]

_lock = threading.Lock()
_waiting: dict[int, Callable[[], None]] = {}     # id(runtime) -> starts its session's loops


@contextmanager
def session(runtime: base.Runtime, *, supervise: bool = True, poll: float = 0.2) -> Iterator[base.Runtime]:
    """Boot the engine (if it is supervised and `supervise`) and have its supervision loops
    started by the pass's first action (`supervise()`); close the runtime after. `reconcile
    diff` opens a session without them: it changes nothing."""
    stop = threading.Event()
    threads: list[threading.Thread] = []
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

        def start() -> None:
            for part, loop in loops.items():
                t = threading.Thread(target=loop.watch, args=(stop,), kwargs={"poll": poll},
                                     name=f"reconcile-{part}", daemon=True)
                t.start()
                threads.append(t)

        with _lock:
            _waiting[id(runtime)] = start
    try:
        yield runtime
    finally:
        with _lock:
            _waiting.pop(id(runtime), None)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        runtime.close()


def supervise(runtime: base.Runtime) -> None:
    """Start the supervision loops of `runtime`'s session, if it has loops not started yet
    (a pass calls it before its first action; later calls do nothing)."""
    with _lock:
        start = _waiting.pop(id(runtime), None)
    if start is not None:
        start()
