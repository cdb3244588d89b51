"""Secrets at rest (#14 item 3): after a real `reconcile apply` the state root is private on
every runtime, and env values are nowhere in the state database's bytes.

Each test applies a Container with an env value and an env file (in a 0700 directory, itself
0644) and then walks the whole root.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import stat
from pathlib import Path

import pytest

from reconciler._sqlite import Database
from reconciler.cli.main import main
from reconciler.state import history, inventory
from tests.docker.conftest import PulledImage, Scope, docker, docker_image, scope  # noqa: F401 - fixtures
from tests.execution.helpers import IMG, container_doc, fake_root
from tests.helpers.host import Host

EXPOSED = stat.S_IRWXG | stat.S_IRWXO


def _manifests(tmp: Path, name: str, image: str, extra: str = "") -> tuple[Path, str, str]:
    """A 0700 source dir with a Container whose env has an inline secret and one from a file."""
    inline, from_file = "inl-" + secrets.token_hex(12), "fil-" + secrets.token_hex(12)
    src = tmp / "src"
    src.mkdir(mode=0o700)
    env_file = src / "app.env"
    env_file.write_text(f"FROM_FILE={from_file}\n")
    os.chmod(env_file, 0o644)                     # readable, but in a 0700 directory
    (src / "app.yaml").write_text(container_doc(name, image=image, extra=(
        f"command: [sleep, '3600']\nenvFiles: [app.env]\nenv: {{INLINE: {inline}}}\n{extra}")))
    return src, inline, from_file


def _exposed(root: Path) -> list[str]:
    """Paths under `root` that group/other could read or search if `root` itself were opened:
    a path with group/other bits whose every directory between `root` and it has them too."""
    out: list[str] = []

    def walk(d: Path, reachable: bool) -> None:
        for entry in os.scandir(d):
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                continue
            if reachable and st.st_mode & EXPOSED:
                out.append(f"{oct(stat.S_IMODE(st.st_mode))} {Path(entry.path).relative_to(root)}")
            if stat.S_ISDIR(st.st_mode) and not os.path.ismount(entry.path):
                walk(Path(entry.path), reachable and bool(st.st_mode & (stat.S_IXGRP | stat.S_IXOTH)))

    walk(root, True)
    return out


def _readable_by_others(root: Path) -> list[str]:
    """Every file or directory under `root` with any group/other bit (the strict check)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in (*dirnames, *filenames):
            st = os.lstat(os.path.join(dirpath, n))
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & EXPOSED:
                out.append(f"{oct(stat.S_IMODE(st.st_mode))} {os.path.relpath(os.path.join(dirpath, n), root)}")
    return out


def _db_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.glob("state.db*"))


def _check_root(root: Path, owner: str, name: str, values: tuple[str, ...], *, strict: bool,
                engine_tables: frozenset[str] = frozenset()) -> None:
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    for f in root.glob("state.db*"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert (root / "revisions").is_dir()                  # a revision copy was kept...
    assert not _readable_by_others(root / "revisions")    # ...with the env file as private as the root
    assert _exposed(root) == []
    if strict:
        assert _readable_by_others(root) == []
    blob = _db_bytes(root)
    assert blob, "no state database"
    if engine_tables:
        # the native engine keeps its container records (the config it runs, env included)
        # in the same file, as dockerd does in its own store: every other table is checked
        conn = sqlite3.connect(root / "state.db")
        try:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            assert {"inv_objects", "history_passes"} <= set(tables)
            for t in set(tables) - engine_tables:
                rows = repr(conn.execute(f"SELECT * FROM {t}").fetchall())
                for v in values:
                    assert v not in rows, f"{v} stored in clear in table {t}"
        finally:
            conn.close()
    else:
        # no env value in the database's bytes (db, WAL, SHM), whatever table
        for v in values:
            assert v.encode() not in blob, f"{v} stored in clear in the state database"
    # ... while the inventory still knows the object, and its rollback config has the env back
    db = Database(root / "state.db")
    try:
        entry = inventory.InventoryStore(db, owner).load().entries[("Container", name)]
        assert set(entry.spec["env"]) == {"INLINE", "FROM_FILE"}
        assert all(str(v).startswith("sha256:") for v in entry.spec["env"].values())
        assert entry.config is not None
        assert set(values) <= set(entry.config["env"].values())
    finally:
        db.close()


def test_fake_root_private_and_no_env_in_db(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    src, inline, from_file = _manifests(tmp_path, "web", IMG)
    assert main(["apply", str(src), "--root", str(root), "--runtime", "fake"]) == 0
    _check_root(root, "default", "web", (inline, from_file), strict=True)


def test_existing_world_readable_root_is_closed_and_old_rows_scrubbed(tmp_path: Path) -> None:
    """A root an older version made (0755, state.db 0644, env values in clear rows)."""
    root = fake_root(tmp_path)
    os.chmod(root, 0o755)
    conn = sqlite3.connect(root / "state.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    os.chmod(root / "state.db", 0o644)
    db = Database(root / "state.db")
    store = inventory.InventoryStore(db, "default")
    conn = db.connect()
    conn.execute("INSERT INTO inv_objects (owner, kind, name, spec_hash, spec_json, config_json, updated_at)"
                 " VALUES ('default', 'Container', 'old', 'h', ?, ?, 0)",
                 ('{"env": {"OLD": "clear-old-value"}}', '{"name": "old", "env": {"OLD": "clear-old-value"}}'))
    db.close()
    os.chmod(root, 0o755)
    os.chmod(root / "state.db", 0o644)

    src, inline, from_file = _manifests(tmp_path, "web", IMG)
    assert main(["apply", str(src), "--root", str(root), "--runtime", "fake"]) == 0
    _check_root(root, "default", "web", (inline, from_file), strict=False)
    assert b"clear-old-value" not in _db_bytes(root)
    db = Database(root / "state.db")
    try:
        old = inventory.InventoryStore(db, "default").load().entries.get(("Container", "old"))
        # the pass pruned it or it is kept masked; never in clear
        assert old is None or old.spec["env"]["OLD"] != "clear-old-value"
    finally:
        db.close()
    del store


_SCRUB_READ = "spec_json, config_json FROM inv_objects"


def _clear_row(db: Database, name: str) -> None:
    """A row as a version before masking wrote it (plain SQL: no code of this version)."""
    conn = db.connect()
    conn.execute("INSERT INTO inv_objects (owner, kind, name, spec_hash, spec_json, config_json, updated_at)"
                 " VALUES ('default', 'Container', ?, 'h', ?, NULL, 0)", (name, '{"env": {"OLD": "clear-old-value"}}'))


def _scrub_reads(root: Path) -> list[str]:
    """The scrub's reads of every row when a new process (a new database object) opens the inventory."""
    db = Database(root / "state.db")
    statements: list[str] = []
    try:
        db.connect().set_trace_callback(statements.append)
        inventory.InventoryStore(db, "default")
        return [s for s in statements if _SCRUB_READ in s]
    finally:
        db.close()


def test_old_rows_are_scrubbed_once_per_database_not_at_every_open(tmp_path: Path) -> None:
    """The scrub parses every inventory row: once it found nothing left to fix, a marker in the
    database says so and the next process does not look again (#21: a no-op pass is
    O(changes)); a database object does not look twice either (a pass's second open, the
    agent's next pass)."""
    root = fake_root(tmp_path)
    db = Database(root / "state.db")
    inventory.InventoryStore(db, "default")
    _clear_row(db, "old")
    statements: list[str] = []
    db.connect().set_trace_callback(statements.append)
    inventory.InventoryStore(db, "default")
    assert [s for s in statements if _SCRUB_READ in s] == []
    db.close()

    assert len(_scrub_reads(root)) == 1                        # the next process scrubs the old row
    row = sqlite3.connect(root / "state.db").execute("SELECT spec_json FROM inv_objects WHERE name = 'old'").fetchone()
    assert "clear-old-value" not in row[0]
    assert _scrub_reads(root) == []                            # and the one after it does not look again


def test_a_row_an_older_version_writes_drops_the_marker(tmp_path: Path) -> None:
    """What this version writes keeps the marker (it is masked); a row written by anything else
    (an older version run on the same root) drops it, and the next process scrubs that row."""
    root = fake_root(tmp_path)
    db = Database(root / "state.db")
    store = inventory.InventoryStore(db, "default")
    store.put(inventory.Entry("Container", "new", "h", spec={"env": {"K": "v"}}, config={"env": {"K": "v"}}))
    db.close()
    assert _scrub_reads(root) == []
    db = Database(root / "state.db")
    _clear_row(db, "old")
    db.close()
    assert len(_scrub_reads(root)) == 1
    row = sqlite3.connect(root / "state.db").execute("SELECT spec_json FROM inv_objects WHERE name = 'old'").fetchone()
    assert "clear-old-value" not in row[0]
    assert _scrub_reads(root) == []


def test_history_never_holds_env_values(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    src, inline, _ = _manifests(tmp_path, "web", IMG)
    assert main(["apply", str(src), "--root", str(root), "--runtime", "fake"]) == 0
    new = "new-" + secrets.token_hex(12)
    text = (src / "app.yaml").read_text().replace(inline, new)
    (src / "app.yaml").write_text(text)
    assert main(["apply", str(src), "--root", str(root), "--runtime", "fake"]) == 0
    db = Database(root / "state.db")
    try:
        h = history.HistoryStore(db, "default")
        assert [p.result for p in h.list()] == ["converged", "converged"]
        # a change record carrying values (as a field-level diff would) keeps the names only
        h.record(revision="r", source="s", started_at=1, finished_at=2, result="failed", counts={},
                 changes=[{"path": "env.INLINE", "old": inline, "new": new},
                          {"path": "build.args.TOKEN", "old": None, "new": new},
                          {"path": "image", "old": "a:1", "new": "a:2"}])
        assert h.list(limit=1)[0].changes == [{"path": "env.INLINE", "change": "changed"},
                                              {"path": "build.args.TOKEN", "change": "added"},
                                              {"path": "image", "old": "a:1", "new": "a:2"}]
    finally:
        db.close()
    blob = _db_bytes(root)
    assert inline.encode() not in blob
    assert new.encode() not in blob


@pytest.mark.usefixtures("busybox_image")
def test_native_root_private_and_no_env_in_db(tmp_path: Path, host: Host, busybox_image: str) -> None:
    src, inline, from_file = _manifests(tmp_path, "web", busybox_image)
    assert host.cli("apply", str(src)) == 0
    # image content (layers, snapshots) keeps the image's modes, below private directories
    _check_root(host.config.root, "default", "web", (inline, from_file), strict=False,
                engine_tables=frozenset({"containers"}))


@pytest.fixture
def docker_apply(tmp_path: Path, scope: Scope, docker_image: PulledImage) -> tuple[Path, str, str, str, str]:  # noqa: F811
    name = scope.name("containers", "web")
    src, inline, from_file = _manifests(tmp_path, name, docker_image.ref)
    root = tmp_path / "root"
    return root, src.as_posix(), name, inline, from_file


def test_docker_root_private_and_no_env_in_db(docker_apply: tuple[Path, str, str, str, str]) -> None:
    root, src, name, inline, from_file = docker_apply
    owner = name.split("-")[0]
    assert main(["apply", src, "--root", str(root), "--runtime", "docker", "--owner", owner]) == 0
    _check_root(root, owner, name, (inline, from_file), strict=True)
