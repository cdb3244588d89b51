"""DockerRuntime images and networks against the host's real dockerd and a loopback registry."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from reconciler.runtime import base, errors
from reconciler.runtime.docker import DockerRuntime
from tests.docker.conftest import PulledImage, Scope, push_busybox, rand
from tests.docker.test_containers import run, stdout
from tests.helpers import images as timg
from tests.helpers.registry import RegistryServer

pytestmark = [pytest.mark.docker, pytest.mark.registry]


def test_pull_progress_inspect_list_remove(
    docker: DockerRuntime, registry: RegistryServer, scope: Scope, tmp_path: Path,
) -> None:
    ref, digest = push_busybox(registry, tmp_path, f"{scope.prefix}/pull", unique=True, Env=["PATH=/bin", "X=1"])
    scope.images.append(ref)
    events: list[tuple[str, Mapping[str, Any]]] = []
    info = docker.pull_image(ref, progress=lambda ev, detail: events.append((ev, detail)))
    kinds = [e for e, _ in events]
    assert kinds[0] == "resolve"
    assert kinds[-1] == "done"
    assert "layer-start" in kinds
    # the busybox layer may be there already (other tests); the unique one is not
    results = [d["result"] for e, d in events if e == "layer-done"]
    assert sorted(results) in (["downloaded", "downloaded"], ["downloaded", "exists"])
    assert len([e for e in kinds if e == "layer-start"]) == 2
    assert info.digest == digest
    assert info.repo_tags == (ref,)
    assert info.config["Env"] == ["PATH=/bin", "X=1"]
    assert len(info.layers) == 2
    assert info.size > 0
    assert docker.inspect_image(ref) == info
    assert docker.inspect_image(info.id).id == info.id
    assert info.id in {i.id for i in docker.list_images()}

    # a second pull finds everything present: no layer is downloaded again
    again: list[str] = []
    assert docker.pull_image(ref, progress=lambda ev, d: again.append(ev)).id == info.id
    assert "layer-progress" not in again

    # by digest
    by_digest = docker.pull_image(f"{ref.rsplit(':', 1)[0]}@{digest}")
    assert (by_digest.id, by_digest.digest) == (info.id, digest)

    removed = docker.remove_image(ref)
    assert ref in removed
    assert info.id in removed          # the last tag gone, the image is deleted too
    with pytest.raises(errors.NotFound):
        docker.inspect_image(ref)
    with pytest.raises(errors.NotFound):
        docker.remove_image(ref)


def test_pull_errors_are_image_errors(docker: DockerRuntime, registry: RegistryServer, scope: Scope) -> None:
    with pytest.raises(errors.ImageError):
        docker.pull_image(f"{registry.host}/{scope.prefix}/absent:latest")
    with pytest.raises(errors.ImageError):
        docker.resolve_digest(f"{registry.host}/{scope.prefix}/absent:latest")


def test_resolve_digest_asks_the_registry(docker: DockerRuntime, registry: RegistryServer, scope: Scope, tmp_path: Path) -> None:
    ref, digest = push_busybox(registry, tmp_path, f"{scope.prefix}/resolve")
    assert docker.resolve_digest(ref) == digest
    with pytest.raises(errors.NotFound):      # resolved remotely, not pulled
        docker.inspect_image(ref)


def test_network_ensure_verify_remove(docker: DockerRuntime, scope: Scope) -> None:
    name = scope.name("networks", "net")
    subnet = scope.subnet()
    cfg = base.NetworkConfig(name, subnet=subnet, internal=True, labels=scope.labels)
    state = docker.ensure_network(cfg)
    gateway = subnet.rsplit(".", 1)[0] + ".1"
    assert (state.name, state.subnet, state.gateway, state.internal) == (name, subnet, gateway, True)
    assert state.labels == scope.labels
    assert state.bridge == f"br-{state.id[:12]}"
    assert docker.ensure_network(cfg) == state      # idempotent
    assert docker.list_networks(scope.labels) == [state]
    with pytest.raises(errors.Conflict):
        docker.ensure_network(base.NetworkConfig(name, subnet=scope.subnet(), internal=True, labels=scope.labels))
    with pytest.raises(errors.Conflict):
        docker.ensure_network(base.NetworkConfig(name, subnet=subnet, internal=False, labels=scope.labels))
    # a name that is a prefix of the network's id does not find the network
    with pytest.raises(errors.NotFound):
        docker.remove_network(state.id[:12])
    docker.remove_network(name)
    with pytest.raises(errors.NotFound):
        docker.remove_network(name)


def test_aliases_resolve_across_containers(docker: DockerRuntime, docker_image: PulledImage, scope: Scope) -> None:
    net = scope.name("networks", "app")
    other = scope.name("networks", "side")
    docker.ensure_network(base.NetworkConfig(net, subnet=scope.subnet(), labels=scope.labels))
    docker.ensure_network(base.NetworkConfig(other, subnet=scope.subnet(), labels=scope.labels))
    server = run(scope, docker_image, "server",
                 "mkdir /www && echo hello-alias > /www/index.html && httpd -f -p 8080 -h /www",
                 networks=(net, other), aliases=("db", "db-alias"))
    state = docker.inspect_container(server)
    assert set(state.ip_addresses) == {net, other}
    client = run(scope, docker_image, "client",
                 f"for i in $(seq 100); do wget -q -O- http://db-alias:8080/ && wget -q -O- http://{server}:8080/ && exit 0; sleep 0.1; done; exit 1",
                 networks=(net,))
    assert docker.wait_container(client) == 0
    assert stdout(docker, client) == ["hello-alias", "hello-alias"]
    with pytest.raises(errors.Conflict):
        docker.remove_network(net)      # endpoints still attached
    with pytest.raises(errors.InvalidArgument):
        run(scope, docker_image, "noalias", "true", aliases=("x",))


def test_failed_second_network_removes_the_container(docker: DockerRuntime, docker_image: PulledImage, scope: Scope) -> None:
    net = scope.name("networks", "ok")
    docker.ensure_network(base.NetworkConfig(net, subnet=scope.subnet(), labels=scope.labels))
    name = scope.prefix + "-half"
    scope.containers.append(name)
    with pytest.raises(errors.NotFound):
        docker.create_container(base.ContainerConfig(
            name=name, image=docker_image.ref, labels=scope.labels,
            networks=(net, f"{scope.prefix}-absent-{rand()}")))
    with pytest.raises(errors.NotFound):
        docker.inspect_container(name)


def test_made_here_reads_the_repository_digests(
    docker: DockerRuntime, registry: RegistryServer, scope: Scope, tmp_path: Path,
) -> None:
    """A tag dockerd pulled has a repository digest for its repository; one imported, or tagged
    into another repository, has none: no registry holds it, so a pass does not ask for it."""
    ref, _ = push_busybox(registry, tmp_path, f"{scope.prefix}/origin")
    absent = f"{registry.host}/{scope.prefix}/absent:1"
    imported = f"{registry.host}/{scope.prefix}/imported:1"
    retagged = f"{registry.host}/{scope.prefix}/retagged:1"
    scope.images += [ref, imported, retagged]
    docker.pull_image(ref)
    subprocess.run(["docker", "import", "-", imported], input=timg.busybox_layer(), check=True, capture_output=True)
    subprocess.run(["docker", "tag", ref, retagged], check=True, capture_output=True)
    assert docker.made_here(ref) is False
    assert docker.made_here(imported) is True
    assert docker.made_here(retagged) is True
    assert docker.made_here(absent) is False                # not here: a pass pulls it, asking first
    assert docker.made_here(f"{ref.rsplit(':', 1)[0]}@sha256:{'0' * 64}") is False
    assert isinstance(docker, base.TagOrigins)
