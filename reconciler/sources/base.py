"""What every manifest source provides: a snapshot to read, and a way to be told it changed.

A `Source` is level-based (STYLE.md rule 1): `watch()` only wakes the controller loop with a
human-readable reason, never with data; the loop then calls `fetch()` and re-reads the whole
revision. `fetch()` returns an immutable on-disk snapshot, so the spec loader
(`reconciler.spec.load(revision.path)`) never sees a half-written state, and a snapshot that
was applied stays readable after newer ones fail to load (see `retain`). Paths inside the
snapshot are not the user's: report file:line errors relative to `revision.path`, prefixed
with `revision.origin`.

A snapshot is never what a container mounts: a bind source named relative to the manifests
resolves beneath `revision.live`, a directory that outlives revisions (the drop-in directory
itself; a git source's one checkout, moved to each revision by `place()`), so a new revision
neither moves a bind nor deletes what a container wrote there (DESIGN §10).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import Protocol

from reconciler._dataclass import dataclass

__all__ = ["Closeable", "Revision", "Source", "Wake"]

Wake = Callable[[str], None]
"""Called by a watcher with a short reason ("directory: web.yaml changed"); carries no data."""


@dataclass(frozen=True)
class Revision:
    """One immutable snapshot of a source's manifests."""

    id: str  # git commit SHA, or the content hash of a directory's files
    path: Path  # a directory to load manifests from; not modified while retained
    origin: str = ""  # where the files came from, for messages: "/etc/…/manifests.d" or "URL@sha:path"
    live: Path | None = None  # where relative bind sources resolve (see the module doc); None: `path`
    name: str = ""  # what the files' directory is called where they come from (a directory's own name,
    #                 a repository's or sub-path's): a compose project's default name, as `docker compose`
    #                 run there would name it; "": the name of `live`


class Closeable(Protocol):
    """A running watcher; `close()` stops it and waits for its threads (idempotent)."""

    def close(self) -> None: ...


class Source(Protocol):
    """A place manifests come from: a git repository, a drop-in directory."""

    def fetch(self) -> Revision:
        """Snapshot the current desired state; raises `errors.SourceError` (temporary or terminal)."""
        ...

    def watch(self, wake: Wake) -> Closeable:
        """Start calling `wake(reason)` when the source may have changed; never passes data."""
        ...

    def retain(self, ids: Collection[str]) -> None:
        """Keep these revisions' snapshots (e.g. the last applied one) when older ones are dropped."""
        ...

    def revision(self, id: str) -> Revision | None:
        """A revision fetched before (by a process before this one too), again, if its content
        can still be had: a snapshot kept under the state root, a commit still in the repository;
        else None. What an agent's restart finds its pin and its rollback revisions by."""
        ...

    def place(self, revision: Revision) -> None:
        """Make `revision.live` show this revision's files before it is loaded or applied (a git
        checkout moves, keeping files nobody committed; a live directory already is); idempotent."""
        ...
