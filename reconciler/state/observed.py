"""ObservedState: one snapshot of what exists, read in one pass, so planning makes no calls.

The values only: reading them from an engine (`observe`, `resolve_digests`) is an effect and
lives in `reconciler.execution.observing`, so the planner, which imports this module, reaches
no runtime even indirectly (the import contract forbids it).

Like compose's `ObservedState`: containers, networks and volumes with their ownership labels
already decoded, the local images by normalised reference, and the registry digests resolved
for the desired tags (through the TTL cache in the state DB). Everything is listed without a
selector in one call per kind, so objects of other owners and foreign objects (no owner label)
are visible too: the planner needs them to refuse a clashing name rather than touch them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reconciler import imagenames
from reconciler._dataclass import dataclass, field
from reconciler.state import labels as labelmod

__all__ = [
    "SPECIAL_NETWORKS",
    "ObservedContainer",
    "ObservedNetwork",
    "ObservedState",
    "ObservedVolume",
    "is_pinned",
    "normalize_ref",
    "objects",
    "off_networks",
    "tag_of",
    "user_networks",
]


def normalize_ref(ref: str) -> str:
    """What `ref` names, in the one form the local images and the resolved digests are keyed by:
    `busybox` and `docker.io/busybox` → `docker.io/library/busybox:latest`, `x:1@sha256:...` →
    `docker.io/library/x@sha256:...` (the digest decides; reconciler.lock writes these). The
    rule is `imagenames.key`, the registry client's parse and the engines' tags alike."""
    return imagenames.key(ref)


def tag_of(ref: str) -> str | None:
    """The local tag a pull or build of `ref` points, normalised (`registry/repository:tag`,
    `latest` by default); a pinned `x:1@sha256:...` tags `x:1` too (the native engine's pull),
    a digest alone no tag (None)."""
    name, tag, digest = imagenames.cut(ref)
    if digest is not None and not tag:
        return None
    return imagenames.key(f"{name}:{tag}" if tag else name)


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
    cut_short: bool = False             # exited before its start finished (restarting.cut_short)
    replicas: int | None = None         # a service's wanted copies (Swarm); None: one container
    replicas_running: int | None = None  # of those, how many run (healthy where checked)
    error: str | None = None            # why the engine ended it (a service's newest task error)
    placement: tuple[tuple[str, ...], tuple[str, ...]] | None = None  # a service's (constraints, spread)
    paused: bool = False                # running, its processes frozen (`docker pause`)
    health_stale: bool = False          # `health` is what a probe saw long ago (ContainerState.health_stale)
    health_probed_at: str | None = None  # when a probe last observed its health (RFC 3339), if known
    stale_binds: tuple[str, ...] = ()   # bind sources it no longer has mounted (ContainerState.stale_binds)
    job: bool = False                   # a Swarm job service (ContainerState.job)
    # the user-defined networks it is attached to, by name -> the id of the network it was
    # attached to ("": not said); None: the engine cannot tell (ContainerState.networks)
    networks: Mapping[str, str] | None = None
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)   # its aliases on each of those
    service_settings: Mapping[str, Any] | None = None   # a service's own settings (ContainerState.service_settings)


def objects(containers: Iterable[ObservedContainer], owner: str) -> dict[str, tuple[ObservedContainer, ...]]:
    """`owner`'s containers by the Container object each one is: its `reconciler.name` label,
    whatever the engine names it now (`docker rename web web-old` keeps the labels: web-old is
    still the object `web`, as compose finds its containers by label). The one rule for which
    observed container is a desired container's (the planner, `passes.unready`, `status`).

    Several for one object (a copy made beside a renamed one by a version without this rule, a
    start-first replacement's `NAME.next` its killed process left): the one the engine names as
    the object first, then the others by name; which one is kept, named back or removed is the
    planner's rule (`planner.current`, `planner.leftovers`). A container without a name label
    (made by hand) is no object's."""
    out: dict[str, list[ObservedContainer]] = {}
    for o in containers:
        own = o.owner
        if own is not None and own.owner == owner and own.name and own.kind in ("Container", ""):
            out.setdefault(own.name, []).append(o)
    return {name: tuple(sorted(found, key=lambda o: (o.name != name, o.name))) for name, found in out.items()}


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
    problem: str | None = None          # why a mount of it would be refused (VolumeState.problem): None, none
    hint: str | None = None             # what to do about it


# the networks a container names that are no network of the manifests' own: Docker's default
# bridge (and its native twin), the host's, none; `container:NAME` joins another's namespace
SPECIAL_NETWORKS = frozenset({"host", "none", "bridge", "default"})


def user_networks(networks: Iterable[str]) -> list[str]:
    """The user-defined networks among a container's `networks` (Network objects, external ones too)."""
    return [n for n in networks if n not in SPECIAL_NETWORKS and not n.startswith("container:")]


def off_networks(
    o: ObservedContainer, networks: Iterable[str], aliases: Sequence[str],
    known: Mapping[str, ObservedNetwork] | None = None,
) -> list[tuple[str, str, bool]]:
    """The user-defined networks of `networks` that `o` is not on as its spec says, in order, each
    as (network, why, whether it is on it at all): not attached; attached without an alias of
    `aliases` (peers do not resolve that name); attached to a network of that name that was
    removed since (its endpoint names a network id that `known`, the networks observed, no
    longer has: Docker keeps a stopped container's endpoint, and its start then fails, "network
    ... not found"). Nothing when the engine cannot tell (`o.networks` None). The one rule the
    planner repairs by and the verdict (`passes.down`) reports by."""
    if o.networks is None:
        return []
    out: list[tuple[str, str, bool]] = []
    for n in user_networks(networks):
        if n not in o.networks:
            out.append((n, f"not attached to network {n}", False))
            continue
        nid, net = o.networks[n], (known or {}).get(n)
        if known is not None and nid and nid != n and not (net is not None and net.id and (
                net.id.startswith(nid) or nid.startswith(net.id))):
            out.append((n, f"attached to network {n} as it was before it was removed (network id {nid[:12]} is gone)",
                        True))
            continue
        missing = [a for a in aliases if a not in o.aliases.get(n, ())]
        if missing:
            out.append((n, f"on network {n} without alias{'es' if len(missing) > 1 else ''} {', '.join(missing)}",
                        True))
    return out


@dataclass(frozen=True)
class ObservedState:
    """What exists on the host, and what the registry says the desired tags point to."""

    # by the name the engine gives them now (observing.by_name); by object: `objects`
    containers: Mapping[str, ObservedContainer] = field(default_factory=dict)
    networks: Mapping[str, ObservedNetwork] = field(default_factory=dict)
    volumes: Mapping[str, ObservedVolume] = field(default_factory=dict)
    images: Mapping[str, str] = field(default_factory=dict)     # normalised ref -> local digest
    resolved: Mapping[str, str] = field(default_factory=dict)   # normalised ref -> registry digest
    image_ids: Mapping[str, str] = field(default_factory=dict)  # normalised ref -> local image id

    def local_digest(self, ref: str) -> str | None:
        """Digest of the local image for `ref`, if it is present."""
        return self.images.get(normalize_ref(ref))

    def local_image_id(self, ref: str) -> str | None:
        """The id of the local image `ref` names, if it is present."""
        return self.image_ids.get(normalize_ref(ref))

    def remote_digest(self, ref: str) -> str | None:
        """The registry's current digest for `ref` (this pass), if it was resolved."""
        if is_pinned(ref):
            return ref.rpartition("@")[2]
        return self.resolved.get(normalize_ref(ref))
