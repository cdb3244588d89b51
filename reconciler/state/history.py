"""History: one record per pass that changed something or failed (revision, time, changes, result).

`reconcile history` lists it; the last good revision is what a rollback re-applies.

A pass that is about to change the host is put on record first (`begin`, result `running`)
and completed at its end (`finish`). A process that never got there (kill -9, a second
SIGTERM) leaves its pass `running`; the next pass, which holds the same store lock, marks it
`interrupted` (`close_unfinished`). A pass stopped at a safe point by SIGTERM ends
`interrupted` by itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler._sqlite import Database

__all__ = ["INTERRUPTED", "RUNNING", "HistoryStore", "Pass", "close_unfinished", "last_converged"]

RUNNING = "running"             # begun, not finished (yet, or ever: its process died)
INTERRUPTED = "interrupted"     # stopped early by a signal, or found unfinished

_DDL = """
CREATE TABLE IF NOT EXISTS history_passes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    revision TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    result TEXT NOT NULL,
    counts_json TEXT NOT NULL DEFAULT '{}',
    changes_json TEXT NOT NULL DEFAULT '[]',
    cause TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS history_passes_owner ON history_passes (owner, id);
"""


@dataclass(frozen=True)
class Pass:
    """One applied revision."""

    id: int
    owner: str
    revision: str
    source: str
    started_at: float
    finished_at: float
    result: str                                  # converged | degraded | failed | interrupted | running
    counts: Mapping[str, int] = field(default_factory=dict)
    changes: Sequence[Mapping[str, Any]] = ()
    cause: str = ""                              # why the pass ran, when not the source ("rollback to <id>")


class HistoryStore:
    """The pass history of one owner in the state DB."""

    def __init__(self, db: Database, owner: str) -> None:
        self.db = db
        self.owner = owner
        db.ensure_schema("history", _DDL)
        _ensure_cause_column(db)

    def record(
        self,
        *,
        revision: str,
        source: str,
        started_at: float,
        finished_at: float,
        result: str,
        counts: Mapping[str, int],
        changes: Sequence[Mapping[str, Any]],
        cause: str = "",
    ) -> int:
        with self.db.tx() as conn:
            cur = conn.execute(
                "INSERT INTO history_passes (owner, revision, source, started_at, finished_at,"
                " result, counts_json, changes_json, cause) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.owner, revision, source, started_at, finished_at, result,
                    json.dumps(dict(counts), sort_keys=True),
                    json.dumps(list(changes), sort_keys=True, default=str), cause,
                ),
            )
            return int(cur.lastrowid or 0)

    def begin(self, *, revision: str, source: str, started_at: float, cause: str = "") -> int:
        """Put a pass on record before it changes anything (result `running`); its id."""
        return self.record(revision=revision, source=source, started_at=started_at, finished_at=started_at,
                           result=RUNNING, counts={}, changes=[], cause=cause)

    def finish(
        self,
        pass_id: int,
        *,
        finished_at: float,
        result: str,
        counts: Mapping[str, int],
        changes: Sequence[Mapping[str, Any]],
    ) -> None:
        """Complete the record `begin` opened."""
        with self.db.tx() as conn:
            conn.execute(
                "UPDATE history_passes SET finished_at = ?, result = ?, counts_json = ?, changes_json = ?"
                " WHERE id = ?",
                (finished_at, result, json.dumps(dict(counts), sort_keys=True),
                 json.dumps(list(changes), sort_keys=True, default=str), pass_id),
            )

    def list(self, *, limit: int = 50) -> list[Pass]:
        """Newest first."""
        rows = self.db.connect().execute(
            "SELECT * FROM history_passes WHERE owner = ? ORDER BY id DESC LIMIT ?",
            (self.owner, limit),
        )
        return [
            Pass(
                id=r["id"], owner=r["owner"], revision=r["revision"], source=r["source"],
                started_at=r["started_at"], finished_at=r["finished_at"], result=r["result"],
                counts=json.loads(r["counts_json"]), changes=json.loads(r["changes_json"]),
                cause=r["cause"],
            )
            for r in rows
        ]

    def last_good(self) -> Pass | None:
        """The newest pass that converged."""
        for p in self.list(limit=1000):
            if p.result == "converged":
                return p
        return None


def close_unfinished(db: Database) -> int:
    """Mark every pass still `running` as `interrupted`; how many. Only for a writer holding the
    store lock before its own pass begins: no other pass can be running then, so a `running`
    record is one whose process died (kill -9, a second SIGTERM)."""
    db.ensure_schema("history", _DDL)
    if db.connect().execute("SELECT 1 FROM history_passes WHERE result = ? LIMIT 1", (RUNNING,)).fetchone() is None:
        return 0                                # the usual case: no write
    with db.tx() as conn:
        cur = conn.execute("UPDATE history_passes SET result = ? WHERE result = ?", (INTERRUPTED, RUNNING))
        return int(cur.rowcount or 0)


def last_converged(db: Database) -> set[str]:
    """The newest converged revision of every owner (a rollback target never pruned)."""
    db.ensure_schema("history", _DDL)
    rows = db.connect().execute(
        "SELECT revision FROM history_passes WHERE id IN"
        " (SELECT MAX(id) FROM history_passes WHERE result = 'converged' GROUP BY owner)")
    return {str(r["revision"]) for r in rows}


def _ensure_cause_column(db: Database) -> None:
    """Databases made before the `cause` column get it (once; a concurrent adder is fine)."""
    import sqlite3

    cols = {r["name"] for r in db.connect().execute("PRAGMA table_info(history_passes)")}
    if "cause" in cols:
        return
    try:
        with db.tx() as conn:
            conn.execute("ALTER TABLE history_passes ADD COLUMN cause TEXT NOT NULL DEFAULT ''")
    except sqlite3.OperationalError as exc:     # another process added it meanwhile
        if "duplicate column" not in str(exc):
            raise
