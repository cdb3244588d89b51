"""Which images were made from which, read from the images themselves: the native engine keeps no
parent link as dockerd's classic builder does, so an image made from another (a build FROM it, a
commit of a container of it, a pulled image built elsewhere on top of it) is one whose layers and
history begin with the other's and go further. Docker's `ancestor` filter (api/dockerfilters.py)
and a dangling image (an untagged image no other was made from: `NativeRuntime.prune`) ask it.
Stdlib only."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Lineage", "descendants", "lineage_of"]

Lineage = tuple[tuple[str, ...], tuple[Any, ...]]      # an image's layers (diff ids) and history, bottom first


def lineage_of(store: Any, infos: Iterable[Any]) -> dict[str, Lineage]:
    """Each image's (ImageInfo) layers and history, its config read from the image store `store`."""
    from reconciler.runtime import errors

    out: dict[str, Lineage] = {}
    for info in infos:
        try:
            history = store.image_config(info.id).get("history") or []
        except errors.RuntimeBackendError:
            history = []
        out[info.id] = (tuple(info.layers), tuple(json.dumps(h, sort_keys=True) for h in history))
    return out


def descendants(lineage: Mapping[str, Lineage], image_id: str) -> set[str]:
    """The images made from `image_id`: those whose layers and history begin with its own and go
    further."""
    if image_id not in lineage:
        return set()
    layers, history = lineage[image_id]
    return {other for other, (lay, hist) in lineage.items()
            if other != image_id and lay[:len(layers)] == layers and hist[:len(history)] == history
            and (len(lay), len(hist)) != (len(layers), len(history))}
