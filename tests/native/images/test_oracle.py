"""Correctness oracle: the root filesystem seen through our overlay mount of a pulled image
equals what `umoci unpack` makes of the same OCI layout (paths, types, modes, owners, sizes,
content hashes, link targets, device numbers, user.* xattrs, hardlink groups)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.runtime.native.images import images
from tests.helpers.images import layer_tar

from .conftest import BLK, CHR, DIR, FIFO, LNK, SYM, Entry, tree, umoci_tree, write_layout

pytestmark = [pytest.mark.root, pytest.mark.registry]

CASES: dict[str, list[list[Entry]]] = {
    "whiteouts": [
        [Entry("a", type=DIR, mode=0o755), Entry("a/f1", b"1"), Entry("a/f2", b"2"),
         Entry("b", type=DIR), Entry("b/inner", b"i"), Entry("c", b"c")],
        [Entry("a/.wh.f1"), Entry(".wh.b"), Entry(".wh.c"), Entry("c", b"c again")],
    ],
    "opaque-after-new-files": [
        [Entry("etc", type=DIR, mode=0o755), Entry("etc/conf.d", type=DIR, mode=0o755),
         Entry("etc/conf.d/one", b"1"), Entry("etc/conf.d/two", b"2")],
        [Entry("etc/conf.d/three", b"3"), Entry("etc/conf.d/.wh..wh..opq")],
    ],
    "file-dir-file": [
        [Entry("x", b"file"), Entry("keep", b"k")],
        [Entry("x", type=DIR, mode=0o750), Entry("x/y", b"inside")],
        [Entry("x", b"file again", mode=0o600)],
        [Entry("x", type=DIR, mode=0o711), Entry("x/z", b"z")],
    ],
    "hardlinks": [
        [Entry("data", type=DIR, mode=0o755), Entry("data/orig", b"shared", mode=0o640, uid=7),
         Entry("data/same-layer", type=LNK, linkname="data/orig")],
        [Entry("data/cross-layer", type=LNK, linkname="data/orig"), Entry("other", b"o"),
         Entry("other2", type=LNK, linkname="other")],
    ],
    "symlinks": [
        [Entry("bin", type=DIR), Entry("bin/busybox", b"#!", mode=0o755),
         Entry("bin/sh", type=SYM, linkname="busybox"),
         Entry("abs", type=SYM, linkname="/etc/passwd"), Entry("dangling", type=SYM, linkname="../nowhere"),
         Entry("dirlink", type=SYM, linkname="bin")],
        [Entry("bin/sh", type=SYM, linkname="/bin/busybox"), Entry("abs", b"now a file")],
    ],
    "modes-and-owners": [
        [Entry("usr", type=DIR), Entry("usr/bin", type=DIR), Entry("usr/bin/su", b"su", mode=0o4755),
         Entry("usr/bin/wall", b"w", mode=0o2755, gid=5), Entry("shared", type=DIR, mode=0o2775, gid=50),
         Entry("tmp", type=DIR, mode=0o1777), Entry("home", type=DIR),
         Entry("home/app", type=DIR, mode=0o700, uid=1000, gid=1000),
         Entry("home/app/secret", b"s", mode=0o400, uid=1000, gid=1000)],
        [Entry("usr/bin/su", b"su2", mode=0o4711), Entry("home/app/more", b"m", uid=1000, gid=1000)],
    ],
    "xattrs": [
        [Entry("f", b"x", pax={"SCHILY.xattr.user.color": "blue"}),
         Entry("d", type=DIR, pax={"SCHILY.xattr.user.kind": "dir"})],
        [Entry("g", b"y", pax={"SCHILY.xattr.user.a": "1", "SCHILY.xattr.user.b": "2"})],
    ],
    "devices": [
        [Entry("dev", type=DIR), Entry("dev/null", type=CHR, mode=0o666),
         Entry("dev/loop9", type=BLK, mode=0o660, gid=6), Entry("dev/pipe", type=FIFO, mode=0o600)],
    ],
    "empty-layers": [
        [Entry("a", b"a")],
        [],
        [Entry("b", b"b")],
        [],
    ],
    "duplicate-layers": [
        [Entry("same", b"same"), Entry("d", type=DIR)],
        [Entry("top", b"t")],
        [Entry("same", b"same"), Entry("d", type=DIR)],
    ],
    "implicit-parent-keeps-lower-attrs": [
        [Entry("p", type=DIR, mode=0o700, uid=1000, gid=1000)],
        [Entry("p/q/r", b"deep")],
    ],
}

DEVICES = {"dev/null": (1, 3), "dev/loop9": (7, 9)}


def _layer_bytes(entries: list[Entry]) -> bytes:
    data = layer_tar(entries)
    if not any(e.type in (CHR, BLK) for e in entries):
        return data
    # layer_tar has no device numbers: patch them in by rewriting the tar.
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as src, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for m in src.getmembers():
            if m.name in DEVICES:
                m.devmajor, m.devminor = DEVICES[m.name]
            dst.addfile(m, src.extractfile(m) if m.isreg() else None)
    return out.getvalue()


@pytest.mark.parametrize("compression", ["gzip"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_overlay_view_equals_umoci_unpack(
    case: str, compression: str, store: images.ImageStore, push: Callable[..., str],
    view: Callable[[images.ImageStore, str], Path], tmp_path: Path,
) -> None:
    ref = push([_layer_bytes(layer) for layer in CASES[case]], compression=compression)
    store.pull(ref)
    ours = tree(view(store, ref))
    theirs = umoci_tree(push.layouts[ref], "latest", tmp_path)  # type: ignore[attr-defined]
    assert ours == theirs
    assert ours  # the comparison saw files


@pytest.mark.parametrize("compression", ["zstd", "tar"])
def test_zstd_and_plain_tar_layers(
    compression: str, store: images.ImageStore, push: Callable[..., str],
    view: Callable[[images.ImageStore, str], Path], tmp_path: Path,
) -> None:
    layers = [_layer_bytes(layer) for layer in CASES["whiteouts"] + CASES["hardlinks"]]
    ref = push(layers, compression=compression)
    store.pull(ref)
    # umoci 0.4.7 cannot read zstd layers: it unpacks the same layers gzip-compressed.
    gz_layout = tmp_path / "gzip-layout"
    write_layout(gz_layout, layers)
    assert tree(view(store, ref)) == umoci_tree(gz_layout, "latest", tmp_path)
