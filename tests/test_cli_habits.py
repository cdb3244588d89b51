"""CLI habits of docker and kubectl users (#22): options before or after the command, global
options after it, and `apply -o json` (the CI entry point) as data on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.cli.main import main
from tests.execution.helpers import container_doc, fake_root, write


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


@pytest.mark.parametrize("argv", [["ps", "-a"], ["ps", "-q"], ["images"], ["volume", "ls"], ["ps", "-o", "json"]])
def test_a_read_only_command_on_a_root_with_no_engine_creates_nothing(
        tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    root, run_dir = tmp_path / "no-engine-yet", tmp_path / "run"
    assert main([*argv, "--root", str(root), "--run-dir", str(run_dir), "--name-prefix", "rtnone"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == [] if "json" in argv else len(out.splitlines()) <= 1   # headers at most
    assert not root.exists()
    assert not run_dir.exists()


@pytest.mark.parametrize("argv", [["inspect", "web"], ["logs", "web"]])
def test_reading_a_container_on_a_root_with_no_engine_creates_nothing(
        tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    root, run_dir = tmp_path / "no-engine-yet", tmp_path / "run"
    assert main([*argv, "--root", str(root), "--run-dir", str(run_dir), "--name-prefix", "rtnone"]) == 1
    assert "no such container: web" in capsys.readouterr().err
    assert not root.exists()
    assert not run_dir.exists()
