"""Engine work at scale (#21): what 500 and 1000 containers cost when nothing changes.

    sudo .venv/bin/python bench/bench_scale.py [--containers 500,1000] [--runs 3] [--idle-seconds 20] [--no-docker]

Per count N, on a private state root holding N running busybox containers (`sleep 3600`, no
network, `restart: always`, made by one `reconcile --once` from N manifests):
  - nothing-to-do `reconcile --once` on the same manifests: the whole CLI process and the pass
    alone (from its summary line; issue #21's goal: <= 0.2 s at 500), and the process again
    once the tag's cached digest expired (a job run every few minutes: the registry is asked);
  - `reconcile ps -a` against `docker ps -a` with N containers in dockerd too (made with
    `docker run -d --network none` from `docker import` of the same busybox), as ratios;
  - the CPU of an idle agent holding the root (its supervision: restart manager and health
    checker) over `--idle-seconds`, as a share of one core (goal: < 1 % at 500);
  - a waiting apply: the pass that removes 100 of them while the others run (busybox `sleep` as
    PID 1 ignores SIGTERM, so each stop waits its timeout, 1 s here; 4 at a time), with its
    supervision loops running: its wall and CPU time, and that CPU as a share of one core.

Python runs with its bytecode cached, as an installed package has it: these machines set
PYTHONDONTWRITEBYTECODE=1, which makes every start of a source checkout compile its modules
again; the bench unsets it and keeps the cache in a temporary PYTHONPYCACHEPREFIX, filled by the
first (untimed) run of each command. Medians of `--runs`. Nothing is left behind: the
containers (both engines') and the root are removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import rows as benchrows
from bench.bench_cli import timed
from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.containers import cgroups
from tests.helpers import images
from tests.helpers.registry import RegistryServer

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
PASS_TIME = re.compile(r"\((\d+\.\d+)s\)\s*$", re.MULTILINE)
TICKS = os.sysconf("SC_CLK_TCK")


def write_manifests(d: Path, ref: str, n: int) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (d / f"c{i:04d}.yaml").write_text(
            f"apiVersion: reconciler/v1\nkind: Container\nmetadata: {{name: c{i:04d}}}\n"
            f"spec:\n  image: {ref}\n  command: [sleep, '3600']\n  networks: [none]\n"
            f"  restart: always\n  stopTimeout: 1s\n")


def run_pass(argv: list[str], env: dict[str, str], own: list[float] | None = None) -> tuple[float, float, float]:
    """Wall time, CPU time (user + sys: its threads and the runc/conmon processes it ran) and
    the pass's own time of one `reconcile --once` process; `own` gets the CPU time of the
    process's own threads alone (sampled every 0.1 s from /proc: up to 0.1 s short)."""
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        while own is not None:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            with contextlib.suppress(OSError):
                own[:] = [cpu_seconds(proc.pid, children=False)]
            time.sleep(0.1)
        else:
            _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:6])} ... failed ({proc.returncode}):\n{text[-3000:]}")
    found = PASS_TIME.search(text)
    return wall, usage.ru_utime + usage.ru_stime, float(found.group(1)) if found else float("nan")


def age_digests(root: Path, seconds: float) -> None:
    """Make the state DB's cached tag digests `seconds` older (a pass asks again past 5 minutes)."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(root / "state.db")) as conn, conn:
        conn.execute("UPDATE inv_digests SET resolved_at = resolved_at - ?", (seconds,))


def cpu_seconds(pid: int, *, children: bool = True) -> float:
    """User + system time of process `pid` (all its threads; with `children`, those of the
    processes it waited for too) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return ticks / TICKS


def idle_agent_cpu(tmp: Path, env: dict[str, str], seconds: float) -> float:
    """Share of one core an agent holding the root uses while nothing happens."""
    (tmp / "agent.yaml").write_text(
        f"root: {env['RECONCILER_ROOT']}\nrun_dir: {env['RECONCILER_RUN_DIR']}\nruntime: native\n"
        f"name_prefix: {env['RECONCILER_PREFIX']}\nsocket: {tmp / 'agent.sock'}\nsources: []\n")
    proc = subprocess.Popen([PY, "-m", "reconciler", "agent", "--config", str(tmp / "agent.yaml")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (tmp / "agent.sock").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the agent did not start")
            time.sleep(0.1)
        time.sleep(3)                           # past the start: recovery, boot, first ticks
        cpu, wall = cpu_seconds(proc.pid), time.perf_counter()
        time.sleep(seconds)
        return (cpu_seconds(proc.pid) - cpu) / (time.perf_counter() - wall)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def docker_containers(n: int, label: str) -> str:
    """N running containers in dockerd (busybox, no network) labelled `label`; their image."""
    tag = f"bench-scale-busybox:{secrets.token_hex(3)}"
    subprocess.run(["docker", "import", "-", tag], input=images.busybox_layer(), capture_output=True, check=True)

    def one(i: int) -> None:
        subprocess.run(["docker", "run", "-d", "--network", "none", "--label", label, "--name", f"{label}-{i}",
                        tag, "sleep", "3600"], capture_output=True, check=True)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(n)))
    return tag


def remove_docker(label: str, tag: str) -> None:
    """The containers killed, then removed, 10 at a time: dockerd 20.10 deadlocked here twice in
    its network controller while `docker rm -f` removed 100 running `--network none` containers at
    once (session 14), and a bench left waiting on it holds the whole run."""
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True,
                         check=False).stdout.split()
    for i in range(0, len(ids), 10):
        subprocess.run(["docker", "kill", *ids[i:i + 10]], capture_output=True, check=False, timeout=120)
    for i in range(0, len(ids), 10):
        subprocess.run(["docker", "rm", "-f", *ids[i:i + 10]], capture_output=True, check=False, timeout=120)
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


def median_wall(argv: list[str], env: dict[str, str], runs: int) -> float:
    timed(argv, env)                            # fills the bytecode cache
    return statistics.median(timed(argv, env)[0] for _ in range(runs))


def scale(n: int, runs: int, idle_seconds: float, docker: bool) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    root, run_dir, m = tmp / "root", tmp / "run", tmp / "manifests"
    prefix = "bs" + secrets.token_hex(2)[:3]
    env = {**os.environ, "RECONCILER_ROOT": str(root), "RECONCILER_RUN_DIR": str(run_dir),
           "RECONCILER_PREFIX": prefix, "PYTHONPATH": str(REPO), "PYTHONPYCACHEPREFIX": str(tmp / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    reconcile = [PY, "-m", "reconciler"]
    once = [*reconcile, "--once", str(m), "--root", str(root), "--run-dir", str(run_dir), "--name-prefix", prefix,
            "--runtime", "native"]
    label = f"bench-scale-{secrets.token_hex(3)}"
    tag = ""
    out: dict[str, float] = {}
    registry = RegistryServer(tmp / "registry").start()
    try:
        write_manifests(m, busybox_ref(registry, NativeConfig(root=root, run_dir=run_dir, name_prefix=prefix)), n)
        out["converge"] = run_pass(once, env)[0]
        noop, expired = [], []
        for _ in range(runs):                   # interleaved, so that the host's drift hits both alike
            noop.append(run_pass(once, env))
            age_digests(root, 600)              # the tag's cached digest (5 minutes) expired: asked again
            expired.append(run_pass(once, env)[0])
        out["noop_wall"] = statistics.median(w for w, _, _ in noop)
        out["noop_pass"] = statistics.median(p for _, _, p in noop)
        out["noop_expired"] = statistics.median(expired)
        out["ps"] = median_wall([*reconcile, "ps", "-a"], env, runs)
        out["docker_ps"] = float("nan")
        if docker:
            tag = docker_containers(n, label)
            out["docker_ps"] = median_wall(["docker", "ps", "-a"], env, runs)
        out["idle_agent"] = idle_agent_cpu(tmp, env, idle_seconds)
        out["removed"] = min(100, n // 5)
        for f in sorted(m.iterdir())[:int(out["removed"])]:
            f.unlink()
        own: list[float] = [float("nan")]
        out["remove_wall"], out["remove_cpu"], _ = run_pass(once, env, own)
        out["remove_own"] = own[0]
    finally:
        if docker and tag:
            remove_docker(label, tag)
        remove_native(NativeConfig(root=root, run_dir=run_dir, name_prefix=prefix))
        registry.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def busybox_ref(registry: RegistryServer, config: NativeConfig) -> str:
    """A busybox image on a loopback registry, pulled into the engine's store (as a user's
    passes would find it: the tag resolves, then its digest is cached)."""
    layout = Path(config.root).parent / "layout"
    images.write_layout(layout, [images.busybox_layer()])
    ref = f"{registry.host}/bench/busybox:latest"
    images.push_layout(layout, ref)
    rt = NativeRuntime(config)
    try:
        rt.pull_image(ref)
    finally:
        rt.close()
    return ref


def remove_native(config: NativeConfig) -> None:
    """Every container of the root, force-removed 8 at a time (no stop timeouts to wait)."""
    rt = NativeRuntime(config)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda cid: rt.containers.remove(cid, force=True),
                          [r.id for r in rt.containers.stored()]))
    finally:
        rt.close()
    cgroups.remove(config.name_prefix, None, config.locks_dir)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--containers", default="500,1000")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--idle-seconds", type=float, default=20.0)
    ap.add_argument("--no-docker", action="store_true", help="leave dockerd out (no docker ps row)")
    opts = ap.parse_args()
    for n in (int(c) for c in opts.containers.split(",")):
        r = scale(n, opts.runs, opts.idle_seconds, not opts.no_docker)
        print(f"{n} running containers (no network), bytecode cached")
        print(f"  converge from empty      reconcile --once {r['converge']:7.2f} s")
        print(f"  nothing to do            reconcile --once {r['noop_wall']:7.3f} s, the pass alone "
              f"{r['noop_pass']:.3f} s (goal <= 0.2 s at 500)")
        print(f"  the same, the tag's cached digest expired (asked again)  {r['noop_expired']:7.3f} s")
        print(f"  ps -a                    reconcile {r['ps']:7.3f} s   docker {r['docker_ps']:7.3f} s   "
              f"ratio {r['ps'] / r['docker_ps']:5.2f} (goal <= 1.5)")
        print(f"  idle agent               {100 * r['idle_agent']:.2f} % of a core over {opts.idle_seconds:.0f} s "
              "(goal < 1 % at 500)")
        print(f"  waiting apply (removes {r['removed']:.0f}, 1 s stop timeouts): {r['remove_wall']:.2f} s wall, CPU "
              f"{r['remove_cpu']:.2f} s = {100 * r['remove_cpu'] / r['remove_wall']:.1f} % of a core; its own "
              f"threads {r['remove_own']:.2f} s = {100 * r['remove_own'] / r['remove_wall']:.1f} % (the rest: the "
              "runc and conmon processes of the removals)", flush=True)
        benchrows.record(f"nothing to do, {n} containers: the pass alone", r["noop_pass"], goal=0.2 if n <= 500 else None)
        benchrows.record(f"nothing to do, {n} containers (reconcile --once)", r["noop_wall"])
        benchrows.record(f"nothing to do, {n} containers, its tag's cached digest expired", r["noop_expired"])
        docker_ps = None if r["docker_ps"] != r["docker_ps"] else r["docker_ps"]      # NaN: no docker row
        benchrows.record(f"reconcile ps -a, {n} containers", r["ps"], peer="docker" if docker_ps else None,
                         theirs=docker_ps, goal=1.5 if docker_ps else None)
        benchrows.record(f"idle agent CPU, {n} containers", 100 * r["idle_agent"], unit="%", goal=1.0)
        benchrows.record(f"converge {n} from empty (reconcile --once)", r["converge"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
