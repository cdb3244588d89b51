"""The engine's event journal: what happened to its containers, images, networks and volumes.

Each lifecycle step the engine takes (a container created, started, killed, died, stopped,
destroyed, renamed; an image pulled, tagged, untagged, deleted; a network or volume created or
destroyed) appends one row to the `engine_events` table of the state DB, in the same process
that took the step, whichever it is (the agent, `reconcile run`, the Engine API). A container's
death is journalled by whoever first sees it (`ContainerManager.refresh` reading conmon's exit
file), once. Readers (the Engine API's `/events`) follow the table by sequence number, so every
process's events reach every follower. The newest `KEEP` rows are kept.

Rows hold names, ids, labels, exit codes and signals: never environment values or secrets.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

from reconciler._dataclass import dataclass, field
from reconciler._sqlite import Database

__all__ = ["KEEP", "Event", "Journal"]

KEEP = 10_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS engine_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ns INTEGER NOT NULL,
    type TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    attrs TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Event:
    """One entry of the engine's event journal, as Docker's events have it."""

    seq: int
    time_ns: int
    type: str                   # container | image | network | volume
    action: str                 # create, start, die, ... (Docker's words)
    actor: str                  # the object's id (an image's reference for pull/tag/untag)
    attributes: Mapping[str, str] = field(default_factory=dict)


class Journal:
    """Appends to and reads the `engine_events` table of `db`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.ensure_schema("native.journal", SCHEMA)

    def record(self, type_: str, action: str, actor: str, attributes: Mapping[str, Any] | None = None,
               *, conn: sqlite3.Connection | None = None) -> None:
        """Append one event (inside the caller's transaction when `conn` is given)."""
        attrs = json.dumps({k: str(v) for k, v in (attributes or {}).items()})
        row = (time.time_ns(), type_, action, actor, attrs)
        if conn is not None:
            self._insert(conn, row)
            return
        with self.db.tx() as c:
            self._insert(c, row)

    @staticmethod
    def _insert(conn: sqlite3.Connection, row: tuple[Any, ...]) -> None:
        cur = conn.execute("INSERT INTO engine_events (time_ns, type, action, actor, attrs) VALUES (?, ?, ?, ?, ?)",
                           row)
        if cur.lastrowid and cur.lastrowid % 1000 == 0:
            conn.execute("DELETE FROM engine_events WHERE seq <= ?", (cur.lastrowid - KEEP,))

    def last_seq(self) -> int:
        row = self.db.connect().execute("SELECT MAX(seq) FROM engine_events").fetchone()
        return int(row[0] or 0)

    def last(self, type_: str, actor: str, action: str) -> Event | None:
        """The newest event `action` of `actor` (a container's last `die`, with its exitCode, after
        the container itself is gone), or None."""
        row = self.db.connect().execute(
            "SELECT seq, time_ns, type, action, actor, attrs FROM engine_events WHERE type = ? AND actor = ? "
            "AND action = ? ORDER BY seq DESC LIMIT 1", (type_, actor, action)).fetchone()
        if row is None:
            return None
        return Event(seq=row["seq"], time_ns=row["time_ns"], type=row["type"], action=row["action"],
                     actor=row["actor"], attributes=json.loads(row["attrs"]))

    def last_exit(self, cid: str) -> int | None:
        """The exit code of container `cid`'s last exit (its `die`): what a wait answers for one
        removed meanwhile (AutoRemove: by the engine, at its exit), or None."""
        ev = self.last("container", cid, "die")
        code = ev.attributes.get("exitCode") if ev is not None else None
        return int(code) if code is not None and code.lstrip("-").isdigit() else None

    def started_since(self, cid: str, seq: int) -> tuple[bool, int]:
        """Whether a start of container `cid` was journalled after event `seq` (by any process,
        however short the run it made); and the last event seen, for the next look."""
        events = self.after(seq)
        return (any(e.type == "container" and e.actor == cid and e.action == "start" for e in events),
                events[-1].seq if events else seq)

    def after(self, seq: int, *, since_ns: int = 0, limit: int = 1000) -> list[Event]:
        """Events with a sequence number above `seq` and a time at or after `since_ns`, oldest first."""
        rows = self.db.connect().execute(
            "SELECT seq, time_ns, type, action, actor, attrs FROM engine_events WHERE seq > ? AND time_ns >= ? "
            "ORDER BY seq LIMIT ?", (seq, since_ns, limit)).fetchall()
        return [Event(seq=r["seq"], time_ns=r["time_ns"], type=r["type"], action=r["action"], actor=r["actor"],
                      attributes=json.loads(r["attrs"])) for r in rows]
