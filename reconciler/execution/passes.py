"""One reconcile pass, composed (compose A1): observe → plan → execute → record.

    desired (already loaded and validated: an invalid revision never gets here)
      → resolve tag digests (one lookup per reference, TTL-cached in the state DB)
      → observe (one list call per kind)
      → plan (pure)
      → execute (unless dry run)
      → inventory, failure records, history, one canonical log line

History gets every pass that changed something, did not converge, or converged after one that
did not (so that its last row tells whether the owner is well). A pass that an error ends early
(errors.DiskFull, mostly) is recorded as failed with that error: in the row its `begin` opened
when it had begun changing the host, with what it did. An engine that stops answering after the
actions ran (a restarted dockerd, a cut tunnel) fails the pass with what it did and the error
(`PassResult.error`): what runs could not be judged.

The CLI (`reconcile apply`, `reconcile diff`) and the controller loop both call `run_pass`.

On a cluster (`runtime.base.ServiceEngine`: Swarm) the pass first asks the engine what of the
manifests it cannot run (host bind mounts, addresses of one host): a refusal is a SpecError
naming the object and field, raised before anything is observed or touched; every image
reference is resolved (services run images pinned by digest) and each rollout is waited for
up to `rollout_timeout`.

A pass that will change the host is put in the history before it executes (`running`) and
completed after; a pass stopped by SIGTERM (`ExecuteOptions.stop`) ends `interrupted`, and one
whose process died is marked `interrupted` by the next pass.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reconciler import diskfull, restarting
from reconciler._dataclass import dataclass, field
from reconciler._sqlite import Database
from reconciler.errors import DiskFull, ReconcilerError
from reconciler.execution import changes, executor, observing, translate
from reconciler.planning import actions, implied, planner
from reconciler.runtime import base
from reconciler.runtime import errors as rterrors
from reconciler.spec import models
from reconciler.spec.ids import ResourceId
from reconciler.state import history as hist
from reconciler.state import inventory as inv
from reconciler.state import labels as labelmod
from reconciler.state import observed as obs

if TYPE_CHECKING:
    from reconciler.spec.policy import Policy

__all__ = ["PassOptions", "PassResult", "Progress", "diff_pass", "failure_recorded", "plan_pass", "run_pass"]

Kind = actions.ActionKind


@dataclass(frozen=True)
class PassOptions:
    """Knobs of one pass."""

    owner: str = "default"          # reconciler.owner label value of this instance
    allow_empty: bool = False       # an empty revision may prune everything
    dry_run: bool = False           # plan only
    digest_ttl: float = 300.0       # seconds a resolved tag digest is trusted
    max_workers: int = 4            # parallel actions
    source: str = ""                # what was applied (path), for history
    cause: str = ""                 # why, when not the source itself ("rollback to <id>"), for history
    # seconds to let started containers show a crash before the check; `--once` waits, the agent
    # does not (its restart supervision and next pass see a crash loop)
    settle: float = 0.0
    # the containers the engine's start ran again just before this pass (their restart policy:
    # `Session.booted`): waited for as the pass's own starts are, a crash loop being one of them
    engine_started: tuple[str, ...] = ()
    # the agent's planner inputs (planner.PlanOptions says what they do): the revision its
    # previous pass applied, and the containers over its flap limit
    applied_revision: str = ""
    flapping: frozenset[str] = frozenset()
    rollout_timeout: float = 300.0  # seconds a cluster's rollout of one service may take (--timeout)
    # the registries that did not answer, kept across an agent's passes (observing.RegistryBackoff);
    # None: every pass asks them (`--once`)
    registry_backoff: observing.RegistryBackoff | None = None
    # the source's policy (spec/policy.py), for what a pass judges with the host's state: under
    # one that shares no tags (sharedTags), a build or pull of a local tag another owner runs or
    # moved is refused (observing.moves_refused); None: `host`
    policy: Policy | None = None
    # take over the desired objects that carry the owner's labels but are not in this state root's
    # inventory (`--adopt`; planner.PlanOptions.adopt), instead of refusing them
    adopt: bool = False


@dataclass(frozen=True)
class PassResult:
    """What a pass decided and did."""

    revision: str
    plan: actions.Plan
    changeset: changes.ChangeSet | None
    resolve_errors: Mapping[str, str] = field(default_factory=dict)
    duration: float = 0.0
    # desired containers that, observed after the pass, do not run as their spec says, and why
    unready: Mapping[str, str] = field(default_factory=dict)
    # why what runs after the pass could not be observed (the engine stopped answering): failed
    error: str = ""
    # the services a command line selected (spec/selection.py): the result is about them alone
    selection: models.Selection | None = None

    @property
    def converged(self) -> bool:
        if self.changeset is None:
            return self.plan.is_empty()
        return self.changeset.ok and not self.unready and not self.error

    @property
    def interrupted(self) -> bool:
        """Stopped early (SIGTERM): actions were left for the next pass."""
        return self.changeset is not None and self.changeset.interrupted

    @property
    def result(self) -> str:
        if self.changeset is None:
            return "in-sync" if self.plan.is_empty() else "drift"
        if self.error or any(r.status is changes.Status.FAILED for r in self.changeset.results):
            return "failed"
        if self.changeset.interrupted:
            return hist.INTERRUPTED
        if not self.changeset.ok:
            return "failed"
        return "degraded" if self.unready else "converged"

    def to_json(self) -> dict[str, Any]:
        """What `apply -o json` prints: the result, each resource's outcome with its actions
        (kind, cause, status, error, seconds, and a failure's hint when it has one), the containers not running as desired, and the
        plan's notes; a dry run's plan instead of outcomes."""
        out: dict[str, Any] = {
            "result": self.result, "revision": self.revision, "duration": round(self.duration, 3),
            "notes": list(self.plan.notes), "resolve_errors": dict(self.resolve_errors),
            "unready": dict(self.unready),
        }
        if self.error:
            out["error"] = self.error
        if self.selection is not None:
            out["selection"] = {"services": list(self.selection.services), "deps": self.selection.deps,
                                "units": list(self.selection.units), "containers": list(self.selection.containers)}
        if self.changeset is None:
            out["plan"] = self.plan.to_json()["actions"]
            return out
        out["counts"] = self.changeset.counts()
        out["changes"] = [
            {"resource": c.resource, "outcome": str(c.outcome), "detail": c.detail,
             "actions": [{"id": r.action.id, "kind": str(r.action.kind), "cause": r.action.cause,
                          "status": str(r.status), "error": r.error, "duration": round(r.duration, 3),
                          **({"hint": r.hint} if r.hint else {})}
                         for r in c.results]}
            for c in self.changeset.changes]
        return out


def unready(desired: models.DesiredState, states: Iterable[base.ContainerState], *,
            seen: Iterable[obs.ObservedContainer] | None = None) -> dict[str, str]:
    """The desired containers that do not run as their spec says, and why (pure): "converged"
    means each one runs (or exited as its restart policy allows, or was stopped by hand) and is
    neither paused nor unhealthy, whatever its healthcheck's source (the manifest's or the image's: the health
    observed decides), nor of a health status no probe observed lately (`health_stale`: a pass
    probes such ones first, `observing.probe_stale`, and judges what the probe saw); a job, that
    it exited with code 0 (or still runs); a service, that every wanted copy runs. A desired
    container's observed one is the planner's: the object its labels say, whatever the engine
    names it now (`planner.current` over `observed.objects`; `states`: one owner's containers,
    `seen`: those made of `states` already). Containers whose drift is only reported are left
    out (they are drift). A container a start-first replacement left under `<name>.next` (its
    process killed midway: `planner.leftovers`) is not converged, nor is it `<name>`'s
    container, whichever container of the name runs."""
    found = observing.by_name(states) if seen is None else {o.name: o for o in seen}
    observed = planner.current(found)
    out: dict[str, str] = {}
    for name, c in sorted(desired.containers.items()):
        if c.drift == "report":
            continue
        o = observed.get(name)
        why = "not created" if o is None else down(o, job=c.job, policy=c.restart.name, networks=c.networks,
                                                    aliases=c.aliases)
        if why:
            out[name] = why
    for tmp, name in planner.leftovers(found).items():     # (`states`: one owner's)
        out[tmp] = planner.leftover_why(name)
    return out


def restarted_meanwhile(desired: models.DesiredState, before: Iterable[base.ContainerState],
                        after: Iterable[base.ContainerState]) -> dict[str, str]:
    """The desired containers that their restart policy ran again while the pass went on (their
    restart count grew since the pass observed them; from 0 for one the pass made), and why that
    is not converged: each such restart was an exit, and one caught running between two is a
    crash loop, not a container that runs as its spec says (pure)."""
    counts = {s.id: s.restart_count for s in before}
    out: dict[str, str] = {}
    for s in after:
        c = desired.containers.get(s.name)
        if c is None or c.drift == "report" or c.job:
            continue
        more = s.restart_count - counts.get(s.id, 0)
        if more > 0:
            times = "once" if more == 1 else f"{more} times"
            out[s.name] = (f"exited and was restarted {times} during the pass (restart policy {c.restart.name}): "
                           f"a crash loop? `reconcile logs {s.name}`")
    return out


def down(o: obs.ObservedContainer, *, job: bool, policy: str, networks: Sequence[str] = (),
         aliases: Sequence[str] = ()) -> str | None:
    """Why the observed `o` is not a container that is a `job` (or not) with restart `policy`
    running as it should (None: it is): the rule of `unready`, and of `reconcile status` without
    an agent, which takes `job`, `policy`, `networks` and `aliases` from the inventory's spec of
    what it applied. A running container's health counts only as observed: a stale one
    (`health_stale`) is down, whatever status the record kept; so does its place on its
    `networks`: one off any of them (`observed.off_networks`: not attached, or without one of its
    `aliases` there) is down, its peers cannot reach it by name."""
    if o.replicas is not None and not o.job:         # (a Swarm job: the job rules below)
        running = o.replicas_running or 0
        if running < o.replicas or o.status != "running":     # (restarting: a rolling update unfinished)
            return f"{running} of {o.replicas} copies running" + (f"; task error: {o.error}" if o.error else "")
        return None
    if o.status == "running":
        if o.paused:
            return "paused"
        off = obs.off_networks(o, networks, aliases) if o.networks is not None and networks else ()
        if off:
            return "running but " + "; ".join(why for _, why, _ in off)
        if o.health_stale:
            return stale_health(o)
        return "running but unhealthy" if o.health == "unhealthy" else None
    if o.cut_short:
        return restarting.CUT_SHORT
    code = o.exit_code
    if job and o.status in ("exited", "dead"):
        # whatever its restart policy or a stop by hand: what depends on it waits for an exit 0
        return None if code == 0 else f"job failed: it exited with code {code}"
    if o.manually_stopped:
        return None
    if o.status == "exited" and (policy == "no" or (policy == "on-failure" and code == 0)):
        return None
    exited = "" if code is None else f"exit code {code}, "      # (no exit to tell: never a Python None in the words)
    if o.status == "restarting":
        return f"restarting ({exited}{o.restart_count} restarts): its restart policy keeps it down"
    if o.status == "created":
        return f"created but not started, and its restart policy is {policy}"
    return f"{o.status}{f' ({exited[:-2]})' if exited else ''} but its restart policy is {policy}"


def stale_health(o: obs.ObservedContainer) -> str:
    """Why a running container whose health no probe observed lately (`health_stale`) is not
    taken for healthy: what it was when last seen, and what observes it."""
    from reconciler import listing

    seen = f"last probed {listing.ago(o.health_probed_at)}" if o.health_probed_at else "never probed"
    then = f", {o.health} then" if o.health_probed_at and o.health else ""
    return f"health not observed: {seen}{then}; is the agent running? (`reconcile agent`)"


def plan_pass(
    desired: models.DesiredState,
    runtime: base.Runtime,
    db: Database,
    options: PassOptions,
    *,
    now: float | None = None,
) -> tuple[actions.Plan, Mapping[str, str]]:
    """Resolve, observe and plan (no change to the host); returns the plan and resolve errors."""
    plan, errors, _, _, _ = _prepare(desired, runtime, db, options, now=time.time() if now is None else now)
    return plan, errors


def diff_pass(
    desired: models.DesiredState,
    runtime: base.Runtime,
    db: Database,
    options: PassOptions,
    *,
    now: float | None = None,
) -> tuple[actions.Plan, Mapping[str, str], dict[str, str]]:
    """What `reconcile diff` reports, changing nothing the manifests own: the plan, the resolve
    errors, and the desired containers that do not run as desired now, judged as a pass that
    had nothing to do judges them (`_verdict`: `unready`, a health status no probe observed
    lately probed first). In sync means the same as converged: no action, and nothing down."""
    plan, errors, _, states, seen = _prepare(desired, runtime, db, options, now=time.time() if now is None else now)
    owned = _owned_now(runtime, options.owner, states)
    probed = observing.probe_stale(runtime, owned, desired.containers)     # (a failed probe: left stale)
    down = unready(desired, probed, seen=[seen.containers[s.name] for s in owned] if probed is owned else None)
    return plan, errors, down


def diff_verdict(plan: actions.Plan, down: Mapping[str, str]) -> tuple[dict[str, str], bool, bool]:
    """What a diff (`diff_pass`) says: the containers down that no action is for and that are
    not converging (a cause or a note says why of those), whether that is drift, and whether it
    is in sync (no drift and nothing converging): `reconcile diff` and the agent's plan alike."""
    acted = {a.resource for a in plan.actions} | set(plan.converging)
    unsaid = {n: why for n, why in sorted(down.items()) if str(ResourceId.container(n)) not in acted}
    drift = not plan.is_empty() or bool(unsaid)
    return unsaid, drift, not drift and not plan.converging


def _prepare(
    desired: models.DesiredState, runtime: base.Runtime, db: Database, options: PassOptions, *, now: float,
    stop: Callable[[], bool] | None = None,
) -> tuple[actions.Plan, Mapping[str, str], inv.Inventory, list[base.ContainerState], obs.ObservedState]:
    """The plan, the resolve errors, the inventory it was made from, the containers observed and
    what the planner saw of them."""
    cluster = isinstance(runtime, base.ServiceEngine)
    if isinstance(runtime, base.ServiceEngine):
        check_refusals(desired, runtime.refusals)
    store = inv.InventoryStore(db, options.owner)
    refs = implied.tracked_refs(desired, every=cluster,
                                made_here=runtime.made_here if isinstance(runtime, base.TagOrigins) else None)
    resolved, errors = observing.resolve_digests(runtime, refs, inventory=store, ttl=options.digest_ttl, now=now,
                                                 stop=stop, backoff=options.registry_backoff)
    states = runtime.list_containers(None)
    observed = observing.observe(runtime, resolved=resolved, containers=states)
    inventory = store.load()
    refused = observing.moves_refused(runtime, desired, states, store, options.policy)
    plan = planner.plan(
        desired, observed, inventory,
        planner.PlanOptions(owner=options.owner, allow_empty=options.allow_empty, now=now,
                            can_rename=isinstance(runtime, base.Renaming),
                            builds=_builds_due(desired, runtime), applied_revision=options.applied_revision,
                            flapping=options.flapping, cluster=cluster,
                            rollout_timeout=options.rollout_timeout, engine=runtime.name,
                            moves_refused=refused, adopt=options.adopt,
                            connects=runtime.connects if isinstance(runtime, base.Connecting) else frozenset(),
                            service_settings=_service_settings(desired, runtime)),
    )
    return plan, errors, inventory, states, observed


def _service_settings(desired: models.DesiredState, runtime: base.Runtime) -> dict[str, Mapping[str, Any]]:
    """On a cluster, each desired container's service settings as the engine makes them (the
    planner compares them with the services' own); {} elsewhere."""
    if not isinstance(runtime, base.ServiceEngine):
        return {}
    return {name: runtime.service_settings(translate.container_config(c, name=name, labels=c.labels))
            for name, c in desired.containers.items()}


def check_refusals(desired: models.DesiredState, refusals: Callable[[base.ContainerConfig], list[str]]) -> None:
    """Raise a SpecError naming every field of the manifests that the cluster cannot run, as
    `refusals` (the engine's, which knows its API version; `validate`'s, without an engine)
    judges each container's config."""
    from reconciler.spec import errors as spec_errors

    problems = []
    for name, c in sorted(desired.containers.items()):
        config = translate.container_config(c, name=name, labels={})
        for refusal in refusals(config):
            where, _, why = refusal.partition(": ")
            problems.append(spec_errors.Problem(file=c.origin.file, line=c.origin.line, column=c.origin.column,
                                                kind="Container", name=name, field=where, message=why))
    if problems:
        raise spec_errors.SpecError(problems, hint="the cluster cannot run these: change them for it "
                                    "(docs/swarm.md), or apply to a single-host runtime")


def _builds_due(
    desired: models.DesiredState, runtime: base.Runtime,
) -> dict[str, tuple[str | None, tuple[str, ...]]] | None:
    """For each Image with build:, why it must be built now (None: up to date) and the push
    targets that lack its current build, as the runtime judges them (it hashes the context);
    None when the runtime cannot build."""
    if not isinstance(runtime, base.ImageBuilding):
        return None
    out: dict[str, tuple[str | None, tuple[str, ...]]] = {}
    for img in desired.images.values():
        if img.build is not None and img.ref:
            b = img.build
            out[img.ref] = runtime.build_due(img.ref, b.context, b.file, b.args, b.target, img.push)
    return out


def run_pass(
    desired: models.DesiredState,
    runtime: base.Runtime,
    db: Database,
    options: PassOptions,
    *,
    now: float | None = None,
    execute_options: executor.ExecuteOptions | None = None,
) -> PassResult:
    """One full pass; the host is touched only by `execute` (never on dry run).

    An error that ends the pass early (a full disk, an engine that does not answer) is raised
    after the pass is recorded in history as failed, with the error; if even that cannot be
    written (the disk is still full), the error carries a note saying so."""
    started_at = time.time() if now is None else now
    progress = Progress()
    with failure_recorded(desired, db, options, started_at=started_at, progress=progress):
        return _run_pass(desired, runtime, db, options, started_at=started_at, now=now,
                         execute_options=execute_options, progress=progress)


@dataclass
class Progress:
    """How far a pass got, for the record of one an error ends: the history row its `begin`
    opened (None: it had not begun changing the host) and what its actions did."""

    pass_id: int | None = None
    changeset: changes.ChangeSet | None = None


@contextlib.contextmanager
def failure_recorded(desired: models.DesiredState, db: Database, options: PassOptions, *,
                     started_at: float, progress: Progress | None = None) -> Iterator[None]:
    """A pass that an error ends inside the block is recorded in history as failed, with the
    error, in one row: the one its `begin` opened (`progress`), with what it did, or a new one;
    then the error is raised (a full disk that came through as OSError or sqlite3 error as
    errors.DiskFull), with a note when even the history could not be written. Anything else (a
    bug) passes untouched, but for the row a begun pass opened, finished failed with it (not
    left `running`, which the next pass would take for a process that died). run_pass uses it;
    so does a caller whose pass can fail before run_pass (`--once`: the engine did not open)."""
    try:
        yield
    except Exception as exc:
        error = exc if isinstance(exc, ReconcilerError) else \
            diskfull.translate(exc, "running the pass", db.path.parent)      # the state root
        if error is None:
            if progress is not None and progress.pass_id is not None:
                _record_failure(desired, db, options, f"{type(exc).__name__}: {exc}", started_at=started_at,
                                progress=progress)
            raise
        not_written = _record_failure(desired, db, options, error.message, started_at=started_at, progress=progress)
        if not_written:
            error.add_note(f"this failed pass is not in `reconcile history`: {not_written}")
        if error is exc:
            raise
        raise error from exc


def _record_failure(desired: models.DesiredState, db: Database, options: PassOptions, error: str, *,
                    started_at: float, progress: Progress | None) -> str:
    """History gets the failed pass (in the row its `begin` opened, with what it did); why it
    could not be written ("" when it was)."""
    if options.dry_run:
        return ""
    store = hist.HistoryStore(db, options.owner)
    cs = progress.changeset if progress is not None else None
    counts, docs = (cs.counts(), [c.to_json() for c in cs.changes]) if cs is not None else ({}, [])
    try:
        if progress is not None and progress.pass_id is not None:
            store.finish(progress.pass_id, finished_at=time.time(), result="failed", counts=counts, changes=docs,
                         error=error)
        else:
            store.record(revision=desired.revision, source=options.source, started_at=started_at,
                         finished_at=time.time(), result="failed", counts=counts, changes=docs, cause=options.cause,
                         error=error, selection=desired.selection)
    except ReconcilerError as again:
        return "there is no room to write it either" if isinstance(again, DiskFull) else \
            f"writing it failed too: {again.message}"
    return ""


def _run_pass(
    desired: models.DesiredState,
    runtime: base.Runtime,
    db: Database,
    options: PassOptions,
    *,
    started_at: float,
    now: float | None,
    execute_options: executor.ExecuteOptions | None,
    progress: Progress,
) -> PassResult:
    from reconciler import logs

    log = logs.get_logger("reconciler.pass").bind(owner=options.owner, revision=desired.revision[:12])
    began = time.monotonic()
    eo = execute_options or executor.ExecuteOptions(max_workers=options.max_workers)
    plan, errors, inventory, observed, seen = _prepare(desired, runtime, db, options, now=started_at, stop=eo.stop)
    # the resolve errors go out with the result: each caller says them once, as its own (the
    # CLI's `warning:` lines, the agent's `tags_unresolved` when they change)
    if options.dry_run:
        result = PassResult(desired.revision, plan, None, errors, time.monotonic() - began,
                            selection=desired.selection)
        log.info("reconcile_pass", dry_run=True, result=result.result, actions=len(plan.actions),
                 duration=round(result.duration, 3))
        return result
    history = hist.HistoryStore(db, options.owner)
    if hist.close_unfinished(db):
        log.warning("unfinished_passes_closed", note="a pass whose process died is recorded as interrupted")
    if not plan.is_empty():
        progress.pass_id = history.begin(revision=desired.revision, source=options.source, started_at=started_at,
                                         cause=options.cause, selection=desired.selection)
        inv.InventoryStore(db, options.owner).claim(_claims(desired, plan, inventory))
    cs = progress.changeset = executor.execute(plan, runtime, options=eo)
    record(desired, cs, db, inventory, options, now=time.time() if now is None else now)
    down, lost = _verdict(desired, runtime, options, cs, observed, seen)
    result = PassResult(desired.revision, plan, cs, errors, time.monotonic() - began, down, error=lost,
                        selection=desired.selection)
    finished, counts, docs = time.time(), cs.counts(), [c.to_json() for c in cs.changes]
    if progress.pass_id is not None:
        history.finish(progress.pass_id, finished_at=finished, result=result.result, counts=counts, changes=docs,
                       error=lost)
    elif not cs.ok or down or lost or history.last_result() not in (None, "converged"):
        history.record(revision=desired.revision, source=options.source, started_at=started_at,
                       finished_at=finished, result=result.result, counts=counts, changes=docs,
                       cause=options.cause, error=lost, selection=desired.selection)
    failed = [f"{c.resource}: {c.detail}" for c in cs.failed()]
    failed += [f"{ResourceId.container(n)}: {why}" for n, why in down.items()] + ([lost] if lost else [])
    extra = {}
    if cs.interrupted:
        extra["left_for_next_pass"] = [c.resource for c in cs.changes if c.outcome is changes.Outcome.INTERRUPTED]
    log.info("reconcile_pass", result=result.result, actions=len(plan.actions),
             duration=round(result.duration, 3), failures=failed, counts=counts, **extra)
    return result


def _verdict(
    desired: models.DesiredState, runtime: base.Runtime, options: PassOptions, cs: changes.ChangeSet,
    observed: list[base.ContainerState], seen: obs.ObservedState,
) -> tuple[dict[str, str], str]:
    """The desired containers that do not run as desired after the pass (`unready`, and those
    restarted meanwhile), observed after the settle; and, when the engine did not answer for
    that (it went away during the pass: a restarted dockerd, a cut tunnel), why ("": it did)."""
    waited = options.settle > 0 and not cs.interrupted and (options.engine_started or any(
        r.action.kind in (Kind.START, Kind.CREATE) and r.status is not changes.Status.KEPT for r in cs.results))
    if waited:
        time.sleep(options.settle)         # a container that crashes at once shows it by now
    as_observed = not cs.results and not waited     # nothing done, nothing could change meanwhile
    try:
        owned = listed = _owned_now(runtime, options.owner, observed if as_observed else None)
        if not cs.interrupted:              # stale health statuses observed now, not judged as recorded
            owned = observing.probe_stale(runtime, owned, desired.containers)
    except rterrors.RuntimeBackendError as exc:
        return {}, f"{exc.message}: what runs after the pass could not be observed"
    # as the planner saw them when nothing was done or probed since (a no-op builds them once, #21)
    down = unready(desired, owned, seen=[seen.containers[s.name] for s in owned]
                   if owned is listed and as_observed else None)
    for name, why in restarted_meanwhile(desired, observed, owned).items():
        down.setdefault(name, why)
    return down, ""


def _claims(desired: models.DesiredState, plan: actions.Plan, current: inv.Inventory) -> list[inv.Entry]:
    """The objects `plan` makes that the inventory it was made from does not list, as entries to
    claim before the pass makes them (`InventoryStore.claim`)."""
    makes = {a.kind_name for a in plan.actions if a.kind in (Kind.CREATE, Kind.UPDATE, Kind.ENSURE_NETWORK,
                                                               Kind.ENSURE_VOLUME)}
    volumes = implied.volumes(desired)
    out = []
    for kind, name in sorted(makes - set(current.entries)):
        if kind == "Container" and name in desired.containers:
            c = desired.containers[name]
            out.append(inv.Entry(kind=kind, name=name, spec_hash=c.spec_hash, revision=desired.revision,
                                 spec=inv.spec_document(c)))
        elif kind == "Network" and name in desired.networks:
            out.append(_network_entry(desired, name))
        elif kind == "Volume" and name in volumes:
            out.append(_volume_entry(desired, name, volumes[name]))
    return out


def _network_entry(desired: models.DesiredState, name: str) -> inv.Entry:
    n = desired.networks[name]
    return inv.Entry(kind="Network", name=name, spec_hash=n.spec_hash, revision=desired.revision,
                     spec=inv.spec_document(n))


def _volume_entry(desired: models.DesiredState, name: str, v: models.Volume | None) -> inv.Entry:
    """A volume's entry (`v` None: one mounted and not declared, kept when pruned)."""
    return inv.Entry(kind="Volume", name=name, spec_hash=v.spec_hash if v else "", revision=desired.revision,
                     spec=inv.spec_document(v) if v else {}, deletion_policy=v.deletion_policy if v else "Retain")


def _owned_now(runtime: base.Runtime, owner: str, observed: list[base.ContainerState] | None) -> list[base.ContainerState]:
    """The owner's containers as they are now: as this pass observed them when it ran no action
    (nothing it did changed them: a no-op lists the containers once, #21), else listed again."""
    selector = {labelmod.OWNER: owner}
    if observed is None:
        return runtime.list_containers(selector)
    return [s for s in observed if base.labels_match(s.labels, selector)]


def record(
    desired: models.DesiredState,
    cs: changes.ChangeSet,
    db: Database,
    current: inv.Inventory,
    options: PassOptions,
    *,
    now: float,
) -> None:
    """Feed the ChangeSet back into the inventory (Flux): successes tracked, failures counted
    (an object the pass made before it failed tracked too: it is there, and the owner's to prune),
    deletes that failed kept so the next pass retries them. `current` is the inventory the
    plan was made from. Objects that needed no action and are tracked already are not rewritten,
    so a pass with nothing to do writes nothing."""
    store = inv.InventoryStore(db, options.owner)
    by_resource: dict[str, list[changes.ActionResult]] = {}
    for r in cs.results:
        by_resource.setdefault(r.action.resource, []).append(r)
    puts: list[inv.Entry] = []
    cleared: list[tuple[str, str]] = []
    removed: list[tuple[str, str]] = []

    def settle(kind: str, name: str, spec_hash: str, make: Callable[[], inv.Entry]) -> None:
        rs = by_resource.get(str(ResourceId(kind, name)), [])
        ran_and_failed = [r for r in rs if r.status is changes.Status.FAILED and r.action.kind is not Kind.FAIL]
        if ran_and_failed:
            store.record_failure(kind, name, revision=desired.revision, spec_hash=spec_hash,
                                 error=ran_and_failed[0].error, now=now)
            if (kind, name) not in current.entries and any(r.ok and r.action.kind in (Kind.CREATE, Kind.UPDATE)
                                                           for r in rs):
                puts.append(make())         # made, then it failed (never healthy): the owner's, so
            return                          # that a prune removes it with its manifest
        if any(not r.ok for r in rs):
            return                          # skipped, held or refused: nothing changed
        old = current.entries.get((kind, name))
        if not rs and old is not None and old.spec_hash == spec_hash and (kind != "Container" or old.config is not None):
            return                          # untouched and tracked already (a container claimed by a pass
            #                                 that died after making it: its entry written in full now)
        puts.append(make())
        if (kind, name) in current.failures:
            cleared.append((kind, name))

    for name, c in desired.containers.items():
        def container_entry(name: str = name, c: models.Container = c) -> inv.Entry:
            rs = by_resource.get(str(ResourceId.container(name)), [])
            created = next((r for r in rs if r.action.kind in (Kind.CREATE, Kind.UPDATE)
                            and r.status is changes.Status.DONE), None) or next(
                (r for r in rs if r.action.kind is Kind.RENAME and r.config is not None      # a leftover adopted
                 and r.status is changes.Status.DONE), None)
            old = current.entries.get(("Container", name))
            if created is not None:
                config, digest = created.config, created.image_digest
                if config is not None and created.action.target != name:   # start-first: renamed
                    config = {**config, "name": name}
            else:
                config = old.config if old else None
                digest = old.image_digest if old else ""
                if not config:                  # none kept, or its env values are not to be had
                    labels = implied.labels(owner=options.owner, revision=desired.revision, kind="Container",
                                            name=name, obj=c, image_digest=digest)
                    config = base.config_to_json(translate.container_config(c, name=name, labels=labels))
            return inv.Entry(
                kind="Container", name=name, spec_hash=c.spec_hash, image_digest=digest,
                revision=desired.revision if created or old is None else old.revision,
                spec=inv.spec_document(c), config=config)

        settle("Container", name, c.spec_hash, container_entry)
    for name, n in desired.networks.items():
        settle("Network", name, n.spec_hash, functools.partial(_network_entry, desired, name))
    for name, v in implied.volumes(desired).items():
        settle("Volume", name, v.spec_hash if v else "", functools.partial(_volume_entry, desired, name, v))
    # prunes: a successful delete or forget drops the entry; a failed one stays (retried)
    desired_keys = implied.keys(desired)
    for r in cs.results:
        key = r.action.kind_name
        if key in desired_keys or key not in current.entries or key in removed:
            continue
        rs = by_resource.get(r.action.resource, [])
        if rs and all(x.ok for x in rs):
            removed.append(key)
    store.update(put=puts, remove=removed, clear_failures=cleared)
    _record_tags(desired, cs, store, now=now)


def _record_tags(desired: models.DesiredState, cs: changes.ChangeSet, store: inv.InventoryStore, *,
                 now: float) -> None:
    """The local tags the pass's builds and pulls moved, as this owner's (what the policy rule
    sharedTags weighs another owner's build or pull of them against); its records of tags the
    revision no longer names are forgotten (not by a pass over a selection of its services,
    which does not see what the rest of it names)."""
    moved = [(tag, "build" if r.action.kind is Kind.BUILD_IMAGE else "pull") for r in cs.results
             if r.action.kind in (Kind.BUILD_IMAGE, Kind.PULL_IMAGE) and r.status is changes.Status.DONE
             and (tag := obs.tag_of(r.action.image)) is not None]
    named = {c.image for c in desired.containers.values()} | {i.ref for i in desired.images.values() if i.ref}
    keep = {t for ref in named if (t := obs.tag_of(ref)) is not None}
    store.tags_moved(moved, keep=keep, forget=desired.selection is None, now=now)
