"""A pass's session on an engine: its supervision loops run while the pass does (#15).

Engines are opened by `reconciler.runtime.opening.open_runtime` (the one place that names the
backends); `session()` wraps one for a pass. On the native engine the healthcheck and
restart-policy loops then run in background threads (what the agent runs), so health gates
work in a one-shot `reconcile --once` too. A lazy session (`reconcile apply`/`--once`,
rollback) starts them when the pass's first action is about to run (the executor's
`on_start`): a pass with nothing to do, which ends in a blink, runs none (#21: at 500
containers their first look, every record, log and process, cost a no-op pass a sixth of its
time). Its engine-start restarts (`boot`) run at the session's start either way; one that
`boot` leaves in its back-off (a crash loop: it says "restarting", which a pass leaves to the
restart manager, as compose leaves a container in dockerd's back-off) starts the loops at once.
"""

from __future__ import annotations

import threading
from types import TracebackType

from reconciler.runtime import base

__all__ = ["Session", "session"]


class Session:
    """A context manager yielding the runtime, which it closes at the end; `supervise()` starts
    the engine's supervision loops (once; at once unless `lazy`)."""

    def __init__(self, runtime: base.Runtime, *, supervise: bool = True, poll: float = 0.2,
                 lazy: bool = False) -> None:
        self.runtime = runtime
        self._supervised = supervise and isinstance(runtime, base.Supervised)
        self._poll = poll
        self._lazy = lazy
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.booted: list[str] = []     # the containers the engine's start ran again (`boot`)

    def __enter__(self) -> base.Runtime:
        if self._supervised:
            assert isinstance(self.runtime, base.Supervised)
            # as dockerd does at start: containers that are down (after a reboot, a crash) and
            # that their restart policy runs again start now, before the pass observes, instead
            # of racing the restart loop
            try:
                self.booted = self.runtime.restart_manager.boot()
            except Exception:  # noqa: BLE001 - the pass will see what is down and say so
                from reconciler import logs

                logs.get_logger("reconciler.execution").warning("restart at engine start failed", exc_info=True)
            # a crash-looping container `boot` left in its back-off (restarting, naming this
            # process): the watch makes its restart, and clears the flag at the session's end
            if not self._lazy or self.runtime.restart_manager.pending():
                self.supervise()
        return self.runtime

    def supervise(self) -> None:
        """Start the healthcheck and restart-policy loops, if the engine has them and they do
        not run yet (any thread may call this; the first call starts them)."""
        with self._lock:
            if not self._supervised or self._threads or self._stop.is_set():
                return
            assert isinstance(self.runtime, base.Supervised)
            loops: dict[str, base.SupervisionLoop] = {"health_checker": self.runtime.health_checker,
                                                      "restart_manager": self.runtime.restart_manager}
            for part, loop in loops.items():
                t = threading.Thread(target=loop.watch, args=(self._stop,), kwargs={"poll": self._poll},
                                     name=f"reconcile-{part}", daemon=True)
                t.start()
                self._threads.append(t)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with self._lock:
            self._stop.set()
        try:
            for t in self._threads:
                t.join(timeout=30)
        finally:
            self.runtime.close()


def session(runtime: base.Runtime, *, supervise: bool = True, poll: float = 0.2, lazy: bool = False) -> Session:
    """Run the engine's supervision loops (if it has any and `supervise`) while the pass runs;
    close the runtime after. `reconcile diff` opens a session without them: it changes nothing.
    `lazy`: the loops start at the first `Session.supervise()` (the executor's `on_start`)."""
    return Session(runtime, supervise=supervise, poll=poll, lazy=lazy)
