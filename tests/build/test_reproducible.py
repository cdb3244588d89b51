"""#20 item 3: SOURCE_DATE_EPOCH makes a build reproducible: two builds of the same inputs
(no cache between them, context files touched at different times, RUN steps run at different
times) give the same manifest digest; image and history times are the epoch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.runtime import errors as rterrors
from tests.build.conftest import Engine

pytestmark = [pytest.mark.root, pytest.mark.registry]

EPOCH = 1_700_000_000
DOCKERFILE = """FROM {base}
ARG SOURCE_DATE_EPOCH
COPY . /app/
RUN mkdir -p /out/sub && echo "$SOURCE_DATE_EPOCH" > /out/epoch && touch /out/sub/new && rm /etc/group
WORKDIR /made/here
COPY <<EOF /app/inline
inline
EOF
ENV A=1
"""


def _context(context_dir: Callable[..., Path], base: str, mtime: int) -> Path:
    ctx = context_dir({"Dockerfile": DOCKERFILE.format(base=base), "a.txt": "a\n", "dir/b.txt": "b\n"})
    for p in [ctx, *ctx.rglob("*")]:
        os.utime(p, (mtime, mtime))
    return ctx


def test_same_inputs_same_digest(engine: Engine, context_dir: Callable[..., Path], busybox_image: str) -> None:
    now = int(time.time())
    args = {"SOURCE_DATE_EPOCH": str(EPOCH)}
    first = engine.build(_context(context_dir, busybox_image, now - 100), tags=("localhost/repro:1",),
                         build_args=args, no_cache=True)
    time.sleep(1.1)        # RUN's files and WORKDIR's directory are made a second later
    second = engine.build(_context(context_dir, busybox_image, now - 50), tags=("localhost/repro:2",),
                          build_args=args, no_cache=True)
    assert second.digest == first.digest
    assert second.cached == 0
    cfg = engine.config_of("localhost/repro:1")
    assert cfg["created"] == "2023-11-14T22:13:20Z"
    new = cfg["history"][1:]                 # the base image's own entry keeps its time
    assert {h["created"] for h in new} == {"2023-11-14T22:13:20Z"}
    code, out = engine.run("localhost/repro:1", "stat", "-c", "%n %Y", "/out/epoch", "/out/sub", "/app/a.txt", "/made")
    assert code == 0, out
    assert out.splitlines() == [f"/out/epoch {EPOCH}", f"/out/sub {EPOCH}", f"/app/a.txt {EPOCH}", f"/made {EPOCH}"]

    # a file older than the epoch keeps its time; without the epoch the times are the build's
    old = engine.build(_context(context_dir, busybox_image, EPOCH - 10), tags=("localhost/repro:3",),
                       build_args=args, no_cache=True)      # (a COPY's cache key has no mtimes, as Docker's)
    code, out = engine.run("localhost/repro:3", "stat", "-c", "%Y", "/app/a.txt")
    assert out.strip() == str(EPOCH - 10)
    plain_1 = engine.build(_context(context_dir, busybox_image, now - 100), tags=("localhost/repro:4",), no_cache=True)
    plain_2 = engine.build(_context(context_dir, busybox_image, now - 50), tags=("localhost/repro:5",), no_cache=True)
    assert len({plain_1.digest, plain_2.digest, first.digest, old.digest}) == 4


def test_bad_epoch_is_refused(engine: Engine, context_dir: Callable[..., Path], busybox_image: str) -> None:
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\n"})
    with pytest.raises(rterrors.RuntimeBackendError, match="SOURCE_DATE_EPOCH='yesterday' is not a Unix time"):
        engine.build(ctx, build_args={"SOURCE_DATE_EPOCH": "yesterday"})


def test_cli_takes_the_epoch_from_the_environment(
    engine: Engine, context_dir: Callable[..., Path], busybox_image: str,
) -> None:
    """As buildx does: SOURCE_DATE_EPOCH in the environment of `reconcile build`."""
    ctx = _context(context_dir, busybox_image, int(time.time()))
    argv = [sys.executable, "-m", "reconciler", "build", "--root", str(engine.config.root), "--run-dir",
            str(engine.config.run_dir), "--name-prefix", engine.config.name_prefix, "-q", "-t", "localhost/repro:env",
            str(ctx)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH)})
    assert done.returncode == 0, done.stderr
    cfg = engine.config_of("localhost/repro:env")
    assert cfg["created"] == "2023-11-14T22:13:20Z"
    assert "not consumed" not in json.dumps(done.stdout)
