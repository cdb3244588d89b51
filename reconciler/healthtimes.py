"""Does a health status still say what runs? When it was observed, and for how long it stands.

A healthcheck's status is what its last probe saw. The engine that runs the probes keeps it
fresh: dockerd always, the native engine and reconciler's loop for Podman only while an agent or
a `reconcile` session runs. A status no probe observed for longer than its healthcheck's
interval allows is *stale*: it says what ran then, not now. ps, inspect, every engine's
observation (`ContainerState.health_stale`), a pass's verdict and `status` ask `stale`; it
imports nothing else of reconciler, so every engine may use it (the Docker backend reads
Docker's and Podman's probe log with it, the native engine its records).

    probed = healthtimes.last_probe(log, started_at)   # the End of the newest probe of this run
    healthtimes.stale("running", interval, timeout, start_period, started_at, probed, time.time())
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:                   # (`ps` imports this: no module loaded for annotations, #21)
    from collections.abc import Mapping, Sequence
    from typing import Any

__all__ = ["STALE_INTERVALS", "epoch", "last_probe", "stale"]

# A health status stands, unobserved, for this many intervals of its healthcheck plus one probe's
# timeout. A health checker that runs (dockerd's, the agent's, a `reconcile` session's) probes
# each container an interval after its last probe ended, and a probe ends within its timeout: its
# newest probe is at most an interval and a timeout old, plus the checker's poll (0.2 s). Three
# intervals leave room for a probe the checker's workers could not run at once, and for an agent
# restarted in between (its checker's first probe is due an interval after it starts); any
# longer, and no checker is running, or it is stuck: the status is stale.
STALE_INTERVALS = 3


def last_probe(health_log: Sequence[Mapping[str, Any]], started_at: str | None) -> str | None:
    """When a container's health was last observed: the End of the newest probe of its current
    run (the log is kept across restarts: an older one observed an earlier run), or None."""
    end = health_log[-1].get("End") if health_log else None
    if not end or not started_at:
        return end or None
    at, start = epoch(end), epoch(started_at)
    return end if at is None or start is None or at >= start else None


def stale(status: str, interval: float, timeout: float, start_period: float, started_at: str | None,
          probed_at: str | None, now: float) -> bool:
    """Whether a container with a healthcheck of these timings (seconds) has a stale health
    status: it runs, and its health was last observed (`probed_at`: last_probe; never probed in
    this run: its start plus `start_period`) more than STALE_INTERVALS intervals and a timeout
    before `now` (seconds since the epoch)."""
    if status != "running":
        return False
    since = epoch(probed_at) if probed_at else None
    if probed_at and since is None:
        return False                # a probe time this rule cannot read: not called stale on it
    if since is None:
        start = epoch(started_at) if started_at else None
        if start is None:
            return False
        since = start + start_period
    return now - since > STALE_INTERVALS * interval + timeout


def epoch(ts: str) -> float | None:
    """An RFC 3339 time (a record's, or Docker's and Podman's with nanoseconds) in seconds since
    the epoch, by datetime's C core (the `datetime` module defines its Python version first:
    `ps` loads none, #21); None when it is not one."""
    try:
        import _datetime as core  # type: ignore[import-not-found]  # no stub: datetime's own
    except ImportError:                         # an interpreter without the C core
        import datetime as core
    try:
        return float(core.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None
