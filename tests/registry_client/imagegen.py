"""Build small images in memory for push tests: (manifest, {digest: bytes})."""

from __future__ import annotations

import gzip
import hashlib
import json
import os

from reconciler.registry_client import models
from tests.helpers import images


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_image(
    layers: list[bytes] | None = None,
    *,
    docker: bool = False,
    arch: str = "amd64",
    seed: bytes | None = None,
) -> tuple[models.Manifest, dict[str, bytes]]:
    """An image whose layers are gzip tars (a unique file per call unless `seed` is given)."""
    if layers is None:
        payload = seed if seed is not None else os.urandom(16)
        layers = [images.layer_tar([images.Entry("hello.txt", b"hello " + payload)])]
    blobs: dict[str, bytes] = {}
    descs, diff_ids = [], []
    layer_type = ("application/vnd.docker.image.rootfs.diff.tar.gzip" if docker
                  else "application/vnd.oci.image.layer.v1.tar+gzip")
    for raw in layers:
        gz = gzip.compress(raw, mtime=0)
        blobs[sha(gz)] = gz
        diff_ids.append(sha(raw))
        descs.append({"mediaType": layer_type, "digest": sha(gz), "size": len(gz)})
    cfg = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                      "rootfs": {"type": "layers", "diff_ids": diff_ids}}, sort_keys=True).encode()
    blobs[sha(cfg)] = cfg
    mt = models.DOCKER_MANIFEST if docker else models.OCI_MANIFEST
    manifest = {
        "schemaVersion": 2, "mediaType": mt,
        "config": {"mediaType": models.DOCKER_CONFIG if docker else models.OCI_CONFIG,
                   "digest": sha(cfg), "size": len(cfg)},
        "layers": descs,
    }
    return models.Manifest.from_bytes(json.dumps(manifest, indent=2).encode()), blobs


def make_index(children: list[tuple[models.Manifest, str, str]]) -> models.Manifest:
    """An OCI index of (manifest, arch, variant) entries."""
    entries = []
    for m, arch, variant in children:
        plat = {"os": "linux", "architecture": arch}
        if variant:
            plat["variant"] = variant
        entries.append({"mediaType": m.media_type, "digest": m.descriptor.digest,
                        "size": m.descriptor.size, "platform": plat})
    doc = {"schemaVersion": 2, "mediaType": models.OCI_INDEX, "manifests": entries}
    return models.Manifest.from_bytes(json.dumps(doc).encode())
