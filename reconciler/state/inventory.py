"""The inventory: what this reconciler created, kept in the state DB (not only in labels).

Flux's rule (gitops-anchors R10): prune = previous inventory minus the new desired set, and an
object whose delete failed stays in the inventory so the next pass retries it. Each entry also
keeps the spec JSON that was applied (what `reconcile diff` compares field by field) and the
runtime config the container was created with (what a rollback re-creates).

The same DB keeps the failure records that stop recreate loops (DESIGN §5.7: one attempt per
(revision, object hash) until the revision changes or the backoff expires) and the TTL cache of
resolved tag digests (one registry HEAD per reference per interval), and which owner's pass
last moved each local image tag (built it, or pulled it), which with the images other owners'
containers run is what the policy rule sharedTags judges a build or pull by (spec/policy.py
`refuse_tag`: a restricted source may not move a tag another owner runs or moved).

`Inventory` is the pure value the planner reads; `InventoryStore` reads and writes it.

Secrets at rest (docs/security.md): env values and build args never reach the database in
clear. `spec_document` replaces each by a hash of (name, value) — enough for `reconcile diff`
to say "env.X: changed", not enough to read it back. The env of the runtime config a rollback
re-creates is kept beside the database, in `<root>/inventory-env/` (0700, files 0600), and
joined back on load; without that file the entry has no rollback config.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from reconciler._dataclass import dataclass, dataclasses, field
from reconciler._private import make_private
from reconciler._sqlite import Database
from reconciler.errors import DiskFull
from reconciler.state.observed import tag_of

__all__ = [
    "Entry",
    "Failure",
    "Inventory",
    "InventoryStore",
    "backoff_delay",
    "mask_value",
    "spec_document",
]

_DDL = """
CREATE TABLE IF NOT EXISTS inv_objects (
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    image_digest TEXT NOT NULL DEFAULT '',
    revision TEXT NOT NULL DEFAULT '',
    spec_json TEXT NOT NULL DEFAULT '{}',
    config_json TEXT,
    deletion_policy TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL,
    PRIMARY KEY (owner, kind, name)
);
CREATE TABLE IF NOT EXISTS inv_failures (
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    revision TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    failed_at REAL NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (owner, kind, name)
);
CREATE TABLE IF NOT EXISTS inv_digests (
    ref TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    resolved_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS inv_tags (
    ref TEXT PRIMARY KEY,           -- the local tag, normalised (state/observed.py tag_of)
    owner TEXT NOT NULL,            -- whose pass moved it last
    how TEXT NOT NULL,              -- build | pull
    moved_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS inv_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS inv_objects_inserted AFTER INSERT ON inv_objects
    BEGIN DELETE FROM inv_meta WHERE key = 'scrubbed:' || NEW.owner; END;
CREATE TRIGGER IF NOT EXISTS inv_objects_updated AFTER UPDATE ON inv_objects
    BEGIN DELETE FROM inv_meta WHERE key = 'scrubbed:' || NEW.owner; END;
"""

# The marker that an owner's rows are all masked (`_scrub` found nothing left to fix). Every
# write of a row drops it (the triggers above: they fire for whatever writes, an older version
# too); `update` sets it again in the same transaction when it was there, as what it writes is masked.
_SCRUBBED = "scrubbed:{owner}"

_NOT_SPEC = frozenset({"name", "origin", "spec_hash", "location_labels"})


def _jsonable(value: Any) -> Any:
    """Plain data of a model; a `transient` field (a secret's content) is never included, an
    `omit_empty` one only when set (the documents of older containers stay the same)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not f.metadata.get("transient") and not (f.metadata.get("omit_empty") and not getattr(value, f.name))}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


MASK_PREFIX = "sha256:"


def mask_value(name: str, value: str) -> str:
    """What is kept of a secret value: a hash of its name and value (a change shows, the
    value does not). Already masked values are returned as they are."""
    if value.startswith(MASK_PREFIX) and len(value) == len(MASK_PREFIX) + 16:
        return value
    digest = hashlib.sha256(b"reconciler-secret\0" + name.encode() + b"\0" + value.encode())
    return MASK_PREFIX + digest.hexdigest()[:16]


def _masked(values: Any) -> Any:
    if not isinstance(values, Mapping):
        return values
    return {str(k): mask_value(str(k), str(v)) for k, v in values.items()}


def _mask_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """A spec document with env values and build args masked."""
    out = dict(doc)
    if "env" in out:
        # a value from a SOPS file is not hashed at all (a short one could be guessed from its
        # hash): its file's keyed digest stands for it, so a change of the file's values shows as
        # a change, and the same values encrypted again as none
        given = out.get("secret_env")
        secret: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
        out["env"] = _masked({k: secret.get(k, v) for k, v in dict(out["env"]).items()})
    build = out.get("build")
    if isinstance(build, Mapping) and "args" in build:
        out["build"] = {**build, "args": _masked(build["args"])}
    return out


def spec_document(obj: object) -> dict[str, Any]:
    """The spec of a manifest model as plain JSON data (what `reconcile diff` compares).

    Name, origin and hash are left out: they are the key or bookkeeping. Env values and
    build args are masked (`mask_value`): this document is stored in the state database.
    """
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        raise TypeError(f"not a spec model: {obj!r}")
    return _mask_doc({k: v for k, v in _jsonable(obj).items() if k not in _NOT_SPEC})


BACKOFF_BASE = 30.0
BACKOFF_MAX = 3600.0


def backoff_delay(attempts: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_MAX) -> float:
    """Seconds to wait after the `attempts`-th failure: base, 2×base, 4×base ... up to cap."""
    return float(min(cap, base * (2 ** max(0, attempts - 1))))


class _Parsed(Mapping[str, Any]):
    """A JSON object of a row, parsed on first use: a pass with nothing to do reads no entry's
    spec or config (#21: 500 rows cost ~15 ms to parse). `make` gives the object, or None
    (then it is empty)."""

    __slots__ = ("_make", "_value")

    def __init__(self, make: Callable[[], Mapping[str, Any] | None]) -> None:
        self._make = make
        self._value: Mapping[str, Any] | None = None

    def _get(self) -> Mapping[str, Any]:
        if self._value is None:
            self._value = self._make() or {}
        return self._value

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __repr__(self) -> str:
        return repr(self._get())


def _object(raw: str) -> dict[str, Any]:
    value = json.loads(raw)
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Entry:
    """One object this reconciler created and still answers for."""

    kind: str                                   # Container | Network | Volume | Image
    name: str
    spec_hash: str
    image_digest: str = ""
    revision: str = ""
    spec: Mapping[str, Any] = field(default_factory=dict)       # applied spec, for diff
    # runtime config, for rollback (None, or empty when its env values are not to be had)
    config: Mapping[str, Any] | None = None
    deletion_policy: str = ""                                   # volumes: "Delete" | "Retain"/""


@dataclass(frozen=True)
class Failure:
    """The last failed attempt at an object: not retried before `retry_at` for the same input."""

    kind: str
    name: str
    revision: str
    spec_hash: str
    attempts: int
    failed_at: float
    error: str = ""

    @property
    def retry_at(self) -> float:
        return self.failed_at + backoff_delay(self.attempts)


@dataclass(frozen=True)
class Inventory:
    """The inventory as the planner sees it: entries and failures by (kind, name)."""

    entries: Mapping[tuple[str, str], Entry] = field(default_factory=dict)
    failures: Mapping[tuple[str, str], Failure] = field(default_factory=dict)

    @classmethod
    def of(cls, entries: Iterable[Entry] = (), failures: Iterable[Failure] = ()) -> Inventory:
        """Build from lists (tests write inventories as literals this way)."""
        return cls(
            entries={(e.kind, e.name): e for e in entries},
            failures={(f.kind, f.name): f for f in failures},
        )


class InventoryStore:
    """The inventory of one owner in the state DB."""

    def __init__(self, db: Database, owner: str) -> None:
        self.db = db
        self.owner = owner
        db.ensure_schema("inventory", _DDL)
        self.env_dir = db.path.parent / "inventory-env"
        # once per database: the marker in inv_meta says its rows were scrubbed and no row was
        # written since but by this version (#21: a no-op pass does not parse every row); and
        # one look per database object (the pass's record, the agent's next pass)
        if db.first(f"inventory-scrub:{owner}") and not self._scrubbed(db.connect()):
            self._scrub()

    # --- env values kept out of the database

    def _env_file(self, kind: str, name: str) -> Path:
        key = hashlib.sha256(f"{self.owner}\0{kind}\0{name}".encode()).hexdigest()[:32]
        return self.env_dir / f"{key}.json"

    def _split_config(self, e: Entry) -> tuple[str | None, dict[str, str] | None]:
        """The config JSON for the database (env masked) and the env to keep beside it."""
        if e.config is None:
            return None, None
        config = dict(e.config)
        env = config.get("env")
        if not isinstance(env, Mapping) or not env:
            return json.dumps(config, sort_keys=True), None
        clear = {str(k): str(v) for k, v in env.items()}
        config["env"] = _masked(clear)
        return json.dumps(config, sort_keys=True), clear

    def _write_env(self, kind: str, name: str, env: dict[str, str] | None) -> None:
        path = self._env_file(kind, name)
        if env is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return
        make_private(self.env_dir)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"owner": self.owner, "kind": kind, "name": name, "env": env}, f, sort_keys=True)
        os.replace(tmp, path)

    def _join_config(self, kind: str, name: str, raw: str | None) -> Mapping[str, Any] | None:
        """The stored config with its env values back; None if they are not to be had."""
        if not raw:
            return None
        config: dict[str, Any] = json.loads(raw)
        env = config.get("env")
        if not isinstance(env, Mapping) or not env:
            return config
        try:
            kept = json.loads(self._env_file(kind, name).read_text())
        except (OSError, ValueError):
            return None                         # no rollback config rather than a wrong one
        clear = kept.get("env") if isinstance(kept, dict) else None
        if not isinstance(clear, dict) or _masked(clear) != dict(env):
            return None
        config["env"] = clear
        return config

    def _scrubbed(self, conn: sqlite3.Connection) -> bool:
        key = _SCRUBBED.format(owner=self.owner)
        return conn.execute("SELECT 1 FROM inv_meta WHERE key = ?", (key,)).fetchone() is not None

    def _mark_scrubbed(self, conn: sqlite3.Connection) -> None:
        conn.execute("INSERT OR REPLACE INTO inv_meta (key, value) VALUES (?, ?)",
                     (_SCRUBBED.format(owner=self.owner), "1"))

    def _scrub(self) -> None:
        """Rows written before env values were masked are rewritten, then the database is marked
        as scrubbed for this owner (`_SCRUBBED`): the next process does not look again."""
        conn = self.db.connect()
        rows = conn.execute(
            "SELECT kind, name, spec_json, config_json FROM inv_objects WHERE owner = ?", (self.owner,),
        ).fetchall()
        fixes = []
        for r in rows:
            spec = json.loads(r["spec_json"])
            masked = _mask_doc(spec) if isinstance(spec, dict) else spec
            config = json.loads(r["config_json"]) if r["config_json"] else None
            entry = Entry(r["kind"], r["name"], "", config=config)
            config_json, env = self._split_config(entry)
            if masked == spec and config_json == (json.dumps(config, sort_keys=True) if config is not None else None):
                continue
            if env is not None:
                self._write_env(r["kind"], r["name"], env)
            fixes.append((json.dumps(masked, sort_keys=True, default=str), config_json,
                          self.owner, r["kind"], r["name"]))
        if not fixes:
            # the marker only spares the next process this look: a database it cannot be written
            # to (full, read-only) is looked at again then
            with contextlib.suppress(sqlite3.Error, DiskFull), self.db.tx() as tx:
                self._mark_scrubbed(tx)
            return
        with self.db.tx() as tx:
            tx.executemany("UPDATE inv_objects SET spec_json = ?, config_json = ?"
                           " WHERE owner = ? AND kind = ? AND name = ?", fixes)
            self._mark_scrubbed(tx)
        # the old pages are still in the main file until a checkpoint copies the new ones over
        with contextlib.suppress(sqlite3.OperationalError):         # busy: the next checkpoint does it
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def load(self) -> Inventory:
        conn = self.db.connect()
        entries = [
            Entry(kind=kind, name=name, spec_hash=spec_hash, image_digest=image_digest, revision=revision,
                  spec=_Parsed(functools.partial(_object, spec_json)),
                  config=_Parsed(functools.partial(self._join_config, kind, name, config_json)) if config_json else None,
                  deletion_policy=deletion_policy)
            for kind, name, spec_hash, image_digest, revision, spec_json, config_json, deletion_policy in conn.execute(
                "SELECT kind, name, spec_hash, image_digest, revision, spec_json, config_json, deletion_policy"
                " FROM inv_objects WHERE owner = ?", (self.owner,))
        ]
        failures = [
            Failure(
                kind=r["kind"],
                name=r["name"],
                revision=r["revision"],
                spec_hash=r["spec_hash"],
                attempts=r["attempts"],
                failed_at=r["failed_at"],
                error=r["error"],
            )
            for r in conn.execute("SELECT * FROM inv_failures WHERE owner = ?", (self.owner,))
        ]
        return Inventory.of(entries, failures)

    def put(self, entry: Entry) -> None:
        """Record (or replace) an object as created/updated by us."""
        self.update(put=[entry])

    def remove(self, kind: str, name: str) -> None:
        """Forget an object (after its delete succeeded)."""
        self.update(remove=[(kind, name)])

    def update(
        self,
        *,
        put: Iterable[Entry] = (),
        remove: Iterable[tuple[str, str]] = (),
        clear_failures: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Several changes in one transaction (a pass writes its results at once)."""
        now = time.time()
        put = list(put)
        rows = []
        for e in put:
            config_json, env = self._split_config(e)
            self._write_env(e.kind, e.name, env)    # before the row: a row never lacks its env
            rows.append((
                self.owner, e.kind, e.name, e.spec_hash, e.image_digest, e.revision,
                json.dumps(_mask_doc(dict(e.spec)), sort_keys=True, default=str),
                config_json, e.deletion_policy, now,
            ))
        remove = list(remove)
        gone = [(self.owner, k, n) for k, n in remove]
        cleared = [(self.owner, k, n) for k, n in clear_failures] + gone
        if not (rows or gone or cleared):
            return
        with self.db.tx() as conn:
            scrubbed = self._scrubbed(conn)
            conn.executemany(
                "INSERT OR REPLACE INTO inv_objects (owner, kind, name, spec_hash, image_digest,"
                " revision, spec_json, config_json, deletion_policy, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.executemany("DELETE FROM inv_objects WHERE owner = ? AND kind = ? AND name = ?", gone)
            conn.executemany("DELETE FROM inv_failures WHERE owner = ? AND kind = ? AND name = ?", cleared)
            if scrubbed:
                self._mark_scrubbed(conn)       # what this wrote is masked
        for k, n in remove:
            self._write_env(k, n, None)

    def claim(self, entries: Iterable[Entry]) -> None:
        """Put on record the objects a pass is about to make, before it makes them, where the
        inventory does not list them yet (a row there is left as it is; no rollback config): a
        pass killed before its record (kill -9, power loss) leaves nothing made that this state
        root does not answer for (the planner refuses what carries the owner's labels and is not
        in the inventory). The pass's record then writes them in full; one whose create failed
        stays, to be made by the next pass or forgotten when its manifest goes."""
        rows = [(self.owner, e.kind, e.name, e.spec_hash, e.image_digest, e.revision,
                 json.dumps(_mask_doc(dict(e.spec)), sort_keys=True, default=str), e.deletion_policy, time.time())
                for e in entries]
        if not rows:
            return
        with self.db.tx() as conn:
            scrubbed = self._scrubbed(conn)
            conn.executemany(
                "INSERT OR IGNORE INTO inv_objects (owner, kind, name, spec_hash, image_digest, revision, spec_json,"
                " config_json, deletion_policy, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)", rows)
            if scrubbed:
                self._mark_scrubbed(conn)       # what this wrote is masked

    def record_failure(
        self, kind: str, name: str, *, revision: str, spec_hash: str, error: str, now: float,
    ) -> Failure:
        """Count a failed attempt; attempts grow while (revision, hash) stays the same."""
        conn = self.db.connect()
        row = conn.execute(
            "SELECT revision, spec_hash, attempts FROM inv_failures"
            " WHERE owner = ? AND kind = ? AND name = ?",
            (self.owner, kind, name),
        ).fetchone()
        attempts = 1
        if row is not None and row["revision"] == revision and row["spec_hash"] == spec_hash:
            attempts = int(row["attempts"]) + 1
        with self.db.tx() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO inv_failures (owner, kind, name, revision, spec_hash,"
                " attempts, failed_at, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (self.owner, kind, name, revision, spec_hash, attempts, now, error[:2000]),
            )
        return Failure(kind, name, revision, spec_hash, attempts, now, error)

    def clear_failure(self, kind: str, name: str) -> None:
        with self.db.tx() as conn:
            conn.execute(
                "DELETE FROM inv_failures WHERE owner = ? AND kind = ? AND name = ?",
                (self.owner, kind, name),
            )

    # --- the tag → digest cache (shared by owners: a registry answer is not owner-specific)

    def cached_digest(self, ref: str, *, now: float, ttl: float) -> str | None:
        row = self.db.connect().execute(
            "SELECT digest, resolved_at FROM inv_digests WHERE ref = ?", (ref,),
        ).fetchone()
        if row is None or now - float(row["resolved_at"]) > ttl:
            return None
        return str(row["digest"])

    def cache_digest(self, ref: str, digest: str, *, now: float) -> None:
        with self.db.tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO inv_digests (ref, digest, resolved_at) VALUES (?, ?, ?)",
                (ref, digest, now),
            )

    # --- local tags (shared by owners: the rule sharedTags weighs one owner's move of a tag
    #     against the others', spec/policy.py refuse_tag)

    def tags_moved(self, moved: Iterable[tuple[str, str]], *, keep: Collection[str], now: float,
                   forget: bool = True) -> None:
        """Record the local tags this owner's pass moved ((tag, "build" | "pull"), tags
        normalised by `tag_of`), and forget its records of tags its revision no longer names
        (not in `keep`; none unless `forget`): a tag it left is no longer its. Writes nothing
        when nothing changed."""
        moves = dict(moved)
        conn = self.db.connect()
        left = [(str(r["ref"]), self.owner) for r in conn.execute("SELECT ref FROM inv_tags WHERE owner = ?",
                                                                  (self.owner,))
                if forget and r["ref"] not in keep and r["ref"] not in moves]
        if not (moves or left):
            return
        with self.db.tx() as tx:
            tx.executemany("INSERT OR REPLACE INTO inv_tags (ref, owner, how, moved_at) VALUES (?, ?, ?, ?)",
                           [(tag, self.owner, how, now) for tag, how in moves.items()])
            tx.executemany("DELETE FROM inv_tags WHERE ref = ? AND owner = ?", left)

    def tags_of_others(self) -> tuple[dict[str, tuple[str, str]], dict[str, dict[str, set[str]]]]:
        """What the other owners hold of the local tags: tag -> (owner, how) for the tags their
        passes moved last, and tag -> {owner: container names} for the images their inventory's
        containers run (those not observed now too: removed by hand, or failed)."""
        conn = self.db.connect()
        moved = {str(r["ref"]): (str(r["owner"]), str(r["how"]))
                 for r in conn.execute("SELECT ref, owner, how FROM inv_tags WHERE owner != ?", (self.owner,))}
        runs: dict[str, dict[str, set[str]]] = {}
        for r in conn.execute("SELECT owner, name, json_extract(spec_json, '$.image') AS image FROM inv_objects"
                              " WHERE kind = 'Container' AND owner != ?", (self.owner,)):
            tag = tag_of(r["image"]) if isinstance(r["image"], str) and r["image"] else None
            if tag is not None:
                runs.setdefault(tag, {}).setdefault(str(r["owner"]), set()).add(str(r["name"]))
        return moved, runs
