"""`reconcile images`: the native engine's images, as `docker images` lists them; asked of the
agent that holds the state root when one runs (#21), else read from the root."""

from __future__ import annotations

import time
from datetime import datetime

# annotations only: what the read-only commands import at start-up stays small (#21)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

__all__ = ["image_rows", "register", "run"]

COLUMNS = (("REPOSITORY", "repository"), ("TAG", "tag"), ("IMAGE ID", "short_id"),
           ("CREATED", "created_ago"), ("SIZE", "size_text"))


def register(subparsers: Any) -> None:
    from reconciler.cli import engines, options, output

    parser = subparsers.add_parser("images", help="list images",
                                   description="List the native engine's images.")
    options.add_engine_options(parser)
    engines.add_runtime_flag(parser, "images")
    output.add_output_flag(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="only print image ids")
    parser.add_argument("--digests", action="store_true", help="show digests")
    parser.add_argument("--no-trunc", action="store_true", help="do not truncate image ids")
    parser.set_defaults(run=run, no_logging=True)   # prints data only


def _ago(created: str | None) -> str:
    if not created:
        return "N/A"
    try:
        ts = datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return "N/A"
    s = max(0, int(time.time() - ts))
    for unit, secs in (("year", 365 * 86400), ("month", 30 * 86400), ("week", 7 * 86400),
                       ("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= secs:
            n = s // secs
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "Less than a second ago" if s < 1 else f"{s} seconds ago"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.3g}{unit}"
        value /= 1000
    return f"{value:.3g}TB"


def image_rows(infos: list[Any], *, no_trunc: bool = False) -> list[dict[str, Any]]:
    """One row per tag (untagged images once, as <none>), newest first."""
    rows = []
    for info in infos:
        tags = list(info.repo_tags) or ["<none>:<none>"]
        for t in tags:
            repo, _, tag = t.rpartition(":")
            rows.append({
                "repository": repo, "tag": tag, "id": info.id,
                "short_id": info.id if no_trunc else info.id.split(":", 1)[1][:12],
                "digest": info.digest or "<none>", "created": info.created,
                "created_ago": _ago(info.created), "size": info.size, "size_text": _size(info.size),
            })
    return rows


def _infos(args: argparse.Namespace) -> list[Any]:
    """The engine's images (id, digest, repo_tags, size, created), newest first: served by the
    agent that holds the state root when one runs (#21), else read from the root."""
    from types import SimpleNamespace

    from reconciler.cli import _agentapi, engines, options

    if not engines.is_native(args):
        rt = engines.open_runtime(args, "images")
        try:
            return sorted(rt.list_images(), key=lambda i: i.created or "", reverse=True)
        finally:
            rt.close()
    served = _agentapi.served(args, "/v1/images")
    if served is not None:
        return [SimpleNamespace(**doc) for doc in served]
    if not options.engine_exists(args):
        return []
    # the image store, only when no agent answered (not cmd_pull's open_store: its module's imports)
    from reconciler.runtime import opening

    return opening.open_image_store(engines.place(args)).list()


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import output

    rows = image_rows(_infos(args), no_trunc=args.no_trunc)
    if args.quiet:
        seen: list[str] = []
        for r in rows:
            if r["short_id"] not in seen:
                seen.append(r["short_id"])
        print("\n".join(seen))
        return 0
    if output.wants_data(args):
        output.print_data([{k: r[k] for k in ("repository", "tag", "id", "digest", "created", "size")}
                           for r in rows], args.output)
        return 0
    columns = list(COLUMNS)
    if args.digests:
        columns.insert(2, ("DIGEST", "digest"))
    output.print_table(rows, columns)
    return 0
