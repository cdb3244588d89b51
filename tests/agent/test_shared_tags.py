"""The policy rule sharedTags in a real agent on the native engine: a `restricted` source may not
move a local tag another source's container runs (tests/execution/test_shared_tags_native.py
has the cases through `reconcile apply`; this is the agent's path, where a git source is
restricted by default and the policy reaches the pass through the source's config).

The admin's directory source (`host`) runs a container from REGISTRY/repo:1 with a host
directory bound writable; the team's source, added by a config reload, pulls
REGISTRY/repo:1@sha256:<another image of the repository>, which would tag repo:1 with the
image the team chose. Before, the admin's next pass recreated its container from it.
"""

from __future__ import annotations

import secrets
import signal
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.api.errors import NotFound
from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.config import NativeConfig
from tests.agent.conftest import AgentProc, wait_for
from tests.execution.test_shared_tags_native import push
from tests.helpers.registry import RegistryServer
from tests.runtime.conftest import cleanup, leftovers

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]


@pytest.fixture
def native_agents() -> Iterator[list[AgentProc]]:
    """Native agents a test made: stopped, their containers removed, nothing of them left."""
    made: list[AgentProc] = []
    try:
        yield made
    finally:
        for a in made:
            a.stop()
            rt = NativeRuntime(NativeConfig(root=a.root, run_dir=a.run_dir, name_prefix=a.prefix))
            cleanup(rt)
            left = leftovers(rt.config)
            rt.close()
            assert left == [], f"left on the host: {left}"


def container(m: Path, name: str, image: str, extra: str = "") -> None:
    m.mkdir(parents=True, exist_ok=True)
    (m / f"{name}.yaml").write_text(textwrap.dedent(f"""\
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {name}}}
        spec:
          image: {image}
          networks: [none]
        """) + textwrap.indent(textwrap.dedent(extra), "  "))


def passed(a: AgentProc, name: str) -> dict[str, object] | None:
    """The source's status once a pass of it ended, None before (or while the agent has no such
    source: a reload)."""
    try:
        doc = a.source(name)
    except NotFound:
        return None
    return doc if doc["last_result"] else None


def state(a: AgentProc, name: str) -> tuple[str, str] | None:
    rt = NativeRuntime(NativeConfig(root=a.root, run_dir=a.run_dir, name_prefix=a.prefix))
    try:
        c = next((c for c in rt.list_containers() if c.name == name), None)
        return (c.id, str(c.status)) if c is not None else None
    finally:
        rt.close()


def test_a_restricted_source_of_an_agent_cannot_move_the_tag_another_source_runs(
    tmp_path: Path, native_agents: list[AgentProc], registry: RegistryServer,
) -> None:
    repo = f"a{secrets.token_hex(3)}/app"
    push(tmp_path, registry, repo, "1", "admin")
    evil = push(tmp_path, registry, repo, "evil", "team")
    data = tmp_path / "admin-data"
    data.mkdir()
    admin, team = tmp_path / "admin", tmp_path / "team"
    (admin / "img.yaml").parent.mkdir()
    (admin / "img.yaml").write_text(f"apiVersion: reconciler/v1\nkind: Image\nmetadata: {{name: app}}\n"
                                    f"spec: {{ref: '{registry.host}/{repo}:1', pull: missing}}\n")
    container(admin, "priv", "app", f"""\
        command: [sh, -c, "cp /who /hostdata/who; exec sleep 3600"]
        volumes: ['{data}:/hostdata']
        """)
    container(team, "t", f"{registry.host}/{repo}:1@{evil}", "command: [sleep, '3600']\n")

    sources = [{"name": "admin", "directory": str(admin)}]
    a = AgentProc(tmp_path / "agent", runtime="native", sources=sources)
    a.tmp.mkdir()
    native_agents.append(a)
    a.start()
    wait_for("the admin's container runs", lambda: (s := state(a, "priv")) and s[1] == "running")
    first = state(a, "priv")
    wait_for("the admin's container wrote", lambda: (data / "who").exists())

    a.write_config(sources=[*sources, {"name": "team", "directory": str(team), "policy": "restricted"}])
    a.signal(signal.SIGHUP)
    team_status = wait_for("the team's pass", lambda: passed(a, "team"))
    failed = team_status["failures"]
    assert team_status["last_result"] == "failed", team_status
    assert any(f"a pull by digest would move the local tag {registry.host}/{repo}:1, which another owner holds "
               "(owner 'admin' pulled it here and runs it in Container/priv): refused by policy 'restricted' "
               "(rule sharedTags: false)" in f for f in failed), failed
    assert state(a, "t") is None

    a.reconcile("admin")                                # the admin's next pass: its container as it was
    assert state(a, "priv") == first
    assert (data / "who").read_text() == "admin\n"
