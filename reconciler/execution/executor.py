"""execute(plan, runtime) -> ChangeSet: performs a Plan, makes no decisions of its own.

- Actions run as soon as every action they depend on is done, on a bounded thread pool, so
  independent work (pulls, unrelated containers) runs in parallel.
- A failure is isolated: the actions that depend on it (directly or not) are skipped, the
  others go on. A `fail` action (foreign name, impossible request) fails without a runtime
  call; a `hold` action is reported held and its dependents skipped.
- A start with a `wait` waits until the container is healthy (healthcheck) or has run for
  `min_ready`, within the timeout; dependents therefore start after their dependencies are
  healthy. A healthcheck whose first probe the engine runs after the timeout
  (`ContainerState.first_probe`) fails the wait at once, saying what to change.
- A create or start that fails inside a replacement carrying `rollback` data puts the
  previous container back (its config from the inventory, its image by id), or, for a
  start-first update, removes the new one; the action is still reported failed.
- NotFound on a remove (or a stop) means the object is gone already: done.
- On a cluster (`runtime.base.ServiceEngine`), an `update` changes a service in place and a
  wait with `rollout` follows the engine's rollout after a create, start or update: the
  engine rolls a failed update back itself, and the action is reported failed (rolled back)
  with the engine's reason.

Stopping (`ExecuteOptions.stop` turns true: the reconciler got SIGTERM or SIGINT) ends the
execution at the next safe point, and every action it leaves is reported `interrupted`:
- no action starts any more, except the next step of a replacement already begun, which
  completes as a whole (a service is not left without its container);
- an action in flight finishes: a stop waits out its container's stop timeout, a create or
  start completes; a pull stops at its next chunk (the runtime removes the partial download);
- a health gate is not waited for: a container not yet healthy is rolled back as if the gate had
  failed (if the plan says how), so an update is never left unverified; the next pass retries it.
- A full file system fails the action like any error, marked `disk_full` (an ENOSPC that came
  through untranslated is translated here), so that the caller can say so and exit 3.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from reconciler import diskfull
from reconciler._dataclass import replace
from reconciler.errors import DiskFull, ReconcilerError
from reconciler.execution import changes, translate
from reconciler.planning import actions
from reconciler.runtime import base
from reconciler.runtime import errors as rterrors
from reconciler.spec import models
from reconciler.state import labels as labelmod

if TYPE_CHECKING:
    import concurrent.futures as cf

__all__ = ["ExecuteOptions", "execute"]

Kind = actions.ActionKind
_STOP_POLL = 0.5        # seconds between looks at `stop` while actions run (to say what it waits for)
# A pruned container's stop is a signal and a wait for its processes to end (up to its stop
# timeout): it takes none of the `max_workers`, and up to this many run at once, compose's default
# parallel limit. Fifty containers whose PID 1 ignores SIGTERM go in one stop timeout, not in
# thirteen. A stop within a replacement (an update) still takes a worker: `--parallel 1` keeps
# one container down at a time.
STOP_SLOTS = 64


class ExecuteOptions:
    """Executor knobs; clock and sleep are injectable so tests need no real waiting."""

    def __init__(
        self,
        *,
        max_workers: int = 4,
        poll_interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        stop: Callable[[], bool] | None = None,   # the agent is stopping: start no new work
        on_start: Callable[[], None] | None = None,
        max_stops: int = STOP_SLOTS,
    ) -> None:
        self.max_workers = max_workers
        self.max_stops = max_stops
        # called once before the first action of a plan that has any: a lazy session starts its
        # supervision loops then (execution.backends), so a pass with nothing to do runs none
        self.on_start = on_start
        self.poll_interval = poll_interval
        self.clock = clock
        self.sleep = sleep
        self.stop = stop


class _ActionFailed(Exception):
    def __init__(self, message: str, *, rolled_back: bool = False, interrupted: bool = False,
                 cause: ReconcilerError | None = None) -> None:
        super().__init__(message)
        self.rolled_back = rolled_back
        self.interrupted = interrupted    # cut short because the reconciler is stopping
        self.cause = cause                # the runtime's error that failed the step, if one did


def _stopping(opts: ExecuteOptions) -> bool:
    return opts.stop is not None and opts.stop()


def execute(
    plan: actions.Plan,
    runtime: base.Runtime,
    *,
    options: ExecuteOptions | None = None,
    on_result: Callable[[changes.ActionResult], None] | None = None,
) -> changes.ChangeSet:
    """Run every action of `plan` on `runtime`; the ChangeSet says what happened to each."""
    if not plan.actions:
        return changes.ChangeSet.of([])     # nothing to do: no pool, no concurrent.futures (#21)
    import concurrent.futures as cf

    opts = options or ExecuteOptions()
    if opts.on_start is not None:
        opts.on_start()
    by_id = plan.by_id()
    results: dict[int, changes.ActionResult] = {}
    running: dict[cf.Future[changes.ActionResult], int] = {}
    groups: set[str] = set()                 # replacement groups that have started
    workers = max(1, opts.max_workers)
    stops = max(1, opts.max_stops)
    waiting: set[int] = set()                # the pruned containers' stops that run (no worker)
    kept: set[str] = set()                   # replacement groups not needed (_image_unchanged)

    def finish(r: changes.ActionResult) -> None:
        results[r.action.id] = r
        if on_result is not None:
            on_result(r)

    def schedule(pool: cf.ThreadPoolExecutor) -> None:
        progress = True
        while progress:
            progress = False
            for a in plan.actions:
                if a.id in results or a.id in running.values():
                    continue
                deps = [results.get(d) for d in a.depends_on if d in by_id]
                if any(d is None for d in deps):
                    continue
                bad = [d for d in deps if d is not None and not d.ok]
                if bad:
                    cut = bad[0].status is changes.Status.INTERRUPTED
                    finish(changes.ActionResult(a, changes.Status.INTERRUPTED if cut else changes.Status.SKIPPED,
                                                error=f"dependency #{bad[0].action.id} {bad[0].status}"))
                    progress = True
                elif a.kind is Kind.HOLD:
                    finish(changes.ActionResult(a, changes.Status.HELD, error=a.cause))
                    progress = True
                elif a.kind is Kind.FAIL:
                    finish(changes.ActionResult(a, changes.Status.FAILED, error=a.cause))
                    progress = True
                elif a.keep_if_image and (a.group in kept or (
                        a.group not in groups and _image_unchanged(runtime, *a.keep_if_image))):
                    kept.add(a.group)
                    finish(changes.ActionResult(a, changes.Status.KEPT,
                                                detail="the image built or pulled is the one it runs: not replaced"))
                    progress = True
                elif (not a.group or a.group not in groups) and _stopping(opts):
                    # stopping: what runs finishes (a replacement as a whole), nothing new starts
                    finish(changes.ActionResult(a, changes.Status.INTERRUPTED, error="not started: stopping"))
                    progress = True
                elif (len(waiting) >= stops) if _waits(a) else (len(running) - len(waiting) >= workers):
                    # submitted only when a worker is free: nothing waits in the pool's queue,
                    # where a stop could not hold it back
                    continue
                else:
                    if a.group:
                        groups.add(a.group)
                    if _waits(a):
                        waiting.add(a.id)
                    running[pool.submit(_run, a, runtime, opts)] = a.id

    told = False
    # work the engine can leave to the pass's end (the native engine: peers' hosts files) ends
    # after the pool's last action
    batch = runtime.batch() if isinstance(runtime, base.Batching) else contextlib.nullcontext()
    with batch, cf.ThreadPoolExecutor(max_workers=workers + stops, thread_name_prefix="reconcile") as pool:
        schedule(pool)
        while running:
            done, _ = cf.wait(running, timeout=None if opts.stop is None else _STOP_POLL,
                              return_when=cf.FIRST_COMPLETED)
            if not told and _stopping(opts):
                told = True
                _log_stopping([by_id[i] for i in running.values()])
            for fut in done:
                waiting.discard(running.pop(fut))
                finish(fut.result())
            schedule(pool)
    return changes.ChangeSet.of(list(results.values()))


def _image_unchanged(runtime: base.Runtime, ref: str, image_id: str) -> bool:
    """Whether `ref` names image `image_id` now (its build in this pass, done before the
    replacement's first step, made the same image)."""
    try:
        return runtime.inspect_image(ref).id == image_id
    except ReconcilerError:
        return False


def _waits(a: actions.Action) -> bool:
    """A pruned container's stop: no replacement waits on it, so it takes no worker (STOP_SLOTS)."""
    return a.kind is Kind.STOP and not a.group


def _log_stopping(in_flight: list[actions.Action]) -> None:
    """Say what the stop waits for (and how long a stop may take)."""
    from reconciler import logs

    waits = [f"{a.kind} {a.resource}" for a in sorted(in_flight, key=lambda a: a.id)]
    logs.get_logger("reconciler.execution").warning(
        "pass_stopping", in_flight=waits,
        note="finishing the actions in flight (a container stop takes up to its stopTimeout); "
             "nothing new starts")


def _run(a: actions.Action, runtime: base.Runtime, opts: ExecuteOptions) -> changes.ActionResult:
    result = _run_action(a, runtime, opts)
    if result.error or result.hint:         # (an action that went well has no text to mask)
        secrets = _secret_values(a)
        if secrets:
            result = replace(result, error=_redact(result.error, secrets), hint=_redact(result.hint, secrets))
    return result


def _secret_values(a: actions.Action) -> list[str]:
    """The values the action's container takes from SOPS-encrypted files (`secret_env`): never
    to be shown or stored, an engine's error quoting its environment included (runc quotes an
    env entry it refuses), longest first."""
    spec = a.spec if isinstance(a.spec, models.Container) else None
    if spec is None or not spec.secret_env:
        return []
    return sorted({spec.env[k] for k in spec.secret_env if spec.env.get(k)}, key=len, reverse=True)


def _redact(text: str, secrets: list[str]) -> str:
    """`text` with each secret value, as written and as Go's %q or Python's repr escape it, as `***`."""
    for value in secrets:
        for form in dict.fromkeys((value, value.encode("unicode_escape").decode("ascii"),
                                   json.dumps(value)[1:-1])):
            if form:
                text = text.replace(form, "***")
    return text


def _run_action(a: actions.Action, runtime: base.Runtime, opts: ExecuteOptions) -> changes.ActionResult:
    start = opts.clock()
    try:
        extra = _perform(a, runtime, opts)
    except _ActionFailed as exc:
        status = changes.Status.INTERRUPTED if exc.interrupted else changes.Status.FAILED
        cause = exc.cause
        return changes.ActionResult(a, status, error=str(exc),
                                    duration=opts.clock() - start, rolled_back=exc.rolled_back,
                                    detail="rolled back" if exc.rolled_back else "",
                                    hint=(cause.hint or "") if cause else "", disk_full=isinstance(cause, DiskFull))
    except rterrors.Cancelled as exc:
        return changes.ActionResult(a, changes.Status.INTERRUPTED, error=exc.message,
                                    duration=opts.clock() - start)
    except ReconcilerError as exc:
        return _failed(a, exc, opts.clock() - start)
    except Exception as exc:  # noqa: BLE001 - isolate: one action's bug must not stop unrelated work
        full = diskfull.translate(exc, f"running {a.kind} for {a.resource}")
        if full is not None:
            return _failed(a, full, opts.clock() - start)
        return changes.ActionResult(a, changes.Status.FAILED, error=f"{type(exc).__name__}: {exc}",
                                    duration=opts.clock() - start)
    return changes.ActionResult(a, changes.Status.DONE, duration=opts.clock() - start, **extra)


def _failed(a: actions.Action, exc: ReconcilerError, duration: float) -> changes.ActionResult:
    return changes.ActionResult(a, changes.Status.FAILED, error=exc.message, duration=duration,
                                hint=exc.hint or "", disk_full=isinstance(exc, DiskFull))


def _perform(a: actions.Action, runtime: base.Runtime, opts: ExecuteOptions) -> dict[str, Any]:
    k = a.kind
    if k is Kind.FORGET:
        return {}
    if k is Kind.PULL_IMAGE:
        info = runtime.pull_image(a.image, progress=_cancel_when_stopping(a, opts))
        return {"image_digest": info.digest or info.id}
    if k in (Kind.BUILD_IMAGE, Kind.PUSH_IMAGE):
        return _build_or_push(a, runtime)
    if k is Kind.ENSURE_NETWORK:
        net = a.spec if isinstance(a.spec, models.Network) else None
        runtime.ensure_network(translate.network_config(net, name=a.target, labels=a.labels))
        return {}
    if k is Kind.ENSURE_VOLUME:
        runtime.ensure_volume(translate.volume_config(
            a.target, labels=a.labels, v=a.spec if isinstance(a.spec, models.Volume) else None))
        return {}
    if k in (Kind.REMOVE_NETWORK, Kind.REMOVE_VOLUME, Kind.REMOVE, Kind.STOP):
        try:
            if k is Kind.REMOVE_NETWORK:
                runtime.remove_network(a.target)
            elif k is Kind.REMOVE_VOLUME:
                runtime.remove_volume(a.target)
            elif k is Kind.REMOVE:
                runtime.remove_container(a.target, force=True)
            else:
                runtime.stop_container(a.target)
        except rterrors.NotFound:
            return {"detail": "already gone"}
        return {}
    if k is Kind.CREATE:
        return _create(a, runtime)
    if k is Kind.UPDATE:
        return _update(a, runtime, opts)
    if k is Kind.START:
        try:
            runtime.start_container(a.target)
            if a.wait is not None and a.wait.rollout:
                _wait_rollout(a, runtime, opts)
            elif a.wait is not None:
                _wait_ready(a, runtime, opts)
        except (ReconcilerError, _ActionFailed) as exc:
            message = exc.message if isinstance(exc, ReconcilerError) else str(exc)
            _roll_back(a, runtime, message, exc if isinstance(exc, ReconcilerError) else None,
                       interrupted=isinstance(exc, _ActionFailed) and exc.interrupted)
        return {}
    if k in (Kind.CONNECT, Kind.RECONNECT):
        if not isinstance(runtime, base.Connecting):
            raise _ActionFailed(f"runtime {runtime.name} cannot connect containers to networks")
        if not isinstance(a.spec, models.Container):
            raise _ActionFailed(f"{a.resource}: {a.kind} needs a container spec")
        config = translate.container_config(a.spec, name=a.kind_name[1], labels={})
        runtime.connect_container(a.target, a.network, config, again=k is Kind.RECONNECT)
        return {}
    if k is Kind.RENAME:
        if not isinstance(runtime, base.Renaming):
            raise _ActionFailed(f"runtime {runtime.name} cannot rename containers")
        runtime.rename_container(a.target, a.new_name)
        if isinstance(a.spec, models.Container):    # a leftover renamed into place: what it runs, for the inventory
            config, digest = _config(a, runtime)
            return {"config": base.config_to_json(_image_volumes(config, a, runtime, digest)), "image_digest": digest}
        return {}
    raise _ActionFailed(f"the executor has no handler for {k}")   # pragma: no cover


def _cancel_when_stopping(a: actions.Action, opts: ExecuteOptions) -> base.ProgressCallback:
    """A pull's progress callback that cancels it (at the runtime's next safe point) once stopping."""
    def progress(event: str, detail: Any) -> None:
        if _stopping(opts):
            raise rterrors.Cancelled(f"pull of {a.image} stopped: the reconciler is stopping",
                                     hint="the next pass pulls it again")
    return progress


def _build_or_push(a: actions.Action, runtime: base.Runtime) -> dict[str, Any]:
    """An Image's build: (tagged as its ref), or a push of it to one push: target."""
    if a.kind is Kind.PUSH_IMAGE:
        if not isinstance(runtime, base.ImagePushing):
            raise _ActionFailed(f"runtime {runtime.name} cannot push images")
        return {"image_digest": runtime.push_image(a.image, a.target)}
    if not isinstance(runtime, base.ImageBuilding) or not isinstance(a.spec, models.Image) or a.spec.build is None:
        raise _ActionFailed(f"runtime {runtime.name} cannot build images")
    b = a.spec.build
    info = runtime.build_image(a.target, b.context, b.file, b.args, b.target,
                               secrets={s.id: s.data for s in b.secrets}, ssh={s.id: s.socket for s in b.ssh},
                               allow_insecure="security.insecure" in b.allow)
    return {"image_digest": info.digest or info.id}


def _config(a: actions.Action, runtime: base.Runtime) -> tuple[base.ContainerConfig, str]:
    if not isinstance(a.spec, models.Container):
        raise _ActionFailed(f"{a.resource}: {a.kind} needs a container spec")
    digest = a.image_digest
    if not digest:                      # pulled in this pass: label what is here now
        info = runtime.inspect_image(a.image)
        digest = info.digest or info.id
    labels = {**a.labels, labelmod.DIGEST: digest}
    name = a.target if a.kind is Kind.CREATE else a.kind_name[1]
    return translate.container_config(a.spec, name=name, labels=labels, image=a.image), digest


def _create(a: actions.Action, runtime: base.Runtime) -> dict[str, Any]:
    try:
        config, digest = _config(a, runtime)
        if not isinstance(runtime, base.ServiceEngine):     # a service's tasks: each its own (Swarm's)
            config = _image_volumes(config, a, runtime, digest)
        runtime.create_container(config)
    except ReconcilerError as exc:
        _roll_back(a, runtime, exc.message, exc)
    return {"config": base.config_to_json(config), "image_digest": digest}


_IMAGE_VOLUMES: dict[str, Mapping[str, Any]] = {}     # image digest -> the VOLUMEs its config declares


def _image_volumes(config: base.ContainerConfig, a: actions.Action, runtime: base.Runtime,
                   digest: str) -> base.ContainerConfig:
    """`config` with a volume at each VOLUME of its image that the manifest mounts nothing at
    (`base.unmounted_volumes`), named from the container and the target as a manifest's
    anonymous volume is (`building.anonymous_name`) and labelled so: the replacement of the
    container mounts the same data, as compose's recreate keeps an image's volumes (an engine
    left to make them, as dockerd and the native engine do, makes a new empty one for each
    container, and the old data is left behind unused). Like compose's `down` without `-v`, the
    prune that removes the container leaves the volume (`reconcile volume rm` removes it)."""
    declared = _IMAGE_VOLUMES.get(digest) if digest else None
    if declared is None:
        found = runtime.inspect_image(a.image).config.get("Volumes")
        declared = dict(found) if isinstance(found, Mapping) else {}
        if digest and len(_IMAGE_VOLUMES) < 1024:
            _IMAGE_VOLUMES[digest] = declared
    targets = base.unmounted_volumes(declared, config.mounts)
    if not targets:
        return config
    from reconciler.spec.building import ANONYMOUS_LABEL, anonymous_name

    name = config.labels.get(labelmod.NAME) or config.name
    added = []
    for where in targets:
        volume = anonymous_name(name, where)
        runtime.ensure_volume(base.VolumeConfig(name=volume, labels={ANONYMOUS_LABEL: ""}))
        added.append(base.Mount(type="volume", target=where, source=volume))
    return replace(config, mounts=(*config.mounts, *added)) if added else config


def _update(a: actions.Action, runtime: base.Runtime, opts: ExecuteOptions) -> dict[str, Any]:
    """Change a service in place and follow its rollout; the engine rolls a failure back."""
    if not isinstance(runtime, base.ServiceEngine):
        raise _ActionFailed(f"runtime {runtime.name} cannot update containers in place")
    config, digest = _config(a, runtime)
    runtime.update_container(a.target, config)
    if a.wait is not None:
        _wait_rollout(a, runtime, opts)
    return {"config": base.config_to_json(config), "image_digest": digest}


def _wait_rollout(a: actions.Action, runtime: base.Runtime, opts: ExecuteOptions) -> None:
    assert a.wait is not None
    if not isinstance(runtime, base.ServiceEngine):
        raise _ActionFailed(f"runtime {runtime.name} has no rollouts to wait for")
    try:
        runtime.wait_rollout(a.target, timeout=a.wait.timeout, stop=opts.stop)
    except rterrors.RolloutFailed as exc:
        raise _ActionFailed(exc.message, rolled_back=exc.rolled_back) from exc
    except rterrors.Cancelled as exc:
        raise _ActionFailed(exc.message, interrupted=True) from exc


def _wait_ready(a: actions.Action, runtime: base.Runtime, opts: ExecuteOptions) -> None:
    assert a.wait is not None
    began = opts.clock()
    deadline = began + a.wait.timeout
    health = a.wait.healthcheck
    while True:
        st = runtime.inspect_container(a.target)
        if a.wait.image_health and not health:
            if st.health is None and a.wait.min_ready <= 0:
                return                      # no healthcheck (nor minReady): nothing to wait for
            health = st.health is not None  # its image's: waited for as one of its own
        if a.wait.completion:
            if st.status in (base.ContainerStatus.EXITED, base.ContainerStatus.DEAD):
                if st.exit_code == 0:
                    return
                raise _ActionFailed(f"job {a.target} failed: it exited with code {st.exit_code}")
        elif st.status not in (base.ContainerStatus.RUNNING, base.ContainerStatus.RESTARTING):
            raise _ActionFailed(f"{a.target} exited (code {st.exit_code}) before it was ready")
        elif health:
            # (waiting for a restart, its health is `unhealthy`, as dockerd says of a stopped
            # container: the restart it waits for is judged, not the exit; the deadline holds)
            if st.status is base.ContainerStatus.RUNNING and st.health == "healthy":
                return
            if st.status is base.ContainerStatus.RUNNING and st.health == "unhealthy":
                raise _ActionFailed(f"{a.target} is unhealthy")
            if st.first_probe is not None and st.first_probe >= a.wait.timeout:
                raise _ActionFailed(_probed_too_late(a.target, st.first_probe, a.wait.timeout))
        elif opts.clock() - began >= a.wait.min_ready and st.status is base.ContainerStatus.RUNNING:
            return
        if _stopping(opts):
            what = "complete" if a.wait.completion else "healthy" if health else "ready"
            raise _ActionFailed(f"{a.target} not yet {what}: not waited for, the reconciler is stopping",
                                interrupted=True)
        if opts.clock() >= deadline:
            what = "complete" if a.wait.completion else "healthy" if health \
                else f"running for {a.wait.min_ready:g}s"
            raise _ActionFailed(f"{a.target} not {what} within {a.wait.timeout:g}s")
        opts.sleep(opts.poll_interval)


def _probed_too_late(name: str, first: float, timeout: float) -> str:
    """Why a start fails at once when its healthcheck's first probe comes after its wait ends."""
    return (f"{name} cannot be healthy within update.healthTimeout ({timeout:g}s): its healthcheck first "
            f"runs {first:g}s after its start; probe sooner while it starts (healthcheck.startPeriod with a "
            f"startInterval under {timeout:g}s: a healthcheck without test keeps the image's), or give it a "
            f"shorter healthcheck.interval, or a longer update.healthTimeout")


def _roll_back(a: actions.Action, runtime: base.Runtime, message: str,
               cause: ReconcilerError | None = None, *, interrupted: bool = False) -> None:
    """Undo a failed (or, stopping, an unverified) replacement step if the plan says how;
    always raises _ActionFailed."""
    rb = a.rollback
    if not rb:
        raise _ActionFailed(message, interrupted=interrupted, cause=cause)
    try:
        try:
            runtime.remove_container(a.target, force=True)
        except rterrors.NotFound:
            pass
        if not rb.get("remove_only"):
            old = base.config_from_json(rb["config"])
            if rb.get("image_id"):          # the image it ran, under the name it had (the tag may have moved)
                old = replace(old, image_id=str(rb["image_id"]))
            kept = rb.get("secrets")
            if isinstance(kept, actions.SecretData):    # a record has none: the same files' contents
                old = replace(old, mounts=tuple(replace(m, data=kept.by_target.get(m.target))
                                                if m.type == "secret" else m for m in old.mounts))
                old = replace(old, env={**old.env, **{k: v for k, v in kept.env.items() if k in old.secret_env}})
            missing = base.secret_env_missing(old)
            if missing:
                raise _ActionFailed(
                    f"{message}; rollback failed too: the previous container's {', '.join(missing)} came from a "
                    "SOPS-encrypted env file that changed since, and no record keeps a decrypted value; "
                    "revert the env file in the source (or fix the new container) and apply again", cause=cause)
            runtime.create_container(old)
            runtime.start_container(old.name)
    except ReconcilerError as exc:
        raise _ActionFailed(f"{message}; rollback failed too: {exc.message}", cause=cause) from exc
    raise _ActionFailed(f"{message}; rolled back to the previous container", rolled_back=True,
                        interrupted=interrupted, cause=cause)
