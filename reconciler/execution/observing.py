"""Reading the engine into an ObservedState (`observe`) and the registry's digests for the
desired tags (`resolve_digests`, through the TTL cache in the state DB): the effects that feed
the pure planner, kept out of `reconciler.state` so that the planner's imports reach no engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from reconciler import restarting
from reconciler.runtime import errors as rterrors
from reconciler.runtime.base import ContainerState, Runtime
from reconciler.state import labels as labelmod
from reconciler.state.inventory import InventoryStore
from reconciler.state.observed import (
    ObservedContainer,
    ObservedNetwork,
    ObservedState,
    ObservedVolume,
    is_pinned,
    normalize_ref,
)

__all__ = ["observe", "resolve_digests"]


def observe(
    runtime: Runtime,
    *,
    resolved: Mapping[str, str] | None = None,
    containers: Iterable[ContainerState] | None = None,
) -> ObservedState:
    """Read containers, networks, volumes and images in one call each (`containers`: the
    containers a caller listed already, with no selector)."""
    listed = {
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
            placement=c.placement,
        )
        for c in (runtime.list_containers(None) if containers is None else containers)
    }
    networks = {
        n.name: ObservedNetwork(name=n.name, owner=labelmod.parse(n.labels), id=n.id)
        for n in runtime.list_networks(None)
    }
    volumes = {
        v.name: ObservedVolume(name=v.name, owner=labelmod.parse(v.labels))
        for v in runtime.list_volumes(None)
    }
    images: dict[str, str] = {}
    for info in runtime.list_images():
        digest = info.digest or info.id
        for tag in info.repo_tags:
            images[normalize_ref(tag)] = digest
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
    )


def resolve_digests(
    runtime: Runtime,
    refs: Iterable[str],
    *,
    inventory: InventoryStore | None,
    ttl: float,
    now: float,
    stop: Callable[[], bool] | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """One `resolve_digest` per distinct tag, cached `ttl` seconds in the state DB.

    Returns (digests by normalised ref, errors by ref). Pinned refs need no lookup. A lookup
    that fails leaves the ref out: the planner then keeps what is running or pulls. Once `stop()`
    is true (the reconciler is stopping; the pass will start nothing) no further registry is asked.
    """
    digests: dict[str, str] = {}
    errors: dict[str, str] = {}
    for ref in sorted({normalize_ref(r) for r in refs if not is_pinned(r)}):
        cached = inventory.cached_digest(ref, now=now, ttl=ttl) if inventory else None
        if cached:
            digests[ref] = cached
            continue
        if stop is not None and stop():
            continue
        try:
            digest = runtime.resolve_digest(ref)
        except rterrors.RuntimeBackendError as exc:
            errors[ref] = str(exc)
            continue
        digests[ref] = digest
        if inventory is not None:
            inventory.cache_digest(ref, digest, now=now)
    return digests, errors
