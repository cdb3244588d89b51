"""Reading the engine into an ObservedState (`observe`) and the registry's digests for the
desired tags (`resolve_digests`, through the TTL cache in the state DB): the effects that feed
the pure planner, kept out of `reconciler.state` so that the planner's imports reach no engine.
Before a pass judges what runs, the health statuses no probe observed lately are observed
(`probe_stale`). Under a policy that shares no tags, the moves of local tags the owner may not
make are judged from the other owners' tags (`moves_refused`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, TypeVar

from reconciler import restarting
from reconciler.runtime import errors as rterrors
from reconciler.runtime.base import ContainerState, Runtime, TagOrigins
from reconciler.state import labels as labelmod
from reconciler.state.inventory import InventoryStore, backoff_delay
from reconciler.state.observed import (
    ObservedContainer,
    ObservedNetwork,
    ObservedState,
    ObservedVolume,
    is_pinned,
    normalize_ref,
    tag_of,
)

if TYPE_CHECKING:
    from reconciler.spec.models import DesiredState
    from reconciler.spec.policy import Policy

__all__ = ["LOOKUPS", "PROBES", "RegistryBackoff", "by_name", "moves_refused", "observe", "probe_stale",
           "resolve_digests"]

_T = TypeVar("_T")


def by_name(states: Iterable[ContainerState]) -> dict[str, ObservedContainer]:
    """The containers as the planner and the verdict (`passes.unready`) see them, by the name the
    engine gives them now (what a new container's name would clash with); which of them is a
    desired container's is the rule of `observed.objects` (the name label: a renamed container
    is still its object)."""
    return {
        c.name: ObservedContainer(
            id=c.id,
            name=c.name,
            status=str(c.status),
            owner=labelmod.parse(c.labels),
            image_id=c.image_id,
            health=c.health,
            exit_code=c.exit_code,
            restart_count=c.restart_count,
            manually_stopped=c.manually_stopped,
            cut_short=c.replicas is None and restarting.cut_short(str(c.status), c.started_at),
            replicas=c.replicas,
            replicas_running=c.replicas_running,
            error=c.error,
            placement=c.placement,
            paused=c.paused,
            health_stale=c.health_stale,
            health_probed_at=c.health_probed_at,
            stale_binds=c.stale_binds,
            job=c.job,
            networks=c.networks,
            aliases=c.aliases,
            service_settings=c.service_settings,
        )
        for c in states
    }


def observe(
    runtime: Runtime,
    *,
    resolved: Mapping[str, str] | None = None,
    containers: Iterable[ContainerState] | None = None,
) -> ObservedState:
    """Read containers, networks, volumes and images in one call each (`containers`: the
    containers a caller listed already, with no selector)."""
    listed = by_name(runtime.list_containers(None) if containers is None else containers)
    networks = {
        n.name: ObservedNetwork(name=n.name, owner=labelmod.parse(n.labels), id=n.id)
        for n in runtime.list_networks(None)
    }
    volumes = {
        v.name: ObservedVolume(name=v.name, owner=labelmod.parse(v.labels), problem=v.problem, hint=v.hint)
        for v in runtime.list_volumes(None)
    }
    images: dict[str, str] = {}
    image_ids: dict[str, str] = {}
    for info in runtime.list_images():
        digest = info.digest or info.id
        for tag in info.repo_tags:
            images[normalize_ref(tag)] = digest
            image_ids[normalize_ref(tag)] = info.id
        if info.digest:
            for tag in info.repo_tags:
                repo = normalize_ref(tag).rsplit(":", 1)[0]
                images[f"{repo}@{info.digest}"] = info.digest
    return ObservedState(
        containers=listed,
        networks=networks,
        volumes=volumes,
        images=images,
        resolved={normalize_ref(k): v for k, v in (resolved or {}).items()},
        image_ids=image_ids,
    )


def moves_refused(
    runtime: Runtime, desired: DesiredState, states: Iterable[ContainerState], inventory: InventoryStore,
    policy: Policy | None,
) -> dict[tuple[str, str], str]:
    """The builds and pulls of local tags the owner's `policy` refuses (rule sharedTags; the
    rule is spec/policy.py `refuse_tag`), by (the reference as the manifests name it, "build" |
    "pull") -> why: for the planner to refuse where it would move one (planner.PlanOptions).
    Judged by what the other owners hold of each tag the revision names: the containers that run
    it (`states`, all of the engine's, by their owner labels; and the other owners' inventories),
    the owner whose pass moved it last (the inventory's tag records), and for a pull, whether
    its local image was made on this host (`base.TagOrigins`). Under a policy that shares tags
    (None: `host`) nothing is read."""
    if policy is None or policy.shared_tags:
        return {}
    from reconciler.spec import policy as policy_mod

    moved, runs = inventory.tags_of_others()
    for s in states:
        owner = labelmod.parse(s.labels)
        tag = tag_of(s.image) if owner is not None and owner.owner != inventory.owner and s.image else None
        if owner is not None and tag is not None:
            runs.setdefault(tag, {}).setdefault(owner.owner, set()).add(s.name)
    refs = {c.image for c in desired.containers.values()} | {i.ref for i in desired.images.values() if i.ref}
    out: dict[tuple[str, str], str] = {}
    for ref in sorted(refs):
        tag = tag_of(ref)
        if tag is None or (tag not in runs and tag not in moved):
            continue
        pinned = is_pinned(ref)
        made_here = not pinned and isinstance(runtime, TagOrigins) and runtime.made_here(ref)
        for how in ("build", "pull"):
            why = policy_mod.refuse_tag(policy, tag, build=how == "build", pinned=pinned, runs=runs.get(tag, {}),
                                        moved=moved.get(tag), made_here=made_here)
            if why:
                out[(ref, how)] = why
    return out


PROBES = 4      # stale healthchecks a pass probes at once (each within its healthcheck's timeout)


def probe_stale(runtime: Runtime, states: list[ContainerState], names: Collection[str]) -> list[ContainerState]:
    """`states`, with the containers of `names` whose health is stale (`health_stale`: no probe
    observed it for longer than its interval allows, as when no agent runs) probed once now, side
    by side (up to PROBES at once; each probe within its healthcheck's timeout), and read again:
    what the pass then judges is what the probe saw, not a status hours old. A container removed
    meanwhile is left out; one whose probe could not run, or on an engine that runs no probes of
    its own (not `Supervised`), is left as it was: stale, which the verdict calls down. With
    nothing stale, nothing is done or imported (a pass with nothing to do, #21)."""
    stale = [s.id for s in states if s.health_stale and not s.paused and s.name in names]
    if not stale:
        return states
    from reconciler.runtime import base

    if not isinstance(runtime, base.Supervised):
        return states
    checker = runtime.health_checker

    def look(cid: str) -> ContainerState | rterrors.RuntimeBackendError | None:
        try:
            checker.probe(cid)
            return runtime.inspect_container(cid)
        except rterrors.NotFound:
            return None
        except rterrors.RuntimeBackendError as exc:
            return exc

    seen = _each(look, stale, limit=PROBES)
    out = []
    for s in states:
        now = seen.get(s.id, s)
        if isinstance(now, rterrors.RuntimeBackendError):
            from reconciler import logs

            logs.get_logger("reconciler.pass").warning("health_probe_failed", container=s.name, error=str(now))
            now = s
        if now is not None:
            out.append(now)
    return out


def resolve_digests(
    runtime: Runtime,
    refs: Iterable[str],
    *,
    inventory: InventoryStore | None,
    ttl: float,
    now: float,
    stop: Callable[[], bool] | None = None,
    backoff: RegistryBackoff | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """One `resolve_digest` per distinct tag, cached `ttl` seconds in the state DB.

    Returns (digests by normalised ref, errors by ref). Pinned refs need no lookup. A lookup
    that fails leaves the ref out: the planner then keeps what is running or pulls. Once `stop()`
    is true (the reconciler is stopping; the pass will start nothing) no further registry is asked.

    The lookups run side by side (up to `LOOKUPS` at once), each registry's first tag before
    its others: a registry that does not answer it (`RegistryUnavailable`, after the client's
    retries) is asked nothing more this pass, so a dead registry costs a pass one lookup's
    retries, not one per tag (ten tags: 75 s before). With a `backoff` (an agent's, kept across
    its passes) such a registry is not asked by the next passes either until its back-off ends.
    """
    digests: dict[str, str] = {}
    errors: dict[str, str] = {}
    due: dict[str, list[str]] = {}          # uncached tags by registry host
    for ref in sorted({normalize_ref(r) for r in refs if not is_pinned(r)}):
        cached = inventory.cached_digest(ref, now=now, ttl=ttl) if inventory else None
        if cached:
            digests[ref] = cached
        else:
            due.setdefault(ref.split("/", 1)[0], []).append(ref)

    for host in list(due):
        why = backoff.waiting(host) if backoff is not None else None
        if why is not None:                     # backed off since an earlier pass
            for ref in due.pop(host):
                errors[ref] = f"not asked: {why}"

    def lookup(ref: str) -> str | rterrors.RuntimeBackendError | None:
        if stop is not None and stop():
            return None
        try:
            return runtime.resolve_digest(ref)
        except rterrors.RuntimeBackendError as exc:
            return exc

    found = _each(lookup, [tags[0] for tags in due.values()])
    down = {host: found[tags[0]] for host, tags in due.items()
            if isinstance(found[tags[0]], rterrors.RegistryUnavailable)}
    if backoff is not None:
        for host, tags in due.items():
            if host in down:
                backoff.failed(host, str(down[host]))
            elif found[tags[0]] is not None:        # it answered (a digest, or a refusal of its own)
                backoff.answered(host)
    found.update(_each(lookup, [ref for host, tags in due.items() if host not in down for ref in tags[1:]]))
    for host, first in down.items():
        for ref in due[host][1:]:
            errors[ref] = f"not asked: registry {host} did not answer this pass ({first})"
    for ref, result in found.items():
        if isinstance(result, str):
            digests[ref] = result
            if inventory is not None:
                inventory.cache_digest(ref, result, now=now)
        elif result is not None:
            errors[ref] = str(result)
    return digests, errors


LOOKUPS = 8     # registry lookups a pass runs at once


class RegistryBackoff:
    """The registries that did not answer a pass's lookup, kept by a long-running agent across
    its passes: such a registry is asked again only after a delay that doubles with each failure
    in a row, from `first` up to `longest` seconds (kubelet backs off an image pull so: 10 s to
    5 minutes), and an answer clears it. A pass over a dead registry would otherwise wait out the
    client's retries again each time (7.5 s), holding a manifest edit behind it. A `--once` run
    makes none: it always asks. Thread-safe."""

    def __init__(self, *, first: float = 10.0, longest: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.first, self.longest, self.clock = first, longest, clock
        self._hosts: dict[str, tuple[int, float, str]] = {}     # host -> (failures in a row, next try, error)
        self._lock = threading.Lock()

    def waiting(self, host: str) -> str | None:
        """None when `host` may be asked; else what its tags not asked report (how often it
        failed, its last error, when it is asked again)."""
        with self._lock:
            entry = self._hosts.get(host)
            left = entry[1] - self.clock() if entry is not None else 0.0
        if entry is None or left <= 0:
            return None
        failures, _, error = entry
        times = "once" if failures == 1 else f"{failures} times in a row"
        return f"registry {host} did not answer ({times}; last: {error}); asked again in {left:.0f}s"

    def failed(self, host: str, error: str) -> None:
        with self._lock:
            failures = self._hosts.get(host, (0, 0.0, ""))[0] + 1
            delay = backoff_delay(failures, base=self.first, cap=self.longest)
            self._hosts[host] = (failures, self.clock() + delay, error)

    def answered(self, host: str) -> None:
        with self._lock:
            self._hosts.pop(host, None)

    def hosts(self) -> dict[str, int]:
        """The registries backed off now, with their failures in a row (for status and tests)."""
        with self._lock:
            now = self.clock()
            return {h: e[0] for h, e in self._hosts.items() if now < e[1]}


def _each(lookup: Callable[[str], _T], refs: list[str], *, limit: int = LOOKUPS) -> dict[str, _T]:
    """`lookup` of each ref, side by side when there are several (a thread each, up to `limit`)."""
    if len(refs) <= 1:
        return {ref: lookup(ref) for ref in refs}
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(limit, len(refs)), thread_name_prefix="lookup") as pool:
        return dict(zip(refs, pool.map(lookup, refs), strict=True))
