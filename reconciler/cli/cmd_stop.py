"""`reconcile stop [-t SECONDS] NAME...`: stop containers (stop signal, timeout, then SIGKILL)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import engines, options

    parser = subparsers.add_parser("stop", help="stop containers",
                                   description="Send the stop signal, wait, then SIGKILL.")
    options.add_engine_options(parser)
    engines.add_runtime_flag(parser, "stop")
    parser.add_argument("-t", "--time", type=float, default=None,
                        help="seconds to wait before SIGKILL (default: the container's stop timeout, 10)")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.set_defaults(run=run, no_logging=True)   # set up below only if networking is involved


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import cmd_ps

    return cmd_ps.for_each_container(args, "stop", lambda rt, name: rt.stop_container(name, timeout=args.time))
