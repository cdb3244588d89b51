"""`reconcile images`: the native engine's images, as `docker images` lists them; printed by the
agent that holds the state root when one runs (#21), else read from the root and printed by the
same code (listing.py)."""

from __future__ import annotations

from reconciler.cli import fastpath

# annotations only: what the read-only commands import at start-up stays small (#21)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

__all__ = ["register", "run"]


# its flags, for its parser and the fast path alike (cli/fastpath.py)
SPEC = fastpath.Spec((
    (("-a", "--all"), "all", "every image (docker's habit: the engine keeps no intermediate images, so all are listed anyway)"),
    (("-q", "--quiet"), "quiet", "only print image ids"),
    (("--digests",), "digests", "show each tag's repository digest (<none> for a tag made here: built, loaded, tagged; never pushed)"),
    (("--no-trunc",), "no_trunc", "do not truncate image ids"),
), defaults={"filter": []}, valued=(fastpath.FORMAT,))


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("images", help="list images",
                                   description="List the native engine's images.")
    SPEC.add_to(parser, "images")
    parser.add_argument("-f", "--filter", action="append", default=SPEC.defaults["filter"], metavar="FILTER",
                        help="docker images' filters (repeatable): reference (a pattern: busybox, 'reg/*:v1'), "
                        "dangling=true|false, label=KEY[=VALUE], before=IMAGE, since=IMAGE")
    parser.set_defaults(run=run, no_logging=True)   # prints data only


def _summaries(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The engine's images (listing.image_summary: id, digest, repo_tags, size, created), newest
    first, read from the root (no agent answered), or asked of the engine `--runtime` names."""
    from reconciler import listing
    from reconciler.cli import engines, options

    if not engines.is_native(args):
        rt = engines.open_runtime(args, "images")
        try:
            infos = sorted(rt.list_images(), key=lambda i: i.created or "", reverse=True)
        finally:
            rt.close()
    elif not options.engine_exists(args):
        return []
    else:
        from reconciler.runtime import parts  # the state DB's rows alone (#21)

        found = parts.image_summaries(args.root)
        if found is not None:
            return found
        # the image store, when its rows cannot be read so (not cmd_pull's open_store: its module's imports)
        from reconciler.runtime import opening

        infos = opening.open_image_store(engines.place(args)).list()
    return [listing.image_summary(i) for i in infos]


def _filtered(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The images docker images' filters select (`dockerfilters.images`, the Engine API's rules),
    each with the tags a `reference` pattern matched, untagged ones as <none>; read from the
    image store (their labels), or asked of the engine `--runtime` names. The engine keeps no
    intermediate images, so an untagged image is a dangling one here (the CLI's `images` lists
    them all, `-a` or not)."""
    from reconciler import imagenames, listing
    from reconciler.api import dockerfilters
    from reconciler.cli import engines, options
    from reconciler.runtime import errors

    fl = dockerfilters.from_flags(args.filter)
    dockerfilters.validate(fl, dockerfilters.IMAGE_LIST)
    if not engines.is_native(args):
        rt = engines.open_runtime(args, "images")
        try:
            infos = rt.list_images()
        finally:
            rt.close()
    elif not options.engine_exists(args):
        infos = []
    else:
        from reconciler.runtime import opening

        infos = opening.open_image_store(engines.place(args)).list()

    by_id = {i.id: i for i in infos}
    views = {i.id: dockerfilters.ImageView(
        id=i.id, created_ns=dockerfilters.rfc3339_ns(i.created), labels=dict(i.config.get("Labels") or {}),
        tags=tuple(imagenames.familiar_tagged(t) for t in i.repo_tags), digests=tuple(sorted({imagenames.familiar_tagged(d) for d in i.repo_digests})),
        has_children=False) for i in infos}

    def find(value: str) -> dockerfilters.ImageView:
        want = imagenames.familiar_tagged(value)
        found = [v for v in views.values() if want in v.tags or v.id == value or v.id.removeprefix("sha256:").startswith(
            value.removeprefix("sha256:"))]
        if not found:
            raise errors.NotFound(f"No such image: {value}")
        return found[0]

    out = []
    for view, tags, digests in dockerfilters.images(views.values(), fl, all_=True, find=find):
        row = listing.image_summary(by_id[view.id])
        row["repo_tags"] = [t for t in row["repo_tags"] if imagenames.familiar_tagged(t) in tags]
        row["repo_digests"] = [d for d in row["repo_digests"] if imagenames.familiar_tagged(d) in digests]
        out.append(row)
    return out


def run(args: argparse.Namespace) -> int:
    import sys

    from reconciler import listing
    from reconciler.cli import _agentapi, engines

    options = listing.options_of(listing.IMAGES_FLAGS, args.output, vars(args))
    fmt = None
    if getattr(args, "format", None) is not None:
        from reconciler.cli import output

        fmt = output.format_of(args)        # (over -q, as docker images takes a custom format)
    if getattr(args, "filter", None):
        chosen = _filtered(args)
        sys.stdout.write(listing.images_formatted(chosen, options, fmt) if fmt is not None else
                         listing.images_text(chosen, options))
        return 0
    if fmt is not None:
        # the rows (the agent serves them as JSON; it renders no template), printed by the template
        rows = _agentapi.served(args, "/v1/images") if engines.is_native(args) else None
        sys.stdout.write(listing.images_formatted(rows if isinstance(rows, list) else _summaries(args), options, fmt))
        return 0
    text = _agentapi.printed(args, "/v1/images", options) if engines.is_native(args) else None
    sys.stdout.write(listing.images_text(_summaries(args), options) if text is None else text)
    return 0
