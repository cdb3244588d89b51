"""Exec and interactive attach through the native engine's Engine API, as dockerd 20.10 answers the
docker CLI (28, API 1.41) and docker-py: a hijacked connection ends when the process's output does,
even while the client's stdin stays open (`docker run -i` fed by a pipe that outlives the
container, `docker run -it` and `docker exec -it` on a terminal); an exec runs as the `User`, in
the `WorkingDir` and with the `Env` it was created with; it ends when its main process exits,
whatever background child still holds its output; a command that cannot be run answers Docker's
126 and message.

Every client runs under a timeout, so a regression fails instead of hanging."""

from __future__ import annotations

import os
import select
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.api.test_engine_api import docker
from tests.api.test_engine_api import engine_api as engine_api  # the fixture
from tests.api.test_engine_api import pytestmark as pytestmark  # root, registry, docker CLI


def _env(sock: str) -> dict[str, str]:
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
    env.pop("DOCKER_CONTEXT", None)
    return env


@pytest.fixture
def box(engine_api: str, busybox_image: str) -> Iterator[str]:
    """A running busybox container named `box`, removed at the end."""
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "run", "-d", "--name", "box", "--network", "none", busybox_image, "sleep", "3600")
    yield "box"
    docker(engine_api, "rm", "-f", "box", check=False)


def _open_stdin(sock: str, *args: str, feed: bytes, timeout: float = 30) -> tuple[int, bytes, float]:
    """`docker ARGS` fed `feed` on a stdin it never sees closed: its exit code, stdout and the
    seconds it took."""
    start = time.monotonic()
    proc = subprocess.Popen(["docker", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=_env(sock))
    assert proc.stdin is not None
    try:
        proc.stdin.write(feed)
        proc.stdin.flush()
        assert proc.stdout is not None
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"docker {' '.join(args)} still runs {timeout}s after its process ended")
        out = proc.stdout.read()
        return proc.returncode, out, time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        if proc.stdout is not None:
            proc.stdout.close()


def _on_terminal(sock: str, *args: str, typed: bytes, timeout: float = 30) -> tuple[int, bytes]:
    """`docker ARGS` on a pseudo-terminal of its own, `typed` once its shell prompts: its exit
    code and what the terminal showed."""
    master, slave = os.openpty()
    proc = subprocess.Popen(["docker", *args], stdin=slave, stdout=slave, stderr=slave, env=_env(sock),
                            start_new_session=True)
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + timeout
    sent = False
    try:
        while proc.poll() is None:
            if time.monotonic() > deadline:
                pytest.fail(f"docker {' '.join(args)} still runs {timeout}s after {typed!r}: {shown!r}")
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    shown += os.read(master, 4096)
                except OSError:                     # EIO: the terminal's other side closed
                    break
            if not sent and b"#" in shown:          # the shell's prompt
                os.write(master, typed)
                sent = True
        return proc.wait(timeout=max(deadline - time.monotonic(), 1)), shown
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


# ------------------------------------------------------------------ finding 1: the connection ends


def test_docker_run_i_returns_when_the_container_exits_though_stdin_stays_open(
        engine_api: str, busybox_image: str) -> None:
    docker(engine_api, "pull", busybox_image)
    code, out, took = _open_stdin(engine_api, "run", "-i", "--rm", "--network", "none", busybox_image,
                                  "sh", "-c", "read x; echo got $x; exit 2", feed=b"line1\n")
    assert (code, out) == (2, b"got line1\n")
    assert took < 8, took                       # dockerd: about 1 s; it hung until stdin closed
    assert docker(engine_api, "ps", "-aq").stdout.strip() == ""     # --rm removed it


def test_docker_exec_i_returns_when_the_process_exits_though_stdin_stays_open(engine_api: str, box: str) -> None:
    code, out, took = _open_stdin(engine_api, "exec", "-i", box, "sh", "-c", "read x; echo got $x; exit 3",
                                  feed=b"line1\n")
    assert (code, out) == (3, b"got line1\n")
    assert took < 8, took


def test_docker_exec_it_on_a_terminal_returns_at_exit_with_its_code(engine_api: str, box: str) -> None:
    code, shown = _on_terminal(engine_api, "exec", "-it", box, "sh", typed=b"exit 3\r")
    assert code == 3, shown


def test_docker_run_it_on_a_terminal_returns_at_exit_with_its_code(engine_api: str, busybox_image: str) -> None:
    docker(engine_api, "pull", busybox_image)
    code, shown = _on_terminal(engine_api, "run", "-it", "--rm", "--network", "none", busybox_image, "sh",
                               typed=b"exit 4\r")
    assert code == 4, shown
    assert docker(engine_api, "ps", "-aq").stdout.strip() == ""


# ------------------------------------------------------------------ finding 3: an exec ends with its process


def _timed(sock: str, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, env=_env(sock), timeout=60,
                          check=False)
    return proc, time.monotonic() - start


def test_an_exec_ends_when_its_process_exits_not_when_its_background_child_does(engine_api: str, box: str) -> None:
    done, took = _timed(engine_api, "exec", box, "sh", "-c", "sleep 6 & echo started")
    assert (done.returncode, done.stdout, done.stderr) == (0, "started\n", "")
    assert took < 4, took                       # dockerd: at once; it waited for the sleep

    # what it wrote before it exited is all there, more than a pipe holds included
    done, took = _timed(engine_api, "exec", box, "sh", "-c", "sleep 6 & seq 1 30000; echo err >&2; exit 5")
    assert done.returncode == 5
    assert done.stdout.split() == [str(n) for n in range(1, 30001)]
    assert done.stderr == "err\n"
    assert took < 4, took

    done, took = _timed(engine_api, "exec", "-t", box, "sh", "-c", "sleep 6 & echo started")
    assert (done.returncode, done.stdout.strip()) == (0, "started")
    assert took < 4, took



def test_a_detached_exec_is_answered_once_its_process_runs(engine_api: str, box: str) -> None:
    """`docker exec -d` returns once the process runs, as dockerd's: a `docker top` right after
    lists it (it was answered before the runtime had made the process, ~60 ms earlier)."""
    for n in range(5):
        assert docker(engine_api, "exec", "-d", box, "sleep", f"{300 + n}").returncode == 0
        assert f"sleep {300 + n}" in docker(engine_api, "top", box).stdout

# ------------------------------------------------------------------ finding 4: a command that cannot run


MISSING = ('OCI runtime exec failed: exec failed: unable to start container process: exec: "nope": '
           'executable file not found in $PATH: unknown')


def test_an_exec_of_a_missing_command_answers_dockers_126_and_message(engine_api: str, box: str) -> None:
    since = time.time()
    done = docker(engine_api, "exec", box, "nope", check=False)
    assert done.returncode == 126, done
    assert done.stdout.strip() == MISSING, done         # dockerd writes it into the stream, as output
    assert done.stderr == "", done                      # runc's log line stays out
    term = docker(engine_api, "exec", "-t", box, "nope", check=False)
    assert (term.returncode, term.stdout.strip()) == (126, MISSING), term
    # an exec that never ran is journalled started, never died (dockerd's events)
    out = docker(engine_api, "events", "--since", f"{since:.3f}", "--until", f"{time.time() + 0.5:.3f}",
                 "--filter", "container=box", "--format", "{{.Action}}").stdout.split("\n")
    assert [a for a in out if a] == ["exec_create: nope", "exec_start: nope"] * 2

    docker_py = pytest.importorskip("docker")
    client = docker_py.DockerClient(base_url=f"unix://{engine_api}", version="1.41", timeout=60)
    try:
        code, output = client.containers.get(box).exec_run(["nope"])
        assert (code, output.decode().strip()) == (126, MISSING)
    finally:
        client.close()


# ------------------------------------------------------------------ finding 2: User, WorkingDir, Env


def test_exec_runs_as_the_user_in_the_directory_with_the_environment_asked(engine_api: str, busybox_image: str) -> None:
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "run", "-d", "--name", "box", "--network", "none", "-e", "KEPT=k", "-e", "GONE=g",
           "-w", "/tmp", busybox_image, "sleep", "3600")
    try:
        # dockerd: X=1 /bin 65534; it ran as root in / without X
        said = docker(engine_api, "exec", "-u", "65534", "-w", "/bin", "-e", "X=1", "box",
                      "sh", "-c", "echo X=$X; pwd; id -u").stdout
        assert said == "X=1\n/bin\n65534\n"
        # a user by name: its group, its home; the container's own directory and environment, one unset
        env = {**_env(engine_api)}
        env.pop("GONE", None)
        named = subprocess.run(["docker", "exec", "-u", "app", "-e", "GONE", "-e", "KEPT=over", "box", "sh", "-c",
                                "echo $(id -u):$(id -g) $HOME $(pwd) $KEPT ${GONE-unset}"],
                               capture_output=True, text=True, env=env, timeout=60, check=False)
        assert (named.returncode, named.stdout) == (0, "1000:1000 /home/app /tmp over unset\n"), named
        assert docker(engine_api, "exec", "-u", "1000:65534", "box", "id", "-g").stdout == "65534\n"
        assert docker(engine_api, "exec", "box", "sh", "-c", "id -u; pwd; echo $KEPT $GONE").stdout == \
            "0\n/tmp\nk g\n"                    # none asked: the container's

        privileged = docker(engine_api, "exec", "--privileged", "box", "grep", "CapEff", "/proc/self/status").stdout
        plain = docker(engine_api, "exec", "box", "grep", "CapEff", "/proc/self/status").stdout
        sys_admin = 1 << 21
        assert int(privileged.split()[1], 16) & sys_admin
        assert not int(plain.split()[1], 16) & sys_admin

        unknown = docker(engine_api, "exec", "-u", "nobody-here", "box", "true", check=False)
        assert unknown.returncode == 126                      # dockerd: 126, its error in the stream
        assert "unable to find user nobody-here" in unknown.stdout
        nodir = docker(engine_api, "exec", "-w", "/nope", "box", "true", check=False)
        assert nodir.returncode == 126
        assert nodir.stdout.startswith("OCI runtime exec failed: ")
        assert "/nope" in nodir.stdout

        docker_py = pytest.importorskip("docker")
        client = docker_py.DockerClient(base_url=f"unix://{engine_api}", version="1.41", timeout=60)
        try:
            code, out = client.containers.get("box").exec_run(["sh", "-c", "echo $Y $(pwd) $(id -u)"], user="app",
                                                              workdir="/home", environment={"Y": "py"})
            assert (code, out) == (0, b"py /home 1000\n")
        finally:
            client.close()
    finally:
        docker(engine_api, "rm", "-f", "box", check=False)


# ------------------------------------------------------------------ the terminal has the client's size


def _size_of(sock: str, container: str, command: str, timeout: float = 20) -> tuple[int, int]:
    """(rows, columns) of the terminal of the process running `command` in `container`, read
    from the host (its pid from `docker top`) once its size is not 0x0, or as it is at `timeout`."""
    import fcntl
    import struct
    import termios

    deadline = time.monotonic() + timeout
    size = (0, 0)
    while time.monotonic() < deadline:
        rows = docker(sock, "top", container, "-eo", "pid,args", check=False).stdout.splitlines()[1:]  # (not made yet)
        pids = [line.split()[0] for line in rows if line.split()[1:] == command.split()]
        if pids:
            fd = os.open(f"/proc/{pids[0]}/fd/0", os.O_RDONLY | os.O_NOCTTY)
            try:
                size = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))[:2]
            finally:
                os.close(fd)
        if size != (0, 0):
            return size
        time.sleep(0.1)
    return size


def _window(master: int, rows: int, cols: int) -> None:
    """Set the size of the client's terminal: the kernel sends SIGWINCH to the docker CLI on it."""
    import fcntl
    import struct
    import termios

    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


@pytest.mark.parametrize("how", ["exec", "run"])
def test_the_terminal_of_exec_it_and_run_it_has_the_clients_window_size(engine_api: str, box: str,
                                                                         busybox_image: str, how: str) -> None:
    """`docker exec -it` and `docker run -it` size the process's terminal as the client's window,
    at the start and at each resize of the window, as on dockerd: the native engine answered the
    resizes and changed nothing, so the terminal stayed 0x0 (vi, top, less and line editing drew
    for no size)."""
    master, slave = os.openpty()
    _window(master, 30, 100)
    args = (["exec", "-it", box] if how == "exec" else
            ["run", "-it", "--name", "sized", "--network", "none", busybox_image])
    container = box if how == "exec" else "sized"
    # the CLI on its own session with the terminal as its controlling one, as in a shell
    proc = subprocess.Popen(["setsid", "-c", "docker", *args, "sleep", "61"], stdin=slave, stdout=slave, stderr=slave,
                            env=_env(engine_api))
    os.close(slave)
    try:
        assert _size_of(engine_api, container, "sleep 61") == (30, 100)
        _window(master, 40, 120)
        deadline = time.monotonic() + 20
        while _size_of(engine_api, container, "sleep 61") != (40, 120):
            assert time.monotonic() < deadline, "the resize of the client's window did not reach the terminal"
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
        if how == "run":
            docker(engine_api, "rm", "-f", "sized")
