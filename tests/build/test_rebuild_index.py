"""The index of unchanged rebuilds (build/rebuilds.py, #21): `reconcile build` of a context,
Dockerfile and options an earlier build answered wholly from the cache prints the same lines
and names the same image without loading the builder; anything that could change the answer
(a context file, a build arg, the base tag, the cache rows, a tag moved away) sends it to the
full build, which answers as it would have."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.runtime.native.build import rebuilds
from tests.build.conftest import Engine

pytestmark = [pytest.mark.root, pytest.mark.registry]

BUILDER = "reconciler.runtime.native.build.builder"


def build(engine: Engine, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """`reconcile build ARGS` on the engine's root: the process and the modules it imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "reconciler", "build", "--root", str(engine.config.root),
         "--run-dir", str(engine.config.run_dir), "--name-prefix", engine.config.name_prefix, *args],
        capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    modules = {ln.rsplit("|", 1)[1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}
    return proc, modules


def test_an_unchanged_rebuild_is_answered_from_the_index_as_the_full_build_answers(
    engine: Engine, context_dir: Callable[..., Path], busybox_image: str,
) -> None:
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nARG MSG=hi\nRUN echo \"$MSG\" > /msg\nCOPY f /f\n",
                       "f": "one\n"})
    tags = ("-t", "localhost/ri:1", "-t", "localhost/ri")
    build(engine, *tags, str(ctx))                                  # cold: steps run, nothing indexed
    full, loaded = build(engine, *tags, str(ctx))                   # from the cache: indexed
    assert BUILDER in loaded
    assert full.stdout.count(" ---> Using cache") == 3             # ARG, RUN, COPY
    indexed, loaded = build(engine, *tags, str(ctx))
    assert BUILDER not in loaded                                    # answered from the index
    assert indexed.stdout == full.stdout
    image = engine.store.get("localhost/ri:1").id
    quiet, loaded = build(engine, "-q", *tags, str(ctx))
    assert (quiet.stdout, BUILDER in loaded) == (image + "\n", False)

    # a build arg the index has not seen: the full build
    _, loaded = build(engine, *tags, "--build-arg", "MSG=ho", str(ctx))
    assert BUILDER in loaded
    assert engine.store.get("localhost/ri:1").id != image

    # the tag moved away (to the MSG=ho image): the full build tags the image again
    again, loaded = build(engine, *tags, str(ctx))
    assert (again.stdout, BUILDER in loaded) == (full.stdout, True)
    assert engine.store.get("localhost/ri:1").id == image
    assert build(engine, *tags, str(ctx))[1].isdisjoint({BUILDER})

    # a context file changed: its COPY runs again and makes another image
    (ctx / "f").write_text("two\n")
    changed, loaded = build(engine, *tags, str(ctx))
    assert BUILDER in loaded
    assert changed.stdout.count(" ---> Using cache") == 2           # ARG and RUN
    assert engine.store.get("localhost/ri:1").id != image


def test_the_index_is_not_used_once_the_base_tag_or_the_cache_changed(
    engine: Engine, context_dir: Callable[..., Path], busybox_image: str,
) -> None:
    base = context_dir({"Dockerfile": f"FROM {busybox_image}\nRUN echo base > /base\n"})
    build(engine, "-t", "localhost/ri-base:1", str(base))
    ctx = context_dir({"Dockerfile": "FROM localhost/ri-base:1\nRUN cat /base > /copy\n"})
    build(engine, "-t", "localhost/ri-app:1", str(ctx))
    full, _ = build(engine, "-t", "localhost/ri-app:1", str(ctx))
    assert build(engine, "-t", "localhost/ri-app:1", str(ctx))[1].isdisjoint({BUILDER})
    image = engine.store.get("localhost/ri-app:1").id

    # --no-cache replaces the cache rows (a new layer, a new image): the next build answers
    # from those rows, as the full build does, not from the index's image
    build(engine, "--no-cache", "-t", "localhost/ri-other:1", str(ctx))
    after, loaded = build(engine, "-t", "localhost/ri-app:1", str(ctx))
    assert BUILDER in loaded
    assert engine.store.get("localhost/ri-app:1").id == engine.store.get("localhost/ri-other:1").id != image
    assert after.stdout != full.stdout

    # the base tag names another image now: FROM resolves to it, the full build answers
    indexed = engine.store.get("localhost/ri-app:1").id
    assert build(engine, "-t", "localhost/ri-app:1", str(ctx))[1].isdisjoint({BUILDER})
    build(engine, "--build-arg", "X=1", "-t", "localhost/ri-base:1", str(context_dir(
        {"Dockerfile": f"FROM {busybox_image}\nARG X\nRUN echo moved > /base\n"})))
    moved, loaded = build(engine, "-t", "localhost/ri-app:1", str(ctx))
    assert BUILDER in loaded
    assert " ---> Using cache" not in moved.stdout
    assert engine.store.get("localhost/ri-app:1").id != indexed


def test_an_entry_of_an_earlier_progress_is_not_used(
    engine: Engine, context_dir: Callable[..., Path], busybox_image: str,
) -> None:
    """An entry an earlier version recorded (no `lines_format`: its metadata steps printed no
    ` ---> Using cache`) would print those old lines: the full build answers, and records the
    lines it prints now."""
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nENV A=1\nRUN echo x > /x\n"})
    build(engine, "-t", "localhost/ri-old:1", str(ctx))
    full, _ = build(engine, "-t", "localhost/ri-old:1", str(ctx))
    assert full.stdout.count(" ---> Using cache") == 2
    path = engine.config.root / "build" / "rebuilds.json"
    index = json.loads(path.read_text())
    for entry in index.values():            # as the version before recorded it
        del entry["lines_format"]
        entry["lines"].remove(" ---> Using cache")
    path.write_text(json.dumps(index))
    again, loaded = build(engine, "-t", "localhost/ri-old:1", str(ctx))
    assert BUILDER in loaded
    assert again.stdout == full.stdout
    indexed, loaded = build(engine, "-t", "localhost/ri-old:1", str(ctx))
    assert (indexed.stdout, BUILDER in loaded) == (full.stdout, False)


def test_a_dockerfile_linked_from_outside_the_context_is_keyed_by_the_file_it_reads(
    engine: Engine, context_dir: Callable[..., Path], busybox_image: str, tmp_path: Path,
) -> None:
    """ctx/Dockerfile -> a file outside the context: an edit of that file is a new build, not
    the old image from the index (the index once keyed the link itself, which the edit leaves)."""
    ext = tmp_path / "ext"
    ext.mkdir()
    (ext / "Dockerfile").write_text(f"FROM {busybox_image}\nRUN echo one > /v\n")
    ctx = context_dir({"f": "f\n"})
    (ctx / "Dockerfile").symlink_to(ext / "Dockerfile")
    tags = ("-t", "localhost/ri-link:1")
    build(engine, *tags, str(ctx))
    build(engine, *tags, str(ctx))                                  # from the cache: indexed
    assert BUILDER not in build(engine, *tags, str(ctx))[1]
    image = engine.store.get("localhost/ri-link:1").id

    (ext / "Dockerfile").write_text(f"FROM {busybox_image}\nLABEL edited=yes\nRUN echo two > /v\n")
    changed, loaded = build(engine, *tags, str(ctx))
    assert BUILDER in loaded
    assert " ---> Using cache" not in changed.stdout                # the edited steps ran
    assert engine.store.get("localhost/ri-link:1").id != image
    assert engine.config_of("localhost/ri-link:1")["config"]["Labels"] == {"edited": "yes"}


def test_the_key_follows_every_link_the_build_reads_through(tmp_path: Path) -> None:
    """`-f` naming a link to a file outside the context, the Dockerfile's own ignore file as a
    link, the context directory as a link: editing (or retargeting to) the file read moves the
    key; a dangling ignore-file link is keyed as no file, as the build reads none."""
    ext, ctx = tmp_path / "ext", tmp_path / "ctx"
    ext.mkdir()
    ctx.mkdir()
    (ctx / "f").write_text("f\n")
    (ext / "real.Dockerfile").write_text("FROM scratch\n")
    (ext / "link.Dockerfile").symlink_to(ext / "real.Dockerfile")
    (ext / "ignore").write_text("f\n")
    (ext / "link.Dockerfile.dockerignore").symlink_to(ext / "ignore")
    opts = {"context": str(ctx), "dockerfile": str(ext / "link.Dockerfile"), "tags": ("localhost/k:1",)}

    def changes(edit: Callable[[], None]) -> bool:
        before = rebuilds.key(opts)
        edit()
        after = rebuilds.key(opts)
        assert before is not None
        assert after is not None
        return before != after

    assert not changes(lambda: None)
    assert changes(lambda: (ext / "real.Dockerfile").write_text("FROM scratch\nLABEL a=b\n"))
    assert changes(lambda: (ext / "ignore").write_text("g\n"))
    (ext / "other").write_text("g\n")
    assert changes(lambda: os.replace(ext / "other", ext / "ignore"))      # the file read is another
    assert changes(lambda: (ext / "ignore").unlink())                       # dangling: no ignore file

    # the context directory itself a link: the directory read is keyed
    real_ctx = tmp_path / "real-ctx"
    ctx.rename(real_ctx)
    ctx.symlink_to(real_ctx)
    assert not changes(lambda: None)
    assert changes(lambda: os.chmod(real_ctx, 0o700))
