"""COPY and ADD as BuildKit does them: what a source names, what `.dockerignore` keeps, what ADD
unpacks, and what a copy keeps and makes."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import os
import socket
import stat
import struct
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.runtime.native.build import builder
from tests.build.conftest import Engine

pytestmark = [pytest.mark.root, pytest.mark.registry]

Ctx = Callable[..., Path]


def layer_members(engine: Engine, image: str, index: int = -1) -> dict[str, tarfile.TarInfo]:
    """The entries of one layer of a stored image, by name."""
    rec = engine.store.layer_records(engine.store.get(image).id)[index]
    with engine.store.content.open(rec.digest) as f, tarfile.open(fileobj=io.BytesIO(gzip.decompress(f.read()))) as t:
        return {m.name: m for m in t.getmembers()}


def _tar(entries: list[tuple[str, bytes | None]]) -> bytes:
    """A tar of (name, content) entries; content None: a directory. Owners 1:1."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in entries:
            ti = tarfile.TarInfo(name)
            ti.uid = ti.gid = 1
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_a_glob_may_match_nothing(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({"Dockerfile": f"""FROM {busybox_image} AS one
FROM {busybox_image}
COPY package.json yarn.lock* /app/
COPY nomatch* /none/
COPY --from=one /nomatch* /none-either/
""", "package.json": "{}\n"})
    engine.build(ctx, tags=("localhost/glob:1",))
    code, out = engine.run("localhost/glob:1", "sh", "-c", "ls -A /app; [ -e /none ] || [ -e /none-either ] || echo none")
    assert (code, out.splitlines()) == (0, ["package.json", "none"])
    # a path without wildcard must be there, and so must the directory a glob starts from
    for line in ("COPY package.json yarn.lock /app/", "COPY nodir/*.json /app/"):
        bad = context_dir({"Dockerfile": f"FROM {busybox_image}\n{line}\n", "package.json": "{}\n"})
        with pytest.raises(builder.BuildError, match=r"(yarn\.lock|nodir): not found in the build context"):
            engine.build(bad)


def test_an_excluded_directory_holds_what_is_kept_below_it(engine: Engine, context_dir: Ctx,
                                                          busybox_image: str) -> None:
    ctx = context_dir({
        "Dockerfile": f"FROM {busybox_image}\nWORKDIR /w\nCOPY src ./src\nCOPY s* /glob/\nCOPY src/sub /sub\n",
        ".dockerignore": "*\n!src/**/*.py\n",
        "src/a.py": "a", "src/b.txt": "b", "src/sub/c.py": "c", "src/sub/d.md": "d", "src/none/e.txt": "e",
        "secret.txt": "s",
    })
    engine.build(ctx, tags=("localhost/negate:1",))
    code, out = engine.run("localhost/negate:1", "sh", "-c", "cd / && find w glob sub | sort")
    assert code == 0, out
    assert out.splitlines() == ["glob", "glob/a.py", "glob/sub", "glob/sub/c.py", "sub", "sub/c.py",
                                "w", "w/src", "w/src/a.py", "w/src/sub", "w/src/sub/c.py"]
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nCOPY d /x\n", ".dockerignore": "d\n!d/keep\n",
                       "d/keep": "k", "d/drop": "x", "d/sub/drop": "x"})
    engine.build(ctx, tags=("localhost/negate:2",))
    code, out = engine.run("localhost/negate:2", "sh", "-c", "cd /x && find . | sort")
    assert (code, out.splitlines()) == (0, [".", "./keep"])
    # a directory with nothing kept below it is not there
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nCOPY d /x\n", ".dockerignore": "d\n!e/keep\n",
                       "d/keep": "k"})
    with pytest.raises(builder.BuildError, match=r"d: not found in the build context \(excluded by \.dockerignore\)"):
        engine.build(ctx)


def test_a_symlink_is_followed_in_the_context_dockerignore_leaves(engine: Engine, context_dir: Ctx,
                                                                  busybox_image: str) -> None:
    """BuildKit's context is the tree .dockerignore leaves: a link to an excluded file or into an
    excluded directory leads nowhere (dockerd: `file not found in build context or excluded by
    .dockerignore`), and a directory reached through a link is filtered by its real path's rules."""
    files: dict[str, str | bytes] = {".dockerignore": "secret.env\nprivate\n**/*.txt\n!src/b.txt\n",
                                     "secret.env": "SECRET\n", "private/key": "pk\n",
                                     "src/a.txt": "a\n", "src/b.txt": "b\n", "src/c.md": "c\n"}
    leaks = ("COPY alias /x/alias", "COPY pdir /x/pdir/", "COPY pdir/key /x/", "COPY al* /x/",
             "RUN --mount=type=bind,source=alias,target=/s cat /s",
             "RUN --mount=type=bind,source=pdir,target=/s cat /s/key")
    for line in leaks:
        ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\n{line}\n", **files})
        os.symlink("secret.env", ctx / "alias")
        os.symlink("private", ctx / "pdir")
        with pytest.raises(builder.BuildError, match=r"not found in the build context \(excluded by \.dockerignore\)"):
            engine.build(ctx)
    ctx = context_dir({"Dockerfile": f"""FROM {busybox_image}
COPY linkdir /x/links/
COPY linkdir/b.txt linkdir/c.md /x/one/
RUN --mount=type=bind,source=linkdir,target=/s ls /s > /x/bound
COPY . /x/all/
""", **files})
    os.symlink("secret.env", ctx / "alias")
    os.symlink("src", ctx / "linkdir")
    engine.build(ctx, tags=("localhost/links:2",))
    code, out = engine.run("localhost/links:2", "sh", "-c",
                           "cd /x && find links one all -type f | sort; cat bound; readlink all/alias")
    assert code == 0, out
    assert out.splitlines() == ["all/.dockerignore", "all/Dockerfile", "all/src/b.txt", "all/src/c.md",
                                "links/b.txt", "links/c.md", "one/b.txt", "one/c.md",
                                "b.txt", "c.md", "secret.env"]    # (a link is copied as a link)
    # the step's cache key sees the filtered tree through the link too: a file kept only by
    # its real path's rule is an input
    before = engine.build(ctx).image_id
    (ctx / "src" / "b.txt").write_text("changed\n")
    assert engine.build(ctx).image_id != before


def test_fifos_and_devices_are_copied_sockets_are_not(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    """dockerd's builder copies a FIFO (prw-r--r--) and device nodes from the context and from a
    stage; they were dropped. A socket is no content: left out, as dockerd leaves it."""
    ctx = context_dir({"Dockerfile": f"""FROM {busybox_image} AS src
RUN mkdir /s && mkfifo -m 640 /s/pipe && mknod /s/cdev c 1 3 && echo f > /s/f
FROM {busybox_image}
COPY . /x/
COPY --from=src /s /fromstage/
ADD pipe /added/
""", "file": "f\n"})
    os.mkfifo(ctx / "pipe", 0o644)
    os.mknod(ctx / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(ctx / "loop", 0o640 | stat.S_IFBLK, os.makedev(7, 0))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(ctx / "sock"))
    sock.close()
    engine.build(ctx, tags=("localhost/nodes:1",))
    code, out = engine.run("localhost/nodes:1", "sh", "-c",
                           "cd / && stat -c '%n %A %t:%T' x/pipe x/null x/loop fromstage/pipe fromstage/cdev "
                           "added/pipe; ls -A x")
    assert code == 0, out
    assert out.splitlines() == ["x/pipe prw-r--r-- 0:0", "x/null crw------- 1:3", "x/loop brw-r----- 7:0",
                                "fromstage/pipe prw-r----- 0:0", "fromstage/cdev crw-r--r-- 1:3",
                                "added/pipe prw-r--r-- 0:0",
                                "Dockerfile", "file", "loop", "null", "pipe"]


def test_a_bom_in_dockerignore_is_not_part_of_the_pattern(engine: Engine, context_dir: Ctx,
                                                           busybox_image: str) -> None:
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nCOPY . /app\n",
                       ".dockerignore": b"\xef\xbb\xbf.env\r\n  # not a comment\n",
                       ".env": "TOKEN=secret\n", "a.txt": "a\n", "# not a comment": "x"})
    engine.build(ctx, tags=("localhost/bom:1",))
    code, out = engine.run("localhost/bom:1", "sh", "-c", "cd /app && find . -type f | sort")
    assert (code, out.splitlines()) == (0, ["./.dockerignore", "./Dockerfile", "./a.txt"])


def test_add_unpacks_only_what_decompresses_to_a_tar(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    text_gz = gzip.compress(b"just text\n")
    text_bz2 = bz2.compress(b"just text\n" * 100)
    ctx = context_dir({
        "Dockerfile": f"FROM {busybox_image}\nADD x.gz y.bz2 t.tar.gz /out/\n",
        "x.gz": text_gz, "y.bz2": text_bz2, "t.tar.gz": gzip.compress(_tar([("in-tar", b"t")])),
    })
    engine.build(ctx, tags=("localhost/addgz:1",))
    code, out = engine.run("localhost/addgz:1", "sh", "-c", "cd /out && ls && sha256sum x.gz y.bz2")
    assert code == 0, out
    assert out.splitlines() == ["in-tar", "x.gz", "y.bz2", f"{hashlib.sha256(text_gz).hexdigest()}  x.gz",
                                f"{hashlib.sha256(text_bz2).hexdigest()}  y.bz2"]


def test_copy_keeps_xattrs_and_hardlinks(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({
        "Dockerfile": f"""FROM {busybox_image} AS b
COPY cap /bin/cap
RUN mkdir /made && echo x > /made/l1 && ln /made/l1 /made/l2 && echo y > /made/other
FROM {busybox_image}
COPY --from=b /bin/cap /cap
COPY --chown=5:6 cap /cap2
COPY --from=b /made /made/
COPY links /links/
""", "cap": "#!/bin/sh\n", "links/h1": "same\n", "links/z": "other\n"})
    # a file capability as `setcap cap_net_raw+ep` writes it (VFS_CAP_REVISION_2, effective)
    capability = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)
    os.setxattr(ctx / "cap", "security.capability", capability)
    os.setxattr(ctx / "cap", "user.origin", b"context")
    os.link(ctx / "links" / "h1", ctx / "links" / "h2")
    engine.build(ctx, tags=("localhost/xattr:1",))
    for index, name in ((-4, "cap"), (-3, "cap2")):
        m = layer_members(engine, "localhost/xattr:1", index)[name]
        assert m.pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") == capability
        assert m.pax_headers["SCHILY.xattr.user.origin"] == "context"
    for index, (first, second) in ((-2, ("made/l1", "made/l2")), (-1, ("links/h1", "links/h2"))):
        got = layer_members(engine, "localhost/xattr:1", index)
        assert [(got[n].type, got[n].linkname) for n in (first, second)] == [
            (tarfile.REGTYPE, ""), (tarfile.LNKTYPE, first)]
    code, out = engine.run("localhost/xattr:1", "sh", "-c", "stat -c '%h %u' /links/h1 /links/z /made/l1 /made/other "
                           "/cap2; [ /links/h1 -ef /links/h2 ] && echo one")
    assert (code, out.splitlines()) == (0, ["2 0", "1 0", "2 0", "1 0", "1 5", "one"])


def test_destinations_through_symlinks_and_onto_files(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    base = f"""FROM {busybox_image}
RUN ln -s /target/dir /d1 && ln -s /srv/app /app && ln -s ../../up/and/away /rel && touch /x
"""
    files: dict[str, str | bytes] = {"f": "f\n", "dir/g": "g\n"}
    ctx = context_dir({"Dockerfile": base + "COPY f /d1/\nCOPY f /rel/f2\nWORKDIR /app\nCOPY dir sub/\n", **files})
    engine.build(ctx, tags=("localhost/links:1",))
    code, out = engine.run("localhost/links:1", "sh", "-c",
                           "cat /target/dir/f /up/and/away/f2 /srv/app/sub/g; stat -c '%a' /target /srv/app")
    assert (code, out.splitlines()) == (0, ["f", "f", "g", "755", "755"])
    for line in ("COPY dir /x", "COPY f /x/y", "COPY f /x/", "COPY f dir /x/", "WORKDIR /x/w"):
        bad = context_dir({"Dockerfile": base + line + "\n", **files})
        with pytest.raises(builder.BuildError,
                           match=r"Dockerfile line 3\): /x\S*: a part of it exists and is not a directory"):
            engine.build(bad)


def test_directory_times_make_the_same_layer(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    def make() -> Path:
        ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nCOPY tree /app/\nCOPY tree/sub /app2\n",
                           "tree/a": "a", "tree/sub/b": "b", "tree/sub/deeper/c": "c"})
        os.link(ctx / "tree" / "a", ctx / "tree" / "sub" / "a-again")
        for p in sorted(ctx.rglob("*"), reverse=True):
            os.utime(p, (1_600_000_000, 1_600_000_000), follow_symlinks=False)
        return ctx

    def layers(image: str) -> list[str]:
        return [r.digest for r in engine.store.layer_records(engine.store.get(image).id)]

    engine.build(make(), tags=("localhost/times:1",), no_cache=True)
    time.sleep(1.1)         # a directory made or written now would have another time
    engine.build(make(), tags=("localhost/times:2",), no_cache=True)
    assert layers("localhost/times:2") == layers("localhost/times:1")
    code, out = engine.run("localhost/times:1", "stat", "-c", "%Y %n", "/app", "/app/sub", "/app/sub/deeper", "/app2")
    assert (code, out.splitlines()) == (0, ["1600000000 /app", "1600000000 /app/sub", "1600000000 /app/sub/deeper",
                                            "1600000000 /app2"])


def test_add_chown_owns_what_an_archive_unpacks(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nADD --chown=100:200 t.tar /out/\nADD t.tar /plain/\n",
                       "t.tar": _tar([("a", b"a"), ("sub", None), ("sub/b", b"b")])})
    engine.build(ctx, tags=("localhost/addchown:1",))
    code, out = engine.run("localhost/addchown:1", "sh", "-c",
                           "stat -c '%u:%g %n' /out /out/a /out/sub /out/sub/b /plain /plain/a")
    assert (code, out.splitlines()) == (0, ["100:200 /out", "100:200 /out/a", "100:200 /out/sub", "100:200 /out/sub/b",
                                            "0:0 /plain", "1:1 /plain/a"])


PARENTS_BASE = """FROM {base} AS base
WORKDIR /test
RUN mkdir -p a/b/c/d/e a/b2/c/d/e a/b/c2/d/e a/b/c2/d/e2 && \\
    touch a/b/c/d/foo a/b/c/d/e/bay a/b2/c/d/e/bar a/b/c2/d/e/baz a/b/c2/d/e2/baz
FROM {base}
"""


def test_copy_parents_as_buildkit(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    """BuildKit's testCopyRelativeParents and testCopyParentsMissingDirectory: the first `/./` is
    the pivot, `**` any number of directories, a glob that matches nothing still makes the
    destination."""
    ctx = context_dir({"Dockerfile": PARENTS_BASE.format(base=busybox_image) + """
COPY --from=base --parents /test/a/b/./c/d /middle/
COPY --from=base --parents /test/a/b/c/d/. /end/
COPY --from=base --parents ./test/a/b/c/d /start/
COPY --from=base --parents /test/a/./b/./c /double/
COPY --from=base --parents /test/a/./*/c /wildcard/
COPY --from=base --parents /test/a/b*/./c/**/e /doublewildcard/
COPY --from=base --parents /test/a/b/c*/./d/**/baz /test/a/b*/./c/**/bar /doubleinputs/
COPY --from=base --parents /test/a/nob*/c /wildcard-nonexistent/
COPY --from=base --parents /test/a/b/./c9* /wildcard-afterpivot/
"""})
    engine.build(ctx, tags=("localhost/parents:2",))
    code, out = engine.run("localhost/parents:2", "sh", "-c",
                           "cd / && find middle end start double wildcard doublewildcard doubleinputs "
                           "wildcard-nonexistent wildcard-afterpivot | sort")
    assert code == 0, out
    d = ["c/d", "c/d/e", "c/d/e/bay", "c/d/foo"]
    assert out.splitlines() == sorted([
        "middle", "middle/c", *(f"middle/{x}" for x in d),
        *(f"{top}{x}" for top in ("end", "start")
          for x in ["", "/test", "/test/a", "/test/a/b", "/test/a/b/c", *(f"/test/a/b/{x}" for x in d)]),
        "double", "double/b", "double/b/c", *(f"double/b/{x}" for x in d),
        "wildcard", "wildcard/b", "wildcard/b/c", *(f"wildcard/b/{x}" for x in d),
        "wildcard/b2", "wildcard/b2/c", "wildcard/b2/c/d", "wildcard/b2/c/d/e", "wildcard/b2/c/d/e/bar",
        "doublewildcard", "doublewildcard/c", "doublewildcard/c/d", "doublewildcard/c/d/e",
        "doublewildcard/c/d/e/bay", "doublewildcard/c/d/e/bar",
        "doubleinputs", "doubleinputs/c", "doubleinputs/c/d", "doubleinputs/c/d/e", "doubleinputs/c/d/e/bar",
        "doubleinputs/d", "doubleinputs/d/e", "doubleinputs/d/e/baz", "doubleinputs/d/e2", "doubleinputs/d/e2/baz",
        "wildcard-nonexistent", "wildcard-afterpivot",
    ])
    bad = context_dir({"Dockerfile": PARENTS_BASE.format(base=busybox_image)
                       + "COPY --from=base --parents /test/nonexistent-file /out/\n"})
    with pytest.raises(builder.BuildError, match=r"/test/nonexistent-file: not found in stage base"):
        engine.build(bad)
