"""What a desired state implies beyond its own fields.

The planner and a pass's bookkeeping (`execution/passes.py`: digests resolved before the plan,
the inventory recorded after it) read the same rules, so each is written here once:

- image tracking: a container's image is followed at the registry (its tag's digest resolved
  every pass, a moved tag pulled) unless an Image object says `track: false` with a pull
  policy other than `always`, or, with no Image object, the engine says the tag's local image
  was made on this host (built, loaded, tagged here; never pulled nor pushed as that tag: no
  registry has it, so the local image is what runs, as docker and compose run it); on a cluster
  every image is (its services run it by digest);
- implicit volumes: a volume a container mounts but no Volume object declares is desired all
  the same (created, tracked in the inventory, never pruned while mounted); a mount without
  source (a service's anonymous volume on a cluster: Swarm makes one per task) names none;
- ownership labels: what every object made for a revision carries (`state/labels.py` encodes
  them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from reconciler._dataclass import dataclass
from reconciler.spec import models
from reconciler.state import labels as labelmod

__all__ = ["ImagePolicy", "image_policy", "keys", "labels", "tracked_refs", "volumes"]


@dataclass(frozen=True)
class ImagePolicy:
    """How a container's image is kept: from its Image object, else the defaults."""

    pull: str                       # always | missing | never
    track: bool                     # follow the tag's digest at the registry
    build: bool                     # built on this host (an Image object with build:)


def image_policy(c: models.Container, desired: models.DesiredState) -> ImagePolicy:
    """The policy of `c`'s image: no Image object means pull when missing, and track."""
    img = desired.images.get(c.image_object) if c.image_object else None
    if img is None:
        return ImagePolicy(pull="missing", track=True, build=False)
    return ImagePolicy(pull=img.pull, track=img.track or img.pull == "always", build=img.build is not None)


def tracked_refs(
    desired: models.DesiredState, *, every: bool = False, made_here: Callable[[str], bool] | None = None,
) -> list[str]:
    """The image references whose registry digest a pass resolves before planning, sorted
    (`every`: all of them, for a cluster, which runs every image pinned by its digest). A tag
    followed by default (no Image object) is left out when `made_here(tag)`, the engine's
    `base.TagOrigins`, says its local image was made on this host: the planner then runs the
    local image, and a rebuild under the tag replaces the containers (a new local digest). An
    Image object's `track: true` or `pull: always` is asked for all the same."""
    if every:
        return sorted({c.image for c in desired.containers.values()})
    asked: set[str] = set()             # an Image object's policy, or a digest: whatever the engine says
    by_default: set[str] = set()        # tags of no Image object: unless made here
    for c in desired.containers.values():
        if image_policy(c, desired).track:
            default = "@" not in c.image and desired.images.get(c.image_object or "") is None
            (by_default if default else asked).add(c.image)
    if made_here is not None:
        by_default = {ref for ref in by_default - asked if not made_here(ref)}
    return sorted(asked | by_default)


def volumes(desired: models.DesiredState) -> dict[str, models.Volume | None]:
    """Every volume the revision makes: the declared ones, then the implicit ones (None), each
    part sorted by name; external volumes are not made, so not among them."""
    out: dict[str, models.Volume | None] = {n: desired.volumes[n] for n in sorted(desired.volumes)}
    implicit = {m.source for c in desired.containers.values() for m in c.volumes if m.type == "volume" and m.source}
    out.update((n, None) for n in sorted(implicit - set(out) - set(desired.external_volumes)))
    return out


def keys(desired: models.DesiredState) -> set[tuple[str, str]]:
    """The inventory keys (kind, name) the revision wants, Images aside: what prune spares."""
    return ({("Container", n) for n in desired.containers} | {("Network", n) for n in desired.networks}
            | {("Volume", n) for n in volumes(desired)})


def labels(
    *,
    owner: str,
    revision: str,
    kind: str,
    name: str,
    obj: models.Container | models.Network | models.Volume | None,
    image_digest: str = "",
) -> dict[str, str]:
    """The labels of the object `kind`/`name` made for `revision` (`obj` None: an implicit
    volume, which has no spec hash and no user labels): its own, a container's location labels
    (not in its spec hash) over them, ours over all."""
    user: Mapping[str, str] = obj.labels if obj is not None else {}
    if isinstance(obj, models.Container) and obj.location_labels:     # stamped, not hashed
        user = {**user, **obj.location_labels}
    return labelmod.make(owner=owner, kind=kind, name=name, spec_hash=obj.spec_hash if obj is not None else "",
                         revision=revision, image_digest=image_digest, user=user)
