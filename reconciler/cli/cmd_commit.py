"""`reconcile commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]`: a container's changes as an image."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import options

    parser = subparsers.add_parser(
        "commit", help="create an image from a container's changes",
        description="Turn what a native container changed in its root filesystem into a new layer on top "
        "of its image (volume data is not included), like docker commit. Prints the new image id.")
    options.add_engine_options(parser)
    parser.add_argument("-c", "--change", action="append", default=[], metavar="INSTRUCTION",
                        help="apply a Dockerfile instruction to the config (CMD, ENTRYPOINT, ENV, EXPOSE, "
                             "LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL, HEALTHCHECK, SHELL, ONBUILD); repeatable")
    parser.add_argument("-m", "--message", default="", help="commit message (in the image history)")
    parser.add_argument("-a", "--author", default="", help='author (e.g. "Jane <jane@example.org>")')
    parser.add_argument("-p", "--pause", action=argparse.BooleanOptionalAction, default=True,
                        help="pause a running container while its changes are read (default: on)")
    parser.add_argument("container", metavar="CONTAINER", help="container name or id")
    parser.add_argument("ref", metavar="REPOSITORY[:TAG]", nargs="?", default=None, help="tag for the new image")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import engines
    from reconciler.cli.cmd_pull import open_store
    from reconciler.runtime import parts

    image_id = parts.commit_container(engines.place(args), open_store(args), args.container, args.ref,
                                      changes=args.change, message=args.message, author=args.author,
                                      pause=args.pause)
    print(image_id)
    return 0
