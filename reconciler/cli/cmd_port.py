"""`reconcile port NAME [PRIVATE_PORT[/PROTO]]`: a container's published ports, as `docker port`
prints them: `80/tcp -> 0.0.0.0:8080` for each binding (in natural order), or for one private
port (tcp unless named) the host addresses alone; nothing for a container that does not run
(its ports are not published then); `-o json|yaml`: each binding as `{port, host_ip, host_port}`.
A private port not published is an error (exit 1), as
docker's. Reads only: on the native engine the container's inspect document (the agent's when
one holds the root), nothing made."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import engines, options, output

    parser = subparsers.add_parser("port", help="list port mappings or a specific mapping for the container",
                                   description="List a container's published ports (or the host addresses of one "
                                   "private port), as docker port.")
    options.add_engine_options(parser)
    engines.add_runtime_flag(parser, "port")
    output.add_output_flag(parser)
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("private", nargs="?", metavar="PRIVATE_PORT[/PROTO]",
                        help="a port of the container, tcp unless /udp or /sctp follows")
    parser.set_defaults(run=run, no_logging=True)   # prints data only; structlog not needed


def run(args: argparse.Namespace) -> int:
    import sys

    from reconciler.runtime import errors

    try:
        wanted = _private(args.private) if args.private else None
        ports = _published(args)
    except errors.RuntimeBackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if ports is None:
        return 1                                    # no such container: said on stderr
    from reconciler.cli import output

    bindings = sorted(({"port": key, "host_ip": str(f.get("HostIp") or ""), "host_port": str(f.get("HostPort") or "")}
                       for key, bound in ports.items() if wanted in (None, key) for f in bound or ()),
                      key=lambda b: _natural(f"{b['port']} -> {_address(b)}"))
    if wanted is not None and not bindings:
        print(f"error: No public port '{args.private}' published for {args.container}", file=sys.stderr)
        return 1

    def text() -> None:
        for b in bindings:
            print(_address(b) if wanted is not None else f"{b['port']} -> {_address(b)}")

    output.render(args, bindings, text)     # -o json|yaml: each binding, {port, host_ip, host_port}
    return 0


def _private(text: str) -> str:
    """`80`, `80/udp` as the key of NetworkSettings.Ports (`80/tcp`); InvalidArgument for a port
    that is not one."""
    from reconciler.runtime import errors

    port, _, proto = text.partition("/")
    if not port.isdigit() or int(port) > 65535:
        raise errors.InvalidArgument(f"invalid port {port!r}", hint="PRIVATE_PORT[/PROTO]: 80, 80/tcp, 53/udp")
    return f"{int(port)}/{proto or 'tcp'}"


def _published(args: argparse.Namespace) -> dict[str, Any] | None:
    """The container's NetworkSettings.Ports (key `80/tcp` -> [{HostIp, HostPort}] or None), as
    its engine's inspect document has them; None (said on stderr) when there is no such container."""
    from reconciler.cli import cmd_inspect, engines
    from reconciler.runtime import base

    if engines.is_native(args):
        doc = cmd_inspect.document(args, args.container)
        return None if doc is None else dict((doc.get("NetworkSettings") or {}).get("Ports") or {})
    rt = engines.open_runtime(args, "port")
    try:
        if isinstance(rt, base.Inspecting):
            return dict((rt.inspect_document(args.container).get("NetworkSettings") or {}).get("Ports") or {})
        ports: dict[str, Any] = {}
        for p in rt.inspect_container(args.container).ports:
            ports.setdefault(f"{p.container_port}/{p.protocol}", []).append(
                {"HostIp": p.host_ip, "HostPort": str(p.host_port)})
        return ports
    finally:
        rt.close()


def _address(binding: dict[str, Any]) -> str:
    """Go's net.JoinHostPort of a binding: `0.0.0.0:8080`, `[::]:8080`."""
    host, port = binding["host_ip"], binding["host_port"]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _natural(text: str) -> list[Any]:
    """The docker CLI's order (sortorder.NaturalLess): runs of digits compared as numbers."""
    import re

    return [int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", text))]
