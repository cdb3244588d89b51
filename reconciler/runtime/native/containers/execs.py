"""Processes entered into a running native container: exec, and attach to its main process.

Exec is `runc exec --process FILE ID` with the container's own process.json (user, env, cwd,
capabilities) and new args; `run` collects the output, `spawn` hands the process to a caller
that relays it live (`output`; the Engine API's exec), `exec_argv` gives the command line to a
caller that runs it itself (`reconcile exec`). As Docker's, an exec ends when its process exits,
whatever background child still holds its output: without a terminal the runtime runs detached
under `execwait.py`, the process's parent that exits with it. A process that could not start
(a missing command) is `Launch.failure()`, dockerd's words, and exit code START_FAILED (126).
Attach connects to conmon's attach socket of a container created with a terminal or stdin;
`resize` sets the size of that terminal, `resize_exec` the size of an exec's.

They only read records, so they take a `records.RecordStore` (a `ContainerManager` is one);
the lifecycle (containers.py) does not need them.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from reconciler._dataclass import dataclass
from reconciler.runtime import base
from reconciler.runtime import errors as rterrors
from reconciler.runtime.native.containers import conmon, oci, records

if TYPE_CHECKING:
    import socket

__all__ = ["ATTACH_MESSAGE_MAX", "START_FAILED", "AttachSocket", "CannotStart", "Launch", "attach", "connect", "exec_argv", "exec_process", "output", "relay", "release", "resize", "resize_exec", "run", "spawn"]


# -- attach


# conmon reads each message of its attach socket (SOCK_SEQPACKET) into a buffer of this size
# (CONN_SOCK_BUF_SIZE, conmon 2.1.6's src/config.h, read in src/conn_sock.c): the rest of a
# longer message is dropped by the kernel, so stdin above it was silently lost.
ATTACH_MESSAGE_MAX = 32768


class AttachSocket:
    """A connection to conmon's attach socket. Its `sendall` cuts what goes to the process's
    stdin into messages conmon reads whole (ATTACH_MESSAGE_MAX): every writer goes through it,
    so none can send a message conmon truncates."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv(self, size: int) -> bytes:
        """One packet from conmon: a byte naming the stream (2 stdout, 3 stderr), then data."""
        return self.sock.recv(size)

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        for at in range(0, len(view), ATTACH_MESSAGE_MAX):
            self.sock.sendall(view[at:at + ATTACH_MESSAGE_MAX])

    def shutdown(self, how: int) -> None:
        """SHUT_WR: conmon closes the process's stdin (a StdinOnce one's without a terminal: conmon.create)."""
        self.sock.shutdown(how)

    def close(self) -> None:
        self.sock.close()


def attach(store: records.RecordStore, name_or_id: str) -> AttachSocket:
    """Connect to conmon's attach socket of a container created with terminal/stdin.

    Packets from conmon start with one byte naming the stream (2 stdout, 3 stderr); what
    is sent goes to the process's stdin (or terminal). Connect before `start` so no
    output is missed.
    """
    rec = store.get(name_or_id)
    if rec.status not in ("created", "running"):
        raise rterrors.Conflict(f"container {rec.name} is not running")
    return connect(store, rec)


def connect(store: records.RecordStore, rec: records.Record) -> AttachSocket:
    """Connect to the attach socket of `rec`'s conmon as the record has it, unchecked: at a
    start, whose new conmon made the socket before the record says it runs."""
    import socket  # here: only a terminal or stdin attached needs it

    dir_fd = os.open(store.paths(rec.id).dir, os.O_PATH | os.O_CLOEXEC)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(f"/proc/self/fd/{dir_fd}/attach")    # bundle paths can exceed sun_path
    except OSError as exc:
        sock.close()
        raise rterrors.RuntimeBackendError(f"cannot attach to container {rec.name}: {exc.strerror}") from exc
    finally:
        os.close(dir_fd)
    return AttachSocket(sock)


def resize(store: records.RecordStore, name_or_id: str, rows: int, cols: int) -> None:
    """Set the size of the container's terminal (conmon's ctl fifo: "1 ROWS COLS")."""
    rec = store.get(name_or_id)
    path = store.paths(rec.id).dir / "ctl"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.write(fd, f"1 {rows} {cols}\n".encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def resize_exec(master: int, runtime_pid: int, rows: int, cols: int) -> None:
    """Set the size of a spawned exec's terminal: its pty's (`master`, the runtime's stdio), which
    the runtime copies to the container's own terminal at its start and on each SIGWINCH, sent
    here (the runtime holds no controlling terminal that would send it). The caller makes sure
    `master` is still open and `runtime_pid` not yet reaped."""
    import fcntl
    import signal
    import struct
    import termios

    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    with contextlib.suppress(ProcessLookupError):
        os.kill(runtime_pid, signal.SIGWINCH)


# -- exec


def exec_process(store: records.RecordStore, rec: records.Record, argv: Sequence[str], *,
                 tty: bool = False, user: str | None = None, workdir: str | None = None,
                 env: Sequence[str] = (), privileged: bool = False) -> dict[str, Any]:
    """The process.json of an exec: the container's user, env, cwd and caps, new args; and as
    Docker's exec takes them, `user` (its forms, resolved in the container's /etc/passwd and
    /etc/group, with the container's added groups, as at create), `workdir`, `env` (KEY=VALUE
    over the container's, a KEY alone unsets it; HOME is the user's unless the container or its
    image set one) and `privileged` (every capability)."""
    try:
        spec = json.loads(store.paths(rec.id).config_json.read_text())
    except (OSError, ValueError) as exc:
        raise rterrors.RuntimeBackendError(f"container {rec.name}: bundle unreadable: {exc}") from exc
    proc: dict[str, Any] = dict(spec["process"])
    proc["args"] = list(argv)
    proc["terminal"] = tty
    environ = list(proc.get("env", []))
    if user:        # the bundle module is loaded only for a user or the capabilities
        from reconciler.runtime.native.containers import bundle

        try:
            who = bundle.resolve_user(store.paths(rec.id).rootfs, user, group_add=rec.config.group_add)
        except rterrors.InvalidArgument as exc:
            raise CannotStart(exc.message, hint=exc.hint) from None
        proc["user"] = {"uid": who.uid, "gid": who.gid,
                        **({"additionalGids": list(who.additional_gids)} if who.additional_gids else {})}
        image_env = rec.image_config.get("Env") or ()
        if "HOME" not in rec.config.env and not any(str(e).startswith("HOME=") for e in image_env):
            environ = _env_over(environ, [f"HOME={who.home}"])     # as runc sets it for the user
    if workdir:
        proc["cwd"] = workdir
    if tty and not any(e.startswith("TERM=") for e in environ):
        environ.append("TERM=xterm")            # as `docker exec -t` does
    proc["env"] = _env_over(environ, env)
    if privileged:
        from reconciler.runtime.native.containers import bundle

        caps = bundle.capabilities(("ALL",), ())
        proc["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps}
    return proc


def _env_over(environ: Sequence[str], over: Sequence[str]) -> list[str]:
    """Docker's ReplaceOrAppendEnvValues: each KEY=VALUE of `over` replaces that key's entry in
    place or is appended; a KEY alone removes the key."""
    out = list(environ)
    at = {e.partition("=")[0]: i for i, e in enumerate(out)}
    gone: set[int] = set()
    for item in over:
        key, sep, _ = item.partition("=")
        if not sep:
            if key in at:
                gone.add(at[key])
        elif key in at:
            out[at[key]] = item
            gone.discard(at[key])
        else:
            at[key] = len(out)
            out.append(item)
    return [e for i, e in enumerate(out) if i not in gone]


START_FAILED = 126          # dockerd's ExitCode of an exec whose process could not start (daemon/exec.go)


class CannotStart(rterrors.InvalidArgument):
    """An exec whose process cannot start for a reason known before the runtime runs (a user or
    group the container does not define): dockerd's 126, `reconcile exec`'s exit code too."""

    exit_code = START_FAILED


@dataclass(frozen=True)
class Launch:
    """One exec's command line and its files: the process spec it runs, the pid file the
    runtime writes once the process started, and the runtime's JSON log (its error when the
    process could not start). Without a terminal the runtime runs detached under `execwait.py`,
    so the exec ends when its process does."""

    argv: tuple[str, ...]
    process_file: Path

    @property
    def pid_file(self) -> Path:
        return self.process_file.with_suffix(".pid")

    @property
    def log_file(self) -> Path:
        return self.process_file.with_suffix(".log")

    def started(self) -> bool:
        return self.pid_file.exists()

    def failure(self) -> str | None:
        """Once the command ended: None if the process started, else Docker's words for an
        exec that could not start (the runtime's error, as dockerd words it)."""
        if self.started():
            return None
        detail = conmon.oci_log_error(self.log_file) or "the OCI runtime ended before the process started"
        return f"OCI runtime exec failed: {detail}: unknown"

    def remove(self) -> None:
        for path in (self.process_file, self.pid_file, self.log_file):
            path.unlink(missing_ok=True)


def exec_argv(store: records.RecordStore, name_or_id: str, argv: Sequence[str], *,
              tty: bool = False, until_exit: bool = True, user: str | None = None, workdir: str | None = None,
              env: Sequence[str] = (), privileged: bool = False) -> Launch:
    """The command that runs `argv` in a running container (the caller removes its files):
    `runc exec --process FILE ID`, in the foreground with a terminal, else detached under
    `execwait.py`, which exits with the process. Without `until_exit` it runs in the foreground
    without that helper (~10 ms of CPU less: a healthcheck's probe), and so ends only when every
    holder of its output closed it too. `user`, `workdir`, `env`, `privileged`: `exec_process`."""
    import sys

    if not argv:
        raise rterrors.InvalidArgument("exec needs a command")
    rec = store.get(name_or_id)
    if rec.status != "running":
        raise rterrors.Conflict(f"container {rec.name} is not running", hint="start it first")
    proc = exec_process(store, rec, argv, tty=tty, user=user, workdir=workdir, env=env, privileged=privileged)
    # the process's env holds the container's: SOPS values stay on its tmpfs
    where = store.paths(rec.id).secrets if rec.config.secret_env else store.config.run_dir / "conmon"
    import secrets  # here: `ps`/`logs` import this module and need no random names

    path = where / f"exec-{rec.id[:12]}-{secrets.token_hex(4)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(proc))
    launch = Launch(argv=(), process_file=path)
    rt = store.oci(rec.runtime)
    cmd = [*rt.base_args(), "--log", str(launch.log_file), "--log-format", "json", "exec",
           "--process", str(path), "--pid-file", str(launch.pid_file)]
    if not tty and until_exit:
        cmd = [sys.executable, "-I", "-S", str(Path(__file__).with_name("execwait.py")), str(launch.pid_file),
               *cmd, "--detach"]
    return Launch(argv=(*cmd, rec.id), process_file=path)


def run(store: records.RecordStore, name_or_id: str, argv: Sequence[str], *, tty: bool = False,
        timeout: float | None = None, until_exit: bool = True, user: str | None = None,
        workdir: str | None = None, env: Sequence[str] = ()) -> base.ExecResult:
    """Run `argv` in the container and collect its output and exit code (`output`: what it
    wrote until it exited, not what a background child of it writes later). A process that
    could not start exits START_FAILED, the runtime's error on stderr in dockerd's words."""
    try:
        proc, master, launch = spawn(store, name_or_id, argv, tty=tty, until_exit=until_exit, user=user,
                                     workdir=workdir, env=env)
    except CannotStart as exc:
        return base.ExecResult(exit_code=START_FAILED, stdout=b"", stderr=exc.message.encode() + b"\n")
    out: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    try:                # its files (the process spec holds the environment, secrets too) go whatever ends it
        try:
            for stream, chunk in output(proc, launch, master, timeout=timeout):
                out[stream].append(chunk)
        except TimeoutError:
            # the process in the container outlives the runtime's kill: kill it by its pid
            pid = conmon.read_pid(launch.pid_file)
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
            proc.kill()
            proc.wait()
            raise TimeoutError(f"exec did not finish within {timeout}s") from None
        finally:
            release(proc, master)
        code = proc.wait()
        failure = launch.failure()
    finally:
        launch.remove()
    if failure is not None:
        return base.ExecResult(exit_code=START_FAILED, stdout=b"", stderr=failure.encode() + b"\n")
    return base.ExecResult(exit_code=code, stdout=b"".join(out["stdout"]), stderr=b"".join(out["stderr"]))


def spawn(store: records.RecordStore, name_or_id: str, argv: Sequence[str], *, tty: bool = False,
          stdin: bool = False, until_exit: bool = True, user: str | None = None, workdir: str | None = None,
          env: Sequence[str] = (), privileged: bool = False) -> tuple[subprocess.Popen[bytes], int | None, Launch]:
    """Start `argv` in the container and hand it over, for a caller that relays it live
    (`output`; the Engine API's exec): with `tty`, the master fd of its terminal (its input and
    output), else pipes (stdout, stderr, and stdin when `stdin`). The caller waits for the
    process, then `release`s it, asks the launch's `failure()` and `remove()`s its files."""
    launch = exec_argv(store, name_or_id, argv, tty=tty, until_exit=until_exit, user=user, workdir=workdir, env=env,
                       privileged=privileged)
    cmd = list(launch.argv)
    try:
        if not tty:
            return (subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, umask=oci.CONTAINER_UMASK,
                                     env=oci.runtime_env()),
                    None, launch)
        import pty

        master, slave = pty.openpty()
        try:
            proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                                    umask=oci.CONTAINER_UMASK, env=oci.runtime_env())
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        return proc, master, launch
    except BaseException:
        launch.remove()
        raise


def relay(store: records.RecordStore, name_or_id: str, argv: Sequence[str], *, stdin: int | None,
          stdout: BinaryIO, stderr: BinaryIO, user: str | None = None, workdir: str | None = None,
          env: Sequence[str] = ()) -> int:
    """Run `argv` in the container with its output relayed to `stdout` and `stderr` as it comes
    (and `stdin`, an fd, to its stdin until that ends), not handed over: as with `docker exec`,
    a background child of it then holds pipes of this process, not the caller's own stdout,
    which a shell's `$(...)` would wait on. Its exit code; START_FAILED, dockerd's words on
    `stderr`, for a process that could not start."""
    import threading

    try:
        proc, _, launch = spawn(store, name_or_id, argv, stdin=stdin is not None, user=user, workdir=workdir, env=env)
    except CannotStart as exc:
        stderr.write(exc.message.encode() + b"\n")
        stderr.flush()
        return START_FAILED

    def feed(source: int, into: IO[bytes]) -> None:
        try:
            while chunk := os.read(source, 65536):
                into.write(chunk)
                into.flush()
        except (OSError, ValueError):
            pass                                # it ended meanwhile
        with contextlib.suppress(OSError):
            into.close()

    if stdin is not None and proc.stdin is not None:
        threading.Thread(target=feed, args=(stdin, proc.stdin), name="exec-stdin", daemon=True).start()
    try:
        for stream, chunk in output(proc, launch):
            out = stdout if stream == "stdout" else stderr
            out.write(chunk)
            out.flush()
    finally:
        release(proc, None)
        code = proc.wait()
        failure = launch.failure()
        launch.remove()
    if failure is not None:
        stderr.write(failure.encode() + b"\n")
        stderr.flush()
        return START_FAILED
    return code


DRAIN_LIMIT = 1 << 20       # what is read of a stream after the exec's process exited, at most
_START_POLL = 0.01          # seconds between looks for the pid file until the process started


def output(proc: subprocess.Popen[bytes], launch: Launch, master: int | None = None, *,
           timeout: float | None = None) -> Iterator[tuple[str, bytes]]:
    """What a spawned exec writes, ("stdout" | "stderr", bytes) as it comes (a terminal's output
    is "stdout"), until its process exits (the command ends with it), then what its pipes hold at
    that moment. A background child that still holds them does not keep the exec going: Docker
    ends an exec when its process exits (`sh -c 'daemon & echo started'` returns at once), and
    what the process wrote before it exited is in the pipe by then, so nothing of it is lost.

    Its stderr (with a terminal, all of its output) is read once the process started (the
    runtime wrote its pid file): the runtime writes its own error there when the process cannot
    start, which is left out (`launch.failure()` has it). TimeoutError when it has not exited
    after `timeout` seconds."""
    import selectors

    sources = [(master, "stdout")] if master is not None else [
        (f.fileno(), name) for f, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr")) if f is not None]
    gated = [(fd, name) for fd, name in sources if master is not None or name == "stderr"]
    pidfd = os.pidfd_open(proc.pid)
    sel = selectors.DefaultSelector()
    try:
        sel.register(pidfd, selectors.EVENT_READ, None)
        for fd, name in sources:
            if (fd, name) not in gated:
                sel.register(fd, selectors.EVENT_READ, name)
        deadline = None if timeout is None else time.monotonic() + timeout
        exited = False
        while not exited:
            if gated and launch.started():
                for fd, name in gated:
                    sel.register(fd, selectors.EVENT_READ, name)
                gated = []
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"exec did not finish within {timeout}s")
            wait = _START_POLL if gated and (left is None or left > _START_POLL) else left
            for key, _ in sel.select(wait):
                if key.data is None:
                    exited = True
                    continue
                chunk = _read(key.fd)
                if chunk:
                    yield key.data, chunk
                else:                               # EOF (EIO: a terminal's last user is gone)
                    sel.unregister(key.fd)
        if launch.started():
            for fd, name in sources:
                if fd in sel.get_map() or (fd, name) in gated:
                    yield from ((name, chunk) for chunk in _drain(fd))
    finally:
        sel.close()
        os.close(pidfd)


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        raise
    except OSError as exc:
        if exc.errno == errno.EIO:
            return b""
        raise


def _drain(fd: int) -> Iterator[bytes]:
    """What `fd` holds now, without waiting for more (a child may keep it open), up to
    DRAIN_LIMIT bytes."""
    os.set_blocking(fd, False)
    taken = 0
    while taken < DRAIN_LIMIT:
        try:
            chunk = _read(fd)
        except BlockingIOError:
            return
        if not chunk:
            return
        taken += len(chunk)
        yield chunk


def release(proc: subprocess.Popen[bytes], master: int | None) -> None:
    """Close a spawned exec's output fds (its stdin is the writer's to close: a thread that
    feeds it may be in a write)."""
    for f in (proc.stdout, proc.stderr):
        if f is not None:
            with contextlib.suppress(OSError):
                f.close()
    if master is not None:
        os.close(master)
