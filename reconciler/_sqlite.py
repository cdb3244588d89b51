"""The state database: one sqlite file in WAL mode, shared by the stores that need one.

Each module that keeps records declares its own tables with `ensure_schema()` (idempotent
`CREATE TABLE IF NOT EXISTS` statements), so the DB has no central migration list to edit.
The file carries one format number (sqlite's `user_version`, `FORMAT` here): a version of
reconciler stamps it when it creates tables, and refuses a database a newer format wrote rather
than misread it (docs/operations.md, "Upgrade"): going back is restoring the backup.
Connections are per thread (sqlite3 objects must not cross threads), each closed when its
thread ends; writers serialise on sqlite's own lock with a busy timeout.

The database holds what the reconciler knows about the host (docs/security.md, "Secrets at
rest"), so it is private: its directory (the state root) is made 0700 when the database is
opened, and `state.db`, `state.db-wal` and `state.db-shm` are 0600 whoever created them and
whatever the process umask was.

A full file system (SQLITE_FULL, or a -shm/-wal file that
cannot grow) is raised as `errors.DiskFull` naming the database; a write that failed is rolled
back, so the connection stays usable once there is room again.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from reconciler import dbformat, diskfull
from reconciler._private import make_private

__all__ = ["FORMAT", "Database"]

# The state database's format (dbformat.py, its one home, which `ps` reads without this module)
FORMAT = dbformat.FORMAT

_SIDE_FILES = ("", "-wal", "-shm", "-journal")


class _Held:
    """A thread's connection in its thread-local slot: closed when the thread ends and its
    locals go. A connection and its statement cache refer to each other, so without this a
    finished worker's connection (a pass's executor threads, an API request's) stayed open,
    with its page and statement caches, until a garbage collection found it (#21, memory at rest)."""

    __slots__ = ("conn",)
    _refused = sqlite3.ProgrammingError     # held here: __del__ may run as the interpreter exits

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __del__(self) -> None:
        # run by the ending thread itself; elsewhere sqlite3 refuses (another thread's
        # connection), and the garbage collector closes it as before
        try:
            self.conn.close()
        except self._refused:
            pass


def _wal(conn: sqlite3.Connection, timeout: float = 30.0) -> None:
    """The database in WAL mode (a file property: set once, by whichever process opens it first).
    Setting it takes a shared lock and then an exclusive one; two processes opening a new
    database at once each hold the first and want the second, and sqlite answers one of them
    "database is locked" at once, without its busy timeout (a deadlock it breaks): that one
    tries again once the other's switch is done."""
    if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        return                                  # the common case: a shared lock, no switch
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


class Database:
    """A sqlite database file used from any thread; `tx()` is one write transaction."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        make_private(self.path.parent)
        self._private_files()
        self._local = threading.local()
        self._schemas: set[str] = set()
        self._done: set[str] = set()            # `first`
        self._lock = threading.Lock()

    def connect(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use, WAL, foreign keys on)."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None:
            return held.conn
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            with self._space("opening"):        # even a reader needs room for the -shm file
                _wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA secure_delete=ON")     # replaced rows leave no old bytes behind
            self._check_format(conn)
        except BaseException:
            conn.close()
            raise
        self._local.held = _Held(conn)
        self._private_files()
        return conn

    def _check_format(self, conn: sqlite3.Connection) -> None:
        """Refuse a database a newer version wrote (its format is above FORMAT)."""
        found = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if found > FORMAT:
            from reconciler.errors import TerminalError

            raise TerminalError(
                f"the state database {self.path} was written by a newer reconciler (format {found}; this "
                f"version reads format {FORMAT} and older), so this version could misread it",
                hint="run the newer version again, or restore the backup of the state root taken before "
                "the upgrade (docs/operations.md, \"Upgrade\")")

    def _private_files(self) -> None:
        """state.db (created empty here if missing, so sqlite never makes it with a wider
        mode) and its WAL/SHM files: 0600."""
        if str(self.path) == ":memory:":
            return
        # Never open and close a descriptor of a database this process may have open: closing
        # any descriptor of a file drops every POSIX lock the process holds on it, and sqlite's
        # other connections then write over each other ("database disk image is malformed").
        # Only a file created here, that nobody can have open yet, is opened; others are chmodded.
        try:
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        except FileExistsError:
            pass
        for suffix in _SIDE_FILES:
            side = Path(f"{self.path}{suffix}")
            try:
                if side.stat().st_mode & 0o077:
                    os.chmod(side, 0o600)
            except FileNotFoundError:
                pass

    @contextmanager
    def _space(self, doing: str = "writing") -> Iterator[None]:
        """SQLite's "database or disk is full" (and its I/O errors on a full file system) as
        DiskFull naming this database; other errors pass unchanged."""
        try:
            yield
        except sqlite3.Error as exc:
            full = diskfull.translate(exc, f"{doing} the state database {self.path}", self.path)
            if full is None:
                raise
            raise full from exc

    def ensure_schema(self, name: str, ddl: str, columns: Sequence[tuple[str, str, str]] = ()) -> None:
        """Run `ddl` (a script of idempotent statements) once per process under `name`, then give
        a database made before a column existed each of `columns` it lacks: (table, column,
        declaration) added to a table since it was first made, with a default that means what
        older versions did (an added column is no format change: dbformat.py). Another process
        adding it meanwhile is fine."""
        with self._lock:
            if name in self._schemas:
                return
            with self._space():
                conn = self.connect()
                conn.executescript(ddl)
                if int(conn.execute("PRAGMA user_version").fetchone()[0]) < FORMAT:
                    conn.execute(f"PRAGMA user_version = {FORMAT}")      # a root of before formats: 0
            for table in dict.fromkeys(t for t, _, _ in columns):
                have = {r["name"] for r in self.connect().execute(f"PRAGMA table_info({table})")}
                for column, decl in ((c, d) for t, c, d in columns if t == table and c not in have):
                    try:
                        with self.tx() as c:
                            c.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
                    except sqlite3.OperationalError as exc:     # another process added it meanwhile
                        if "duplicate column" not in str(exc):
                            raise
            self._schemas.add(name)

    def first(self, name: str) -> bool:
        """True the first time `name` is asked of this database object, then False: for work
        that one look per process is enough for (a migration of rows older versions wrote)."""
        with self._lock:
            if name in self._done:
                return False
            self._done.add(name)
            return True

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE): committed on success, rolled back on error
        (a COMMIT that failed too: sqlite may have rolled back already, then ROLLBACK is a no-op)."""
        conn = self.connect()
        with self._space():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None:
            held.conn.close()
            self._local.held = None
