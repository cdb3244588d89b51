"""Finding the running agent for status/events/rollback/reconcile-now, and asking the agent of a
state root what it already knows (`served`: ps), stdlib only."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["add_socket_flag", "client", "served", "streamed"]


def add_socket_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--socket", default=None,
                        help="the agent's API socket (default: $RECONCILER_SOCKET, the socket named in "
                        "<root>/agent.json, or /run/reconciler/reconciler.sock)")


def socket_path(args: argparse.Namespace) -> str:
    """The API socket of the agent these options name (it may not be running): --socket,
    $RECONCILER_SOCKET, the one `<root>/agent.json` names, or the default."""
    from reconciler.api.thin import DEFAULT_SOCKET

    return args.socket or os.environ.get("RECONCILER_SOCKET") or _agent_socket(args) or DEFAULT_SOCKET


def client(args: argparse.Namespace) -> Any:
    """An ApiClient for the agent these options name (it may not be running)."""
    from reconciler.api import client as api_client

    return api_client.ApiClient(socket_path(args))


def served(args: argparse.Namespace, path: str, body: Any = None, *, timeout: float = 30.0,
           **query: Any) -> Any | None:
    """What the agent that holds the state root `args.root` answers to GET `path` (POST with
    `body`, if any), or None when
    no agent runs there (no `<root>/agent.json`, or nobody answers on its socket) or it does not
    serve that (an older agent, another engine): the command then reads the root itself.

    The client–server split (#21): while an agent runs, a command it can answer is a thin
    client of it, loading no engine code and opening no database.
    """
    from reconciler.api import thin

    socket_path = _agent_socket(args)
    if socket_path is None:
        return None
    try:
        status, doc = thin.request(socket_path, "GET" if body is None else "POST", _path(path, query), body,
                                   timeout=timeout)
    except (OSError, ValueError):
        return None
    # any refusal (no such path or container, another engine, a bad argument, an agent's
    # failure): the command does it itself, and says what is wrong in its own words
    return None if status >= 400 else doc


def streamed(args: argparse.Namespace, path: str, *, timeout: float | None = None,
             **query: Any) -> Iterator[Any] | None:
    """The JSON lines the agent that holds `args.root` streams for GET `path` (logs), as they
    come (`timeout`: the longest wait for the next bytes); None as for `served`."""
    from reconciler.api import thin

    socket_path = _agent_socket(args)
    if socket_path is None:
        return None
    try:
        status, values = thin.stream(socket_path, _path(path, query), timeout=timeout)
    except (OSError, ValueError):
        return None
    if status != 200:
        values.close()
        return None
    return values


def _agent_socket(args: argparse.Namespace) -> str | None:
    """The API socket of the agent that holds the state root `args.root`, if it says it runs."""
    import json
    from pathlib import Path

    if not getattr(args, "root", None):
        return None
    try:
        return str(json.loads((Path(args.root) / "agent.json").read_text())["socket"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _path(path: str, query: dict[str, Any]) -> str:
    import urllib.parse

    q = {k: v for k, v in query.items() if v is not None}
    return path + (f"?{urllib.parse.urlencode(q)}" if q else "")
