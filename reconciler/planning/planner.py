"""plan(desired, observed, inventory, options) -> Plan: every decision of a pass, and why.

PURE: no I/O, no clock (the time is `options.now`), no runtime calls; the same inputs give the
same plan text. The rules are DESIGN §5:

- ownership: an object whose name is taken by something we do not own is a `fail` action,
  never touched; dependents of a failed action are skipped by the executor;
- recreate iff the spec hash (files' content included) or the resolved image digest changed,
  or a network it is attached to is recreated; as one group STOP → REMOVE → CREATE → START
  (stop-first) or CREATE(tmp) → START → STOP(old) → REMOVE(old) → RENAME (start-first, when
  the container publishes no host port and the runtime can rename);
- state: a matching running container is left alone, a restarting one is converging, a
  stopped one is started only if its restart policy says it should run;
- prune: inventory minus desired, only owned objects still carrying our labels, never to
  empty without `allow_empty`, named volumes only with `deletionPolicy: Delete`;
- order: networks → volumes → images → containers by dependsOn; deletes in reverse;
- no loops: an object whose last attempt at the same (revision, spec hash) failed is held
  until its backoff expires;
- a cluster (`options.cluster`: Swarm services) updates a changed service in place, as one
  `update` action, and scales it the same way; Swarm rolls it out and back. Its nodes pull:
  no image is pulled here, every service runs its image pinned by the registry digest resolved
  for this pass. Every create and update waits for the rollout. A single-host engine runs one
  container per object: `replicas` other than 1 is refused there.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reconciler.planning import actions
from reconciler.spec import hashing, models
from reconciler.state import inventory as inv
from reconciler.state import labels as labelmod
from reconciler.state import observed as obs

__all__ = ["PlanOptions", "field_changes", "plan"]

Kind = actions.ActionKind
_SPECIAL_NETWORKS = frozenset({"host", "none", "bridge", "default"})


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
    cluster: bool = False           # the runtime is a cluster of services (runtime.base.ServiceEngine)
    rollout_timeout: float = 300.0  # seconds a cluster's rollout of one service may take


@dataclass
class _Node:
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

    def add(
        self, key: str, kind: actions.ActionKind, resource: str, cause: str,
        deps: list[str] | tuple[str, ...] = (), **extra: Any,
    ) -> str:
        self.nodes[key] = _Node(key, kind, resource, cause, [d for d in deps if d], extra)
        self.order.append(key)
        return key

    def build(self, revision: str) -> actions.Plan:
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
        return actions.Plan(actions=tuple(out), notes=tuple(self.notes), revision=revision)


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


def _owned(owner: labelmod.Ownership | None, options: PlanOptions) -> bool:
    return owner is not None and owner.owner == options.owner


def _stranger(what: str, owner: labelmod.Ownership | None) -> str:
    who = "a foreign " + what + " (no reconciler.owner label)" if owner is None else (
        f"a {what} of owner {owner.owner!r}")
    return f"name taken by {who}; left untouched: rename or remove it by hand"


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


@dataclass(frozen=True)
class _ImagePolicy:
    pull: str
    track: bool
    build: bool


def _pinned(ref: str, digest: str) -> str:
    """`ref` pinned to `digest` (`name:tag@sha256:...`, as the docker CLI pins a service's image)."""
    return ref if obs.is_pinned(ref) or not digest else f"{ref}@{digest}"


def _image_policy(c: models.Container, desired: models.DesiredState) -> _ImagePolicy:
    img = desired.images.get(c.image_object) if c.image_object else None
    if img is None:
        return _ImagePolicy(pull="missing", track=True, build=False)
    return _ImagePolicy(pull=img.pull, track=img.track or img.pull == "always",
                        build=img.build is not None)


def plan(
    desired: models.DesiredState,
    observed: obs.ObservedState,
    inventory: inv.Inventory,
    options: PlanOptions,
) -> actions.Plan:
    """The actions that take `observed` to `desired`, each with its cause."""
    b = _Builder()
    rev = desired.revision

    def lbl(kind: str, name: str, spec_hash: str, user: Mapping[str, str], digest: str = "") -> dict[str, str]:
        return labelmod.make(owner=options.owner, kind=kind, name=name, spec_hash=spec_hash,
                             revision=rev, image_digest=digest, user=user)

    # --- prune set first (computed from a fully valid revision only: the caller loaded it)
    desired_keys = (
        {("Container", n) for n in desired.containers}
        | {("Network", n) for n in desired.networks}
        | {("Volume", n) for n in desired.volumes}
    )
    # implicit volumes (mounted but not declared) count as desired too
    for c in desired.containers.values():
        for m in c.volumes:
            if m.type == "volume":
                desired_keys.add(("Volume", m.source))
    garbage = sorted(k for k in inventory.entries if k not in desired_keys and k[0] != "Image")
    empty = not (desired.containers or desired.networks or desired.volumes or desired.images)
    prune_refused = bool(options.prune and empty and garbage and not options.allow_empty)
    container_removals: list[str] = []
    if options.prune and not prune_refused:
        for kind, name in garbage:
            if kind != "Container":
                continue
            res = f"container:{name}"
            o = observed.containers.get(name)
            if o is None:
                b.add(f"forget:{res}", Kind.FORGET, res, "not in desired state; already gone")
            elif not _owned(o.owner, options):
                b.add(f"forget:{res}", Kind.FORGET, res,
                      "not in desired state; the container now there is not ours: left untouched")
            else:
                dep: list[str] = []
                if o.status in {"running", "restarting"}:
                    dep = [b.add(f"stop:{res}", Kind.STOP, res, "not in desired state (prune)",
                                 target=o.id, spec=None)]
                container_removals.append(b.add(
                    f"remove:{res}", Kind.REMOVE, res, "not in desired state (prune)", dep, target=o.id))
    if prune_refused:
        b.add(f"refuse-prune:{rev}", Kind.FAIL, f"revision:{rev[:12]}",
              f"the revision declares nothing: refusing to prune {len(garbage)} objects "
              "(pass --allow-empty to remove everything)")

    # --- networks
    net_ready: dict[str, str] = {}
    net_recreated: set[str] = set()
    removals_for_net: dict[str, list[str]] = {}
    for name in sorted(desired.networks):
        net = desired.networks[name]
        res = f"network:{name}"
        on = observed.networks.get(name)
        labels = lbl("Network", name, net.spec_hash, net.labels)
        if on is None:
            net_ready[name] = b.add(f"ensure:{res}", Kind.ENSURE_NETWORK, res, "not found",
                                    spec=net, labels=labels, target=name)
        elif not _owned(on.owner, options):
            net_ready[name] = b.add(f"fail:{res}", Kind.FAIL, res, _stranger("network", on.owner))
        elif on.owner is not None and on.owner.spec_hash != net.spec_hash:
            entry = inventory.entries.get(("Network", name))
            net_changes = field_changes(entry.spec, inv.spec_document(net)) if entry else ()
            what = ", ".join(sorted({c.path.split(".")[0] for c in net_changes}
                                    - hashing.COMMON_EXCLUDED)) or "spec"
            net_recreated.add(name)
            removals_for_net[name] = []
            rm = b.add(f"remove:{res}", Kind.REMOVE_NETWORK, res, f"spec hash changed: {what}",
                       target=name, group=f"recreate:{res}", changes=net_changes)
            net_ready[name] = b.add(f"ensure:{res}", Kind.ENSURE_NETWORK, res,
                                    f"spec hash changed: {what}", [rm], spec=net, labels=labels,
                                    target=name, group=f"recreate:{res}")

    # --- volumes (declared, then implicit ones)
    vol_ready: dict[str, str] = {}
    implicit = sorted({m.source for c in desired.containers.values() for m in c.volumes
                       if m.type == "volume" and m.source not in desired.volumes})
    for name in [*sorted(desired.volumes), *implicit]:
        v = desired.volumes.get(name)
        res = f"volume:{name}"
        ov = observed.volumes.get(name)
        if ov is None:
            spec_hash = v.spec_hash if v else ""
            vol_ready[name] = b.add(
                f"ensure:{res}", Kind.ENSURE_VOLUME, res,
                "not found" if v else "not found (mounted, not declared)",
                spec=v, labels=lbl("Volume", name, spec_hash, v.labels if v else {}), target=name)
        elif not _owned(ov.owner, options):
            vol_ready[name] = b.add(f"fail:{res}", Kind.FAIL, res, _stranger("volume", ov.owner))

    # --- images
    img_ready: dict[str, str] = {}
    want_digest: dict[str, str] = {}
    rebuilt: set[str] = set()           # refs built in this plan: their digest is known after

    def plan_build(img: models.Image, local: str | None) -> None:
        ref = img.ref or ""
        res = f"image:{ref}"
        if options.builds is None:
            if local is None:
                img_ready[ref] = b.add(f"fail:{res}", Kind.FAIL, res,
                                       "this runtime cannot build images; build and push it, then reference it")
            return
        cause, pushes = options.builds.get(ref, ("not built yet", img.push))
        if cause is not None:
            img_ready[ref] = b.add(f"build:{res}", Kind.BUILD_IMAGE, res, cause, spec=img, image=ref, target=ref)
            rebuilt.add(ref)
        for dest in pushes:
            b.add(f"push:{res}->{dest}", Kind.PUSH_IMAGE, res, f"push to {dest}",
                  [img_ready.get(ref, "")], image=ref, target=dest)

    for ref in sorted({c.image for c in desired.containers.values()}):
        users = [c for c in desired.containers.values() if c.image == ref]
        pol = _image_policy(users[0], desired)
        res = f"image:{ref}"
        local = observed.local_digest(ref)
        remote = observed.remote_digest(ref) if (pol.track or obs.is_pinned(ref)) else None
        # the digest containers should run: the registry's if we follow it, else what is here
        want_digest[ref] = (local or "") if pol.pull == "never" else (remote or local or "")
        img = desired.images.get(users[0].image_object or "")
        if options.cluster:
            # the nodes pull; every service runs its image pinned by the registry's digest
            want_digest[ref] = observed.remote_digest(ref) or ""
            if pol.build and img is not None:
                plan_build(img, None)
        elif pol.build and img is not None:
            plan_build(img, local)
        elif local is None and pol.pull == "never":
            img_ready[ref] = b.add(f"fail:{res}", Kind.FAIL, res,
                                   "not present locally and pull policy is never")
        elif local is None:
            img_ready[ref] = b.add(f"pull:{res}", Kind.PULL_IMAGE, res, "not present locally",
                                   image=ref, target=ref)
        elif remote and remote != local and pol.pull != "never":
            img_ready[ref] = b.add(f"pull:{res}", Kind.PULL_IMAGE, res,
                                   f"tag moved: {_short(local)} -> {_short(remote)}",
                                   image=ref, target=ref)
        elif pol.pull == "always" and not remote:
            img_ready[ref] = b.add(f"pull:{res}", Kind.PULL_IMAGE, res,
                                   "pull policy always (digest not resolved)", image=ref, target=ref)

    # images with build: that no container uses are built (and pushed) all the same
    used = {c.image for c in desired.containers.values()}
    for name in sorted(desired.images):
        img = desired.images[name]
        if img.build is not None and img.ref and img.ref not in used:
            plan_build(img, observed.local_digest(img.ref))

    def pin(needed: bool, ref: str) -> list[str]:
        """The refusal a service's create or update waits on when its image has no digest
        (made when first needed)."""
        if not needed:
            return []
        key = f"fail:image:{ref}"
        if key not in b.nodes:
            b.add(key, Kind.FAIL, f"image:{ref}", "registry digest not resolved: a service runs its image "
                  "pinned by digest; check the reference and that the registry answers")
        return [key]

    # --- containers, in dependsOn order
    ready: dict[str, str] = {}
    for name in _topo_containers(desired.containers):
        c = desired.containers[name]
        res = f"container:{name}"
        o = observed.containers.get(name)
        base_deps = [net_ready.get(n, "") for n in c.networks if n not in _SPECIAL_NETWORKS]
        base_deps += [vol_ready.get(m.source, "") for m in c.volumes if m.type == "volume"]
        base_deps.append(img_ready.get(c.image, ""))
        base_deps += [ready.get(d, "") for d in c.depends_on]
        # pruned containers go first: they may hold a host port or an address we need
        base_deps += container_removals
        digest = "" if c.image in rebuilt else want_digest.get(c.image, "")
        labels = lbl("Container", name, c.spec_hash, c.labels, digest)
        if c.replicas != 1 and not options.cluster:
            ready[name] = b.add(f"fail:{res}", Kind.FAIL, res,
                                f"replicas: {c.replicas}: this runtime runs exactly one container per "
                                "Container object (replicas is for --runtime swarm)")
            continue
        # a service is not made or changed without its image's digest: it waits on a refusal
        need_pin = options.cluster and not digest
        wait = None
        if options.cluster:
            wait = actions.Wait(timeout=options.rollout_timeout, healthcheck=False, rollout=True)
        elif c.healthcheck is not None and c.healthcheck.test[:1] != ("NONE",):
            wait = actions.Wait(timeout=c.update.health_timeout, healthcheck=True)
        elif c.update.min_ready > 0:
            wait = actions.Wait(timeout=c.update.health_timeout, healthcheck=False,
                                min_ready=c.update.min_ready)
        create_kw: dict[str, Any] = {"spec": c, "labels": labels, "image": c.image,
                                     "image_digest": digest}
        if options.cluster:
            create_kw["image"] = _pinned(c.image, digest)

        if o is None:
            held = _held("Container", name, c.spec_hash, rev, inventory, options)
            if held:
                ready[name] = b.add(f"hold:{res}", Kind.HOLD, res, held)
                continue
            cr = b.add(f"create:{res}", Kind.CREATE, res, "not found", [*base_deps, *pin(need_pin, c.image)],
                       target=name, **create_kw)
            ready[name] = b.add(f"start:{res}", Kind.START, res, "not found", [cr],
                                target=name, wait=wait)
            continue
        if not _owned(o.owner, options):
            ready[name] = b.add(f"fail:{res}", Kind.FAIL, res, _stranger("container", o.owner))
            continue
        assert o.owner is not None
        reasons: list[str] = []
        changes: tuple[actions.FieldChange, ...] = ()
        if o.owner.spec_hash != c.spec_hash:
            entry = inventory.entries.get(("Container", name))
            if entry is not None and entry.spec:
                changes = field_changes(entry.spec, inv.spec_document(c))
            tops = sorted({ch.path.split(".")[0] for ch in changes} - hashing.CONTAINER_EXCLUDED)
            reasons.append("spec hash changed: " + (", ".join(tops) if tops else
                                                    "referenced file content" if entry else "spec"))
        if digest and o.owner.image_digest and digest != o.owner.image_digest:
            reasons.append(f"image digest changed: {_short(o.owner.image_digest)} -> {_short(digest)}")
        if c.image in rebuilt:
            reasons.append("image rebuilt")
        for n in c.networks:
            if n in net_recreated:
                reasons.append(f"network {n} recreated")
        if o.status == "dead":
            reasons.append("container is dead")
        if options.cluster and o.replicas is not None and o.replicas != c.replicas:
            reasons.append(f"replicas {o.replicas} -> {c.replicas}")
        if reasons:
            held = _held("Container", name, c.spec_hash, rev, inventory, options)
            if held:
                ready[name] = b.add(f"hold:{res}", Kind.HOLD, res, held)
                continue
            cause = "; ".join(reasons)
            group = f"recreate:{res}"
            base_deps += pin(need_pin, c.image)
            entry = inventory.entries.get(("Container", name))
            if options.cluster and not any(n in net_recreated for n in c.networks):
                # changed in place: Swarm rolls the new spec out copy by copy, and back on failure
                ready[name] = b.add(f"update:{res}", Kind.UPDATE, res, cause, base_deps, target=o.id,
                                    changes=changes, wait=wait, **create_kw)
                continue
            start_first = c.update.order == "start-first" and not options.cluster
            if start_first and any(p.host_port for p in c.ports):
                b.notes.append(f"{res}: start-first falls back to stop-first: it publishes host ports")
                start_first = False
            elif start_first and not options.can_rename:
                b.notes.append(f"{res}: start-first falls back to stop-first: "
                               "the runtime cannot rename containers")
                start_first = False
            if start_first:
                tmp = f"{name}{actions.TEMP_SUFFIX}"
                cr = b.add(f"create:{res}", Kind.CREATE, res, cause, base_deps, target=tmp,
                           group=group, changes=changes, rollback={"remove_only": True}, **create_kw)
                st = b.add(f"start:{res}", Kind.START, res, cause, [cr], target=tmp, group=group,
                           wait=wait, rollback={"remove_only": True})
                sp = b.add(f"stop:{res}", Kind.STOP, res, cause, [st], target=o.id, group=group)
                rm = b.add(f"remove:{res}", Kind.REMOVE, res, cause, [sp], target=o.id, group=group)
                ready[name] = b.add(f"rename:{res}", Kind.RENAME, res, cause, [rm], target=tmp,
                                    new_name=name, group=group)
            else:
                rollback = None
                if c.update.on_failure == "rollback" and entry is not None and entry.config and not options.cluster:
                    rollback = {"config": dict(entry.config), "image_id": o.image_id}
                # stop only once the new image and networks are there: less downtime, and a
                # failed pull leaves the old container running (a recreated network is the
                # exception: it needs this container gone first)
                recreated = {net_ready[n] for n in c.networks if n in net_recreated}
                stop_deps = [d for d in base_deps if d not in recreated]
                sp = b.add(f"stop:{res}", Kind.STOP, res, cause, stop_deps, target=o.id, group=group,
                           changes=changes)
                rm = b.add(f"remove:{res}", Kind.REMOVE, res, cause, [sp], target=o.id, group=group)
                if "network" in cause:
                    for n in c.networks:
                        if n in net_recreated:
                            removals_for_net[n].append(rm)
                cr = b.add(f"create:{res}", Kind.CREATE, res, cause, [rm, *recreated], target=name,
                           group=group, rollback=rollback, **create_kw)
                ready[name] = b.add(f"start:{res}", Kind.START, res, cause, [cr], target=name,
                                    group=group, wait=wait, rollback=rollback)
            continue
        # up to date: state rules
        if o.status == "running":
            continue
        if o.status == "restarting":
            b.notes.append(f"{res} is restarting (converging, not drift)")
            continue
        start_cause = _start_cause(c, o)
        if start_cause.startswith("!"):
            b.notes.append(f"{res}: {start_cause[1:]}")
            continue
        ready[name] = b.add(f"start:{res}", Kind.START, res, start_cause, base_deps,
                            target=o.id, wait=wait)

    # a recreated network waits for the removal of every container attached to it
    # (and for pruned containers, which may be attached to it too)
    for n, rms in removals_for_net.items():
        b.nodes[f"remove:network:{n}"].deps.extend([*rms, *container_removals])

    # --- prune networks and volumes after the containers went
    if options.prune and not prune_refused:
        for kind, name in garbage:
            entry = inventory.entries[(kind, name)]
            if kind == "Network":
                res = f"network:{name}"
                o_n = observed.networks.get(name)
                if o_n is None or not _owned(o_n.owner, options):
                    b.add(f"forget:{res}", Kind.FORGET, res, "not in desired state; already gone"
                          if o_n is None else "not in desired state; not ours any more: left untouched")
                else:
                    b.add(f"prune:{res}", Kind.REMOVE_NETWORK, res, "not in desired state (prune)",
                          container_removals, target=name)
            elif kind == "Volume":
                res = f"volume:{name}"
                o_v = observed.volumes.get(name)
                if o_v is None:
                    b.add(f"forget:{res}", Kind.FORGET, res, "not in desired state; already gone")
                elif entry.deletion_policy == "Delete" and _owned(o_v.owner, options):
                    b.add(f"prune:{res}", Kind.REMOVE_VOLUME, res,
                          "not in desired state; deletionPolicy Delete", container_removals, target=name)
                else:
                    b.add(f"forget:{res}", Kind.FORGET, res,
                          "not in desired state; data kept (deletionPolicy Retain): "
                          "no longer tracked, remove it by hand if unwanted")
    for name in sorted(observed.containers):
        oc = observed.containers[name]
        if (_owned(oc.owner, options) and name not in desired.containers
                and ("Container", name) not in inventory.entries and not name.endswith(actions.TEMP_SUFFIX)):
            b.notes.append(f"container:{name} carries our owner label but is not in the inventory: "
                           "left untouched")
    return b.build(rev)


def _start_cause(c: models.Container, o: obs.ObservedContainer) -> str:
    """Why a matching stopped container is started, or "!why not" when the policy says no."""
    if o.status == "created":
        return "created but never started"
    policy = c.restart.name
    code = o.exit_code
    if policy == "always":
        return f"exited (code {code}); restart policy always"
    if policy == "unless-stopped":
        if o.manually_stopped:
            return "!stopped by hand; restart policy unless-stopped keeps it stopped"
        return f"exited (code {code}); restart policy unless-stopped"
    if policy == "on-failure":
        if code == 0:
            return "!exited with code 0; restart policy on-failure leaves it stopped"
        if c.restart.max_retries and o.restart_count >= c.restart.max_retries:
            return (f"!exited (code {code}) after {o.restart_count} restarts; "
                    f"on-failure:{c.restart.max_retries} gave up")
        return f"exited (code {code}); restart policy on-failure"
    return f"!exited (code {code}); restart policy no leaves it stopped"
