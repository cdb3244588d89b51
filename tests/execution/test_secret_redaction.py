"""A SOPS-decrypted value the engine refuses is quoted by its error (runc quotes the env entry it
refuses): the pass's output, its history and the state DB must show `***` instead of it
(docs/security.md: such values are never in logs, events, errors or API answers)."""

from __future__ import annotations

import json
import secrets
import sqlite3
from pathlib import Path

import pytest

from tests.execution.helpers import container_doc
from tests.helpers.host import Host
from tests.helpers.sops_files import encrypt_dotenv, new_age_key

pytestmark = [pytest.mark.root, pytest.mark.registry]


def test_an_engine_error_quoting_a_sops_value_stores_and_shows_it_masked(
        tmp_path: Path, host: Host, busybox_image: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY"):
        monkeypatch.delenv(var, raising=False)
    key = new_age_key()
    key_file = key.write(tmp_path / "age.key")
    value = "sops-" + secrets.token_hex(8)
    src = tmp_path / "src"
    src.mkdir()
    # a NUL in the value: runc refuses the env entry and quotes it whole in its error
    (src / "secrets.env").write_bytes(encrypt_dotenv({"NULVAL": value + "\0tail"}, key.recipient))
    (src / "app.yaml").write_text(container_doc("web", image=busybox_image,
                                                extra="command: [sleep, '3600']\nenvFiles: [secrets.env]\n"))
    assert host.cli("apply", "--sops-age-key-file", str(key_file), str(src)) == 1
    out = capsys.readouterr()
    assert "***" in out.out + out.err
    assert value not in out.out + out.err
    assert host.cli("history", "-o", "json") == 0
    history = capsys.readouterr().out
    assert value not in history
    assert "***" in json.dumps(json.loads(history))
    with sqlite3.connect(host.config.root / "state.db") as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            rows = db.execute(f"SELECT * FROM {table}").fetchall()
            assert value not in repr(rows), table
    db.close()
