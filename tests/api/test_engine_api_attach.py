"""Attach with stdin through the native engine's Engine API: `docker run -i` feeds the
container's stdin and gives its output and exit code, `docker attach` to a running container
started with `-i` relays both ways, docker-py's attach socket does the same, and `docker exec
-i` / `-t` relay an exec's stdin and terminal."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import time
from collections.abc import Callable

import pytest

from tests.api.test_engine_api import docker
from tests.api.test_engine_api import engine_api as engine_api  # the fixture
from tests.api.test_engine_api import pytestmark as pytestmark  # root, registry, docker CLI


def _docker_in(sock: str, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
    env.pop("DOCKER_CONTEXT", None)
    return subprocess.run(["docker", *args], input=stdin, capture_output=True, text=True, env=env, timeout=60,
                          check=False)


def test_docker_run_i_and_attach_feed_stdin(engine_api: str, busybox_image: str) -> None:
    docker(engine_api, "pull", busybox_image)
    run = _docker_in(engine_api, "first\nsecond\n", "run", "-i", "--rm", "--network", "none", busybox_image,
                     "sh", "-c", "read a; echo got $a; cat; echo err >&2; exit 5")
    assert run.returncode == 5, run.stderr
    assert run.stdout == "got first\nsecond\n"
    assert run.stderr == "err\n"
    assert docker(engine_api, "ps", "-aq").stdout.strip() == ""

    # `run -d -i` is not StdinOnce: an attach's end of input leaves its stdin open, as dockerd
    # leaves it (measured with dockerd 20.10 and the docker 28 CLI: `docker attach < file` then
    # waits for the container's exit), and the next attach feeds it again
    docker(engine_api, "run", "-d", "-i", "--name", "echoer", "--network", "none", busybox_image, "sh", "-c",
           "while read line; do echo \"echo:$line\"; done; echo stdin-closed")
    inspect = docker(engine_api, "inspect", "--format", "{{.Config.OpenStdin}} {{.Config.StdinOnce}}", "echoer")
    assert inspect.stdout.strip() == "true false"
    for lines, echoed in (("a\nb\n", "echo:a\necho:b\n"), ("c\n", "echo:a\necho:b\necho:c\n")):
        attached = _docker_attach(engine_api, lines, "echoer")
        try:
            _until_logged(engine_api, "echoer", echoed)
            time.sleep(1)                   # (a closed stdin would have ended it, and the attach)
            assert attached.poll() is None
            assert docker(engine_api, "inspect", "--format", "{{.State.Status}}", "echoer").stdout.strip() == "running"
        finally:
            attached.kill()
            attached.wait()
    docker(engine_api, "rm", "-f", "echoer")


def _docker_attach(sock: str, stdin: str, name: str) -> subprocess.Popen[bytes]:
    """`docker attach NAME` fed `stdin`, then its end; left running."""
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
    env.pop("DOCKER_CONTEXT", None)
    proc = subprocess.Popen(["docker", "attach", name], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    assert proc.stdin is not None
    proc.stdin.write(stdin.encode())
    proc.stdin.close()
    return proc


def _until_logged(sock: str, name: str, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while (logged := docker(sock, "logs", name).stdout) != text:
        assert time.monotonic() < deadline, logged
        time.sleep(0.1)


def test_docker_py_attach_socket(engine_api: str, busybox_image: str) -> None:
    docker_py = pytest.importorskip("docker")
    client = docker_py.DockerClient(base_url=f"unix://{engine_api}", version="1.41", timeout=60)
    try:
        client.images.pull(busybox_image)
        c = client.containers.create(busybox_image, ["sh", "-c", "read x; echo py:$x; echo e >&2"],
                                     stdin_open=True, network_mode="none")
        raw = c.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        sock: socket.socket = raw._sock
        c.start()
        sock.sendall(b"hello\n")
        sock.shutdown(socket.SHUT_WR)
        got: dict[int, bytes] = {1: b"", 2: b""}
        buf = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                break
            buf += chunk
        raw.close()
        sock.close()
        while len(buf) >= 8:                                    # Docker's 8-byte frame headers
            stream, size = struct.unpack(">BxxxL", buf[:8])
            got[stream] += buf[8:8 + size]
            buf = buf[8 + size:]
        assert got == {1: b"py:hello\n", 2: b"e\n"}
        assert c.wait(timeout=30)["StatusCode"] == 0
        c.remove()
    finally:
        client.close()


def test_docker_exec_with_stdin_and_a_terminal(engine_api: str, busybox_image: str) -> None:
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "run", "-d", "--name", "box", "--network", "none", busybox_image, "sleep", "3600")
    try:
        fed = _docker_in(engine_api, "data\nmore\n", "exec", "-i", "box", "sh", "-c",
                         "read x; echo got:$x; cat; echo e >&2; exit 3")
        assert fed.returncode == 3, fed.stderr
        assert fed.stdout == "got:data\nmore\n"
        assert fed.stderr == "e\n"
        term = docker(engine_api, "exec", "-t", "box", "sh", "-c", "tty; echo done").stdout
        # a terminal ends lines with \r\n (once in CI an empty line came between the two)
        lines = [line.strip() for line in term.splitlines() if line.strip()]
        assert lines[0].startswith("/dev/pts/")         # a terminal of its own
        assert lines[1:] == ["done"]
        plain = docker(engine_api, "exec", "box", "sh", "-c", "tty || true").stdout
        assert plain.strip() == "not a tty"
    finally:
        docker(engine_api, "rm", "-f", "box", check=False)


def test_stdin_above_conmons_message_size_arrives_whole(engine_api: str, busybox_image: str) -> None:
    """conmon reads each message of its attach socket into 32 KiB: a client's stdin of more, sent
    in larger messages, lost the rest of each (65536 bytes arrived as 32768); `docker attach`
    relays through the same socket."""
    docker(engine_api, "pull", busybox_image)
    data = "x" * 500_000
    run = _docker_in(engine_api, data, "run", "-i", "--rm", "--network", "none", busybox_image, "wc", "-c")
    assert (run.returncode, run.stdout.strip()) == (0, "500000"), run.stderr

    # (its stdin stays open after the attach, `run -d -i` not being StdinOnce: head ends the count)
    docker(engine_api, "run", "-d", "-i", "--name", "counter", "--network", "none", busybox_image, "sh", "-c",
           f"head -c {len(data)} | wc -c")
    try:
        attached = _docker_in(engine_api, data, "attach", "counter")
        assert attached.stdout.strip() == "500000", attached.stderr
    finally:
        docker(engine_api, "rm", "-f", "counter", check=False)


def test_start_ai_again_after_an_exit(engine_api: str, busybox_image: str) -> None:
    """`docker start -ai` attaches before it starts: on an exited container the attach waits for
    the start (whose new conmon makes the attach socket) and relays from the process's first
    line, stdin sent before the start included, as dockerd does."""
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "create", "-i", "--name", "asker", "--network", "none", busybox_image,
           "sh", "-c", "echo first-line; read v; echo got $v; exit 4")
    for word in ("one", "two", "three"):
        again = _docker_in(engine_api, f"{word}\n", "start", "-ai", "asker")
        assert (again.returncode, again.stdout) == (4, f"first-line\ngot {word}\n"), again.stderr
    docker(engine_api, "rm", "asker")


def test_start_a_again_without_stdin(engine_api: str, busybox_image: str) -> None:
    """`docker start -a` of an exited container without stdin: that run's output alone, no
    earlier run's, and its exit code."""
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "create", "--name", "teller", "--network", "none", busybox_image, "sh", "-c",
           "echo run; echo e >&2; exit 2")
    for _ in range(3):
        told = _docker_in(engine_api, "", "start", "-a", "teller")
        assert (told.returncode, told.stdout, told.stderr) == (2, "run\n", "e\n")
    docker(engine_api, "rm", "teller")


def test_docker_py_attach_socket_waits_for_the_start(engine_api: str, busybox_image: str) -> None:
    """docker-py's attach socket on an exited container: held until the start, what was sent
    before it reaches the process, and the output from its first line; an attach whose
    container is removed instead ends."""
    docker_py = pytest.importorskip("docker")
    client = docker_py.DockerClient(base_url=f"unix://{engine_api}", version="1.41", timeout=60)
    try:
        client.images.pull(busybox_image)
        c = client.containers.create(busybox_image, ["sh", "-c", "echo early; read x; echo py:$x"],
                                     stdin_open=True, network_mode="none")
        c.start()
        c.kill()                                           # its stdin open, its read waits forever
        c.wait(timeout=30)
        raw = c.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})
        sock: socket.socket = raw._sock
        sock.sendall(b"before-start\n")
        time.sleep(0.5)                                   # the attach waits meanwhile
        c.start()
        buf = b""
        sock.settimeout(30)
        while chunk := sock.recv(4096):
            buf += chunk
        raw.close()
        sock.close()
        out = b""
        while len(buf) >= 8:
            _, size = struct.unpack(">BxxxL", buf[:8])
            out, buf = out + buf[8:8 + size], buf[8 + size:]
        assert out == b"early\npy:before-start\n"

        c.wait(timeout=30)
        gone = c.attach_socket(params={"stdout": 1, "stream": 1})
        gone_sock: socket.socket = gone._sock
        c.remove()
        gone_sock.settimeout(30)
        assert gone_sock.recv(4096) == b""                  # ended with its container
        gone.close()
        gone_sock.close()
    finally:
        client.close()



def _attach_raw(sock_path: str, cid: str, query: str, then: Callable[[], object] = lambda: None) -> bytes:
    """POST /containers/{id}/attach?QUERY; `then()` once the answer's headers are read; the
    stdout frames until the connection ends. Headers and frames are read through one buffer (as
    the docker CLI reads them: docker-py reads the frames from the bare socket, so frames that
    arrive with the headers are lost to it, with dockerd too)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(sock_path)
        s.sendall(f"POST /v1.41/containers/{cid}/attach?{query} HTTP/1.1\r\nHost: x\r\n"
                  "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode())
        f = s.makefile("rb")
        assert f.readline().split()[1] == b"101"
        while f.readline() not in (b"\r\n", b""):
            pass
        then()
        out = b""
        while len(header := f.read(8)) == 8:
            stream, size = struct.unpack(">BxxxL", header)
            data = f.read(size)
            out += data if stream == 1 else b""
        return out


def test_attach_with_logs_replays_the_output_before(engine_api: str, busybox_image: str) -> None:
    """docker-py's `attach(logs=True)`: what the container wrote before the attach, then what it
    writes after (dockerd's); `stream=0`: only what it wrote before. Without a TTY or stdin (its
    log is the stream) and with stdin (conmon's attach socket)."""
    docker(engine_api, "pull", busybox_image)
    script = "echo before; while [ ! -e /go ]; do sleep 0.05; done; echo after; sleep 0.2"
    try:
        for name, opts in (("plain", ()), ("stdin", ("-i",))):
            docker(engine_api, "run", "-d", *opts, "--name", name, "--network", "none", busybox_image, "sh", "-c",
                   script)
            for _ in range(100):
                if "before" in docker(engine_api, "logs", name).stdout:
                    break
                time.sleep(0.05)
            assert _attach_raw(engine_api, name, "logs=1&stream=0&stdout=1&stderr=1") == b"before\n"
            assert _attach_raw(engine_api, name, "logs=0&stream=0&stdout=1&stderr=1") == b""
            got = _attach_raw(engine_api, name, "logs=1&stream=1&stdout=1&stderr=1",
                              then=lambda name=name: docker(engine_api, "exec", name, "touch", "/go"))
            assert got == b"before\nafter\n", name
    finally:
        docker(engine_api, "rm", "-f", "plain", "stdin", check=False)
