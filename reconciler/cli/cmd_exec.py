"""`reconcile exec [-i] [-t] NAME CMD...`: run a command in a running container.

The command's stdio is ours (with `-t` a pseudo-terminal), and its exit code is ours.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import options

    parser = subparsers.add_parser("exec", help="run a command in a running container",
                                   description="Run a command in a running container; exits with its exit code.")
    options.add_engine_options(parser)
    parser.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    parser.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("argv", nargs=argparse.REMAINDER, metavar="COMMAND")
    parser.set_defaults(run=run, no_logging=True)   # prints data only; structlog not needed


def run(args: argparse.Namespace) -> int:
    import subprocess

    from reconciler.cli import cmd_ps
    from reconciler.runtime import errors
    from reconciler.runtime.native.containers import execs

    if not args.argv:
        raise errors.InvalidArgument("exec needs a command", hint="reconcile exec NAME CMD [ARG...]")
    rt = cmd_ps.open_runtime(args)
    cmd, process_file = execs.exec_argv(rt.containers, args.container, args.argv, tty=args.tty)
    try:
        stdin = None if args.interactive or args.tty else subprocess.DEVNULL
        return subprocess.run(cmd, stdin=stdin, check=False).returncode
    finally:
        process_file.unlink(missing_ok=True)
