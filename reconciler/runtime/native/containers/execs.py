"""Processes entered into a running native container: exec, and attach to its main process.

Exec is `runc exec --process FILE ID` with the container's own process.json (user, env, cwd,
capabilities) and new args; `run` collects the output, `spawn` hands the process to a caller
that relays it live (the Engine API's exec), `exec_argv` gives the command line to a caller
that runs it itself (`reconcile exec`). Attach connects to conmon's attach socket of a
container created with a terminal or stdin; `resize` sets the size of that terminal.

They only read records, so they take a `records.RecordStore` (a `ContainerManager` is one);
the lifecycle (containers.py) does not need them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.runtime import base
from reconciler.runtime import errors as rterrors
from reconciler.runtime.native.containers import conmon, oci, records

if TYPE_CHECKING:
    import socket

__all__ = ["attach", "exec_argv", "exec_process", "resize", "run", "spawn"]


# -- attach


def attach(store: records.RecordStore, name_or_id: str) -> socket.socket:
    """Connect to conmon's attach socket of a container created with terminal/stdin.

    Packets from conmon start with one byte naming the stream (2 stdout, 3 stderr); what
    is sent goes to the process's stdin (or terminal). Connect before `start` so no
    output is missed.
    """
    import socket  # here: only a terminal or stdin attached needs it

    rec = store.get(name_or_id)
    if rec.status not in ("created", "running"):
        raise rterrors.Conflict(f"container {rec.name} is not running")
    dir_fd = os.open(store.paths(rec.id).dir, os.O_PATH | os.O_CLOEXEC)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(f"/proc/self/fd/{dir_fd}/attach")    # bundle paths can exceed sun_path
    except OSError as exc:
        sock.close()
        raise rterrors.RuntimeBackendError(f"cannot attach to container {rec.name}: {exc.strerror}") from exc
    finally:
        os.close(dir_fd)
    return sock


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


# -- exec


def exec_process(store: records.RecordStore, rec: records.Record, argv: Sequence[str], *,
                 tty: bool = False) -> dict[str, Any]:
    """The process.json of an exec: the container's user, env, cwd and caps, new args."""
    try:
        spec = json.loads(store.paths(rec.id).config_json.read_text())
    except (OSError, ValueError) as exc:
        raise rterrors.RuntimeBackendError(f"container {rec.name}: bundle unreadable: {exc}") from exc
    proc: dict[str, Any] = dict(spec["process"])
    proc["args"] = list(argv)
    proc["terminal"] = tty
    if tty and not any(e.startswith("TERM=") for e in proc.get("env", [])):
        proc["env"] = [*proc.get("env", []), "TERM=xterm"]     # as `docker exec -t` does
    return proc


def exec_argv(store: records.RecordStore, name_or_id: str, argv: Sequence[str], *,
              tty: bool = False) -> tuple[list[str], Path]:
    """`runc exec --process FILE ID` for a running container (caller removes FILE)."""
    if not argv:
        raise rterrors.InvalidArgument("exec needs a command")
    rec = store.get(name_or_id)
    if rec.status != "running":
        raise rterrors.Conflict(f"container {rec.name} is not running", hint="start it first")
    proc = exec_process(store, rec, argv, tty=tty)
    # the process's env holds the container's: SOPS values stay on its tmpfs
    where = store.paths(rec.id).secrets if rec.config.secret_env else store.config.run_dir / "conmon"
    import secrets  # here: `ps`/`logs` import this module and need no random names

    path = where / f"exec-{rec.id[:12]}-{secrets.token_hex(4)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(proc))
    rt = store.oci(rec.runtime)
    return [*rt.base_args(), "exec", "--process", str(path), rec.id], path


def run(store: records.RecordStore, name_or_id: str, argv: Sequence[str], *, tty: bool = False,
        timeout: float | None = None) -> base.ExecResult:
    """Run `argv` in the container and collect its output and exit code."""
    cmd, path = exec_argv(store, name_or_id, argv, tty=tty)
    try:
        if tty:
            return _run_tty(cmd, timeout)
        pid_file = path.with_suffix(".pid")
        cmd = [*cmd[:-1], "--pid-file", str(pid_file), cmd[-1]]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                umask=oci.CONTAINER_UMASK)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            # the process in the container holds our pipes: kill it, not only runc
            pid = conmon.read_pid(pid_file)
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
            proc.kill()
            proc.communicate()
            raise TimeoutError(f"exec did not finish within {timeout}s") from exc
        finally:
            pid_file.unlink(missing_ok=True)
        return base.ExecResult(exit_code=proc.returncode, stdout=out, stderr=err)
    finally:
        path.unlink(missing_ok=True)


def spawn(store: records.RecordStore, name_or_id: str, argv: Sequence[str], *, tty: bool = False,
          stdin: bool = False) -> tuple[subprocess.Popen[bytes], int | None, Path]:
    """Start `argv` in the container and hand it over, for a caller that relays it live
    (the Engine API's exec): with `tty`, the master fd of its terminal (its input and
    output), else pipes (stdout, stderr, and stdin when `stdin`). The caller waits for the
    process, closes the fd and removes the returned process file."""
    cmd, path = exec_argv(store, name_or_id, argv, tty=tty)
    try:
        if not tty:
            return (subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, umask=oci.CONTAINER_UMASK),
                    None, path)
        import pty

        master, slave = pty.openpty()
        try:
            proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                                    umask=oci.CONTAINER_UMASK)
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        return proc, master, path
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _run_tty(cmd: list[str], timeout: float | None) -> base.ExecResult:
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                                umask=oci.CONTAINER_UMASK)
    finally:
        os.close(slave)
    out = bytearray()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                proc.kill()
                raise TimeoutError(f"exec did not finish within {timeout}s")
            r, _, _ = select.select([master], [], [], 0.1 if left is None else min(left, 0.1))
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError as exc:
                    if exc.errno == errno.EIO:      # slave side closed: all output read
                        break
                    raise
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait()
    finally:
        os.close(master)
    return base.ExecResult(exit_code=code, stdout=bytes(out), stderr=b"")
