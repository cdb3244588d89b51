"""`reconcile rollback SOURCE [REVISION]`: pin a source to an older converged revision.

The agent re-applies the revision (default: the newest converged one older than what is
applied) and keeps it until `reconcile rollback --resume SOURCE`, which follows the source
again. Needs a running agent: it keeps the revisions' snapshots.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import _agentapi, options, output

    parser = subparsers.add_parser("rollback", help="re-apply an earlier revision of a source (agent)",
                                   description="Pin SOURCE to an earlier converged revision; --resume unpins.")
    options.add_engine_options(parser)
    _agentapi.add_socket_flag(parser)
    parser.add_argument("source", metavar="SOURCE", help="the source's name in the agent config")
    parser.add_argument("revision", metavar="REVISION", nargs="?", help="a revision id (prefix); default: previous")
    parser.add_argument("--resume", action="store_true", help="end the pin: follow the source again")
    output.add_output_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import _agentapi, output

    api = _agentapi.client(args)
    if args.resume:
        doc = api.post(f"/v1/sources/{args.source}", {"suspend": False})
        print(f"{args.source}: following the source again") if args.output != "json" else output.print_json(doc)
        return 0
    doc = api.post("/v1/rollback", {"source": args.source, "revision": args.revision}, timeout=330)
    if args.output == "json":
        output.print_json(doc)
    else:
        st = doc["status"]
        print(f"{args.source}: pinned to {doc['pinned'][:12]} (was {(doc['previous'] or '-')[:12]}): "
              f"{st['last_result']}")
        print(f"hint: {doc['hint']}")
    return 0 if doc["status"]["last_result"] in ("converged", "in-sync") else 1
