"""Plan values: Action (one runtime call, with its cause), Plan (a DAG in topological order).

Like compose's plan: every action maps to one runtime call (or to none: `fail`, `hold` and
`forget` only report or update the inventory), carries the cause that made the planner choose
it, and lists the actions it depends on. The executor makes no decisions: everything it needs
(target name, desired spec, labels, image digest, health wait, rollback data) is in the action.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from reconciler._dataclass import dataclass, field
from reconciler.spec import models
from reconciler.spec.ids import ResourceId

__all__ = ["TEMP_SUFFIX", "Action", "ActionKind", "FieldChange", "Plan", "SecretData", "Wait"]

# start-first creates the new container under `<name>.next`, then renames it into place
TEMP_SUFFIX = ".next"


class ActionKind(enum.StrEnum):
    """What an action does. Each maps to at most one runtime call."""

    ENSURE_NETWORK = "ensure-network"
    ENSURE_VOLUME = "ensure-volume"
    PULL_IMAGE = "pull-image"
    BUILD_IMAGE = "build-image"     # build an Image's build: and tag it as its ref
    PUSH_IMAGE = "push-image"       # push a built image to one of its push: targets
    CREATE = "create"
    START = "start"
    STOP = "stop"
    REMOVE = "remove"
    RENAME = "rename"
    CONNECT = "connect"     # connect a container to one of its networks (`network`), with its settings there
    RECONNECT = "reconnect"  # the same, disconnected from it first (an alias missing, the network made again)
    UPDATE = "update"       # change a service in place (a cluster rolls it out itself)
    REMOVE_NETWORK = "remove-network"
    REMOVE_VOLUME = "remove-volume"
    FORGET = "forget"       # drop an inventory entry; no runtime call
    FAIL = "fail"           # refuse (foreign name, impossible request); reported as failed
    HOLD = "hold"           # a previous attempt failed; wait for backoff or a new revision


@dataclass(frozen=True)
class SecretData:
    """A rollback's secret contents by target (and secret env values by key): the new container's,
    for the secrets whose stored file is the one the previous container was made from. Never
    printed (repr) nor stored."""

    by_target: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    # env values from SOPS files by key, for the keys whose file is the one the previous container
    # was made from (same digest)
    env: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class FieldChange:
    """One field-level difference between the applied spec and the desired one."""

    path: str               # "env.LOG_LEVEL", "ports", "image"
    old: Any
    new: Any

    def render(self) -> str:
        if self.path.startswith("env."):       # values may be secrets: names only
            if self.old is None:
                return f"{self.path}: added"
            if self.new is None:
                return f"{self.path}: removed"
            return f"{self.path}: changed"
        return f"{self.path}: {_show(self.old)} -> {_show(self.new)}"

    def to_json(self) -> dict[str, Any]:
        if self.path.startswith("env."):
            return {"path": self.path, "change": self.render().split(": ", 1)[1]}
        return {"path": self.path, "old": self.old, "new": self.new}


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    return repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Wait:
    """After a start: wait until healthy (healthcheck), running for `min_ready` seconds, or, for
    a job (`completion`), exited with code 0; on a cluster (`rollout`), after a create or update:
    until the engine's rollout converged. `image_health` (no healthcheck of its own): until
    healthy when the started container has a health status (the engine runs its image's
    HEALTHCHECK), else as without."""

    timeout: float
    healthcheck: bool
    min_ready: float = 0.0
    rollout: bool = False
    completion: bool = False
    image_health: bool = False


@dataclass(frozen=True)
class Action:
    """One step of a plan."""

    id: int
    kind: ActionKind
    resource: str                               # str(ResourceId): "container:web", "image:<ref>"
    cause: str
    depends_on: tuple[int, ...] = ()
    group: str = ""                             # "recreate:web": steps of one replacement
    target: str = ""                            # runtime name or id acted on
    new_name: str = ""                          # rename: the final name
    network: str = ""                           # connect, reconnect: the network
    spec: models.Container | models.Network | models.Volume | models.Image | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    image: str = ""                             # pull/create: image reference
    image_digest: str = ""                      # create: digest for the label ("" = read after pull)
    wait: Wait | None = None
    rollback: Mapping[str, Any] | None = None   # start: {"config": ..., "image_id": ..., "secrets": SecretData}
    #                                             or {"remove_only": True} (a cluster's update: none, the engine rolls back)
    changes: tuple[FieldChange, ...] = ()
    best_effort: bool = False
    # (reference, image id): a replacement whose one reason is its image's rebuild (or its pull
    # with the registry's digest unknown) in this pass, not made when the reference then names the
    # image the container runs (every step of its group has it)
    keep_if_image: tuple[str, str] | tuple[()] = ()

    @property
    def kind_name(self) -> tuple[str, str]:
        """The inventory key (kind, name) this action concerns."""
        rid = ResourceId.parse(self.resource)
        return rid.kind, rid.name

    def render(self) -> str:
        deps = ",".join(str(d) for d in self.depends_on)
        kind = str(self.kind)
        if self.target.endswith(TEMP_SUFFIX) and self.kind in (
            ActionKind.CREATE, ActionKind.START, ActionKind.RENAME,
        ):
            kind = f"{kind} {self.target}" + (f" -> {self.new_name}" if self.new_name else "")
        return f"[{deps}] -> #{self.id} {self.resource}, {kind}, {self.cause}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "kind": str(self.kind),
            "resource": self.resource,
            "cause": self.cause,
            "depends_on": list(self.depends_on),
        }
        if self.group:
            out["group"] = self.group
        if self.changes:
            out["changes"] = [c.to_json() for c in self.changes]
        return out


@dataclass(frozen=True)
class Plan:
    """Actions in topological order, plus notes (decisions that need no action)."""

    actions: tuple[Action, ...] = ()
    notes: tuple[str, ...] = ()
    revision: str = ""
    # corrections not made because the container's drift is only reported ("resource: cause");
    # the notes say so too
    drift: tuple[str, ...] = ()
    # containers that need no action but do not run as desired yet: a Swarm service whose copies
    # of its current spec do not all run (a rolling update unfinished, copies restarting), a
    # container in its restart backoff. The engine converges them by itself; `diff` is not in
    # sync while there are any (the notes say why, each)
    converging: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not self.actions

    def by_id(self) -> dict[int, Action]:
        return {a.id: a for a in self.actions}

    def render(self) -> str:
        """One line per action; field changes indented under it; notes last."""
        lines: list[str] = []
        for a in self.actions:
            lines.append(a.render())
            lines.extend(f"      {c.render()}" for c in a.changes)
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "revision": self.revision,
            "actions": [a.to_json() for a in self.actions],
            "notes": list(self.notes),
        }
        if self.drift:
            out["drift"] = list(self.drift)
        if self.converging:
            out["converging"] = list(self.converging)
        return out
