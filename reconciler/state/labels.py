"""Ownership labels: what reconciler stamps on every object it creates, and how it reads them.

    reconciler.owner        instance name (`--owner`); observe selects on it, prune needs it
    reconciler.kind         Container | Network | Volume
    reconciler.name         the manifest object's metadata.name
    reconciler.spec-hash    spec hash at create time; a different desired hash means recreate
    reconciler.image-digest manifest digest the container was created from (containers only)
    reconciler.revision     revision that created the object (informational)

An object without `reconciler.owner` is foreign and is never touched (DESIGN §5.1).
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler._dataclass import dataclass

__all__ = [
    "DIGEST",
    "KIND",
    "NAME",
    "OWNER",
    "PREFIX",
    "REVISION",
    "SPEC_HASH",
    "Ownership",
    "changed_by_hand",
    "make",
    "parse",
    "selector",
]

PREFIX = "reconciler."
OWNER = "reconciler.owner"
KIND = "reconciler.kind"
NAME = "reconciler.name"
SPEC_HASH = "reconciler.spec-hash"
DIGEST = "reconciler.image-digest"
REVISION = "reconciler.revision"


@dataclass(frozen=True)
class Ownership:
    """The decoded ownership labels of one observed object."""

    owner: str
    kind: str
    name: str
    spec_hash: str
    image_digest: str
    revision: str


def selector(owner: str) -> dict[str, str]:
    """The label selector that lists exactly the objects of `owner`."""
    return {OWNER: owner}


def make(
    *,
    owner: str,
    kind: str,
    name: str,
    spec_hash: str,
    revision: str,
    image_digest: str = "",
    user: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """User labels plus ours (ours win: a manifest cannot forge ownership)."""
    labels = {k: v for k, v in (user or {}).items() if not k.startswith(PREFIX)}
    labels.update({OWNER: owner, KIND: kind, NAME: name, SPEC_HASH: spec_hash, REVISION: revision})
    if image_digest:
        labels[DIGEST] = image_digest
    return labels


def parse(labels: Mapping[str, str]) -> Ownership | None:
    """Ownership read from labels, or None for a foreign object (no owner label)."""
    owner = labels.get(OWNER)
    if not owner:
        return None
    return Ownership(
        owner=owner,
        kind=labels.get(KIND, ""),
        name=labels.get(NAME, ""),
        spec_hash=labels.get(SPEC_HASH, ""),
        image_digest=labels.get(DIGEST, ""),
        revision=labels.get(REVISION, ""),
    )


def changed_by_hand(container: str, labels: Mapping[str, str]) -> str | None:
    """The warning for a change made by hand to a container's limits or restart policy
    (`reconcile update`, `docker update` through the Engine API) when manifests own it, None
    when none do (no owner label). Such a change is drift the manifest does not say: a pass
    leaves it (it recreates on the spec hash, DESIGN §5.2, which is the manifest's, never read
    back from the container), the next recreate (its manifest or image changed) ends it, as
    `docker compose up` ends a `docker update` of a compose container only when it recreates it."""
    owned = parse(labels)
    if owned is None:
        return None
    return (f"{container} belongs to owner {owned.owner!r} ({owned.kind or 'Container'} {owned.name} of its "
            "manifests): this change is drift from the manifest, which a pass does not put back; it lasts until "
            "the container is recreated (its manifest or image changes), as `docker update` on a compose container "
            "lasts until `compose up` recreates it; to keep it, set it in the manifest (spec.resources, spec.restart)")
