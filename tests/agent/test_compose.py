"""A compose project as an agent's directory source (a real agent process, fake engine).

The directory holds compose.yaml, .env and an env file as `docker compose` would read them; an
edit of `.env` replaces exactly the service whose values changed, an edit of the env file the
service that reads it, and a broken compose file is refused at its line with nothing changed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.runtime.fake import FakeRuntime
from tests.agent.conftest import AgentProc, wait_for
from tests.agent.test_directory import containers, env_of
from tests.execution.helpers import IMG, write

COMPOSE = f"""
    services:
      web:
        image: {IMG}
        environment:
          GREETING: ${{GREETING:-hello}}
        ports: ["127.0.0.1:8080:80"]
        depends_on: [api]
      api:
        image: {IMG}
        env_file: api.env
        networks: [back]
    networks:
      back: {{internal: true}}
    """


@pytest.fixture
def agent(tmp_path: Path, agents: list[AgentProc]) -> AgentProc:
    a = AgentProc(tmp_path, sources=[{"name": "shop", "directory": str(tmp_path / "shop")}])
    FakeRuntime.at_root(a.root).publish(IMG)
    agents.append(a)
    return a


def test_a_compose_directory_converges_and_follows_its_env_files(tmp_path: Path, agent: AgentProc) -> None:
    shop = tmp_path / "shop"
    write(shop, "compose.yaml", COMPOSE)
    write(shop, ".env", "GREETING=hi\n")
    write(shop, "api.env", "LEVEL=info\n")
    write(shop, "notes.yaml", "not: a manifest\n")      # beside a compose file, other YAML is not read
    agent.start()
    wait_for("both services created", lambda: {"shop-web-1", "shop-api-1"} <= set(containers(agent.root, "shop")))
    assert env_of(agent.root, "shop-web-1") == {"GREETING": "hi"}
    assert env_of(agent.root, "shop-api-1") == {"LEVEL": "info"}
    web = containers(agent.root)["shop-web-1"]
    assert web.labels["com.docker.compose.project"] == "shop"
    assert web.labels["com.docker.compose.service"] == "web"
    before = {n: c.id for n, c in containers(agent.root).items()}

    write(shop, ".env", "GREETING=bonjour\n")          # only web uses it
    wait_for("web replaced", lambda: env_of(agent.root, "shop-web-1").get("GREETING") == "bonjour")
    assert containers(agent.root)["shop-api-1"].id == before["shop-api-1"]

    write(shop, "api.env", "LEVEL=debug\n")            # only api reads it
    wait_for("api replaced", lambda: env_of(agent.root, "shop-api-1").get("LEVEL") == "debug")
    after = {n: c.id for n, c in containers(agent.root).items()}

    write(shop, "compose.yaml", COMPOSE.replace("env_file: api.env", "env_file: api.env\n        oom_kill_disable: true"))
    src = wait_for("the broken revision reported", lambda: (s := agent.source("shop"))["problems"] and s)
    assert src["problems"] == [f"{shop / 'compose.yaml'}:11:5: services.api.oom_kill_disable: not supported yet: "
                               "oom_kill_disable; the manifest language cannot say it yet, remove it"]
    agent.reconcile("shop")
    assert {n: c.id for n, c in containers(agent.root).items()} == after


def test_a_compose_repository_is_named_after_its_clone(tmp_path: Path, agents: list[AgentProc]) -> None:
    """A git source's project takes the name `git clone` gives its directory, not that of the
    agent's checkout; .env and env files come from the commit."""
    from tests.sources.gitrepos import GitHTTPServer, Upstream

    up = Upstream(tmp_path / "forge", "storefront")
    up.commit({"compose.yaml": COMPOSE, ".env": "GREETING=from-git\n", "api.env": "LEVEL=x\n"})
    server = GitHTTPServer(tmp_path / "forge")
    try:
        a = AgentProc(tmp_path / "agent", sources=[
            {"name": "shop", "git": {"url": server.url("storefront.git"), "branch": "main"}, "interval": "0.5s"}])
        a.tmp.mkdir(parents=True, exist_ok=True)
        FakeRuntime.at_root(a.root).publish(IMG)
        agents.append(a.start())
        wait_for("deployed", lambda: {"storefront-web-1", "storefront-api-1"} <= set(containers(a.root, "shop")))
        assert env_of(a.root, "storefront-web-1") == {"GREETING": "from-git"}
        assert env_of(a.root, "storefront-api-1") == {"LEVEL": "x"}
    finally:
        server.stop()


def test_compose_file_in_the_sources_dotenv_names_the_files_the_agent_merges(tmp_path: Path,
                                                                             agent: AgentProc) -> None:
    """COMPOSE_FILE in `.env` is read by the agent's loader as by the command line's: an edit of
    `.env` that adds the production file replaces the service it changes."""
    shop = tmp_path / "shop"
    write(shop, "docker-compose.yml", f"services:\n  web:\n    image: {IMG}\n    environment: {{MODE: dev}}\n")
    write(shop, "docker-compose.prod.yml", "services:\n  web:\n    environment: {MODE: prod}\n")
    write(shop, ".env", "COMPOSE_FILE=docker-compose.yml\n")
    agent.start()
    wait_for("web created", lambda: env_of(agent.root, "shop-web-1") == {"MODE": "dev"})
    write(shop, ".env", "COMPOSE_FILE=docker-compose.yml:docker-compose.prod.yml\n")
    wait_for("web replaced", lambda: env_of(agent.root, "shop-web-1") == {"MODE": "prod"})
