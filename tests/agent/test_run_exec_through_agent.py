"""The client–server split for `run` and `exec` (#21): while an agent holds a state root, they go
through its engine over its API socket (the CLI loads no engine code), and what they print, on
which stream, and their exit codes are the same as when the CLI opens the engine itself (no
agent, or one that no longer answers)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.agent.conftest import AgentProc, wait_for
from tests.agent.test_native import doc, running
from tests.agent.test_thin_cli import engine_modules, modules_of, reconcile

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
                ("run", "-d", "--name", "bg", image, "sleep", "3600"),
                ("exec", "bg", "sh", "-c", "echo a; echo b >&2; exit 4"),
                ("exec", "web", "cat", "/nope"),
                ("exec", "nope", "true")]
    done: list[subprocess.CompletedProcess[str]] = []
    try:
        done = [reconcile(a, *argv) for argv in commands]
    finally:
        reconcile(a, "rm", "-f", "bg")
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
        if argv[0] == "run":                # nor the config's dataclasses (the flags' JSON is sent)
            loaded = {"reconciler.runtime.base", "reconciler.spec", "dataclasses"} & modules_of(proc)
            assert sorted(loaded) == []
    served = outputs(a, busybox_image)
    assert served[0] == (3, "out\n", "err\n")
    assert served[1] == (0, "me /tmp\n", "")
    assert served[2][0] == 1
    assert "web" in served[2][2]
    assert served[3][:2] == (1, f"33\n{64 << 20}\n/h\n/t\n")    # the flags reached the engine
    assert "Read-only file system" in served[3][2]
    assert served[4] == (0, "volatile\n", "")          # --rm: a file system never synced (the agent's too)
    assert served[5] == (0, "ID\n", "")
    assert served[6] == (4, "a\n", "b\n")
    assert served[7][0] == 1
    assert "/nope" in served[7][2]
    assert served[8] == (1, "", "error: no such container: nope\n")
    ps = reconcile(a, "ps", "-aq")
    assert len(ps.stdout.split()) == 1                          # web: --rm removed what it ran

    a.kill9()                                                   # its agent.json stays, nobody answers
    assert (a.root / "agent.json").exists()
    proc = reconcile(a, "exec", "web", "true", importtime=True)
    assert "reconciler.runtime.native.containers" in modules_of(proc)   # the CLI opened the engine
    assert outputs(a, busybox_image) == served
