"""`reconcile network ls | inspect NAME...`: the native engine's networks, from its state DB.

Read-only: it opens the state database under `--root` and lists what the engine recorded
(networks, their bridges and subnets, and which containers hold which address).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]

def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "network", help="list and inspect the native engine's networks",
        description="List and inspect the networks of the native engine (read from its state DB).",
    )
    from reconciler.cli import options

    options.add_engine_options(parser)
    sub = parser.add_subparsers(dest="network_command", metavar="SUBCOMMAND", required=True)
    from reconciler.cli import output

    ls = sub.add_parser("ls", help="list networks", description="List networks.")
    output.add_output_flag(ls)
    ls.add_argument("-f", "--filter", action="append", default=[], metavar="label=VALUE",
                    help="only networks with this label (repeatable)")
    inspect = sub.add_parser("inspect", help="show networks in detail",
                             description="Show networks in detail (JSON, or YAML with -o yaml).")
    output.add_output_flag(inspect, table=False)
    inspect.add_argument("names", nargs="+", metavar="NAME")
    parser.set_defaults(run=run)


def _manager(args: argparse.Namespace) -> Any:
    from reconciler.cli import engines
    from reconciler.runtime import parts

    return parts.network_manager(engines.place(args))


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import output
    from reconciler.runtime import errors

    manager = _manager(args)
    if args.network_command == "ls":
        selector = {}
        for item in args.filter:
            key, sep, value = item.removeprefix("label=").partition("=")
            if not sep:
                raise errors.InvalidArgument(f"filter {item!r} is not label=KEY=VALUE or KEY=VALUE")
            selector[key] = value
        rows = []
        for n in manager.list_networks(selector):
            _, members = manager.inspect_network(n.name)
            rows.append({
                "id": n.id[:12], "name": n.name, "bridge": n.bridge, "subnet": n.subnet,
                "gateway": n.gateway, "internal": n.internal, "containers": len(members),
                "labels": dict(n.labels),
            })
        output.emit(args, rows, [("NETWORK ID", "id"), ("NAME", "name"), ("BRIDGE", "bridge"),
                                 ("SUBNET", "subnet"), ("GATEWAY", "gateway"), ("INTERNAL", "internal"),
                                 ("CONTAINERS", "containers")])
        return 0
    docs = []
    missing = []
    for name in args.names:
        try:
            state, members = manager.inspect_network(name)
        except errors.NotFound:
            missing.append(name)
            continue
        docs.append({
            "id": state.id, "name": state.name, "bridge": state.bridge, "subnet": state.subnet,
            "gateway": state.gateway, "internal": state.internal, "labels": dict(state.labels),
            "containers": [{"id": cid, "name": cname, "address": addr} for cid, cname, addr in members],
        })
    output.print_data(docs, args.output)
    if missing:
        raise errors.NotFound(f"no such network: {', '.join(missing)}", hint="see `reconcile network ls`")
    return 0
