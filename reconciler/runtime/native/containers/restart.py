"""Restart policies with Docker's backoff, as a mechanism the agent drives.

Whether a container runs again is `reconciler.restarting.decide` (Docker's rules, shared with
the planner and the Docker backend): at an exit a stop by hand cancels every policy; at engine
start only `unless-stopped` remembers it. The delay before a restart starts at 100 ms and
doubles up to 1 min; it resets when the container ran for 10 s or more.

    rm = RestartManager(manager)
    rm.tick()                 # notice exits (conmon's exit files), start containers that are due
    rm.tick(ids=[id])         # the same for these containers only (their monitor ended)
    rm.handle_exit(id)        # decide for one exited container; returns the delay or None
    rm.boot()                 # on engine start: start the exited ones their policy runs again
                              # (those in their back-off scheduled: `pending()`, for the watch)
    rm.watch(stop_event)      # loop: wake when a monitor ends (pidfds) or a restart is due

A container whose conmon was killed (nothing would record its exit or read its output) is
ended by tick and boot (exit 137, State.Error says why) and its policy then applies.

An AutoRemove container (`Record.auto_remove`: `docker run --rm`, docker-py's `auto_remove`) has
no restart policy: its exit is answered by its removal (`remove`: the engine's, its anonymous
volumes with it), as dockerd's monitor removes it, whoever started it and whether or not a client
waits; `boot` removes the ones that exited while no engine watched, as dockerd does at its start.

The back-off outlives the process: the delay waited before a container's last restart is in its
record (`Record.restart_delay`, with its RestartCount), so the next one doubles it whichever
process makes it, and counts from the exit: an agent restarted in a crash loop neither starts the
container at once (`boot` leaves one in its back-off to the watch) nor begins again at 100 ms.
A stop or a start by hand forgets it, as dockerd's new restart manager does; but a start of one
a restart manager holds in its back-off (`in_back_off`: a pass's, `docker start`) leaves it to
that manager, as dockerd answers the start of a restarting container 304.

A restart waiting its delay is in this process's memory only. The record says so (`restarting`)
and names the process (`restarter_pid`, `_start`, `_boot`: pid, start time and boot id, as records
name conmon), so that it is true only while someone will make it: the watch clears the flags it
set when it stops (the end of a `--once` pass, an agent's SIGTERM), and a process killed before
(kill -9) leaves flags that name a process gone, which every reader takes for exited
(`summaries.restart_pending`); the next engine start's `boot` runs what the policy runs again.

The watch is driven by events, not by re-reading records: it holds a pidfd of every running
container's conmon (monitors.py), which becomes readable when conmon ends, after writing the
exit file or because it was killed. Only those containers are refreshed. Between events a wake-up
every `poll` seconds costs one query of the records' version (new containers get their pidfd
when it moves); none reads a record or a file of a container that did not change.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from reconciler import restarting
from reconciler._dataclass import dataclass, dataclasses
from reconciler.runtime import errors as rterrors
from reconciler.runtime.native import procs
from reconciler.runtime.native.containers import containers, monitors, records

__all__ = ["DEFAULT_DELAY", "MAX_DELAY", "RESET_AFTER", "SWEEP", "RestartManager", "in_back_off", "next_delay"]

DEFAULT_DELAY = 0.1
SWEEP = 2.0             # seconds between checks of the monitors no pidfd watches (out of fds)
MAX_DELAY = 60.0
RESET_AFTER = 10.0


def _decision(rec: records.Record, moment: restarting.Moment) -> restarting.StartDecision:
    return restarting.decide(rec.config.restart, exit_code=rec.exit_code, restart_count=rec.restart_count,
                             manually_stopped=rec.manually_stopped, moment=moment)


def next_delay(previous: float, ran_for: float) -> float:
    """The backoff after `previous` (0 = none yet) for a run that lasted `ran_for` seconds."""
    if ran_for >= RESET_AFTER:
        previous = 0.0
    delay = DEFAULT_DELAY if previous == 0 else previous * 2
    return min(delay, MAX_DELAY)


def in_back_off(rec: records.Record, run_dir: Path) -> bool:
    """Whether a restart manager holds `rec` in its back-off, so that a start of anyone else's (a
    pass's, `docker start`) leaves it to that manager, as dockerd answers the start of a
    restarting container 304: its restart is pending (`Record.restart_pending`: flagged by a
    process that lives), or it exited from a run a restart manager made (`restart_delay`), its
    policy runs it again and a watch runs (the supervisor lock: `autoremove.supervised`), which
    flags it as soon as it looks (a pass can see the exit first). Not one the agent left stopped
    for flapping (its supervisor forgets the back-off), nor one no watch will restart."""
    if rec.restart_pending():
        return True
    if rec.status != "exited" or not rec.restart_delay or not _decision(rec, restarting.Moment.EXIT).start:
        return False
    from reconciler.runtime.native.containers import autoremove

    return autoremove.supervised(run_dir)


def _seconds(start: str | None, end: str | None) -> float:
    if not start or not end:
        return 0.0
    try:
        a = datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(0.0, (b - a).total_seconds())


def _restarting(on: bool) -> Callable[[records.Record], records.Record]:
    """A record's update: its restart pending in this process (`on`), or none pending."""
    if not on:
        return lambda r: dataclasses.replace(r, restarting=False)
    me = os.getpid()
    start, boot = procs.start_time(me), procs.boot_id()
    return lambda r: dataclasses.replace(r, restarting=True, restarter_pid=me, restarter_start=start,
                                         restarter_boot=boot)


def _restarted(delay: float, *, count: int = 1) -> Callable[[records.Record], records.Record]:
    """A record's update: `count` restarts more, made after a back-off of `delay` seconds."""
    return lambda r: dataclasses.replace(r, restart_count=r.restart_count + count, restart_delay=delay)


def _mine(rec: records.Record) -> bool:
    """Whether this process set the record's `restarting` (and it is still set)."""
    return rec.restarting and rec.restarter_pid == os.getpid() and rec.restarter_start == procs.start_time(os.getpid())


@dataclass
class _Pending:
    """A restart the manager scheduled: when, and which exit it answers."""

    due: float                  # time.monotonic() of the restart
    finished_at: str | None     # the exit this restart answers
    delay: float = 0.0          # its back-off (the record's restart_delay once it is made)


class RestartManager:
    """Applies restart policies to a ContainerManager's containers."""

    def __init__(self, manager: containers.ContainerManager, *, clock: Callable[[], float] = time.monotonic,
                 remove: Callable[[str], None] | None = None) -> None:
        self.manager = manager
        self.clock = clock
        # how an exited AutoRemove container goes (the backend's: with its anonymous volumes)
        self.remove = remove or (lambda cid: manager.remove(cid, force=True))
        self._pending: dict[str, _Pending] = {}
        self._handled: dict[str, str | None] = {}   # id -> finished_at already decided
        self._held: set[str] = set()                # restarted by hand: its exit is no AutoRemove's
        self._ended_with: dict[str, int | None] = {}   # id -> the exit code of the run its last restart ended
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def restarting_by_hand(self, cid: str) -> Iterator[None]:
        """While a restart by hand stops and starts `cid` (`docker restart`), its exit removes no
        AutoRemove container: dockerd turns AutoRemove off for the length of a restart."""
        with self._lock:
            self._held.add(cid)
        try:
            yield
        finally:
            with self._lock:
                self._held.discard(cid)

    def handle_exit(self, cid: str, *, at_boot: bool = False) -> float | None:
        """Decide what to do about an exited container; returns the restart delay or None.
        `at_boot`: the engine start's decision, whose restart is due at once when its back-off
        has passed (a watch's waits DEFAULT_DELAY at least: its tick's callback may cancel it)."""
        rec = self.manager.get(cid)
        if rec.status != "exited":
            return None
        if rec.auto_remove:
            self._auto_remove(rec)
            return None
        if rec.published:           # an exit the engine did not cause: its ports go with it
            rec = self.manager.unpublish(rec.id)
        with self._lock:
            if self._handled.get(rec.id) == rec.finished_at and rec.finished_at is not None:
                p = self._pending.get(rec.id)
                return None if p is None else max(0.0, p.due - self.clock())
            self._handled[rec.id] = rec.finished_at
            if not _decision(rec, restarting.Moment.EXIT).start:
                self._pending.pop(rec.id, None)
                if rec.restarting:
                    self.manager.update(rec.id, _restarting(False))
                return None
            delay = next_delay(rec.restart_delay, _seconds(rec.started_at, rec.finished_at))
            # counted from the exit: one an earlier process saw (the agent restarted) waited already;
            # never in the tick that decides it, though (DEFAULT_DELAY at least): the tick's callback
            # (the agent's supervisor) cancels the restart of a container it holds for flapping
            waited = _seconds(rec.finished_at, records.now())
            self._pending[rec.id] = _Pending(due=self.clock() + max(0.0 if at_boot else DEFAULT_DELAY, delay - waited),
                                             finished_at=rec.finished_at, delay=delay)
        self.manager.update(rec.id, _restarting(True))
        return delay

    def _auto_remove(self, rec: records.Record) -> None:
        """Remove an exited AutoRemove container (removed meanwhile: nothing to do; restarted by
        hand, or started again since the exit it was told of: left); a removal that fails is
        logged, and tried again at the next engine start."""
        self.cancel(rec.id)
        with self._lock:
            self._handled.pop(rec.id, None)
            if rec.id in self._held:
                return
        try:
            now = self.manager.get(rec.id)
            if now.status != "exited" or now.finished_at != rec.finished_at:
                return
            self.remove(rec.id)
        except rterrors.NotFound:
            pass
        except Exception as exc:  # noqa: BLE001 - one container that cannot go does not stop the watch
            _log().warning("could not remove an AutoRemove container", container=rec.name, error=str(exc))

    def cancel(self, cid: str) -> None:
        """Forget a pending restart (the container was stopped or removed by hand)."""
        with self._lock:
            self._pending.pop(cid, None)
            self._ended_with.pop(cid, None)

    def ended_with(self, cid: str) -> int | None:
        """The exit code of the run that `cid`'s last restart by this manager followed (the record
        has the new run's by then: none); None when unknown."""
        with self._lock:
            return self._ended_with.get(cid)

    def tick(self, *, full: bool = True, ids: Iterable[str] | None = None) -> list[str]:
        """Notice new exits and run the restarts that are due; returns the ids restarted.

        `ids`: only these containers are refreshed (their monitor ended), and ended if their
        monitor is lost. Else `full` (engine start, a sweep): every record is refreshed, and
        containers whose conmon was killed are ended; not `full`: only the containers that
        have an exit file are refreshed."""
        try:
            if ids is not None:
                recs = self._checked(ids)
            else:
                recs = self._end_unmonitored(self.manager.records()) if full else self._ended()
                self.forget_except({r.id for r in recs})
        except rterrors.RuntimeBackendError:
            return []
        self._handle_exits(recs)
        return self._start_due()

    def forget_except(self, live: set[str]) -> None:
        """Cancel the pending restarts of containers no longer there (removed)."""
        for cid in list(self._pending):
            if cid not in live:
                self.cancel(cid)

    def _handle_exits(self, recs: Iterable[records.Record]) -> None:
        for rec in recs:
            if rec.status == "exited" and self._handled.get(rec.id) != rec.finished_at:
                try:
                    self.handle_exit(rec.id)
                except rterrors.NotFound:       # removed since it was listed
                    self.cancel(rec.id)

    def _start_due(self) -> list[str]:
        restarted: list[str] = []
        now = self.clock()
        for cid, p in list(self._pending.items()):
            if p.due > now:
                continue
            with self._lock:
                self._pending.pop(cid, None)
            try:
                # decided under the container's lock: a stop by hand between this decision and the
                # start (the container is exited between two runs) would otherwise be undone
                due = False

                def still_due(r: records.Record) -> bool:
                    nonlocal due
                    due = r.status == "exited" and _decision(r, restarting.Moment.EXIT).start
                    if due:
                        with self._lock:
                            self._ended_with[r.id] = r.exit_code
                    return due

                self.manager.start(cid, only_if=still_due, keep_backoff=True)
                if not due:
                    continue                    # stopped by hand (or started) since
                self.manager.update(cid, _restarted(p.delay))
                restarted.append(cid)
            except rterrors.NotFound:
                self.cancel(cid)
            except Exception:  # noqa: BLE001 - any failure: a failed run, not the end of the watch loop
                # could not start: treat as a failed run, back off further
                _log().warning("restart_failed", container=cid, exc_info=True)
                self._handled.pop(cid, None)
                with contextlib.suppress(Exception):    # the next try's delay doubles this one
                    self.manager.update(cid, _restarted(p.delay, count=0))
        return restarted

    def _checked(self, ids: Iterable[str]) -> list[records.Record]:
        """These containers refreshed, each ended if its monitor is lost; removed ones dropped."""
        out = []
        for cid in ids:
            try:
                rec = self.manager.get(cid)
                if self.manager.unmonitored(rec):
                    rec = self.manager.end_unmonitored(rec.id) or rec
            except rterrors.NotFound:
                self.cancel(cid)
                continue
            out.append(rec)
        return out

    def _ended(self) -> list[records.Record]:
        """The records, with those of the containers conmon wrote an exit file for refreshed."""
        ended = self.manager.exit_files()
        return [self.manager.refresh(r) if r.id in ended else r for r in self.manager.stored()]

    def pending(self) -> bool:
        """Whether a restart waits its delay here (scheduled by `boot` or the watch): only a
        running watch makes it."""
        with self._lock:
            return bool(self._pending)

    def next_due(self) -> float | None:
        """Seconds until the next pending restart, or None."""
        with self._lock:
            if not self._pending:
                return None
            return max(0.0, min(p.due for p in self._pending.values()) - self.clock())

    def _end_unmonitored(self, recs: list[records.Record]) -> list[records.Record]:
        """`recs`, with each container whose conmon is gone ended (its exit then handled as any)."""
        out = []
        for rec in recs:
            if self.manager.unmonitored(rec):
                try:
                    rec = self.manager.end_unmonitored(rec.id) or rec
                except rterrors.NotFound:
                    continue
            out.append(rec)
        return out

    def boot(self, *, held: Collection[str] = ()) -> list[str]:
        """Engine start: containers whose monitor died with the last engine are ended, then the
        exited ones whose policy runs them again are started (`always`, `unless-stopped` unless
        stopped by hand, `on-failure` after a failure with retries left), but those `held` (ids:
        the agent's supervisor left them stopped for flapping), and the exited AutoRemove ones
        removed.

        A start here is a restart, counted as the restart manager counts one (so `on-failure:N`
        gives up after N, however many `--once` runs start the engine), unless the container
        ended with an earlier boot: the reboot's kill, after which dockerd starts it uncounted.
        One in its back-off (restarted by a restart manager, its exit in this boot) is not started
        here: its restart is scheduled (`handle_exit`: what is left of its delay, counted from the
        exit) and its record says "restarting" from here on, naming this process, so an agent
        restarted in a crash loop does not restart the container at full speed, and a pass that
        looks before the watch's first tick (the agent's first pass, a `--once`) leaves it to the
        watch, as compose leaves a container in dockerd's back-off, instead of starting it by hand
        (which forgets the back-off). The watch makes the restart (`pending`: the caller runs it)."""
        started = []
        this_boot = procs.boot_id()
        for rec in self._end_unmonitored(self.manager.records()):
            if rec.auto_remove and rec.status in ("exited", "dead"):
                self._auto_remove(rec)          # exited while no engine watched (a created one waits its start)
                continue
            if rec.status != "exited" or rec.id in held:
                continue
            if _decision(rec, restarting.Moment.RESUME).start:
                in_this_boot = rec.error is not None or rec.boot_id == this_boot
                if in_this_boot and rec.restart_delay:
                    try:                        # crash-looping: restarted after its back-off (below, or by the watch)
                        self.handle_exit(rec.id, at_boot=True)
                    except rterrors.NotFound:
                        pass
                    continue
                try:
                    if in_this_boot:            # it ended in this boot: a restart
                        self.manager.update(rec.id, lambda r: dataclasses.replace(r, restart_count=r.restart_count + 1))
                    self.manager.start(rec.id)
                    started.append(rec.id)
                except Exception as exc:  # noqa: BLE001 - one container that cannot start does not stop the others
                    _log().warning("could not start at engine start", container=rec.name, error=str(exc))
        # a crash-looper whose back-off has passed (its exit long enough ago) restarts now, with
        # the back-off kept: left to the watch, a `--once` whose pass ends before the watch's first
        # tick never restarted it, and each pass said "restarting" for good (an on-failure policy
        # never gave up, an always one never ran again without an agent)
        return started + self._start_due()

    def watch(self, stop: threading.Event, *, poll: float = 0.2, sweep: float = SWEEP,
              on_tick: Callable[[list[str]], None] | None = None) -> None:
        """Until `stop` (noticed at once): a tick for the containers whose monitor ended (as the
        kernel reports it through their pidfds, or found gone when first watched) and for the
        exits not yet decided, and when a restart is due; no sweep of every record (`boot` is
        the engine start's). `poll` bounds how long a new container goes unwatched (one query of the
        records' version per wake-up); `sweep`, how often the monitors left without a pidfd
        (out of fds) are checked. `on_tick` gets the ids each tick restarted. A failing tick
        is logged and the watch goes on."""
        monitors.raise_fd_limit()
        with monitors.MonitorWatch() as watch, self._monitoring():
            watch.wake_on(stop)
            seen: tuple[records.Record, ...] | None = None
            swept = self.clock()
            ended: set[str] = set()
            first = True
            while not stop.is_set():
                recs = self.manager.stored()        # the version only, while nothing changed
                if recs is not seen:
                    seen = recs
                    # a monitor already gone (ended before it could be watched: killed while no
                    # engine ran, or between two looks) is as one that ends now
                    ended |= watch.track(recs)
                    # records() may trust its refreshed records while every monitor is watched
                    self.manager.monitored = None if watch.unwatched else recs
                    self.forget_except({r.id for r in recs})
                    # exits recorded and not yet decided (while no engine ran, or another
                    # process recorded them first)
                    ended |= {r.id for r in recs if r.status == "exited" and self._handled.get(r.id) != r.finished_at}
                if watch.unwatched and self.clock() - swept >= sweep:
                    swept = self.clock()
                    ended |= watch.unwatched
                due = self.next_due()
                if first or ended or (due is not None and due <= 0):
                    first = False
                    self._step(on_tick, ids=ended)
                    due = self.next_due()
                ended = watch.wait(poll if due is None else min(poll, max(due, 0.0)))

    @contextlib.contextmanager
    def _monitoring(self) -> Iterator[None]:
        from reconciler.runtime.native.containers import autoremove

        try:
            with autoremove.supervising(self.manager.config.run_dir):    # this watch removes AutoRemove ones
                yield
        finally:
            self.manager.monitored = None
            self.release()

    def release(self) -> None:
        """Give up the pending restarts: no one makes them once this watch ends, so their records
        no longer say "restarting" (those this process flagged and that still say so: a stop or
        start meanwhile is not undone). The watch does this when it stops."""
        with self._lock:
            pending = list(self._pending)
            self._pending.clear()
            self._handled.clear()       # a later watch decides these exits again
        for cid in pending:
            try:
                self.manager.update(cid, lambda r: _restarting(False)(r) if _mine(r) else r)
            except rterrors.NotFound:
                continue
            except Exception:  # noqa: BLE001 - the others still: a flag left names this process
                _log().warning("could not clear a pending restart", container=cid, exc_info=True)

    def _step(self, on_tick: Callable[[list[str]], None] | None, *, ids: Iterable[str]) -> None:
        try:
            restarted = self.tick(ids=ids)
            if on_tick is not None:
                on_tick(restarted)
        except Exception:  # noqa: BLE001 - keep watching: one bad tick is not the end
            _log().exception("restart_tick_failed")


def _log() -> Any:
    """This module's logger, asked for where something failed (the logging setup is not loaded
    by an engine whose loops run quietly)."""
    from reconciler import logs

    return logs.get_logger("reconciler.runtime.native.containers.restart")
