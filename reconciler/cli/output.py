"""The one place that renders what a command prints as data: a docker-style table (or the
command's own human text), JSON, or YAML, after the command's `-o/--output` flag.

    add_output_flag(parser)              -o table|json|yaml (default table); inspect-like commands
                                         pass `table=False`: json (default) or yaml
    FORMAT, INSPECT_FORMAT               --format TEMPLATE (listings) and -f/--format (inspect), as
                                         docker's: add_argument's keywords (gotemplate.py runs them)
    format_of(args)                      the --format asked for, None for none or `table` alone
                                         (TerminalError, exit 2: given with -o)
    print_documents(args, docs, ...)     an inspect's documents: by -f TEMPLATE, else JSON/YAML
    render(args, data, human)            data as JSON/YAML, or `human()` prints the table/text
    emit(args, rows, columns)            rows as a table, or as JSON/YAML
    print_data(data, fmt)                JSON or YAML of the same data (YAML is JSON's data, in YAML)

The writers themselves (print_table, print_json, print_yaml, print_data) live in
reconciler/printing.py, which the agent uses too to render what a thin client prints (#21).

JSON and YAML carry the same data: YAML is written from the JSON form (sorted keys, timestamps
and other values as their JSON strings), so `yaml.safe_load(yaml_out) == json.loads(json_out)`.
"""

from __future__ import annotations

import contextlib
import os
import sys

# --format's and inspect's -f/--format add_argument keywords, described where the fast path parses them too
from reconciler.cli.fastpath import FORMAT, INSPECT_FORMAT
from reconciler.printing import print_cells, print_data, print_json, print_table, print_yaml

# annotations only: what the read-only commands import at start-up stays small (#21)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from typing import IO, Any

__all__ = ["FORMAT", "FORMATS", "INSPECT_FORMAT", "INSPECT_PARSE_ERROR", "add_format_flag", "add_output_flag", "emit", "format_of",
           "input_file", "output_file", "print_cells", "print_data", "print_json", "print_record", "print_table",
           "print_yaml", "render", "wants_data"]

FORMATS = ("table", "json", "yaml")
INSPECT_PARSE_ERROR = 64        # an inspect's -f template that does not parse: docker inspect's exit code

def add_output_flag(parser: argparse.ArgumentParser, *, table: bool = True, default: str = "json") -> None:
    """Add `-o/--output` to a subcommand whose output is data: table (default), json or yaml;
    with `table=False` (inspect-like commands, whose only form is a document) json or yaml,
    `default` when not given."""
    import argparse

    class Output(argparse.Action):
        """-o, and that it was given (format_of refuses it with --format)."""

        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                     option_string: str | None = None) -> None:
            setattr(namespace, self.dest, values)
            namespace.output_given = True

    if table:
        parser.add_argument("-o", "--output", choices=FORMATS, default="table", action=Output,
                            help="output format: table (for people), json or yaml (same data, for programs; "
                            "default: table)")
    else:
        parser.add_argument("-o", "--output", choices=FORMATS[1:], default=default, action=Output,
                            help=f"output format: json or yaml (same data; default: {default})")


def add_format_flag(parser: argparse.ArgumentParser, *, inspect: bool = False) -> None:
    """Add docker's --format (with `inspect`: -f/--format) to a subcommand."""
    flags, dest, keywords = INSPECT_FORMAT if inspect else FORMAT
    parser.add_argument(*flags, dest=dest, **keywords)


def format_of(args: argparse.Namespace, *, listing: bool = True) -> str | None:
    """The --format the command line asks for: None when none, or (`listing`) `table` alone
    (the command's own table, as docker's default table); TerminalError (exit 2) when -o is
    given too: each says what to print. Not `listing` (an inspect's -f): a template that does not
    parse is refused here, before anything is looked up, with docker inspect's exit code 64."""
    fmt = getattr(args, "format", None)
    if fmt is None:
        return None
    if getattr(args, "output_given", False):
        from reconciler.errors import TerminalError

        raise TerminalError(f"--format and -o/--output both say how to print (--format {fmt!r}, -o {args.output})",
                            hint="give one: --format for a Go template as docker's (--format json: a JSON "
                                 "object a line), or -o table|json|yaml")
    if not listing and fmt not in ("", "json"):
        from reconciler import gotemplate

        try:        # an inspect's template parsed before anything is looked up, as docker inspect's
            gotemplate.parse(fmt)
        except gotemplate.TemplateError as exc:
            raise exc.worded("template parsing error", exit_code=INSPECT_PARSE_ERROR) from None
    return None if fmt == "" or (listing and fmt == "table") else fmt


def print_documents(args: argparse.Namespace, docs: Sequence[Any], *, kind: str = "document",
                    maps: Sequence[str] = ()) -> None:
    """An inspect's documents: each by the -f/--format template (the document's objects as
    gotemplate.document makes them: those under `maps` keys Go maps, the rest structs), or
    `-f json` one compact array, else JSON/YAML as -o asks."""
    fmt = format_of(args, listing=False)
    if fmt is None:
        print_data(docs, args.output)
        return
    from reconciler import gotemplate

    sys.stdout.write(gotemplate.render_documents(fmt, [gotemplate.document(d, kind, maps=maps) for d in docs]))


def wants_data(args: argparse.Namespace) -> bool:
    """Whether the command prints JSON/YAML (then stdout carries that document only: notes and
    progress go to stderr)."""
    return getattr(args, "output", "table") in FORMATS[1:]


def print_record(data: Any, fmt: str) -> None:
    """One record of a stream (`events -f`): a JSON line, or a YAML document (`---` first)."""
    if fmt == "yaml":
        sys.stdout.write("---\n")
        print_yaml(data)
    else:
        import json

        sys.stdout.write(json.dumps(data, sort_keys=True, default=str) + "\n")


def render(args: argparse.Namespace, data: Any, human: Callable[[], object]) -> None:
    """Print `data` in the format `-o` asked for; for a table, `human()` prints the command's own
    text (computed only then)."""
    if wants_data(args):
        print_data(data, args.output)
    else:
        human()


def emit(
    args: argparse.Namespace,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[tuple[str, str]],
) -> None:
    """Print rows as a table, or as JSON/YAML, following the subcommand's `--output` flag."""
    render(args, list(rows), lambda: print_table(rows, columns))


@contextlib.contextmanager
def output_file(path: str | None) -> Iterator[IO[bytes]]:
    """Where an archive goes (`save`, `container export`, `volume export`): stdout, refused when
    it is a terminal as docker does, or `path` written atomically (a failed write leaves no file),
    its whole blocks of zeros left as holes (runtime/sparse.py, as `cp --sparse=auto`: a sparse
    file in a volume, which the archive carries as zeros, takes no disk in it)."""
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
        archive: _Archive | None = None
        try:
            from reconciler.runtime import sparse

            with open(tmp, "wb") as f:
                archive = _Archive(sparse.Writer(f), path)
                yield archive  # type: ignore[misc]     # what writers use of a file: write, flush
                archive.flush()         # what is buffered yet, through the same check
        except OSError:
            if archive is not None and archive.full is not None:
                raise archive.full from None    # the close's flush of the rest failed the same way
            raise
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class _Archive:
    """The `-o FILE` an archive is written to: a write that finds its file system full says
    which (not the state root's, whose hint of pruning images would not help)."""

    def __init__(self, f: Any, path: str) -> None:
        self._f, self._path = f, path
        self.full: Exception | None = None         # the DiskFull raised, if one was

    def write(self, data: Any) -> int:
        return int(self._checked(self._f.write, data))

    def flush(self) -> None:
        self._checked(self._f.flush)

    def _checked(self, call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except OSError as exc:
            import errno

            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            from reconciler import diskfull
            from reconciler.errors import DiskFull

            fs = diskfull.file_system(self._path)
            self.full = DiskFull(f"no space left on {fs.mount} ({fs.type}, {diskfull.size(fs.free)} free) while writing "
                           f"{self._path}", path=None, quota=exc.errno == errno.EDQUOT,
                           hint=f"free space on {fs.mount}, or write the archive elsewhere (-o FILE on another "
                                "file system, or stdout into a pipe)")
            raise self.full from exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


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
