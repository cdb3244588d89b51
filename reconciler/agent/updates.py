"""Image update policies in the agent: list tags, pick the newest allowed, apply or announce.

Each pass of a source whose containers have `image: {track, policy, mode}` (spec/tagpolicy.py):

1. `TagCache.tags(repository)` lists the repository's tags through the registry client (paged,
   see `RegistryClient.list_tags`). A listing is reused for `interval` seconds, and a repository
   is never asked more often than that, however many containers, sources or passes want it; a
   listing that fails is retried after a delay that doubles up to an hour, meanwhile the last
   good list (if any) stands in. So a pass costs no registry request most of the time, and an
   unreachable registry is not hammered.
2. `decide()` gives each container's `Decision`: the tag its manifest names, the newest tag the
   policy allows, and what to do (`apply`, `notify`, or nothing when they are the same tag).
3. `applied()` is the desired state with each `apply` decision's tag in place of the
   manifest's, unless that tag failed before (`refused`; then the tag the container last ran
   healthy, else the manifest's): the pass then recreates the container the usual way (its
   `update:` order, health gate and rollback on failure).

The agent (daemon.py) then tells what happened (`image_update_available`, `image_updated`,
`image_update_failed` events, which notify.py sends), remembers a tag whose update failed so it
is not tried again on every pass, and for a git source with `write_back:` commits the tags that
run healthy into the manifests (sources/writeback.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING

from reconciler._dataclass import dataclass, dataclasses
from reconciler.spec import models, tagpolicy

if TYPE_CHECKING:
    from reconciler.registry_client.client import RegistryClient

__all__ = ["MAX_BACKOFF", "MAX_TAGS", "Decision", "Follower", "RegistryLister", "TagCache", "applied", "decide"]

MAX_TAGS = 10_000                   # tags read from one repository (a policy runs over each)
MAX_BACKOFF = 3600.0                # seconds between listings of a repository that keeps failing


@dataclass
class _Entry:
    """A repository's last tag listing, and when the next may be asked."""

    tags: list[str] | None = None   # the last good listing
    listed_at: float = -1e18        # when it was made (clock)
    next_at: float = 0.0            # no request before this (clock)
    error: str | None = None        # the last listing's failure, while it lasts
    failures: int = 0
    checked_at: float | None = None  # wall-clock time of the last listing (made or failed)
    listed_wall: float | None = None  # wall-clock time of the last listing that succeeded


class TagCache:
    """Tag listings per repository: cached for `interval`, at most one request per `interval`,
    failures backed off. Thread-safe; `lister(repository) -> tags` raises on failure."""

    def __init__(self, lister: Callable[[str], list[str]], *, interval: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.lister, self.interval, self.clock = lister, interval, clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self.requests = 0               # listings made (for tests and metrics)

    def tags(self, repository: str) -> list[str]:
        """The repository's tags; raises LookupError (with the registry's words) when none are known.
        While listings fail, the last good list (of `listed_at`) stands in and `error()` says why."""
        with self._lock:
            e = self._entries.setdefault(repository, _Entry())
            now = self.clock()
            if now >= e.next_at and now - e.listed_at >= self.interval:
                self.requests += 1
                e.checked_at = time.time()
                try:
                    e.tags = self.lister(repository)[:MAX_TAGS]
                except Exception as exc:  # noqa: BLE001 - any failure of a registry is reported, then retried later
                    e.failures += 1
                    e.error = f"{type(exc).__name__}: {exc}"
                    e.next_at = now + min(self.interval * 2 ** (e.failures - 1), MAX_BACKOFF)
                else:
                    e.listed_at, e.next_at, e.error, e.failures = now, now + self.interval, None, 0
                    e.listed_wall = e.checked_at
            if e.tags is None:
                raise LookupError(e.error or "not listed yet")
            return list(e.tags)

    def error(self, repository: str) -> str | None:
        """Why the last listing failed, while listings fail (the tags given are then the last
        good ones, of `listed_at`); None once one succeeds."""
        with self._lock:
            e = self._entries.get(repository)
            return e.error if e is not None else None

    def checked_at(self, repository: str) -> float | None:
        """When the repository's tags were last asked for (wall clock), None if never."""
        with self._lock:
            e = self._entries.get(repository)
            return e.checked_at if e is not None else None

    def listed_at(self, repository: str) -> float | None:
        """When the repository's tags were last listed successfully (wall clock), None if never."""
        with self._lock:
            e = self._entries.get(repository)
            return e.listed_wall if e is not None else None


class RegistryLister:
    """`lister(repository) -> tags` on one registry client (credentials as for pulls: docker
    config, auth files); `close()` ends its connections.

    The client (httpx, its TLS context: ~5 MiB resident) is made by the first listing: an agent
    makes its lister with its first pass, and one whose containers name no update policy lists
    nothing and never loads it (#21, the memory at rest)."""

    def __init__(self, *, page_size: int = 1000, retries: int = 4) -> None:
        self.page_size = page_size
        self.retries = retries
        self.registry: RegistryClient | None = None

    def __call__(self, repository: str) -> list[str]:
        if self.registry is None:
            from reconciler.registry_client import client as rc

            self.registry = rc.RegistryClient(retries=self.retries)
        return self.registry.list_tags(repository, page_size=self.page_size, limit=MAX_TAGS)

    def close(self) -> None:
        if self.registry is not None:
            self.registry.close()


@dataclass(frozen=True)
class Decision:
    """What a container's update policy says now."""

    container: str
    repository: str
    current: str                    # the tag the manifest names
    chosen: str | None              # the newest tag the policy allows (None: none, or no listing)
    mode: models.UpdateMode
    error: str | None = None        # why the last listing failed (`chosen` then comes from an older one, or none)
    policy: str = ""                # the policy in words ("semver '>=1.4 <2'")
    checked_at: float | None = None  # when the tags were last asked for (wall clock)
    listed_at: float | None = None  # when they were last listed successfully (wall clock)

    @property
    def newer(self) -> bool:
        """The policy picks another tag than the manifest's."""
        return self.chosen is not None and self.chosen != self.current

    def ref(self, tag: str) -> str:
        return f"{self.repository}:{tag}"


def decide(desired: models.DesiredState, cache: TagCache) -> list[Decision]:
    """One decision per container with an update policy, by name."""
    out: list[Decision] = []
    for name, c in sorted(desired.containers.items()):
        u = c.image_update
        if u is None:
            continue
        seen = {"policy": u.policy.describe()}
        try:
            tags = cache.tags(u.repository)
        except LookupError as e:
            out.append(Decision(name, u.repository, u.tag, None, u.mode, error=str(e), **seen,
                                checked_at=cache.checked_at(u.repository), listed_at=None))
            continue
        # a failing listing is reported though the last good list decides meanwhile
        out.append(Decision(name, u.repository, u.tag, tagpolicy.choose(tags, u.policy), u.mode, **seen,
                            error=cache.error(u.repository), checked_at=cache.checked_at(u.repository),
                            listed_at=cache.listed_at(u.repository)))
    return out


def applied(desired: models.DesiredState, decisions: Collection[Decision],
            refused: Mapping[str, str], ran: Mapping[str, str] | None = None) -> models.DesiredState:
    """`desired` with each `apply` decision's newer tag in place. A tag `refused` (by container
    name: the tag whose update failed) gives way to the tag the container last ran healthy
    (`ran`, by name) if its policy still allows it, else to the manifest's."""
    containers = dict(desired.containers)
    for d in decisions:
        c = containers[d.container]
        if d.mode != "apply" or not d.newer or d.chosen is None or c.image_update is None:
            continue
        tag = d.chosen
        if refused.get(d.container) == d.chosen:
            last = (ran or {}).get(d.container)
            if last is None or last == d.current or tagpolicy.choose([last], c.image_update.policy) != last:
                continue
            tag = last
        containers[d.container] = dataclasses.replace(c, image=d.ref(tag))
    if containers == dict(desired.containers):
        return desired
    from types import MappingProxyType

    return dataclasses.replace(desired, containers=MappingProxyType(containers))


Publish = Callable[..., object]


@dataclass
class Follower:
    """One source's update bookkeeping across passes (the agent keeps one per source)."""

    refused: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)  # name -> (tag, revision)
    announced: dict[str, str] = dataclasses.field(default_factory=dict)   # notify mode: tag last announced
    running: dict[str, str] = dataclasses.field(default_factory=dict)     # apply mode: ref last run healthy
    written: dict[str, str] = dataclasses.field(default_factory=dict)     # tag last written back
    decisions: list[Decision] = dataclasses.field(default_factory=list)   # of the last pass

    def prepare(self, desired: models.DesiredState, cache: TagCache, revision: str) -> models.DesiredState:
        """Decide (listing tags through `cache`) and return what the pass should apply."""
        if not any(c.image_update for c in desired.containers.values()):
            self.decisions = []
            return desired
        self.decisions = decide(desired, cache)
        return self.replay(desired, revision)

    def replay(self, desired: models.DesiredState, revision: str) -> models.DesiredState:
        """`desired` as the last decisions make it (no listing: what a plan shows)."""
        repos = {d.container: d.repository for d in self.decisions}
        ran = {name: ref.rpartition(":")[2] for name, ref in self.running.items()
               if ref.rpartition(":")[0] == repos.get(name)}
        return applied(desired, self.decisions, self.refusals(revision), ran)

    def refusals(self, revision: str) -> dict[str, str]:
        """The tags not to try again: their update failed at this revision of the manifests."""
        return {name: tag for name, (tag, rev) in self.refused.items() if rev == revision}

    def settle(self, source: str, revision: str, failed: Mapping[str, str], publish: Publish, *,
               interrupted: bool = False) -> list[Decision]:
        """After the pass: events for what changed (`failed`: container -> why, for those that do
        not run as desired); returns the updates now running healthy that the manifests do not
        name yet (what a write-back commits)."""
        write: list[Decision] = []
        refused = self.refusals(revision)
        for d in self.decisions:
            fields = {"source": source, "container": d.container, "repository": d.repository,
                      "current": d.current, "chosen": d.chosen}
            if d.mode == "notify":
                if d.newer and self.announced.get(d.container) != d.chosen:
                    self.announced[d.container] = d.chosen or ""
                    publish("image_update_available", **fields)
                continue
            if not d.newer or d.chosen is None or refused.get(d.container) == d.chosen or interrupted:
                continue
            if d.container in failed:
                self.refused[d.container] = (d.chosen, revision)
                publish("image_update_failed", **fields, error=failed[d.container])
                continue
            if self.running.get(d.container) != d.ref(d.chosen):
                self.running[d.container] = d.ref(d.chosen)
                publish("image_updated", **fields)
            if self.written.get(d.container) != d.chosen:
                write.append(d)
        return write

    def memo(self) -> dict[str, str]:
        """What a restart of the agent must not announce again: the tags announced (notify mode)
        and the references run healthy (apply mode), by container ("announced:web" -> tag)."""
        return {**{f"announced:{k}": v for k, v in self.announced.items()},
                **{f"running:{k}": v for k, v in self.running.items()}}

    def recall(self, memo: Mapping[str, str]) -> None:
        """Take back a `memo()` kept from before a restart."""
        for key, value in memo.items():
            kind, _, name = key.partition(":")
            if kind == "announced":
                self.announced.setdefault(name, value)
            elif kind == "running":
                self.running.setdefault(name, value)

    def status(self, revision: str) -> list[dict[str, object]]:
        refused = self.refusals(revision)
        return [{"container": d.container, "repository": d.repository, "manifest_tag": d.current,
                 "policy_tag": d.chosen, "mode": d.mode, "error": d.error,
                 "refused": refused.get(d.container) == d.chosen and d.chosen is not None,
                 "policy": d.policy, "checked_at": d.checked_at, "listed_at": d.listed_at}
                for d in self.decisions]
