"""Named volumes, bind mounts and tmpfs mounts as OCI mount entries.

Named volumes live in `<root>/volumes/<name>/_data` (Docker's layout), are created on first
use, survive container removal, and are filled from the image's content at the mount point
the first time they are mounted while empty (Docker's copy-up). Records (labels, created) are
in the state DB. A local bind volume (`type: none, o: bind, device: /DIR`) has `_data` as a
symlink to its directory, made once with the volume: mounts and copy-up reach the directory,
removing the volume leaves it (as Docker leaves a bound device).

A volume's `_data` is made before its record commits, so a recorded volume without it lost its
data (deleted outside the engine): `lost` is the one wording of that, which a mount's refusal
(`ensure`) and every reading of the records (`get`, `list`: one lstat per volume, as
`VolumeState.problem`/`hint`) give. Nothing makes such a volume's data again empty but its
removal; `volume import` restores it in place (`fill`).

Crashes. A removal moves the volume's directory aside (`.removed-<name>-<hex>`) in the
transaction that deletes its record, and deletes it after the commit; what a process killed
before that deletion (or before the commit) left is put right by `sweep`, which the engine's
start-up recovery and every removal run, and listed meanwhile (`removing`: `volume ls` notes
it). A copy-up is made in a directory beside `_data` and moved into it only once whole
(`populate`), so a copy killed midway is made again, never taken for a volume's content.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler._sqlite import Database
from reconciler.runtime import base, binds
from reconciler.runtime import errors as rterrors

__all__ = ["ANONYMOUS_LABEL", "VolumeStore", "anonymous", "data_dir", "mount_entries"]

# dockerd's label of a volume made for one container (a mount without source: `docker run -v /data`),
# which goes with it (`docker rm -v`, AutoRemove) unless another container mounts it
ANONYMOUS_LABEL = base.ANONYMOUS_VOLUME_LABEL

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"     # compiled at its first use (re caches it, #21)

SCHEMA = """
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    labels TEXT NOT NULL,
    created TEXT NOT NULL
);
"""


def data_dir(state_root: Path, name: str) -> Path:
    """Where volume `name` of the engine with state root `state_root` keeps its data."""
    return state_root / "volumes" / name / "_data"


def anonymous(db: Database, names: Sequence[str]) -> set[str]:
    """Which of the volumes `names` are anonymous (labelled so: made for one container), read
    from the state DB's records alone (a container's inspect: its Config.Volumes and Binds)."""
    if not names:
        return set()
    import sqlite3

    marks = ",".join("?" * len(names))
    try:
        rows = db.connect().execute(f"SELECT name, labels FROM volumes WHERE name IN ({marks})",  # noqa: S608 - marks only
                                    tuple(names)).fetchall()
    except sqlite3.OperationalError:         # no volume was ever made in this root: no table yet
        return set()
    return {row[0] for row in rows if ANONYMOUS_LABEL in json.loads(row[1])}


def lost(name: str) -> tuple[str, str]:
    """What is wrong with recorded volume `name` whose `_data` is gone, and what to do."""
    return ("data directory gone (deleted outside the engine)",
            f"restore its data from a backup (`reconcile volume import {name} < BACKUP.tar`: the volume "
            f"and its labels kept), or remove the volume (`reconcile volume rm {name}`) to have it made "
            "again, empty; then start again the containers that mount it")


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class VolumeStore:
    """Named volumes under `<root>/volumes`."""

    def __init__(self, root: Path, db: Database) -> None:
        self.root = root / "volumes"
        self.db = db
        db.ensure_schema("native.volumes", SCHEMA)

    def data_dir(self, name: str) -> Path:
        return data_dir(self.root.parent, name)

    def _state(self, row: Mapping[str, Any]) -> base.VolumeState:
        name = row["name"]
        data = self.data_dir(name)
        problem, hint = (None, None) if os.path.lexists(data) else lost(name)      # one lstat
        return base.VolumeState(name=name, mountpoint=str(data), labels=json.loads(row["labels"]),
                                created=row["created"], problem=problem, hint=hint)

    def ensure(self, config: base.VolumeConfig) -> base.VolumeState:
        """Create the volume if missing (labels of an existing one are kept)."""
        if not re.match(_NAME, config.name):
            raise rterrors.InvalidArgument(
                f"invalid volume name {config.name!r}",
                hint="use letters, digits, '_', '.', '-' (starting with a letter or digit)",
            )
        device = base.local_bind(config.driver, config.driver_opts)
        if device is not None and not os.path.isdir(device):
            raise rterrors.InvalidArgument(f"volume {config.name}: the device {device} to bind is not a directory",
                                           hint="create the directory first (Docker refuses a missing one too)")
        data = self.data_dir(config.name)
        with self.db.tx() as conn:
            row = conn.execute("SELECT * FROM volumes WHERE name = ?", (config.name,)).fetchone()
            if row is not None:
                state = self._state(row)    # made once: options given later change nothing
                if state.problem is not None:
                    # a recorded volume's data is made before its row commits: gone since, not
                    # "not made yet"; a new empty one would hide the loss from what mounts it
                    raise rterrors.Conflict(f"volume {config.name}: {state.problem}: {data}", hint=state.hint)
                return state
            conn.execute("INSERT INTO volumes (name, labels, created) VALUES (?, ?, ?)",
                         (config.name, json.dumps(dict(config.labels), sort_keys=True), _now()))
            row = conn.execute("SELECT * FROM volumes WHERE name = ?", (config.name,)).fetchone()
            if not os.path.lexists(data):   # (left by a crash between this and the commit: kept)
                if device is not None:
                    data.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(device, data)
                else:
                    data.mkdir(parents=True)
                    os.chmod(data, 0o755)  # noqa: S103 - as Docker's _data, whatever the umask (the parent is private)
        return self._state(row)

    def fill(self, name: str, tree: Path) -> None:
        """Put the directory `tree` in place as recorded volume `name`'s data: over its empty
        `_data` at once (never a moment without one), or where its data was lost (a restore
        from a backup keeps the volume, its record and labels)."""
        data = self.data_dir(name)
        with self.db.tx() as conn:      # the row cannot go meanwhile (remove moves the dir in its tx)
            if conn.execute("SELECT 1 FROM volumes WHERE name = ?", (name,)).fetchone() is None:
                raise rterrors.NotFound(f"volume {name} not found")
            if os.path.lexists(data) and any(data.iterdir()):
                raise rterrors.Conflict(f"volume {name} is not empty", hint="remove it or import under another name")
            os.rename(tree, data)

    def bound(self, name: str) -> str | None:
        """The directory a local bind volume binds, or None for a volume of its own."""
        data = self.data_dir(name)
        return os.readlink(data) if data.is_symlink() else None

    def get(self, name: str) -> base.VolumeState:
        row = self.db.connect().execute("SELECT * FROM volumes WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise rterrors.NotFound(f"volume {name} not found")
        return self._state(row)

    def list(self, selector: Mapping[str, str] | None = None) -> list[base.VolumeState]:
        rows = self.db.connect().execute("SELECT * FROM volumes ORDER BY name").fetchall()
        return [v for v in (self._state(r) for r in rows) if base.labels_match(v.labels, selector)]

    def remove(self, name: str, *, in_use: bool = False) -> None:
        if in_use:
            raise rterrors.Conflict(f"volume {name} is in use by a container", hint="remove the container first")
        self.sweep()
        gone = self.root / f"{_REMOVED}{name}-{os.urandom(4).hex()}"    # (no `secrets`: `run` imports this, #21)
        with self.db.tx() as conn:
            cur = conn.execute("DELETE FROM volumes WHERE name = ?", (name,))
            if cur.rowcount == 0:
                raise rterrors.NotFound(f"volume {name} not found")
            # moved aside with the row's deletion: an ensure of the same name after the commit
            # makes a directory of its own, which the rmtree below cannot take from it
            with contextlib.suppress(FileNotFoundError):
                os.rename(self.root / name, gone)
        shutil.rmtree(gone, ignore_errors=True)

    def removing(self) -> tuple[str, ...]:
        """The names of removed volumes whose data is still on disk: a removal killed before it
        deleted it (or before its commit), until `sweep` runs. One listdir."""
        return tuple(sorted({_removed_name(e) for e in self._listdir() if e.startswith(_REMOVED)}))

    def sweep(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Put right what removals killed midway left (start-up recovery, each removal): the
        data of a removal that committed is deleted; one whose transaction did not commit (its
        record is there, its directory gone) gets its directory back. Under a write transaction,
        so that no removal's is in flight. (volumes restored, removed volumes' data deleted)."""
        aside = [e for e in self._listdir() if e.startswith(_REMOVED)]
        if not aside:
            return (), ()
        restored: tuple[str, ...] = ()
        doomed: tuple[Path, ...] = ()
        with self.db.tx() as conn:
            for entry in sorted(aside):
                name = _removed_name(entry)
                home = self.root / name
                if not os.path.lexists(self.root / entry):
                    continue                # deleted meanwhile by the removal that made it
                recorded = conn.execute("SELECT 1 FROM volumes WHERE name = ?", (name,)).fetchone() is not None
                if recorded and not os.path.lexists(home):
                    os.rename(self.root / entry, home)
                    restored += (name,)
                else:
                    doomed += (self.root / entry,)
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)
        return restored, tuple(sorted(_removed_name(p.name) for p in doomed))

    def _listdir(self) -> tuple[str, ...]:
        try:
            return tuple(os.listdir(self.root))
        except FileNotFoundError:
            return ()

    def populate(self, name: str, rootfs: Path, target: str) -> None:
        """Copy the image's content at `target` into the volume if the volume is empty (Docker's
        copy-up), whole or not at all: copied into `_populating` beside `_data`, renamed
        `_populated` once the copy is whole, then its entries moved into `_data` (one rename
        each: a container that mounts the volume already sees them there, as with Docker's copy)
        and `_data` given the owner and mode of the image's directory. A copy killed midway is
        made again from the start; one killed while its entries moved finishes the moves. One
        copy of a volume at a time (a flock on its directory). An empty image directory copies
        nothing but still gives the volume its owner and mode, as dockerd does
        (`copyExistingContents`, then `copyOwnership`): a non-root user's data directory."""
        data = self.data_dir(name)
        if data.is_symlink():
            # a local bind volume: the directory is the user's, maybe on another file system
            # (no rename from ours), copied into in place as before
            if not any(data.iterdir()):
                self._copy_up(name, rootfs, target, data)
            return
        with _flocked(data.parent):
            done, partial = data.parent / "_populated", data.parent / "_populating"
            if os.path.isdir(done):     # copied whole, killed while its entries moved: finish
                self._move_into(done, data)
                return
            if os.path.lexists(partial):    # a copy killed midway: dropped (made again if still empty)
                shutil.rmtree(partial)
            if any(data.iterdir()):
                return
            os.mkdir(partial, 0o700)
            if not self._copy_up(name, rootfs, target, partial):
                os.rmdir(partial)
                return
            os.rename(partial, done)
            self._move_into(done, data)

    def _copy_up(self, name: str, rootfs: Path, target: str, into: Path) -> bool:
        """Copy the image's content at `target` into `into` and give `into` its owner and mode
        (False: the image has no directory there)."""
        # imported here (ctypes): `inspect` reads volumes.data_dir
        from reconciler.runtime.native import openat2

        src = openat2.secure_join(rootfs, target)
        if not src.is_dir() or src.is_symlink():
            return False
        if any(src.iterdir()):
            import subprocess  # here: only a volume filled from an image copies (#21: a no-op pass imports none)

            proc = subprocess.run(["cp", "-a", "--", f"{src}/.", f"{into}/"], capture_output=True, check=False)
            if proc.returncode != 0:
                raise rterrors.RuntimeBackendError(
                    f"cannot copy the image's {target} into volume {name}: "
                    f"{proc.stderr.decode(errors='replace').strip()}")
        st = os.stat(src)
        os.chown(into, st.st_uid, st.st_gid)
        os.chmod(into, st.st_mode & 0o7777)
        return True

    @staticmethod
    def _move_into(done: Path, data: Path) -> None:
        """Move a whole copy's entries into `data` (an entry of that name there already, made
        since, is kept), then give `data` the copy's owner and mode and remove the copy."""
        for entry in os.listdir(done):
            if not os.path.lexists(data / entry):
                os.rename(done / entry, data / entry)
        st = os.stat(done)
        os.chown(data, st.st_uid, st.st_gid)
        os.chmod(data, st.st_mode & 0o7777)
        shutil.rmtree(done)


_REMOVED = ".removed-"      # a removed volume's directory, moved aside: `.removed-<name>-<8 hex>`


def _removed_name(entry: str) -> str:
    """The volume name of a `.removed-<name>-<8 hex>` directory."""
    return entry[len(_REMOVED):-9]


@contextlib.contextmanager
def _flocked(path: Path) -> Iterator[None]:
    import fcntl

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _check_target(target: str) -> str:
    if not target.startswith("/"):
        raise rterrors.InvalidArgument(f"mount target {target!r} must be an absolute path")
    parts = [p for p in target.split("/") if p]
    if ".." in parts:
        raise rterrors.InvalidArgument(f"mount target {target!r} must not contain '..'")
    return "/" + "/".join(parts)


def _host_binds(mounts: Sequence[base.Mount]) -> Iterator[base.Mount]:
    """The bind mounts of `mounts` whose source is a host path."""
    return (m for m in mounts if m.type == "bind" and m.source.startswith("/"))


def ensure_bind_sources(mounts: Sequence[base.Mount]) -> None:
    """Each bind mount's host path made (with its parents) where it is missing, as dockerd does
    for a `-v /host:/ctr` bind when the container is created and again at each start: a source
    deleted while the container was stopped (or by a reboot's tmpfs) would fail its start, and
    every restart after it, with runc's "error mounting". The directories made are 0755 as
    dockerd makes them, whatever the engine's umask (0700 hid them from a container's non-root
    user)."""
    for m in _host_binds(mounts):
        if os.path.lexists(m.source):
            continue
        missing = []
        path = Path(m.source)
        while not os.path.lexists(path) and path != path.parent:
            missing.append(path)
            path = path.parent
        for made in reversed(missing):
            try:
                made.mkdir()
            except FileExistsError:
                continue                    # made meanwhile by another: its mode is its maker's
            os.chmod(made, 0o755)  # noqa: S103 - dockerd's mode for a bind source it makes


def stale_binds(mounts: Sequence[base.Mount], pid: int) -> tuple[str, ...]:
    """The host paths of `mounts`' binds that are not what the process `pid` has mounted at
    their targets now (reconciler.runtime.binds.stale)."""
    return binds.stale(((m.source, m.target) for m in _host_binds(mounts)), pid)


def mount_entries(
    mounts: tuple[base.Mount, ...], store: VolumeStore, rootfs: Path,
) -> list[dict[str, Any]]:
    """OCI mount entries for the container's mounts (creating and filling volumes as needed)."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for m in mounts:
        target = _check_target(m.target)
        if target in seen:
            raise rterrors.InvalidArgument(f"duplicate mount point {target}")
        seen.add(target)
        ro = ["ro"] if m.read_only else []
        if m.type == "volume":
            store.ensure(base.VolumeConfig(name=m.source))
            store.populate(m.source, rootfs, target)
            out.append({"destination": target, "type": "bind", "source": str(store.data_dir(m.source)),
                        "options": ["rbind", "rprivate", *ro]})
        elif m.type == "bind":
            if not m.source.startswith("/"):
                raise rterrors.InvalidArgument(f"bind source {m.source!r} must be an absolute host path")
            ensure_bind_sources((m,))
            out.append({"destination": target, "type": "bind", "source": m.source,
                        "options": ["rbind", "rprivate", *ro]})
        elif m.type == "tmpfs":
            opts = list(m.options)
            if not any(o.startswith("mode=") for o in opts):
                opts.append("mode=1777")
            # Docker's defaults (dockerd's and podman's: noexec too), the mount's own after them
            # (`docker run --tmpfs /x:exec`: runc applies them in order)
            out.append({"destination": target, "type": "tmpfs", "source": "tmpfs",
                        "options": ["nosuid", "nodev", "noexec", *opts, *ro]})
        else:
            raise rterrors.InvalidArgument(f"unknown mount type {m.type!r}", hint="use volume, bind or tmpfs")
    return out
