"""ObservedState: one snapshot of what exists, read in one pass, so planning makes no calls.

Like compose's `ObservedState`: containers, networks and volumes with their ownership labels
already decoded, the local images by normalised reference, and the registry digests resolved
for the desired tags (through the TTL cache in the state DB). Everything is listed without a
selector in one call per kind, so objects of other owners and foreign objects (no owner label)
are visible too: the planner needs them to refuse a clashing name rather than touch them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reconciler.state import labels as labelmod

if TYPE_CHECKING:
    from reconciler.runtime.base import Runtime
    from reconciler.state.inventory import InventoryStore

__all__ = [
    "ObservedContainer",
    "ObservedNetwork",
    "ObservedState",
    "ObservedVolume",
    "is_pinned",
    "normalize_ref",
    "observe",
    "resolve_digests",
]


def normalize_ref(ref: str) -> str:
    """`busybox` → `docker.io/library/busybox:latest`; digests and explicit tags kept."""
    name, at, digest = ref.partition("@")
    first, slash, _rest = name.partition("/")
    if not slash:
        name = f"docker.io/library/{name}"
    elif not ("." in first or ":" in first or first == "localhost"):
        name = f"docker.io/{name}"
    last = name.rsplit("/", 1)[-1]
    if at:          # `name:tag@digest` is `name@digest` (the digest decides; reconciler.lock writes these)
        return f"{name.removesuffix(last)}{last.split(':', 1)[0]}@{digest}"
    if ":" not in last:
        name = f"{name}:latest"
    return name


def is_pinned(ref: str) -> bool:
    """A reference by digest (`...@sha256:...`) never moves."""
    return "@sha256:" in ref


@dataclass(frozen=True)
class ObservedContainer:
    """A container as observed, ownership decoded."""

    id: str
    name: str
    status: str                         # created | running | restarting | exited | dead
    owner: labelmod.Ownership | None    # None: foreign
    image_id: str = ""
    health: str | None = None
    exit_code: int | None = None
    restart_count: int = 0
    manually_stopped: bool = False
    replicas: int | None = None         # a service's wanted copies (Swarm); None: one container
    placement: tuple[tuple[str, ...], tuple[str, ...]] | None = None  # a service's (constraints, spread)


@dataclass(frozen=True)
class ObservedNetwork:
    """A network as observed."""

    name: str
    owner: labelmod.Ownership | None
    id: str = ""


@dataclass(frozen=True)
class ObservedVolume:
    """A named volume as observed."""

    name: str
    owner: labelmod.Ownership | None


@dataclass(frozen=True)
class ObservedState:
    """What exists on the host, and what the registry says the desired tags point to."""

    containers: Mapping[str, ObservedContainer] = field(default_factory=dict)   # by name
    networks: Mapping[str, ObservedNetwork] = field(default_factory=dict)
    volumes: Mapping[str, ObservedVolume] = field(default_factory=dict)
    images: Mapping[str, str] = field(default_factory=dict)     # normalised ref -> local digest
    resolved: Mapping[str, str] = field(default_factory=dict)   # normalised ref -> registry digest

    def local_digest(self, ref: str) -> str | None:
        """Digest of the local image for `ref`, if it is present."""
        return self.images.get(normalize_ref(ref))

    def remote_digest(self, ref: str) -> str | None:
        """The registry's current digest for `ref` (this pass), if it was resolved."""
        if is_pinned(ref):
            return ref.rpartition("@")[2]
        return self.resolved.get(normalize_ref(ref))


def observe(
    runtime: Runtime,
    *,
    resolved: Mapping[str, str] | None = None,
) -> ObservedState:
    """Read containers, networks, volumes and images in one call each."""
    containers = {
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
            replicas=c.replicas,
            placement=c.placement,
        )
        for c in runtime.list_containers(None)
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
        containers=containers,
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
    from reconciler.runtime import errors as rterrors

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
