"""`reconcile image inspect|history|import|prune`: image management, as `docker image ...`; and docker's
`image ls|rm|pull|push|tag|save|load|build` forms of the top-level image commands (cli/aliases.py:
each that command's own parser, under docker's name)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["inspect_document", "register", "run"]


def register(subparsers: Any, form: str | None = None) -> None:
    """The group's parser; `form`: of docker's forms of the top-level commands, only the one the
    command line names (cli/aliases.py)."""
    from reconciler.cli import aliases, engines, options, output, parsing

    parser = subparsers.add_parser("image", help="manage images (docker's image ls, history, rm, pull, push, tag, "
                                   "save, load, import, build, inspect, prune)",
                                   description="Manage the native engine's images, as docker image: ls, rm, pull, "
                                   "push, tag, save, load and build are the top-level commands of those names "
                                   "(`image ls` is `reconcile images`, `image rm` is `reconcile rmi`: the same "
                                   "options and output).")
    sub = parser.add_subparsers(dest="image_command", metavar="SUBCOMMAND")
    p = sub.add_parser("inspect", help="show images as JSON (or YAML)")
    options.add_engine_options(p)
    output.add_output_flag(p, table=False)
    output.add_format_flag(p, inspect=True)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.set_defaults(run=_inspect, no_logging=True)
    p = sub.add_parser("history", help="show the history of an image: each step that made it, newest first",
                       description="Show the steps that made an image (its config's history, as docker history): "
                       "the step's command, when it ran and the size of the layer it made. Only the image itself "
                       "has an id: the engine keeps no intermediate images (<missing>, as docker shows a pulled "
                       "image's).")
    options.add_engine_options(p)
    engines.add_runtime_flag(p, "image history")
    output.add_output_flag(p)
    output.add_format_flag(p)
    p.add_argument("-H", "--human", default=True, type=parsing.go_bool, metavar="BOOL",
                   help="print sizes and dates in human readable format (default: true; -H=false: bytes and "
                        "RFC 3339 times, as docker history)")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate the image id and the commands")
    p.add_argument("-q", "--quiet", action="store_true", help="only print image ids (<missing> for the steps "
                                                             "below the image)")
    p.add_argument("image", metavar="IMAGE")
    p.set_defaults(run=_history, no_logging=True)
    p = sub.add_parser("import", help="create an image from a filesystem tarball (docker import; not "
                       "`container import`)",
                       description="Make an image of one layer from a tarball of a file system (what docker "
                       "export, the Engine API's GET /containers/ID/export or `tar -C DIR -c .` write; gzip, "
                       "bzip2, xz or zstd compressed or not), as docker import: from FILE, - (stdin) or an "
                       "http(s) URL, tagged REPOSITORY[:TAG] when given (dangling otherwise). The tar is "
                       "unpacked by the same extractor, with the same refusals, as a pulled layer; a refused or "
                       "interrupted import leaves nothing behind. Prints the new image id. Not `reconcile "
                       "container import`, which recreates a whole container (config, image, volumes) from a "
                       "`container export` archive.")
    options.add_engine_options(p)
    p.add_argument("-c", "--change", action="append", default=[], metavar="INSTRUCTION",
                   help="apply a Dockerfile instruction to the config (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, "
                        "VOLUME, WORKDIR, STOPSIGNAL, HEALTHCHECK, SHELL, ONBUILD; as commit -c); repeatable")
    p.add_argument("-m", "--message", default="", help='the image\'s comment (in its history; default: '
                                                       '"Imported from -", or the URL, as dockerd writes)')
    p.add_argument("--platform", default=None, metavar="OS/ARCH[/VARIANT]",
                   help="the image's platform (default: this host's, e.g. linux/amd64)")
    p.add_argument("source", metavar="FILE|URL|-", help="the tarball: a file, - for stdin, or an http(s) URL")
    p.add_argument("ref", metavar="REPOSITORY[:TAG]", nargs="?", default=None, help="tag for the new image")
    p.set_defaults(run=_import)
    p = sub.add_parser("prune", help="remove unused images and layers, and what interrupted pulls left")
    options.add_engine_options(p)
    p.add_argument("-a", "--all", action="store_true", help="remove every image no container uses, not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="do not ask (accepted for docker compatibility)")
    p.set_defaults(run=_prune)
    aliases.register(sub, "image", form)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """`reconcile image` alone: its help, as a usage error."""
    from reconciler.cli import main

    main.command_parser("image").print_help(sys.stderr)
    return 2


def inspect_document(store: Any, ref: str) -> dict[str, Any]:
    """`docker image inspect`-shaped JSON for one image."""
    info = store.get(ref)
    cfg = store.image_config(info.id)
    return {
        "Id": info.id,
        "RepoTags": list(info.repo_tags),
        "RepoDigests": list(info.repo_digests),
        "Created": info.created or "0001-01-01T00:00:00Z",     # none: Go's zero time, as dockerd shows it
        "Size": info.size,
        "Architecture": cfg.get("architecture"),
        "Os": cfg.get("os"),
        "Variant": cfg.get("variant"),
        "Author": cfg.get("author"),
        "Config": cfg.get("config") or {},
        "RootFS": {"Type": "layers", "Layers": list(info.layers)},
        "Metadata": {"Snapshots": [str(p) for p in store.layer_dirs(info.id)]},
    }


def _inspect(args: argparse.Namespace) -> int:
    from reconciler.cli import cmd_pull, output
    from reconciler.errors import ReconcilerError

    output.format_of(args, listing=False)       # (-f with -o: refused before anything is read)
    store = cmd_pull.open_store(args)
    docs, status = [], 0
    for ref in args.images:
        try:
            docs.append(inspect_document(store, ref))
        except ReconcilerError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            status = 1
    output.print_documents(args, docs, kind="image", maps=("Labels", "ExposedPorts", "Volumes"))
    return status


def _history(args: argparse.Namespace) -> int:
    """docker history: the image's steps (ImageStore.history; another engine's, base.ImageHistory:
    dockerd's and Podman's GET /images/NAME/history), printed by listing.py."""
    from reconciler import listing
    from reconciler.cli import cmd_pull, engines, options, output

    fmt = output.format_of(args)        # (over -q, as docker history takes a custom format)
    shown = listing.options_of(listing.HISTORY_FLAGS, args.output, vars(args))
    if not engines.is_native(args):
        rt = engines.open_runtime(args, "image history")
        try:
            steps = rt.image_history(args.image)
        finally:
            rt.close()
    elif not options.engine_exists(args):           # none: no image, and none made
        from reconciler.runtime import errors

        raise errors.NotFound(f"No such image: {args.image}")
    else:
        steps = cmd_pull.open_store(args).history(args.image)
    sys.stdout.write(listing.history_text(steps, shown) if fmt is None else listing.history_formatted(steps, shown, fmt))
    return 0


def _import(args: argparse.Namespace) -> int:
    """docker import: the tarball (runtime/native/images/tarball.py) as an image; its id."""
    from reconciler.cli.cmd_pull import open_store
    from reconciler.runtime import errors, parts

    if args.source == "-" and sys.stdin.isatty():
        raise errors.InvalidArgument("no tarball on stdin", hint="pipe a tarball in, or give a FILE or URL")
    image_id = parts.import_image(open_store(args), args.source, args.ref,
                                  stdin=sys.stdin.buffer if args.source == "-" else None, changes=args.change,
                                  message=args.message, platform=args.platform)
    print(image_id)
    return 0


def _prune(args: argparse.Namespace) -> int:
    from reconciler.cli import cmd_pull

    store = cmd_pull.open_store(args)
    before = _disk_usage(store)
    deleted = store.prune(all_images=args.all)
    freed = max(0, before - _disk_usage(store))
    if deleted:
        print("Deleted Images:")
        for image_id in deleted:
            print(f"deleted: {image_id}")
        print()
    print(f"Total reclaimed space: {freed / 1e6:.3g}MB")
    return 0


def _disk_usage(store: Any) -> int:
    import os

    total = 0
    for top in (store.content.blob_dir, store.content.ingest_dir, store.snapshots.dir):
        for dirpath, _dirs, files in os.walk(top):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:
                    pass
    return total
