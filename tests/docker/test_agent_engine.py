"""The container commands on a state root whose agent runs `runtime: docker` (on the host's
dockerd, or the session's podman service): they talk to the agent's engine, at the address
the agent uses (its DOCKER_HOST, written to `<root>/agent.json`), as `--runtime docker` would,
not to the native engine of that root, which holds no container (`ps` printed an empty table,
`logs NAME` "No such container")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.conftest import AgentProc
from tests.agent.test_native import doc
from tests.docker.conftest import Engine, Scope

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def agent(engine: Engine, tmp_path: Path) -> Iterator[AgentProc]:
    """An agent of `runtime: docker` on `engine`, following the directory tmp/m."""
    (tmp_path / "m").mkdir()
    a = AgentProc(tmp_path, runtime="docker", sources=[{"name": "host", "directory": str(tmp_path / "m")}])
    try:
        yield a.start(env={"DOCKER_HOST": f"unix://{engine.rt.api.socket_path}"})
    finally:
        a.stop()


def reconcile(a: AgentProc, *argv: str) -> subprocess.CompletedProcess[str]:
    """`reconcile ARGV` on the agent's root, with a DOCKER_HOST of its own that names no engine:
    what answers is the engine the agent uses."""
    env = {**os.environ, "RECONCILER_ROOT": str(a.root), "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    env.pop("RECONCILER_RUNTIME", None)
    return subprocess.run([sys.executable, "-m", "reconciler", *argv], cwd=REPO, env=env, capture_output=True,
                          text=True, check=False, timeout=120)


def test_ps_and_logs_on_the_root_of_an_agent_of_another_engine_show_that_engine(
        engine: Engine, agent: AgentProc, tmp_path: Path) -> None:
    s: Scope = engine.scope
    name = s.name("containers", "agentweb")
    (tmp_path / "m" / "web.yaml").write_text(doc(name, engine.image.ref, "echo hello from the agent; sleep 1000"))
    src = agent.reconcile("host")["sources"][0]
    assert src["last_result"] == "converged", (src, agent.log()[-3000:])
    assert json.loads((agent.root / "agent.json").read_text())["engine"] == f"unix://{engine.rt.api.socket_path}"

    ps = reconcile(agent, "ps", "-a", "--filter", f"label=reconciler.name={name}")
    assert ps.returncode == 0, ps.stderr
    rows = ps.stdout.splitlines()
    assert len(rows) == 2, ps.stdout
    assert rows[1].split()[-1] == name
    listed = json.loads(reconcile(agent, "ps", "-a", "-o", "json", "--filter", f"label=reconciler.name={name}").stdout)
    assert [(r["name"], r["status"]) for r in listed] == [(name, "running")]
    logs = reconcile(agent, "logs", name)
    assert (logs.returncode, logs.stdout) == (0, "hello from the agent\n"), logs.stderr
    ran = reconcile(agent, "exec", name, "echo", "in it")
    assert (ran.returncode, ran.stdout) == (0, "in it\n"), ran.stderr

    refused = reconcile(agent, "inspect", name)                       # docker's own document: `docker inspect`
    assert refused.returncode == 2
    assert f"reconcile inspect does not work on the docker engine that the agent holding {agent.root} runs" \
        in refused.stderr
    native = reconcile(agent, "ps", "-a", "--runtime", "docker")      # --runtime given: as asked (its own DOCKER_HOST)
    assert native.returncode == 1
    assert "/nonexistent/docker.sock" in native.stderr


def test_diff_on_the_root_of_an_agent_of_another_engine_compares_with_that_engine(
        engine: Engine, agent: AgentProc, tmp_path: Path) -> None:
    """`reconcile diff DIR --owner SOURCE` on the agent's root plans against the engine the agent
    runs: in sync once the agent converged, drift (exit 1, the container named) once the
    manifest changes; it planned against the root's empty native engine, which has nothing."""
    s: Scope = engine.scope
    name = s.name("containers", "agentdiff")
    (tmp_path / "m" / "web.yaml").write_text(doc(name, engine.image.ref, "sleep 1000"))
    src = agent.reconcile("host")["sources"][0]
    assert src["last_result"] == "converged", (src, agent.log()[-3000:])
    same = reconcile(agent, "diff", str(tmp_path / "m"), "--owner", "host")
    assert same.returncode == 0, same.stdout + same.stderr
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "web.yaml").write_text(doc(name, engine.image.ref, "sleep 2000"))
    drift = reconcile(agent, "diff", str(changed), "--owner", "host")
    assert drift.returncode == 1, drift.stdout + drift.stderr
    assert name in drift.stdout
    assert "create" not in drift.stdout.split(name)[0].splitlines()[-1]     # a change of what runs, not a new one
