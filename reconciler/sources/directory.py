"""A drop-in directory of manifests (like kubelet's static pods), watched with inotify.

`fetch()` reads every file that is not ignored, hashes paths and contents into the revision
id, and writes exactly the bytes it hashed into an immutable snapshot directory
`<cache_dir>/<id>/`, so the loader never sees a file changing under it and an applied
revision stays readable after the directory changes (or breaks). The snapshot is read, never
mounted: bind sources resolve in the directory itself (`Revision.live`), so what a container
writes there stays, and a new revision leaves the bind where it was.

`watch()` wakes the loop on inotify events (watchdog), debounced: a burst of writes (an
editor saving, `cp -r`, a config-management run) makes one wake after `debounce` seconds of
quiet, or after `max_delay` at the latest; a file written in place wakes it only once closed
(inotify's CLOSE_WRITE: a writer that flushes between two documents does not get the first
applied alone), or `open_wait` after its last write. Dotfiles and directories, editor swap, backup and
temporary files are ignored; an atomic replace (write `.web.yaml.tmp`, rename to `web.yaml`)
counts as a change of `web.yaml`. A periodic re-list (kubelet re-lists every 20 s) compares
names, sizes and times with the previous listing and wakes on any difference, catching what
inotify missed (queue overflow, a directory created or replaced under the watch, network
filesystems) and re-arming the watch when the directory itself was replaced.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Collection
from pathlib import Path

from watchdog import events as wd_events
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from reconciler import logs
from reconciler.sources import base, errors

__all__ = ["DirectorySource", "DirectoryWatch", "is_ignored"]

_IGNORED_SUFFIXES = (
    "~",  # emacs/vim/gedit backups
    ".swp", ".swo", ".swx", ".swn",  # vim swap files (also dotfiles, but not with `:set dir=`)
    ".tmp", ".temp", ".part", ".partial", ".crdownload",  # temporary and half-copied files
    ".bak", ".orig", ".rej",  # backups and patch leftovers
    ".dpkg-new", ".dpkg-old", ".dpkg-dist", ".dpkg-tmp", ".rpmnew", ".rpmsave", ".ucf-dist",
)
_ID = re.compile(r"^[0-9a-f]{64}$")  # a revision id: the sha256 of the files
_IGNORED_NAMES = frozenset({"4913"})  # vim creates and deletes it to test the directory


def _is_env_file(name: str) -> bool:
    return name == ".env" or (name.startswith(".env.") and not name.endswith(_IGNORED_SUFFIXES))


def is_ignored(relpath: str) -> bool:
    """True for paths the source never reads: hidden components, editor and package-manager files.

    Env files are the exception: `.env` and `.env.<anything>` (a compose project's environment
    and env files) are read like any file.
    """
    parts = [p for p in relpath.replace(os.sep, "/").split("/") if p not in ("", ".")]
    if not parts:
        return False
    name = parts[-1]
    if any(p.startswith(".") for p in parts[:-1]) or (name.startswith(".") and not _is_env_file(name)):
        return True  # dotfiles, .git, `..data` (Kubernetes ConfigMap volumes), vim's .x.swp
    if name in _IGNORED_NAMES or (name.startswith("#") and name.endswith("#")):
        return True  # emacs auto-save files
    return name.endswith(_IGNORED_SUFFIXES)


class DirectorySource:
    """Manifests from a directory tree; revision id = sha256 over relative paths and contents."""

    def __init__(
        self,
        root: Path,
        *,
        cache_dir: Path,  # snapshots go to cache_dir/<id>/; owned by this source alone
        debounce: float = 0.2,  # quiet time after the last event before waking
        max_delay: float = 2.0,  # wake after this long even if events keep coming
        open_wait: float = 10.0,  # a file written and not closed yet holds the wake this long at most
        resync_interval: float = 20.0,  # the full re-list safety net (kubelet's default)
        inotify: bool = True,  # False: re-list only (filesystems without inotify, e.g. NFS)
        keep: int = 3,  # most recent snapshots kept besides retained ones
        max_bytes: int = 64 * 1024 * 1024,  # bounded reads: refuse larger trees
        max_files: int = 10_000,
    ) -> None:
        self.root = Path(root).absolute()
        self.cache_dir = Path(cache_dir).absolute()
        inside = self.cache_dir.resolve().is_relative_to(self.root.resolve())
        if inside and not is_ignored(str(self.cache_dir.resolve().relative_to(self.root.resolve()))):
            raise errors.SourceInvalid(
                f"the snapshot directory {self.cache_dir} is inside the manifest directory {self.root}",
                hint="keep snapshots in the agent's state directory (or a hidden sub-directory)",
            )
        self.debounce = debounce
        self.max_delay = max_delay
        self.open_wait = open_wait
        self.resync_interval = resync_interval
        self.inotify = inotify
        self.keep = keep
        self.max_bytes = max_bytes
        self.max_files = max_files
        self._lock = threading.Lock()
        self._recent: list[str] = []
        self._retained: set[str] = set()

    def __repr__(self) -> str:
        return f"DirectorySource({str(self.root)!r})"

    # -- fetch ------------------------------------------------------------------------------

    def fetch(self) -> base.Revision:
        with self._lock:
            files = self._read_all()
            digest = hashlib.sha256()
            for rel, (_mode, data) in sorted(files.items()):
                digest.update(rel.encode("utf-8", "surrogateescape") + b"\0")
                digest.update(hashlib.sha256(data).digest())
            rev_id = digest.hexdigest()
            path = self.cache_dir / rev_id
            if not path.is_dir():
                self._write_snapshot(path, files)
            if rev_id in self._recent:
                self._recent.remove(rev_id)
            self._recent.insert(0, rev_id)
            self._collect()
        return self._revision(rev_id, path)

    def _revision(self, rev_id: str, path: Path) -> base.Revision:
        return base.Revision(id=rev_id, path=path, origin=str(self.root), live=self.root,
                             name=self.root.resolve().name)

    def revision(self, id: str) -> base.Revision | None:
        """A snapshot this source wrote before and still keeps under its cache directory."""
        if _ID.match(id) is None:
            return None
        path = self.cache_dir / id
        return self._revision(id, path) if path.is_dir() else None

    def retain(self, ids: Collection[str]) -> None:
        with self._lock:
            self._retained = set(ids)
            self._collect()

    def place(self, revision: base.Revision) -> None:
        """Nothing to do: the directory is live (edits show at once, and make a new revision)."""

    def _read_all(self) -> dict[str, tuple[int, bytes]]:
        # a file that vanishes between listing and reading (an editor's rename dance) is
        # retried; persistent churn is reported as temporary
        for _attempt in range(3):
            try:
                return self._scan()
            except FileNotFoundError:
                continue
        raise errors.SourceUnavailable(
            f"directory {self.root}: files kept disappearing while it was read",
            hint="the loop retries; if it persists, check what rewrites the directory",
        )

    def _scan(self) -> dict[str, tuple[int, bytes]]:
        root = self.root
        try:
            st = root.stat()
        except FileNotFoundError:
            raise errors.SourceUnavailable(
                f"manifest directory {root} does not exist",
                hint="create it (an empty directory is a valid, empty source) or fix the agent config",
            ) from None
        except OSError as e:
            raise errors.SourceUnavailable(f"manifest directory {root}: {e.strerror}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise errors.SourceInvalid(f"manifest source {root} is not a directory", hint="point the source at a directory")
        files: dict[str, tuple[int, bytes]] = {}
        total = 0
        try:
            for dirpath, dirnames, filenames in os.walk(root, onerror=_raise, followlinks=False):
                reldir = os.path.relpath(dirpath, root)
                dirnames[:] = sorted(d for d in dirnames if not is_ignored(os.path.join(reldir, d)))
                for name in filenames:
                    rel = os.path.normpath(os.path.join(reldir, name))
                    if is_ignored(rel):
                        continue
                    full = os.path.join(dirpath, name)
                    fst = os.stat(full)  # follows symlinks: ConfigMap-style links are read
                    if not stat.S_ISREG(fst.st_mode):
                        continue  # fifos, sockets, devices, dangling-dir links
                    total += fst.st_size
                    if total > self.max_bytes or len(files) >= self.max_files:
                        raise errors.SourceInvalid(
                            f"manifest directory {root} holds more than {self.max_files} files "
                            f"or {self.max_bytes} bytes",
                            hint="move large or unrelated files elsewhere, or raise the source's limits",
                        )
                    with open(full, "rb") as f:
                        data = f.read(self.max_bytes + 1)
                    files[Path(rel).as_posix()] = (stat.S_IMODE(fst.st_mode), data)
        except FileNotFoundError:
            raise
        except PermissionError as e:
            raise errors.SourceInvalid(
                f"manifest directory {root}: permission denied reading {e.filename}",
                hint="make the files readable by the agent's user",
            ) from None
        except OSError as e:
            if e.errno == errno.ENOENT:
                raise FileNotFoundError(e.errno, e.strerror, e.filename) from None
            raise errors.SourceUnavailable(f"manifest directory {root}: {e.strerror} ({e.filename})") from None
        return files

    def _write_snapshot(self, path: Path, files: dict[str, tuple[int, bytes]]) -> None:
        tmp = self.cache_dir / f".tmp-{path.name[:16]}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir(parents=True)
            for rel, (mode, data) in files.items():
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
                os.chmod(dest, mode)
            os.rename(tmp, path)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if path.is_dir():
                return  # another fetch wrote the same content first
            raise errors.SourceUnavailable(
                f"cannot write the snapshot of {self.root} under {self.cache_dir}: {e.strerror}",
                hint="check free space and permissions of the agent's state directory",
            ) from None

    def _collect(self) -> None:
        """Drop snapshots that are neither recent nor retained (and stale temporaries)."""
        keep = set(self._recent[: self.keep]) | self._retained
        del self._recent[self.keep :]
        try:
            entries = list(os.scandir(self.cache_dir))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.name not in keep and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)

    # -- watch ------------------------------------------------------------------------------

    def watch(self, wake: base.Wake) -> DirectoryWatch:
        return DirectoryWatch(self, wake)


def _raise(e: OSError) -> None:
    raise e


class _Handler(wd_events.FileSystemEventHandler):
    def __init__(self, watch: DirectoryWatch) -> None:
        self._watch = watch

    def on_any_event(self, event: wd_events.FileSystemEvent) -> None:
        self._watch._on_event(event)


class DirectoryWatch:
    """The running watcher of one DirectorySource: inotify observer, debouncer, re-list thread."""

    def __init__(self, source: DirectorySource, wake: base.Wake) -> None:
        self._source = source
        self._wake = wake
        self._root = str(source.root)
        self._log = logs.get_logger("reconciler.sources.directory").bind(directory=self._root)
        self._cond = threading.Condition()
        self._closed = False
        self._closing = threading.Event()  # the re-list thread sleeps on this, not on _cond
        self._changes: list[str] = []
        self._writing: set[str] = set()  # files written since their last close (inotify's CLOSE_WRITE)
        self._first: float | None = None
        self._last: float | None = None
        self._observer: BaseObserver | None = None
        self._watch: ObservedWatch | None = None
        self._watched_ino: tuple[int, int] | None = None
        self._listing = self._list()
        if source.inotify:
            self._observer = Observer()
            self._observer.daemon = True
            self._observer.start()
            self._arm()
        self._threads = [
            threading.Thread(target=self._debounce_loop, name=f"debounce {self._root}", daemon=True),
            threading.Thread(target=self._relist_loop, name=f"relist {self._root}", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._closing.set()
            self._cond.notify_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
        for t in self._threads:
            t.join()

    def __enter__(self) -> DirectoryWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # inotify ---------------------------------------------------------------------------------

    def _arm(self) -> bool:
        """(Re)schedule the inotify watch on the root; False if the root is not there."""
        assert self._observer is not None
        try:
            st = os.stat(self._root)
            if self._watch is not None:
                try:
                    self._observer.unschedule(self._watch)
                except (KeyError, OSError):
                    pass  # the old watch died with the directory it watched
                self._watch = None
            self._watch = self._observer.schedule(_Handler(self), self._root, recursive=True)
            self._watched_ino = (st.st_dev, st.st_ino)
            return True
        except OSError as e:
            self._watched_ino = None
            self._log.warning("directory_watch_unavailable", error=e.strerror, hint="re-listing continues")
            return False

    def _on_event(self, event: wd_events.FileSystemEvent) -> None:
        kind = event.event_type
        if kind in (wd_events.EVENT_TYPE_OPENED, wd_events.EVENT_TYPE_CLOSED_NO_WRITE):
            return  # reads, including our own fetch(), are not changes
        if event.is_directory and kind == wd_events.EVENT_TYPE_MODIFIED:
            return  # entry changes below are reported on their own
        paths = [os.fsdecode(event.src_path)]
        if kind == wd_events.EVENT_TYPE_MOVED:
            paths.append(os.fsdecode(event.dest_path))
        relevant = []
        for p in paths:
            rel = os.path.relpath(p, self._root)
            if rel == "." or not (rel.startswith("..") or is_ignored(rel)):
                relevant.append(rel)
        if not relevant:
            return
        # a file written in place and not closed yet is half-written: the wake waits for its
        # close (a writer's flush between two documents must not apply the first alone)
        writing = (kind in (wd_events.EVENT_TYPE_MODIFIED, wd_events.EVENT_TYPE_CREATED)
                   and not event.is_directory)
        self._note(f"{relevant[-1]} {kind}", writing=relevant[0] if writing else None,
                   done=() if writing else relevant)

    def _note(self, change: str, *, writing: str | None = None, done: Collection[str] = ()) -> None:
        with self._cond:
            self._writing.difference_update(done)
            if writing is not None:
                self._writing.add(writing)
            now = time.monotonic()
            if self._first is None:
                self._first = now
            self._last = now
            self._changes.append(change)
            self._cond.notify_all()

    def _debounce_loop(self) -> None:
        src = self._source
        while True:
            with self._cond:
                while not self._closed and self._last is None:
                    self._cond.wait()
                last = self._last
                if self._closed or last is None:
                    return
                first = last if self._first is None else self._first
                now = time.monotonic()
                due = min(last + src.debounce, first + src.max_delay)
                if self._writing:
                    due = max(due, last + src.open_wait)     # until it is closed, within reason
                if now < due:
                    self._cond.wait(due - now)
                    continue
                changes = self._changes
                self._changes, self._first, self._last = [], None, None
                self._writing.clear()
            shown = ", ".join(dict.fromkeys(changes[-5:]))
            more = f" (+{len(changes) - 5} more)" if len(changes) > 5 else ""
            self._fire(f"directory {self._root}: {shown}{more}")

    def _fire(self, reason: str) -> None:
        self._log.debug("directory_changed", reason=reason)
        try:
            self._wake(reason)
        except Exception:  # noqa: BLE001 - a failing callback must not kill the watcher
            self._log.exception("directory_wake_failed")

    # re-list ---------------------------------------------------------------------------------

    def _list(self) -> frozenset[tuple[str, int, int, int, int]]:
        """Names with size, mtime, ctime and inode: cheap, no file is read."""
        out: set[tuple[str, int, int, int, int]] = set()
        root = self._root
        try:
            for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
                reldir = os.path.relpath(dirpath, root)
                dirnames[:] = [d for d in dirnames if not is_ignored(os.path.join(reldir, d))]
                for name in filenames:
                    rel = os.path.normpath(os.path.join(reldir, name))
                    if is_ignored(rel):
                        continue
                    try:
                        st = os.stat(os.path.join(dirpath, name))
                    except OSError:
                        continue
                    out.add((rel, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
        except OSError:
            pass
        return frozenset(out)

    def _relist_loop(self) -> None:
        interval = self._source.resync_interval
        while not self._closing.wait(interval):
            self.relist()

    def relist(self) -> bool:
        """Compare a fresh listing with the last one; wake and re-arm inotify on a difference."""
        rearmed = False
        if self._observer is not None:
            try:
                st = os.stat(self._root)
                current: tuple[int, int] | None = (st.st_dev, st.st_ino)
            except OSError:
                current = None
            # re-arm when the directory appeared, was replaced (new inode), or its watch died
            # with a deleted directory (a recreated one may even reuse the inode number)
            alive = any(e.watch == self._watch and e.is_alive() for e in self._observer.emitters)
            if current is not None and (current != self._watched_ino or not alive):
                rearmed = self._arm()
        with self._cond:
            if self._writing:
                return False        # a file is being written: the debouncer wakes at its close
        listing = self._list()
        changed = listing != self._listing
        self._listing = listing
        if changed or rearmed:
            self._fire(f"directory {self._root}: re-list found changes")
        return changed or rearmed
