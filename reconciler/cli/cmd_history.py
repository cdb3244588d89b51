"""`reconcile history`: the passes that changed something or failed, newest first."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import cmd_apply, output

    parser = subparsers.add_parser(
        "history", help="list the revisions applied (time, result, changes)",
        description="List the passes that changed something or failed, newest first.",
    )
    cmd_apply.add_common_flags(parser, source=False)
    parser.add_argument("-n", "--limit", type=int, default=20, help="how many passes (default: 20)")
    output.add_output_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import time

    from reconciler.cli import cmd_apply, output
    from reconciler.state import history

    passes = history.HistoryStore(cmd_apply.open_db(args), args.owner).list(limit=args.limit)
    if args.output == "json":
        output.print_json([
            {"id": p.id, "revision": p.revision, "source": p.source, "started_at": p.started_at,
             "finished_at": p.finished_at, "result": p.result, "counts": dict(p.counts),
             "changes": list(p.changes)}
            for p in passes
        ])
        return 0
    rows = [
        {"id": p.id, "time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(p.started_at)),
         "revision": p.revision[:12], "result": p.result,
         "changes": ", ".join(f"{v} {k}" for k, v in p.counts.items()), "source": p.source}
        for p in passes
    ]
    output.print_table(rows, [("ID", "id"), ("TIME (UTC)", "time"), ("REVISION", "revision"),
                              ("RESULT", "result"), ("CHANGES", "changes"), ("SOURCE", "source")])
    return 0
