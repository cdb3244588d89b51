"""`reconcile logs NAME`: a container's output, as `docker logs` prints it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import options

    parser = subparsers.add_parser("logs", help="print a container's logs",
                                   description="Print a container's stdout and stderr (stderr lines go to stderr).")
    options.add_engine_options(parser)
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing until the container stops")
    parser.add_argument("--since", help="only lines since this time (RFC 3339, Unix time, or 10m / 1h30m ago)")
    parser.add_argument("-n", "--tail", default="all", help='number of lines from the end (default "all")')
    parser.add_argument("-t", "--timestamps", action="store_true", help="prefix each line with its time")
    parser.set_defaults(run=run, no_logging=True)   # prints data only; structlog not needed


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import cmd_ps, options
    from reconciler.runtime import errors

    tail: int | None = None
    if args.tail != "all":
        try:
            tail = int(args.tail)
        except ValueError:
            raise errors.InvalidArgument(f"--tail must be a number or 'all', not {args.tail!r}") from None
    if not options.engine_exists(args):
        raise errors.NotFound(f"no such container: {args.container}")
    out, err = sys.stdout.buffer, sys.stderr.buffer
    for line in cmd_ps.open_records(args).logs(args.container, follow=args.follow, since=args.since, tail=tail):
        stream = err if line.stream == "stderr" else out
        if args.timestamps:
            stream.write(line.time.encode() + b" ")
        stream.write(line.data + b"\n")
        if args.follow:
            stream.flush()
    out.flush()
    return 0
