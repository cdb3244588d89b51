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

`--suite` (#21) runs the issue's table in one go, native vs docker on the same machine, printed
as ratios: cold pulls of three images (10 layers ~200 MiB gzip, 4 layers ~34 MiB, 30 layers
1 GiB as tar), the re-pull of a present tag (one HEAD; and `--pull=missing`, no request), and
gzip inflate of the first image's blobs with zlib against isal and zlib-ng (whichever is
installed). The native CLI runs with its bytecode cached, as an installed package has it
(these machines set PYTHONDONTWRITEBYTECODE=1, which makes every CLI start compile its modules).

    sudo .venv/bin/python bench/bench_pull.py --suite [--runs 3]
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
from bench import rows as benchrows
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


SUITE = ((10, 300), (4, 50), (30, 1024))     # (layers, MiB as tar): ~200 MiB, ~34 MiB gzip, 1 GiB


def timed(argv: list[str], **kw: object) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - t


def quiet(argv: list[str]) -> None:
    subprocess.run(argv, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _native_env(work: Path) -> dict[str, str]:
    """The CLI with compiled bytecode, as an installed package has it."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONPYCACHEPREFIX": str(work / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def bench_image(registry: RegistryServer, work: Path, root: Path, run_dir: Path, n_layers: int, mib: int,
                runs: int, tools: list[str], *, missing: bool = False) -> tuple[str, dict[str, float], dict[str, float]]:
    """Push an image of n_layers/mib, pull it cold and warm with each tool; (label, cold, warm) medians."""
    ref = f"{registry.host}/bench/pull{n_layers}x{mib}:latest"
    where = ["--root", str(root), "--run-dir", str(run_dir)]
    env = _native_env(work)
    native = [sys.executable, "-m", "reconciler", "pull", "-q", *where, ref]
    native_rmi = [sys.executable, "-m", "reconciler", "rmi", "-f", *where]
    t = time.perf_counter()
    layers = make_layers(n_layers, mib)
    layout = work / f"layout-{n_layers}x{mib}"
    images.write_layout(layout, layers)
    images.push_layout(layout, ref)
    raw = sum(len(x) for x in layers)
    del layers
    comp = sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir())
    label = f"{n_layers} layers, {comp / 2**20:.0f} MiB gzip ({raw / 2**20:.0f} MiB tar)"
    print(f"image: {label} (built and pushed in {time.perf_counter() - t:.1f} s)", flush=True)
    podman = ["podman", "pull", "-q", "--tls-verify=false", ref]
    skopeo_dir = work / "skopeo-dir"
    skopeo = ["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"dir:{skopeo_dir}"]
    pulls = {"native": native, "docker": ["docker", "pull", "-q", ref], "podman": podman, "skopeo": skopeo}
    if missing:
        pulls["native --pull=missing"] = [*native[:5], "--pull=missing", *native[5:]]
    cold: dict[str, list[float]] = {k: [] for k in tools}
    warm: dict[str, list[float]] = {k: [] for k in pulls if k != "skopeo" and (k in tools or k.startswith("native"))}
    # One untimed pull per tool first: docker's and podman's stores live in long-used
    # directories, and on the test machines creating files in a fresh place on the same
    # ext4 is several times slower the first time (inode tables read from disk).
    for tool in tools:
        subprocess.run(pulls[tool], check=False, cwd=REPO if tool == "native" else None, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for run in range(runs):
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
                cold[tool].append(timed(pulls[tool], cwd=cwd, env=env))
                for w in warm:
                    if w == tool or (tool == "native" and w.startswith("native")):
                        warm[w].append(timed(pulls[w], cwd=cwd, env=env))
            print(f"run {run + 1}: " + "  ".join(f"{k} {v[-1]:.2f}s" for k, v in cold.items()), flush=True)
    finally:
        quiet(["docker", "rmi", "-f", ref])
        quiet(["podman", "rmi", "-f", ref])
        quiet([*native_rmi, ref])
    return label, {k: statistics.median(v) for k, v in cold.items()}, \
        {k: statistics.median(v) for k, v in warm.items()}


def bench_inflate(layout: Path) -> dict[str, float]:
    """Seconds to inflate every gzip blob of `layout` with each installed zlib (best of 3)."""
    import zlib

    mods: dict[str, object] = {"zlib": zlib}
    try:
        from isal import isal_zlib

        mods["isal"] = isal_zlib
    except ImportError:
        pass
    try:
        from zlib_ng import zlib_ng

        mods["zlib-ng"] = zlib_ng
    except ImportError:
        pass
    blobs = [p.read_bytes() for p in (layout / "blobs" / "sha256").iterdir()]
    blobs = [b for b in blobs if b[:2] == b"\x1f\x8b"]
    out = {}
    for name, mod in mods.items():
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            for b in blobs:
                d = mod.decompressobj(wbits=31)  # type: ignore[attr-defined]
                buf = b
                while buf:
                    d.decompress(buf, 4 << 20)
                    buf = d.unconsumed_tail
            best = min(best, time.perf_counter() - t)
        out[name] = best
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--mib", type=int, default=300)
    ap.add_argument("--suite", action="store_true", help="the #21 table: three images, re-pull, inflate")
    ap.add_argument("--skip", action="append", default=[], choices=("docker", "podman", "skopeo"))
    plots.add_plot_flags(ap)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root (docker, podman and overlay snapshots need it)", file=sys.stderr)
        return 2
    skip = set(args.skip) | ({"podman", "skopeo"} if args.suite else set())
    tools = ["native"] + [t for t in ("docker", "podman", "skopeo") if t not in skip and shutil.which(t)]
    from reconciler.runtime.native.images import layers as native_layers

    # python-isal comes with `pip install .[fast]` (scripts/bootstrap-venv.sh installs it)
    print(f"the extractor inflates gzip with {native_layers.INFLATE} ({sys.executable}); "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-pull-", dir="/var/tmp"))
    registry = RegistryServer(work / "registry").start()
    # The native store lives beside docker's and podman's (/var/lib/docker, /var/lib/containers):
    # file creation speed differs between places on the same ext4 on the test machines.
    root = Path(tempfile.mkdtemp(prefix="reconciler-bench-", dir="/var/lib"))
    run_dir = work / "native-run"
    rows: list[tuple[str, float, float | None]] = []     # (what, native, docker)
    try:
        shapes = SUITE if args.suite else ((args.layers, args.mib),)
        first_warm: dict[str, float] = {}
        first_cold: dict[str, float] = {}
        for i, (n, mib) in enumerate(shapes):
            label, cold, warm = bench_image(registry, work, root, run_dir, n, mib, args.runs, tools,
                                            missing=i == 0)
            rows.append((f"cold pull, {label}", cold["native"], cold.get("docker")))
            if i == 0:
                first_cold, first_warm = cold, warm
                rows.append(("re-pull of a present tag (one HEAD)", warm["native"], warm.get("docker")))
                rows.append(("re-pull, --pull=missing (no request)", warm["native --pull=missing"], warm.get("docker")))
        inflate = bench_inflate(work / f"layout-{shapes[0][0]}x{shapes[0][1]}")

        # The agent is a long-running process: its re-pull costs no interpreter start-up.
        from reconciler.runtime.native.config import NativeConfig
        from reconciler.runtime.native.images import images as native_images

        ref = f"{registry.host}/bench/pull{shapes[0][0]}x{shapes[0][1]}:latest"
        store = native_images.ImageStore(NativeConfig(root=root, run_dir=run_dir))
        store.pull(ref)
        inproc = []
        for _ in range(5):
            t = time.perf_counter()
            store.pull(ref)
            inproc.append(time.perf_counter() - t)
        rows.append(("re-pull in-process (the agent)", statistics.median(inproc), first_warm.get("docker")))

        print()
        print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(f"{'median of ' + str(args.runs) + ' runs':<52}{'reconcile':>10}{'docker':>9}{'ratio':>8}")
        for what, ours, theirs in rows:
            ratio = f"{ours / theirs:.2f}" if theirs else "-"
            peer = f"{theirs:.3f}s" if theirs else "-"
            print(f"{what:<52}{ours:>9.3f}s{peer:>9}{ratio:>8}")
            goal = 0.5 if what.startswith("cold") else 1.5 if what.startswith("re-pull,") or "HEAD" in what else None
            benchrows.record(what, ours, peer="docker" if theirs else None, theirs=theirs, goal=goal)
        print()
        print(f"{'gzip inflate of the first image (best of 3)':<52}{'seconds':>10}{'vs zlib':>17}")
        for name, secs in inflate.items():
            print(f"{name:<52}{secs:>9.3f}s{secs / inflate['zlib']:>17.2f}")
            if name != "zlib":
                benchrows.record(f"gzip inflate with {name}", secs, peer="zlib", theirs=inflate["zlib"])
        for peer in ("podman", "skopeo"):
            if peer in first_cold:
                print(f"native / {peer:<7} cold {first_cold['native'] / first_cold[peer]:.2f}")
        if args.plot:
            plots.bars(args.plot_dir / "bench-pull.png",
                       f"Pull and unpack, {rows[0][0].split(', ', 1)[1]} (median of {args.runs})",
                       "seconds", {("reconcile" if k == "native" else k + " (download only)" if k == "skopeo" else k):
                                   v for k, v in first_cold.items()})
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
