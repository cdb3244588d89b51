"""`PodmanRuntime`: the Docker backend on Podman's Docker-compatible API, where Podman differs.

Podman (4.3) serves the Engine API (`podman system service`), and `DockerRuntime` drives it
as it drives dockerd. What Podman does otherwise is made good here:

- Healthchecks: Podman runs a container's checks from systemd timers (`systemd-run`), which
  a host without systemd, or a service with `--cgroup-manager=cgroupfs`, does not have: the
  checks are then never run and the status stays `starting`. `health_checker` is reconciler's
  own loop for them (the process that holds the runtime runs it, as for the native engine):
  every running container with a healthcheck is probed at its interval through Podman's own
  endpoint (`GET /libpod/containers/{id}/healthcheck`), which runs the check and keeps
  Podman's state machine (retries, start period, the log `inspect` shows).
- Networks: the bridge of a network is read from Podman's own inspect (`network_interface`).
- A tag's registry digest: Podman has no `GET /distribution/{name}/json`; `DockerRuntime.resolve_digest`
  then asks the registry with reconciler's own client (and the credentials the engine is sent).
- Restart policies: Podman applies them itself (conmon's exit command), so `restart_manager`
  is a loop with nothing to do.
- `init: true`: Podman's init is catatonit, which Debian's podman does not ship (the create
  fails with "container-init binary not found"). Then the container gets Docker's own init
  instead, as Docker gives it: this host's static tini (`tini-static` or `docker-init`)
  bind-mounted read-only at /dev/init and put in front of the command (`/dev/init -- CMD`;
  the image's entrypoint and command are read to make CMD). The engine must be on this host
  (a Unix socket), as the tini path is this host's.
- Ports of a container whose networks are all internal: Docker publishes none (an internal
  network is cut off from the host too), Podman's CNI portmap publishes them: they are left out.
- A healthcheck without test (the image's with other timings): Podman 4.3 makes a container
  without any healthcheck of it, so the image's test is merged in here, as dockerd merges it.
  A start interval (`StartInterval`, Engine API 1.44) Podman drops: refused, as on a Docker
  older than 25 (`DockerRuntime.create_container`).
- A network's own settings: a MAC address Podman takes as an endpoint's (EndpointSettings.MacAddress,
  every endpoint in the create), never as the container's (Config.MacAddress, which it drops);
  link-local addresses and a gateway priority it drops: refused (`_endpoints_plan`).
- /dev/shm: Podman's default is 65536 kB in decimal (65,536,000 bytes), Docker's 64 MiB: a
  container that names no size gets 64 MiB, as on Docker.
- ulimits: a container that sets some ulimits gets Podman's 1048576 for `nofile` and `nproc`
  unless it names them, which a root without CAP_SYS_RESOURCE (or with lower hard limits)
  cannot set, so the container fails to start. As Docker's containers inherit dockerd's limits,
  the ones not named get the engine's own: the hard limits of the process serving the socket
  (its pid from SO_PEERCRED), or this process's when the engine is not on a local socket.
"""

from __future__ import annotations

import contextlib
import resource
import shutil
import socket
import struct
import threading
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from reconciler import logs
from reconciler._dataclass import dataclasses
from reconciler.runtime import base, errors
from reconciler.runtime.docker import api
from reconciler.runtime.docker.backend import DockerRuntime

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

__all__ = ["PodmanHealth", "PodmanRuntime", "is_podman"]

_NS = 1_000_000_000
_DEFAULT_INTERVAL = 30.0        # Docker's and Podman's when a healthcheck names none
_LOG = logs.get_logger("reconciler.runtime.podman")
_SHM_DEFAULT = 64 << 20         # Docker's
_INIT_TARGET = "/dev/init"      # where Podman itself mounts its init
_NO_ENGINE_INIT = "container-init binary not found"
_INHERITED_LIMITS = {"nofile": resource.RLIMIT_NOFILE, "nproc": resource.RLIMIT_NPROC}


def is_podman(engine: api.EngineAPI) -> bool:
    """Whether the engine behind `engine` is Podman (its /version names it)."""
    version = engine.version()
    names = [str(c.get("Name", "")) for c in version.get("Components") or []]
    return any("podman" in n.lower() for n in names)


def _peer_pid(socket_path: str) -> int | None:
    """The pid of the process serving the Unix socket `socket_path` (None: not one here)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(socket_path)
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    pid: int = struct.unpack("3i", creds)[0]
    return pid or None


def _hard_limit(pid: int | None, which: int) -> int:
    """Process `pid`'s hard limit `which` (this process's when it cannot be read)."""
    if pid is not None:
        try:
            return resource.prlimit(pid, which)[1]
        except OSError:
            pass
    return resource.getrlimit(which)[1]


class PodmanHealth:
    """Runs Podman's healthchecks at their intervals (see the module docstring)."""

    def __init__(self, engine: api.EngineAPI, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.clock = clock
        self._intervals: dict[str, float | None] = {}    # container id -> interval (None: no check)
        self._next: dict[str, float] = {}
        self._running: set[str] = set()
        self._lock = threading.Lock()

    def _interval(self, cid: str) -> float | None:
        if cid not in self._intervals:
            try:
                hc = (self.engine.container_inspect(cid).get("Config") or {}).get("Healthcheck") or {}
            except errors.NotFound:
                return None
            test = hc.get("Test") or []
            self._intervals[cid] = None if not test or test[0] == "NONE" else \
                (int(hc.get("Interval") or 0) / _NS or _DEFAULT_INTERVAL)
        return self._intervals[cid]

    def probe(self, cid: str) -> str | None:
        """Run the container's check now; its new status (None if it stopped meanwhile)."""
        try:
            return str(self.engine.libpod_healthcheck(cid).get("Status") or "") or None
        except (errors.Conflict, errors.NotFound):
            return None                 # stopped or removed meanwhile

    def tick(self, pool: ThreadPoolExecutor | None = None) -> None:
        """Probe the running containers whose interval elapsed (in `pool`, without waiting)."""
        now = self.clock()
        running = set(self.engine.container_ids("running"))
        for cid in list(self._next):
            if cid not in running:      # stopped: the next run starts its interval afresh
                del self._next[cid]
        for cid in list(self._intervals):
            if cid not in running:
                del self._intervals[cid]
        for cid in running:
            interval = self._interval(cid)
            if interval is None:
                continue
            due = self._next.setdefault(cid, now + interval)
            with self._lock:
                if due > now or cid in self._running:
                    continue
                self._running.add(cid)
            if pool is None:
                self._probe_done(cid, interval)
            else:
                pool.submit(self._probe_done, cid, interval)

    def _probe_done(self, cid: str, interval: float) -> None:
        try:
            self.probe(cid)
        except errors.RuntimeBackendError:
            _LOG.warning("healthcheck failed to run", container=cid, exc_info=True)
        finally:
            with self._lock:
                self._running.discard(cid)
                self._next[cid] = self.clock() + interval

    def watch(self, stop: threading.Event, *, poll: float = 0.5) -> None:
        """Tick every `poll` seconds until `stop` is set."""
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="podman-health") as pool:
            while not stop.is_set():
                try:
                    self.tick(pool)
                except errors.RuntimeBackendError:
                    _LOG.warning("healthcheck sweep failed", exc_info=True)
                stop.wait(poll)


class _EngineRestarts:
    """Podman applies restart policies itself: nothing to run here."""

    def boot(self, *, held: Collection[str] = ()) -> list[str]:
        return []

    def pending(self) -> bool:
        return False

    def watch(self, stop: threading.Event, *, poll: float = 0.5) -> None:
        stop.wait()


class PodmanRuntime(DockerRuntime):
    """The Runtime protocol on Podman's Docker-compatible API (see the module docstring)."""

    name = "podman"

    def __init__(self, socket_path: str = api.DEFAULT_SOCKET, transport: httpx.BaseTransport | None = None, *,
                 what: str = "podman", engine: api.EngineAPI | None = None, state_root: Path | None = None) -> None:
        super().__init__(socket_path, transport, what=what, engine=engine, state_root=state_root)
        # its errors and hints name Podman, also on a client opened before it was known to be one
        # (runtime.opening asks a DOCKER_HOST's engine what it is): "podman: ...", `podman login`
        self.api.what = what
        self._health = PodmanHealth(self.api)
        self._restarts = _EngineRestarts()
        self._engine_init = True         # until the engine says it has none

    _probed_here = True         # reconciler's loop runs the healthchecks (PodmanHealth)

    def made_here(self, ref: str) -> bool:
        """Unknown, so False (a pass asks the registry, as before): Podman gives every named
        image a repository digest, a built or imported one too."""
        return False

    @property
    def _start_interval(self) -> bool:
        """Never: Podman drops a healthcheck's StartInterval without a word, whatever Engine API
        version its compat service reports (4.3: 1.41; 5.x: 1.44 and later, still dropped), and
        PodmanHealth probes at the interval: refused at create, as on an older Docker."""
        return False

    def _endpoints_plan(self, config: base.ContainerConfig) -> tuple[str | None, int, bool]:
        """Podman takes a MAC address as an endpoint's own only (it drops Config.MacAddress), and
        several endpoints in one create, whatever API version it reports (4.3: 1.41); netavark has
        no extra link-local addresses and no gateway priority, which Podman drops without a word:
        refused, naming the field."""
        for i, net in enumerate(config.networks):
            for field, is_set in (("linkLocalIPs", config.link_local_ips.get(net)),
                                  ("gwPriority", config.gw_priorities.get(net))):
                if is_set:
                    raise errors.InvalidArgument(
                        f"container {config.name}: networks[{i}].{field} ({net}) is not honoured by Podman "
                        f"{self.api.version().get('Version', '')}: it would drop it without a word",
                        hint=f"remove {field}, or use Docker (gwPriority: Docker 28) or the native runtime")
        further = any(config.mac_addresses.get(net) for net in config.networks[1:])
        return None, len(config.networks) if further else 1, False

    def create_container(self, config: base.ContainerConfig, *, auto_remove: bool = False) -> str:
        config = self._docker_defaults(config)
        if not config.init or not self._engine_init:
            return super().create_container(config if not config.init else self._with_host_init(config),
                                            auto_remove=auto_remove)
        try:
            return super().create_container(config, auto_remove=auto_remove)
        except errors.RuntimeBackendError as exc:
            if _NO_ENGINE_INIT not in exc.message:
                raise
        self._engine_init = False        # no catatonit: Docker's init from now on
        return super().create_container(self._with_host_init(config), auto_remove=auto_remove)

    def update_resources(self, name_or_id: str, update: base.ResourceUpdate) -> list[str]:
        """As Docker's where Podman's compat API has `POST /containers/{id}/update`; where it has
        not (Podman 4.3's), a refusal that says what to use (its own `/libpod/.../update` takes a
        whole OCI resources document, not `docker update`'s change of a few fields, and is not
        sent one made up here)."""
        try:
            return super().update_resources(name_or_id, update)
        except api.MissingRoute:
            raise errors.Unavailable(
                f"podman {self.api.version().get('Version', '')} does not implement docker update "
                "(POST /containers/{id}/update) on its Docker-compatible API: nothing changed",
                hint=f"use `podman update` on its host (podman update --memory ... {name_or_id}), or Docker") from None

    def remove_container(self, name_or_id: str, *, force: bool = False, volumes: bool = False) -> None:
        """As Docker's: a forced removal kills a running container at once. Podman's own stops it
        first, waiting its stop timeout (10 s by default) for a process that ignores SIGTERM (any
        PID 1 without a handler), and takes no timeout on the Docker-compatible route. A stop with
        timeout 0 is Podman's SIGKILL, and a stop by hand its restart policy leaves alone."""
        if force:
            with contextlib.suppress(errors.NotFound, errors.Conflict):
                self.api.container_stop(name_or_id, 0)
        super().remove_container(name_or_id, force=force, volumes=volumes)

    def _docker_defaults(self, config: base.ContainerConfig) -> base.ContainerConfig:
        """Docker's /dev/shm size and inherited ulimits where the config names none; no ports on
        internal networks only; a healthcheck without test merged with the image's as dockerd
        merges them."""
        changes: dict[str, Any] = {}
        if config.healthcheck is not None and not config.healthcheck.test:
            changes["healthcheck"] = self._image_healthcheck(config.image, config.healthcheck)
        if config.shm_size is None:
            changes["shm_size"] = _SHM_DEFAULT
        if config.ulimits:
            named = {u.name for u in config.ulimits}
            extra = []
            engine = _peer_pid(self.api.socket_path)
            for name, which in _INHERITED_LIMITS.items():
                if name not in named:
                    hard = _hard_limit(engine, which)
                    if hard != resource.RLIM_INFINITY:
                        extra.append(base.Ulimit(name, hard, hard))
            changes["ulimits"] = (*config.ulimits, *extra)
        if config.ports and config.networks and self._internal_only(config.networks):
            changes["ports"] = ()
        return dataclasses.replace(config, **changes) if changes else config

    def _internal_only(self, networks: tuple[str, ...]) -> bool:
        """Whether every network named is internal: Docker publishes no port of a container on
        those only (cut off from the host too), where Podman's CNI portmap would."""
        if any(n in ("host", "none", "bridge", "default") for n in networks):
            return False
        try:
            return all(self.api.network_inspect(n).get("Internal") for n in networks)
        except errors.NotFound:
            return False                    # the create names the missing network

    def _image_healthcheck(self, image: str, own: base.Healthcheck) -> base.Healthcheck | None:
        """`own` (no test) over the image's healthcheck, as Podman reads it (its own inspect: the
        compat one leaves it out; an OCI image's config has none for Podman). Podman 4.3 takes a
        healthcheck without test for none at all, the image's dropped too; the image's start
        interval, which Podman never honours, is left out (as when the image's runs as it is)."""
        merged = base.healthcheck_of(own, self.api.libpod_image_inspect(image).get("Healthcheck"))
        if merged is not None and not own.start_interval:
            merged = dataclasses.replace(merged, start_interval=0.0)
        return merged

    def _with_host_init(self, config: base.ContainerConfig) -> base.ContainerConfig:
        """`config` with this host's static tini as PID 1 instead of the engine's init."""
        tini = shutil.which("tini-static") or shutil.which("docker-init")
        if tini is None:
            raise errors.Unavailable(
                f"container {config.name}: init: true needs catatonit in podman, or a static tini on this host",
                hint="install the catatonit or the tini package")
        image = (self.api.image_inspect(config.image).get("Config") or {})
        if config.command is not None:
            entry, cmd = list(config.command), list(config.args or ())
        else:
            entry = list(image.get("Entrypoint") or ())
            cmd = list(config.args if config.args is not None else image.get("Cmd") or ())
        mount = base.Mount(type="bind", source=tini, target=_INIT_TARGET, read_only=True)
        return dataclasses.replace(config, init=False, command=(_INIT_TARGET, "--", *entry), args=tuple(cmd),
                                   mounts=(*config.mounts, mount))

    def _verify_network(self, config: base.NetworkConfig, attrs: Mapping[str, Any]) -> base.NetworkState:
        """As Docker's, with the bridge Podman really made (its compat inspect leaves it out)."""
        state = super()._verify_network(config, attrs)
        bridge = str(self.api.libpod_network_inspect(config.name).get("network_interface") or "")
        return dataclasses.replace(state, bridge=bridge) if bridge else state

    @property
    def health_checker(self) -> PodmanHealth:
        return self._health

    @property
    def restart_manager(self) -> _EngineRestarts:
        return self._restarts
