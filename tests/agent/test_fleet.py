"""A fleet of labelled single-host agents served by one git repository (#17).

Two real agent processes, each with its own native engine (state root, run dir, name prefix)
and `labels:` in its config, follow the same repository (git http-backend on 127.0.0.1): each
converges only the containers whose spec.placement its labels match, says in its status what is
for other hosts rather than reporting it missing, and a commit that moves a container moves it
from one host to the other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli.main import main
from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.config import NativeConfig
from tests.agent.conftest import AgentProc, wait_for
from tests.agent.test_git import TOKEN
from tests.execution.helpers import container_doc
from tests.runtime.conftest import cleanup, leftovers
from tests.sources.gitrepos import GitHTTPServer, Upstream

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]


def fleet(image: str, *, edge_role: str = "edge") -> str:
    run = 'command: [sleep, "3600"]\nnetworks: [none]\nstopTimeout: 1s'
    return (container_doc("proxy", image=image, extra=f"{run}\nplacement: {{labels: {{role: {edge_role}}}}}")
            + container_doc("db", image=image, extra=f"{run}\nplacement: {{labels: {{role: db}}}}")
            + container_doc("node-exporter", image=image, extra=run))


def running(a: AgentProc) -> set[str]:
    rt = NativeRuntime(NativeConfig(root=a.root, run_dir=a.run_dir, name_prefix=a.prefix))
    try:
        return {c.name for c in rt.list_containers({"reconciler.owner": "fleet"}) if str(c.status) == "running"}
    finally:
        rt.close()


@pytest.fixture
def fleet_agents(tmp_path: Path) -> Iterator[tuple[Upstream, dict[str, AgentProc]]]:
    """The repository, and an agent labelled role=edge and one labelled role=db following it;
    each agent stopped by pid and its engine emptied afterwards (the test fails on leftovers)."""
    up = Upstream(tmp_path / "forge", "fleet")
    server = GitHTTPServer(tmp_path / "forge", token=TOKEN)
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    made: dict[str, AgentProc] = {}
    try:
        for role in ("edge", "db"):
            src = {"name": "fleet", "git": {"url": server.url("fleet.git"), "branch": "main",
                                            "token_file": str(token)}, "interval": "0.5s"}
            made[role] = AgentProc(tmp_path / role, runtime="native", labels={"role": role}, sources=[src])
            made[role].tmp.mkdir(parents=True)
        yield up, made
    finally:
        server.stop()
        left: list[str] = []
        for a in made.values():
            a.stop()
            rt = NativeRuntime(NativeConfig(root=a.root, run_dir=a.run_dir, name_prefix=a.prefix))
            cleanup(rt)
            left += leftovers(rt.config)
            rt.close()
        assert left == [], f"left on the host: {left}"


def converged_at(a: AgentProc, revision: str) -> dict[str, Any] | None:
    src = a.source("fleet")
    return src if src["revision"] == revision and src["last_result"] == "converged" else None


def test_two_labelled_agents_on_one_repository_each_converge_their_part(
    fleet_agents: tuple[Upstream, dict[str, AgentProc]], busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    up, agents = fleet_agents
    edge, db = agents["edge"], agents["db"]
    c1 = up.commit({"fleet.yaml": fleet(busybox_image)})
    edge.start()
    db.start()
    src = wait_for("the edge host converged", lambda: converged_at(edge, c1))
    wait_for("the db host converged", lambda: converged_at(db, c1))
    assert running(edge) == {"proxy", "node-exporter"}
    assert running(db) == {"db", "node-exporter"}

    # what is for other hosts is said so, and is neither a failure nor down
    assert src["elsewhere"] == {"Container/db": "placed on hosts with role=db; this host has role=edge"}
    assert (src["failures"], src["down"], src["error"]) == ([], {}, None)
    assert main(["status", "--socket", str(edge.socket)]) == 0
    out = capsys.readouterr().out
    assert "  not for this host: Container/db: placed on hosts with role=db; this host has role=edge" in out
    assert "degraded" not in out
    plan = edge.api.get("/v1/plan?source=fleet")                  # what a pass would do now: nothing
    assert (plan["in_sync"], plan["elsewhere"]) == (True, src["elsewhere"])

    # a commit moves the proxy to the db hosts: the edge host removes it, the db host runs it
    c2 = up.commit({"fleet.yaml": fleet(busybox_image, edge_role="db")})
    wait_for("the edge host gave the proxy up", lambda: converged_at(edge, c2) and running(edge) == {"node-exporter"})
    wait_for("the db host runs it", lambda: converged_at(db, c2) and running(db) == {"db", "proxy", "node-exporter"})
    assert edge.source("fleet")["elsewhere"] == {
        "Container/db": "placed on hosts with role=db; this host has role=edge",
        "Container/proxy": "placed on hosts with role=db; this host has role=edge"}
    assert db.source("fleet")["elsewhere"] == {}

    # the agent recorded its labels: an apply by hand without them on its root is refused
    from reconciler.state import hostlabels

    assert hostlabels.recorded(edge.root) == {"role": "edge"}


def test_labels_in_a_swarm_agents_config_are_refused(tmp_path: Path) -> None:
    from reconciler.agent import config

    path = tmp_path / "agent.yaml"
    path.write_text(f"runtime: swarm\nlabels: {{role: edge}}\nroot: {tmp_path / 'root'}\n"
                    f"sources: [{{name: s, directory: {tmp_path}}}]\n")
    with pytest.raises(config.ConfigError, match="labels: a Swarm manager places services by its nodes' labels"):
        config.load_config(path)
