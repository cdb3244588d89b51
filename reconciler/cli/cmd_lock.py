"""`reconcile lock SOURCE`: pin every image reference of the manifests to its current digest.

Resolves each tag reference (one HEAD per reference, through the registry client with the
host's credentials) and writes `reconciler.lock` beside the manifests (spec/lock.py). While
the file is there, `apply`, `diff` and the agent run exactly those digests, so CI and every
host converge to the same bytes however the tags move. References written with `@sha256:`
are pinned already; images built from a context (`build:`) are local and not locked.

Exit 0 written (or, with --check, the lock matches the registries); 1 a reference could not be
resolved (nothing written) or --check found a difference; 2 invalid manifests or usage.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "lock", help="pin the manifests' image references to their current digests (reconciler.lock)",
        description="Resolve every image tag the manifests name and write reconciler.lock beside them; "
        "apply then uses those digests. Exit 0 done, 1 a reference did not resolve (nothing written), "
        "2 invalid input.",
    )
    parser.add_argument("source", metavar="SOURCE", help="a manifest file or a directory (searched recursively)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when the lock is missing or a tag moved since")
    from reconciler.cli import output

    output.add_output_flag(parser)
    parser.set_defaults(run=run, no_logging=True)


def _refs(desired: Any) -> list[str]:
    """Tag references of the containers (digest-pinned and locally built ones left out)."""
    refs = set()
    for c in desired.containers.values():
        img = desired.images.get(c.image_object) if c.image_object else None
        if (img is not None and img.build is not None) or "@" in c.image:
            continue
        refs.add(c.image)
    return sorted(refs)


def run(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from reconciler import spec
    from reconciler.cli import output
    from reconciler.registry_client import client, errors
    from reconciler.spec import lock

    if args.source == "-":
        print("error: lock needs a file or directory (the lock file is written beside it)", file=sys.stderr)
        return 2
    desired = spec.load(args.source, use_lock=False)       # SpecError: exit 2, nothing written
    path = lock.lock_path(args.source)
    assert path is not None
    refs = _refs(desired)
    pins: dict[str, str] = {}
    failed: dict[str, str] = {}
    with client.RegistryClient() as reg:
        def resolve(ref: str) -> None:
            try:
                pins[ref] = reg.resolve(ref).digest
            except errors.RegistryError as exc:
                failed[ref] = str(exc)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(resolve, refs))
    for ref, err in sorted(failed.items()):
        print(f"error: cannot resolve {ref}: {err}", file=sys.stderr)
    if failed:
        print(f"{path} not written", file=sys.stderr)
        return 1
    old = lock.read(path, []) if path.exists() else None
    rows = [{"ref": r, "digest": d, "change": "" if old is None or old.get(r) == d else
             ("new" if r not in old else "moved")} for r, d in sorted(pins.items())]
    if not args.check:
        lock.write(path, pins)
    columns = [("IMAGE", "ref"), ("DIGEST", "digest"), ("CHANGE", "change")]
    output.render(args, {"lock": str(path), "images": rows, "up_to_date": old == pins, "written": not args.check},
                  lambda: output.print_table(rows, columns) if rows else None)
    note = sys.stderr if output.wants_data(args) else sys.stdout
    if args.check:
        if old != pins:
            print(f"{path} is {'missing' if old is None else 'out of date'}; run `reconcile lock {args.source}`",
                  file=note)
            return 1
        print(f"{path} is up to date", file=note)
        return 0
    print(f"wrote {path} ({len(pins)} image{'' if len(pins) == 1 else 's'})", file=note)
    return 0
