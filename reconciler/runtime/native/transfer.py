"""Moving containers and volumes between hosts without a registry (`container export/import`,
`volume export/import`).

A container archive is a tar of, in this order (runtime/moving.py imports it on any engine):
  reconciler-container.json   {"format": "reconciler-container/v1", "name", "config" (the runtime
                              ContainerConfig as JSON, runtime.base's codec), "image" (what it
                              ran, as it was named), "image_id" (image.tar's image), "volumes":
                              [names], "digests": {"volumes/<name>.tar": "sha256:..."},
                              "volume_labels": {name: labels} (of every volume it mounts: the
                              import names an anonymous one anew), "checkpoint": null}; without
                              image.tar also "image_digests": ["REPO@sha256:..."] (the image's
                              RepoDigests), and "image_id" is the container's own image
  image.tar                   a `reconcile save` archive of the container's image with its rootfs
                              changes committed on top (commit.py), so the same archive can be
                              loaded by any engine; left out with `with_image=False`: nothing is
                              committed, the header names the container's own image, which the
                              import finds on the importing host by id or digest or pulls by its
                              digest (runtime/moving.py `_image_here`), and a container that
                              changed its root filesystem is refused unless `discard_changes`
  volumes/<name>.tar          the data of each named volume the container mounts, checked at
                              import against its digest in the header (the image's blobs are
                              checked by the load); the volumes are written to temporary files
                              under the state root first, as their digests go in the header
The "checkpoint" key is reserved for a CRIU checkpoint section (live migration), not built: the
criu of these hosts fails `criu check`.

A volume archive is a plain tar of the volume's content (numeric owners, modes, times, xattrs as
PAX SCHILY.xattr.*), its root directory first as `.` (its owner, mode and times: what a container
sees at the mount point). Import unpacks through the layer extractor (openat2 RESOLVE_IN_ROOT, the
pull's limits) into a fresh directory that replaces the volume's data only when complete (an
archive without `.` gives it a new volume's 0755 root); a file's whole 4 KiB blocks of zeros become
holes again (a sparse file travels expanded: tarfile writes no sparse members, and the extractor
refuses them; its holes are read as zeros without reading them, and the archives spooled under the
state root keep them as holes: runtime/sparse.py). A non-empty volume
is refused, a recorded one whose data was lost (deleted outside the engine) is restored in place.
An archive the extractor refuses leaves nothing (a volume the import made goes again) and is
told in a volume's words (`_refused`: the extractor speaks of layers and pulls).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, BinaryIO, cast

from reconciler.runtime import base, errors, sparse
from reconciler.runtime.native import commit
from reconciler.runtime.native.containers import containers, records
from reconciler.runtime.native.images import archive, layers
from reconciler.runtime.native.images.images import ImageStore
from reconciler.runtime.native.volumes.volumes import VolumeStore

__all__ = ["export_container", "export_volume", "import_volume", "refuse_writers"]

FORMAT = "reconciler-container/v1"          # read by runtime/moving.py (the import, on any engine)
Progress = Callable[[str], None]


# ------------------------------------------------------------------------------------ volumes

def refuse_writers(manager: containers.ContainerManager, names: Sequence[str], *, hint: str,
                   but: str | None = None) -> None:
    """Refuse to copy the volumes `names` while a container that mounts one runs (or waits its
    restart), other than `but` (the exported container itself, stopped or paused): its data could
    change under the archive. `hint`: what to do, after stopping it."""
    wanted = set(names)
    for rec in manager.records():
        if rec.id == but or not rec.runs():
            continue
        shared = [m.source for m in rec.config.mounts if m.type == "volume" and m.source in wanted]
        if shared:
            how = "running" if rec.status == "running" else "restarting"
            raise errors.Conflict(f"volume {shared[0]} is used by {how} container {rec.name}",
                                  hint=f"stop {rec.name} first, so the copy is consistent{hint}")


def export_volume(volumes: VolumeStore, name: str, out: IO[bytes], *,
                  manager: containers.ContainerManager | None = None) -> None:
    """The volume's content as a tar stream (PAX: numeric owners, modes, times, xattrs, hard
    links), its root directory first as `.`: the owner and mode a container sees at the mount
    point (a non-root container's data directory) go with the data. With the engine's
    containers (`manager`): refused while one that mounts it runs (`refuse_writers`)."""
    if manager is not None:
        refuse_writers(manager, [name], hint="")
    state = volumes.get(name)
    if state.problem is not None:
        raise errors.Conflict(f"volume {name}: {state.problem}", hint=state.hint)
    data = os.path.realpath(volumes.data_dir(name))      # (a local bind volume's: its directory)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        todo = [(data, ".")]
        while todo:
            path, arcname = todo.pop()
            info = tar.gettarinfo(path, arcname)    # lstat; a file's further hard links as links
            if info is None:                        # a socket: tar leaves it out too
                continue
            _xattrs(info, path)
            if info.isreg():
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    tar.addfile(info, sparse.Reader(fd))    # (a sparse file's holes: zeros, unread)
                finally:
                    os.close(fd)
            else:
                tar.addfile(info)
            if info.isdir():
                prefix = "" if arcname == "." else arcname + "/"
                todo.extend((os.path.join(path, e), prefix + e) for e in sorted(os.listdir(path), reverse=True))


def _xattrs(info: tarfile.TarInfo, path: str) -> None:
    """The entry's xattrs as PAX `SCHILY.xattr.*` records (GNU tar's and Docker's form; tarfile
    writes none of its own), those the extractor applies (layers.kept_xattr): user.*,
    security.capability, trusted.*."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:                                  # (a file system without them)
        return
    records = dict(info.pax_headers)
    for xname in sorted(names):
        if layers.kept_xattr(xname):
            with contextlib.suppress(OSError):
                value = os.getxattr(path, xname, follow_symlinks=False)
                records[f"SCHILY.xattr.{xname}"] = value.decode("utf-8", "surrogateescape")
    info.pax_headers = records


def import_volume(volumes: VolumeStore, name: str, src: IO[bytes], *, store: ImageStore,
                  labels: Mapping[str, str] | None = None) -> base.VolumeState:
    """Create (or fill an empty) volume `name` from a tar stream, through the layer extractor; a
    recorded volume whose data was lost is restored in place (its record and labels kept). A
    refused or failed import leaves nothing: a volume it made goes again, one that was there is
    left as it was."""
    made = False
    try:
        state = volumes.get(name)
    except errors.NotFound:
        state, made = volumes.ensure(base.VolumeConfig(name=name, labels=dict(labels or {}))), True
    try:
        data = volumes.data_dir(name)
        if volumes.bound(name):
            raise errors.Conflict(f"volume {name} binds {volumes.bound(name)}: an import does not write there",
                                  hint="import under another name")
        if state.problem is None and any(data.iterdir()):
            raise errors.Conflict(f"volume {name} is not empty", hint="remove it or import under another name")
        data.parent.mkdir(exist_ok=True)        # (gone with a lost volume's data)
        tmp = data.parent / f"_import-{secrets.token_hex(4)}"
        tmp.mkdir()
        os.chmod(tmp, 0o755)  # noqa: S103 - a new volume's _data (volumes.ensure), whatever the umask; the archive's `.` sets its own
        try:
            layers.apply_layer(cast(BinaryIO, _Unclosable(src)), tmp, limits=store.limits, holes=True)
            volumes.fill(name, tmp)
        except layers.LayerError as exc:
            raise _refused(name, exc) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        if made:
            with contextlib.suppress(errors.RuntimeBackendError):
                volumes.remove(name)
        raise
    return volumes.get(name)


# the extractor's words for an image's layer, and a volume archive's
_WORDS = (("the layer root", "the volume's root"), ("the layer's", "the archive's"), ("the layer", "the archive"),
          ("in the image", "in the archive"))


def _refused(name: str, exc: layers.LayerError) -> errors.ImageError:
    """The extractor's refusal of a volume archive in a volume's words (not a layer's, nor a
    pull's hints): what is wrong, and that nothing was imported."""
    message = exc.message
    for layer_word, volume_word in _WORDS:
        message = message.replace(layer_word, volume_word)
    hint = exc.hint if exc.hint and "sparse" in exc.hint else (
        "the archive is damaged, hostile or over the import's limits (docs/security.md, Hostile archives); "
        "make one with: reconcile volume export VOLUME")
    return errors.ImageError(f"volume {name}: the archive is refused: {message}; nothing was imported", hint=hint)


class _Unclosable:
    """A stream passed to a reader that closes what it is given (the outer tar goes on)."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n)

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------------ containers

def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = path.stat().st_size, 0o600, 0
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        tar.addfile(info, sparse.Reader(fd))        # (spooled sparse: its holes unread)
    finally:
        os.close(fd)


def _add_bytes(tar: tarfile.TarFile, name: str, raw: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(raw), 0o600, 0
    tar.addfile(info, _BytesReader(raw))


def _volume(volumes: VolumeStore, name: str) -> base.VolumeState | None:
    try:
        return volumes.get(name)
    except errors.NotFound:
        return None


class _Hashing:
    """A writer that hashes what it passes on (a volume's tar, whose digest the header records)."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.hash = hashlib.sha256()

    def write(self, b: bytes) -> int:
        self.hash.update(b)
        return self._f.write(b)


class _BytesReader:
    def __init__(self, raw: bytes) -> None:
        self._raw, self._pos = raw, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._raw) if n < 0 else self._pos + n
        chunk, self._pos = self._raw[self._pos:end], min(end, len(self._raw))
        return chunk


def _stopped_or_paused(manager: containers.ContainerManager, rec: records.Record,
                       leave_running: bool) -> contextlib.AbstractContextManager[None]:
    """A consistent copy: a stopped container as it is, a running one paused (commit's rule) only
    when the caller said so."""
    if rec.status == "running" and not leave_running:
        raise errors.Conflict(f"container {rec.name} is running",
                              hint="stop it first (a consistent copy), or pass --leave-running to pause it "
                                   "while it is copied")
    return commit.paused(manager, rec, True)


def export_container(store: ImageStore, manager: containers.ContainerManager, volumes: VolumeStore,
                     name: str, out: IO[bytes], *, with_image: bool = True, with_volumes: bool = True,
                     leave_running: bool = False, discard_changes: bool = False,
                     progress: Progress | None = None) -> str:
    """Write the container archive of `name` to `out`; returns the id of the image it names (the
    committed one, or without the image the container's own: `_image_refs`)."""
    say = progress or (lambda _m: None)
    rec = manager.get(name)
    mounted = [m.source for m in rec.config.mounts if m.type == "volume"]
    vols = mounted if with_volumes else []
    refuse_writers(manager, vols, but=rec.id, hint=", or pass --without-volumes to leave the volumes' data out")
    had = {i.id for i in store.list()}
    with tempfile.TemporaryDirectory(dir=store.config.root, prefix="export-") as tmpdir, \
            _stopped_or_paused(manager, rec, leave_running):
        tmp = Path(tmpdir)
        if with_image:
            image_id = commit.commit(store, manager, rec.id, pause=False, message=f"export of {rec.name}")
        else:
            image_id = rec.image_id
            _refuse_changes(manager, rec, discard_changes)
        try:
            digests = {}
            for i, v in enumerate(vols):
                say(f"saving volume {v}")
                with open(tmp / f"volume-{i}.tar", "wb") as f:
                    holed = sparse.Writer(f)        # a sparse file's zeros take no disk here either
                    hashing = _Hashing(cast(IO[bytes], holed))
                    export_volume(volumes, v, cast(IO[bytes], hashing))
                    holed.flush()
                digests[f"volumes/{v}.tar"] = "sha256:" + hashing.hash.hexdigest()
            labels = {v: dict(state.labels) for v in mounted if (state := _volume(volumes, v)) is not None}
            header = {"format": FORMAT, "name": rec.name, "image": rec.image, "image_id": image_id,
                      "config": base.config_to_json(rec.config), "volumes": vols, "digests": digests,
                      "volume_labels": labels, "checkpoint": None}
            if not with_image:
                header["image_digests"] = _image_refs(store, image_id)
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                _add_bytes(tar, "reconciler-container.json", json.dumps(header, indent=1).encode())
                if with_image:
                    say(f"saving the image of {rec.name} with its changes")
                    with open(tmp / "image.tar", "wb") as f:
                        archive.save(store, [image_id], f)
                    _add_file(tar, "image.tar", tmp / "image.tar")
                for i, v in enumerate(vols):
                    _add_file(tar, f"volumes/{v}.tar", tmp / f"volume-{i}.tar")
        finally:
            if image_id not in had and with_image:
                with contextlib.suppress(errors.RuntimeBackendError):
                    store.remove(image_id, force=True)
    return image_id


def _refuse_changes(manager: containers.ContainerManager, rec: records.Record, discard: bool) -> None:
    """An archive without the image carries none of the container's changes to its root
    filesystem (they are committed on top of the image): refused when it made some, unless the
    caller discards them."""
    changed = [] if discard else commit.changed_paths(manager, rec, limit=4)
    if changed:
        listed = ", ".join(changed[:3]) + (", ..." if len(changed) > 3 else "")
        raise errors.Conflict(
            f"container {rec.name} changed its root filesystem ({listed}): an archive without its image "
            "would leave that out",
            hint="export it with its image (without --no-with-image) to carry the changes, or pass "
                 "--discard-changes to leave them out (the import runs the image as it is)")


def _image_refs(store: ImageStore, image_id: str) -> list[str]:
    """Where an importing host without the image gets it: the registry digests it was pulled by
    (`REPO@sha256:...`, Docker's RepoDigests), which `container import` looks up and pulls."""
    try:
        return list(store.get(image_id).repo_digests)
    except errors.NotFound:
        return []
