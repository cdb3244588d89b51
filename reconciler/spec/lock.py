"""The lock file: image references pinned to the digests `reconcile lock` resolved them to.

`<manifest dir>/reconciler.lock` (YAML; not a manifest: the loader reads only *.yaml/*.yml):

    # written by `reconcile lock` ...
    apiVersion: reconciler/v1
    kind: Lock
    images:
      registry.example:5000/shop/web:1.4: sha256:4f1c...

When it is present, `spec.load` turns every container image written as a key into
`key@digest` (a reference pinned by digest: the tag is documentation, the digest decides), so
CI and every host converge to the same bytes however the tag moves. Its content counts in the
revision. Delete the file (or rerun `reconcile lock`) to follow the tags again.

The pin is not part of a container's spec hash (hashing.py): writing or deleting the lock
replaces no container that runs the pinned digest already; the planner's digest comparison
replaces one that runs another.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from reconciler.spec import errors

__all__ = ["LOCK_NAME", "lock_path", "pin", "read", "render", "write"]

LOCK_NAME = "reconciler.lock"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_HEADER = (
    "# Written by `reconcile lock`: the digest each image reference resolved to. While this file\n"
    "# is here, `reconcile apply` runs exactly these digests whatever the tags point to now.\n"
    "# Refresh: `reconcile lock SOURCE`. Follow the tags again: delete this file.\n"
)


def lock_path(source: str | os.PathLike[str]) -> Path | None:
    """Where the lock of `source` lives: in the directory, or beside the file; None for stdin."""
    s = os.fspath(source)
    if s == "-":
        return None
    p = Path(s)
    return (p if p.is_dir() else p.absolute().parent) / LOCK_NAME


def read(path: Path, problems: list[errors.Problem]) -> dict[str, str]:
    """The pins of a lock file ({} when there is none); problems are appended, not raised."""
    import yaml

    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        problems.append(_problem(path, f"cannot read the lock file: {exc.strerror}"))
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problems.append(_problem(path, f"the lock file is not valid YAML ({exc}); rerun `reconcile lock`"))
        return {}
    if not isinstance(data, dict) or data.get("kind") != "Lock" or not isinstance(data.get("images", {}), dict):
        problems.append(_problem(path, "not a reconciler lock file (kind: Lock with an images: map); "
                                 "rerun `reconcile lock` or delete it"))
        return {}
    pins: dict[str, str] = {}
    for ref, digest in (data.get("images") or {}).items():
        if not isinstance(ref, str) or "@" in ref or not isinstance(digest, str) or not _DIGEST.match(digest):
            problems.append(_problem(path, f"images: {ref!r}: {digest!r} is not a reference mapped to a "
                                     "sha256:<64 hex> digest; rerun `reconcile lock`"))
            continue
        pins[ref] = digest
    return pins


def pin(ref: str, pins: Mapping[str, str]) -> str:
    """`ref@digest` when the lock names `ref`; references with a digest already stay as they are."""
    digest = pins.get(ref)
    return f"{ref}@{digest}" if digest and "@" not in ref else ref


def render(pins: Mapping[str, str]) -> str:
    import yaml

    body = yaml.safe_dump({"apiVersion": "reconciler/v1", "kind": "Lock", "images": dict(sorted(pins.items()))},
                          sort_keys=False, default_flow_style=False, width=1000)
    return _HEADER + body


def write(path: Path, pins: Mapping[str, str]) -> None:
    """Replace the lock file atomically (readers see the old or the new one, never half)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(render(pins))
    os.replace(tmp, path)


def _problem(path: Path, message: str) -> errors.Problem:
    return errors.Problem(file=str(path), line=1, column=1, kind="Lock", name="", field="", message=message)
