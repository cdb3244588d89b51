"""Supervision of the native engine's containers while the agent runs.

Restart policies run continuously from conmon's exit files (the RestartManager: Docker's
backoff, 100 ms doubling to 1 min, reset after 10 s of running); healthchecks on their
intervals (the HealthChecker). On top, a flap limit: a container restarted `flap_limit` times
within `flap_window` seconds is left stopped and reported (event, log line, metric, status)
instead of looping for ever; the controller's passes do not start it either (the planner's
`PlanOptions.flapping`). The way back is what a docker user does: `reconcile start NAME` (any
start the restart manager did not make: `docker start` through the Engine API too) runs it
again with its restarts counted afresh, and a new container (a changed spec, `reconcile rm -f
NAME` and the next pass's re-create: a new id) starts with a clean slate; both are seen when
the flapping containers are next asked for (`flapping`: a pass's options, status, metrics),
from the records as stored. `clear(name)` forgets a container's flapping (resume of its
source). Each way back is published as `container_flapping_cleared`. A container left stopped
has its back-off forgotten (`Record.restart_delay`): a start is no longer left to a restart
manager (restart.in_back_off), so `reconcile start` runs it.

The flapping containers outlive the agent's process (`memory`: agent/recall.py, the newest
MAX_REMEMBERED): a restarted agent keeps them stopped (the engine start's `boot` does not run
their restart policy, nor does a pass start them) and reported, with the same ways back, and
so does not run a crash loop again, nor tell of it again, for a restart of its own. So do the
restarts it counts toward the limit (`restarts` in the same memory, by wall-clock time and the
record's restart count, the newest MAX_REMEMBERED containers within the window): an agent
restarted (or killed) in a crash loop goes on counting where the earlier one stopped, and marks
the container flapping after the same number of restarts in all, where it began again from zero
(an agent restarted more often than every `flap_limit` restarts never marked it). A restart the
records count and the memory missed (the earlier process killed between the restart and its
write, or a `--once` restarted it meanwhile) is counted at the time of the last one remembered.
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

__all__ = ["MAX_REMEMBERED", "Supervisor"]

MAX_REMEMBERED = 256                # flapping containers (and crash-looping ones' restarts) kept across a restart


@dataclass(frozen=True)
class Flapping:
    """A container that keeps restarting: how often, since when."""

    id: str
    name: str
    restarts: int
    since: float
    started_at: str | None = None   # the run the restart manager started last: another start is someone else's
    source: str = ""                # the agent's source it belongs to (its events name it)


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
        memory: Any = None,                      # a recall.Memory: the flapping ones outlive the process
    ) -> None:
        self.runtime = runtime
        self.publish = publish
        self.on_restart = on_restart
        self.on_flap = on_flap
        self.source_of = source_of
        self.flap_limit = flap_limit
        self.flap_window = flap_window
        self.poll = poll
        self.memory = memory
        # each container's restarts within the window (wall-clock times: they outlive the process),
        # and the record's restart count at the last one counted
        self._restarts: dict[str, collections.deque[float]] = {}
        self._counted: dict[str, int] = {}
        for cid, (count, times) in _recent(memory, flap_window).items():
            self._restarts[cid] = collections.deque(times, maxlen=max(flap_limit, 1))
            self._counted[cid] = count
        self._flapping: dict[str, Flapping] = {f.id: f for f in _remembered(memory)}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._log = logs.get_logger("reconciler.agent.supervise")

    def start(self) -> Supervisor:
        for f in self._flapping.values():       # left stopped by the agent before its restart
            self._log.warning("container_flapping", container=f.name, restarts=f.restarts, remembered=True,
                              note=f"left stopped before the agent's restart; to try again: `reconcile start {f.name}`")
        # the ones that exited meanwhile and their policy runs; not those left stopped for flapping
        self.runtime.restart_manager.boot(held=set(self._flapping))
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
        self._outgrown()
        with self._lock:
            return list(self._flapping.values())

    def is_flapping(self, name: str) -> bool:
        return any(f.name == name for f in self.flapping())

    def clear(self, name: str, why: str = "its source resumed") -> None:
        with self._lock:
            cleared = [self._flapping.pop(c) for c, f in list(self._flapping.items()) if f.name == name]
            for f in cleared:
                self._restarts.pop(f.id, None)
                self._counted.pop(f.id, None)
        for f in cleared:
            self._cleared(f, why)

    def _remember(self) -> None:
        """The flapping containers as they are now, into the memory (which writes on a change)."""
        if self.memory is None:
            return
        with self._lock:
            kept = sorted(self._flapping.values(), key=lambda f: f.since)[-MAX_REMEMBERED:]
        self.memory.put("flapping", [dataclasses.asdict(f) for f in kept])

    def _remember_restarts(self, now: float) -> None:
        """The restarts counted toward the flap limit, within the window, into the memory (the
        newest MAX_REMEMBERED containers; the others, and those out of the window, forgotten)."""
        with self._lock:
            for cid in [c for c, t in self._restarts.items() if not t or now - t[-1] > self.flap_window]:
                del self._restarts[cid]
                self._counted.pop(cid, None)
            kept = sorted(self._restarts.items(), key=lambda kv: kv[1][-1])[-MAX_REMEMBERED:]
            value = {cid: {"count": self._counted.get(cid, 0), "times": list(t)} for cid, t in kept}
        if self.memory is not None:
            self.memory.put("restarts", value)

    def _count(self, cid: str, restart_count: int, now: float) -> int:
        """One restart more of `cid` (the record's count is now `restart_count`), and those the
        record counts since the last one counted that no one told this process of (at that
        one's time: they came after it); how many fall within the window."""
        with self._lock:
            times = self._restarts.setdefault(cid, collections.deque(maxlen=max(self.flap_limit, 1)))
            last = self._counted.get(cid)
            if last is not None and times and restart_count > last + 1:
                times.extend([times[-1]] * min(restart_count - last - 1, self.flap_limit))
            times.append(now)
            self._counted[cid] = restart_count
            while times and now - times[0] > self.flap_window:
                times.popleft()
            return len(times)

    def _outgrown(self) -> None:
        """Forget the flapping of a container removed (its name may be a new container's: a
        clean slate) or started since by someone else than the restart manager (`reconcile
        start`, `docker start`: run again as its owner asked, its restarts counted afresh).
        The records as stored (no refresh: one query when none changed)."""
        with self._lock:
            if not self._flapping:
                return
            known = dict(self._flapping)
        by_id = {r.id: r for r in self.runtime.containers.stored()}
        for cid, f in known.items():
            rec = by_id.get(cid)
            if rec is None:
                why = "removed"
            elif rec.started_at != f.started_at:
                why = "started by hand"
            else:
                continue
            with self._lock:
                if self._flapping.get(cid) != f:
                    continue                    # changed meanwhile (a tick's restart): asked again next time
                del self._flapping[cid]
                self._restarts.pop(cid, None)
                self._counted.pop(cid, None)
            self._cleared(f, why)

    def _cleared(self, f: Flapping, why: str) -> None:
        self._remember()
        self.publish("container_flapping_cleared", source=f.source, container=f.name, id=f.id[:12], why=why)
        self._log.info("container_flapping_cleared", container=f.name, why=why)
        self.on_flap(f.name)

    # -- loops ------------------------------------------------------------------------------

    def _health_loop(self) -> None:
        # each container's probe on its own timer; the poll only looks for new containers
        self.runtime.health_checker.watch(self._stop, poll=max(self.poll, 0.5))

    def _restart_loop(self) -> None:
        # the engine's own watch (exit files, due restarts, lost monitors), with flap accounting
        self.runtime.restart_manager.watch(self._stop, poll=self.poll, on_tick=self._restarted)

    def _restarted(self, restarted: list[str]) -> None:
        now = time.time()                       # wall clock: the counts outlive the process
        manager = self.runtime.containers
        for cid in restarted:
            try:
                rec = manager.get(cid)
            except rterrors.NotFound:
                continue
            restarts = self._count(cid, rec.restart_count, now)
            source = self.source_of(rec.config.labels)
            # the run that ended: the record has the new one's by now
            exit_code = self.runtime.restart_manager.ended_with(cid)
            self.publish("container_restarted", source=source, container=rec.name, id=cid[:12],
                         restart_count=rec.restart_count, exit_code=exit_code)
            self._log.info("container_restarted", container=rec.name, restart_count=rec.restart_count,
                           exit_code=exit_code)
            self.on_restart(rec.name)
            self._remember_restarts(now)            # after its event: the file's write waits no one
            if restarts >= self.flap_limit:
                with self._lock:
                    self._flapping[cid] = Flapping(cid, rec.name, restarts, now, rec.started_at, source)
                self.publish("container_flapping", source=source, container=rec.name, id=cid[:12],
                             restarts=restarts,
                             window_s=self.flap_window,
                             message=f"restarted {restarts} times in {self.flap_window:g}s: left stopped after "
                                     f"its next exit; to try again: `reconcile start {rec.name}` (or change its "
                                     "spec)")
                self._log.warning("container_flapping", container=rec.name, restarts=restarts)
                self._remember()
                self.on_flap(rec.name)
            else:
                with self._lock:
                    own = cid in self._flapping
                    if own:                     # its own restart: no start by hand
                        self._flapping[cid] = dataclasses.replace(self._flapping[cid], started_at=rec.started_at)
                if own:
                    self._remember()
        self._outgrown()                         # started by hand since: its exit is its policy's again
        with self._lock:
            flapping = list(self._flapping)
        for cid in flapping:                     # only these: a tick reads no other record
            try:
                rec = manager.get(cid)
            except rterrors.NotFound:
                with self._lock:
                    self._flapping.pop(cid, None)
                self._remember()
                continue
            if rec.status == "exited":
                self.runtime.restart_manager.cancel(cid)   # no further restart: reported instead
                if rec.restarting or rec.restart_delay:    # nor a back-off: `reconcile start` runs it
                    manager.update(cid, lambda r: dataclasses.replace(r, restarting=False, restart_delay=0.0))


def _recent(memory: Any, window: float) -> dict[str, tuple[int, list[float]]]:
    """The restarts an earlier process of the agent counted (`_remember_restarts`): by container,
    the record's count at the last one and their times, those still within `window`; anything
    malformed left out."""
    data = memory.get("restarts") if memory is not None else None
    now = time.time()
    out: dict[str, tuple[int, list[float]]] = {}
    for cid, d in data.items() if isinstance(data, dict) else ():
        try:
            count, times = int(d["count"]), sorted(float(t) for t in d["times"])
        except (TypeError, KeyError, ValueError):
            continue
        if times and now - times[-1] <= window:
            out[str(cid)] = (count, [t for t in times if now - t <= window])
    return dict(sorted(out.items(), key=lambda kv: kv[1][1][-1])[-MAX_REMEMBERED:])


def _remembered(memory: Any) -> list[Flapping]:
    """The flapping containers an earlier process of the agent kept (`_remember`); anything
    malformed is left out (the records decide the rest: `_outgrown`)."""
    data = memory.get("flapping") if memory is not None else None
    out = []
    for d in data if isinstance(data, list) else ():
        try:
            f = Flapping(id=str(d["id"]), name=str(d["name"]), restarts=int(d["restarts"]), since=float(d["since"]),
                         started_at=None if d.get("started_at") is None else str(d["started_at"]),
                         source=str(d.get("source") or ""))
        except (TypeError, KeyError, ValueError):
            continue
        out.append(f)
    return out[-MAX_REMEMBERED:]
