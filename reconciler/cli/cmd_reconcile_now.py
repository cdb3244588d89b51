"""`reconcile reconcile-now [SOURCE]`: ask the running agent for a pass now and wait for it."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import _agentapi, options, output

    parser = subparsers.add_parser("reconcile-now", help="make the agent reconcile now (and wait)",
                                   description="Trigger a pass of SOURCE (default: every source) and wait.")
    options.add_engine_options(parser)
    _agentapi.add_socket_flag(parser)
    parser.add_argument("source", metavar="SOURCE", nargs="?", help="the source's name (default: all)")
    parser.add_argument("--no-wait", action="store_true", help="return once triggered")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (default: 300)")
    output.add_output_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import _agentapi, output

    doc = _agentapi.client(args).post("/v1/reconcile", {"source": args.source, "wait": not args.no_wait,
                                                        "timeout": args.timeout}, timeout=args.timeout + 30)
    if output.wants_data(args):
        output.print_data(doc, args.output)
    bad = False
    for s in doc["sources"]:
        bad = bad or bool(s["error"] or s["failures"])
        if not output.wants_data(args):
            print(f"{s['name']}: {s['last_result'] or '-'} revision {(s['revision'] or '-')[:12]}"
                  + (f"\n  error: {s['error']}" if s["error"] else ""))
    return 1 if bad else 0
