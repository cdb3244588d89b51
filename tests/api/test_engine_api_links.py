"""Docker's legacy links on a user-defined network through the native engine's Engine API, as
dockerd 20.10 keeps them there: `--link TARGET:ALIAS` names TARGET to the linking container
alone (its hosts file and the embedded DNS server), inspect lists them in the endpoint's `Links`.
compose v1 sends them for a service's `links:` and for every one-off container of
`docker-compose run`, which the native engine refused (a 400 for HostConfig.Links): `run` failed
on every project."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.api.test_engine_api import docker
from tests.api.test_engine_api import engine_api as engine_api  # the fixture
from tests.api.test_engine_api import pytestmark as pytestmark  # root, registry, docker CLI
from tests.api.test_engine_api_networks import _inspect
from tests.helpers.host import Host


def _hosts(sock: str, container: str) -> set[str]:
    return {name for line in docker(sock, "exec", container, "cat", "/etc/hosts").stdout.splitlines()
            for name in line.split()[1:]}


def test_a_link_names_its_target_to_the_linking_container_alone(engine_api: str, host: Host,
                                                                  busybox_image: str) -> None:
    net = f"{host.config.name_prefix}n"
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "network", "create", "--subnet", host.subnet, net)
    try:
        docker(engine_api, "run", "-d", "--name", "db", "--network", net, busybox_image, "sleep", "300")
        docker(engine_api, "run", "-d", "--name", "peer", "--network", net, busybox_image, "sleep", "300")
        docker(engine_api, "run", "-d", "--name", "app", "--network", net, "--link", "db:database",
               "--link", "peer", busybox_image, "sleep", "300")
        db = _inspect(engine_api, "db")["NetworkSettings"]["Networks"][net]["IPAddress"]
        app = _inspect(engine_api, "app")
        assert app["HostConfig"]["Links"] is None                 # dockerd keeps them on the endpoint
        assert app["NetworkSettings"]["Networks"][net]["Links"] == ["db:database", "peer:peer"]
        assert f"PING database ({db})" in docker(engine_api, "exec", "app", "busybox", "ping", "-c1", "-W2", "database").stdout
        assert db in docker(engine_api, "exec", "app", "busybox", "nslookup", "database", "127.0.0.11").stdout
        assert "database" not in _hosts(engine_api, "peer")         # the linking container's alone
        assert docker(engine_api, "exec", "peer", "busybox", "nslookup", "database", "127.0.0.11", check=False).returncode != 0
        # a target that is not there is taken, as by dockerd: its alias resolves to nothing
        docker(engine_api, "run", "--rm", "--network", net, "--link", "gone:x", busybox_image, "true")
    finally:
        docker(engine_api, "rm", "-f", "db", "peer", "app")
        docker(engine_api, "network", "rm", net)


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="needs Debian's docker-compose (v1)")
def test_docker_compose_links_and_run_work_on_the_native_engine(engine_api: str, host: Host, busybox_image: str,
                                                                 tmp_path: Path) -> None:
    project = f"{host.config.name_prefix}l"
    (tmp_path / "compose.yml").write_text(f"""
version: "3.8"
services:
  db:
    image: {busybox_image}
    command: sleep 3600
    environment: {{ROLE: db}}
    networks: [back]
  app:
    image: {busybox_image}
    command: sleep 3600
    links: ["db:database"]
    depends_on: [db]
    networks: [back]
networks:
  back:
    ipam: {{config: [{{subnet: "{host.subnet}"}}]}}
""")
    env = {**os.environ, "DOCKER_HOST": f"unix://{engine_api}"}

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["docker-compose", "-p", project, *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=180, check=False)
        assert proc.returncode == 0, f"docker-compose {' '.join(args)}: {proc.stdout}{proc.stderr}"
        return proc

    try:
        compose("up", "-d")
        assert compose("exec", "-T", "app", "busybox", "ping", "-c1", "-W2", "database").stdout.startswith("PING database")
        # a one-off container: compose links it to its service's containers and to their links
        ran = compose("run", "--rm", "app", "sh", "-c", "busybox ping -c1 -W2 database; busybox ping -c1 -W2 app_1")
        assert "PING database" in ran.stdout
        assert "PING app_1" in ran.stdout
        assert compose("run", "--rm", "db", "sh", "-c", "echo $ROLE").stdout.strip() == "db"
        assert "database" not in _hosts(engine_api, f"{project}_db_1")
    finally:
        compose("down", "-v")
    assert docker(engine_api, "ps", "-aq").stdout.strip() == ""
