"""`reconcile network ls | inspect NAME... | create NAME | rm NAME... | connect NET CONTAINER |
disconnect NET CONTAINER | prune`: the native engine's networks.

`ls` and `inspect` read the state database under `--root` (networks, their bridges and subnets,
and which containers hold which address); `create` and `rm` make and remove one as `docker
network create`/`rm` do (through the engine's network manager: its bridge, addresses and rules);
`connect` and `disconnect` put a container on a network or take it off, as `docker network
connect`/`disconnect` (a running one gets or loses an interface in its namespace, a created or
stopped one at its next start; the network by name, id or id prefix: the engine's
`network_connect`/`network_disconnect`, which the Engine API's are too); `prune` removes the
networks no container uses (the engine's `prune`), as `docker network prune`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run"]

def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "network", help="manage the native engine's networks (ls, inspect, create, rm, connect, disconnect, prune)",
        description="List, inspect, create and remove the networks of the native engine; connect containers to "
        "them and disconnect them; remove those no container uses.",
    )
    from reconciler.cli import options

    options.add_engine_options(parser)
    sub = parser.add_subparsers(dest="network_command", metavar="SUBCOMMAND", required=True)
    from reconciler.cli import output

    ls = sub.add_parser("ls", help="list networks", description="List networks.")
    output.add_output_flag(ls)
    output.add_format_flag(ls)
    ls.add_argument("-f", "--filter", action="append", default=[], metavar="FILTER",
                    help="docker network ls's filters (repeatable): name, id, label=KEY[=VALUE] (KEY=VALUE for "
                    "short), driver, type (builtin, custom), scope, dangling")
    inspect = sub.add_parser("inspect", help="show networks in detail",
                             description="Show networks in detail (JSON, or YAML with -o yaml).")
    output.add_output_flag(inspect, table=False)
    output.add_format_flag(inspect, inspect=True)
    inspect.add_argument("names", nargs="+", metavar="NETWORK", help="a network by its name, id or unique id prefix")
    create = sub.add_parser("create", help="create a bridge network",
                            description="Create a bridge network, as `docker network create` does (a Network "
                            "manifest makes one declaratively).")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--subnet", help="its IPv4 subnet (CIDR) [one from the engine's pool]")
    create.add_argument("--gateway", help="its IPv4 gateway [the subnet's first address]")
    create.add_argument("--ipv6", action="store_true", help="dual stack: an IPv6 subnet too")
    create.add_argument("--subnet6", metavar="CIDR", help="its IPv6 subnet (with --ipv6) [a /64 from fd00::/8]")
    create.add_argument("--internal", action="store_true", help="no way out of the network (no NAT, no route)")
    create.add_argument("--mtu", type=int, default=1500, help="its MTU [1500]")
    create.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VALUE", help="set a label")
    rm = sub.add_parser("rm", aliases=["remove"], help="remove networks no container is attached to",
                        description="Remove networks, as `docker network rm` does: refused while a container is "
                        "attached.")
    rm.add_argument("names", nargs="+", metavar="NETWORK", help="a network by its name, id or unique id prefix")
    connect = sub.add_parser("connect", help="connect a container to a network",
                             description="Connect a container to a network, as `docker network connect` does: a "
                             "running one gets an interface there at once (its address in its namespace, its names "
                             "in its peers' hosts files), one created or stopped at its next start (inspect names "
                             "the network before); kept for its next starts. The network by its name, id or a "
                             "unique id prefix, the container by its name, id or id prefix.")
    connect.add_argument("network", metavar="NETWORK")
    connect.add_argument("container", metavar="CONTAINER")
    connect.add_argument("--alias", action="append", default=[], metavar="ALIAS",
                         help="a name of the container on this network alone (repeatable)")
    connect.add_argument("--ip", metavar="IPV4", help="its IPv4 address there (e.g. 172.30.100.104) [one chosen]")
    connect.add_argument("--ip6", metavar="IPV6", help="its IPv6 address there, on a dual-stack network [one chosen]")
    disconnect = sub.add_parser("disconnect", help="disconnect a container from a network",
                                description="Disconnect a container from a network, as `docker network disconnect` "
                                "does: a running one loses its interface there at once (its address, its names in "
                                "its peers' hosts files), one created or stopped has none there at its next start. "
                                "The network and the container as `connect` finds them.")
    disconnect.add_argument("network", metavar="NETWORK")
    disconnect.add_argument("container", metavar="CONTAINER")
    disconnect.add_argument("-f", "--force", action="store_true",
                            help="also a container the engine no longer has: remove the endpoint it left there")
    prune = sub.add_parser("prune", help="remove all unused networks",
                           description="Remove the networks no container uses (none is on it, or will be at its "
                           "start), never the default one, as `docker network prune`; asks first unless -f.")
    from reconciler.cli import cmd_system

    cmd_system.add_prune_flags(prune)
    for each in (ls, inspect, create, rm, connect, disconnect, prune):  # `network ls --root X`, as the command's
        options.add_engine_options(each, under=True)
    parser.set_defaults(run=run)


_LS_COLUMNS = [("NETWORK ID", "id"), ("NAME", "name"), ("BRIDGE", "bridge"), ("SUBNET", "subnet"),
               ("GATEWAY", "gateway"), ("INTERNAL", "internal"), ("CONTAINERS", "containers")]
# `ls --format`: docker's fields (and their column names), then the engine's own columns
_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6", "IPv4": "IPV4",
            "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT", "Bridge": "BRIDGE",
            "Subnet": "SUBNET", "Gateway": "GATEWAY", "Containers": "CONTAINERS"}


def _fields(n: Any, members: int) -> Any:
    """A network as `ls --format` sees it: docker's fields, as docker's strings, and its bridge,
    subnet, gateway and how many containers are on it."""
    from reconciler import listing

    return listing.row("network", {
        "ID": n.id[:12], "Name": n.name, "Driver": "bridge", "Scope": "local",
        "IPv6": str(bool(n.ipv6_subnet)).lower(), "IPv4": "true", "Internal": str(n.internal).lower(),
        "Labels": listing.labels_text(n.labels), "CreatedAt": listing.go_timestamp(n.created),
        "Bridge": n.bridge, "Subnet": n.subnet, "Gateway": n.gateway, "Containers": str(members),
    }, dict(n.labels))


def _manager(args: argparse.Namespace) -> Any:
    from reconciler.cli import engines
    from reconciler.runtime import parts

    return parts.network_manager(engines.place(args))


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import options, output
    from reconciler.runtime import errors

    fmt = output.format_of(args, listing=args.network_command == "ls") if hasattr(args, "format") else None
    if args.network_command in ("connect", "disconnect"):
        return _reattach(args)
    if args.network_command == "prune":
        return _prune(args)
    if args.network_command not in ("create", "rm", "remove") and not options.engine_exists(args):
        if args.network_command == "ls":            # a read-only command creates no state root
            _list(args, fmt, [])
            return 0
        output.print_documents(args, [])
        raise errors.NotFound(f"no such network: {', '.join(args.names)}", hint="see `reconcile network ls`")
    manager = _manager(args)
    if args.network_command == "create":
        return _create(args, manager)
    if args.network_command in ("rm", "remove"):
        return _remove(args, manager)
    if args.network_command == "ls":
        _list(args, fmt, _listed(args.filter, manager))
        return 0
    docs = []
    missing = []
    for name in args.names:
        try:
            state, members = manager.inspect_network(manager.find(name))
        except errors.NotFound:
            missing.append(name)
            continue
        docs.append({
            "id": state.id, "name": state.name, "bridge": state.bridge, "subnet": state.subnet,
            "gateway": state.gateway, "internal": state.internal, "labels": dict(state.labels),
            "containers": [{"id": cid, "name": cname, "address": addr} for cid, cname, addr in members],
        })
    output.print_documents(args, docs, kind="network", maps=("labels",))
    if missing:
        raise errors.NotFound(f"no such network: {', '.join(missing)}", hint="see `reconcile network ls`")
    return 0


def _listed(filters: list[str], manager: Any) -> list[tuple[Any, int]]:
    """The networks `network ls -f` selects, with how many containers each has: docker's filters
    (name, id, label=KEY[=VALUE], driver, type, scope, dangling) by the Engine API's rules
    (`dockerfilters.network_matches`), and the shorthand KEY=VALUE for label=KEY=VALUE."""
    from reconciler.runtime import errors

    fl: dict[str, list[str]] = {}
    for item in filters:
        kind, sep, value = item.partition("=")
        if not sep:
            raise errors.InvalidArgument(f"filter {item!r} is not KEY=VALUE",
                                         hint="name=, id=, label=KEY[=VALUE], driver=, type=, scope=, dangling=")
        if kind not in ("dangling", "driver", "id", "label", "name", "scope", "type"):
            kind, value = "label", item                 # the shorthand KEY=VALUE: a label
        fl.setdefault(kind, []).append(value)
    rows = [(n, len(manager.inspect_network(n.name)[1])) for n in manager.list_networks()]
    if not fl:
        return rows
    from reconciler.api import dockerfilters

    dangling = dockerfilters.yes_no(fl, "dangling", ("true", "1"), ("false", "0"))
    # the default network is Docker's `bridge`: built in, never dangling (the API's rule)
    return [(n, members) for n, members in rows
            if dockerfilters.network_matches({"Name": n.name, "Id": n.id, "Labels": dict(n.labels)}, fl,
                                             builtin=n.name == "default")
            and (dangling is None or dangling == (members == 0 and n.name != "default"))]


def _list(args: argparse.Namespace, fmt: str | None, networks: list[tuple[Any, int]]) -> None:
    """`ls`: the networks (with how many containers each has) by --format, or as -o asks."""
    from reconciler.cli import output

    if fmt is not None:
        from reconciler import gotemplate, listing

        sys.stdout.write(gotemplate.render_rows(fmt, [_fields(n, members) for n, members in networks],
                                                listing.header("network", _HEADERS)))
        return
    output.emit(args, [{"id": n.id[:12], "name": n.name, "bridge": n.bridge, "subnet": n.subnet, "gateway": n.gateway,
                        "internal": n.internal, "containers": members, "labels": dict(n.labels)}
                       for n, members in networks], _LS_COLUMNS)


def _create(args: argparse.Namespace, manager: Any) -> int:
    from reconciler.runtime import base, errors

    labels = {}
    for item in args.label:
        key, sep, value = item.partition("=")
        if not key:
            raise errors.InvalidArgument(f"label {item!r} is not KEY=VALUE")
        labels[key] = value if sep else ""
    if args.subnet6 and not args.ipv6:
        raise errors.InvalidArgument("--subnet6 needs --ipv6")
    try:
        manager.inspect_network(args.name)
    except errors.NotFound:
        pass
    else:
        raise errors.Conflict(f"network with name {args.name} already exists",
                              hint=f"see `reconcile network inspect {args.name}`, or remove it first")
    state = manager.ensure_network(base.NetworkConfig(
        name=args.name, subnet=args.subnet, gateway=args.gateway, internal=args.internal, mtu=args.mtu,
        labels=labels, ipv6=args.ipv6, ipv6_subnet=args.subnet6))
    print(state.id)
    return 0


def _remove(args: argparse.Namespace, manager: Any) -> int:
    """Each network removed, its name printed, like docker (as `rm` of containers); 1 if any failed."""
    import sys

    from reconciler.runtime import errors

    rc = 0
    for name in args.names:
        try:
            manager.remove_network(manager.find(name))
            print(name)
        except errors.RuntimeBackendError as exc:
            print(f"error: {exc}", file=sys.stderr)
            rc = 1
    return rc


def _reattach(args: argparse.Namespace) -> int:
    """`connect` / `disconnect`: the engine's rules (NativeRuntime.network_connect /
    network_disconnect), on an engine with its bridge networking; prints nothing, as docker's."""
    from reconciler.cli import engines
    from reconciler.runtime import base

    rt = engines.open_runtime(args, f"network {args.network_command}")
    try:
        if args.network_command == "connect":
            rt.network_connect(args.container, args.network, ipv4=args.ip, ipv6=args.ip6,
                               endpoint=base.EndpointConfig(aliases=tuple(dict.fromkeys(args.alias))))
        else:
            rt.network_disconnect(args.container, args.network, force=args.force)
    finally:
        rt.close()
    return 0


WARNING = "WARNING! This will remove all custom networks not used by at least one container.\n"


def _prune(args: argparse.Namespace) -> int:
    """`prune`: the networks no container uses removed (the engine's rule, NativeRuntime.prune),
    filtered by label, label! and until as dockerd's; `Deleted Networks:` and their names, as
    docker prints them (nothing when none went). Asks first unless -f (another answer than y:
    nothing removed, exit 0, as `system prune`)."""
    from reconciler.cli import cmd_system, engines, options

    filters = cmd_system.filters_of(args.filter, kind="networks")
    if not args.force and not cmd_system.ask(WARNING):
        return 0
    if not options.engine_exists(args):             # none: nothing to prune, none made
        return 0
    from reconciler.api import engine as engine_api

    rt = engines.open_runtime(args, "network prune")
    try:
        deleted = rt.prune("networks", selected=engine_api.prune_selection(filters))["NetworksDeleted"]
    finally:
        rt.close()
    if deleted:
        print("Deleted Networks:\n" + "".join(f"{name}\n" for name in deleted))
    return 0
