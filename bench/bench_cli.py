"""Benchmark: what a user waits for when typing a read-only command, reconcile vs docker vs podman.

    .venv/bin/python bench/bench_cli.py [--runs 21] [--containers 5]

Each command is a fresh process, as at a shell prompt: `ps -a`, `ps -a` as JSON, `images` and
`--version`, against an engine on a private state root holding `--containers` exited containers
(made with `reconcile run` from a busybox image this script builds into the root, no registry
needed), and the same commands of the docker CLI (dockerd must run) and podman where present,
whatever they hold. Runs are interleaved (reconcile, docker, podman, reconcile, ...) so drift
of the machine's speed hits all alike; prints medians, min-max and the ratio reconcile/docker
per command (issue #21's goal: the CLI starts like docker's), and the CPU time (user + sys) of
the same processes, which a busy machine disturbs less than the wall time. Also prints the
floor: a bare `python3 -c pass` and `python3 -S -c pass`.

With --agent, `ps -a` is timed a second time while an agent holds the root: the client–server
split (#21) makes it a thin client of the agent's socket (rows "... (agent)": `images`, `logs`
and `status` too).

Python runs as an installed package would: from a throw-away venv (made in the bench's
temporary directory, `--without-pip`) whose one .pth file lists this checkout and the running
interpreter's site-packages as plain paths, with a `reconcile` console script as pip writes it.
A development venv's editable install (setuptools' default "editable finder" .pth) imports
pathlib, importlib.util and urllib.parse at every interpreter start (~16 ms), which an installed
package does not pay (scripts/bootstrap-venv.sh installs in compat mode now); `--python-as-is`
times the running interpreter instead. The bytecode is cached, as an installed package has it:
these machines set PYTHONDONTWRITEBYTECODE=1, which makes every start of a source checkout
compile its modules again (~65 of them for `ps`); the bench unsets it and keeps the cache in a
temporary PYTHONPYCACHEPREFIX instead, warmed by one untimed run of each command.

Nothing is left behind: the containers and the root are removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
sys.path.insert(0, str(REPO))

from bench import rows as benchrows  # noqa: E402


def installed_like(tmp: Path) -> Path:
    """A venv in `tmp` that finds reconciler and its dependencies as an installed package does
    (plain paths in one .pth, no editable finder), with pip's `reconcile` console script: its
    python."""
    import sysconfig
    import venv

    venv.EnvBuilder(with_pip=False, symlinks=True).create(tmp / "venv")
    python = tmp / "venv" / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    ours = dict.fromkeys([str(REPO), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(site) / "reconciler-bench.pth").write_text("".join(f"{p}\n" for p in ours))
    script = tmp / "venv" / "bin" / "reconcile"
    script.write_text(f"#!{python}\nimport sys\nfrom reconciler.cli.main import main\n"
                      "if __name__ == \"__main__\":\n    sys.exit(main())\n")
    script.chmod(0o755)
    return python


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + sys) of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0                         # reaped above
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def busybox_image(root: Path, env: dict[str, str]) -> str:
    """A one-layer image of Debian's busybox-static, built into `root` with `reconcile build`."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    ctx = root.parent / "ctx"
    (ctx / "bin").mkdir(parents=True)
    shutil.copy(busybox, ctx / "bin" / "busybox")
    for tool in ("sh", "true", "sleep"):
        os.symlink("busybox", ctx / "bin" / tool)
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY bin /bin\nCMD [\"sh\"]\n")
    ref = "localhost/bench-cli:1"
    subprocess.run([PY, "-m", "reconciler", "build", "-t", ref, str(ctx)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return ref


@contextlib.contextmanager
def agent(tmp: Path, reconcile: list[str], env: dict[str, str]) -> Iterator[None]:
    """An agent (no sources) holding the bench's root while the block runs; stopped by its pid."""
    sock = tmp / "agent.sock"
    (tmp / "agent.yaml").write_text(
        f"root: {env['RECONCILER_ROOT']}\nrun_dir: {env['RECONCILER_RUN_DIR']}\nruntime: native\n"
        f"name_prefix: {env['RECONCILER_PREFIX']}\nsocket: {sock}\nsources: []\n")
    proc = subprocess.Popen([*reconcile, "agent", "--config", str(tmp / "agent.yaml")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (Path(env["RECONCILER_ROOT"]) / "agent.json").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the agent did not start")
            time.sleep(0.1)
        time.sleep(0.5)                         # the socket opens last
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--containers", type=int, default=5)
    ap.add_argument("--agent", action="store_true", help="also time ps -a served by an agent on the root")
    ap.add_argument("--python-as-is", action="store_true",
                    help="time the running interpreter (a development venv's editable finder included), "
                    "not an installed-like venv")
    opts = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    py = PY if opts.python_as_is else str(installed_like(tmp))
    root, run_dir = tmp / "root", tmp / "run"
    env = {**os.environ, "RECONCILER_ROOT": str(root), "RECONCILER_RUN_DIR": str(run_dir),
           "RECONCILER_PREFIX": "rbcli", "PYTHONPATH": str(REPO), "PYTHONPYCACHEPREFIX": str(tmp / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    reconcile = [str(Path(py).parent / "reconcile")] if (Path(py).parent / "reconcile").exists() else [py, "-m", "reconciler"]
    try:
        image = busybox_image(root, env)
        for i in range(opts.containers):
            subprocess.run([*reconcile, "run", "--name", f"c{i}", "--network", "none", image, "true"],
                           env=env, check=True, stdout=subprocess.DEVNULL)
        commands = {
            "ps -a": ["ps", "-a"], "ps -a (json)": ["ps", "-a", "--format", "{{json .}}"],
            "images": ["images"], "--version": ["--version"], "--help": ["--help"],
        }
        ours = {"ps -a (json)": ["ps", "-a", "-o", "json"]}
        peers = {name: shutil.which(name) for name in ("docker", "podman")}
        rows = []
        for label, argv in commands.items():
            timed([*reconcile, *ours.get(label, argv)], env)       # fills the bytecode cache
            times: dict[str, list[tuple[float, float]]] = {"reconcile": [],
                                                           **{p: [] for p, path in peers.items() if path}}
            for _ in range(opts.runs):
                times["reconcile"].append(timed([*reconcile, *ours.get(label, argv)], env))
                for peer, path in peers.items():
                    if path:
                        times[peer].append(timed([path, *argv], env))
            rows.append((label, times))
        if opts.agent:
            with agent(tmp, reconcile, env):
                for label, argv in (("ps -a (agent)", ["ps", "-a"]), ("ps json (agent)", ["ps", "-a", "-o", "json"]),
                                    ("images (agent)", ["images"]), ("logs c0 (agent)", ["logs", "c0"]),
                                    ("status (agent)", ["status"])):
                    timed([*reconcile, *argv], env)
                    rows.append((label, {"reconcile": [timed([*reconcile, *argv], env) for _ in range(opts.runs)]}))
        floor = {"python3 -c pass": [timed([py, "-c", "pass"], env) for _ in range(opts.runs)],
                 "python3 -S -c pass": [timed([py, "-S", "-c", "pass"], env) for _ in range(opts.runs)]}
    finally:
        subprocess.run([*reconcile, "rm", "-f", *(f"c{i}" for i in range(opts.containers))], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(run_dir, ignore_errors=True)

    def ms(samples: list[tuple[float, float]], i: int) -> str:
        values = [s[i] for s in samples]
        return f"{statistics.median(values) * 1000:7.1f} ms ({min(values) * 1000:.0f}-{max(values) * 1000:.0f})"

    def ratio(times: dict[str, list[tuple[float, float]]], i: int) -> str:
        if "docker" not in times:
            return ""
        ours, theirs = (statistics.median(s[i] for s in times[k]) for k in ("reconcile", "docker"))
        return f"  ratio reconcile/docker {ours / theirs:.2f}"

    how = "the running interpreter as is" if opts.python_as_is else "an installed-like venv (plain .pth, no " \
        "editable finder; console script)"
    print(f"{opts.runs} interleaved runs each, {opts.containers} containers in the reconcile root, bytecode "
          f"cached, Python from {how}; medians (min-max)")
    for i, what in ((0, "wall time"), (1, "CPU time (user + sys)")):
        print(f"\n{what}")
        for label, times in rows:
            print(f"{label:14s} " + "  ".join(f"{k} {ms(v, i)}" for k, v in times.items()) + ratio(times, i))
        for label, values in floor.items():
            print(f"floor {label:20s} {ms(values, i)}")
    record(rows)
    return 0


def record(rows: list[tuple[str, dict[str, list[tuple[float, float]]]]]) -> None:
    """The rows of bench_all's table: each command's wall time beside docker's (a command the
    agent answered beside docker's same command), `ps` with issue #21's goal, 1.5x docker's;
    then the `ps` rows' CPU time (user + sys), which a loaded machine disturbs much less."""
    def median(samples: list[tuple[float, float]], i: int) -> float:
        return statistics.median(s[i] for s in samples)

    for i, suffix in ((0, ""), (1, ", CPU time")):
        docker = {label: median(t["docker"], i) for label, t in rows if "docker" in t}
        for label, times in rows:
            plain = label.replace(" (agent)", "").replace("ps json", "ps -a (json)")
            if i == 1 and not plain.startswith("ps"):
                continue
            theirs = docker.get(plain)
            benchrows.record(f"reconcile {label}{suffix}", median(times["reconcile"], i),
                             peer="docker" if theirs else None, theirs=theirs,
                             goal=1.5 if theirs and plain.startswith("ps") else None)


if __name__ == "__main__":
    sys.exit(main())
