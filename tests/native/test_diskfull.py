"""A full state root is an ordinary error (#13): the state root on a small tmpfs of the test's
own, an image larger than it, then `pull`, `--once`, `image prune`, `history` and `status` as a
user runs them; then the tmpfs grows and the same commands succeed."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.execution.helpers import write
from tests.helpers import images
from tests.helpers.host import Host
from tests.helpers.registry import RegistryServer

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BIG = 12 << 20                     # the random layer: incompressible, larger than the tmpfs


@contextlib.contextmanager
def tmpfs_root(tmp: Path, size: str) -> Iterator[tuple[Host, Path]]:
    """A Host whose state root is on a tmpfs of `size` mounted at tmp/disk (its run dir is
    not); torn down, then unmounted, even when the test failed."""
    disk = tmp / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(disk)], check=True)
    try:
        host = Host(tmp)
        host.config = dataclasses.replace(host.config, root=disk / "root")
        try:
            yield host, disk
        finally:       # room for the teardown, whatever the test (or a regression) left on the disk
            subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
            left = host.teardown()
            assert left == [], f"left on the host: {left}"
    finally:
        if subprocess.run(["umount", str(disk)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], check=True)    # busy: a failed teardown's open files


def reconcile(host: Host, *args: str, engine: bool | None = True) -> subprocess.CompletedProcess[str]:
    """`reconcile ARGS` in a process of its own, as a user runs it, against `host` (`engine`
    None: ARGS name it, before a `run`'s image: what follows that is the container's command)."""
    flags = [] if engine is None else host.cli_args() if engine else host.cli_args()[:-2]   # without --runtime
    return subprocess.run([sys.executable, "-m", "reconciler", *args, *flags], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300, check=False)


def assert_one_error(proc: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    """The command exited `code` with one `error:` line (and its hint), no traceback."""
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for w in words:
        assert w in errors[0], errors[0]
    assert "\n  hint: free " in proc.stderr, proc.stderr
    return errors[0]


def needed(error: str) -> float:
    """The MB an error says the operation needs."""
    found = re.search(r"; it needs at least ([0-9.]+)MB( for the download, more to unpack it)?$", error)
    assert found, error
    return float(found.group(1))


def leftovers(host: Host) -> tuple[list[str], list[str]]:
    """Partial downloads and pull leases in the state root."""
    ingest = host.config.root / "ingest"
    partial = sorted(str(p.relative_to(ingest)) for p in ingest.rglob("*")) if ingest.exists() else []
    with contextlib.closing(sqlite3.connect(host.config.root / "state.db")) as db:
        leases = [str(r[0]) for r in db.execute("SELECT id FROM pull_leases")]
    return partial, leases


@pytest.fixture
def big_image(registry: RegistryServer, tmp_path: Path) -> str:
    """busybox plus a layer of 12 MiB of random bytes, pushed to the session registry."""
    layout = tmp_path / "layout"
    big = images.layer_tar([images.Entry("big.bin", os.urandom(BIG))])
    images.write_layout(layout, [images.busybox_layer(), big],
                        config={"Cmd": ["sleep", "3600"], "Env": ["PATH=/bin"]})
    ref = f"{registry.host}/t{secrets.token_hex(4)}/big:1"
    images.push_layout(layout, ref)
    return ref


def test_a_full_state_root_is_an_error_that_cleans_up_and_space_brings_the_commands_back(
        big_image: str, tmp_path: Path) -> None:
    write(tmp_path / "m", "big.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: big}}
        spec: {{image: "{big_image}", networks: [none]}}
        """)
    with tmpfs_root(tmp_path, "8m") as (host, disk):
        pull = reconcile(host, "pull", big_image, engine=False)
        line = assert_one_error(pull, 3, f"no space left on {disk} (tmpfs", "free of 8.39MB) ",
                                f"while pulling {big_image}; it needs at least ")
        assert needed(line) >= BIG / 1e6                      # the random layer; busybox's too if not unpacked
        # the download is not all: the layers unpacked take room too
        assert line.endswith(" for the download, more to unpack it"), line
        assert f"\n  hint: free more than {line.rsplit('at least ', 1)[1].split()[0]} on {disk} " in pull.stderr
        assert leftovers(host) == ([], [])                      # no partial download, no lease
        # `run` says it as pull does, with docker run's code for its own failure (3 may be the container's)
        run = reconcile(host, "run", *host.cli_args(), "--rm", "--network", "none", big_image, "true", engine=None)
        assert_one_error(run, 125, f"no space left on {disk} (tmpfs", f"while pulling {big_image}")
        assert leftovers(host) == ([], [])

        once = reconcile(host, "--once", str(tmp_path / "m"))
        line = assert_one_error(once, 3, f"image:{big_image}: no space left on {disk}")
        assert needed(line) >= BIG / 1e6
        assert leftovers(host) == ([], [])
        assert "failed: revision " in once.stdout

        history = reconcile(host, "history", "-o", "json")
        assert history.returncode == 0, history.stderr
        last = json.loads(history.stdout)[0]
        assert last["result"] == "failed"
        assert "no space left" in next(c["detail"] for c in last["changes"] if c["resource"] == f"image:{big_image}")

        status = reconcile(host, "status", "--socket", str(tmp_path / "no-agent.sock"), engine=False)
        assert status.returncode == 1, status.stderr
        assert "owner default: degraded (last pass #" in status.stdout
        assert f"failed: image:{big_image}: no space left on {disk}" in status.stdout

        # what the failed pulls did keep (the busybox layer, its snapshot) goes with prune
        prune = reconcile(host, "image", "prune", "-a", engine=False)
        assert prune.returncode == 0, prune.stderr
        assert "Total reclaimed space: " in prune.stdout
        assert list((host.config.root / "blobs" / "sha256").iterdir()) == []
        assert [p for p in (host.config.root / "snapshots").iterdir()] == []

        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        pull = reconcile(host, "pull", "-q", big_image, engine=False)
        assert (pull.returncode, pull.stdout.strip(), pull.stderr) == (0, big_image, "")
        once = reconcile(host, "--once", str(tmp_path / "m"))
        assert once.returncode == 0, (once.stdout, once.stderr)
        assert once.stdout.splitlines()[-1].startswith("converged: ")
        history = reconcile(host, "history", "-o", "json")
        assert [p["result"] for p in json.loads(history.stdout)] == ["converged", "failed"]
        status = reconcile(host, "status", "--socket", str(tmp_path / "no-agent.sock"), engine=False)
        assert status.returncode == 0, status.stdout
        assert "owner default: ok (last pass #" in status.stdout
        assert leftovers(host) == ([], [])


def test_a_pass_that_cannot_even_be_recorded_says_so_and_exits_3(
        busybox_image: str, tmp_path: Path) -> None:
    write(tmp_path / "m", "c.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: sleeper}}
        spec: {{image: "{busybox_image}", command: [sleep, "3600"], networks: [none]}}
        """)
    with tmpfs_root(tmp_path, "8m") as (host, disk):
        history = reconcile(host, "history")                     # the state DB exists, empty
        assert history.returncode == 0, history.stderr
        with open(disk / "filler", "wb") as f, contextlib.suppress(OSError):
            while True:                                          # not a byte left
                f.write(os.urandom(1 << 16))
                f.flush()

        once = reconcile(host, "--once", str(tmp_path / "m"))
        assert_one_error(once, 3, f"no space left on {disk} (tmpfs, 0B free")
        # the pass began and its row could not be written, or the state DB could not even be opened
        # for it (a new table's schema is a write): either way the user reads that nothing was recorded
        assert "\n  note: this failed pass is not in `reconcile history`: there is no room to write it either" \
            in once.stderr or "while opening the state database" in once.stderr, once.stderr
        history = reconcile(host, "history")                     # SQLite cannot even open its -shm file
        assert_one_error(history, 3, f"no space left on {disk}", "the state database")

        (disk / "filler").unlink()
        assert json.loads(reconcile(host, "history", "-o", "json").stdout) == []
        once = reconcile(host, "--once", str(tmp_path / "m"))
        assert once.returncode == 0, (once.stdout, once.stderr)
        assert leftovers(host) == ([], [])


def test_an_archive_written_to_a_full_file_system_names_that_one(tmp_path: Path, host: Host,
                                                                  big_image: str) -> None:
    """`save IMG -o /full/fs/x.tar`: the error names the file system of the archive (not the
    state root's, with a hint of pruning images that frees nothing there), exits 3 and leaves no
    partial file."""
    assert reconcile(host, "pull", big_image).returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(out)], check=True)
    try:
        proc = reconcile(host, "save", big_image, "-o", str(out / "x.tar"), engine=False)
        error = assert_one_error(proc, 3, f"no space left on {out} (tmpfs", f"while writing {out / 'x.tar'}")
        assert "image prune" not in proc.stderr, error
        assert list(out.iterdir()) == []
    finally:
        subprocess.run(["umount", str(out)], check=True)
