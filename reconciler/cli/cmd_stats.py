"""`reconcile stats [-a] [--no-stream] [--no-trunc] [NAME...]`: containers' resource usage, as
`docker stats` shows it: CPU %, memory usage / limit and %, network and block I/O, PIDs, from
the kernel's cgroup files and the container's network namespace (the engine's stats samples,
base.Statistics), computed as the docker CLI computes them (cli/command/container/stats_helpers.go):

    CPU %        the container's CPU time over the host's between two samples a second apart,
                 times the CPUs online (100 % is one CPU busy)
    MEM USAGE    the cgroup's usage less its inactive file cache (v1 `total_inactive_file`, v2
                 `inactive_file`) / its limit (the host's memory when it has none); MEM % of it
    NET I/O      bytes received / sent, every interface of its namespace but loopback
    BLOCK I/O    bytes read / written (the cgroup's io_service_bytes, reads and writes)

Without names, the running containers (every one with -a), listed again at each refresh; with
names, those, one that does not run showing zeros, and if one is not found nothing but the
errors is printed (exit 1), as docker's. Refreshed every second on the same screen (the cursor
homed and each line cleared, as docker writes it) until Ctrl-C; `--no-stream`: one table.
`-o json|yaml`: the same numbers as data (bytes, percents), a document per refresh. Reads only:
on a state root without an engine nothing is listed and nothing is made.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "row", "run"]

COLUMNS = ("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS")


def register(subparsers: Any) -> None:
    from reconciler.cli import engines, options, output

    parser = subparsers.add_parser("stats", help="display a live stream of container(s) resource usage statistics",
                                   description="Show containers' CPU, memory, network and block I/O and PIDs, as "
                                   "docker stats computes them from the kernel's cgroups; refreshed every second "
                                   "until Ctrl-C unless --no-stream.")
    options.add_engine_options(parser)
    engines.add_runtime_flag(parser, "stats")
    output.add_output_flag(parser)
    parser.add_argument("-a", "--all", action="store_true", help="show all containers (default: running ones)")
    parser.add_argument("--no-stream", action="store_true", help="print one sample and end")
    parser.add_argument("--no-trunc", action="store_true", help="do not truncate ids")
    parser.add_argument("containers", nargs="*", metavar="CONTAINER")
    parser.set_defaults(run=run, no_logging=True)   # prints data only; structlog not needed


def run(args: argparse.Namespace) -> int:
    import sys

    from reconciler.cli import engines, options

    if engines.is_native(args) and not options.engine_exists(args):       # reads only: makes no engine
        engines.check(args, "stats")
        for name in args.containers:
            print(f"error: No such container: {name}", file=sys.stderr)
        if args.containers:
            return 1
        _print([], args, stream=False)
        return 0
    rt = engines.open_runtime(args, "stats")
    try:
        return _show(rt, args)
    finally:
        rt.close()


def _show(rt: Any, args: argparse.Namespace) -> int:
    """Sample, wait a second, sample again and print; again every second unless --no-stream."""
    import sys
    import time

    names = _targets(rt, args)
    before, failed = _samples(rt, names)
    if failed and args.containers:                  # docker's: the errors alone
        for message in failed:
            print(f"error: {message}", file=sys.stderr)
        return 1
    while True:
        if any(s["read"] != _NEVER for s in before.values()) or not args.no_stream:
            time.sleep(1)
        if not args.containers:
            names = _targets(rt, args)              # started and stopped meanwhile
        now, _ = _samples(rt, names)                # one removed meanwhile: gone from the table
        _print([row(now[n], before.get(n)) for n in names if n in now], args, stream=not args.no_stream)
        if args.no_stream:
            return 0
        before = now


_NEVER = "0001-01-01T00:00:00Z"         # Go's zero time: the sample of a container not running


def _targets(rt: Any, args: argparse.Namespace) -> list[str]:
    """The names given, else the ids of the running containers (every one with -a), newest first."""
    if args.containers:
        return list(args.containers)
    states = [s for s in rt.list_containers() if args.all or str(s.status) == "running"]
    return [s.id for s in sorted(states, key=lambda s: s.created, reverse=True)]


def _samples(rt: Any, names: list[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """One stats sample of each container (by the name asked), and what failed."""
    from reconciler.runtime import errors

    got: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    for name in names:
        try:
            got[name] = rt.container_stats(name)
        except errors.RuntimeBackendError as exc:
            failed.append(str(exc))
    return got, failed


def row(cur: dict[str, Any], pre: dict[str, Any] | None) -> dict[str, Any]:
    """A container's numbers from its sample `cur` and the one before (`pre`: its CPU %), as the
    docker CLI computes them (calculateCPUPercentUnix, calculateMemUsageUnixNoCache,
    calculateNetwork, calculateBlockIO)."""
    cpu = cur.get("cpu_stats") or {}
    precpu = (pre or {}).get("cpu_stats") or cur.get("precpu_stats") or {}
    cpu_delta = ((cpu.get("cpu_usage") or {}).get("total_usage") or 0) - \
        ((precpu.get("cpu_usage") or {}).get("total_usage") or 0)
    system_delta = (cpu.get("system_cpu_usage") or 0) - (precpu.get("system_cpu_usage") or 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or ())
    cpu_percent = cpu_delta / system_delta * online * 100.0 if system_delta > 0 and cpu_delta > 0 else 0.0
    mem = cur.get("memory_stats") or {}
    usage, limit, counters = mem.get("usage") or 0, mem.get("limit") or 0, mem.get("stats") or {}
    inactive = counters.get("total_inactive_file", counters.get("inactive_file", 0))
    used = usage - inactive if inactive < usage else usage
    nets = (cur.get("networks") or {}).values()
    blk = (cur.get("blkio_stats") or {}).get("io_service_bytes_recursive") or ()
    return {
        "id": cur.get("id", ""), "name": str(cur.get("name", "")).removeprefix("/"),
        "cpu_percent": round(cpu_percent, 2), "memory_usage": used, "memory_limit": limit,
        "memory_percent": round(used / limit * 100.0, 2) if limit else 0.0,
        "net_rx": sum(n.get("rx_bytes", 0) for n in nets), "net_tx": sum(n.get("tx_bytes", 0) for n in nets),
        "block_read": sum(e.get("value", 0) for e in blk if str(e.get("op", ""))[:1] in ("r", "R")),
        "block_write": sum(e.get("value", 0) for e in blk if str(e.get("op", ""))[:1] in ("w", "W")),
        "pids": (cur.get("pids_stats") or {}).get("current") or 0,
    }


def _print(rows: list[dict[str, Any]], args: argparse.Namespace, *, stream: bool) -> None:
    """The table (homed and each line cleared while streaming, as docker writes it), or the rows as data."""
    import io
    import sys

    from reconciler import printing
    from reconciler.cli import output

    if output.wants_data(args):
        (output.print_record if stream else output.print_data)(rows, args.output)
        sys.stdout.flush()
        return
    cells = [list(COLUMNS)] + [[
        r["id"] if args.no_trunc else r["id"][:12], r["name"], f"{r['cpu_percent']:.2f}%",
        f"{printing.binary_size(r['memory_usage'])} / {printing.binary_size(r['memory_limit'])}",
        f"{r['memory_percent']:.2f}%", f"{printing.human_size(r['net_rx'])} / {printing.human_size(r['net_tx'])}",
        f"{printing.human_size(r['block_read'])} / {printing.human_size(r['block_write'])}", str(r["pids"])]
        for r in rows]
    text = io.StringIO()
    output.print_cells(cells, min_width=10, file=text)
    if stream:
        sys.stdout.write("\x1b[H" + "".join(f"{line}\x1b[K\n" for line in text.getvalue().splitlines()) + "\x1b[J")
    else:
        sys.stdout.write(text.getvalue())
    sys.stdout.flush()
