"""What a native container's published ports are reported as equals what the kernel forwards,
through every change of its networks and state, driven by the real docker CLI on the Engine API.

Docker serves a container's published ports through its gateway endpoint (libnetwork's
`Sandbox.getGatewayEndpoint`, the endpoint that holds the default route): `docker network
disconnect` of that network moves them, with the default route, to a network it keeps
(`clearNetworkResources` -> `updateGateway`); with no network left they are not forwarded, and a
network connected later serves them again. A stopped (or created) container publishes nothing:
`docker ps -a` shows no ports for it and inspect's `NetworkSettings.Ports` is empty.

Here each step checks four views against each other: the container's record (`published`),
`docker ps`, `docker inspect` and the DNAT rules in the engine's nft table; and that a client
of the published port is answered exactly when a port is reported.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.runtime.native.containers import records
from tests.api.test_engine_api import docker, request
from tests.api.test_engine_api import engine_api as engine_api  # the fixture
from tests.api.test_engine_api import pytestmark as pytestmark  # root, registry, docker CLI
from tests.api.test_engine_api_filters import LABEL, Both, own_image
from tests.api.test_engine_api_filters import both as both  # the fixture: ours beside dockerd
from tests.helpers.host import Host
from tests.helpers.ports import publish_port
from tests.helpers.registry import RegistryServer


def _httpd(text: str) -> str:
    return f"mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 80 -h /www"


def _answer(port: int, address: str = "127.0.0.1") -> str | None:
    """What `address`:`port` answers, or None when nothing does."""
    try:
        with urllib.request.urlopen(f"http://{address}:{port}/", timeout=2) as resp:
            return str(resp.read().decode().strip())
    except OSError:
        return None


def _dnat(host: Host, port: int) -> list[str]:
    """The targets the engine's nft table forwards host port `port` to."""
    rules = subprocess.run(["nft", "list", "table", "ip", host.config.name_prefix], capture_output=True,
                           text=True, check=False, timeout=30).stdout
    return [m.group(1) for line in rules.splitlines() if f" dport {port} " in line
            for m in [re.search(r"dnat to (\S+)", line)] if m]


def _views(sock: str, host: Host, name: str, port: int) -> tuple[list[str], list[str], list[str], list[str]]:
    """Each view's list of `127.0.0.1:PORT->80/tcp` bindings of container `name`: its record,
    `docker ps -a`, `docker inspect`, and the kernel's rules (as `->ADDRESS:80`)."""
    rec = records.RecordStore(host.config).get(name)
    record = [f"{p.host_ip}:{p.host_port}->{p.container_port}/{p.protocol}" for p in rec.published]
    ps = docker(sock, "ps", "-a", "--filter", f"name=^{name}$", "--format", "{{.Ports}}").stdout.strip()
    shown = [b.strip() for b in ps.split(",") if b.strip()]
    ports = json.loads(docker(sock, "inspect", "-f", "{{json .NetworkSettings.Ports}}", name).stdout) or {}
    inspected = [f"{b['HostIp']}:{b['HostPort']}->{key}" for key, binds in ports.items() for b in binds or ()]
    return record, shown, inspected, _dnat(host, port)


def _agree(sock: str, host: Host, name: str, port: int, *, to: str | None) -> None:
    """All views say the same: `127.0.0.1:port->80/tcp` forwarded to `to`:80, or (None) nothing."""
    record, shown, inspected, kernel = _views(sock, host, name, port)
    want = [f"127.0.0.1:{port}->80/tcp"] if to else []
    assert (record, shown, inspected) == (want, want, want), (record, shown, inspected, kernel)
    assert kernel == ([f"{to}:80"] if to else []), kernel


def _ip(sock: str, name: str, network: str) -> str:
    return docker(sock, "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}',
                  name).stdout.strip()


def _eventually(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_published_ports_follow_the_gateway_network_through_disconnect_and_connect(
        engine_api: str, host: Host, busybox_image: str) -> None:
    n1, n2 = f"{host.config.name_prefix}n1", f"{host.config.name_prefix}n2"
    docker(engine_api, "network", "create", "--subnet", host.subnet, n1)
    spare = list(ipaddress.ip_network(host.config.subnet_pool).subnets(new_prefix=24))[1]   # the lease's other /24
    docker(engine_api, "network", "create", "--subnet", str(spare), n2)
    docker(engine_api, "pull", busybox_image)
    port = publish_port()
    docker(engine_api, "run", "-d", "--name", "pweb", "--network", n1, "-p", f"127.0.0.1:{port}:80",
           busybox_image, "sh", "-c", _httpd("hello-from-pweb"))
    docker(engine_api, "network", "connect", n2, "pweb")
    first, second = _ip(engine_api, "pweb", n1), _ip(engine_api, "pweb", n2)
    _agree(engine_api, host, "pweb", port, to=first)
    _eventually(lambda: _answer(port) == "hello-from-pweb", "the published port does not answer")

    # the network that served the ports goes: they move to the one kept, with the default route
    docker(engine_api, "network", "disconnect", n1, "pweb")
    assert list(json.loads(docker(engine_api, "inspect", "-f", "{{json .NetworkSettings.Networks}}",
                                  "pweb").stdout)) == [n2]
    _agree(engine_api, host, "pweb", port, to=second)
    gateway = json.loads(docker(engine_api, "network", "inspect", n2).stdout)[0]["IPAM"]["Config"][0]["Gateway"]
    assert f"default via {gateway} " in docker(engine_api, "exec", "pweb", "ip", "route").stdout
    _eventually(lambda: _answer(port) == "hello-from-pweb", "the moved port does not answer")

    # the released address given to another container: the port does not reach it
    docker(engine_api, "run", "-d", "--name", "other", "--network", n1, "--ip", first, busybox_image,
           "sh", "-c", _httpd("hello-from-other"))
    _eventually(lambda: _answer(80, first) == "hello-from-other", "the other container does not serve")
    assert _answer(port) == "hello-from-pweb"
    assert f"{first}:80" not in _dnat(host, port)

    # no network left: nothing forwarded, nothing reported; the host port stays the container's
    docker(engine_api, "network", "disconnect", n2, "pweb")
    _agree(engine_api, host, "pweb", port, to=None)
    assert _answer(port) is None
    clash = docker(engine_api, "run", "-d", "--name", "thief", "--network", n2, "-p", f"127.0.0.1:{port}:80",
                   busybox_image, "sleep", "3600", check=False)
    assert clash.returncode != 0
    assert "already published by container 'pweb'" in clash.stderr

    # connected again: the new network serves them
    docker(engine_api, "network", "connect", n2, "pweb")
    again = _ip(engine_api, "pweb", n2)
    _agree(engine_api, host, "pweb", port, to=again)
    _eventually(lambda: _answer(port) == "hello-from-pweb", "the port does not answer after the connect")
    docker(engine_api, "rm", "-f", "pweb", "other")
    docker(engine_api, "rm", "-f", "thief", check=False)
    assert _dnat(host, port) == []


def test_ports_are_published_while_the_container_runs(engine_api: str, host: Host, busybox_image: str) -> None:
    net = f"{host.config.name_prefix}p"
    docker(engine_api, "network", "create", "--subnet", host.subnet, net)
    docker(engine_api, "pull", busybox_image)
    port = publish_port()
    docker(engine_api, "create", "--name", "pstop", "--network", net, "-p", f"127.0.0.1:{port}:80",
           busybox_image, "sh", "-c", _httpd("hello-from-pstop"))
    _agree(engine_api, host, "pstop", port, to=None)                # created: not yet

    docker(engine_api, "start", "pstop")
    address = _ip(engine_api, "pstop", net)
    _agree(engine_api, host, "pstop", port, to=address)
    _eventually(lambda: _answer(port) == "hello-from-pstop", "the published port does not answer")

    docker(engine_api, "stop", "-t", "1", "pstop")
    _agree(engine_api, host, "pstop", port, to=None)
    assert _answer(port) is None
    assert docker(engine_api, "inspect", "-f", "{{json .HostConfig.PortBindings}}", "pstop").stdout.strip() == \
        json.dumps({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}, separators=(",", ":"))

    docker(engine_api, "start", "pstop")
    _agree(engine_api, host, "pstop", port, to=_ip(engine_api, "pstop", net))
    _eventually(lambda: _answer(port) == "hello-from-pstop", "the port does not answer after the start")

    # an exit the engine did not cause (its process killed from outside): the engine that
    # watches it takes the ports away, rules and reports
    pid = int(docker(engine_api, "inspect", "-f", "{{.State.Pid}}", "pstop").stdout)
    os.kill(pid, signal.SIGKILL)
    _eventually(lambda: _views(engine_api, host, "pstop", port) == ([], [], [], []),
                "the exited container's port is still forwarded or reported")
    assert docker(engine_api, "inspect", "-f", "{{.State.Status}}", "pstop").stdout.strip() == "exited"
    assert _answer(port) is None

    docker(engine_api, "start", "pstop")
    _agree(engine_api, host, "pstop", port, to=_ip(engine_api, "pstop", net))
    docker(engine_api, "rm", "-f", "pstop")
    assert _dnat(host, port) == []


def test_a_start_refused_for_a_taken_host_port_is_a_500_as_on_dockerd(
        both: Both, registry: RegistryServer, tmp_path: Path) -> None:
    """dockerd 20.10 answers the start of a container whose host port another program took
    meanwhile with a 500 ("driver failed programming external connectivity ... address already
    in use"), the container left created; the docker CLI's run exits 125 for a port taken, by a
    program or by another container. The same here. The engine answered 409, a Conflict, which
    clients take for a name in use or a state to wait out (docker-py's
    `APIError.is_server_error()` was false). And as dockerd binds a port at the start, not the
    create, such a `docker run` leaves its container created, with the start's error in
    `State.Error` and exit code 128 (`docker run --rm`: none): the native engine refused the
    create, so nothing was left for `docker ps -a` to show or a script to start later."""
    import socket

    ref = own_image(both, registry, tmp_path, "ported")
    port = publish_port()
    label = f"{LABEL}={both.prefix}"
    name = f"{both.prefix}-held"
    both.run("create", "--name", name, "-l", label, "-p", f"127.0.0.1:{port}:80", ref, "sleep", "600")
    with socket.socket() as listener:                       # a program of the host takes the port
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        for side, sock in both.socks.items():
            code, _, body = request(sock, "POST", f"/v1.41/containers/{name}/start")
            message = json.loads(body)["message"]
            assert code == 500, (side, body)
            assert "address already in use" in message or "in use by another program" in message, (side, message)
            assert docker(sock, "inspect", "-f", "{{.State.Status}}", name).stdout.strip() == "created", side
        held = both.run("run", "-d", "--name", f"{name}-run", "-l", label, "-p", f"127.0.0.1:{port}:80", ref,
                        "sleep", "600", check=False)
        for side, proc in held.items():
            assert proc.returncode == 125, (side, proc.stderr)
        _left_created(both, f"{name}-run", "address already in use", "in use by another program")
        gone = both.run("run", "--rm", "--name", f"{name}-rm", "-l", label, "-p", f"127.0.0.1:{port}:80", ref,
                        "true", check=False)
        for side, proc in gone.items():
            assert proc.returncode == 125, (side, proc.stderr)
            assert docker(both.socks[side], "ps", "-aq", "-f", f"name={name}-rm").stdout == "", side
    both.run("start", name)                                 # the port free again
    taken = both.run("run", "-d", "--name", f"{name}-taken", "-l", label, "-p", f"127.0.0.1:{port}:80", ref,
                     "sleep", "600", check=False)
    for side, proc in taken.items():                        # another container publishes it
        assert proc.returncode == 125, (side, proc.stderr)
    _left_created(both, f"{name}-taken", "port is already allocated", f"already published by container '{name}'")
    both.run("rm", "-f", name)
    both.run("start", f"{name}-taken")                      # its start takes the port once it is free
    for side, sock in both.socks.items():
        state = json.loads(docker(sock, "inspect", f"{name}-taken").stdout)[0]["State"]
        assert (state["Status"], state["ExitCode"], state["Error"]) == ("running", 0, ""), (side, state)


def _left_created(both: Both, name: str, dockerds: str, ours: str) -> None:
    """The container of a `docker run` whose start failed is there, created, the start's error
    (in each engine's words) and exit code 128 in its State, as dockerd records them."""
    for side, sock in both.socks.items():
        state = json.loads(docker(sock, "inspect", name).stdout)[0]["State"]
        assert (state["Status"], state["ExitCode"]) == ("created", 128), (side, state)
        assert (dockerds if side == "dockerd" else ours) in state["Error"], (side, state)


def test_a_container_that_does_not_run_gives_its_host_port_to_one_that_asks(
        engine_api: str, host: Host, busybox_image: str) -> None:
    """dockerd binds a host port at a container's start, not at its create: a container made
    while another that does not run publishes the port is made, and whichever starts first has
    it (the other's start fails, "port is already allocated"). The native engine held the port
    from the create on, so a second create was refused: compose's recreate (the new container
    made before the old, stopped, is removed) failed on every service with a published port.
    Here the second gets it; the first takes it back at its own start once it is free."""
    port = publish_port()
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "create", "--name", "first", "-p", f"127.0.0.1:{port}:80", busybox_image,
           "sh", "-c", _httpd("hello-from-first"))
    docker(engine_api, "create", "--name", "second", "-p", f"127.0.0.1:{port}:80", busybox_image,
           "sh", "-c", _httpd("hello-from-second"))
    docker(engine_api, "start", "second")
    _eventually(lambda: _answer(port) == "hello-from-second", "the second does not serve the port")
    refused = docker(engine_api, "start", "first", check=False)
    assert refused.returncode != 0
    assert f"host port 127.0.0.1:{port}/tcp is already published by container 'second'" in refused.stderr
    assert _answer(port) == "hello-from-second"             # the running one kept it
    docker(engine_api, "stop", "-t", "0", "second")
    docker(engine_api, "start", "first")
    _eventually(lambda: _answer(port) == "hello-from-first", "the first does not take its port back")
    _agree(engine_api, host, "first", port, to=_ip(engine_api, "first", "bridge"))
    assert "already published by container 'first'" in docker(engine_api, "start", "second", check=False).stderr
    docker(engine_api, "rm", "-f", "first", "second")

    # a port the engine had chosen for a stopped container (`-p 80`): it chooses another at its start
    docker(engine_api, "run", "-d", "--name", "any", "-p", "127.0.0.1::80", busybox_image, "sh", "-c", _httpd("any"))
    chosen = int(docker(engine_api, "port", "any", "80").stdout.strip().rpartition(":")[2])
    docker(engine_api, "stop", "-t", "0", "any")
    docker(engine_api, "run", "-d", "--name", "taker", "-p", f"127.0.0.1:{chosen}:80", busybox_image,
           "sh", "-c", _httpd("taker"))
    docker(engine_api, "start", "any")
    again = int(docker(engine_api, "port", "any", "80").stdout.strip().rpartition(":")[2])
    assert again != chosen
    _eventually(lambda: _answer(again) == "any" and _answer(chosen) == "taker", "the two do not serve their ports")
    docker(engine_api, "rm", "-f", "any", "taker")


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="needs Debian's docker-compose (v1)")
def test_docker_compose_recreates_a_service_that_publishes_a_port(
        engine_api: str, host: Host, busybox_image: str, tmp_path: Path) -> None:
    """`docker-compose up -d` of a changed service, and `up -d --force-recreate`, stop the old
    container, rename it, create the new one with the same ports and start it, then remove the
    old one: the create was refused (the port held by the old one, stopped), the service left
    down and its old container renamed."""
    port = publish_port()
    project = f"{host.config.name_prefix}p"

    def compose(text: str, *args: str) -> None:
        (tmp_path / "compose.yml").write_text(f"""
version: "3.8"
services:
  web:
    image: {busybox_image}
    command: sh -c "{_httpd(text)}"
    ports: ["127.0.0.1:{port}:80"]
""")
        env = {**os.environ, "DOCKER_HOST": f"unix://{engine_api}"}
        proc = subprocess.run(["docker-compose", "-p", project, *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=180, check=False)
        assert proc.returncode == 0, f"docker-compose {' '.join(args)}: {proc.stdout}{proc.stderr}"

    try:
        compose("v1", "up", "-d")
        _eventually(lambda: _answer(port) == "v1", "the service does not serve")
        compose("v2", "up", "-d")                               # changed: recreated
        _eventually(lambda: _answer(port) == "v2", "the recreated service does not serve")
        compose("v2", "up", "-d", "--force-recreate")
        _eventually(lambda: _answer(port) == "v2", "the service recreated by force does not serve")
        assert docker(engine_api, "ps", "-a", "--format", "{{.Names}}").stdout.split() == [f"{project}_web_1"]
    finally:
        compose("v2", "down")
    assert docker(engine_api, "ps", "-aq").stdout.strip() == ""
