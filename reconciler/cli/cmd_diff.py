"""`reconcile diff SOURCE`: what a pass would do, with causes and field-level differences.

Exit codes: 0 in sync, 1 drift found (or something still converging), 2 error (invalid
manifests, engine unavailable). In sync is what `apply`/`--once` calls converged: nothing to do,
and every desired container runs as desired (not down, paused or unhealthy: `passes.unready`, a
health no probe observed lately probed first, as a pass does); one that does not is drift too,
though no action would change it, so the two commands' exit codes agree. Converging is what
needs no action but does not run as desired yet, which the engine converges by itself
(`Plan.converging`): a Swarm service whose copies of its current spec do not all run (a rolling
update unfinished, copies restarting), a container in its restart backoff; it is not in sync
either: "not in sync: 1 converging", exit 1.
Field differences compare the spec applied last (kept in the inventory) with the desired
one; env values are never printed, only which variables changed. With SERVICE names (`diff
SOURCE web`) it shows what `apply SOURCE web` would do: those services and what they depend on
(not with `--no-deps`), in sync or not by them alone.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from reconciler.cli import cmd_apply, options, output

    parser = subparsers.add_parser(
        "diff", help="show what apply would change, and why",
        description="Compare the manifests with the host and print the plan with a cause per "
        "action and field-level differences, and the desired containers that do not run as desired "
        "(down, paused, unhealthy; or still converging). Exit 0 in sync (what apply calls converged), 1 drift, "
        "2 error.",
    )
    cmd_apply.add_common_flags(parser, "diff")
    cmd_apply.add_host_label_flag(parser)
    options.add_policy_flag(parser)
    options.add_decryption_flag(parser)
    options.add_compose_flags(parser)
    options.add_selection_flags(parser)
    parser.add_argument("--allow-empty", action="store_true", help="plan as apply --allow-empty would")
    parser.add_argument("--adopt", action="store_true", help="plan as apply --adopt would")
    output.add_output_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from reconciler import spec
    from reconciler.cli import cmd_apply, options, output
    from reconciler.errors import ReconcilerError
    from reconciler.execution import passes
    from reconciler.spec import policy

    try:
        source, compose = options.compose_source(args)
        chosen = policy.load_policy(args.policy)
        desired = spec.load(source, policy=chosen, compose=compose,
                            decryption=options.decryption_keys(args), cluster=args.runtime == "swarm",
                            engine=args.runtime, select=options.selection(args))
        cmd_apply.print_warnings(desired)
        desired = cmd_apply.host_part(args, desired)
        with cmd_apply.open_runtime(args, supervise=False) as runtime:
            plan, errors, down = passes.diff_pass(desired, runtime, cmd_apply.open_db(args),
                                                  passes.PassOptions(owner=args.owner, allow_empty=args.allow_empty,
                                                                     policy=chosen, adopt=args.adopt))
    except ReconcilerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    unsaid, drift, in_sync = passes.diff_verdict(plan, down)
    if output.wants_data(args):
        output.print_data({**plan.to_json(), "in_sync": in_sync, "unready": dict(sorted(down.items())),
                           "unresolved": dict(sorted(errors.items())), "elsewhere": dict(desired.elsewhere),
                           **({"selection": list(desired.selection.units)} if desired.selection else {})},
                          args.output)
    else:
        if plan.actions or plan.notes:
            print(plan.render())
        for name, why in unsaid.items():
            print(f"container {name} is not running as desired: {why}")
        cmd_apply.print_elsewhere(desired, every=True)
        for ref, err in sorted(errors.items()):
            print(f"warning: could not resolve {ref}: {err}", file=sys.stderr)
        converging = f"{len(plan.converging)} converging" if plan.converging else ""
        part = f" ({desired.selection.words()})" if desired.selection else ""
        if drift:
            print(_summary(len(plan.actions), len(unsaid)) + (f"; {converging}" if converging else "") + part)
        else:
            print((f"not in sync: {converging}" if converging else "in sync") + part)
    return 0 if in_sync else 1


def _summary(actions: int, down: int) -> str:
    """The last line of a diff that is not in sync (`down`: the containers down no action is for)."""
    line = f"drift: {actions} actions"
    if down:
        line += f", {down} {'container' if down == 1 else 'containers'} not running as desired"
    return line
