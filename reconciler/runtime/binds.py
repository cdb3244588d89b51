"""A running container's bind sources against what its process has mounted: every engine's rule.

A bind mount holds the inode its source had when the container started. An editor's save or a
daemon's new socket replaces the file (a new inode at the same path), and a deleted directory
stays mounted, gone from the host: the container goes on with the old one, and what it writes
there is lost at its stop. Such a source is *stale*: the host path's device and inode differ from
what /proc/PID/root/TARGET shows, or the host path is gone. The native engine asks with its
container's pid; the Docker backend with the pid an engine on this host reports, once the
process is shown to be that container's (`owned`: an engine elsewhere, or in another pid
namespace, reports pids that name other processes here).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

__all__ = ["owned", "stale"]


def stale(binds: Iterable[tuple[str, str]], pid: int) -> tuple[str, ...]:
    """The host paths of `binds` ((host path, target) pairs) that are not what the process `pid`
    has mounted at their targets now. Two stats a bind; a target that cannot be looked at (the
    process ended, no permission) says nothing; a source that is not a host path is passed over."""
    out = []
    for source, target in binds:
        if not source.startswith("/"):
            continue
        try:
            inside = os.stat(f"/proc/{pid}/root{target}")
        except OSError:
            continue
        try:
            host = os.stat(source)
        except FileNotFoundError:
            out.append(source)
            continue
        except OSError:
            continue
        if (host.st_dev, host.st_ino) != (inside.st_dev, inside.st_ino):
            out.append(source)
    return tuple(out)


def owned(pid: int, container_id: str) -> bool:
    """Whether the process `pid` of this host runs in container `container_id`'s cgroup (every
    engine's cgroup path names the container's full id: /docker/ID, docker-ID.scope,
    libpod-ID.scope)."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8", errors="replace") as f:
            return container_id in f.read()
    except OSError:
        return False
