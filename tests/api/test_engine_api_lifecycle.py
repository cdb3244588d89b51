"""What a container made through the Engine API does after its create, as on dockerd 20.10 (docker
CLI 28, docker-py 7): AutoRemove is the container's own (the engine that watches its exit removes
it, also after the Engine API was restarted), a detached `docker run` leaves no server thread
behind, `docker build -q` prints the image id, `--entrypoint ""`, `-P`/`--expose`, `-e NAME`
without a value, and the words of dockerd's errors."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.test_engine_api import REPO, docker, engine_args
from tests.api.test_engine_api import pytestmark as pytestmark  # root, registry, docker CLI
from tests.helpers.host import Host


@contextlib.contextmanager
def serving(host: Host, tmp_path: Path, name: str = "docker.sock") -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`reconcile engine-api` on the test's engine, as the `engine_api` fixture; its socket and process."""
    sock = tmp_path / name
    with (tmp_path / f"{name}.log").open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "reconciler", "engine-api", "--socket", str(sock),
                                 *engine_args(host)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert proc.poll() is None, (tmp_path / f"{name}.log").read_text()
            assert time.monotonic() < deadline, "the engine API did not start"
            time.sleep(0.05)
        yield str(sock), proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _until(what: str, check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():           # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _names(sock: str) -> list[str]:
    return docker(sock, "ps", "-a", "--format", "{{.Names}}").stdout.split()


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_auto_remove_is_the_containers_own_and_survives_an_engine_api_restart(
        host: Host, tmp_path: Path, busybox_image: str) -> None:
    docker_py = pytest.importorskip("docker")
    with serving(host, tmp_path) as (sock, _):
        docker(sock, "pull", busybox_image)
        # docker-py: run(detach=True, auto_remove=True) sends no wait: the engine removes it at its exit
        client = docker_py.DockerClient(base_url=f"unix://{sock}", version="1.41")
        try:
            c = client.containers.run(busybox_image, ["sleep", "0.5"], name="pyrm", network_mode="none",
                                      detach=True, auto_remove=True)
            assert c.attrs["HostConfig"]["AutoRemove"] is True
            _until("docker-py's auto_remove container removed at its exit", lambda: "pyrm" not in _names(sock))
            client.containers.run(busybox_image, ["true"], name="pyrm", network_mode="none", detach=True,
                                  auto_remove=True)        # its name is free again
            _until("the second one removed too", lambda: "pyrm" not in _names(sock))
            # dockerd refuses a restart policy with AutoRemove, at create (400) and at update (409)
            with pytest.raises(docker_py.errors.APIError) as refused:
                client.api.create_container(busybox_image, ["true"], host_config=client.api.create_host_config(
                    auto_remove=True, restart_policy={"Name": "always"}, network_mode="none"))
            assert refused.value.status_code == 400
            assert "can't create 'AutoRemove' container with restart policy" in str(refused.value)
        finally:
            client.close()
        # docker create --rm + docker start: removed at its exit, with no client waiting
        docker(sock, "create", "--rm", "--name", "later", "--network", "none", busybox_image, "sleep", "0.5")
        assert docker(sock, "inspect", "-f", "{{.HostConfig.AutoRemove}}", "later").stdout.strip() == "true"
        update = docker(sock, "update", "--restart", "always", "later", check=False)
        assert update.returncode != 0
        assert "Restart policy cannot be updated because AutoRemove is enabled for the container" in update.stderr
        docker(sock, "start", "later")
        _until("create --rm + start removed at its exit", lambda: "later" not in _names(sock))
        # recorded, not remembered: one that exits while no engine runs is removed at the next start
        docker(sock, "run", "-d", "--rm", "--name", "orphan", "--network", "none", busybox_image, "sleep", "2")
        assert _names(sock) == ["orphan"]
    time.sleep(3)               # it exited meanwhile, with no engine to see it
    with serving(host, tmp_path) as (sock, _):
        _until("an AutoRemove container that exited unwatched removed at engine start",
               lambda: _names(sock) == [], timeout=10)
        fg = docker(sock, "run", "--rm", "--network", "none", busybox_image, "sh", "-c", "exit 3", check=False)
        assert fg.returncode == 3               # the exit code, though the engine removed it meanwhile
        assert _names(sock) == []
