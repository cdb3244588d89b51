"""plan(desired, observed, inventory, options) -> Plan: every decision of a pass, and why.

PURE: no I/O, no clock (the time is `options.now`), no runtime calls; the same inputs give the
same plan text. The rules are DESIGN §5:

- ownership: an object whose name is taken by something we do not own is a `fail` action,
  never touched; dependents of a failed action are skipped by the executor; so is a build or
  pull of a local tag the owner's policy does not let it move (`options.moves_refused`: the
  rule sharedTags, judged in spec/policy.py);
- identity: a container is the object its owner and name labels say, whatever the engine names
  it now (`observed.objects`): one container per object (`_copies`). The copy the engine names
  as the object is kept; else one renamed by hand, else a start-first replacement's leftover
  `<name>.next` (`leftovers`: its process killed after the old one's removal), is named back
  into place when the name is free and the runtime renames (else removed and the object made
  anew); every other copy (a second one, a leftover beside the old one) is stopped and removed
  before anything else is made (two copies would mount the same volumes);
- a state root answers only for what its inventory lists: an object that carries the owner's
  labels but is not in the inventory (made from another state root on a shared engine, or by
  one whose state was lost) is a `fail`, never replaced, started or pruned, unless the pass
  takes it over (`options.adopt`, `--adopt`); what a pass is about to make is in the inventory
  before it is made (`passes`: a pass killed mid-way has made nothing it does not answer for);
- recreate iff the spec hash (files' content included) or the resolved image digest changed,
  or a network it is attached to is recreated; as one group STOP → REMOVE → CREATE → START
  (stop-first) or CREATE(tmp) → START → STOP(old) → REMOVE(old) → RENAME (start-first, when
  the container publishes no host port and the runtime can rename); a container joining the
  network namespace of one that is replaced (`networks: [container:NAME]`) is replaced too,
  stopped and removed before it (Podman refuses to remove a joined container) and made again
  after it;
- networks: a matching container off one of its networks (not attached, attached without one of
  its aliases, or to a network of that name since removed: `observed.off_networks`) is connected
  again (`connect`, `reconnect`) where the runtime can in its status (`options.connects`), else
  replaced when it is to run;
- state: a matching running container is left alone (a paused one noted, not unpaused), a
  restarting one (a service whose copies of its current spec do not all run) is converging
  (`Plan.converging`: no action, not in sync either), a stopped one is started only if its
  restart policy says it should run;
- prune: inventory minus desired, only owned objects still carrying our labels, never to
  empty without `allow_empty` (a revision that declares nothing; a selection names what its
  source declares), named volumes only with `deletionPolicy: Delete`; of a selection of
  services (`desired.selection`: `reconcile apply SOURCE web`), only what it answers for
  (`spec/selection.py` `covers`: a selected service's containers scaled away, and the
  anonymous volumes only they mount);
  on a cluster, a pruned service that is the same compose service (project and service labels)
  as a desired one is that one under an older name (`_compose_renamed`): the cause of its removal
  and of the new one's creation (which waits for it, as for every pruned container) say so;
- a desired volume the engine reports it cannot mount (`ObservedVolume.problem`: the native
  engine's data directory deleted outside it) is a `fail` naming what to do, never made again
  (an empty one would hide the loss); what would mount it is skipped, a running container left;
- order: networks → volumes → images → containers by dependsOn; deletes in reverse;
- no loops: an object whose last attempt at the same (revision, spec hash) failed is held
  until its backoff expires; a container over the agent's flap limit is not started again;
- drift: in a pass over the revision applied last (a drift check), the corrections of a
  `drift: report` container are reported (`Plan.drift`), not made;
- a cluster (`options.cluster`: Swarm services) updates a changed service in place, as one
  `update` action, and scales it the same way; Swarm rolls it out and back. Its nodes pull:
  no image is pulled here, every service runs its image pinned by the registry digest resolved
  for this pass. Every create and update waits for the rollout. For a single-host engine the
  loader has made `replicas: N` into N containers (spec.load's `cluster`); one that reaches the
  planner unexpanded is refused.

`_Planner` works in phases, one method each, in the order the actions are numbered: inputs →
prune containers → copies (one container per object, named back or removed) → networks and volumes →
images → containers → ordering (what waits for what, what is held back) → prune networks and volumes. The maps one phase fills and a later one reads
are its documented fields. Rules shared with other parts live in their one home:
`reconciler.restarting` (should a stopped container run), `planning/implied.py` (tracked image
tags, implicit volumes, ownership labels).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from reconciler import restarting
from reconciler._dataclass import dataclass, field, replace
from reconciler.planning import actions, implied
from reconciler.spec import hashing, models, selection
from reconciler.spec.ids import ResourceId
from reconciler.state import inventory as inv
from reconciler.state import labels as labelmod
from reconciler.state import observed as obs

__all__ = ["PlanOptions", "current", "field_changes", "leftover_why", "leftovers", "plan"]

Kind = actions.ActionKind
_SPECIAL_NETWORKS = obs.SPECIAL_NETWORKS


@dataclass(frozen=True)
class PlanOptions:
    """Knobs of one pass."""

    owner: str = "default"          # value of the reconciler.owner label we act on
    allow_empty: bool = False       # let an empty revision prune everything
    prune: bool = True              # prune at all (False: report only)
    now: float = 0.0                # wall-clock seconds, for failure backoff (pure: passed in)
    can_rename: bool = False        # the runtime can rename containers (start-first needs it)
    # Images with build: whose build is due (ref -> cause) and push targets not up to date
    # (ref -> targets), as the runtime judged them (`build_due`); None: it cannot build.
    builds: Mapping[str, tuple[str | None, tuple[str, ...]]] | None = None
    # The moves of local tags the owner's policy refuses (rule sharedTags: a tag another owner
    # runs or moved), by (the reference as the manifests name it, "build" | "pull") -> why, as
    # spec/policy.py `refuse_tag` judged them for the pass (execution/observing.py `moves_refused`):
    # a build or pull of one that would run is a `fail` instead.
    moves_refused: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # The agent's inputs. The revision its previous pass applied ("" none): a pass over the same
    # revision is a drift check, where the corrections of `drift: report` containers are
    # reported (Plan.drift), not made, nor anything that waits for them.
    applied_revision: str = ""
    # Containers over the flap limit: a start outside a recreate is left out (and noted), with
    # everything that waits for it.
    flapping: frozenset[str] = frozenset()
    cluster: bool = False           # the runtime is a cluster of services (runtime.base.ServiceEngine)
    rollout_timeout: float = 300.0  # seconds a cluster's rollout of one service may take
    engine: str = ""                # the runtime's name (native, docker, podman, swarm, fake): what a hint names
    # the container statuses in which the runtime connects a container to a network
    # (runtime.base.Connecting); a container off one of its networks in another status is
    # replaced (when it is to run), and on a runtime that connects in none, always
    connects: frozenset[str] = frozenset()
    # take over the desired objects that carry the owner's labels but are not in this state root's
    # inventory (`--adopt`: a root whose state was lost, a temporary root), instead of refusing them
    adopt: bool = False
    # on a cluster, each desired container's service settings as the engine makes them
    # (`ServiceEngine.service_settings`: its labels, rolling update and rollback, endpoint mode,
    # restart timing), by name: a service whose own differ is updated in place
    service_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass
class _Node:
    """An action of the plan while it is ordered: its key, kind, resource and cause."""

    key: str
    kind: actions.ActionKind
    resource: str
    cause: str
    deps: list[str]
    extra: dict[str, Any] = field(default_factory=dict)


class _Builder:
    def __init__(self) -> None:
        self.nodes: dict[str, _Node] = {}
        self.order: list[str] = []
        self.notes: list[str] = []
        self.converging: list[str] = []     # resources (Plan.converging)

    def add(
        self, key: str, kind: actions.ActionKind, resource: str, cause: str,
        deps: list[str] | tuple[str, ...] = (), **extra: Any,
    ) -> str:
        self.nodes[key] = _Node(key, kind, resource, cause, [d for d in deps if d], extra)
        self.order.append(key)
        return key

    def drop(self, keys: set[str]) -> None:
        """Leave these actions out of the plan."""
        self.order = [k for k in self.order if k not in keys]
        for k in keys:
            del self.nodes[k]

    def build(self, revision: str, drift: tuple[str, ...] = ()) -> actions.Plan:
        index = {k: i for i, k in enumerate(self.order)}
        indegree = {k: 0 for k in self.order}
        children: dict[str, list[str]] = {k: [] for k in self.order}
        for k in self.order:
            for d in dict.fromkeys(self.nodes[k].deps):
                if d in self.nodes:
                    indegree[k] += 1
                    children[d].append(k)
        ready = [(index[k], k) for k in self.order if indegree[k] == 0]
        heapq.heapify(ready)
        ids: dict[str, int] = {}
        out: list[actions.Action] = []
        while ready:
            _, k = heapq.heappop(ready)
            ids[k] = len(ids) + 1
            n = self.nodes[k]
            deps = tuple(sorted({ids[d] for d in n.deps if d in ids}))
            out.append(actions.Action(id=ids[k], kind=n.kind, resource=n.resource, cause=n.cause,
                                      depends_on=deps, **n.extra))
            for c in children[k]:
                indegree[c] -= 1
                if indegree[c] == 0:
                    heapq.heappush(ready, (index[c], c))
        if len(out) != len(self.order):   # pragma: no cover - dependsOn cycles are spec errors
            raise ValueError("plan has a dependency cycle")
        return actions.Plan(actions=tuple(out), notes=tuple(self.notes), revision=revision, drift=drift,
                            converging=tuple(self.converging))


COMPOSE_PROJECT = selection.COMPOSE_PROJECT      # the label compose puts on a project's objects
COMPOSE_SERVICE = selection.COMPOSE_SERVICE      # and on a service's containers

REBUILT = "image rebuilt"          # a replacement's reason: its image is built in this pass
# a replacement's reason: its image is pulled in this pass (pull: always) and its registry digest
# was not resolved, so whether the tag moved is known only after the pull
REPULLED = "image pulled (registry digest not resolved)"

def _short(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}" if hexpart else digest[:19]


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _diff(path: str, old: Any, new: Any, out: list[actions.FieldChange]) -> None:
    if old == new:
        return
    if isinstance(old, Mapping) and isinstance(new, Mapping) and path in {"env", "labels", ""}:
        for k in sorted(set(old) | set(new)):
            _diff(f"{path}.{k}" if path else str(k), old.get(k), new.get(k), out)
        return
    if isinstance(old, Mapping) and isinstance(new, Mapping) and path in {
        "restart", "healthcheck", "resources", "update",
    }:
        for k in sorted(set(old) | set(new)):
            _diff(f"{path}.{k}", old.get(k), new.get(k), out)
        return
    out.append(actions.FieldChange(path, old, new))


def field_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[actions.FieldChange, ...]:
    """Field-level differences between two spec documents (env values are masked on render)."""
    out: list[actions.FieldChange] = []
    _diff("", dict(old), dict(new), out)
    return tuple(out)


def _unchanged_secrets(config: Mapping[str, Any], c: models.Container) -> actions.SecretData:
    """The contents a rollback to `config` can have again: a record keeps no secret's content
    (nor a SOPS env value), but where the previous container's secret came from the file `c`
    reads now (the same digest at the same target; for env, the same key), it is this content."""
    now = {s.target: s for s in c.secrets}
    out: dict[str, bytes] = {}
    for m in config.get("mounts") or ():
        if m.get("type") != "secret" or m.get("target") not in now:
            continue
        digest = next((o.partition("=")[2] for o in m.get("options") or () if o.startswith("digest=")), "")
        if digest and digest == now[m["target"]].digest:
            out[m["target"]] = now[m["target"]].data
    old_env = config.get("secret_env") or {}
    env = {k: c.env[k] for k, digest in old_env.items() if c.secret_env.get(k) == digest and k in c.env}
    return actions.SecretData(out, env)


def _owned(owner: labelmod.Ownership | None, options: PlanOptions) -> bool:
    return owner is not None and owner.owner == options.owner


def _stranger(what: str, owner: labelmod.Ownership | None, *, foreign_hint: str = "") -> str:
    """Why an object of another owner (or of none) is left alone; `foreign_hint`: added when it
    has no owner at all."""
    who = "a foreign " + what + " (no reconciler.owner label)" if owner is None else (
        f"a {what} of owner {owner.owner!r}")
    return f"name taken by {who}; left untouched: rename or remove it by hand{foreign_hint if owner is None else ''}"


def _another_root(what: str, owner: str) -> str:
    """Why an object of our owner that this state root's inventory does not list is left alone."""
    return (f"carries the labels of owner {owner!r}, but this state root's inventory does not list it: made from "
            f"another state root on this engine (or from one whose state was lost); left untouched: apply from "
            f"the state root that made it, give these manifests an --owner of their own, or take the {what} "
            "over with --adopt")


# a volume moved from another host with `volume import` before the manifests made it
_KEEP_VOLUME_DATA = (" (to use it with its data as it is: declare it external, `external: true` in its Volume "
                     "manifest or its compose `volumes:` entry: used, never changed or pruned; on the native engine, "
                     "to have the manifests own it: `reconcile volume export` it, `volume rm` it, apply, then "
                     "`volume import` into the empty volume the manifests made, which keeps their labels)")


def _held(
    kind: str, name: str, spec_hash: str, revision: str,
    inventory: inv.Inventory, options: PlanOptions,
) -> str | None:
    """The hold cause if the same (revision, hash) failed and its backoff has not expired."""
    failure = inventory.failures.get((kind, name))
    if failure is None or failure.revision != revision or failure.spec_hash != spec_hash:
        return None
    if options.now >= failure.retry_at:
        return None
    return (f"previous attempt failed ({failure.attempts}x: {failure.error or 'error'}); "
            f"retry after {_when(failure.retry_at)} or with a new revision")


def _leftover(name: str, o: obs.ObservedContainer) -> bool:
    """Whether `o`, a copy of the object `name` (`observed.objects`), is what a start-first
    replacement of it left under `<name>.next` (`actions.TEMP_SUFFIX`)."""
    return o.name == name + actions.TEMP_SUFFIX


def _leftover_cause(name: str) -> str:
    return f"left by an interrupted start-first replacement of {name}"


def _by_object(containers: Mapping[str, obs.ObservedContainer],
               owner: str | None) -> Iterator[tuple[str, tuple[obs.ObservedContainer, ...]]]:
    """`observed.objects` of `owner` (None: of each owner of `containers`, one owner's already)."""
    owners = [owner] if owner is not None else sorted({o.owner.owner for o in containers.values() if o.owner})
    for own in owners:
        yield from sorted(obs.objects(containers.values(), own).items())


def leftovers(containers: Mapping[str, obs.ObservedContainer], owner: str | None = None) -> dict[str, str]:
    """The containers a start-first replacement left behind when its process died (killed
    between its new container's create and its rename into place), by their name
    (`<name>.next`, `actions.TEMP_SUFFIX`) -> `<name>`: the copies of the object `<name>` of
    `owner` (`observed.objects`: its owner and name labels, the ones that replacement gave
    them; None: whoever owns the containers given, one owner's already) named so. A container
    a manifest names `x.next` is labelled so, and not one. The one rule for the planner
    (`_copies`), a pass's verdict (`passes.unready`) and `reconcile status`."""
    return {o.name: name for name, copies in _by_object(containers, owner) for o in copies if _leftover(name, o)}


def current(containers: Mapping[str, obs.ObservedContainer], owner: str | None = None) -> dict[str, obs.ObservedContainer]:
    """Each object's container as a pass's verdict (`passes.unready`) and `reconcile status`
    judge it, by object name: the copy the engine names as the object, else one renamed by
    hand (the next pass names it back: `_copies`); a leftover `<name>.next` is not (yet) the
    object's container (`leftovers`). `owner` as for `leftovers`."""
    out: dict[str, obs.ObservedContainer] = {}
    for name, copies in _by_object(containers, owner):
        kept = next((o for o in copies if not _leftover(name, o)), None)
        if kept is not None:
            out.setdefault(name, kept)
    return out


def leftover_why(name: str) -> str:
    """What `reconcile status` and a pass's verdict say of a leftover of `name`'s replacement."""
    return (f"left by a start-first replacement of {name} that did not finish (its process killed?): "
            f"the next pass renames it to {name} if {name} is gone, else removes it")


def _topo_containers(containers: Mapping[str, models.Container]) -> list[str]:
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(n: str) -> None:
        if state.get(n) == 2 or n not in containers:
            return
        if state.get(n) == 1:       # cycle: the loader rejects these; stay total anyway
            return
        state[n] = 1
        for d in sorted(containers[n].depends_on):
            visit(d)
        state[n] = 2
        order.append(n)

    for name in sorted(containers):
        visit(name)
    return order


def plan(
    desired: models.DesiredState,
    observed: obs.ObservedState,
    inventory: inv.Inventory,
    options: PlanOptions,
) -> actions.Plan:
    """The actions that take `observed` to `desired`, each with its cause."""
    return _Planner(desired, observed, inventory, options).plan()


def _pinned(ref: str, digest: str) -> str:
    """`ref` pinned to `digest` (`name:tag@sha256:...`, as the docker CLI pins a service's image)."""
    return ref if obs.is_pinned(ref) or not digest else f"{ref}@{digest}"


def _wait(c: models.Container) -> actions.Wait | None:
    """What a start of `c` waits for: a job's exit 0, healthy (a healthcheck), else running for
    minReady. Without a healthcheck of its own, or one without test (the image's test with its
    timings), its image's counts: healthy if the started container has a health status
    (`image_health`; the plan cannot know, the image may be pulled by it); `test: [NONE]` turns
    the image's off."""
    timeout = c.update.health_timeout
    if c.job:
        return actions.Wait(timeout=timeout, healthcheck=False, completion=True)
    if c.healthcheck is not None and c.healthcheck.test and c.healthcheck.test[0] != "NONE":
        return actions.Wait(timeout=timeout, healthcheck=True)
    if c.healthcheck is None or not c.healthcheck.test:
        return actions.Wait(timeout=timeout, healthcheck=False, min_ready=c.update.min_ready, image_health=True)
    if c.update.min_ready > 0:
        return actions.Wait(timeout=timeout, healthcheck=False, min_ready=c.update.min_ready)
    return None


@dataclass
class _Planner:
    """One plan, phase by phase (see the module's docstring). Each phase adds its actions to
    `b` and fills the maps below; the values are the keys of actions in `b`."""

    desired: models.DesiredState
    observed: obs.ObservedState
    inventory: inv.Inventory
    options: PlanOptions
    b: _Builder = field(default_factory=_Builder)
    # inputs: inventory keys no longer desired (Images aside), sorted; whether prune runs, or
    # is refused (an empty revision); whether this pass is a drift check
    garbage: list[tuple[str, str]] = field(default_factory=list)
    prune: bool = False
    prune_refused: bool = False
    drift_check: bool = False
    # prune containers → every new container waits for these removals (a pruned container may
    # hold a host port or an address), and so does a recreated network
    container_removals: list[str] = field(default_factory=list)
    # prune containers → containers: on a cluster, the service a compose service was made as
    # under an older name (`<project>-<service>-1`), by the name it has now (`<project>_<service>`)
    renamed: dict[str, str] = field(default_factory=dict)
    # networks and volumes → containers
    net_ready: dict[str, str] = field(default_factory=dict)     # name → action that makes it usable
    net_recreated: set[str] = field(default_factory=set)        # removed and made again here
    recreated: set[str] = field(default_factory=set)            # containers replaced here
    removals_for_net: dict[str, list[str]] = field(default_factory=dict)  # recreated → container removals
    vol_ready: dict[str, str] = field(default_factory=dict)     # name → its ensure (or fail)
    # images → containers
    img_ready: dict[str, str] = field(default_factory=dict)     # ref → its pull or build (or fail)
    want_digest: dict[str, str] = field(default_factory=dict)   # ref → digest containers should run
    rebuilt: set[str] = field(default_factory=set)              # built here: digest known only after
    repulled: set[str] = field(default_factory=set)             # pulled here, digest unknown: likewise
    # inputs → every phase: the owner's containers by the object they are (`observed.objects`)
    objects: dict[str, tuple[obs.ObservedContainer, ...]] = field(default_factory=dict)
    # containers → dependents (dependsOn) and ordering
    ready: dict[str, str] = field(default_factory=dict)         # name → action after which it runs
    held_back: set[str] = field(default_factory=set)            # left out with their dependents
    drift: set[str] = field(default_factory=set)                # "resource: cause" reported, not made
    # copies → containers: an object's container named back into place (renamed by hand, or a
    # leftover `<name>.next`), by `<name>`: (the rename's key, the container as observed under
    # its name); the copies left under other names where the name is taken (or on a cluster)
    adopted: dict[str, tuple[str, obs.ObservedContainer]] = field(default_factory=dict)
    left_alone: dict[str, tuple[obs.ObservedContainer, ...]] = field(default_factory=dict)

    def plan(self) -> actions.Plan:
        self._inputs()
        self._prune_containers()
        self._copies()
        self._networks()
        self._volumes()
        self._images()
        self._containers()
        self._ordering()
        self._prune_networks_and_volumes()
        return self.b.build(self.desired.revision, tuple(sorted(self.drift)))

    # -- inputs ------------------------------------------------------------------------------

    def _inputs(self) -> None:
        """The prune set (the caller loaded a fully valid revision: only then is prune safe): what
        the inventory lists and the revision does not want, of what a pass over a selection of its
        services answers for (`selection.covers`: every object without one)."""
        d, opts = self.desired, self.options
        wanted = implied.keys(d)
        entries = self.inventory.entries
        users: dict[str, dict[str, Any]] = {}       # a volume -> the inventory's containers that mount it
        if d.selection is not None:
            for (kind, name), e in entries.items():
                spec = (e.spec or {}) if kind == "Container" else {}
                for m in spec.get("volumes") or ():
                    if m.get("type") == "volume" and m.get("source"):
                        users.setdefault(m["source"], {})[name] = spec.get("labels") or {}
        self.garbage = sorted(k for k, e in entries.items() if k not in wanted and k[0] != "Image"
                              and selection.covers(d, k[0], k[1], (e.spec or {}).get("labels") or {},
                                                   users.get(k[1], {}) if k[0] == "Volume" else {}))
        # a source that declares nothing prunes nothing without allow_empty; a selection names what
        # the source declares (a service scaled to 0 is removed, as `docker compose up web` does)
        empty = d.selection is None and not (d.containers or d.networks or d.volumes or d.images)
        self.prune_refused = bool(opts.prune and empty and self.garbage and not opts.allow_empty)
        self.prune = opts.prune and not self.prune_refused
        self.drift_check = bool(opts.applied_revision) and opts.applied_revision == d.revision
        self.objects = obs.objects(self.observed.containers.values(), opts.owner)

    def _answers_for(self, kind: str, name: str) -> bool:
        """Whether this state root converges the object of the owner's labels `kind`/`name`: its
        inventory lists it, or the pass takes it over (`adopt`, noted)."""
        if (kind, name) in self.inventory.entries:
            return True
        if self.options.adopt:
            self.b.notes.append(f"{ResourceId(kind, name)}: not in this state root's inventory: taken over (--adopt)")
        return self.options.adopt

    def _another_project(self, kind: str, name: str) -> str:
        """Why an owned object the revision no longer declares is left alone: it was made for
        another compose project than the revision's ('' when not: a prune removes it). Compose
        never touches another project's objects, and two projects applied under one owner
        (`reconcile apply projA`, then `projB`) would otherwise prune each other."""
        mine = self.desired.project
        entry = self.inventory.entries.get((kind, name))
        theirs = str(((entry.spec or {}).get("labels") or {}).get(COMPOSE_PROJECT, "")) if entry and mine else ""
        if not theirs or theirs == mine:
            return ""
        return (f"compose project {theirs}'s, not {mine}'s: left untouched, as compose leaves another project's "
                f"(apply each compose project with its own --owner, e.g. --owner {mine})")

    def _labels(self, kind: str, name: str, obj: models.Container | models.Network | models.Volume | None,
                digest: str = "") -> dict[str, str]:
        return implied.labels(owner=self.options.owner, revision=self.desired.revision, kind=kind,
                              name=name, obj=obj, image_digest=digest)

    def _held(self, kind: str, name: str, spec_hash: str) -> str | None:
        return _held(kind, name, spec_hash, self.desired.revision, self.inventory, self.options)

    # -- prune (containers first, the rest after the containers went) ------------------------

    def _prune_containers(self) -> None:
        rev, b = self.desired.revision, self.b
        if self.prune_refused:
            b.add(f"refuse-prune:{rev}", Kind.FAIL, str(ResourceId("Revision", rev[:12])),
                  f"the revision declares nothing: refusing to prune {len(self.garbage)} objects "
                  "(pass --allow-empty to remove everything)")
        if not self.prune:
            return
        for kind, name in self.garbage:
            if kind != "Container":
                continue
            res = str(ResourceId.container(name))
            copies = self.objects.get(name, ())
            kept = [o for o in copies if not _leftover(name, o)]
            others = self._another_project(kind, name)
            if others:
                b.add(f"forget:{res}", Kind.FORGET, res, others)
                continue
            if not kept and name not in self.observed.containers:
                b.add(f"forget:{res}", Kind.FORGET, res, "not in desired state; already gone")
            elif not kept:
                b.add(f"forget:{res}", Kind.FORGET, res,
                      "not in desired state; the container now there is not ours: left untouched")
            now = self._compose_renamed(name) if kept else ""
            if now:
                self.renamed[now] = name
            for o in kept:
                self._remove(res, o, f"renamed to {now} ({_RENAMED}): removed, then made anew" if now else "not in desired state (prune" +
                             (f"; renamed to {o.name} outside reconcile)" if o.name != name else ")"))
            for o in copies:
                if _leftover(name, o):          # before its network goes (it keeps it in use)
                    self._remove(str(ResourceId.container(o.name)), o, _leftover_cause(name))

    def _compose_renamed(self, name: str) -> str:
        """On a cluster, the desired Container that is the same compose service (project and
        service labels) as the inventory's Container `name`, which the revision no longer
        declares: a service an older reconciler named `<project>-<service>-1` (or
        `<project>-<service>` with replicas), now `<project>_<service>` as docker stack deploy
        names it. "" when none (or not a cluster)."""
        entry = self.inventory.entries.get(("Container", name))
        labels = (entry.spec or {}).get("labels") or {} if entry is not None and self.options.cluster else {}
        key = (labels.get(COMPOSE_PROJECT), labels.get(COMPOSE_SERVICE))
        if not key[0] or not key[1]:
            return ""
        return next((c.name for c in self.desired.containers.values()
                     if (c.labels.get(COMPOSE_PROJECT), c.labels.get(COMPOSE_SERVICE)) == key), "")

    def _remove(self, res: str, o: obs.ObservedContainer, cause: str) -> None:
        """Stop (if it runs) and remove the container `o` (of the object of `res`, or, a second
        copy of one, `res` its own name); every new container waits for it (it may hold a host
        port or an address)."""
        key = f"{res}@{o.id}"
        dep: list[str] = []
        if o.status in {"running", "restarting"}:
            dep = [self.b.add(f"stop:{key}", Kind.STOP, res, cause, target=o.id, spec=None)]
        self.container_removals.append(self.b.add(f"remove:{key}", Kind.REMOVE, res, cause, dep, target=o.id))

    def _copies(self) -> None:
        """One container per object (`observed.objects`): of a desired container's copies, the
        one the engine names as it is kept; else its container renamed by hand, else what a
        start-first replacement left under `<name>.next` when its process died (`leftovers`:
        killed after the old container's removal, it had passed its start's wait) is named back
        into place where the runtime renames and the name is free, and every later rule takes
        it for `<name>`'s container (`adopted`: a spec changed since replaces it as usual; the
        rename of one that runs the desired spec carries it, so the inventory records the
        config it runs). Every other copy (a second copy beside it, a leftover beside the old
        one, all of them where the runtime cannot rename: the object is made anew) is stopped
        and removed before any container is made or network removed: two copies would mount
        the same volumes and hold a host port, an address, a network. Where its name is taken
        by another container (or a service, which Swarm cannot rename) its renamed copies are
        left alone (`left_alone`: `_container` fails, naming them); a leftover goes anyway."""
        b, opts = self.b, self.options
        for name in sorted(self.desired.containers):
            c, copies = self.desired.containers[name], self.objects.get(name, ())
            if not copies or (("Container", name) not in self.inventory.entries and not opts.adopt):
                continue                # (another state root's: refused with the object, `_container`)
            at_name = self.observed.containers.get(name)
            kept = next((o for o in copies if o.name == name), None)
            if kept is None and (at_name is not None or opts.cluster):
                self.left_alone[name] = tuple(o for o in copies if not _leftover(name, o))
            elif kept is None and opts.can_rename:
                kept = next((o for o in copies if not _leftover(name, o)), copies[0])
                res = str(ResourceId.container(name))
                why = (f"{_leftover_cause(name)}: its new container, renamed into place" if _leftover(name, kept)
                       else f"renamed to {kept.name} outside reconcile: named back")
                fields: dict[str, Any] = {}
                if kept.owner is not None and kept.owner.spec_hash == c.spec_hash:   # what the inventory records
                    digest = kept.owner.image_digest
                    fields = {"spec": c, "labels": self._labels("Container", name, c, digest), "image": c.image,
                              "image_digest": digest}
                key = b.add(f"adopt:{res}", Kind.RENAME, res, why, target=kept.name, new_name=name, **fields)
                self.adopted[name] = (key, replace(kept, name=name))
            for o in copies:
                if o is kept or o in self.left_alone.get(name, ()):
                    continue
                cause = (_leftover_cause(name) if _leftover(name, o) else
                         f"a second copy of {ResourceId.container(name)} (its labels): one container per object, "
                         f"{kept.name} is kept" if kept is not None else
                         f"renamed to {o.name} outside reconcile; the runtime cannot rename it back: made anew")
                self._remove(str(ResourceId.container(o.name)), o, cause)

    def _prune_networks_and_volumes(self) -> None:
        b, opts = self.b, self.options
        external = {("Network", n) for n in self.desired.external_networks} | \
            {("Volume", n) for n in self.desired.external_volumes}
        for kind, name in self.garbage if self.prune else []:
            entry = self.inventory.entries[(kind, name)]
            others = self._another_project(kind, name)
            if others:
                b.add(f"forget:{ResourceId(kind, name)}", Kind.FORGET, str(ResourceId(kind, name)), others)
            elif (kind, name) in external:
                b.add(f"forget:{ResourceId(kind, name)}", Kind.FORGET, str(ResourceId(kind, name)),
                      "declared external now: no longer managed, left in place", self.container_removals)
            elif kind == "Network":
                res = str(ResourceId.network(name))
                o_n = self.observed.networks.get(name)
                if o_n is None or not _owned(o_n.owner, opts):
                    b.add(f"forget:{res}", Kind.FORGET, res, "not in desired state; already gone"
                          if o_n is None else "not in desired state; not ours any more: left untouched")
                else:
                    b.add(f"prune:{res}", Kind.REMOVE_NETWORK, res, "not in desired state (prune)",
                          self.container_removals, target=name)
            elif kind == "Volume":
                res = str(ResourceId.volume(name))
                o_v = self.observed.volumes.get(name)
                if o_v is None:
                    b.add(f"forget:{res}", Kind.FORGET, res, "not in desired state; already gone")
                elif entry.deletion_policy == "Delete" and _owned(o_v.owner, opts):
                    b.add(f"prune:{res}", Kind.REMOVE_VOLUME, res, "not in desired state; deletionPolicy Delete",
                          self.container_removals, target=name)
                else:
                    b.add(f"forget:{res}", Kind.FORGET, res,
                          "not in desired state; data kept (deletionPolicy Retain): "
                          "no longer tracked, remove it by hand if unwanted")
        for name, copies in sorted(self.objects.items()):
            if name not in self.desired.containers and ("Container", name) not in self.inventory.entries:
                named = ", ".join(o.name for o in copies if o.name != name)
                b.notes.append(f"{ResourceId.container(name)}{f' (named {named})' if named else ''} carries our owner "
                               "label but is not in this state root's inventory: left untouched (made from another "
                               "state root on this engine, or by one whose state was lost; remove it by hand if "
                               "unwanted)")

    # -- networks and volumes ----------------------------------------------------------------

    def _networks(self) -> None:
        for name in sorted(self.desired.networks):
            net = self.desired.networks[name]
            res = str(ResourceId.network(name))
            on = self.observed.networks.get(name)
            labels = self._labels("Network", name, net)
            if on is None:
                self.net_ready[name] = self.b.add(f"ensure:{res}", Kind.ENSURE_NETWORK, res, "not found",
                                                  spec=net, labels=labels, target=name)
            elif not _owned(on.owner, self.options):
                self.net_ready[name] = self.b.add(f"fail:{res}", Kind.FAIL, res, _stranger("network", on.owner))
            elif not self._answers_for("Network", name):
                self.net_ready[name] = self.b.add(f"fail:{res}", Kind.FAIL, res,
                                                  _another_root("network", self.options.owner))
            elif on.owner is not None and on.owner.spec_hash != net.spec_hash:
                if unselected := self._unselected_on(name):
                    # recreating it needs every container on it gone, and a selection of services
                    # replaces only its own: refused before anything stops (they keep running)
                    self.net_ready[name] = self.b.add(
                        f"fail:{res}", Kind.FAIL, res,
                        f"changed, and recreating it would need containers of services not selected off it "
                        f"({', '.join(unselected)}): apply the whole project, or name their services too")
                else:
                    self._recreate_network(net, labels)
        for name in self.desired.external_networks:
            if name not in self.observed.networks:
                self.net_ready[name] = self._missing_external("network", name)

    def _unselected_on(self, network: str) -> list[str]:
        """The containers on `network` that a pass over a selection of services does not
        replace (none without a selection: the whole revision answers for the network)."""
        if self.desired.selection is None:
            return []
        return sorted(n for n, o in self.observed.containers.items()
                      if n not in self.desired.containers and network in (o.networks or {}))

    def _missing_external(self, kind: str, name: str) -> str:
        res = str(ResourceId(kind.title(), name))
        return self.b.add(f"fail:{res}", Kind.FAIL, res, f"external {kind} {name} does not exist: create it "
                          f"({_create_hint(kind, name, self.options.engine)}) and converge again")

    def _recreate_network(self, net: models.Network, labels: dict[str, str]) -> None:
        name, res = net.name, str(ResourceId.network(net.name))
        entry = self.inventory.entries.get(("Network", name))
        changes = field_changes(entry.spec, inv.spec_document(net)) if entry else ()
        what = ", ".join(sorted({c.path.split(".")[0] for c in changes} - hashing.COMMON_EXCLUDED)) or "spec"
        self.net_recreated.add(name)
        self.removals_for_net[name] = []
        rm = self.b.add(f"remove:{res}", Kind.REMOVE_NETWORK, res, f"spec hash changed: {what}",
                        target=name, group=f"recreate:{res}", changes=changes)
        self.net_ready[name] = self.b.add(f"ensure:{res}", Kind.ENSURE_NETWORK, res, f"spec hash changed: {what}",
                                          [rm], spec=net, labels=labels, target=name, group=f"recreate:{res}")

    def _volumes(self) -> None:
        """Declared volumes, then implicit ones (mounted, not declared)."""
        for name, v in implied.volumes(self.desired).items():
            res = str(ResourceId.volume(name))
            ov = self.observed.volumes.get(name)
            if ov is None:
                self.vol_ready[name] = self.b.add(
                    f"ensure:{res}", Kind.ENSURE_VOLUME, res, "not found" if v else "not found (mounted, not declared)",
                    spec=v, labels=self._labels("Volume", name, v), target=name)
            elif not _owned(ov.owner, self.options):
                self.vol_ready[name] = self.b.add(f"fail:{res}", Kind.FAIL, res, _stranger("volume", ov.owner,
                                                                                     foreign_hint=_KEEP_VOLUME_DATA))
            elif not self._answers_for("Volume", name):
                self.vol_ready[name] = self.b.add(f"fail:{res}", Kind.FAIL, res,
                                                  _another_root("volume", self.options.owner))
            elif ov.problem is not None:
                self.vol_ready[name] = self._broken_volume(ov)
        for name in self.desired.external_volumes:
            ov = self.observed.volumes.get(name)
            if ov is None:
                self.vol_ready[name] = self._missing_external("volume", name)
            elif ov.problem is not None:
                self.vol_ready[name] = self._broken_volume(ov)

    def _broken_volume(self, ov: obs.ObservedVolume) -> str:
        """A desired volume the engine has but cannot mount (its data gone): refused, naming what
        to do, never made again (an empty one would hide the loss); what mounts it waits."""
        res = str(ResourceId.volume(ov.name))
        return self.b.add(f"fail:{res}", Kind.FAIL, res, f"{ov.problem}: {ov.hint}" if ov.hint else str(ov.problem))

    # -- images ------------------------------------------------------------------------------

    def _images(self) -> None:
        """Images containers use, then images with build: no container uses (built all the same)."""
        used = {c.image for c in self.desired.containers.values()}
        for ref in sorted(used):
            self._image(ref)
        for name in sorted(self.desired.images):
            img = self.desired.images[name]
            if img.build is not None and img.ref and img.ref not in used:
                self._build(img, self.observed.local_digest(img.ref))

    def _image(self, ref: str) -> None:
        # one that names an Image object first: its policy and build are the reference's (a
        # container naming the tag as a plain string, sorted first by name, skipped the build)
        users = sorted((c for c in self.desired.containers.values() if c.image == ref),
                       key=lambda c: c.image_object is None)
        pol = implied.image_policy(users[0], self.desired)
        res = str(ResourceId.image(ref))
        local = self.observed.local_digest(ref)
        remote = self.observed.remote_digest(ref) if (pol.track or obs.is_pinned(ref)) else None
        # the digest containers should run: the registry's if we follow it, else what is here
        self.want_digest[ref] = (local or "") if pol.pull == "never" else (remote or local or "")
        img = self.desired.images.get(users[0].image_object or "")
        cause = None
        if self.options.cluster:
            # the nodes pull; every service runs its image pinned by the registry's digest
            self.want_digest[ref] = self.observed.remote_digest(ref) or ""
            if pol.build and img is not None:
                self._build(img, None)
        elif pol.build and img is not None:
            self._build(img, local)
        elif local is None and pol.pull == "never":
            self.img_ready[ref] = self.b.add(f"fail:{res}", Kind.FAIL, res,
                                             "not present locally and pull policy is never")
        elif local is None:
            cause = "not present locally"
        elif remote and remote != local and pol.pull != "never":
            cause = f"tag moved: {_short(local)} -> {_short(remote)}"
        elif pol.pull == "always" and not remote:
            cause = "pull policy always (digest not resolved)"
        if cause is not None:
            refused = self.options.moves_refused.get((ref, "pull"))
            self.img_ready[ref] = self.b.add(f"fail:{res}", Kind.FAIL, res, refused) if refused else \
                self.b.add(f"pull:{res}", Kind.PULL_IMAGE, res, cause, image=ref, target=ref)
            if local is not None and not remote and not refused:
                # whether the pull moves the tag is known only after it: its containers are
                # replaced in this pass, and kept by the executor when the tag still names the
                # image they run (keep_if_image), not left on the old image until the next pass
                self.repulled.add(ref)

    def _build(self, img: models.Image, local: str | None) -> None:
        ref = img.ref or ""
        res = str(ResourceId.image(ref))
        if self.options.builds is None:
            if local is None:
                self.img_ready[ref] = self.b.add(
                    f"fail:{res}", Kind.FAIL, res, "this runtime cannot build images; build and push it, then reference it")
            return
        cause, pushes = self.options.builds.get(ref, ("not built yet", img.push))
        refused = self.options.moves_refused.get((ref, "build")) if cause is not None else None
        if refused:                     # the tag is another owner's: no build, and no push of it
            self.img_ready[ref] = self.b.add(f"fail:{res}", Kind.FAIL, res, refused)
            return
        if cause is not None:
            self.img_ready[ref] = self.b.add(f"build:{res}", Kind.BUILD_IMAGE, res, cause, spec=img, image=ref,
                                             target=ref)
            self.rebuilt.add(ref)
        for dest in pushes:
            self.b.add(f"push:{res}->{dest}", Kind.PUSH_IMAGE, res, f"push to {dest}",
                       [self.img_ready.get(ref, "")], image=ref, target=dest)

    # -- containers, in dependsOn order ------------------------------------------------------

    def _containers(self) -> None:
        for name in _topo_containers(self.desired.containers):
            first = len(self.b.order)
            self._container(self.desired.containers[name])
            self._hold_back_from(name, self.b.order[first:])
            if name in self.adopted:            # what depends on it waits for its name
                self.ready.setdefault(name, self.adopted[name][0])

    def _container(self, c: models.Container) -> None:
        name, res = c.name, str(ResourceId.container(c.name))
        at_name = self.observed.containers.get(name)       # what the engine names so now
        o = self.adopted[name][1] if name in self.adopted else \
            at_name if at_name is not None and at_name in self.objects.get(name, ()) else None
        left = self.left_alone.get(name, ())                # its copies left under other names
        ingress = [i for i, p in enumerate(c.ports) if p.ingress]
        if c.replicas != 1 and not self.options.cluster:
            self.ready[name] = self.b.add(f"fail:{res}", Kind.FAIL, res,
                                          f"replicas: {c.replicas}: this runtime runs one container per "
                                          "Container object (load the manifests for a single host: spec.load without cluster)")
        elif self.options.cluster and any(n.startswith("container:") for n in c.networks):
            self.ready[name] = self.b.add(f"fail:{res}", Kind.FAIL, res,
                                          f"networks: {c.networks[0]}: a Swarm service cannot join a container's network "
                                          "namespace; put both on one network, or run them with --runtime native or docker")
        elif ingress and not self.options.cluster:
            self.ready[name] = self.b.add(f"fail:{res}", Kind.FAIL, res,
                                          f"spec.ports[{ingress[0]}]: mode: ingress is Swarm's routing mesh (for "
                                          "--runtime swarm); on one host a port is published on the host: mode host")
        elif self.objects.get(name) and not self._answers_for("Container", name):
            self.ready[name] = self.b.add(f"fail:{res}", Kind.FAIL, res, _another_root("container", self.options.owner))
        elif o is None and at_name is None and not left:
            held = self._held("Container", name, c.spec_hash)
            if held:
                self.ready[name] = self.b.add(f"hold:{res}", Kind.HOLD, res, held)
                return
            why = f"not found; replaces {self.renamed[name]} ({_RENAMED})" if name in self.renamed else "not found"
            cr = self.b.add(f"create:{res}", Kind.CREATE, res, why, self._deps(c), target=name,
                            **self._create_fields(c))
            self.ready[name] = self.b.add(f"start:{res}", Kind.START, res, why, [cr], target=name,
                                          wait=self._wait(c))
        elif o is None and at_name is None:     # (a service: Swarm renames none)
            self.ready[name] = self.b.add(f"fail:{res}", Kind.FAIL, res, f"its service is named {left[0].name} (made "
                                          "so outside reconcile) and a service cannot be renamed: remove it by hand")
        elif o is None:
            self.ready[name] = self.b.add(f"fail:{res}", Kind.FAIL, res, self._name_taken(at_name) + (
                f" (its own container runs as {left[0].name}: named back once the name is free)" if left else ""))
        else:
            assert o.owner is not None                      # (an object's: its labels say so)
            reasons, changes = self._recreate_reasons(c, o, o.owner)
            off = [] if reasons else obs.off_networks(o, c.networks, c.aliases, self.observed.networks)
            if off and o.status not in self.options.connects and self._to_run(c, o):
                reasons = [why for _, why, _ in off]        # the runtime cannot connect it so: replaced
                off = []
            if reasons:
                self._recreate(c, o, "; ".join(reasons), changes)
            else:
                self._state_rules(c, o, self._connect(c, o, off))

    def _name_taken(self, at_name: obs.ObservedContainer | None) -> str:
        """Why a desired container is not made: its name is another's (foreign, another owner's,
        or another object's of this owner, renamed so)."""
        assert at_name is not None
        own = at_name.owner
        if own is not None and own.owner == self.options.owner and own.name:
            ours = own.name in self.desired.containers and (
                ("Container", own.name) in self.inventory.entries or self.options.adopt)
            back = f"this pass names it back to {own.name}: converge again" if ours else \
                f"rename it back to {own.name}, or remove it"
            return (f"name taken by {ResourceId.container(own.name)} of this owner, renamed so outside reconcile; "
                    f"left untouched: {back}")
        return _stranger("container", own)

    def _deps(self, c: models.Container) -> list[str]:
        """What `c`'s create waits for: its networks, volumes, image, dependencies, and the
        pruned containers (they may hold a host port or an address it needs)."""
        deps = [self.net_ready.get(n, "") for n in c.networks if n not in _SPECIAL_NETWORKS]
        deps += [self.vol_ready.get(m.source, "") for m in c.volumes if m.type == "volume"]
        deps.append(self.img_ready.get(c.image, ""))
        deps += [self.ready.get(d, "") for d in c.depends_on]
        adopt = [self.adopted[c.name][0]] if c.name in self.adopted else []
        return deps + self.container_removals + adopt + self._pin(c)

    def _pin(self, c: models.Container) -> list[str]:
        """On a cluster, what a service's create or update waits on when its image has no digest:
        a refusal (made when first needed; a running service that needs no change is left be)."""
        if not self.options.cluster or self._digest(c):
            return []
        key = f"fail:{ResourceId.image(c.image)}"
        if key not in self.b.nodes:
            self.b.add(key, Kind.FAIL, str(ResourceId.image(c.image)), "registry digest not resolved: a service runs its "
                       "image pinned by digest; check the reference and that the registry answers")
        return [key]

    def _wait(self, c: models.Container) -> actions.Wait | None:
        """What a start (and on a cluster, a create or update) of `c` waits for."""
        if self.options.cluster:
            return actions.Wait(timeout=self.options.rollout_timeout, healthcheck=False, rollout=True)
        return _wait(c)

    def _digest(self, c: models.Container) -> str:
        """The digest `c` should run ("": known only once its image is built or pulled in this pass)."""
        return "" if c.image in self.rebuilt or c.image in self.repulled else self.want_digest.get(c.image, "")

    def _create_fields(self, c: models.Container) -> dict[str, Any]:
        digest = self._digest(c)
        image = _pinned(c.image, digest) if self.options.cluster else c.image
        return {"spec": c, "labels": self._labels("Container", c.name, c, digest), "image": image,
                "image_digest": digest}

    def _recreate_reasons(
        self, c: models.Container, o: obs.ObservedContainer, owner: labelmod.Ownership,
    ) -> tuple[list[str], tuple[actions.FieldChange, ...]]:
        """Why `c` must be made again (none: it matches), and its field-level changes."""
        reasons: list[str] = []
        changes: tuple[actions.FieldChange, ...] = ()
        if owner.spec_hash != c.spec_hash:
            entry = self.inventory.entries.get(("Container", c.name))
            if entry is not None and entry.spec:
                changes = field_changes(entry.spec, inv.spec_document(c))
            tops = sorted({ch.path.split(".")[0] for ch in changes} - hashing.CONTAINER_EXCLUDED)
            reasons.append("spec hash changed: " + (", ".join(tops) if tops else
                                                    "referenced file content" if entry and entry.spec else "spec"))
        digest = self._digest(c)
        if digest and owner.image_digest and digest != owner.image_digest and not self._runs_local_image(c, o, digest):
            reasons.append(f"image digest changed: {_short(owner.image_digest)} -> {_short(digest)}")
        if c.image in self.rebuilt:
            reasons.append(REBUILT)
        elif c.image in self.repulled:
            reasons.append(REPULLED)
        reasons += [f"network {n} recreated" for n in c.networks if n in self.net_recreated]
        # a container joining another's network namespace loses it with that container
        reasons += [f"{n} replaced" for n in c.networks if n.removeprefix("container:") in self.recreated]
        if o.status == "dead":
            reasons.append("container is dead")
        if self.options.cluster and (o.replicas is None) != c.global_mode:
            reasons.append(f"replicas {o.replicas} -> global" if c.global_mode else f"replicas global -> {c.replicas}")
        elif self.options.cluster and o.replicas is not None and o.replicas != c.replicas:
            reasons.append(f"replicas {o.replicas} -> {c.replicas}")
        if self.options.cluster and o.job != c.job:
            reasons.append(f"mode {_swarm_mode(o.job)} -> {_swarm_mode(c.job)}")
        if self.options.cluster and o.placement is not None:
            wanted = (c.placement.swarm_constraints(), c.placement.preferences)
            if o.placement != wanted:
                reasons.append(f"placement {_placement(o.placement)} -> {_placement(wanted)}")
        settings = self.options.service_settings.get(c.name)
        if self.options.cluster and settings is not None and o.service_settings is not None \
                and o.service_settings != settings and not reasons:
            reasons.append("service settings changed: " + _settings_changes(o.service_settings, settings))
        return reasons, changes

    def _runs_local_image(self, c: models.Container, o: obs.ObservedContainer, digest: str) -> bool:
        """Whether `c` should run the local image its tag names (`digest` is the local one: no
        pull moves it) and `o` runs that very image: only the digest the engine names it by moved
        (Docker names an image it built by its id, and, once it pushed it, by a repository
        digest), which is no new image to run."""
        here = self.observed.local_image_id(c.image)
        return bool(o.image_id) and here == o.image_id and digest == self.observed.local_digest(c.image)

    def _mode_changed(self, c: models.Container, o: obs.ObservedContainer) -> bool:
        """A cluster's service that is global where replicated is wanted, or the other way round,
        or a job where a service is wanted (or the other way round): Swarm cannot change a
        service's mode, so it is replaced (removed, then created)."""
        return self.options.cluster and ((o.replicas is None) != c.global_mode or o.job != c.job)

    def _recreate(
        self, c: models.Container, o: obs.ObservedContainer, cause: str, changes: tuple[actions.FieldChange, ...],
    ) -> None:
        res = str(ResourceId.container(c.name))
        held = self._held("Container", c.name, c.spec_hash)
        if held:
            self.ready[c.name] = self.b.add(f"hold:{res}", Kind.HOLD, res, held)
            return
        self.recreated.add(c.name)
        if self.options.cluster and not any(n in self.net_recreated for n in c.networks) \
                and not self._mode_changed(c, o):
            # changed in place: Swarm rolls the new spec out copy by copy, and back on failure
            self.ready[c.name] = self.b.add(f"update:{res}", Kind.UPDATE, res, cause, self._deps(c), target=o.id,
                                            changes=changes, wait=self._wait(c), **self._create_fields(c))
            return
        start_first = c.update.order == "start-first" and not self.options.cluster
        if start_first and self._joined_replaced(c):
            self.b.notes.append(f"{res}: start-first falls back to stop-first: it joins {c.networks[0]}, "
                                "which is replaced, and goes before it")
            start_first = False
        elif start_first and any(p.host_port for p in c.ports):
            self.b.notes.append(f"{res}: start-first falls back to stop-first: it publishes host ports")
            start_first = False
        elif start_first and (c.ipv4_addresses or c.ipv6_addresses):
            self.b.notes.append(f"{res}: start-first falls back to stop-first: it has a fixed address")
            start_first = False
        elif start_first and c.mac_addresses:
            # two interfaces of one MAC on a bridge: its forwarding table would flap between them
            self.b.notes.append(f"{res}: start-first falls back to stop-first: it has a fixed MAC address")
            start_first = False
        elif start_first and not self.options.can_rename:
            self.b.notes.append(f"{res}: start-first falls back to stop-first: the runtime cannot rename containers")
            start_first = False
        if start_first:
            self._recreate_start_first(c, o, cause, changes)
        else:
            self._recreate_stop_first(c, o, cause, changes)
        if cause in (REBUILT, REPULLED) and o.image_id:
            # a context edit the image does not take (another service's settings in the compose
            # file, an unused .env variable) rebuilds the same image, and a pull of a tag that did
            # not move pulls it: the executor keeps the container then, as compose recreates only
            # when the image id changed
            group = f"recreate:{ResourceId.container(c.name)}"
            for node in self.b.nodes.values():
                if node.extra.get("group") == group:
                    node.extra["keep_if_image"] = (c.image, o.image_id)

    def _recreate_start_first(
        self, c: models.Container, o: obs.ObservedContainer, cause: str, changes: tuple[actions.FieldChange, ...],
    ) -> None:
        """CREATE(tmp) → START → STOP(old) → REMOVE(old) → RENAME."""
        b, name, res = self.b, c.name, str(ResourceId.container(c.name))
        group = f"recreate:{res}"
        tmp = f"{name}{actions.TEMP_SUFFIX}"
        cr = b.add(f"create:{res}", Kind.CREATE, res, cause, self._deps(c), target=tmp, group=group,
                   changes=changes, rollback={"remove_only": True}, **self._create_fields(c))
        st = b.add(f"start:{res}", Kind.START, res, cause, [cr], target=tmp, group=group, wait=self._wait(c),
                   rollback={"remove_only": True})
        sp = b.add(f"stop:{res}", Kind.STOP, res, cause, [st], target=o.id, group=group)
        rm = b.add(f"remove:{res}", Kind.REMOVE, res, cause, [sp], target=o.id, group=group)
        self.ready[name] = b.add(f"rename:{res}", Kind.RENAME, res, cause, [rm], target=tmp, new_name=name,
                                 group=group)

    def _recreate_stop_first(
        self, c: models.Container, o: obs.ObservedContainer, cause: str, changes: tuple[actions.FieldChange, ...],
    ) -> None:
        """STOP → REMOVE → CREATE → START, with a rollback to the previous config and image."""
        b, name, res = self.b, c.name, str(ResourceId.container(c.name))
        group = f"recreate:{res}"
        entry = self.inventory.entries.get(("Container", name))
        rollback: dict[str, Any] | None = None
        # (an adopted leftover runs a spec the inventory has no config of: nothing to roll back to)
        adopted_other = name in self.adopted and entry is not None and o.owner is not None \
            and entry.spec_hash != o.owner.spec_hash
        if c.update.on_failure == "rollback" and entry is not None and entry.config and not self.options.cluster \
                and not adopted_other:
            rollback = {"config": dict(entry.config), "image_id": o.image_id}
            if c.secrets or entry.config.get("secret_env"):
                rollback["secrets"] = _unchanged_secrets(entry.config, c)
        # stop only once the new image and networks are there: less downtime, and a failed pull
        # leaves the old container running (a recreated network is the exception: it needs this
        # container gone first)
        recreated = {self.net_ready[n] for n in c.networks if n in self.net_recreated}
        stop_deps = [d for d in self._deps(c) if d not in recreated]
        joined = self._joined_replaced(c)
        if joined:
            stop_deps = self._joiner_stop_deps(c, joined, stop_deps)
        sp = b.add(f"stop:{res}", Kind.STOP, res, cause, stop_deps, target=o.id, group=group, changes=changes)
        rm = b.add(f"remove:{res}", Kind.REMOVE, res, cause, [sp], target=o.id, group=group)
        if joined:
            b.nodes[f"stop:{ResourceId.container(joined)}"].deps.append(rm)
        if "network" in cause:
            for n in c.networks:
                if n in self.net_recreated:
                    self.removals_for_net[n].append(rm)
        # (a joiner's stop did not wait for its dependencies' starts: its create does)
        cr = b.add(f"create:{res}", Kind.CREATE, res, cause, [rm, *recreated, *(self._deps(c) if joined else ())],
                   target=name, group=group,
                   rollback=rollback, **self._create_fields(c))
        self.ready[name] = b.add(f"start:{res}", Kind.START, res, cause, [cr], target=name, group=group,
                                 wait=self._wait(c), rollback=rollback)

    def _joined_replaced(self, c: models.Container) -> str:
        """The container whose network namespace `c` joins when this plan replaces it ("" if not)."""
        joined = next((n.removeprefix("container:") for n in c.networks if n.startswith("container:")), "")
        return joined if joined in self.recreated and not self.options.cluster else ""

    def _joiner_stop_deps(self, c: models.Container, joined: str, deps: list[str]) -> list[str]:
        """When the stop of `c`, which joins `joined`'s network namespace, may run: with the
        stop of `joined` (what that waits for), not after its new start. The joiner goes
        first, since Podman refuses to remove a container another one joins (and Docker leaves
        the joiner in a dead namespace); it is made again once `joined` runs (dependsOn)."""
        after = {self.ready.get(d, "") for d in c.depends_on}
        return [d for d in deps if d not in after] + self.b.nodes[f"stop:{ResourceId.container(joined)}"].deps

    def _to_run(self, c: models.Container, o: obs.ObservedContainer) -> bool:
        """Whether `o` runs, or the state rules start it in this pass (a restarting one is left
        to its engine: converging)."""
        return o.status == "running" or (o.status != "restarting" and self._start_decision(c, o).start)

    def _start_decision(self, c: models.Container, o: obs.ObservedContainer) -> restarting.StartDecision:
        """Whether a container that does not run (`o.status` not running) is started now, and why."""
        if o.status == "created":
            return restarting.StartDecision(True, "created but never started")
        if o.cut_short:
            return restarting.StartDecision(True, restarting.CUT_SHORT)
        return restarting.decide(c.restart, exit_code=o.exit_code, restart_count=o.restart_count,
                                 manually_stopped=o.manually_stopped, moment=restarting.Moment.RESUME)

    def _connect(self, c: models.Container, o: obs.ObservedContainer, off: list[tuple[str, str, bool]]) -> list[str]:
        """A matching container off some of its networks (`obs.off_networks`) connected to each
        again where the runtime can in its status (a `reconnect` disconnects it first: an alias
        missing, a network made again), after that network is there; else noted: it is
        connected, or replaced, when it is to run. The keys of the actions its start waits for."""
        if not off:
            return []
        res = str(ResourceId.container(c.name))
        if o.status not in self.options.connects:
            self.b.notes.append(f"{res} is {o.status}, " + "; ".join(why for _, why, _ in off) +
                                ": connected (or replaced) when it is to run")
            return []
        held = self._held("Container", c.name, c.spec_hash)
        if held:
            self.ready[c.name] = self.b.add(f"hold:{res}", Kind.HOLD, res, held)
            return [self.ready[c.name]]
        return [self.b.add(f"connect:{res}:{n}", Kind.RECONNECT if again else Kind.CONNECT, res, why,
                           [self.net_ready.get(n, ""), *self.container_removals], target=o.id, network=n, spec=c)
                for n, why, again in off]

    def _state_rules(self, c: models.Container, o: obs.ObservedContainer, after: list[str] | None = None) -> None:
        """A matching container: running is left alone, restarting is converging, a stopped one
        starts if its restart policy says it should run (`reconciler.restarting`); a paused one
        is noted, not unpaused: someone froze it on purpose (a commit, a debugger), and the
        pass reports it down (`passes.unready`). A job that did not complete holds back what
        depends on it: one that runs (or restarts) until a later pass finds it exited 0, one that
        failed (exited non-zero, left stopped) until it is run again (a change of its spec, or
        `reconcile start`) and exits 0."""
        res = str(ResourceId.container(c.name))
        if o.status in ("running", "restarting"):
            if o.status == "running" and o.paused:
                self.b.notes.append(f"{res} is paused: it runs no process until unpaused (docker unpause); "
                                    "reconcile does not unpause it")
            if o.status == "restarting" and o.replicas is not None:     # a service (Swarm)
                self.b.notes.append(f"{res} is converging, not drift: {o.replicas_running or 0} of {o.replicas} "
                                    "copies of its current spec running" + (f"; {o.error}" if o.error else ""))
            elif o.status == "restarting":
                self.b.notes.append(f"{res} is restarting (converging, not drift)")
            if o.status == "restarting":        # (not in sync: `diff` says so, exit 1)
                self.b.converging.append(res)
            if o.status == "running" and o.stale_binds:
                self.b.notes.append(
                    f"{res} runs with bind mount source(s) {', '.join(o.stale_binds)} no longer what it mounted (deleted, "
                    "or replaced by a new file, as an editor's save or a daemon's new socket does): it still uses the "
                    "old one, and what it writes there is lost at its stop; restart it (reconcile stop, then start) "
                    "to mount what is there now")
            if c.job and any(c.name in d.depends_on for d in self.desired.containers.values()):
                self.ready[c.name] = self.b.add(f"hold:{res}", Kind.HOLD, res, f"job {o.status}: what depends on "
                                                "it starts once it exited with code 0 (a later pass)")
            return
        decision = self._start_decision(c, o)
        if not decision.start and c.job and o.exit_code != 0:
            self.ready[c.name] = self.b.add(
                f"fail:{res}", Kind.FAIL, res,
                f"job failed: {decision.why}; what depends on it is not started until it exits 0 "
                f"(run it again: `reconcile start {c.name}`, or change its spec)")
            return
        if not decision.start:
            self.b.notes.append(f"{res}: {decision.why}")
            return
        self.ready[c.name] = self.b.add(f"start:{res}", Kind.START, res, decision.why, [*self._deps(c), *(after or ())],
                                        target=o.id, wait=self._wait(c))

    def _hold_back_from(self, name: str, keys: list[str]) -> None:
        """The agent's inputs, for the actions just planned for container `name`: in a drift
        check a `drift: report` container's are reported, not made; a flapping container's
        start outside a recreate is left out."""
        c = self.desired.containers[name]
        for key in keys:
            node = self.b.nodes[key]
            if self.drift_check and c.drift == "report":
                self.held_back.add(key)
                self.drift.add(f"{node.resource}: {node.cause}")
            elif name in self.options.flapping and node.kind is Kind.START and not node.extra.get("group"):
                self.held_back.add(key)
                self.b.notes.append(f"{node.resource}: over the flap limit: left stopped (reported, not restarted; "
                                    f"`reconcile start {name}` tries again)")

    # -- ordering ----------------------------------------------------------------------------

    def _ordering(self) -> None:
        """A recreated network waits for the removal of every container attached to it (and of
        the pruned ones, which may be attached to it too); what waits for an action held back
        is held back as well (noted once per resource)."""
        for n, rms in self.removals_for_net.items():
            self.b.nodes[f"remove:{ResourceId.network(n)}"].deps.extend([*rms, *self.container_removals])
        if not self.held_back:
            return
        waits_for: dict[str, str] = {}
        changed = True
        while changed:
            changed = False
            for key in self.b.order:
                node = self.b.nodes[key]
                held = next((d for d in node.deps if d in self.held_back or d in waits_for), None)
                if key not in self.held_back and key not in waits_for and held is not None:
                    waits_for[key] = held
                    changed = True
        notes = {f"{self.b.nodes[k].resource}: waits for {self.b.nodes[d].resource}, held back"
                 for k, d in waits_for.items() if self.b.nodes[k].resource != self.b.nodes[d].resource}
        self.b.notes.extend(sorted(notes))
        self.b.notes.extend(f"drift (reported only): {d}" for d in sorted(self.drift))
        self.b.drop(self.held_back | set(waits_for))


# the cause of the replacement of a compose service's Swarm service made under an older name
_RENAMED = "docker stack deploy's name for a compose service, <project>_<service>; Swarm cannot rename a service"


def _settings_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """What differs between a service's settings and the wanted ones, for a cause:
    `update parallelism 1 -> 2, labels`."""
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        was, now = old.get(key), new.get(key)
        if was == now:
            continue
        if isinstance(was, Mapping) and isinstance(now, Mapping) and key != "labels":
            out += [f"{key} {sub} {_setting(was.get(sub))} -> {_setting(now.get(sub))}"
                    for sub in sorted(set(was) | set(now)) if was.get(sub) != now.get(sub)]
        elif key == "labels" or isinstance(was, Mapping) or isinstance(now, Mapping):
            out.append(key)
        else:
            out.append(f"{key} {_setting(was)} -> {_setting(now)}")
    return ", ".join(out)


def _setting(value: Any) -> str:
    if value is None:
        return "(none)"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _swarm_mode(job: bool) -> str:
    """A replicated service's mode as Swarm names it (a cause of its replacement)."""
    return "replicated-job" if job else "replicated"


def _placement(p: tuple[tuple[str, ...], tuple[str, ...]]) -> str:
    """A service's placement for a cause: its constraints, then `spread LABEL`s; `anywhere`."""
    return ", ".join([*p[0], *(f"spread {s}" for s in p[1])]) or "anywhere"


def _create_hint(kind: str, name: str, engine: str) -> str:
    """How a missing external network or volume is made on the engine in use: by a command it
    has (the native engine's CLI: `network create`, `volume create`), or a manifest."""
    manifest = f"a {kind.title()} manifest of another source"
    if engine in ("native", "fake"):
        return f"reconcile {kind} create {name}, or {manifest}"
    return f"{'podman' if engine == 'podman' else 'docker'} {kind} create {name}, or {manifest}"
