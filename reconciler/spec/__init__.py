"""The manifest language: load a file, a directory or stdin into a validated DesiredState.

    from reconciler import spec
    desired = spec.load("examples/manifests/hello")     # raises spec.SpecError

`SpecError.problems` lists every problem of the revision (not only the first), each rendered
as `file:line:column: kind/name: field: message`. Nothing here raises anything else for bad
input. Models are in `reconciler.spec.models`; the spec hash rules in `reconciler.spec.hashing`.
"""

from __future__ import annotations

import gc
import importlib
import os
from collections.abc import Collection, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from reconciler._dataclass import dataclasses
from reconciler.spec.errors import Problem, SpecError

if TYPE_CHECKING:
    from reconciler.spec import models
    from reconciler.spec.composefiles import Options as ComposeOptions
    from reconciler.spec.models import DesiredState
    from reconciler.spec.parsecache import ParseCache
    from reconciler.spec.policy import Policy
    from reconciler.spec.reading import Limits
    from reconciler.spec.sops import Keys
    from reconciler.spec.validity import KnownValid

__all__ = ["ComposeOptions", "DesiredState", "Limits", "Problem", "SpecError", "convert", "load", "models"]

# Submodules and names loaded on first use (PEP 562): `reconcile run` takes its flag parsers from
# reconciler.spec.units and must not pay ~70 ms for the YAML loader and the schemas.
_LAZY = {"building": ("building", None), "lock": ("lock", None), "models": ("models", None),
         "compose": ("compose", None), "ComposeOptions": ("composefiles", "Options"),
         "reading": ("reading", None), "policy": ("policy", None), "DesiredState": ("models", "DesiredState"),
         "Limits": ("reading", "Limits")}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, attr = _LAZY[name]
    module = importlib.import_module(f"{__name__}.{module_name}")
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def load(
    path: str | os.PathLike[str], *, limits: Limits | None = None, use_lock: bool = True, policy: Policy | None = None,
    live: str | os.PathLike[str] | None = None, compose: ComposeOptions | None = None,
    decryption: Keys | None = None, cluster: bool = False, engine: str | None = None,
    known_valid: KnownValid | None = None, parsed: ParseCache | None = None, select: models.Selection | None = None,
) -> DesiredState:
    """Read, validate and build every manifest under `path` ("-" = stdin).

    A directory holding a compose file (compose.yaml, docker-compose.yml, ...; see
    `reconciler.spec.compose`), or a file named like one, is a compose project instead: its
    compose files (and override file), `.env` and env files make the same models, and nothing
    else in the directory is read as a manifest. `compose` sets what `docker compose` takes
    from its command line (files, project name, profiles); by default the project is named
    after `live` (or `path`), as compose names it after its directory.

    With `live` (a source's `Revision.live`, when `path` is a revision copy), a bind source named
    relative to the manifests resolves beneath `live` instead of `path`: the container mounts the
    live file or directory, its existence, content (for the spec hash) and policy are checked
    there, and a new revision leaves the bind where it was. Env files are read from `path`, and
    named by their live path in the spec hash (a revision copy's path would change it each time).

    With a `policy` (reconciler.spec.policy; None allows everything, like the `host` profile),
    every field it refuses is a Problem too, and the revision does not load.

    With `decryption` (reconciler.spec.sops.Keys), an env file that sops encrypted is decrypted
    in memory: its values join the container's env like a plain file's; the spec hash takes the
    keyed digest of its values (`Keys.digest`, under the state root's key when the keys name one:
    the same values encrypted again hash the same), the revision the encrypted file's digest.
    Without it, or when its keys do not open the file, or the file's MAC does not match, that is
    a Problem naming the file.

    `replicas: N` on a Container is N containers `<name>-1` .. `<name>-N` of one host (as compose
    runs a scaled service), each with `replicas` 1; with `cluster` (the runtime is a cluster of
    services, `--runtime swarm`) the Container stays one service with N replicas, and one without
    `restart` (a job aside) is restarted whatever its exit (`always`, Swarm's `any`, as `docker
    stack deploy` makes a service without a restart policy), where a single host leaves it down
    (Docker's `no`).

    `engine` names the engine that converges the manifests (`--runtime`: native, docker, swarm,
    fake; None: any): what it cannot honour (a Volume's `driver` and `driverOpts` on the native
    engine) is a Problem here, before anything is touched, not a failure while converging.

    With `known_valid` (reconciler.spec.validity: the documents that passed their schema in
    earlier loads), a document it holds is not validated again (its key is its content and the
    schema's); the ones that pass now are added to it (its `save()` keeps them). One made
    `aside` (the agent's) has the documents it does not hold checked in a helper process first.

    With `parsed` (reconciler.spec.parsecache: the manifest files parsed in earlier loads), a
    file it holds is not parsed again (its key is the file's text); files parsed now are added
    to it (its `save()` keeps them). Compose files are parsed every time (and checked against the
    Compose Specification's schema through `known_valid` too).

    With `use_lock` (the default), the lock file beside the manifests (lock.py, written by
    `reconcile lock`) pins the image references it names to their digests.

    With `select` (the services a command line named: `reconcile apply SOURCE web`), the state is
    the part they select (reconciler.spec.selection, which says what a pass over it answers for),
    validated whole first; a name that is no compose service (or, of manifests, no Container) is
    a Problem naming the file and the names there are. Naming a compose service that a profile
    disables enables it with its profiles, as compose does (`compose.load`).

    The cyclic garbage collector is paused while loading: the YAML node trees are many small
    acyclic objects, and collections triggered by their allocation tripled the time of a load
    of 1,000 documents. It is re-enabled (if it was on) before returning.
    """
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        desired, _ = _load(os.fspath(path), limits, use_lock, policy, None if live is None else os.fspath(live),
                           compose, decryption, cluster, engine, known_valid, parsed, select)
        return desired
    finally:
        if gc_was_enabled:
            gc.enable()


def convert(
    path: str | os.PathLike[str], *, compose: ComposeOptions | None = None, policy: Policy | None = None,
    engine: str | None = None, cluster: bool = False, select: models.Selection | None = None,
) -> tuple[DesiredState, list[dict[str, Any]]]:
    """The compose project at `path` (or `compose.files`) as native manifest documents, with the
    state they load into; raises SpecError like `load` (also when `path` holds no compose file).
    With `select` (`reconcile convert DIR web`), the documents and the state of what it selects,
    as `load`'s (reconciler.spec.selection `documents`): an unknown name is a SpecError there.

    The documents name files relative to the project directory (bind sources, build contexts):
    saved there, they load into the same objects with the same spec hashes. `engine` and
    `cluster`: as for `load` (the documents are the same either way, but for the names of a
    compose project's services: `<project>_<service>` on a cluster, as docker stack deploy names
    them; the state, and what is refused of it, is the runtime's).
    """
    from reconciler.spec import compose as compose_mod

    target = os.fspath(path)
    if not (compose is not None and compose.files) and not compose_mod.find(target, compose.environ if compose else None):
        names = ", ".join(compose_mod.COMPOSE_FILES)
        raise SpecError([Problem(target, 0, 0, "", "", "", f"no compose file here (one of {names}); give a "
                                 "directory holding one, or the files with -f")])
    desired, docs = _load(target, None, True, policy, None, compose, cluster=cluster, engine=engine, select=select)
    if select is None:
        return desired, [d.data for d in docs]
    from reconciler.spec import selection

    return desired, selection.documents(desired, [d.data for d in docs])


def _load(
    path: str, limits: Limits | None, use_lock: bool = True, policy: Policy | None = None, live: str | None = None,
    compose_opts: ComposeOptions | None = None, decryption: Keys | None = None, cluster: bool = False,
    engine: str | None = None, known_valid: KnownValid | None = None, parsed: ParseCache | None = None,
    select: models.Selection | None = None,
) -> tuple[DesiredState, list[Any]]:
    from reconciler.spec import building, composefiles, lock, models, reading
    from reconciler.spec.models import DesiredState
    from reconciler.spec.reading import Limits

    limits = limits or Limits()
    problems: list[Problem] = []
    warnings: list[Problem] = []
    if policy is not None:
        compose_opts = _policy_environ(compose_opts, policy)
    compose_files = compose_opts.files if compose_opts is not None and compose_opts.files else \
        composefiles.find(path, compose_opts.environ if compose_opts is not None else None) if path != "-" else []
    if compose_opts is not None and compose_opts.files:    # -f: the project directory is the source
        path = composefiles.project_directory(compose_opts, path)
    elif compose_opts is not None and compose_opts.project_name is not None and not compose_files:
        raise SpecError([Problem(path, 0, 0, "", "", "", f"-p {compose_opts.project_name} names a compose project, "
                                 f"and this holds no compose file (one of {', '.join(composefiles.COMPOSE_FILES)}); "
                                 "leave -p out for manifests, or name the compose files with -f")])
    elif compose_opts is not None and compose_opts.profiles and not compose_files:
        raise SpecError([Problem(path, 0, 0, "", "", "", f"--profile {compose_opts.profiles[0]} enables services of a "
                                 "compose project, and this holds no compose file (one of "
                                 f"{', '.join(composefiles.COMPOSE_FILES)}); leave --profile out for manifests, or "
                                 "name the compose files with -f")])
    root = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path)) if path != "-" else os.getcwd()
    # the manifests' bases are real paths (reading.py), and so is the root they are placed from
    builder = building.Builder(problems, limits, root=os.path.realpath(root),
                               live=None if live is None else os.path.normpath(os.path.abspath(live)),
                               decryption=decryption, engine=engine, warnings=warnings, known_valid=known_valid,
                               cluster=cluster)
    project = ""
    compose_problems = 0            # how many of `problems` the compose steps reported
    dropped: list[str] = []         # the compose keys whose values they took out
    location: dict[str, str] = {}   # a compose project's labels of where it is (not hashed)
    profiles: tuple[str, ...] = ()  # its active profiles
    services: list[str] = []        # its active services
    if compose_files:
        project, docs, source_files, dropped, location, profiles, services = _compose(
            path, live, list(compose_files), compose_opts, builder, warnings, policy,
            select.services if select is not None else ())
        compose_problems = len(problems)
    else:
        sources = reading.read_source(path, problems, limits)
        source_files = [s.path for s in sources]
        docs = []
        for source in sources:
            if _sops_manifest(source.path, source.text):
                problems.append(Problem(source.path, 1, 1, "", "", "", "a SOPS-encrypted file: manifests are "
                                        "read as written, never decrypted; keep the secret values in an env file "
                                        "(envFiles) encrypted with sops, and name this file other than *.yaml/*.yml "
                                        "or move it out of the manifests' directory"))
                continue
            docs.extend(reading.parse(source, problems, limits, cache=parsed))
    lock_file = lock.lock_path(path) if use_lock else None
    if lock_file is not None and lock_file.exists():
        builder.pins = lock.read(lock_file, problems)
        builder.read_file(os.path.abspath(lock_file))      # its content counts in the revision (absolute:
        #                                                    the order of files must not depend on the cwd)
    if known_valid is not None and known_valid.aside:     # the agent: new documents checked in a helper
        known_valid.check_aside((d.data["kind"], d.data, d.digest) for d in docs if not d.problems
                                and isinstance(d.data, dict) and d.data.get("kind") in models.KINDS)
    classified = [builder.classify(doc) for doc in docs]

    names: dict[str, set[str]] = {kind: set() for kind in models.KINDS}
    by_kind: dict[str, dict[str, building._Doc]] = {kind: {} for kind in models.KINDS}
    for d in classified:
        if not d.kind or not d.name:
            continue
        if d.name in names[d.kind]:
            first = by_kind[d.kind].get(d.name)
            where = f" (first defined at {first.raw.file}:{first.raw.line})" if first else ""
            builder.report(d, ("metadata", "name"), f"duplicate {d.kind} name {d.name!r}{where}")
            continue
        names[d.kind].add(d.name)
        if d.data is not None:      # valid, or valid once its schema errors are left out
            by_kind[d.kind][d.name] = d

    external = {kind: tuple(n for n, d in sorted(by_kind[kind].items()) if builder.external(d)) for kind in ("Network", "Volume")}
    networks = {n: builder.network(d) for n, d in sorted(by_kind["Network"].items()) if n not in external["Network"]}
    volumes = {n: builder.volume(d) for n, d in sorted(by_kind["Volume"].items()) if n not in external["Volume"]}
    images = {n: builder.image(d) for n, d in sorted(by_kind["Image"].items())}
    containers = {n: builder.container(d, images, names) for n, d in sorted(by_kind["Container"].items())}
    builder.check_port_conflicts(by_kind["Container"], containers)
    builder.check_addresses(by_kind["Container"], containers, networks)
    builder.check_cycles(by_kind["Container"], containers)
    objects = containers                    # each Container as declared, before its replicas are made
    if not cluster:
        containers = builder.replicate(by_kind["Container"], containers)
        # on a cluster a mount without source stays so: each copy gets Swarm's own anonymous
        # volume, as `docker stack deploy` gives it
        containers = builder.anonymous_volumes(by_kind["Container"], containers, volumes)
    if location:
        containers = {n: dataclasses.replace(c, location_labels=location) for n, c in containers.items()}
    if policy is not None:
        from reconciler.spec import policy as policy_mod

        policy_mod.check(
            policy, builder.root,
            [(d, d.data.get("spec") or {}) for d in by_kind["Image"].values()],
            [(d, d.data.get("spec") or {}) for d in by_kind["Container"].values()],
            names["Image"], lambda d, p: builder.resolve(d.raw.base, p), builder.report,
            bind_root=builder.live, resolve_bind=lambda d, p: builder.live_path(d.raw.base, p),
            externals=[by_kind[k][n] for k in ("Network", "Volume") for n in external[k]],
            volumes=[(d, d.data.get("spec") or {}) for d in by_kind["Volume"].values()],
        )
    if problems:
        raise SpecError(_new_to_compose(problems, compose_problems, dropped) if compose_problems else problems)

    desired = DesiredState(
        containers=_frozen(containers),
        images=_frozen(images),
        networks=_frozen(networks),
        volumes=_frozen(volumes),
        revision=building.revision_of(docs, builder.files, os.path.abspath(root)),
        sources=tuple(sorted(source_files)),
        files=MappingProxyType(dict(builder.files)),    # what `reconcile rollback` keeps a copy of
        project=project,
        compose_files=tuple(source_files) if compose_files else (),
        compose_profiles=profiles,
        warnings=tuple(str(w) for w in sorted(warnings, key=Problem.sort_key)),
        external_networks=external["Network"],
        external_volumes=external["Volume"],
    )
    if select is not None:
        desired = _selected(desired, select, services if compose_files else None, builder.copies, objects,
                            source_files[0] if compose_files and source_files else path)
    return desired, docs


def _selected(desired: DesiredState, select: models.Selection, services: list[str] | None,
              copies: dict[str, list[str]], objects: Mapping[str, models.Container], where: str) -> DesiredState:
    """The part of `desired` that `select` names (reconciler.spec.selection): a compose
    project's `services` by the containers labelled with each, else Containers by their names
    in the manifests (`copies`: the replicas `Builder.replicate` made of each). A Container of
    `objects` (as declared) with `replicas: 0` is its unit's `idle` model: what it depends on and
    uses, its `dependsOn` named as `replicate` names them."""
    from reconciler.spec import selection

    idle: dict[str, models.Container] = {}
    for name, made in copies.items():
        if not made and name in objects:
            c = objects[name]
            unit = c.labels.get(selection.COMPOSE_SERVICE, name) if services is not None else name
            idle[unit] = dataclasses.replace(c, depends_on=tuple(r for d in c.depends_on for r in copies.get(d, [d])))
    units: dict[str, list[str]] = {}
    if services is not None:
        units = {s: [] for s in services}
        for name, c in desired.containers.items():
            service = c.labels.get(selection.COMPOSE_SERVICE)
            if service in units:
                units[service].append(name)
        return selection.select(desired, select, units, where=where, idle=idle)
    replicas = {copy: obj for obj, made in copies.items() for copy in made}
    units = {obj: [] for obj in copies}                 # `replicas: 0`: a Container of none
    for name in desired.containers:
        units.setdefault(replicas.get(name, name), []).append(name)
    return selection.select(desired, select, units, where=where, what="Container", idle=idle)


def _compose(
    path: str, live: str | None, files: list[str], opts: ComposeOptions | None, builder: Any,
    warnings: list[Problem], policy: Policy | None, services: tuple[str, ...] = (),
) -> tuple[str, list[Any], list[str], list[str], dict[str, str], tuple[str, ...], list[str]]:
    """The native documents of the compose project at `path` (compose.py, compose_native.py),
    the compose keys whose values a problem took out (`compose.Reader.dropped`), the labels
    that say where the project is (`compose_native.location_labels`, at `live` for a revision
    copy: kept out of the documents, whose content makes the revision id), its active
    profiles (with those of the `services` named, which enables them: `compose.load`) and its
    active services. A project with problems still gives its documents: the manifests' checks of
    them may find more."""
    from reconciler.spec import compose, compose_native

    opts = opts or compose.Options()
    if opts.default_name is None:
        named = os.path.abspath(live if live is not None else path)
        if not os.path.isdir(named):    # a compose file given by path: its directory names the project, as compose's
            named = os.path.dirname(named)
        opts = dataclasses.replace(opts, default_name=os.path.basename(named))
    refuse = None
    if policy is not None and not policy.unrestricted:
        from reconciler.spec import policy as policy_mod

        refuse = lambda p: policy_mod.refuse_file(policy, builder.root, p)  # noqa: E731 - a one-line hook
    rd = compose.Reader(builder.problems, warnings, builder.read_file, refuse or (lambda _p: None), builder.limits,
                        open_sops=builder.decrypted, known_valid=builder.known_valid)
    model = compose.load(path, opts, rd, files=files, services=services)
    if model is None:
        raise SpecError(builder.problems or [Problem(files[0], 0, 0, "", "", "", "the compose project does not load")])
    docs = compose_native.documents(model, rd, cluster=builder.cluster)
    return (model.name, docs, list(model.files), [compose.fmt(p) for p in rd.dropped],
            compose_native.location_labels(model, live), model.profiles, list(model.services))


def _policy_environ(opts: ComposeOptions | None, policy: Policy) -> ComposeOptions | None:
    """The compose options a source under `policy` is read with: of the loading process's
    environment (the agent's own, or the shell of `reconcile apply`), compose's interpolation,
    its bare `environment:` keys and build args see only the variables the policy's secretEnv
    lists (none under restricted: `${AGENT_TOKEN}` would put the agent's credential into a
    container); the project's `.env`, its env files and `${VAR:-default}` give the rest."""
    import fnmatch

    from reconciler.spec import composefiles
    from reconciler.spec import policy as policy_mod

    if policy_mod.ANY in policy.secret_env:
        return opts
    opts = opts or composefiles.Options()
    environ = os.environ if opts.environ is None else opts.environ
    allowed = {k: v for k, v in environ.items() if any(fnmatch.fnmatchcase(k, p) for p in policy.secret_env)}
    return dataclasses.replace(opts, environ=allowed)


def _new_to_compose(problems: list[Problem], first: int, dropped: list[str]) -> list[Problem]:
    """The compose steps' problems (the first `first`), and those the manifests' checks found
    after them that are new: not at a compose key the compose steps reported a problem at (or
    one holding it), nor at one a value was taken out of, where they only repeat it (an
    undefined network is "no Network named" there) or follow from it (a service whose image did
    not interpolate "misses" its image)."""
    reported = {p.field for p in problems[:first] if p.field}
    out = problems[:first]
    for p in problems[first:]:
        if not p.field or not (_held(p.field, reported) or _held(p.field, dropped)
                               or any(_held(d, {p.field}) for d in dropped)):
            out.append(p)
    return out


def _held(key: str, keys: Collection[str]) -> bool:
    """Whether the compose key `key` (`services.web.ports[0]`) is one of `keys` or lies under one."""
    while key and key not in keys:
        key = key[:max(key.rfind("."), key.rfind("["), 0)]
    return bool(key)


def _sops_manifest(path: str, text: str) -> bool:
    """Whether a manifest file is one sops encrypted (its `sops:` mapping at the top level)."""
    if "\nsops:" not in text and not text.startswith("sops:"):
        return False
    from reconciler.spec import sops

    return sops.is_encrypted(path, text.encode())


def _frozen(items: dict[str, Any]) -> MappingProxyType[str, Any]:
    return MappingProxyType(items)
