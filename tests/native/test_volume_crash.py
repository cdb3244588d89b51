"""Crash safety of named volumes: a removal killed midway (kill -9).

Each kill is made exact by the engine's own step for it made to kill its process (the deletion
of the data moved aside, or the commit after the move). What is left must be put right by the
next engine start (or the next removal), never left on disk unseen.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.runtime import base, opening
from tests.helpers.host import Host

pytestmark = pytest.mark.root

# `reconcile ARGS...` in a process that kills itself (SIGKILL) at the volume removal's deletion
# of the data it moved aside (after the commit), or right after the move (before the commit)
KILLED_AT = """
import os, shutil, signal, sys
from reconciler.cli.main import main

step, args = sys.argv[1], sys.argv[2:]

def killed(*a, **kw):
    os.kill(os.getpid(), signal.SIGKILL)

if step == "rmtree":
    shutil.rmtree = killed
else:
    rename = os.rename

    def moved_then_killed(src, dst, *a, **kw):
        rename(src, dst, *a, **kw)
        if "/.removed-" in str(dst):
            killed()

    os.rename = moved_then_killed
sys.exit(main(args))
"""


def engine_flags(host: Host) -> list[str]:
    """The flags naming the test's engine, for the commands that take no --runtime."""
    return [a for a in host.cli_args() if a not in ("--runtime", "native")]


def volume_with_data(host: Host, name: str) -> Path:
    rt = host.runtime()
    try:
        rt.ensure_volume(base.VolumeConfig(name=name))
        data = rt.containers.volumes.data_dir(name)
    finally:
        rt.close()
    (data / "ledger").write_text("42")
    return data


def killed_removal(host: Host, step: str, name: str) -> None:
    proc = subprocess.run([sys.executable, "-c", KILLED_AT, step, "volume", "rm", name, *engine_flags(host)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr


def volume_ls(host: Host) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", "volume", "ls", *engine_flags(host)],
                          capture_output=True, text=True, timeout=60, check=True)


def engine_start(host: Host) -> None:
    place = opening.Place(root=host.config.root, run_dir=host.config.run_dir, name_prefix=host.config.name_prefix)
    opening.open_runtime("native", place).close()


def aside(host: Host) -> list[str]:
    return sorted(e for e in os.listdir(host.config.root / "volumes") if e.startswith(".removed-"))


@pytest.mark.parametrize("next_step", ["engine start", "volume rm"])
def test_a_removal_killed_before_it_deleted_the_data_leaves_it_listed_then_swept(
        host: Host, next_step: str) -> None:
    """Killed after the commit, before the data moved aside was deleted: the volume is gone, its
    data is not. Before, nothing ever deleted it, nor said it was there."""
    volume_with_data(host, "data")
    volume_with_data(host, "other")
    killed_removal(host, "rmtree", "data")
    assert [e.rsplit("-", 1)[0] for e in aside(host)] == [".removed-data"]
    listed = volume_ls(host)
    assert "data" not in listed.stdout.split()
    assert "note: the data of removed volume(s) data is still on disk" in listed.stderr
    if next_step == "engine start":
        engine_start(host)
    else:
        subprocess.run([sys.executable, "-m", "reconciler", "volume", "rm", "other", *engine_flags(host)],
                       capture_output=True, timeout=60, check=True)
    assert aside(host) == []
    assert "note:" not in volume_ls(host).stderr


def test_a_removal_killed_before_its_commit_gets_the_volume_back_whole(host: Host) -> None:
    """Killed between the move aside and the commit: the record is there, its directory is not
    (the volume reads as lost). The next engine start puts the directory back."""
    volume_with_data(host, "data")
    killed_removal(host, "rename", "data")
    assert "data directory gone" in volume_ls(host).stdout
    engine_start(host)
    assert aside(host) == []
    listed = volume_ls(host)
    assert listed.stdout.split()[-2:] == ["local", "data"]
    assert (host.config.root / "volumes" / "data" / "_data" / "ledger").read_text() == "42"
