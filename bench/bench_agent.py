"""Benchmark: the agent (`reconcile agent`, native engine) beside Docker, in one run.

    .venv/bin/python bench/bench_agent.py [--edits 20] [--containers 50] [--idle 10] [--plot]

With --plot it also draws the memory at rest, daemon and per-container monitors, beside
Docker's, into docs/img/bench-memory.png (docs/benchmarks.md).

Starts its own docker-registry on 127.0.0.1 and pushes a busybox-static image there.

  1. Latency from a manifest write (atomic replace in the drop-in directory) to the changed
     container running, `--edits` times: p50 and p95 (goal: p50 < 1 s). The peer: editing a
     compose file and running `docker-compose up -d` for the same change (the whole command:
     what a person or a CI job pays).
  2. Idle cost with `--containers` managed `sleep` containers: the agent's memory and CPU over
     `--idle` seconds, plus the conmon monitors' memory; beside dockerd + containerd and the
     containerd-shims of as many `docker run -d` containers (goal, #21: 0.2x Docker's).
     Memory is counted from /proc/PID/smaps_rollup: RSS, and PSS (each shared page
     divided among the processes that map it). PSS is the fair count for N copies of one
     program: the conmons share glib and libc, the shims their Go binary's text, and RSS counts
     those pages once per process. PSS also divides a page with processes outside the side
     (the bench's own Python maps libpython too): a third count, each side's distinct physical
     pages (root, /proc/PID/pagemap), holds a page once per side whoever else maps it. Only
     the daemons of the bench's own network namespace are counted (the host's dockerd and its
     containerd): a test's dockerd runs in a namespace of its own.

Network "none" everywhere (the bridge is not what is measured). Cleans up after itself.
"""

from __future__ import annotations

import argparse
import array
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import plots  # noqa: E402
from bench import rows as benchrows  # noqa: E402
from reconciler.api import client as api_client  # noqa: E402
from reconciler.runtime.native.backend import NativeRuntime  # noqa: E402
from reconciler.runtime.native.config import NativeConfig  # noqa: E402
from reconciler.runtime.native.containers import cgroups, mounts  # noqa: E402
from tests.helpers import images  # noqa: E402
from tests.helpers.registry import RegistryServer  # noqa: E402

# PID 1 that ends on SIGTERM (a bare `sleep` ignores it and every replacement would wait out
# the 10 s stop timeout, for both engines)
CMD = "trap 'exit 0' TERM; sleep 3600 & wait"
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
PFN_MASK = (1 << 55) - 1


def sh(*argv: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, capture_output=True, check=check, cwd=cwd)


def memory(pids: list[int]) -> tuple[int, int]:
    """(RSS, PSS) in bytes of the processes `pids` together (a process gone counts 0)."""
    rss = pss = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
        except OSError:
            continue
        fields = {k: int(v.split()[0]) * 1024 for k, v in (line.split(":", 1) for line in rollup)}
        rss, pss = rss + fields["Rss"], pss + fields["Pss"]
    return rss, pss


def host_daemons() -> list[int]:
    """dockerd and containerd in this process's network namespace (the host's daemon, not a
    test's, which runs in a namespace of its own)."""
    ours = os.readlink("/proc/self/ns/net")
    out = []
    for pid in pids_named("dockerd") + pids_named("containerd"):
        try:
            if os.readlink(f"/proc/{pid}/ns/net") == ours:
                out.append(pid)
        except OSError:
            continue
    return out


def distinct(pids: list[int]) -> int:
    """Bytes of the distinct physical pages the processes `pids` map together: a page once for
    the group, whether other processes on the machine map it too or not (root: page frame
    numbers from /proc/PID/pagemap). PSS divides a page with any process that maps it, the
    bench's own Python among them; this count does not."""
    frames: set[int] = set()
    for pid in pids:
        try:
            resident = _resident_ranges(pid)
            with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
                for lo, hi in resident:
                    pagemap.seek(lo // PAGE * 8)
                    entries = array.array("Q", pagemap.read((hi - lo) // PAGE * 8))
                    frames.update(e & PFN_MASK for e in entries if e >> 63)
        except OSError:
            continue
    return len(frames) * PAGE


def _resident_ranges(pid: int) -> list[tuple[int, int]]:
    """The address ranges of `pid` with resident pages (from smaps: a Go daemon reserves GiBs)."""
    out, current = [], None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(maxsplit=1)[0]
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(x, 16) for x in head.split("-"))
            current = (lo, hi)
        elif head == "Rss:" and current is not None and int(line.split()[1]) > 0 and current[0] < 1 << 47:
            out.append(current)
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK      # utime + stime


def pids_named(name: str, needle: str = "") -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            argv = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0].decode(errors="replace")) == name and needle.encode() in b" ".join(argv):
            out.append(int(p))
    return out


def manifest(name: str, image: str, value: int) -> str:
    return textwrap.dedent(f"""\
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: {name}}}
        spec:
          image: {image}
          command: [sh, -c, "{CMD}"]
          env: {{V: "{value}"}}
          networks: [none]
          restart: always
        """)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def mib(n: float) -> str:
    return f"{n / (1 << 20):7.1f} MiB"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edits", type=int, default=20)
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--idle", type=float, default=10.0)
    plots.add_plot_flags(ap)
    args = ap.parse_args()
    have_docker = shutil.which("docker") is not None and sh("docker", "info", check=False).returncode == 0
    have_compose = have_docker and shutil.which("docker-compose") is not None

    work = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    prefix = "ra" + secrets.token_hex(2)[:3]
    config = NativeConfig(root=work / "root", run_dir=work / "run", name_prefix=prefix)
    reg = RegistryServer(work / "registry").start()
    manifests = work / "manifests.d"
    manifests.mkdir()
    sock = work / "api.sock"
    agent: subprocess.Popen[bytes] | None = None
    docker_names: list[str] = []
    project = "ba" + secrets.token_hex(3)
    compose_dir = work / "compose"
    ref = ""
    try:
        layout = work / "layout"
        images.write_layout(layout, [images.busybox_layer()])
        ref = f"{reg.host}/bench/busybox:latest"
        images.push_layout(layout, ref)
        if have_docker:
            sh("docker", "pull", "-q", ref)
        (work / "agent.yaml").write_text(textwrap.dedent(f"""\
            root: {config.root}
            run_dir: {config.run_dir}
            name_prefix: {prefix}
            socket: {sock}
            drift_interval: 10m
            sources:
              - name: bench
                directory: {manifests}
                debounce: 0.05s
            """))
        write_atomic(manifests / "web.yaml", manifest("web", ref, 0))
        log = (work / "agent.log").open("wb")
        agent = subprocess.Popen([sys.executable, "-m", "reconciler", "--log-level", "warning", "agent",
                                  "--config", str(work / "agent.yaml")], stdout=log, stderr=log, cwd=REPO)
        api = api_client.ApiClient(sock, timeout=120)
        deadline = time.monotonic() + 120
        while not api.available():
            if agent.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the agent did not start; see {work / 'agent.log'}")
            time.sleep(0.05)
        rt = NativeRuntime(config)

        def web_env(value: int) -> bool:
            for c in rt.list_containers({"reconciler.owner": "bench"}):
                if c.name == "web" and str(c.status) == "running":
                    return rt.containers.get(c.id).config.env.get("V") == str(value)
            return False

        def wait(pred: object, what: str, timeout: float = 120) -> None:
            end = time.monotonic() + timeout
            while not pred():  # type: ignore[operator]
                if time.monotonic() > end:
                    raise SystemExit(f"timed out: {what}")
                time.sleep(0.005)

        wait(lambda: web_env(0), "first convergence")
        lat: list[float] = []
        for i in range(1, args.edits + 1):
            t0 = time.perf_counter()
            write_atomic(manifests / "web.yaml", manifest("web", ref, i))
            wait(lambda i=i: web_env(i), f"edit {i}")
            lat.append(time.perf_counter() - t0)

        compose_lat: list[float] = []
        if have_compose:
            compose_dir.mkdir()

            def compose_file(value: int) -> None:
                (compose_dir / "docker-compose.yml").write_text(textwrap.dedent(f"""\
                    version: "3"
                    services:
                      web:
                        image: {ref}
                        command: [sh, -c, "{CMD}"]
                        environment: {{V: "{value}"}}
                        network_mode: none
                        restart: always
                    """))

            compose_file(0)
            sh("docker-compose", "-p", project, "up", "-d", cwd=compose_dir)
            for i in range(1, args.edits + 1):
                t0 = time.perf_counter()
                compose_file(i)
                sh("docker-compose", "-p", project, "up", "-d", cwd=compose_dir)
                compose_lat.append(time.perf_counter() - t0)

        print(f"\n1. manifest write -> changed container running ({args.edits} edits, seconds)")
        print(f"   agent (drop-in dir)        p50 {statistics.median(lat):6.3f}   p95 {pct(lat, 0.95):6.3f}"
              f"   (goal p50 < 1 s: {'met' if statistics.median(lat) < 1 else 'NOT met'})")
        if compose_lat:
            print(f"   docker-compose up -d       p50 {statistics.median(compose_lat):6.3f}"
                  f"   p95 {pct(compose_lat, 0.95):6.3f}")
            print(f"   ratio agent/compose p50    {statistics.median(lat) / statistics.median(compose_lat):6.2f}")
        benchrows.record("manifest edit -> container running (agent, p50)", statistics.median(lat),
                         peer="docker-compose up -d" if compose_lat else None,
                         theirs=statistics.median(compose_lat) if compose_lat else None)

        # -- 2. idle with N containers -------------------------------------------------------
        n = args.containers
        for i in range(n):
            write_atomic(manifests / f"c{i:03d}.yaml", manifest(f"c{i:03d}", ref, 0))
        wait(lambda: sum(1 for c in rt.list_containers({"reconciler.owner": "bench"})
                         if str(c.status) == "running") >= n + 1, f"{n} containers running", timeout=600)
        api.post("/v1/reconcile", {"source": "bench", "wait": True}, timeout=600)
        time.sleep(2)
        apid = agent.pid
        c0, t0 = cpu_seconds(apid), time.monotonic()
        time.sleep(args.idle)
        cpu = (cpu_seconds(apid) - c0) / (time.monotonic() - t0)
        agent_rss, agent_pss = memory([apid])
        conmons = [p for p in pids_named("conmon", str(config.run_dir))]
        # the engine's DNS server counts too, when it runs (containers on a user-defined network;
        # none here: network none on both sides)
        from reconciler.runtime.native.network import resolver

        dnsd = resolver.pid(config.run_dir)
        conmons += [dnsd] if dnsd else []
        conmon_rss, conmon_pss = memory(conmons)
        ours_rss, ours_pss = agent_rss + conmon_rss, agent_pss + conmon_pss
        ours_pages = distinct([apid, *conmons])
        print(f"\n2. idle with {n} managed containers (+ web), {args.idle:g} s        RSS           PSS")
        print(f"   agent process              {mib(agent_rss)}   {mib(agent_pss)}   CPU {100 * cpu:5.2f} %")
        print(f"   {len(conmons)} conmon monitors         {mib(conmon_rss)}   {mib(conmon_pss)}")
        print(f"   agent + conmons            {mib(ours_rss)}   {mib(ours_pss)}   distinct pages {mib(ours_pages)}")
        benchrows.record(f"idle agent CPU, {n} containers", 100 * cpu, unit="%", goal=1.0)

        if have_docker:
            base_rss, base_pss = memory(host_daemons())
            for i in range(n):
                name = f"{project}-{i:03d}"
                sh("docker", "run", "-d", "--name", name, "--network", "none", "--restart", "always", ref, "sh", "-c", CMD)
                docker_names.append(name)
            time.sleep(2)
            daemons = host_daemons()
            ids = sh("docker", "inspect", "-f", "{{.Id}}", *docker_names).stdout.decode().split()
            shims = [p for i in ids for p in pids_named("containerd-shim-runc-v2", i) + pids_named("containerd-shim", i)]
            dcpu0 = sum(cpu_seconds(p) for p in daemons)
            t0 = time.monotonic()
            time.sleep(args.idle)
            dcpu = (sum(cpu_seconds(p) for p in daemons if Path(f"/proc/{p}").exists()) - dcpu0) / (time.monotonic() - t0)
            d_rss, d_pss = memory(daemons)          # after the idle time, as the agent's
            shim_rss, shim_pss = memory(shims)
            docker_rss, docker_pss = d_rss + shim_rss, d_pss + shim_pss
            docker_pages = distinct(daemons + shims)
            print(f"   dockerd+containerd         {mib(d_rss)}   {mib(d_pss)}   CPU {100 * dcpu:5.2f} %"
                  f"   ({len(daemons)} processes; before the containers: RSS {mib(base_rss)}, PSS {mib(base_pss)})")
            print(f"   {len(shims)} containerd-shims        {mib(shim_rss)}   {mib(shim_pss)}")
            print(f"   docker total               {mib(docker_rss)}   {mib(docker_pss)}   distinct pages {mib(docker_pages)}")
            print(f"   ratio agent/(dockerd+containerd)          RSS {agent_rss / d_rss:5.2f}   PSS {agent_pss / d_pss:5.2f}")
            for what, ours, theirs in (("RSS", ours_rss, docker_rss), ("PSS", ours_pss, docker_pss),
                                       ("distinct pages", ours_pages, docker_pages)):
                print(f"   ratio (agent+conmons)/(docker+shims), {what} {ours / theirs:5.2f}"
                      f"   (goal <= 0.2: {'met' if ours / theirs <= 0.2 else 'NOT met'})")
            benchrows.record(f"memory at rest, {n} containers (agent + conmons)", ours_rss / 2**20,
                             unit="MiB", peer="dockerd + containerd + shims", theirs=docker_rss / 2**20, goal=0.2)
            benchrows.record(f"memory at rest, {n} containers (agent + conmons, PSS)", ours_pss / 2**20,
                             unit="MiB", peer="dockerd + containerd + shims", theirs=docker_pss / 2**20, goal=0.2)
        if args.plot:
            stacked = {"agent RSS": {"daemon": agent_rss / 2**20, "per-container monitors": conmon_rss / 2**20},
                       "agent PSS": {"daemon": agent_pss / 2**20, "per-container monitors": conmon_pss / 2**20}}
            if have_docker:
                stacked["docker RSS"] = {"daemon": d_rss / 2**20, "per-container monitors": shim_rss / 2**20}
                stacked["docker PSS"] = {"daemon": d_pss / 2**20, "per-container monitors": shim_pss / 2**20}
            plots.bars(args.plot_dir / "bench-memory.png",
                       f"Memory at rest with {n} containers: daemon + monitors (RSS, PSS)", "MiB", {}, stacked=stacked)
        rt.close()
    finally:
        if agent is not None and agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(60)
            except subprocess.TimeoutExpired:
                agent.kill()
        for name in docker_names:
            sh("docker", "rm", "-f", name, check=False)
        if compose_dir.exists():
            sh("docker-compose", "-p", project, "down", "-t", "0", check=False, cwd=compose_dir)
        if have_docker and ref:                 # the copy docker pulled for its side
            sh("docker", "rmi", "-f", ref, check=False)
        crt = NativeRuntime(config)
        for rec in crt.containers.records():
            try:
                crt.containers.remove(rec.id, force=True)
            except Exception:
                continue
        for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
            mp = line.split(" ")[4]
            if mp.startswith((str(config.root), str(config.run_dir))):
                mounts.unmount(Path(mp))
        cgroups.remove(prefix, None, config.locks_dir)
        crt.close()
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
