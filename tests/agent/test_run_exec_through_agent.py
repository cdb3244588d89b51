"""The client–server split for `run` and `exec` (#21): while an agent holds a state root, they go
through its engine over its API socket (the CLI loads no engine code), and what they print, on
which stream, and their exit codes are the same as when the CLI opens the engine itself (no
agent, or one that no longer answers)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.agent.conftest import AgentProc, wait_for
from tests.agent.test_native import doc, running
from tests.agent.test_thin_cli import REPO, engine_modules, modules_of, reconcile

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]


def outputs(a: AgentProc, image: str) -> list[tuple[int, str, str]]:
    """Exit code, stdout and stderr of run and exec in their forms without a terminal (a
    detached run's id made equal; its container removed again)."""
    commands = [("run", "--rm", image, "sh", "-c", "echo out; echo err >&2; exit 3"),
                ("run", "--rm", "-e", "WHO=me", "-w", "/tmp", image, "sh", "-c", "echo $WHO $(pwd)"),
                ("run", "--rm", "-l", "x=1", "--name", "web", image, "true"),      # the name is taken
                ("run", "--rm", "-m", "64m", "--pids-limit", "33", "--restart", "no", "-v", "/etc:/h:ro",
                 "--tmpfs", "/t:size=1m", "--health-cmd", "true", "--entrypoint", "sh", image, "-c",
                 "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max;"
                 " cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max;"
                 " ls -d /h /t; touch /h/x"),
                ("run", "--rm", image, "sh", "-c", "grep ' / / ' /proc/self/mountinfo | grep -o volatile"),
                ("run", "--rm", image.rpartition("/")[0] + "/nope:1", "true"),        # a missing image
                ("run", "--rm", "--memory", "lots", image, "true"),                    # bad flags
                ("run", "--rm", "--bogus", image, "true"),
                ("run", "--rm", "-v", "/etc", image, "true"),
                ("run", "-d", "--name", "bg", image, "sleep", "3600"),
                ("exec", "bg", "sh", "-c", "echo a; echo b >&2; exit 4"),
                ("exec", "web", "cat", "/nope"),
                ("exec", "nope", "true"),
                # the last bytes written without a newline are printed without one, by run and logs
                ("run", "--name", "nonl", image, "sh", "-c", "echo a; echo -n out; echo -n err >&2"),
                ("logs", "nonl"),
                ("exec", "-u", "65534", "-w", "/bin", "-e", "X=1", "bg", "sh", "-c", "echo X=$X $(pwd) $(id -u)"),
                ("exec", "bg", "nope"),
                ("exec", "bg", "sh", "-c", "sleep 5 & echo started"),
                ("run", "--rm", "-d", "--name", "gone", image, "sleep", "0.3"),
                ("exec", "-u", "nobody-here", "bg", "true"),        # cannot start: 126, as docker exec
                ("run", "--rm", image, "nosuchcmd"),                # as docker run: 127, not found
                ("run", "--rm", image, "/etc")]                     # and 126, not executable
    done: list[subprocess.CompletedProcess[str]] = []
    try:
        done = [reconcile(a, *argv) for argv in commands]
        # detached --rm: removed at its exit, by the agent's restart manager or, with no agent,
        # by conmon's exit command (containers/autoremove.py)
        wait_for("the detached --rm container removed at its exit",
                 lambda: "gone" not in reconcile(a, "ps", "-a").stdout)
    finally:
        reconcile(a, "rm", "-f", "bg")
        reconcile(a, "rm", "-f", "nonl")
    return [(p.returncode, re.sub(r"^[0-9a-f]{64}\n$", "ID\n", p.stdout), p.stderr) for p in done]


def test_run_and_exec_go_through_the_agent_and_print_what_they_print_without_one(
        tmp_path: Path, native_agent: AgentProc, busybox_image: str) -> None:
    a = native_agent
    (tmp_path / "m" / "web.yaml").write_text(doc("web", busybox_image, "sleep 3600"))
    a.start()
    wait_for("web running", lambda: running(a, "web"))

    for argv in (("run", "--rm", busybox_image, "true"), ("exec", "web", "true")):
        proc = reconcile(a, *argv, importtime=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert engine_modules(modules_of(proc)) == []          # the agent ran it: no engine code here
        if argv[0] == "run":                # nor the config's dataclasses (the flags' JSON is sent),
            # nor socket's enums and json's patterns (thin.Lines: _socket, jsonscan)
            loaded = {"reconciler.runtime.base", "reconciler.spec", "dataclasses", "socket", "json"} & modules_of(proc)
            assert sorted(loaded) == []
    served = outputs(a, busybox_image)
    assert served[0] == (3, "out\n", "err\n")
    assert served[1] == (0, "me /tmp\n", "")
    assert served[2][0] == 125                          # run's own failure (the name taken), as docker run's
    assert "web" in served[2][2]
    assert served[3][:2] == (1, f"33\n{64 << 20}\n/h\n/t\n")    # the flags reached the engine
    assert "Read-only file system" in served[3][2]
    assert served[4] == (0, "volatile\n", "")          # --rm: a file system never synced (the agent's too)
    assert served[5][0] == 125
    assert "nope" in served[5][2]
    assert [rc for rc, _, _ in served[6:9]] == [125, 125, 125]
    assert served[9] == (0, "ID\n", "")
    assert served[10] == (4, "a\n", "b\n")
    assert served[11][0] == 1
    assert "/nope" in served[11][2]
    assert served[12] == (1, "", "error: No such container: nope\n")
    assert served[13] == (0, "a\nout", "err")
    assert served[14] == (0, "a\nout", "err")
    assert served[15] == (0, "X=1 /bin 65534\n", "")                  # as the user, in the directory
    assert served[16][:2] == (126, "")                                  # dockerd's code and words
    assert served[16][2].startswith("OCI runtime exec failed: exec failed: ")
    assert served[17] == (0, "started\n", "")
    assert served[18] == (0, "ID\n", "")
    assert served[19][:2] == (126, "")
    assert "unable to find user nobody-here" in served[19][2]
    assert served[20][:2] == (127, "")
    assert 'exec: "nosuchcmd": executable file not found' in served[20][2]
    assert served[21][:2] == (126, "")
    assert 'exec: "/etc": permission denied' in served[21][2]
    ps = reconcile(a, "ps", "-aq")
    assert len(ps.stdout.split()) == 1                          # web: --rm removed what it ran

    a.kill9()                                                   # its agent.json stays, nobody answers
    assert (a.root / "agent.json").exists()
    proc = reconcile(a, "exec", "web", "true", importtime=True)
    assert "reconciler.runtime.native.containers" in modules_of(proc)   # the CLI opened the engine
    assert outputs(a, busybox_image) == served


def started(a: AgentProc, *argv: str) -> subprocess.Popen[str]:
    """`reconcile ARGV` on the agent's root, running, once it printed its first line."""
    env = {**os.environ, "RECONCILER_ROOT": str(a.root), "RECONCILER_RUN_DIR": str(a.run_dir),
           "RECONCILER_PREFIX": a.prefix}
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", *argv], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    return proc


def interrupted(a: AgentProc, image: str) -> tuple[int, str, str, str]:
    """Ctrl-C to a foreground `run --rm` once it runs: its exit code, the rest of its output, and
    what is left of it afterwards (`ps -aq`)."""
    proc = started(a, "run", "--rm", image, "sh", "-c",
                   "trap 'echo stopped; exit 7' TERM; echo ready; while :; do sleep 0.1; done")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err, reconcile(a, "ps", "-aq").stdout


def test_ctrl_c_stops_a_run_and_a_killed_client_leaves_no_rm_container(
        tmp_path: Path, native_agent: AgentProc, busybox_image: str) -> None:
    a = native_agent
    a.start()
    # Ctrl-C: the agent stops the container (its TERM trap runs), the CLI exits with its code,
    # --rm removed it: as without an agent (below)
    served = interrupted(a, busybox_image)
    assert served == (7, "stopped\n", "", "")

    # the client killed: the agent kills and removes what it ran with --rm
    proc = started(a, "run", "--rm", "--name", "orphan", busybox_image, "sh", "-c", "echo ready; sleep 3600")
    assert reconcile(a, "ps", "-q").stdout.strip()
    proc.kill()
    proc.communicate()
    wait_for("the killed client's --rm container removed", lambda: reconcile(a, "ps", "-aq").stdout == "")

    # the client of a run without --rm killed: the container runs on, as docker leaves it (a
    # Ctrl-C would have stopped it: its TERM trap ends it at once, so a stop would show)
    proc = started(a, "run", "--name", "stays", busybox_image, "sh", "-c",
                   "trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done")
    proc.kill()
    proc.communicate()
    time.sleep(3)                                   # the agent looks for its client between looks
    assert [line.split()[-1] for line in reconcile(a, "ps").stdout.splitlines()[1:]] == ["stays"]
    assert reconcile(a, "rm", "-f", "stays").returncode == 0

    a.kill9()                                                   # no agent: the CLI's own engine
    assert interrupted(a, busybox_image) == served
