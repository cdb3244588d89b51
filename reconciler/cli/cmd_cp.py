"""`reconcile cp [-a] [-L] [-q] CONTAINER:SRC DEST|-` and `reconcile cp [-a] [-L] [-q] SRC|- CONTAINER:DEST`:
copy files and directories between a container (running or stopped) and this host, as `docker
cp` does: where a copy lands follows docker's rules (runtime/pathcopy.py); `-` as DEST writes the
tar of SRC to stdout, as SRC reads a tar from stdin into the directory DEST; `-L` follows a
symlink SRC; `-a` gives what goes into the container its user's owner (without it the owners the
files have here; out of a container they are the copying user's). On a terminal it says
`Successfully copied 2.05kB to DEST` (the bytes of tar moved) on stderr, unless -q. Errors exit 1.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import engines, options

    parser = subparsers.add_parser("cp", help="copy files/folders between a container and the local filesystem",
                                   description="Copy files/folders between a container (running or stopped) and "
                                   "the local file system, as docker cp: CONTAINER:SRC DEST, or SRC CONTAINER:DEST; "
                                   "- as DEST streams a tar of SRC to stdout, - as SRC unpacks a tar from stdin "
                                   "into the directory DEST.")
    options.add_engine_options(parser)
    engines.add_runtime_flag(parser, "cp")
    parser.add_argument("-a", "--archive", action="store_true",
                        help="archive mode: what is copied into the container is owned by its user (default: the "
                        "owners the files have here)")
    parser.add_argument("-L", "--follow-link", action="store_true", help="always follow a symlink in SRC")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="say nothing once copied (the default when stdout is not a terminal)")
    parser.add_argument("source", metavar="SRC", help="CONTAINER:PATH, a local path, or - (a tar on stdin)")
    parser.add_argument("destination", metavar="DEST", help="CONTAINER:PATH, a local path, or - (a tar on stdout)")
    parser.set_defaults(run=run, no_logging=True)


def run(args: argparse.Namespace) -> int:
    import sys

    from reconciler import printing
    from reconciler.cli import engines, options
    from reconciler.runtime import errors, pathcopy

    src_container, src = pathcopy.split_arg(args.source)
    dst_container, dst = pathcopy.split_arg(args.destination)
    problem = ("source can not be empty" if not args.source else "destination can not be empty" if not args.destination
               else "copying between containers is not supported" if src_container and dst_container
               else "must specify at least one container source" if not (src_container or dst_container) else None)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        print("  hint: reconcile cp CONTAINER:SRC DEST, or reconcile cp SRC CONTAINER:DEST", file=sys.stderr)
        return 1
    container = src_container or dst_container
    if engines.is_native(args) and not options.engine_exists(args):        # makes no engine
        engines.check(args, "cp")
        print(f"error: No such container: {container}", file=sys.stderr)
        return 1
    rt = engines.open_runtime(args, "cp")
    try:
        if src_container:
            moved, where = pathcopy.copy_from(rt, container, src, dst, follow_link=args.follow_link,
                                              out=sys.stdout.buffer)
        else:
            moved, where = pathcopy.copy_to(rt, container, src, dst, follow_link=args.follow_link,
                                            copy_uid_gid=args.archive, stdin=sys.stdin.buffer)
    except errors.RuntimeBackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        rt.close()
    if where != "-" and not args.quiet and sys.stdout.isatty():
        print(f"Successfully copied {printing.human_size(moved)} to {where}", file=sys.stderr)
    return 0
