"""History: one record per pass that changed something or failed (revision, time, changes, result).

`reconcile history` lists it; the last good revision is what a rollback re-applies.

The history is bounded (docs/security.md, "Secrets at rest"; the agent config's `history:`):
a pass that fails exactly as the one before it (same revision, source, result, counts,
changes and cause) bumps that row's `repeats` and last time instead of adding a row, and
each record prunes the owner's rows beyond the newest `keep` (default 1000) and those that
finished more than `max_age` ago (default 30 days) — never the newest converged pass, the
rollback target. Change values under `env.` and `build.args.` are never stored.

A pass that is about to change the host is put on record first (`begin`, result `running`)
and completed at its end (`finish`), also when an error ends it (failed, with what it did and
the error: one row per pass). A process that never got there (kill -9, a second
SIGTERM) leaves its pass `running`; the next pass, which holds the same store lock, marks it
`interrupted` (`close_unfinished`). A pass stopped at a safe point by SIGTERM ends
`interrupted` by itself.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler._dataclass import dataclass, field
from reconciler._sqlite import Database
from reconciler.spec import selection as selectionmod
from reconciler.spec.models import Selection

__all__ = ["DEFAULT_KEEP", "DEFAULT_MAX_AGE", "INTERRUPTED", "RUNNING", "HistoryLimits", "HistoryStore", "Pass",
           "close_unfinished", "configure", "converged_revisions", "every_owner", "last_passes"]

RUNNING = "running"             # begun, not finished (yet, or ever: its process died)
INTERRUPTED = "interrupted"     # stopped early by a signal, or found unfinished
DEFAULT_KEEP = 1000                     # passes per owner
DEFAULT_MAX_AGE = 30 * 86400.0          # seconds


@dataclass(frozen=True)
class HistoryLimits:
    """How many revisions the history keeps, and for how long."""

    keep: int = DEFAULT_KEEP
    max_age: float = DEFAULT_MAX_AGE

    def __post_init__(self) -> None:
        if self.keep < 1 or self.max_age <= 0:
            raise ValueError("history limits must keep at least one pass for some time")


_limits = HistoryLimits()
_limits_lock = threading.Lock()


def configure(*, keep: int = DEFAULT_KEEP, max_age: float = DEFAULT_MAX_AGE) -> HistoryLimits:
    """Set the process-wide limits (the agent applies its config's `history:`); returns the old."""
    global _limits
    with _limits_lock:
        old, _limits = _limits, HistoryLimits(keep=keep, max_age=max_age)
    return old

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
    repeats INTEGER NOT NULL DEFAULT 1,
    first_at REAL,
    error TEXT NOT NULL DEFAULT '',
    selection TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS history_passes_owner ON history_passes (owner, id);
"""
_COLUMNS = (        # (table, column, declaration) added since the table was made
    ("history_passes", "cause", "TEXT NOT NULL DEFAULT ''"),
    ("history_passes", "repeats", "INTEGER NOT NULL DEFAULT 1"),
    ("history_passes", "first_at", "REAL"),
    ("history_passes", "error", "TEXT NOT NULL DEFAULT ''"),
    ("history_passes", "selection", "TEXT NOT NULL DEFAULT ''"),
)


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
    repeats: int = 1                             # identical failed passes merged into this row
    first_at: float | None = None                # started_at of the first of them
    error: str = ""                              # what ended the pass before it finished (disk full...)
    # the services a command line selected (`reconcile apply SOURCE web`: the pass converged, and
    # pruned, only them; a rollback to it re-applies them alone); None: the whole revision
    selection: Selection | None = None

    @property
    def first_started_at(self) -> float:
        return self.started_at if self.first_at is None else self.first_at

    def to_json(self) -> dict[str, Any]:
        """The pass as `reconcile history -o json` and the agent's /v1/history show it (each adds
        its own keys): every field, so the two cannot tell a pass differently."""
        return {"id": self.id, "owner": self.owner, "revision": self.revision, "source": self.source,
                "started_at": self.started_at, "finished_at": self.finished_at, "result": self.result,
                "counts": dict(self.counts), "changes": list(self.changes), "cause": self.cause,
                "error": self.error, "repeats": self.repeats, "first_started_at": self.first_started_at,
                "selection": None if self.selection is None else {
                    "services": list(self.selection.services), "deps": self.selection.deps,
                    "units": list(self.selection.units), "containers": list(self.selection.containers)}}


class HistoryStore:
    """The pass history of one owner in the state DB."""

    def __init__(self, db: Database, owner: str, *, limits: HistoryLimits | None = None) -> None:
        self.db = db
        self.owner = owner
        self._limits = limits
        db.ensure_schema("history", _DDL, _COLUMNS)

    @property
    def limits(self) -> HistoryLimits:
        return self._limits or _limits

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
        selection: Selection | None = None,
    ) -> int:
        new = {"revision": revision, "source": source, "started_at": started_at, "finished_at": finished_at,
               "result": result, "counts_json": json.dumps(dict(counts), sort_keys=True),
               "changes_json": json.dumps([_mask_change(c) for c in changes], sort_keys=True, default=str),
               "cause": cause, "error": error, "selection": selectionmod.to_json(selection)}
        with self.db.tx() as conn:
            pass_id = _merge_repeat(conn, self.owner, new)
            if pass_id is None:
                cur = conn.execute(
                    "INSERT INTO history_passes (owner, revision, source, started_at, finished_at,"
                    " result, counts_json, changes_json, cause, error, selection)"
                    " VALUES (:owner, :revision, :source, :started_at, :finished_at, :result, :counts_json,"
                    " :changes_json, :cause, :error, :selection)", {"owner": self.owner, **new},
                )
                pass_id = int(cur.lastrowid or 0)
            self._prune(conn, now=finished_at)
            return pass_id

    def prune(self, *, now: float | None = None) -> int:
        """Apply the limits now; returns how many rows went."""
        with self.db.tx() as conn:
            return self._prune(conn, now=time.time() if now is None else now)

    def _prune(self, conn: sqlite3.Connection, *, now: float) -> int:
        lim = self.limits
        keep_row = conn.execute(
            "SELECT MAX(id) FROM history_passes WHERE owner = ? AND result = 'converged'", (self.owner,),
        ).fetchone()[0]
        protect = -1 if keep_row is None else int(keep_row)
        cur = conn.execute(
            "DELETE FROM history_passes WHERE owner = ? AND id != ? AND (finished_at < ? OR id <= "
            " COALESCE((SELECT id FROM history_passes WHERE owner = ? ORDER BY id DESC LIMIT 1 OFFSET ?), -1))",
            (self.owner, protect, now - lim.max_age, self.owner, lim.keep),
        )
        return int(cur.rowcount or 0)

    def begin(self, *, revision: str, source: str, started_at: float, cause: str = "",
              selection: Selection | None = None) -> int:
        """Put a pass on record before it changes anything (result `running`); its id."""
        return self.record(revision=revision, source=source, started_at=started_at, finished_at=started_at,
                           result=RUNNING, counts={}, changes=[], cause=cause, selection=selection)

    def finish(
        self,
        pass_id: int,
        *,
        finished_at: float,
        result: str,
        counts: Mapping[str, int],
        changes: Sequence[Mapping[str, Any]],
        error: str = "",
    ) -> None:
        """Complete the record `begin` opened: env and build-arg values masked as `record` does,
        and a failure identical to the pass before it merged into that row (its `repeats`);
        `error`: what ended the pass, or kept it from judging its result (the engine lost)."""
        counts_json = json.dumps(dict(counts), sort_keys=True)
        changes_json = json.dumps([_mask_change(c) for c in changes], sort_keys=True, default=str)
        with self.db.tx() as conn:
            conn.execute(
                "UPDATE history_passes SET finished_at = ?, result = ?, counts_json = ?, changes_json = ?, error = ?"
                " WHERE id = ?", (finished_at, result, counts_json, changes_json, error, pass_id),
            )
            row = conn.execute("SELECT * FROM history_passes WHERE id = ?", (pass_id,)).fetchone()
            if row is not None and _merge_repeat(conn, self.owner, dict(row), before=pass_id) is not None:
                conn.execute("DELETE FROM history_passes WHERE id = ?", (pass_id,))
            self._prune(conn, now=finished_at)

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


# a failed pass equal to the one before it in all of these is that pass again: one row, its
# `repeats` counted (an agent retrying a broken revision every few seconds would fill the history)
_REPEAT = ("revision", "source", "result", "counts_json", "changes_json", "cause", "error", "selection")


def _merge_repeat(conn: sqlite3.Connection, owner: str, new: Mapping[str, Any], *,
                  before: int | None = None) -> int | None:
    """If `new` (a finished pass's columns) failed as the newest pass of `owner` did (the newest
    older than row `before`), that row takes it (one more repeat, the new times) and its id is
    returned; None when it is a pass of its own. The one rule `record` and `finish` both use."""
    if new["result"] in ("converged", RUNNING):
        return None
    prev = conn.execute(
        "SELECT * FROM history_passes WHERE owner = ? AND id < ? ORDER BY id DESC LIMIT 1",
        (owner, before if before is not None else 1 << 62),
    ).fetchone()
    if prev is None or any(prev[k] != new[k] for k in _REPEAT):
        return None
    first = prev["first_at"] if prev["first_at"] is not None else prev["started_at"]
    conn.execute(
        "UPDATE history_passes SET repeats = repeats + 1, first_at = ?, started_at = ?, finished_at = ? WHERE id = ?",
        (first, new["started_at"], new["finished_at"], prev["id"]),
    )
    return int(prev["id"])


def _pass(r: Any) -> Pass:
    return Pass(
        id=r["id"], owner=r["owner"], revision=r["revision"], source=r["source"],
        started_at=r["started_at"], finished_at=r["finished_at"], result=r["result"],
        counts=json.loads(r["counts_json"]), changes=json.loads(r["changes_json"]),
        cause=r["cause"], repeats=r["repeats"], first_at=r["first_at"], error=r["error"],
        selection=selectionmod.from_json(r["selection"]),
    )


def every_owner(db: Database, *, limit: int = 50) -> list[Pass]:
    """Every owner's passes, newest first (`reconcile history` without --owner)."""
    db.ensure_schema("history", _DDL, _COLUMNS)
    rows = db.connect().execute("SELECT * FROM history_passes ORDER BY id DESC LIMIT ?", (limit,))
    return [_pass(r) for r in rows]


def last_passes(db: Database) -> dict[str, Pass]:
    """The newest recorded pass of every owner, by owner."""
    db.ensure_schema("history", _DDL, _COLUMNS)
    rows = db.connect().execute(
        "SELECT * FROM history_passes WHERE id IN (SELECT MAX(id) FROM history_passes GROUP BY owner)"
        " ORDER BY owner")
    return {str(r["owner"]): _pass(r) for r in rows}


def close_unfinished(db: Database) -> int:
    """Mark every pass still `running` as `interrupted`; how many. Only for a writer holding the
    store lock before its own pass begins: no other pass can be running then, so a `running`
    record is one whose process died (kill -9, a second SIGTERM)."""
    db.ensure_schema("history", _DDL, _COLUMNS)
    if db.connect().execute("SELECT 1 FROM history_passes WHERE result = ? LIMIT 1", (RUNNING,)).fetchone() is None:
        return 0                                # the usual case: no write
    with db.tx() as conn:
        cur = conn.execute("UPDATE history_passes SET result = ? WHERE result = ?", (INTERRUPTED, RUNNING))
        return int(cur.rowcount or 0)


def converged_revisions(db: Database) -> dict[str, list[str]]:
    """Every owner's converged revisions, each once, most recently converged first: what
    `reconcile rollback --owner` can re-apply, in the order the kept copies are pruned by."""
    db.ensure_schema("history", _DDL, _COLUMNS)
    rows = db.connect().execute(
        "SELECT owner, revision FROM history_passes WHERE result = 'converged'"
        " GROUP BY owner, revision ORDER BY owner, MAX(id) DESC")
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(str(r["owner"]), []).append(str(r["revision"]))
    return out


_SECRET_PATHS = ("env.", "build.args.")


def _mask_change(change: Mapping[str, Any]) -> Mapping[str, Any]:
    """A change record without the values of env vars and build args (names only)."""
    path = str(change.get("path", ""))
    if not path.startswith(_SECRET_PATHS) or ("old" not in change and "new" not in change):
        return change
    old, new = change.get("old"), change.get("new")
    what = "added" if old is None else "removed" if new is None else "changed"
    return {k: v for k, v in change.items() if k not in ("old", "new")} | {"change": change.get("change", what)}

