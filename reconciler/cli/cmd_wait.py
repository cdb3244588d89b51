"""`reconcile wait NAME...`: block until each container stops, then print its exit code, as
`docker wait` does: one line per container, in the order named, at once for one that does not
run (created: 0; exited: its code); one not found is said on stderr and the others are waited
for (exit 1). Reads only: on a state root without an engine every name is not found, nothing is
made."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import engines, options

    parser = subparsers.add_parser("wait", help="block until containers stop, then print their exit codes",
                                   description="Block until each container stops (at once for one that does not "
                                   "run), then print its exit code, one line each, as docker wait.")
    options.add_engine_options(parser)
    engines.add_runtime_flag(parser, "wait")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.set_defaults(run=run, no_logging=True)   # prints data only; structlog not needed


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import cmd_ps, engines

    native = engines.is_native(args)

    def wait(rt: Any, name: str) -> str:
        if not native:
            return str(rt.wait_container(name))
        looks = list(rt.wait_condition(name, "not-running"))      # None at each look, then the code
        return str(looks[-1])
    return cmd_ps.for_each_container(args, "wait", wait, read_only=True)
