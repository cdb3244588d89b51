"""Engine API calls on a running native container, through the real docker CLI: pause and
unpause (the cgroup freezer), exec events in /events, `docker logs --until`, `docker run -p PORT`
on a host port the engine chooses (`docker port`), and every binding of a port published on several
host ports and addresses (inspect), and a paused container as every reader without an agent sees it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from reconciler.runtime.docker import DockerRuntime
from tests.api.test_engine_api import REPO, docker, engine_args
from tests.api.test_engine_api import engine_api as engine_api  # the fixture
from tests.api.test_engine_api import pytestmark as pytestmark  # root, registry, docker CLI
from tests.helpers.host import Host
from tests.helpers.ports import publish_ports

TICKER = "i=0; while true; do i=$((i+1)); echo $i > /tmp/tick; sleep 0.1; done"


def _events(sock: str, since: float, *filters: str) -> list[dict[str, object]]:
    args = [a for f in filters for a in ("--filter", f)]
    out = docker(sock, "events", "--since", f"{since:.3f}", "--until", f"{time.time() + 0.5:.3f}", *args,
                 "--format", "{{json .}}").stdout
    return [json.loads(line) for line in out.splitlines()]


def _tick(sock: str) -> str:
    return docker(sock, "exec", "ticker", "cat", "/tmp/tick").stdout.strip()


def test_pause_freezes_a_container_and_unpause_thaws_it(engine_api: str, busybox_image: str) -> None:
    docker(engine_api, "pull", busybox_image)
    since = time.time()
    docker(engine_api, "run", "-d", "--name", "ticker", "--network", "none", busybox_image, "sh", "-c", TICKER)
    deadline = time.monotonic() + 30
    while docker(engine_api, "exec", "ticker", "cat", "/tmp/tick", check=False).returncode != 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)

    docker(engine_api, "pause", "ticker")
    assert docker(engine_api, "inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "ticker").stdout.split() == \
        ["paused", "true"]
    assert "(Paused)" in docker(engine_api, "ps", "--format", "{{.Status}}").stdout
    again = docker(engine_api, "pause", "ticker", check=False)
    assert again.returncode != 0
    assert "already paused" in again.stderr

    docker(engine_api, "unpause", "ticker")
    assert docker(engine_api, "inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "ticker").stdout.split() == \
        ["running", "false"]
    first = _tick(engine_api)
    time.sleep(0.5)
    assert _tick(engine_api) != first           # its loop runs again
    assert [e["Action"] for e in _events(engine_api, since, "event=pause", "event=unpause")] == ["pause", "unpause"]
    docker(engine_api, "rm", "-f", "ticker")


def test_a_paused_container_is_paused_to_every_reader_and_not_converged(
        engine_api: str, host: Host, busybox_image: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Paused through the Engine API, a container is paused wherever it is read without an agent:
    ps (the rows alone, and the record store behind a label filter), inspect, and a pass, which
    does not call it converged, nor diff in sync; unpaused, it is running and converged again."""
    m = tmp_path / "m"
    m.mkdir()
    (m / "web.yaml").write_text(f"""apiVersion: reconciler/v1
kind: Container
metadata: {{name: web}}
spec: {{image: "{busybox_image}", command: [sleep, "3600"], networks: [none], restart: always}}
""")
    assert host.cli("apply", str(m)) == 0
    docker(engine_api, "pause", "web")

    def shown(*args: str, code: int = 0) -> str:
        capfd.readouterr()
        assert host.cli(*args) == code
        return capfd.readouterr().out

    for ps in (("ps",), ("ps", "--filter", "label=reconciler.owner=default")):
        row = shown(*ps).splitlines()[1]
        assert re.search(r"Up .* \(Paused\)", row), (ps, row)
    assert json.loads(shown("ps", "-o", "json"))[0]["status"] == "paused"
    state = json.loads(shown("inspect", "web"))[0]["State"]
    assert (state["Status"], state["Running"], state["Paused"]) == ("paused", True, True)
    client = DockerRuntime(engine_api, what="the native engine's Engine API")     # the Docker backend
    try:
        seen = client.inspect_container("web")
        assert (str(seen.status), seen.paused) == ("running", True)
    finally:
        client.close()
    capfd.readouterr()
    assert host.cli("apply", str(m)) == 1
    assert "error: container web is not running as desired: paused" in capfd.readouterr().err
    diff = shown("diff", str(m), code=1)                 # not in sync, as apply is not converged
    assert "container:web is paused" in diff
    assert "container web is not running as desired: paused" in diff
    refused = docker(engine_api, "exec", "web", "true", check=False)   # dockerd's 409: it would hang
    assert refused.returncode != 0
    assert "is paused, unpause the container before exec" in refused.stderr

    docker(engine_api, "unpause", "web")
    assert "(Paused)" not in shown("ps")
    assert json.loads(shown("inspect", "web"))[0]["State"]["Paused"] is False
    assert host.cli("apply", str(m)) == 0
    assert shown("diff", str(m)).splitlines()[-1] == "in sync"


def test_a_paused_container_does_not_run(engine_api: str, busybox_image: str) -> None:
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "run", "-d", "--name", "ticker", "--network", "none", busybox_image, "sh", "-c", TICKER)
    logs_before = docker(engine_api, "top", "ticker").stdout
    assert "sleep" in logs_before or "sh" in logs_before
    time.sleep(0.5)
    docker(engine_api, "pause", "ticker")
    docker(engine_api, "cp", "ticker:/tmp/tick", "-")        # copy works from a frozen container's root
    frozen = docker(engine_api, "cp", "ticker:/tmp/tick", "-").stdout
    time.sleep(0.6)
    assert docker(engine_api, "cp", "ticker:/tmp/tick", "-").stdout == frozen    # nothing ticked meanwhile
    docker(engine_api, "unpause", "ticker")
    docker(engine_api, "rm", "-f", "ticker")


def test_exec_is_journalled_as_dockers_exec_events(engine_api: str, busybox_image: str) -> None:
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "run", "-d", "--name", "box", "--network", "none", busybox_image, "sleep", "3600")
    since = time.time()
    docker(engine_api, "exec", "box", "sh", "-c", "exit 3", check=False)
    deadline = time.monotonic() + 10
    while not (events := _events(engine_api, since, "container=box")) or events[-1]["Action"] != "exec_die":
        assert time.monotonic() < deadline, events
        time.sleep(0.2)
    assert [e["Action"] for e in events] == ["exec_create: sh -c exit 3", "exec_start: sh -c exit 3", "exec_die"]
    attrs = [e["Actor"]["Attributes"] for e in events]      # type: ignore[index]
    assert attrs[2]["exitCode"] == "3"
    assert attrs[2]["name"] == "box"
    assert attrs[0]["execID"] == attrs[1]["execID"] == attrs[2]["execID"]
    # Docker's filter matches the action before its colon
    assert [e["Action"] for e in _events(engine_api, since, "event=exec_create")] == ["exec_create: sh -c exit 3"]
    docker(engine_api, "rm", "-f", "box")


def test_output_is_what_the_container_wrote_byte_for_byte(engine_api: str, busybox_image: str) -> None:
    """`docker run --rm IMG cat FILE > out` is FILE (a binary ending without a newline), and so
    are `docker logs` and an attached `docker start -a`: no newline added (dockerd's output)."""
    import os

    busybox = Path("/bin/busybox").read_bytes()
    env = {**os.environ, "DOCKER_HOST": f"unix://{engine_api}"}
    env.pop("DOCKER_CONTEXT", None)

    def raw(*args: str) -> bytes:
        return subprocess.run(["docker", *args], env=env, capture_output=True, check=True, timeout=120).stdout

    docker(engine_api, "pull", busybox_image)
    assert raw("run", "--rm", "--network", "none", busybox_image, "cat", "/bin/busybox") == busybox
    raw("create", "--name", "nonl", "--network", "none", busybox_image, "sh", "-c", "echo a; echo -n b")
    assert raw("start", "-a", "nonl") == b"a\nb"
    assert raw("logs", "nonl") == b"a\nb"
    raw("rm", "nonl")


def test_logs_until_leaves_out_later_lines(engine_api: str, busybox_image: str) -> None:
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "run", "-d", "--name", "talker", "--network", "none", busybox_image, "sh", "-c",
           "echo one; sleep 2; echo two; sleep 3600")
    deadline = time.monotonic() + 30
    while "two" not in docker(engine_api, "logs", "talker").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    stamped = docker(engine_api, "logs", "-t", "talker").stdout.splitlines()
    for line in stamped:                        # dockerd's: UTC, nanoseconds, Z (RFC3339NanoFixed)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (one|two)", line), line
    one_at = stamped[0].split()[0]
    between = f"{one_at[:19]}Z"                 # the second of line one: line two came 2 s later
    cut = time.strptime(between, "%Y-%m-%dT%H:%M:%SZ")
    until = f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(time.mktime(cut) - time.timezone + 1))}Z"
    assert docker(engine_api, "logs", "--until", until, "talker").stdout.split() == ["one"]
    assert docker(engine_api, "logs", "talker").stdout.split() == ["one", "two"]
    docker(engine_api, "rm", "-f", "talker")


def test_update_changes_a_running_containers_limits(engine_api: str, busybox_image: str) -> None:
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "run", "-d", "--name", "box", "--network", "none", "--memory", "64m", "--pids-limit", "50",
           busybox_image, "sleep", "3600")
    limits = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max"
    assert docker(engine_api, "exec", "box", "sh", "-c", limits).stdout.split() == [str(64 << 20), "50"]
    docker(engine_api, "update", "--memory", "96m", "--memory-swap", "96m", "--pids-limit", "70", "--cpus", "0.5",
           "--restart", "on-failure:3", "box")
    assert docker(engine_api, "exec", "box", "sh", "-c", limits).stdout.split() == [str(96 << 20), "70"]
    quota = docker(engine_api, "exec", "box", "cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us").stdout.strip()
    assert quota == "50000"
    shown = docker(engine_api, "inspect", "-f",
                   "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}", "box")
    assert shown.stdout.split() == [str(96 << 20), "70", "on-failure"]
    small = docker(engine_api, "update", "--memory", "1m", "box", check=False)
    assert small.returncode != 0
    assert "6MB" in small.stderr
    docker(engine_api, "rm", "-f", "box")


def test_push_all_tags_pushes_every_tag_of_the_name(engine_api: str, busybox_image: str) -> None:
    import urllib.request

    host = busybox_image.split("/", 1)[0]
    repo = f"{host}/alltags/box"
    docker(engine_api, "pull", busybox_image)
    for tag in ("1", "2", "latest"):
        docker(engine_api, "tag", busybox_image, f"{repo}:{tag}")
    pushed = docker(engine_api, "push", "--all-tags", repo).stdout
    for tag in ("1", "2", "latest"):
        assert f"{tag}: digest: sha256:" in pushed, pushed
    with urllib.request.urlopen(f"http://{host}/v2/alltags/box/tags/list", timeout=10) as resp:
        assert sorted(json.loads(resp.read())["tags"]) == ["1", "2", "latest"]
    missing = docker(engine_api, "push", "--all-tags", f"{host}/alltags/none", check=False)
    assert missing.returncode != 0


HTTPD = "mkdir -p /www && echo hello-from-srv > /www/index.html && exec httpd -f -p 8080 -h /www"


def _links(prefix: str) -> set[str]:
    import os

    return {n for n in os.listdir("/sys/class/net") if n.startswith(prefix)}


def test_network_connect_and_disconnect_of_a_running_container(engine_api: str, host: Host,
                                                               busybox_image: str) -> None:
    front, back = f"{host.config.name_prefix}f", f"{host.config.name_prefix}b"
    docker(engine_api, "network", "create", "--subnet", host.subnet, front)
    docker(engine_api, "network", "create", back)
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "run", "-d", "--name", "srv", "--network", back, busybox_image, "sh", "-c", HTTPD)
    docker(engine_api, "run", "-d", "--name", "client", "--network", front, busybox_image, "sleep", "3600")
    links = _links(host.config.name_prefix)
    fetch = ["timeout", "3", "wget", "-qO-", "http://srv:8080/"]
    assert docker(engine_api, "exec", "client", *fetch, check=False).returncode != 0     # not on its network
    since = time.time()

    docker(engine_api, "network", "connect", "--alias", "cli", back, "client")
    ip = docker(engine_api, "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{back}").IPAddress}}}}',
                "client").stdout.strip()
    assert ip in docker(engine_api, "exec", "client", "ip", "-4", "-o", "addr").stdout
    deadline = time.monotonic() + 30
    while docker(engine_api, "exec", "client", *fetch, check=False).stdout.strip() != "hello-from-srv":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    peers = docker(engine_api, "exec", "srv", "cat", "/etc/hosts").stdout
    assert any(line.split()[:1] == [ip] and "cli" in line.split() for line in peers.splitlines()), peers
    assert len(_links(host.config.name_prefix)) == len(links) + 1          # its veth on back's bridge

    docker(engine_api, "network", "disconnect", back, "client")
    assert ip not in docker(engine_api, "exec", "client", "ip", "-4", "-o", "addr").stdout
    assert "srv" not in docker(engine_api, "exec", "client", "cat", "/etc/hosts").stdout
    assert ip not in docker(engine_api, "exec", "srv", "cat", "/etc/hosts").stdout
    assert _links(host.config.name_prefix) == links                         # no link left behind
    assert back not in docker(engine_api, "inspect", "-f", "{{json .NetworkSettings.Networks}}", "client").stdout
    events = _events(engine_api, since, "type=network")
    assert [e["Action"] for e in events] == ["connect", "disconnect"]
    again = docker(engine_api, "network", "disconnect", back, "client", check=False)
    assert again.returncode != 0
    docker(engine_api, "rm", "-f", "client", "srv")


def test_run_p_without_a_host_port_publishes_on_one_the_engine_chooses(engine_api: str, host: Host,
                                                                       busybox_image: str) -> None:
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "run", "-d", "--name", "srv", "-p", "8080", "-p", "127.0.0.1::9090/udp", busybox_image,
           "sh", "-c", HTTPD)
    ports = json.loads(docker(engine_api, "inspect", "-f", "{{json .NetworkSettings.Ports}}", "srv").stdout)
    tcp, udp = ports["8080/tcp"][0], ports["9090/udp"][0]
    assert (tcp["HostIp"], udp["HostIp"]) == ("0.0.0.0", "127.0.0.1")
    chosen = int(tcp["HostPort"])
    assert chosen != 8080                       # not the container port: a chosen one
    assert int(udp["HostPort"]) not in (0, 9090)
    assert docker(engine_api, "port", "srv", "8080").stdout.split() == [f"0.0.0.0:{chosen}"]
    assert f"0.0.0.0:{chosen}->8080/tcp" in docker(engine_api, "ps", "--format", "{{.Ports}}").stdout
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{chosen}/", timeout=3) as resp:
                if resp.read().decode().strip() == "hello-from-srv":
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, f"127.0.0.1:{chosen} does not reach the container"
        time.sleep(0.2)

    docker(engine_api, "rm", "-f", "srv")
    rules = subprocess.run(["nft", "list", "table", "ip", host.config.name_prefix], capture_output=True,
                           text=True, check=False).stdout
    assert f"dport {chosen} " not in rules


def test_inspect_keeps_every_binding_of_a_container_port(engine_api: str, host: Host, busybox_image: str) -> None:
    """One container port on two host ports and two host addresses: Docker's inspect shape is a
    list of bindings per port; `reconcile inspect`, `docker inspect`, `docker port` and docker-py
    show all three (each kept only the last)."""
    first, second = publish_ports(2)
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "run", "-d", "--name", "srv", "-p", f"127.0.0.1:{first}:8080", "-p",
           f"127.0.0.1:{second}:8080", "-p", f"127.0.0.2:{first}:8080", busybox_image, "sh", "-c", HTTPD)
    want = sorted([("127.0.0.1", str(first)), ("127.0.0.1", str(second)), ("127.0.0.2", str(first))])

    def bindings(doc: dict[str, list[dict[str, str]]]) -> list[tuple[str, str]]:
        assert list(doc) == ["8080/tcp"]
        return sorted((b["HostIp"], b["HostPort"]) for b in doc["8080/tcp"])

    seen = json.loads(docker(engine_api, "inspect", "srv").stdout)[0]
    assert bindings(seen["NetworkSettings"]["Ports"]) == want
    assert bindings(seen["HostConfig"]["PortBindings"]) == want
    assert sorted(docker(engine_api, "port", "srv", "8080").stdout.split()) == sorted(f"{ip}:{p}" for ip, p in want)
    ours = subprocess.run([sys.executable, "-m", "reconciler", "inspect", "srv", *engine_args(host)], cwd=REPO,
                          capture_output=True, text=True, check=True, timeout=60).stdout
    assert bindings(json.loads(ours)[0]["NetworkSettings"]["Ports"]) == want
    docker_py = pytest.importorskip("docker")
    client = docker_py.DockerClient(base_url=f"unix://{engine_api}", version="1.41")
    try:
        assert bindings(client.containers.get("srv").ports) == want
    finally:
        client.close()
    docker(engine_api, "rm", "-f", "srv")
