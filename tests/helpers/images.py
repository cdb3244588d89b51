"""Real OCI images made from files, written as an OCI image layout and copied with skopeo.

`busybox_layer()` is a root filesystem with Debian's busybox-static and its applet links:
enough for `sh`, `httpd`, `sleep`, `true`. Layers are written as gzip tarballs in an OCI
layout directory; `push_layout` uses the real peer `skopeo` to put it in a registry, so tests
do not depend on our own registry client to obtain test images.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Entry", "busybox_layer", "layer_tar", "push_layout", "write_layout"]

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "ls", "cat", "echo", "sleep", "true", "false", "httpd", "wget", "id", "env",
           "mkdir", "rm", "touch", "ps", "hostname", "ip", "nc", "dd", "seq", "grep", "head",
           "tail", "pwd", "stat", "mount", "kill", "trap", "test", "wc", "sha256sum", "timeout")


@dataclass
class Entry:
    """One tar entry: a file (data), dir, symlink or hardlink (linkname), with mode/owner."""

    name: str
    data: bytes | None = None
    type: bytes = tarfile.REGTYPE
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    linkname: str = ""
    mtime: int = 1_700_000_000
    pax: dict[str, str] = field(default_factory=dict)


def layer_tar(entries: Iterable[Entry]) -> bytes:
    """An uncompressed tar (PAX) of the entries, in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = e.type
            info.mode = e.mode
            info.uid, info.gid = e.uid, e.gid
            info.mtime = e.mtime
            info.linkname = e.linkname
            info.pax_headers = dict(e.pax)
            data = e.data or b""
            info.size = len(data) if e.type == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if info.size else None)
    return buf.getvalue()


def busybox_layer(extra: Iterable[Entry] = ()) -> bytes:
    """A tar with /bin/busybox, applet symlinks, /etc/passwd and /etc/group."""
    entries = [Entry("bin", type=tarfile.DIRTYPE, mode=0o755),
               Entry("bin/busybox", BUSYBOX.read_bytes(), mode=0o755)]
    entries += [Entry(f"bin/{a}", type=tarfile.SYMTYPE, linkname="busybox", mode=0o777) for a in APPLETS]
    entries += [
        Entry("etc", type=tarfile.DIRTYPE, mode=0o755),
        Entry("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000:app:/home/app:/bin/sh\n"),
        Entry("etc/group", b"root:x:0:\nnogroup:x:65534:\napp:x:1000:\n"),
        Entry("tmp", type=tarfile.DIRTYPE, mode=0o1777),
        Entry("root", type=tarfile.DIRTYPE, mode=0o700),
        Entry("home", type=tarfile.DIRTYPE, mode=0o755),
        Entry("home/app", type=tarfile.DIRTYPE, mode=0o755, uid=1000, gid=1000),
    ]
    entries += list(extra)
    return layer_tar(entries)


def _blob(blobs: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (blobs / digest.split(":")[1]).write_bytes(data)
    return digest, len(data)


def write_layout(
    path: Path,
    layers: list[bytes],
    *,
    config: dict[str, object] | None = None,
    tag: str = "latest",
    arch: str = "amd64",
    history: list[dict[str, object]] | None = None,
) -> str:
    """Write an OCI image layout with gzip layers; returns the manifest digest. `history`: its
    config's (default: one step per layer, created by "tests")."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    diff_ids, descs = [], []
    for raw in layers:
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        gz = gzip.compress(raw, compresslevel=6, mtime=0)
        d, n = _blob(blobs, gz)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n})
    cfg = {
        "architecture": arch,
        "os": "linux",
        "config": config if config is not None else {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history if history is not None else [{"created_by": "tests"} for _ in layers],
    }
    cd, cn = _blob(blobs, json.dumps(cfg, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
        "layers": descs,
    }
    md, mn = _blob(blobs, json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    }
    (path / "index.json").write_text(json.dumps(index))
    return md


def push_layout(layout: Path, dest: str, *, tag: str = "latest", fmt: str | None = None) -> None:
    """`skopeo copy oci:LAYOUT:TAG docker://DEST` (plain HTTP to the loopback registry)."""
    argv = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
    if fmt:
        argv += ["--format", fmt]
    argv += [f"oci:{layout}:{tag}", f"docker://{dest}"]
    subprocess.run(argv, check=True, capture_output=True)
