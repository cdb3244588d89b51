"""Per-key exponential backoff: each failure doubles the delay, a success forgets the history.

Modelled on client-go's ItemExponentialFailureRateLimiter (what controller-runtime queues use):
delay = base * factor ** (failures - 1), capped, with optional proportional jitter so many
agents failing on the same registry do not retry in lockstep.
"""

from __future__ import annotations

import random
import threading

from reconciler._dataclass import dataclass

__all__ = ["Backoff", "BackoffPolicy"]


@dataclass(frozen=True)
class BackoffPolicy:
    """How retry delays grow; every field in seconds except `factor` and `jitter`."""

    base: float = 1.0  # delay after the first failure
    factor: float = 2.0  # growth per further failure
    cap: float = 300.0  # never wait longer than this (Flux's default retry ceiling is minutes)
    jitter: float = 0.0  # +/- fraction of the delay drawn at random (0.1 = up to 10 % either way)

    @classmethod
    def default(cls) -> BackoffPolicy:
        return cls()


class Backoff:
    """Thread-safe failure counters per key."""

    def __init__(
        self,
        policy: BackoffPolicy | None = None,
        *,
        rng: random.Random | None = None,  # injected by tests for reproducible jitter
    ) -> None:
        self.policy = policy or BackoffPolicy.default()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()

    def failure(self, key: str) -> float:
        """Count one more failure for `key` and return how long to wait before retrying."""
        with self._lock:
            n = self._failures.get(key, 0) + 1
            self._failures[key] = n
            return self.delay_for(n)

    def delay_for(self, failures: int) -> float:
        """The delay after `failures` consecutive failures (no state change)."""
        p = self.policy
        if failures <= 0:
            return 0.0
        # exponent capped so a long outage cannot overflow the float
        delay = min(p.cap, p.base * p.factor ** min(failures - 1, 64))
        if p.jitter:
            delay *= 1.0 + self._rng.uniform(-p.jitter, p.jitter)
        return max(0.0, min(delay, p.cap))

    def reset(self, key: str) -> None:
        """Forget `key`'s failures (called after a successful pass)."""
        with self._lock:
            self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        with self._lock:
            return self._failures.get(key, 0)
