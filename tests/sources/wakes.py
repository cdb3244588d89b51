"""A `wake` callback that records reasons and lets a test wait for them (bounded, untimed)."""

from __future__ import annotations

import threading


class Wakes:
    def __init__(self) -> None:
        self.reasons: list[str] = []
        self._cond = threading.Condition()

    def __call__(self, reason: str) -> None:
        with self._cond:
            self.reasons.append(reason)
            self._cond.notify_all()

    def wait(self, count: int, timeout: float = 20.0) -> list[str]:
        """Wait until at least `count` wakes arrived; the timeout only guards a hung test."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.reasons) >= count, timeout):
                raise AssertionError(f"expected {count} wakes, got {self.reasons}")
            return list(self.reasons)
