"""The benchmark plots of docs/benchmarks.md: matplotlib PNGs written by the bench scripts when
run with `--plot` (into docs/img/, or the directory `--plot-dir` names).

matplotlib is imported here only, and only when a plot is drawn (the Agg backend: no display).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
COLORS = {"native": "#1f6feb", "reconcile": "#1f6feb", "docker": "#8b949e", "docker-compose": "#8b949e",
          "podman": "#a371f7", "skopeo": "#d29922"}


def add_plot_flags(parser: argparse.ArgumentParser) -> None:
    """--plot and --plot-dir on a bench script's parser."""
    parser.add_argument("--plot", action="store_true",
                        help="also write the results as PNG plots (docs/img/ unless --plot-dir)")
    parser.add_argument("--plot-dir", type=Path, default=DOCS_IMG,
                        help="where --plot writes (default: docs/img)")


def _figure(title: str) -> tuple[Any, Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    ax.set_title(title, fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    return plt, fig, ax


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.text(0.99, 0.01, f"measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores",
             ha="right", fontsize=7, alpha=0.6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    # no timestamps in the file: the same figure gives the same bytes
    fig.savefig(path, metadata={"Software": None, "Creation Time": None} if path.suffix == ".png" else None)
    plt.close(fig)
    print(f"wrote {path}")
    return path


def bars(path: Path, title: str, ylabel: str, values: Mapping[str, float],
         stacked: Mapping[str, Mapping[str, float]] | None = None) -> Path:
    """One bar per tool (or, with `stacked`, one bar per tool made of named parts)."""
    plt, fig, ax = _figure(title)
    names = list(stacked or values)
    if stacked:
        parts = list(dict.fromkeys(p for parts in stacked.values() for p in parts))
        bottom = [0.0] * len(names)
        for i, part in enumerate(parts):
            heights = [stacked[n].get(part, 0.0) for n in names]
            ax.bar(names, heights, bottom=bottom, label=part, color=f"C{i}")
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        totals = bottom
        ax.legend(fontsize=8, frameon=False)
    else:
        totals = [values[n] for n in names]
        ax.bar(names, totals, color=[COLORS.get(n.split()[0], "#57606a") for n in names])
    for x, v in enumerate(totals):
        ax.annotate(f"{v:.3g}" if v < 100 else f"{v:.0f}", (x, v), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(ylabel)
    return _save(plt, fig, path)


def lines(path: Path, title: str, xlabel: str, ylabel: str, xs: Sequence[float],
          series: Mapping[str, Sequence[float]]) -> Path:
    """One line per tool over `xs`."""
    plt, fig, ax = _figure(title)
    for name, ys in series.items():
        dashed = "nothing to do" in name         # the second measurement of the same tool
        ax.plot(xs, ys, marker="o", label=name, color=COLORS.get(name.split()[0]), linestyle="--" if dashed else "-")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, frameon=False)
    return _save(plt, fig, path)
