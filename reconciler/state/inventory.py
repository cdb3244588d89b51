"""The inventory: what this reconciler created, kept in the state DB (not only in labels).

Flux's rule (gitops-anchors R10): prune = previous inventory minus the new desired set, and an
object whose delete failed stays in the inventory so the next pass retries it. Each entry also
keeps the spec JSON that was applied (what `reconcile diff` compares field by field) and the
runtime config the container was created with (what a rollback re-creates).

The same DB keeps the failure records that stop recreate loops (DESIGN §5.7: one attempt per
(revision, object hash) until the revision changes or the backoff expires) and the TTL cache of
resolved tag digests (one registry HEAD per reference per interval).

`Inventory` is the pure value the planner reads; `InventoryStore` reads and writes it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler._sqlite import Database

__all__ = [
    "Entry",
    "Failure",
    "Inventory",
    "InventoryStore",
    "backoff_delay",
    "spec_document",
]

_DDL = """
CREATE TABLE IF NOT EXISTS inv_objects (
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    image_digest TEXT NOT NULL DEFAULT '',
    revision TEXT NOT NULL DEFAULT '',
    spec_json TEXT NOT NULL DEFAULT '{}',
    config_json TEXT,
    deletion_policy TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL,
    PRIMARY KEY (owner, kind, name)
);
CREATE TABLE IF NOT EXISTS inv_failures (
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    revision TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    failed_at REAL NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (owner, kind, name)
);
CREATE TABLE IF NOT EXISTS inv_digests (
    ref TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    resolved_at REAL NOT NULL
);
"""

_NOT_SPEC = frozenset({"name", "origin", "spec_hash"})


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def spec_document(obj: object) -> dict[str, Any]:
    """The spec of a manifest model as plain JSON data (what `reconcile diff` compares).

    Name, origin and hash are left out: they are the key or bookkeeping.
    """
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        raise TypeError(f"not a spec model: {obj!r}")
    return {
        f.name: _jsonable(getattr(obj, f.name))
        for f in dataclasses.fields(obj)
        if f.name not in _NOT_SPEC
    }


BACKOFF_BASE = 30.0
BACKOFF_MAX = 3600.0


def backoff_delay(attempts: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_MAX) -> float:
    """Seconds to wait after the `attempts`-th failure: base, 2×base, 4×base ... up to cap."""
    return float(min(cap, base * (2 ** max(0, attempts - 1))))


@dataclass(frozen=True)
class Entry:
    """One object this reconciler created and still answers for."""

    kind: str                                   # Container | Network | Volume | Image
    name: str
    spec_hash: str
    image_digest: str = ""
    revision: str = ""
    spec: Mapping[str, Any] = field(default_factory=dict)       # applied spec, for diff
    config: Mapping[str, Any] | None = None                     # runtime config, for rollback
    deletion_policy: str = ""                                   # volumes: "Delete" | "Retain"/""


@dataclass(frozen=True)
class Failure:
    """The last failed attempt at an object: not retried before `retry_at` for the same input."""

    kind: str
    name: str
    revision: str
    spec_hash: str
    attempts: int
    failed_at: float
    error: str = ""

    @property
    def retry_at(self) -> float:
        return self.failed_at + backoff_delay(self.attempts)


@dataclass(frozen=True)
class Inventory:
    """The inventory as the planner sees it: entries and failures by (kind, name)."""

    entries: Mapping[tuple[str, str], Entry] = field(default_factory=dict)
    failures: Mapping[tuple[str, str], Failure] = field(default_factory=dict)

    @classmethod
    def of(cls, entries: Iterable[Entry] = (), failures: Iterable[Failure] = ()) -> Inventory:
        """Build from lists (tests write inventories as literals this way)."""
        return cls(
            entries={(e.kind, e.name): e for e in entries},
            failures={(f.kind, f.name): f for f in failures},
        )


class InventoryStore:
    """The inventory of one owner in the state DB."""

    def __init__(self, db: Database, owner: str) -> None:
        self.db = db
        self.owner = owner
        db.ensure_schema("inventory", _DDL)

    def load(self) -> Inventory:
        conn = self.db.connect()
        entries = [
            Entry(
                kind=r["kind"],
                name=r["name"],
                spec_hash=r["spec_hash"],
                image_digest=r["image_digest"],
                revision=r["revision"],
                spec=json.loads(r["spec_json"]),
                config=json.loads(r["config_json"]) if r["config_json"] else None,
                deletion_policy=r["deletion_policy"],
            )
            for r in conn.execute("SELECT * FROM inv_objects WHERE owner = ?", (self.owner,))
        ]
        failures = [
            Failure(
                kind=r["kind"],
                name=r["name"],
                revision=r["revision"],
                spec_hash=r["spec_hash"],
                attempts=r["attempts"],
                failed_at=r["failed_at"],
                error=r["error"],
            )
            for r in conn.execute("SELECT * FROM inv_failures WHERE owner = ?", (self.owner,))
        ]
        return Inventory.of(entries, failures)

    def put(self, entry: Entry) -> None:
        """Record (or replace) an object as created/updated by us."""
        self.update(put=[entry])

    def remove(self, kind: str, name: str) -> None:
        """Forget an object (after its delete succeeded)."""
        self.update(remove=[(kind, name)])

    def update(
        self,
        *,
        put: Iterable[Entry] = (),
        remove: Iterable[tuple[str, str]] = (),
        clear_failures: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Several changes in one transaction (a pass writes its results at once)."""
        now = time.time()
        rows = [
            (
                self.owner, e.kind, e.name, e.spec_hash, e.image_digest, e.revision,
                json.dumps(e.spec, sort_keys=True, default=str),
                json.dumps(e.config, sort_keys=True) if e.config is not None else None,
                e.deletion_policy, now,
            )
            for e in put
        ]
        gone = [(self.owner, k, n) for k, n in remove]
        cleared = [(self.owner, k, n) for k, n in clear_failures] + gone
        if not (rows or gone or cleared):
            return
        with self.db.tx() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO inv_objects (owner, kind, name, spec_hash, image_digest,"
                " revision, spec_json, config_json, deletion_policy, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.executemany("DELETE FROM inv_objects WHERE owner = ? AND kind = ? AND name = ?", gone)
            conn.executemany("DELETE FROM inv_failures WHERE owner = ? AND kind = ? AND name = ?", cleared)

    def record_failure(
        self, kind: str, name: str, *, revision: str, spec_hash: str, error: str, now: float,
    ) -> Failure:
        """Count a failed attempt; attempts grow while (revision, hash) stays the same."""
        conn = self.db.connect()
        row = conn.execute(
            "SELECT revision, spec_hash, attempts FROM inv_failures"
            " WHERE owner = ? AND kind = ? AND name = ?",
            (self.owner, kind, name),
        ).fetchone()
        attempts = 1
        if row is not None and row["revision"] == revision and row["spec_hash"] == spec_hash:
            attempts = int(row["attempts"]) + 1
        with self.db.tx() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO inv_failures (owner, kind, name, revision, spec_hash,"
                " attempts, failed_at, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (self.owner, kind, name, revision, spec_hash, attempts, now, error[:2000]),
            )
        return Failure(kind, name, revision, spec_hash, attempts, now, error)

    def clear_failure(self, kind: str, name: str) -> None:
        with self.db.tx() as conn:
            conn.execute(
                "DELETE FROM inv_failures WHERE owner = ? AND kind = ? AND name = ?",
                (self.owner, kind, name),
            )

    # --- the tag → digest cache (shared by owners: a registry answer is not owner-specific)

    def cached_digest(self, ref: str, *, now: float, ttl: float) -> str | None:
        row = self.db.connect().execute(
            "SELECT digest, resolved_at FROM inv_digests WHERE ref = ?", (ref,),
        ).fetchone()
        if row is None or now - float(row["resolved_at"]) > ttl:
            return None
        return str(row["digest"])

    def cache_digest(self, ref: str, digest: str, *, now: float) -> None:
        with self.db.tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO inv_digests (ref, digest, resolved_at) VALUES (?, ?, ?)",
                (ref, digest, now),
            )
