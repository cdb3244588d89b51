"""The index of unchanged rebuilds (#21): a build that an earlier one answered wholly from the
cache is answered again from `<root>/build/rebuilds.json`, without parsing the Dockerfile or
loading the builder, the image store or the container code.

The key is the sha256 of the reconciler version, the build options (context, Dockerfile path,
build args, target, tags, network, allow_insecure) and the identity (mode, owner, device, inode,
size, mtime and ctime in ns: any write moves ctime, which no one can set back, as for the
context's file digests) of what the build reads: every entry of the context by lstat (the build
follows no link out of the context, and the entries a link inside it leads to are entries too),
the context directory, the Dockerfile and its own ignore file by stat, through any symlink (a
Dockerfile that links to a file outside the context, or a -f path that is a link, is keyed by the
file read, so an edit of that file is seen). Only a build with tags, no --no-cache, --pull, secrets or SSH agents, whose every
step was a cache hit, that pulled nothing and fetched no ADD URL, and whose context has at most
MAX_ENTRIES entries is recorded.

An entry holds the image id, the image references the build resolved (FROM, COPY --from, RUN
--mount from=) with the image each named, the build cache rows it used, and the lines it
printed (with their format, `LINES`: an entry of an earlier progress is not used). A lookup answers only if every reference still names that complete image, every cache
row is still the same (a --no-cache build replaces them) with its blob and snapshot, and every
tag names the image: then the full build would print the same lines and make the same image
(an unchanged rebuild makes the same id). Otherwise, or when anything cannot be read, the full
build runs: the index is never the only way to an answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reconciler import __version__
from reconciler.runtime.native.images import presence

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["KEEP", "LINES", "MAX_ENTRIES", "key", "lookup", "record"]

MAX_ENTRIES = 4096      # context entries walked for a key; a larger context gets no index entry
KEEP = 64               # index entries kept, the newest
# the lines an entry holds are those of this version of the progress: an entry without it (an
# earlier version's, whose metadata steps printed no `Running in` or `Using cache`, or whose
# image had the history texts before history.py's, another id) is not used
LINES = 3


def key(options: Mapping[str, Any]) -> str | None:
    """The index key of a build with `options` (BuildOptions' fields, by name), or None when
    such a build is never indexed or its context is too large or unreadable."""
    if options.get("no_cache") or options.get("pull") or options.get("secrets") or options.get("ssh") \
            or not options.get("tags"):
        return None
    ctx = os.path.abspath(str(options["context"]))
    dockerfile = str(options.get("dockerfile") or "Dockerfile")
    df_path = dockerfile if os.path.isabs(dockerfile) else os.path.join(ctx, dockerfile)
    h = hashlib.sha256(json.dumps({
        "version": __version__, "context": ctx, "dockerfile": df_path,
        "build_args": dict(sorted(dict(options.get("build_args") or {}).items())), "target": options.get("target"),
        "tags": list(options["tags"]), "network": options.get("network", "none"),
        "allow_insecure": bool(options.get("allow_insecure")),
    }, sort_keys=True).encode())
    try:
        for path in (df_path, df_path + ".dockerignore"):
            h.update(_identity(path, _stat(path)))
        if not _walk(ctx, h):
            return None
    except OSError:
        return None
    return h.hexdigest()


def _stat(path: str) -> os.stat_result | None:
    """The stat of the file the build reads at `path` (symlinks followed: the build opens it so),
    None when there is none (a dangling link too: the build reads no file there either)."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def _identity(rel: str, st: os.stat_result | None) -> bytes:
    """`rel` (the file system's bytes: a name that is no UTF-8 is one too) and its identity."""
    if st is None:
        return os.fsencode(rel) + b"\0-\n"
    return os.fsencode(rel) + (f"\0{st.st_mode} {st.st_uid} {st.st_gid} {st.st_dev} {st.st_ino} {st.st_size} "
                               f"{st.st_mtime_ns} {st.st_ctime_ns}\n").encode()


def _walk(ctx: str, h: Any) -> bool:
    """Feed the identity of `ctx` (through a link: the directory read) and everything beneath it
    (symlinks not followed) to `h`, in a fixed order; False past MAX_ENTRIES."""
    h.update(_identity(".", os.stat(ctx)))
    todo, seen = [""], 0
    while todo:
        rel = todo.pop()
        with os.scandir(os.path.join(ctx, rel)) as it:
            entries = sorted(it, key=lambda e: e.name)
        seen += len(entries)
        if seen > MAX_ENTRIES:
            return False
        for e in entries:
            sub = f"{rel}/{e.name}" if rel else e.name
            st = e.stat(follow_symlinks=False)
            h.update(_identity(sub, st))
            if e.is_dir(follow_symlinks=False):
                todo.append(sub)
    return True


def lookup(root: Path, options: Mapping[str, Any]) -> tuple[str, list[str]] | None:
    """(image id, the lines the build prints) of an unchanged rebuild with `options`, from the
    index of the state root `root`; None when the full build must answer."""
    k = key(options)
    entry = _load(root).get(k) if k is not None else None
    if not isinstance(entry, dict):
        return None
    try:
        if entry.get("lines_format") != LINES:
            return None
        image_id = str(entry["image_id"])
        names = {**{str(n): str(i) for n, i in entry["refs"].items()}, **dict.fromkeys(entry["tags"], image_id)}
        if any((presence.stored(root, name) or ("",))[0] != image_id_ for name, image_id_ in names.items()):
            return None
        if not _cache_unchanged(root, entry["cache"]):
            return None
        return image_id, [str(line) for line in entry["lines"]]
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _cache_unchanged(root: Path, rows: Sequence[Sequence[str]]) -> bool:
    """Whether the build cache still has each (key, layer, created) row as recorded, with the
    layer's blob and snapshot (the state DB read through dbformat.query: read-only, its format
    checked)."""
    from reconciler import dbformat

    wanted = {str(r[0]): (str(r[1]), str(r[2])) for r in rows}
    if not wanted:
        return True
    marks = ",".join("?" * len(wanted))
    found = dbformat.query(os.path.join(root, "state.db"),
                           f"SELECT key, layer, created FROM build_cache WHERE key IN ({marks})",  # noqa: S608 - placeholders only
                           tuple(wanted), timeout=5.0)
    if found is None:
        return False
    got = {str(k): (str(layer), str(created)) for k, layer, created in found}
    if got != wanted:
        return False
    layers = [json.loads(layer) for layer, _ in wanted.values()]
    return presence.complete(root, [str(x["digest"]) for x in layers], [str(x["chain_id"]) for x in layers])


def record(root: Path, k: str, *, image_id: str, refs: Mapping[str, str], tags: Sequence[str],
           cache: Sequence[tuple[str, str, str]], lines: Sequence[str]) -> None:
    """Remember the build of key `k` (see `key`): its image, the image references it resolved
    ("name:tag" -> id), its tags ("name:tag"), the cache rows it used (key, layer, created) and
    the lines it printed. The index keeps the newest KEEP entries; a write that fails is skipped."""
    index = _load(root)
    index.pop(k, None)
    index[k] = {"image_id": image_id, "refs": dict(refs), "tags": list(tags), "cache": [list(c) for c in cache],
                "lines": list(lines), "lines_format": LINES}
    path = root / "build" / "rebuilds.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(dict(list(index.items())[-KEEP:]), f, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _load(root: Path) -> dict[str, Any]:
    try:
        with open(root / "build" / "rebuilds.json", encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}
