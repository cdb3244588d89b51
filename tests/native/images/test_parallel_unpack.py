"""Parallel unpack (#21): a pull unpacks several layers at once, each into its own snapshot dir,
and commits them in chain order. What it builds is byte for byte what a sequential unpack
builds (whiteouts, opaque dirs, implicit parents, hardlinks into lower layers); a hostile layer
is refused with its own error and nothing above it is committed; a pull killed while several
layers are being unpacked leaves no partial snapshot and no mount."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.runtime import errors
from reconciler.runtime.native.images import images, layers, snapshots
from tests.helpers.images import layer_tar

from .conftest import DIR, LNK, SYM, Entry, native_config
from .test_hostile import Canary, canary  # noqa: F401 - the fixture
from .test_pull import _kill, _pull_process, _read_until

pytestmark = pytest.mark.root


def _bulk(prefix: str, n: int) -> list[Entry]:
    return [Entry(f"{prefix}/d{i // 200}/f{i}", os.urandom(64) + str(i).encode(), mode=0o640 + (i % 2) * 0o100,
                  uid=(i % 3) * 1000, gid=(i % 5)) for i in range(n)]


def _layers(n_bulk: int) -> list[bytes]:
    """Four layers that use every lower-dependent rule of the extractor."""
    base = layer_tar([
        Entry("srv", type=DIR, mode=0o750, uid=1000, gid=1000, mtime=1_600_000_000),
        Entry("srv/keep", b"keep"),
        Entry("hide", type=DIR), Entry("hide/x", b"x"), Entry("hide/y", b"y"),
        Entry("opq", type=DIR, mode=0o711), Entry("opq/a", b"a"),
        Entry("hl", type=DIR), Entry("hl/orig", b"linked", mode=0o4755),
        Entry("hl/link1", type=LNK, linkname="hl/orig"),
        Entry("sym", type=SYM, linkname="/srv"),
        *_bulk("bulk0", n_bulk),
    ])
    one = layer_tar([
        Entry("srv/new/file", b"implicit parents: srv from the lower, srv/new 0755"),
        Entry(".wh.hide"),
        Entry("opq/b", b"b"), Entry("opq/.wh..wh..opq"),         # marker after the new entry
        Entry("hl/link2", type=LNK, linkname="hl/orig"),          # target only in the lower: copy-up
        *_bulk("bulk1", n_bulk),
    ])
    two = layer_tar([
        Entry("hide", type=DIR, mode=0o700),                      # a dir again over the whiteout
        Entry("hide/z", b"z"),
        Entry("srv/new/.wh.file"),
        Entry("bulk0/.wh.d0"),
        *_bulk("bulk2", n_bulk),
    ])
    three = layer_tar([Entry("top", b"top"), Entry("bulk1/d0/extra", b"e")])
    return [base, one, two, three]


_NOW = 1_750_000_000     # the images' times are older; later ones are the unpack's own (whiteouts, new dirs)


def _snapshot_tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything about a snapshot dir: type, mode, owner, mtime (the image's), content, link target, device
    number and every xattr (trusted.overlay.opaque included) per path, and hardlink groups."""
    out: dict[str, tuple[object, ...]] = {}
    inodes: dict[int, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, *([""] if dirpath == str(root) else [])]:
            p = Path(dirpath) / name if name else root
            rel = str(p.relative_to(root))
            st = os.lstat(p)
            extra: object = None
            if stat.S_ISREG(st.st_mode):
                extra = hashlib.sha256(p.read_bytes()).hexdigest()
                if st.st_nlink > 1:
                    inodes.setdefault(st.st_ino, []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode):
                extra = st.st_rdev
            xattrs = tuple(sorted((n, os.getxattr(p, n, follow_symlinks=False))
                                  for n in os.listxattr(p, follow_symlinks=False)))
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                        st.st_mtime_ns if st.st_mtime < _NOW else "now", extra, xattrs)
    for paths in inodes.values():
        out["<links:" + ",".join(sorted(paths)) + ">"] = ()
    return out


def _trees(store: images.ImageStore, ref: str) -> list[dict[str, tuple[object, ...]]]:
    return [_snapshot_tree(d) for d in store.layer_dirs(store.get(ref).id)]


@pytest.fixture
def extract_watch(tmp_path: Path) -> Iterator[Callable[[images.ImageStore], list[int]]]:
    """watch(store) -> a list that gets, every few ms, how many extract-* dirs the store has."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def watch(store: images.ImageStore) -> list[int]:
        seen: list[int] = []

        def run() -> None:
            while not stop.is_set():
                seen.append(sum(1 for p in store.snapshots.dir.iterdir() if p.name.startswith("extract-")))
                time.sleep(0.002)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        threads.append(t)
        return seen

    yield watch
    stop.set()
    for t in threads:
        t.join()


@pytest.mark.registry
def test_parallel_unpack_builds_what_a_sequential_one_does(
    tmp_path: Path, push: Callable[..., str], extract_watch: Callable[[images.ImageStore], list[int]],
    view: Callable[[images.ImageStore, str], Path],
) -> None:
    ref = push(_layers(3000))
    seq = images.ImageStore(dataclasses.replace(native_config(tmp_path / "seq"), max_concurrent_unpacks=1))
    par = images.ImageStore(dataclasses.replace(native_config(tmp_path / "par"), max_concurrent_unpacks=4))
    seq.pull(ref)
    in_flight = extract_watch(par)
    par.pull(ref)
    assert max(in_flight) >= 2, "the layers should have been unpacked at the same time"
    assert _trees(par, ref) == _trees(seq, ref)

    low, one, _, _ = par.layer_dirs(par.get(ref).id)
    srv = os.lstat(one / "srv")                     # implicit parent: the lower dir's attributes
    assert (stat.S_IMODE(srv.st_mode), srv.st_uid, srv.st_mtime_ns) == (0o750, 1000, 1_600_000_000 * 10**9)
    assert stat.S_IMODE(os.lstat(one / "srv" / "new").st_mode) == 0o755
    assert stat.S_ISCHR(os.lstat(one / "hide").st_mode)                       # whiteout
    assert os.getxattr(one / "opq", "trusted.overlay.opaque") == b"y"
    copied = os.lstat(one / "hl" / "orig")                                   # copied up for link2
    assert copied.st_ino == os.lstat(one / "hl" / "link2").st_ino == os.lstat(one / "hl" / "link1").st_ino
    assert stat.S_IMODE(copied.st_mode) == 0o4755
    assert not (low / "hl" / "link2").exists()

    top = view(par, ref)
    assert sorted(os.listdir(top / "opq")) == ["b"]
    assert sorted(os.listdir(top / "hide")) == ["z"]
    assert not (top / "srv" / "new" / "file").exists()
    assert (top / "srv" / "keep").read_bytes() == b"keep"
    assert not (top / "bulk0" / "d0").exists()
    assert (top / "bulk0" / "d1").is_dir()
    assert (top / "hl" / "link2").read_bytes() == b"linked"


def test_lowers_pending_then_fixed_equals_lowers_given(tmp_path: Path) -> None:
    """The extractor alone: a layer applied before its lowers exist (implicit parents fixed
    afterwards) is the layer applied with them; a hardlink into a lower asks for the lowers."""
    base, one = _layers(10)[:2]
    low = tmp_path / "low"
    low.mkdir()
    layers.apply_layer(io.BytesIO(base), low)
    given, pending = tmp_path / "given", tmp_path / "pending"
    given.mkdir()
    pending.mkdir()
    no_link = layer_tar([Entry("srv/new/file", b"f"), Entry("srv/a/b/c", b"c"), Entry(".wh.hide"),
                         Entry("opq/.wh..wh..opq"), Entry("srv/a", type=DIR, mode=0o701)])
    layers.apply_layer(io.BytesIO(no_link), given, lowers=[low])
    res = layers.apply_layer(io.BytesIO(no_link), pending, lowers_pending=True)
    assert {"srv", "srv/new"} <= set(res.implicit_dirs)
    assert "srv/a" not in res.implicit_dirs                                  # it has its own entry
    assert _snapshot_tree(pending) != _snapshot_tree(given)                 # srv: 0755 root until fixed
    layers.fix_implicit_dirs(pending, [low], res.implicit_dirs)
    assert _snapshot_tree(pending) == _snapshot_tree(given)

    (tmp_path / "linked").mkdir()
    with pytest.raises(layers.NeedsLowers, match="hl/link2"):
        layers.apply_layer(io.BytesIO(one), tmp_path / "linked", lowers_pending=True)


@pytest.mark.registry
def test_a_hostile_layer_among_parallel_ones_is_refused_and_nothing_above_commits(
    tmp_path: Path, push: Callable[..., str], canary: Canary,  # noqa: F811
) -> None:
    hostile = layer_tar([*_bulk("h", 500), Entry("../../host/canary", b"pwned")])
    big = _layers(3000)
    ref = push([big[0], hostile, big[1], big[2]])
    store = images.ImageStore(native_config(tmp_path))
    with pytest.raises(errors.ImageError, match="outside the layer root"):
        store.pull(ref)
    chains = snapshots.chain_ids(["sha256:" + hashlib.sha256(x).hexdigest() for x in [big[0], hostile]])
    committed = {snap.chain_id for snap in store.snapshots.list()}
    assert committed <= {chains[0]}, "only the layer below the hostile one may be committed"
    assert not [p for p in store.snapshots.dir.iterdir() if p.name.startswith("extract-")]


@pytest.mark.registry
@pytest.mark.slow
def test_a_pull_killed_while_layers_unpack_in_parallel_leaves_no_partial_snapshot_nor_mount(
    tmp_path: Path, push: Callable[..., str], view: Callable[[images.ImageStore, str], Path],
) -> None:
    ref = push([layer_tar(_bulk(f"l{i}", 6000)) for i in range(4)])
    proc = _pull_process(tmp_path, ref)
    try:
        _read_until(proc, '["extract"', nth=3)       # three layers are being unpacked
    finally:
        _kill(proc)
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()
    store = images.ImageStore(native_config(tmp_path))   # start-up removes dead extractions
    assert not [p for p in store.snapshots.dir.iterdir() if p.name.startswith("extract-")]
    fresh = images.ImageStore(native_config(tmp_path / "fresh"))
    fresh.pull(ref)
    whole = {d.name: _snapshot_tree(d / "fs") for d in fresh.snapshots.dir.iterdir()}
    for snap in store.snapshots.list():                 # whatever was committed is complete
        assert _snapshot_tree(snap.path / "fs") == whole[snap.short_id]
    store.pull(ref)
    assert len(list((view(store, ref) / "l3" / "d29").iterdir())) == 200
