"""Compose ports without a host port (`"8080"`) on the host's real dockerd, through `reconcile apply
--runtime docker`: Docker chooses the port (HostPort ""), `reconcile ps` shows Docker's choice and
127.0.0.1:THAT_PORT reaches the container's server; a second pass leaves containers and ports;
two replicas get two ports; removing a service removes its bindings. The project (containers,
its network on a leased subnet) is removed afterwards, even when the test fails.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.runtime.docker import DockerRuntime
from tests.docker.conftest import PulledImage, remove_compose_project
from tests.helpers import subnets

SERVE = "mkdir -p /srv && echo {answer} > /srv/index.html && exec httpd -f -p {port} -h /srv"

COMPOSE = """
    services:
      web:
        image: {image}
        command: ["sh", "-c", "{web}"]
        ports: ["8080"]
        stop_grace_period: 1s
    {api}
    networks:
      default:
        ipam: {{config: [{{subnet: "{subnet}"}}]}}
    """

API = """
      api:
        image: {image}
        command: ["sh", "-c", "{api}"]
        ports: ["127.0.0.1::8000"]
        deploy: {{replicas: 2}}
        stop_grace_period: 1s
    """


@pytest.fixture
def project(docker: DockerRuntime, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A project name of the test's own and a leased subnet; removes the project afterwards."""
    name = "rport" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(5))
    block = subnets.lease_block()
    try:
        yield name, str(next(block.subnets(new_prefix=24)))
    finally:
        remove_compose_project(docker, name)
        subnets.release(block)


def write(where: Path, image: str, subnet: str, *, with_api: bool) -> None:
    api = API.format(image=image, api=SERVE.format(answer="api-$$HOSTNAME", port=8000)) if with_api else ""
    where.joinpath("compose.yaml").write_text(textwrap.dedent(
        COMPOSE.format(image=image, web=SERVE.format(answer="web", port=8080), api=api, subnet=subnet)))


def published(name: str, capsys: pytest.CaptureFixture[str]) -> dict[str, list[tuple[str, int, str]]]:
    """Container name -> (host address, host port, container port/protocol) as `reconcile ps` shows them."""
    capsys.readouterr()
    assert main(["ps", "--runtime", "docker", "-o", "json", "--filter", f"label=com.docker.compose.project={name}"]) == 0
    rows = json.loads(capsys.readouterr().out)
    return {r["name"]: [(m[1], int(m[2]), m[3]) for m in re.finditer(r"([\d.]+):(\d+)->(\d+/\w+)", r["ports"])]
            for r in rows}


def get(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as resp:
            return resp.read().decode().strip()
    except OSError:
        return None


def answer(port: int, expect: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while (seen := get(port)) != expect:
        assert time.monotonic() < deadline, f"127.0.0.1:{port} answered {seen!r}, not {expect!r}"
        time.sleep(0.2)


def test_docker_chooses_the_host_ports_and_ps_shows_them(
    project: tuple[str, str], docker: DockerRuntime, docker_image: PulledImage, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    name, subnet = project
    for var in ("COMPOSE_FILE", "COMPOSE_PROFILES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", name)
    where = tmp_path / "p"
    where.mkdir()
    write(where, docker_image.ref, subnet, with_api=True)
    apply = ["apply", str(where), "--root", str(tmp_path / "root"), "--runtime", "docker", "--owner", name]

    assert main(apply) == 0
    ports = published(name, capsys)
    assert sorted(ports) == [f"{name}-api-1", f"{name}-api-2", f"{name}-web-1"]
    web = [p for p in ports[f"{name}-web-1"] if ":" not in p[0]]         # Docker adds [::] beside 0.0.0.0
    assert [(ip, target) for ip, _, target in web] == [("0.0.0.0", "8080/tcp")]
    api = [ports[f"{name}-api-{n}"] for n in (1, 2)]
    assert [[(ip, target) for ip, _, target in p] for p in api] == [[("127.0.0.1", "8000/tcp")]] * 2
    chosen = [web[0][1], api[0][0][1], api[1][0][1]]
    assert len(set(chosen)) == 3, chosen                             # Docker chose, one port each
    assert all(chosen), chosen
    answer(chosen[0], "web")
    ids = {c["Names"][0].lstrip("/"): c["Id"] for c in docker.api.container_list({"com.docker.compose.project": name})}
    for n in (1, 2):
        answer(chosen[n], f"api-{ids[f'{name}-api-{n}'][:12]}")       # its own replica (hostname: the id)

    # Docker's choice is observed state: a second pass replaces nothing and moves no port
    assert main(apply) == 0
    after = {c["Names"][0].lstrip("/"): c["Id"] for c in docker.api.container_list({"com.docker.compose.project": name})}
    assert after == ids
    assert published(name, capsys) == ports

    # removing the replicas removes their bindings
    write(where, docker_image.ref, subnet, with_api=False)
    assert main(apply) == 0
    assert sorted(published(name, capsys)) == [f"{name}-web-1"]
    assert [get(p) for p in chosen[1:]] == [None, None]
