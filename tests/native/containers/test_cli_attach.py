"""`reconcile attach` and `start -a [-i]` on the native engine, as `docker attach` and `docker start
-a` behave (measured against dockerd 20.10 with the docker 28 CLI): the output from the attach
on (nothing written before), stdin to a container made with `-i`, a terminal raw and sized with
ours, Ctrl-p Ctrl-q leaving it running ("read escape sequence", exit 1), signals sent to a
container without a terminal, the container's exit code; `start -a` attached before the start,
so its first line is there."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.native.containers.test_cli import REPO, Reconcile, native_config_of
from tests.native.containers.test_cli import cli as cli  # the fixture

pytestmark = [pytest.mark.root, pytest.mark.registry]


def _env(tmp: Path, **more: str) -> dict[str, str]:
    config = native_config_of(tmp)
    return {**os.environ, "RECONCILER_ROOT": str(config.root), "RECONCILER_RUN_DIR": str(config.run_dir),
            "RECONCILER_PREFIX": config.name_prefix, **more}


def _status(reconcile: Reconcile, name: str) -> str:
    return str(json.loads(reconcile("inspect", name).stdout)[0]["State"]["Status"])


def _stdin_config(reconcile: Reconcile, name: str) -> tuple[bool, bool, bool]:
    """Its inspect's Config.Tty, OpenStdin and StdinOnce."""
    config = json.loads(reconcile("inspect", name).stdout)[0]["Config"]
    return config["Tty"], config["OpenStdin"], config["StdinOnce"]


def _until(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        time.sleep(0.05)


class Piped:
    """`reconcile ARGS` on pipes: its output read as it comes (`expect`), its exit awaited."""

    def __init__(self, tmp: Path, *args: str, stdin: bytes | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "reconciler", *args], cwd=REPO, env=_env(tmp),
                                     stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if stdin is not None and self.proc.stdin is not None:
            self.proc.stdin.write(stdin)
            self.proc.stdin.close()
            self.proc.stdin = None                      # (communicate would flush it)
        self.out = b""

    def expect(self, data: bytes, timeout: float = 30.0) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while data not in self.out:
            assert time.monotonic() < deadline, self.out
            if select.select([self.proc.stdout], [], [], 0.1)[0]:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                assert chunk, self.out              # it ended first
                self.out += chunk

    def end(self, timeout: float = 60.0) -> tuple[int, bytes, bytes]:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode, self.out + out, err


class Terminal:
    """`reconcile ARGS` on a pseudo-terminal of its own (its stdin, stdout and stderr), sized
    `rows` x `cols`; what it shows read as it comes. The terminal's settings as the command
    found them are kept (`settings`), to see it restored them."""

    def __init__(self, tmp: Path, *args: str, rows: int = 24, cols: int = 80, env: dict[str, str] | None = None) -> None:
        import termios

        self.master, self.slave = os.openpty()
        self.size(rows, cols)
        self.settings = termios.tcgetattr(self.slave)
        self.proc = subprocess.Popen([sys.executable, "-m", "reconciler", *args], cwd=REPO, env=_env(tmp, **(env or {})),
                                     stdin=self.slave, stdout=self.slave, stderr=self.slave, start_new_session=True)
        self.shown = b""

    def size(self, rows: int, cols: int) -> None:
        import fcntl
        import struct
        import termios

        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def _read(self, wait: float) -> None:
        if select.select([self.master], [], [], wait)[0]:
            self.shown += os.read(self.master, 4096)

    def expect(self, data: bytes, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while data not in self.shown:
            assert time.monotonic() < deadline, self.shown
            self._read(0.1)

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def ask(self, typed: bytes, answer: bytes, timeout: float = 30.0) -> None:
        """Type `typed` until `answer` shows (a resize reaches conmon on its own path, beside
        what is typed: a command typed after it may run before it)."""
        deadline = time.monotonic() + timeout
        while answer not in self.shown:
            assert time.monotonic() < deadline, self.shown
            self.type(typed)
            again = time.monotonic() + 1
            while answer not in self.shown and time.monotonic() < again:
                self._read(0.1)

    def end(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        try:
            while self.proc.poll() is None:
                assert time.monotonic() < deadline, self.shown
                self._read(0.05)
            self._read(0)
            return self.proc.returncode
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


def test_run_d_with_i_or_t_makes_it_with_an_open_stdin_or_a_terminal(cli: tuple[Reconcile, Path],
                                                                    busybox_image: str) -> None:
    """`run -d -i` / `-d -t` (docker run -dit) make the container with its stdin open / on a
    terminal, for a later `attach`: they made it as `run -d` alone (its stdin /dev/null, so a
    `sh` ended at once)."""
    reconcile, _ = cli
    for name, flags in (("plain", ()), ("open", ("-i",)), ("term", ("-t",))):
        reconcile("run", "-d", *flags, "--network", "none", "--name", name, busybox_image, "sleep", "1000")
    stdin = {name: reconcile("exec", name, "ls", "-l", "/proc/1/fd/0").stdout.split(" -> ")[-1].strip()
             for name in ("plain", "open", "term")}
    assert stdin["plain"] == "/dev/null"
    assert stdin["open"].startswith("pipe:")
    assert stdin["term"].startswith("/dev/pts/")


def test_attach_prints_what_is_written_from_then_on_and_exits_with_its_code(cli: tuple[Reconcile, Path],
                                                                              busybox_image: str) -> None:
    reconcile, tmp = cli
    reconcile("run", "-d", "--network", "none", "--name", "teller", busybox_image, "sh", "-c",
              "echo before; while [ ! -e /tmp/go ]; do echo tick; sleep 0.1; done; echo after; echo err >&2; exit 5")
    _until("its first line logged", lambda: "before" in reconcile("logs", "teller").stdout)
    attached = Piped(tmp, "attach", "teller")
    attached.expect(b"tick\n")                          # attached: what it writes now comes
    reconcile("exec", "teller", "touch", "/tmp/go")
    code, out, err = attached.end()
    assert code == 5, err
    assert out.endswith(b"tick\nafter\n")
    assert b"before" not in out                         # docker attach replays no log
    assert err == b"err\n"


def test_attach_pipes_stdin_to_a_container_made_with_i(cli: tuple[Reconcile, Path], busybox_image: str) -> None:
    reconcile, tmp = cli
    reconcile("run", "-d", "-i", "--network", "none", "--name", "asker", busybox_image, "sh", "-c",
              "read x; echo got $x; exit 3")
    code, out, err = Piped(tmp, "attach", "asker", stdin=b"hello\n").end()
    assert (code, out) == (3, b"got hello\n"), err


def test_attach_refuses_a_container_that_does_not_run(cli: tuple[Reconcile, Path], busybox_image: str) -> None:
    reconcile, _ = cli
    reconcile("run", "-d", "--network", "none", "--name", "done", busybox_image, "true")
    reconcile("wait", "done")
    refused = reconcile("attach", "done", check=False)
    assert refused.returncode == 1
    assert "You cannot attach to a stopped container, start it first" in refused.stderr


def test_detach_keys_leave_it_running_and_a_new_attach_types_into_it(cli: tuple[Reconcile, Path],
                                                                      busybox_image: str) -> None:
    """Ctrl-p Ctrl-q (or --detach-keys) ends the attach, the shell runs on, our terminal as it
    was; the next attach types into it again (conmon kept its terminal's input open); its
    terminal follows ours (SIGWINCH); its exit ends the attach with its code."""
    import termios

    reconcile, tmp = cli
    reconcile("run", "-d", "-i", "-t", "--network", "none", "--name", "shell", busybox_image, "sh")
    first = Terminal(tmp, "attach", "shell", rows=33, cols=111)
    try:
        first.type(b"echo one-$((1+1))\r")
        first.expect(b"one-2")
        assert termios.tcgetattr(first.slave)[3] & termios.ECHO == 0        # raw meanwhile
        first.ask(b"stty size\r", b"33 111")
        first.size(40, 120)
        first.proc.send_signal(signal.SIGWINCH)         # (the kernel's, on a controlling terminal)
        first.ask(b"stty size\r", b"40 120")
        first.type(b"\x10\x11")
        assert first.end() == 1, first.shown
        assert b"read escape sequence" in first.shown
        assert termios.tcgetattr(first.slave) == first.settings
    finally:
        first.close()
    assert _status(reconcile, "shell") == "running"

    second = Terminal(tmp, "attach", "--detach-keys", "ctrl-a,x", "shell")
    try:
        second.type(b"echo two-$((2+2))\r")
        second.expect(b"two-4")
        second.type(b"\x01x")
        assert second.end() == 1, second.shown
        assert termios.tcgetattr(second.slave) == second.settings
    finally:
        second.close()
    assert _status(reconcile, "shell") == "running"

    third = Terminal(tmp, "attach", "shell")
    try:
        third.type(b"echo three-$((3+3)); exit 4\r")
        assert third.end() == 4, third.shown
        assert b"three-6" in third.shown
        assert termios.tcgetattr(third.slave) == third.settings
    finally:
        third.close()


def test_attach_sends_the_signals_it_gets_to_a_container_without_a_terminal(cli: tuple[Reconcile, Path],
                                                                            busybox_image: str) -> None:
    reconcile, tmp = cli
    loop = "while :; do echo tick; sleep 0.1; done"
    for name in ("proxied", "alone"):
        reconcile("run", "-d", "--network", "none", "--name", name, busybox_image, "sh", "-c",
                  f"trap 'echo got-int; exit 9' INT; {loop}")
    proxied = Piped(tmp, "attach", "proxied")
    proxied.expect(b"tick\n")
    proxied.proc.send_signal(signal.SIGINT)
    code, out, _ = proxied.end()
    assert (code, out.endswith(b"got-int\n")) == (9, True)

    alone = Piped(tmp, "attach", "--sig-proxy=false", "alone")
    alone.expect(b"tick\n")
    alone.proc.send_signal(signal.SIGTERM)             # (a SIGINT its parent ignores it would ignore)
    assert alone.end()[0] == 143                        # it ended alone
    assert _status(reconcile, "alone") == "running"


def test_start_a_attaches_before_it_starts(cli: tuple[Reconcile, Path], busybox_image: str) -> None:
    """`start -a` prints the run's first line and exits with its code (that run's output alone);
    `start -ai` feeds stdin to one made with `-i`, its first line there too."""
    reconcile, tmp = cli
    reconcile("run", "-d", "--network", "none", "--name", "job", busybox_image, "sh", "-c",
              "echo first-line; echo e >&2; exit 6")
    reconcile("wait", "job")
    for _ in range(2):
        code, out, err = Piped(tmp, "start", "-a", "job").end()
        assert (code, out, err) == (6, b"first-line\n", b"e\n")

    reconcile("run", "-d", "-i", "--network", "none", "--name", "asker", busybox_image, "sh", "-c",
              "echo first-line; read v; echo got $v; exit 4")
    _until("its first line logged", lambda: "first-line" in reconcile("logs", "asker").stdout)
    code, out, err = Piped(tmp, "attach", "asker", stdin=b"one\n").end()
    assert (code, out) == (4, b"got one\n"), err
    code, out, err = Piped(tmp, "start", "-ai", "asker", stdin=b"two\n").end()
    assert (code, out) == (4, b"first-line\ngot two\n"), err


def test_create_i_and_t_make_it_with_stdin_and_a_terminal_for_start_ai(cli: tuple[Reconcile, Path],
                                                                      busybox_image: str) -> None:
    """`create -it` then `start -ai` is a working shell, `create -i` then `start -ai < file` feeds
    it and ends at its EOF (docker create -i is StdinOnce); inspect shows Tty, OpenStdin and
    StdinOnce as docker's (measured: create -i and -it are StdinOnce)."""
    reconcile, tmp = cli
    reconcile("create", "-i", "-t", "--network", "none", "--name", "shell", busybox_image, "sh")
    reconcile("create", "-i", "--network", "none", "--name", "cat", busybox_image, "cat")
    reconcile("create", "--network", "none", "--name", "plain", busybox_image, "true")
    assert _stdin_config(reconcile, "shell") == (True, True, True)
    assert _stdin_config(reconcile, "cat") == (False, True, True)
    assert _stdin_config(reconcile, "plain") == (False, False, False)
    term = Terminal(tmp, "start", "-ai", "shell")
    try:
        term.type(b"echo one-$((1+1))\r")
        term.expect(b"one-2")
        term.type(b"exit 7\r")
        assert term.end() == 7, term.shown
    finally:
        term.close()
    code, out, err = Piped(tmp, "start", "-ai", "cat", stdin=b"hello\n").end()
    assert (code, out) == (0, b"hello\n"), err


def test_stdin_closes_at_the_attach_end_only_for_stdin_once(cli: tuple[Reconcile, Path], busybox_image: str) -> None:
    """docker's StdinOnce: `run -i` in the foreground closes the container's stdin at our EOF (its
    `cat` ends); `run -d -i` is not StdinOnce: `attach < file` leaves its stdin open, so the
    container runs on and a later attach feeds it again (as dockerd: measured with docker 28)."""
    reconcile, tmp = cli
    code, out, err = Piped(tmp, "run", "-i", "--rm", "--network", "none", busybox_image, "cat",
                           stdin=b"once\n").end()
    assert (code, out) == (0, b"once\n"), err
    reconcile("run", "-d", "-i", "--network", "none", "--name", "kept", busybox_image, "cat")
    assert _stdin_config(reconcile, "kept") == (False, True, False)
    for line in (b"one\n", b"two\n"):
        attached = Piped(tmp, "attach", "kept", stdin=line)
        attached.expect(line)
        time.sleep(1)                           # (a closed stdin would have ended `cat`, and the attach)
        assert attached.proc.poll() is None, attached.end()
        assert _status(reconcile, "kept") == "running"
        attached.proc.kill()                    # (docker attach too waits for the container's exit)
        attached.end()


def test_run_it_detaches_with_the_configured_keys_and_rm_removes_it_later(cli: tuple[Reconcile, Path],
                                                                         busybox_image: str) -> None:
    """The Docker client config's detachKeys ($DOCKER_CONFIG/config.json) are the default of
    `run -it` and `attach`; `run -it` detaches silently, exit 0, the container running on, as
    `docker run -it` does; with `--rm` it is removed once it exits later (docker's AutoRemove),
    and at once when it exits in the session."""
    reconcile, tmp = cli
    config_dir = tmp / "docker-config"
    config_dir.mkdir()
    (config_dir / "config.json").write_text(json.dumps({"detachKeys": "ctrl-a,x"}))
    env = {"DOCKER_CONFIG": str(config_dir)}
    first = Terminal(tmp, "run", "-it", "--rm", "--network", "none", "--name", "fg", busybox_image, "sh", env=env)
    try:
        first.type(b"echo one-$((1+1))\r")
        first.expect(b"one-2")
        first.type(b"\x10\x11")               # not the keys configured: typed into the shell
        first.type(b"\x01x")
        assert first.end() == 0, first.shown
        assert b"read escape sequence" not in first.shown
    finally:
        first.close()
    assert _status(reconcile, "fg") == "running"
    second = Terminal(tmp, "attach", "fg", env=env)
    try:
        second.type(b"echo two-$((2+2))\r")
        second.expect(b"two-4")
        second.type(b"\x01x")
        assert second.end() == 1, second.shown
    finally:
        second.close()
    reconcile("kill", "fg")
    _until("removed after its exit", lambda: reconcile("inspect", "fg", check=False).returncode != 0)

    third = Terminal(tmp, "run", "-it", "--rm", "--network", "none", "--name", "fg2", busybox_image, "sh", env=env)
    try:
        third.type(b"exit 3\r")
        assert third.end() == 3, third.shown
    finally:
        third.close()
    assert reconcile("inspect", "fg2", check=False).returncode != 0
