"""`reconcile kill [-s SIGNAL] NAME...`: send a signal to the main process of running containers,
as `docker kill` does (default KILL; a name, `SIGHUP`, `HUP` or a number). A KILL, or the
container's stop signal, counts as a stop by hand: its restart policy does not start it again
(`unless-stopped`, `always` until the engine's next start), as Docker's. Each name printed once
signalled; one not running or unknown is said on stderr and the others go on (exit 1)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import engines, options

    parser = subparsers.add_parser("kill", help="kill running containers",
                                   description="Send a signal (default KILL) to the main process of each "
                                   "running container, as docker kill.")
    options.add_engine_options(parser)
    engines.add_runtime_flag(parser, "kill")
    parser.add_argument("-s", "--signal", default="KILL", metavar="SIGNAL",
                        help="the signal: a name (KILL, SIGHUP, HUP) or a number (default: KILL)")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.set_defaults(run=run, no_logging=True)   # set up below only if networking is involved


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import cmd_ps

    return cmd_ps.for_each_container(args, "kill", lambda rt, name: rt.kill_container(name, args.signal))
