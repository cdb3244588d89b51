"""`reconcile load [-i FILE]`: images from a docker/podman save or OCI archive (stdin without -i).

Every digest is verified and every layer is unpacked by the same extractor, with the same
limits, as a pull: a hostile archive is treated like a hostile registry, and a refused one
leaves nothing behind.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import options

    parser = subparsers.add_parser(
        "load", help="load images from a tar archive (docker/podman save, OCI layout)",
        description="Load the images of an archive written by reconcile save, docker save, podman save "
        "or an OCI image layout tar (gzip or zstd compressed or not). Exit 0 loaded, 1 refused (nothing kept).")
    options.add_engine_options(parser)
    parser.add_argument("-i", "--input", metavar="FILE", default=None, help="read FILE instead of stdin")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only what was loaded")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from reconciler import imagenames
    from reconciler.cli import output
    from reconciler.cli.cmd_pull import open_store
    from reconciler.runtime import parts

    store = open_store(args)
    say = None if args.quiet else (lambda m: print(m, file=sys.stderr))
    with output.input_file(args.input) as f:
        loaded = parts.load_images(store, f, progress=say)
    for image in loaded:
        for tag in image.tags:
            print(f"Loaded image: {imagenames.familiar(tag)}")     # as docker load: x:a, not docker.io/x:a
        if not image.tags:
            print(f"Loaded image ID: {image.id}")
    return 0
