"""The Docker-compatible Engine API of the native engine, driven by the real docker CLI."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.registry,
              pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def engine_api(host: Host, tmp_path: Path) -> Iterator[str]:
    """`reconcile engine-api` on the test's own engine; its socket."""
    with serving(host, tmp_path / "docker.sock") as sock:
        yield sock


@contextlib.contextmanager
def serving(host: Host, sock: Path, *extra: str) -> Iterator[str]:
    """`reconcile engine-api --socket SOCK EXTRA...` on the test's engine, until the block ends;
    the socket's path once it listens (its log beside it)."""
    log_path = sock.with_suffix(".log")
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "reconciler", "engine-api", "--socket", str(sock), *extra,
                                 *engine_args(host)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the engine API did not start"
            time.sleep(0.05)
        yield str(sock)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def engine_args(host: Host) -> list[str]:
    return [a for a in host.cli_args() if a not in ("--runtime", "native")]


def docker(sock: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
    env.pop("DOCKER_CONTEXT", None)
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, env=env, timeout=120, check=False)
    if check:
        assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr}"
    return proc


def test_the_docker_cli_drives_the_native_engine(engine_api: str, host: Host, busybox_image: str) -> None:
    version = json.loads(docker(engine_api, "version", "--format", "{{json .Server}}").stdout)
    assert version["ApiVersion"] == "1.41"
    assert "reconciler" in version["Version"]

    docker(engine_api, "pull", busybox_image)
    assert busybox_image in docker(engine_api, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout

    cid = docker(engine_api, "run", "-d", "--name", "web", "--network", "none", "-e", "WHO=docker-cli",
                 "-l", "tier=front", busybox_image, "sh", "-c", "echo hello $WHO; echo oops >&2; sleep 3600"
                 ).stdout.strip()
    assert len(cid) == 64
    ps = docker(engine_api, "ps", "--format", "{{.ID}} {{.Names}} {{.Status}}").stdout.split(maxsplit=2)
    assert ps[:2] == [cid[:12], "web"]
    assert re.fullmatch(r"Up (Less than a second|\d+ seconds?)", ps[2].strip()), ps   # as `docker ps` words it
    assert docker(engine_api, "ps", "-q", "--filter", "label=tier=front").stdout.split() == [cid[:12]]
    assert docker(engine_api, "ps", "-q", "--filter", "label=tier=back").stdout.strip() == ""

    # one state: the engine's own CLI sees the container docker made
    ps_out = subprocess.run([sys.executable, "-m", "reconciler", "ps", *engine_args(host)], cwd=REPO,
                            capture_output=True, text=True, check=True, timeout=60).stdout
    assert "web" in ps_out

    for _ in range(100):
        logs = docker(engine_api, "logs", "web")
        if "hello docker-cli" in logs.stdout:
            break
        time.sleep(0.1)
    assert logs.stdout.strip() == "hello docker-cli"
    assert logs.stderr.strip() == "oops"                       # stderr demultiplexed as docker does
    state = json.loads(docker(engine_api, "inspect", "web").stdout)[0]["State"]
    assert state["Running"] is True

    docker(engine_api, "stop", "-t", "1", "web")
    stopped = docker(engine_api, "ps", "-a", "--format", "{{.Status}}").stdout.strip()
    assert re.fullmatch(r"Exited \(\d+\) (Less than a second|\d+ seconds?) ago", stopped), stopped
    docker(engine_api, "rm", "web")
    assert docker(engine_api, "ps", "-aq").stdout.strip() == ""
    missing = docker(engine_api, "inspect", "web", check=False)
    assert missing.returncode == 1
    assert "No such object" in missing.stderr or "not found" in missing.stderr


def request(sock: str, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    import http.client
    import socket as socketmod

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socketmod.socket(socketmod.AF_UNIX, socketmod.SOCK_STREAM)
            self.sock.connect(sock)

    conn = Conn("localhost", timeout=30)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_paths_errors_and_headers_follow_docker(engine_api: str) -> None:
    for path in ("/_ping", "/v1.41/_ping", "/v1.24/_ping"):
        code, headers, body = request(engine_api, "GET", path)
        assert (code, body) == (200, b"OK")
        assert headers["Api-Version"] == "1.41"
    assert request(engine_api, "HEAD", "/_ping")[0] == 200
    code, _, body = request(engine_api, "GET", "/v1.41/containers/nope/json")
    assert code == 404
    assert "nope" in json.loads(body)["message"]
    code, _, body = request(engine_api, "GET", "/v1.41/containers/json?all=1")
    assert (code, json.loads(body)) == (200, [])
    code, _, body = request(engine_api, "GET", "/v1.41/swarm")
    assert code == 501
    assert "/swarm" in json.loads(body)["message"]


def test_docker_run_in_the_foreground_exec_and_auto_remove(engine_api: str, busybox_image: str) -> None:
    docker(engine_api, "pull", busybox_image)
    fg = docker(engine_api, "run", "--rm", "--network", "none", busybox_image, "sh", "-c",
                "echo to-stdout; echo to-stderr >&2; exit 3", check=False)
    assert fg.returncode == 3                                  # the container's exit code
    assert fg.stdout.strip() == "to-stdout"
    assert fg.stderr.strip() == "to-stderr"
    assert docker(engine_api, "ps", "-aq").stdout.strip() == ""   # --rm removed it

    docker(engine_api, "run", "-d", "--name", "box", "--network", "none", busybox_image, "sleep", "3600")
    out = docker(engine_api, "exec", "box", "sh", "-c", "echo inside $HOSTNAME; exit 4", check=False)
    assert out.returncode == 4
    assert out.stdout.startswith("inside ")
    docker(engine_api, "rm", "-f", "box")


def test_docker_py_drives_the_native_engine(engine_api: str, busybox_image: str) -> None:
    docker_py = pytest.importorskip("docker")
    client = docker_py.DockerClient(base_url=f"unix://{engine_api}", version="1.41")
    try:
        assert client.ping() is True
        client.images.pull(busybox_image)
        out = client.containers.run(busybox_image, ["sh", "-c", "echo from docker-py"], network_mode="none",
                                    remove=True)
        assert out == b"from docker-py\n"
        c = client.containers.run(busybox_image, ["sleep", "3600"], name="py", network_mode="none",
                                  labels={"app": "py"}, detach=True)
        assert [x.name for x in client.containers.list(filters={"label": "app=py"})] == ["py"]
        assert c.exec_run(["cat", "/etc/hostname"]).exit_code == 0
        c.stop(timeout=1)
        c.reload()
        assert c.status == "exited"
        c.remove()
        assert client.containers.list(all=True) == []
    finally:
        client.close()


def test_anonymous_volumes_are_made_for_the_container_and_go_with_rm_v(engine_api: str, busybox_image: str) -> None:
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "run", "-d", "--name", "kept", "--network", "none", "-v", "/home", busybox_image, "sleep", "3600")
    (mount,) = json.loads(docker(engine_api, "inspect", "kept").stdout)[0]["Mounts"]
    assert (mount["Type"], mount["Destination"], len(mount["Name"])) == ("volume", "/home", 64)     # random, as dockerd's
    assert docker(engine_api, "exec", "kept", "ls", "/home").stdout.split() == ["app"]           # the image's content
    labels = json.loads(docker(engine_api, "volume", "inspect", mount["Name"]).stdout)[0]["Labels"]
    assert labels == {"com.docker.volume.anonymous": ""}
    docker(engine_api, "rm", "-f", "kept")                     # without -v the volume stays, as with dockerd
    assert docker(engine_api, "volume", "ls", "-q").stdout.split() == [mount["Name"]]

    docker(engine_api, "run", "-d", "--name", "gone", "--network", "none", "--mount", "type=volume,target=/data",
           busybox_image, "sleep", "3600")
    (other,) = json.loads(docker(engine_api, "inspect", "gone").stdout)[0]["Mounts"]
    assert sorted(docker(engine_api, "volume", "ls", "-q").stdout.split()) == sorted([mount["Name"], other["Name"]])
    docker(engine_api, "rm", "-f", "-v", "gone")
    docker(engine_api, "run", "--rm", "--network", "none", "-v", "/data", busybox_image, "true")
    assert docker(engine_api, "volume", "ls", "-q").stdout.split() == [mount["Name"]]           # rm -v and --rm took theirs
    docker(engine_api, "volume", "rm", mount["Name"])


def test_docker_cli_manages_networks_volumes_tags_and_names(engine_api: str, host: Host, busybox_image: str) -> None:
    net = f"{host.config.name_prefix}n"
    docker(engine_api, "network", "create", "--subnet", host.subnet, "--internal", "--label", "team=a", net)
    listed = json.loads(docker(engine_api, "network", "inspect", net).stdout)[0]
    assert listed["IPAM"]["Config"][0]["Subnet"] == host.subnet
    assert listed["Internal"] is True
    assert listed["Labels"] == {"team": "a"}
    again = docker(engine_api, "network", "create", net, check=False)
    assert again.returncode != 0
    assert "already exists" in again.stderr

    docker(engine_api, "volume", "create", "--label", "keep=1", "data")
    assert json.loads(docker(engine_api, "volume", "inspect", "data").stdout)[0]["Labels"] == {"keep": "1"}
    anonymous = docker(engine_api, "volume", "create").stdout.strip()
    assert len(anonymous) == 64
    # as dockerd 23+: a volume made without a name is anonymous (a `volume prune` without -a takes it)
    assert json.loads(docker(engine_api, "volume", "inspect", anonymous).stdout)[0]["Labels"] == {
        "com.docker.volume.anonymous": ""}
    # a local volume binding a host directory, as `reconcile volume create` and the manifests take it
    bound_dir = host.config.root.parent / "bound"
    bound_dir.mkdir()
    (bound_dir / "hello").write_text("from the host\n")
    docker(engine_api, "volume", "create", "-o", "type=none", "-o", "o=bind", "-o", f"device={bound_dir}", "bound")
    other = docker(engine_api, "volume", "create", "-d", "nfs-driver", "elsewhere", check=False)
    assert other.returncode != 0
    assert "need the docker or swarm runtime" in other.stderr

    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "tag", busybox_image, "local/renamed:2")
    assert "local/renamed:2" in docker(engine_api, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    docker(engine_api, "run", "-d", "--name", "first", "--network", net, "-v", "data:/data", busybox_image,
           "sleep", "3600")
    assert docker(engine_api, "run", "--rm", "-v", "bound:/b", busybox_image, "cat", "/b/hello").stdout == \
        "from the host\n"
    docker(engine_api, "rename", "first", "second")
    assert docker(engine_api, "ps", "--format", "{{.Names}}").stdout.split() == ["second"]
    busy = docker(engine_api, "network", "rm", net, check=False)           # in use: refused, kept
    assert busy.returncode != 0
    docker(engine_api, "rm", "-f", "second")

    removed = docker(engine_api, "rmi", "local/renamed:2").stdout
    assert "Untagged: local/renamed:2" in removed
    assert "local/renamed" not in docker(engine_api, "images", "--format", "{{.Repository}}").stdout
    docker(engine_api, "volume", "rm", "data", anonymous, "bound")
    assert (bound_dir / "hello").exists()                                   # a bound directory's content stays
    docker(engine_api, "network", "rm", net)
    assert net not in docker(engine_api, "network", "ls", "--format", "{{.Name}}").stdout.split()
    assert docker(engine_api, "volume", "ls", "-q").stdout.split() == []



@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="needs Debian's docker-compose (v1)")
def test_docker_compose_brings_a_project_up_and_down_on_the_native_engine(
        engine_api: str, host: Host, busybox_image: str, tmp_path: Path) -> None:
    from tests.helpers.ports import publish_port

    port = publish_port()
    project = f"{host.config.name_prefix}c"
    (tmp_path / "compose.yml").write_text(f"""
version: "3.8"
services:
  web:
    image: {busybox_image}
    command: sh -c "mkdir -p /www && echo hi-compose > /www/index.html && httpd -f -p 80 -h /www"
    ports: ["127.0.0.1:{port}:80"]
    networks: [front]
  worker:
    image: {busybox_image}
    command: sh -c "echo seen > /data/mark; sleep 3600"
    volumes: ["data:/data"]
    networks: [front]
    depends_on: [web]
networks:
  front:
    ipam: {{config: [{{subnet: "{host.subnet}"}}]}}
volumes:
  data: {{}}
""")
    env = {**os.environ, "DOCKER_HOST": f"unix://{engine_api}"}

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["docker-compose", "-p", project, *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=180, check=False)
        assert proc.returncode == 0, f"docker-compose {' '.join(args)}: {proc.stdout}{proc.stderr}"
        return proc

    try:
        compose("up", "-d")
        names = docker(engine_api, "ps", "--format", "{{.Names}}").stdout.split()
        assert sorted(names) == [f"{project}_web_1", f"{project}_worker_1"]     # compose's own numbering
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    assert r.read().decode().strip() == "hi-compose"
                    break
            except OSError:
                assert time.monotonic() < deadline, "the compose project does not serve"
                time.sleep(0.2)
        assert "up-to-date" in compose("up", "-d").stderr                      # a second up changes nothing
        assert compose("exec", "-T", "worker", "cat", "/data/mark").stdout.strip() == "seen"
    finally:
        compose("down", "-v")
    assert docker(engine_api, "ps", "-aq").stdout.strip() == ""
    assert f"{project}_front" not in docker(engine_api, "network", "ls", "--format", "{{.Name}}").stdout
