"""`reconcile validate PATH`: load and check manifests without touching the host.

Exit 0 when every manifest is valid (prints a summary), 2 when any is not (lists every
problem as `file:line:column: kind/name: field: message`). With SERVICE names (`validate DIR web`)
it checks them too, as apply would take them, and counts what they select. `--output json` (or yaml) prints
the same as data.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from reconciler.cli import options, output

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check manifests (file, directory or - for stdin) and report every problem",
        description="Load manifests like the agent does and report every problem at once. "
        "Exit 0 when valid, 2 when not.",
    )
    parser.add_argument("path", metavar="PATH", nargs="?", help="a manifest file, a directory (searched "
                        "recursively), a directory holding a compose file (compose.yaml, docker-compose.yml, ...) "
                        "or - for stdin; left out with -f")
    options.add_compose_flags(parser)
    options.add_selection_flags(parser)
    options.add_policy_flag(parser)
    options.add_decryption_flag(parser)
    options.add_target_flag(parser)
    output.add_output_flag(parser)
    parser.set_defaults(run=run)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def run(args: argparse.Namespace) -> int:
    from reconciler import spec
    from reconciler.spec import policy

    path, compose = options.compose_source(args, "path", "PATH")     # TerminalError: exit 2
    chosen = policy.load_policy(args.policy)        # PolicyError: exit 2
    try:
        desired = spec.load(path, policy=chosen, compose=compose, decryption=options.decryption_keys(args),
                            cluster=args.runtime == "swarm", engine=args.runtime, select=options.selection(args, "path"))
        options.check_target(desired, args.runtime)
    except spec.SpecError as exc:
        if output.wants_data(args):
            output.print_data({
                "valid": False,
                "problems": [
                    {"file": p.file, "line": p.line, "column": p.column, "kind": p.kind, "name": p.name,
                     "field": p.field, "message": p.message}
                    for p in exc.problems
                ],
            }, args.output)
        else:
            for problem in exc.problems:
                print(problem)
            print(f"invalid: {_plural(len(exc.problems), 'problem')}", file=sys.stderr)
        return exc.exit_code

    objects = [
        {"kind": kind, "name": obj.name, "file": obj.origin.file, "line": obj.origin.line, "spec_hash": obj.spec_hash}
        for kind, items in (("Network", desired.networks), ("Volume", desired.volumes),
                            ("Image", desired.images), ("Container", desired.containers))
        for obj in items.values()
    ]
    if output.wants_data(args):
        output.print_data({"valid": True, "revision": desired.revision, "files": list(desired.sources),
                           "objects": objects, "warnings": list(desired.warnings),
                           **({"selection": list(desired.selection.units)} if desired.selection else {})},
                          args.output)
        return 0
    for warning in desired.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    counts = ", ".join(
        _plural(len(items), word)
        for word, items in (("container", desired.containers), ("image", desired.images),
                            ("network", desired.networks), ("volume", desired.volumes))
    )
    part = f" selected ({desired.selection.words()})" if desired.selection else ""
    print(f"valid: {counts}{part} in {_plural(len(desired.sources), 'file')} (revision {desired.revision[:12]})")
    return 0
