"""Anonymous pull from the real open registry (conftest `registry`, `busybox_image`)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from reconciler.registry_client import RegistryClient, errors, models, references
from tests.helpers.registry import RegistryServer

pytestmark = pytest.mark.registry


def test_resolve_and_get_manifest_byte_exact(busybox_image: str) -> None:
    with RegistryClient() as c:
        desc = c.resolve(busybox_image)
        m = c.get_manifest(busybox_image)
        assert desc == m.descriptor
        assert m.media_type == models.OCI_MANIFEST
        assert "sha256:" + hashlib.sha256(m.raw).hexdigest() == desc.digest
        assert len(m.raw) == desc.size
        by_digest = c.get_manifest(references.parse(busybox_image), desc.digest)
        assert by_digest.raw == m.raw
        assert c.resolve(references.parse(busybox_image).with_digest(desc.digest)) == desc


def test_pull_plan_and_blobs_verify(busybox_image: str) -> None:
    with RegistryClient() as c:
        plan = c.pull_plan(busybox_image, "linux/amd64")
        cfg = json.loads(plan.config)
        assert cfg["rootfs"]["type"] == "layers"
        assert len(plan.layers) == 1
        out = io.BytesIO()
        seen: list[int] = []
        c.fetch_blob(busybox_image, plan.layers[0], out, progress=lambda n, t: seen.append(n))
        data = out.getvalue()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == plan.layers[0].digest
        assert seen[-1] == plan.layers[0].size
        chunks: list[bytes] = []
        c.fetch_blob(busybox_image, plan.layers[0], chunks.append)
        assert b"".join(chunks) == data


def test_wrong_digest_in_descriptor_is_never_accepted(busybox_image: str) -> None:
    with RegistryClient() as c:
        plan = c.pull_plan(busybox_image, "linux/amd64")
        real = plan.layers[0]
        # Same size, digest of other content: the registry has no such blob -> not found.
        other = models.Descriptor(real.media_type, "sha256:" + "0" * 64, real.size)
        with pytest.raises(errors.NotFound):
            c.fetch_blob(busybox_image, other, io.BytesIO())
        # Right digest, wrong (smaller) size: refused before anything unverified is complete.
        short = models.Descriptor(real.media_type, real.digest, real.size - 1)
        with pytest.raises(errors.SizeMismatch):
            c.fetch_blob(busybox_image, short, io.BytesIO())


def test_missing_tag_lists_available_tags(busybox_image: str) -> None:
    ref = references.parse(busybox_image).with_tag("nope")
    with RegistryClient() as c:
        with pytest.raises(errors.NotFound) as ei:
            c.get_manifest(ref)
        assert "tag not found" in str(ei.value)
        assert "available tags: latest" in str(ei.value)
        with pytest.raises(errors.NotFound) as ei:
            c.resolve(ref)
        assert "available tags: latest" in str(ei.value)
        assert c.list_tags(busybox_image) == ["latest"]


def test_missing_repository_and_digest(registry: RegistryServer) -> None:
    with RegistryClient() as c:
        with pytest.raises(errors.NotFound) as ei:
            c.get_manifest(f"{registry.host}/no/such:thing")
        assert ei.value.code == "NAME_UNKNOWN"
        with pytest.raises(errors.NotFound):
            c.get_manifest(f"{registry.host}/no/such@sha256:{'1' * 64}")


def test_push_blob_streams_from_path_and_file(registry: RegistryServer, tmp_path: Path) -> None:
    import os

    ref = f"{registry.host}/pull/streamed:v1"
    with RegistryClient() as c:
        for i, kind in enumerate(("path", "file", "chunked-file")):
            data = os.urandom(3 * 1024 * 1024 + i)
            path = tmp_path / f"blob{i}"
            path.write_bytes(data)
            desc = models.Descriptor("application/octet-stream", "sha256:" + hashlib.sha256(data).hexdigest(), len(data))
            with path.open("rb") as f:
                source = path if kind == "path" else f
                how = c.push_blob(ref, desc, source, chunk_size=1_000_000 if kind == "chunked-file" else None)
            assert how == "uploaded"
            assert c.push_blob(ref, desc, path) == "exists"
            out = io.BytesIO()
            c.fetch_blob(ref, desc, out)
            assert out.getvalue() == data
