"""`reconcile pause NAME...`: freeze every process of running containers (the cgroup freezer),
as `docker pause`; `reconcile unpause` (cmd_unpause.py) thaws them. Native engine only: the
docker runtime's users have `docker pause`."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    add(subparsers, "pause", "pause all processes within containers",
        "Freeze every process of each container (the cgroup freezer), as docker pause. A paused container "
        "is not converged: an agent's status reports it until `reconcile unpause`.")


def add(subparsers: Any, name: str, help_text: str, description: str) -> None:
    from reconciler.cli import options

    parser = subparsers.add_parser(name, help=help_text, description=description)
    options.add_engine_options(parser)
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.set_defaults(run=run if name == "pause" else unpause, no_logging=True)   # prints names only


def run(args: argparse.Namespace) -> int:
    return _each(args, freeze=True)


def unpause(args: argparse.Namespace) -> int:
    return _each(args, freeze=False)


def _each(args: argparse.Namespace, *, freeze: bool) -> int:
    from reconciler.cli import cmd_ps

    return cmd_ps.for_each_container(args, "pause" if freeze else "unpause",
                                     lambda rt, name: rt.containers.pause(name, freeze=freeze))
