"""`reconcile top NAME [ps OPTIONS]`: the running processes of a container, as `docker top` shows
them: the host's `ps` (default `-ef`; the options given pass to it) limited to the container's
processes, aligned as docker aligns it (`-o json|yaml` before the name: the Engine API's
`{"Titles", "Processes"}`). One that does not run is an error (exit 1). Reads only:
on a state root without an engine the name is not found and nothing is made."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import engines, options, output

    parser = subparsers.add_parser("top", help="display the running processes of a container",
                                   description="Show the processes of a running container: the host's ps (its "
                                   "options after the name, default -ef), as docker top.")
    options.add_engine_options(parser)
    engines.add_runtime_flag(parser, "top")
    output.add_output_flag(parser)
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("ps_args", nargs=argparse.REMAINDER, metavar="PS_OPTIONS",
                        help="options for ps (default: -ef)")
    parser.set_defaults(run=run, no_logging=True)   # prints data only; structlog not needed


def run(args: argparse.Namespace) -> int:
    import sys

    from reconciler.cli import engines, options, output
    from reconciler.runtime import errors

    if engines.is_native(args) and not options.engine_exists(args):       # reads only: makes no engine
        engines.check(args, "top")
        print(f"error: No such container: {args.container}", file=sys.stderr)
        return 1
    rt = engines.open_runtime(args, "top")
    try:
        titles, rows = rt.top(args.container, " ".join(args.ps_args) or "-ef")
    except errors.RuntimeBackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        rt.close()
    # -o json|yaml: the Engine API's answer to GET /containers/NAME/top
    output.render(args, {"Titles": titles, "Processes": rows},
                  lambda: output.print_cells([titles, *rows], min_width=20))
    return 0
