"""Entry point of the `reconcile` command.

Exit codes (documented in the README):
  0  success (converged, valid, in sync)
  1  failure at run time (some actions failed; drift found for `diff`)
  2  invalid input or usage; nothing was changed
  3  a file system the engine writes is full or over quota (errors.DiskFull): free space, run again
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from reconciler import __version__

__all__ = ["main"]

# Subcommand modules, in the order `reconcile --help` lists them. Add a line when a command works.
COMMANDS: tuple[str, ...] = (
    "validate", "schema", "apply", "diff", "history", "lock",
    "run", "ps", "logs", "exec", "inspect", "start", "stop", "rm",
    "network", "pull", "images", "rmi", "image", "build", "push", "tag", "save", "load", "commit", "container", "volume",
    "agent", "status", "events", "rollback", "reconcile-now", "engine-api", "completion",
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DISK_FULL = 3


def build_parser(only: str | None = None, *, commands: Sequence[str] = COMMANDS) -> argparse.ArgumentParser:
    """The argument parser; with `only`, just that subcommand registers (its module alone is
    imported, which keeps `ps` or `logs` from paying for every other command's imports)."""
    parser = argparse.ArgumentParser(
        prog="reconcile",
        description="Declarative containers: converge this host to YAML manifests.",
        epilog="Exit codes: 0 success, 1 run-time failure (or drift for diff), 2 invalid input or usage, "
        "3 a file system the engine writes is full (free space, then run again).",
    )
    parser.add_argument("--version", action="version", version=f"reconcile {__version__}")
    parser.add_argument(
        "--log-level", default="warning", choices=("debug", "info", "warning", "error"),
        help="log verbosity (logs go to stderr; JSON lines when stderr is not a terminal)",
    )
    parser.add_argument("--log-json", action="store_true", default=None, help="force JSON log lines")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in (only,) if only else commands:
        module = importlib.import_module(f"reconciler.cli.cmd_{name.replace('-', '_')}")
        module.register(subparsers)
    return parser


def _rewrite_once(argv: list[str]) -> list[str]:
    """`reconcile --once SOURCE` is the documented alias of `reconcile apply SOURCE`."""
    if "--once" in argv and "apply" in COMMANDS:
        i = argv.index("--once")
        return [*argv[:i], "apply", *argv[i + 1 :]]
    return argv


def _command_of(argv: list[str]) -> str | None:
    """The subcommand named on the command line, if it is a known one."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--log-level":
            skip = True
        elif not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def _report(exc: Any) -> int:
    """Print a ReconcilerError (its hint and notes too) on stderr; its exit code."""
    print(f"error: {exc}", file=sys.stderr)
    return int(exc.exit_code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the process exit code."""
    args_list = _rewrite_once(list(sys.argv[1:] if argv is None else argv))
    command = _command_of(args_list)
    bare_version = command is None and "--version" in args_list and not {"-h", "--help"} & set(args_list)
    parser = build_parser(command, commands=() if bare_version else COMMANDS)
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse exits 2 on usage errors and 0 on --help/--version
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from reconciler.cli import options

    options.resolve(args)
    from reconciler.errors import ReconcilerError
    from reconciler.logs import configure_logging

    if not getattr(args, "no_logging", False):   # read-only commands (ps, logs) skip structlog's 0.1 s+
        configure_logging(level=args.log_level, json=args.log_json)
    try:
        return int(args.run(args))
    except ReconcilerError as exc:
        return _report(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:   # a full disk is an error like any, wherever it hit (OSError, sqlite3)
        from reconciler import diskfull

        full = diskfull.translate(exc, f"running `reconcile {args.command}`", getattr(args, "root", None))
        if full is None:
            raise
        return _report(full)
