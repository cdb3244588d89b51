"""docker login / push / pull through the native engine's Engine API against a loopback
registry that requires credentials (htpasswd): the credentials the docker CLI keeps reach the
registry through `X-Registry-Auth`, and without them the registry refuses."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.test_engine_api import engine_api as engine_api  # the fixture
from tests.api.test_engine_api import pytestmark as pytestmark  # root, registry, docker CLI
from tests.helpers.registry import RegistryServer


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[RegistryServer]:
    bcrypt = pytest.importorskip("bcrypt")
    work = tmp_path / "auth-registry"
    work.mkdir()
    line = f"alice:{bcrypt.hashpw(b'alice-secret', bcrypt.gensalt(rounds=5)).decode()}\n"
    (work / "htpasswd").write_text(line)
    server = RegistryServer(work, auth={"htpasswd": {"realm": "test", "path": str(work / "htpasswd")}}).start()
    try:
        yield server
    finally:
        server.stop()


def test_docker_login_push_and_pull_with_credentials(engine_api: str, auth_registry: RegistryServer,
                                                     busybox_image: str, tmp_path: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{engine_api}", "DOCKER_CONFIG": str(tmp_path / "docker-cli")}
    env.pop("DOCKER_CONTEXT", None)

    def docker(*args: str, stdin: str | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["docker", *args], input=stdin, capture_output=True, text=True, env=env, timeout=120,
                              check=False)
        assert (proc.returncode == 0) == ok, f"docker {' '.join(args)}: {proc.stdout}{proc.stderr}"
        return proc

    ref = f"{auth_registry.host}/team/box:1"
    docker("pull", busybox_image)
    docker("tag", busybox_image, ref)
    refused = docker("push", ref, ok=False)                         # no credentials: the registry says no
    assert "authentication required" in refused.stdout + refused.stderr

    wrong = docker("login", auth_registry.host, "-u", "alice", "--password-stdin", stdin="nope\n", ok=False)
    assert "authentication required" in wrong.stderr or "unauthorized" in wrong.stderr.lower()
    assert "Login Succeeded" in docker("login", auth_registry.host, "-u", "alice", "--password-stdin",
                                       stdin="alice-secret\n").stdout
    pushed = docker("push", ref).stdout
    assert f"The push refers to repository [{auth_registry.host}/team/box]" in pushed
    assert "1: digest: sha256:" in pushed

    docker("rmi", ref)
    pulled = docker("pull", ref).stdout                               # the CLI's credentials, sent along
    assert "Digest: sha256:" in pulled
    assert ref in docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()

    docker_py = pytest.importorskip("docker")
    client = docker_py.DockerClient(base_url=f"unix://{engine_api}", version="1.41", timeout=60)
    try:
        client.images.remove(ref)
        with pytest.raises(docker_py.errors.APIError):
            client.images.pull(ref)                                   # docker-py alone: no credentials
        client.images.pull(ref, auth_config={"username": "alice", "password": "alice-secret"})
        assert ref in [t for i in client.images.list() for t in i.tags]
    finally:
        client.close()
    docker("logout", auth_registry.host)
    docker("rmi", ref)
    assert "authentication required" in docker("pull", ref, ok=False).stderr
