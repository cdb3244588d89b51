"""`reconcile schema [KIND]`: print the JSON Schema (draft 2020-12) of a kind, or of all kinds.

Without KIND the output is one schema that accepts any manifest document and dispatches on
`kind`, for editors (yaml-language-server: `# yaml-language-server: $schema=<file>`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run"]

_KINDS = ("Container", "Image", "Network", "Volume")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of a manifest kind (or of all kinds)",
        description="Print the JSON Schema (draft 2020-12) of KIND, or one schema for any manifest document.",
    )
    parser.add_argument(
        "kind", metavar="KIND", nargs="?", type=lambda s: s.capitalize(), choices=_KINDS,
        help=f"one of {', '.join(_KINDS)} (case-insensitive); all kinds when absent",
    )
    from reconciler.cli import output

    output.add_output_flag(parser, table=False)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import output
    from reconciler.spec import schemas

    if args.kind and args.output == "json":
        sys.stdout.write(schemas.schema_text(args.kind))     # the file as shipped, byte for byte
        return 0
    output.print_data(schemas.schema(args.kind) if args.kind else schemas.combined(), args.output)
    return 0
