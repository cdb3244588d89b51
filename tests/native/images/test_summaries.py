"""`reconcile images` without an agent (#21): the state DB's rows read without opening the image
store (images/summaries.read) give what the store gives, and the command then loads no dataclass."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from reconciler import listing
from reconciler.runtime.native.build import push as build_push
from reconciler.runtime.native.images import images, summaries
from tests.helpers import images as timg
from tests.native.images.conftest import native_config

REPO = Path(__file__).resolve().parents[3]


def _from_store(store: images.ImageStore) -> list[dict[str, object]]:
    return [listing.image_summary(i) for i in store.list()]


def test_the_rows_alone_give_what_the_store_gives(tmp_path: Path, push: Callable[..., str]) -> None:
    config = native_config(tmp_path)
    store = images.ImageStore(config)
    first = push([timg.busybox_layer()], tag="one")
    store.pull(first)
    build_push.tag(store, first, "local/first:also")                 # one image, two tags
    moved = push([timg.busybox_layer([timg.Entry("etc/moved", b"1")])], tag="moved")
    store.pull(moved)
    repo = moved.rsplit(":", 1)[0]
    build_push.tag(store, first, f"{repo}:moved")       # the tag moves on: the pulled image is left untagged
    gone = push([timg.busybox_layer([timg.Entry("etc/gone", b"2")])], tag="gone")
    store.pull(gone)

    expected = _from_store(store)
    assert summaries.read(str(config.root)) == expected
    assert sorted(len(s["repo_tags"]) for s in expected) == [0, 1, 3]    # type: ignore[arg-type]

    # an image whose config blob is gone: left out by both
    gone_id = str(store.get(gone).id)
    (config.root / "blobs" / "sha256" / gone_id.removeprefix("sha256:")).unlink()
    expected = _from_store(store)
    assert gone_id not in {s["id"] for s in expected}
    assert summaries.read(str(config.root)) == expected


def test_no_database_yet_leaves_the_answer_to_the_store(tmp_path: Path) -> None:
    assert summaries.read(str(tmp_path / "nothing")) is None
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "state.db").write_bytes(b"")           # no images table
    assert summaries.read(str(tmp_path / "root")) is None


def test_images_without_an_agent_loads_no_store_and_prints_the_same(tmp_path: Path, push: Callable[..., str]) -> None:
    config = native_config(tmp_path)
    store = images.ImageStore(config)
    store.pull(push([timg.busybox_layer()], tag="x"))
    env = {**os.environ, "RECONCILER_ROOT": str(config.root), "RECONCILER_RUN_DIR": str(config.run_dir),
           "RECONCILER_PREFIX": config.name_prefix}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "reconciler", "images", "--digests"], cwd=REPO,
                          env=env, capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = {ln.rsplit("|", 1)[1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}
    assert not modules & {"dataclasses", "reconciler.runtime.native.images.images", "reconciler._sqlite",
                          "reconciler.runtime.base", "reconciler.runtime.native.config"}
    shown = listing.images_text(_from_store(store), listing.options_of(listing.IMAGES_FLAGS, "table", {
        "quiet": False, "digests": True, "no_trunc": False}))
    assert proc.stdout == shown
