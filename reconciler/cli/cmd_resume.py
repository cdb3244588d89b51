"""`reconcile resume [SOURCE...]`: the running agent reconciles these suspended sources again
(default: every one), as `flux resume` does: a pass runs at once. See cmd_suspend.py for what a
suspend is, what resume also does (it ends a rollback's pin) and the exit codes."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import cmd_suspend

    parser = subparsers.add_parser(
        "resume", help="let the agent reconcile suspended sources again",
        description="Resume SOURCE (default: every source of the running agent), as `flux resume`: a pass runs "
        "at once; as the API's resume, it also ends a rollback's pin (`rollback --resume`) and forgets the "
        "flapping of its containers. A source whose config says `suspend: true` is suspended again by a reload "
        "or restart of the agent. Exit 0 resumed (or not suspended), 1 no agent answers for the root, 2 a "
        "source the agent does not have (nothing changed).")
    cmd_suspend.add_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import cmd_suspend

    return cmd_suspend.act(args, suspend=False)
