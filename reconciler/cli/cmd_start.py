"""`reconcile start NAME...`: start created or stopped containers (on Swarm: run a job that is
over again, `SwarmRuntime.run_again`)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import engines, options

    parser = subparsers.add_parser("start", help="start containers", description="Start one or more containers.")
    options.add_engine_options(parser)
    engines.add_runtime_flag(parser, "start")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.set_defaults(run=run, no_logging=True)   # set up below only if networking is involved


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import cmd_ps

    if args.runtime == "swarm":     # a service runs from its creation on; a job that is over runs again
        return cmd_ps.for_each_container(args, "start", lambda rt, name: rt.run_again(name))
    return cmd_ps.for_each_container(args, "start", lambda rt, name: rt.start_container(name))
