"""SIGTERM and SIGINT during a pass: the first stops at the next safe point, a second at once.

    first signal    `Stopper()` turns true: the executor lets the actions in flight finish and
                    starts nothing new (executor.py says what finishes and what is cut short);
                    the pass ends `interrupted`; one warning line tells the user
    second signal   the process exits at once with 128 + the signal's number (143 for SIGTERM,
                    130 for SIGINT), as a kill would end it: the next engine start collects
                    what was half done (runtime/native/containers/recovery.py) and the next pass records
                    this one as interrupted (state/history.py)

`reconcile apply` (`--once`), `reconcile rollback` and `reconcile agent` install it. The
handlers only set a flag and write their line with os.write: a handler runs between two
bytecodes of the main thread, which may be holding the log's lock at that moment. The flag is a
plain attribute, not a threading.Event: Event.set takes the Event's lock, and a handler that
runs while the main thread holds it (inside Event.wait, between its timeout and its return, or
in clear) waits for itself forever (CI once saw an agent that never stopped after SIGTERM).
The main thread waits with `Stopper.sleep`, which a signal cuts short.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from types import FrameType, TracebackType
from typing import Any

__all__ = ["SIGNALS", "Stopper"]

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopper:
    """Signal handlers for one stop; call it (`stopper()`) to know whether a stop was asked."""

    def __init__(self, *, after: str = "the current action") -> None:
        self.signum: int | None = None      # the first signal; set only by the handler (no lock)
        self._after = after                 # what is finished before stopping, for the message
        self._previous: dict[int, Any] = {}

    def __call__(self) -> bool:
        return self.signum is not None

    def sleep(self, seconds: float) -> bool:
        """Wait up to `seconds` in the main thread, less if a signal comes; whether a stop was
        asked. (time.sleep runs a handler when the signal comes and then sleeps the rest, so
        the wait is cut into slices of 0.1 s.)"""
        end = time.monotonic() + seconds
        while not self() and (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))
        return self()

    @property
    def exit_code(self) -> int | None:
        """128 + the first signal's number (the shell's convention), or None if none came."""
        return None if self.signum is None else 128 + self.signum

    def install(self) -> Stopper:
        """Take SIGTERM and SIGINT (only the main thread can; elsewhere this does nothing)."""
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def restore(self) -> None:
        """Put the handlers back as they were."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def __enter__(self) -> Stopper:
        return self.install()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.restore()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signum is None:
            self.signum = signum
            _say("stopping", signal=name,
                 message=f"stopping after {self._after}; send the signal again to stop now")
            return
        code = 128 + signum
        _say("stopping_now", signal=name, exit_code=code,
             message="stopping now; the next start recovers what was in flight")
        os._exit(code)


def _say(event: str, **fields: Any) -> None:
    """One warning line on stderr in the format of the process's other log lines, written
    without the log's lock."""
    try:
        from reconciler import logs

        rendered: Any = {"event": event, **fields}
        for processor in logs.configured_structlog().get_config()["processors"]:
            rendered = processor(None, "warning", rendered)
        line = rendered if isinstance(rendered, str) else str(rendered)
    except Exception:  # noqa: BLE001 - the line must go out whatever the log set-up is
        line = f"{event}: " + " ".join(f"{k}={v}" for k, v in fields.items())
    try:
        os.write(2, (line.rstrip("\n") + "\n").encode(errors="replace"))
    except OSError:
        pass
