"""Interoperability with real peers: skopeo pushes → our client pulls byte-identically; our
client pushes → skopeo and docker pull."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.registry_client import CredentialStore, RegistryClient, errors, models, references
from tests.helpers import images
from tests.helpers.fault_server import Fault, FaultProxy
from tests.helpers.registry import RegistryServer
from tests.registry_client.imagegen import make_image, make_index, sha

pytestmark = pytest.mark.registry

SKOPEO = ["skopeo", "--insecure-policy"]


def skopeo(*args: str) -> str:
    p = subprocess.run([*SKOPEO, *args], check=True, capture_output=True, text=True)
    return p.stdout


def skopeo_raw(ref: str) -> bytes:
    p = subprocess.run([*SKOPEO, "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"],
                       check=True, capture_output=True)
    return p.stdout


def anon() -> RegistryClient:
    return RegistryClient(credentials=CredentialStore(static={}, docker_config=Path("/nonexistent"), env={}))


def pull_to_dict(c: RegistryClient, ref: str, platform: str = "linux/amd64") -> tuple[models.Manifest, dict[str, bytes]]:
    plan = c.pull_plan(ref, platform)
    out = {plan.manifest.config.digest: plan.config}
    for d in plan.layers:
        buf = io.BytesIO()
        c.fetch_blob(ref, d, buf)
        out[d.digest] = buf.getvalue()
    return plan.manifest, out


def skopeo_dir(ref: str, dest: Path, *extra: str) -> dict[str, bytes]:
    skopeo("copy", "--quiet", "--src-tls-verify=false", *extra, f"docker://{ref}", f"dir:{dest}")
    return {f"sha256:{p.name}": p.read_bytes() for p in dest.iterdir() if len(p.name) == 64}


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """Fresh random content per test, so skopeo cannot reuse blobs it pushed before."""
    path = tmp_path / "layout"
    layers = [images.layer_tar([images.Entry("bin/tool", os.urandom(100_000), mode=0o755)]),
              images.layer_tar([images.Entry("data.bin", os.urandom(300_000))])]
    images.write_layout(path, layers)
    return path


@pytest.mark.parametrize(("fmt", "compress"), [("v2s2", None), ("oci", None), ("oci", "zstd")])
def test_skopeo_pushed_images_pull_byte_identically(
    registry: RegistryServer, layout: Path, tmp_path: Path, fmt: str, compress: str | None
) -> None:
    ref = f"{registry.host}/interop/skopeo-{fmt}-{compress or 'gzip'}:v1"
    argv = ["copy", "--quiet", "--dest-tls-verify=false", "--format", fmt]
    if compress:
        argv += ["--dest-compress-format", compress]
    skopeo(*argv, f"oci:{layout}:latest", f"docker://{ref}")
    with anon() as c:
        manifest, blobs = pull_to_dict(c, ref)
    assert manifest.raw == skopeo_raw(ref)
    assert manifest.media_type == (models.DOCKER_MANIFEST if fmt == "v2s2" else models.OCI_MANIFEST)
    if compress == "zstd":
        assert all(d.media_type.endswith("+zstd") for d in manifest.layers)
    peer = skopeo_dir(ref, tmp_path / "peer")
    assert blobs == {d: peer[d] for d in blobs}
    assert set(blobs) == {manifest.config.digest, *(d.digest for d in manifest.layers)}


def write_index_layout(path: Path, variants: list[tuple[str, str]]) -> tuple[models.Manifest, list[models.Manifest]]:
    """An OCI layout holding an index of one small image per (arch, variant)."""
    blobs_dir = path / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    children = []
    for arch, _ in variants:
        m, blobs = make_image(arch=arch)
        for d, data in blobs.items():
            (blobs_dir / d.split(":")[1]).write_bytes(data)
        (blobs_dir / m.descriptor.digest.split(":")[1]).write_bytes(m.raw)
        children.append(m)
    idx = make_index([(m, a, v) for m, (a, v) in zip(children, variants, strict=True)])
    (blobs_dir / idx.descriptor.digest.split(":")[1]).write_bytes(idx.raw)
    top = {"schemaVersion": 2, "manifests": [{
        "mediaType": models.OCI_INDEX, "digest": idx.descriptor.digest, "size": idx.descriptor.size,
        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
    (path / "index.json").write_text(json.dumps(top))
    return idx, children


def test_skopeo_pushed_multiplatform_index(registry: RegistryServer, tmp_path: Path) -> None:
    idx, children = write_index_layout(tmp_path / "layout", [("amd64", ""), ("arm64", "v8"), ("arm", "v7")])
    ref = f"{registry.host}/interop/multi:v1"
    skopeo("copy", "--quiet", "--all", "--dest-tls-verify=false", f"oci:{tmp_path / 'layout'}:latest", f"docker://{ref}")
    with anon() as c:
        top = c.get_manifest(ref)
        assert top.is_index
        assert top.raw == skopeo_raw(ref)
        assert top.raw == idx.raw
        for platform, want in [("linux/amd64", children[0]), ("linux/arm64", children[1]),
                               ("linux/aarch64", children[1]), ("linux/arm/v7", children[2]),
                               ("linux/arm/v8", children[2])]:
            plan = c.pull_plan(ref, platform)
            assert plan.manifest.raw == want.raw, platform
            assert plan.index is not None
            assert sha(plan.config) == want.config.digest
        assert c.select_platform(top, arch="x86_64").digest == children[0].descriptor.digest


@pytest.mark.parametrize(("docker_fmt", "chunk"), [(False, None), (True, None), (False, 100_000)])
def test_our_push_pulls_with_skopeo(registry: RegistryServer, tmp_path: Path, docker_fmt: bool, chunk: int | None) -> None:
    layers = [images.busybox_layer(), images.layer_tar([images.Entry("x.bin", os.urandom(250_000))])]
    m, blobs = make_image(layers, docker=docker_fmt)
    ref = f"{registry.host}/interop/ours-{'docker' if docker_fmt else 'oci'}-{chunk or 0}:v1"
    with anon() as c:
        c.push_image(ref, m, lambda d: blobs[d.digest], chunk_size=chunk)
    assert skopeo_raw(ref) == m.raw
    peer = skopeo_dir(ref, tmp_path / "peer")
    assert {d: peer[d] for d in blobs} == blobs
    inspect = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ref}"))
    assert inspect["Digest"] == m.descriptor.digest


def test_our_index_push_copies_with_skopeo_all(registry: RegistryServer, tmp_path: Path) -> None:
    a, a_blobs = make_image(arch="amd64")
    b, b_blobs = make_image(arch="arm64")
    idx = make_index([(a, "amd64", ""), (b, "arm64", "")])
    blobs = {**a_blobs, **b_blobs}
    ref = f"{registry.host}/interop/ours-index:v1"
    with anon() as c:
        c.push_image(ref, idx, lambda d: blobs[d.digest], children=[a, b])
        assert c.list_tags(ref) == ["v1"]
    assert skopeo_raw(ref) == idx.raw
    skopeo("copy", "--quiet", "--all", "--src-tls-verify=false", f"docker://{ref}", f"oci:{tmp_path / 'out'}:x")
    for d in [*blobs, a.descriptor.digest, b.descriptor.digest]:
        assert (tmp_path / "out" / "blobs" / "sha256" / d.split(":")[1]).exists()


def test_tag_listing_paginates(registry: RegistryServer) -> None:
    m, blobs = make_image()
    want = [f"t{i}" for i in range(7)]
    with anon() as c:
        c.push_image(f"{registry.host}/interop/many-tags:t0", m, lambda d: blobs[d.digest], tags=want)
        assert sorted(c.list_tags(f"{registry.host}/interop/many-tags")) == want
    # distribution 2.8 ignores `n`: the proxy paginates the real list with Link headers.
    proxy = FaultProxy(registry.port).start()
    try:
        proxy.add(Fault("paginate", path="/tags/list", times=100))
        with anon() as c:
            assert c.list_tags(f"{proxy.host}/interop/many-tags", page_size=2) == want
        pages = proxy.requests(path="/tags/list")
        assert len(pages) == 4
        assert "last=t5" in pages[-1].path
    finally:
        proxy.stop()


def test_tag_listing_pages_with_n_and_last_when_there_is_no_link(registry: RegistryServer) -> None:
    """A registry that honours `n` and `last` but sends no Link: a full page asks for the next."""
    m, blobs = make_image()
    want = [f"t{i}" for i in range(7)]
    with anon() as c:
        c.push_image(f"{registry.host}/interop/bare-pages:t0", m, lambda d: blobs[d.digest], tags=want)
    proxy = FaultProxy(registry.port).start()
    try:
        proxy.add(Fault("paginate_bare", path="/tags/list", times=100))
        with anon() as c:
            assert c.list_tags(f"{proxy.host}/interop/bare-pages", page_size=3) == want
        pages = [p.path for p in proxy.requests(path="/tags/list")]
        assert len(pages) == 3                      # 3 + 3 + 1: the short page is the last
        assert pages[1].endswith("?n=3&last=t2")
        assert pages[2].endswith("?n=3&last=t5")
    finally:
        proxy.stop()


@pytest.fixture
def docker_cleanup() -> Iterator[list[str]]:
    refs: list[str] = []
    yield refs
    for r in refs:
        subprocess.run(["docker", "rmi", "-f", r], capture_output=True, check=False)


@pytest.mark.docker
@pytest.mark.parametrize("docker_fmt", [False, True])
def test_our_push_pulls_with_docker(registry: RegistryServer, docker_cleanup: list[str], docker_fmt: bool) -> None:
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True, check=False).returncode:
        pytest.skip("dockerd is not running")
    layer = images.busybox_layer([images.Entry("hello.txt", os.urandom(8).hex().encode())])
    m, blobs = make_image([layer], docker=docker_fmt)
    ref = f"{registry.host}/interop/docker-{'v2s2' if docker_fmt else 'oci'}:{os.urandom(3).hex()}"
    docker_cleanup.append(ref)
    with anon() as c:
        c.push_image(ref, m, lambda d: blobs[d.digest])
    subprocess.run(["docker", "pull", "-q", ref], check=True, capture_output=True)
    info = json.loads(subprocess.run(["docker", "image", "inspect", ref], check=True,
                                     capture_output=True, text=True).stdout)[0]
    name = references.parse(ref).name
    assert f"{name}@{m.descriptor.digest}" in info["RepoDigests"]
    cfg = m.config.digest
    assert info["Id"] == cfg
    assert info["RootFS"]["Layers"] == ["sha256:" + hashlib.sha256(gzip.decompress(blobs[d.digest])).hexdigest()
                                        for d in m.layers]
    assert sha(blobs[cfg]) == cfg


def test_nested_index_resolves_with_a_depth_limit(registry: RegistryServer) -> None:
    child, blobs = make_image(arch="amd64")
    inner = make_index([(child, "amd64", "")])
    outer = models.Manifest.from_bytes(json.dumps({"schemaVersion": 2, "mediaType": models.OCI_INDEX, "manifests": [
        {"mediaType": models.OCI_INDEX, "digest": inner.descriptor.digest, "size": inner.descriptor.size}]}).encode())
    ref = f"{registry.host}/interop/nested:v1"
    with anon() as c:
        c.push_image(ref, outer, lambda d: blobs[d.digest], children=[child, inner])
        plan = c.pull_plan(ref, "linux/amd64")
        assert plan.manifest.raw == child.raw
        assert plan.index is not None
        assert plan.index.raw == inner.raw
        # An index that contains itself (by tag loop) is impossible by digest, so build depth 5.
        chain = inner
        for _ in range(4):
            chain = models.Manifest.from_bytes(json.dumps({"schemaVersion": 2, "mediaType": models.OCI_INDEX, "manifests": [
                {"mediaType": models.OCI_INDEX, "digest": chain.descriptor.digest, "size": chain.descriptor.size}]}).encode())
            c.push_manifest(ref, chain)
        c.push_manifest(ref, chain, tag="deep")
        with pytest.raises(errors.ManifestError) as ei:
            c.pull_plan(references.parse(ref).with_tag("deep"), "linux/amd64")
        assert "nested deeper" in str(ei.value)
