"""Supervision is driven by events, not by re-reading records (#21): the restart manager waits
on the pidfds of the containers' monitors, so an exit is noticed when it happens, whatever the
poll, and an idle engine reads no record and refreshes none, however many containers run."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from reconciler.cli.main import main
from reconciler.runtime.native import procs
from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.containers import health, records
from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.registry]

# far longer than any deadline below: a loop that only noticed exits when it polls fails them
POLL = 30.0


def run(host: Host, image: str, name: str, *argv: str) -> None:
    args = [a for a in host.cli_args() if a not in ("--runtime", "native")]
    assert main(["run", "-d", "--name", name, "--network", "none", *args, *argv, image, "sleep", "3600"]) == 0


@contextmanager
def watching(rt: NativeRuntime, *, poll: float = POLL, sweep: float = POLL, health_too: bool = False) -> Iterator[None]:
    """The restart manager's watch (and the health checker's) in threads, as the agent runs
    them; returns once the watch's first (full) tick is done."""
    stop = threading.Event()
    first = threading.Event()
    threads = [threading.Thread(target=rt.restart_manager.watch, args=(stop,), daemon=True,
                                kwargs={"poll": poll, "sweep": sweep, "on_tick": lambda _: first.set()})]
    if health_too:
        threads.append(threading.Thread(target=rt.health_checker.watch, args=(stop,), kwargs={"poll": poll},
                                        daemon=True))
    for t in threads:
        t.start()
    try:
        assert first.wait(30), "the watch's first tick did not end"
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=max(poll, 10) + 5)


def wait_for(what: str, check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s (the watch polls every {POLL}s)"
        time.sleep(0.05)


def test_a_container_killed_from_outside_is_restarted_before_any_poll(host: Host, busybox_image: str) -> None:
    run(host, busybox_image, "box", "--restart", "always")
    rt = host.runtime()
    try:
        before = rt.containers.get("box")
        with watching(rt):
            os.kill(before.pid or 0, signal.SIGKILL)               # as `kill -9` from a shell would
            wait_for("the restart", lambda: (r := rt.containers.get("box")).restart_count == 1
                     and r.status == "running")
        after = rt.containers.get("box")
        assert after.conmon_pid != before.conmon_pid
        assert not procs.alive(before.pid, before.pid_start)
        dies = [e for e in rt.containers.journal.after(0) if e.actor == before.id and e.action == "die"]
        assert [e.attributes["exitCode"] for e in dies] == ["137"]   # journalled once, as before
    finally:
        rt.close()


def test_a_lost_monitor_is_noticed_when_it_ends_not_at_a_sweep(host: Host, busybox_image: str) -> None:
    run(host, busybox_image, "box", "--restart", "on-failure")
    rt = host.runtime()
    try:
        before = rt.containers.get("box")
        with watching(rt):
            os.kill(before.conmon_pid or 0, signal.SIGKILL)        # the container's process lives on
            wait_for("the lost monitor's container restarted",
                     lambda: (r := rt.containers.get("box")).restart_count == 1 and r.status == "running")
        assert not procs.alive(before.pid, before.pid_start)        # the unmonitored one was ended
    finally:
        rt.close()


def test_idle_supervision_reads_no_record_however_many_containers_run(host: Host, busybox_image: str) -> None:
    """With a poll and a sweep of 50 ms, a loop that refreshed every record per sweep would
    refresh each container 20 times a second; the event-driven one refreshes none while
    nothing happens, then only the one that ended."""
    names = [f"idle{i}" for i in range(6)]
    for name in names:
        run(host, busybox_image, name, "--restart", "no", "--health-cmd", "true", "--health-interval", "1h")
    rt = host.runtime()
    try:
        with watching(rt, poll=0.05, sweep=0.05, health_too=True):
            time.sleep(0.3)                                     # the health watch's first look
            reads, refreshes = rt.containers.row_reads, rt.containers.refreshes
            time.sleep(1.5)                                     # 30 polls of each loop
            assert (rt.containers.row_reads, rt.containers.refreshes) == (reads, refreshes)
            victim = rt.containers.get("idle3")                 # (a refresh: counted)
            seq = rt.containers.journal.last_seq()
            os.kill(victim.pid or 0, signal.SIGKILL)
            wait_for("the exit journalled", lambda: any(
                e.action == "die" and e.actor == victim.id for e in rt.containers.journal.after(seq)))
            time.sleep(0.3)
            assert rt.containers.refreshes - refreshes <= 4     # the victim's, never all six
            assert {r.name: r.status for r in rt.containers.stored()} == {
                n: "exited" if n == "idle3" else "running" for n in names}
    finally:
        rt.close()


def test_a_due_probe_runs_on_its_own_timer(host: Host, busybox_image: str) -> None:
    """The health watch sleeps until the next probe is due, not a fixed poll: with a poll of
    30 s, a 1 s interval still gives a status within seconds, and a health_status event."""
    run(host, busybox_image, "hc", "--health-cmd", "true", "--health-interval", "1s")
    rt = host.runtime()
    stop = threading.Event()
    checker = health.HealthChecker(rt.containers)
    t = threading.Thread(target=checker.watch, args=(stop,), kwargs={"poll": POLL}, daemon=True)
    try:
        t.start()
        wait_for("the first probe", lambda: rt.containers.get("hc").health == "healthy")
        actions = [e.action for e in rt.containers.journal.after(0) if e.actor == rt.containers.get("hc").id]
        assert "health_status: healthy" in actions
    finally:
        stop.set()
        t.join(timeout=POLL + 5)
        rt.close()


def test_records_refreshed_once_stay_true_while_the_watch_holds_every_monitor(host: Host, busybox_image: str) -> None:
    """In the agent, `ps` through its API and each pass read the records: while the restart
    watch holds a pidfd of every monitor, what was refreshed once stays true until the watch
    (or an exit file) says otherwise, however long ago it was read."""
    for name in ("a", "b"):
        run(host, busybox_image, name, "--restart", "no")
    rt = host.runtime()
    try:
        store = rt.containers
        with watching(rt, poll=0.05):
            assert [r.status for r in store.records()] == ["running", "running"]
            refreshed = store.refreshes
            time.sleep(records.FRESH_FOR + 0.5)
            assert [r.status for r in store.records()] == ["running", "running"]
            assert store.refreshes == refreshed
            victim = store.get("a")
            os.kill(victim.conmon_pid or 0, signal.SIGKILL)         # no exit file: only the pidfd tells
            wait_for("the lost monitor's container ended",
                     lambda: {r.name: r.status for r in store.records()} == {"a": "exited", "b": "running"})
    finally:
        rt.close()
