"""A drop-in directory watched by a real agent process (fake engine: the logic, not containers).

Every step edits files while the agent runs and waits for the agent to converge, or to refuse
and report, as the issue specifies."""

from __future__ import annotations

import http.client
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.cli.main import main
from reconciler.runtime import errors as rterrors
from reconciler.runtime.fake import FakeRuntime
from tests.agent.conftest import AgentProc, free_port, wait_for
from tests.execution.helpers import IMG, container_doc, write

SECRET = "s3cr3t-Value-never-shown"


def containers(root: Path, owner: str | None = None) -> dict[str, Any]:
    rt = FakeRuntime.at_root(root)
    return {c.name: c for c in rt.list_containers({"reconciler.owner": owner} if owner else None)}


def env_of(root: Path, name: str) -> dict[str, str]:
    """The container's env, {} while it does not exist (between remove and create)."""
    try:
        return dict(FakeRuntime.at_root(root).config_of(name).env)
    except rterrors.NotFound:
        return {}


@pytest.fixture
def agent(tmp_path: Path, agents: list[AgentProc]) -> AgentProc:
    a = AgentProc(tmp_path, sources=[{"name": "local", "directory": str(tmp_path / "m")}])
    FakeRuntime.at_root(a.root).publish(IMG)
    (tmp_path / "m").mkdir()
    agents.append(a)
    return a


def test_write_edit_replace_break_fix_delete(tmp_path: Path, agent: AgentProc) -> None:
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web", extra=f"env: {{V: '1', TOKEN: {SECRET}}}"))
    agent.start()
    wait_for("web created", lambda: "web" in containers(agent.root, "local"))
    first = containers(agent.root)["web"].id

    # edit in place: the container is replaced with the new env
    write(m, "web.yaml", container_doc("web", extra=f"env: {{V: '2', TOKEN: {SECRET}}}"))
    wait_for("web recreated with V=2", lambda: env_of(agent.root, "web").get("V") == "2")
    assert containers(agent.root)["web"].id != first

    # atomic replace (an editor's or config management's write-then-rename); the temp file is ignored
    tmp = m / ".web.yaml.tmp"
    tmp.write_text(container_doc("web", extra=f"env: {{V: '3', TOKEN: {SECRET}}}"))
    os.replace(tmp, m / "web.yaml")
    wait_for("web recreated with V=3", lambda: env_of(agent.root, "web").get("V") == "3")
    write(m, "api.yaml", container_doc("api"))
    wait_for("api created", lambda: "api" in containers(agent.root))
    before = {n: c.id for n, c in containers(agent.root).items()}

    # break a file: refused with the user's file:line, nothing pruned or changed
    (m / "api.yaml").write_text("apiVersion: reconciler/v1\nkind: Container\nmetadata: {name: api\n")
    src = wait_for("the broken revision reported", lambda: (s := agent.source("local"))["problems"] and s)
    assert any(p.startswith(f"{m / 'api.yaml'}:") for p in src["problems"]), src["problems"]
    assert "api.yaml:" in src["error"]
    agent.reconcile("local")                            # a pass with the broken file: still no prune
    assert {n: c.id for n, c in containers(agent.root).items()} == before
    metrics = agent.api.get("/metrics")
    assert 'reconciler_source_error{reason="invalid",source="local"} 1.0' in metrics
    assert any(e["type"] == "revision_invalid" for e in agent.events())

    # undo the edit (the revision applied before it, again): the error clears, nothing changes
    write(m, "api.yaml", container_doc("api"))
    wait_for("the error cleared after the revert", lambda: agent.source("local")["error"] is None)
    assert agent.source("local")["degraded"] is False
    assert 'reconciler_source_error{reason="invalid",source="local"} 1.0' not in agent.api.get("/metrics")
    assert any(e["type"] == "revision_fixed" for e in agent.events())
    assert {n: c.id for n, c in containers(agent.root).items()} == before

    # fix it: converges, the error clears
    (m / "api.yaml").write_text("apiVersion: reconciler/v1\nkind: Container\nmetadata: {name: api\n")
    wait_for("broken again", lambda: agent.source("local")["error"] is not None)
    write(m, "api.yaml", container_doc("api", extra="env: {A: '1'}"))
    wait_for("api updated", lambda: env_of(agent.root, "api").get("A") == "1")
    wait_for("the error cleared", lambda: agent.source("local")["error"] is None)
    assert containers(agent.root)["web"].id == before["web"]

    # delete a file: its container is pruned, the other stays
    (m / "api.yaml").unlink()
    wait_for("api pruned", lambda: "api" not in containers(agent.root))
    assert containers(agent.root)["web"].id == before["web"]

    # no secret in status, events, metrics or logs
    seen = str(agent.status()) + str(agent.events()) + agent.api.get("/metrics") + agent.log()
    assert SECRET not in seen


def test_drift_restored_or_only_reported(tmp_path: Path, agent: AgentProc) -> None:
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web"))
    write(m, "db.yaml", container_doc("db", extra="drift: report"))
    agent.start()
    wait_for("both created", lambda: {"web", "db"} <= set(containers(agent.root)))
    agent.api.post("/v1/sources/local", {"suspend": True})     # the test edits the engine's state file
    wait_for("no pass in flight", lambda: not agent.source("local")["running"])
    rt = FakeRuntime.at_root(agent.root)
    rt.remove_container("web", force=True)                     # removed by hand
    rt.remove_container("db", force=True)
    rt.close()
    agent.api.post("/v1/sources/local", {"suspend": False})    # same revision: a drift check
    wait_for("web restored", lambda: "web" in containers(agent.root))
    src = wait_for("db's drift reported", lambda: (s := agent.source("local"))["drift"] and s)
    assert any(d.startswith("container:db:") for d in src["drift"])
    agent.reconcile("local")
    assert "db" not in containers(agent.root)                   # reported, never corrected
    assert any(e["type"] == "drift_reported" for e in agent.events())
    # the agent's plan says what its pass does: the planner made the decision, not a filter after it
    plan = agent.api.get("/v1/plan", source="local")
    assert plan["in_sync"], plan["rendered"]
    assert plan["actions"] == []
    assert plan["drift"] == ["container:db: not found"]


def test_suspend_resume_and_two_owners(tmp_path: Path, agents: list[AgentProc]) -> None:
    a = AgentProc(tmp_path, sources=[{"name": "one", "directory": str(tmp_path / "a")},
                                     {"name": "two", "owner": "team2", "directory": str(tmp_path / "b")}])
    FakeRuntime.at_root(a.root).publish(IMG)
    write(tmp_path / "a", "x.yaml", container_doc("x") + container_doc("x2"))
    write(tmp_path / "b", "y.yaml", container_doc("y"))
    agents.append(a.start())
    wait_for("all created", lambda: {"x", "x2", "y"} <= set(containers(a.root)))
    assert set(containers(a.root, "team2")) == {"y"}

    # one source dropping an object prunes only its own
    write(tmp_path / "a", "x.yaml", container_doc("x"))
    wait_for("x2 pruned", lambda: "x2" not in containers(a.root))
    assert set(containers(a.root)) == {"x", "y"}

    # suspended: changes wait; resumed: applied
    a.api.post("/v1/sources/two", {"suspend": True})
    write(tmp_path / "b", "y.yaml", container_doc("y") + container_doc("y2"))
    a.reconcile("one")
    assert a.source("two")["suspended"] is True
    assert "y2" not in containers(a.root)
    a.api.post("/v1/sources/two", {"suspend": False})
    wait_for("y2 created after resume", lambda: "y2" in containers(a.root))


def test_suspend_and_resume_from_the_cli(tmp_path: Path, agents: list[AgentProc]) -> None:
    """`reconcile suspend [SOURCE...]` and `reconcile resume [SOURCE...]`, as `flux suspend` and
    `flux resume`, find the agent of the root by its agent.json and ask it over its socket: a
    suspended source applies nothing (a change waits, its containers are left as they are) and
    `status` says `[suspended]`; resume applies what waited. A name the agent does not have
    changes nothing (exit 2, its sources named); no agent running exits 1 and says what to do.
    Before, the CLI had no such commands: only the config's `suspend: true` or the API."""
    from tests.agent.test_thin_cli import reconcile

    a = AgentProc(tmp_path, sources=[{"name": "one", "directory": str(tmp_path / "a")},
                                     {"name": "two", "owner": "team2", "directory": str(tmp_path / "b")},
                                     {"name": "held", "directory": str(tmp_path / "c"), "suspend": True}])
    FakeRuntime.at_root(a.root).publish(IMG)
    write(tmp_path / "a", "x.yaml", container_doc("x"))
    write(tmp_path / "b", "y.yaml", container_doc("y"))
    write(tmp_path / "c", "z.yaml", container_doc("z"))
    agents.append(a.start())
    wait_for("x and y created", lambda: {"x", "y"} <= set(containers(a.root)))
    wait_for("their passes done", lambda: all(s["last_result"] == "converged" and not s["running"]
                                              for s in a.status()["sources"] if s["name"] != "held"))
    y = containers(a.root)["y"].id

    done = reconcile(a, "suspend", "two")
    assert (done.returncode, done.stdout, done.stderr) == (0, "two: suspended\n", "")
    assert [(s["name"], s["suspended"]) for s in a.status()["sources"]] == [
        ("held", True), ("one", False), ("two", True)]
    write(tmp_path / "b", "y.yaml", container_doc("y", extra="env: {V: '2'}") + container_doc("y2"))
    a.reconcile("one")
    a.reconcile("two")                                  # asked: a suspended source runs no pass
    assert "y2" not in containers(a.root)
    assert containers(a.root)["y"].id == y              # left as it is
    shown = reconcile(a, "status")
    assert "source two (directory" in shown.stdout
    assert "[suspended]" in shown.stdout.split("source two (directory")[1].splitlines()[0]
    again = reconcile(a, "suspend", "two")
    assert (again.returncode, again.stdout) == (0, "two: already suspended\n")

    # a name the agent does not have: nothing changed, whatever else was named
    wrong = reconcile(a, "suspend", "one", "nope")
    assert wrong.returncode == 2
    assert "the agent has no source 'nope' (its sources: held, one, two): nothing was suspended" in wrong.stderr
    assert a.source("one")["suspended"] is False
    assert reconcile(a, "resume", "nope").returncode == 2
    assert a.source("two")["suspended"] is True

    # resume (every source): what waited is applied; one not suspended is said so
    back = reconcile(a, "resume", "-o", "json")
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["resumed"] == ["held", "two"]
    assert "the agent's config says `suspend: true` for held: a reload or restart" in back.stderr
    wait_for("y2 created after resume", lambda: {"y2", "z"} <= set(containers(a.root)))
    assert [s["suspended"] for s in a.status()["sources"]] == [False, False, False]
    quiet = reconcile(a, "resume", "one")
    assert (quiet.returncode, quiet.stdout) == (0, "one: not suspended\n")
    by_socket = reconcile(a, "suspend", "--socket", str(a.socket), "one")
    assert (by_socket.returncode, by_socket.stdout) == (0, "one: suspended\n")

    # no agent: exit 1, saying what to do
    a.stop()
    gone = reconcile(a, "suspend", "one")
    assert gone.returncode == 1
    assert gone.stderr.startswith(f"error: cannot suspend: no agent runs for the state root {a.root}"), gone.stderr
    assert "hint: a source's suspend is the running agent's: start it" in gone.stderr
    assert reconcile(a, "resume").returncode == 1


def test_rollback_pins_then_resume_follows(tmp_path: Path, agent: AgentProc, capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web", extra="env: {V: '1'}"))
    agent.start()
    wait_for("v1", lambda: "web" in containers(agent.root) and env_of(agent.root, "web").get("V") == "1")
    write(m, "web.yaml", container_doc("web", extra="env: {V: '2'}"))
    wait_for("v2", lambda: env_of(agent.root, "web").get("V") == "2")
    wait_for("v2 converged", lambda: agent.source("local")["last_good"] == agent.source("local")["revision"])
    capsys.readouterr()
    assert main(["history", "--root", str(agent.root), "-o", "json"]) == 0      # what `history` says of v1
    older = [p for p in json.loads(capsys.readouterr().out)
             if p["result"] == "converged" and p["revision"] != agent.source("local")["revision"]]
    assert older
    assert older[0]["rollback"]["available"] is True, older[0]
    assert f"reconcile rollback local {older[0]['revision'][:12]}" in older[0]["rollback"]["reason"]
    assert main(["rollback", "local", "--socket", str(agent.socket)]) == 0
    assert "pinned to" in capsys.readouterr().out
    assert env_of(agent.root, "web").get("V") == "1"
    agent.reconcile("local")
    assert env_of(agent.root, "web").get("V") == "1"           # pinned: the newest is not applied
    agent.stop()                                                # the pin outlives the agent, and its snapshot
    agent.start()
    agent.reconcile("local")
    assert env_of(agent.root, "web").get("V") == "1"
    assert agent.source("local")["pinned"] == agent.source("local")["revision"]
    assert main(["rollback", "--resume", "local", "--socket", str(agent.socket)]) == 0
    wait_for("v2 again", lambda: env_of(agent.root, "web").get("V") == "2")


def test_status_is_not_ok_before_the_first_pass(tmp_path: Path, agents: list[AgentProc],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A source no pass has finished yet (here its first pass waits on a health gate that never
    passes): none of its containers is known to run, so `status` exits 1 and says why, as
    without an agent. Before, it exited 0 (revision -, result -, passes 0) while none ran."""
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web", extra="""
        healthcheck: {test: [CMD, sleep, "1"], interval: 1s}
        update: {healthTimeout: 6s}
        """))
    agent = AgentProc(tmp_path, sources=[{"name": "local", "directory": str(m)}])
    FakeRuntime.at_root(agent.root).publish(IMG)
    agents.append(agent)
    agent.start()
    wait_for("the first pass waiting on web's health", lambda: "web" in containers(agent.root))
    capsys.readouterr()
    assert main(["status", "--socket", str(agent.socket)]) == 1
    out = capsys.readouterr().out
    assert "no pass yet (the first one runs): nothing of it is known to run as its manifests say" in out
    src = agent.source("local")
    assert (src["last_result"], src["degraded"], src["no_pass_yet"], src["recorded_pass"]) == (None, True, True, None)


def test_a_suspended_source_is_suspended_with_its_last_pass_not_a_failure(
        tmp_path: Path, agents: list[AgentProc], capsys: pytest.CaptureFixture[str]) -> None:
    """As `flux get` shows SUSPENDED True with the last status: a source suspended (`suspend:
    true` in the config, or through the API, remembered across a restart) runs no pass by the
    operator's word; `status` says so, with its last pass (the state DB's, before this agent
    ran one), and judges it by that pass only: converged (or none at all) exits 0, failed exits
    1. Before, a source suspended since the agent's start read `no pass yet` and was counted a
    failure (exit 1) until resumed."""
    m, bad = tmp_path / "m", tmp_path / "bad"
    write(m, "web.yaml", container_doc("web"))
    write(bad, "api.yaml", container_doc("api", image="registry.invalid:5000/shop/api:1"))   # never pulls
    agent = AgentProc(tmp_path, sources=[{"name": "local", "directory": str(m), "suspend": True}])
    FakeRuntime.at_root(agent.root).publish(IMG)
    agents.append(agent)
    agent.start()
    capsys.readouterr()
    assert main(["status", "--socket", str(agent.socket)]) == 0          # suspended, never ran: no failure
    out = capsys.readouterr().out
    assert "source local (directory" in out
    assert "[suspended]" in out
    assert "suspended: no pass runs until it is resumed; no pass recorded" in out
    assert "no pass yet" not in out
    src = agent.source("local")
    assert (src["suspended"], src["last_result"], src["degraded"], src["no_pass_yet"]) == (True, None, False, True)
    assert containers(agent.root) == {}

    agent.api.post("/v1/sources/local", {"suspend": False})
    wait_for("the first pass", lambda: agent.source("local")["last_result"] == "converged")
    agent.api.post("/v1/sources/local", {"suspend": True})            # the operator's word: outlives a restart
    capsys.readouterr()
    assert main(["status", "--socket", str(agent.socket)]) == 0
    assert "suspended: no pass runs until it is resumed\n" in capsys.readouterr().out
    agent.stop()
    agent.start()
    capsys.readouterr()
    assert main(["status", "--socket", str(agent.socket)]) == 0
    out = capsys.readouterr().out
    src = agent.source("local")
    assert (src["suspended"], src["last_result"], src["degraded"], src["no_pass_yet"], src["passes"]) == \
        (True, "converged", False, True, 0)
    recorded = src["recorded_pass"]
    assert recorded["result"] == "converged"
    assert (f"suspended: no pass runs until it is resumed; its last pass: #{recorded['id']} converged at "
            f"revision {recorded['revision'][:12]} (") in out
    assert "before this agent)" in out
    assert src["last_pass_at"] is not None

    # a suspended source whose last pass failed is not ok: for that failure, named
    agent.stop()
    agent.config["sources"] = [{"name": "local", "directory": str(bad)}]
    agent.start()
    agent.api.post("/v1/sources/local", {"suspend": False})
    wait_for("the failed pass", lambda: agent.source("local")["last_result"] == "failed")
    agent.api.post("/v1/sources/local", {"suspend": True})
    agent.stop()
    agent.start()
    capsys.readouterr()
    assert main(["status", "--socket", str(agent.socket)]) == 1
    out = capsys.readouterr().out
    src = agent.source("local")
    assert (src["suspended"], src["last_result"], src["degraded"]) == (True, "failed", True)
    assert any(f.startswith("image:registry.invalid:5000/shop/api:1: ") for f in src["failures"]), src["failures"]
    assert "failed: image:registry.invalid:5000/shop/api:1: " in out


def test_cli_status_events_history_and_apply_refused(tmp_path: Path, agent: AgentProc,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web"))
    port = free_port()
    agent.config["metrics"] = {"listen": f"127.0.0.1:{port}"}
    agent.start()
    wait_for("web's pass done", lambda: agent.source("local")["last_result"] == "converged")

    # events are streamed while following
    stream = agent.api.events(since=max(e["seq"] for e in agent.events()),
                              follow=True, timeout=60)
    write(m, "api.yaml", container_doc("api"))
    seen = next(e for e in stream if e["type"] == "pass")
    assert seen["counts"].get("created") == 1
    stream.close()

    # metrics (only) on TCP too
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    assert b'reconciler_passes_total{result="converged",source="local"}' in conn.getresponse().read()
    conn.request("GET", "/v1/status")
    assert conn.getresponse().status == 404
    conn.close()

    assert main(["status", "--socket", str(agent.socket)]) == 0
    out = capsys.readouterr().out
    assert "source local" in out
    assert "web" in out
    assert "running" in out
    assert main(["events", "--socket", str(agent.socket)]) == 0
    assert "pass" in capsys.readouterr().out
    hist = agent.api.get("/v1/history", source="local")
    assert hist
    assert hist[0]["source"] == "local"
    assert hist[0]["result"] == "converged"
    # `reconcile history` on the agent's root, no --owner: the sources' passes (each its own owner)
    capsys.readouterr()
    assert main(["history", "--root", str(agent.root), "--runtime", "fake"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["ID", "OWNER"]
    assert len(table) == 3                                      # web, then api: both local's
    assert all(row.split()[1] == "local" and "converged" in row for row in table[1:])
    assert main(["history", "--root", str(agent.root), "--runtime", "fake", "--owner", "default"]) == 0
    assert "OWNER" not in capsys.readouterr().out               # one owner's: as before
    plan = agent.api.get("/v1/plan", source="local")
    assert plan["in_sync"] is True, plan["rendered"]
    # a one-shot apply on the agent's root is refused and pointed at the agent
    rc = main(["apply", str(m), "--root", str(agent.root), "--runtime", "fake", "--owner", "local"])
    assert rc == 2                      # nothing attempted: usage, not "some actions failed" (1)
    err = capsys.readouterr().err
    assert "an agent is running" in err
    assert "reconcile-now" in err
    assert main(["reconcile-now", "--socket", str(agent.socket)]) == 0


def test_the_agents_commands_print_json_and_yaml(tmp_path: Path, agent: AgentProc,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """status, events and reconcile-now (#22 CLI habits): -o json and -o yaml, the same data."""
    write(tmp_path / "m", "web.yaml", container_doc("web"))
    agent.start()
    wait_for("web's pass done", lambda: agent.source("local")["last_result"] == "converged")
    sock = ["--socket", str(agent.socket)]
    docs = {}
    for fmt in ("json", "yaml"):
        capsys.readouterr()
        assert main(["status", "-o", fmt, *sock]) == 0
        out = capsys.readouterr().out
        docs[fmt] = json.loads(out) if fmt == "json" else yaml.safe_load(out)
    for doc in docs.values():
        [src] = doc["sources"]
        assert (src["name"], src["last_result"]) == ("local", "converged")
        assert [o["name"] for o in src["objects"] if "name" in o] == ["web"]
    assert docs["json"]["agent"]["pid"] == docs["yaml"]["agent"]["pid"]

    assert main(["events", "-o", "json", *sock]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main(["events", "-o", "yaml", *sock]) == 0
    records = list(yaml.safe_load_all(capsys.readouterr().out))     # one YAML document per event
    assert records[:len(lines)] == lines
    assert any(e["type"] == "pass" for e in lines)

    assert main(["reconcile-now", "-o", "yaml", *sock]) == 0
    assert [s["name"] for s in yaml.safe_load(capsys.readouterr().out)["sources"]] == ["local"]


def test_sighup_reloads_and_sigterm_exits(tmp_path: Path, agent: AgentProc) -> None:
    write(tmp_path / "m", "web.yaml", container_doc("web"))
    agent.start()
    wait_for("web", lambda: "web" in containers(agent.root))
    # an invalid config is reported; the agent goes on with the old one
    agent.config_path.write_text("sources: [{name: BAD}]\n")
    agent.signal(signal.SIGHUP)
    wait_for("config_invalid event", lambda: any(e["type"] == "config_invalid" for e in agent.events()))
    assert [s["name"] for s in agent.status()["sources"]] == ["local"]
    # a valid one adds a source
    write(tmp_path / "n", "api.yaml", container_doc("api"))
    agent.write_config(sources=[*agent.config["sources"], {"name": "more", "directory": str(tmp_path / "n")}])
    agent.signal(signal.SIGHUP)
    wait_for("api from the new source", lambda: "api" in containers(agent.root, "more"))
    agent.signal(signal.SIGTERM)
    assert agent.wait_exit() == 0
    assert not agent.socket.exists()
    assert {c.name: str(c.status) for c in containers(agent.root).values()} == {"web": "running", "api": "running"}


def test_config_errors_say_file_and_line(tmp_path: Path) -> None:
    from reconciler.agent import config

    text = "root: /x\nsources:\n  - name: a\n    directory: /m\n  - name: b\n    directory: /n\n    owner: a\n" \
           "  - name: c\n    git: {url: x}\n    directory: /y\n"
    with pytest.raises(config.ConfigError) as e:
        config.parse_config(text, where="agent.yaml")
    msg = str(e.value)
    assert "agent.yaml:8:" in msg
    assert "exactly one of directory or git" in msg
    with pytest.raises(config.ConfigError) as e:
        config.parse_config(text.replace("    git: {url: x}\n", ""), where="agent.yaml")
    assert "agent.yaml:5: sources.1.owner" in str(e.value)


def test_systemd_notify_protocol(tmp_path: Path, agent: AgentProc) -> None:
    """What the unit's Type=notify relies on: READY after start, RELOADING/READY around a
    SIGHUP, STOPPING on SIGTERM."""
    import socket

    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(path))
        s.settimeout(60)
        agent.start(env={"NOTIFY_SOCKET": str(path)})
        assert s.recv(100) == b"READY=1"
        agent.signal(signal.SIGHUP)
        assert s.recv(100) == b"RELOADING=1"
        assert s.recv(100) == b"READY=1"
        agent.signal(signal.SIGTERM)
        try:
            assert s.recv(100) == b"STOPPING=1"
        except TimeoutError:
            raise AssertionError(f"no STOPPING=1 60 s after SIGTERM: {agent.log()}") from None
        assert agent.wait_exit() == 0
