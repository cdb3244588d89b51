from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from reconciler.controller import backoff, loop
from reconciler.errors import TemporaryError, TerminalError
from tests.controller.clocks import ManualClock, wait_for

FAST = backoff.BackoffPolicy(base=0.01, factor=2.0, cap=1.0)


class Recorder:
    """A reconcile function driven by a script of outcomes; records every request."""

    def __init__(self, script: list[Callable[[], loop.Result]] | None = None) -> None:
        self.requests: list[loop.Request] = []
        self.script = list(script or [])
        self.lock = threading.Lock()

    def __call__(self, request: loop.Request) -> loop.Result:
        with self.lock:
            self.requests.append(request)
            step = self.script.pop(0) if self.script else ok
        return step()

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.requests)


def ok() -> loop.Result:
    return loop.Result()


def boom() -> loop.Result:
    raise RuntimeError("registry said 503")


@pytest.fixture
def logs() -> Iterator[list[dict[str, object]]]:
    with capture_logs() as captured:
        yield captured


def passes(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [e for e in list(logs) if e["event"] == "reconcile_pass"]


def test_ten_triggers_during_a_pass_make_one_more_pass(logs: list[dict[str, object]]) -> None:
    entered, release = threading.Event(), threading.Event()

    def blocking() -> loop.Result:
        entered.set()
        release.wait(30)
        return loop.Result()

    rec = Recorder([blocking])
    with loop.ControllerLoop(rec) as ctl:
        ctl.trigger("src", "start")
        assert entered.wait(30)
        for i in range(10):
            ctl.trigger("src", f"file event {i}")
        release.set()
        assert ctl.wait_idle(timeout=30)
    assert rec.count == 2
    assert [p["triggers"] for p in passes(logs)] == [1, 10]
    assert [r.key for r in rec.requests] == ["src", "src"]
    assert rec.requests[0].reconcile_id != rec.requests[1].reconcile_id


def test_errors_back_off_exponentially_and_success_resets(logs: list[dict[str, object]]) -> None:
    rec = Recorder([boom, boom, boom, ok, boom, ok])
    with loop.ControllerLoop(rec, backoff=backoff.Backoff(FAST)) as ctl:
        ctl.trigger("src", "start")
        wait_for(lambda: rec.count == 4, what="three retries and a success")
        assert ctl.wait_idle(timeout=30)
        assert ctl.status("src").failures == 0
        assert ctl.status("src").last_error is None
        ctl.trigger("src", "edit")  # the next failure starts from the base delay again
        wait_for(lambda: rec.count == 6, what="one retry and a success")
        assert ctl.wait_idle(timeout=30)
    outcomes = [(p["outcome"], p.get("retry_in")) for p in passes(logs)]
    assert outcomes == [
        ("error", 0.01),
        ("error", 0.02),
        ("error", 0.04),
        ("ok", None),
        ("error", 0.01),
        ("ok", None),
    ]


def test_a_failure_is_recorded_in_the_status_until_the_retry() -> None:
    clock = ManualClock()
    rec = Recorder([boom])
    policy = backoff.BackoffPolicy(base=30.0, factor=2.0, cap=600.0)
    with loop.ControllerLoop(rec, backoff=backoff.Backoff(policy), clock=clock) as ctl:
        ctl.trigger("src")
        wait_for(lambda: ctl.status("src").passes == 1, what="the failed pass")
        status = ctl.status("src")
        assert status.last_outcome is loop.Outcome.ERROR
        assert status.last_error == "registry said 503"
        assert status.failures == 1
        assert status.next_in == 30.0
        assert ctl.wait_idle(timeout=30)  # the retry is scheduled, not due
        assert rec.count == 1
        clock.advance(30.0)
        ctl.queue.poke()
        wait_for(lambda: ctl.status("src").passes == 2, what="the retry")
        assert ctl.status("src").last_outcome is loop.Outcome.OK


def test_a_temporary_error_with_a_delay_waits_that_long(logs: list[dict[str, object]]) -> None:
    def busy() -> loop.Result:
        raise TemporaryError("store lock held by `reconcile --once`", delay=7.5)

    clock = ManualClock()
    rec = Recorder([busy])
    with loop.ControllerLoop(rec, backoff=backoff.Backoff(FAST), clock=clock) as ctl:
        ctl.trigger("src")
        wait_for(lambda: ctl.status("src").passes == 1, what="the pass")
        assert ctl.status("src").next_in == 7.5
    assert passes(logs)[0]["retry_in"] == 7.5


def test_a_terminal_error_waits_for_the_next_trigger() -> None:
    def invalid() -> loop.Result:
        raise TerminalError("web.yaml:3: unknown field 'imagee'")

    rec = Recorder([invalid])
    with loop.ControllerLoop(rec, backoff=backoff.Backoff(FAST)) as ctl:
        ctl.trigger("src", "edit")
        wait_for(lambda: ctl.status("src").passes == 1, what="the pass")
        assert ctl.wait_idle(timeout=30)
        status = ctl.status("src")
        assert status.last_outcome is loop.Outcome.TERMINAL
        assert status.next_in is None  # nothing scheduled: no retry
        assert status.last_error is not None
        assert "unknown field" in status.last_error
        assert rec.count == 1
        ctl.trigger("src", "fixed")
        wait_for(lambda: rec.count == 2, what="the pass after the fix")
        assert ctl.wait_idle(timeout=30)
        assert ctl.status("src").last_outcome is loop.Outcome.OK


def test_requeue_after_schedules_the_drift_check() -> None:
    clock = ManualClock()
    rec = Recorder([lambda: loop.Result(requeue_after=60.0)] * 2)
    with loop.ControllerLoop(rec, clock=clock) as ctl:
        ctl.trigger("src")
        wait_for(lambda: ctl.status("src").passes == 1, what="the first pass")
        assert ctl.wait_idle(timeout=30)
        assert ctl.status("src").next_in == 60.0
        assert rec.count == 1
        clock.advance(60.0)
        ctl.queue.poke()
        wait_for(lambda: rec.count == 2, what="the drift check")


def test_stop_finishes_the_pass_in_flight_and_starts_no_other() -> None:
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()

    def long_pass() -> loop.Result:
        entered.set()
        release.wait(30)
        finished.set()
        return loop.Result()

    rec = Recorder([long_pass])
    ctl = loop.ControllerLoop(rec).start()
    ctl.trigger("src")
    assert entered.wait(30)
    ctl.trigger("src", "arrived during the pass")
    assert ctl.status("src").running
    stopped: list[bool] = []
    stopper = threading.Thread(target=lambda: stopped.append(ctl.stop(timeout=30)))
    stopper.start()
    wait_for(lambda: ctl.stop_requested, what="stop to be requested")
    assert stopper.is_alive()  # cannot return while the pass is blocked
    assert not finished.is_set()
    release.set()
    stopper.join()
    assert stopped == [True]
    assert finished.is_set()
    assert rec.count == 1  # the trigger that arrived during the pass was dropped
    assert not ctl.status("src").running


def test_suspend_holds_triggers_and_resume_runs_one_pass(logs: list[dict[str, object]]) -> None:
    rec = Recorder()
    with loop.ControllerLoop(rec) as ctl:
        ctl.suspend("src")
        for _ in range(3):
            ctl.trigger("src", "edit")
        ctl.trigger("other", "edit")
        wait_for(lambda: rec.count == 1, what="the other source's pass")
        assert ctl.wait_idle(timeout=30)
        assert [r.key for r in rec.requests] == ["other"]
        assert ctl.status("src").suspended
        ctl.resume("src")
        wait_for(lambda: rec.count == 2, what="the resumed pass")
        assert ctl.wait_idle(timeout=30)
    assert [r.key for r in rec.requests] == ["other", "src"]
    src_pass = next(p for p in passes(logs) if p["key"] == "src")
    assert src_pass["triggers"] == 4
    assert src_pass["reasons"] == ["edit", "edit", "edit", "resumed"]


def test_keys_run_in_parallel_but_a_key_never_runs_twice_at_once() -> None:
    a_entered, release = threading.Event(), threading.Event()
    running: dict[str, int] = {}
    overlap: list[str] = []
    lock = threading.Lock()

    def reconcile(request: loop.Request) -> loop.Result:
        with lock:
            running[request.key] = running.get(request.key, 0) + 1
            if running[request.key] > 1:
                overlap.append(request.key)
        try:
            if request.key == "a" and not release.is_set():
                a_entered.set()
                release.wait(30)
        finally:
            with lock:
                running[request.key] -= 1
        return loop.Result()

    with loop.ControllerLoop(reconcile, workers=3) as ctl:
        ctl.trigger("a")
        assert a_entered.wait(30)
        ctl.trigger("a", "again")  # must wait for the first pass of "a"
        ctl.trigger("b")
        wait_for(lambda: ctl.status("b").passes == 1, what="b to pass while a is blocked")
        assert ctl.status("a").passes == 0
        release.set()
        wait_for(lambda: ctl.status("a").passes == 2, what="both passes of a")
        assert ctl.wait_idle(timeout=30)
    assert overlap == []


def test_the_reconcile_id_is_bound_for_the_reconcile_functions_logs() -> None:
    seen: list[tuple[str, object]] = []

    def reconcile(request: loop.Request) -> loop.Result:
        seen.append((request.reconcile_id, structlog.contextvars.get_contextvars().get("reconcile_id")))
        return loop.Result()

    with loop.ControllerLoop(reconcile, new_id=lambda: "rid-1") as ctl:
        ctl.trigger("src")
        wait_for(lambda: bool(seen), what="the pass")
    assert seen == [("rid-1", "rid-1")]


def test_a_source_waker_triggers_its_key() -> None:
    rec = Recorder()
    with loop.ControllerLoop(rec) as ctl:
        wake = ctl.waker("git-main")
        wake("poll: main moved")
        wait_for(lambda: rec.count == 1, what="the pass")
    assert rec.requests[0].key == "git-main"
