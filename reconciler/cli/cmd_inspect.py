"""`reconcile inspect NAME...`: containers in detail, as a JSON array like `docker inspect` (or YAML)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import options, output

    parser = subparsers.add_parser("inspect", help="show containers in detail (JSON or YAML)",
                                   description="Show containers in detail, as a JSON array (or YAML with -o yaml).")
    options.add_engine_options(parser)
    output.add_output_flag(parser, table=False)
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.set_defaults(run=run, no_logging=True)   # prints data only; structlog not needed


def run(args: argparse.Namespace) -> int:
    import sys

    from reconciler.cli import cmd_ps, output
    from reconciler.runtime import errors

    rt = cmd_ps.open_runtime(args)
    docs: list[dict[str, Any]] = []
    rc = 0
    for name in args.containers:
        try:
            docs.append(rt.inspect_document(name))
        except errors.NotFound as exc:
            print(f"error: {exc}", file=sys.stderr)
            rc = 1
    output.print_data(docs, args.output)
    return rc
