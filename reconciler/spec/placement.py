"""A single host's part of the manifests: the containers whose placement selects it.

    from reconciler.spec import placement
    here = placement.select(desired, {"role": "edge"})    # raises SpecError

One repository can serve a fleet of single-host agents: each host has labels (`--host-label
KEY=VALUE`, `labels:` in the agent config) and converges only the containers whose
`spec.placement` matches them (no placement: every host). A placement matches when the host
carries every one of its `labels`, and every constraint of the form `node.labels.KEY==VALUE`
(or `!=VALUE`) holds for the host's labels; `preferences` say how Swarm spreads copies and do not
select. A constraint on anything else (`node.role`, `node.hostname`, ...) only a Swarm manager
can judge: on a single host it is an error naming the field, not a guess.

An Image, Network or Volume follows the containers that use it: when every container that uses
it is placed elsewhere, it is elsewhere too; one that no container uses is every host's. What is
elsewhere is left out of the state (so a host prunes what it ran before a placement moved away)
and named in `DesiredState.elsewhere` with the reason, for diff and status to say it is not for
this host rather than missing. A container here that depends on one placed elsewhere is an
error: `dependsOn` waits on the same host.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from reconciler.spec import models
from reconciler.spec.errors import Problem, SpecError

__all__ = ["Unjudged", "parse_labels", "select", "why_not"]

_CONSTRAINT = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*(==|!=)\s*(.*?)\s*$")
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,62})$")


def parse_labels(items: Iterable[str]) -> dict[str, str]:
    """`KEY=VALUE` strings (the --host-label flags) as a mapping; ValueError names a bad one."""
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not _LABEL.match(key):
            raise ValueError(f"{item!r} is not KEY=VALUE (a key of letters, digits and ._/-), like role=edge")
        out[key] = value
    return out


class Unjudged(ValueError):
    """A constraint only a Swarm manager can judge."""

    def __init__(self, index: int, text: str) -> None:
        self.field = f"spec.placement.constraints[{index}]"
        super().__init__(f"{text!r}: a single host judges only node.labels.KEY==VALUE and node.labels.KEY!=VALUE; "
                         "use placement.labels, or apply it to a Swarm")


def why_not(p: models.Placement, host: Mapping[str, str]) -> str | None:
    """Why a host with labels `host` is not where `p` places a container; None when it is.
    Raises Unjudged for a constraint a single host cannot judge."""
    missing = [f"{k}={v}" for k, v in sorted(p.labels.items()) if host.get(k) != v]
    for i, text in enumerate(p.constraints):
        m = _CONSTRAINT.match(text)
        if m is None or not m.group(1).startswith("node.labels."):
            raise Unjudged(i, text)
        key, op, value = m.group(1).removeprefix("node.labels."), m.group(2), m.group(3)
        if (host.get(key) == value) != (op == "=="):
            missing.append(text)
    if not missing:
        return None
    have = ", ".join(f"{k}={v}" for k, v in sorted(host.items())) or "no labels"
    return f"placed on hosts with {', '.join(missing)}; this host has {have}"


def select(desired: models.DesiredState, host: Mapping[str, str]) -> models.DesiredState:
    """The part of `desired` a single host with labels `host` converges (module docstring)."""
    problems: list[Problem] = []
    here: dict[str, models.Container] = {}
    away: dict[str, str] = {}
    for name, c in desired.containers.items():
        try:
            why = why_not(c.placement, host)
        except Unjudged as exc:
            problems.append(_problem(c, exc.field, str(exc)))
            continue
        if why is None:
            here[name] = c
        else:
            away[name] = why
    for c in here.values():
        for i, dep in enumerate(c.depends_on):
            if dep in away:
                problems.append(_problem(c, f"spec.dependsOn[{i}]", f"{dep!r} is not placed on this host "
                                         f"({away[dep]}); dependsOn waits for a container on the same host"))
    if problems:
        raise SpecError(problems, hint="change the placement (or the dependsOn), or this host's labels")
    users = _users(desired.containers.values())
    elsewhere = {f"Container/{n}": why for n, why in sorted(away.items())}

    def keep(kind: str, names: Iterable[str]) -> set[str]:
        out = set()
        for n in names:
            using = users.get((kind, n), set())
            if using and not using & here.keys():
                elsewhere[f"{kind}/{n}"] = "used only by containers placed on other hosts: " + ", ".join(sorted(using))
            else:
                out.add(n)
        return out

    images = keep("Image", desired.images)
    networks = keep("Network", desired.networks)
    volumes = keep("Volume", desired.volumes)
    return desired.narrowed(        # an external Network or Volume is every host's: not judged here
        here, images=images, networks=networks | set(desired.external_networks),
        volumes=volumes | set(desired.external_volumes),
        elsewhere=MappingProxyType(dict(sorted(elsewhere.items()))),
    )


def _users(containers: Iterable[models.Container]) -> dict[tuple[str, str], set[str]]:
    """(kind, name) of each Image, Network and Volume object -> the containers that use it."""
    out: dict[tuple[str, str], set[str]] = {}
    for c in containers:
        used = [("Network", n) for n in c.networks] + [("Volume", v.source) for v in c.volumes if v.type == "volume"]
        if c.image_object:
            used.append(("Image", c.image_object))
        for key in used:
            out.setdefault(key, set()).add(c.name)
    return out


def _problem(c: models.Container, field_path: str, message: str) -> Problem:
    return Problem(file=c.origin.file, line=c.origin.line, column=c.origin.column, kind="Container", name=c.name,
                   field=field_path, message=message)
