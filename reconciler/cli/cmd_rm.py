"""`reconcile rm [-f] NAME...`: remove containers (their rootfs, logs and runtime state)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import engines, options

    parser = subparsers.add_parser("rm", help="remove containers",
                                   description="Remove containers; named volumes are kept.")
    options.add_engine_options(parser)
    engines.add_runtime_flag(parser, "rm")
    parser.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.set_defaults(run=run, no_logging=True)   # set up below only if networking is involved


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import cmd_ps

    return cmd_ps.for_each_container(args, "rm", lambda rt, name: rt.remove_container(name, force=args.force))
