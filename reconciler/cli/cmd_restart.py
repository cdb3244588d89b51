"""`reconcile restart [-t SECONDS] NAME...`: restart containers, as `docker restart` does: a running
one stopped (its stop signal, the timeout, then SIGKILL) and started again, a stopped one started;
an AutoRemove (`run --rm`) one is kept across it. Each name printed once restarted; one that
failed is said on stderr and the others go on (exit 1)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import engines, options

    parser = subparsers.add_parser("restart", help="restart containers",
                                   description="Stop each running container (its stop signal, the timeout, then "
                                   "SIGKILL) and start it again, as docker restart; a stopped one is started.")
    options.add_engine_options(parser)
    engines.add_runtime_flag(parser, "restart")
    parser.add_argument("-t", "--timeout", "--time", dest="time", type=float, default=None, metavar="SECONDS",
                        help="seconds to wait before SIGKILL (default: the container's stop timeout, 10)")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.set_defaults(run=run, no_logging=True)   # set up below only if networking is involved


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import cmd_ps

    return cmd_ps.for_each_container(args, "restart", lambda rt, name: restart(rt, name, args.time))


def restart(rt: Any, name: str, timeout: float | None) -> None:
    """The engine's own restart (base.Restarting), else a stop and a start (the fake engine)."""
    from reconciler.runtime import base

    if isinstance(rt, base.Restarting):
        rt.restart_container(name, timeout=timeout)
        return
    rt.stop_container(name, timeout=timeout)
    rt.start_container(name)
