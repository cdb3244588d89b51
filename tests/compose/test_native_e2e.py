"""A compose project converges for real on the native engine (root, a real registry, runc + conmon).

Two busybox services from the test registry: `web` serves a bind-mounted site on a loopback
port and waits for `api` to be healthy; `api` answers on the project's networks under its
service name. An edit of `.env` replaces only the service using the variable. One engine per
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
        command: ["sh", "-c", "mkdir -p /www && cp /site/index.html /www/ && echo $$GREETING > /www/greeting && exec httpd -f -p 8080 -h /www"]
        environment:
          GREETING: ${{GREETING:?set GREETING in .env}}
        ports:
          - "127.0.0.1:{port}:8080"
        volumes:
          - ./site:/site:ro
        depends_on:
          api:
            condition: service_healthy
        restart: unless-stopped
      api:
        image: {image}
        command: sh -c 'mkdir -p /srv && echo api-answers > /srv/index.html && exec httpd -f -p 8000 -h /srv'
        networks: [default, back]
        tmpfs: /tmp
        healthcheck:
          test: ["CMD", "wget", "-qO-", "http://127.0.0.1:8000/"]
          interval: 1s
          timeout: 2s
          retries: 3
        stop_grace_period: 2s
    networks:
      back:
        internal: true
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

    assert host.cli("apply", str(project)) == 0
    eventually(f"http://127.0.0.1:{port}/", "hello-from-compose")
    eventually(f"http://127.0.0.1:{port}/greeting", "hi")
    ids = host.ids()
    assert set(ids) == {"e2e-web-1", "e2e-api-1"}
    rt = host.runtime()
    try:
        web = rt.inspect_container("e2e-web-1")
        assert {k: v for k, v in web.labels.items() if k.startswith("com.docker.compose.")} == {
            "com.docker.compose.project": "e2e", "com.docker.compose.service": "web",
            "com.docker.compose.container-number": "1", "com.docker.compose.oneoff": "False"}
        # the service name resolves on the project's network
        res = rt.exec("e2e-web-1", ["timeout", "3", "wget", "-qO-", "http://api:8000/"])
        assert (res.exit_code, res.stdout.decode().strip()) == (0, "api-answers")
        assert {n.name for n in rt.list_networks({"reconciler.owner": "default"})} == {"e2e_default", "e2e_back"}
    finally:
        rt.close()
    assert host.cli("diff", str(project)) == 0                          # in sync

    (project / ".env").write_text("GREETING=bonjour\n")                # only web uses it
    assert host.cli("diff", str(project)) == 1
    assert host.cli("apply", str(project)) == 0
    eventually(f"http://127.0.0.1:{port}/greeting", "bonjour")
    after = host.ids()
    assert after["e2e-api-1"] == ids["e2e-api-1"]
    assert after["e2e-web-1"] != ids["e2e-web-1"]
