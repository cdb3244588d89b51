"""`reconcile container export|import|prune`: move a container (its config, rootfs changes, image and
volume data) to another host or state root in one archive; remove the stopped containers, as
`docker container prune` does. And docker's `container ls|create|start|...` forms of the
top-level container commands (cli/aliases.py: each that command's own parser, under docker's name).

Not docker's `container export` (a flat tar of the container's file system) nor `container import`
(a tar made an image): reconciler's move a whole container between hosts; `reconcile commit` then
`reconcile save` carries a container's file system as an image."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run"]

SUMMARY = "manage containers: docker's container ls, create, start, rm...; export, import (move to another host), prune"


def register(subparsers: Any, form: str | None = None) -> None:
    """The group's parser; `form`: of docker's forms of the top-level commands, only the one the
    command line names (cli/aliases.py)."""
    from reconciler.cli import aliases, cmd_system, options

    parser = subparsers.add_parser("container", help=SUMMARY,
                                   description="Manage containers, as docker container: ls, create, start, "
                                   "stop, rm... are the top-level commands of those names (`container ls` is "
                                   "`reconcile ps`, the same options and output). export and import are "
                                   "reconciler's own: they move a whole native container (config, rootfs changes, "
                                   "image, volumes) to another host in one archive; they are not docker's "
                                   "`container export` / `import` (a flat file system tar: `reconcile image import` "
                                   "makes an image of one, as docker import). prune removes the stopped ones; diff lists what one "
                                   "changed in its file system, as docker diff.")
    sub = parser.add_subparsers(dest="container_command", metavar="SUBCOMMAND")
    p = sub.add_parser("export", help="write a container, its rootfs changes, image and volumes to an archive "
                       "(reconciler's: not docker's flat file system tar)",
                       description="Write one archive holding the container's config, its image with its "
                       "rootfs changes committed on top, and its named volumes' data, for `container import` "
                       "on another host (not docker's `container export`, a flat tar of the file system). A "
                       "running container is refused unless --leave-running (then it is paused while copied).")
    options.add_engine_options(p)
    p.add_argument("name", metavar="CONTAINER")
    p.add_argument("-o", "--output", metavar="FILE", default=None, help="write to FILE instead of stdout")
    p.add_argument("--with-image", action=argparse.BooleanOptionalAction, default=True,
                   help="include the image with the container's rootfs changes committed on top (default); "
                        "without it the archive names the container's image (id, registry digest, name), which "
                        "the import finds on the new host or pulls by its digest, and a container that changed "
                        "its rootfs is refused (--discard-changes)")
    p.add_argument("--discard-changes", action="store_true",
                   help="with --no-with-image: leave the container's changes to its root filesystem out "
                        "(the import runs its image as it is) instead of refusing")
    p.add_argument("--without-volumes", action="store_true", help="leave the named volumes' data out")
    p.add_argument("--compress", choices=("none", "zstd", "gzip"), default="none",
                   help="compress the archive (the import reads it either way); a sparse file travels as "
                        "zeros, which zstd takes to ~32 KiB a GiB")
    p.add_argument("--leave-running", action="store_true",
                   help="export a running container (paused while it is copied) instead of refusing")
    p.set_defaults(run=_export)
    p = sub.add_parser("import", help="recreate a container from a `container export` archive (reconciler's; "
                       "docker import is `image import`)",
                       description="Load the archive's image, restore its volumes and create the container "
                       "with the same config (and name, unless --name). The archive may be gzip or zstd "
                       "compressed. Exit 0 imported; 1 failed, damaged or taken names (what it made is removed); "
                       "2 not a container archive, or a container that asks for the host (--allow-host-access). "
                       "A file system tarball (docker's export) is `reconcile image import`'s.")
    options.add_engine_options(p)
    p.add_argument("--runtime", default="native", choices=("native", "docker"),
                   help="the engine to create it on: native (default) or docker (a Docker/Podman API at "
                        "$DOCKER_HOST or /var/run/docker.sock)")
    p.add_argument("-i", "--input", metavar="FILE", default=None, help="read FILE instead of stdin")
    p.add_argument("--name", default=None, help="create the container under this name")
    p.add_argument("--start", action="store_true", help="start it once created")
    p.add_argument("--volume-prefix", metavar="PREFIX", default="",
                   help="make the named volumes the archive carries as PREFIX+NAME (a second copy beside the "
                        "first: --name app2 --volume-prefix app2-); anonymous volumes always get new names")
    p.add_argument("--allow-host-access", action="store_true",
                   help="create it even when it asks for the host (privileged, added capabilities, the host "
                        "network, devices, binds of host paths, this host's volumes): refused otherwise, as "
                        "the restricted policy refuses them")
    p.set_defaults(run=_import)
    from reconciler.cli import engines

    p = sub.add_parser("prune", help="remove all stopped containers",
                       description="Remove every stopped container of the native engine (exited, created, dead; "
                       "not one waiting for its restart), as docker container prune; asks first unless -f.")
    options.add_engine_options(p)
    engines.add_runtime_flag(p, "container prune")
    cmd_system.add_prune_flags(p)
    p.set_defaults(run=_prune)
    p = sub.add_parser("diff", help="inspect changes to files or directories on a container's filesystem",
                       description="List what the container changed in its root filesystem, as docker diff: "
                       "A added, C changed, D deleted, one path a line (its volumes and mounts left out).")
    options.add_engine_options(p)
    engines.add_runtime_flag(p, "container diff")
    from reconciler.cli import output

    output.add_output_flag(p)
    p.add_argument("name", metavar="CONTAINER")
    p.set_defaults(run=_diff, no_logging=True)
    aliases.register(sub, "container", form)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """`reconcile container` alone: its help, as a usage error."""
    from reconciler.cli import main

    main.command_parser("container").print_help(sys.stderr)
    return 2


def _export(args: argparse.Namespace) -> int:
    from reconciler.cli import engines, output
    from reconciler.cli.cmd_pull import open_store
    from reconciler.runtime import compressed, parts

    store = open_store(args)
    say = (lambda m: print(m, file=sys.stderr)) if sys.stderr.isatty() else None
    with output.output_file(args.output) as raw, compressed.compressing(raw, args.compress) as out:
        parts.export_container(engines.place(args), store, args.name, out, with_image=args.with_image,
                               with_volumes=not args.without_volumes, leave_running=args.leave_running,
                               discard_changes=args.discard_changes, progress=say)
    return 0


def _import(args: argparse.Namespace) -> int:
    from reconciler.cli import engines, output
    from reconciler.runtime import moving, opening

    runtime = opening.open_runtime(args.runtime, engines.place(args))
    try:
        with output.input_file(args.input) as f:
            done = moving.import_container(runtime, f, name=args.name, start=args.start,
                                           progress=lambda m: print(m, file=sys.stderr),
                                           allow_host_access=args.allow_host_access,
                                           volume_prefix=args.volume_prefix)
    finally:
        runtime.close()
    print(done.id)
    return 0


def _prune(args: argparse.Namespace) -> int:
    """docker container prune: the stopped containers removed (the native engine's rule,
    `NativeRuntime.prune`), what went said as docker says it (cmd_system.print_report)."""
    from reconciler.cli import cmd_system, engines, options

    engines.check(args, "container prune")
    filters = cmd_system.filters_of(args.filter)
    if not args.force and not cmd_system.ask("WARNING! This will remove all stopped containers.\n"):
        return 0
    reports = []
    if options.engine_exists(args):                 # none: nothing to prune, none made
        from reconciler.api import engine as engine_api

        rt = engines.open_runtime(args, "container prune")
        try:
            reports.append(("Containers", rt.prune("containers", selected=engine_api.prune_selection(filters))))
        finally:
            rt.close()
    cmd_system.print_report(reports)
    return 0


def _diff(args: argparse.Namespace) -> int:
    """docker diff: the native engine's `container_changes` (runtime/native/commit.py), `KIND PATH`
    lines, or rows `{kind, path}` (-o json|yaml); no such container: exit 1, as docker's."""
    from reconciler.cli import engines, options, output
    from reconciler.runtime import errors

    engines.check(args, "container diff")
    rt = engines.open_runtime(args, "container diff") if options.engine_exists(args) else None
    try:
        if rt is None:
            raise errors.NotFound(f"No such container: {args.name}")
        changes = rt.container_changes(args.name)
    except errors.RuntimeBackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if rt is not None:
            rt.close()
    output.render(args, [{"kind": kind, "path": path} for kind, path in changes],
                  lambda: sys.stdout.writelines(f"{kind} {path}\n" for kind, path in changes))
    return 0
