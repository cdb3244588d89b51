"""The executor over the in-memory runtime: order, parallelism, isolation, health gates, rollback."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler._sqlite import Database
from reconciler.execution import changes, executor, observing, passes
from reconciler.planning import actions, implied, planner
from reconciler.runtime.fake import FakeRuntime
from reconciler.state import inventory as inv
from tests.execution.helpers import IMG, FakeClock, apply, container_doc, exec_options, load, write

Kind = actions.ActionKind


@pytest.fixture
def rt() -> FakeRuntime:
    r = FakeRuntime()
    r.publish(IMG)
    return r


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(tmp_path / "state.db")


def fresh_plan(manifests: Path, rt: FakeRuntime, owner: str = "default", *, made: bool = False) -> actions.Plan:
    """The plan of `manifests` over `rt` (`made`: with an inventory listing every object they
    declare, as after the pass that made them)."""
    d = load(manifests)
    made_here = inv.Inventory.of([inv.Entry(kind, name, "") for kind, name in implied.keys(d)]) if made else None
    return planner.plan(d, observing.observe(rt), made_here or inv.Inventory(), planner.PlanOptions(owner=owner))


def names_running(rt: FakeRuntime) -> set[str]:
    return {c.name for c in rt.list_containers() if c.status == "running"}


def test_fresh_plan_converges_and_labels_everything(tmp_path: Path, rt: FakeRuntime) -> None:
    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("web", extra="networks: [shop]\nvolumes: ['data:/data']") + """
---
apiVersion: reconciler/v1
kind: Network
metadata: {name: shop}
spec: {}
---
apiVersion: reconciler/v1
kind: Volume
metadata: {name: data}
spec: {}
""")
    cs = executor.execute(fresh_plan(m, rt, owner="blue"), rt, options=exec_options())
    assert cs.ok, cs
    [web] = rt.list_containers({"reconciler.owner": "blue"})
    assert web.name == "web"
    assert web.status == "running"
    d = load(m)
    assert web.labels["reconciler.spec-hash"] == d.containers["web"].spec_hash
    assert web.labels["reconciler.image-digest"] == rt.resolve_digest(IMG)
    assert web.labels["reconciler.revision"] == d.revision
    assert [n.name for n in rt.list_networks({"reconciler.owner": "blue"})] == ["shop"]
    assert [v.name for v in rt.list_volumes({"reconciler.owner": "blue"})] == ["data"]


def test_on_start_runs_once_before_the_first_action_and_never_for_an_empty_plan(tmp_path: Path, rt: FakeRuntime) -> None:
    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("web") + container_doc("api"))
    seen: list[int] = []     # containers there when on_start ran: none yet, and it runs once
    opts = exec_options()
    opts.on_start = lambda: seen.append(len(rt.list_containers()))
    assert executor.execute(fresh_plan(m, rt), rt, options=opts).ok
    assert seen == [0]
    assert names_running(rt) == {"web", "api"}
    assert executor.execute(fresh_plan(m, rt, made=True), rt, options=opts).ok      # converged: nothing to do
    assert seen == [0]


def test_independent_actions_run_in_parallel_within_the_bound(tmp_path: Path) -> None:
    m = tmp_path / "m"
    write(m, "a.yaml", "".join(container_doc(f"c{i}") for i in range(6)))
    wide = FakeRuntime(op_delay=0.05)
    wide.publish(IMG)
    wide.pull_image(IMG)
    assert executor.execute(fresh_plan(m, wide), wide, options=exec_options(workers=4)).ok
    assert 1 < wide.max_in_flight <= 4

    narrow = FakeRuntime(op_delay=0.01)
    narrow.publish(IMG)
    narrow.pull_image(IMG)
    assert executor.execute(fresh_plan(m, narrow), narrow, options=exec_options(workers=1)).ok
    assert narrow.max_in_flight == 1


def test_pruned_containers_stop_at_once_while_replacements_keep_the_bound(tmp_path: Path, db: Database) -> None:
    """A pruned container's stop is a wait for its processes (up to its stop timeout): it takes
    no worker, so a pass that prunes many waits one stop, not one per worker's turn, as compose's
    do. A stop within a replacement still takes one: `--parallel 1` keeps one container down."""
    m = tmp_path / "m"
    slow = FakeRuntime(op_delay=0.05)
    slow.publish(IMG)
    slow.pull_image(IMG)

    def one_at_a_time(**opts: object) -> tuple[list[Kind], int]:
        slow.max_in_flight = 0
        result = passes.run_pass(load(m), slow, db, passes.PassOptions(**opts),  # type: ignore[arg-type]
                                 execute_options=exec_options(workers=1))
        assert result.converged
        return [a.kind for a in result.plan.actions], slow.max_in_flight

    write(m, "a.yaml", "".join(container_doc(f"c{i}") for i in range(6)))
    assert one_at_a_time()[1] == 1
    write(m, "a.yaml", "".join(container_doc(f"c{i}", extra="env: {V: '2'}") for i in range(6)))   # replace all
    kinds, most = one_at_a_time()
    assert (kinds.count(Kind.STOP), most) == (6, 1)
    (m / "a.yaml").unlink()                                  # prune all six
    kinds, most = one_at_a_time(allow_empty=True)
    assert (kinds.count(Kind.STOP), most) == (6, 6)          # the six stops at once
    assert slow.list_containers() == []


def test_dependents_start_after_their_dependency_is_healthy(tmp_path: Path, rt: FakeRuntime) -> None:
    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("db", extra="healthcheck: {test: [CMD, 'true']}")
          + container_doc("web", extra="dependsOn: [db]"))
    seen: list[tuple[str, str]] = []
    original = rt.inspect_container

    def spy(name: str):  # type: ignore[no-untyped-def]
        st = original(name)
        seen.append(("inspect", f"{st.name}:{st.health}"))
        return st

    rt.inspect_container = spy  # type: ignore[method-assign]
    cs = executor.execute(fresh_plan(m, rt), rt, options=exec_options())
    assert cs.ok
    calls = rt.calls
    assert calls.index(("start", "db")) < calls.index(("create", "web"))
    assert [s for s in seen if s[1].startswith("db:")][-1] == ("inspect", "db:healthy")


def test_a_failure_skips_dependents_and_spares_unrelated_work(tmp_path: Path, rt: FakeRuntime) -> None:
    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("broken", image="registry.local:5000/nope/missing:1")
          + container_doc("child", extra="dependsOn: [broken]")
          + container_doc("ok"))
    cs = executor.execute(fresh_plan(m, rt), rt, options=exec_options())
    assert not cs.ok
    outcomes = {c.resource: c.outcome for c in cs.changes}
    assert outcomes["image:registry.local:5000/nope/missing:1"] is changes.Outcome.FAILED
    assert outcomes["container:broken"] is changes.Outcome.SKIPPED
    assert outcomes["container:child"] is changes.Outcome.SKIPPED
    assert outcomes["container:ok"] is changes.Outcome.CREATED
    assert names_running(rt) == {"ok"}


def test_fail_action_touches_nothing_and_skips_dependents(tmp_path: Path, rt: FakeRuntime) -> None:
    rt.pull_image(IMG)
    from reconciler.runtime import base

    rt.create_container(base.ContainerConfig(name="web", image=IMG))   # foreign: no owner label
    rt.start_container("web")
    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("web") + container_doc("api", extra="dependsOn: [web]"))
    before = rt.list_containers()
    rt.calls.clear()
    cs = executor.execute(fresh_plan(m, rt), rt, options=exec_options())
    assert [(c.resource, c.outcome) for c in cs.changes] == [
        ("container:web", changes.Outcome.FAILED), ("container:api", changes.Outcome.SKIPPED)]
    assert "not owned" in cs.changes[0].detail or "foreign" in cs.changes[0].detail
    assert rt.calls == []
    assert rt.list_containers() == before


def test_remove_of_a_missing_container_counts_as_done(rt: FakeRuntime) -> None:
    p = actions.Plan(actions=(
        actions.Action(1, Kind.STOP, "container:gone", "not in desired state (prune)", target="gone"),
        actions.Action(2, Kind.REMOVE, "container:gone", "not in desired state (prune)", (1,), target="gone"),
        actions.Action(3, Kind.REMOVE_NETWORK, "network:gone", "not in desired state (prune)", (2,), target="gone"),
    ))
    cs = executor.execute(p, rt, options=exec_options())
    assert cs.ok
    assert [r.detail for r in cs.results] == ["already gone"] * 3
    assert cs.changes[0].outcome is changes.Outcome.DELETED


def test_health_timeout_on_update_rolls_back_to_previous_container(
    tmp_path: Path, rt: FakeRuntime, db: Database,
) -> None:
    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("web", extra="env: {V: '1'}\nhealthcheck: {test: [CMD, 'true']}"))
    assert apply(m, rt, db).converged
    old = rt.inspect_container("web")
    # the new version never becomes healthy
    write(m, "a.yaml", container_doc("web", extra="env: {V: '2'}\n"
                                     "healthcheck: {test: [CMD, sleep, '1'], interval: 1s}\nupdate: {healthTimeout: 5s}"))
    result = apply(m, rt, db)
    assert result.result == "failed"
    assert result.changeset is not None
    [change] = [c for c in result.changeset.changes if c.resource == "container:web"]
    assert change.outcome is changes.Outcome.ROLLED_BACK
    assert "not healthy within 5s" in change.detail
    now = rt.inspect_container("web")
    assert now.status == "running"
    assert now.id != old.id                                   # re-created ...
    assert now.labels == old.labels                           # ... exactly as before
    assert now.image_id == old.image_id
    assert rt.config_of("web").env == {"V": "1"}


def test_a_rollback_runs_the_image_the_container_ran_under_the_name_it_had(
    tmp_path: Path, rt: FakeRuntime, db: Database,
) -> None:
    """The tag moved to an image that never gets healthy: the container made again runs the old
    image (its id), and shows the reference it was made from (Docker's Config.Image), not the id."""
    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("web", extra="healthcheck: {test: [CMD, 'true']}"))
    assert apply(m, rt, db).converged
    old = rt.inspect_container("web")
    rt.publish(IMG, "sha256:" + "2" * 64)
    rt.pull_image(IMG)                                              # the tag moves on
    write(m, "a.yaml", container_doc("web", extra="healthcheck: {test: [CMD, sleep, '1'], interval: 1s}\n"
                                     "update: {healthTimeout: 5s}"))
    result = apply(m, rt, db)
    assert result.changeset is not None
    [change] = [c for c in result.changeset.changes if c.resource == "container:web"]
    assert change.outcome is changes.Outcome.ROLLED_BACK
    now = rt.inspect_container("web")
    assert now.id != old.id
    assert (now.image, now.image_id) == (IMG, old.image_id)
    assert rt.inspect_image(IMG).id != old.image_id                # the tag names the new image


@pytest.mark.parametrize(("healthcheck", "image_check"), [
    ("healthcheck: {test: [CMD, sleep, '1'], interval: 2m}", None),                 # the manifest's
    ("", {"Test": ["CMD", "sleep", "1"], "Interval": 120 * 10**9}),                  # its image's
    ("healthcheck: {timeout: 3s}", {"Test": ["CMD", "sleep", "1"], "Interval": 120 * 10**9}),  # merged
])
def test_a_start_whose_first_check_comes_after_the_health_timeout_fails_at_once(
    tmp_path: Path, rt: FakeRuntime, db: Database, healthcheck: str, image_check: dict[str, object] | None,
) -> None:
    """Interval 2m, no start interval, a 60 s wait: the engine says when it first probes
    (ContainerState.first_probe), and the start fails without waiting, naming what to change."""
    if image_check is not None:
        rt.publish(IMG, config={"Healthcheck": image_check})
    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("web", extra=healthcheck))
    clock = FakeClock()
    result = passes.run_pass(load(m), rt, db, passes.PassOptions(), now=1_800_000_000.0,
                             execute_options=exec_options(clock))
    assert clock.t == 1000.0                                    # no poll waited
    assert result.result == "failed"
    assert result.changeset is not None
    [change] = [c for c in result.changeset.changes if c.resource == "container:web"]
    assert change.detail == (
        "web cannot be healthy within update.healthTimeout (60s): its healthcheck first runs 120s after its start; "
        "probe sooner while it starts (healthcheck.startPeriod with a startInterval under 60s: a healthcheck "
        "without test keeps the image's), or give it a shorter healthcheck.interval, or a longer update.healthTimeout")


def test_a_start_interval_in_the_start_period_brings_the_first_check_within_the_wait(
    tmp_path: Path, rt: FakeRuntime, db: Database,
) -> None:
    """The image's check every 2m, and a healthcheck without test that adds a start period and
    start interval: the first check comes at the start interval, and the start waits for healthy."""
    rt.publish(IMG, config={"Healthcheck": {"Test": ["CMD", "true"], "Interval": 120 * 10**9}})
    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("web", extra="healthcheck: {startPeriod: 5m, startInterval: 1s}"))
    assert apply(m, rt, db).converged
    assert rt.inspect_container("web").health == "healthy"
    assert rt.inspect_container("web").first_probe == 1.0


def test_a_healthcheck_without_test_waits_as_for_its_images(tmp_path: Path, rt: FakeRuntime, db: Database) -> None:
    """The image's test with other timings: healthy if the image has a HEALTHCHECK, else no
    check at all (as Docker), and the start does not wait for one."""
    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("web", extra="healthcheck: {interval: 1s}"))
    [start] = [a for a in fresh_plan(m, rt).actions if a.kind is Kind.START]
    assert start.wait == actions.Wait(timeout=60.0, healthcheck=False, image_health=True)
    assert apply(m, rt, db).converged
    assert rt.inspect_container("web").health is None


def test_unhealthy_new_container_rolls_back_immediately(tmp_path: Path, rt: FakeRuntime, db: Database) -> None:
    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("web", extra="env: {V: '1'}"))
    assert apply(m, rt, db).converged
    write(m, "a.yaml", container_doc("web", extra="env: {V: '2'}\nhealthcheck: {test: [CMD, 'false']}"))
    clock = FakeClock()
    from reconciler.execution import passes

    result = passes.run_pass(load(m), rt, db, passes.PassOptions(), now=1_800_000_000.0,
                             execute_options=exec_options(clock))
    assert result.result == "failed"
    assert clock.t - 1000.0 < 60.0                            # did not wait out the 60 s timeout
    assert rt.config_of("web").env == {"V": "1"}


def test_failed_update_is_not_retried_until_backoff_or_new_revision(
    tmp_path: Path, rt: FakeRuntime, db: Database,
) -> None:
    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("web", extra="env: {V: '1'}"))
    assert apply(m, rt, db).converged
    write(m, "a.yaml", container_doc("web", extra="env: {V: '2'}\nhealthcheck: {test: [CMD, 'false']}"))
    assert apply(m, rt, db).result == "failed"
    rt.calls.clear()
    again = apply(m, rt, db, now=1_800_000_010.0)
    assert [a.kind for a in again.plan.actions] == [Kind.HOLD]
    assert again.result == "failed"
    assert rt.calls == []                                     # no recreate loop
    later = apply(m, rt, db, now=1_800_000_000.0 + inv.backoff_delay(1) + 1)
    assert Kind.CREATE in [a.kind for a in later.plan.actions]   # backoff expired: one more try
    write(m, "a.yaml", container_doc("web", extra="env: {V: '3'}"))
    fixed = apply(m, rt, db, now=1_800_000_100.0)
    assert fixed.converged
    assert rt.config_of("web").env == {"V": "3"}


def test_start_first_keeps_the_old_container_until_the_new_one_is_healthy(
    tmp_path: Path, rt: FakeRuntime, db: Database,
) -> None:
    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("web", extra="env: {V: '1'}"))
    assert apply(m, rt, db).converged
    old = rt.inspect_container("web")
    write(m, "a.yaml", container_doc("web", extra="env: {V: '2'}\nupdate: {order: start-first}\n"
                                     "healthcheck: {test: [CMD, 'true']}"))
    rt.calls.clear()
    result = apply(m, rt, db)
    assert result.converged, result.plan.render()
    ops = [c for c in rt.calls if c[0] in ("create", "start", "stop", "remove", "rename")]
    assert ops == [("create", "web.next"), ("start", "web.next"), ("stop", old.id),
                   ("remove", old.id), ("rename", "web.next")]
    assert [c.name for c in rt.list_containers()] == ["web"]
    assert rt.config_of("web").env == {"V": "2"}


def test_start_first_failure_removes_the_new_container_and_keeps_the_old(
    tmp_path: Path, rt: FakeRuntime, db: Database,
) -> None:
    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("web", extra="env: {V: '1'}"))
    assert apply(m, rt, db).converged
    old = rt.inspect_container("web")
    write(m, "a.yaml", container_doc("web", extra="env: {V: '2'}\nupdate: {order: start-first}\n"
                                     "healthcheck: {test: [CMD, 'false']}"))
    assert apply(m, rt, db).result == "failed"
    assert [(c.id, c.status) for c in rt.list_containers()] == [(old.id, "running")]


def test_one_canonical_log_line_per_pass(tmp_path: Path, rt: FakeRuntime, db: Database) -> None:
    import structlog
    from structlog.testing import capture_logs

    structlog.reset_defaults()      # CLI tests in this process configured a warning-level filter
    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("web") + container_doc("bad", image="registry.local:5000/nope/x:1"))
    with capture_logs() as logs:
        apply(m, rt, db)
    lines = [e for e in logs if e["event"] == "reconcile_pass"]
    assert len(lines) == 1
    line = lines[0]
    assert line["result"] == "failed"
    assert line["counts"] == {"created": 1, "failed": 1, "pulled": 1, "skipped": 1}
    assert line["failures"][0].startswith("image:registry.local:5000/nope/x:1")
    assert line["owner"] == "default"


def test_min_ready_waits_for_the_container_to_keep_running(tmp_path: Path, rt: FakeRuntime) -> None:
    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("steady", extra="update: {minReady: 5s}")
          + container_doc("crashes", extra="command: ['false']\nupdate: {minReady: 5s}")
          + container_doc("after", extra="dependsOn: [steady]"))
    clock = FakeClock()
    cs = executor.execute(fresh_plan(m, rt), rt, options=exec_options(clock))
    outcomes = {c.resource: c.outcome for c in cs.changes}
    assert outcomes["container:steady"] is changes.Outcome.CREATED
    assert outcomes["container:after"] is changes.Outcome.CREATED
    assert outcomes["container:crashes"] is changes.Outcome.FAILED
    assert "exited (code 1) before it was ready" in next(
        c.detail for c in cs.changes if c.resource == "container:crashes")
    assert clock.t >= 1005.0                                  # steady was watched for minReady


def test_a_failed_job_fails_its_start_and_skips_what_waits_for_it(tmp_path: Path, rt: FakeRuntime) -> None:
    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("migrate", extra="command: ['false']\njob: true")
          + container_doc("web", extra="dependsOn: [migrate]"))
    plan = fresh_plan(m, rt)
    start = next(a for a in plan.actions if a.kind is Kind.START and a.target == "migrate")
    assert start.wait == actions.Wait(timeout=60.0, healthcheck=False, completion=True)
    cs = executor.execute(plan, rt, options=exec_options(FakeClock()))
    outcomes = {c.resource: c.outcome for c in cs.changes}
    assert outcomes["container:migrate"] is changes.Outcome.FAILED
    assert "job migrate failed: it exited with code 1" in next(
        c.detail for c in cs.changes if c.resource == "container:migrate")
    assert outcomes["container:web"] is changes.Outcome.SKIPPED


def test_a_job_that_never_ends_times_out(tmp_path: Path, rt: FakeRuntime) -> None:
    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("migrate", extra="job: true\nupdate: {healthTimeout: 5s}"))
    clock = FakeClock()
    cs = executor.execute(fresh_plan(m, rt), rt, options=exec_options(clock))
    assert "migrate not complete within 5s" in cs.changes[-1].detail
    assert clock.t >= 1005.0


def test_create_failure_after_the_old_container_went_puts_it_back(
    tmp_path: Path, rt: FakeRuntime, db: Database,
) -> None:
    from reconciler.runtime import base
    from reconciler.runtime import errors as rterrors

    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("web", extra="env: {V: '1'}"))
    assert apply(m, rt, db).converged
    old = rt.inspect_container("web")
    real_create = rt.create_container

    def refuse_v2(config: base.ContainerConfig) -> str:   # an engine refusing the new config
        if config.env.get("V") == "2":
            raise rterrors.InvalidArgument("engine refuses this config")
        return real_create(config)

    rt.create_container = refuse_v2  # type: ignore[method-assign]
    write(m, "a.yaml", container_doc("web", extra="env: {V: '2'}"))
    result = apply(m, rt, db)
    assert result.changeset is not None
    [change] = [c for c in result.changeset.changes if c.resource == "container:web"]
    assert change.outcome is changes.Outcome.ROLLED_BACK
    now = rt.inspect_container("web")
    assert now.status == "running"
    assert now.labels == old.labels
    assert rt.config_of("web").env == {"V": "1"}


def test_stopping_starts_nothing_new_and_the_pass_ends_interrupted(tmp_path: Path, db: Database) -> None:
    from reconciler.execution import passes
    from reconciler.state import history

    rt = FakeRuntime(op_delay=0.05)
    rt.publish(IMG)
    rt.pull_image(IMG)
    m = tmp_path / "m"
    write(m, "a.yaml", "".join(container_doc(f"c{i}") for i in range(4)))
    rt.calls.clear()
    # SIGTERM arrives while the first create runs: with one worker nothing else may have begun
    result = passes.run_pass(load(m), rt, db, passes.PassOptions(), now=1_800_000_000.0,
                             execute_options=exec_options(workers=1, stop=lambda: bool(rt.list_containers())))
    assert rt.calls == [("create", "c0")]
    assert result.result == "interrupted"
    assert result.interrupted
    assert not result.converged
    assert result.changeset is not None
    assert {c.resource: c.outcome for c in result.changeset.changes} == \
        {f"container:c{i}": changes.Outcome.INTERRUPTED for i in range(4)}
    assert result.changeset.failed() == []                      # left for the next pass, not failures
    assert [p.result for p in history.HistoryStore(db, "default").list()] == ["interrupted"]
    again = apply(m, rt, db, now=1_800_000_010.0)               # no backoff: the next pass does it all
    assert again.converged
    assert names_running(rt) == {"c0", "c1", "c2", "c3"}


def test_stopping_cuts_a_health_gate_short_and_rolls_the_update_back(
    tmp_path: Path, rt: FakeRuntime, db: Database,
) -> None:
    from reconciler.execution import passes

    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("web", extra="env: {V: '1'}"))
    assert apply(m, rt, db).converged
    write(m, "a.yaml", container_doc("web", extra="env: {V: '2'}\nhealthcheck: {test: [CMD, sleep, '1']}"))
    rt.calls.clear()
    clock = FakeClock()
    result = passes.run_pass(load(m), rt, db, passes.PassOptions(), now=1_800_000_000.0,
                             execute_options=exec_options(clock, stop=lambda: ("start", "web") in rt.calls))
    assert clock.t - 1000.0 < 60.0                              # the 60 s health timeout not waited out
    assert result.result == "interrupted"
    assert result.changeset is not None
    [change] = result.changeset.changes
    assert change.outcome is changes.Outcome.INTERRUPTED
    assert "the reconciler is stopping; rolled back to the previous container" in change.detail
    assert rt.config_of("web").env == {"V": "1"}
    assert rt.inspect_container("web").status == "running"


@pytest.mark.parametrize(("published", "written"), [
    ("docker.io/busybox:1", "docker.io/busybox:1"),
    ("busybox:1", "docker.io/busybox:1"),                      # as Docker Hub and `docker pull` name it
    ("docker.io/library/busybox:1", "index.docker.io/busybox:1"),
])
def test_a_docker_hub_tag_however_written_is_pulled_once_and_the_next_pass_plans_nothing(
        tmp_path: Path, db: Database, published: str, written: str) -> None:
    """The observed images and the manifest's reference are normalised by one rule (imagenames):
    `docker.io/busybox:1` is the `docker.io/library/busybox:1` an engine records, so a converged
    host is in sync, not pulled again every pass."""
    rt = FakeRuntime()
    digest = rt.publish(published)
    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("web", image=written))
    first = apply(m, rt, db)
    assert first.converged, first.plan.render()
    assert [a.kind for a in first.plan.actions if a.kind == Kind.PULL_IMAGE] == [Kind.PULL_IMAGE]
    assert [i.repo_tags for i in rt.list_images()] == [("docker.io/library/busybox:1",)]
    second = apply(m, rt, db)
    assert second.plan.is_empty(), second.plan.render()
    assert [op for op, _ in rt.calls].count("pull") == 1
    assert rt.list_containers()[0].labels["reconciler.image-digest"] == digest


class _Unresolvable(FakeRuntime):
    """A registry whose digest lookups fail (an engine or a registry that does not answer them)
    while its pulls work."""

    def resolve_digest(self, ref: str) -> str:
        from reconciler.runtime import errors

        raise errors.ImageError(f"resolve {ref}: the engine does not answer digest lookups")


def test_a_pull_of_an_unresolved_tag_replaces_its_containers_in_the_same_pass(tmp_path: Path, db: Database) -> None:
    """`pull: always` whose registry digest cannot be resolved: the pull is the only way to know
    whether the tag moved, and a pass that pulled a moved tag replaces its containers then, not a
    pass later; one that pulled the same image keeps them (outcome kept)."""
    rt = _Unresolvable()
    first = rt.publish(IMG)
    m = tmp_path / "m"
    write(m, "a.yaml", "apiVersion: reconciler/v1\nkind: Image\nmetadata: {name: web}\n"
          f"spec: {{ref: '{IMG}', pull: always}}\n" + container_doc("web", image="web"))
    assert apply(m, rt, db).converged
    assert rt.inspect_container("web").labels["reconciler.image-digest"] == first

    same = apply(m, rt, db, digest_ttl=0)
    assert same.converged, same.changeset
    assert {c.resource: str(c.outcome) for c in same.changeset.changes} == {
        f"image:{IMG}": "pulled", "container:web": "kept"}
    assert rt.inspect_container("web").labels["reconciler.image-digest"] == first

    moved = rt.publish(IMG, "sha256:" + "7" * 64)
    result = apply(m, rt, db, digest_ttl=0)
    assert result.converged, result.changeset
    outcomes = {c.resource: str(c.outcome) for c in result.changeset.changes}
    assert outcomes == {f"image:{IMG}": "pulled", "container:web": "configured"}
    web = rt.inspect_container("web")
    assert web.labels["reconciler.image-digest"] == moved
    assert web.image_id == rt.inspect_image(IMG).id
