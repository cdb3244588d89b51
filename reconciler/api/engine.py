"""A Docker-compatible Engine API served from the native engine (`reconcile engine-api`).

It is a view of the native engine, not a second engine: every call becomes the runtime call the
reconciler itself makes, so `docker ps` and `reconcile ps` show one state. Paths are accepted
versioned (`/v1.41/containers/json`) and unversioned, bodies and answers have Docker's JSON
shapes and status codes, errors are `{"message": ...}`.

Served now (what `docker version|info|ps|images|pull|run -d|logs|inspect|stop|start|restart|
kill|rm|wait|volume ls|network ls` and docker-py's equivalents call): `_ping` (GET/HEAD), `version`,
`info`, containers list (filters: label, name, id, status), create, inspect, start, stop, restart,
kill, wait, delete, logs (multiplexed stdout/stderr, follow, tail, timestamps), images list,
inspect and create (= pull, with Docker's JSON progress lines), networks and volumes list.
attach (output only) and exec (non-interactive: the output when the command ends) on the
hijacked connection, AutoRemove. Not served yet (answered 501 with the route named): stdin on
attach/exec (`-i`), events, build, push, archive, stats; see the issue note.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import socket
import struct
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from reconciler import __version__, httpbody
from reconciler.api.server import _remove_stale, _UnixHTTPServer
from reconciler.runtime import base
from reconciler.runtime import errors as rterrors

__all__ = ["API_VERSION", "EngineApi"]

API_VERSION = "1.41"
MIN_API_VERSION = "1.24"
MAX_BODY = 1 << 20
_VERSIONED = re.compile(r"^/v1\.\d+(/.*)$")
_STATUS_CODES = {rterrors.NotFound: 404, rterrors.AlreadyExists: 409, rterrors.Conflict: 409,
                 rterrors.InvalidArgument: 400}


class Hijack:
    """A raw stream on the hijacked connection (attach, exec start): Docker's 8-byte framed
    stdout/stderr, after a 101 Upgrade when the client asked for one; the connection closes
    at its end."""

    def __init__(self, frames: Iterator[bytes]) -> None:
        self.frames = frames


def _frame(stream: str, data: bytes) -> bytes:
    return struct.pack(">BxxxL", 1 if stream == "stdout" else 2, len(data)) + data


class HttpError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ----------------------------------------------------------------------------- translations

def _duration_ns(ns: Any, default: float) -> float:
    return float(ns) / 1e9 if isinstance(ns, int | float) and ns > 0 else default


def config_from_create(name: str, body: Mapping[str, Any]) -> base.ContainerConfig:
    """A Docker `POST /containers/create` body as the runtime's ContainerConfig."""
    if not isinstance(body.get("Image"), str) or not body["Image"]:
        raise HttpError(400, "config.Image is required")
    host = body.get("HostConfig") or {}
    mounts: list[base.Mount] = []
    for spec in host.get("Binds") or ():
        src, _, rest = str(spec).partition(":")
        dst, _, mode = rest.partition(":")
        kind = "bind" if src.startswith("/") else "volume"
        mounts.append(base.Mount(type=kind, source=src, target=dst, read_only="ro" in mode.split(",")))
    for m in host.get("Mounts") or ():
        mounts.append(base.Mount(type=str(m.get("Type", "volume")), source=str(m.get("Source", "")),
                                 target=str(m["Target"]), read_only=bool(m.get("ReadOnly"))))
    for dst, opts in (host.get("Tmpfs") or {}).items():
        mounts.append(base.Mount(type="tmpfs", target=dst, options=tuple(o for o in str(opts).split(",") if o)))
    ports = []
    for key, binds in (host.get("PortBindings") or {}).items():
        cport, _, proto = str(key).partition("/")
        for b in binds or [{}]:
            hport = str((b or {}).get("HostPort") or cport)
            ports.append(base.PortMapping(container_port=int(cport), host_port=int(hport), protocol=proto or "tcp",
                                          host_ip=(b or {}).get("HostIp") or "0.0.0.0"))  # noqa: S104
    rp = host.get("RestartPolicy") or {}
    mode = str(host.get("NetworkMode") or "")
    networks: tuple[str, ...] = () if mode in ("", "default", "bridge") else (mode,)
    hc = body.get("Healthcheck")
    healthcheck = None
    if hc and hc.get("Test"):
        healthcheck = base.Healthcheck(test=tuple(hc["Test"]), interval=_duration_ns(hc.get("Interval"), 30.0),
                                       timeout=_duration_ns(hc.get("Timeout"), 30.0),
                                       retries=int(hc.get("Retries") or 3),
                                       start_period=_duration_ns(hc.get("StartPeriod"), 0.0))
    env = {}
    for item in body.get("Env") or ():
        k, _, v = str(item).partition("=")
        env[k] = v
    nano = host.get("NanoCpus") or 0
    return base.ContainerConfig(
        name=name, image=body["Image"],
        command=tuple(body["Entrypoint"]) if isinstance(body.get("Entrypoint"), list) else None,
        args=tuple(body["Cmd"]) if isinstance(body.get("Cmd"), list) else None,
        env=env, user=body.get("User") or None, workdir=body.get("WorkingDir") or None,
        hostname=body.get("Hostname") or None, labels=dict(body.get("Labels") or {}), ports=tuple(ports),
        networks=networks, mounts=tuple(mounts),
        restart=base.RestartPolicy(name=str(rp.get("Name") or "no"), max_retries=int(rp.get("MaximumRetryCount") or 0)),
        healthcheck=healthcheck,
        resources=base.Resources(memory=host.get("Memory") or None, cpus=nano / 1e9 if nano else None,
                                 pids=host.get("PidsLimit") or None),
        read_only=bool(host.get("ReadonlyRootfs")), cap_add=tuple(host.get("CapAdd") or ()),
        cap_drop=tuple(host.get("CapDrop") or ()), stop_signal=body.get("StopSignal") or None,
        stop_timeout=float(body.get("StopTimeout") or 10), init=bool(host.get("Init")),
    )


def _unix(ts: str | None) -> int:
    """Seconds since the epoch of an RFC 3339 UTC time (Docker lists times as integers)."""
    import calendar
    import time

    if not ts or len(ts) < 19:
        return 0
    try:
        return calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0


def _status_text(c: base.ContainerState) -> str:
    s = c.status.value
    if s == "running":
        return "Up" + (f" ({c.health})" if c.health else "")
    if s == "exited":
        return f"Exited ({c.exit_code or 0})"
    return s.capitalize()


def container_summary(c: base.ContainerState) -> dict[str, Any]:
    return {
        "Id": c.id, "Names": ["/" + c.name], "Image": c.image, "ImageID": c.image_id, "Command": "",
        "Created": _unix(c.created), "State": c.status.value, "Status": _status_text(c),
        "Ports": [{"IP": p.host_ip, "PrivatePort": p.container_port, "PublicPort": p.host_port, "Type": p.protocol}
                  for p in c.ports],
        "Labels": dict(c.labels), "SizeRw": 0, "SizeRootFs": 0, "HostConfig": {"NetworkMode": "default"},
        "NetworkSettings": {"Networks": {n: {"IPAddress": ip} for n, ip in c.ip_addresses.items()}},
        "Mounts": [],
    }


def _image_or_404(rt: Any, ref: str) -> base.ImageInfo:
    """The local image `ref`, or Docker's 404 "No such image: REF" (docker-py and compose key
    their pull-on-missing on those words)."""
    try:
        info: base.ImageInfo = rt.inspect_image(ref)
    except rterrors.NotFound:
        raise HttpError(404, f"No such image: {ref}") from None
    return info


def _familiar(ref: str) -> str:
    """A stored reference as Docker's API shows it (docker.io/library/ left out)."""
    from reconciler.registry_client import references

    try:
        return references.parse(ref).familiar
    except ValueError:
        return ref


def image_summary(i: base.ImageInfo) -> dict[str, Any]:
    tags = [_familiar(t) for t in i.repo_tags]
    digests = [f"{t.rpartition(':')[0]}@{i.digest}" for t in tags] if i.digest else []
    return {"Id": i.id, "ParentId": "", "RepoTags": tags or ["<none>:<none>"],
            "RepoDigests": sorted(set(digests)), "Created": _unix(i.created), "Size": i.size, "VirtualSize": i.size,
            "SharedSize": -1, "Labels": dict(i.config.get("Labels") or {}), "Containers": -1}


def _filters(raw: str | None) -> dict[str, list[str]]:
    if not raw:
        return {}
    data = json.loads(raw)
    return {k: (list(v) if isinstance(v, list) else [k2 for k2, on in v.items() if on]) for k, v in data.items()}


def _matches(c: base.ContainerState, filters: Mapping[str, list[str]]) -> bool:
    for key, values in filters.items():
        if key == "label":              # every label given must match (Docker); other keys: any value
            ok = all((c.labels.get(v.partition("=")[0]) == v.partition("=")[2]) if "=" in v
                     else v in c.labels for v in values)
        elif key == "name":
            ok = any(re.search(v.lstrip("/"), c.name) for v in values)
        elif key == "id":
            ok = any(c.id.startswith(v) for v in values)
        elif key == "status":
            ok = c.status.value in values
        elif key == "ancestor":
            ok = any(v in (c.image, c.image_id) for v in values)
        else:
            ok = True
        if not ok:
            return False
    return True


# ----------------------------------------------------------------------------- the server

class EngineApi:
    """Serves the Engine API for `runtime` (a NativeRuntime) on the Unix socket `path`."""

    def __init__(self, runtime: Any, path: Path, *, group: int | None = None) -> None:
        self.runtime = runtime
        self.path = path
        self.group = group
        self._server: _UnixHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._execs: dict[str, dict[str, Any]] = {}          # exec id -> container, argv, result
        self._auto_remove: set[str] = set()                  # containers created with AutoRemove
        self._lock = threading.Lock()

    def start(self) -> None:
        _remove_stale(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        server = _UnixHTTPServer(str(self.path), _handler(self))
        os.chmod(self.path, 0o660)
        if self.group is not None:
            os.chown(self.path, -1, self.group)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="engine-api", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self.path.unlink(missing_ok=True)

    # -- routes -------------------------------------------------------------------------------

    def route(self, method: str, path: str, q: Mapping[str, str],
              body: Callable[[], Any]) -> tuple[int, Any]:
        rt = self.runtime
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        if method in ("GET", "HEAD") and parts == ["_ping"]:
            return 200, b"OK"
        if method == "GET" and parts == ["version"]:
            return 200, self._version()
        if method == "GET" and parts == ["info"]:
            return 200, self._info()
        if parts[0] == "containers":
            return self._containers(method, parts[1:], q, body)
        if parts[0] == "images":
            return self._images(method, parts[1:], q)
        if parts[0] == "exec" and len(parts) == 3:
            return self._exec(method, parts[1], parts[2], body)
        if parts[0] == "networks" and (method != "GET" or len(parts) > 2):
            return self._network_change(method, parts[1:], body)
        if parts[0] == "volumes" and method != "GET":
            return self._volume_change(method, parts[1:], body)
        if method == "GET" and parts[0] == "networks" and len(parts) <= 2:
            nets = [{"Name": n.name, "Id": n.name, "Driver": "bridge", "Scope": "local", "Internal": n.internal,
                     "Labels": dict(n.labels), "IPAM": {"Driver": "default", "Config": [{"Subnet": n.subnet}]}}
                    for n in rt.list_networks()]
            if len(parts) == 1:
                return 200, nets
            found = [n for n in nets if parts[1] in (n["Name"], n["Id"])]
            if not found:
                raise HttpError(404, f"network {parts[1]} not found")
            return 200, found[0]
        if method == "GET" and parts[0] == "volumes" and len(parts) <= 2:
            vols = [{"Name": v.name, "Driver": "local", "Mountpoint": v.mountpoint,
                     "Labels": dict(v.labels), "Scope": "local", "CreatedAt": v.created} for v in rt.list_volumes()]
            if len(parts) == 1:
                return 200, {"Volumes": vols, "Warnings": []}
            found = [v for v in vols if v["Name"] == parts[1]]
            if not found:
                raise HttpError(404, f"get {parts[1]}: no such volume")
            return 200, found[0]
        if method == "GET" and parts[0] == "plugins":
            raise HttpError(404, "plugin not found")
        raise HttpError(501, f"{method} /{'/'.join(parts)} is not served by reconciler's engine API yet")

    def _network_change(self, method: str, parts: list[str], body: Callable[[], Any]) -> tuple[int, Any]:
        """docker network create / rm: a bridge network of the engine's own."""
        rt = self.runtime
        if method == "POST" and parts == ["create"]:
            data = body() or {}
            name = str(data.get("Name") or "")
            if not name:
                raise HttpError(400, "network name is required")
            if data.get("Driver") not in (None, "", "bridge"):
                raise HttpError(400, f"network driver {data['Driver']!r} is not supported: the native engine makes "
                                     "bridge networks")
            if any(n.name == name for n in rt.list_networks()):
                raise HttpError(409, f"network with name {name} already exists")
            ipam = ((data.get("IPAM") or {}).get("Config") or [{}])[0] or {}
            state = rt.ensure_network(base.NetworkConfig(
                name=name, subnet=ipam.get("Subnet"), gateway=ipam.get("Gateway"),
                internal=bool(data.get("Internal")), labels=dict(data.get("Labels") or {})))
            return 201, {"Id": state.id or name, "Warning": ""}
        if method == "POST" and len(parts) == 2 and parts[1] in ("connect", "disconnect"):
            found = [n for n in rt.list_networks() if parts[0] in (n.name, n.id)]
            if not found:
                raise HttpError(404, f"network {parts[0]} not found")
            data = body() or {}
            aliases = tuple(str(a) for a in ((data.get("EndpointConfig") or {}).get("Aliases") or ()))
            self._reattach(str(data.get("Container") or ""), found[0].name, parts[1] == "connect", aliases)
            return 200, None
        if method == "DELETE" and len(parts) == 1:
            found = [n for n in rt.list_networks() if parts[0] in (n.name, n.id)]
            if not found:
                raise HttpError(404, f"network {parts[0]} not found")
            rt.remove_network(found[0].name)
            return 204, None
        raise HttpError(501, f"{method} /networks/{'/'.join(parts)} is not served by reconciler's engine API yet")

    def _reattach(self, ident: str, network: str, connect: bool, aliases: tuple[str, ...]) -> None:
        """docker network connect/disconnect of a container not started yet (what compose does
        between create and start to set aliases): its networks and aliases are config until it
        starts. A running container's networks cannot change yet."""
        import dataclasses

        manager = self.runtime.containers
        rec = manager.get(ident)
        if rec.status != "created":
            raise HttpError(501, f"network {'connect' if connect else 'disconnect'} of a {rec.status} container is "
                                 "not served by reconciler's engine API yet: connect before it starts")

        def change(r: Any) -> Any:
            nets = tuple(n for n in r.config.networks if n not in (network, "none"))
            extra = tuple(a for a in aliases if a not in r.config.aliases)
            if connect:
                nets = (*nets, network)
            nets = nets or ("none",)             # () would mean the default network, not none
            return dataclasses.replace(r, config=dataclasses.replace(
                r.config, networks=nets, aliases=(*r.config.aliases, *extra) if connect else r.config.aliases))
        manager.update(rec.id, change)

    def _volume_change(self, method: str, parts: list[str], body: Callable[[], Any]) -> tuple[int, Any]:
        """docker volume create / rm: a local named volume."""
        rt = self.runtime
        if method == "POST" and parts == ["create"]:
            import secrets

            data = body() or {}
            if data.get("Driver") not in (None, "", "local") or data.get("DriverOpts"):
                raise HttpError(400, "only local volumes without driver options are supported")
            name = str(data.get("Name") or secrets.token_hex(32))
            v = rt.ensure_volume(base.VolumeConfig(name=name, labels=dict(data.get("Labels") or {})))
            return 201, {"Name": v.name, "Driver": "local", "Mountpoint": v.mountpoint, "Labels": dict(v.labels),
                         "Scope": "local", "CreatedAt": v.created, "Options": {}}
        if method == "DELETE" and len(parts) == 1:
            if not any(v.name == parts[0] for v in rt.list_volumes()):
                raise HttpError(404, f"get {parts[0]}: no such volume")
            rt.remove_volume(parts[0])
            return 204, None
        raise HttpError(501, f"{method} /volumes/{'/'.join(parts)} is not served by reconciler's engine API yet")

    def _version(self) -> dict[str, Any]:
        u = platform.uname()
        return {"Version": f"reconciler-{__version__}", "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                "Os": "linux", "Arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(u.machine, u.machine),
                "KernelVersion": u.release, "GitCommit": "", "GoVersion": "", "BuildTime": "",
                "Components": [{"Name": "Engine", "Version": __version__,
                                "Details": {"ApiVersion": API_VERSION, "Os": "linux"}}]}

    def _info(self) -> dict[str, Any]:
        cs = self.runtime.list_containers()
        running = sum(1 for c in cs if c.status.value == "running")
        stopped = sum(1 for c in cs if c.status.value in ("exited", "created", "dead"))
        return {"ID": "reconciler", "Name": socket.gethostname(), "ServerVersion": f"reconciler-{__version__}",
                "Containers": len(cs), "ContainersRunning": running, "ContainersPaused": 0,
                "ContainersStopped": stopped, "Images": len(self.runtime.list_images()), "Driver": "overlay",
                "DockerRootDir": str(self.runtime.config.root), "OSType": "linux",
                "OperatingSystem": "reconciler native engine", "Architecture": platform.machine(),
                "NCPU": os.cpu_count() or 1, "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
                "CgroupDriver": "cgroupfs", "Runtimes": {"runc": {"path": "runc"}}, "DefaultRuntime": "runc",
                "Warnings": []}

    def _containers(self, method: str, parts: list[str], q: Mapping[str, str],
                    body: Callable[[], Any]) -> tuple[int, Any]:
        rt = self.runtime
        if method == "GET" and parts == ["json"]:
            fl = _filters(q.get("filters"))
            listed = [c for c in rt.list_containers()
                      if (q.get("all") in ("1", "true") or c.status.value == "running") and _matches(c, fl)]
            return 200, [container_summary(c) for c in listed]
        if method == "POST" and parts == ["create"]:
            import secrets

            data = body() or {}
            config = config_from_create(q.get("name") or f"r_{secrets.token_hex(4)}", data)
            _image_or_404(rt, config.image)      # the docker CLI pulls on this 404, then creates again
            cid = rt.create_container(config)
            if (data.get("HostConfig") or {}).get("AutoRemove"):
                with self._lock:
                    self._auto_remove.add(cid)
            return 201, {"Id": cid, "Warnings": []}
        if not parts:
            raise HttpError(404, "page not found")
        ident, action = parts[0], "/".join(parts[1:])
        if method == "GET" and action == "json":
            from reconciler.runtime.native import inspection

            manager = rt.containers
            rec = manager.get(ident)
            doc = inspection.document(manager, rec)
            cfg = doc.setdefault("Config", {})
            for key, value in (("Tty", rec.terminal), ("OpenStdin", rec.stdin), ("StdinOnce", False),
                               ("AttachStdin", False), ("AttachStdout", True), ("AttachStderr", True)):
                cfg.setdefault(key, value)
            if isinstance(cfg.get("StopTimeout"), float):          # Go clients decode it as an int
                cfg["StopTimeout"] = int(cfg["StopTimeout"])
            host = doc.setdefault("HostConfig", {})
            host.setdefault("LogConfig", {"Type": "json-file", "Config": {}})   # logs readable (docker-py)
            with self._lock:
                host.setdefault("AutoRemove", doc["Id"] in self._auto_remove)
            return 200, doc
        if method == "POST" and action == "start":
            if rt.inspect_container(ident).status.value == "running":
                return 304, None
            rt.start_container(ident)
            return 204, None
        if method == "POST" and action == "stop":
            if rt.inspect_container(ident).status.value != "running":
                return 304, None
            rt.stop_container(ident, timeout=float(q["t"]) if "t" in q else None)
            return 204, None
        if method == "POST" and action == "restart":
            if rt.inspect_container(ident).status.value == "running":
                rt.stop_container(ident, timeout=float(q["t"]) if "t" in q else None)
            rt.start_container(ident)
            return 204, None
        if method == "POST" and action == "kill":
            rt.kill_container(ident, q.get("signal") or "KILL")
            return 204, None
        if method == "POST" and action == "wait":
            return 200, self._wait(ident, q.get("condition") or "not-running")
        if method == "DELETE" and action == "":
            rt.remove_container(ident, force=q.get("force") in ("1", "true"))
            return 204, None
        if method == "GET" and action == "logs":
            return 200, self._logs(ident, q)
        if method == "POST" and action == "exec":
            import secrets

            data = body() or {}
            if not isinstance(data.get("Cmd"), list) or not data["Cmd"]:
                raise HttpError(400, "No exec command specified")
            state = rt.inspect_container(ident)
            if state.status.value != "running":
                raise HttpError(409, f"Container {ident} is not running")
            exec_id = secrets.token_hex(32)
            with self._lock:
                self._execs[exec_id] = {"container": state.id, "argv": [str(x) for x in data["Cmd"]],
                                        "tty": bool(data.get("Tty")), "running": False, "exit": None}
            return 201, {"Id": exec_id}
        if method == "POST" and action == "attach":
            return 200, Hijack(self._attach(ident, q))
        if method == "POST" and action == "resize":
            return 200, None
        if method == "POST" and action == "rename":
            if not q.get("name"):
                raise HttpError(400, "the new name is required (?name=)")
            rt.rename_container(ident, q["name"])
            return 204, None
        raise HttpError(501, f"{method} /containers/{{id}}/{action} is not served by reconciler's engine API yet")

    def _wait(self, ident: str, condition: str) -> Iterator[bytes]:
        """Docker's wait: `not-running` (now, if it is not running), `next-exit` (the exit after
        the next start) or `removed`; the answer is streamed once the condition holds, so a
        client can send its wait before the start (docker run does)."""
        import time

        rt = self.runtime
        if condition not in ("not-running", "next-exit", "removed"):
            raise HttpError(400, f"invalid condition {condition!r}")
        first = rt.inspect_container(ident)

        def answer() -> Iterator[bytes]:
            state = first
            seen_running = state.status.value in ("running", "created")   # created: its start is next
            with self._lock:
                auto = first.id in self._auto_remove
            while True:
                try:
                    state = rt.inspect_container(first.id)
                except rterrors.NotFound:
                    break
                running = state.status.value in ("running", "restarting", "created")
                seen_running = seen_running or running
                if condition == "not-running" and state.status.value != "running":
                    break
                if not running and seen_running and condition == "next-exit":
                    break
                if not running and condition == "removed" and auto:
                    with contextlib.suppress(rterrors.NotFound):
                        rt.remove_container(first.id, force=True)
                    break
                time.sleep(0.1)
            with self._lock:
                self._auto_remove.discard(first.id)
            yield json.dumps({"StatusCode": state.exit_code or 0, "Error": None}).encode()
        return answer()

    def _attach(self, ident: str, q: Mapping[str, str]) -> Iterator[bytes]:
        """Output from now until the container exits (stdin is not attached)."""
        if q.get("stdin") in ("1", "true") and not (q.get("stdout") in ("1", "true") or q.get("stderr") in ("1", "true")):
            raise HttpError(501, "attaching stdin is not served by reconciler's engine API yet")
        want = {s for s in ("stdout", "stderr") if q.get(s) in ("1", "true")} or {"stdout", "stderr"}
        state = self.runtime.inspect_container(ident)
        tail = 0 if state.status.value == "running" else None     # a created container: from its start
        lines = self.runtime.logs(state.id, follow=True, tail=tail)

        def frames() -> Iterator[bytes]:
            for line in lines:
                if line.stream in want:
                    yield _frame(line.stream, line.data + b"\n")
        return frames()

    def _exec(self, method: str, exec_id: str, action: str, body: Callable[[], Any]) -> tuple[int, Any]:
        with self._lock:
            ex = self._execs.get(exec_id)
        if ex is None:
            raise HttpError(404, f"No such exec instance: {exec_id}")
        if method == "GET" and action == "json":
            return 200, {"ID": exec_id, "Running": ex["running"], "ExitCode": ex["exit"], "ContainerID": ex["container"],
                         "ProcessConfig": {"entrypoint": ex["argv"][0], "arguments": ex["argv"][1:], "tty": ex["tty"]},
                         "OpenStdin": False, "OpenStdout": True, "OpenStderr": True, "Pid": 0}
        if method == "POST" and action == "resize":
            return 201, None
        if method == "POST" and action == "start":
            opts = body() or {}

            def run() -> Iterator[bytes]:
                ex["running"] = True
                try:
                    res = self.runtime.exec(ex["container"], ex["argv"], tty=ex["tty"])
                finally:
                    ex["running"] = False
                ex["exit"] = res.exit_code
                if res.stdout:
                    yield res.stdout if ex["tty"] else _frame("stdout", res.stdout)
                if res.stderr and not ex["tty"]:
                    yield _frame("stderr", res.stderr)

            if opts.get("Detach"):
                threading.Thread(target=lambda: list(run()), daemon=True).start()
                return 200, None
            return 200, Hijack(run())
        raise HttpError(501, f"{method} /exec/{{id}}/{action} is not served by reconciler's engine API yet")

    def _logs(self, ident: str, q: Mapping[str, str]) -> Iterator[bytes]:
        want = {s for s in ("stdout", "stderr") if q.get(s) in ("1", "true")} or {"stdout", "stderr"}
        tail = None if q.get("tail", "all") == "all" else int(q["tail"])
        tty = False
        stamps = q.get("timestamps") in ("1", "true")
        for line in self.runtime.logs(ident, follow=q.get("follow") in ("1", "true"), tail=tail):
            if line.stream not in want:
                continue
            data = (line.time.encode() + b" " if stamps else b"") + line.data + b"\n"
            yield data if tty else struct.pack(">BxxxL", 1 if line.stream == "stdout" else 2, len(data)) + data

    def _images(self, method: str, parts: list[str], q: Mapping[str, str]) -> tuple[int, Any]:
        rt = self.runtime
        if method == "GET" and parts == ["json"]:
            return 200, [image_summary(i) for i in rt.list_images()]
        if method == "POST" and parts == ["create"]:
            ref = q.get("fromImage") or ""
            tag = q.get("tag") or ""
            if not ref:
                raise HttpError(400, "fromImage is required")
            full = f"{ref}@{tag}" if tag.startswith("sha256:") else (f"{ref}:{tag}" if tag else ref)
            return 200, self._pull(full)
        if method == "POST" and len(parts) >= 2 and parts[-1] == "tag":
            repo, tag = q.get("repo") or "", q.get("tag") or "latest"
            if not repo:
                raise HttpError(400, "repository name is required (?repo=)")
            rt.tag_image("/".join(parts[:-1]), f"{repo}:{tag}")
            return 201, None
        if method == "DELETE" and parts:
            name = "/".join(parts)
            _image_or_404(rt, name)
            lines = rt.remove_image(name, force=q.get("force") in ("1", "true"))     # "Untagged: x", "Deleted: y"
            return 200, [{k: _familiar(v) if k == "Untagged" else v}
                         for k, _, v in (line.partition(": ") for line in lines)]
        if method == "GET" and len(parts) >= 2 and parts[-1] == "json":
            info = _image_or_404(rt, "/".join(parts[:-1]))
            doc = image_summary(info)
            doc.update({"Config": dict(info.config), "RootFS": {"Type": "layers", "Layers": list(info.layers)},
                        "Os": "linux", "Architecture": "amd64"})
            return 200, doc
        raise HttpError(501, f"{method} /images/{'/'.join(parts)} is not served by reconciler's engine API yet")

    def _pull(self, ref: str) -> Iterator[bytes]:
        lines: list[dict[str, Any]] = []

        def progress(event: str, d: Mapping[str, Any]) -> None:
            short = str(d.get("digest", ""))[7:19]
            text = {"layer-start": "Pulling fs layer", "layer-downloaded": "Download complete",
                    "extract": "Extracting", "layer-done": "Pull complete"}.get(event)
            if text:
                lines.append({"status": text, "id": short})

        try:
            info = self.runtime.pull_image(ref, progress=progress)
        except rterrors.RuntimeBackendError as exc:
            lines.append({"errorDetail": {"message": exc.message}, "error": exc.message})
        else:
            lines.append({"status": f"Digest: {info.digest}"})
            lines.append({"status": f"Status: Downloaded newer image for {ref}"})
        for item in lines:
            yield json.dumps(item).encode() + b"\r\n"


def _handler(api: EngineApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "reconciler-engine-api"

        def log_message(self, fmt: str, *args: Any) -> None:
            pass

        def _body(self) -> Any:
            try:
                n = httpbody.content_length(self.headers, MAX_BODY)
            except httpbody.BodyRefused as e:
                self.close_connection = True    # the body is left unread: the connection cannot go on
                raise HttpError(e.status, e.message) from None
            raw = self.rfile.read(n) if n else b""
            if not raw:
                return None
            try:
                return json.loads(raw)
            except ValueError:
                raise HttpError(400, "the request body is not JSON") from None

        def _answer(self, method: str) -> None:
            url = urllib.parse.urlsplit(self.path)
            path = url.path
            m = _VERSIONED.match(path)
            if m:
                path = m.group(1)
            q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
            try:
                code, payload = api.route(method, path, q, self._body)
            except HttpError as exc:
                code, payload = exc.code, {"message": exc.message}
            except rterrors.RuntimeBackendError as exc:
                code = next((c for cls, c in _STATUS_CODES.items() if isinstance(exc, cls)), 500)
                payload = {"message": exc.message}
            self._send(method, code, payload)

        def _hijacked(self, payload: Hijack) -> None:
            upgrade = self.headers.get("Upgrade", "").lower() == "tcp"
            self.send_response(101 if upgrade else 200)
            self.send_header("Content-Type", "application/vnd.docker.raw-stream")
            if upgrade:
                self.send_header("Connection", "Upgrade")
                self.send_header("Upgrade", "tcp")
            self.end_headers()
            self.close_connection = True
            try:
                for chunk in payload.frames:
                    self.wfile.write(chunk)
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _send(self, method: str, code: int, payload: Any) -> None:
            if isinstance(payload, Hijack):
                self._hijacked(payload)
                return
            streaming = isinstance(payload, Iterator)
            self.send_response(code)
            self.send_header("Api-Version", API_VERSION)
            self.send_header("Docker-Experimental", "false")
            self.send_header("OSType", "linux")
            self.send_header("Server", f"reconciler/{__version__}")
            if self.close_connection:
                self.send_header("Connection", "close")
            if streaming:
                ctype = "application/vnd.docker.raw-stream" if "/logs" in self.path else "application/json"
                self.send_header("Content-Type", ctype)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for chunk in payload:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                return
            if payload is None or code in (204, 304):
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_header("Content-Type", "text/plain; charset=utf-8" if isinstance(payload, bytes)
                             else "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(raw)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_HEAD(self) -> None:
            self._answer("HEAD")

        def do_POST(self) -> None:
            self._answer("POST")

        def do_DELETE(self) -> None:
            self._answer("DELETE")

        def do_PUT(self) -> None:
            self._answer("PUT")

    return Handler
