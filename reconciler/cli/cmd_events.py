"""`reconcile events [-f]`: the running agent's events (passes, refused revisions, drift,
restarts, flapping, rollbacks), one line each, or JSON lines with -o json (a YAML document each with -o yaml)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]

_SKIP = {"seq", "time", "type"}


def register(subparsers: Any) -> None:
    from reconciler.cli import _agentapi, options, output

    parser = subparsers.add_parser("events", help="the agent's events (-f to follow)",
                                   description="Print the running agent's recent events; -f keeps following.")
    options.add_engine_options(parser)
    _agentapi.add_socket_flag(parser)
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    parser.add_argument("--since", type=int, default=0, metavar="SEQ", help="only events after this sequence number")
    output.add_output_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    import time

    from reconciler.cli import _agentapi, output

    for e in _agentapi.client(args).events(since=args.since, follow=args.follow):
        if output.wants_data(args):
            output.print_record(e, args.output)
        else:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e["time"]))
            rest = " ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
                            for k, v in sorted(e.items()) if k not in _SKIP)
            print(f"{stamp} #{e['seq']} {e['type']} {rest}")
        sys.stdout.flush()
    return 0
