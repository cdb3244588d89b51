"""Upgrade of a state root (docs/operations.md, "Upgrade"): a root whose history table an older
version wrote (before `cause`, `repeats`, `first_at` and `error` were added) opens with this
version as it is: its passes are listed, a new pass is recorded, the columns are added in place."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from reconciler.cli.main import main
from tests.execution.helpers import container_doc, fake_root, write

# history_passes as the first versions created it (reconciler/state/history.py before b0ff5c0)
OLD_HISTORY = """
CREATE TABLE history_passes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    revision TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    result TEXT NOT NULL,
    counts_json TEXT NOT NULL DEFAULT '{}',
    changes_json TEXT NOT NULL DEFAULT '[]'
);
"""
OLD_PASS = ("INSERT INTO history_passes (owner, revision, source, started_at, finished_at, result, counts_json) "
            "VALUES ('default', 'feedc0de0000', '/srv/old', ?, ?, 'converged', '{\"created\": 1}')")


def test_a_root_an_older_version_wrote_opens_and_gains_the_new_columns(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = fake_root(tmp_path)
    with sqlite3.connect(root / "state.db") as conn:
        conn.executescript(OLD_HISTORY)
        conn.execute(OLD_PASS, (time.time() - 60, time.time() - 59))     # recent: kept by the history's limits
    conn.close()
    fake = ["--root", str(root), "--runtime", "fake"]

    assert main(["history", "-o", "json", *fake]) == 0
    [old] = json.loads(capsys.readouterr().out)
    assert (old["revision"], old["result"], old["counts"], old["cause"]) == ("feedc0de0000", "converged",
                                                                            {"created": 1}, "")

    write(tmp_path / "m", "web.yaml", container_doc("web"))
    assert main(["apply", str(tmp_path / "m"), *fake]) == 0
    capsys.readouterr()
    assert main(["history", "-o", "json", *fake]) == 0
    new, old_again = json.loads(capsys.readouterr().out)
    assert old_again == old
    assert new["result"] == "converged"
    assert new["counts"]["created"] == 1

    with sqlite3.connect(root / "state.db") as conn:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(history_passes)")}
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()
    assert {"cause", "repeats", "first_at", "error"} <= columns
    assert version == 1                     # a root of before format numbers (0) is stamped with this one's


def test_the_database_carries_its_format_and_a_newer_one_is_refused_unchanged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from reconciler._sqlite import FORMAT

    root = fake_root(tmp_path)
    fake = ["--root", str(root), "--runtime", "fake"]
    write(tmp_path / "m", "web.yaml", container_doc("web"))
    assert main(["apply", str(tmp_path / "m"), *fake]) == 0
    with sqlite3.connect(root / "state.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == FORMAT      # stamped by the version that wrote it
        conn.execute(f"PRAGMA user_version = {FORMAT + 1}")                      # as a newer version would leave it
        tables = conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
    conn.close()
    capsys.readouterr()

    for argv in (["apply", str(tmp_path / "m"), *fake], ["history", *fake]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"was written by a newer reconciler (format {FORMAT + 1}; this version reads format {FORMAT}" in err
        assert "restore the backup of the state root taken before the upgrade" in err
    with sqlite3.connect(root / "state.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == FORMAT + 1
        assert conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall() == tables
    conn.close()
