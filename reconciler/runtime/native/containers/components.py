"""The programs the native engine runs containers with, as each reports itself.

The OCI runtime (runc, or crun), conmon (each container's monitor: what containerd and its shim
are to dockerd) and the init a container with `init: true` (`docker run --init`) gets, a static
tini. Their versions are what the binaries say (`runc --version`, `conmon --version`, `tini
--version`), read once per binary (its path, size and modification time: an upgrade is read
again) and kept for the process: the Engine API's `/version` and `/info` report them, as dockerd
reports containerd's, runc's and docker-init's. Nothing here is made up: a binary that is missing
or says nothing readable is left out, a commit it does not name is "".
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading

from reconciler._dataclass import dataclass

__all__ = ["Component", "init_path", "of_engine", "read"]

# `runc version 1.1.5+ds1`, `conmon version 2.1.6`, `crun version 1.8.1`, `tini version 0.19.0 - git.de40ad0`
_VERSION = re.compile(r"^\S+ version (\S+)(?: - git\.(\S+))?", re.MULTILINE)
_COMMIT = re.compile(r"^commit: (\S+)", re.MULTILINE)

_cache: dict[tuple[str, int, int], tuple[str, str] | None] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Component:
    """One program the engine runs, as it reports itself."""

    name: str           # its role, by Docker's name where Docker has one: "runc", "conmon", "docker-init"
    path: str
    version: str
    commit: str         # the commit it names ("unknown" if it says so), else ""


def of_engine(oci_name: str, oci_path: str | None) -> list[Component]:
    """The engine's programs, in dockerd's order (its containerd, runc, docker-init): conmon, the
    OCI runtime `oci_name` at `oci_path` (the one new containers get), the init; those found."""
    from reconciler.runtime import errors as rterrors
    from reconciler.runtime.native.containers import conmon

    try:
        monitor: str | None = conmon.conmon_path()
    except rterrors.Unavailable:
        monitor = None
    found = (read("conmon", monitor), read(oci_name, oci_path), read("docker-init", init_path()))
    return [c for c in found if c is not None]


def read(name: str, path: str | None) -> Component | None:
    """The program at `path` in the role `name`, with the version and commit its `--version`
    prints; None when it is missing or prints no version."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    with _lock:
        if key not in _cache:
            _cache[key] = _version_of(path)
        said = _cache[key]
    return None if said is None else Component(name=name, path=path, version=said[0], commit=said[1])


def _version_of(path: str) -> tuple[str, str] | None:
    try:
        proc = subprocess.run([path, "--version"], capture_output=True, text=True, errors="replace", timeout=10,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = proc.stdout + proc.stderr
    m = _VERSION.search(out)
    if m is None:
        return None
    commit = _COMMIT.search(out)
    return m.group(1), commit.group(1) if commit else (m.group(2) or "")


def init_path() -> str | None:
    """The static tini a container with `init: true` runs as its PID 1 (Docker's docker-init is
    one), resolved; None when the host has none."""
    for name in ("tini-static", "docker-init"):
        found = shutil.which(name, path="/usr/bin:/usr/local/bin:/usr/libexec/docker:/usr/sbin")
        if found:
            return os.path.realpath(found)
    return None
