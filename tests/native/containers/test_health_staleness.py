"""A stale health status (healthtimes.stale): a running container's healthcheck that no probe
observed for longer than its interval allows (no agent ran) is reported as such by the engine's
records (ContainerState, `ps`'s rows), `ps`'s STATUS text and the verdict (`passes.down`), never
taken for the health of what runs. Pure: no engine, no root."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler import healthtimes, listing
from reconciler.execution import passes
from reconciler.runtime import base
from reconciler.runtime.native.containers import records, summaries
from reconciler.state import observed as obs
from tests.execution.test_status_truth import desired, state

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def at(seconds: float) -> str:
    """T0 + seconds as the records write times (records.now)."""
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def epoch(seconds: float) -> float:
    return (T0 + timedelta(seconds=seconds)).timestamp()


def stale(now: float, *, probed: str | None = at(100), status: str = "running", started: str | None = at(0),
          interval: float = 10.0, timeout: float = 3.0, start_period: float = 0.0) -> bool:
    return healthtimes.stale(status, interval, timeout, start_period, started, probed, epoch(now))


def test_a_status_stands_three_intervals_and_a_timeout_after_its_probe() -> None:
    assert healthtimes.STALE_INTERVALS == 3
    assert not stale(100 + 33)                      # 3 x 10 s + 3 s: a checker that runs probed since
    assert stale(100 + 33.5)
    assert stale(100 + 7200)                        # two hours: no checker ran
    assert not stale(100 + 7200, status="exited")   # only a running container's health is judged
    assert not stale(100 + 7200, status="created")


def test_never_probed_counts_from_its_start_and_start_period() -> None:
    assert not stale(60 + 33, probed=None, start_period=60)
    assert stale(60 + 34, probed=None, start_period=60)
    assert not stale(7200, probed=None, started=None)       # no start time: nothing to count from
    assert not stale(7200, probed="at some time")           # a probe time it cannot read: never "never probed"


def test_the_last_probe_is_the_newest_of_this_run() -> None:
    log = [{"Start": at(9), "End": at(10), "ExitCode": 0}, {"Start": at(19), "End": at(20), "ExitCode": 1}]
    assert healthtimes.last_probe(log, at(0)) == at(20)
    assert healthtimes.last_probe(log, at(30)) is None        # restarted since: those probes saw its last run
    assert healthtimes.last_probe([], at(0)) is None
    assert healthtimes.last_probe(log, None) == at(20)


def test_the_images_healthcheck_with_dockers_defaults() -> None:
    assert summaries.image_healthcheck({}) is None
    assert summaries.image_healthcheck({"Healthcheck": {"Test": ["CMD", "true"]}}) == {
        "test": ("CMD", "true"), "interval": 30.0, "timeout": 30.0, "retries": 3, "start_period": 0.0}
    assert summaries.image_healthcheck({"Healthcheck": {"Test": ["CMD", "true"], "Interval": 2_000_000_000,
                                                        "StartPeriod": 500_000_000}})["interval"] == 2.0
    assert not summaries.probes(("NONE",))
    assert not summaries.probes(())
    assert summaries.probes(("CMD-SHELL", "true"))


def record(health_log: tuple[dict[str, object], ...], *, started: str, status: str = "running",
           healthcheck: base.Healthcheck | None = None, image_config: dict[str, object] | None = None,
           ) -> records.Record:
    hc = healthcheck if healthcheck is not None or image_config else \
        base.Healthcheck(test=("CMD", "true"), interval=1.0, timeout=1.0)
    return records.Record(id="c" * 64, name="app", image="img", image_id="sha256:x", created=at(0),
                          config=base.ContainerConfig(name="app", image="img", command=("sleep", "9"),
                                                      healthcheck=hc),
                          image_config=image_config or {}, lowerdirs=(), hostname="app", stop_signal=15,
                          status=status, started_at=started, health="healthy", health_log=health_log)


def test_the_records_state_and_summary_say_it() -> None:
    """What the engine reports (ContainerState) and what `ps` shows (records.summary): stale, and
    when it was last seen; with the image's healthcheck as with the config's."""
    now = datetime.now(UTC).timestamp()
    old = datetime.fromtimestamp(now - 3600, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    started = datetime.fromtimestamp(now - 7200, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    rec = record(({"Start": old, "End": old, "ExitCode": 0},), started=started)
    st = rec.state()
    assert (st.health, st.health_stale, st.health_probed_at) == ("healthy", True, old)
    row = records.summary(rec)
    assert (row["health_stale"], row["health_probed_at"]) == (True, old)
    assert rec.health_seen(records.effective_healthcheck(rec), now - 3600 + 2) == (False, old)     # seen 2 s after that probe: fresh
    image_hc = {"Healthcheck": {"Test": ["CMD", "true"], "Interval": 1_000_000_000, "Timeout": 1_000_000_000}}
    assert record((), started=started, image_config=image_hc).state().health_stale      # never probed
    none = base.Healthcheck(test=("NONE",))
    assert not record((), started=started, healthcheck=none, image_config=image_hc).state().health_stale
    assert not record((), started=started, status="exited").state().health_stale


def test_ps_says_when_a_stale_status_was_seen() -> None:
    now = T0 + timedelta(hours=3)
    row = {"status": "running", "started_at": at(0), "health": "healthy", "health_stale": True,
           "health_probed_at": at(3600)}
    assert listing.status_text(row, now) == "Up 3 hours (healthy, last probed 2 hours ago)"
    assert listing.status_text({**row, "health": "starting", "health_probed_at": None}, now) == \
        "Up 3 hours (health: starting, never probed)"
    assert listing.status_text({**row, "health_stale": False}, now) == "Up 3 hours (healthy)"
    assert listing.status_text({**row, "status": "paused"}, now) == "Up 3 hours (Paused)"


def test_a_stale_health_is_not_converged(tmp_path: Path) -> None:
    """The verdict (`passes.down`: a pass's and `status`'s without an agent) takes a stale health
    for what it is: not observed, whatever the record kept; what to do is said."""
    d = desired(tmp_path, "always", ", healthcheck: {test: [CMD, 'true']}")
    seen = datetime.now(UTC) - timedelta(hours=2)
    probed = seen.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    observed = dataclasses.replace(state("running", health="healthy"), health_stale=True, health_probed_at=probed)
    assert passes.unready(d, [observed]) == {
        "app": "health not observed: last probed 2 hours ago, healthy then; is the agent running? (`reconcile agent`)"}
    never = dataclasses.replace(observed, health="starting", health_probed_at=None)
    assert passes.unready(d, [never]) == {
        "app": "health not observed: never probed; is the agent running? (`reconcile agent`)"}
    assert passes.unready(d, [dataclasses.replace(observed, paused=True)]) == {"app": "paused"}
    assert passes.unready(d, [dataclasses.replace(observed, health_stale=False)]) == {}


@pytest.mark.parametrize("health", ["healthy", "unhealthy", "starting"])
def test_the_observed_container_carries_it(health: str) -> None:
    from reconciler.execution import observing

    st = dataclasses.replace(state("running", health=health), health_stale=True, health_probed_at=at(5))
    o = observing.by_name([st])["app"]
    assert isinstance(o, obs.ObservedContainer)
    assert (o.health, o.health_stale, o.health_probed_at) == (health, True, at(5))
