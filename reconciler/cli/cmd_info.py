"""`reconcile info` (and `reconcile system info`): the engine, as `docker info` shows it.

    info [-f TEMPLATE | -o json|yaml] [--runtime native|docker|swarm]

The native engine's document is the Engine API's GET /info (engineinfo.document, its one home):
its containers as `ps` observes them (each record checked against its process: running, paused,
stopped), its images, overlay2 on the state root's file system, the cgroup driver and version,
the OCI runtimes found and the one new containers get, the host (kernel, OS, architecture, CPUs,
memory, name), the loopback registries spoken to over plain http, and dockerd's warnings where
they are true of this host. `--runtime docker` (or swarm: the manager) prints that engine's own
/info, through its Engine API, in the same layout.

Printed as docker info prints it (Client: and Server: sections; the warnings on stderr), by a Go
template with docker's field names (`-f '{{.ServerVersion}}'`, `{{json .Plugins}}`,
`{{.ClientInfo.Version}}`), `-f json` (the document and ClientInfo, one line), or `-o json|yaml`
(the Info document alone, as the Engine API serves it).

A read command (#21): it reads the state root without opening the engine, creates nothing on a
root that holds none, and loads no engine lifecycle, network code or heavy library. With an agent
holding the root it reads the same root: the same output either way.
"""

from __future__ import annotations

# annotations only: what the read-only commands import at start-up stays small (#21)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

__all__ = ["add_flags", "document", "register", "run"]

HELP = "display system-wide information about the engine, as docker info"
DESCRIPTION = ("Display system-wide information about the engine, as docker info: its containers (running, paused, "
               "stopped) and images, storage driver, cgroups, OCI runtimes, the host's kernel, OS, CPUs and memory, "
               "and dockerd's warnings where they hold on this host. --runtime docker: that engine's own.")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("info", help=HELP, description=DESCRIPTION)
    add_flags(parser)


def add_flags(parser: argparse.ArgumentParser, *, under: bool = False) -> None:
    """info's options (`under`: `system info`, below a command that has the engine options too)."""
    from reconciler.cli import engines, options, output

    options.add_engine_options(parser, under=under)
    engines.add_runtime_flag(parser, "info", under=under)
    output.add_output_flag(parser)
    parser.add_argument("-f", "--format", default=None, metavar="TEMPLATE",
                        help="print by a Go template, as docker info --format: '{{.ServerVersion}}', "
                        "'{{json .Plugins}}', '{{.ClientInfo.Version}}' (docker's field names: the Engine API's "
                        "Info document), or 'json' (the document and ClientInfo as one JSON line); not with -o")
    parser.set_defaults(run=run, no_logging=True)


def document(args: argparse.Namespace) -> dict[str, Any]:
    """The Info document of the engine the options name: the native engine's (engineinfo.document,
    as its Engine API's /info), or another engine's own /info through its Engine API."""
    from reconciler.cli import engines

    if not engines.is_native(args):
        rt = engines.open_runtime(args, "info")
        try:
            doc: dict[str, Any] = rt.api.info()      # the Docker and Swarm backends' Engine API client
        finally:
            rt.close()
        return doc
    engines.check(args, "info")
    from reconciler import engineinfo, listing
    from reconciler.cli import cmd_images, cmd_ps
    from reconciler.runtime import parts

    # the rows `ps -a` prints and `images` lists, read as they read them (records checked against
    # their processes; nothing made on a root that holds no engine)
    rows = cmd_ps._summaries(args, {}, native=True, options=listing.options_of(listing.PS_FLAGS, "table", {}))
    oci = getattr(args, "oci_runtime", None) or "runc"
    return engineinfo.document(states=[str(r["status"]) for r in rows], images=len(cmd_images._summaries(args)),
                               root=str(args.root), oci_runtime=oci, components=parts.engine_components(oci))


def run(args: argparse.Namespace) -> int:
    import sys

    from reconciler import engineinfo
    from reconciler.cli import output

    fmt = output.format_of(args, listing=False)           # a template that does not parse: refused first
    doc = document(args)
    client = engineinfo.client_info(debug=getattr(args, "log_level", "warning") == "debug")
    if fmt is not None:
        from reconciler import gotemplate

        full = {**doc, "ClientInfo": client}
        if fmt == "json":
            sys.stdout.write(gotemplate.go_json(full) + "\n")
        else:
            sys.stdout.write(gotemplate.render_documents(fmt, [gotemplate.document(
                full, "info", maps=("Runtimes", "IndexConfigs"))]))
        return 0
    if output.wants_data(args):
        output.print_data(doc, args.output)
        return 0
    text, warned = engineinfo.text(doc, client)
    sys.stdout.write(text)
    sys.stdout.flush()
    sys.stderr.write(warned)
    return 0
