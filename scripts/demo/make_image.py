"""Make the demo image and push it with reconciler's own registry client.

    python scripts/demo/make_image.py 127.0.0.1:5000/demo/hello:1 [--busybox /bin/busybox]

One layer: the host's busybox-static as /bin/busybox, a symlink per applet in /bin, and a web
root /www with an index.html; the config runs `httpd -f -p 80 -h /www`. The layer is built
byte-for-byte reproducibly (fixed times, owners and order, gzip without a timestamp), so a
second run pushes the same digest and the reconciler has nothing to recreate. Prints the
manifest digest.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

from reconciler.registry_client import client, models

INDEX_HTML = """<!doctype html>
<html>
<head><title>reconciler demo</title></head>
<body>
<h1>Hello from reconciler</h1>
<p>This page is served by busybox httpd in a container of reconciler's native engine,
pulled from a local registry and converged by <code>reconcile --once examples/manifests/hello</code>.</p>
</body>
</html>
"""

MTIME = 1_700_000_000


def _entry(name: str, kind: bytes, *, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, link
    info.mtime, info.uid, info.gid, info.uname, info.gname = MTIME, 0, 0, "root", "root"
    return info


def layer(busybox: Path) -> tuple[bytes, str]:
    """The gzipped layer and its diff id (sha256 of the uncompressed tar)."""
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout.split()
    binary = busybox.read_bytes()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "etc", "tmp", "www"):
            tar.addfile(_entry(d, tarfile.DIRTYPE, mode=0o1777 if d == "tmp" else 0o755))
        tar.addfile(_entry("bin/busybox", tarfile.REGTYPE, mode=0o755, size=len(binary)), io.BytesIO(binary))
        for a in sorted(set(applets) - {"busybox"}):
            tar.addfile(_entry(f"bin/{a}", tarfile.SYMTYPE, mode=0o777, link="busybox"))
        for name, text in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"),
                           ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
                           ("www/index.html", INDEX_HTML)):
            data = text.encode()
            tar.addfile(_entry(name, tarfile.REGTYPE, mode=0o644, size=len(data)), io.BytesIO(data))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, compresslevel=6, mtime=0), "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def _descriptor(media_type: str, data: bytes) -> models.Descriptor:
    return models.Descriptor(media_type=media_type, digest="sha256:" + hashlib.sha256(data).hexdigest(),
                             size=len(data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="where to push, e.g. 127.0.0.1:5000/demo/hello:1")
    parser.add_argument("--busybox", type=Path, default=Path("/bin/busybox"),
                        help="a static busybox (Debian: busybox-static)")
    args = parser.parse_args(argv)
    blob, diff_id = layer(args.busybox)
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2023-11-14T22:13:20Z",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["httpd", "-f", "-p", "80", "-h", "/www"],
                   "ExposedPorts": {"80/tcp": {}}, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "scripts/demo/make_image.py"}],
    }, sort_keys=True, separators=(",", ":")).encode()
    blobs = {}
    layer_desc = _descriptor("application/vnd.oci.image.layer.v1.tar+gzip", blob)
    config_desc = _descriptor(models.OCI_CONFIG, config)
    blobs[layer_desc.digest], blobs[config_desc.digest] = blob, config
    raw = json.dumps({"schemaVersion": 2, "mediaType": models.OCI_MANIFEST, "config": config_desc.to_dict(),
                      "layers": [layer_desc.to_dict()]}, sort_keys=True, separators=(",", ":")).encode()
    manifest = models.Manifest.from_bytes(raw, models.OCI_MANIFEST)
    with client.RegistryClient() as reg:
        pushed = reg.push_image(args.ref, manifest, lambda d: blobs[d.digest])
    print(pushed.digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
