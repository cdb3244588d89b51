"""`reconcile update [OPTIONS] CONTAINER...`: change containers' limits and restart policy, as
`docker update` does: a running container gets them at once (its cgroups, `runc update`), a
stopped one at its next start; inspect shows them. Each container is printed as named once
changed; one that could not be (not found, a change that does not fit it) is said on stderr,
the others are changed, exit 1. A change wrong in itself (below a minimum, out of range, CPUs
the host has not) changes nothing, exit 2. Sizes are docker's (`512m`, `1g`: spec/units.py),
the rules and their words dockerd's (runtime/limits.py), the same on the native engine and on
dockerd or Podman (`--runtime docker`: checked here, then the engine's `POST /containers/{id}/update`,
whose warnings are shown as the native engine's); not on a Swarm (a service's limits are its
manifest's) nor the fake engine.

A container that manifests own (an agent's, `apply`'s) is changed too, with a warning: the
change is drift its manifest does not say, which passes leave as it is until the container is
recreated (its manifest or image changes), as `docker update` of a compose container lasts
until `compose up` recreates it (state/labels.py `changed_by_hand`).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def _swap(value: str) -> int:
    """--memory-swap: a size, or -1 for unlimited swap (docker's MemSwapBytes)."""
    from reconciler.cli import cmd_run

    return -1 if value.strip() == "-1" else cmd_run.parse_bytes(value)


def register(subparsers: Any) -> None:
    from reconciler.cli import cmd_run, engines, options

    parser = subparsers.add_parser(
        "update", help="update the configuration of one or more containers",
        description="Change containers' limits and restart policy, as docker update: a running container "
        "gets them at once, a stopped one at its next start. Exit 1 when some container was not changed (the "
        "others are), 2 when the change is wrong in itself (nothing changed).")
    options.add_engine_options(parser)
    engines.add_runtime_flag(parser, "update")
    size = {"type": cmd_run.parse_bytes, "metavar": "BYTES"}
    parser.add_argument("-m", "--memory", default=None, help="memory limit (e.g. 256m, 1g)", **size)
    parser.add_argument("--memory-swap", default=None, type=_swap, metavar="BYTES",
                        help="memory plus swap limit (at least --memory); -1: unlimited swap")
    parser.add_argument("--memory-reservation", default=None, help="memory soft limit", **size)
    parser.add_argument("--cpus", default=None, type=cmd_run.checked("parse_cpus"), metavar="NUMBER",
                        help="CPU quota in CPUs (e.g. 0.5)")
    parser.add_argument("-c", "--cpu-shares", default=None, type=int, metavar="INT", help="CPU shares (relative weight)")
    parser.add_argument("--cpu-period", default=None, type=int, metavar="INT",
                        help="limit the CPU CFS (Completely Fair Scheduler) period, in microseconds")
    parser.add_argument("--cpu-quota", default=None, type=int, metavar="INT",
                        help="limit the CPU CFS (Completely Fair Scheduler) quota, in microseconds")
    parser.add_argument("--cpuset-cpus", default=None, metavar="LIST", help="CPUs in which to allow execution (0-3, 0,1)")
    parser.add_argument("--cpuset-mems", default=None, metavar="LIST", help="memory nodes (MEMs) in which to allow "
                        "execution (0-3, 0,1)")
    parser.add_argument("--pids-limit", default=None, type=int, metavar="INT",
                        help="tune container pids limit (0 or -1 for unlimited)")
    parser.add_argument("--blkio-weight", default=None, type=int, metavar="INT",
                        help="block IO (relative weight), between 10 and 1000, or 0 to leave it (a kernel without "
                        "an I/O weight discards it, with a warning, as dockerd)")
    parser.add_argument("--restart", default=None, type=cmd_run.checked("parse_restart"), metavar="POLICY",
                        help="restart policy to apply when a container exits: no | on-failure[:N] | always | "
                        "unless-stopped")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.set_defaults(run=run, no_logging=True)   # prints names only; structlog not needed


def _change(args: argparse.Namespace) -> Any:
    """The base.ResourceUpdate the flags ask for; 0 is "as it is", as docker's (not --pids-limit:
    no limit)."""
    from reconciler.runtime import base

    def given(value: Any) -> Any:
        return value or None

    name, retries = args.restart or (None, 0)
    return base.ResourceUpdate(
        memory=given(args.memory), memory_swap=given(args.memory_swap),
        memory_reservation=given(args.memory_reservation), cpus=args.cpus, cpu_shares=given(args.cpu_shares),
        cpu_period=given(args.cpu_period), cpu_quota=given(args.cpu_quota), cpuset=args.cpuset_cpus or None,
        cpuset_mems=args.cpuset_mems or None, pids=args.pids_limit, blkio_weight=given(args.blkio_weight),
        restart=base.RestartPolicy(name, retries) if name else None)


def run(args: argparse.Namespace) -> int:
    """Each container updated, its name printed, as `docker update`; the change checked once
    first (wrong in itself: InvalidArgument, exit 2, no container changed)."""
    import sys

    from reconciler.cli import engines
    from reconciler.errors import TerminalError
    from reconciler.runtime import errors
    from reconciler.state import labels

    change = _change(args)
    if change.empty():
        raise TerminalError("you must provide one or more flags when using this command",
                            hint="e.g. reconcile update --memory 256m --cpus 0.5 CONTAINER")
    rt = engines.open_runtime(args, "update")
    code = 0
    try:
        change, warnings = rt.checked_update(change)
        for name in args.containers:
            try:
                warnings += [w for w in rt.update_resources(name, change) if w not in warnings]
                drift = labels.changed_by_hand(name, rt.inspect_container(name).labels)
            except errors.RuntimeBackendError as exc:
                print(f"error: {exc}", file=sys.stderr, flush=True)
                code = 1
                continue
            print(name, flush=True)
            if drift:
                print(f"warning: {drift}", file=sys.stderr, flush=True)
    finally:
        rt.close()
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return code
