"""An image's SIZE is its layers' unpacked bytes, as `docker images` counts them (dockerd's
overlay2 driver: `st_size` of every non-directory of a layer's diff dir, each inode once), not
their compressed blobs': counted by the extractor as it unpacks, kept with the snapshot, summed
into the image's row; an image an older version recorded is measured once when a process opens
the store, and shows its compressed size until then, `images` never walking a snapshot.

The oracle is GNU find over the snapshot dirs (`-printf '%i %s'` of everything not a directory),
independent of the engine's own count. tests/docker/test_image_sizes.py compares with dockerd."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.images import images, layers
from tests.helpers import images as timg
from tests.native.images.conftest import DIR, FIFO, LNK, SYM, Entry, native_config

pytestmark = [pytest.mark.root, pytest.mark.registry]

REPO = Path(__file__).resolve().parents[3]
TEXT = b"all work and no play makes jack a dull boy\n" * 200_000      # 8.6 MB, gzip makes it ~1000x smaller


def find_size(path: Path) -> int:
    """What docker counts of a layer's dir, by GNU find: each non-directory's size, inodes once."""
    out = subprocess.run(["find", str(path), "!", "-type", "d", "-printf", "%i %s\n"], check=True,
                         capture_output=True, text=True).stdout
    return sum(int(size) for size in dict(line.split() for line in out.splitlines()).values())


def tricky_layers(twice: bool = False) -> list[bytes]:
    """A base and a top layer with what the count must get right: hard links (once), symlinks
    (their target's length), a directory of the layer below replaced by a file, empty files,
    FIFOs, whiteouts, and a hard link to a file of the layer below (copied up). `twice`: the top
    layer also names a file twice and a directory then a file at one path (the last one counts),
    which an archive may do and an image layer may not (the extractor refuses it, as dockerd)."""
    base = timg.layer_tar([
        Entry("etc", type=DIR, mode=0o755), Entry("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
        Entry("etc/group", b"root:x:0:\n"), Entry("lib", type=DIR, mode=0o755),
        Entry("lib/libc.so", b"\x7fELF" + b"c" * 20_000), Entry("lib/libc.so.6", type=SYM, linkname="libc.so"),
        Entry("lib/hard", type=LNK, linkname="lib/libc.so"), Entry("old", type=DIR),
        Entry("old/inside", b"i" * 777),
    ])
    top = timg.layer_tar([
        Entry("data", type=DIR, mode=0o755), Entry("data/big.txt", TEXT),
        Entry("data/again", type=LNK, linkname="data/big.txt"), Entry("data/link", type=SYM, linkname="big.txt"),
        *([Entry("data/twice", b"x" * 5000)] if twice else []), Entry("data/twice", b"y" * 300),
        Entry("data/empty", b""), Entry("data/fifo", type=FIFO), Entry("etc/.wh.group"), Entry("old", b"a file now"),
        Entry("lib/relinked", type=LNK, linkname="lib/libc.so"),
        *([Entry("gone", type=DIR), Entry("gone/x", b"z" * 50)] if twice else []), Entry("gone", b"now a file"),
    ])
    return [base, top]


def snapshot_dirs(store: images.ImageStore, ref: str) -> list[Path]:
    return store.layer_dirs(store.get(ref).id)


def cli(config: NativeConfig, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RECONCILER_ROOT": str(config.root), "RECONCILER_RUN_DIR": str(config.run_dir),
           "RECONCILER_PREFIX": config.name_prefix}
    return subprocess.run([sys.executable, "-m", "reconciler", *argv], cwd=REPO, env=env, capture_output=True,
                          text=True, check=False, timeout=120)


@pytest.mark.parametrize("process_unpack", [False, True], ids=["threads", "extractor-processes"])
def test_the_size_of_a_pulled_image_is_its_unpacked_files_as_docker_counts_them(
        tmp_path: Path, push: Callable[..., str], process_unpack: bool) -> None:
    config = native_config(tmp_path)
    if process_unpack:      # every layer unpacked in an extractor process (extractors.py)
        config = NativeConfig(root=config.root, run_dir=config.run_dir, name_prefix=config.name_prefix,
                              process_unpack_min_bytes=0)
    store = images.ImageStore(config)
    ref = push(tricky_layers())
    info = store.pull(ref)

    dirs = snapshot_dirs(store, ref)
    per_layer = [find_size(d) for d in dirs]
    assert info.size == sum(per_layer)
    assert [store.snapshots.info(r.chain_id).unpacked for r in store.layer_records(info.id)] == per_layer
    assert per_layer[1] == len(TEXT) + len("big.txt") + 300 + 10 + 10 + 20_004     # the copy-up of libc.so counts here
    compressed = sum(r.size for r in store.layer_records(info.id))
    assert info.size > 50 * compressed          # the compressed blobs are what SIZE showed before

    rows = json.loads(cli(config, "images", "-o", "json").stdout)
    assert [r["size"] for r in rows] == [info.size]


def test_the_extractor_counts_what_a_walk_of_the_layer_finds(tmp_path: Path) -> None:
    """The count made while unpacking is the walk's (docker's) for each kind of entry, also when
    the layer replaces what it made: then the snapshot is walked once."""
    base, top = tricky_layers(twice=True)
    plain = timg.layer_tar([Entry("d", type=DIR), Entry("d/f", b"12345"), Entry("d/s", type=SYM, linkname="f"),
                            Entry("d/h", type=LNK, linkname="d/f"), Entry("e", b"")])
    for name, blob, below in (("plain", plain, []), ("base", base, []), ("top", top, ["base"])):
        dest = tmp_path / name
        dest.mkdir()
        res = layers.apply_layer(io.BytesIO(blob), dest, lowers=[tmp_path / b for b in below])
        assert res.unpacked == find_size(dest) == layers.unpacked_size(dest), name
    assert res.size > 0
    plain_dest = tmp_path / "plain"
    assert layers.unpacked_size(plain_dest) == len(b"12345") + len("f")        # d/h is d/f: once


def test_an_image_an_older_version_recorded_is_measured_once_when_the_store_opens(
        tmp_path: Path, push: Callable[..., str]) -> None:
    """An older state root: an images table without the `unpacked` column, snapshots without
    their unpacked size. `images` shows the compressed size and walks nothing; the first open of
    the store measures each snapshot once and `images` then shows the unpacked size."""
    config = native_config(tmp_path)
    store = images.ImageStore(config)
    ref = push(tricky_layers())
    info = store.pull(ref)
    unpacked, compressed = info.size, sum(r.size for r in store.layer_records(info.id))
    store.db.close()
    metas = [d.parent / "meta.json" for d in snapshot_dirs(store, ref)]
    for meta in metas:                  # as an older version wrote them
        doc = json.loads(meta.read_text())
        del doc["unpacked"]
        meta.write_text(json.dumps(doc))
    with sqlite3.connect(config.root / "state.db") as db:
        db.execute("ALTER TABLE images DROP COLUMN unpacked")
    db.close()

    shown = json.loads(cli(config, "images", "-o", "json").stdout)
    assert [r["size"] for r in shown] == [compressed]
    assert all("unpacked" not in json.loads(m.read_text()) for m in metas)     # `images` measured nothing

    # another process's store (a pull, run, the agent): a config of its own, its own database
    reopened = images.ImageStore(NativeConfig(root=config.root, run_dir=config.run_dir, name_prefix=config.name_prefix))
    assert reopened.get(ref).size == unpacked
    assert [json.loads(m.read_text())["unpacked"] for m in metas] == [find_size(m.parent / "fs") for m in metas]
    shown = json.loads(cli(config, "images", "-o", "json").stdout)
    assert [r["size"] for r in shown] == [unpacked]


def test_images_sharing_a_layer_each_count_it_and_system_df_counts_it_once(
        tmp_path: Path, push: Callable[..., str]) -> None:
    config = native_config(tmp_path)
    store = images.ImageStore(config)
    base = timg.busybox_layer()
    one = store.pull(push([base, timg.layer_tar([Entry("one", b"1" * 1000)])], tag="one"))
    two = store.pull(push([base, timg.layer_tar([Entry("two", b"2" * 3000)])], tag="two"))
    shared = find_size(store.layer_dirs(one.id)[0])
    assert (one.size, two.size) == (shared + 1000, shared + 3000)
    assert store.layers_size() == shared + 1000 + 3000


def test_a_loaded_image_has_the_size_of_the_pulled_one(tmp_path: Path, push: Callable[..., str]) -> None:
    """`load` counts the layers it unpacks as a pull does (builds and commits: the docker peer
    checks in tests/build/test_docker_peer.py and tests/native/containers/test_commit.py)."""
    from reconciler.runtime.native.images import archive

    config = native_config(tmp_path)
    store = images.ImageStore(config)
    ref = push(tricky_layers())
    pulled = store.pull(ref)
    saved = tmp_path / "saved.tar"
    with saved.open("wb") as f:
        archive.save(store, [ref], f)

    other = images.ImageStore(native_config(tmp_path / "other"))
    with saved.open("rb") as f:
        loaded = archive.load(other, f)
    size = other.get(loaded[0].id).size
    assert size == pulled.size == sum(find_size(d) for d in other.layer_dirs(loaded[0].id))

