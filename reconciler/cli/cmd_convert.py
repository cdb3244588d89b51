"""`reconcile convert [-f FILE]... [DIR] [SERVICE...]`: a compose project printed as native manifests.

The project is read as `reconcile validate`, `apply` and the agent read it (reconciler.spec.compose):
the output is exactly what they converge to, and valid input for `reconcile validate`. Saved
in the project directory (relative bind sources and build contexts start there), it loads into
the same objects with the same spec hashes. Values from `.env`, env files and the environment are
written out, as `docker compose config` does; `-o json` prints the same documents as one JSON list.
With SERVICE names (`convert DIR web`), the part `apply DIR web` converges: the services named
and what they depend on (no `--no-deps`: the output stands alone), with the networks, volumes
and images they use, as
`docker compose config web` prints it (reconciler.spec.selection); a name that is no service of
the project is a problem naming the compose file and the services. Exit 0 printed, 2 invalid
(every problem listed).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="print a compose project as reconciler manifests",
        description="Read a compose project (compose.yaml, docker-compose.yml, ... and its override file, "
        "or the files given with -f) as apply and the agent read it, and print the equivalent "
        "manifests; with SERVICE names, those of the services named and what they depend on, as "
        "docker compose config SERVICE... prints them. Exit 0 printed, 2 invalid.",
    )
    parser.add_argument("directory", metavar="DIR", nargs="?", default=None,
                        help="the project directory holding the compose file (default: the current one; "
                        "left out with -f)")
    from reconciler.cli import options, output

    options.add_compose_flags(parser)
    options.add_selection_flags(parser, no_deps=False, help_text="print only these compose services and what "
                                "they depend on, with the networks, volumes and images they use, as `docker compose "
                                "config SERVICE...`: the part `apply DIR SERVICE...` converges")
    options.add_target_flag(parser)
    output.add_output_flag(parser, table=False, default="yaml")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from reconciler import spec
    from reconciler.cli import options, output
    from reconciler.spec import composefiles

    if args.directory is None and not args.files:
        args.directory = "."
    directory, compose = options.compose_source(args, "directory", "DIR")
    opts = compose or spec.ComposeOptions()
    try:
        # loaded as apply loads it for that runtime: on Swarm a scaled service is one service, not
        # a single host's numbered containers (whose checks, one host port for all, do not hold)
        desired, docs = spec.convert(directory, compose=opts, engine=args.runtime,
                                     cluster=args.runtime == "swarm", select=options.selection(args, "directory"))
        options.check_target(desired, args.runtime)
    except spec.SpecError as exc:
        for problem in exc.problems:
            print(problem)
        print(f"invalid: {len(exc.problems)} problem{'s' if len(exc.problems) != 1 else ''}", file=sys.stderr)
        return exc.exit_code
    for warning in desired.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    where = composefiles.project_directory(opts, directory)      # where relative paths start
    sources = ", ".join(os.path.relpath(s, where) for s in desired.sources)
    if args.output == "json":             # the documents as one JSON list (no room for the comments)
        output.print_json(docs)
        return 0
    part = f": {desired.selection.words()}" if desired.selection else ""
    sys.stdout.write(f"# the compose project {desired.project!r} ({sources}) as reconciler manifests{part}\n"
                     f"# relative paths start in {where}: save this file there\n")
    sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False, explicit_start=True, allow_unicode=True,
                                        default_flow_style=False, width=120))
    return 0
