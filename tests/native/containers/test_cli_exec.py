"""`reconcile exec` on the native engine, as `docker exec` behaves: it returns when the command's
process exits, whatever background child still holds its output; a command that cannot be run
exits 126 with the runtime's words (not runc's log line)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.native.containers.test_cli import REPO, Reconcile, native_config_of
from tests.native.containers.test_cli import cli as cli  # the fixture

pytestmark = [pytest.mark.root, pytest.mark.registry]


@pytest.fixture
def box(cli: tuple[Reconcile, Path], busybox_image: str) -> Reconcile:
    reconcile, _ = cli
    reconcile("run", "-d", "--name", "box", busybox_image, "sleep", "1000")
    return reconcile


def _fed(tmp: Path, stdin: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    config = native_config_of(tmp)
    env = {**os.environ, "RECONCILER_ROOT": str(config.root), "RECONCILER_RUN_DIR": str(config.run_dir),
           "RECONCILER_PREFIX": config.name_prefix}
    return subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=REPO, env=env, input=stdin,
                          capture_output=True, check=False, timeout=60)


def test_exec_returns_when_its_process_exits(box: Reconcile) -> None:
    start = time.monotonic()
    done = box("exec", "box", "sh", "-c", "sleep 6 & echo started; exit 2", check=False)
    assert (done.returncode, done.stdout) == (2, "started\n")
    assert time.monotonic() - start < 4


def test_exec_of_a_missing_command_exits_126(box: Reconcile) -> None:
    done = box("exec", "box", "nope", check=False)
    assert done.returncode == 126
    assert 'exec: "nope": executable file not found in $PATH' in done.stderr
    assert "level=error" not in done.stderr


def test_exec_i_feeds_stdin_and_relays_both_streams(cli: tuple[Reconcile, Path], box: Reconcile) -> None:
    done = _fed(cli[1], b"one\ntwo\n", "exec", "-i", "box", "sh", "-c", "read x; echo got $x; cat; echo e >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, b"got one\ntwo\n", b"e\n")
    quiet = _fed(cli[1], b"ignored\n", "exec", "box", "sh", "-c", "cat; echo end")      # no -i: no input
    assert (quiet.returncode, quiet.stdout) == (0, b"end\n")
