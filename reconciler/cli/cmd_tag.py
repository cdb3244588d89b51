"""`reconcile tag SOURCE TARGET`: give an image of the native store another name."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import options

    parser = subparsers.add_parser("tag", help="give an image another name",
                                   description="Create a tag TARGET that refers to the image SOURCE.")
    options.add_engine_options(parser)
    parser.add_argument("source", metavar="SOURCE", help="image reference or id")
    parser.add_argument("target", metavar="TARGET", help="new NAME[:TAG]")
    parser.set_defaults(run=run, no_logging=True)   # progress is printed; structlog not needed


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import cmd_pull
    from reconciler.runtime import parts

    parts.tag_image(cmd_pull.open_store(args), args.source, args.target)
    return 0
