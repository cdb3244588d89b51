"""`reconcile start NAME...`: start created or stopped containers (on Swarm: run a job that is
over again, `SwarmRuntime.run_again`); `start -a [-i] NAME` attached, as `docker start -a`
(cmd_attach.start_attached)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import cmd_attach, engines, options

    parser = subparsers.add_parser("start", help="start containers",
                                   description="Start one or more containers; with -a (or -i) one, attached "
                                               "before it starts, as docker start -a: exit with its exit code.")
    options.add_engine_options(parser)
    engines.add_runtime_flag(parser, "start")
    parser.add_argument("-a", "--attach", action="store_true",
                        help="attach its output (and signals) before it starts; exit with its exit code")
    parser.add_argument("-i", "--interactive", action="store_true", help="attach stdin too (implies -a)")
    cmd_attach.add_detach_keys(parser)
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.set_defaults(run=run, no_logging=True)   # set up below only if networking is involved


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import cmd_ps

    if args.attach or args.interactive:
        from reconciler.cli import cmd_attach

        return cmd_attach.start_attached(args)
    if args.runtime == "swarm":     # a service runs from its creation on; a job that is over runs again
        return cmd_ps.for_each_container(args, "start", lambda rt, name: rt.run_again(name))
    return cmd_ps.for_each_container(args, "start", lambda rt, name: rt.start_container(name))
