"""A git source is `restricted` by default in a real agent (fake engine): a commit asking for every
capability and the host's root directory is refused with the policy's located messages and the host
keeps the last good revision; the source's `policy: host`, set in the config and reloaded (SIGHUP),
lets the same commit through."""

from __future__ import annotations

import signal
from pathlib import Path

from reconciler.api.errors import NotFound
from reconciler.runtime.fake import FakeRuntime
from tests.agent.conftest import AgentProc, wait_for
from tests.agent.test_git import TOKEN, labels
from tests.execution.helpers import IMG, container_doc
from tests.sources.gitrepos import GitHTTPServer, Upstream


def revision(a: AgentProc) -> str | None:
    """The source's revision, None while the agent has no such source (between a reload's
    stop of the old source and the start of the new one)."""
    try:
        return str(a.source("shop")["revision"])
    except NotFound:
        return None


def test_a_git_source_is_restricted_unless_its_policy_says_host(tmp_path: Path, agents: list[AgentProc]) -> None:
    up = Upstream(tmp_path / "forge", "shop")
    server = GitHTTPServer(tmp_path / "forge", token=TOKEN)
    try:
        c1 = up.commit({"web.yaml": container_doc("web")})
        token = tmp_path / "token"
        token.write_text(TOKEN)
        token.chmod(0o600)
        src = {"name": "shop", "git": {"url": server.url("shop.git"), "branch": "main", "token_file": str(token)},
               "interval": "0.5s"}
        a = AgentProc(tmp_path / "agent", sources=[src])
        a.tmp.mkdir(parents=True, exist_ok=True)
        FakeRuntime.at_root(a.root).publish(IMG)
        agents.append(a.start())
        wait_for("c1 deployed", lambda: a.source("shop")["revision"] == c1)

        c2 = up.commit({"web.yaml": container_doc("web", extra="capAdd: [ALL]\nvolumes: ['/:/host']")})
        problems = wait_for("c2 refused", lambda: a.source("shop")["problems"])
        assert len(problems) == 2, problems
        assert "web.yaml:8:12: Container/web: spec.capAdd[0]: every capability refused by policy 'restricted'" in problems[0]
        assert "web.yaml:9:13: Container/web: spec.volumes[0]: bind source / is outside the source root" in problems[1]
        assert a.source("shop")["revision"] == c1
        assert labels(a.root)["web"]["reconciler.revision"] == c1      # nothing changed on the host

        src["policy"] = "host"
        a.write_config(sources=[src])
        a.signal(signal.SIGHUP)
        wait_for("c2 deployed under host", lambda: revision(a) == c2)   # the source restarts on the reload
        assert labels(a.root)["web"]["reconciler.revision"] == c2
    finally:
        server.stop()


def test_a_git_source_cannot_bind_its_checkout_writable(tmp_path: Path, agents: list[AgentProc]) -> None:
    """The symlink swap through a git source: a writer job that may write ./data replaces
    data/esc (a directory when the commit is checked) by a symlink, and a reader binding
    ./data/esc would get where it leads (the host's /, or the checkout's .git). Refused when the
    commit loads: nothing of it is made, the last good revision stays; read-only binds pass."""
    up = Upstream(tmp_path / "forge", "shop")
    c1 = up.commit({"web.yaml": container_doc("web")})
    src = {"name": "shop", "git": {"url": str(up.bare), "branch": "main"}, "interval": "0.5s"}
    a = AgentProc(tmp_path / "agent", sources=[src])
    a.tmp.mkdir(parents=True, exist_ok=True)
    FakeRuntime.at_root(a.root).publish(IMG)
    agents.append(a.start())
    wait_for("c1 deployed", lambda: a.source("shop")["revision"] == c1)

    writer = container_doc("writer", extra="job: true\nvolumes: ['./data:/data']\n"
                           "command: [sh, -c, 'rm -rf /data/esc; ln -s / /data/esc']")
    reader = container_doc("reader", extra="volumes: ['./data/esc:/host']\ndependsOn: [writer]")
    up.commit({"data/esc/.keep": "", "swap.yaml": writer + reader})
    problems = wait_for("the swap refused", lambda: a.source("shop")["problems"])
    assert [p.split("@", 1)[1].split("/", 1)[1].split(" is refused")[0] for p in problems] == [
        "swap.yaml:9:13: Container/writer: spec.volumes[0]: a writable bind of ./data",
        "swap.yaml:18:13: Container/reader: spec.volumes[0]: a writable bind of ./data/esc",
    ], problems
    assert all("(rule writableBinds: false)" in p for p in problems)
    assert a.source("shop")["revision"] == c1
    assert set(labels(a.root)) == {"web"}                          # nothing of it was made

    # read-only, they load (the fake engine runs a job for ever: the writer is a plain container here)
    ro = writer.replace("/data']", "/data:ro']").replace("  job: true\n", "") + reader.replace("/host']", "/host:ro']")
    c3 = up.commit({"swap.yaml": ro})
    wait_for("read-only binds deployed", lambda: a.source("shop")["revision"] == c3)
    assert set(labels(a.root)) == {"web", "writer", "reader"}


def test_a_restricted_source_interpolates_nothing_of_the_agents_environment(
    tmp_path: Path, agents: list[AgentProc],
) -> None:
    """A directory source under restricted: `${XSEC_AGENT_SECRET}` in its compose file is empty
    though the agent's environment has it (the container printed it before), the default and
    the project's .env still interpolate."""
    m = tmp_path / "m"
    m.mkdir()
    (m / "compose.yaml").write_text(
        f"services:\n  web:\n    image: {IMG}\n    environment:\n      LEAK: '${{XSEC_AGENT_SECRET}}'\n"
        "      DEFAULT: '${XSEC_AGENT_SECRET:-fallback}'\n      OWN: '${OWN}'\n")
    (m / ".env").write_text("OWN=from-the-source\n")
    a = AgentProc(tmp_path / "agent", sources=[{"name": "shop", "directory": str(m), "policy": "restricted"}])
    a.tmp.mkdir(parents=True, exist_ok=True)
    FakeRuntime.at_root(a.root).publish(IMG)
    agents.append(a.start(env={"XSEC_AGENT_SECRET": "agent-credential"}))
    wait_for("converged", lambda: a.source("shop")["last_result"] in ("converged", "in-sync"))
    assert "agent-credential" not in (a.root / "fake-runtime.json").read_text()
    (web,) = FakeRuntime.at_root(a.root).s["containers"].values()
    assert web["config"]["env"] == {"LEAK": "", "DEFAULT": "fallback", "OWN": "from-the-source"}
