"""A container's own settings on its networks through the Docker backend, on the host's real
dockerd and a podman service (networks of the test's own prefix and subnets; the scope removes
them): the MAC address and link-local addresses seen inside the container, and what an engine's
Engine API version does not have refused by name before anything is made (dockerd would drop it
without a word). The create bodies for the newer versions are checked without an engine."""

from __future__ import annotations

import ipaddress
from typing import Any

import httpx
import pytest

from reconciler.runtime import base, errors
from reconciler.runtime.docker import DockerRuntime, api
from reconciler.runtime.docker.backend import container_body
from tests.docker.conftest import Engine
from tests.docker.test_containers import make, run

MAC = "02:5b:00:00:00:0a"


def _networks(engine: Engine, *suffixes: str) -> list[str]:
    names = []
    for suffix in suffixes:
        net = engine.scope.name("networks", suffix)
        engine.rt.ensure_network(base.NetworkConfig(net, subnet=engine.scope.subnet(), internal=True,
                                                    labels=engine.scope.labels))
        names.append(net)
    return names


@pytest.mark.docker
@pytest.mark.registry
def test_the_first_networks_mac_and_link_local_addresses_inside_the_container(engine: Engine) -> None:
    rt, scope = engine.rt, engine.scope
    (net,) = _networks(engine, "mac")
    if engine.kind == "podman":
        for field, settings in (("linkLocalIPs", {"link_local_ips": {net: ("169.254.4.4",)}}),
                                ("gwPriority", {"gw_priorities": {net: 1}})):
            with pytest.raises(errors.InvalidArgument, match=rf"networks\[0\]\.{field} \(.*\) is not honoured by Podman"):
                make(scope, engine.image, "ll", ["sleep", "600"], networks=(net,), **settings)
        assert rt.list_containers(scope.labels) == []
        name = run(scope, engine.image, "mac", "sleep 600", networks=(net,), mac_addresses={net: MAC})
    else:
        name = run(scope, engine.image, "mac", "sleep 600", networks=(net,), mac_addresses={net: MAC},
                   link_local_ips={net: ("169.254.4.4",)})
        assert "inet 169.254.4.4/16" in rt.exec(name, ["ip", "addr", "show", "eth0"]).stdout.decode()
    assert f"link/ether {MAC}" in rt.exec(name, ["ip", "link", "show", "eth0"]).stdout.decode()


@pytest.mark.docker
@pytest.mark.registry
def test_podman_takes_a_further_networks_mac_in_the_create(engine: Engine) -> None:
    if engine.kind != "podman":
        pytest.skip("Podman's way (dockerd's: test_what_the_engines_api_version_lacks...)")
    rt, scope = engine.rt, engine.scope
    first, second = _networks(engine, "pma", "pmb")
    name = run(scope, engine.image, "mac2", "sleep 600", networks=(first, second), mac_addresses={second: MAC})
    nets = rt.api.container_inspect(name)["NetworkSettings"]["Networks"]
    assert nets[second]["MacAddress"] == MAC
    assert nets[first]["MacAddress"] != MAC
    assert f"link/ether {MAC}" in rt.exec(name, ["ip", "link"]).stdout.decode()


@pytest.mark.docker
@pytest.mark.registry
def test_what_the_engines_api_version_lacks_is_refused_naming_the_field_and_release(engine: Engine) -> None:
    if engine.kind == "podman":
        pytest.skip("Podman's way: test_podman_takes_a_further_networks_mac_in_the_create")
    rt, scope = engine.rt, engine.scope
    server = str(rt.api.version().get("ApiVersion"))
    first, second = _networks(engine, "gwa", "gwb")
    if not api.at_least(server, "1.48"):
        with pytest.raises(errors.InvalidArgument, match=r"networks\[1\]\.gwPriority \(.*\) needs Engine API 1\.48 "
                                                           r"\(Docker 28 or later\)"):
            make(scope, engine.image, "gw", ["sleep", "600"], networks=(first, second), gw_priorities={second: 1})
    if not api.at_least(server, "1.44"):
        with pytest.raises(errors.InvalidArgument, match=r"networks\[1\]\.macAddress \(.*\) needs Engine API 1\.44 "
                                                           r"\(Docker 25 or later\)"):
            make(scope, engine.image, "mac2", ["sleep", "600"], networks=(first, second), mac_addresses={second: MAC})
    assert rt.list_containers(scope.labels) == []


# -- the bodies, per Engine API version (no engine) -------------------------------------------------

CONFIG = base.ContainerConfig(name="w", image="img", networks=("a", "b"), mac_addresses={"a": MAC, "b": "02:5b:00:00:00:0b"},
                              link_local_ips={"b": ("169.254.1.1", "fe80::1")}, gw_priorities={"b": 7})


def test_a_create_body_carries_the_endpoints_settings() -> None:
    body = container_body(CONFIG, endpoints=2)
    assert body["NetworkingConfig"]["EndpointsConfig"] == {
        "a": {"Aliases": None, "MacAddress": MAC},
        "b": {"Aliases": None, "MacAddress": "02:5b:00:00:00:0b", "GwPriority": 7,
              "IPAMConfig": {"LinkLocalIPs": ["169.254.1.1", "fe80::1"]}}}
    assert "MacAddress" not in body
    old = container_body(base.ContainerConfig(name="w", image="img", networks=("a",), mac_addresses={"a": MAC}),
                         container_mac=True)
    assert old["MacAddress"] == MAC
    assert old["NetworkingConfig"]["EndpointsConfig"] == {"a": {"Aliases": None}}


class _Engine:
    """An Engine API that answers /version with `version` and records the requests."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.requests: list[tuple[str, str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        import json

        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, request.url.path, body))
        if request.url.path == "/version":
            return httpx.Response(200, json={"ApiVersion": self.version, "MinAPIVersion": "1.24", "Version": "x"})
        if request.url.path.endswith("/containers/create"):
            return httpx.Response(201, json={"Id": "c" * 64, "Warnings": []})
        if "/networks/" in request.url.path and request.method == "GET":
            return httpx.Response(200, json={"Name": request.url.path.rsplit("/", 1)[1], "Id": "n", "Labels": {},
                                             "IPAM": {"Config": []}, "Options": {}})
        return httpx.Response(200, json={})


def _create(version: str, config: base.ContainerConfig) -> list[tuple[str, str, Any]]:
    engine = _Engine(version)
    rt = DockerRuntime(transport=httpx.MockTransport(engine))
    try:
        rt.create_container(config)
    finally:
        rt.close()
    return [r for r in engine.requests if r[0] == "POST"]


def test_docker_28_gets_every_endpoint_in_the_create_at_api_1_48() -> None:
    (create,) = _create("1.48", CONFIG)
    _method, path, body = create
    assert path == "/v1.48/containers/create"
    assert set(body["NetworkingConfig"]["EndpointsConfig"]) == {"a", "b"}
    assert body["NetworkingConfig"]["EndpointsConfig"]["b"]["GwPriority"] == 7


def test_docker_25_gets_the_macs_in_the_create_at_api_1_44_and_the_gateway_priority_is_refused() -> None:
    with pytest.raises(errors.InvalidArgument, match=r"networks\[1\]\.gwPriority \(b\) needs Engine API 1\.48"):
        _create("1.44", CONFIG)
    config = base.ContainerConfig(name="w", image="img", networks=("a", "b", "c"), mac_addresses={"b": MAC},
                                  link_local_ips={"c": ("169.254.1.1",)})
    (create,) = _create("1.45", config)
    assert create[1] == "/v1.44/containers/create"
    assert create[2]["NetworkingConfig"]["EndpointsConfig"]["b"]["MacAddress"] == MAC
    assert set(create[2]["NetworkingConfig"]["EndpointsConfig"]) == {"a", "b", "c"}     # a connect drops a MAC
    # a first network's MAC alone: the endpoint's own, one create and a connect as before
    create, connect = _create("1.44", base.ContainerConfig(name="w", image="img", networks=("a", "b"),
                                                           mac_addresses={"a": MAC}))
    assert create[1] == "/v1.44/containers/create"
    assert create[2]["NetworkingConfig"]["EndpointsConfig"] == {"a": {"Aliases": None, "MacAddress": MAC}}
    assert "MacAddress" not in create[2]
    assert connect[1] == "/v1.44/networks/b/connect"


def test_an_older_docker_gets_the_first_networks_mac_as_the_containers() -> None:
    create, connect = _create("1.41", base.ContainerConfig(name="w", image="img", networks=("a", "b"),
                                                           mac_addresses={"a": MAC},
                                                           link_local_ips={"b": ("169.254.1.1",)}))
    assert create[1] == "/v1.41/containers/create"
    assert create[2]["MacAddress"] == MAC
    assert connect[2]["EndpointConfig"]["IPAMConfig"] == {"LinkLocalIPs": ["169.254.1.1"]}


def test_a_first_network_by_priority_is_the_primary_one() -> None:
    """The networks come in connection order (the manifest's priority): the first is NetworkMode."""
    body = container_body(base.ContainerConfig(name="w", image="img", networks=("zz", "aa")))
    assert body["HostConfig"]["NetworkMode"] == "zz"
    assert ipaddress.ip_address("169.254.1.1").is_link_local
