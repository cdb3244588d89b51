"""A pull's answers against a real registry where a stored image is not what was asked: a layer
stored under another compression (its blob still fetched for push and save)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import secrets
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from reconciler.runtime.native.build import push as build_push
from reconciler.runtime.native.images import archive, images, presence
from tests.helpers import images as timg
from tests.helpers.images import layer_tar
from tests.helpers.registry import RegistryServer

from .conftest import DIR, Entry, native_config

pytestmark = [pytest.mark.root, pytest.mark.registry]

REPO = Path(__file__).resolve().parents[3]


def layout(path: Path, layers: list[tuple[bytes, int]], *, tag: str = "1", arch: str = "amd64") -> None:
    """An OCI layout whose layers are gzipped at the levels given (same tar, another blob)."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def blob(data: bytes) -> tuple[str, int]:
        h = hashlib.sha256(data).hexdigest()
        (blobs / h).write_bytes(data)
        return "sha256:" + h, len(data)

    descs, diff_ids = [], []
    for raw, level in layers:
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        d, n = blob(gzip.compress(raw, compresslevel=level, mtime=0))
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n})
    cfg = {"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/sh"]},
           "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    cd, cn = blob(json.dumps(cfg).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
                "layers": descs}
    md, mn = blob(json.dumps(manifest).encode())
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
         "annotations": {"org.opencontainers.image.ref.name": tag}}]}))


def pushed(registry: RegistryServer, tmp_path: Path, layers: list[tuple[bytes, int]], **kw: str) -> str:
    where = tmp_path / f"layout-{secrets.token_hex(3)}"
    layout(where, layers, **kw)
    ref = f"{registry.host}/x{secrets.token_hex(4)}/img:1"
    timg.push_layout(where, ref, tag=kw.get("tag", "1"))
    return ref


BASE = layer_tar([Entry("bin", type=DIR, mode=0o755), Entry("bin/tool", data=b"tool " * 4000)])
TOP = layer_tar([Entry("etc", type=DIR, mode=0o755), Entry("etc/top", data=b"top")])


def test_a_layer_stored_under_another_compression_is_still_fetched_for_push_and_save(
        registry: RegistryServer, tmp_path: Path) -> None:
    bb = pushed(registry, tmp_path, [(BASE, 6)])
    multi = pushed(registry, tmp_path, [(BASE, 9), (TOP, 6)])
    store = images.ImageStore(native_config(tmp_path))
    store.pull(bb)
    events: list[tuple[str, dict[str, object]]] = []
    store.pull(multi, progress=lambda e, d: events.append((e, dict(d))))
    recs = store.layer_records(multi)
    assert all(store.content.has(rec.digest) for rec in recs)
    # the base layer was not unpacked again: its line still ends "Already exists"
    assert ("layer-done", {"digest": recs[0].digest, "status": "exists"}) in events
    assert not any(e == "extract" and d["digest"] == recs[0].digest for e, d in events)
    archive.save(store, [multi], io.BytesIO(), fmt="docker-archive")
    dest = f"{registry.host}/x{secrets.token_hex(4)}/copy:1"
    build_push.tag(store, multi, dest)
    build_push.push(store, dest)


def test_an_image_recorded_without_a_layer_blob_gets_it_at_its_next_pull(
        registry: RegistryServer, tmp_path: Path) -> None:
    ref = pushed(registry, tmp_path, [(BASE, 9), (TOP, 6)])
    store = images.ImageStore(native_config(tmp_path))
    store.pull(ref)
    base = store.layer_records(ref)[0].digest
    store.content.delete(base)          # as a pull before the fix left it
    assert presence.present(store.config, ref) is None     # not an up-to-date answer
    events: list[str] = []
    store.pull(ref, progress=lambda e, d: events.append(str(d.get("status", ""))))
    assert store.content.has(base)
    assert events[-1] == "downloaded"
    build_push.push(store, ref, f"{registry.host}/x{secrets.token_hex(4)}/copy:1")


def multi_platform(registry: RegistryServer, tmp_path: Path) -> str:
    """A tag naming an index of a linux/amd64 and a linux/arm64 image (distinct layers)."""
    where = tmp_path / f"index-{secrets.token_hex(3)}"
    blobs = where / "blobs" / "sha256"
    entries = []
    for arch in ("amd64", "arm64"):
        one = tmp_path / f"one-{arch}-{secrets.token_hex(3)}"
        layout(one, [(layer_tar([Entry(arch, data=arch.encode())]), 6)], arch=arch)
        blobs.mkdir(parents=True, exist_ok=True)
        for b in (one / "blobs" / "sha256").iterdir():
            (blobs / b.name).write_bytes(b.read_bytes())
        desc = json.loads((one / "index.json").read_text())["manifests"][0]
        desc.pop("annotations")
        entries.append({**desc, "platform": {"os": "linux", "architecture": arch}})
    raw = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                      "manifests": entries}).encode()
    h = hashlib.sha256(raw).hexdigest()
    (blobs / h).write_bytes(raw)
    (where / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (where / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + h, "size": len(raw),
         "annotations": {"org.opencontainers.image.ref.name": "1"}}]}))
    ref = f"{registry.host}/x{secrets.token_hex(4)}/multi:1"
    subprocess.run(["skopeo", "copy", "--quiet", "--all", "--dest-tls-verify=false", f"oci:{where}:1",
                    f"docker://{ref}"], check=True, capture_output=True)
    return ref


def arch_of(store: images.ImageStore, ref: str) -> str:
    return str(store.image_config(ref)["architecture"])


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the host's platform is amd64 here")
def test_pull_of_another_platform_than_the_stored_one_pulls_it_and_moves_the_tag(
        registry: RegistryServer, tmp_path: Path) -> None:
    ref = multi_platform(registry, tmp_path)
    host = images.ImageStore(native_config(tmp_path))
    host.pull(ref)
    assert arch_of(host, ref) == "amd64"
    arm = images.ImageStore(host.config, platform="linux/arm64")
    arm.pull(ref)
    assert arch_of(arm, ref) == "arm64"
    # and back: a plain pull wants this host's platform, not the arm64 image the tag names now
    assert presence.present(host.config, ref) is None
    host.pull(ref)
    assert arch_of(host, ref) == "amd64"
    # by the index's digest too
    index = host.get(ref).digest
    by_digest = f"{ref.rsplit(':', 1)[0]}@{index}"
    assert arch_of(arm, arm.pull(by_digest).id) == "arm64"
    assert arch_of(host, host.pull(by_digest).id) == "amd64"


def legacy_archive(store: images.ImageStore, ref: str, raws: list[bytes], tag: str) -> io.BytesIO:
    """What `docker save` of the image wrote (Docker before 25): its config, its layers
    uncompressed, manifest.json; no OCI manifest."""
    image_id = store.get(ref).id
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        add(f"{image_id[7:]}.json", store.content.read(image_id))
        names = []
        for raw in raws:
            names.append(f"{hashlib.sha256(raw).hexdigest()}/layer.tar")
            add(names[-1], raw)
        add("manifest.json", json.dumps([{"Config": f"{image_id[7:]}.json", "RepoTags": [tag],
                                          "Layers": names}]).encode())
    out.seek(0)
    return out


def test_load_of_an_image_stored_already_keeps_its_manifest_and_adds_its_tags(
        registry: RegistryServer, tmp_path: Path) -> None:
    ref = pushed(registry, tmp_path, [(BASE, 6), (TOP, 6)])
    store = images.ImageStore(native_config(tmp_path))
    info = store.pull(ref)
    row = "SELECT manifest_digest, size, layers FROM images WHERE id = ?"
    before = tuple(store.db.connect().execute(row, (info.id,)).fetchone())
    other = "example.test/xfi/loaded:1"
    archive.load(store, legacy_archive(store, ref, [BASE, TOP], other))
    assert other in store.get(ref).repo_tags
    assert tuple(store.db.connect().execute(row, (info.id,)).fetchone()) == before
    assert store.get(other).size == info.size
    # what a push sends is still what was pulled: the same manifest, gzip layers
    dest = f"{registry.host}/x{secrets.token_hex(4)}/copy:1"
    build_push.tag(store, other, dest)
    assert build_push.push(store, dest) == before[0]


def test_a_tag_moved_to_an_image_stored_already_says_downloaded_newer_image(
        registry: RegistryServer, tmp_path: Path) -> None:
    """docker 20.10: "Downloaded newer image" when the tag moved, though no layer came;
    "Image is up to date" only when the tag named that image before the pull."""
    one = pushed(registry, tmp_path, [(BASE, 6)])
    two = pushed(registry, tmp_path, [(BASE, 6), (TOP, 6)])
    moving = f"{registry.host}/x{secrets.token_hex(4)}/moving:1"
    store = images.ImageStore(native_config(tmp_path))
    store.pull(one)
    store.pull(two)

    def pulled() -> str:
        proc = subprocess.run([sys.executable, "-m", "reconciler", "pull", "--root", str(tmp_path / "root"),
                               "--run-dir", str(tmp_path / "run"), moving], cwd=REPO, capture_output=True,
                              text=True, check=False, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def point(src: str) -> None:
        subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
                        f"docker://{src}", f"docker://{moving}"], check=True, capture_output=True)

    point(one)
    assert f"Status: Downloaded newer image for {moving}" in pulled()      # a new tag
    assert f"Status: Image is up to date for {moving}" in pulled()
    point(two)
    assert f"Status: Downloaded newer image for {moving}" in pulled()
    assert store.get(moving).id == store.get(two).id
    assert f"Status: Image is up to date for {moving}" in pulled()
