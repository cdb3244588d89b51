"""`reconcile rmi IMAGE...`: untag and remove images (shared layers stay), like `docker rmi`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import options

    parser = subparsers.add_parser("rmi", help="remove images",
                                   description="Remove images; layers other images use are kept.")
    options.add_engine_options(parser)
    parser.add_argument("-f", "--force", action="store_true",
                        help="remove an image with several tags; untag one containers use (by id: not while one "
                             "runs)")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="reference, id or id prefix")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import cmd_pull
    from reconciler.errors import ReconcilerError

    store = cmd_pull.open_store(args)
    status = 0
    for ref in args.images:
        try:
            for line in store.remove(ref, force=args.force):
                print(line)
        except ReconcilerError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            status = 1
    return status
