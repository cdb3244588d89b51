"""A compose project converges for real on the native engine (root, a real registry, runc + conmon).

Two busybox services from the test registry: `web` serves a bind-mounted site on a loopback
port and waits for `api` to be healthy; `api` runs two replicas that answer on the project's
networks under the service name; `web` reads a compose secret from /run/secrets and starts only
after the one-shot `migrate` job wrote its volume and exited 0. An edit of `.env` replaces only the service using the variable. One engine per
test (own state root, run dir, name prefix and subnet pool); teardown removes everything and
fails the test if anything is left.
"""

from __future__ import annotations

import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.host import Host
from tests.helpers.registry import free_port

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]

COMPOSE = """
    name: e2e
    services:
      web:
        image: {image}
        command: ["sh", "-c", "mkdir -p /www && cp /site/index.html /state/done /www/ && echo $$GREETING > /www/greeting && exec httpd -f -p 8080 -h /www"]
        environment:
          GREETING: ${{GREETING:?set GREETING in .env}}
        ports:
          - "127.0.0.1:{port}:8080"
        volumes:
          - ./site:/site:ro
          - state:/state:ro
        secrets: [token]
        depends_on:
          api:
            condition: service_healthy
          migrate:
            condition: service_completed_successfully
        restart: unless-stopped
      api:
        image: {image}
        command: sh -c 'mkdir -p /srv && echo api-answers > /srv/index.html && exec httpd -f -p 8000 -h /srv'
        networks: [default, back]
        deploy: {{replicas: 2}}
        tmpfs: /tmp
        healthcheck:
          test: ["CMD", "wget", "-qO-", "http://127.0.0.1:8000/"]
          interval: 1s
          timeout: 2s
          retries: 3
        stop_grace_period: 2s
      migrate:
        image: {image}
        command: ["sh", "-c", "sleep 1; echo migrated > /state/done"]
        volumes: [state:/state]
        network_mode: none
    networks:
      back:
        internal: true
    volumes:
      state: {{}}
    secrets:
      token:
        file: ./token.txt
    """


def get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.read().decode().strip()
    except OSError:
        return None


def eventually(url: str, expect: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while (seen := get(url)) != expect:
        assert time.monotonic() < deadline, f"{url} answered {seen!r}, not {expect!r}"
        time.sleep(0.2)


def test_a_compose_project_converges_serves_and_follows_its_dotenv(
    tmp_path: Path, host: Host, busybox_image: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("GREETING", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE"):
        monkeypatch.delenv(var, raising=False)
    port = free_port()
    project = tmp_path / "shop"
    (project / "site").mkdir(parents=True)
    (project / "site" / "index.html").write_text("hello-from-compose\n")
    (project / "compose.yaml").write_text(textwrap.dedent(COMPOSE.format(image=busybox_image, port=port)))
    (project / ".env").write_text("GREETING=hi\n")
    (project / "token.txt").write_text("t0ken\n")

    assert host.cli("apply", str(project)) == 0
    eventually(f"http://127.0.0.1:{port}/", "hello-from-compose")
    eventually(f"http://127.0.0.1:{port}/greeting", "hi")
    eventually(f"http://127.0.0.1:{port}/done", "migrated")          # web started after the job ended
    ids = host.ids()
    assert set(ids) == {"e2e-web-1", "e2e-api-1", "e2e-api-2", "e2e-migrate-1"}
    rt = host.runtime()
    try:
        web = rt.inspect_container("e2e-web-1")
        assert {k: v for k, v in web.labels.items() if k.startswith("com.docker.compose.")} == {
            "com.docker.compose.project": "e2e", "com.docker.compose.service": "web",
            "com.docker.compose.container-number": "1", "com.docker.compose.oneoff": "False",
            "com.docker.compose.project.working_dir": str(project),
            "com.docker.compose.project.config_files": str(project / "compose.yaml")}
        # the service name resolves on the project's network
        res = rt.exec("e2e-web-1", ["timeout", "3", "wget", "-qO-", "http://api:8000/"])
        assert (res.exit_code, res.stdout.decode().strip()) == (0, "api-answers")
        # the secret file is mounted where compose mounts it, read-only
        res = rt.exec("e2e-web-1", ["cat", "/run/secrets/token"])
        assert (res.exit_code, res.stdout.decode()) == (0, "t0ken\n")
        assert rt.exec("e2e-web-1", ["sh", "-c", "echo x > /run/secrets/token"]).exit_code != 0
        # both replicas run, numbered as compose numbers them, and answer
        for n in (1, 2):
            api = rt.inspect_container(f"e2e-api-{n}")
            assert api.labels["com.docker.compose.container-number"] == str(n)
            res = rt.exec(f"e2e-api-{n}", ["timeout", "3", "wget", "-qO-", "http://127.0.0.1:8000/"])
            assert (res.exit_code, res.stdout.decode().strip()) == (0, "api-answers")
        assert {n.name for n in rt.list_networks({"reconciler.owner": "default"})} == {"e2e_default", "e2e_back"}
    finally:
        rt.close()
    assert host.cli("diff", str(project)) == 0                          # in sync (the job stays exited)

    (project / ".env").write_text("GREETING=bonjour\n")                # only web uses it
    assert host.cli("diff", str(project)) == 1
    assert host.cli("apply", str(project)) == 0
    eventually(f"http://127.0.0.1:{port}/greeting", "bonjour")
    after = host.ids()
    assert after["e2e-api-1"] == ids["e2e-api-1"]
    assert after["e2e-api-2"] == ids["e2e-api-2"]
    assert after["e2e-web-1"] != ids["e2e-web-1"]


JOB = """
    name: rb
    services:
      migrate:
        image: {image}
        command: ["sh", "-c", "exit ${{MIGRATE_EXIT:-0}}"]
        network_mode: none
      web:
        image: {image}
        command: ["sleep", "300"]
        network_mode: none
        stop_grace_period: 1s
        depends_on:
          migrate:
            condition: service_completed_successfully
    """


def test_a_job_rolled_back_shows_the_image_reference_it_was_made_from(
    tmp_path: Path, host: Host, busybox_image: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A job's new version exits 4: the previous one is made again from the image it ran (its id)
    under the reference it had, as `ps` and `inspect` showed it before (not the image id)."""
    project = tmp_path / "rb"
    project.mkdir()
    (project / "compose.yaml").write_text(textwrap.dedent(JOB.format(image=busybox_image)))
    monkeypatch.delenv("MIGRATE_EXIT", raising=False)
    assert host.cli("apply", str(project)) == 0
    rt = host.runtime()
    try:
        before = rt.inspect_container("rb-migrate-1")
        monkeypatch.setenv("MIGRATE_EXIT", "4")
        assert host.cli("apply", str(project)) == 1                 # rolled back
        after = rt.inspect_container("rb-migrate-1")
    finally:
        rt.close()
    assert after.id != before.id
    assert (after.image, after.image_id) == (busybox_image, before.image_id)
    assert (after.exit_code, after.labels) == (0, before.labels)


TWO = """
    services:
      app:
        image: {image}
        command: ["sleep", "1000"]
        networks: [default]
    networks:
      default: {{}}
    """


def test_a_second_compose_project_under_one_owner_leaves_the_first_running(
    tmp_path: Path, host: Host, busybox_image: str, capsys: pytest.CaptureFixture[str],
) -> None:
    """`reconcile apply proja`, then `reconcile apply projb` (one default owner): compose keeps
    projects apart by name, and the second apply leaves the first's container and network
    (noted as another project's, with the --owner that keeps them apart) instead of pruning."""
    for name in ("proja", "projb"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "compose.yaml").write_text(textwrap.dedent(TWO.format(image=busybox_image)))
    assert host.cli("apply", str(tmp_path / "proja")) == 0
    capsys.readouterr()
    assert host.cli("apply", str(tmp_path / "projb")) == 0
    out = capsys.readouterr().out
    assert "compose project proja's, not projb's" in out
    rt = host.runtime()
    try:
        assert rt.inspect_container("proja-app-1").status == "running"
        assert rt.inspect_container("projb-app-1").status == "running"
        assert {n.name for n in rt.list_networks()} >= {"proja_default", "projb_default"}
    finally:
        rt.close()
