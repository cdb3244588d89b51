"""`reconcile exec` on the native engine, as `docker exec` behaves: it runs as the user, in the
directory and with the environment asked (`-u`, `-w`, `-e`), with or without a terminal; it
returns when the command's process exits, whatever background child still holds its output; a
command that cannot be run exits 126 with the runtime's words (not runc's log line)."""

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


def test_exec_as_a_user_in_a_directory_with_an_environment(cli: tuple[Reconcile, Path], box: Reconcile) -> None:
    said = box("exec", "-u", "65534", "-w", "/bin", "-e", "X=1", "box", "sh", "-c", "echo X=$X; pwd; id -u").stdout
    assert said == "X=1\n/bin\n65534\n"
    # -e KEY takes its value here (docker's CLI), a KEY set nowhere here is left unset
    os.environ["RECONCILER_TEST_FROM_HERE"] = "here"
    try:
        done = _fed(cli[1], b"", "exec", "-u", "app", "-e", "RECONCILER_TEST_FROM_HERE", "-e", "PATH",
                    "-e", "RECONCILER_TEST_NOWHERE", "box", "sh", "-c",
                    "echo $(id -u):$(id -g) $HOME $RECONCILER_TEST_FROM_HERE ${RECONCILER_TEST_NOWHERE-unset}")
    finally:
        del os.environ["RECONCILER_TEST_FROM_HERE"]
    assert (done.returncode, done.stdout) == (0, b"1000:1000 /home/app here unset\n"), done.stderr
    refused = box("exec", "-u", "nobody-here", "box", "true", check=False)
    assert refused.returncode == 126                    # cannot start: docker exec's code
    assert "unable to find user nobody-here" in refused.stderr


def test_exec_it_on_a_terminal_as_a_user(cli: tuple[Reconcile, Path], box: Reconcile) -> None:
    import select

    config = native_config_of(cli[1])
    env = {**os.environ, "RECONCILER_ROOT": str(config.root), "RECONCILER_RUN_DIR": str(config.run_dir),
           "RECONCILER_PREFIX": config.name_prefix}
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", "exec", "-it", "-u", "app", "-w", "/home/app",
                             "box", "sh"], cwd=REPO, env=env, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    shown, sent = b"", False
    deadline = time.monotonic() + 30
    try:
        while proc.poll() is None:
            assert time.monotonic() < deadline, shown
            if select.select([master], [], [], 0.1)[0]:
                try:
                    shown += os.read(master, 4096)
                except OSError:
                    break
            if not sent and b"$" in shown:          # a user's prompt
                os.write(master, b"echo me=$(id -u) at=$(pwd); exit 3\r")
                sent = True
        assert proc.wait(timeout=10) == 3, shown
        assert b"me=1000 at=/home/app" in shown
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
