"""`reconcile commit`: a container's changes to its root filesystem as a new image.

The container's overlay upper dir becomes one layer on top of its image's (deletions as OCI
whiteouts; the runtime's mount points — /proc, /sys, /dev, /etc/hosts, /etc/resolv.conf,
/etc/hostname — and the targets of volumes, binds and tmpfs left out, as Docker does: a volume's
data is not part of an image). The new config is the image's, with the container's own settings
(Env, Cmd, Entrypoint, User, WorkingDir, Labels, StopSignal) as Docker's commit merges them,
then the `--change` instructions. A running container is paused (cgroup freezer) while its upper
dir is read, so the copy is consistent, and resumed afterwards: as `docker pause` pauses, recorded
and journalled (`ContainerManager.pause`); one paused already stays paused, as Docker leaves it.

`import_image` is `docker import`: a filesystem tarball as an image of one layer
(images/tarball.py), its `--change` instructions a commit's (the same Dockerfile handlers).
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from reconciler.runtime import base, errors
from reconciler.runtime.native.build import builder
from reconciler.runtime.native.containers import containers, records
from reconciler.runtime.native.images.images import ImageStore

__all__ = ["changed_paths", "commit", "container_changes", "import_image", "paused"]

_RUNTIME_MOUNTS = frozenset({"proc", "sys", "dev", "etc/hosts", "etc/resolv.conf", "etc/hostname"})


def _merged_config(image_cfg: dict[str, Any], rec: records.Record) -> dict[str, Any]:
    cfg = copy.deepcopy(image_cfg)
    run = cfg.setdefault("config", {})
    c = rec.config
    if c.env:
        env = list(run.get("Env") or [])
        keys = [e.partition("=")[0] for e in env]
        for k, v in c.env.items():
            if k in keys:
                env[keys.index(k)] = f"{k}={v}"
            else:
                env.append(f"{k}={v}")
        run["Env"] = env
    if c.command is not None:
        run["Entrypoint"] = list(c.command) or None
    if c.args is not None:
        run["Cmd"] = list(c.args)
    if c.user:
        run["User"] = c.user
    if c.workdir:
        run["WorkingDir"] = c.workdir
    labels = {k: v for k, v in c.labels.items() if not k.startswith("reconciler.")}
    if labels:
        run["Labels"] = {**(run.get("Labels") or {}), **labels}
    if c.stop_signal:
        run["StopSignal"] = c.stop_signal
    if c.healthcheck is not None:           # the container's, merged over the image's as dockerd's create
        run["Healthcheck"] = _health(c.healthcheck, run.get("Healthcheck") or {})
    exposed = records.exposed_ports(c, run, rec.exposed)     # EXPOSE, --expose and what it publishes
    if exposed:
        run["ExposedPorts"] = {k: {} for k in exposed}
    return cfg


def _health(own: base.Healthcheck, image: dict[str, Any]) -> dict[str, Any]:
    """The Healthcheck of a committed image, as `docker commit` writes the container's: NONE
    as it is; else its test and timings (ns), each left empty taken from the image's."""
    if own.test[:1] == ("NONE",):
        return {"Test": ["NONE"]}
    out: dict[str, Any] = {"Test": list(own.test or image.get("Test") or [])}
    for name, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod"),
                      ("start_interval", "StartInterval")):
        ns = int(getattr(own, name) * 1e9) or int(image.get(key) or 0)
        if ns:
            out[key] = ns
    retries = own.retries or int(image.get("Retries") or 0)
    if retries:
        out["Retries"] = retries
    return out


@contextlib.contextmanager
def paused(manager: containers.ContainerManager, rec: records.Record, pause: bool) -> Iterator[None]:
    """`rec` frozen while the block runs, if it runs and `pause`: paused as `docker pause` pauses
    (`ContainerManager.pause`: the cgroup freezer and the record, so every reader sees it paused
    meanwhile, and after a commit killed before its resume), then unpaused. One paused already
    stays paused, as Docker's commit leaves it."""
    if not pause or rec.status != "running" or rec.is_paused():
        yield
        return
    manager.pause(rec.id)
    try:
        yield
    finally:
        manager.pause(rec.id, freeze=False)


def _skipped(rec: records.Record) -> frozenset[str]:
    """What a commit (and `docker diff`) leaves out of the upper dir: the runtime's mount points,
    the mounts' targets (`--init`'s too)."""
    init = {containers.INIT_PATH.strip("/")} if rec.config.init else set()
    return _RUNTIME_MOUNTS | init | {m.target.strip("/") for m in rec.config.mounts if m.target.strip("/")}


def changed_paths(manager: containers.ContainerManager, rec: records.Record, limit: int = 5) -> list[str]:
    """Up to `limit` changes the container made to its root filesystem, as a commit would carry
    them (`diff.changed`): none for one that only wrote to its volumes (`container export
    --no-with-image` carries no image, and so none of these)."""
    from reconciler.runtime.native.build import diff

    upper = manager.paths(rec.id).upper
    return diff.changed(upper, skip=_skipped(rec), limit=limit) if upper.is_dir() else []


def container_changes(manager: containers.ContainerManager, name_or_id: str) -> list[tuple[str, str]]:
    """`docker diff`: what the container changed in its root filesystem, read from its upper dir
    as a commit reads it (its mount points and mounts' targets left out, `_skipped`), each
    ("A" | "C" | "D", path) against its image's layers (`diff.changes`); a running container
    is not paused (dockerd's diff does not pause either)."""
    from reconciler.runtime.native.build import diff

    rec = manager.get(name_or_id)
    upper = manager.paths(rec.id).upper
    if not upper.is_dir():
        return []               # never created fully: nothing changed
    lowers = [Path(d) for d in reversed(rec.lowerdirs)]            # top first, as the overlay stacks them
    return diff.changes(upper, lowers, skip=_skipped(rec))


def commit(store: ImageStore, manager: containers.ContainerManager, name_or_id: str,
           ref: str | None = None, *, changes: Sequence[str] = (), message: str = "",
           author: str = "", pause: bool = True) -> str:
    """Commit the container's changes as a new image (tagged `ref` when given); its id."""
    rec = manager.get(name_or_id)
    upper = manager.paths(rec.id).upper
    if not upper.is_dir():
        raise errors.Conflict(f"container {rec.name} has no filesystem to commit (it was never created fully)")
    below = store.layer_records(rec.image_id)
    cfg = _merged_config(store.image_config(rec.image_id), rec)
    cfg = builder.apply_changes(cfg, changes)
    with paused(manager, rec, pause):
        layer = builder.layer_from_upper(store, upper, below, store.config.root / "build" / "tmp",
                                         skip=_skipped(rec))
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    cfg["created"] = now
    cfg["rootfs"] = {"type": "layers", "diff_ids": [*(x.diff_id for x in below), layer.diff_id]}
    entry: dict[str, Any] = {"created": now, "created_by": f"reconcile commit {rec.name}"}
    if message:
        # the image's Comment (Docker's image config has one; dockerd's commit sets it) and its history's
        cfg["comment"] = entry["comment"] = message
    else:
        cfg.pop("comment", None)                # the image's own is not this one's
    if author:
        cfg["author"] = entry["author"] = author
    cfg.setdefault("history", []).append(entry)
    image_id, _ = store.add_local(cfg, [*below, layer], [ref] if ref else [])
    return image_id


def import_image(store: ImageStore, source: str, ref: str | None = None, *, stdin: IO[bytes] | None = None,
                 changes: Sequence[str] = (), message: str = "", platform: str | None = None,
                 files: bool = True) -> str:
    """`docker import SOURCE [REF]`: the filesystem tarball `source` names (`-`: `stdin`, a
    request's body; an http(s) URL; with `files`, the CLI's, a file) as an image of one layer,
    its config this host's (or `platform`'s) with the `changes` applied as commit's; its id.
    The changes and the platform are refused before a byte is read."""
    from reconciler.runtime.native.images import tarball

    cfg = builder.apply_changes(tarball.base_config(platform), changes)
    if source == "-":
        if stdin is None:
            raise errors.InvalidArgument("nothing to import: no tarball was sent")
        return tarball.import_tarball(store, cast(BinaryIO, stdin), cfg, ref, message=message)
    if tarball.is_url(source):
        with tarball.open_url(source) as body:
            return tarball.import_tarball(store, body, cfg, ref, message=message, source=source)
    if not files:
        raise errors.InvalidArgument(f"cannot import from {source!r}: give - (the tarball as the request's body) "
                                     "or an http(s) URL")
    try:
        f = open(source, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise errors.InvalidArgument(f"cannot import {source}: {exc.strerror}",
                                     hint="give a tar file, - for stdin, or an http(s) URL") from None
    with f:
        # "Imported from -": the docker CLI sends a file as the body, and dockerd names it so
        return tarball.import_tarball(store, cast(BinaryIO, f), cfg, ref, message=message)
