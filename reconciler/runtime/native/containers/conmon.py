"""conmon: the small C monitor that runs `<runtime> create`, owns stdio and records the exit.

Started as podman does (host-recipes §1): a sync pipe and a start pipe passed as inherited
fds, `--exit-dir` (one file per container, named by id, holding the decimal exit status),
`--persist-dir` (`exit`, and `oom` when the kernel OOM-killed the container), k8s-file logs
(with `--log-size-max` when a cap is asked for), and the runtime's JSON log for create errors.

conmon's ctl fifo (`<bundle>/ctl`) takes lines "TYPE A B": 1 = resize the terminal to A rows,
B columns; 2 = reopen the log file (logs.rotate). Its `--log-size-max` counts the bytes written
since conmon started (or its last own cut), not reset by a reopen through the fifo, so with
rotation the cap cuts in between rotations; logs.rotate keeps what such a cut drops.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler._dataclass import dataclass
from reconciler.runtime import errors as rterrors

if TYPE_CHECKING:
    from reconciler.runtime.native.containers import oci

__all__ = ["ConmonPaths", "conmon_path", "create", "oci_log_error", "read_exit", "read_pid", "was_oom_killed"]

DEFAULT_LOG_SIZE_MAX = 100 * 1024 * 1024


@dataclass(frozen=True)
class ConmonPaths:
    """Where conmon reads and writes for one container."""

    bundle: Path            # holds config.json; conmon leaves pidfile, ctl, winsz here
    log_path: Path          # k8s-file log
    exit_dir: Path          # <exit_dir>/<id> = exit status
    persist_dir: Path       # exit, oom
    socket_dir: Path        # attach sockets

    @property
    def pidfile(self) -> Path:
        return self.bundle / "pidfile"

    @property
    def conmon_pidfile(self) -> Path:
        return self.bundle / "conmon.pid"

    @property
    def oci_log(self) -> Path:
        return self.bundle / "oci-log"

    @property
    def conmon_log(self) -> Path:
        return self.bundle / "conmon.err"

    def exit_file(self, cid: str) -> Path:
        return self.exit_dir / cid


def conmon_path() -> str:
    """The conmon binary the engine runs (Unavailable when the host has none)."""
    path = shutil.which("conmon") or shutil.which("conmon", path="/usr/bin:/usr/libexec/podman:/usr/local/bin")
    if path is None:
        raise rterrors.Unavailable("conmon not found", hint="install the conmon package")
    return path


def oci_log_error(path: Path) -> str:
    """The last error message of the runtime's JSON log (`{"level":"error","msg":...}`)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
            return str(entry.get("msg", ""))
    return ""


def create(
    cid: str,
    name: str,
    runtime: oci.OciRuntime,
    paths: ConmonPaths,
    *,
    log_size_max: int | None = DEFAULT_LOG_SIZE_MAX,
    terminal: bool = False,
    stdin: bool = False,
    stdin_once: bool = False,
    place: Callable[[int], None] | None = None,
    exit_command: Sequence[str] = (),
) -> tuple[int, int]:
    """Run conmon, which runs `<runtime> create`; returns (container pid, conmon pid).

    The container is then in the runtime's `created` state, its process blocked until
    `<runtime> start`. `log_size_max` None or 0: conmon does not cap the log. On failure every
    trace conmon left (exit files, runtime state) is removed and a clear error raised.
    `stdin`: its stdin open for attaches (`-i`), which conmon closes (the process's EOF) as the
    attach that sends it ends only when `stdin_once` and no `terminal` (Docker's StdinOnce).
    `place(pid)` is given conmon's daemon (the process that stays) while it runs the runtime's
    create, e.g. to move it into its own cgroup (`_place_daemon`). `exit_command`: what conmon runs
    once the container exited and its exit file is written (an AutoRemove container's removal,
    autoremove.py).
    """
    # imported here: reading exit files (records.refresh, on every `ps`) needs no processes
    import subprocess

    from reconciler.runtime.native.containers import oci

    for stale in (paths.exit_file(cid), paths.persist_dir / "exit", paths.persist_dir / "oom",
                  paths.pidfile, paths.conmon_pidfile, paths.oci_log):
        try:
            stale.unlink()
        except FileNotFoundError:
            pass
    paths.persist_dir.mkdir(parents=True, exist_ok=True)
    paths.exit_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        conmon_path(), "--api-version", "1", "-c", cid, "-u", cid, "-n", name,
        "-r", runtime.path, "-b", str(paths.bundle), "-p", str(paths.pidfile),
        "--exit-dir", str(paths.exit_dir), "--persist-dir", str(paths.persist_dir),
        "--socket-dir-path", str(paths.socket_dir), "--full-attach",
        "-l", f"k8s-file:{paths.log_path}", "--log-level", "warn",
        "--conmon-pidfile", str(paths.conmon_pidfile),
    ]
    if log_size_max is not None and log_size_max > 0:
        argv += ["--log-size-max", str(log_size_max)]
    if exit_command:
        argv += ["--exit-command", exit_command[0]]
        for arg in exit_command[1:]:
            argv += ["--exit-command-arg", arg]
    if terminal:
        argv.append("-t")
    if stdin:
        argv.append("-i")
        if terminal or not stdin_once:
            # stdin outlives each attach, as dockerd closes a container's stdin only for
            # StdinOnce without a terminal: a detach (Ctrl-p Ctrl-q) and a new `attach` type into
            # a terminal again, and `attach < file` of a `run -d -i` container leaves it open
            # (conmon closes it at the end of each attach connection without this). StdinOnce
            # without a terminal (`run -i`, `create -i` then `start -ai`): conmon closes it then,
            # which is the process's EOF (`run -i < file` ends: the Engine API's too)
            argv.append("--leave-stdin-open")
    for arg in runtime.conmon_runtime_args(paths.oci_log):
        argv += ["--runtime-arg", arg]
    sync_r, sync_w = os.pipe()
    start_r, start_w = os.pipe()
    env = oci.runtime_env()
    env["_OCI_SYNCPIPE"] = str(sync_w)
    env["_OCI_STARTPIPE"] = str(start_r)
    try:
        with open(paths.conmon_log, "wb") as err:
            try:
                proc = subprocess.Popen(
                    argv, env=env, pass_fds=(sync_w, start_r), stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                    cwd=paths.bundle,   # conmon also drops a relative "oom" file in its cwd
                    umask=oci.CONTAINER_UMASK,
                )
            except OSError as exc:
                raise rterrors.Unavailable(f"cannot run conmon: {exc.strerror}") from exc
        os.close(sync_w)
        sync_w = -1
        os.close(start_r)
        start_r = -1
        os.write(start_w, b"0")
        proc.wait()
        _place_daemon(paths, place)
        with os.fdopen(sync_r, "rb", closefd=True) as f:
            sync_r = -1
            line = f.readline()
    finally:
        for fd in (sync_w, start_r, start_w, sync_r):
            if fd >= 0:
                os.close(fd)
    message = ""
    pid = -1
    if line:
        try:
            msg = json.loads(line)
            pid = int(msg.get("data", -1))
            message = str(msg.get("message", ""))
        except (ValueError, TypeError):
            message = line.decode(errors="replace")
    if pid <= 0:
        detail = oci_log_error(paths.oci_log) or message
        if not detail:
            try:
                detail = paths.conmon_log.read_text(errors="replace").strip()
            except OSError:
                detail = ""
        detail = detail or f"conmon exited with status {proc.returncode} without a message"
        runtime.delete(cid, force=True)
        for left in (paths.exit_file(cid),):
            try:
                left.unlink()
            except FileNotFoundError:
                pass
        shutil.rmtree(paths.persist_dir, ignore_errors=True)
        raise oci.explain_create_failure(runtime.name, detail)
    return pid, read_pid(paths.conmon_pidfile) or 0


def _place_daemon(paths: ConmonPaths, place: Callable[[int], None] | None) -> None:
    """Give `place` conmon's daemon, the half that stays: the first conmon wrote its pid to
    `--conmon-pidfile` before it exited (proc.wait() returned). Done while the daemon runs
    `<runtime> create` rather than before conmon may proceed (the start pipe, as podman does):
    the first cgroup move after a quiet while waits for an RCU grace period (7-15 ms here),
    which then overlaps the runtime's start-up instead of delaying it (#21). What the move is
    for is unchanged: the runtime puts the container's processes into their own cgroups
    whatever cgroup it was started in, and the only other child conmon forks, the short-lived
    `<runtime> create` process, ends with the create."""
    if place is None:
        return
    pid = read_pid(paths.conmon_pidfile)
    if pid:
        place(pid)


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def read_exit(paths: ConmonPaths, cid: str) -> tuple[int, int] | None:
    """(exit status, time of exit in ns) from conmon's exit file, or None while it runs (asked
    for every running container by each refresh: os calls, not pathlib's)."""
    for p in (paths.exit_file(cid), paths.persist_dir / "exit"):
        try:
            fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            text = os.read(fd, 4096).decode(errors="replace").strip()
            mtime = os.fstat(fd).st_mtime_ns
        except OSError:
            continue
        finally:
            os.close(fd)
        if text.lstrip("-").isdigit():
            return int(text), mtime
    return None


def was_oom_killed(paths: ConmonPaths) -> bool:
    """conmon creates `<persist>/oom` when the cgroup OOM killer struck."""
    return (paths.persist_dir / "oom").exists()
