"""The client–server split (#21): while an agent holds a state root, `reconcile ps` is a thin
client of the agent's socket (no engine code loaded, no database opened), and what it prints is
the same as when it reads the root itself (no agent, or one that no longer answers)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agent.conftest import AgentProc, wait_for
from tests.agent.test_native import doc, state

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
COMMANDS = (("-a",), ("-a", "--no-trunc"), ("-a", "-o", "json"), ("-q",), ("-aq", "--filter", "label=tier=front"))
# what `ps` must not load when the agent answers: the engine's code, the state database, and
# http.client's email and ssl
ENGINE = ("sqlite3", "reconciler.runtime.native", "reconciler._sqlite", "http.client", "email", "ssl")


def ps(a: AgentProc, *argv: str, importtime: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RECONCILER_ROOT": str(a.root), "RECONCILER_RUN_DIR": str(a.run_dir),
           "RECONCILER_PREFIX": a.prefix}
    proc = subprocess.run([sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "reconciler",
                           "ps", *argv], cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def outputs(a: AgentProc) -> list[str]:
    """What each of COMMANDS prints, with the ages ("Up 3 seconds", "4 seconds ago") made equal."""
    ages = re.compile(r"\b(\d+ seconds?|Less than a second|About a minute|\d+ minutes)\b")
    return [re.sub(r" {2,}", "  ", ages.sub("AGE", ps(a, *argv).stdout)) for argv in COMMANDS]


def loaded(a: AgentProc) -> set[str]:
    """The modules `reconcile ps -a` imports."""
    stderr = ps(a, "-a", importtime=True).stderr
    return {ln.rsplit("|", 1)[1].strip() for ln in stderr.splitlines() if ln.startswith("import time:")}


def engine_modules(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.startswith(ENGINE))


def test_ps_is_served_by_the_agent_and_prints_what_it_prints_without_one(
        tmp_path: Path, native_agent: AgentProc, busybox_image: str) -> None:
    a = native_agent
    (tmp_path / "m" / "web.yaml").write_text(doc("web", busybox_image, "sleep 3600").replace(
        "metadata: {name: web}", "metadata: {name: web, labels: {tier: front}}"))
    (tmp_path / "m" / "job.yaml").write_text(doc("job", busybox_image, "exit 3", restart="'no'"))
    a.start()
    wait_for("web running, job exited", lambda: {n: str(c.status) for n, c in state(a).items()}
             == {"web": "running", "job": "exited"})

    served = outputs(a)
    assert engine_modules(loaded(a)) == []                      # the agent answered: no engine here
    assert "web" in served[0]
    assert "Exited (3)" in served[0]                            # job
    assert len(served[4].split()) == 1                          # the label filter went to the agent

    a.kill9()                                                   # its agent.json stays, nobody answers
    assert (a.root / "agent.json").exists()
    read_here = outputs(a)
    assert "sqlite3" in engine_modules(loaded(a))               # it read the root itself
    assert read_here == served
