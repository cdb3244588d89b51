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
        return _sqlite_core()
    except ImportError:
        import sqlite3

        return sqlite3


def _sqlite_core() -> Any:
    """`_sqlite3`, imported without `functools` where no module loaded it yet.

    The core's initialisation takes `functools.lru_cache` (each connection's statement cache is
    `lru_cache(size)(connection)`); importing functools, with collections, operator, reprlib,
    keyword and types, is ~9 M instructions, a sixth of `ps` without an agent (#21). Where
    functools is not loaded, this process runs one thread (threading imports it), so for the
    core's import a module whose `lru_cache` makes the same C cache functools' does
    (`_functools._lru_cache_wrapper`) stands in, and is gone again before anything else runs.
    A core that asks more of it gets functools itself."""
    import sys

    stand_in = None if "functools" in sys.modules or "_sqlite3" in sys.modules else _functools_stand_in()
    if stand_in is not None:
        sys.modules["functools"] = stand_in
    try:
        import _sqlite3
    except AttributeError:                  # it wanted more of functools: the real one
        if stand_in is None:
            raise
        del sys.modules["functools"]
        import _sqlite3
    finally:
        if stand_in is not None and sys.modules.get("functools") is stand_in:
            del sys.modules["functools"]
    return _sqlite3


def _functools_stand_in() -> Any:
    """A `functools` module of `lru_cache` alone, making the C cache functools' makes; None
    where that cache goes by no name of its own."""
    import _functools  # type: ignore[import-not-found]  # functools' C core: no stub

    wrapper = getattr(_functools, "_lru_cache_wrapper", None)
    if wrapper is None:
        return None

    def lru_cache(maxsize: int | None = 128, typed: bool = False) -> Any:
        return lambda user_function: wrapper(user_function, maxsize, typed, _cache_info)

    module = type(os)("functools")
    module.lru_cache = lru_cache            # type: ignore[attr-defined]
    return module


def _cache_info(hits: int, misses: int, maxsize: int | None, currsize: int) -> tuple[int, int, int | None, int]:
    """What functools' CacheInfo holds, for a `cache_info()` nobody calls on a statement cache."""
    return (hits, misses, maxsize, currsize)
