"""`reconcile push NAME[:TAG] [DEST]`: push an image of the native store to its registry.

The stored manifest, config and layers go out byte for byte (blobs the registry has are
skipped), so the registry's digest is the one `reconcile images --digests` shows.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import options

    parser = subparsers.add_parser("push", help="push an image to a registry",
                                   description="Push an image of the native engine to a registry.")
    options.add_engine_options(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the digest")
    parser.add_argument("ref", metavar="NAME[:TAG]", help="the image to push (its name says the registry)")
    parser.add_argument("dest", nargs="?", default=None, metavar="DEST",
                        help="push under this reference instead (it is tagged locally too)")
    parser.set_defaults(run=run, no_logging=True)   # progress is printed; structlog not needed


def run(args: argparse.Namespace) -> int:
    import threading

    from reconciler.cli import cmd_pull
    from reconciler.runtime import parts

    store = cmd_pull.open_store(args)
    lock = threading.Lock()

    def say(line: str) -> None:
        # the layers' lines come from the upload threads: each written whole (print writes the
        # line and its newline apart, and two threads' lines ran into each other)
        with lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    digest = parts.push_image(store, args.ref, args.dest, progress=None if args.quiet else say)
    if args.quiet:
        sys.stdout.write(digest + "\n")
    return 0
