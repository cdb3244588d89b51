"""EventBus: a bounded, in-memory, sequence-numbered ring of agent events.

Producers call `publish(type, **fields)`; `/v1/events` reads `since(seq)` and, when following,
blocks in `wait(seq, timeout)` for newer ones. Events carry names, revision ids and messages
that were redacted at their source: never environment values, tokens or key contents.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["EventBus"]


class EventBus:
    """Thread-safe; the newest `capacity` events are kept."""

    def __init__(self, capacity: int = 1000) -> None:
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=capacity)
        self._seq = 0
        self._cond = threading.Condition()
        self._closed = False

    def publish(self, type_: str, **fields: Any) -> dict[str, Any]:
        with self._cond:
            self._seq += 1
            event = {"seq": self._seq, "time": round(time.time(), 3), "type": type_, **fields}
            self._events.append(event)
            self._cond.notify_all()
            return event

    @property
    def last_seq(self) -> int:
        with self._cond:
            return self._seq

    def since(self, seq: int) -> list[Mapping[str, Any]]:
        """Events with a sequence number above `seq`, oldest first."""
        with self._cond:
            return [e for e in self._events if e["seq"] > seq]

    def wait(self, seq: int, timeout: float) -> list[Mapping[str, Any]]:
        """Block until an event newer than `seq` exists (or timeout / close); return them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._seq <= seq and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return [e for e in self._events if e["seq"] > seq]

    def close(self) -> None:
        """Wake every follower: the agent is stopping."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed
