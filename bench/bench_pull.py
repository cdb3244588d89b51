"""Pull-and-unpack of a multi-layer image from a local registry: native vs docker vs podman (issue 4).

A registry (Debian's docker-registry) is started on 127.0.0.1; an image of --layers layers and
about --mib MiB of files (incompressible blobs plus many small text files, like real images)
is pushed to it with skopeo. Then, interleaved, --runs times each:

  native   `reconcile pull -q` (the CLI, interpreter start-up included) after `reconcile rmi`
  docker   `docker pull -q` after `docker rmi` of the image (dockerd 20.10, its graph driver)
  podman   `podman pull -q --tls-verify=false` after `podman rmi`
  skopeo   `skopeo copy` to a dir: download only, no unpacking (a floor, for reference)

and the re-pull of an image that is fully present (native: one manifest HEAD). Each tool pulls
once untimed first (warm store directories); each cold run starts after `sync`, so no tool
pays for another's writeback. Medians and ratios are printed.
Goal: native / docker <= 0.8. The native numbers include the CLI's Python start-up (~0.5 s).

    sudo .venv/bin/python bench/bench_pull.py [--runs 3] [--layers 10] [--mib 300] [--plot]

With --plot it also draws the cold pulls as bars into docs/img/bench-pull.png (docs/benchmarks.md).
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

from bench import plots
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
    plots.add_plot_flags(ap)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root (docker, podman and overlay snapshots need it)", file=sys.stderr)
        return 2
    tools = ["native"] + [t for t in ("docker", "podman", "skopeo") if t not in args.skip and shutil.which(t)]
    work = Path(tempfile.mkdtemp(prefix="bench-pull-", dir="/var/tmp"))
    registry = RegistryServer(work / "registry").start()
    ref = f"{registry.host}/bench/pull:latest"
    # The native store lives beside docker's and podman's (/var/lib/docker, /var/lib/containers):
    # file creation speed differs between places on the same ext4 on the test machines.
    root = Path(tempfile.mkdtemp(prefix="reconciler-bench-", dir="/var/lib"))
    run_dir = work / "native-run"
    where = ["--root", str(root), "--run-dir", str(run_dir)]
    native = [sys.executable, "-m", "reconciler", "pull", "-q", *where, ref]
    native_rmi = [sys.executable, "-m", "reconciler", "rmi", "-f", *where]
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
        podman = ["podman", "pull", "-q", "--tls-verify=false", ref]
        skopeo_dir = work / "skopeo-dir"
        skopeo = ["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"dir:{skopeo_dir}"]
        pulls = {"native": native, "docker": ["docker", "pull", "-q", ref], "podman": podman, "skopeo": skopeo}
        # One untimed pull per tool first: docker's and podman's stores live in long-used
        # directories, and on the test machines creating files in a fresh place on the same
        # ext4 is several times slower the first time (inode tables read from disk).
        for tool in tools:
            subprocess.run(pulls[tool], check=False, cwd=REPO if tool == "native" else None,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for run in range(args.runs):
            for tool in tools:
                # Empty the tool's cache by removing the image (as a user would), then let
                # the disk settle so nobody inherits another's writeback.
                if tool == "native":
                    quiet([*native_rmi, ref])
                elif tool in ("docker", "podman"):
                    quiet([tool, "rmi", "-f", ref])
                else:
                    shutil.rmtree(skopeo_dir, ignore_errors=True)
                subprocess.run(["sync"], check=False)
                cwd = REPO if tool == "native" else None
                cold[tool].append(timed(pulls[tool], cwd=cwd))
                if tool in warm:
                    warm[tool].append(timed(pulls[tool], cwd=cwd))
            print(f"run {run + 1}: " + "  ".join(f"{k} {v[-1]:.2f}s" for k, v in cold.items()), flush=True)

        # The agent is a long-running process: its re-pull costs no interpreter start-up.
        from reconciler.runtime.native.config import NativeConfig
        from reconciler.runtime.native.images import images as native_images

        store = native_images.ImageStore(NativeConfig(root=root, run_dir=run_dir))
        store.pull(ref)
        inproc = []
        for _ in range(5):
            t = time.perf_counter()
            store.pull(ref)
            inproc.append(time.perf_counter() - t)

        med = {k: statistics.median(v) for k, v in cold.items()}
        wmed = {k: statistics.median(v) for k, v in warm.items()}
        print()
        print(f"{'pull + unpack (median of ' + str(args.runs) + ')':<34}{'cold':>9}{'re-pull':>10}")
        for k in tools:
            w = f"{wmed[k]:.2f}s" if k in wmed else "-"
            label = k + (" (download only)" if k == "skopeo" else "")
            print(f"{label:<34}{med[k]:>8.2f}s{w:>10}")
        print(f"{'native re-pull in-process (agent)':<34}{'-':>9}{statistics.median(inproc):>9.3f}s")
        print()
        for peer in ("docker", "podman", "skopeo"):
            if peer in med:
                print(f"native / {peer:<7} cold {med['native'] / med[peer]:.2f}"
                      + (f"   re-pull {wmed['native'] / wmed[peer]:.2f}" if peer in wmed else ""))
        if "docker" in med:
            ok = med["native"] / med["docker"] <= 0.8
            print(f"goal native/docker <= 0.8: {'met' if ok else 'NOT met'}")
        if args.plot:
            plots.bars(args.plot_dir / "bench-pull.png",
                       f"Pull and unpack {args.layers} layers, {raw / 2**20:.0f} MiB (median of {args.runs})",
                       "seconds", {("reconcile" if k == "native" else k + " (download only)" if k == "skopeo" else k):
                                   v for k, v in med.items()})
    finally:
        quiet(["docker", "rmi", "-f", ref])
        quiet(["podman", "rmi", "-f", ref])
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
