"""Benchmark: building a 6-step Dockerfile on busybox, native builder vs `docker build` (same run).

    .venv/bin/python bench/bench_build.py [--runs 5]

Starts its own docker-registry on 127.0.0.1 with a busybox-static image (skopeo); both
engines have that base image locally before timing. Each engine is driven through its CLI
(a fresh process per build, like a user): `reconcile build` and `docker build` (dockerd
20.10's classic builder: this host has no buildx). Measured, interleaved, medians of --runs:

  cold     a build with --no-cache (every RUN and COPY executes, new layers are committed)
  rebuild  an unchanged rebuild (every step answered from the cache), timed after the cold
           builds, each engine having built once since (a --no-cache build replaces the rows
           of the native build cache; an unchanged rebuild after it makes its index entry)

Native is measured twice: through the CLI (a fresh Python process per build, which pays the
interpreter and its imports, like the docker CLI pays nothing of the sort: dockerd is warm) and
through the API in a warm process (`Builder.build`, what the agent pays for an Image with
`build:` in a manifest; the counterpart of the warm daemon behind `docker build`).

Then the unchanged rebuild a third way: the CLI while an agent holds the root (`POST /v1/build`:
the CLI a thin client of the agent's warm builder), interleaved with `docker build` again (the
row "unchanged reconcile build (agent)").

Prints the medians and the ratios native/docker. Goals: rebuild <= 1.0 (issue #21), cold <= 1.0.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import rows as benchrows  # noqa: E402
from reconciler.runtime.native.build import builder  # noqa: E402
from reconciler.runtime.native.config import NativeConfig  # noqa: E402
from reconciler.runtime.native.containers import containers  # noqa: E402
from reconciler.runtime.native.images import images as native_images  # noqa: E402
from tests.helpers import images  # noqa: E402
from tests.helpers.registry import RegistryServer  # noqa: E402

DOCKERFILE = """FROM {base}
ENV APP=/app GREETING=hello
RUN mkdir -p $APP/data && echo "$GREETING" > $APP/data/greeting
COPY app/ /app/
RUN cat /app/data/greeting /app/main.sh > /app/combined && chmod 755 /app/main.sh
CMD ["/app/main.sh"]
"""


def sh(*argv: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    res = subprocess.run(argv, capture_output=True, check=False, env=env)
    if check and res.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{res.stdout.decode()}{res.stderr.decode()}")
    return res


def timed(argv: list[str], env: dict[str, str] | None = None, made: list[str] | None = None) -> float:
    t = time.perf_counter()
    res = sh(*argv, env=env)
    took = time.perf_counter() - t
    if made is not None:
        made.append(res.stdout.decode().strip())     # `-q` prints the image id
    return took


def rebuild_through_agent(work: Path, env: dict[str, str], prefix: str, native_argv: list[str],
                          docker_argv: list[str], runs: int, docker_ids: list[str]) -> dict[str, list[float]]:
    """The unchanged rebuild through the CLI while an agent holds the root (`POST /v1/build`)
    beside `docker build`, interleaved: {"agent rebuild": [...], "docker rebuild (agent)": [...]}."""
    from bench.bench_cli import agent

    agent_env = {**env, "RECONCILER_PREFIX": prefix}
    times: dict[str, list[float]] = {"agent rebuild": [], "docker rebuild (agent)": []}
    (work / "agent").mkdir(exist_ok=True)
    with agent(work / "agent", [sys.executable, "-m", "reconciler"], agent_env):
        timed(native_argv, env)                         # warm-up: the agent's first build
        for i in range(runs):
            jobs = (("agent rebuild", lambda: timed(native_argv, env)),
                    ("docker rebuild (agent)", lambda: timed(docker_argv, env, docker_ids)))
            for name, job in jobs[:: 1 if i % 2 == 0 else -1]:
                times[name].append(job())
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if shutil.which("docker") is None or sh("docker", "info", check=False).returncode != 0:
        print("docker is not available: nothing to compare with", file=sys.stderr)
        return 1

    work = Path(tempfile.mkdtemp(prefix="bench-build-"))
    prefix = "rk" + secrets.token_hex(2)[:3]
    reg = RegistryServer(work / "registry").start()
    tags: list[str] = []
    docker_ids: list[str] = []       # every image our docker builds made (no-cache builds leave them dangling)
    root, run_dir = work / "root", work / "run"
    # the state root from the environment (below), as `reconcile build -t NAME CONTEXT` at a
    # prompt: its everyday form, parsed by the CLI's fast path (cli/fastpath.py)
    native_cli = [sys.executable, "-m", "reconciler", "build", "-q"]
    # compiled bytecode as an installed package has it, even where the environment sets
    # PYTHONDONTWRITEBYTECODE (the warm-up build fills this cache)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONPYCACHEPREFIX": str(work / "pycache"),
           "RECONCILER_ROOT": str(root), "RECONCILER_RUN_DIR": str(run_dir), "RECONCILER_PREFIX": prefix}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        layout = work / "layout"
        images.write_layout(layout, [images.busybox_layer()])
        base = f"{reg.host}/bench/busybox:latest"
        images.push_layout(layout, base)
        ctx = work / "ctx"
        (ctx / "app").mkdir(parents=True)
        (ctx / "Dockerfile").write_text(DOCKERFILE.format(base=base))
        (ctx / "app" / "main.sh").write_text("#!/bin/sh\ncat /app/combined\n")
        (ctx / "app" / "README").write_text("a file of the app\n" * 100)

        ours, theirs = f"{reg.host}/bench/native:1", f"{reg.host}/bench/docker:1"
        tags += [theirs, base]
        sh("docker", "pull", "-q", base)
        sh(sys.executable, "-m", "reconciler", "pull", "-q", "--root", str(root), "--run-dir", str(run_dir),
           "--name-prefix", prefix, base, env=env)
        native_cold = [*native_cli, "--no-cache", "-t", ours, str(ctx)]
        native_warm = [*native_cli, "-t", ours, str(ctx)]
        docker_cold = ["docker", "build", "-q", "--no-cache", "-t", theirs, str(ctx)]
        docker_warm = ["docker", "build", "-q", "-t", theirs, str(ctx)]
        # warm-up: both caches filled once, the interpreter's bytecode compiled
        for argv in (native_cold, docker_cold):
            timed(argv, env, docker_ids if argv is docker_cold else None)
        config = NativeConfig(root=root, run_dir=run_dir, name_prefix=prefix)
        manager = containers.ContainerManager(config)
        api = builder.Builder(native_images.ImageStore(config), manager)

        def api_build(no_cache: bool) -> float:
            t = time.perf_counter()
            api.build(builder.BuildOptions(context=str(ctx), tags=(ours,), no_cache=no_cache))
            return time.perf_counter() - t

        api_build(True)
        # the floor of any native CLI command that names an image: interpreter, imports
        # (structlog, the registry client behind reference parsing), opening the store
        floor_argv = [sys.executable, "-m", "reconciler", "image", "inspect", "--root", str(root),
                      "--run-dir", str(run_dir), ours]
        floor = statistics.median(timed(floor_argv, env) for _ in range(max(3, args.runs)))
        kinds = ("cold", "rebuild")
        results: dict[str, list[float]] = {f"{who} {k}": [] for k in kinds for who in ("native", "api", "docker")}
        # the cold builds first, then the rebuilds: a --no-cache build replaces the cache rows an
        # unchanged rebuild would find, so a rebuild right after one is the first build of new rows
        # (one untimed build of each engine first: what "build again, nothing changed" meets)
        for kind, (native_argv, docker_argv) in zip(kinds, ((native_cold, docker_cold), (native_warm, docker_warm)),
                                                      strict=True):
            jobs = [
                (f"native {kind}", lambda a=native_argv: timed(a, env)),
                (f"api {kind}", lambda c=(kind == "cold"): api_build(c)),
                (f"docker {kind}", lambda a=docker_argv: timed(a, env, docker_ids)),
            ]
            if kind == "rebuild":
                for _, job in jobs:
                    job()
            for i in range(args.runs):
                for name, job in (jobs if i % 2 == 0 else jobs[::-1]):
                    results[name].append(job())
        results.update(rebuild_through_agent(work, env, prefix, native_warm, docker_warm, args.runs, docker_ids))
        med = {k: statistics.median(v) for k, v in results.items()}
        print(f"6-step Dockerfile on busybox, {args.runs} runs each, medians (CLI, fresh process per build)")
        for k, v in med.items():
            print(f"  {k:16s} {v * 1000:8.0f} ms   (min {min(results[k]) * 1000:.0f}, max {max(results[k]) * 1000:.0f})")
        print(f"  {'CLI floor':16s} {floor * 1000:8.0f} ms   (`reconcile image inspect`: a CLI process that"
              " resolves an image name and does nothing else)")
        for who in ("api", "native"):
            cold = med[f"{who} cold"] / med["docker cold"]
            warm = med[f"{who} rebuild"] / med["docker rebuild"]
            how = "warm process (API)" if who == "api" else "CLI process"
            print(f"ratio cold    {how:18s} native/docker = {cold:.2f}   (goal <= 1.0) {'OK' if cold <= 1.0 else 'MISSED'}")
            print(f"ratio rebuild {how:18s} native/docker = {warm:.2f}   (goal <= 1.0) {'OK' if warm <= 1.0 else 'MISSED'}")
        print(f"  {'agent rebuild':16s} {med['agent rebuild'] * 1000:8.0f} ms   (the CLI while an agent holds the "
              f"root: POST /v1/build; docker {med['docker rebuild (agent)'] * 1000:.0f} ms beside it)")
        benchrows.record("unchanged reconcile build (agent)", med["agent rebuild"], peer="docker",
                         theirs=med["docker rebuild (agent)"], goal=1.0)
        where = {"api": " (warm process)", "native": ""}
        for who in ("native", "api"):
            benchrows.record(f"unchanged reconcile build{where[who]}", med[f"{who} rebuild"], peer="docker",
                             theirs=med["docker rebuild"], goal=1.0)
            benchrows.record(f"cold reconcile build{where[who]}", med[f"{who} cold"], peer="docker",
                             theirs=med["docker cold"], goal=1.0)
        return 0
    finally:
        for t in [*tags, *docker_ids]:
            sh("docker", "rmi", "-f", t, check=False)
        reg.stop()
        for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
            mp = line.split(" ")[4]
            if mp.startswith(str(work)):
                subprocess.run(["umount", "-l", mp], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
