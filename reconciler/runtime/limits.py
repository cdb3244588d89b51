"""Docker's rules of a container's limits and restart policy, in dockerd's words, as dockerd
20.10 decides them, for every engine that runs single containers: what a create may ask and
what a change (`docker update`) may be, and what the container has after it. `reconcile
update` on the native engine and on dockerd or Podman (`runtime/docker/backend.py`: checked
here first, then sent), the Engine API's `POST /containers/create` and
`POST /containers/{id}/update` alike:

    HostLimits                              what the host lets containers have: its CPUs, and
                                            where the engine knows them (the native engine, its
                                            cgroups: `native/containers/cgroups.py`) the CPUs and
                                            memory nodes of its cpuset and whether the kernel
                                            weighs block I/O; None: the engine checks that itself
                                            (dockerd, with the same words)
    checked(update, host, *, create=False) -> (update, warnings)
                                            the change alone: dockerd's verifyPlatformContainerResources
                                            (the minimums, ranges and conflicts, CPUs and memory nodes
                                            the host has); a blkio weight the kernel cannot apply is
                                            discarded with dockerd's warning; `create`: a create's
                                            settings, which dockerd checks with `update` false (a swap
                                            limit needs a memory limit; cpu shares left to the kernel)
    checked_create(resources, restart, host) -> (resources, warnings)
                                            a create's limits and restart policy by `checked`
    merged(resources, restart, update, *, auto_remove) -> (Resources, RestartPolicy)
                                            the change over what the container has, each field it
                                            leaves None kept; dockerd's UpdateContainer conflicts (a
                                            CFS limit given one way while set the other, a memory
                                            limit over the swap limit set, a restart policy of an
                                            AutoRemove container), and a memory limit below the
                                            reservation, whichever of the two the change names

They raise InvalidArgument (the change is wrong in itself: nothing is changed) or, `merged`,
Conflict (it does not fit what the container has). Applying the result is the native engine's
`ContainerManager.update_config`; dockerd merges and applies a change itself, by these rules.
The ranges a value has by itself live in `reconciler/limitranges.py`, which the manifest loader
asks too. Stdlib, `limitranges` and `runtime.base` only: both backends import it (they import
nothing of each other).
"""

from __future__ import annotations

import os

from reconciler import limitranges
from reconciler._dataclass import dataclass, dataclasses
from reconciler.runtime import base
from reconciler.runtime import errors as rterrors

__all__ = ["MIN_MEMORY", "HostLimits", "checked", "checked_create", "cpus_available", "merged"]

MIN_MEMORY = limitranges.MIN_MEMORY     # a memory limit or reservation below it is refused
_RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
_BLKIO_DISCARDED = "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."


def _cpu_list(text: str, what: str) -> set[int]:
    """The numbers of a cpuset list ("0-3,6"), as dockerd's parsers.ParseUintList reads it
    (`limitranges.cpu_list`)."""
    try:
        return limitranges.cpu_list(text, what)
    except ValueError as exc:
        raise rterrors.InvalidArgument(str(exc), hint="a list of numbers and ranges, like 0-2,4") from None


def cpus_available() -> int:
    """The CPUs this process may run on, as Go's runtime.NumCPU counts them (dockerd's sysinfo)."""
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return os.cpu_count() or 1


@dataclass(frozen=True)
class HostLimits:
    """What the engine's host lets a container have, as dockerd's sysinfo says it."""

    ncpu: int                           # the CPUs the engine may run containers on (Go's runtime.NumCPU)
    cpus: str | None = None             # its cpuset's CPUs ("0-3"); None: the engine checks a cpuset itself
    mems: str | None = None             # its cpuset's memory nodes; None: the engine checks them itself
    blkio_weight: bool | None = None    # whether the kernel weighs block I/O; None: the engine discards
                                        # a weight it cannot apply itself, with the same warning


def checked(update: base.ResourceUpdate, host: HostLimits, *,
            create: bool = False) -> tuple[base.ResourceUpdate, list[str]]:
    """`update` as the engine applies it, and the warnings to show: InvalidArgument when it is
    wrong in itself (dockerd's verifyPlatformContainerResources); `create`: the settings of a
    create, as dockerd checks them there."""
    u = update
    warnings: list[str] = []

    def refuse(message: str, hint: str) -> rterrors.InvalidArgument:
        return rterrors.InvalidArgument(message, hint=hint)

    if u.memory is not None and u.memory < MIN_MEMORY:
        raise refuse("Minimum memory limit allowed is 6MB", "give --memory 6m or more")
    if u.memory is not None and u.memory_swap is not None and 0 < u.memory_swap < u.memory:
        raise refuse("Minimum memoryswap limit should be larger than memory limit, see usage",
                     "--memory-swap is memory plus swap: give at least --memory, or -1 for unlimited swap")
    if create and u.memory is None and u.memory_swap is not None and u.memory_swap > 0:
        raise refuse("You should always set the Memory limit when using Memoryswap limit, see usage",
                     "give --memory too (--memory-swap is memory plus swap)")
    if u.memory_reservation is not None and u.memory_reservation < MIN_MEMORY:
        raise refuse("Minimum memory reservation allowed is 6MB", "give --memory-reservation 6m or more")
    if u.memory is not None and u.memory_reservation is not None and u.memory < u.memory_reservation:
        raise refuse("Minimum memory limit can not be less than memory reservation limit, see usage",
                     "give a --memory-reservation below --memory")
    conflict = limitranges.nano_cpus_conflict(u.cpus, u.cpu_period, u.cpu_quota)
    if conflict:
        raise refuse(conflict, "give --cpus, or --cpu-period and --cpu-quota")
    ncpu = host.ncpu
    if u.cpus is not None and not 0 < u.cpus <= ncpu:
        raise refuse(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available",
                     f"give --cpus {ncpu} or less")
    # runc's bounds, in its words, on a change; a create's the kernel brings within them, as dockerd's
    wrong = None if create or u.cpu_shares is None else limitranges.cpu_shares(u.cpu_shares)
    if wrong:
        raise refuse(wrong, "give --cpu-shares 2 to 262144 (1024: a CPU's share)")
    wrong = None if u.cpu_period is None else limitranges.cpu_period(u.cpu_period)
    if wrong:
        raise refuse(wrong, "give --cpu-period in microseconds, 1000 to 1000000")
    wrong = None if u.cpu_quota is None else limitranges.cpu_quota(u.cpu_quota)
    if wrong:
        raise refuse(wrong, "give --cpu-quota in microseconds, 1000 or more (-1: no limit)")
    for given, have, what, words in ((u.cpuset, host.cpus, "cpus", "CPUs"),
                                     (u.cpuset_mems, host.mems, "mems", "memory nodes")):
        if given is None:
            continue
        wanted = _cpu_list(given, what)
        if have is not None and not wanted <= _cpu_list(have, what):
            raise refuse(f"Requested {words} are not available - requested {given}, available: {have}",
                         f"give --cpuset-{what} within {have}")
    if u.blkio_weight is not None and host.blkio_weight is False:
        warnings.append(_BLKIO_DISCARDED)
        u = dataclasses.replace(u, blkio_weight=None)
    wrong = limitranges.blkio_weight(u.blkio_weight) if u.blkio_weight is not None and host.blkio_weight else None
    if wrong:
        raise refuse(wrong, "give --blkio-weight 10 to 1000")
    if u.restart is not None:
        if u.restart.name not in _RESTART_POLICIES:
            raise refuse(f"invalid restart policy '{u.restart.name}'",
                         "give no, on-failure[:N], always or unless-stopped")
        if u.restart.max_retries < 0:
            raise refuse("maximum retry count cannot be negative", "give on-failure:N with N 0 or more")
        if u.restart.max_retries and u.restart.name != "on-failure":
            raise refuse(f"maximum retry count cannot be used with restart policy '{u.restart.name}'",
                         "a count goes with on-failure alone: on-failure:N")
    return u, warnings


def checked_create(resources: base.Resources, restart: base.RestartPolicy,
                   host: HostLimits) -> tuple[base.Resources, list[str]]:
    """A create's limits and restart policy by dockerd's rules (`checked` with `create`): the
    limits the container gets (a blkio weight the kernel cannot apply discarded), and the
    warnings; InvalidArgument, in dockerd's words, when they are wrong."""
    r = resources
    update = base.ResourceUpdate(
        memory=r.memory, memory_swap=r.memory_swap, memory_reservation=r.memory_reservation, cpus=r.cpus,
        cpu_shares=r.cpu_shares, cpu_period=r.cpu_period, cpu_quota=r.cpu_quota, cpuset=r.cpuset,
        cpuset_mems=r.cpuset_mems, pids=r.pids, blkio_weight=r.blkio_weight, restart=restart)
    checked_update, warnings = checked(update, host, create=True)
    return dataclasses.replace(r, blkio_weight=checked_update.blkio_weight), warnings


def merged(resources: base.Resources, restart: base.RestartPolicy, update: base.ResourceUpdate, *,
           auto_remove: bool = False) -> tuple[base.Resources, base.RestartPolicy]:
    """What a container that has `resources` and `restart` has after `update` (checked first):
    Conflict where the two do not fit (dockerd's UpdateContainer)."""
    u, r = update, resources

    def conflict(message: str, hint: str) -> rterrors.Conflict:
        return rterrors.Conflict(message, hint=hint)

    for new_value, set_value, name, other_name in ((u.cpus, r.cpu_period, "Nano CPUs", "CPU Period"),
                                                   (u.cpus, r.cpu_quota, "Nano CPUs", "CPU Quota"),
                                                   (u.cpu_period, r.cpus, "CPU Period", "NanoCPUs"),
                                                   (u.cpu_quota, r.cpus, "CPU Quota", "NanoCPUs")):
        if new_value is not None and set_value is not None:
            raise conflict(f"Conflicting options: {name} cannot be updated as {other_name} has already been set",
                           "its CPU limit was set the other way (--cpus, or --cpu-period/--cpu-quota): keep to "
                           "that way")
    if u.memory is not None and u.memory_swap is None and r.memory_swap is not None and 0 < r.memory_swap < u.memory:
        raise conflict("Memory limit should be smaller than already set memoryswap limit, update the memoryswap "
                       "at the same time", "give --memory-swap too (-1: unlimited swap)")
    if auto_remove and u.restart is not None and u.restart.name != "no":
        raise conflict("Restart policy cannot be updated because AutoRemove is enabled for the container",
                       "an AutoRemove container (run --rm) is removed at its exit: run it again without --rm")
    given = {f.name: getattr(u, f.name) for f in dataclasses.fields(base.Resources)
             if hasattr(u, f.name) and getattr(u, f.name) is not None}
    if u.pids is not None:
        given["pids"] = u.pids if u.pids > 0 else None        # 0 or -1: no limit, as docker's
    new = dataclasses.replace(r, **given)
    if new.memory is not None and new.memory_reservation is not None and new.memory < new.memory_reservation:
        raise rterrors.InvalidArgument("Minimum memory limit can not be less than memory reservation limit, see usage",
                                       hint="lower --memory-reservation at the same time")
    return new, u.restart or restart
