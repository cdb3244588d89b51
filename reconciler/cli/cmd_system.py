"""`reconcile system df|prune|info`: what the native engine holds on disk, and what nothing uses of it
removed, as `docker system df` and `docker system prune` show and do, for this engine's own
objects alone (its state root's: no other engine's, no build cache, which holds no space here).

    system df [-o json|yaml]         images (LayersSize: each layer once), containers (their
                                     writable layers), local volumes (their data), build cache;
                                     how many of each are in use and what a prune could free
    system prune [-a] [--volumes] [-f] [--filter K=V]
                                     stopped containers, networks no container uses, dangling
                                     images (-a: every image no container uses), with --volumes
                                     anonymous volumes no container mounts (named ones are kept,
                                     as docker's); asks first unless -f
    system info                      the engine, as `docker system info` (`reconcile info`:
                                     cli/cmd_info.py; --runtime docker too)

df and prune are native only: another engine's disk is its own CLI's (`docker system df`). `df`
reads only, and on a state root without an engine neither creates one.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_prune_flags", "ask", "filters_of", "print_report", "register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import engines, options, output

    parser = subparsers.add_parser("system", help="manage the native engine (df, prune) and show the engine (info)",
                                   description="What the native engine holds on disk, and what nothing uses of it "
                                   "removed, as docker system df and prune.")
    options.add_engine_options(parser)
    engines.add_runtime_flag(parser, "system")
    sub = parser.add_subparsers(dest="system_command", metavar="SUBCOMMAND")
    p = sub.add_parser("df", help="show the engine's disk usage",
                       description="Images, containers, local volumes and build cache: how many, how many in use, "
                       "their size and what a prune could free, as docker system df.")
    options.add_engine_options(p, under=True)
    engines.add_runtime_flag(p, "system df", under=True)
    output.add_output_flag(p)
    p.set_defaults(run=_df, no_logging=True)
    p = sub.add_parser("prune", help="remove unused data",
                       description="Remove stopped containers, networks no container uses and dangling images "
                       "(-a: every image no container uses; --volumes: anonymous volumes no container mounts), as "
                       "docker system prune; asks first unless -f.")
    options.add_engine_options(p, under=True)
    engines.add_runtime_flag(p, "system prune", under=True)
    p.add_argument("-a", "--all", action="store_true", help="remove every image no container uses, not only "
                   "dangling ones")
    p.add_argument("--volumes", action="store_true", help="remove anonymous volumes no container mounts")
    add_prune_flags(p)
    p.set_defaults(run=_prune)
    from reconciler.cli import cmd_info

    cmd_info.add_flags(sub.add_parser("info", help=cmd_info.HELP, description=cmd_info.DESCRIPTION), under=True)
    parser.set_defaults(run=run, system_parser=parser)


def add_prune_flags(p: argparse.ArgumentParser, *, until: bool = True) -> None:
    """A prune's -f and --filter (read by `filters_of`), as docker's prunes take them (`until`:
    whether the filter takes until=, which docker's volume prune does not)."""
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="only what matches: label=K[=V], label!=K[=V]"
                   + (", until=TIME (10m, 2h, a date)" if until else "") + " (repeatable)")


def run(args: argparse.Namespace) -> int:
    args.system_parser.print_help(sys.stderr)
    return 2


def _df(args: argparse.Namespace) -> int:
    from reconciler import printing
    from reconciler.cli import engines, options, output

    engines.check(args, "system df")
    if not options.engine_exists(args):              # reads only: makes no engine
        rows = [_row(kind, 0, 0, 0, 0) for kind in ("Images", "Containers", "Local Volumes", "Build Cache")]
    else:
        rt = engines.open_runtime(args, "system")
        try:
            usage = rt.disk_usage()
        finally:
            rt.close()
        used = sum(info.size - shared for info, shared, users in usage.images if users)
        active = [size for c, size in usage.containers if c.paused or str(c.status) in ("running", "restarting")]
        rows = [
            _row("Images", len(usage.images), sum(1 for *_, users in usage.images if users), usage.layers_size,
                 usage.layers_size - used),
            _row("Containers", len(usage.containers), len(active), sum(s for _, s in usage.containers),
                 sum(s for _, s in usage.containers) - sum(active)),
            _row("Local Volumes", len(usage.volumes), sum(1 for *_, refs in usage.volumes if refs),
                 sum(s for _, s, _ in usage.volumes), sum(s for _, s, refs in usage.volumes if not refs)),
            _row("Build Cache", 0, 0, 0, 0),
        ]
    if output.wants_data(args):
        output.print_data(rows, args.output)
        return 0

    def shown(r: dict[str, Any]) -> str:
        text = printing.human_size(r["reclaimable"], 4)
        return f"{text} ({r['reclaimable'] * 100 // r['size']}%)" if r["size"] > 0 else text
    output.print_cells([["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]] + [
        [r["type"], str(r["total"]), str(r["active"]), printing.human_size(r["size"], 4), shown(r)] for r in rows],
        min_width=10)
    return 0


def _row(kind: str, total: int, active: int, size: int, reclaimable: int) -> dict[str, Any]:
    return {"type": kind, "total": total, "active": active, "size": size, "reclaimable": max(0, reclaimable)}


WARNING = "WARNING! This will remove:\n"


def _prune(args: argparse.Namespace) -> int:
    from reconciler.cli import engines
    from reconciler.runtime import errors

    engines.check(args, "system prune")
    filters = filters_of(args.filter)
    if args.volumes and "until" in filters:
        raise errors.InvalidArgument('the "until" filter is not supported with "--volumes"',
                                     hint="prune the volumes apart: reconcile volume rm")
    lines = ["all stopped containers", "all networks not used by at least one container"]
    if args.volumes:
        lines.append("all anonymous volumes not used by at least one container")
    lines.append("all images without at least one container associated to them" if args.all else "all dangling images")
    if not args.force and not ask(WARNING + "".join(f"  - {line}\n" for line in lines) + "\n"):
        return 0
    reports: list[tuple[str, dict[str, Any]]] = []
    with _engine(args) as rt:
        if rt is not None:
            from reconciler.api import engine as engine_api

            selected = engine_api.prune_selection(filters)
            reports.append(("Containers", rt.prune("containers", selected=selected)))
            reports.append(("Networks", rt.prune("networks", selected=selected)))
            if args.volumes:
                reports.append(("Volumes", rt.prune("volumes", selected=selected, anonymous_only=True)))
            reports.append(("Images", rt.prune("images", selected=selected, dangling_only=not args.all)))
    print_report(reports)
    return 0


def filters_of(given: list[str], kind: str | None = None) -> dict[str, list[str]]:
    """`--filter KEY=VALUE` (repeatable) as Docker's filters; a prune accepts label, label! and
    until, a prune of `kind` those dockerd's takes (api/dockerfilters.py PRUNE: volumes no
    until); InvalidArgument naming any other, as dockerd refuses it."""
    from reconciler.runtime import errors

    accepted: tuple[str, ...] = ("label", "label!", "until")
    if kind is not None:
        from reconciler.api import dockerfilters

        accepted = tuple(k for k in accepted if k in dockerfilters.PRUNE[kind])
    forms = {"label": "label=K[=V]", "label!": "label!=K[=V]", "until": "until=TIME"}
    out: dict[str, list[str]] = {}
    for item in given:
        key, sep, value = item.partition("=")
        if not sep or key not in accepted:
            said = [forms[k] for k in accepted]
            raise errors.InvalidArgument(f"invalid filter {item!r}",
                                         hint=", ".join(said[:-1]) + f" or {said[-1]}" if len(said) > 1 else said[0])
        out.setdefault(key, []).append(value)
    return out


def ask(warning: str) -> bool:
    """docker's confirmation: the warning and `Are you sure you want to continue? [y/N] ` on
    stdout, one line read from stdin; only y or Y goes on (an end of input does not)."""
    sys.stdout.write(warning + "Are you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() == "y"


class _engine:
    """The native engine the options name, or None when the state root holds none (nothing to
    prune: none is made)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rt: Any = None

    def __enter__(self) -> Any:
        from reconciler.cli import engines, options

        if options.engine_exists(self.args):
            self.rt = engines.open_runtime(self.args, "system")
        return self.rt

    def __exit__(self, *exc: object) -> None:
        if self.rt is not None:
            self.rt.close()


def print_report(reports: list[tuple[str, dict[str, Any]]]) -> None:
    """What the prunes deleted, as docker prints it: a `Deleted KIND:` section each that deleted
    something (images: `untagged: REF` / `deleted: ID` lines), a blank line after each, then
    `Total reclaimed space: SIZE`."""
    from reconciler import printing

    space = 0
    for kind, report in reports:
        space += int(report.get("SpaceReclaimed") or 0)
        deleted = report.get(f"{kind}Deleted") or []
        if deleted:
            lines = [next(f"{k.lower()}: {v}" for k, v in d.items()) if isinstance(d, dict) else str(d) for d in deleted]
            print(f"Deleted {kind}:\n" + "\n".join(lines) + "\n")
    print(f"Total reclaimed space: {printing.human_size(space, 4)}")
