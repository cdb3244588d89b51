"""Compose's `--profile` (repeatable) and COMPOSE_PROFILES on every command that reads a compose
project, `validate`, `convert`, `diff`, `apply` and `--once`, as `docker compose --profile X`
takes it with any of its commands (it was accepted by `convert` alone). Compose's rules: services
without profiles always run, a service with profiles runs when one of them is active (`*`: all),
`--profile` replaces COMPOSE_PROFILES, and a dependency is not enabled by what depends on it
(docker-compose 1.29 and compose v2 alike: "Service "dbg" was pulled in as a dependency of service
"web" but is not enabled by the active profiles"). `reconcile rollback` loads a kept revision
with the profiles it was applied with, not the shell's of the moment. On the fake engine (state
in --root, no root needed).
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


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_PATH_SEPARATOR"):
        monkeypatch.delenv(var, raising=False)
    write(tmp_path / "app", "compose.yaml", f"""
        services:
          web:
            image: {IMG}
            depends_on:
              dbg: {{condition: service_started, required: false}}
          dbg:
            image: {IMG}
            profiles: [debug]
          tools:
            image: {IMG}
            profiles: [tools, debug]
        """)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "app"


def running(root: Path) -> set[str]:
    return {c.name for c in FakeRuntime.at_root(root).list_containers()}


def validated(*args: str, capsys: pytest.CaptureFixture[str]) -> set[str]:
    assert main(["validate", *args, "-o", "json"]) == 0
    return {o["name"] for o in json.loads(capsys.readouterr().out)["objects"] if o["kind"] == "Container"}


def test_every_compose_command_takes_profile_as_compose_does(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = fake_root(tmp_path)
    assert validated("app", capsys=capsys) == {"app-web-1"}
    assert validated("app", "--profile", "tools", capsys=capsys) == {"app-web-1", "app-tools-1"}
    assert validated("-f", "app/compose.yaml", "--profile", "debug", capsys=capsys) == {
        "app-web-1", "app-dbg-1", "app-tools-1"}
    assert validated("app", "--profile", "*", capsys=capsys) == {"app-web-1", "app-dbg-1", "app-tools-1"}

    assert main(["convert", "app", "--profile", "tools", "-o", "json"]) == 0
    assert {d["metadata"]["name"] for d in json.loads(capsys.readouterr().out) if d["kind"] == "Container"} == {
        "app-web-1", "app-tools-1"}

    assert fake_cli(root, "diff", "app", "--profile", "debug") == 1
    assert "container:app-dbg-1, create, not found" in capsys.readouterr().out
    assert fake_cli(root, "apply", "app", "--profile", "debug") == 0
    assert running(root) == {"app-web-1", "app-dbg-1", "app-tools-1"}
    assert fake_cli(root, "diff", "app", "--profile", "debug") == 0
    capsys.readouterr()

    # COMPOSE_PROFILES says it when no --profile does; --profile replaces it
    monkeypatch.setenv("COMPOSE_PROFILES", "tools")
    assert fake_cli(root, "diff", "app") == 1
    assert "container:app-dbg-1, remove, not in desired state" in capsys.readouterr().out
    assert fake_cli(root, "diff", "app", "--profile", "debug") == 0
    monkeypatch.delenv("COMPOSE_PROFILES")

    # --once is apply, parsed by the fast path: the profile's services only
    proc = subprocess.run([sys.executable, "-m", "reconciler", "--once", "app", "--profile", "tools",
                           "--root", str(root), "--runtime", "fake"], capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert running(root) == {"app-web-1", "app-tools-1"}


def test_rollback_applies_a_revision_with_the_profiles_it_was_applied_with(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A revision applied with --profile debug read back without it (a shell without the
    variable, or with another) lost the debug services: rollback refused it as changed."""
    root = fake_root(tmp_path)
    assert fake_cli(root, "apply", "app", "--profile", "debug") == 0
    write(project, ".env", "UNUSED=1\n")            # a new revision: the same services
    assert fake_cli(root, "apply", "app") == 0
    assert running(root) == {"app-web-1"}
    monkeypatch.setenv("COMPOSE_PROFILES", "tools")     # the shell of the moment says another
    assert fake_cli(root, "rollback") == 0, capsys.readouterr()
    assert running(root) == {"app-web-1", "app-dbg-1", "app-tools-1"}


def test_profile_on_manifests_is_a_usage_error(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    root = fake_root(tmp_path)
    write(tmp_path / "plain", "web.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: web}}
        spec: {{image: {IMG}}}
        """)
    assert fake_cli(root, "apply", "plain", "--profile", "debug") == 2
    assert "--profile debug enables services of a compose project, and this holds no compose file" in \
        capsys.readouterr().err
    assert running(root) == set()
