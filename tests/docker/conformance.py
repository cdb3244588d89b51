"""The Docker backend in the shared conformance suite (tests/runtime), on the host's dockerd.

dockerd is shared with everything else on the host, and the suite names its containers and
volumes plainly ("lc", "rtdata"). `Namespaced` gives each test a namespace on that engine: it
prefixes container, volume and network names on the way in and strips them on the way out, and
labels every container so listings see only the test's own. On a user-defined network a
container also gets its plain name as an alias, so that peers find "srv" as they would without
the prefix (the engine's DNS knows the prefixed name). It changes nothing else; every call still
goes through DockerRuntime to the real engine. Teardown removes exactly what the namespace holds.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any

import pytest

from reconciler.runtime import base, errors
from reconciler.runtime.docker import DockerRuntime
from reconciler.runtime.docker.podman import PodmanRuntime
from tests.docker.conftest import DOCKER_SOCKET, TEST_LABEL, PodmanService, podman_usable, rand

_ID = re.compile(r"[0-9a-f]{12,64}")
_MODES = ("none", "host", "bridge", "default")
_JOIN = "container:"                # joins another container's network namespace: prefixed too
_pulled: dict[str, str] = {}


class Namespaced:
    """A DockerRuntime seen through a per-test name prefix (see the module docstring)."""

    name = "docker"

    def __init__(self, rt: DockerRuntime, prefix: str) -> None:
        self.rt = rt
        self.prefix = prefix
        self.label = {TEST_LABEL: prefix}

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.rt, attr)       # images, close: not namespaced

    def _n(self, name: str) -> str:
        return name if _ID.fullmatch(name) else self.prefix + name

    def _strip(self, name: str) -> str:
        return name.removeprefix(self.prefix)

    def _state(self, st: base.ContainerState) -> base.ContainerState:
        labels = {k: v for k, v in st.labels.items() if k != TEST_LABEL}
        ips = {self._strip(k): v for k, v in st.ip_addresses.items()}
        nets = None if st.networks is None else {self._strip(k): v for k, v in st.networks.items()}
        aliases = {self._strip(k): v for k, v in st.aliases.items()}
        return dataclasses.replace(st, name=self._strip(st.name), labels=labels, ip_addresses=ips, networks=nets,
                                   aliases=aliases)

    def create_container(self, config: base.ContainerConfig) -> str:
        mounts = tuple(dataclasses.replace(m, source=self._n(m.source)) if m.type == "volume" else m
                       for m in config.mounts)
        nets = tuple(n if n in _MODES else _JOIN + self._n(n.removeprefix(_JOIN)) if n.startswith(_JOIN) else self._n(n)
                     for n in config.networks)
        aliases = config.aliases
        if nets and nets[0] not in _MODES and not nets[0].startswith(_JOIN) and config.name not in aliases:
            aliases = (config.name, *aliases)
        by_network = {key: {self._n(n): v for n, v in getattr(config, key).items()}
                      for key in ("ipv4_addresses", "ipv6_addresses", "mac_addresses", "link_local_ips", "gw_priorities")}
        return self.rt.create_container(dataclasses.replace(
            config, name=self._n(config.name), labels={**config.labels, **self.label},
            mounts=mounts, networks=nets, aliases=aliases, **by_network))

    def rename_container(self, name_or_id: str, new_name: str) -> None:
        self.rt.rename_container(self._n(name_or_id), self._n(new_name))

    def list_containers(self, selector: Mapping[str, str] | None = None) -> list[base.ContainerState]:
        return [self._state(s) for s in self.rt.list_containers({**(selector or {}), **self.label})]

    def inspect_container(self, name_or_id: str) -> base.ContainerState:
        return self._state(self.rt.inspect_container(self._n(name_or_id)))

    def start_container(self, name_or_id: str) -> None:
        self.rt.start_container(self._n(name_or_id))

    def stop_container(self, name_or_id: str, *, timeout: float | None = None) -> None:
        self.rt.stop_container(self._n(name_or_id), timeout=timeout)

    def kill_container(self, name_or_id: str, signal: str = "KILL") -> None:
        self.rt.kill_container(self._n(name_or_id), signal)

    def remove_container(self, name_or_id: str, *, force: bool = False) -> None:
        self.rt.remove_container(self._n(name_or_id), force=force)

    def wait_container(self, name_or_id: str, *, timeout: float | None = None) -> int:
        return self.rt.wait_container(self._n(name_or_id), timeout=timeout)

    def logs(self, name_or_id: str, *, follow: bool = False, since: str | None = None,
             tail: int | None = None) -> Iterator[base.LogLine]:
        return self.rt.logs(self._n(name_or_id), follow=follow, since=since, tail=tail)

    def exec(self, name_or_id: str, argv: list[str], *, tty: bool = False, user: str | None = None,
             workdir: str | None = None, env: Sequence[str] = ()) -> base.ExecResult:
        return self.rt.exec(self._n(name_or_id), argv, tty=tty, user=user, workdir=workdir, env=env)

    def list_volumes(self, selector: Mapping[str, str] | None = None) -> list[base.VolumeState]:
        return [dataclasses.replace(v, name=self._strip(v.name)) for v in self.rt.list_volumes(selector)
                if v.name.startswith(self.prefix)]

    def ensure_volume(self, config: base.VolumeConfig) -> base.VolumeState:
        v = self.rt.ensure_volume(dataclasses.replace(config, name=self._n(config.name)))
        return dataclasses.replace(v, name=self._strip(v.name))

    def remove_volume(self, name: str) -> None:
        self.rt.remove_volume(self._n(name))

    def import_volume(self, name: str, src: IO[bytes], *, helper_image: str,
                      labels: Mapping[str, str] | None = None) -> None:
        self.rt.import_volume(self._n(name), src, helper_image=helper_image, labels=labels)

    def list_networks(self, selector: Mapping[str, str] | None = None) -> list[base.NetworkState]:
        return [dataclasses.replace(n, name=self._strip(n.name)) for n in self.rt.list_networks(selector)
                if n.name.startswith(self.prefix)]

    def ensure_network(self, config: base.NetworkConfig) -> base.NetworkState:
        n = self.rt.ensure_network(dataclasses.replace(config, name=self._n(config.name)))
        return dataclasses.replace(n, name=self._strip(n.name))

    def remove_network(self, name: str) -> None:
        self.rt.remove_network(self._n(name))

    def cleanup(self) -> None:
        """Remove the namespace's containers, then its networks and volumes."""
        api = self.rt.api
        left = api.container_list(self.label)
        for _ in range(len(left)):      # Podman refuses to remove a container another one joins: that one first
            refused = []
            for c in left:
                try:
                    self.rt.remove_container(c["Id"], force=True)     # (podman's: killed, not stopped)
                except errors.NotFound:
                    pass
                except errors.RuntimeBackendError:
                    refused.append(c)
            left = refused
        for c in left:
            self.rt.remove_container(c["Id"], force=True)     # still refused: the error says why
        for n in api.network_list():
            if str(n.get("Name", "")).startswith(self.prefix):
                try:
                    api.network_remove(n["Name"])
                except errors.NotFound:
                    pass
        for v in api.volume_list():
            if str(v.get("Name", "")).startswith(self.prefix):
                try:
                    api.volume_remove(v["Name"])
                except errors.NotFound:
                    pass


class PodmanNamespaced(Namespaced):
    """Namespaced, telling the podman service which networks (and bridges) the test made, so
    that it deletes what podman leaves of them (tests/docker/conftest.py PodmanService.stop)."""

    name = "podman"

    def __init__(self, rt: DockerRuntime, prefix: str, service: PodmanService) -> None:
        super().__init__(rt, prefix)
        self.service = service

    def ensure_network(self, config: base.NetworkConfig) -> base.NetworkState:
        state = super().ensure_network(config)
        self.service.networks[self._n(state.name)] = state.bridge
        return state

    def cleanup(self) -> None:
        """As Namespaced, then what CNI leaves of the test's networks goes at once, not when the
        service stops: a later test's network could be given the same bridge name."""
        super().cleanup()
        self.service.drop({n: b for n, b in self.service.networks.items() if n.startswith(self.prefix)})


def docker_backend(request: pytest.FixtureRequest) -> Iterator[tuple[Any, str]]:
    """(runtime, image) for the conformance suite's `backend` fixture, param "docker"."""
    import os

    if not os.path.exists(DOCKER_SOCKET):
        pytest.skip("no dockerd socket")
    ref: str = request.getfixturevalue("busybox_image")
    rt = DockerRuntime(DOCKER_SOCKET)
    if ref not in _pulled:
        rt.pull_image(ref)
        _pulled[ref] = ref

        def unpull() -> None:
            with DockerRuntime(DOCKER_SOCKET) as last:
                try:
                    last.remove_image(ref, force=True)
                except errors.RuntimeBackendError:
                    pass

        request.config.add_cleanup(unpull)
    ns = Namespaced(rt, f"rtd{rand()}-")
    try:
        yield ns, ref    # Namespaced is a Runtime by duck typing
    finally:
        try:
            ns.cleanup()
        finally:
            rt.close()


@pytest.fixture(scope="session")
def podman_service(busybox_image: str) -> Iterator[tuple[PodmanRuntime, PodmanService]]:
    """A podman service of the session's own (PodmanService), the test image pulled into it;
    stopped in the session's teardown (a config cleanup runs too late under xdist: the worker
    can be gone before podman and its mounts are)."""
    import shutil
    import tempfile
    from pathlib import Path

    why = podman_usable()
    if why:
        pytest.skip(why)
    # podman refuses a run root over 50 characters, and pytest's temp paths are longer
    work = Path(tempfile.mkdtemp(prefix="rpod", dir="/tmp"))
    service = PodmanService(work)
    try:
        try:
            rt = service.start()
        except errors.Unavailable as exc:
            pytest.skip(str(exc))
        rt.pull_image(busybox_image)
        yield rt, service
    finally:
        service.stop()
        shutil.rmtree(work, ignore_errors=True)


def podman_backend(request: pytest.FixtureRequest) -> Iterator[tuple[Any, str]]:
    """(runtime, image) on the session's podman service (podman_service), through the Docker
    backend's podman variant (reconciler/runtime/docker/podman.py), with its health loop
    running as an agent runs it. The cases Podman cannot pass are skipped by name in
    tests/runtime/conftest.py (PODMAN_CANNOT), each with its reason."""
    import threading

    ref: str = request.getfixturevalue("busybox_image")
    rt, service = request.getfixturevalue("podman_service")
    ns = PodmanNamespaced(rt, f"rtp{rand()}-", service)
    halt = threading.Event()
    health = threading.Thread(target=rt.health_checker.watch, args=(halt,), kwargs={"poll": 0.05}, daemon=True)
    health.start()
    try:
        yield ns, ref
    finally:
        halt.set()
        health.join(timeout=30)
        ns.cleanup()
