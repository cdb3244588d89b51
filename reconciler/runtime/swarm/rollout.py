"""Where a service's rollout stands, from one look at the service and its up-to-date tasks.

The rules are the docker CLI's (`docker service create/update` without `--detach`,
cli/command/service/progress): a task counts once Swarm wants it running and it runs (for a
healthchecked service Swarm says "running" only once the copy is healthy); the update status
Swarm keeps on the service says whether a rolling update is under way, done, paused or rolled
back. Every update call resets that status (to "updating" when the task template changed, to
none for a scale or a label change), so what a look finds after our own call is about our call.

    step(look)  DONE        the rolling update completed with every wanted copy running
                SETTLED     every wanted copy runs and no rolling update was made (a new or a
                            scaled service): done once it stays so for the monitor period
                WAIT        still converging (or rolling back)
                ROLLED_BACK Swarm rolled the update back (FailureAction rollback)
                PAUSED      Swarm paused the update or the rollback (FailureAction pause)

A job service has no rolling update: `job_step(services.job_run(...))` is DONE once every
copy of its current run completed, FAILED once a copy failed and Swarm runs none again (its
restart policy gave up), else WAIT.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler._dataclass import dataclass
from reconciler.runtime.swarm import services

__all__ = ["DEFAULT_MONITOR", "Look", "Step", "job_step", "look", "step"]

DEFAULT_MONITOR = 5.0       # seconds: Swarm's update monitor when the spec sets none


class Step(enum.StrEnum):
    DONE = "done"
    SETTLED = "settled"
    WAIT = "wait"
    ROLLED_BACK = "rolled-back"
    PAUSED = "paused"
    FAILED = "failed"           # a job's copy failed, and Swarm runs none again


@dataclass(frozen=True)
class Look:
    """One look at a service's rollout."""

    name: str
    state: str              # the update status: "", updating, completed, paused, rollback_started, ...
    message: str            # Swarm's message with it
    wanted: int             # copies wanted (a global service: its up-to-date tasks)
    running: int            # up-to-date copies running
    since: str              # when this change began (the update's start, else the service's last change)
    monitor: float          # seconds a converged service must stay so when no rolling update ran

    def counts(self) -> str:
        return f"{self.running} of {self.wanted} copies running"


def look(service: Mapping[str, Any], tasks: Sequence[Mapping[str, Any]]) -> Look:
    """A Look from `GET /services/{id}` and the service's up-to-date tasks."""
    spec = service.get("Spec") or {}
    status = service.get("UpdateStatus") or {}
    wanted = services.wanted_replicas(service)
    if wanted is None:
        wanted = sum(1 for t in tasks if t.get("DesiredState") == "running")
    monitor_ns = (spec.get("UpdateConfig") or {}).get("Monitor")
    return Look(
        name=str(spec.get("Name", service.get("ID", ""))),
        state=str(status.get("State") or ""),
        message=str(status.get("Message") or ""),
        wanted=wanted,
        running=services.running_by_slot(tasks),
        since=str(status.get("StartedAt") or service.get("UpdatedAt") or ""),
        monitor=int(monitor_ns) / 1e9 if monitor_ns else DEFAULT_MONITOR,
    )


def step(now: Look) -> Step:
    """Where the rollout `now` stands."""
    converged = now.running >= now.wanted
    if now.state in ("paused", "rollback_paused"):
        return Step.PAUSED
    if now.state == "rollback_completed":
        return Step.ROLLED_BACK
    if now.state in ("updating", "rollback_started") or not converged:
        return Step.WAIT
    return Step.DONE if now.state == "completed" else Step.SETTLED


def job_step(run: services.JobRun) -> Step:
    """Where a job's current run stands: DONE, FAILED or WAIT."""
    return {"completed": Step.DONE, "failed": Step.FAILED}.get(run.outcome, Step.WAIT)
