"""Compose keys of #16 on the host's real dockerd, through `reconcile apply --runtime docker`:
`ipv4_address` gives each service exactly the address its compose file names, on its first
network (set at create) and on a second one (set at connect), and the other service reaches it
there; `extra_hosts: [NAME:host-gateway]` reaches dockerd as written, and the container's
/etc/hosts names the default bridge's gateway; `logging:` is the container's LogConfig. The
project (containers, its networks on leased subnets) is removed afterwards, even when the test
fails.
"""

from __future__ import annotations

import ipaddress
import secrets
import string
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.runtime.docker import DockerRuntime
from tests.docker.conftest import PulledImage, remove_compose_project
from tests.helpers import subnets

pytestmark = [pytest.mark.docker]

COMPOSE = """
    services:
      web:
        image: {image}
        command: ["sh", "-c", "mkdir -p /srv && echo fixed > /srv/index.html && exec httpd -f -p 8000 -h /srv"]
        stop_grace_period: 1s
        networks:
          back: {{ipv4_address: "{web_back}"}}
          front: {{ipv4_address: "{web_front}"}}
      client:
        image: {image}
        command: ["sleep", "3600"]
        stop_grace_period: 1s
        networks:
          back: {{ipv4_address: "{client}"}}
    networks:
      back:
        ipam: {{config: [{{subnet: "{back}"}}]}}
      front:
        ipam: {{config: [{{subnet: "{front}"}}]}}
    """


@pytest.fixture
def project(docker: DockerRuntime) -> Iterator[tuple[str, list[ipaddress.IPv4Network]]]:
    """A project name of the test's own and two leased subnets; removes the project afterwards."""
    name = "rfixed" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(5))
    block = subnets.lease_block()
    try:
        yield name, list(block.subnets(new_prefix=24))[:2]
    finally:
        remove_compose_project(docker, name)
        subnets.release(block)


def apply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, compose: str) -> int:
    """`reconcile apply --runtime docker` of a compose file as project NAME (its owner too)."""
    for var in ("COMPOSE_FILE", "COMPOSE_PROFILES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", name)
    where = tmp_path / "p"
    where.mkdir()
    (where / "compose.yaml").write_text(textwrap.dedent(compose))
    return main(["apply", str(where), "--root", str(tmp_path / "root"), "--runtime", "docker", "--owner", name])


def fetch(docker: DockerRuntime, container: str, url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        res = docker.exec(container, ["timeout", "3", "wget", "-qO-", url])
        if (res.exit_code, res.stdout.decode().strip()) == (0, "fixed"):
            return
        assert time.monotonic() < deadline, f"{container} got {res.exit_code} {res.stdout!r} {res.stderr!r}"
        time.sleep(0.2)


def test_docker_gives_each_service_the_address_its_compose_file_names(
    project: tuple[str, list[ipaddress.IPv4Network]], docker: DockerRuntime, docker_image: PulledImage,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, (back, front) = project
    want = {"web_back": str(back.network_address + 77), "web_front": str(front.network_address + 88),
            "client": str(back.network_address + 99)}
    assert apply(tmp_path, monkeypatch, name, COMPOSE.format(
        image=docker_image.ref, back=back, front=front, **want)) == 0
    web = docker.api.container_inspect(f"{name}-web-1")["NetworkSettings"]["Networks"]
    client = docker.api.container_inspect(f"{name}-client-1")["NetworkSettings"]["Networks"]
    assert web[f"{name}_back"]["IPAddress"] == want["web_back"]          # at create
    assert web[f"{name}_front"]["IPAddress"] == want["web_front"]        # at connect
    assert client[f"{name}_back"]["IPAddress"] == want["client"]
    fetch(docker, f"{name}-client-1", f"http://{want['web_back']}:8000/")


GATEWAY = """
    services:
      app:
        image: {image}
        command: ["sleep", "3600"]
        stop_grace_period: 1s
        extra_hosts: ["host.docker.internal:host-gateway"]
    networks:
      default:
        ipam: {{config: [{{subnet: "{subnet}"}}]}}
    """


def _bridge_gateway(docker: DockerRuntime) -> str:
    """The default bridge's gateway, which dockerd writes for host-gateway. A dockerd that
    adopted a docker0 existing before it started lists no Gateway in the network's IPAM config
    (20.10 does): the bridge's own address is then the gateway."""
    net = docker.api.network_inspect("bridge")
    for cfg in net["IPAM"]["Config"]:
        if cfg.get("Gateway"):
            return str(cfg["Gateway"])
    dev = net["Options"].get("com.docker.network.bridge.name", "docker0")
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", dev], capture_output=True, text=True,
                         check=True).stdout
    return out.split()[3].split("/")[0]


def test_host_gateway_is_passed_to_dockerd_which_names_its_bridge_gateway(
    project: tuple[str, list[ipaddress.IPv4Network]], docker: DockerRuntime, docker_image: PulledImage,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, (subnet, _) = project
    assert apply(tmp_path, monkeypatch, name, GATEWAY.format(image=docker_image.ref, subnet=subnet)) == 0
    app = f"{name}-app-1"
    assert docker.api.container_inspect(app)["HostConfig"]["ExtraHosts"] == ["host.docker.internal:host-gateway"]
    bridge = _bridge_gateway(docker)
    hosts = docker.exec(app, ["cat", "/etc/hosts"]).stdout.decode().splitlines()
    assert f"{bridge}\thost.docker.internal" in hosts, hosts


LOGGING = """
    services:
      app:
        image: {image}
        command: ["sh", "-c", "echo hello; sleep 3600"]
        stop_grace_period: 1s
        logging:
          driver: local
          options: {{max-size: 1m, max-file: "2"}}
    networks:
      default:
        ipam: {{config: [{{subnet: "{subnet}"}}]}}
    """


def test_logging_becomes_the_containers_log_config(
    project: tuple[str, list[ipaddress.IPv4Network]], docker: DockerRuntime, docker_image: PulledImage,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, (subnet, _) = project
    assert apply(tmp_path, monkeypatch, name, LOGGING.format(image=docker_image.ref, subnet=subnet)) == 0
    app = f"{name}-app-1"
    assert docker.api.container_inspect(app)["HostConfig"]["LogConfig"] == {
        "Type": "local", "Config": {"max-size": "1m", "max-file": "2"}}
    deadline = time.monotonic() + 10
    while [ln.data for ln in docker.logs(app)] != [b"hello"]:      # the local driver keeps it readable
        assert time.monotonic() < deadline
        time.sleep(0.2)
