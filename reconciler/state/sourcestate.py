"""What the agent remembers of each of its sources across restarts, in the state DB.

An operator's explicit actions outlive the agent's process, as Flux's `suspend` field does: a
rollback's pin (`reconcile rollback NAME`) and a suspend through the API stay until `resume`
(`reconcile rollback --resume NAME`, `POST /v1/sources/NAME {"suspend": false}`) clears them,
whatever `systemctl restart`, an upgrade or a reboot happens between. With them, the converged
revisions kept for rollback (newest first), so a restarted agent still finds the snapshots it
kept (and keeps them); and what image update policies announced (agent/updates.py
`Follower.memo`), so a restart announces no tag again.

One row per source name (the agent's config names its sources); a source removed from the
config keeps its row, which a source added again under the name finds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence

from reconciler._dataclass import dataclass, field
from reconciler._sqlite import Database

__all__ = ["Remembered", "SourceMemory"]

_DDL = """
CREATE TABLE IF NOT EXISTS agent_sources (
    source TEXT PRIMARY KEY,
    pinned TEXT NOT NULL DEFAULT '',
    suspended INTEGER NOT NULL DEFAULT 0,
    good TEXT NOT NULL DEFAULT '[]',
    announced TEXT NOT NULL DEFAULT '{}',
    updated_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Remembered:
    """A source's remembered state; the defaults are a source never acted on."""

    pinned: str = ""                    # the revision a rollback pinned it to ("": follows the source)
    suspended: bool = False             # suspended through the API
    good: tuple[str, ...] = ()          # converged revisions kept for rollback, newest first
    announced: Mapping[str, str] = field(default_factory=dict)   # Follower.memo(): "running:web" -> ref


class SourceMemory:
    """Reads and writes the `agent_sources` rows of one state DB."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.ensure_schema("agent_sources", _DDL)

    def load(self, source: str) -> Remembered:
        row = self.db.connect().execute(
            "SELECT pinned, suspended, good, announced FROM agent_sources WHERE source = ?", (source,)).fetchone()
        if row is None:
            return Remembered()
        try:
            good = tuple(str(g) for g in json.loads(row["good"]))
            announced = {str(k): str(v) for k, v in json.loads(row["announced"]).items()}
        except (ValueError, AttributeError, TypeError):
            good, announced = (), {}
        return Remembered(pinned=str(row["pinned"]), suspended=bool(row["suspended"]), good=good,
                          announced=announced)

    def _set(self, source: str, column: str, value: object) -> None:
        with self.db.tx() as c:
            c.execute("INSERT INTO agent_sources (source, updated_at) VALUES (?, ?) ON CONFLICT(source) DO NOTHING",
                      (source, time.time()))
            c.execute(f"UPDATE agent_sources SET {column} = ?, updated_at = ? WHERE source = ?",  # noqa: S608 - our column names
                      (value, time.time(), source))

    def pin(self, source: str, revision: str) -> None:
        """Pin (a revision id) or unpin ("")."""
        self._set(source, "pinned", revision)

    def suspend(self, source: str, suspended: bool) -> None:
        self._set(source, "suspended", 1 if suspended else 0)

    def keep_good(self, source: str, revisions: Sequence[str]) -> None:
        """The converged revisions kept for rollback, newest first (written when they change)."""
        self._set(source, "good", json.dumps(list(revisions)))

    def announce(self, source: str, announced: Mapping[str, str]) -> None:
        self._set(source, "announced", json.dumps(dict(sorted(announced.items()))))
