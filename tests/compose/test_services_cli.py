"""Service selection's rules that need no real engine (the fake's: state in --root, no root):
naming a service that a profile disables enables it with its profiles and follows compose's
rule for its dependencies (`docker compose up mock-backend` enables `dev`, and with it `db`;
`up phpmyadmin` fails, its `db` is in `dev`), `validate` counts a selection, and a rollback to a
pass that converged a selection re-applies that selection alone. The real engine's side:
tests/compose/test_services_e2e.py.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.runtime.fake import FakeRuntime
from tests.execution.helpers import IMG, fake_cli, fake_root, write

# compose's own example of profiles (docs.docker.com/compose/how-tos/profiles)
COMPOSE = f"""
    services:
      web:
        image: {IMG}
        environment: {{V: "{{v}}"}}
      mock-backend:
        image: {IMG}
        profiles: [dev]
        depends_on: [db]
      db:
        image: {IMG}
        profiles: [dev]
      phpmyadmin:
        image: {IMG}
        profiles: [debug]
        depends_on: [db]
    """


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_PATH_SEPARATOR"):
        monkeypatch.delenv(var, raising=False)
    write(tmp_path / "app", "compose.yaml", COMPOSE.replace("{v}", "1"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "app"


def running(root: Path) -> dict[str, str]:
    return {c.name: c.id for c in FakeRuntime.at_root(root).list_containers()}


def test_a_named_service_enables_its_profiles_and_its_deps_follow_compose(
    project: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["validate", "app", "mock-backend", "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["selection"] == ["db", "mock-backend"]
    assert main(["validate", "app", "mock-backend"]) == 0
    assert capsys.readouterr().out.startswith(
        "valid: 2 containers, 0 images, 1 network, 0 volumes selected (services db, mock-backend) in 1 file")
    assert main(["validate", "app", "phpmyadmin"]) == 2
    assert "app/compose.yaml:15:18: services.phpmyadmin.depends_on.db: depends on service 'db', which no " \
           "active profile enables (its profiles: dev)" in capsys.readouterr().out
    assert main(["validate", "app", "--profile", "dev", "phpmyadmin"]) == 0
    assert main(["validate", "app", "--no-deps"]) == 2
    assert "error: --no-deps leaves out what the services named depend on, and no service is named" in \
        capsys.readouterr().err


def test_a_rollback_to_a_selected_pass_applies_that_selection_again(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    root = fake_root(tmp_path)
    assert fake_cli(root, "apply", "app", "--profile", "dev") == 0
    whole = running(root)
    write(project, "compose.yaml", COMPOSE.replace("{v}", "2"))
    assert fake_cli(root, "apply", "app", "web") == 0                     # web at revision 2 alone
    write(project, "compose.yaml", COMPOSE.replace("{v}", "3"))
    assert fake_cli(root, "apply", "app", "web") == 0
    at3 = running(root)
    assert {k: v for k, v in at3.items() if k != "app-web-1"} == {k: v for k, v in whole.items() if k != "app-web-1"}
    capsys.readouterr()
    assert fake_cli(root, "rollback") == 0                                 # to revision 2's pass: web alone
    assert "(services web)" in capsys.readouterr().out
    now = running(root)
    assert now["app-web-1"] != at3["app-web-1"]
    assert {k: v for k, v in now.items() if k != "app-web-1"} == {k: v for k, v in whole.items() if k != "app-web-1"}
    assert fake_cli(root, "history", "-o", "json") == 0
    last = json.loads(capsys.readouterr().out)[0]
    assert (last["cause"][:12], last["selection"]["services"]) == ("rollback to ", ["web"])


def test_convert_prints_the_services_named_and_their_deps_alone_as_compose_config(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """`convert DIR SERVICE...` prints the part `apply DIR SERVICE...` converges, as `docker
    compose config SERVICE...` (profiles enabled by the name, dependencies followed), saved it
    validates on its own, a service scaled to 0 with the network it is on; an unknown name is the
    same problem as apply's and validate's (the compose file, the services there), exit 2."""
    write(project, "compose.yaml", COMPOSE.replace("{v}", "1") + textwrap.dedent(f"""
          idle:
            image: {IMG}
            scale: 0
            networks: [jobs]
            depends_on: [web]
        networks:
          jobs: {{}}
        """).replace("\n", "\n    "))
    assert main(["convert", "app", "mock-backend", "-o", "json"]) == 0
    assert [(d["kind"], d["metadata"]["name"]) for d in json.loads(capsys.readouterr().out)] == [
        ("Network", "app_default"), ("Container", "app-db-1"), ("Container", "app-mock-backend-1")]
    assert main(["convert", "app", "idle", "-o", "json"]) == 0              # it runs none, web all the same
    assert [d["metadata"]["name"] for d in json.loads(capsys.readouterr().out)] == [
        "app_default", "app_jobs", "app-idle", "app-web-1"]
    assert main(["convert", "app", "idle"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# the compose project 'app' (compose.yaml) as reconciler manifests: services idle, web\n")
    write(tmp_path / "saved", "app.yaml", out)
    assert main(["validate", str(tmp_path / "saved")]) == 0
    assert capsys.readouterr().out.startswith("valid: 1 container, 0 images, 2 networks, 0 volumes in 1 file")
    assert main(["convert", "-f", "app/compose.yaml", "web", "-o", "json"]) == 0   # with -f every name is one
    assert [d["metadata"]["name"] for d in json.loads(capsys.readouterr().out)] == ["app_default", "app-web-1"]
    assert main(["convert", "app", "web", "wrker"]) == 2
    captured = capsys.readouterr()
    assert "app/compose.yaml:1:1: services: no such service: 'wrker'; the services here: db, idle, mock-backend, " \
           "phpmyadmin, web" in captured.out
    assert captured.err == "invalid: 1 problem\n"
