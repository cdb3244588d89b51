"""Finding the running agent for status/events/rollback/reconcile-now, and asking the agent of a
state root what it already knows (`served`: ps), stdlib only."""

from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = ["add_socket_flag", "client", "served"]


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


def served(args: argparse.Namespace, path: str, body: Any = None, *, timeout: float = 30.0,
           **query: Any) -> Any | None:
    """What the agent that holds the state root `args.root` answers to GET `path` (POST with
    `body`, if any), or None when
    no agent runs there (no `<root>/agent.json`, or nobody answers on its socket) or it does not
    serve that (an older agent, another engine): the command then reads the root itself.

    The client–server split (#21): while an agent runs, a read-only command is a thin client
    of it, loading no engine code and opening no database.
    """
    import json
    from pathlib import Path

    try:
        socket_path = json.loads((Path(args.root) / "agent.json").read_text())["socket"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    import urllib.parse

    from reconciler.api import thin

    q = {k: v for k, v in query.items() if v is not None}
    try:
        status, doc = thin.request(str(socket_path), "GET" if body is None else "POST",
                                   path + (f"?{urllib.parse.urlencode(q)}" if q else ""), body, timeout=timeout)
    except (OSError, ValueError):
        return None
    if status in (404, 409):
        return None
    if status >= 400:
        from reconciler.api import errors

        raise errors.from_status(status, str(doc.get("error") if isinstance(doc, dict) else doc),
                                 doc.get("hint") if isinstance(doc, dict) else None)
    return doc
