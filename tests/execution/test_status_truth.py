"""A pass is "converged" only when every desired container runs as its spec says (#13):
observed after the pass, never taken from the plan."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from reconciler import spec
from reconciler._sqlite import Database
from reconciler.errors import DiskFull
from reconciler.execution import passes
from reconciler.runtime import base
from reconciler.runtime import errors as rterrors
from reconciler.runtime.fake import FakeRuntime
from reconciler.runtime.native.backend import NativeRuntime
from reconciler.state import history, labels
from tests.execution.helpers import IMG, apply, container_doc, write
from tests.helpers.host import Host


def desired(tmp_path: Path, restart: str, extra: str = "") -> spec.DesiredState:
    write(tmp_path / "m", "c.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: app}}
        spec: {{image: registry.local/app:1, restart: "{restart}"{extra}}}
        """)
    return spec.load(tmp_path / "m")


def state(status: str, *, exit_code: int | None = None, health: str | None = None, restart_count: int = 0,
          manually_stopped: bool = False, started_at: str | None = "2026-12-01T00:00:00Z",
          paused: bool = False) -> base.ContainerState:
    return base.ContainerState(id="c1", name="app", image="registry.local/app:1", image_id="sha256:x",
                               labels={labels.NAME: "app", labels.OWNER: "default"},
                               status=base.ContainerStatus(status), created="", exit_code=exit_code,
                               health=health, manually_stopped=manually_stopped, started_at=started_at,
                               restart_count=restart_count, paused=paused)


@pytest.mark.parametrize(("restart", "observed", "reason"), [
    ("always", state("running"), None),
    ("always", state("running", paused=True), "paused"),                # frozen: it runs nothing
    ("always", state("exited", exit_code=1), "exited (exit code 1) but its restart policy is always"),
    ("always", state("restarting", exit_code=1), "restarting"),
    ("no", state("exited", exit_code=1), None),                       # ran and ended, as its policy allows
    ("no", state("exited", exit_code=1, started_at=None), "its command never ran"),   # a start cut short
    ("on-failure", state("exited", exit_code=0), None),
    ("on-failure", state("exited", exit_code=2), "exited (exit code 2) but its restart policy is on-failure"),
    ("always", state("exited", exit_code=0, manually_stopped=True), None),   # stopped by hand
    ("always", None, "not created"),
    # created and never started (a pass held its start back): no exit code to tell, never "None"
    ("always", state("created", started_at=None), "created but not started, and its restart policy is always"),
    ("always", state("dead"), "dead but its restart policy is always"),
])
def test_unready_says_which_desired_container_is_down_and_why(
        tmp_path: Path, restart: str, observed: base.ContainerState | None, reason: str | None) -> None:
    down = passes.unready(desired(tmp_path, restart), [observed] if observed else [])
    if reason is None:
        assert down == {}
    else:
        assert reason in down["app"]


def test_a_next_a_start_first_replacement_left_is_not_converged(tmp_path: Path) -> None:
    """`app.next`, labelled `app`, runs beside `app` (or alone): a replacement killed midway,
    reported until a pass puts it right; one a manifest named so (its label says) is not."""
    d = desired(tmp_path, "always")
    left = dataclasses.replace(state("running"), id="c2", name="app.next")
    assert passes.unready(d, [state("running"), left]) == {
        "app.next": "left by a start-first replacement of app that did not finish (its process killed?): "
                    "the next pass renames it to app if app is gone, else removes it"}
    assert set(passes.unready(d, [left])) == {"app", "app.next"}
    named = dataclasses.replace(left, labels={labels.NAME: "app.next", labels.OWNER: "default"})
    assert passes.unready(d, [state("running"), named]) == {}


def test_an_unhealthy_container_is_not_converged(tmp_path: Path) -> None:
    d = desired(tmp_path, "always", ", healthcheck: {test: [CMD, 'true']}")
    assert passes.unready(d, [state("running", health="unhealthy")]) == {"app": "running but unhealthy"}
    assert passes.unready(d, [state("running", health="starting")]) == {}


def test_unhealthy_by_its_images_healthcheck_is_not_converged_either(tmp_path: Path) -> None:
    """No healthcheck in the manifest: the engine runs the image's HEALTHCHECK, and the health it
    observes decides all the same."""
    d = desired(tmp_path, "always")
    assert passes.unready(d, [state("running", health="unhealthy")]) == {"app": "running but unhealthy"}
    assert passes.unready(d, [state("running", health="starting")]) == {}


@pytest.mark.parametrize(("restart", "observed", "reason"), [
    ("no", state("exited", exit_code=3), "job failed: it exited with code 3"),
    ("no", state("exited", exit_code=137, manually_stopped=True), "job failed: it exited with code 137"),
    ("on-failure:2", state("exited", exit_code=1, restart_count=2), "job failed: it exited with code 1"),
])
def test_a_job_left_exited_non_zero_is_not_converged(
        tmp_path: Path, restart: str, observed: base.ContainerState, reason: str) -> None:
    """A job that exited non-zero stays a failure in every later verdict, whatever its restart
    policy leaves stopped (or a stop by hand), until it is run again and exits 0."""
    d = desired(tmp_path, restart, ", job: true")
    assert passes.unready(d, [observed]) == {"app": reason}
    assert passes.unready(d, [dataclasses.replace(observed, exit_code=0)]) == {}


def test_a_container_its_policy_ran_again_during_the_pass_is_a_crash_loop_not_converged(tmp_path: Path) -> None:
    """Running when looked at, but restarted by its policy since the pass observed it (from 0
    for one the pass made): each restart was an exit, so it is down. A job's restarts are its
    own verdict's (its exit code), and a container replaced meanwhile (another id) counts from 0."""
    d = desired(tmp_path, "always")
    before, after = state("running", restart_count=4), state("running", restart_count=6)
    assert "restarted 2 times during the pass" in passes.restarted_meanwhile(d, [before], [after])["app"]
    assert passes.restarted_meanwhile(d, [before], [before]) == {}
    assert "restarted once" in passes.restarted_meanwhile(d, [], [state("running", restart_count=1)])["app"]
    assert "restarted 6 times" in passes.restarted_meanwhile(d, [dataclasses.replace(before, id="c0")], [after])["app"]
    assert passes.restarted_meanwhile(desired(tmp_path, "on-failure", ", job: true"), [before], [after]) == {}


def test_the_verdict_looks_at_the_container_the_planner_does_a_renamed_one_too(tmp_path: Path) -> None:
    """`docker rename app app-x` leaves app-x with the name label `app`: it is still the object
    `app` (the planner's rule, `observed.objects`), which the next pass names back. Where a
    second copy named `app` runs beside it (made by a version without the rule), that one is
    the object's, whatever order the engine lists them in."""
    renamed = dataclasses.replace(state("running"), id="c0", name="app-x")
    new = dataclasses.replace(state("exited", exit_code=137), id="c1")
    d = desired(tmp_path, "always")
    for listing in ([new, renamed], [renamed, new]):
        assert passes.unready(d, listing) == {"app": "exited (exit code 137) but its restart policy is always"}
    assert passes.unready(d, [renamed]) == {}
    assert passes.unready(d, [dataclasses.replace(renamed, status=base.ContainerStatus.EXITED, exit_code=1)]) == {
        "app": "exited (exit code 1) but its restart policy is always"}


class ListingCounted(FakeRuntime):
    """The fake engine, with the selectors of its container listings written down."""

    def __init__(self, state_path: Path) -> None:
        super().__init__(state_path)
        self.listed: list[dict[str, str] | None] = []

    def list_containers(self, selector: Mapping[str, str] | None = None) -> list[base.ContainerState]:
        self.listed.append(None if selector is None else dict(selector))
        return super().list_containers(selector)


def test_a_pass_that_did_nothing_reports_from_its_one_observation(tmp_path: Path) -> None:
    """A pass that ran actions lists the containers again to say which run (a container it just
    made is not "not created"); one that ran none reports from the listing it planned from (#21:
    at 500 containers each listing checks 500 processes), and says the same."""
    rt = ListingCounted(tmp_path / "fake.json")
    rt.publish("registry.local/app:1")
    d = desired(tmp_path, "always")
    db = Database(tmp_path / "state.db")
    try:
        first = passes.run_pass(d, rt, db, passes.PassOptions())
        assert (first.result, dict(first.unready)) == ("converged", {})
        assert rt.listed == [None, {labels.OWNER: "default"}]
        rt.listed.clear()
        again = passes.run_pass(d, rt, db, passes.PassOptions())
        assert (again.result, dict(again.unready), again.plan.is_empty()) == ("converged", {}, True)
        assert rt.listed == [None]
        rt.kill_container("app")                # exited, as its restart policy does not allow: a start
        rt.listed.clear()
        third = passes.run_pass(d, rt, db, passes.PassOptions())
        assert [str(a.kind) for a in third.plan.actions] == ["start"]
        assert rt.listed == [None, {labels.OWNER: "default"}]
    finally:
        db.close()


class LostAfterActions(FakeRuntime):
    """The fake engine, whose listing after the pass's actions (the verdict's, by owner) raises
    `error`: the engine went away, or something else broke, once the host was changed."""

    def __init__(self, state_path: Path, error: Exception) -> None:
        super().__init__(state_path)
        self.error = error

    def list_containers(self, selector: Mapping[str, str] | None = None) -> list[base.ContainerState]:
        if selector is not None:
            raise self.error
        return super().list_containers(selector)


def history_rows(db: Database) -> list[tuple[str, list[str], str]]:
    return [(p.result, [c["resource"] for c in p.changes], p.error) for p in history.HistoryStore(db, "default").list()]


def test_an_engine_lost_after_the_actions_fails_the_pass_in_its_one_history_row(tmp_path: Path) -> None:
    """What the pass did is reported and recorded (one row: the one `begin` opened, finished
    failed with the changes and the error), not raised away: before, the row stayed `running`
    (the next pass called it interrupted, its process dead) beside a second, empty, `failed` one."""
    rt = LostAfterActions(tmp_path / "fake.json", rterrors.Unavailable("cannot reach docker at /x.sock"))
    rt.publish("registry.local/app:1")
    db = Database(tmp_path / "state.db")
    try:
        result = passes.run_pass(desired(tmp_path, "always"), rt, db, passes.PassOptions())
        assert (result.result, result.converged) == ("failed", False)
        assert result.error == "cannot reach docker at /x.sock: what runs after the pass could not be observed"
        assert result.to_json()["counts"] == {"created": 1, "pulled": 1}
        assert result.to_json()["error"] == result.error
        assert history_rows(db) == [("failed", ["image:registry.local/app:1", "container:app"], result.error)]
    finally:
        db.close()


def test_a_pass_an_error_ends_after_it_began_is_finished_failed_in_the_row_it_opened(tmp_path: Path) -> None:
    """Whatever ends a pass once it began changing the host (a reconciler error, or a bug), its
    history row is finished failed with what it did and the error, not left `running`."""
    for error, text in ((DiskFull("no space left on /x", path=tmp_path), "no space left on /x"),
                        (RuntimeError("a bug"), "RuntimeError: a bug")):
        root = tmp_path / text.replace(" ", "-").replace("/", "")
        root.mkdir()
        rt = LostAfterActions(root / "fake.json", error)
        rt.publish("registry.local/app:1")
        db = Database(root / "state.db")
        try:
            with pytest.raises(type(error)):
                passes.run_pass(desired(root, "always"), rt, db, passes.PassOptions())
            [(result, changed, why)] = history_rows(db)
            assert (result, changed) == ("failed", ["image:registry.local/app:1", "container:app"])
            assert why.startswith(text), why
        finally:
            db.close()


@pytest.mark.root
@pytest.mark.registry
def test_once_exits_1_naming_a_container_that_keeps_crashing(
        host: Host, busybox_image: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "m", "c.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: crasher}}
        spec: {{image: "{busybox_image}", command: [sh, -c, "exit 1"], networks: [none], restart: always}}
        """)
    capfd.readouterr()
    assert host.cli("apply", str(tmp_path / "m")) == 1
    out = capfd.readouterr()
    assert "error: container crasher is not running as desired" in out.err
    assert out.out.strip().splitlines()[-1].startswith("degraded: ")
    assert host.cli("history", "-o", "json") == 0
    rows = json.loads(capfd.readouterr().out)
    assert rows[0]["result"] == "degraded"


@pytest.mark.root
@pytest.mark.registry
def test_once_leaves_no_restart_pending_that_no_process_will_make(
        host: Host, busybox_image: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A crasher under `restart: always` is in back-off when `--once` ends: its restart manager
    ends with it, so nothing restarts it (until the next engine start). ps, inspect and diff say
    so: exited, not "Restarting" and "in sync"."""
    _crasher_in_back_off(host, busybox_image, tmp_path).close()
    capfd.readouterr()
    assert host.cli("ps", "-a", "-o", "json") == 0
    [row] = json.loads(capfd.readouterr().out)
    assert (row["status"], row["status_text"].split(" (")[0]) == ("exited", "Exited")
    assert host.cli("inspect", "crasher") == 0
    state = json.loads(capfd.readouterr().out)[0]["State"]
    assert (state["Status"], state["Restarting"]) == ("exited", False)
    assert host.cli("diff", str(tmp_path / "m")) == 1
    out = capfd.readouterr().out
    assert "container:crasher, start" in out, out
    assert "is restarting" not in out


@pytest.mark.root
@pytest.mark.registry
def test_once_leaves_a_crash_loop_in_its_back_off_to_the_restart_manager(
        host: Host, busybox_image: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A crasher left in its back-off by an earlier process (its delay in the record): the next
    `--once` does not start it by hand, which forgot the back-off (the loop began again at
    100 ms, each `--once` a restart at full speed); it says it is restarting, as compose leaves a
    container in dockerd's restart back-off (`docker compose up -d` starts no restarting one), and
    its restart is the restart manager's, after twice the delay reached, counted from the exit."""
    rt = _crasher_in_back_off(host, busybox_image, tmp_path)
    try:
        before = rt.containers.get("crasher")
        assert before.restart_delay >= 1.6, before
        capfd.readouterr()
        assert host.cli("apply", str(tmp_path / "m"), "--settle", "0") == 1
        out = capfd.readouterr()
        assert "container:crasher is restarting" in out.out, out
        after = rt.containers.get("crasher")
        assert after.restart_delay >= before.restart_delay, (before, after)     # not forgotten
        assert after.restart_count - before.restart_count <= 1, (before, after)     # at most its policy's one
    finally:
        rt.close()


def _crasher_in_back_off(host: Host, busybox_image: str, tmp_path: Path) -> NativeRuntime:
    """A `restart: always` crasher applied with a 5 s settle (its back-off has grown to 3.2 s by
    then, so the pass ends while a restart waits), once it no longer runs; the engine, to close."""
    write(tmp_path / "m", "c.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: crasher}}
        spec: {{image: "{busybox_image}", command: [sh, -c, "exit 1"], networks: [none], restart: always}}
        """)
    assert host.cli("apply", str(tmp_path / "m"), "--settle", "5s") == 1
    rt = host.runtime()
    deadline = time.monotonic() + 10          # a run the session started just before it ended
    while str(rt.inspect_container("crasher").status) == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    return rt


def _pass_seconds(out: str) -> float:
    last = out.strip().splitlines()[-1]
    found = re.search(r"\((\d+\.\d+)s\)$", last)
    assert found, last
    return float(found.group(1))


@pytest.mark.root
@pytest.mark.registry
def test_settle_is_how_long_a_pass_that_started_containers_waits_before_it_reports(
        host: Host, busybox_image: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """`--settle` (default 1 s) is the wait after starting containers, so that one that exits at
    once is reported down; 0 reports as soon as they started, as `docker compose up -d` does."""
    def container(name: str) -> None:
        write(tmp_path / "m", f"{name}.yaml", f"""
            apiVersion: reconciler/v1
            kind: Container
            metadata: {{name: {name}}}
            spec: {{image: "{busybox_image}", command: [sleep, "600"], networks: [none]}}
            """)

    container("first")
    capfd.readouterr()
    assert host.cli("apply", str(tmp_path / "m"), "--settle", "4s") == 0
    assert _pass_seconds(capfd.readouterr().out) >= 4.0        # it waited the 4 s it was told
    container("second")
    assert host.cli("apply", str(tmp_path / "m"), "--settle", "0") == 0
    out = capfd.readouterr().out
    assert "1 created" in out, out
    assert _pass_seconds(out) < 4.0                             # no wait: one container made and started
    assert set(host.ids()) == {"first", "second"}
    capfd.readouterr()
    assert host.cli("apply", str(tmp_path / "m"), "--settle", "soon") == 2
    assert "argument --settle: 'soon' is not a valid duration" in capfd.readouterr().err


def _job_and_app(m: Path, job: str) -> None:
    write(m, "a.yaml", container_doc("migrate", extra=f"{job}\njob: true\nrestart: 'no'\nupdate: {{healthTimeout: 5s}}")
          + container_doc("app", extra="dependsOn: [migrate]"))


def test_a_failed_job_stays_failed_and_what_depends_on_it_is_never_started(tmp_path: Path) -> None:
    """compose's `service_completed_successfully`: the pass after the one in which the job
    failed does not take its stop for converged, and does not start what depends on it."""
    rt = FakeRuntime()
    rt.publish(IMG)
    m = tmp_path / "m"
    _job_and_app(m, "command: ['false']")
    db = Database(tmp_path / "state.db")
    try:
        first = apply(m, rt, db)
        assert first.result == "failed"
        for _ in range(2):
            again = apply(m, rt, db)
            assert (again.result, again.converged) == ("failed", False)
            assert again.unready["migrate"].startswith("job failed: it exited with code 1")
            assert again.unready["app"] == "not created"
            fail = next(a for a in again.plan.actions if a.resource == "container:migrate")
            assert (str(fail.kind), fail.cause.split(";")[0]) == ("fail", "job failed: exited (code 1)")
            assert "`reconcile start migrate`" in fail.cause
            assert {c.name for c in rt.list_containers()} == {"migrate"}
        assert apply(m, rt, db, dry_run=True).result == "drift"        # `diff`: not in sync
    finally:
        db.close()


def test_what_depends_on_a_job_still_running_waits_for_its_exit(tmp_path: Path) -> None:
    """A job that outlived its start's wait (healthTimeout) is still running at the next pass:
    what depends on it is held, not started beside it."""
    rt = FakeRuntime()
    rt.publish(IMG)
    m = tmp_path / "m"
    _job_and_app(m, "command: [sleep, '600']")             # the fake's processes never end
    db = Database(tmp_path / "state.db")
    try:
        assert apply(m, rt, db).result == "failed"         # not complete within 5s
        again = apply(m, rt, db)
        assert next((str(a.kind), a.resource) for a in again.plan.actions) == ("hold", "container:migrate")
        assert again.result == "failed"
        assert {c.name for c in rt.list_containers()} == {"migrate"}
    finally:
        db.close()


HEALTHCHECKED = "registry.local:5000/shop/checked:1"


def test_an_images_healthcheck_gates_the_start_and_the_verdict(tmp_path: Path) -> None:
    """No healthcheck in the manifest, one in the image (HEALTHCHECK): the start waits for it as
    for one of the manifest's (an unhealthy start fails), and the next pass's verdict sees it."""
    rt = FakeRuntime()
    rt.publish(HEALTHCHECKED, config={"Healthcheck": {"Test": ["CMD", "false"]}})
    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("app", image=HEALTHCHECKED, extra="restart: always"))
    db = Database(tmp_path / "state.db")
    try:
        first = apply(m, rt, db)
        assert first.result == "failed"
        assert first.changeset is not None
        assert "app is unhealthy" in first.changeset.changes[-1].detail
        again = apply(m, rt, db)
        assert (again.result, dict(again.unready)) == ("degraded", {"app": "running but unhealthy"})
    finally:
        db.close()


def test_what_depends_on_a_container_waits_for_its_images_healthcheck(tmp_path: Path) -> None:
    rt = FakeRuntime()
    rt.publish(HEALTHCHECKED, config={"Healthcheck": {"Test": ["CMD", "true"]}})
    rt.publish(IMG)
    m = tmp_path / "m"
    write(m, "a.yaml", container_doc("db", image=HEALTHCHECKED) + container_doc("web", extra="dependsOn: [db]"))
    order: list[str] = []
    inspect, create = rt.inspect_container, rt.create_container

    def inspected(name: str) -> base.ContainerState:
        st = inspect(name)
        order.append(f"{st.name}:{st.health}")
        return st

    def created(config: base.ContainerConfig) -> str:
        order.append(f"create {config.name}")
        return create(config)

    rt.inspect_container = inspected  # type: ignore[method-assign]
    rt.create_container = created  # type: ignore[method-assign]
    db = Database(tmp_path / "state.db")
    try:
        assert apply(m, rt, db).result == "converged"
    finally:
        db.close()
    assert order.index("db:healthy") < order.index("create web"), order
