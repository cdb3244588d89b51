"""What a pass did: one ActionResult per action, one Change per resource, the ChangeSet (Flux).

Callers log, record history and update the inventory from this data, never from side effects.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
from typing import Any

from reconciler._dataclass import dataclass, field
from reconciler.planning import actions

__all__ = ["ActionResult", "Change", "ChangeSet", "Outcome", "Status"]

Kind = actions.ActionKind


class Status(enum.StrEnum):
    """How one action ended."""

    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"     # a dependency did not succeed
    HELD = "held"           # the plan held it (previous failure, backoff)
    INTERRUPTED = "interrupted"  # the reconciler is stopping: not started, or cut short where safe
    KEPT = "kept"           # not needed after all: the rebuilt image is the one the container runs


class Outcome(enum.StrEnum):
    """What happened to one resource in the pass."""

    CREATED = "created"
    CONFIGURED = "configured"   # replaced (recreated, or a service updated) with the new spec or image
    STARTED = "started"
    CONNECTED = "connected"     # connected again to a network it was off (the same container)
    STOPPED = "stopped"
    PULLED = "pulled"
    BUILT = "built"             # an Image's build: ran (and maybe pushed)
    PUSHED = "pushed"
    DELETED = "deleted"
    FORGOTTEN = "forgotten"     # dropped from the inventory, left in place
    FAILED = "failed"
    ROLLED_BACK = "rolled-back"  # the update failed; the previous container (service spec) runs again
    SKIPPED = "skipped"
    HELD = "held"
    INTERRUPTED = "interrupted"  # left for the next pass: the reconciler was stopping
    KEPT = "kept"               # its replacement was not needed: the image built or pulled is the one it runs


@dataclass(frozen=True)
class ActionResult:
    """The end of one action."""

    action: actions.Action
    status: Status
    error: str = ""
    duration: float = 0.0
    detail: str = ""                            # "already gone", "rolled back", ...
    config: Mapping[str, Any] | None = None     # create: the runtime config used (JSON data)
    image_digest: str = ""                      # create/pull: the digest used
    rolled_back: bool = False
    hint: str = ""                              # what to do about `error`, when the error said
    disk_full: bool = False                     # `error` is a full file system (errors.DiskFull)

    @property
    def ok(self) -> bool:
        return self.status is Status.DONE or self.status is Status.KEPT


@dataclass(frozen=True)
class Change:
    """One resource's outcome."""

    resource: str
    outcome: Outcome
    detail: str = ""
    results: tuple[ActionResult, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"resource": self.resource, "outcome": str(self.outcome), "detail": self.detail,
                "actions": [f"#{r.action.id} {r.action.kind} {r.status}" for r in self.results],
                "causes": [r.action.cause for r in self.results]}        # one per action: why it ran


def _outcome(results: list[ActionResult]) -> tuple[Outcome, str]:
    failed = [r for r in results if r.status is Status.FAILED]
    if failed:
        r = failed[0]
        if any(x.rolled_back for x in failed):
            return Outcome.ROLLED_BACK, r.error
        return Outcome.FAILED, r.error
    if any(r.status is Status.INTERRUPTED for r in results):
        r = next(r for r in results if r.status is Status.INTERRUPTED)
        return Outcome.INTERRUPTED, r.error
    if any(r.status is Status.HELD for r in results):
        return Outcome.HELD, next(r.action.cause for r in results if r.status is Status.HELD)
    if all(r.status is Status.SKIPPED for r in results):
        return Outcome.SKIPPED, results[0].error
    if all(r.status is Status.KEPT for r in results):
        return Outcome.KEPT, results[0].detail
    kinds = {r.action.kind for r in results if r.ok}
    creates = kinds & {Kind.CREATE, Kind.ENSURE_NETWORK, Kind.ENSURE_VOLUME}
    removes = kinds & {Kind.REMOVE, Kind.REMOVE_NETWORK, Kind.REMOVE_VOLUME}
    if (creates and removes) or kinds & {Kind.UPDATE, Kind.RENAME}:
        return Outcome.CONFIGURED, results[0].action.cause
    if creates:
        return Outcome.CREATED, results[0].action.cause
    if removes:
        return Outcome.DELETED, results[0].action.cause
    if Kind.BUILD_IMAGE in kinds:
        return Outcome.BUILT, results[0].action.cause
    if Kind.PUSH_IMAGE in kinds:
        return Outcome.PUSHED, results[0].action.cause
    if Kind.PULL_IMAGE in kinds:
        return Outcome.PULLED, results[0].action.cause
    if kinds & {Kind.CONNECT, Kind.RECONNECT}:
        return Outcome.CONNECTED, results[0].action.cause
    if Kind.START in kinds:
        return Outcome.STARTED, results[0].action.cause
    if Kind.STOP in kinds:
        return Outcome.STOPPED, results[0].action.cause
    return Outcome.FORGOTTEN, results[0].action.cause


@dataclass(frozen=True)
class ChangeSet:
    """Every action's result, grouped by resource in plan order."""

    results: tuple[ActionResult, ...] = ()
    changes: tuple[Change, ...] = field(default=())

    @classmethod
    def of(cls, results: list[ActionResult]) -> ChangeSet:
        results = sorted(results, key=lambda r: r.action.id)
        by_resource: dict[str, list[ActionResult]] = {}
        for r in results:
            by_resource.setdefault(r.action.resource, []).append(r)
        changes = []
        for resource, rs in by_resource.items():
            outcome, detail = _outcome(rs)
            changes.append(Change(resource, outcome, detail, tuple(rs)))
        return cls(results=tuple(results), changes=tuple(changes))

    @property
    def ok(self) -> bool:
        """Every action succeeded (the host converged to the plan)."""
        return all(r.ok for r in self.results)

    @property
    def interrupted(self) -> bool:
        """The pass was stopped early (SIGTERM): some actions were left for the next pass."""
        return any(r.status is Status.INTERRUPTED for r in self.results)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(str(c.outcome) for c in self.changes).items()))

    def disk_full(self) -> list[ActionResult]:
        """The actions that failed because a file system was full."""
        return [r for r in self.results if r.disk_full]

    def failed(self) -> list[Change]:
        bad = {Outcome.FAILED, Outcome.ROLLED_BACK, Outcome.SKIPPED, Outcome.HELD}
        return [c for c in self.changes if c.outcome in bad]

    def result_for(self, action_id: int) -> ActionResult | None:
        return next((r for r in self.results if r.action.id == action_id), None)

    def __str__(self) -> str:
        return "\n".join(f"{c.resource} {c.outcome}" for c in self.changes)
