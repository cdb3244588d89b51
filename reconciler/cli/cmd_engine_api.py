"""`reconcile engine-api`: serve a Docker-compatible Engine API for the native engine.

For hosts without an agent: `docker`, docker-py, docker-compose and friends pointed at the
socket (`DOCKER_HOST=unix:///run/reconciler/docker.sock`) see and drive the native engine's
containers, the same ones `reconcile ps` shows. Runs in the foreground until SIGTERM/SIGINT,
with the engine's restart-policy and healthcheck loops.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import options

    parser = subparsers.add_parser(
        "engine-api", help="serve a Docker-compatible Engine API for the native engine",
        description="Serve the Docker Engine API (v1.41 paths, versioned and not) on a Unix socket, as a view "
        "of the native engine: docker ps / run -d / logs / stop / rm and docker-py work against it.")
    options.add_engine_options(parser)
    parser.add_argument("--socket", default=None, metavar="PATH",
                        help="the socket to serve (default: <run-dir>/docker.sock), mode 0660")
    parser.add_argument("--group", default=None, help="group that owns the socket (like the docker group)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import grp
    from pathlib import Path

    from reconciler._dataclass import replace
    from reconciler.api.engine import EngineApi
    from reconciler.cli import engines
    from reconciler.errors import TemporaryError, TerminalError
    from reconciler.execution import locking, stopping
    from reconciler.execution.backends import session
    from reconciler.runtime import opening

    try:
        with locking.store_lock(args.root):     # not beside an agent: two engines' supervisors on one root
            pass
    except (TemporaryError, TerminalError) as exc:      # another pass (1), an agent (2: usage)
        raise type(exc)(f"{exc.message}; it serves the Engine API itself",
                        hint="add `engine_api: {}` to the agent's config (socket <run-dir>/docker.sock)") from exc
    path = Path(args.socket) if args.socket else Path(args.run_dir) / "docker.sock"
    gid = grp.getgrnam(args.group).gr_gid if args.group else None
    # a long-lived engine, as the agent's: its pulls run in a helper process (images/aside.py)
    runtime = opening.open_runtime("native", replace(engines.place(args), pull_aside=True))
    stop = stopping.Stopper(after="the requests in flight")
    with stop, session(runtime):
        api = EngineApi(runtime, path, group=gid)
        api.start()
        print(f"serving the Docker Engine API on unix://{path}", flush=True)
        try:
            while not stop.sleep(3600):
                pass
        finally:
            api.stop()
    return 0
