"""Opening an engine: the one place that names the backends and builds them (#15).

Every caller that talks to an engine opens it here: `reconcile apply`, `diff` and `rollback`
(through `execution.backends.session`), the container commands (`ps`, `logs`, `exec`, `rm`,
`run`, `start`, `stop`, `pull`, `images`, `inspect`: their `--runtime`), and the agent. Each
backend is imported only when chosen, so a command pays for the engine it uses and no other.

    native  the embedded engine (runtime.native.backend.NativeRuntime); `bridge` plugs its
            bridge networking in from the start (a container that names no network then joins
            the default one, as in a pass), else it is loaded for a container that names one
            (`reconcile run`: no network unless asked)
    docker  a Docker (or Podman) engine over its API ($DOCKER_HOST unix://... or tcp://...,
            default /var/run/docker.sock); the state root then holds only the reconciler's own DB
            (with the records of the Images it built there)
    swarm   the services of a Docker Swarm cluster, through a manager's Engine API (found as for
            docker)
    fake    the in-memory engine whose state is a JSON file under the root: for tests and dry
            runs of the reconciler's own logic; it runs no process

The native engine's read side (`open_records`: the records `ps`, `inspect` and `logs` read, no
lifecycle code loaded) and its image store (`open_image_store`) are opened here too.
What only the native engine can do (build, save/load, push/tag, commit, volumes, networks, a
terminal attached to run and exec) the CLI reaches through this module's sibling `runtime.parts`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler._dataclass import dataclass
from reconciler.runtime import errors as rterrors

if TYPE_CHECKING:
    from reconciler.runtime import base
    from reconciler.runtime.native.backend import NativeRuntime
    from reconciler.runtime.native.config import NativeConfig
    from reconciler.runtime.native.containers.records import RecordStore
    from reconciler.runtime.native.images.images import ImageStore

__all__ = ["RUNTIMES", "Place", "inspect_document", "offline_refusals", "open_image_store", "open_native",
           "open_records",
           "open_runtime", "read_native_logs", "summaries"]

RUNTIMES = ("native", "docker", "swarm", "fake")


@dataclass(frozen=True)
class Place:
    """Where an engine keeps its state, and how the native one names its host objects."""

    root: Path
    run_dir: Path | None = None         # native: None is the default run dir
    name_prefix: str = "rcl"
    oci_runtime: str = "runc"
    pull_aside: bool = False            # native: pulls in a helper process (a long-lived engine's)
    # docker, swarm: the engine's address as DOCKER_HOST says it (None: $DOCKER_HOST; "": the
    # default socket), given when it is another process's (the agent holding the root)
    engine_address: str | None = None

    def docker_host(self) -> str | None:
        """The DOCKER_HOST value the docker and swarm engines are opened at."""
        return os.environ.get("DOCKER_HOST") if self.engine_address is None else self.engine_address

    def native_config(self) -> NativeConfig:
        """The native engine's settings for this place ($RECONCILER_SUBNET_POOL: its subnet pool)."""
        from reconciler.runtime.native.config import NativeConfig

        return NativeConfig(root=self.root, run_dir=self.run_dir or NativeConfig().run_dir,
                            name_prefix=self.name_prefix, oci_runtime=self.oci_runtime, pull_aside=self.pull_aside,
                            subnet_pool=os.environ.get("RECONCILER_SUBNET_POOL", NativeConfig.subnet_pool))


def open_runtime(name: str, place: Place, *, recover: bool = True, bridge: bool = True) -> base.Runtime:
    """The runtime `name` keeping its state at `place`.

    A writer (`recover`, the default) of the native engine first collects what a crash left
    (recovery.recover: half-made containers, orphan monitors, mounts, veths, namespaces,
    rules); `reconcile diff` and the container commands open it with recover=False."""
    if name == "native":
        return _native(place, recover=recover, bridge=bridge)
    if name == "docker":
        from reconciler.runtime.docker import api as docker_api
        from reconciler.runtime.docker import backend as docker_backend
        from reconciler.runtime.docker import podman

        engine = docker_api.from_docker_host(place.docker_host())
        try:
            on_podman = podman.is_podman(engine)
        except rterrors.Unavailable:
            on_podman = False               # said again, with its hint, by the first call of the pass
        # Podman's API needs reconciler's own healthcheck loop (podman.py)
        # (the state root keeps the records of the Images it builds)
        docker: base.Runtime = (podman.PodmanRuntime if on_podman else docker_backend.DockerRuntime)(
            engine=engine, state_root=place.root)
        return docker
    if name == "swarm":
        from reconciler.runtime.swarm import backend as swarm_backend

        swarm: base.Runtime = swarm_backend.SwarmRuntime.from_docker_host(place.docker_host())
        return swarm
    if name == "fake":
        from reconciler.runtime import fake

        return fake.FakeRuntime.at_root(place.root)
    raise rterrors.InvalidArgument(f"unknown runtime {name!r}", hint=f"choose one of {', '.join(RUNTIMES)}")


def _native(place: Place, *, recover: bool, bridge: bool) -> base.Runtime:
    import importlib

    try:
        backend = importlib.import_module("reconciler.runtime.native.backend")
    except ImportError as exc:
        raise rterrors.Unavailable(
            "the native runtime is not available in this build",
            hint="use --runtime fake to exercise the reconciler without an engine",
        ) from exc
    config = place.native_config()
    # bridge networking plugged in, its manager made when first needed (backend.LazyNetwork)
    native = backend.NativeRuntime(config, network=backend.LazyNetwork(config) if bridge else None)
    if recover:
        from reconciler.runtime.native.containers import recovery

        recovery.recover(native)
    runtime: base.Runtime = native
    return runtime


def offline_refusals(name: str) -> Callable[[base.ContainerConfig], list[str]] | None:
    """What runtime `name` refuses of a container config, as "FIELD: why", judged without an
    engine (`validate --runtime NAME`); None for a runtime that refuses nothing before it runs."""
    if name != "swarm":
        return None
    from reconciler.runtime.swarm import services

    return services.offline_refusals


def open_native(place: Place) -> NativeRuntime:
    """The native engine at `place` itself, for the commands that use its parts beyond the
    Runtime protocol (commit, volume, container export: runtime.parts): no crash recovery, no bridge
    networking until a container needs it."""
    from reconciler.runtime.native import backend

    return backend.NativeRuntime(place.native_config())


def open_records(place: Place) -> RecordStore:
    """The native engine's container records at `place`, for what only reads them (`ps`,
    `inspect`, `logs`): no lifecycle, image store or network code loaded, nothing created."""
    from reconciler.runtime.native.containers import records

    return records.RecordStore(place.native_config())


def open_image_store(place: Place, *, platform: str | None = None) -> ImageStore:
    """The native engine's image store at `place`; `rmi` and `image prune` see which images the
    engine's containers use."""
    from reconciler.runtime.native.images import images

    config = place.native_config()

    def records() -> list[Any]:
        try:
            from reconciler.runtime.native.containers import containers
        except ImportError:  # pragma: no cover - container engine not built in
            return []
        return list(containers.ContainerManager(config).records())

    def used() -> set[str]:
        return {str(r.image_id) for r in records()}

    def users() -> list[images.ImageUser]:       # which run: `rmi -f` of their image by id is refused
        return [images.ImageUser(str(r.image_id), str(r.id), r.runs()) for r in records()]

    return images.ImageStore(config, container_image_ids=used, image_users=users, platform=platform)


def read_native_logs(path: Path, *, is_running: Callable[[], bool], poll: float,
                     idle: Callable[[float], object] | None = None) -> Iterator[base.LogLine]:
    """The lines of a native container's log file as they are written, until it stopped
    (`reconcile run` in the foreground, which polls faster than `logs -f`; `idle`: the pause
    between looks, see logs.read_logs)."""
    import time

    from reconciler.runtime.native.containers import logs

    return logs.read_logs(path, follow=True, is_running=is_running, poll=poll, idle=idle or time.sleep)


def summaries(store: RecordStore, selector: dict[str, str] | None = None, *,
              measure: Callable[[Mapping[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
    """What `ps` shows of each native container with the `selector` labels, newest first;
    `measure`: the rows (`ps -s`) that get their sizes (summaries.add_sizes)."""
    from reconciler.runtime.native.containers import records

    recs = store.records(selector or None)
    rows = [records.summary(r) for r in recs]
    if measure is not None:
        from reconciler.runtime.native.containers import summaries as native_summaries

        native_summaries.add_sizes(str(store.config.root),
                                   [(row, r.image_id) for row, r in zip(rows, recs, strict=True) if measure(row)])
    return rows


def inspect_document(store: RecordStore, name: str) -> dict[str, Any]:
    """The `docker inspect` document of the native container `name` (NotFound if none)."""
    from reconciler.runtime.native.containers import inspection

    doc: dict[str, Any] = inspection.document(store, store.get(name))
    return doc
