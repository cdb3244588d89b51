"""How data is printed as text: a docker-style table, pretty JSON, YAML of the same data.

    print_table(rows, columns)      left-aligned columns laid out as `docker ps` lays them out
    print_cells(lines, min_width)   lines of cells aligned as Go's tabwriter aligns docker's tables
    binary_size(n), human_size(n)   sizes as the docker CLI writes them (`488KiB`; `1.09kB`)
    print_json(data)                pretty, stable JSON (sorted keys)
    print_yaml(data)                the JSON form of `data` as YAML (block style, sorted keys)
    print_data(data, fmt)           JSON or YAML

One home for the CLI (cli/output.py re-exports these) and for the agent, which renders what a
thin client prints (listing.py, #21). Nothing is imported at load, and JSON is written without
`json` (which imports `re`): jsonscan.pretty.
"""

from __future__ import annotations

import sys

# annotations only: what the read-only commands import at start-up stays small (#21)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any, TextIO

__all__ = ["binary_size", "human_size", "print_cells", "print_data", "print_json", "print_table", "print_yaml"]


def print_json(data: Any, *, file: TextIO | None = None) -> None:
    """Pretty, stable JSON (sorted keys) on stdout: json.dump(data, indent=2, sort_keys=True,
    default=str)'s text, written without importing `json` (jsonscan.pretty, #21)."""
    from reconciler import jsonscan

    out = file or sys.stdout
    out.write(jsonscan.pretty(data) + "\n")


def print_yaml(data: Any, *, file: TextIO | None = None) -> None:
    """The JSON form of `data` as YAML (block style, sorted keys)."""
    import json

    import yaml

    plain = json.loads(json.dumps(data, default=str))
    out = file or sys.stdout
    out.write(yaml.safe_dump(plain, sort_keys=True, default_flow_style=False, allow_unicode=True, width=120))


def print_data(data: Any, fmt: str, *, file: TextIO | None = None) -> None:
    """`data` as JSON or YAML (`fmt`)."""
    (print_yaml if fmt == "yaml" else print_json)(data, file=file)


_MINWIDTH, _PADDING = 10, 3      # Go's tabwriter as docker's formatter and kubectl's printers set it


def print_table(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[tuple[str, str]],
    *,
    file: TextIO | None = None,
) -> None:
    """Columns as (HEADER, key), laid out as docker's and kubectl's tables are (Go's tabwriter,
    minimum width 10, padding 3: a column is its widest cell and three spaces, at least ten
    characters; the last one is not padded), so `reconcile ps` lines up as `docker ps` does.
    (A `--format` table is laid out by `gotemplate.tabwriter`, the same rule for any cells.)"""
    cells = [[h for h, _ in columns]]
    cells += [["" if r.get(k) is None else str(r.get(k)) for _, k in columns] for r in rows]
    print_cells(cells, min_width=_MINWIDTH, padding=_PADDING, file=file)


def print_cells(
    lines: Sequence[Sequence[str]],
    *,
    min_width: int = 0,
    padding: int = 3,
    file: TextIO | None = None,
) -> None:
    """Lines of cells as Go's tabwriter aligns the tab-separated text the docker CLI writes
    (`docker top`: min_width 20; `docker stats`, `system df`: 10; both padding 3): each cell but
    a line's last padded to its column's width, its widest such cell plus `padding`, at least
    `min_width`; a line's last cell as it is, so no line ends in spaces."""
    out = file or sys.stdout
    columns = max((len(line) for line in lines), default=0) - 1
    widths = [max([len(line[i]) + padding for line in lines if len(line) > i + 1] + [min_width])
              for i in range(max(columns, 0))]
    for line in lines:
        cells = [c.ljust(widths[i]) for i, c in enumerate(line[:-1])]
        out.write(("".join(cells) + (line[-1] if line else "")).rstrip() + "\n")


def binary_size(n: float) -> str:
    """go-units' BytesSize: `488KiB`, `23.54GiB` (base 1024, four significant digits: `docker
    stats`' memory)."""
    return _size(n, 1024.0, ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"), 4)


def human_size(n: float, precision: int = 3) -> str:
    """go-units' HumanSizeWithPrecision: `1.09kB`, `648B` (base 1000; `docker stats`' I/O and `docker
    cp`'s byte count with 3 significant digits, `docker system df`'s sizes with 4: HumanSize)."""
    return _size(n, 1000.0, ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"), precision)


def _size(n: float, base: float, units: tuple[str, ...], precision: int) -> str:
    i = 0
    value = float(n)
    while value >= base and i < len(units) - 1:
        value /= base
        i += 1
    return f"{value:.{precision}g}{units[i]}"
