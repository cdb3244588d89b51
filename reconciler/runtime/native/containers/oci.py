"""The OCI runtime CLI (runc by default, crun selectable): start, kill, delete, state, exec.

`create` is not here: conmon runs it (see conmon.py). Every call passes our private `--root`
so our containers never mix with Docker's or podman's. Failures become runtime errors with
the runtime's own message (read from its JSON log when there is one).

`start` of a runc container needs no runc process: it is what `runc start` does, reading the
exec fifo its init process blocks on (#21, ~10 ms of every start); anything unusual still goes
to runc, which says what is wrong.
"""

from __future__ import annotations

import json
import os
import select
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler._dataclass import dataclass
from reconciler.runtime import errors as rterrors

if TYPE_CHECKING:
    import subprocess

__all__ = ["CONTAINER_UMASK", "CRUN_HYBRID_MARKER", "OciRuntime", "ProcessFailed", "explain_create_failure",
           "runtime_env"]

# What conmon, the runtime and the container's processes start with: Docker's 022, not the
# engine's own 077 (docs/security.md): cgroup files runc makes stay readable by a container's
# non-root user, and files a container writes get the modes its image expects.
CONTAINER_UMASK = 0o022

CRUN_HYBRID_MARKER = "cgroups in hybrid mode not supported"


def runtime_env() -> dict[str, str]:
    """The environment conmon and the runtime's commands run with: the engine's, without
    NOTIFY_SOCKET (an agent under systemd's Type=notify has one): given it, `runc create` would
    hand the container a notify socket, and `runc start` binds one in a directory only such a
    create makes, and fails ("bind: no such file or directory")."""
    return {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}


class ProcessFailed(rterrors.InvalidArgument):
    """The container's process could not be made: its executable is missing or not executable.
    `process_exit`: the exit code dockerd records for such a start (127, or 126 when denied)."""

    def __init__(self, message: str, *, hint: str | None = None, process_exit: int = 127) -> None:
        super().__init__(message, hint=hint)
        self.process_exit = process_exit


def explain_create_failure(runtime: str, message: str) -> rterrors.RuntimeBackendError:
    """Turn the runtime's create failure into the error a user can act on."""
    text = message.strip()
    if CRUN_HYBRID_MARKER in text:
        return rterrors.Unavailable(
            f"{runtime} cannot run containers on this host: it does not support the hybrid "
            f"cgroup v1/v2 layout ({text})",
            hint="use runc (--oci-runtime runc), which handles v1, v2 and hybrid hosts",
        )
    lowered = text.lower()
    if "error mounting" in lowered:
        return rterrors.InvalidArgument(
            f"cannot mount the container's volumes: {text}",
            hint="check its mounts: a bind source that is a file must exist, a volume's data must be there",
        )
    if "executable file not found" in lowered or "no such file or directory" in lowered or "permission denied" in lowered:
        return ProcessFailed(
            f"cannot start the container's process: {text}",
            hint="check the command/entrypoint and that it exists and is executable in the image",
            process_exit=126 if "permission denied" in lowered else 127,
        )
    return rterrors.RuntimeBackendError(f"{runtime} create failed: {text}")


@dataclass(frozen=True)
class OciRuntime:
    """One OCI runtime binary with its private state directory."""

    name: str           # "runc" | "crun"
    path: str
    root: Path          # --root state dir

    @classmethod
    def find(cls, name: str, root: Path) -> OciRuntime:
        if name not in ("runc", "crun"):
            raise rterrors.InvalidArgument(f"unknown OCI runtime {name!r}", hint="use runc or crun")
        path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
        if path is None:
            raise rterrors.Unavailable(f"OCI runtime {name} not found on PATH", hint=f"install {name}")
        return cls(name=name, path=path, root=root)

    def base_args(self) -> list[str]:
        return [self.path, "--root", str(self.root)]

    def conmon_runtime_args(self, oci_log: Path) -> list[str]:
        """What conmon passes to `<runtime> create` (our --root and a JSON error log)."""
        return ["--root", str(self.root), "--log-format=json", f"--log={oci_log}"]

    def _run(self, *args: str, check: bool = True, timeout: float | None = 30) -> subprocess.CompletedProcess[bytes]:
        import subprocess  # here: an engine that only reads (a no-op pass, ps) runs no runtime (#21)

        try:
            proc = subprocess.run([*self.base_args(), *args], capture_output=True, timeout=timeout, check=False,
                                  umask=CONTAINER_UMASK, env=runtime_env())
        except subprocess.TimeoutExpired as exc:
            raise rterrors.Unavailable(f"{self.name} {args[0]} did not answer within {timeout}s") from exc
        except OSError as exc:
            raise rterrors.Unavailable(f"cannot run {self.path}: {exc.strerror}") from exc
        if check and proc.returncode != 0:
            msg = proc.stderr.decode(errors="replace").strip()
            if "does not exist" in msg or ("not found" in msg.lower() and "container" in msg.lower()):
                raise rterrors.NotFound(f"{self.name}: container {args[-1]} does not exist")
            raise rterrors.RuntimeBackendError(f"{self.name} {args[0]} failed: {msg}")
        return proc

    def start(self, cid: str, *, alive: Callable[[], bool] | None = None, pid: int | None = None) -> None:
        """Let the created container's process run. For runc, given `alive` (whether the
        container's init process still lives, a zombie counting as ended) and that process's
        `pid`, without a runc process: `_release` does what `runc start` does. Otherwise, and
        whenever that is not certain to have worked, `<runtime> start`."""
        if alive is None or pid is None or self.name != "runc" or not self._release(cid, alive, pid):
            self._run("start", cid)

    def _release(self, cid: str, alive: Callable[[], bool], pid: int) -> bool:
        """runc's start of a created container (libcontainer's `exec`): its init process waits
        in an open of `exec.fifo` for writing; a reader lets it write one byte and execute the
        container's process (which closes the fifo); then the fifo is removed, which is what
        makes runc report the container running. False, with nothing changed, where the fifo
        is missing (started already, not runc's layout) or the init process ended without a
        word: `runc start` then reports the state in its own words."""
        fifo = self.root / cid / "exec.fifo"
        try:
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            st = os.fstat(fd)
            ident = (st.st_dev, st.st_ino)
            if alive() and not _awaiting_start(pid, ident):
                # released already: a start killed between the read and the removal (the
                # init process executed the container's command, which will never write
                # again); what is left of that start is the removal
                released = True
            else:
                released = _drain(fd, lambda: alive() and _awaiting_start(pid, ident)) != b""
        finally:
            os.close(fd)
        if released:
            fifo.unlink(missing_ok=True)
        return released

    def kill(self, cid: str, signal: int, *, all_processes: bool = False) -> bool:
        """Send `signal`; False if the container is not running any more."""
        args = ["kill"] + (["--all"] if all_processes else []) + [cid, str(signal)]
        proc = self._run(*args, check=False)
        if proc.returncode == 0:
            return True
        msg = proc.stderr.decode(errors="replace")
        if "not running" in msg or "process already finished" in msg or "does not exist" in msg:
            return False
        raise rterrors.RuntimeBackendError(f"{self.name} kill {cid} failed: {msg.strip()}")

    def pause(self, cid: str) -> None:
        """Freeze every process of the container (cgroup freezer), for a consistent copy."""
        self._run("pause", cid)

    def resume(self, cid: str) -> None:
        self._run("resume", cid)

    def update(self, cid: str, resources: Mapping[str, Any]) -> None:
        """Set a running container's cgroup limits (`update -r FILE`, OCI `linux.resources`)."""
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump(resources, f)
            f.flush()
            self._run("update", "-r", f.name, cid)

    def delete(self, cid: str, *, force: bool = False) -> None:
        """Delete the runtime's record of the container; a missing one is fine."""
        proc = self._run("delete", *(["--force"] if force else []), cid, check=False)
        if proc.returncode != 0:
            msg = proc.stderr.decode(errors="replace")
            if "does not exist" in msg or "not exist" in msg:
                return
            raise rterrors.RuntimeBackendError(f"{self.name} delete {cid} failed: {msg.strip()}")

    def state(self, cid: str) -> dict[str, Any] | None:
        """`<runtime> state`: {"status": "created|running|stopped", "pid": ...}, or None."""
        proc = self._run("state", cid, check=False)
        if proc.returncode != 0:
            return None
        data: dict[str, Any] = json.loads(proc.stdout)
        return data

    def exec_argv(
        self, cid: str, argv: list[str], *, tty: bool = False, env: list[str] | None = None,
        cwd: str | None = None, user: str | None = None, detach: bool = False,
    ) -> list[str]:
        """The command line of `<runtime> exec` (the caller runs it with the stdio it wants)."""
        args = [*self.base_args(), "exec"]
        if tty:
            args.append("--tty")
        if detach:
            args.append("--detach")
        for e in env or ():
            args += ["--env", e]
        if cwd:
            args += ["--cwd", cwd]
        if user:
            args += ["--user", user]
        return [*args, cid, *argv]


def _awaiting_start(pid: int, fifo: tuple[int, int]) -> bool:
    """Whether `pid` is still runc's init process before it executed the container's command:
    it holds the exec fifo (`fifo`: its device and inode) from its creation until that exec (an
    O_PATH descriptor, then the one it writes through, which the exec closes). Where its
    descriptors cannot be looked at, by its name, which nsexec sets ("runc:[2:INIT]") and the
    exec replaces (a little after it closed the fifo). A start that took a waiting init for
    released would leave it waiting for good (the fifo removed), and a stop would then end
    runc's Go code with exit 2, as a CI run saw twice (never reproduced): the hold on the fifo is
    the init's state itself, where the name is a sign of it."""
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return False
    except OSError:
        return _named_init(pid)
    for name in names:
        try:
            st = os.stat(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == fifo:
            return True
    return False


def _named_init(pid: int) -> bool:
    """Whether `pid` bears the name nsexec gives runc's init ("runc:[2:INIT]")."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().rstrip(b"\n") == b"runc:[2:INIT]"
    except OSError:
        return False


def _drain(fd: int, alive: Callable[[], bool]) -> bytes:
    """What is written to the fifo `fd` until its writer closes it; b"" if no writer came
    and `alive()` turned false (looked at every 100 ms while nothing happens, as runc does).
    A reader that opened with no writer gets no hang-up until a writer came, so an init that
    had ended leaves the poll waiting, not returning an empty read."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    data = b""
    while True:
        if not poller.poll(100):
            if alive():
                continue
            return data
        try:
            chunk = os.read(fd, 64)
        except BlockingIOError:
            continue
        if not chunk:
            return data
        data += chunk
