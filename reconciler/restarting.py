"""Should a stopped container run? Docker's restart policies, decided in one place.

The planner (a matching container found stopped), the native engine's restart manager (an exit,
and engine start) and the Docker backend (reading back whether `docker stop` was used) all ask
`decide`; it imports nothing else of reconciler, so the pure planner and every engine may use it.

Docker's rules (moby's restartmanager): `no` never; `always`; `unless-stopped`;
`on-failure[:N]` when the exit code is not 0 and fewer than N restarts were made (N = 0:
unlimited). When the answer is asked matters (`Moment`):

- EXIT, as the engine sees the container exit: a stop by hand cancels every policy (Docker
  cancels the restart manager on `docker stop`);
- RESUME, when the engine starts again or a pass converges the host: the policy alone decides,
  and only `unless-stopped` remembers a stop by hand (an `always` container runs again, as
  Docker restarts it when its daemon starts).

    d = restarting.decide(policy, exit_code=1, restart_count=0, manually_stopped=False,
                          moment=restarting.Moment.RESUME)
    d.start, d.why          # True, "exited (code 1); restart policy on-failure"

A container that exited without ever having started (`cut_short`: no start time; a CLI killed
between `runc create` and the start, whose init then ended) never ran its command: no policy
applies to it, and a pass starts it as one that was only created.
"""

from __future__ import annotations

import enum
from typing import Protocol

from reconciler._dataclass import dataclass

__all__ = ["CUT_SHORT", "Moment", "Policy", "StartDecision", "cut_short", "decide"]


class Policy(Protocol):
    """A restart policy: the spec's and the runtime's value types both fit."""

    @property
    def name(self) -> str: ...              # "no" | "on-failure" | "always" | "unless-stopped"

    @property
    def max_retries(self) -> int: ...       # on-failure only; 0 = unlimited


class Moment(enum.Enum):
    """When the question is asked (see the module's docstring)."""

    EXIT = "exit"
    RESUME = "resume"


@dataclass(frozen=True)
class StartDecision:
    """Whether a stopped container should run, and why (the plan's cause or note)."""

    start: bool
    why: str


def decide(
    policy: Policy,
    *,
    exit_code: int | None,
    restart_count: int,
    manually_stopped: bool,
    moment: Moment,
) -> StartDecision:
    """Docker's decision for a container that exited with `exit_code` (None: unknown, not 0)."""
    name = policy.name
    if manually_stopped and (moment is Moment.EXIT or name == "unless-stopped"):
        return StartDecision(False, f"stopped by hand; restart policy {name} keeps it stopped")
    if name in ("always", "unless-stopped"):
        return StartDecision(True, f"exited (code {exit_code}); restart policy {name}")
    if name == "on-failure":
        if exit_code == 0:
            return StartDecision(False, "exited with code 0; restart policy on-failure leaves it stopped")
        if policy.max_retries and restart_count >= policy.max_retries:
            return StartDecision(False, f"exited (code {exit_code}) after {restart_count} restarts; "
                                        f"on-failure:{policy.max_retries} gave up")
        return StartDecision(True, f"exited (code {exit_code}); restart policy on-failure")
    return StartDecision(False, f"exited (code {exit_code}); restart policy {name} leaves it stopped")


CUT_SHORT = "exited before its start finished (its command never ran)"


def cut_short(status: str, started_at: str | None) -> bool:
    """Whether a container `status` with this start time is one whose start was cut short:
    exited, never started (see the module's docstring)."""
    return status == "exited" and not started_at
