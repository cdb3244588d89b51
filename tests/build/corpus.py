"""The Dockerfile corpus (tests/build/corpus/): each case a directory with a `Dockerfile`, its
golden `expected.txt`, and optionally a `dockerignore` (the context's `.dockerignore`).

`render(text)` is what a golden file holds: the parse of the Dockerfile as the builder checks
it before building (parser directives, then one JSON line per instruction), or `error: ...`
for a file the parser or those checks refuse. `make_context()` writes the context every
oracle build of the corpus uses: files of several modes and owners, directories, symlinks
(relative, absolute, dangling), a hardlink, and tar archives (plain, gzip, bzip2, xz, zstd).
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import tarfile
from pathlib import Path

import zstandard

from reconciler.runtime.native.build import builder, dockerfile

CORPUS = Path(__file__).resolve().parent / "corpus"


def cases() -> list[str]:
    return sorted(p.name for p in CORPUS.iterdir() if (p / "Dockerfile").is_file())


def render(text: str) -> str:
    """The golden text of a Dockerfile: directives and instructions, or the error."""
    try:
        df = dockerfile.parse(text)
        builder.validate(df, this_host=True)
    except dockerfile.DockerfileError as exc:
        return f"error: {exc.message}\n"
    out = [f"directives: {json.dumps(dict(df.directives), sort_keys=True)}"]
    for ins in df.instructions:
        item: dict[str, object] = {"line": ins.line, "cmd": ins.cmd, "args": ins.args}
        if ins.flags:
            item["flags"] = dict(ins.flags)
        if ins.repeated:
            item["repeated"] = {k: list(v) for k, v in ins.repeated.items()}
        if ins.json_args is not None:
            item["json"] = list(ins.json_args)
        if ins.heredocs:
            item["heredocs"] = [{"name": d.name, "text": d.text, "expand": d.expand} for d in ins.heredocs]
        out.append(json.dumps(item, ensure_ascii=False))
    if df.empty_continuations:
        out.append(f"empty continuations at lines: {list(df.empty_continuations)}")
    return "\n".join(out) + "\n"


def _tar(entries: list[tuple[str, bytes | None, int, int]]) -> bytes:
    """A tar of (name, data or None for a directory, mode, uid) entries."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode, uid in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime = mode, uid, uid, 1_600_000_000
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


ARCHIVE = _tar([("pkg/", None, 0o750, 0), ("pkg/bin/", None, 0o755, 0), ("pkg/bin/tool", b"#!/bin/sh\necho tool\n", 0o755, 0),
                ("pkg/etc.conf", b"conf=1\n", 0o640, 42), ("README", b"archive readme\n", 0o644, 0)])


def archives() -> dict[str, bytes]:
    """The archive in every compression Docker's ADD unpacks."""
    return {
        "archive.tar": ARCHIVE,
        "archive.tar.gz": gzip.compress(ARCHIVE, mtime=0),
        "archive.tar.bz2": bz2.compress(ARCHIVE),
        "archive.tar.xz": lzma.compress(ARCHIVE),
        "archive.tar.zst": zstandard.ZstdCompressor().compress(ARCHIVE),
    }


def make_context(ctx: Path, case: str) -> None:
    """The oracle builds' context for `case`, with the case's Dockerfile and .dockerignore."""
    ctx.mkdir(mode=0o700)       # as `mktemp -d` makes it: Docker's results do not depend on it
    files: dict[str, tuple[bytes, int, int]] = {
        "a.txt": (b"a\n", 0o644, 0), "b.txt": (b"bbb\n", 0o600, 0), "run.sh": (b"#!/bin/sh\necho run\n", 0o755, 0),
        "owned.txt": (b"owned by 1234\n", 0o640, 1234), "notes.md": (b"# notes\n", 0o644, 0),
        "dir/one.txt": (b"one\n", 0o644, 0), "dir/sub/two.txt": (b"two\n", 0o664, 0),
        "dir/sub/deeper/three.log": (b"three\n", 0o644, 0), "dir/skip.log": (b"log\n", 0o644, 0),
        "docs/keep/k.md": (b"k\n", 0o644, 0), "docs/drop.md": (b"d\n", 0o644, 0), ".hidden": (b"h\n", 0o644, 0),
        "space name.txt": (b"space\n", 0o644, 0), "src/app/main.py": (b"print(1)\n", 0o644, 0),
        "src/lib/util.py": (b"u = 1\n", 0o644, 0), "src/lib/test_util.py": (b"t = 1\n", 0o644, 0),
    }
    files.update({name: (data, 0o644, 0) for name, data in archives().items()})
    for rel, (data, mode, uid) in files.items():
        p = ctx / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.chown(p, uid, uid)
        os.chmod(p, mode)
    os.chmod(ctx / "dir" / "sub", 0o700)
    os.chmod(ctx / "docs", 0o750)
    os.symlink("one.txt", ctx / "dir" / "link-rel")
    os.symlink("/etc/passwd", ctx / "dir" / "link-abs")
    os.symlink("missing", ctx / "dir" / "link-dangling")
    os.link(ctx / "a.txt", ctx / "dir" / "hard-a.txt")
    here = CORPUS / case
    (ctx / "Dockerfile").write_bytes((here / "Dockerfile").read_bytes())
    if (here / "dockerignore").is_file():
        (ctx / ".dockerignore").write_bytes((here / "dockerignore").read_bytes())
