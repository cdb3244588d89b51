"""`reconcile logs NAME`: a container's output, as `docker logs` prints it; streamed by the
agent that holds the state root when one runs (#21), else read from the root; with `--runtime`
another engine's, through the Runtime protocol (#15)."""

from __future__ import annotations

import sys

from reconciler.cli import fastpath

# annotations only: what the read-only commands import at start-up stays small (#21)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator
    from typing import Any

__all__ = ["register", "run"]


# its flags, for its parser and the fast path alike (cli/fastpath.py)
SPEC = fastpath.Spec((
    (("-f", "--follow"), "follow", "keep printing until the container stops"),
    (("-t", "--timestamps"), "timestamps", "prefix each line with its time"),
), output=None, positional=("container", "1", "CONTAINER"), defaults={"since": None, "tail": "all"})


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("logs", help="print a container's logs",
                                   description="Print a container's stdout and stderr (stderr lines go to stderr).")
    SPEC.add_to(parser, "logs")
    parser.add_argument("--since", default=SPEC.defaults["since"],
                        help="only lines since this time (RFC 3339, Unix time, or 10m / 1h30m ago)")
    parser.add_argument("-n", "--tail", default=SPEC.defaults["tail"],
                        help='number of lines from the end (default "all")')
    parser.set_defaults(run=run, no_logging=True)   # prints data only; structlog not needed


def run(args: argparse.Namespace) -> int:
    from reconciler.runtime import errors

    tail: int | None = None
    if args.tail != "all":
        try:
            tail = int(args.tail)
        except ValueError:
            raise errors.InvalidArgument(f"--tail must be a number or 'all', not {args.tail!r}") from None
    out, err = sys.stdout.buffer, sys.stderr.buffer
    for stream_name, time, data in _lines(args, tail):
        stream = err if stream_name == "stderr" else out
        if args.timestamps:
            stream.write(time.encode() + b" ")
        stream.write(data)              # as written: its newline, if it had one
        if args.follow:
            stream.flush()
    out.flush()
    return 0


def _lines(args: argparse.Namespace, tail: int | None) -> Iterator[tuple[str, str, bytes]]:
    """(stream, time, bytes as written: with the newline, if one ended them) of each line:
    streamed by the agent that holds the state root when one runs (#21), else read from the root."""
    import urllib.parse

    from reconciler.cli import _agentapi, cmd_ps, engines, options
    from reconciler.runtime import errors

    if not engines.is_native(args):
        rt = engines.open_runtime(args, "logs")
        try:
            for line in rt.logs(args.container, follow=args.follow, since=args.since, tail=tail):
                yield line.stream, line.time, line.written
        finally:
            rt.close()
        return
    served = _agentapi.streamed(args, f"/v1/containers/{urllib.parse.quote(args.container, safe='')}/logs",
                                timeout=None if args.follow else 30.0, follow=int(args.follow), since=args.since,
                                tail=tail)
    if served is not None:
        for v in served:
            if "s" not in v:
                raise _agentapi.failed(v)       # the agent's error after the reply began
            yield v["s"], v["t"], v["d"].encode("latin-1") + (b"\n" if v.get("n", True) else b"")
        return
    if not options.engine_exists(args):
        raise errors.NotFound(f"No such container: {args.container}")
    for line in cmd_ps.open_records(args).logs(args.container, follow=args.follow, since=args.since, tail=tail):
        yield line.stream, line.time, line.written
