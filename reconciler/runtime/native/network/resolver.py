"""The engine's side of its embedded DNS server (`dnsd`): starting it, knowing it, asking it.

One `dnsd` process per engine (per run dir) serves every container on a user-defined network
(`dns.embedded`), at 127.0.0.11:53 in each one's namespace. Its files are the run dir's:
`dnsd.sock` (the control socket: one JSON line asked, one answered, per connection),
`dnsd.pid` (its pid, start time and boot id: a pid reused by another process is never taken
for it, `procs.alive`) and `locks/dnsd.lock` (flock-held while it runs: one per run dir).
Nothing of it is named outside the run dir, so two engines on one host never meet each other's.

`serve` is asked at attach, once the container's interfaces are up and before its process
starts (its first lookup has an answer), and starts the daemon when none answers; `drop` at
detach, before the namespace is deleted (an open socket holds its namespace, and its veth
with it), and starts none. Stdlib only, as the daemon is (network/dnswire.py).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.runtime import errors
from reconciler.runtime.native import procs
from reconciler.runtime.native.config import NativeConfig

if TYPE_CHECKING:
    import subprocess

__all__ = ["DAEMON_MODULE", "drop", "ensure", "lock_path", "pid", "pid_path", "serve", "socket_path"]

DAEMON_MODULE = "reconciler.runtime.native.network.dnsd"
_ASK_TIMEOUT = 5.0          # a serve makes two sockets and a rule in a namespace: milliseconds
_START_TIMEOUT = 10.0       # the daemon's start: an interpreter, the recorded containers
_started: list[subprocess.Popen[bytes]] = []     # the daemons this process started, reaped once ended


def socket_path(run_dir: Path) -> Path:
    return run_dir / "dnsd.sock"


def pid_path(run_dir: Path) -> Path:
    return run_dir / "dnsd.pid"


def lock_path(run_dir: Path) -> Path:
    return run_dir / "locks" / "dnsd.lock"


def pid(run_dir: Path) -> int | None:
    """The running daemon's pid: the one its pid file records, if that process is alive and
    started when recorded (in this boot), else None."""
    try:
        words = pid_path(run_dir).read_text().split()
        number, start, boot = int(words[0]), int(words[1]), words[2]
    except (OSError, ValueError, IndexError):
        return None
    return number if procs.alive(number, start, boot) else None


def _ask(run_dir: Path, request: dict[str, Any]) -> dict[str, Any] | None:
    """The daemon's answer to `request`, None when no daemon answers (no socket, refused, or the
    connection ended unanswered: a daemon exiting)."""
    path = socket_path(run_dir)
    import socket  # here: an engine start asks `pid` alone (a no-op pass loads no socket, #21)

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s:
        s.settimeout(_ASK_TIMEOUT)
        try:
            s.connect(str(path))
            s.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    return None
                data += chunk
        except (FileNotFoundError, ConnectionError):
            return None
        except OSError as exc:
            raise errors.Unavailable(f"the DNS server of {run_dir} did not answer: {exc}") from exc
    answer: dict[str, Any] = json.loads(data)
    return answer


def _start(config: NativeConfig) -> None:
    """Start the daemon, detached; return once it serves (or another one started meanwhile does)."""
    import select
    import subprocess

    import reconciler

    _started[:] = [p for p in _started if p.poll() is None]
    package_root = str(Path(reconciler.__file__).resolve().parent.parent)    # the daemon imports this copy
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [sys.executable, "-m", DAEMON_MODULE, str(config.root), str(config.run_dir)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        start_new_session=True, close_fds=True,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    ready, _, _ = select.select([proc.stdout], [], [], _START_TIMEOUT)
    line = proc.stdout.readline().strip() if ready else b""
    proc.stdout.close()
    if line not in (b"ready", b"running"):
        proc.kill()
        proc.wait(timeout=10)
        err = proc.stderr.read().decode(errors="replace").strip()
        proc.stderr.close()
        raise errors.Unavailable(f"the embedded DNS server did not start: {err[-500:] or 'no answer in 10s'}")
    proc.stderr.close()
    if line == b"running":
        proc.wait(timeout=10)       # another one serves: this one ended
    else:
        _started.append(proc)       # it runs on, in its own session; the pid file names it


def ensure(config: NativeConfig) -> bool:
    """Start the daemon if none runs (at its start it serves every recorded container); whether
    it had to. errors.Unavailable when it cannot start."""
    if pid(config.run_dir) is not None:
        return False
    _start(config)
    return True


def serve(config: NativeConfig, container_id: str, netns: Path) -> None:
    """Have the engine's daemon answer at 127.0.0.11:53 in `netns` for `container_id` (started
    when none answers). errors.Unavailable when it cannot."""
    request = {"op": "serve", "id": container_id, "netns": str(netns)}
    for attempt in range(2):
        answer = _ask(config.run_dir, request)
        if answer is None:
            if attempt:
                break
            _start(config)
            continue
        if answer.get("ok"):
            return
        raise errors.Unavailable(f"the embedded DNS server cannot serve container {container_id[:12]}: "
                                 f"{answer.get('error', 'no reason given')}")
    raise errors.Unavailable("the embedded DNS server started but does not answer on "
                             f"{socket_path(config.run_dir)}")


def drop(run_dir: Path, container_id: str) -> None:
    """Have the daemon close its sockets in `container_id`'s namespace (none running: nothing
    holds them). errors.Unavailable when a running daemon did not answer."""
    answer = _ask(run_dir, {"op": "drop", "id": container_id})
    if answer is not None and not answer.get("ok"):
        raise errors.Unavailable(f"the embedded DNS server did not drop container {container_id[:12]}: "
                                 f"{answer.get('error', 'no reason given')}")
