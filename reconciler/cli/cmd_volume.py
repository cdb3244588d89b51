"""`reconcile volume ls|inspect|create|rm|prune|export|import`: the native engine's named volumes.

`create` and `prune` are the engine's own rules (NativeRuntime.ensure_volume: which drivers and
options it takes; NativeRuntime.prune: which volumes nothing uses), as `docker volume create` and
`docker volume prune` (docker 23+: anonymous volumes only, unless --all) do them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import cmd_system, options, output

    parser = subparsers.add_parser("volume", help="manage named volumes (ls, inspect, create, rm, prune, export, "
                                   "import)",
                                   description="The native engine's named volumes, as docker volume ... A volume "
                                   "whose data directory was deleted outside the engine is listed with a "
                                   "STATUS column (-o json: problem, hint) and inspected with a Status "
                                   "saying what to do; a container that mounts it is refused.")
    sub = parser.add_subparsers(dest="volume_command", metavar="SUBCOMMAND")
    p = sub.add_parser("ls", help="list volumes")
    options.add_engine_options(p)
    output.add_output_flag(p)
    output.add_format_flag(p)
    p.add_argument("-q", "--quiet", action="store_true", help="only names")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="FILTER",
                   help="docker volume ls's filters (repeatable): name, label=KEY[=VALUE], driver, "
                   "dangling=true|false (no container mounts it)")
    p.set_defaults(run=_ls, no_logging=True)
    p = sub.add_parser("inspect", help="show volumes as JSON (or YAML)")
    options.add_engine_options(p)
    output.add_output_flag(p, table=False)
    output.add_format_flag(p, inspect=True)
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p.set_defaults(run=_inspect, no_logging=True)
    p = sub.add_parser("create", help="create a volume",
                       description="Create a volume, as `docker volume create`: a directory of the engine's own, "
                       "or with --opt type=none --opt o=bind --opt device=/DIR that directory; without a name, "
                       "one made at random (an anonymous volume, which `volume prune` removes). Prints its name. "
                       "A volume of that name already there is kept as it is.")
    options.add_engine_options(p)
    p.add_argument("name", nargs="?", metavar="VOLUME", default=None)
    p.add_argument("-d", "--driver", default="local", help="the volume driver: local, the native engine's only [local]")
    p.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VALUE", help="set a label (repeatable)")
    p.add_argument("-o", "--opt", action="append", default=[], metavar="KEY=VALUE",
                   help="a driver option (repeatable): the local driver binds a directory with type=none, o=bind, "
                        "device=/DIR")
    p.set_defaults(run=_create)
    p = sub.add_parser("rm", help="remove volumes (their data is deleted)")
    options.add_engine_options(p)
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p.set_defaults(run=_rm)
    p = sub.add_parser("prune", help="remove unused anonymous volumes (-a: every unused volume)",
                       description="Remove the anonymous volumes no container mounts, or with -a every volume no "
                       "container mounts, as `docker volume prune` (docker 23+); asks first unless -f. A bound "
                       "directory's content is left where it is.")
    options.add_engine_options(p)
    p.add_argument("-a", "--all", action="store_true", help="remove every unused volume, not only anonymous ones")
    cmd_system.add_prune_flags(p, until=False)
    p.set_defaults(run=_prune)
    p = sub.add_parser("export", help="write a volume's content as a tar stream")
    options.add_engine_options(p)
    p.add_argument("name", metavar="VOLUME")
    p.add_argument("-o", "--output", metavar="FILE", default=None, help="write to FILE instead of stdout")
    p.add_argument("--compress", choices=("none", "zstd", "gzip"), default="none",
                   help="compress the tar stream (volume import reads it either way); a sparse file travels "
                        "as zeros, which zstd takes to ~32 KiB a GiB")
    p.set_defaults(run=_export)
    p = sub.add_parser("import", help="fill a new or empty volume from a tar stream")
    options.add_engine_options(p)
    p.add_argument("name", metavar="VOLUME")
    p.add_argument("-i", "--input", metavar="FILE", default=None, help="read FILE instead of stdin")
    p.set_defaults(run=_import)
    parser.set_defaults(run=run, volume_parser=parser)


def run(args: argparse.Namespace) -> int:
    args.volume_parser.print_help(sys.stderr)
    return 2


def _volumes(args: argparse.Namespace) -> Any:
    from reconciler.cli import engines
    from reconciler.runtime import parts

    return parts.volume_store(engines.place(args))


def _in_use(args: argparse.Namespace) -> dict[str, list[str]]:
    from reconciler.cli import engines
    from reconciler.runtime import opening

    used: dict[str, list[str]] = {}
    for r in opening.open_native(engines.place(args)).containers.records():
        for m in r.config.mounts:
            if m.type == "volume":
                used.setdefault(m.source, []).append(r.name)
    return used


# `ls --format`: docker's fields and their column names (Links, Size and the cluster's fields: N/A, as
# docker's without usage data; Status: what is wrong with it, the STATUS column, else N/A)
_HEADERS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
            "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE", "Group": "GROUP", "Availability": "AVAILABILITY",
            "Status": "STATUS"}


def _filtered(args: argparse.Namespace, vols: list[Any]) -> list[Any]:
    """The volumes docker volume ls's filters select (`dockerfilters.volumes`, the Engine API's
    rules); `dangling`: no container of the engine mounts it (read from the containers' rows)."""
    from reconciler.api import dockerfilters

    fl = dockerfilters.from_flags(args.filter)
    used: set[str] = set()
    if "dangling" in fl and vols:
        from reconciler.cli import cmd_ps

        rows = cmd_ps.summaries_of(args)
        used = {m.get("source", "") for r in rows for m in r.get("mounts") or () if m.get("type") == "volume"}
    chosen: list[Any] = dockerfilters.volumes(vols, fl, used=used)
    return chosen


def _ls(args: argparse.Namespace) -> int:
    from reconciler.cli import options, output

    fmt = output.format_of(args)
    store = _volumes(args) if options.engine_exists(args) else None
    vols = store.list() if store is not None else []
    if args.filter:
        vols = _filtered(args, vols)
    removing = store.removing() if store is not None else []
    if removing and not args.quiet:     # (on stderr: the listing stays what scripts read)
        print(f"note: the data of removed volume(s) {', '.join(removing)} is still on disk (a removal was "
              "interrupted): the next engine start or volume removal deletes it", file=sys.stderr)
    if args.quiet:
        for v in vols:
            print(v.name)
        return 0
    if fmt is not None:
        from reconciler import gotemplate, listing

        sys.stdout.write(gotemplate.render_rows(fmt, [listing.row("volume", {
            "Name": v.name, "Driver": "local", "Scope": "local", "Mountpoint": v.mountpoint,
            "Labels": listing.labels_text(v.labels), "Links": "N/A", "Size": "N/A", "Group": "N/A",
            "Availability": "N/A", "Status": v.problem or "N/A"}, dict(v.labels)) for v in vols],
            listing.header("volume", _HEADERS)))
        return 0
    rows = [{"driver": "local", "name": v.name, "mountpoint": v.mountpoint, "created": v.created,
             "labels": dict(v.labels), "problem": v.problem, "hint": v.hint} for v in vols]
    columns = [("DRIVER", "driver"), ("VOLUME NAME", "name")]
    if any(v.problem for v in vols):    # docker's two columns, and a third when one is wrong
        columns.append(("STATUS", "problem"))
    output.emit(args, rows, columns)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from reconciler.cli import options, output
    from reconciler.runtime import errors

    output.format_of(args, listing=False)       # (-f with -o: refused before anything is read)
    if not options.engine_exists(args):         # a read-only command creates no state root
        raise errors.NotFound(f"no such volume: {args.names[0]}")
    store = _volumes(args)
    used = _in_use(args)
    docs = []
    for n in args.names:
        v = store.get(n)
        doc = {"Name": v.name, "Driver": "local", "Mountpoint": v.mountpoint, "CreatedAt": v.created,
               "Labels": dict(v.labels), "Scope": "local", "UsedBy": used.get(v.name, [])}
        if v.problem:       # docker's driver-specific `Status`, as the Engine API gives it
            doc["Status"] = {"Problem": v.problem, "Hint": v.hint}
        docs.append(doc)
    output.print_documents(args, docs, kind="volume", maps=("Labels", "Options", "Status"))
    return 0


def _pairs(given: list[str], what: str) -> dict[str, str]:
    """KEY=VALUE items (a KEY alone: an empty value, as docker's map options take it)."""
    from reconciler.runtime import errors

    out = {}
    for item in given:
        key, _, value = item.partition("=")
        if not key:
            raise errors.InvalidArgument(f"{what} {item!r} is not KEY=VALUE")
        out[key] = value
    return out


def _create(args: argparse.Namespace) -> int:
    """`create`: the engine's ensure_volume (its rule of drivers and options), the name printed;
    without a name one made at random and labelled anonymous, as dockerd 23+ makes it."""
    from reconciler.cli import engines
    from reconciler.runtime import base, opening

    config = base.volume_to_create(args.name, _pairs(args.label, "label"), args.driver, _pairs(args.opt, "option"))
    rt = opening.open_native(engines.place(args))
    try:
        state = rt.ensure_volume(config)
    finally:
        rt.close()
    print(state.name)
    return 0


ANONYMOUS_WARNING = "WARNING! This will remove anonymous local volumes not used by at least one container.\n"
ALL_WARNING = "WARNING! This will remove all local volumes not used by at least one container.\n"


def _prune(args: argparse.Namespace) -> int:
    """`prune`: the engine's rule (NativeRuntime.prune: volumes no container mounts; only
    anonymous ones without --all), what went said as docker says it (cmd_system.print_report).
    Asks first unless -f (another answer than y: nothing removed, exit 0, as `system prune`)."""
    from reconciler.cli import cmd_system, engines, options

    filters = cmd_system.filters_of(args.filter, kind="volumes")
    if not args.force and not cmd_system.ask(ALL_WARNING if args.all else ANONYMOUS_WARNING):
        return 0
    reports = []
    if options.engine_exists(args):                 # none: nothing to prune, none made
        from reconciler.api import engine as engine_api
        from reconciler.runtime import opening

        rt = opening.open_native(engines.place(args))
        try:
            reports.append(("Volumes", rt.prune("volumes", selected=engine_api.prune_selection(filters),
                                                anonymous_only=not args.all)))
        finally:
            rt.close()
    cmd_system.print_report(reports)
    return 0


def _rm(args: argparse.Namespace) -> int:
    store = _volumes(args)
    used = _in_use(args)
    for n in args.names:
        store.remove(n, in_use=bool(used.get(n)))
        print(n)
    return 0


def _export(args: argparse.Namespace) -> int:
    from reconciler.cli import engines, output
    from reconciler.runtime import compressed, parts

    with output.output_file(args.output) as raw, compressed.compressing(raw, args.compress) as out:
        parts.export_volume(engines.place(args), args.name, out)
    return 0


def _import(args: argparse.Namespace) -> int:
    from reconciler.cli import engines, output
    from reconciler.cli.cmd_pull import open_store
    from reconciler.runtime import parts

    with output.input_file(args.input) as f:
        parts.import_volume(engines.place(args), open_store(args), args.name, f)
    print(args.name)
    return 0
