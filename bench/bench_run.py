"""Benchmark: container start cost, native runtime vs `docker run` vs `podman run` (same run).

    .venv/bin/python bench/bench_run.py [--runs 15] [--detached 50]

Starts its own docker-registry on 127.0.0.1, pushes a busybox-static image there with skopeo,
and has every engine pull it first. Then:

  1. start-to-exit of a container running `true` (create, start, wait, remove), `--runs` times
     per engine, interleaved; medians. Native is measured twice: through the CLI
     (`reconcile run --rm`, a fresh Python process each time, like the docker CLI) and through
     the API in a warm process (what the agent pays).
  2. create+start of `--detached` detached containers running `sleep` (sequential, like a
     script of `docker run -d`); total wall time per engine (removal not timed).
  3. both again through the CLI while an agent holds the root: `run` is then a thin client of
     the agent's engine (#21, the client-server split; rows "... (agent)"), docker's same
     commands timed again beside them (interleaved), so each ratio is of one moment's load.

Network is "none" for every engine (native has no bridge in this issue); docker is also
measured on its default bridge, which is what `docker run` users pay. podman runs with runc
and explicit ulimits: its crun refuses this hybrid-cgroup host and its default rlimits exceed
the hard limits root has here. Prints medians and ratios native/docker (goal <= 0.5).
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import rows  # noqa: E402
from bench.bench_cli import agent  # noqa: E402
from reconciler.runtime import base  # noqa: E402
from reconciler.runtime.native.backend import NativeRuntime  # noqa: E402
from reconciler.runtime.native.config import NativeConfig  # noqa: E402
from reconciler.runtime.native.containers import cgroups  # noqa: E402
from tests.helpers import images  # noqa: E402
from tests.helpers.registry import RegistryServer  # noqa: E402


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, capture_output=True, check=check)


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def podman_args() -> list[str]:
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    return ["podman", "--runtime", "runc", "run", "--network", "none",
            "--ulimit", f"nofile={min(1024, nofile)}:{nofile}", "--ulimit", f"nproc={min(4096, nproc)}:{min(4096, nproc)}"]


def through_agent(work: Path, env: dict[str, str], cli: list[str], ref: str, runs: int, n: int,
                  docker_rm: Callable[[], object] | None, docker_many: Callable[[str], object] | None) -> None:
    """Part 3: `run --rm` and `n` x `run -d` while an agent holds the root (its engine runs them),
    each beside docker's same command timed in the same minutes (interleaved, or right after):
    on a shared machine the load of part 1's minutes is not this part's."""
    def run_rm() -> None:
        subprocess.run([*cli, "--rm", "--network", "none", ref, "true"], env=env, cwd=REPO, check=True)

    def many() -> None:
        for i in range(n):
            subprocess.run([*cli, "-d", "--name", f"ag{i}", "--network", "none", ref, "sleep", "1000"],
                           env=env, cwd=REPO, check=True, capture_output=True)

    ours: list[float] = []
    theirs: list[float] = []
    with agent(work, [sys.executable, "-m", "reconciler"], env):
        for _ in range(3):                         # warm-up: the agent's first creates run while it
            run_rm()                               # still adopts the root's containers (start-up)
        for _ in range(runs):
            ours.append(timed(run_rm))
            if docker_rm is not None:
                theirs.append(timed(docker_rm))
        one = statistics.median(ours)
        total = timed(many)
    docker_ref = statistics.median(theirs) if theirs else None
    docker_total = timed(lambda: docker_many("agent")) if docker_many is not None else None
    print(f"\n3. through an agent holding the root (median of {runs}; {n} detached, total; docker beside it)")
    print(f"   native (CLI run --rm, agent)       {one:7.3f}")
    print(f"   native (CLI run -d, agent)         {total:7.2f}   ({total / n * 1000:6.1f} ms each)")
    if docker_ref:
        print(f"   docker run --rm (bridge)           {docker_ref:7.3f}")
        print(f"   ratio run --rm (agent) / docker (bridge) = {one / docker_ref:5.2f}  (goal <= 0.35)")
        rows.record("reconcile run --rm IMG true (agent)", one, peer="docker", theirs=docker_ref, goal=0.35)
    if docker_total:
        print(f"   docker run -d --network none       {docker_total:7.2f}   ({docker_total / n * 1000:6.1f} ms each)")
        print(f"   ratio run -d (agent) / docker = {total / docker_total:5.2f}  (goal <= 0.5)")
        rows.record(f"{n} x reconcile run -d (agent)", total, peer="docker", theirs=docker_total, goal=0.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--detached", type=int, default=50)
    ap.add_argument("--no-podman", action="store_true")
    args = ap.parse_args()
    have_docker = shutil.which("docker") is not None and sh("docker", "info", check=False).returncode == 0
    have_podman = not args.no_podman and shutil.which("podman") is not None

    work = Path(tempfile.mkdtemp(prefix="bench-run-"))
    prefix = "rb" + secrets.token_hex(2)[:3]
    config = NativeConfig(root=work / "root", run_dir=work / "run", name_prefix=prefix)
    reg = RegistryServer(work / "registry").start()
    docker_names: list[str] = []
    podman_names: list[str] = []
    rt = None
    try:
        layout = work / "layout"
        images.write_layout(layout, [images.busybox_layer()])
        ref = f"{reg.host}/bench/busybox:latest"
        images.push_layout(layout, ref)
        rt = NativeRuntime(config)
        rt.pull_image(ref)
        if have_docker:
            sh("docker", "pull", "-q", ref)
        if have_podman:
            sh("podman", "pull", "-q", "--tls-verify=false", ref)
        env = {**os.environ, "RECONCILER_ROOT": str(config.root), "RECONCILER_RUN_DIR": str(config.run_dir),
               "RECONCILER_PREFIX": prefix,
               # compiled bytecode as an installed package has it, even where the environment
               # sets PYTHONDONTWRITEBYTECODE (the warm-up run fills this cache)
               "PYTHONPYCACHEPREFIX": str(work / "pycache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        cli = [sys.executable, "-m", "reconciler", "run"]

        def native_api_true() -> None:
            cid = rt.create_container(base.ContainerConfig(name="t" + secrets.token_hex(4), image=ref,
                                                           command=("true",), networks=("none",)))
            rt.start_container(cid)
            assert rt.wait_container(cid) == 0
            rt.remove_container(cid)

        cases: dict[str, Callable[[], object]] = {
            "native (API, warm)": native_api_true,
            "native (CLI run --rm)": lambda: subprocess.run([*cli, "--rm", "--network", "none", ref, "true"],
                                                            env=env, cwd=REPO, check=True),
        }
        if have_docker:
            cases["docker run --rm --network none"] = lambda: sh("docker", "run", "--rm", "--network", "none", ref, "true")
            cases["docker run --rm (bridge)"] = lambda: sh("docker", "run", "--rm", ref, "true")
        if have_podman:
            cases["podman run --rm --network none"] = lambda: sh(*podman_args(), "--rm", ref, "true")
        for fn in cases.values():          # warm-up: page cache, image metadata
            fn()
        samples: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.runs):
            for k, fn in cases.items():
                samples[k].append(timed(fn))
        med = {k: statistics.median(v) for k, v in samples.items()}
        print(f"\n1. start-to-exit of `true` (median of {args.runs}, seconds)")
        for k, v in med.items():
            print(f"   {k:34s} {v:7.3f}")
        docker_ref = med.get("docker run --rm (bridge)")
        docker_none = med.get("docker run --rm --network none")
        for k in ("native (API, warm)", "native (CLI run --rm)"):
            if docker_ref:
                print(f"   ratio {k} / docker (bridge)       = {med[k] / docker_ref:5.2f}  (goal <= 0.5)")
            if docker_none:
                print(f"   ratio {k} / docker (--network none) = {med[k] / docker_none:5.2f}")
            if "podman run --rm --network none" in med:
                print(f"   ratio {k} / podman                = {med[k] / med['podman run --rm --network none']:5.2f}")
        ours_run = med["native (CLI run --rm)"]
        if docker_ref:
            rows.record("reconcile run --rm IMG true", ours_run, peer="docker", theirs=docker_ref, goal=0.35)
        if "podman run --rm --network none" in med:
            rows.record("reconcile run --rm IMG true", ours_run, peer="podman",
                        theirs=med["podman run --rm --network none"])

        n = args.detached
        totals: dict[str, float] = {}

        def native_api_many() -> None:
            for i in range(n):
                cid = rt.create_container(base.ContainerConfig(name=f"api{i}", image=ref, command=("sleep", "1000"),
                                                               networks=("none",)))
                rt.start_container(cid)

        totals["native (API, warm)"] = timed(native_api_many)

        def native_cli_many() -> None:
            for i in range(n):
                subprocess.run([*cli, "-d", "--name", f"cli{i}", "--network", "none", ref, "sleep", "1000"],
                               env=env, cwd=REPO, check=True, capture_output=True)

        totals["native (CLI run -d)"] = timed(native_cli_many)
        def docker_many(tag: str) -> None:
            for i in range(n):
                name = f"benchrun-{prefix}-{tag}{i}"
                docker_names.append(name)
                sh("docker", "run", "-d", "--name", name, "--network", "none", ref, "sleep", "1000")

        if have_docker:
            totals["docker run -d --network none"] = timed(lambda: docker_many(""))
        if have_podman:
            def podman_many() -> None:
                for i in range(n):
                    name = f"benchrun-{prefix}-{i}"
                    podman_names.append(name)
                    sh(*podman_args(), "-d", "--name", name, ref, "sleep", "1000")
            totals["podman run -d --network none"] = timed(podman_many)
        print(f"\n2. create+start of {n} detached `sleep` containers (total, seconds)")
        for k, v in totals.items():
            print(f"   {k:34s} {v:7.2f}   ({v / n * 1000:6.1f} ms each)")
        if "docker run -d --network none" in totals:
            d = totals["docker run -d --network none"]
            for k in ("native (API, warm)", "native (CLI run -d)"):
                print(f"   ratio {k} / docker = {totals[k] / d:5.2f}  (goal <= 0.5)")
            rows.record(f"{n} x reconcile run -d", totals["native (CLI run -d)"], peer="docker", theirs=d, goal=0.5)
        if "podman run -d --network none" in totals:
            p = totals["podman run -d --network none"]
            for k in ("native (API, warm)", "native (CLI run -d)"):
                print(f"   ratio {k} / podman = {totals[k] / p:5.2f}")
        through_agent(work, env, cli, ref, args.runs, n, cases.get("docker run --rm (bridge)"),
                      docker_many if have_docker else None)
        running = [c for c in rt.list_containers() if c.status == base.ContainerStatus.RUNNING]
        print(f"\n   native containers running at the end: {len(running)} (expected {3 * n})")
    finally:
        if docker_names:
            sh("docker", "rm", "-f", *docker_names, check=False)
        if podman_names:
            sh("podman", "rm", "-f", "-t", "0", *podman_names, check=False)
        if rt is not None:
            for rec in rt.containers.records():
                try:
                    rt.containers.remove(rec.id, force=True)
                except Exception as exc:
                    print(f"cleanup of {rec.name} failed: {exc}", file=sys.stderr)
            rt.close()
        cgroups.remove(prefix, None, config.locks_dir)
        reg.stop()
        for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
            mp = line.split(" ")[4]
            if mp.startswith(str(work)):
                subprocess.run(["umount", "-l", mp], check=False)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
