"""Benchmark: fetch every blob of a ~300 MB, 10-layer image from a local registry into a
directory, with our registry client vs `skopeo copy docker://… dir:` (same image, same run).

    .venv/bin/python bench/bench_registry_fetch.py [--runs 5] [--layer-mb 30] [--concurrency 4]

Starts its own docker-registry on 127.0.0.1, pushes an image of incompressible layers with our
client, then alternates our fetch and skopeo's, and prints the medians and the ratio
ours/skopeo (goal: ≤ 0.8). Both verify digests; both write manifest, config and layers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import rows
from reconciler.registry_client import CredentialStore, RegistryClient, models
from tests.helpers.registry import RegistryServer


def build_image(layer_mb: int, layers: int) -> tuple[models.Manifest, dict[str, bytes]]:
    """Layers of random bytes: incompressible, so compression would only cost time."""
    raw = [os.urandom(layer_mb * 1024 * 1024) for _ in range(layers)]
    layer_descs = []
    out: dict[str, bytes] = {}
    for data in raw:
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        out[d] = data
        layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": len(data)})
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": [x["digest"] for x in layer_descs]}}).encode()
    cd = "sha256:" + hashlib.sha256(cfg).hexdigest()
    out[cd] = cfg
    doc = {"schemaVersion": 2, "mediaType": models.OCI_MANIFEST,
           "config": {"mediaType": models.OCI_CONFIG, "digest": cd, "size": len(cfg)}, "layers": layer_descs}
    return models.Manifest.from_bytes(json.dumps(doc).encode()), out


def fetch_ours(ref: str, dest: Path, concurrency: int) -> None:
    dest.mkdir(parents=True)
    creds = CredentialStore(static={}, docker_config=dest / "none.json", env={})
    with RegistryClient(credentials=creds) as c:
        plan = c.pull_plan(ref)
        (dest / "manifest.json").write_bytes(plan.manifest.raw)
        (dest / plan.manifest.config.digest.split(":")[1]).write_bytes(plan.config)
        c.fetch_blobs(ref, plan.layers, lambda d: (dest / d.digest.split(":")[1]).open("wb"),
                      concurrency=concurrency)


def fetch_skopeo(ref: str, dest: Path) -> None:
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false",
                    f"docker://{ref}", f"dir:{dest}"], check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (registry page cache, skopeo start-up)")
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--layer-mb", type=int, default=30)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    if not shutil.which("skopeo") or not shutil.which("docker-registry"):
        print("needs skopeo and docker-registry (scripts/install-system-deps.sh)")
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    registry = RegistryServer(work / "registry").start()
    try:
        manifest, blobs = build_image(args.layer_mb, args.layers)
        total = sum(len(b) for b in blobs.values())
        ref = f"{registry.host}/bench/big:v1"
        with RegistryClient(credentials=CredentialStore(static={}, docker_config=work / "none.json", env={})) as c:
            c.push_image(ref, manifest, lambda d: blobs[d.digest], concurrency=4)
        blobs.clear()
        ours: list[float] = []
        peer: list[float] = []
        for i in range(args.warmup + args.runs):
            # Alternate who goes first, so neither always runs right after the other's writes.
            pair = [("ours", lambda d: fetch_ours(ref, d, args.concurrency), ours),
                    ("skopeo", lambda d: fetch_skopeo(ref, d), peer)]
            for name, fn, times in pair if i % 2 == 0 else pair[::-1]:
                dest = work / f"{name}-{i}"
                t0 = time.perf_counter()
                fn(dest)
                elapsed = time.perf_counter() - t0
                if i >= args.warmup:
                    times.append(elapsed)
                shutil.rmtree(dest)
        mo, ms = statistics.median(ours), statistics.median(peer)
        load = os.getloadavg()[0]
        print(f"image: {args.layers} layers, {total / 2**20:.0f} MiB; runs: {args.runs} (+{args.warmup} warm-up); "
              f"concurrency: {args.concurrency}; cpus: {os.cpu_count()}; load: {load:.1f}")
        print(f"ours   median {mo:.3f}s  ({total / 2**20 / mo:.0f} MiB/s)  runs: {', '.join(f'{t:.2f}' for t in ours)}")
        print(f"skopeo median {ms:.3f}s  ({total / 2**20 / ms:.0f} MiB/s)  runs: {', '.join(f'{t:.2f}' for t in peer)}")
        print(f"ratio ours/skopeo = {mo / ms:.2f} (goal <= 0.80)")
        rows.record(f"fetch the blobs of a {args.layers}-layer image", mo, peer="skopeo", theirs=ms, goal=0.8)
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
