"""Garbage collection of the native image store: mark, then sweep, under the store lock.

Roots (containerd's model, runtime-internals.md §4.3): every image record (its manifest,
index, config and layer blobs, and its layers' ChainID snapshots), the images containers use
(`ImageStore.container_image_ids`), and the leases of pulls in flight that have not expired
(a crashed pull's lease expires, and then its leftovers are collectable). Everything else is
swept: unreferenced blobs and snapshots, `extract-*`/`remove-*` debris of dead processes,
and ingests not written to for `ingest_max_age` seconds that nobody holds.

GC takes the store lock exclusively; pulls hold it shared, so a sweep never races a pull. That
also means that every lease a sweep finds belongs to a pull that is not running any more (killed,
or failed without dropping it). The automatic sweep after `rmi` keeps those leases until they
expire and their partial downloads for a day, so that the next pull resumes them; an explicit
`image prune` (`keep_partial=False`) reclaims them at once: the space is what the user asked for.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

from reconciler._dataclass import dataclass, field
from reconciler._sqlite import Database
from reconciler.runtime.native.images.content import ContentStore
from reconciler.runtime.native.images.snapshots import SnapshotStore

__all__ = ["Collectable", "GCResult", "collect"]

INGEST_MAX_AGE = 24 * 3600.0


class Collectable(Protocol):
    """What a collection marks from and sweeps: the image store's parts (`ImageStore` is one).
    A protocol, so that the store can call `collect` without the two modules importing each other."""

    db: Database
    content: ContentStore
    snapshots: SnapshotStore
    container_image_ids: Callable[[], set[str]]

    def store_lock(self, *, exclusive: bool) -> AbstractContextManager[None]: ...


@dataclass(frozen=True)
class GCResult:
    """What a collection removed."""

    blobs: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)
    ingests: list[str] = field(default_factory=list)
    debris: int = 0
    expired_leases: int = 0


def collect(store: Collectable, *, ingest_max_age: float = INGEST_MAX_AGE, now: float | None = None,
            keep_partial: bool = True) -> GCResult:
    """Mark from images, containers and live leases; sweep the rest. Returns what went.
    `keep_partial=False`: what interrupted pulls left (their leases, partial downloads) goes too."""
    now = time.time() if now is None else now
    with store.store_lock(exclusive=True):
        with store.db.tx() as c:
            cut = now if keep_partial else float("inf")       # no pull runs: every lease is left over
            expired = c.execute("DELETE FROM pull_leases WHERE expires < ?", (cut,)).rowcount
        conn = store.db.connect()
        blobs: set[str] = set()
        chains: set[str] = set()
        image_ids = {str(r["id"]) for r in conn.execute("SELECT id FROM images").fetchall()}
        roots = image_ids | (store.container_image_ids() & image_ids)
        for row in conn.execute("SELECT id, manifest_digest, index_digest, layers FROM images").fetchall():
            if row["id"] not in roots:
                continue
            blobs.update(d for d in (row["id"], row["manifest_digest"], row["index_digest"]) if d)
            for layer in json.loads(row["layers"]):
                blobs.add(layer["digest"])
                chains.add(layer["chain_id"])
        for row in conn.execute("SELECT blobs, chains FROM pull_leases").fetchall():
            blobs.update(json.loads(row["blobs"]))
            chains.update(json.loads(row["chains"]))

        gone_blobs = [d for d in store.content.digests() if d not in blobs]
        for d in gone_blobs:
            store.content.delete(d)
        gone_snaps = [s.chain_id for s in store.snapshots.list() if s.chain_id not in chains]
        for ch in gone_snaps:
            store.snapshots.remove(ch)
        debris = store.snapshots.debris()
        for path in debris:
            shutil.rmtree(path, ignore_errors=True)
        gone_ingests = []
        for info in store.content.ingests():
            stale = not keep_partial or now - info.updated > ingest_max_age
            if (stale or store.content.has(info.digest)) and store.content.remove_ingest(info):
                gone_ingests.append(info.digest)
    return GCResult(gone_blobs, gone_snaps, gone_ingests, len(debris), expired)
