"""`network_mode: service:box` where box is on the host's network, through `reconcile apply
--runtime docker` on the host's real dockerd, as docker-compose runs it: the sidecar joins box's
namespace, which is the host's (dockerd's NetworkMode `container:<box's id>`), and reaches box's
server on the host's loopback. The project is removed afterwards, even when the test fails.
"""

from __future__ import annotations

import os
import secrets
import string
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.runtime.docker import DockerRuntime
from tests.docker.conftest import PulledImage, remove_compose_project
from tests.helpers.ports import publish_port

pytestmark = [pytest.mark.docker]

ON_HOST = """
    services:
      box:
        image: {image}
        command: sh -c 'mkdir -p /srv && echo onhost > /srv/index.html && exec httpd -f -p 127.0.0.1:{port} -h /srv'
        network_mode: host
        stop_grace_period: 1s
      sidecar:
        image: {image}
        command: ["sleep", "3600"]
        network_mode: service:box
        stop_grace_period: 1s
    """


@pytest.fixture
def project(docker: DockerRuntime) -> Iterator[str]:
    name = "rjoin" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(5))
    try:
        yield name
    finally:
        remove_compose_project(docker, name)


def test_docker_runs_a_service_joining_one_on_the_host_network(
    project: str, docker: DockerRuntime, docker_image: PulledImage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("COMPOSE_FILE", "COMPOSE_PROFILES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", project)
    port = publish_port()
    where = tmp_path / "p"
    where.mkdir()
    (where / "compose.yaml").write_text(textwrap.dedent(ON_HOST.format(image=docker_image.ref, port=port)))
    argv = [str(where), "--root", str(tmp_path / "root"), "--runtime", "docker", "--owner", project]
    assert main(["apply", *argv]) == 0
    box = docker.api.container_inspect(f"{project}-box-1")
    sidecar = docker.api.container_inspect(f"{project}-sidecar-1")
    assert sidecar["HostConfig"]["NetworkMode"] == f"container:{box['Id']}"
    deadline = time.monotonic() + 20
    while True:
        res = docker.exec(f"{project}-sidecar-1", ["timeout", "3", "wget", "-qO-", f"http://127.0.0.1:{port}/"])
        if (res.exit_code, res.stdout) == (0, b"onhost\n"):
            break
        assert time.monotonic() < deadline, (res.exit_code, res.stdout, res.stderr)
        time.sleep(0.2)
    assert docker.exec(f"{project}-sidecar-1", ["hostname"]).stdout.decode().strip() == os.uname().nodename
    assert main(["diff", *argv]) == 0
