"""The state database's readers outside _sqlite.py (dbformat.query: `ps` without an agent, a
re-pull's tag lookup, #21): read-only, nothing created, a newer format refused like _sqlite
refuses it, and no `sqlite3` package (its datetime adapters) loaded."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from reconciler import dbformat

REPO = Path(__file__).resolve().parents[2]


def make_db(path: Path, version: int) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE t (a TEXT, b INTEGER)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [("x", 1), ("y", 2)])
        conn.execute(f"PRAGMA user_version = {version}")
    conn.close()


def test_a_query_reads_rows_of_this_format_and_refuses_a_newer_one(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    make_db(db, dbformat.FORMAT)
    assert dbformat.query(str(db), "SELECT a, b FROM t WHERE b > ? ORDER BY b", (0,)) == [("x", 1), ("y", 2)]
    assert dbformat.query(str(db), "SELECT nope FROM t") is None            # an error: no answer
    assert dbformat.query(str(db), "DELETE FROM t") is None                 # read-only
    assert dbformat.query(str(db), "SELECT count(*) FROM t") == [(2,)]

    newer = tmp_path / "newer.db"
    make_db(newer, dbformat.FORMAT + 1)
    assert dbformat.query(str(newer), "SELECT a FROM t") is None

    assert dbformat.query(str(tmp_path / "missing.db"), "SELECT 1") is None
    assert dbformat.query(str(tmp_path / "odd?.db"), "SELECT 1") is None     # not a plain URI path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["newer.db", "state.db"]   # nothing created


def test_a_query_loads_sqlite3s_c_core_only(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    make_db(db, dbformat.FORMAT)
    script = ("import sys; from reconciler import dbformat; "
              f"assert dbformat.query({str(db)!r}, 'SELECT a FROM t') == [('x',), ('y',)]; "
              "print(sorted(m for m in ('sqlite3', 'datetime', '_sqlite3') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    assert out == "['_sqlite3']\n"


def test_the_c_core_is_loaded_without_functools_and_caches_statements_as_with_it(tmp_path: Path) -> None:
    """`_sqlite3`'s start takes functools.lru_cache for its statement caches; where functools is
    not loaded yet (a `ps`: ~9 M instructions with collections), a stand-in making the same C
    cache serves, and is gone after: functools imported later is the real one, and sqlite3's
    own connections (the engine's) work beside it."""
    db = tmp_path / "state.db"
    make_db(db, dbformat.FORMAT)
    script = f"""
import sys
from reconciler import dbformat
assert dbformat.query({str(db)!r}, 'SELECT a FROM t ORDER BY b') == [('x',), ('y',)]
loaded = sorted(m for m in ('functools', 'collections') if m in sys.modules)
core = dbformat._sqlite()
conn = core.connect(':memory:', cached_statements=4)
# more distinct statements than the cache holds, each run twice: evictions and hits
assert [conn.execute(f'SELECT {{i}}').fetchone()[0] for i in list(range(10)) * 2] == list(range(10)) * 2
import functools, sqlite3
assert functools.partial(int, base=2)('101') == 5
assert sqlite3.connect(':memory:').execute('SELECT 7').fetchone() == (7,)
print(loaded, 'functools' in sys.modules and hasattr(sys.modules['functools'], 'wraps'))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    assert out == "[] True\n"
