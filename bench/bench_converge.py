"""Converge N containers from an empty host, and a pass with nothing to do: `reconcile --once`
(native engine) vs `docker-compose up -d` on the equivalent project, same run (issue 7).

Each side: one network, N busybox containers (`sleep 3600`) publishing one port each on
127.0.0.1. The image is present beforehand on both sides (native: pulled from a loopback
docker-registry into the engine's store; docker: `docker import` of the same layer), so the
times compare the convergence itself. Both are timed as a user runs them: one CLI process.
`reconcile --once` waits 1 s after starting containers before it reports (`--settle`: one that
exits at once is then reported down); `docker-compose up -d` reports as soon as they started, so
the converge is also timed with `--settle 0` (the same semantics as compose's), on a root of its
own, removed by force before the default run.
Goals: converge ratio <= 0.3 (issue 21; issue 7 asked 0.7); no-op pass < 0.2 s for 50 (issue 7), printed both as the whole
CLI process and as the pass alone (from the summary line). Then the CPU the engine's
supervision loops (health checker, restart manager, as the agent and a pass run them) use
while nothing happens, as a share of one core (issue 21's goal: < 1 % at 500 containers), and
the wall and CPU time of a pass that removes them all (it waits for every stop), beside
`docker-compose down` of the same containers.
Needs root, and dockerd unless --native-only.

The reconcile CLI runs with its bytecode cached, as an installed package has it: these machines
set PYTHONDONTWRITEBYTECODE=1, which makes every start of a source checkout compile its modules
again (~0.2 s of a no-op pass); the bench unsets it and compiles the package into its
`__pycache__` dirs before the first timed run (the standard library and the dependencies are
compiled already, as pip and Python's installer leave them). The no-op rows also print the CPU time (user +
sys) of the CLI processes, which a loaded machine disturbs less than the wall time.

    sudo .venv/bin/python bench/bench_converge.py [--containers 50|5,10,25] [--noop-runs 3] [--plot] [--native-only]

With --plot it also draws converge time against the number of containers, both tools, into
docs/img/bench-converge.png (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import plots
from bench import rows as benchrows
from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.network.network import NetworkManager
from tests.helpers import images, subnets
from tests.helpers.host import force_remove_all
from tests.helpers.registry import RegistryServer

REPO = Path(__file__).resolve().parent.parent
PASS_TIME = re.compile(r"\((\d+\.\d+)s\)\s*$")
pass_times: list[float] = []
cpu_times: list[float] = []


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cached_bytecode_env(tmp: Path) -> dict[str, str]:
    """The environment of a CLI whose bytecode is cached, as an installed package's is; the
    package is compiled here (into its own `__pycache__` dirs, which git ignores), before anything
    is timed. Not into a PYTHONPYCACHEPREFIX: Python then reads every module's bytecode from that
    prefix only, so the first timed run (the converge from empty) compiled the standard library
    and the dependencies again (~460 modules) while an installed tool finds them compiled."""
    del tmp
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPYCACHEPREFIX", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "reconciler")], env=env,
                   capture_output=True, check=True)
    return env


def timed(argv: list[str], env: dict[str, str] | None = None, *, timeout: float | None = None) -> float:
    """Wall time of one CLI process; a reconcile run also records the pass's own time, and
    every run its CPU time (user + sys) in `cpu_times`. Past `timeout` it is killed
    (subprocess.TimeoutExpired)."""
    cpu, t = _children_cpu(), time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=env, timeout=timeout)
    secs = time.perf_counter() - t
    cpu_times.append(_children_cpu() - cpu)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} ... failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    found = PASS_TIME.search(proc.stdout)
    if found:
        pass_times.append(float(found.group(1)))
    return secs


COMPOSE_TIMEOUT = 180.0     # docker-compose 1.29 up -d of 200 services stalled here (at 50 and 52 made; 50 take 8 s)


def write_manifests(d: Path, ref: str, n: int, subnet: str, port0: int) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "net.yaml").write_text(f"apiVersion: reconciler/v1\nkind: Network\nmetadata: {{name: bench}}\n"
                                f"spec: {{subnet: {subnet}}}\n")
    for i in range(n):
        (d / f"c{i:03d}.yaml").write_text(
            f"apiVersion: reconciler/v1\nkind: Container\nmetadata: {{name: c{i:03d}}}\n"
            f"spec:\n  image: {ref}\n  command: [sleep, '3600']\n  networks: [bench]\n"
            f"  ports: ['127.0.0.1:{port0 + i}:80']\n")


def wall_and_cpu(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall time and CPU time (user + sys, its threads included) of one CLI process."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} ... failed ({proc.returncode})")
    return time.perf_counter() - t, usage.ru_utime + usage.ru_stime


def idle_supervision_cpu(config: NativeConfig, seconds: float) -> float:
    """Share of one core the health checker and the restart manager use on an idle engine."""
    rt = NativeRuntime(config, network=NetworkManager(config))
    stop = threading.Event()
    loops = [threading.Thread(target=loop.watch, args=(stop,), daemon=True)
             for loop in (rt.health_checker, rt.restart_manager)]
    try:
        for t in loops:
            t.start()
        time.sleep(2)                       # past the first ticks, which read everything
        cpu, wall = time.process_time(), time.perf_counter()
        time.sleep(seconds)
        return (time.process_time() - cpu) / (time.perf_counter() - wall)
    finally:
        stop.set()
        for t in loops:
            t.join()
        rt.close()


def write_compose(path: Path, tag: str, n: int, subnet: str, port0: int) -> None:
    lines = ["version: '2.4'", "services:"]
    for i in range(n):
        lines += [f"  c{i:03d}:", f"    image: {tag}", "    command: [sleep, '3600']",
                  f"    ports: ['127.0.0.1:{port0 + i}:80']", "    networks: [bench]"]
    lines += ["networks:", "  bench:", "    ipam:", "      config:", f"        - subnet: {subnet}"]
    path.write_text("\n".join(lines) + "\n")


def converge(n: int, noop_runs: int, idle_seconds: float, native_only: bool) -> dict[str, float]:
    """One measurement of `n` containers on each side; the times in seconds."""
    with tempfile.TemporaryDirectory(prefix="bench-converge-") as tmp_s:
        tmp = Path(tmp_s)
        registry = RegistryServer(tmp / "registry").start()
        prefix = "bc" + secrets.token_hex(2)[:3]
        config = NativeConfig(root=tmp / "root", run_dir=tmp / "run", name_prefix=prefix)
        tag = f"bench-converge-busybox:{secrets.token_hex(3)}"
        project = f"benchconv{secrets.token_hex(3)}"
        compose_file = tmp / "docker-compose.yml"
        m = tmp / "manifests"
        cli = [sys.executable, "-m", "reconciler", "--once", str(m), "--root", str(config.root),
               "--run-dir", str(config.run_dir), "--name-prefix", prefix, "--runtime", "native"]
        block = subnets.lease_block()           # a /22 nobody else (tests, other benches) uses
        env = cached_bytecode_env(tmp)
        try:
            layout = tmp / "layout"
            images.write_layout(layout, [images.busybox_layer()])
            ref = f"{registry.host}/bench/busybox:latest"
            images.push_layout(layout, ref)
            rt = NativeRuntime(config)
            rt.pull_image(ref)
            rt.close()
            if not native_only:
                subprocess.run(["docker", "import", "-", tag], input=images.busybox_layer(),
                               capture_output=True, check=True)
            halves = list(block.subnets(new_prefix=24))
            write_manifests(m, ref, n, str(halves[0]), 21000)
            write_compose(compose_file, tag, n, str(halves[1]), 22000)

            # first, compose's semantics (report as soon as started: `--settle 0`) on a root of its
            # own, removed by force (SIGKILL: no stop timeouts) before the default run
            root0 = NativeConfig(root=tmp / "root0", run_dir=tmp / "run0", name_prefix=prefix + "z")
            rt0 = NativeRuntime(root0)
            rt0.pull_image(ref)
            rt0.close()
            m0 = tmp / "manifests0"
            write_manifests(m0, ref, n, str(halves[2]), 23000)
            cli0 = [sys.executable, "-m", "reconciler", "--once", str(m0), "--root", str(root0.root), "--run-dir",
                    str(root0.run_dir), "--name-prefix", root0.name_prefix, "--runtime", "native", "--settle", "0"]
            try:
                native_up0 = timed(cli0, env)
            finally:
                force_remove_all(root0)
            native_up = timed(cli, env)
            pass_times.clear()
            cpu_times.clear()
            native_noop = statistics.median(timed(cli, env) for _ in range(noop_runs))
            noop_pass = statistics.median(pass_times) if pass_times else float("nan")
            noop_cpu = statistics.median(cpu_times)
            idle = idle_supervision_cpu(config, idle_seconds)
            # remove them all: busybox sleep as PID 1 ignores SIGTERM, so each stop waits its
            # 10 s timeout, and the pass waits with its supervision loops running (issue 21)
            shutil.rmtree(m)
            m.mkdir()
            remove_wall, remove_cpu = wall_and_cpu([*cli, "--allow-empty"], env)
            compose_up = compose_noop = compose_noop_cpu = compose_down = float("nan")
            if not native_only:
                compose = ["docker-compose", "-p", project, "-f", str(compose_file)]
                try:
                    compose_up = timed([*compose, "up", "-d"], timeout=COMPOSE_TIMEOUT)
                except subprocess.TimeoutExpired:           # no ratio; the finally removes what it made
                    made = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"],
                                          capture_output=True, text=True, check=False).stdout.split()
                    print(f"  docker-compose up -d of {n} did not finish in {COMPOSE_TIMEOUT:.0f} s ({len(made)} "
                          "containers made): killed, no compose numbers for this size", flush=True)
                else:
                    cpu_times.clear()
                    compose_noop = statistics.median(timed([*compose, "up", "-d"]) for _ in range(noop_runs))
                    compose_noop_cpu = statistics.median(cpu_times)
                    compose_down = timed([*compose, "down"])      # the same removal: each stop waits 10 s
        finally:
            if not native_only:
                subprocess.run(["docker-compose", "-p", project, "-f", str(compose_file), "down", "-v",
                                "--remove-orphans"], capture_output=True, check=False)
                subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)
            if m.exists():
                shutil.rmtree(m)
                m.mkdir()
                subprocess.run([*cli, "--allow-empty"], capture_output=True, check=False)
            registry.stop()
            subnets.release(block)
    return {"native_up": native_up, "native_up0": native_up0, "native_noop": native_noop, "noop_pass": noop_pass, "noop_cpu": noop_cpu,
            "compose_noop_cpu": compose_noop_cpu,
            "compose_up": compose_up, "compose_noop": compose_noop, "idle": idle,
            "remove_wall": remove_wall, "remove_cpu": remove_cpu, "compose_down": compose_down}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--containers", default="50",
                    help="how many containers; a comma list measures each (default: 50; "
                         "with --plot and one number: 5,10,25,50)")
    ap.add_argument("--noop-runs", type=int, default=3)
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    ap.add_argument("--native-only", action="store_true", help="leave docker-compose out")
    plots.add_plot_flags(ap)
    opts = ap.parse_args()
    counts = [int(c) for c in opts.containers.split(",")]
    if opts.plot and len(counts) == 1:
        counts = [5, 10, 25, 50]
    results = {}
    for n in counts:
        r = results[n] = converge(n, opts.noop_runs, opts.idle_seconds, opts.native_only)
        print(f"{n} containers, one network, one published port each")
        print(f"  converge from empty   reconcile --once {r['native_up']:7.2f} s   docker-compose up -d "
              f"{r['compose_up']:7.2f} s   ratio {r['native_up'] / r['compose_up']:5.2f} (goal <= 0.3)")
        print(f"  the same, --settle 0  reconcile --once {r['native_up0']:7.2f} s   docker-compose up -d "
              f"{r['compose_up']:7.2f} s   ratio {r['native_up0'] / r['compose_up']:5.2f} (goal <= 0.3; reports when "
              f"started, as compose does: no 1 s wait for a container that exits at once)")
        print(f"  nothing to do         reconcile --once {r['native_noop']:7.2f} s   docker-compose up -d "
              f"{r['compose_noop']:7.2f} s   ratio {r['native_noop'] / r['compose_noop']:5.2f}")
        print(f"  nothing to do, CPU time  reconcile --once {r['noop_cpu']:7.2f} s   docker-compose up -d "
              f"{r['compose_noop_cpu']:7.2f} s   ratio {r['noop_cpu'] / r['compose_noop_cpu']:5.2f}")
        print(f"  nothing to do, the pass alone (after CLI start-up): {r['noop_pass']:.3f} s (goal < 0.2 s for 50)")
        print(f"  idle supervision (health checker + restart manager): {100 * r['idle']:.2f} % of a core "
              f"over {opts.idle_seconds:.0f} s (goal < 1 % at 500)")
        print(f"  remove all (a pass waiting for {n} stopping containers): {r['remove_wall']:.2f} s, "
              f"CPU {r['remove_cpu']:.2f} s   docker-compose down {r['compose_down']:7.2f} s   ratio "
              f"{r['remove_wall'] / r['compose_down']:5.2f}", flush=True)
        compose = not opts.native_only and r["compose_up"] == r["compose_up"]     # NaN: compose did not finish
        benchrows.record(f"converge {n} from empty (reconcile --once)", r["native_up"],
                         peer="docker-compose up -d" if compose else None,
                         theirs=r["compose_up"] if compose else None, goal=0.3 if compose else None)
        benchrows.record(f"converge {n} from empty (reconcile --once --settle 0)", r["native_up0"],
                         peer="docker-compose up -d" if compose else None,
                         theirs=r["compose_up"] if compose else None, goal=0.3 if compose else None)
        benchrows.record(f"nothing to do, {n} containers (reconcile --once)", r["native_noop"],
                         peer="docker-compose up -d" if compose else None,
                         theirs=r["compose_noop"] if compose else None, goal=0.15 if compose else None)
        benchrows.record(f"remove {n} whose PID 1 ignores SIGTERM (reconcile --once)", r["remove_wall"],
                         peer="docker-compose down" if compose else None,
                         theirs=r["compose_down"] if compose else None)
    if opts.plot:
        plots.lines(opts.plot_dir / "bench-converge.png", "Converge from an empty host (one CLI run)",
                    "containers (one network, one published port each)", "seconds", counts,
                    {"reconcile --once": [results[n]["native_up"] for n in counts],
                     "docker-compose up -d": [results[n]["compose_up"] for n in counts],
                     "reconcile --once, nothing to do": [results[n]["native_noop"] for n in counts],
                     "docker-compose up -d, nothing to do": [results[n]["compose_noop"] for n in counts]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
