"""Output helpers shared by the subcommands: docker-style tables and `--output json`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

__all__ = ["add_output_flag", "emit", "print_json", "print_table"]


def add_output_flag(parser: argparse.ArgumentParser) -> None:
    """Add `-o/--output {table,json}` to a subcommand whose output is data."""
    parser.add_argument(
        "-o", "--output", choices=("table", "json"), default="table",
        help="output format (default: table)",
    )


def print_json(data: Any, *, file: TextIO | None = None) -> None:
    """Pretty, stable JSON (sorted keys) on stdout."""
    out = file or sys.stdout
    json.dump(data, out, indent=2, sort_keys=True, default=str)
    out.write("\n")


def print_table(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[tuple[str, str]],
    *,
    file: TextIO | None = None,
) -> None:
    """Columns as (HEADER, key); left-aligned, three spaces apart, like `docker ps`."""
    out = file or sys.stdout
    cells = [[h for h, _ in columns]]
    cells += [["" if r.get(k) is None else str(r.get(k)) for _, k in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for row in cells:
        line = "   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        out.write(line + "\n")


def emit(
    args: argparse.Namespace,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[tuple[str, str]],
) -> None:
    """Print rows as a table or as JSON, following the subcommand's `--output` flag."""
    if getattr(args, "output", "table") == "json":
        print_json(list(rows))
    else:
        print_table(rows, columns)
