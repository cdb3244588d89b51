"""Benchmark: issue #21's whole table in one run, every row with its peer and its ratio.

    sudo .venv/bin/python bench/bench_all.py [--quick] [--only cli,run,...] [--plot] [--markdown FILE] [--rows FILE]
    .venv/bin/python bench/bench_all.py --from-rows FILE [--plot] [--markdown FILE]

Runs the bench scripts one after another on this machine (each times reconcile beside docker,
podman, docker-compose or skopeo on the same work, interleaved), collects the rows they record
(`bench/rows.py`) and prints one table: what a user does, reconcile's number, the peer's, the
ratio and the goal from issue #21. `--plot` draws the ratios against their goals
(docs/img/bench-ratios.png); `--markdown FILE` writes the table as Markdown (docs/benchmarks.md
includes it). `--quick` uses smaller sizes (fewer runs, smaller images) for a first look; the
committed table is from a run without it. `--rows FILE` keeps the rows: run one script again with
`--only NAME --rows FILE` and its new rows replace its old ones; `--from-rows FILE` prints and draws
them without running anything.

Each script prints its own detailed output as it goes (progress on a long run); a script that
fails is reported and the others still run. Needs root, dockerd, the registry packages and
docker-compose (scripts/install-system-deps.sh --test). Nothing is left behind: each script
cleans up its own state root, containers and registry.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import rows as rowsmod

HERE = Path(__file__).resolve().parent

# name -> (script, arguments, --quick arguments, plot-capable)
SCRIPTS: dict[str, tuple[str, list[str], list[str], bool]] = {
    "cli": ("bench_cli.py", ["--runs", "21", "--agent"], ["--runs", "7", "--agent"], False),
    "run": ("bench_run.py", ["--runs", "15", "--detached", "50"], ["--runs", "5", "--detached", "10"], False),
    "build": ("bench_build.py", ["--runs", "5"], ["--runs", "3"], False),
    "pull": ("bench_pull.py", ["--suite", "--runs", "3"], ["--runs", "1", "--layers", "4", "--mib", "34"], True),
    "converge": ("bench_converge.py", ["--containers", "50,200"], ["--containers", "10", "--idle-seconds", "3"], True),
    "plan": ("bench_plan.py", ["--runs", "7"], ["--runs", "3"], False),
    "agent": ("bench_agent.py", ["--containers", "50", "--edits", "10", "--idle", "10"],
              ["--containers", "10", "--edits", "3", "--idle", "3"], True),
    "scale": ("bench_scale.py", ["--containers", "500,1000"], ["--containers", "100", "--runs", "1",
                                                              "--idle-seconds", "5"], False),
    "registry": ("bench_registry_fetch.py", ["--runs", "7"], ["--runs", "3", "--layer-mb", "10"], False),
}


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "%":
        return f"{value:.2f} %"
    return f"{value:.1f} {unit}"


def table(rows: list[rowsmod.Row]) -> list[list[str]]:
    out = [["what", "reconcile", "peer", "ratio", "goal", "met"]]
    for r in rows:
        peer = f"{r.peer} {fmt(r.theirs, r.unit)}" if r.peer else "-"
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        goal = "-" if r.goal is None else (f"<= {r.goal:g}x" if r.peer else f"<= {fmt(r.goal, r.unit)}")
        met = {True: "yes", False: "no", None: ""}[r.met]
        out.append([r.what, fmt(r.ours, r.unit), peer, ratio, goal, met])
    return out


def print_table(cells: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def markdown(cells: list[list[str]], note: str) -> str:
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells[1:]]
    return note + "\n\n" + "\n".join(lines) + "\n"


def plot(rows: list[rowsmod.Row], path: Path) -> None:
    """Horizontal bars: each compared row's ratio, with its goal as a tick (1.0 = the peer)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    compared = [r for r in rows if r.ratio is not None]
    if not compared:
        return
    fig, ax = plt.subplots(figsize=(11, 0.38 * len(compared) + 1.4), dpi=100)
    names = [f"{r.what} (vs {r.peer})" for r in compared]
    ratios = [r.ratio or 0.0 for r in compared]
    colors = ["#1f6feb" if r.met in (True, None) else "#d29922" for r in compared]
    ax.barh(names, ratios, color=colors)
    for i, r in enumerate(compared):
        if r.goal is not None:
            ax.plot([r.goal, r.goal], [i - 0.4, i + 0.4], color="#cf222e", linewidth=2)
        ax.text((r.ratio or 0) + 0.02, i, f"{r.ratio:.2f}", va="center", fontsize=8)
    ax.axvline(1.0, color="#8b949e", linestyle="--", linewidth=1)
    ax.invert_yaxis()
    ax.set_xlabel("reconcile / peer: lower is better (red tick: goal; dashed line: as fast as the peer)", fontsize=9)
    ax.set_title("reconcile beside its peers, same machine, same run", fontsize=11)
    ax.tick_params(axis="y", labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    fig.text(0.99, 0.01, f"measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores",
             ha="right", fontsize=7, alpha=0.6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", metadata={"Software": None, "Creation Time": None})   # the title whole
    plt.close(fig)
    print(f"wrote {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes and fewer runs")
    ap.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(SCRIPTS)}")
    ap.add_argument("--plot", action="store_true", help="draw the ratios (and each script's own plots)")
    ap.add_argument("--plot-dir", type=Path, default=HERE.parent / "docs" / "img")
    ap.add_argument("--markdown", type=Path, help="also write the table as Markdown to this file")
    ap.add_argument("--rows", type=Path, help="keep the rows in this file (JSON lines, appended): a later "
                    "run with --only adds its rows, which replace the earlier ones of the same name")
    ap.add_argument("--from-rows", type=Path, metavar="FILE",
                    help="run nothing: print (and --plot, --markdown) the rows kept in FILE by --rows")
    args = ap.parse_args()
    chosen = [s.strip() for s in args.only.split(",") if s.strip()] or list(SCRIPTS)
    unknown = sorted(set(chosen) - set(SCRIPTS))
    if unknown:
        ap.error(f"unknown --only {', '.join(unknown)}; choose from {', '.join(SCRIPTS)}")

    failed: list[str] = []
    if args.from_rows:
        rows = latest(rowsmod.load(args.from_rows))
    else:
        rows, failed = run(chosen, args)
    return report(rows, failed, args)


def latest(rows: list[rowsmod.Row]) -> list[rowsmod.Row]:
    """Each row once, as its last run measured it, where it first appeared."""
    last = {(r.what, r.peer): r for r in rows}
    return [last[key] for key in dict.fromkeys((r.what, r.peer) for r in rows)]


def run(chosen: list[str], args: argparse.Namespace) -> tuple[list[rowsmod.Row], list[str]]:
    """Run the chosen scripts; the rows they recorded (all of --rows's, this run's last) and the
    names of the scripts that failed."""
    with tempfile.TemporaryDirectory(prefix="bench-all-") as tmp:
        rows_file = args.rows or Path(tmp) / "rows.jsonl"
        env = {**os.environ, rowsmod.ENV: str(rows_file)}
        failed = []
        for name in chosen:
            script, full, quick, plots = SCRIPTS[name]
            argv = [sys.executable, str(HERE / script), *(quick if args.quick else full)]
            if args.plot and plots:
                argv += ["--plot", "--plot-dir", str(args.plot_dir)]
            print(f"\n=== {name}: {' '.join(argv[1:])}", flush=True)
            start = time.monotonic()
            if subprocess.run(argv, env=env, check=False).returncode != 0:
                failed.append(name)
            print(f"=== {name}: {time.monotonic() - start:.0f} s", flush=True)
        return latest(rowsmod.load(rows_file)), failed


def report(rows: list[rowsmod.Row], failed: list[str], args: argparse.Namespace) -> int:
    cells = table(rows)
    print(f"\nissue #21's table: {len(rows)} rows, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}")
    print_table(cells)
    if failed:
        print(f"\nscripts that failed (their rows are missing): {', '.join(failed)}", file=sys.stderr)
    if args.markdown:
        note = (f"Measured {time.strftime('%Y-%m-%d')} by `bench/bench_all.py{' --quick' if args.quick else ''}` "
                f"on {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f} at the end).")
        args.markdown.write_text(markdown(cells, note), encoding="utf-8")
        print(f"wrote {args.markdown}")
    if args.plot:
        plot(rows, args.plot_dir / "bench-ratios.png")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
