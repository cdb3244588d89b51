"""`reconcile completion bash|zsh|fish`: the shell's hook for completion at TAB time.

Install with `reconcile completion bash > /etc/bash_completion.d/reconcile` (or
`source <(reconcile completion bash)` in ~/.bashrc); for zsh `reconcile completion zsh >
"${fpath[1]}/_reconcile"`; for fish `reconcile completion fish >
~/.config/fish/completions/reconcile.fish`. The hook (argcomplete's) runs `reconcile` itself to
answer, so commands, flags and choices come from the parser and never lag behind the CLI, and
the names of containers, images, volumes, networks and sources come from the host
(cli/completers.py).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["SHELLS", "register", "run", "script"]

SHELLS = ("bash", "zsh", "fish")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "completion", help="print a shell completion script (bash, zsh or fish)",
        description="Print the completion hook for bash, zsh or fish: it asks `reconcile` itself at TAB "
                    "time, for commands, flags and the host's container, image, volume, network and "
                    "source names.")
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    parser.set_defaults(run=run, no_logging=True)


def script(shell: str) -> str:
    from argcomplete.shell_integration import shellcode

    return str(shellcode(["reconcile"], shell=shell))


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(script(args.shell))
    return 0
