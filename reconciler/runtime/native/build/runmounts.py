"""`RUN --mount=...` as BuildKit spells it: what a mount says, and the host side of the
persistent ones.

`parse()` reads one `--mount` value (CSV `key=value` fields; variables expanded in values,
except `from`) into a `RunMount` with BuildKit's defaults: type bind, read-only for bind and
secret, read-write for cache and tmpfs; a relative target is under the WORKDIR; a cache's id
is its target; a secret's id is its target's name and its target /run/secrets/<id>.

Cache mounts live under the state root, `build/cache-mounts/<sha256 of the id>/data`, created
on first use with the mount's mode/uid/gid (default 0755 root:root), and persist across
builds until that directory is deleted. `sharing=shared` (the default) lets steps use one at
the same time, `locked` makes them take turns (flock), `private` gives a step that finds it in
use a fresh empty directory instead.

`type=ssh` forwards an SSH agent socket given to the build (`--ssh ID=SOCKET`) through a
proxy socket of the step's own (`ssh_proxy`), at `/run/buildkit/ssh_agent.N` by default, with
the step's SSH_AUTH_SOCK pointing at the first one.

A mount target the step's container had to create (and its parent directories the image did
not have, or that the step left as they were) is left out of the step's layer, as BuildKit
removes its mount stubs; `stubs()` computes what to leave out.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import os
import posixpath
import select
import socket
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from reconciler._dataclass import dataclass
from reconciler.runtime.native import openat2
from reconciler.runtime.native.build import dockerfile

__all__ = ["RunMount", "cache_dir", "mount_sources", "parse", "ssh_proxy", "stubs"]

_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_SHARING = ("shared", "private", "locked")
_KEYS = ("type", "from", "source", "src", "target", "dst", "destination", "readonly", "ro", "readwrite", "rw",
         "required", "size", "id", "sharing", "mode", "uid", "gid", "env")
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass(frozen=True)
class RunMount:
    """One `--mount` of a RUN, defaults applied."""

    type: str                   # bind | cache | tmpfs | secret
    target: str                 # absolute path in the step's container
    source: str = ""            # bind: path in the context or `from`; cache: unused
    from_: str | None = None    # bind: a stage or image instead of the context
    readonly: bool = True
    id: str = ""                # cache and secret
    sharing: str = "shared"     # cache
    mode: int | None = None     # cache (its directory) and secret (its file)
    uid: int | None = None
    gid: int | None = None
    size: int | None = None     # tmpfs, bytes
    required: bool = False      # secret: fail when it was not given

    def key(self) -> dict[str, object]:
        """What of the mount is part of the step's cache key (never a secret's content)."""
        return {k: v for k, v in self.__dict__.items() if v not in (None, "", False)}


def parse(text: str, *, expand: Callable[[str], str], workdir: str) -> RunMount:
    """One --mount value; DockerfileError says what is wrong with it."""
    try:
        fields = next(csv.reader([text]))
    except (csv.Error, StopIteration):
        raise dockerfile.DockerfileError(f"--mount={text}: not CSV key=value fields") from None
    values: dict[str, str] = {}
    flags: dict[str, bool] = {}
    for item in fields:
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if key not in _KEYS:
            raise dockerfile.DockerfileError(f"--mount: unexpected key {key!r} in {item!r}",
                                             hint="keys: " + ", ".join(_KEYS))
        if not eq:
            if key not in ("readonly", "ro", "readwrite", "rw", "required"):
                raise dockerfile.DockerfileError(f"--mount: invalid field {item!r}: must be a key=value pair")
            flags[key] = True
            continue
        if key == "from":
            if "$" in value[:-1]:
                raise dockerfile.DockerfileError("--mount: 'from' doesn't support variable expansion, "
                                                 "define alias stage instead")
        else:
            value = expand(value)
        if key in ("readonly", "ro", "readwrite", "rw", "required"):
            flags[key] = _bool(key, value)
        else:
            values[{"src": "source", "dst": "target", "destination": "target"}.get(key, key)] = value
    kind = values.pop("type", "bind").lower()
    if kind not in _TYPES:
        raise dockerfile.DockerfileError(f"--mount: unsupported mount type {kind!r}", hint="use " + ", ".join(_TYPES))
    return _mount(kind, values, flags, workdir)


def mount_sources(ins: dockerfile.Instruction) -> list[str]:
    """The `from=` stages or images of a RUN's mounts, unexpanded (for which stages a build needs)."""
    out = []
    for text in ins.repeated.get("mount", ()) if ins.cmd == "RUN" else ():
        with contextlib.suppress(csv.Error, StopIteration):
            for item in next(csv.reader([text])):
                key, eq, value = item.partition("=")
                if eq and key.strip().lower() == "from" and value:
                    out.append(value)
    return out


def _mount(kind: str, values: dict[str, str], flags: dict[str, bool], workdir: str) -> RunMount:
    if "env" in values:
        raise dockerfile.DockerfileError("--mount=type=secret,env=... is not supported by this builder",
                                         hint="read the secret from its file, /run/secrets/<id> by default")
    if kind not in ("cache", "secret", "ssh") and {"mode", "uid", "gid"} & set(values):
        raise dockerfile.DockerfileError(f"--mount: mode, uid and gid are not allowed for {kind} mounts")
    if "sharing" in values and kind != "cache":
        raise dockerfile.DockerfileError(f"--mount: invalid cache sharing set for {kind} mount")
    if "size" in values and kind != "tmpfs":
        raise dockerfile.DockerfileError(f"--mount: unexpected key 'size' for mount type {kind!r}")
    if flags.get("required") and kind not in ("secret", "ssh"):
        raise dockerfile.DockerfileError(f"--mount: unexpected key 'required' for mount type {kind!r}")
    readonly = kind in ("bind", "secret")
    if "readonly" in flags or "ro" in flags:
        readonly = flags.get("readonly", flags.get("ro", True))
    if "readwrite" in flags or "rw" in flags:
        readonly = not flags.get("readwrite", flags.get("rw", True))
    ident = values.get("id", "")
    target = values.get("target", "")
    if kind == "secret":
        if values.get("from"):
            raise dockerfile.DockerfileError("--mount: a secret mount has no from")
        if values.get("source") and ident:
            raise dockerfile.DockerfileError("--mount: a secret mount takes source or id, not both")
        ident = ident or values.get("source", "") or posixpath.basename(target)
        if not ident:
            raise dockerfile.DockerfileError("--mount: a secret mount needs an id or a target")
        target = target or "/run/secrets/" + posixpath.basename(ident)
    if kind == "ssh":
        if values.get("from") or values.get("source"):
            raise dockerfile.DockerfileError("--mount: an ssh mount has no from or source")
        ident = ident or "default"
        target = target or "/run/buildkit/ssh_agent.0"
    if not target:
        raise dockerfile.DockerfileError(f"--mount: a {kind} mount needs a target")
    target = posixpath.normpath(posixpath.join("/", workdir, target))
    if target == "/":
        raise dockerfile.DockerfileError(f"--mount: invalid mount target {target!r}")
    if kind == "cache":
        ident = ident or target
    sharing = values.get("sharing", "shared").lower()
    if sharing not in _SHARING:
        raise dockerfile.DockerfileError(f"--mount: unsupported sharing value {sharing!r}", hint="use " + ", ".join(_SHARING))
    if kind == "cache" and values.get("from"):
        raise dockerfile.DockerfileError("--mount=type=cache,from=... is not supported by this builder",
                                         hint="seed the cache in the RUN itself")
    return RunMount(
        type=kind, target=target, source=values.get("source", ""), from_=values.get("from") or None,
        readonly=readonly, id=ident, sharing=sharing, mode=_number(values, "mode", 8),
        uid=_number(values, "uid", 10), gid=_number(values, "gid", 10), size=_size(values.get("size")),
        required=flags.get("required", False),
    )


def _bool(key: str, value: str) -> bool:
    low = value.lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise dockerfile.DockerfileError(f"--mount: invalid value for {key}: {value}")


def _number(values: Mapping[str, str], key: str, base: int) -> int | None:
    if key not in values:
        return None
    try:
        n = int(values[key], base)
    except ValueError:
        n = -1
    if not 0 <= n < (1 << 32) or (key == "mode" and n > 0o7777):
        raise dockerfile.DockerfileError(f"--mount: invalid value {values[key]} for {key}")
    return n


def _size(text: str | None) -> int | None:
    """A tmpfs size as Docker writes it: 512, 64k, 32m, 1g, 1GiB."""
    if text is None:
        return None
    low = text.strip().lower().removesuffix("b").removesuffix("i")
    unit = low[-1:] if low[-1:] in _SIZE_UNITS else ""
    number = low[: len(low) - len(unit)]
    try:
        return int(float(number) * _SIZE_UNITS[unit])
    except ValueError:
        raise dockerfile.DockerfileError(f"--mount: invalid value for size: {text}") from None


# ------------------------------------------------------------------------------ caches

@contextlib.contextmanager
def cache_dir(root: Path, m: RunMount, fresh: Callable[[], Path]) -> Iterator[Path]:
    """The persistent directory of cache mount `m` under `root`, held for the step as its
    `sharing` says (`fresh()` gives a scratch directory for the private stand-in)."""
    home = root / hashlib.sha256(m.id.encode()).hexdigest()[:32]
    data = home / "data"
    if not data.is_dir():
        home.mkdir(parents=True, exist_ok=True)
        os.chmod(home, 0o700)
        (home / "id").write_text(m.id + "\n")
        tmp = _make_dir(home / f"data.{os.getpid()}", m)
        with contextlib.suppress(OSError):      # another build made it first: theirs is as good
            os.rename(tmp, data)
        if tmp.exists():
            os.rmdir(tmp)
    fd = os.open(home / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if m.sharing == "private":
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield _make_dir(fresh() / "data", m)
                return
        else:
            fcntl.flock(fd, fcntl.LOCK_EX if m.sharing == "locked" else fcntl.LOCK_SH)
        yield data
    finally:
        os.close(fd)


def _make_dir(path: Path, m: RunMount) -> Path:
    path.mkdir(exist_ok=True)
    os.chown(path, m.uid or 0, m.gid or 0)
    os.chmod(path, m.mode if m.mode is not None else 0o755)
    return path


# ------------------------------------------------------------------------------ stubs

Before = Mapping[str, tuple[int, int, int] | None]


def stubs(targets: list[str], root_fd: int) -> tuple[frozenset[str], Before]:
    """For mount `targets`, what a step's layer leaves out: the targets themselves (relative
    paths), and each parent directory below "/" with its (mode, uid, gid) in the rootfs at
    `root_fd` before the step, None where it did not exist: such a parent is left out when
    the step left it empty and, if it existed, as it was."""
    skip = frozenset(t.strip("/") for t in targets)
    before: dict[str, tuple[int, int, int] | None] = {}
    for t in targets:
        parent = posixpath.dirname(t.strip("/"))
        while parent:
            if parent not in before:
                before[parent] = _state(root_fd, parent)
            parent = posixpath.dirname(parent)
    return skip, before


def _state(root_fd: int, rel: str) -> tuple[int, int, int] | None:
    try:
        fd = openat2.open_in_root(root_fd, rel, os.O_PATH | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return (st.st_mode, st.st_uid, st.st_gid) if stat.S_ISDIR(st.st_mode) else None


@contextlib.contextmanager
def ssh_proxy(path: Path, agent: str, m: RunMount) -> Iterator[Path]:
    """A socket at `path` (mode/uid/gid of the mount: 0600 root by default) that relays every
    connection to the SSH agent socket `agent`, for as long as the step runs (BuildKit
    forwards the agent the same way: the step never sees the agent's own socket)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dfd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        listener.bind(f"/proc/self/fd/{dfd}/{path.name}")     # (a state root's paths exceed sun_path)
        os.chown(path, m.uid or 0, m.gid or 0)
        os.chmod(path, m.mode if m.mode is not None else 0o600)
        listener.listen(8)
        listener.settimeout(0.2)
        stop = threading.Event()
        relays: list[threading.Thread] = []
        thread = threading.Thread(target=_accept, args=(listener, agent, stop, relays), daemon=True, name="ssh-proxy")
        thread.start()
        try:
            yield path
        finally:
            stop.set()
            thread.join()
            for relay in relays:
                relay.join()
    finally:
        listener.close()
        os.close(dfd)


def _accept(listener: socket.socket, agent: str, stop: threading.Event, relays: list[threading.Thread]) -> None:
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        relay = threading.Thread(target=_relay, args=(conn, agent, stop), daemon=True, name="ssh-relay")
        relay.start()
        relays.append(relay)


def _relay(conn: socket.socket, agent: str, stop: threading.Event) -> None:
    """Copy bytes both ways between a step's connection and the agent until either closes."""
    with conn, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as up:
        try:
            dfd = os.open(os.path.dirname(agent) or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                up.connect(f"/proc/self/fd/{dfd}/{os.path.basename(agent)}")
            finally:
                os.close(dfd)
        except OSError:
            return
        pair = {conn: up, up: conn}
        while not stop.is_set():
            ready, _, _ = select.select(list(pair), [], [], 0.2)
            for s in ready:
                try:
                    data = s.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                pair[s].sendall(data)
