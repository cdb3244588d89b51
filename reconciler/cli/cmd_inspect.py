"""`reconcile inspect NAME...`: containers in detail, as a JSON array like `docker inspect` (or YAML);
asked of the agent that holds the state root when one runs (#21), else read from the root."""

from __future__ import annotations

from reconciler.cli import fastpath

# annotations only: what the read-only commands import at start-up stays small (#21)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any


__all__ = ["Local", "document", "register", "run"]


# what it takes, for its parser and the fast path alike (cli/fastpath.py)
SPEC = fastpath.Spec(output="json", positional=("containers", "+", "CONTAINER"), valued=(fastpath.INSPECT_FORMAT,))

# the objects of its document that are maps in docker's (a key they have not: <no value>, not an error)
MAPS = ("Labels", "Volumes", "ExposedPorts", "Networks", "Ports", "PortBindings", "Data", "Tmpfs", "Sysctls",
        "LogConfig.Config", "DriverOpts", "Options")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("inspect", help="show containers in detail (JSON or YAML)",
                                   description="Show containers in detail, as a JSON array (or YAML with -o yaml), "
                                   "or each by a Go template (-f '{{.State.Status}}'), as docker inspect. The "
                                   "document is docker's shape for its common keys (Id, Name, State, Config, "
                                   "HostConfig, NetworkSettings, Mounts); where it differs, it is reconciler's "
                                   "(docs/reference/cli.md, \"--format\").")
    SPEC.add_to(parser, "inspect")
    parser.set_defaults(run=run, no_logging=True)   # prints data only; structlog not needed


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import engines, output

    engines.check(args, "inspect")          # the native engine's documents only
    output.format_of(args, listing=False)   # (-f with -o: refused before anything is read)
    docs: list[dict[str, Any]] = []
    rc = 0
    local: list[Local] = []
    for name in args.containers:
        doc = document(args, name, local)
        if doc is None:
            rc = 1
        else:
            docs.append(doc)
    output.print_documents(args, docs, kind="container", maps=MAPS)
    return rc


def document(args: argparse.Namespace, name: str, local: list[Local] | None = None) -> dict[str, Any] | None:
    """The native container `name`'s `docker inspect` document: the agent's that holds the root,
    else read from the root (`local` keeps the records opened, for the next name); None (said on
    stderr) when there is no such container. `port` reads its ports here too."""
    import urllib.parse

    from reconciler.cli import _agentapi

    doc: dict[str, Any] | None = _agentapi.served(args, "/v1/containers/" + urllib.parse.quote(name, safe=""))
    if doc is None:             # no agent, or it knows no such container: read the root
        local = [] if local is None else local
        if not local:
            local.append(Local(args))
        doc = local[0].document(name)
    return doc


class Local:
    """`docker inspect` documents read from the state root (no agent answers for it)."""

    def __init__(self, args: argparse.Namespace) -> None:
        from reconciler.cli import cmd_ps, options

        self.store = cmd_ps.open_records(args) if options.engine_exists(args) else None

    def document(self, name: str) -> dict[str, Any] | None:
        """The document of `name`, or None (said on stderr) when there is no such container."""
        import sys

        from reconciler.runtime import errors, opening

        try:
            if self.store is None:
                raise errors.NotFound(f"No such container: {name}")
            return opening.inspect_document(self.store, name)
        except errors.NotFound as exc:
            print(f"error: {exc}", file=sys.stderr)
            return None
