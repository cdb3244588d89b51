"""Open the runtime named by `--runtime` for one pass; each backend is imported only when chosen.

    native  the embedded engine (reconciler.runtime.native.backend.NativeRuntime) with its
            bridge networking; while the session is open, the engine's healthcheck and
            restart-policy loops run in background threads (what the agent runs), so health
            gates work in a one-shot `reconcile --once` too
    docker  a Docker (or Podman) engine over its API ($DOCKER_HOST unix://... or tcp://..., default
            /var/run/docker.sock); --root then holds only the reconciler's own state DB
    swarm   the services of a Docker Swarm cluster, through a manager's Engine API (found as for
            docker); --root holds only the reconciler's own state DB
    fake    in-memory engine whose state is a JSON file under --root: for tests and dry runs
            of the reconciler's own logic; it runs no process
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reconciler.runtime import base
from reconciler.runtime import errors as rterrors

__all__ = ["RUNTIMES", "open_runtime", "session"]

RUNTIMES = ("native", "docker", "swarm", "fake")


def open_runtime(
    name: str,
    *,
    root: Path,
    run_dir: Path | None = None,
    name_prefix: str = "rcl",
    oci_runtime: str = "runc",
    recover: bool = True,
) -> base.Runtime:
    """The runtime `name` keeping its state under `root` (and `run_dir` for native).

    A writer (`recover`, the default) of the native engine first collects what a crash left
    (recovery.recover: half-made containers, orphan monitors, mounts, veths, namespaces,
    rules); `reconcile diff` opens it with recover=False since it changes nothing."""
    if name == "fake":
        from reconciler.runtime import fake

        return fake.FakeRuntime.at_root(root)
    if name == "native":
        try:
            backend = importlib.import_module("reconciler.runtime.native.backend")
            netmod = importlib.import_module("reconciler.runtime.native.network.network")
        except ImportError as exc:
            raise rterrors.Unavailable(
                "the native runtime is not available in this build",
                hint="use --runtime fake to exercise the reconciler without an engine",
            ) from exc
        from reconciler.runtime.native.config import NativeConfig

        config = NativeConfig(root=root, run_dir=run_dir or NativeConfig().run_dir,
                              name_prefix=name_prefix, oci_runtime=oci_runtime,
                              subnet_pool=os.environ.get("RECONCILER_SUBNET_POOL", NativeConfig.subnet_pool))
        native = backend.NativeRuntime(config, network=netmod.NetworkManager(config))
        if recover:
            from reconciler.runtime.native.containers import recovery

            recovery.recover(native)
        runtime: base.Runtime = native
        return runtime
    if name == "docker":
        from reconciler.runtime.docker import api as docker_api
        from reconciler.runtime.docker import backend as docker_backend
        from reconciler.runtime.docker import podman

        engine = docker_api.from_docker_host(os.environ.get("DOCKER_HOST"))
        try:
            on_podman = podman.is_podman(engine)
        except rterrors.Unavailable:
            on_podman = False               # said again, with its hint, by the first call of the pass
        # Podman's API needs reconciler's own healthcheck loop (podman.py)
        docker: base.Runtime = (podman.PodmanRuntime if on_podman else docker_backend.DockerRuntime)(engine=engine)
        return docker
    if name == "swarm":
        from reconciler.runtime.swarm import backend as swarm_backend

        swarm: base.Runtime = swarm_backend.SwarmRuntime.from_docker_host(os.environ.get("DOCKER_HOST"))
        return swarm
    raise rterrors.InvalidArgument(f"unknown runtime {name!r}", hint=f"choose one of {', '.join(RUNTIMES)}")


@contextmanager
def session(runtime: base.Runtime, *, supervise: bool = True, poll: float = 0.2) -> Iterator[base.Runtime]:
    """Run the engine's supervision loops (if it has any and `supervise`) while the pass runs;
    close the runtime after. `reconcile diff` opens a session without them: it changes nothing."""
    stop = threading.Event()
    threads = []
    if supervise and isinstance(runtime, base.Supervised):
        # as dockerd does at start: containers that are down (after a reboot, a crash) and that
        # their restart policy runs again start now, before the pass observes, instead of racing
        # the restart loop
        try:
            runtime.restart_manager.boot()
        except Exception:  # noqa: BLE001 - the pass will see what is down and say so
            import structlog

            structlog.get_logger("reconciler.execution").warning("restart at engine start failed", exc_info=True)
        loops: dict[str, base.SupervisionLoop] = {"health_checker": runtime.health_checker,
                                                  "restart_manager": runtime.restart_manager}
        for part, loop in loops.items():
            t = threading.Thread(target=loop.watch, args=(stop,), kwargs={"poll": poll},
                                 name=f"reconcile-{part}", daemon=True)
            t.start()
            threads.append(t)
    try:
        yield runtime
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        runtime.close()
