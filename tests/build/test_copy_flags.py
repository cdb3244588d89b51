"""COPY/ADD --chmod (octal and symbolic), --link and --exclude (#20 item 3), built on the
native engine. chmod(1) itself (umask 0, as BuildKit applies a symbolic mode) is the oracle
for what a symbolic --chmod gives a file and a directory."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.runtime.native.build import builder, context
from tests.build.conftest import Engine

pytestmark = [pytest.mark.root, pytest.mark.registry]

Ctx = Callable[..., Path]

# (where GNU chmod and BuildKit's BSD setmode differ, for `t` with a who, see test_dockerfile.py)
SPECS = ["0751", "u+x,g-r", "a=rX,u+w", "go=u-w", "+t", "o=", "u=rwx,g=rx,o=", "a-x", "o+X", "ug+s", "=r"]


def chmod_oracle(tmp_path: Path, spec: str, mode: int, *, is_dir: bool) -> int:
    """What chmod(1) makes of `mode` with `spec` under umask 0."""
    p = tmp_path / ("oracle-dir" if is_dir else "oracle-file")
    if is_dir:
        p.mkdir()
    else:
        p.touch()
    try:
        os.chmod(p, mode)
        subprocess.run(["sh", "-c", 'umask 0; chmod -- "$1" "$2"', "sh", spec, str(p)], check=True)
        return os.stat(p).st_mode & 0o7777
    finally:
        p.rmdir() if is_dir else p.unlink()


def test_chmod_octal_and_symbolic(engine: Engine, context_dir: Ctx, busybox_image: str, tmp_path: Path) -> None:
    lines = [f"FROM {busybox_image}"]
    for i, spec in enumerate(SPECS):
        lines.append(f"COPY --chmod={spec} d /c{i}/")
    paths = " ".join(f"/c{i}/f /c{i}/x /c{i}/sub" for i in range(len(SPECS)))
    lines.append(f"CMD [\"sh\", \"-c\", \"stat -c '%n %a' {paths}\"]")
    ctx = context_dir({"Dockerfile": "\n".join(lines) + "\n", "d/f": "f", "d/x": "#!/bin/sh\n", "d/sub/g": "g"})
    os.chmod(ctx / "d" / "f", 0o644)
    os.chmod(ctx / "d" / "x", 0o755)
    os.chmod(ctx / "d" / "sub", 0o700)
    engine.build(ctx, tags=("localhost/chmod:1",))
    code, out = engine.run("localhost/chmod:1")
    assert code == 0, out
    want = []
    for i, spec in enumerate(SPECS):
        want += [f"/c{i}/f {chmod_oracle(tmp_path, spec, 0o644, is_dir=False):o}",
                 f"/c{i}/x {chmod_oracle(tmp_path, spec, 0o755, is_dir=False):o}",
                 f"/c{i}/sub {chmod_oracle(tmp_path, spec, 0o700, is_dir=True):o}"]
    assert out.splitlines() == want
    _code, out = engine.run("localhost/chmod:1", "stat", "-c", "%a", "/c0")
    assert out.strip() == "755"          # the destination the copy created is not chmodded


@pytest.mark.parametrize("spec", ["999", "u+q", "x+r", "", "u+x,,g+w", "07777777"])
def test_bad_chmod_is_refused(engine: Engine, context_dir: Ctx, busybox_image: str, spec: str) -> None:
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nCOPY --chmod={spec} f /f\n", "f": "f"})
    with pytest.raises(builder.BuildError, match=r"--chmod=.* is not a mode: give octal \(0755\) or symbolic"):
        engine.build(ctx)
    with pytest.raises(context.ContextError):
        context.Chmod.parse(spec)


def test_exclude(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({
        "Dockerfile": f"""FROM {busybox_image}
COPY --exclude=*.txt --exclude=sub/deep . /all/
COPY --exclude=**/*.txt sub /sub/
COPY --exclude=*.md *.md *.go /glob/
ADD --exclude=!never --exclude=d.* sub /added/
""",
        "a.txt": "a", "b.md": "b", "keep.go": "k", "sub/c.txt": "c", "sub/d.go": "d", "sub/deep/e.txt": "e",
    })
    first = engine.build(ctx, tags=("localhost/exclude:1",))
    names = ["", "Dockerfile", "a.txt", "b.md", "keep.go", "sub", "sub/c.txt", "sub/d.go", "sub/deep", "sub/deep/e.txt",
             "c.txt", "d.go", "deep", "deep/e.txt"]
    candidates = " ".join(f"/{d}/{n}".rstrip("/") for d in ("all", "sub", "glob", "added") for n in names)
    _code, out = engine.run("localhost/exclude:1", "sh", "-c", f"for p in {candidates}; do test -e $p && echo $p; done")
    assert sorted(out.split()) == sorted([
        "/all", "/all/Dockerfile", "/all/b.md", "/all/keep.go", "/all/sub", "/all/sub/c.txt", "/all/sub/d.go",
        "/sub", "/sub/d.go", "/sub/deep",
        "/glob", "/glob/keep.go",
        "/added", "/added/c.txt", "/added/deep", "/added/deep/e.txt",
    ])
    (ctx / "a.txt").write_text("changed")        # excluded everywhere: no step reruns
    again = engine.build(ctx, tags=("localhost/exclude:1",))
    assert (again.cached, again.image_id) == (4, first.image_id)
    (ctx / "sub" / "deep" / "e.txt").write_text("changed")
    assert engine.build(ctx).cached == 3         # only ADD ... sub copies e.txt


def test_link_gives_the_same_layer(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    """--link is accepted; this builder's layers already hold only what the step copied, so
    the layer is the one COPY without it makes (the same cache entry)."""
    plain = context_dir({"Dockerfile": f"FROM {busybox_image}\nCOPY --chown=7:8 d /x/\n", "d/f": "f"})
    engine.build(plain, tags=("localhost/link:plain",))
    (plain / "Dockerfile").write_text(f"FROM {busybox_image}\nCOPY --link --chown=7:8 d /x/\n")
    linked = engine.build(plain, tags=("localhost/link:linked",))
    assert linked.cached == 1
    ids = [engine.config_of(f"localhost/link:{t}")["rootfs"]["diff_ids"] for t in ("plain", "linked")]
    assert ids[0] == ids[1]
    (plain / "Dockerfile").write_text(f"FROM {busybox_image}\nCOPY --link=maybe d /x/\n")
    with pytest.raises(builder.BuildError, match="--link=maybe"):
        engine.build(plain)
