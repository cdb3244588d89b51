"""What a container's limit may be by itself, whatever the host: dockerd's ranges, in its words.

One home for the ranges two layers ask: the manifest loader (`spec/building.py`: a manifest's
`resources` out of range is a manifest error naming its file, line and field) and every engine's
create and change (`runtime/limits.py`, which adds what depends on the host: its CPUs, cpuset and
whether its kernel weighs block I/O). Each rule gives dockerd's message, or None when the value is
fine; the caller adds what to do next in its own words (a flag, a manifest field). Imports
nothing of reconciler, so the pure spec layer and the engines share it.

    limitranges.cpu_period(500)      # "CPU cfs period can not be less than 1ms (i.e. 1000) ..."
    limitranges.cpu_list("3-1", "mems")     # ValueError: Invalid value 3-1 for cpuset mems: ...
"""

from __future__ import annotations

__all__ = ["BLKIO_WEIGHT", "CPU_PERIOD", "CPU_QUOTA_MIN", "CPU_SHARES", "MIN_MEMORY", "blkio_weight", "cpu_list",
           "cpu_period", "cpu_quota", "cpu_shares", "nano_cpus_conflict"]

MIN_MEMORY = 6 * 1024 * 1024            # dockerd's linuxMinMemory: a memory limit or reservation below it
CPU_PERIOD = (1000, 1_000_000)          # microseconds: 1 ms to 1 s (dockerd's, the kernel's)
CPU_QUOTA_MIN = 1000                    # microseconds; a negative quota is no limit
BLKIO_WEIGHT = (10, 1000)               # relative block I/O weight (CFQ's, BFQ's)
CPU_SHARES = (2, 262_144)               # the kernel's bounds of cpu.shares (runc's check; the manifest
                                        # schema's minimum and maximum of resources.cpuShares, a test pins)


def cpu_period(value: int) -> str | None:
    """dockerd's refusal of a CFS period (`--cpu-period`) out of 1000..1000000, else None."""
    if CPU_PERIOD[0] <= value <= CPU_PERIOD[1]:
        return None
    return "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"


def cpu_quota(value: int) -> str | None:
    """dockerd's refusal of a CFS quota (`--cpu-quota`) from 0 to 999, else None (a negative
    quota is no limit)."""
    if 0 <= value < CPU_QUOTA_MIN:
        return "CPU cfs quota can not be less than 1ms (i.e. 1000)"
    return None


def cpu_shares(value: int) -> str | None:
    """runc's refusal of CPU shares (`--cpu-shares`) out of the kernel's 2..262144, else None
    (dockerd leaves a create's to runc, which fails the start on cgroup v1 in these words)."""
    low, high = CPU_SHARES
    if low <= value <= high:
        return None
    return f"the minimum allowed cpu-shares is {low}" if value < low else f"the maximum allowed cpu-shares is {high}"


def blkio_weight(value: int) -> str | None:
    """dockerd's refusal of a block I/O weight (`--blkio-weight`) out of 10..1000, else None."""
    if BLKIO_WEIGHT[0] <= value <= BLKIO_WEIGHT[1]:
        return None
    return "Range of blkio weight is from 10 to 1000"


def nano_cpus_conflict(cpus: float | None, period: int | None, quota: int | None) -> str | None:
    """dockerd's refusal of a CPU limit given both ways (`--cpus`, and `--cpu-period` or
    `--cpu-quota`: `--cpus` sets both), else None."""
    if cpus is None:
        return None
    if period is not None:
        return "Conflicting options: Nano CPUs and CPU Period cannot both be set"
    if quota is not None:
        return "Conflicting options: Nano CPUs and CPU Quota cannot both be set"
    return None


def cpu_list(text: str, what: str) -> set[int]:
    """The numbers of a cpuset list ("0-3,6"), as dockerd's parsers.ParseUintList reads it;
    `what` is "cpus" or "mems". ValueError in dockerd's words when it is not one."""
    out: set[int] = set()
    for part in text.split(","):
        low, sep, high = part.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()) or (sep and int(high) < int(low)):
            raise ValueError(f"Invalid value {text} for cpuset {what}: invalid format: {text}")
        out.update(range(int(low), int(high if sep else low) + 1))
    return out
