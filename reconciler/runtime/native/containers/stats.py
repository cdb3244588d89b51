"""Resource usage of a native container, read from its cgroup files and its network namespace.

`sample()` returns the parts of Docker's stats document (`cpu_stats`, `memory_stats`,
`pids_stats`, `blkio_stats`, `networks`), because that is the shape every client reads
(`docker stats`, docker-py, exporters). It works on cgroup v1, v2 and the hybrid layout: each
value is read from the first of the container's cgroup directories (cgroups.leaf_dirs) that has
the file, v1's name first, then v2's. Network counters come from `/proc/<pid>/net/dev`, which
shows the interfaces of that process's network namespace.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from reconciler.runtime.native.containers import cgroups

__all__ = ["sample", "zero"]

_V1_UNLIMITED = 1 << 62           # v1 writes "no limit" as a page-rounded 2^63 - 1


def _read(dirs: list[Path], *names: str) -> str | None:
    for name in names:
        for d in dirs:
            try:
                return (d / name).read_text()
            except OSError:
                continue
    return None


def _int(text: str | None) -> int:
    text = (text or "").strip()
    return int(text) if text.isdigit() else 0


def _keyed(text: str | None) -> dict[str, int]:
    """`key value` lines (memory.stat, cpu.stat, cpuacct.stat)."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def _system_cpu_ns() -> int:
    """The host's CPU time since boot (the first line of /proc/stat), in nanoseconds, as Docker
    counts it: the denominator of `docker stats`' CPU %."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]
    return sum(int(x) for x in fields) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _cpu(dirs: list[Path]) -> dict[str, Any]:
    total = _read(dirs, "cpuacct.usage")
    percpu = [int(x) for x in (_read(dirs, "cpuacct.usage_percpu") or "").split() if x.isdigit()]
    if total is not None:                                    # v1: ns, and user/system in ticks
        ticks = _keyed(_read(dirs, "cpuacct.stat"))
        per_tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
        usage = {"total_usage": _int(total), "percpu_usage": percpu,
                 "usage_in_usermode": ticks.get("user", 0) * per_tick,
                 "usage_in_kernelmode": ticks.get("system", 0) * per_tick}
    else:                                                    # v2: microseconds
        stat = _keyed(_read(dirs, "cpu.stat"))
        usage = {"total_usage": stat.get("usage_usec", 0) * 1000, "usage_in_usermode": stat.get("user_usec", 0) * 1000,
                 "usage_in_kernelmode": stat.get("system_usec", 0) * 1000}
    throttle = _keyed(_read(dirs, "cpu.stat"))
    return {"cpu_usage": usage, "system_cpu_usage": _system_cpu_ns(), "online_cpus": os.cpu_count() or 1,
            "throttling_data": {"periods": throttle.get("nr_periods", 0),
                                "throttled_periods": throttle.get("nr_throttled", 0),
                                "throttled_time": throttle.get("throttled_time", throttle.get("throttled_usec", 0))}}


def _memory(dirs: list[Path]) -> dict[str, Any]:
    usage = _read(dirs, "memory.usage_in_bytes", "memory.current")
    limit_text = (_read(dirs, "memory.limit_in_bytes", "memory.max") or "").strip()
    limit = int(limit_text) if limit_text.isdigit() else 0
    host = _host_memory()
    if not limit or limit >= _V1_UNLIMITED or limit > host:
        limit = host                    # no limit: the host's memory, as Docker reports it
    doc: dict[str, Any] = {"usage": _int(usage), "stats": _keyed(_read(dirs, "memory.stat")), "limit": limit}
    peak = _read(dirs, "memory.max_usage_in_bytes", "memory.peak")
    if peak is not None:
        doc["max_usage"] = _int(peak)
    return doc


def _blkio(dirs: list[Path]) -> dict[str, Any]:
    entries = []
    v1 = _read(dirs, "blkio.throttle.io_service_bytes_recursive")
    if v1 is not None:
        for line in v1.splitlines():
            parts = line.split()
            if len(parts) == 3 and ":" in parts[0]:
                major, _, minor = parts[0].partition(":")
                entries.append({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])})
    else:
        for line in (_read(dirs, "io.stat") or "").splitlines():
            dev, *kvs = line.split()
            major, _, minor = dev.partition(":")
            values = dict(kv.split("=", 1) for kv in kvs if "=" in kv)
            for key, op in (("rbytes", "read"), ("wbytes", "write")):
                if values.get(key, "").isdigit():
                    entries.append({"major": int(major), "minor": int(minor), "op": op, "value": int(values[key])})
    return {"io_service_bytes_recursive": entries}


def _networks(pid: int | None) -> dict[str, Any]:
    """Counters of the container's interfaces (loopback left out, as Docker does)."""
    if not pid:
        return {}
    try:
        lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    except OSError:
        return {}
    out = {}
    for line in lines:
        name, _, rest = line.partition(":")
        name = name.strip()
        v = [int(x) for x in rest.split()]
        if name == "lo" or len(v) < 16:
            continue
        out[name] = {"rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                     "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11]}
    return out


def sample(prefix: str, cid: str, pid: int | None) -> dict[str, Any]:
    """The container's usage now: cpu_stats, memory_stats, pids_stats, blkio_stats, networks."""
    dirs = cgroups.leaf_dirs(prefix, cid)
    pids_max = (_read(dirs, "pids.max") or "").strip()
    return {"cpu_stats": _cpu(dirs), "memory_stats": _memory(dirs),
            "pids_stats": {"current": _int(_read(dirs, "pids.current")),
                           **({"limit": int(pids_max)} if pids_max.isdigit() else {})},
            "blkio_stats": _blkio(dirs), "networks": _networks(pid), "num_procs": 0}


def zero() -> dict[str, Any]:
    """What Docker answers for a container that does not run: every counter empty."""
    return {"cpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_usermode": 0, "usage_in_kernelmode": 0},
                          "system_cpu_usage": 0, "online_cpus": 0, "throttling_data": {}},
            "memory_stats": {}, "pids_stats": {}, "blkio_stats": {"io_service_bytes_recursive": None},
            "networks": {}, "num_procs": 0}
