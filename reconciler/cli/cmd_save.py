"""`reconcile save IMAGE... [-o FILE] [--format docker-archive|oci-archive]`: images to a tar.

The default format is what `docker save` writes (manifest.json + an OCI layout), which
`docker load`, `podman load` and `reconcile load` all take; layers go out as stored. Without
`-o` the archive goes to stdout (refused when stdout is a terminal, as docker does).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import options

    parser = subparsers.add_parser(
        "save", help="write images to a tar archive (docker save format)",
        description="Write one or more images, with their tags, to a tar archive that docker load, "
        "podman load and reconcile load take. Exit 0 written, 1 an image is missing or the write failed.")
    options.add_engine_options(parser)
    parser.add_argument("-o", "--output", metavar="FILE", default=None,
                        help="write to FILE (atomically: a failed save leaves no file) instead of stdout")
    parser.add_argument("--format", default="docker-archive", choices=("docker-archive", "oci-archive"),
                        help="docker-archive (default; docker/podman load) or oci-archive (an OCI image layout)")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image references or ids")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import output
    from reconciler.cli.cmd_pull import open_store
    from reconciler.runtime import parts

    store = open_store(args)
    for ref in args.images:        # every name checked before anything is written
        store.get(ref)
    say = (lambda m: print(m, file=sys.stderr)) if sys.stderr.isatty() else None
    with output.output_file(args.output) as out:
        parts.save_images(store, args.images, out, fmt=args.format, progress=say)
    return 0
