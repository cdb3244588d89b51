"""Supervision of the native engine's containers while the agent runs.

Restart policies run continuously from conmon's exit files (the RestartManager: Docker's
backoff, 100 ms doubling to 1 min, reset after 10 s of running); healthchecks on their
intervals (the HealthChecker). On top, a flap limit: a container restarted `flap_limit` times
within `flap_window` seconds is left stopped and reported (event, log line, metric, status)
instead of looping for ever; the controller's passes do not start it either (the planner's
`PlanOptions.flapping`). A new container (a changed spec, a new id) starts with a clean slate,
and `clear(name)` forgets a container's flapping (resume of its source).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from reconciler import logs
from reconciler._dataclass import dataclass, dataclasses
from reconciler.runtime import errors as rterrors

__all__ = ["Supervisor"]


@dataclass(frozen=True)
class Flapping:
    """A container that keeps restarting: how often, since when."""

    id: str
    name: str
    restarts: int
    since: float


class Supervisor:
    """Runs the engine's restart and health loops; thread-safe queries for the status API."""

    def __init__(
        self,
        runtime: Any,                            # a NativeRuntime (restart_manager, health_checker, containers)
        *,
        publish: Callable[..., Any],             # EventBus.publish
        on_restart: Callable[[str], None] = lambda name: None,
        on_flap: Callable[[str], None] = lambda name: None,
        # the agent's source a container belongs to, by its labels (its owner): its events name it
        source_of: Callable[[Mapping[str, str]], str] = lambda labels: "",
        flap_limit: int = 5,
        flap_window: float = 120.0,
        poll: float = 0.2,
    ) -> None:
        self.runtime = runtime
        self.publish = publish
        self.on_restart = on_restart
        self.on_flap = on_flap
        self.source_of = source_of
        self.flap_limit = flap_limit
        self.flap_window = flap_window
        self.poll = poll
        self._restarts: dict[str, collections.deque[float]] = {}
        self._flapping: dict[str, Flapping] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._log = logs.get_logger("reconciler.agent.supervise")

    def start(self) -> Supervisor:
        self.runtime.restart_manager.boot()     # the ones that exited meanwhile and their policy runs
        for name, target in (("restarts", self._restart_loop), ("health", self._health_loop)):
            t = threading.Thread(target=target, name=f"supervise-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        self._threads.clear()

    # -- queries ----------------------------------------------------------------------------

    def flapping(self) -> list[Flapping]:
        with self._lock:
            return list(self._flapping.values())

    def is_flapping(self, name: str) -> bool:
        with self._lock:
            return any(f.name == name for f in self._flapping.values())

    def clear(self, name: str) -> None:
        with self._lock:
            for cid in [c for c, f in self._flapping.items() if f.name == name]:
                del self._flapping[cid]
                self._restarts.pop(cid, None)

    # -- loops ------------------------------------------------------------------------------

    def _health_loop(self) -> None:
        # each container's probe on its own timer; the poll only looks for new containers
        self.runtime.health_checker.watch(self._stop, poll=max(self.poll, 0.5))

    def _restart_loop(self) -> None:
        # the engine's own watch (exit files, due restarts, lost monitors), with flap accounting
        self.runtime.restart_manager.watch(self._stop, poll=self.poll, on_tick=self._restarted)

    def _restarted(self, restarted: list[str]) -> None:
        now = time.monotonic()
        manager = self.runtime.containers
        for cid in restarted:
            try:
                rec = manager.get(cid)
            except rterrors.NotFound:
                continue
            times = self._restarts.setdefault(cid, collections.deque())
            times.append(now)
            while times and now - times[0] > self.flap_window:
                times.popleft()
            source = self.source_of(rec.config.labels)
            # the run that ended: the record has the new one's by now
            exit_code = self.runtime.restart_manager.ended_with(cid)
            self.publish("container_restarted", source=source, container=rec.name, id=cid[:12],
                         restart_count=rec.restart_count, exit_code=exit_code)
            self._log.info("container_restarted", container=rec.name, restart_count=rec.restart_count,
                           exit_code=exit_code)
            self.on_restart(rec.name)
            if len(times) >= self.flap_limit:
                with self._lock:
                    self._flapping[cid] = Flapping(cid, rec.name, len(times), time.time())
                self.publish("container_flapping", source=source, container=rec.name, id=cid[:12],
                             restarts=len(times),
                             window_s=self.flap_window,
                             message=f"restarted {len(times)} times in {self.flap_window:g}s: "
                                     "left stopped after its next exit; change its spec or resume to retry")
                self._log.warning("container_flapping", container=rec.name, restarts=len(times))
                self.on_flap(rec.name)
        with self._lock:
            flapping = list(self._flapping)
        for cid in flapping:                     # only these: a tick reads no other record
            try:
                rec = manager.get(cid)
            except rterrors.NotFound:
                with self._lock:
                    self._flapping.pop(cid, None)
                continue
            if rec.status == "exited":
                self.runtime.restart_manager.cancel(cid)   # no further restart: reported instead
                if rec.restarting:
                    manager.update(cid, lambda r: dataclasses.replace(r, restarting=False))
