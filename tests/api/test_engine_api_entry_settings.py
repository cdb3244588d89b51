"""The native Engine API takes an endpoint's own settings as dockerd does: reconciler's Docker
backend's create with the container-wide MAC of Engine API 1.41 (the main network's), `docker
network connect --link-local-ip` of a running container (the docker CLI as the client), and
`docker inspect` reports the interface's MAC and link-local addresses as the kernel has them."""

from __future__ import annotations

import json
import shutil

import pytest

from reconciler.runtime import base
from reconciler.runtime.docker import DockerRuntime
from tests.api.test_engine_api import docker, engine_api  # noqa: F401 - the fixture
from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")]

MAC = "02:5c:00:00:00:01"


def test_docker_run_mac_address_and_connect_link_local_ip(engine_api: str, host: Host, busybox_image: str) -> None:  # noqa: F811
    net, other = f"{host.config.name_prefix}m", f"{host.config.name_prefix}n"
    docker(engine_api, "network", "create", "--subnet", host.subnet, net)
    docker(engine_api, "network", "create", other)
    docker(engine_api, "pull", busybox_image)
    # (the docker CLI 28 sends --mac-address as the endpoint's, which needs API 1.44, and this
    # engine speaks 1.41: the Docker backend sends it as the container-wide one, as for Docker 20.10)
    client = DockerRuntime(engine_api, what="the native engine's Engine API")
    try:
        client.create_container(base.ContainerConfig(name="mac", image=busybox_image, command=("sleep", "3600"),
                                                     networks=(net,), mac_addresses={net: MAC}))
        client.start_container("mac")
    finally:
        client.close()
    assert f"link/ether {MAC}" in docker(engine_api, "exec", "mac", "ip", "link", "show", "eth0").stdout
    docker(engine_api, "network", "connect", "--link-local-ip", "169.254.6.6", other, "mac")
    assert "inet 169.254.6.6/16" in docker(engine_api, "exec", "mac", "ip", "-4", "-o", "addr", "show", "eth1").stdout
    nets = json.loads(docker(engine_api, "inspect", "mac").stdout)[0]["NetworkSettings"]["Networks"]
    assert nets[net]["MacAddress"] == MAC
    assert nets[other]["IPAMConfig"] == {"LinkLocalIPs": ["169.254.6.6"]}
    assert nets[other]["MacAddress"] not in ("", MAC)            # the kernel's random one, observed
    bad = docker(engine_api, "network", "connect", "--link-local-ip", "10.1.1.1", net, "mac", check=False)
    assert bad.returncode != 0
    assert "10.1.1.1 is not a link-local address" in bad.stderr
    docker(engine_api, "rm", "-f", "mac")
    docker(engine_api, "network", "rm", net)
    docker(engine_api, "network", "rm", other)
