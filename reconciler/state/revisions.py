"""Kept revisions: a copy of what a converged `reconcile apply` loaded, for `reconcile rollback`.

    <root>/revisions/<revision id>/revision.json    what was kept, from where, and whether it can
                                                    be re-applied (and if not, why)
    <root>/revisions/<revision id>/tree/...         the manifest files and every file they
                                                    reference (env files, bind source files, the
                                                    lock file, Dockerfiles), at their paths
                                                    relative to a common base directory

The directory is named by the revision id, itself the hash of all that content, so a revision
applied twice is kept once. The copy is verified when it is made: loading `tree/` must give the
same revision id, or it is marked as not re-appliable (with the reason).

Re-applying (`load`) reads the copy and maps paths back to where the files came from, so a
container's spec hash is the one it had when the revision was applied (`reconcile rollback`
restores exactly that container), except for containers bind-mounting a manifest-owned file or
taking a secret file from the manifests: they mount the kept copy (the revision's content; the copy
keeps the original's mode and owner), so their spec hash names the copy.
Directories bind-mounted from the manifests' tree (often data) are not copied: the container
mounts the original directory again. Revisions that build an image from a context directory,
or were read from stdin, are recorded as not re-appliable.

Pruning counts per owner, as history and rollback do: an owner's pass removes its own converged
revisions beyond its newest `keep` (by the history), never one another owner's history names
(that owner's passes prune it), and copies no owner's history names any more (no rollback can
reach them). A count over all owners let a busy owner prune a quiet one's rollback targets.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from reconciler import spec
from reconciler._dataclass import dataclass, dataclasses
from reconciler._private import make_private
from reconciler.errors import TerminalError
from reconciler.spec import models
from reconciler.spec.ids import ResourceId
from reconciler.spec.sopskeys import Keys

__all__ = ["DEFAULT_KEEP", "META", "RevisionStore", "Snapshot", "SnapshotError"]

DEFAULT_KEEP = 10
META = "revision.json"
_TREE = "tree"


class SnapshotError(TerminalError):
    """A kept revision is missing, unusable or does not load."""


@dataclass(frozen=True)
class Snapshot:
    """One kept revision (its revision.json)."""

    revision: str
    path: Path                                   # <root>/revisions/<id>
    source: str = ""                             # what was applied (absolute path)
    base: str = ""                               # the common directory the tree mirrors
    load: str = ""                               # the source relative to base (what to load)
    saved_at: float = 0.0
    rollback: bool = False                       # can be re-applied
    reason: str = ""                             # why not
    spec_hashes: Mapping[str, str] = dataclasses.field(default_factory=dict)   # "Kind/name" -> hash
    project: str = ""                            # a compose project's name ("" for manifests): the
    #                                              copy loads under it, not under the copy's directory
    compose_files: tuple[str, ...] = ()          # its compose files relative to base, in the order they
    #                                              merged: the copy reads them as -f (whatever named them)
    compose_profiles: tuple[str, ...] | None = None  # its active profiles (--profile, COMPOSE_PROFILES): the
    #                                              copy loads with them, whatever the shell says then (None:
    #                                              kept before they were recorded: COMPOSE_PROFILES decides)

    def to_json(self) -> dict[str, Any]:
        return {"revision": self.revision, "source": self.source, "base": self.base, "load": self.load,
                "saved_at": self.saved_at, "rollback": self.rollback, "reason": self.reason,
                "spec_hashes": dict(self.spec_hashes), "project": self.project,
                "compose_files": list(self.compose_files),
                **({} if self.compose_profiles is None else {"compose_profiles": list(self.compose_profiles)})}


def _load_copy(tree: Path, snap: Snapshot, decryption: Keys | None = None, cluster: bool = False,
               select: models.Selection | None = None) -> models.DesiredState:
    """The kept copy under `tree` loaded as the original was: a compose project under its own
    name, from the compose files it merged, in their order (as `-f` names them: those of `apply
    -f`, of COMPOSE_FILE, or found by their names), in its project directory, with the profiles
    that were active (`--profile` or COMPOSE_PROFILES then, not the shell's now); its
    SOPS-encrypted files (kept encrypted) decrypted again with `decryption`; replicas as one
    service each on a cluster (spec.load's `cluster`); the part `select` names (spec.load's)."""
    path = tree / snap.load
    if snap.project:
        files = tuple(str(tree / f) for f in snap.compose_files)
        directory = str(path if path.is_dir() else path.parent) if files else None
        return spec.load(path, compose=spec.ComposeOptions(project_name=snap.project, files=files,
                                                           project_directory=directory,
                                                           profiles=snap.compose_profiles),
                         decryption=decryption, cluster=cluster, select=select)
    return spec.load(path, decryption=decryption, cluster=cluster, select=select)


class RevisionStore:
    """The kept revisions under `<root>/revisions`; `decryption` opens their SOPS files."""

    def __init__(self, root: str | os.PathLike[str], *, decryption: Keys | None = None, cluster: bool = False) -> None:
        self.dir = Path(root) / "revisions"
        self.decryption = decryption
        self.cluster = cluster

    # -- keeping ------------------------------------------------------------------------------

    def save(self, desired: models.DesiredState, source: str) -> Snapshot:
        """Keep `desired` (loaded from `source`); a revision kept already is kept once."""
        final = self.dir / desired.revision
        existing = self.get(desired.revision)
        if existing is not None:
            return existing
        make_private(self.dir)                  # copies of env files: as private as the state root
        tmp = self.dir / f".tmp-{desired.revision[:12]}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(mode=0o700)
        try:
            snap = self._build(desired, source, tmp)
            (tmp / META).write_text(json.dumps(snap.to_json(), indent=1, sort_keys=True))
            try:
                os.rename(tmp, final)
            except OSError:                     # kept by a concurrent pass meanwhile
                if self.get(desired.revision) is None:
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dataclasses.replace(snap, path=final)

    def _build(self, desired: models.DesiredState, source: str, tmp: Path) -> Snapshot:
        hashes = _spec_hashes(desired)
        snap = Snapshot(revision=desired.revision, path=tmp, source=source, saved_at=time.time(),
                        spec_hashes=hashes, project=desired.project,
                        compose_profiles=desired.compose_profiles if desired.project else None)
        if source == "-":
            return dataclasses.replace(snap, reason="read from stdin: no copy kept; apply it again instead")
        built = sorted(n for n, i in desired.images.items() if i.build is not None)
        if built:
            return dataclasses.replace(snap, reason=f"builds image {built[0]} from a context directory, which "
                                       "is not kept; revert the files and apply them instead")
        src = os.path.realpath(source)
        manifests = [os.path.realpath(p) for p in desired.sources]
        files = [os.path.abspath(p) for p in desired.files]
        dirs = sorted({m.source for c in desired.containers.values() for m in c.volumes
                       if m.type == "bind" and m.source not in desired.files and os.path.isdir(m.source)})
        base = os.path.commonpath([src if os.path.isdir(src) else os.path.dirname(src), *manifests, *files, *dirs])
        tree = tmp / _TREE
        # files a container mounts (binds, and secret files, which the Docker engine bind-mounts
        # too): their copies keep the original's mode, so the same container user can read them
        binds = {m.source for c in desired.containers.values() for m in c.volumes if m.type == "bind"} | \
            {s.source for c in desired.containers.values() for s in c.secrets if s.source}
        for path in (*manifests, *files):
            dest = tree / os.path.relpath(path, base)
            dest.parent.mkdir(parents=True, exist_ok=True)
            _copy(path, dest, private=path not in binds)
        for d in dirs:                          # placeholders: the loader checks they exist
            (tree / os.path.relpath(d, base)).mkdir(parents=True, exist_ok=True)
        snap = dataclasses.replace(snap, base=base, load=os.path.relpath(src, base),
                                   compose_files=tuple(os.path.relpath(os.path.realpath(f), base)
                                                       for f in desired.compose_files))
        try:
            kept = _load_copy(tree, snap, self.decryption, self.cluster)
        except spec.SpecError as e:
            first = str(e.problems[0]) if e.problems else str(e)
            return dataclasses.replace(snap, reason=f"the kept copy does not load ({first})")
        if kept.revision != desired.revision:
            return dataclasses.replace(snap, reason="the files changed while the pass ran; the kept copy "
                                       "is a different revision")
        return dataclasses.replace(snap, rollback=True)

    # -- reading ------------------------------------------------------------------------------

    def get(self, revision: str) -> Snapshot | None:
        path = self.dir / revision
        try:
            doc = json.loads((path / META).read_text())
        except (OSError, ValueError):
            return None
        return Snapshot(revision=str(doc["revision"]), path=path, source=str(doc.get("source", "")),
                        base=str(doc.get("base", "")), load=str(doc.get("load", "")),
                        saved_at=float(doc.get("saved_at", 0.0)), rollback=bool(doc.get("rollback")),
                        reason=str(doc.get("reason", "")), spec_hashes=dict(doc.get("spec_hashes", {})),
                        project=str(doc.get("project", "")),
                        compose_files=tuple(str(f) for f in doc.get("compose_files", ())),
                        compose_profiles=tuple(str(p) for p in doc["compose_profiles"])
                        if isinstance(doc.get("compose_profiles"), list) else None)

    def kept(self) -> list[Snapshot]:
        """Every kept revision, newest first."""
        try:
            names = [p.name for p in self.dir.iterdir() if not p.name.startswith(".")]
        except FileNotFoundError:
            return []
        snaps = [s for s in (self.get(n) for n in names) if s is not None]
        return sorted(snaps, key=lambda s: s.saved_at, reverse=True)

    def load(self, snap: Snapshot, *, select: models.Selection | None = None) -> models.DesiredState:
        """The kept revision's desired state (the part `select` names: a pass's selection of
        services), its paths mapped back to where the files came from."""
        if not snap.rollback:
            raise SnapshotError(f"revision {snap.revision[:12]} cannot be re-applied: {snap.reason}")
        tree = Path(os.path.realpath(snap.path / _TREE))     # the loader resolves symlinks
        try:
            loaded = _load_copy(tree, snap, self.decryption, self.cluster, select)
        except spec.SpecError as e:
            raise SnapshotError(f"the kept copy of revision {snap.revision[:12]} does not load:\n{e}",
                                hint=f"remove {snap.path} and apply the files instead") from None
        if loaded.revision != snap.revision:
            raise SnapshotError(f"the kept copy of revision {snap.revision[:12]} was changed "
                                f"(it reads as {loaded.revision[:12]})",
                                hint=f"remove {snap.path} and apply the files instead")
        return _map_back(loaded, tree, Path(snap.base), snap.spec_hashes)

    # -- pruning ------------------------------------------------------------------------------

    def prune(self, keep: int, owner: str, converged: Mapping[str, Sequence[str]],
              protect: Collection[str] = ()) -> list[str]:
        """Remove `owner`'s revisions beyond its `keep` newest, and those no owner has converged
        to; `converged` is every owner's converged revisions, newest first (history's
        `converged_revisions`); `protect` is never removed (the revision applied now)."""
        own = converged.get(owner, ())
        others = {r for o, revs in converged.items() if o != owner for r in revs}
        stays = {*own[:max(0, keep)], *others, *protect}
        gone = [s.revision for s in self.kept() if s.revision not in stays]
        for rev in gone:
            shutil.rmtree(self.dir / rev, ignore_errors=True)
        for tmp in self.dir.glob(".tmp-*"):     # left by a pass killed while keeping a revision
            try:
                if time.time() - tmp.stat().st_mtime > 3600:
                    shutil.rmtree(tmp, ignore_errors=True)
            except FileNotFoundError:
                pass
        return gone


def _copy(src: str, dest: Path, *, private: bool = False) -> None:
    """A file with its mode and owner: a bind-mounted copy must be readable (or executable) by the
    same container user as the original. Files only the reconciler reads (manifests, env files)
    are `private`: 0600, whatever the original's mode."""
    shutil.copy2(src, dest)
    if private:
        os.chmod(dest, 0o600)
    st = os.stat(src)
    if os.geteuid() == 0:
        os.chown(dest, st.st_uid, st.st_gid)


def _spec_hashes(desired: models.DesiredState) -> dict[str, str]:
    out: dict[str, str] = {}
    for kind, objs in (("Container", desired.containers), ("Image", desired.images),
                       ("Network", desired.networks), ("Volume", desired.volumes)):
        for name, obj in objs.items():
            out[ResourceId(kind, name).key] = obj.spec_hash
    return out


def _map_back(
    d: models.DesiredState, tree: Path, base: Path, hashes: Mapping[str, str],
) -> models.DesiredState:
    def back(p: str) -> str:
        rel = os.path.relpath(p, tree)
        return p if rel.startswith("..") else os.path.normpath(base / rel)

    def origin(o: models.Origin) -> models.Origin:
        return dataclasses.replace(o, file=back(o.file))

    containers: dict[str, models.Container] = {}
    for name, c in d.containers.items():
        owns_file = False
        mounts = []
        for m in c.volumes:
            if m.type == "bind" and m.source in d.files:
                owns_file = True                # the revision's content: mount the kept copy
            elif m.type == "bind":
                m = dataclasses.replace(m, source=back(m.source))
            mounts.append(m)
        if any(sf.source in d.files for sf in c.secrets):
            owns_file = True                    # a secret file's content is the revision's: the kept copy
        c = dataclasses.replace(c, origin=origin(c.origin), env_files=tuple(back(p) for p in c.env_files),
                                volumes=tuple(mounts), location_labels={
                                    k: ",".join(back(p) for p in v.split(",")) for k, v in c.location_labels.items()})
        if not owns_file:                       # now what loading the original files gave
            c = dataclasses.replace(c, spec_hash=hashes.get(ResourceId.container(name).key, c.spec_hash))
        containers[name] = c
    images = {n: dataclasses.replace(i, origin=origin(i.origin)) for n, i in d.images.items()}
    networks = {n: dataclasses.replace(x, origin=origin(x.origin)) for n, x in d.networks.items()}
    volumes = {n: dataclasses.replace(v, origin=origin(v.origin)) for n, v in d.volumes.items()}
    from types import MappingProxyType

    return dataclasses.replace(
        d, containers=MappingProxyType(containers), images=MappingProxyType(images),
        networks=MappingProxyType(networks), volumes=MappingProxyType(volumes),
        sources=tuple(back(s) for s in d.sources), compose_files=tuple(back(f) for f in d.compose_files),
    )
