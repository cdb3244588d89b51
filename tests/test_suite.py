"""The suite's own machinery, checked by nested runs with this suite's conftest as their plugin.

An `xdist_group` keeps its tests on one worker: the podman and swarm tests share one service
per run (tests/runtime/conftest.py); spread over workers, two services fight over the same
bridge names and swarm. And no test may make the host engine's default state root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

GROUPED = """\
import os
import pytest

pytestmark = pytest.mark.xdist_group("one")

@pytest.mark.parametrize("i", range(8))
def test_grouped(i):
    with open(os.environ["GROUP_LOG"], "a") as log:
        log.write(f"grouped {os.environ['PYTEST_XDIST_WORKER']}\\n")

@pytest.mark.parametrize("i", range(2))
@pytest.mark.xdist_group("two")
def test_two_groups(i):
    with open(os.environ["GROUP_LOG"], "a") as log:
        log.write(f"two {os.environ['PYTEST_XDIST_WORKER']}\\n")
"""


def test_an_xdist_group_runs_on_one_worker(tmp_path: Path) -> None:
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-n", "3",
         "--dist", "loadgroup", "-v", "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "GROUP_LOG": str(tmp_path / "ran")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    workers: dict[str, set[str]] = {}
    for line in (tmp_path / "ran").read_text().splitlines():
        name, worker = line.split()
        workers.setdefault(name, set()).add(worker)
    # the two marks make one group of their own ("one_two"), apart from "one"
    assert {name: len(on) for name, on in workers.items()} == {"grouped": 1, "two": 1}, proc.stdout
    assert "test_grouped[7]@one" in proc.stdout
    assert "test_two_groups[1]@one_two" in proc.stdout


DEFAULT_ROOT = """\
import os
import subprocess
import sys
from pathlib import Path

import tests.conftest

def test_makes_the_host_state(tmp_path):
    # the root a bare `reconcile` would use is the session's, not the host's
    assert os.environ["RECONCILER_ROOT"].startswith("/tmp/rtestroot")
    assert "RECONCILER_RUN_DIR" not in os.environ
    made = Path(os.environ["MADE"])
    tests.conftest.HOST_STATE = (made,)       # stands for /var/lib/reconciler
    made.mkdir()
"""


def test_a_run_that_makes_the_host_state_fails(tmp_path: Path) -> None:
    (tmp_path / "test_root.py").write_text(DEFAULT_ROOT)
    made = tmp_path / "made"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "MADE": str(made),
             "RECONCILER_ROOT": "/var/lib/reconciler", "RECONCILER_RUN_DIR": "/run/reconciler"})
    assert "1 passed" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 1, proc.stdout
    assert f"the run made the host engine's {made}" in proc.stdout
