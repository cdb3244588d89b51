"""A container's network attachments are observed on dockerd (and Podman): `docker network
disconnect`, a network removed under its containers and made again, a reconnect without the
alias are drift that `reconcile diff --runtime docker` shows with its cause and that a pass
repairs by connecting the same container again, after which a client resolves the alias
(it failed before: `wget: bad address 'api-alias:8080'` while the pass said converged).
Every object carries the test's prefix; the scope removes them afterwards."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.runtime import base
from reconciler.runtime.docker import DockerRuntime
from tests.docker.conftest import Engine, PulledImage, Scope
from tests.docker.test_containers import run
from tests.execution.helpers import write

pytestmark = [pytest.mark.docker, pytest.mark.registry]

SERVE = "mkdir -p /srv && echo api > /srv/index.html && exec httpd -f -p 8080 -h /srv"


def manifests(m: Path, scope: Scope, image: str) -> tuple[str, str, str]:
    net, api, client = (scope.name("networks", "net"), scope.name("containers", "api"),
                        scope.name("containers", "client"))
    write(m, "m.yaml", f"""
        apiVersion: reconciler/v1
        kind: Network
        metadata: {{name: {net}}}
        spec: {{subnet: {scope.subnet()}}}
        ---
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {api}}}
        spec:
          image: {image}
          command: [sh, -c, "{SERVE}"]
          networks: [{net}]
          aliases: [api-alias]
          restart: always
          stopTimeout: 1s
        ---
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {client}}}
        spec:
          image: {image}
          command: [sleep, "3600"]
          networks: [{net}]
          restart: always
          stopTimeout: 1s
        """)
    return net, api, client


def reaches(docker: DockerRuntime, client: str, timeout: float = 15.0) -> str:
    """What `wget http://api-alias:8080/` from `client` says (a few tries: a fresh endpoint's
    name may take a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        r = docker.exec(client, ["timeout", "3", "wget", "-qO-", "http://api-alias:8080/"])
        if r.exit_code == 0 or time.monotonic() > deadline:
            return (r.stdout + r.stderr).decode().strip()
        time.sleep(0.3)


def test_a_disconnected_container_is_drift_and_a_pass_connects_it_again(
        docker: DockerRuntime, docker_image: PulledImage, scope: Scope, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m"
    net, api, client = manifests(m, scope, docker_image.ref)

    def cli(*args: str) -> int:
        return main([*args, str(m), "--root", str(tmp_path / "root"), "--runtime", "docker", "--owner", scope.prefix])

    def once() -> dict[str, object]:
        capsys.readouterr()
        assert cli("apply", "-o", "json") == 0
        out: dict[str, object] = json.loads(capsys.readouterr().out)
        return out

    assert cli("apply") == 0
    ids = {n: docker.inspect_container(n).id for n in (api, client)}
    assert reaches(docker, client) == "api"

    docker.api.network_disconnect(net, api)                        # `docker network disconnect NET api`
    assert "bad address" in reaches(docker, client, timeout=0)
    capsys.readouterr()
    assert cli("diff") == 1
    assert f"container:{api}, connect, not attached to network {net}" in capsys.readouterr().out
    out = once()
    assert (out["result"], out["counts"]) == ("converged", {"connected": 1})
    assert reaches(docker, client) == "api"
    assert {n: docker.inspect_container(n).id for n in (api, client)} == ids     # the same containers

    # both disconnected, the network removed: the pass makes it again and connects both to it
    for name in (api, client):
        docker.api.network_disconnect(net, name)
    docker.remove_network(net)
    out = once()
    assert (out["result"], out["counts"]) == ("converged", {"connected": 2, "created": 1})
    assert reaches(docker, client) == "api"
    new_id = docker.api.network_inspect(net)["Id"]
    assert {docker.inspect_container(n).networks[net] for n in (api, client)} == {new_id}

    # stopped, the network removed under them (Docker allows it, keeping their endpoints by the
    # old id: a start fails, "network ... not found"): reconnected, then started
    for name in (api, client):
        docker.stop_container(name, timeout=1)
    docker.remove_network(net)
    capsys.readouterr()
    assert cli("diff") == 1
    shown = capsys.readouterr().out
    assert f"container:{api}, reconnect, attached to network {net} as it was before it was removed" in shown
    out = once()
    assert out["result"] == "converged"
    assert reaches(docker, client) == "api"
    assert {n: docker.inspect_container(n).id for n in (api, client)} == ids

    # connected again by hand without its alias: attached, but the name resolves to nothing
    docker.api.network_disconnect(net, api)
    docker.api.network_connect(net, api, {})
    assert "bad address" in reaches(docker, client, timeout=0)
    capsys.readouterr()
    assert cli("diff") == 1
    assert f"container:{api}, reconnect, on network {net} without alias api-alias" in capsys.readouterr().out
    assert once()["counts"] == {"connected": 1}
    assert reaches(docker, client) == "api"
    assert cli("diff") == 0


def test_the_engine_reports_a_containers_networks_and_connects_it_again(engine: Engine) -> None:
    """ContainerState.networks and aliases from the inspect a listing makes, on dockerd and
    Podman alike, and base.Connecting's connect (again: after a bare reconnect) with the
    container's aliases."""
    rt, scope = engine.rt, engine.scope
    net = scope.name("networks", "n")
    rt.ensure_network(base.NetworkConfig(net, subnet=scope.subnet(), internal=True, labels=scope.labels))
    name = run(scope, engine.image, "api", "sleep 600", networks=(net,), aliases=("api-alias",))
    config = base.ContainerConfig(name=name, image=engine.image.ref, networks=(net,), aliases=("api-alias",))
    [listed] = rt.list_containers(scope.labels)
    assert set(listed.networks or {}) == {net}
    assert "api-alias" in listed.aliases[net]
    rt.api.network_disconnect(net, name)
    assert rt.inspect_container(name).networks == {}
    rt.connect_container(name, net, config)
    assert "api-alias" in rt.inspect_container(name).aliases[net]
    rt.api.network_disconnect(net, name)
    rt.api.network_connect(net, name, {})
    assert "api-alias" not in rt.inspect_container(name).aliases[net]
    rt.connect_container(name, net, config, again=True)
    st = rt.inspect_container(name)
    assert (set(st.networks or {}), "api-alias" in st.aliases[net]) == ({net}, True)
