"""Recreate an exported container on any engine that takes archives (`container import`).

The archive (written by runtime/native/transfer.py `export_container`) holds a header with the
container's config, `image.tar` (the image with the container's rootfs changes on top, in
`reconcile save` format; an archive made without it names the container's image by id, registry
digest and name, found here or pulled by that digest: `_image_here`) and `volumes/<name>.tar`.
The importing engine only needs the `base.ArchiveTransfer` capability: the native engine loads
through its own store and extractor, a Docker or Podman engine through `POST /images/load` and an
archive upload into the volume.
Nothing of the same name is ever overwritten; what the import created is removed if it fails.

An archive from elsewhere is as trusted as its sender: what its container asks of the host that
the `restricted` source policy refuses (privileged, added capabilities, the host network,
devices, binds of host paths, volumes of this host it does not carry: spec/policy.py
`archive_refusals`, the policy's own rules) is refused before anything is made, unless the
caller allows host access.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tarfile
import zlib
from typing import IO, Any, cast

from reconciler._dataclass import dataclass, replace
from reconciler.runtime import base, compressed, errors

__all__ = ["FORMAT", "ImportedContainer", "import_container"]

FORMAT = "reconciler-container/v1"
MAX_HEADER = 1 << 20


@dataclass(frozen=True)
class ImportedContainer:
    """A container `container import` made from an archive: its id, name, image and volumes."""

    id: str
    name: str
    image_id: str
    volumes: tuple[str, ...]


_MAKE = "make one with: reconcile container export NAME (gzip or zstd compressed or not)"


def _header(raw: bytes, name: str | None, runtime: base.Runtime) -> tuple[dict[str, Any], base.ContainerConfig]:
    """The archive's header, checked, and its container's config (named `name` if given)."""
    try:
        header = json.loads(raw)
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else None
        raise errors.InvalidArgument(f"unsupported container archive format {found!r}",
                                     hint=f"this reconcile reads {FORMAT}")
    volumes, digests = header.get("volumes"), header.get("digests", {})
    if not (isinstance(header.get("name"), str) and isinstance(header.get("image_id"), str)
            and isinstance(header.get("config"), dict) and isinstance(volumes, list)
            and all(isinstance(v, str) for v in volumes) and isinstance(digests, dict)):
        raise errors.InvalidArgument("the container archive's header is incomplete or damaged (it needs name, "
                                     "image_id, config and volumes)", hint=_MAKE)
    labels = header.get("volume_labels")          # (none in an older version's archive)
    header["volume_labels"] = {str(v): {str(k): str(x) for k, x in ls.items()} for v, ls in labels.items()
                               if isinstance(ls, dict)} if isinstance(labels, dict) else {}
    try:
        config = base.config_from_json(header["config"])
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise errors.InvalidArgument(f"the container archive's header has an invalid config: {exc}",
                                     hint=_MAKE) from None
    config = replace(config, name=name or str(header["name"]))
    with contextlib.suppress(errors.NotFound):
        runtime.inspect_container(config.name)
        raise errors.Conflict(f"a container named {config.name} exists here",
                              hint="remove it or import with --name NEW")
    return header, config


def _host_access(config: base.ContainerConfig, made: set[str], here: set[str]) -> list[str]:
    """What the archive's container asks of this host beyond the `restricted` policy (`made`:
    the volumes the import makes, which are the container's own)."""
    from reconciler.spec import policy

    spec = {"capAdd": list(config.cap_add), "networks": list(config.networks), "privileged": config.privileged,
            "devices": list(config.devices), "oomScoreAdj": config.oom_score_adj,
            "ulimits": {u.name: {"soft": u.soft, "hard": u.hard} for u in config.ulimits},
            "logging": {"driver": config.log_driver} if config.log_driver else {},
            "volumes": [{"type": m.type, "source": m.source, "target": m.target, "readOnly": m.read_only}
                        for m in config.mounts]}
    foreign = [m.source for m in config.mounts if m.type == "volume" and m.source not in made and m.source in here]
    return policy.archive_refusals(spec, foreign)


def _refuse_host_access(asks: list[str]) -> None:
    if asks:
        listed = "".join(f"\n  {a}" for a in asks)
        raise errors.InvalidArgument(
            f"the archive's container asks for access to this host:{listed}",
            hint="import it only if you trust where the archive came from, with --allow-host-access; "
                 "nothing was imported")


def _check_here(runtime: base.Runtime, header: dict[str, Any], config: base.ContainerConfig,
                here: set[str], names: dict[str, str]) -> None:
    """What the import needs of this host, asked before it loads or makes anything: the networks
    the container names, and no volume of the names it would make (`names`)."""
    known: set[str] | None = None
    for network in config.networks:
        if network in _PREDEFINED:
            continue
        if network.startswith("container:"):
            try:
                runtime.inspect_container(network.removeprefix("container:"))
            except errors.NotFound:
                raise errors.NotFound(f"the container joins the network namespace of container "
                                      f"{network.removeprefix('container:')}, which this host does not have",
                                      hint="create and start that container first; nothing was imported") from None
            continue
        if known is None:
            known = {n.name for n in runtime.list_networks()}
        if network not in known:
            raise errors.NotFound(f"the container is on network {network}, which this host does not have",
                                  hint=f"create it first (reconcile network create {network}, or a Network "
                                       "manifest); nothing was imported")
    for vol in header["volumes"]:
        if names[vol] in here:
            raise errors.Conflict(f"volume {names[vol]} exists here",
                                  hint="remove it, or import the archive's volumes under new names with "
                                       "--volume-prefix PREFIX (PREFIX" + vol + "); nothing was imported")


def _volume_names(header: dict[str, Any], config: base.ContainerConfig, here: set[str],
                  prefix: str) -> dict[str, str]:
    """Where each volume of the archive goes here, by its name in the archive: an anonymous one
    (labelled so, made for its container) is named anew, as a new container's (`<name>-anon-...`
    after the container's new name, else at random as dockerd names one), so a second copy never
    meets the first one's; a volume the archive carries is made as `prefix`+NAME; one it mounts
    without carrying it keeps its name (this host's volume, or a new empty one)."""
    labels = header["volume_labels"]
    carried = set(header["volumes"])
    taken = set(here)
    stem = f"{header['name']}-anon-"
    out: dict[str, str] = {}
    for old in [m.source for m in config.mounts if m.type == "volume"] + list(header["volumes"]):
        if old in out:
            continue
        if base.ANONYMOUS_VOLUME_LABEL in labels.get(old, {}):
            new = f"{config.name}-anon-{old.removeprefix(stem)}" if old.startswith(stem) else ""
            if not new or new in taken:
                new = os.urandom(32).hex()
        else:
            new = prefix + old if old in carried else old
        out[old] = new
        taken.add(new)
    return out


_PREDEFINED = ("none", "host", "bridge", "default")     # networks every engine has (or the default one's names)


class _Verified:
    """A volume's tar as the engine reads it, hashed, checked at its end against the digest the
    header records (an archive of an older version records none: accepted with a note)."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self._hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        chunk = self._f.read(n)
        self._hash.update(chunk)
        return chunk

    def check(self, vol: str, header: dict[str, Any], say: Any) -> None:
        while self.read(1 << 20):              # what the engine left unread (the tar's last blocks)
            pass
        digests = header.get("digests")
        if digests is None:
            say(f"note: the archive records no digest of volume {vol} (an older version's export): "
                "its data is not verified")
            return
        expected = digests.get(f"volumes/{vol}.tar") if isinstance(digests, dict) else None
        got = "sha256:" + self._hash.hexdigest()
        if got != expected:
            raise errors.ImageError(f"volume {vol}'s data in the archive is damaged: its digest is {got}, the "
                                    f"header records {expected}",
                                    hint="copy the archive again (or export it again); nothing was imported")


class _Made:
    """What an import made so far, and its undoing (on any failure, ^C and SIGTERM included):
    the container, the volumes it restored, the images it loaded that were not here before (and
    that no other container uses by now: the engine refuses to remove an image in use)."""

    def __init__(self, runtime: base.Runtime) -> None:
        self.runtime = runtime
        self.container: str | None = None
        self.volumes: list[str] = []
        self.images: list[str] = []

    def undo(self) -> None:
        rt = self.runtime
        if self.container is not None:
            with contextlib.suppress(errors.RuntimeBackendError):
                rt.remove_container(self.container, force=True)
        for vol in self.volumes:
            with contextlib.suppress(errors.RuntimeBackendError):
                rt.remove_volume(vol)
        for image in self.images:
            with contextlib.suppress(errors.RuntimeBackendError):
                rt.remove_image(image)


def import_container(runtime: base.Runtime, src: IO[bytes], *, name: str | None = None, start: bool = False,
                     progress: Any = None, allow_host_access: bool = False,
                     volume_prefix: str = "") -> ImportedContainer:
    """Load the archive's image and volumes into `runtime` and create (and start) its container;
    one that asks for host access (`_host_access`) only when `allow_host_access`. Whatever it
    made is removed again when it fails or is interrupted (`_Made`). Its anonymous volumes are
    named anew, the others it carries made as `volume_prefix`+NAME (`_volume_names`). The archive may be gzip or
    zstd compressed; one that is no container archive, or a damaged one, is an error that says
    so (InvalidArgument, ImageError), never tarfile's."""
    if not isinstance(runtime, base.ArchiveTransfer):
        raise errors.Unavailable(f"the {runtime.name} engine cannot import archives",
                                 hint="import on the native engine or a Docker/Podman engine")
    say = progress or (lambda _m: None)
    made = _Made(runtime)
    stream, close = compressed.open_stream(src)
    try:
        try:
            tar = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115 - closed below
        except Exception as exc:
            if not _damage(exc):
                raise
            raise errors.InvalidArgument(f"not a container archive: {exc}", hint=_MAKE) from None
        with tar:
            config = _restore(runtime, runtime, tar, made, say, name=name, allow_host_access=allow_host_access,
                              volume_prefix=volume_prefix)
        made.container = runtime.create_container(config)
        if start:
            runtime.start_container(made.container)
    except BaseException:
        made.undo()
        raise
    finally:
        close()
    return ImportedContainer(made.container, config.name, str(config.image_id), tuple(made.volumes))


def _restore(runtime: base.Runtime, transfer: base.ArchiveTransfer, tar: tarfile.TarFile, made: _Made, say: Any, *,
             name: str | None, allow_host_access: bool, volume_prefix: str) -> base.ContainerConfig:
    """Read the archive: its header (checked before anything is made), its image and volumes
    (loaded and restored, into `made`); the config to create, with the image to run (its
    `image_id`: the container's own, committed at the export) under the name the container was
    created with (`image`, what `ps` and inspect's Config.Image show, as docker's) and the
    volumes' names here."""
    header: dict[str, Any] | None = None
    config: base.ContainerConfig | None = None
    image_id: str | None = None
    names: dict[str, str] = {}
    restored: list[str] = []
    existing = {v.name for v in runtime.list_volumes()}
    try:
        for m in tar:
            f = tar.extractfile(m) if m.isfile() else None
            if f is None:
                raise errors.ImageError(f"unexpected member {m.name!r} in a container archive")
            if header is None:
                if m.name != "reconciler-container.json" or m.size > MAX_HEADER:
                    raise errors.InvalidArgument("not a container archive (no reconciler-container.json first)",
                                                 hint=_MAKE)
                header, config = _header(f.read(), name, runtime)
                names = _volume_names(header, config, existing, volume_prefix)
                config = replace(config, mounts=tuple(
                    replace(mount, source=names[mount.source]) if mount.type == "volume" else mount
                    for mount in config.mounts))
                ours = {names[v] for v in header["volumes"]} | {
                    new for old, new in names.items() if base.ANONYMOUS_VOLUME_LABEL in header["volume_labels"].get(old, {})}
                if not allow_host_access:
                    _refuse_host_access(_host_access(config, ours, existing))
                _check_here(runtime, header, config, existing, names)
            elif m.name == "image.tar":
                say("loading the image")
                had = {i.id for i in runtime.list_images()}
                loaded = transfer.load_image_archive(f)
                made.images = [i for i in loaded if i not in had]
                image_id = loaded[0]
            elif m.name.startswith("volumes/") and m.name.endswith(".tar"):
                vol = m.name[len("volumes/"):-len(".tar")]
                if vol not in header["volumes"] or vol in restored:
                    raise errors.ImageError(f"the archive holds volume {vol!r}, which its header does not name")
                say(f"restoring volume {vol}" + (f" as {names[vol]}" if names[vol] != vol else ""))
                restored.append(vol)
                made.volumes.append(names[vol])
                data = _Verified(f)
                transfer.import_volume(names[vol], cast(IO[bytes], data), helper_image=image_id or str(header["image_id"]),
                                       labels=header["volume_labels"].get(vol))
                data.check(vol, header, say)
            else:
                raise errors.ImageError(f"unexpected member {m.name!r} in a container archive")
    except Exception as exc:
        if not _damage(exc):
            raise
        raise errors.ImageError(f"the container archive is damaged: {exc}",
                                hint="it is truncated or corrupt: copy it again; nothing was imported") from None
    if header is None or config is None:
        raise errors.InvalidArgument("the container archive is empty", hint=_MAKE)
    missing = [v for v in header["volumes"] if v not in restored]
    if missing:
        raise errors.ImageError(f"the container archive ends before volume {missing[0]}'s data",
                                hint="it is truncated: copy it again; nothing was imported")
    image_id = image_id or _image_here(runtime, header, made, say)
    for old, new in names.items():
        # a volume it mounts that neither the archive nor this host has (an anonymous one always:
        # a new name) is made here, as the engine would make it, so that a failure undoes it too
        if old not in restored and new not in existing:
            made.volumes.append(new)
            runtime.ensure_volume(base.VolumeConfig(name=new, labels=header["volume_labels"].get(old, {})))
    return replace(config, image_id=image_id)


def _image_here(runtime: base.Runtime, header: dict[str, Any], made: _Made, say: Any) -> str:
    """The image of an archive that came without it (`container export --no-with-image`), on this
    host: by its id, by a registry digest the header records (`image_digests`: the image's
    RepoDigests where it was exported), pulled by that digest from its registry, else by the name
    the container ran (a note says so when that is another image); an error naming it and what
    to do when none is."""
    wanted, name = str(header["image_id"]), str(header.get("image") or "")
    digests = [d for d in header.get("image_digests") or () if isinstance(d, str) and "@" in d]
    for ref in (wanted, *digests):
        with contextlib.suppress(errors.NotFound, errors.InvalidArgument):
            return runtime.inspect_image(ref).id
    failed = []
    for ref in digests:
        say(f"pulling {ref}")
        try:
            image_id = runtime.pull_image(ref).id
        except errors.Cancelled:
            raise
        except errors.RuntimeBackendError as exc:
            failed.append(exc.message)
            continue
        made.images.append(image_id)
        return image_id
    if name and name != wanted:
        with contextlib.suppress(errors.NotFound, errors.InvalidArgument):
            found = runtime.inspect_image(name).id
            if found != wanted:
                say(f"note: image {name} here is {found}, not the archive's {wanted}: the container runs it")
            return found
    what = f"{name} ({wanted})" if name and name != wanted else wanted
    tried = "".join(f"; {f}" for f in failed) or "; the archive records no registry digest to pull it by"
    raise errors.NotFound(
        f"the archive carries no image (container export --no-with-image) and this host has no image {what}{tried}",
        hint=f"pull or load that image here first (reconcile pull {name or wanted}; from the exporting host: "
             f"reconcile save {name or wanted} | ssh HOST reconcile load), or export the container with its image "
             "(without --no-with-image); nothing was imported")


def _damage(exc: Exception) -> bool:
    """Whether `exc` says the archive's bytes are not what they should be (tarfile's errors, a
    compressed stream's, a truncation), rather than anything else (a full disk is an OSError
    with an errno: it passes)."""
    if isinstance(exc, OSError):
        return exc.errno is None                # gzip's BadGzipFile
    return isinstance(exc, tarfile.TarError | EOFError | zlib.error) or type(exc).__module__.startswith("zstd")
