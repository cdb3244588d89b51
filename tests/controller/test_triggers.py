from __future__ import annotations

import threading

from reconciler.controller import triggers
from tests.controller.clocks import ManualClock


def test_ten_wakes_make_one_batch() -> None:
    q = triggers.TriggerQueue(max_reasons=3)
    for i in range(10):
        q.add("src", f"event {i}")
    batch = q.get(timeout=0)
    assert batch == triggers.Batch(key="src", count=10, reasons=("event 7", "event 8", "event 9"))
    assert q.get(timeout=0) is None


def test_a_delayed_trigger_waits_for_the_clock() -> None:
    clock = ManualClock()
    q = triggers.TriggerQueue(clock=clock)
    q.add("src", "retry", after=5.0)
    assert q.get(timeout=0) is None
    assert q.due_in("src") == 5.0
    clock.advance(5.0)
    batch = q.get(timeout=0)
    assert batch is not None
    assert batch.key == "src"


def test_an_immediate_trigger_overrides_a_pending_delay() -> None:
    clock = ManualClock()
    q = triggers.TriggerQueue(clock=clock)
    q.add("src", "requeue", after=300.0)
    q.add("src", "file changed")
    batch = q.get(timeout=0)
    assert batch is not None
    assert batch.count == 2
    assert batch.reasons == ("requeue", "file changed")


def test_a_later_delay_does_not_postpone_an_earlier_one() -> None:
    clock = ManualClock()
    q = triggers.TriggerQueue(clock=clock)
    q.add("src", after=1.0)
    q.add("src", after=60.0)
    assert q.due_in("src") == 1.0


def test_a_key_triggered_during_its_pass_runs_again_after_it_not_alongside() -> None:
    q = triggers.TriggerQueue()
    q.add("src", "first")
    first = q.get(timeout=0)
    assert first is not None
    q.add("src", "during the pass")
    q.add("other", "independent")
    other = q.get(timeout=0)
    assert other is not None
    assert other.key == "other"
    assert q.get(timeout=0) is None  # "src" is still processing
    q.done("src")
    again = q.get(timeout=0)
    assert again is not None
    assert (again.key, again.reasons) == ("src", ("during the pass",))


def test_a_suspended_key_collects_triggers_until_resumed() -> None:
    q = triggers.TriggerQueue()
    q.suspend("src")
    q.add("src", "a")
    q.add("src", "b")
    assert q.get(timeout=0) is None
    assert q.wait_idle(timeout=0)  # a suspended key does not count as work to do
    q.resume("src")
    batch = q.get(timeout=0)
    assert batch is not None
    assert batch.count == 2


def test_a_blocked_get_wakes_up_on_add_from_another_thread() -> None:
    q = triggers.TriggerQueue()
    got: list[triggers.Batch | None] = []
    t = threading.Thread(target=lambda: got.append(q.get(timeout=30)))
    t.start()
    q.add("src", "webhook")
    t.join()
    assert got[0] is not None
    assert got[0].key == "src"


def test_a_manual_clock_move_is_noticed_after_poke() -> None:
    clock = ManualClock()
    q = triggers.TriggerQueue(clock=clock)
    q.add("src", after=10.0)
    got: list[triggers.Batch | None] = []
    t = threading.Thread(target=lambda: got.append(q.get(timeout=30)))
    t.start()
    clock.advance(10.0)
    q.poke()
    t.join()
    assert got[0] is not None


def test_shutdown_releases_waiters_and_drops_pending_work() -> None:
    q = triggers.TriggerQueue()
    got: list[triggers.Batch | None] = ["unset"]  # type: ignore[list-item]
    t = threading.Thread(target=lambda: got.__setitem__(0, q.get()))
    t.start()
    q.shutdown()
    t.join()
    assert got[0] is None
    q.add("src", "late")
    assert q.get(timeout=0) is None


def test_wait_idle_waits_for_the_pass_in_flight() -> None:
    q = triggers.TriggerQueue()
    q.add("src")
    assert not q.wait_idle(timeout=0)  # due now, nobody took it
    batch = q.get(timeout=0)
    assert batch is not None
    assert not q.wait_idle(timeout=0)  # processing
    q.done("src")
    assert q.wait_idle(timeout=0)
