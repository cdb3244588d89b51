"""A coalescing trigger queue: any number of wakes for a key make one pass.

Semantics follow client-go's workqueue as controller-runtime uses it:

- a key is either absent, pending (with a due time), processing, or processing *and* pending
  (it was triggered again during its pass: it runs once more afterwards, never concurrently);
- adding a key that is already pending merges the triggers and keeps the earlier due time, so
  ten file events, or a webhook arriving during a backoff wait, make a single pass;
- a suspended key keeps collecting triggers but is not handed out until resumed;
- after `shutdown()` `get()` returns None at once, and pending work is dropped.

Due times use the injected `clock`; tests with a manual clock call `poke()` after moving it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from reconciler._dataclass import dataclass

__all__ = ["Batch", "TriggerQueue"]


@dataclass(frozen=True)
class Batch:
    """The coalesced triggers of one key, handed to one pass."""

    key: str
    count: int  # how many triggers were merged into this pass
    reasons: tuple[str, ...]  # the most recent reasons (at most `max_reasons`), oldest first


class TriggerQueue:
    """Thread-safe; any thread may add, worker threads get and mark done."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,  # a manual clock in tests
        max_reasons: int = 10,
    ) -> None:
        self._clock = clock
        self._max_reasons = max_reasons
        self._cond = threading.Condition()
        self._due: dict[str, float] = {}
        self._count: dict[str, int] = {}
        self._reasons: dict[str, list[str]] = {}
        self._processing: set[str] = set()
        self._suspended: set[str] = set()
        self._shutdown = False

    def add(self, key: str, reason: str = "", *, after: float = 0.0) -> None:
        """Trigger `key` now, or `after` seconds from now; merges with a pending trigger."""
        with self._cond:
            if self._shutdown:
                return
            due = self._clock() + max(0.0, after)
            self._due[key] = min(due, self._due.get(key, due))
            self._count[key] = self._count.get(key, 0) + 1
            reasons = self._reasons.setdefault(key, [])
            if reason:
                reasons.append(reason)
                del reasons[: -self._max_reasons]
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Batch | None:
        """Block until a key is due and not processing; None on timeout or shutdown."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._shutdown:
                now = self._clock()
                key, wait = self._next(now)
                if key is not None:
                    self._processing.add(key)
                    del self._due[key]
                    reasons = tuple(self._reasons.pop(key, ()))
                    return Batch(key=key, count=self._count.pop(key, 1), reasons=reasons)
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)
            return None

    def _next(self, now: float) -> tuple[str | None, float | None]:
        """The earliest ready key, else how long until one could be ready (None: unknown)."""
        best: str | None = None
        soonest: float | None = None
        for key, due in self._due.items():
            if key in self._processing or key in self._suspended:
                continue
            if due <= now:
                if best is None or due < self._due[best]:
                    best = key
            elif soonest is None or due - now < soonest:
                soonest = due - now
        return best, soonest

    def done(self, key: str) -> None:
        """End `key`'s pass; a trigger that arrived meanwhile becomes eligible."""
        with self._cond:
            self._processing.discard(key)
            self._cond.notify_all()

    def suspend(self, key: str) -> None:
        with self._cond:
            self._suspended.add(key)
            self._cond.notify_all()

    def resume(self, key: str) -> None:
        with self._cond:
            self._suspended.discard(key)
            self._cond.notify_all()

    def is_suspended(self, key: str) -> bool:
        with self._cond:
            return key in self._suspended

    def due_in(self, key: str) -> float | None:
        """Seconds until `key`'s pending trigger is due (<= 0: now), None if none is pending."""
        with self._cond:
            due = self._due.get(key)
            return None if due is None else due - self._clock()

    def poke(self) -> None:
        """Make waiting `get()` calls re-read the clock (after a manual clock moved)."""
        with self._cond:
            self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until nothing is processing and nothing is due now; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                now = self._clock()
                ready, soonest = self._next(now)
                if not self._processing and (ready is None or self._shutdown):
                    return True
                wait = soonest
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def shutdown(self) -> None:
        """Stop handing out work; pending triggers are dropped, running passes may finish."""
        with self._cond:
            self._shutdown = True
            self._due.clear()
            self._count.clear()
            self._reasons.clear()
            self._cond.notify_all()

    @property
    def is_shutdown(self) -> bool:
        with self._cond:
            return self._shutdown
