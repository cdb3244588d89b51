"""Finding the running agent for status/events/rollback/reconcile-now (stdlib only)."""

from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = ["add_socket_flag", "client"]


def add_socket_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--socket", default=None,
                        help="the agent's API socket (default: $RECONCILER_SOCKET, the socket named in "
                        "<root>/agent.json, or /run/reconciler/reconciler.sock)")


def client(args: argparse.Namespace) -> Any:
    """An ApiClient for the agent these options name (it may not be running)."""
    import json
    from pathlib import Path

    from reconciler.api import client as api_client

    path = args.socket or os.environ.get("RECONCILER_SOCKET")
    root = getattr(args, "root", None)
    if not path and root:
        try:
            path = json.loads((Path(root) / "agent.json").read_text()).get("socket")
        except (OSError, ValueError):
            path = None
    return api_client.ApiClient(path or api_client.DEFAULT_SOCKET)
