"""The controller loop: coalesced triggers in, level-based passes out, errors classified.

The contract is controller-runtime's (STYLE.md A2), with kopf's error classes:

- `reconcile(request) -> Result` is called with the key's identity only; it must re-read the
  whole desired and observed state (rule 1). A key never runs concurrently with itself.
- It returns `Result(requeue_after=s)` to be called again after `s` seconds (the periodic
  drift check); success forgets the key's backoff history.
- It raises `reconciler.errors.TerminalError` when retrying cannot help (invalid manifests):
  logged, recorded in the key's status, and not retried until the next trigger.
- Any other exception is retried with per-key exponential backoff; a `TemporaryError` with a
  `delay` waits that long instead.
- `stop()` stops handing out passes, lets the passes in flight finish, and joins the workers.
  `stop_requested` lets a long pass (the executor) end early at a safe point.

Each pass logs one canonical `reconcile_pass` line (key, reconcile_id, outcome, duration,
retry_in / requeue_after) and runs with `reconcile_id` bound (`logs.bound_context`: structlog's
contextvars, without importing structlog until a line is logged), so every line the reconcile
function logs carries it too (rule 10).
"""

from __future__ import annotations

import enum
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from reconciler import logs
from reconciler._dataclass import dataclass
from reconciler.controller import backoff as backoff_mod
from reconciler.controller import triggers
from reconciler.errors import TemporaryError, TerminalError

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

__all__ = ["ControllerLoop", "KeyStatus", "Outcome", "Request", "Result"]


@dataclass(frozen=True)
class Request:
    """Which thing to reconcile (a source's name), not what happened to it."""

    key: str
    reconcile_id: str  # fresh per pass; bound into the logs and recorded in history


@dataclass(frozen=True)
class Result:
    """What a successful pass asks for next."""

    requeue_after: float | None = None  # seconds until the next pass (drift check); None: wait


class Outcome(enum.Enum):
    OK = "ok"
    ERROR = "error"  # retried with backoff
    TERMINAL = "terminal"  # waits for the next trigger


@dataclass(frozen=True)
class KeyStatus:
    """A key's loop-level state, for the status API."""

    key: str
    suspended: bool
    running: bool  # a pass is in flight now
    passes: int  # passes finished so far
    failures: int  # consecutive failed passes (backoff level); 0 after a success
    last_outcome: Outcome | None
    last_error: str | None  # the last failure's message, kept until a success
    last_reconcile_id: str | None
    next_in: float | None  # seconds until the next scheduled pass, None if none is pending


Reconcile = Callable[[Request], Result]


@dataclass
class _Record:
    """What the loop remembers of one source's passes: how many, the last outcome and error."""

    passes: int = 0
    last_outcome: Outcome | None = None
    last_error: str | None = None
    last_reconcile_id: str | None = None


class ControllerLoop:
    """Runs `reconcile` for triggered keys on worker threads."""

    def __init__(
        self,
        reconcile: Reconcile,
        *,
        backoff: backoff_mod.Backoff | None = None,
        workers: int = 1,  # keys reconciled in parallel; one key never runs twice at once
        clock: Callable[[], float] = time.monotonic,  # a manual clock in tests
        queue: triggers.TriggerQueue | None = None,  # None: a queue on `clock`
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex[:12],
        name: str = "controller",
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._reconcile = reconcile
        self._backoff = backoff or backoff_mod.Backoff()
        self._workers = workers
        self._clock = clock
        self.queue = queue or triggers.TriggerQueue(clock=clock)
        self._new_id = new_id
        self._name = name
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._records: dict[str, _Record] = {}
        self._running: set[str] = set()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> ControllerLoop:
        with self._lock:
            if self._threads:
                raise RuntimeError(f"controller {self._name} is already started")
            for i in range(self._workers):
                t = threading.Thread(target=self._work, name=f"{self._name}-{i}", daemon=True)
                self._threads.append(t)
                t.start()
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """Hand out no more passes, wait for the ones in flight; False if `timeout` ran out."""
        self._stop.set()
        self.queue.shutdown()
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    @property
    def stop_requested(self) -> bool:
        """True once stop() was called: a long pass should finish its current action and return."""
        return self._stop.is_set()

    def __enter__(self) -> ControllerLoop:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- triggers -------------------------------------------------------------------------

    def trigger(self, key: str, reason: str = "") -> None:
        """Ask for a pass of `key` as soon as possible (merged with any pending trigger)."""
        self.queue.add(key, reason)

    def waker(self, key: str) -> Callable[[str], None]:
        """A `wake(reason)` callable for a source's `watch()`."""

        def wake(reason: str) -> None:
            self.trigger(key, reason)

        return wake

    def suspend(self, key: str) -> None:
        """Stop passes of `key` (a pass in flight finishes); triggers are kept for resume()."""
        self.queue.suspend(key)
        self._logger().info("reconcile_suspended", key=key)

    def resume(self, key: str) -> None:
        """Allow passes of `key` again, and run one now."""
        self.queue.resume(key)
        self.queue.add(key, "resumed")
        self._logger().info("reconcile_resumed", key=key)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no pass runs and none is due now (scheduled retries may remain)."""
        return self.queue.wait_idle(timeout)

    def status(self, key: str) -> KeyStatus:
        with self._lock:
            rec = self._records.get(key, _Record())
            rec = _Record(rec.passes, rec.last_outcome, rec.last_error, rec.last_reconcile_id)
            running = key in self._running
        return KeyStatus(
            key=key,
            suspended=self.queue.is_suspended(key),
            running=running,
            passes=rec.passes,
            failures=self._backoff.failures(key),
            last_outcome=rec.last_outcome,
            last_error=rec.last_error,
            last_reconcile_id=rec.last_reconcile_id,
            next_in=self.queue.due_in(key),
        )

    def _logger(self) -> FilteringBoundLogger:
        # looked up per use, not cached at construction: configuration (and tests'
        # capture_logs) may change after the loop was built
        log: FilteringBoundLogger = logs.get_logger("reconciler.controller")
        return log.bind(controller=self._name)

    # -- workers --------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.is_set():
            batch = self.queue.get()
            if batch is None:
                return
            with self._lock:
                self._running.add(batch.key)
            try:
                self._run(batch)
            finally:
                with self._lock:
                    self._running.discard(batch.key)
                self.queue.done(batch.key)

    def _run(self, batch: triggers.Batch) -> None:
        key = batch.key
        rid = self._new_id()
        log = self._logger().bind(key=key, reconcile_id=rid)
        started = self._clock()
        fields: dict[str, object] = {"triggers": batch.count, "reasons": list(batch.reasons)}
        outcome = Outcome.OK
        error: str | None = None
        with logs.bound_context(reconcile_id=rid, reconcile_key=key):
            try:
                result = self._reconcile(Request(key=key, reconcile_id=rid))
            except TerminalError as e:
                outcome, error = Outcome.TERMINAL, str(e)
                self._backoff.reset(key)  # a new input starts a fresh retry history
                fields["error"] = error
            except Exception as e:  # noqa: BLE001 - any failure of a pass is retried with backoff
                outcome, error = Outcome.ERROR, str(e) or type(e).__name__
                delay = self._backoff.failure(key)
                if isinstance(e, TemporaryError) and e.delay is not None:
                    delay = e.delay
                self.queue.add(key, f"retry after {type(e).__name__}", after=delay)
                fields.update(error=error, retry_in=round(delay, 3), failures=self._backoff.failures(key))
                if not isinstance(e, TemporaryError):
                    fields["exc_info"] = e  # unexpected: keep the traceback
            else:
                self._backoff.reset(key)
                if result.requeue_after is not None:
                    self.queue.add(key, "requeue", after=result.requeue_after)
                    fields["requeue_after"] = result.requeue_after
        with self._lock:
            rec = self._records.setdefault(key, _Record())
            rec.passes += 1
            rec.last_outcome = outcome
            rec.last_reconcile_id = rid
            if outcome is Outcome.OK:
                rec.last_error = None
            else:
                rec.last_error = error
        fields["duration_s"] = round(self._clock() - started, 3)
        # the method by name: a bound method of a level the set-up drops would load structlog
        level = {Outcome.OK: "info", Outcome.ERROR: "warning", Outcome.TERMINAL: "error"}[outcome]
        getattr(log, level)("reconcile_pass", outcome=outcome.value, **fields)
