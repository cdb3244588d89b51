"""Rows of the combined benchmark table (bench/bench_all.py).

Each bench script prints its own results as before, and also calls `record()` for every number
the issue's table has a goal for. When the environment names a file in `BENCH_ROWS` (bench_all.py
sets it for each script it runs), the row is appended there as one JSON line; run alone, a script
records nothing and prints exactly what it printed before.

A row is reconcile's number beside a peer's (docker, podman, docker-compose, skopeo) measured in
the same run, so its ratio means something on a loaded machine too; a row without a peer is an
absolute goal (a pass of 500 containers, an idle agent's CPU).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

ENV = "BENCH_ROWS"


@dataclass(frozen=True)
class Row:
    """One measured comparison. `ratio` is ours / theirs (lower is better for times and memory)."""

    what: str
    ours: float
    unit: str
    peer: str | None = None
    theirs: float | None = None
    goal: float | None = None          # the ratio to stay under, or the absolute value without a peer
    script: str = ""

    @property
    def ratio(self) -> float | None:
        return self.ours / self.theirs if self.theirs else None

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        value = self.ratio if self.peer else self.ours
        return value is not None and value <= self.goal


def record(what: str, ours: float, *, unit: str = "s", peer: str | None = None,
           theirs: float | None = None, goal: float | None = None) -> None:
    """Append one row to $BENCH_ROWS (nothing when unset)."""
    path = os.environ.get(ENV)
    if not path:
        return
    import __main__

    script = Path(getattr(__main__, "__file__", "") or "").name
    row = Row(what, float(ours), unit, peer, None if theirs is None else float(theirs), goal, script)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(asdict(row)) + "\n")


def load(path: Path) -> list[Row]:
    """The rows a run appended, in order."""
    if not path.exists():
        return []
    return [Row(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
