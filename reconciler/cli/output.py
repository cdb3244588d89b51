"""Output helpers shared by the subcommands: docker-style tables and `--output json`."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, Any, TextIO

__all__ = ["add_output_flag", "emit", "input_file", "output_file", "print_json", "print_table"]


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


@contextlib.contextmanager
def output_file(path: str | None) -> Iterator[IO[bytes]]:
    """Where an archive goes (`save`, `container export`, `volume export`): stdout, refused when
    it is a terminal as docker does, or `path` written atomically (a failed write leaves no file)."""
    from reconciler.runtime import errors

    if path is None:
        if sys.stdout.isatty():
            raise errors.InvalidArgument("refusing to write an archive to a terminal",
                                         hint="use -o FILE or redirect stdout")
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            yield f
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def input_file(path: str | None) -> Iterator[IO[bytes]]:
    """Where an archive comes from (`load`, `container import`, `volume import`): stdin, refused
    when it is a terminal, or `path`."""
    from reconciler.runtime import errors

    if path is None:
        if sys.stdin.isatty():
            raise errors.InvalidArgument("no archive on stdin", hint="use -i FILE or pipe an archive in")
        yield sys.stdin.buffer
        return
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise errors.InvalidArgument(f"cannot read {path}: {exc.strerror}") from None
    with f:
        yield f
