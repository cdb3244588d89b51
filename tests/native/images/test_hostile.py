"""A corpus of hostile layers: each is rejected with a clear error or contained inside its
snapshot, and nothing outside the snapshot (a canary directory beside it, the host's disks)
is created, written, linked, chmodded or chowned."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.runtime import errors
from reconciler.runtime.native.images import images, layers, snapshots
from tests.helpers import hostile
from tests.helpers.images import layer_tar, push_layout
from tests.helpers.measure import run_measured

from .conftest import BLK, CHR, DIR, LNK, SYM, Entry, native_config, write_layout

pytestmark = pytest.mark.root

HOST_DISK = "/dev/vda" if os.path.exists("/dev/vda") else "/dev/loop0"


@dataclass
class Canary:
    """A directory outside the store with a file, both watched for any change."""

    dir: Path
    file: Path

    def snapshot(self) -> tuple[object, ...]:
        st = os.lstat(self.file)
        dst = os.lstat(self.dir)
        return (sorted(os.listdir(self.dir)), self.file.read_bytes(), st.st_mode, st.st_uid,
                st.st_gid, st.st_mtime_ns, st.st_nlink, dst.st_mode, dst.st_uid,
                os.listxattr(self.dir), os.listxattr(self.file))


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Canary]:
    d = tmp_path / "host"
    d.mkdir()
    f = d / "canary"
    f.write_bytes(b"original")
    os.chmod(f, 0o644)
    c = Canary(d, f)
    before = c.snapshot()
    disk_before = os.stat(HOST_DISK) if os.path.exists(HOST_DISK) else None
    yield c
    assert c.snapshot() == before, "the canary outside the snapshot changed"
    if disk_before is not None:
        after = os.stat(HOST_DISK)
        assert (after.st_mode, after.st_uid, after.st_gid) == (disk_before.st_mode, disk_before.st_uid, disk_before.st_gid)


def _tar(entries: list[Entry], fmt: int = tarfile.PAX_FORMAT, devs: dict[str, tuple[int, int]] | None = None) -> bytes:
    if not devs and fmt == tarfile.PAX_FORMAT:
        return layer_tar(entries)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type, info.mode, info.linkname, info.mtime = e.type, e.mode, e.linkname, e.mtime
            if devs and e.name in devs:
                info.devmajor, info.devminor = devs[e.name]
            data = e.data or b""
            info.size = len(data) if e.type == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if info.size else None)
    return out.getvalue()


def _apply(base: Path, blobs: list[bytes], **kw: object) -> list[Path]:
    done: list[Path] = []
    for i, blob in enumerate(blobs):
        fs = base / "snap" / f"l{i}" / "fs"
        fs.mkdir(parents=True)
        layers.apply_layer(io.BytesIO(blob), fs, lowers=list(reversed(done)), **kw)  # type: ignore[arg-type]
        done.append(fs)
    return done


Case = Callable[[Canary], list[bytes]]


def _host(c: Canary) -> str:
    return str(c.dir)


REJECTED: dict[str, tuple[Case, str]] = {
    "dotdot-name": (lambda c: [_tar([Entry("../../host/canary", b"pwned")])], "outside the layer root"),
    "dotdot-deep": (lambda c: [_tar([Entry("a/b/../../../x", b"pwned")])], "outside the layer root"),
    "dot-slash-dotdot": (lambda c: [_tar([Entry("./a/../../x", b"pwned")])], "outside the layer root"),
    "root-as-symlink-dot": (lambda c: [_tar([Entry(".", type=SYM, linkname=_host(c))])], "type of the root"),
    "root-as-symlink-slash": (lambda c: [_tar([Entry("/", type=SYM, linkname="/")])], "type of the root"),
    "root-as-file": (lambda c: [_tar([Entry("./", b"x")])], "type of the root"),
    "hardlink-dotdot": (lambda c: [_tar([Entry("h", type=LNK, linkname="../../../host/canary")])],
                        "outside the layer root"),
    "hardlink-absolute-host-path": (lambda c: [_tar([Entry("h", type=LNK, linkname=str(c.file))])],
                                    "does not exist"),
    "hardlink-through-symlinked-dir": (lambda c: [_tar([Entry("s", type=SYM, linkname=_host(c)),
                                                        Entry("h", type=LNK, linkname="s/canary")])],
                                       "does not exist"),
    "hardlink-to-directory": (lambda c: [_tar([Entry("d", type=DIR), Entry("h", type=LNK, linkname="d")])],
                              "is a directory"),
    "whiteout-of-dotdot": (lambda c: [_tar([Entry("a", type=DIR)]), _tar([Entry("a/.wh..."), ])], "invalid whiteout"),
    "whiteout-empty-name": (lambda c: [_tar([Entry("a", type=DIR)]), _tar([Entry("a/.wh.")])], "invalid whiteout"),
    "device-number-too-big": (lambda c: [_tar([Entry("d", type=CHR)], fmt=tarfile.GNU_FORMAT,
                                              devs={"d": (1 << 40, 1)})], "out-of-range"),
    "file-under-a-file": (lambda c: [_tar([Entry("f", b"x"), Entry("f/g", b"y")])], "not a directory"),
    # sparse members: their holes would be written as zeros no cap counts (#14 item 4)
    "sparse-gnu": (lambda c: [hostile.sparse_gnu("big", 64 << 20)], "'big' is a sparse file"),
    "sparse-pax-0.0": (lambda c: [hostile.sparse_pax("big", 64 << 20, "0.0")], "'big' is a sparse file"),
    "sparse-pax-0.1": (lambda c: [hostile.sparse_pax("big", 64 << 20, "0.1")], "'big' is a sparse file"),
    "sparse-pax-1.0": (lambda c: [hostile.sparse_pax("big", 64 << 20, "1.0")], "'big' is a sparse file"),
    # tarfile parses a chain of extended headers recursively: a clear error, not a RecursionError
    "chain-of-2000-small-pax-headers": (lambda c: [hostile.pax_chain(2000, 64)], "chains too many extended tar headers"),
}

CONTAINED: dict[str, tuple[Case, Callable[[Path, Canary], None]]] = {}


def _contained(name: str, blobs: Case) -> Callable[[Callable[[Path, Canary], None]], Callable[[Path, Canary], None]]:
    def deco(check: Callable[[Path, Canary], None]) -> Callable[[Path, Canary], None]:
        CONTAINED[name] = (blobs, check)
        return check
    return deco


@_contained("absolute-name", lambda c: [_tar([Entry(str(c.file), b"pwned")])])
def _abs(top: Path, c: Canary) -> None:
    assert (top / str(c.file).lstrip("/")).read_bytes() == b"pwned"


@_contained("double-slash", lambda c: [_tar([Entry("a//b", b"x")])])
def _dslash(top: Path, c: Canary) -> None:
    assert (top / "a" / "b").read_bytes() == b"x"


@_contained("symlink-root-then-write", lambda c: [_tar([Entry("evil", type=SYM, linkname="/"),
                                                        Entry("evil" + str(c.file), b"pwned")])])
def _symroot(top: Path, c: Canary) -> None:
    assert (top / str(c.file).lstrip("/")).read_bytes() == b"pwned"
    assert os.readlink(top / "evil") == "/"


@_contained("symlink-dotdots-then-write", lambda c: [_tar([Entry("evil", type=SYM, linkname="../../../../.."),
                                                           Entry("evil/x", b"pwned")])])
def _symup(top: Path, c: Canary) -> None:
    assert (top / "x").read_bytes() == b"pwned"


@_contained("symlink-to-host-dir-then-write", lambda c: [_tar([Entry("evil", type=SYM, linkname=_host(c)),
                                                               Entry("evil/canary", b"pwned")])])
def _symhost(top: Path, c: Canary) -> None:
    assert (top / _host(c).lstrip("/") / "canary").read_bytes() == b"pwned"


@_contained("symlink-in-lower-then-write", lambda c: [_tar([Entry("evil", type=SYM, linkname=_host(c))]),
                                                      _tar([Entry("evil/canary", b"pwned")])])
def _symlower(top: Path, c: Canary) -> None:
    assert (top / "evil" / "canary").read_bytes() == b"pwned"   # a new dir in the upper layer


@_contained("symlink-parent-swap", lambda c: [_tar([Entry("d", type=DIR), Entry("d/f", b"1"),
                                                    Entry("d", type=SYM, linkname=_host(c)),
                                                    Entry("d/canary", b"pwned")])])
def _swap(top: Path, c: Canary) -> None:
    assert os.path.islink(top / "d")
    assert (top / _host(c).lstrip("/") / "canary").read_bytes() == b"pwned"


@_contained("write-over-symlink-to-host-file", lambda c: [_tar([Entry("s", type=SYM, linkname=str(c.file)),
                                                                Entry("s", b"pwned", mode=0o777)])])
def _over(top: Path, c: Canary) -> None:
    assert (top / "s").read_bytes() == b"pwned"
    assert not os.path.islink(top / "s")


@_contained("chmod-dir-over-symlink", lambda c: [_tar([Entry("s", type=SYM, linkname=_host(c)),
                                                       Entry("s", type=DIR, mode=0o777)])])
def _chmod(top: Path, c: Canary) -> None:
    assert stat.S_IMODE(os.lstat(top / "s").st_mode) == 0o777
    assert os.path.isdir(top / "s")
    assert not os.path.islink(top / "s")


@_contained("hardlink-to-symlink-then-write", lambda c: [_tar([Entry("s", type=SYM, linkname=str(c.file)),
                                                               Entry("h", type=LNK, linkname="s"),
                                                               Entry("h", b"pwned")])])
def _hlsym(top: Path, c: Canary) -> None:
    assert (top / "h").read_bytes() == b"pwned"
    assert os.readlink(top / "s") == str(c.file)


@_contained("whiteout-through-symlinked-dir", lambda c: [_tar([Entry("evil", type=SYM, linkname=_host(c))]),
                                                         _tar([Entry("evil", type=SYM, linkname=_host(c)),
                                                               Entry("evil/.wh.canary")])])
def _whsym(top: Path, c: Canary) -> None:
    node = top / _host(c).lstrip("/") / "canary"
    assert stat.S_ISCHR(os.lstat(node).st_mode)


@_contained("opaque-inside-symlinked-dir", lambda c: [_tar([Entry("x", b"x")]),
                                                      _tar([Entry("evil", type=SYM, linkname=_host(c)),
                                                            Entry("evil/.wh..wh..opq")])])
def _opqsym(top: Path, c: Canary) -> None:
    assert os.getxattr(top / _host(c).lstrip("/"), "trusted.overlay.opaque") == b"y"


@_contained("device-node-for-host-disk", lambda c: [_tar([Entry("disk", type=BLK, mode=0o666)],
                                                         devs={"disk": (os.major(os.stat(HOST_DISK).st_rdev),
                                                                        os.minor(os.stat(HOST_DISK).st_rdev))}
                                                         if os.path.exists(HOST_DISK) else {"disk": (7, 0)}),
                                                    _tar([Entry("disk", b"would overwrite the disk", mode=0o666)])])
def _disk(top: Path, c: Canary) -> None:
    lower = top.parent.parent / "l0" / "fs" / "disk"
    assert stat.S_ISBLK(os.lstat(lower).st_mode)
    assert stat.S_IMODE(os.lstat(lower).st_mode) == 0o666
    assert (top / "disk").read_bytes() == b"would overwrite the disk"


@_contained("trusted-overlay-xattrs-dropped", lambda c: [_tar([Entry("d", type=DIR), Entry("d/a", b"a")]),
                                                         _tar([Entry("d", type=DIR, pax={
                                                             "SCHILY.xattr.trusted.overlay.opaque": "y",
                                                             "SCHILY.xattr.trusted.overlay.redirect": "/etc",
                                                             "SCHILY.xattr.security.selinux": "system_u:object_r:etc_t:s0",
                                                             "SCHILY.xattr.user.ok": "kept"})])])
def _xattr(top: Path, c: Canary) -> None:
    names = os.listxattr(top / "d")
    assert "user.ok" in names
    assert not [n for n in names if n.startswith(("trusted.overlay.", "security.selinux"))]


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_hostile_layer_is_rejected(case: str, canary: Canary, tmp_path: Path) -> None:
    make, message = REJECTED[case]
    with pytest.raises(layers.LayerError, match=message):
        _apply(tmp_path, make(canary))


@pytest.mark.parametrize("case", sorted(CONTAINED))
def test_hostile_layer_is_contained(case: str, canary: Canary, tmp_path: Path) -> None:
    make, check = CONTAINED[case]
    done = _apply(tmp_path, make(canary))
    check(done[-1], canary)


def _bomb(size: int) -> bytes:
    info = tarfile.TarInfo("zeros")
    info.size = size
    return gzip.compress(info.tobuf(tarfile.PAX_FORMAT) + b"\0" * size, compresslevel=1)


def test_decompression_bomb_hits_the_cap(canary: Canary, tmp_path: Path) -> None:
    blob = _bomb(64 << 20)
    assert len(blob) < (1 << 20)
    with pytest.raises(layers.LayerError, match="decompresses to more than"):
        _apply(tmp_path, [blob], limits=layers.Limits(max_size=16 << 20))


def test_decompression_ratio_cap(canary: Canary, tmp_path: Path) -> None:
    blob = _bomb(64 << 20)
    with pytest.raises(layers.LayerError, match="decompresses to more than"):
        _apply(tmp_path, [blob], limits=layers.Limits(max_ratio=100, ratio_floor=1 << 20),
               compressed_size=len(blob))
    ok = gzip.compress(_good())                     # an ordinary layer passes the same caps
    _apply(tmp_path / "ok", [ok], limits=layers.Limits(max_ratio=100, ratio_floor=1 << 20),
           compressed_size=len(ok))


def test_entry_count_cap(canary: Canary, tmp_path: Path) -> None:
    blob = _tar([Entry(f"f{i}", b"") for i in range(50)])
    with pytest.raises(layers.LayerError, match="more than 20 entries"):
        _apply(tmp_path, [blob], limits=layers.Limits(max_entries=20))


def _good() -> bytes:
    return _tar([Entry("a", b"a" * 100_000), Entry("b", os.urandom(50_000))])


def test_truncated_gzip_stream(canary: Canary, tmp_path: Path) -> None:
    gz = gzip.compress(_good())
    with pytest.raises(layers.LayerError, match=r"truncated|not a valid tar"):
        _apply(tmp_path, [gz[: len(gz) // 2]])


def test_corrupt_gzip_stream(canary: Canary, tmp_path: Path) -> None:
    gz = bytearray(gzip.compress(_good()))
    for i in range(100, 400):
        gz[i] ^= 0x5A
    with pytest.raises(layers.LayerError):
        _apply(tmp_path, [bytes(gz)])


def test_truncated_plain_tar_inside_a_file(canary: Canary, tmp_path: Path) -> None:
    raw = _good()
    with pytest.raises(layers.LayerError, match=r"truncated|not a valid tar|ends inside"):
        _apply(tmp_path, [raw[:70_000]])


def test_garbage_after_gzip_stream(canary: Canary, tmp_path: Path) -> None:
    with pytest.raises(layers.LayerError):
        _apply(tmp_path, [gzip.compress(_good()) + b"this is not gzip"])


def test_wrong_diff_id(canary: Canary, tmp_path: Path) -> None:
    with pytest.raises(layers.LayerError, match="wrong diff id"):
        _apply(tmp_path, [gzip.compress(_good())], expected_diff_id="sha256:" + "0" * 64)


def test_right_diff_id_passes_and_multi_member_gzip_works(tmp_path: Path) -> None:
    raw = _good()
    blob = gzip.compress(raw[:4096]) + gzip.compress(raw[4096:])
    done = _apply(tmp_path, [blob], expected_diff_id="sha256:" + hashlib.sha256(raw).hexdigest())
    assert (done[0] / "a").read_bytes() == b"a" * 100_000


@pytest.mark.registry
def test_pull_with_wrong_diff_id_commits_no_snapshot(
    canary: Canary, tmp_path: Path, push: Callable[..., str], store: images.ImageStore,
) -> None:
    good = _good()
    ref = push([good, _tar([Entry("top", b"t")])])
    # Re-push the same layers under a config whose second diff_id is wrong.
    layout = tmp_path / "bad"
    write_layout(layout, [good, _tar([Entry("top", b"t")])])
    blobs = layout / "blobs" / "sha256"
    index = json.loads((layout / "index.json").read_text())
    mdigest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((blobs / mdigest).read_text())
    cfg_hex = manifest["config"]["digest"].split(":")[1]
    cfg = json.loads((blobs / cfg_hex).read_text())
    cfg["rootfs"]["diff_ids"][1] = "sha256:" + "1" * 64
    raw_cfg = json.dumps(cfg).encode()
    new_cfg_hex = hashlib.sha256(raw_cfg).hexdigest()
    (blobs / new_cfg_hex).write_bytes(raw_cfg)
    manifest["config"].update(digest="sha256:" + new_cfg_hex, size=len(raw_cfg))
    raw_m = json.dumps(manifest).encode()
    new_m = hashlib.sha256(raw_m).hexdigest()
    (blobs / new_m).write_bytes(raw_m)
    index["manifests"][0].update(digest="sha256:" + new_m, size=len(raw_m))
    (layout / "index.json").write_text(json.dumps(index))
    bad_ref = ref.rsplit(":", 1)[0] + ":bad"
    push_layout(layout, bad_ref)

    with pytest.raises(errors.ImageError, match="wrong diff id"):
        store.pull(bad_ref)
    # the bad top layer is never committed; the good bottom one is, unless the top failed before
    # the bottom's unpack started (layers unpack in parallel and a failure cancels the rest)
    bottom = snapshots.chain_ids(cfg["rootfs"]["diff_ids"][:1])[0]
    assert [s.chain_id for s in store.snapshots.list()] in ([bottom], [])
    assert not [p for p in store.snapshots.dir.iterdir() if p.name.startswith("extract-")]
    with pytest.raises(errors.NotFound):
        store.get(bad_ref)


def test_store_dirs_are_not_world_traversable(store: images.ImageStore) -> None:
    for d in (store.config.root, store.snapshots.dir):
        assert stat.S_IMODE(os.stat(d).st_mode) & 0o007 == 0


@pytest.mark.registry
def test_a_93_byte_sparse_layer_cannot_write_300_mib(
    canary: Canary, push: Callable[..., str], store: images.ImageStore,
) -> None:
    raw = hostile.sparse_gnu("big", 300 << 20)
    assert len(gzip.compress(raw)) < 100
    ref = push([raw])
    with pytest.raises(errors.ImageError, match="'big' is a sparse file"):
        store.pull(ref)
    assert store.snapshots.list() == []
    assert not [p for p in store.snapshots.dir.iterdir() if p.name.startswith("extract-")]


_MIB = 1 << 20
_RSS_BOUND = 120 * _MIB     # a pull of a small image stays near 50 MiB
HEADER_BOMBS: dict[str, tuple[Callable[[], bytes], str]] = {
    # #14 item 5: one header declaring 256 MiB; before the fix the pull peaked above 500 MiB
    "pax-header-of-256-mib": (lambda: hostile.pax_declaring(256 * _MIB), "declares 268435456 bytes"),
    # 100 headers of 1 MiB each (each one a bounded read) chained before one file
    "chain-of-100-pax-headers": (lambda: hostile.pax_chain(100), "extended headers of one tar entry"),
    # 12 global headers of 75,000 new keys each, one before each of 12 files
    "global-pax-keys": (lambda: hostile.global_pax_keys(12), "global PAX headers hold more than"),
    # a sparse map of 3 million pairs, refused before it is read
    "sparse-map-of-3m-pairs": (lambda: hostile.sparse_map(3_000_000), "is a sparse file"),
}


@pytest.mark.registry
@pytest.mark.parametrize("case", sorted(HEADER_BOMBS))
def test_header_bombs_are_refused_within_a_memory_bound(
    case: str, canary: Canary, push: Callable[..., str], tmp_path: Path,
) -> None:
    make, message = HEADER_BOMBS[case]
    ref = push([make()])
    config = native_config(tmp_path)
    pulled = run_measured([sys.executable, "-m", "reconciler", "pull", "--root", str(config.root),
                           "--run-dir", str(config.run_dir), "--name-prefix", config.name_prefix, ref], tmp_path)
    assert pulled.peak_rss < _RSS_BOUND, f"the pull peaked at {pulled.peak_rss // _MIB} MiB"
    assert pulled.returncode != 0
    assert message in pulled.stderr



def _dup_layer() -> bytes:
    return _tar([Entry("etc", type=DIR), Entry("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
                 Entry("./etc/passwd", b"evil::0:0::/:/bin/sh\n")])


def _diff_id(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def test_an_image_layer_naming_a_path_twice_is_refused(canary: Canary, tmp_path: Path) -> None:
    """As dockerd's and podman's layer stores refuse it: a scanner reading the first entry and a
    snapshot keeping the last would disagree on what the image holds ('./a' is 'a')."""
    raw = _dup_layer()
    with pytest.raises(layers.LayerError, match=r"names '\./etc/passwd' twice") as exc:
        _apply(tmp_path, [gzip.compress(raw)], expected_diff_id=_diff_id(raw))
    assert "dockerd and podman refuse" in (exc.value.hint or "")


def test_an_archive_applies_a_path_named_twice_in_order(tmp_path: Path) -> None:
    """An archive that is no image layer (docker cp, ADD, a volume import) has no such rule:
    dockerd applies it in order too, the last entry winning."""
    (fs,) = _apply(tmp_path, [_dup_layer()])
    assert (fs / "etc" / "passwd").read_bytes() == b"evil::0:0::/:/bin/sh\n"


@pytest.mark.registry
def test_pull_of_a_layer_naming_a_path_twice_leaves_nothing(
    canary: Canary, push: Callable[..., str], store: images.ImageStore,
) -> None:
    good = _good()
    ref = push([good, _dup_layer()])
    with pytest.raises(errors.ImageError, match=r"names '\./etc/passwd' twice"):
        store.pull(ref)
    with pytest.raises(errors.NotFound):
        store.get(ref)
    bottom = snapshots.chain_ids([_diff_id(good)])[0]
    assert [s.chain_id for s in store.snapshots.list()] in ([bottom], [])
    assert not [p for p in store.snapshots.dir.iterdir() if p.name.startswith("extract-")]
