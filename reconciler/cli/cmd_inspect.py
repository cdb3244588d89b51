"""`reconcile inspect NAME...`: containers in detail, as a JSON array like `docker inspect`."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import options

    parser = subparsers.add_parser("inspect", help="show containers in detail (JSON)",
                                   description="Show containers in detail, as a JSON array.")
    options.add_engine_options(parser)
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.set_defaults(run=run, no_logging=True)   # prints data only; structlog not needed


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from reconciler.cli import cmd_ps, options
    from reconciler.runtime import errors
    from reconciler.runtime.native import inspection

    store = cmd_ps.open_records(args) if options.engine_exists(args) else None
    docs: list[dict[str, Any]] = []
    rc = 0
    for name in args.containers:
        try:
            if store is None:
                raise errors.NotFound(f"no such container: {name}")
            docs.append(inspection.document(store, store.get(name)))
        except errors.NotFound as exc:
            print(f"error: {exc}", file=sys.stderr)
            rc = 1
    json.dump(docs, sys.stdout, indent=4)
    sys.stdout.write("\n")
    return rc
