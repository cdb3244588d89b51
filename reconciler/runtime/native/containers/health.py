"""Healthchecks run through the OCI runtime's `exec`, Docker's state machine.

Probe: `CMD args...` runs as given, `CMD-SHELL cmd` as `/bin/sh -c cmd`. A probe fails on a
non-zero exit or when it runs longer than `timeout`. Failures during `start_period` do not
count; `retries` consecutive counted failures make the container `unhealthy`; one success
makes it `healthy`. A probe of a container whose health was stale (healthtimes.stale: no
probe observed it for longer than its interval allows, as when no agent ran) has no recent
status to keep: its failure makes it `unhealthy` at once (retries forgive failures between
observations that follow each other, not hours of none). The last 5 results (output capped at 4096 bytes) are kept in the record
and shown by `inspect`. The image's Healthcheck (durations in ns) applies when the container
config has none, and fills what the container's leaves empty (`base.healthcheck_of`).

When: as Docker 25 (moby's daemon/health.go), the next probe is due `interval` after the last
one ended, but within `start_period`, while the container has not been healthy yet, it is due
`start_interval` after it (5 s when unset), the first one too.

    hc = HealthChecker(manager)
    hc.probe(id)         # run one probe now, store and return the new status
    hc.tick()            # probe every running container whose interval has elapsed, and
                         # rotate the logs that reached their size (each on its own schedule)
    hc.watch(stop_event) # sleeps until the next probe is due (or `poll`), then ticks

One timer per container: the due probes are a heap of deadlines, so a tick costs O(probes due)
while no record changes, plus one query of the records' version (`RecordStore.stored()`); the
records are read as stored, not refreshed from conmon's files and /proc, and the probed ones
are worked out again only when the version moved. A container that ended unseen is still
"running" there until the restart manager (or any reader) records its exit; probing it finds
it ended.
"""

from __future__ import annotations

import heapq
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from reconciler._dataclass import dataclasses
from reconciler.runtime import base
from reconciler.runtime import errors as rterrors
from reconciler.runtime.native.containers import containers, records

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = ["HealthChecker", "probe_argv"]

OUTPUT_LIMIT = 4096
LOG_ENTRIES = 5
LOG_CHECK_INTERVAL = 2.0     # seconds between looks for logs due a size check
LOG_CHECK_MAX = 30.0         # the longest a running container's log goes unchecked (a quiet one)


def probe_argv(test: tuple[str, ...]) -> list[str]:
    kind = test[0]
    if kind == "CMD":
        return list(test[1:])
    if kind == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    raise rterrors.InvalidArgument(f"healthcheck test must start with CMD, CMD-SHELL or NONE, not {kind!r}")


def _age(started_at: str | None) -> float:
    if not started_at:
        return 0.0
    try:
        t = datetime.fromisoformat(started_at.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(0.0, time.time() - t.timestamp())


class HealthChecker:
    """Probes running containers and records their health status."""

    def __init__(self, manager: containers.ContainerManager, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.manager = manager
        self.clock = clock
        self._next: dict[str, float] = {}        # key -> when its next probe is due (the truth)
        self._heap: list[tuple[float, str, str, float]] = []   # (due, key, id, interval); stale ones skipped
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._logs_due = 0.0
        # per container: when its log is checked next, and its size and the time at the last check
        self._log_next: dict[str, float] = {}
        self._log_seen: dict[str, tuple[int, float]] = {}
        # the records the last tick saw, and what is probed among them: (key, id, healthcheck)
        self._seen: tuple[records.Record, ...] | None = None
        self._targets: list[tuple[str, str, base.Healthcheck, str | None]] = []   # and its start time
        self._live: set[str] = set()            # their keys
        self._start: dict[str, tuple[float, float]] = {}   # key -> (its start period's end, start interval)

    def probe(self, cid: str) -> str | None:
        rec = self.manager.get(cid)
        hc = records.effective_healthcheck(rec)
        if hc is None or rec.status != "running":
            return rec.health
        stale, _ = rec.health_seen(hc)
        started = records.now()
        # here: execs imports subprocess, which a pass that probes nothing does not need (#21)
        from reconciler.runtime.native.containers import execs

        try:
            # a probe spares the helper that ends an exec with its process (execs.exec_argv): a
            # background child that holds its output holds the probe, up to its timeout
            res = execs.run(self.manager, rec.id, probe_argv(hc.test), timeout=hc.timeout, until_exit=False)
            code, output = res.exit_code, (res.stdout + res.stderr)[:OUTPUT_LIMIT]
        except TimeoutError:
            code, output = -1, f"Health check exceeded timeout ({hc.timeout}s)".encode()
        except rterrors.Conflict:
            return rec.health                   # stopped meanwhile
        entry = {"Start": started, "End": records.now(), "ExitCode": code,
                 "Output": output.decode(errors="replace")}
        in_start_period = _age(rec.started_at) < hc.start_period

        def apply(r: records.Record) -> records.Record:
            if r.started_at != rec.started_at:
                return r                        # restarted while probing
            log = (*r.health_log, entry)[-LOG_ENTRIES:]
            if code == 0:
                return dataclasses.replace(r, health="healthy", health_failures=0, health_log=log)
            if in_start_period:
                return dataclasses.replace(r, health_log=log)
            failures = r.health_failures + 1
            status = "unhealthy" if failures >= hc.retries or stale else (r.health or "starting")
            return dataclasses.replace(r, health=status, health_failures=failures, health_log=log)

        new = self.manager.update(rec.id, apply)
        if new.health != rec.health and new.health in ("healthy", "unhealthy"):
            self.manager.event(new, f"health_status: {new.health}")     # Docker's event, on a change
        return new.health

    def tick(self, *, pool: ThreadPoolExecutor | None = None) -> None:
        """Probe the containers whose interval elapsed; with `pool`, probes run concurrently
        (one at a time per container) and tick does not wait for them."""
        now = self.clock()
        recs = self.manager.stored()
        if now >= self._logs_due:
            # log rotation rides on this loop: it runs in the agent and in `reconcile` sessions,
            # and already lists the records
            self._logs_due = now + LOG_CHECK_INTERVAL
            self._rotate_due(recs, now)
        if recs is not self._seen:             # a new version of the records: who is probed
            self._seen, self._targets = recs, self._probed(recs)
            self._schedule(now)
        for key, cid, interval in self._due(now):
            if pool is None:
                self._probe_done(key, cid, interval)
            else:
                pool.submit(self._probe_done, key, cid, interval)

    def _rotate_due(self, recs: tuple[records.Record, ...], now: float) -> None:
        """Rotate the logs due a check that reached their size, and schedule each one's next
        check from how fast it grew: half the time it would take to reach the size at that
        pace (between LOG_CHECK_INTERVAL and LOG_CHECK_MAX; conmon's own cap is the backstop).
        A quiet container's log costs a stat() every LOG_CHECK_MAX seconds, not every tick."""
        limit = self.manager.log_max_size
        if limit <= 0:
            return
        running = {r.id: r for r in recs if r.status == "running"}
        for gone in [cid for cid in self._log_next if cid not in running]:
            del self._log_next[gone]
            self._log_seen.pop(gone, None)
        due = [r for cid, r in running.items() if self._log_next.get(cid, 0.0) <= now]
        if not due:
            return
        self.manager.rotate_logs(due)
        for rec in due:
            try:
                size = os.stat(self.manager.paths(rec.id).log).st_size
            except OSError:
                size = 0
            seen = self._log_seen.get(rec.id)
            wait = LOG_CHECK_INTERVAL               # first look, or rotated since the last one
            if seen is not None and size >= seen[0] and now > seen[1]:
                rate = (size - seen[0]) / (now - seen[1])
                wait = LOG_CHECK_MAX if rate <= 0 else (limit - size) / rate / 2
            self._log_next[rec.id] = now + min(LOG_CHECK_MAX, max(LOG_CHECK_INTERVAL, wait))
            self._log_seen[rec.id] = (size, now)

    def _schedule(self, now: float) -> None:
        """Timers for the probed containers: a new one is due its first delay from now (`_delay`);
        the timers of the ones probed no more are dropped."""
        live = {key for key, *_ in self._targets}
        with self._lock:
            self._live = live
            for key in [k for k in self._next if k not in live]:
                del self._next[key]
            for key in [k for k in self._start if k not in live]:
                del self._start[key]
            for key, cid, hc, started_at in self._targets:
                if key not in self._next and key not in self._running:
                    if hc.start_period > 0:
                        self._start[key] = (now + hc.start_period - _age(started_at),
                                            hc.start_interval or base.HEALTH_DEFAULTS["start_interval"])
                    due = now + self._delay(key, hc.interval, "starting", now)
                    self._next[key] = due
                    heapq.heappush(self._heap, (due, key, cid, hc.interval))

    def _delay(self, key: str, interval: float, health: str | None, now: float) -> float:
        """Until the next probe (Docker's rule): within the start period, while the container
        has not been healthy, its start interval; else its interval. Called with the lock held."""
        start = self._start.get(key)
        if start is not None and now < start[0] and health in (None, "starting"):
            return start[1]
        return interval

    def _due(self, now: float) -> list[tuple[str, str, float]]:
        """The timers that expired (taken off the heap, marked running): (key, id, interval)."""
        out = []
        with self._lock:
            while self._heap and self._heap[0][0] <= now:
                due, key, cid, interval = heapq.heappop(self._heap)
                if self._next.get(key) != due or key in self._running:
                    continue                    # dropped or rescheduled since it was pushed
                self._running.add(key)
                out.append((key, cid, interval))
        return out

    def next_due(self) -> float | None:
        """Seconds until the next probe or log check is due (None: nothing scheduled)."""
        with self._lock:
            due = self._heap[0][0] if self._heap else None
        if self.manager.log_max_size > 0:
            due = self._logs_due if due is None else min(due, self._logs_due)
        return None if due is None else max(0.0, due - self.clock())

    @staticmethod
    def _probed(recs: tuple[records.Record, ...]) -> list[tuple[str, str, base.Healthcheck, str | None]]:
        """The running containers that have a healthcheck: (key of this run, id, healthcheck, started at)."""
        out = []
        for rec in recs:
            hc = records.effective_healthcheck(rec) if rec.status == "running" else None
            if hc is not None:
                out.append((f"{rec.id}@{rec.started_at}", rec.id, hc, rec.started_at))
        return out

    def _probe_done(self, key: str, cid: str, interval: float) -> None:
        health = None
        try:
            health = self.probe(cid)
        except rterrors.RuntimeBackendError:
            pass
        finally:
            # the next probe is due a delay after this one ended (Docker's ticker skips overlaps)
            now = self.clock()
            with self._lock:
                due = now + self._delay(key, interval, health, now)
                self._running.discard(key)
                if key in self._live:
                    self._next[key] = due
                    heapq.heappush(self._heap, (due, key, cid, interval))

    def watch(self, stop: threading.Event, *, poll: float = 0.2, workers: int = 16) -> None:
        """Probe until `stop`, up to `workers` probes at a time: each wake-up is at the next
        deadline, or after `poll` seconds (a query of the records' version: new containers'
        timers, and `stop`), whichever comes first. A failing tick is logged and the watch goes on.
        (The pool starts a thread only when a probe finds none idle: a few containers use a few;
        many slow probes get up to 16, so that a round stays well within the 3 intervals after
        which a status reads stale, healthtimes.STALE_INTERVALS.)"""
        pool: ThreadPoolExecutor | None = None   # made when a probe is first due: a session with no
        try:                                     # healthcheck imports no concurrent.futures (#21)
            while not stop.is_set():
                if pool is None and self._targets:
                    from concurrent.futures import ThreadPoolExecutor

                    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="health")
                try:
                    self.tick(pool=pool)
                except Exception:  # noqa: BLE001 - the loop must survive one bad tick
                    from reconciler import logs

                    logs.get_logger("reconciler.runtime.native.containers.health").exception("health_tick_failed")
                due = self.next_due()
                stop.wait(poll if due is None else min(poll, max(due, 0.01)))
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
