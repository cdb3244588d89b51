"""Fixtures for the native image tests: a store per test, images pushed to the session
registry under unique names, read-only overlay views of pulled images (always unmounted)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zstandard

from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.containers import mounts
from reconciler.runtime.native.images import images
from tests.helpers import images as timg
from tests.helpers.registry import RegistryServer

Entry = timg.Entry
DIR, SYM, LNK, CHR, BLK, FIFO = (tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE,
                                 tarfile.BLKTYPE, tarfile.FIFOTYPE)


def native_config(tmp_path: Path) -> NativeConfig:
    return NativeConfig(root=tmp_path / "root", run_dir=tmp_path / "run",
                        name_prefix="ri" + secrets.token_hex(2))


@pytest.fixture
def store(tmp_path: Path) -> images.ImageStore:
    return images.ImageStore(native_config(tmp_path))


@pytest.fixture
def push(registry: RegistryServer, tmp_path: Path) -> Callable[..., str]:
    """push(layers, **write_layout kwargs) -> a fresh reference in the registry; the OCI
    layout it came from is `push.layouts[ref]` (for umoci)."""
    count = [0]

    def _push(layers: list[bytes], *, tag: str = "latest", compression: str = "gzip", **kw: object) -> str:
        count[0] += 1
        layout = tmp_path / f"layout-{count[0]}"
        write_layout(layout, layers, tag=tag, compression=compression, **kw)  # type: ignore[arg-type]
        ref = f"{registry.host}/t{secrets.token_hex(4)}/img:{tag}"
        timg.push_layout(layout, ref, tag=tag)
        layouts[ref] = layout
        return ref

    layouts: dict[str, Path] = {}
    _push.layouts = layouts  # type: ignore[attr-defined]
    return _push


def write_layout(path: Path, layers: list[bytes], *, tag: str = "latest", compression: str = "gzip",
                 config: dict[str, object] | None = None) -> str:
    """Like tests.helpers.images.write_layout, with gzip, zstd or plain tar layers."""
    if compression == "gzip":
        return timg.write_layout(path, layers, tag=tag, config=config)
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def blob(data: bytes) -> tuple[str, int]:
        h = hashlib.sha256(data).hexdigest()
        (blobs / h).write_bytes(data)
        return "sha256:" + h, len(data)

    descs, diff_ids = [], []
    for raw in layers:
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        if compression == "zstd":
            data, mt = zstandard.ZstdCompressor().compress(raw), "application/vnd.oci.image.layer.v1.tar+zstd"
        else:
            data, mt = raw, "application/vnd.oci.image.layer.v1.tar"
        d, n = blob(data)
        descs.append({"mediaType": mt, "digest": d, "size": n})
    cfg = {"architecture": "amd64", "os": "linux", "config": config or {"Cmd": ["/bin/sh"]},
           "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    cd, cn = blob(json.dumps(cfg).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
                "layers": descs}
    md, mn = blob(json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                "digest": md, "size": mn,
                                                "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    (path / "index.json").write_text(json.dumps(index))
    return md


@pytest.fixture
def view(tmp_path: Path) -> Iterator[Callable[[images.ImageStore, str], Path]]:
    """view(store, ref) -> a read-only overlay mount of the pulled image (unmounted at the end)."""
    made: list[Path] = []

    def _view(store: images.ImageStore, ref: str) -> Path:
        target = tmp_path / f"view-{len(made)}"
        target.mkdir()
        made.append(target)
        dirs = store.layer_dirs(store.get(ref).id)
        mounts.mount_overlay(list(reversed(dirs)), None, None, target)
        return target

    yield _view
    for t in made:
        while mounts.is_mounted(t):
            mounts.unmount(t)


def tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything comparable about a file tree: per path its type, mode, owner, size, content
    hash, link target, device number and user.* xattrs; plus hardlink groups."""
    out: dict[str, tuple[object, ...]] = {}
    inodes: dict[int, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = os.lstat(p)
            kind = stat.S_IFMT(st.st_mode)
            extra: object = None
            if stat.S_ISREG(st.st_mode):
                extra = (st.st_size, hashlib.sha256(p.read_bytes()).hexdigest())
                inodes.setdefault(st.st_ino, []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                extra = (os.major(st.st_rdev), os.minor(st.st_rdev))
            xattrs: tuple[tuple[str, bytes], ...] = ()
            if not stat.S_ISLNK(st.st_mode):
                names = sorted(n for n in os.listxattr(p, follow_symlinks=False) if n.startswith("user."))
                xattrs = tuple((n, os.getxattr(p, n, follow_symlinks=False)) for n in names)
            out[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, extra, xattrs)
    for paths in inodes.values():
        if len(paths) > 1:
            out["<hardlinks:" + ",".join(sorted(paths)) + ">"] = ()
    return out


def umoci_tree(layout: Path, tag: str, work: Path) -> dict[str, tuple[object, ...]]:
    bundle = work / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{tag}", str(bundle)], check=True,
                   capture_output=True)
    try:
        return tree(bundle / "rootfs")
    finally:
        shutil.rmtree(bundle, ignore_errors=True)
