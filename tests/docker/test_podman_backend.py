"""The Docker backend's podman variant, chosen for an engine that is Podman, on a podman
service of the test session's own (tests/docker/conftest.py): `--runtime docker` against
Podman's socket gets PodmanRuntime, whose own loop runs the healthchecks Podman would run from
systemd timers, during a pass as an agent's session runs it."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import pytest

from reconciler.execution import backends
from reconciler.runtime import base, opening
from reconciler.runtime.docker import DockerRuntime
from reconciler.runtime.docker.podman import PodmanRuntime
from tests.docker.conftest import DOCKER_SOCKET, PulledImage, rand
from tests.docker.test_containers import attached_run

pytestmark = [pytest.mark.root, pytest.mark.docker, pytest.mark.xdist_group("podman")]   # one podman service (tests/runtime/conftest.py)


def _open(sock: str, monkeypatch: pytest.MonkeyPatch, root: Path) -> base.Runtime:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    return opening.open_runtime("docker", opening.Place(root))


def test_the_docker_runtime_on_podman_is_the_podman_variant(
        podman: DockerRuntime, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rt = _open(podman.api.socket_path, monkeypatch, tmp_path)
    try:
        assert isinstance(rt, PodmanRuntime)
        assert isinstance(rt, base.Supervised)        # its loops run with the pass
    finally:
        rt.close()
    if os.path.exists(DOCKER_SOCKET):
        on_docker = _open(DOCKER_SOCKET, monkeypatch, tmp_path)
        try:
            assert type(on_docker) is DockerRuntime
        finally:
            on_docker.close()


def test_a_session_on_podman_runs_its_healthchecks(
        podman: DockerRuntime, podman_image: PulledImage, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    name = f"rtph{rand()}-hc"
    with backends.session(_open(podman.api.socket_path, monkeypatch, tmp_path), poll=0.1) as rt:
        hc = base.Healthcheck(test=("CMD", "true"), interval=0.5, timeout=5, retries=1)
        cid = rt.create_container(base.ContainerConfig(name=name, image=podman_image.ref, command=("sleep", "600"),
                                                       networks=("none",), healthcheck=hc))
        try:
            rt.start_container(cid)
            deadline = time.monotonic() + 30
            while rt.inspect_container(cid).health != "healthy":
                assert time.monotonic() < deadline, "podman's healthcheck never ran"
                time.sleep(0.1)
        finally:
            rt.remove_container(cid, force=True)


def test_a_podman_health_status_no_probe_observed_lately_is_stale_until_a_pass_probes_it(
        podman: DockerRuntime, podman_image: PulledImage, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Podman's checks run only while reconciler's loop does: with no session (no agent), the
    status its last probe left is reported stale (healthtimes' rule, as the native engine's), and
    a pass probes it before it judges (observing.probe_stale)."""
    from reconciler.execution import observing

    name = f"rtph{rand()}-stale"
    rt = _open(podman.api.socket_path, monkeypatch, tmp_path)
    assert isinstance(rt, PodmanRuntime)
    hc = base.Healthcheck(test=("CMD", "true"), interval=0.5, timeout=1, retries=1)
    cid = rt.create_container(base.ContainerConfig(name=name, image=podman_image.ref, command=("sleep", "600"),
                                                   networks=("none",), healthcheck=hc))
    try:
        rt.start_container(cid)
        assert rt.health_checker.probe(cid) == "healthy"
        fresh = rt.inspect_container(cid)
        assert (fresh.health, fresh.health_stale) == ("healthy", False)
        assert fresh.health_probed_at is not None
        deadline = time.monotonic() + 30
        while not rt.inspect_container(cid).health_stale:      # 3 x 0.5 s + 1 s with no probe
            assert time.monotonic() < deadline, "the status never went stale"
            time.sleep(0.2)
        stale = rt.inspect_container(cid)
        assert stale.health_probed_at == fresh.health_probed_at
        [seen] = observing.probe_stale(rt, [s for s in rt.list_containers() if s.name == name], {name})
        assert (seen.health, seen.health_stale) == ("healthy", False)
        assert seen.health_probed_at != fresh.health_probed_at
    finally:
        rt.remove_container(cid, force=True)
        rt.close()


def test_a_run_attached_before_its_start_gets_every_byte_on_podman(
        podman: DockerRuntime, podman_image: PulledImage) -> None:
    for i in range(3):
        got, code = attached_run(podman, f"rtpa{rand()}-{i}", podman_image.ref)
        assert got == {"stdout": [(b"out", True), (b"more", False)], "stderr": [(b"err", True)]}, i
        assert code == 3


def test_errors_on_podman_name_podman_and_its_commands(
        podman: DockerRuntime, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    """`--runtime docker` on Podman's socket (the CLI opens it through runtime.opening, which asks
    the engine what it is): its errors say "podman", and its hints Podman's commands. They said
    "docker: ..." and `docker network rm`: the client was made before the engine was known."""
    from reconciler.cli.main import main
    from reconciler.runtime import errors

    name = f"rtph{rand()}-none"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{podman.api.socket_path}")
    assert main(["rm", "--runtime", "docker", "--root", str(tmp_path / "root"), name]) == 1
    err = capfd.readouterr().err
    assert f"podman: remove container {name}:" in err, err
    assert "docker" not in err, err
    rt = _open(podman.api.socket_path, monkeypatch, tmp_path)
    try:
        with pytest.raises(errors.NotFound, match=f"^podman: network {name}: "):
            rt.remove_network(name)
        stale = base.NetworkConfig(name=name, labels={"rt.test": name})
        rt.ensure_network(base.NetworkConfig(name=name))
        with pytest.raises(errors.Conflict) as refused:
            rt.ensure_network(stale)                    # made by someone else: not the one asked for
        assert f"`podman network rm {name}`" in str(refused.value.hint)
    finally:
        with contextlib.suppress(errors.NotFound):
            rt.remove_network(name)
        rt.close()
