"""Backup and restore of a state root as docs/operations.md tells it (#22 docs): sqlite's online
backup of state.db while the engine runs, a tar of the rest of the root (one file system: no
container's rootfs mount), then the machine lost (a reboot's kill) and the root's disk with it;
the backup restored to the same path lists the same containers, images and volumes, and a pass
brings the containers back with their volume's data."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli.main import main
from tests.execution.helpers import write
from tests.helpers.host import Host, reboot

pytestmark = [pytest.mark.root, pytest.mark.registry]


def backup(root: Path, to: Path) -> None:
    """docs/operations.md, "Backup": state.db through sqlite's online backup, then the rest."""
    to.mkdir()
    subprocess.run(["sqlite3", str(root / "state.db"), f".backup '{to / 'state.db'}'"], check=True)
    subprocess.run(["tar", "--one-file-system", "--exclude=./state.db", "--exclude=./state.db-wal",
                    "--exclude=./state.db-shm", "--exclude=./reconcile.lock", "-C", str(root), "-cf",
                    str(to / "root.tar"), "."], check=True)


def restore(backup_dir: Path, root: Path) -> None:
    """docs/operations.md, "Restore": the files, then state.db (no -wal or -shm of another)."""
    root.mkdir(mode=0o700)
    subprocess.run(["tar", "-C", str(root), "-xpf", str(backup_dir / "root.tar")], check=True)
    shutil.copy2(backup_dir / "state.db", root / "state.db")


def listing(host: Host, capfd: pytest.CaptureFixture[str]) -> dict[str, Any]:
    engine = [a for a in host.cli_args() if a not in ("--runtime", "native")]
    seen: dict[str, Any] = {}
    for name, argv, keys in (("containers", ["ps", "-a"], ("id", "name", "image", "labels")),
                             ("images", ["images"], ("repository", "tag", "id", "digest")),
                             ("volumes", ["volume", "ls"], ("name", "labels"))):
        capfd.readouterr()
        assert main([*argv, "-o", "json", *engine]) == 0
        seen[name] = sorted(json.dumps({k: row[k] for k in keys}, sort_keys=True)
                             for row in json.loads(capfd.readouterr().out))
    return seen


def test_a_backed_up_root_restored_after_the_machine_was_lost_lists_and_runs_the_same(
        host: Host, busybox_image: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "m", "app.yaml", f"""
        apiVersion: reconciler/v1
        kind: Network
        metadata: {{name: appnet}}
        spec: {{subnet: {host.subnet}}}
        ---
        apiVersion: reconciler/v1
        kind: Volume
        metadata: {{name: appdata}}
        ---
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: web}}
        spec:
          image: {busybox_image}
          command: [sh, -c, "test -f /data/seed || echo kept > /data/seed; sleep 3600"]
          networks: [appnet]
          volumes: ["appdata:/data"]
          restart: always
        """)
    m = str(tmp_path / "m")
    assert host.cli("apply", m) == 0
    root = host.config.root
    vol = root / "volumes" / "appdata"
    deadline = time.monotonic() + 20
    while not list(vol.rglob("seed")):
        assert time.monotonic() < deadline, f"the container never wrote its volume: {sorted(vol.rglob('*'))}"
        time.sleep(0.1)
    before = listing(host, capfd)
    assert [json.loads(c)["name"] for c in before["containers"]] == ["web"]
    assert before["images"]
    assert before["volumes"]

    backup(root, tmp_path / "backup")                      # online: the container runs, the DB is open

    reboot(host.config)                                    # the machine is lost ...
    shutil.rmtree(root)                                    # ... and the state root's disk with it
    restore(tmp_path / "backup", root)

    assert listing(host, capfd) == before
    assert host.cli("apply", m) == 0                       # the restart policy brings it back
    after = listing(host, capfd)
    assert after == before                                 # the same container (same id), not a new one
    engine = [a for a in host.cli_args() if a not in ("--runtime", "native")]
    capfd.readouterr()
    assert main(["ps", "-o", "json", *engine]) == 0
    assert [(c["name"], c["status"]) for c in json.loads(capfd.readouterr().out)] == [("web", "running")]
    assert [p.read_text() for p in vol.rglob("seed")] == ["kept\n"]
