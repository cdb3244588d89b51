"""Compose's `-f FILE` (repeatable), `-p NAME` and `--project-directory DIR` on `reconcile
validate`, `diff`, `apply` and `--once`, as `docker compose -f a.yml -f b.yml -p NAME` takes them
(they were refused: only COMPOSE_FILE and COMPOSE_PROJECT_NAME could say it). On the fake engine
(state in --root, no root needed); the files are written into the test's own directory, which is
the current one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.runtime.fake import FakeRuntime
from tests.execution.helpers import IMG, fake_cli, fake_root, write

IMG2 = IMG.replace(":1", ":2")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = fake_root(tmp_path)
    FakeRuntime.at_root(r).publish(IMG2)
    return r


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """deploy/base.yml (with an env file beside it) and overrides/prod.yml, outside deploy/; the
    test runs in tmp_path, so `-f deploy/base.yml` is relative to the current directory."""
    for var in ("COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_PATH_SEPARATOR"):
        monkeypatch.delenv(var, raising=False)
    write(tmp_path / "deploy", "base.yml", f"""
        services:
          web:
            image: {IMG}
            env_file: web.env
            environment: {{MODE: base}}
        """)
    write(tmp_path / "deploy", "web.env", "FROM=deploy-dir\n")
    write(tmp_path / "overrides", "prod.yml", f"""
        services:
          web:
            image: {IMG2}
            environment: {{MODE: prod}}
        """)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli(root: Path, command: str, *args: str) -> int:
    """`reconcile COMMAND ARGS` on the fake engine under `root` (validate takes no engine)."""
    return main([command, *args]) if command == "validate" else fake_cli(root, command, *args)


def running(root: Path) -> dict[str, dict[str, str]]:
    return {c.name: dict(c.labels) for c in FakeRuntime.at_root(root).list_containers()}


FILES = ["-f", "deploy/base.yml", "-f", "overrides/prod.yml"]


def test_validate_diff_apply_and_once_take_files_and_a_project_name(
    project: Path, root: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli(root, "validate", *FILES, "-p", "shop", "-o", "json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["files"] == [str(project / "deploy/base.yml"), str(project / "overrides/prod.yml")]
    assert {o["name"] for o in report["objects"] if o["kind"] == "Container"} == {"shop-web-1"}

    assert cli(root, "diff", *FILES, "-p", "shop") == 1                    # drift: nothing runs yet
    assert "container:shop-web-1, create, not found" in capsys.readouterr().out
    assert cli(root, "apply", *FILES, "--project-name", "shop") == 0
    [(name, labels)] = running(root).items()
    assert (name, labels["com.docker.compose.project"]) == ("shop-web-1", "shop")
    web = FakeRuntime.at_root(root).config_of("shop-web-1")
    # merged in order, relative paths from the first file's directory
    assert (web.image, web.env["MODE"], web.env["FROM"]) == (IMG2, "prod", "deploy-dir")
    assert cli(root, "diff", *FILES, "-p", "shop") == 0
    assert capsys.readouterr().out.strip().endswith("in sync")

    # --once is apply: the base file alone is the other image, replaced
    proc = subprocess.run([sys.executable, "-m", "reconciler", "--once", "-f", "deploy/base.yml", "-p", "shop",
                           "--root", str(root), "--runtime", "fake"], capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert FakeRuntime.at_root(root).config_of("shop-web-1").image == IMG

    # the revision applied with -f is kept so that rollback reads it again from its files
    assert cli(root, "rollback") == 0
    assert FakeRuntime.at_root(root).config_of("shop-web-1").image == IMG2


def test_the_project_directory_and_name_follow_compose(
    project: Path, root: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Without -p the project is named after the project directory: the first file's, or
    --project-directory's, where relative paths (the env file) start too."""
    assert cli(root, "validate", "-f", "deploy/base.yml", "-o", "json") == 0
    assert {o["name"] for o in json.loads(capsys.readouterr().out)["objects"]} >= {"deploy-web-1"}
    write(project / "elsewhere", "web.env", "FROM=elsewhere\n")
    assert cli(root, "apply", "-f", "deploy/base.yml", "--project-directory", "elsewhere") == 0
    assert FakeRuntime.at_root(root).config_of("elsewhere-web-1").env["FROM"] == "elsewhere"


def test_what_the_files_name_wrongly_is_refused_as_compose_file_is(
    project: Path, root: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli(root, "validate", "-f", "deploy/base.yml", "-f", "overrides/prd.yml") == 2
    assert capsys.readouterr().out.splitlines() == [
        f"{project}/deploy:0:0: -f names overrides/prd.yml: not found, or not a file; fix the name, or give the "
        f"path from the current directory ({project})"]
    # a restricted source's files stay beneath it (the project directory), as COMPOSE_FILE's
    assert cli(root, "apply", *FILES, "--policy", "restricted") == 2
    assert capsys.readouterr().err.splitlines()[1:-1] == [
        f"{project}/deploy:0:0: -f names overrides/prod.yml: compose file {project}/overrides/prod.yml is outside "
        f"the source root {project}/deploy and refused by policy 'restricted' (rule filePrefixes: none; symlinks "
        "count where they lead); keep the file in the source, or list a directory holding it under filePrefixes: "
        "in a policy file"]
    assert running(root) == {}


@pytest.mark.parametrize(("argv", "message"), [
    (["diff"], "error: nothing to read: give SOURCE (a manifest file, a directory, or - for stdin), or compose "
     "files with -f FILE"),
    (["validate", "--project-directory", "deploy"], "error: --project-directory goes with -f"),
    (["validate", "overrides", "-p", "shop"], "overrides:0:0: -p shop names a compose project, and this holds no "
     "compose file"),
])
def test_a_source_and_files_that_say_two_things_are_usage_errors(
    project: Path, root: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str,
) -> None:
    assert cli(root, *argv) == 2
    out, err = capsys.readouterr()
    assert (out + err).startswith(message)
    assert running(root) == {}


def test_with_files_the_names_after_the_options_are_services(
    project: Path, root: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """As after `docker compose -f FILE up`: `apply -f FILE web` converges the service web, and
    a name that is no service (a directory meant as the source) is refused naming the project's."""
    assert cli(root, "apply", "deploy", "-f", "deploy/base.yml") == 2
    out, err = capsys.readouterr()
    assert (out + err).startswith(f"error: 1 problem in the manifests:\n{project}/deploy/base.yml:1:1: services: "
                                  "no such service: 'deploy'; the services here: web\n")
    assert running(root) == {}
    assert cli(root, "apply", "-f", "deploy/base.yml", "web") == 0
    assert list(running(root)) == ["deploy-web-1"]
