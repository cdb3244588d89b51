"""`reconcile rename NAME NEW_NAME`: give a container another name, as `docker rename` does (a
running one keeps running; on the native engine its peers' hosts files and DNS answers follow).
Prints nothing; a name taken, invalid or the container's own is an error (exit 1), as docker's."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import engines, options

    parser = subparsers.add_parser("rename", help="rename a container",
                                   description="Give a container another name, as docker rename; a running one "
                                   "keeps running.")
    options.add_engine_options(parser)
    engines.add_runtime_flag(parser, "rename")
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("new_name", metavar="NEW_NAME")
    parser.set_defaults(run=run, no_logging=True)   # set up below only if networking is involved


def run(args: argparse.Namespace) -> int:
    import sys

    from reconciler.cli import cmd_ps, engines
    from reconciler.runtime import errors

    rt = engines.open_runtime(args, "rename")
    try:
        if engines.is_native(args):
            cmd_ps.setup_logging_if_networked(args, rt, [args.container])
        current = rt.inspect_container(args.container).name
        if current == args.new_name.lstrip("/"):
            raise errors.InvalidArgument("Renaming a container with the same name as its current name",
                                         hint="give it a name it does not have")
        rt.rename_container(args.container, args.new_name)
    except errors.RuntimeBackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1                # docker rename's exit code, whatever went wrong
    finally:
        rt.close()
    return 0
