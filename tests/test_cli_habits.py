"""CLI habits of docker and kubectl users (#22): options before or after the command, global
options after it, `apply -o json` (the CI entry point) as data on stdout, and `-o json|yaml` on
every command that prints data, the same data as its table."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from reconciler import __version__
from reconciler.cli import main as climain
from reconciler.cli.main import main
from tests.execution.helpers import container_doc, fake_root, write

if TYPE_CHECKING:
    from tests.helpers.host import Host


def test_a_commands_options_are_taken_before_it_and_global_ones_after_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = fake_root(tmp_path)
    write(tmp_path / "m", "web.yaml", container_doc("web"))
    assert main(["--root", str(root), "--runtime=fake", "apply", str(tmp_path / "m")]) == 0
    write(tmp_path / "m", "api.yaml", container_doc("api"))
    capsys.readouterr()
    assert main(["--root", str(root), "--runtime", "fake", "diff", str(tmp_path / "m"), "-o", "json"]) == 1
    before = json.loads(capsys.readouterr().out)
    assert main(["diff", str(tmp_path / "m"), "-o", "json", "--log-level", "debug", "--root", str(root),
                 "--runtime", "fake"]) == 1
    after = json.loads(capsys.readouterr().out)
    assert before == after
    assert {a["resource"] for a in before["actions"]} == {"container:api"}     # web was applied: same root
    assert main(["--root", str(root), "--no-such-flag", "ps"]) == 2          # still a usage error
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err


def test_apply_output_json_is_the_pass_as_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = fake_root(tmp_path)
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web"))
    write(m, "api.yaml", container_doc("api"))
    assert main(["apply", str(m), "-o", "json", "--root", str(root), "--runtime", "fake"]) == 0
    doc = json.loads(capsys.readouterr().out)                 # stdout is JSON and nothing else
    assert doc["result"] == "converged"
    assert doc["counts"] == {"created": 2, "pulled": 1}
    web = next(c for c in doc["changes"] if c["resource"] == "container:web")
    assert web["outcome"] == "created"
    assert [a["kind"] for a in web["actions"]] == ["create", "start"]
    assert all(a["status"] == "done" and a["cause"] for a in web["actions"])

    write(m, "web.yaml", container_doc("web", image="registry.local:5000/shop/missing:9"))
    assert main(["apply", str(m), "-o", "json", "--root", str(root), "--runtime", "fake"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["result"] == "failed"
    failed = [a for c in doc["changes"] for a in c["actions"] if a["status"] == "failed"]
    assert failed
    assert failed[0]["error"]

    assert main(["apply", str(m), "--dry-run", "-o", "json", "--root", str(root), "--runtime", "fake"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["result"] == "drift"
    assert {a["resource"] for a in doc["plan"]} >= {"container:web"}


@pytest.mark.parametrize("argv", [["ps", "-a"], ["ps", "-q"], ["images"], ["volume", "ls"], ["ps", "-o", "json"],
                                  ["network", "ls"], ["image", "ls"], ["network", "ls", "-o", "json"]])
def test_a_read_only_command_on_a_root_with_no_engine_creates_nothing(
        tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    root, run_dir = tmp_path / "no-engine-yet", tmp_path / "run"
    assert main([*argv, "--root", str(root), "--run-dir", str(run_dir), "--name-prefix", "rtnone"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == [] if "json" in argv else len(out.splitlines()) <= 1   # headers at most
    assert not root.exists()
    assert not run_dir.exists()


@pytest.mark.parametrize("argv", [["images", "-q"], ["image", "ls", "-q"], ["images", "-aq", "--no-trunc"],
                                  ["ps", "-q"], ["ps", "-aq"], ["volume", "ls", "-q"]])
def test_quiet_lists_of_nothing_print_nothing_as_dockers(
        tmp_path: Path, argv: list[str], capfd: pytest.CaptureFixture[str]) -> None:
    """`docker images -q` with no image prints nothing, not an empty line: `docker rmi $(docker
    images -q)` and `xargs` read a blank line as an (empty) id. `images -q` printed one."""
    root, run_dir = tmp_path / "no-engine-yet", tmp_path / "run"
    assert main([*argv, "--root", str(root), "--run-dir", str(run_dir), "--name-prefix", "rtnone"]) == 0
    assert capfd.readouterr().out == ""


@pytest.mark.parametrize(("argv", "header"), [
    (["ps"], "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES"),
    (["images"], "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE"),
    (["volume", "ls"], "DRIVER    VOLUME NAME"),
])
def test_tables_are_laid_out_as_dockers(
        tmp_path: Path, argv: list[str], header: str, capfd: pytest.CaptureFixture[str]) -> None:
    """Go's tabwriter as docker sets it (each column at least ten characters): `reconcile ps` of
    nothing printed `CONTAINER ID   IMAGE   COMMAND ...` where `docker ps` prints these."""
    root, run_dir = tmp_path / "no-engine-yet", tmp_path / "run"
    assert main([*argv, "--root", str(root), "--run-dir", str(run_dir), "--name-prefix", "rtnone"]) == 0
    assert capfd.readouterr().out == header + "\n"


@pytest.mark.parametrize("argv", [["network", "inspect", "x"], ["volume", "inspect", "x"]])
def test_inspecting_on_a_root_with_no_engine_finds_nothing_and_creates_nothing(
        tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    root, run_dir = tmp_path / "no-engine-yet", tmp_path / "run"
    assert main([*argv, "--root", str(root), "--run-dir", str(run_dir), "--name-prefix", "rtnone"]) == 1
    assert "no such" in capsys.readouterr().err
    assert not root.exists()
    assert not run_dir.exists()


@pytest.mark.parametrize("command", [["volume", "ls"], ["image", "ls"], ["network", "ls"], ["container", "ls"],
                                     ["container", "ps", "-a"]])
def test_the_engine_options_go_before_a_command_with_subcommands_too(
        tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """`reconcile --root DIR volume ls`, as `reconcile --root DIR ps` (the README: options before
    the command or after it)."""
    root = tmp_path / "no-engine-yet"
    assert main(["--root", str(root), "--run-dir", str(tmp_path / "run"), *command]) == 0
    assert capsys.readouterr().out.strip()          # its table's header: the command ran
    assert not root.exists()


# The commands whose output is not data (an action's progress, a container's own output, an
# archive, a daemon), and why; every other command must take `-o json` and `-o yaml`.
NOT_DATA: dict[str, str] = {
    "run": "the container's own output (or its id with -d)",
    "create": "acts; prints the new container's id, as docker",
    "restart": "acts; prints the names it restarted, as docker",
    "kill": "acts; prints the names it killed, as docker",
    "wait": "the exit code of each container, a line each, as docker wait",
    "rename": "acts; prints nothing, as docker",
    "cp": "acts (or a tar archive with -), as docker cp",
    "container prune": "acts; prints what it deleted, as docker",
    "system prune": "acts; prints what it deleted, as docker",
    "logs": "the container's own output",
    "exec": "the command's own output",
    "attach": "the container's own output",
    "start": "acts; prints the names it started, as docker (-a: the container's own output)",
    "stop": "acts; prints the names it stopped, as docker",
    "rm": "acts; prints the names it removed, as docker",
    "pull": "progress of a download",
    "rmi": "acts; prints what it untagged and deleted, as docker",
    "image prune": "acts; prints what it deleted, as docker",
    "pause": "acts; prints the names it paused, as docker",
    "unpause": "acts; prints the names it unpaused, as docker",
    "update": "acts; prints the names it updated, as docker",
    "build": "progress of a build",
    "push": "progress of an upload",
    "login": "acts; prints Login Succeeded, as docker",
    "logout": "acts; prints what it removed, as docker",
    "tag": "acts; prints nothing",
    "save": "an archive (-o is its file, as docker save)",
    "load": "acts; prints the image it loaded, as docker",
    "commit": "acts; prints the new image's id, as docker",
    "container export": "an archive (-o is its file, as docker export)",
    "container import": "acts; prints the new image's id",
    "image import": "acts; prints the new image's id, as docker import",
    "volume rm": "acts; prints the names it removed, as docker",
    "network rm": "acts; prints the names it removed, as docker",
    "network create": "acts; prints the new network's id, as docker",
    "network connect": "acts; prints nothing, as docker",
    "network disconnect": "acts; prints nothing, as docker",
    "network prune": "acts; prints what it deleted, as docker",
    "volume create": "acts; prints the volume's name, as docker",
    "volume prune": "acts; prints what it deleted, as docker",
    "volume export": "an archive (-o is its file)",
    "volume import": "acts; prints the volume's name",
    "agent": "the daemon: logs only",
    "engine-api": "a server: logs only",
    "completion": "a shell script",
}


def _leaf_commands() -> dict[str, argparse.ArgumentParser]:
    """Every command that runs (not a group like `volume`), by its name after `reconcile `; not a
    group's form of a top-level command (`container ls`: that command's own parser, checked as it)."""
    parser = climain.build_parser()
    return {sub.prog.removeprefix("reconcile "): sub for sub in climain._subparsers(parser)
            if not any(isinstance(a, argparse._SubParsersAction) for a in sub._actions)
            and getattr(sub, "alias_of", None) is None}


def test_every_command_that_prints_data_takes_output_json_and_yaml() -> None:
    leaves = _leaf_commands()
    assert set(NOT_DATA) <= set(leaves), set(NOT_DATA) - set(leaves)        # no stale exception
    missing = {name: (p._option_string_actions["--output"].choices if "--output" in p._option_string_actions else None)
               for name, p in leaves.items() if name not in NOT_DATA
               and not {"json", "yaml"} <= set(getattr(p._option_string_actions.get("--output"), "choices", None) or ())}
    assert missing == {}, f"commands that print data without -o json|yaml: {missing}"
    for name in ("ps", "inspect", "images", "volume ls", "volume inspect", "network ls", "network inspect",
                 "status", "diff", "apply", "history", "version", "validate", "events"):
        assert name in leaves
        assert name not in NOT_DATA


def _formats(argv: list[str], capsys: pytest.CaptureFixture[str], code: int = 0) -> tuple[Any, str]:
    """The command's JSON (checked equal to its YAML) and its table, each run once."""
    assert main([*argv, "-o", "json"]) == code
    as_json = json.loads(capsys.readouterr().out)
    assert main([*argv, "-o", "yaml"]) == code
    out = capsys.readouterr().out
    assert not out.lstrip().startswith(("{", "["))                     # YAML's block style, not JSON
    assert _steady(yaml.safe_load(out)) == _steady(as_json)
    assert main(argv) == code
    return as_json, capsys.readouterr().out


def _steady(doc: Any) -> Any:
    """`doc` without what differs between two runs of one command (how long it took)."""
    if isinstance(doc, dict):
        return {k: _steady(v) for k, v in doc.items() if k not in ("duration", "duration_s")}
    return [_steady(v) for v in doc] if isinstance(doc, list) else doc


def _column(table: str, header: str) -> list[str]:
    """The cells under `header` of the docker-style table in a command's output."""
    lines = table.splitlines()
    cell = re.compile(rf"(^|   ){re.escape(header)}(   |$)")
    head = next(i for i, line in enumerate(lines) if cell.search(line) and line.isupper())
    found = cell.search(lines[head])
    assert found is not None
    at = found.start(0) + (3 if found.start(0) else 0)
    rows = []
    for line in lines[head + 1:]:
        if not line.strip() or ("   " not in line and "   " in lines[head]):      # the table ended: a message
            break
        rows.append(re.split(r"\s{3,}", line[at:].strip())[0] if len(line) > at else "")
    return rows


def test_the_commands_print_the_same_data_as_json_yaml_and_table(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = fake_root(tmp_path)
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web"))
    write(m, "api.yaml", container_doc("api"))
    fake = ["--root", str(root), "--runtime", "fake"]

    doc, table = _formats(["validate", str(m)], capsys)
    assert {o["name"] for o in doc["objects"] if o["kind"] == "Container"} == {"web", "api"}
    assert "valid: 2 containers" in table

    doc, table = _formats(["diff", str(m), *fake], capsys, code=1)
    assert {a["resource"] for a in doc["actions"]} >= {"container:web", "container:api"}
    assert all(r.split()[-1] in table for r in {a["resource"] for a in doc["actions"]})

    doc, table = _formats(["apply", str(m), "--dry-run", *fake], capsys)
    assert doc["result"] == "drift"
    assert {a["resource"] for a in doc["plan"]} == {a["resource"] for a in json.loads(_json(["diff", str(m), *fake],
                                                                                              capsys, 1))["actions"]}
    assert main(["apply", str(m), "-o", "yaml", *fake]) == 0          # a pass that acts, as YAML
    doc = yaml.safe_load(capsys.readouterr().out)
    assert doc["result"] == "converged"
    assert {c["resource"]: c["outcome"] for c in doc["changes"] if c["resource"].startswith("container:")} == \
        {"container:web": "created", "container:api": "created"}

    doc, table = _formats(["history", *fake], capsys)
    assert [str(p["id"]) for p in doc] == _column(table, "ID")
    assert {p["result"] for p in doc} == {"converged"}

    write(m, "api.yaml", container_doc("api", extra="env: {V: '2'}"))
    assert main(["apply", str(m), *fake]) == 0
    capsys.readouterr()
    assert main(["rollback", "-o", "yaml", *fake]) == 0              # back to the pass before, as YAML
    doc = yaml.safe_load(capsys.readouterr().out)
    assert doc["result"] == "converged"
    assert [(c["resource"], c["detail"]) for c in doc["changes"]] == [("container:api", "spec hash changed: env")]

    doc, table = _formats(["status", *fake[:2], "--socket", str(tmp_path / "no-agent.sock")], capsys)
    assert doc["agent"] is None
    assert {(r["kind"], r["name"]) for r in doc["inventory"]} >= {("Container", "web"), ("Container", "api")}
    assert sorted(r["name"] for r in doc["inventory"]) == sorted(_column(table, "NAME"))

    doc, table = _formats(["version"], capsys)
    assert doc["version"] == __version__
    assert __version__ in _column(table, "VERSION")

    doc, _ = _formats(["schema", "volume"], capsys)
    assert doc["properties"]["kind"]["const"] == "Volume"


def _json(argv: list[str], capsys: pytest.CaptureFixture[str], code: int = 0) -> str:
    assert main([*argv, "-o", "json"]) == code
    return capsys.readouterr().out


MANIFEST = """\
apiVersion: reconciler/v1
kind: Network
metadata: {{name: front}}
---
apiVersion: reconciler/v1
kind: Volume
metadata: {{name: data}}
---
apiVersion: reconciler/v1
kind: Container
metadata: {{name: web}}
spec:
  image: {image}
  command: ["sleep", "600"]
  networks: [front]
  volumes: ["data:/data"]
"""


@pytest.mark.root
@pytest.mark.registry
def test_the_engine_commands_print_the_same_data_as_json_yaml_and_table(
        tmp_path: Path, host: Host, busybox_image: str, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "m", "all.yaml", MANIFEST.format(image=busybox_image))
    assert host.cli("apply", str(tmp_path / "m")) == 0
    engine = host.cli_args()[:-2]                               # without --runtime
    capsys.readouterr()

    doc, table = _formats(["ps", "-a", *engine], capsys)
    assert [c["name"] for c in doc] == _column(table, "NAMES") == ["web"]
    assert doc[0]["id"][:12] == _column(table, "CONTAINER ID")[0]
    assert doc[0]["status"] == "running"

    doc, _ = _formats(["inspect", "web", *engine], capsys)
    assert [d["Name"].lstrip("/") for d in doc] == ["web"]

    for images in (["images"], ["image", "ls"]):
        doc, table = _formats([*images, *engine], capsys)
        assert [f"{i['repository']}:{i['tag']}" for i in doc] == [busybox_image]
        assert _column(table, "REPOSITORY") == [busybox_image.rpartition(":")[0]]
    doc, _ = _formats(["image", "inspect", busybox_image, *engine], capsys)
    assert [d["RepoTags"] for d in doc] == [[busybox_image]]

    doc, table = _formats(["volume", "ls", *engine], capsys)
    assert [v["name"] for v in doc] == _column(table, "VOLUME NAME") == ["data"]
    doc, _ = _formats(["volume", "inspect", "data", *engine], capsys)
    assert [(v["Name"], v["UsedBy"]) for v in doc] == [("data", ["web"])]

    doc, table = _formats(["network", *engine, "ls"], capsys)
    assert [n["name"] for n in doc] == _column(table, "NAME") == ["front"]
    assert [n["subnet"] for n in doc] == _column(table, "SUBNET")
    doc, _ = _formats(["network", *engine, "inspect", "front"], capsys)
    assert [c["name"] for c in doc[0]["containers"]] == ["web"]


@pytest.mark.registry
def test_lock_prints_its_pins_as_json_yaml_and_table(
        tmp_path: Path, busybox_image: str, capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web", image=busybox_image))
    assert main(["lock", str(m), "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)                 # stdout is the document alone
    assert doc["written"] is True
    assert [i["ref"] for i in doc["images"]] == [busybox_image]
    assert doc["images"][0]["digest"].startswith("sha256:")
    checked, table = _formats(["lock", str(m), "--check"], capsys)
    assert (checked["up_to_date"], checked["written"]) == (True, False)
    assert checked["images"] == doc["images"]
    assert _column(table, "IMAGE") == [busybox_image]
    assert _column(table, "DIGEST") == [doc["images"][0]["digest"]]


def test_convert_prints_the_same_manifests_as_yaml_and_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE"):
        monkeypatch.delenv(var, raising=False)
    write(tmp_path / "shop", "compose.yaml", "services:\n  web: {image: 'busybox:1', ports: ['8080:80']}\n")
    assert main(["convert", str(tmp_path / "shop")]) == 0                  # YAML by default
    as_yaml = list(yaml.safe_load_all(capsys.readouterr().out))
    assert main(["convert", str(tmp_path / "shop"), "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == as_yaml
    assert {(d["kind"], d["metadata"]["name"]) for d in as_yaml} >= {("Container", "shop-web-1")}


@pytest.mark.parametrize("argv", [["inspect", "web"], ["logs", "web"]])
def test_reading_a_container_on_a_root_with_no_engine_creates_nothing(
        tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    root, run_dir = tmp_path / "no-engine-yet", tmp_path / "run"
    assert main([*argv, "--root", str(root), "--run-dir", str(run_dir), "--name-prefix", "rtnone"]) == 1
    assert "No such container: web" in capsys.readouterr().err
    assert not root.exists()
    assert not run_dir.exists()
