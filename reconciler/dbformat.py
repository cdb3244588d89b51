"""The format number of the state database (sqlite's `user_version`): a version of reconciler
refuses a database of a higher number (_sqlite.py), and so do the readers that open it without
_sqlite's imports (`query`: `ps`'s rows, runtime/native/containers/summaries.py, and a re-pull's
tag lookup, runtime/native/images/presence.py, #21).

Stdlib `os` only at import (sqlite3's C core when querying).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["FORMAT", "query"]

# Raise it (and say how an older root is brought forward, in the store that changes) only for a
# change an older version would misread: a new table or an added column is not one.
FORMAT = 1


def query(path: str, sql: str, params: tuple[Any, ...] = (), *, timeout: float = 30.0) -> list[tuple[Any, ...]] | None:
    """The rows of one query of the database at `path`, opened read-only (nothing created or
    changed); None when it cannot be read so, or a newer version wrote it (FORMAT).

    With sqlite3's C core (`_sqlite3`, what `sqlite3.connect` is): the `sqlite3` package adds
    only its datetime adapters and so imports `datetime` and `collections.abc` (~7 M
    instructions, a tenth of `ps` without an agent, #21), which a reader of text and integers
    does not use."""
    if not os.path.exists(path) or any(c in path for c in "?#%"):   # a plain URI path only
        return None
    sqlite = _sqlite()
    try:
        conn = sqlite.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
    except sqlite.Error:
        return None
    try:
        if int(conn.execute("PRAGMA user_version").fetchone()[0]) > FORMAT:
            return None
        return list(conn.execute(sql, params))
    except sqlite.Error:
        return None
    finally:
        conn.close()


def _sqlite() -> Any:
    """sqlite3's C core, or sqlite3 itself where the core goes by no name of its own."""
    try:
        import _sqlite3
    except ImportError:
        import sqlite3

        return sqlite3
    return _sqlite3
