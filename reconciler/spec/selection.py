"""Service selection: part of a revision, as `docker compose up -d web worker` starts part of a project.

    from reconciler.spec import selection
    part = selection.select(desired, models.Selection(("web",)), units, where="compose.yaml")

`reconcile apply SOURCE web worker` (and `--once`, `diff`, `validate`) converges only what the
names select, and `reconcile convert DIR web` prints its documents (`documents`, as `docker
compose config web`). The one rule of what a selection takes and what a pass over it answers for:

- a name is a compose service (its containers: `<project>-<service>-1`, its replicas, or its
  `container_name`), or, in reconciler's own manifests, a Container by its `metadata.name` (its
  replicas `<name>-N` with it); `spec.load` says which containers each name stands for (`units`);
- taken: the containers of the names and, unless `deps` is False (`--no-deps`), of everything
  they depend on (`dependsOn`, compose's `depends_on`, and the container whose network namespace
  one joins: `network_mode: service:`), transitively; and the Networks, Volumes and Images those
  containers use (declared, external or implicit). A name scaled to 0 runs no container, and
  takes what it depends on and uses all the same (`idle`: its Container as declared), as
  `docker compose up web` does with `scale: 0`. Nothing else is made, changed or started;
- an unknown name is a SpecError naming the file and the names there are (a compose project's
  names are checked where profiles are known, `compose.load`: a service a profile disables is
  enabled by naming it, with its profiles, as compose's `WithServicesEnabled`);
- pruned (`covers`): only the containers the manifests no longer list of a selected service
  (scaled down: its replica 3 of 2; scaled to 0: all of them, with no `--allow-empty`, since
  the name says the source declares it, as `docker compose up web` with `scale: 0` removes
  them): a compose service's by its labels, a Container's of the manifests by their names
  (`<name>-N`), and the anonymous volumes only those containers mount, as a pass over the whole
  revision prunes them. The rest of the revision, what it no longer lists, and every other
  Network and Volume the manifests no longer list are left exactly as they are, until a pass
  over the whole revision (the planner's one prune rule asks `covers`);
- the verdict (converged, exit code), the history row and a rollback are about the selection:
  `DesiredState.selection` records it (`models.Selection`), `state/history.py` keeps it.

Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, TypeVar

from reconciler._dataclass import dataclasses
from reconciler.spec import models
from reconciler.spec.errors import Problem, SpecError

__all__ = ["ANONYMOUS_LABEL", "COMPOSE_PROJECT", "COMPOSE_SERVICE", "covers", "documents", "from_json", "select", "to_json", "unknown"]

COMPOSE_PROJECT = "com.docker.compose.project"    # the labels compose puts on a service's containers
COMPOSE_SERVICE = "com.docker.compose.service"
ANONYMOUS_LABEL = "com.docker.volume.anonymous"   # what Docker and compose label an anonymous volume with
_JOIN = "container:"                              # a container joining another's network namespace
_Doc = TypeVar("_Doc", bound=Mapping[str, Any])


def unknown(names: Sequence[str], known: Sequence[str], *, what: str, where: str) -> list[Problem]:
    """A problem for each of `names` that is not one of `known` (`what`: "service", "Container"),
    at `where`, naming what there is: compose's `no such service: NAME`, with the project's."""
    from reconciler.spec import schemas

    there = ", ".join(sorted(known)) or "none"
    return [Problem(where, 0, 0, "", "", "",
                    f"no such {what}: {name!r}{schemas.did_you_mean(name, sorted(known))}; the {what}s here: {there}")
            for name in names if name not in known]


def select(desired: models.DesiredState, wanted: models.Selection, units: Mapping[str, Sequence[str]], *,
           where: str, what: str = "service", idle: Mapping[str, models.Container] = MappingProxyType({}),
           ) -> models.DesiredState:
    """The part of `desired` that `wanted` selects (the module's docstring), with
    `DesiredState.selection` saying what was taken. `units`: each name a command line may give
    -> the names of its containers in `desired`; `idle`: a unit of none (scaled to 0) -> its
    Container as declared, whose dependencies, Networks, Volumes and Images it takes all the
    same, as `docker compose up web` with `scale: 0` does; `where`: the file an unknown name is
    reported at. SpecError for an unknown name: nothing is selected then."""
    problems = unknown(wanted.services, list(units), what=what, where=where)
    if problems:
        raise SpecError(problems, hint=f"name {what}s of {where}, or leave the names out to converge all of it")
    unit_of = {c: u for u, cs in units.items() for c in cs}
    taken: set[str] = set()
    todo = list(wanted.services)
    while todo:
        u = todo.pop()
        if u in taken:
            continue
        taken.add(u)
        if not wanted.deps:
            continue
        for c in _models(desired, units, idle, u):
            todo += [unit_of[d] for d in _needs(c) if d in unit_of and unit_of[d] not in taken]
    names = sorted(c for u in taken for c in units[u])
    chosen = {n: desired.containers[n] for n in names}
    using = [c for u in taken for c in _models(desired, units, idle, u)]
    networks = {n for c in using for n in c.networks}
    volumes = {m.source for c in using for m in c.volumes if m.type == "volume" and m.source}
    images = {c.image_object for c in using if c.image_object}
    return desired.narrowed(
        chosen, images=images, networks=networks, volumes=volumes,
        selection=dataclasses.replace(wanted, units=tuple(sorted(taken)), containers=tuple(names),
                                      project=desired.project),
        whole=desired.whole or desired,
    )


def _models(desired: models.DesiredState, units: Mapping[str, Sequence[str]],
            idle: Mapping[str, models.Container], unit: str) -> list[models.Container]:
    """The containers of `unit`, or its Container as declared when it runs none."""
    return [desired.containers[c] for c in units[unit]] or ([idle[unit]] if unit in idle else [])


def _needs(c: models.Container) -> list[str]:
    """The containers `c` cannot run without: what it depends on, and the one whose network
    namespace it joins."""
    return [*c.depends_on, *(n.removeprefix(_JOIN) for n in c.networks if n.startswith(_JOIN))]


def covers(desired: models.DesiredState, kind: str, name: str, labels: Mapping[str, Any],
           users: Mapping[str, Mapping[str, Any]] = MappingProxyType({})) -> bool:
    """Whether a pass over `desired` answers for the inventory's object `kind`/`name` (its
    recorded `labels`; a Volume's `users`: the inventory's containers that mount it -> their
    labels), so may prune it when `desired` no longer lists it: every object without a
    selection; with one, of what the whole revision does not list, a container it took, one of
    a compose service it took (the project's and the service's labels) or a replica
    `<name>-N` of a Container of the manifests it took (a replica scaled away, to 0 too), and an
    anonymous volume (`com.docker.volume.anonymous`) only such containers mount; nothing else."""
    chosen = desired.selection
    if chosen is None:
        return True
    whole = desired.whole or desired
    if kind == "Volume":
        return ANONYMOUS_LABEL in labels and name not in whole.volumes and bool(users) \
            and all(covers(desired, "Container", u, of) for u, of in users.items())
    if kind != "Container":
        return False
    if name in chosen.containers:
        return True
    if name in whole.containers:
        return False
    if chosen.project:
        return labels.get(COMPOSE_PROJECT) == chosen.project and labels.get(COMPOSE_SERVICE) in chosen.units
    base, dash, number = name.rpartition("-")
    return bool(dash) and base in chosen.units and number.isascii() and number.isdecimal() \
        and not number.startswith("0")


def documents(desired: models.DesiredState, docs: Sequence[_Doc]) -> list[_Doc]:
    """Of the native documents `desired` was loaded from (`spec.convert`'s), those of what its
    selection took, as `docker compose config web` prints web and what it depends on: a
    Container a unit it took (a compose service's by its labels, its replicas or none with
    it), and the Images, Networks and Volumes (declared or external) those containers use. All
    of them without a selection."""
    chosen = desired.selection
    if chosen is None:
        return list(docs)
    used = {"Image": set(desired.images), "Network": {*desired.networks, *desired.external_networks},
            "Volume": {*desired.volumes, *desired.external_volumes}}
    out = []
    for doc in docs:
        meta = doc.get("metadata") or {}
        name, labels = meta.get("name"), meta.get("labels") or {}
        if doc.get("kind") == "Container":
            took = name in chosen.units or name in desired.containers or (
                bool(chosen.project) and labels.get(COMPOSE_PROJECT) == chosen.project
                and labels.get(COMPOSE_SERVICE) in chosen.units)
        else:
            took = name in used.get(str(doc.get("kind")), ())
        if took:
            out.append(doc)
    return out


def to_json(selection: models.Selection | None) -> str:
    """The selection as the history keeps it ("": none)."""
    if selection is None:
        return ""
    return json.dumps({"services": list(selection.services), "deps": selection.deps, "units": list(selection.units),
                       "containers": list(selection.containers), "project": selection.project}, sort_keys=True)


def from_json(text: str) -> models.Selection | None:
    """What `to_json` kept (None: no selection, or a record this version cannot read)."""
    if not text:
        return None
    try:
        doc = json.loads(text)
        return models.Selection(services=tuple(str(s) for s in doc["services"]), deps=bool(doc.get("deps", True)),
                                units=tuple(str(u) for u in doc.get("units", ())),
                                containers=tuple(str(c) for c in doc.get("containers", ())),
                                project=str(doc.get("project", "")))
    except (ValueError, KeyError, TypeError):
        return None
