"""History: one record per pass that changed something or failed (revision, time, changes, result).

`reconcile history` lists it; the last good revision is what a rollback re-applies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler._sqlite import Database

__all__ = ["HistoryStore", "Pass", "last_converged", "last_passes"]

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
    cause TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT ''
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
    result: str                                  # converged | failed | invalid
    counts: Mapping[str, int] = field(default_factory=dict)
    changes: Sequence[Mapping[str, Any]] = ()
    cause: str = ""                              # why the pass ran, when not the source ("rollback to <id>")
    error: str = ""                              # what ended the pass before it finished (disk full...)


class HistoryStore:
    """The pass history of one owner in the state DB."""

    def __init__(self, db: Database, owner: str) -> None:
        self.db = db
        self.owner = owner
        _ensure_table(db)

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
        error: str = "",
    ) -> int:
        with self.db.tx() as conn:
            cur = conn.execute(
                "INSERT INTO history_passes (owner, revision, source, started_at, finished_at,"
                " result, counts_json, changes_json, cause, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.owner, revision, source, started_at, finished_at, result,
                    json.dumps(dict(counts), sort_keys=True),
                    json.dumps(list(changes), sort_keys=True, default=str), cause, error,
                ),
            )
            return int(cur.lastrowid or 0)

    def list(self, *, limit: int = 50) -> list[Pass]:
        """Newest first."""
        rows = self.db.connect().execute(
            "SELECT * FROM history_passes WHERE owner = ? ORDER BY id DESC LIMIT ?",
            (self.owner, limit),
        )
        return [_pass(r) for r in rows]

    def last_result(self) -> str | None:
        """The result of the newest recorded pass (None: none yet)."""
        row = self.db.connect().execute(
            "SELECT result FROM history_passes WHERE owner = ? ORDER BY id DESC LIMIT 1", (self.owner,)).fetchone()
        return None if row is None else str(row["result"])

    def last_good(self) -> Pass | None:
        """The newest pass that converged."""
        for p in self.list(limit=1000):
            if p.result == "converged":
                return p
        return None


def _pass(r: Any) -> Pass:
    return Pass(
        id=r["id"], owner=r["owner"], revision=r["revision"], source=r["source"],
        started_at=r["started_at"], finished_at=r["finished_at"], result=r["result"],
        counts=json.loads(r["counts_json"]), changes=json.loads(r["changes_json"]),
        cause=r["cause"], error=r["error"],
    )


def last_passes(db: Database) -> dict[str, Pass]:
    """The newest recorded pass of every owner, by owner."""
    _ensure_table(db)
    rows = db.connect().execute(
        "SELECT * FROM history_passes WHERE id IN (SELECT MAX(id) FROM history_passes GROUP BY owner)"
        " ORDER BY owner")
    return {str(r["owner"]): _pass(r) for r in rows}


def last_converged(db: Database) -> set[str]:
    """The newest converged revision of every owner (a rollback target never pruned)."""
    db.ensure_schema("history", _DDL)
    rows = db.connect().execute(
        "SELECT revision FROM history_passes WHERE id IN"
        " (SELECT MAX(id) FROM history_passes WHERE result = 'converged' GROUP BY owner)")
    return {str(r["revision"]) for r in rows}


def _ensure_table(db: Database) -> None:
    """The table, with every column: databases made before the `cause` or `error` column get
    it (once; a concurrent adder is fine)."""
    import sqlite3

    db.ensure_schema("history", _DDL)
    cols = {r["name"] for r in db.connect().execute("PRAGMA table_info(history_passes)")}
    for name in ("cause", "error"):
        if name in cols:
            continue
        try:
            with db.tx() as conn:
                conn.execute(f"ALTER TABLE history_passes ADD COLUMN {name} TEXT NOT NULL DEFAULT ''")
        except sqlite3.OperationalError as exc:     # another process added it meanwhile
            if "duplicate column" not in str(exc):
                raise
