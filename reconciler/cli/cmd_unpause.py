"""`reconcile unpause NAME...`: thaw paused containers, as `docker unpause` (cmd_pause.py)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import cmd_pause

    cmd_pause.add(subparsers, "unpause", "unpause all processes within containers",
                  "Thaw every process of each paused container, as docker unpause.")


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import cmd_pause

    return cmd_pause.unpause(args)
