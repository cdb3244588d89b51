"""Entry point of the `reconcile` command.

Exit codes (documented in the README):
  0  success (converged, valid, in sync)
  1  failure at run time (some actions failed; drift found for `diff`)
  2  invalid input or usage; nothing was changed
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from reconciler import __version__

__all__ = ["main"]

# Subcommand modules, in the order `reconcile --help` lists them. Add a line when a command works.
COMMANDS: tuple[str, ...] = ("validate", "schema", "apply", "diff", "history", "run", "ps", "logs", "exec", "inspect", "start", "stop", "rm", "network", "pull", "images", "rmi", "image", "agent", "status", "events", "rollback", "reconcile-now", "build", "push", "tag", "lock")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (every subcommand registers its own arguments)."""
    parser = argparse.ArgumentParser(
        prog="reconcile",
        description="Declarative containers: converge this host to YAML manifests.",
        epilog="Exit codes: 0 success, 1 run-time failure (or drift for diff), 2 invalid input or usage.",
    )
    parser.add_argument("--version", action="version", version=f"reconcile {__version__}")
    parser.add_argument(
        "--log-level", default="warning", choices=("debug", "info", "warning", "error"),
        help="log verbosity (logs go to stderr; JSON lines when stderr is not a terminal)",
    )
    parser.add_argument("--log-json", action="store_true", default=None, help="force JSON log lines")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"reconciler.cli.cmd_{name.replace('-', '_')}")
        module.register(subparsers)
    return parser


def _rewrite_once(argv: list[str]) -> list[str]:
    """`reconcile --once SOURCE` is the documented alias of `reconcile apply SOURCE`."""
    if "--once" in argv and "apply" in COMMANDS:
        i = argv.index("--once")
        return [*argv[:i], "apply", *argv[i + 1 :]]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the process exit code."""
    args_list = _rewrite_once(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse exits 2 on usage errors and 0 on --help/--version
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from reconciler.errors import ReconcilerError
    from reconciler.logs import configure_logging

    if not getattr(args, "no_logging", False):   # read-only commands (ps, logs) skip structlog's 0.1 s+
        configure_logging(level=args.log_level, json=args.log_json)
    try:
        return int(args.run(args))
    except ReconcilerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
