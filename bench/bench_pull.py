"""Pull-and-unpack of a multi-layer image from a local registry: native vs docker vs podman (issue 4).

A registry (Debian's docker-registry) is started on 127.0.0.1; an image of --layers layers and
about --mib MiB of files (incompressible blobs plus many small text files, like real images)
is pushed to it with skopeo. Then, interleaved, --runs times each:

  native   `reconcile pull -q` (the CLI, interpreter start-up included) into an empty state root
  docker   `docker pull -q` after `docker rmi` of the image (dockerd 20.10, its graph driver)
  podman   `podman pull -q --tls-verify=false` after `podman rmi`
  skopeo   `skopeo copy` to a dir: download only, no unpacking (a floor, for reference)

and the re-pull of an image that is fully present (native: one manifest HEAD). Medians and
ratios are printed. Goal: native / docker <= 0.8.

    sudo .venv/bin/python bench/bench_pull.py [--runs 3] [--layers 10] [--mib 300]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import images
from tests.helpers.registry import RegistryServer

REPO = Path(__file__).resolve().parent.parent


def make_layers(n: int, mib: int) -> list[bytes]:
    """n layers of about mib/n MiB each: 2/3 random blobs (512 KiB files), 1/3 small text files."""
    per = mib * (1 << 20) // n
    out = []
    for i in range(n):
        entries = [images.Entry(f"layer{i}", type=images.tarfile.DIRTYPE, mode=0o755)]
        blob_bytes = per * 2 // 3
        for j in range(max(1, blob_bytes // (512 << 10))):
            entries.append(images.Entry(f"layer{i}/bin/blob{j}", os.urandom(512 << 10), mode=0o755))
        words = [os.urandom(6).hex() for _ in range(2000)]
        text_bytes = per - blob_bytes
        for j in range(max(1, text_bytes // (8 << 10))):
            body = " ".join(words[(j * 7 + k) % len(words)] for k in range((8 << 10) // 13)).encode()
            entries.append(images.Entry(f"layer{i}/share/doc{j // 100}/f{j}.txt", body[: 8 << 10]))
        out.append(images.layer_tar(entries))
    return out


def timed(argv: list[str], **kw: object) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - t


def quiet(argv: list[str]) -> None:
    subprocess.run(argv, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--mib", type=int, default=300)
    ap.add_argument("--skip", action="append", default=[], choices=("docker", "podman", "skopeo"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root (docker, podman and overlay snapshots need it)", file=sys.stderr)
        return 2
    tools = ["native"] + [t for t in ("docker", "podman", "skopeo") if t not in args.skip and shutil.which(t)]
    work = Path(tempfile.mkdtemp(prefix="bench-pull-", dir="/var/tmp"))
    registry = RegistryServer(work / "registry").start()
    ref = f"{registry.host}/bench/pull:latest"
    root, run_dir = work / "native-root", work / "native-run"
    native = [sys.executable, "-m", "reconciler", "pull", "-q", "--root", str(root), "--run-dir", str(run_dir), ref]
    try:
        t = time.perf_counter()
        layers = make_layers(args.layers, args.mib)
        layout = work / "layout"
        images.write_layout(layout, layers)
        images.push_layout(layout, ref)
        raw = sum(len(x) for x in layers)
        comp = sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir())
        print(f"image: {args.layers} layers, {raw / 2**20:.0f} MiB as tar, {comp / 2**20:.0f} MiB compressed "
              f"(built and pushed in {time.perf_counter() - t:.1f} s)")

        cold: dict[str, list[float]] = {k: [] for k in tools}
        warm: dict[str, list[float]] = {k: [] for k in tools if k != "skopeo"}
        for run in range(args.runs):
            for tool in tools:
                if tool == "native":
                    shutil.rmtree(root, ignore_errors=True)
                    shutil.rmtree(run_dir, ignore_errors=True)
                    cold[tool].append(timed(native, cwd=REPO))
                    warm[tool].append(timed(native, cwd=REPO))
                elif tool == "docker":
                    quiet(["docker", "rmi", "-f", ref])
                    cold[tool].append(timed(["docker", "pull", "-q", ref]))
                    warm[tool].append(timed(["docker", "pull", "-q", ref]))
                elif tool == "podman":
                    quiet(["podman", "rmi", "-f", ref])
                    argv = ["podman", "pull", "-q", "--tls-verify=false", ref]
                    cold[tool].append(timed(argv))
                    warm[tool].append(timed(argv))
                else:
                    dest = work / "skopeo-dir"
                    shutil.rmtree(dest, ignore_errors=True)
                    cold[tool].append(timed(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                                             f"docker://{ref}", f"dir:{dest}"]))
            print(f"run {run + 1}: " + "  ".join(f"{k} {v[-1]:.2f}s" for k, v in cold.items()), flush=True)

        med = {k: statistics.median(v) for k, v in cold.items()}
        wmed = {k: statistics.median(v) for k, v in warm.items()}
        print()
        print(f"{'pull + unpack (median of ' + str(args.runs) + ')':<34}{'cold':>9}{'re-pull':>10}")
        for k in tools:
            w = f"{wmed[k]:.2f}s" if k in wmed else "-"
            label = k + (" (download only)" if k == "skopeo" else "")
            print(f"{label:<34}{med[k]:>8.2f}s{w:>10}")
        print()
        for peer in ("docker", "podman", "skopeo"):
            if peer in med:
                print(f"native / {peer:<7} cold {med['native'] / med[peer]:.2f}"
                      + (f"   re-pull {wmed['native'] / wmed[peer]:.2f}" if peer in wmed else ""))
        if "docker" in med:
            ok = med["native"] / med["docker"] <= 0.8
            print(f"goal native/docker <= 0.8: {'met' if ok else 'NOT met'}")
    finally:
        quiet(["docker", "rmi", "-f", ref])
        quiet(["podman", "rmi", "-f", ref])
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
