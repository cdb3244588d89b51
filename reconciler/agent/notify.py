"""Notifications: the agent's events that a person should hear of, sent to chat, mail or a hook.

    notify:
      - url_file: /etc/reconciler/chat.url      # an Apprise URL (slack://, discord://, ntfy://,
                                                # mailto://, tgram://, json://, ...), kept in a file
        severity: warning                       # the least severe to send (info|warning|error)
      - webhook: {url: "https://ci.example/hook", secret_file: /etc/reconciler/hook.secret}
        sources: [shop]                         # only these sources (default: all)
        events: [pass_failed, recovered]        # only these kinds (default: all)

What is sent (`KINDS`): a failed or degraded pass, its recovery, a rollback, a revision that
does not load and its fix, a source that cannot be read and its recovery, reported drift, a
crash-looping container, (info) each pass that changed something, and what image update
policies did (agent/updates.py): a newer tag announced, a container updated, an update that
failed (rolled back), a write-back that could not be pushed. A failure repeated on
every pass is sent once, then its recovery once (`Deduper`), so a broken host does not page
every few seconds; what was sent outlives a restart of the agent (agent/recall.py), so a
restarted agent does not page again for a failure it told of already.

Delivery is off the pass's path: the notifier follows the agent's EventBus on a thread of its
own and each target has a bounded queue and a sender thread that retries with backoff; a dead
or slow target never slows a pass, and when its queue is full the oldest waiting message is
dropped and counted. URLs and secrets come from the config or files; logs name a target by its
scheme and host only.

The generic webhook POSTs JSON (`payload()`) with `X-Reconciler-Signature: sha256=<hex>`, the
HMAC-SHA256 of the body under the secret, as GitHub signs its hooks; the receiver recomputes it.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from reconciler import logs
from reconciler._dataclass import dataclass, field

__all__ = ["KINDS", "SEVERITIES", "Deduper", "Notification", "Notifier", "NotifyTarget", "payload", "sign"]

SEVERITIES = ("info", "warning", "error")
KINDS = {
    "pass_failed": "error", "recovered": "info", "applied": "info", "rolled_back": "warning",
    "revision_invalid": "error", "revision_fixed": "info", "source_error": "error",
    "source_recovered": "info", "drift": "warning", "container_flapping": "error",
    "image_update_available": "info", "image_updated": "info", "image_update_failed": "error",
    "write_back_failed": "error",
}
SIGNATURE_HEADER = "X-Reconciler-Signature"
QUEUE_LIMIT = 100
ATTEMPTS = 4
MAX_IDENTITY = 512                  # characters of a failure's identity kept (then a digest)

log = logs.get_logger("reconciler.agent.notify")


@dataclass(frozen=True)
class NotifyTarget:
    """One `notify:` entry: where to send and what."""

    url: str | None = None                       # an Apprise URL
    webhook_url: str | None = None               # or a signed JSON webhook
    secret: bytes | None = field(default=None, repr=False)
    sources: frozenset[str] | None = None        # None: all
    kinds: frozenset[str] | None = None          # None: all
    severity: str = "info"                       # the least severe sent

    def wants(self, n: Notification) -> bool:
        return ((self.sources is None or n.source in self.sources)
                and (self.kinds is None or n.kind in self.kinds)
                and SEVERITIES.index(n.severity) >= SEVERITIES.index(self.severity))

    @property
    def label(self) -> str:
        """What logs may say of the target: scheme and host, never the path, user or token."""
        url = urllib.parse.urlsplit(self.webhook_url or self.url or "")
        return f"{url.scheme}://{url.hostname or ''}"


@dataclass(frozen=True)
class Notification:
    """One message for the notification sinks: its kind, source, title and text."""

    kind: str
    source: str
    title: str
    message: str
    event: Mapping[str, Any]

    @property
    def severity(self) -> str:
        return KINDS[self.kind]


def payload(n: Notification, *, host: str | None = None) -> dict[str, Any]:
    """The webhook's JSON body (docs/operations.md, "Notifications")."""
    return {"kind": n.kind, "severity": n.severity, "source": n.source, "title": n.title,
            "message": n.message, "host": host or socket.gethostname(), "time": n.event.get("time", time.time()),
            "event": dict(n.event)}


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


# What changes from one pass to the next in the words of the same failure: the attempts and the
# time of the next one of a failure held back (planner: "previous attempt failed (2x: ERROR);
# retry after TIME or with a new revision"), restart counts, copies running, timestamps
_HELD = re.compile(r"^previous attempt failed \(\d+x: (?P<error>.*)\); retry after \S+ or with a new revision$", re.S)
_VOLATILE = (
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?"), "TIME"),
    (re.compile(r"\b\d+ restarts\b"), "N restarts"),
    (re.compile(r"\brestarted (once|\d+ times)"), "restarted N times"),
    (re.compile(r"\b\d+ of (\d+) copies"), r"N of \1 copies"),
)


def failure_identity(failure: str) -> str:
    """A pass's failure ("container:web: DETAIL") without what changes while it stays the same
    failure: the resource and the kind of error, not its counters or times."""
    resource, sep, detail = failure.partition(": ")
    if not sep:
        resource, detail = "", failure
    held = _HELD.match(detail)
    if held is not None:                # held back after it failed: the same failure as the first time
        detail = held.group("error")
    for pattern, replacement in _VOLATILE:
        detail = pattern.sub(replacement, detail)
    return f"{resource}: {detail}"


def _bounded(identity: str) -> str:
    """An identity as kept: a long one (every problem of a revision) as its head and a digest
    of the whole, so the memory stays small and a change past the head is still another."""
    if len(identity) <= MAX_IDENTITY:
        return identity
    digest = hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{identity[:MAX_IDENTITY - 80]}... sha256:{digest}"


class Deduper:
    """Events -> notifications, a repeated failure once and its recovery once.

    A failure is known by its identity (for a pass: each failing resource and its kind of error,
    `failure_identity`; else the message): while a source keeps failing, a notification is sent
    only when a failure not sent since it began appears, however the words of the others change
    or they come and go.

    With a `memory` (agent/recall.py) what was told outlives the agent's process: `restore`d at
    the start, put back at each change, so a restarted agent does not tell again of a failure
    still there. What the previous process told is `inherited` until this one sees the failure
    again; for an unreadable source or a refused revision this process has no error of its own to
    see end, so the first pass of the source (a revision fetched and loaded: the agent's first
    pass of each source is always an event) is its recovery. Bounded: at most MAX_KEYS failures
    of MAX_IDENTITIES identities each (the oldest go first), each identity at most MAX_IDENTITY
    characters."""

    MAX_KEYS = 256
    MAX_IDENTITIES = 32

    def __init__(self, memory: Any = None) -> None:
        # (what, source) -> identities sent (a dict: ordered, the oldest dropped first)
        self._failing: dict[tuple[str, str], dict[str, None]] = {}
        self._inherited: set[tuple[str, str]] = set()
        self.memory = memory                    # a recall.Memory, or None: this process only
        self._changed = False

    def export(self) -> dict[str, Any]:
        """What `restore` takes back: the failures told of, as JSON data."""
        return {"failing": [[what, key, list(ids)] for (what, key), ids in self._failing.items()]}

    def restore(self, data: Any, *, sources: Collection[str], flapping: Collection[str]) -> None:
        """What an earlier process told (`export`), for the agent's `sources` and the containers
        still left stopped for `flapping` only (a source since removed, a crash loop ended while
        no agent ran: nothing to recover from); anything malformed is left out."""
        entries = data.get("failing") if isinstance(data, dict) else None
        for entry in entries if isinstance(entries, list) else ():
            if not (isinstance(entry, list) and len(entry) == 3 and all(isinstance(x, str) for x in entry[:2])
                    and isinstance(entry[2], list)):
                continue
            what, key, ids = entry
            if what == "flapping" and key not in flapping:
                continue
            if what != "flapping" and key.split("/", 1)[0] not in sources:
                continue
            said = {_bounded(i): None for i in ids if isinstance(i, str)}
            if said:
                self._failing[(what, key)] = said
                self._inherited.add((what, key))
        self._trim()

    def __call__(self, e: Mapping[str, Any]) -> list[Notification]:
        out = self._notifications(e)
        if self._changed:
            self._changed = False
            if self.memory is not None:
                self.memory.put("notified", self.export())
        return out

    def _notifications(self, e: Mapping[str, Any]) -> list[Notification]:
        t, source = e.get("type"), str(e.get("source") or "")
        if t == "pass":
            return self._pass(e, source)
        if t == "rollback":
            return [Notification("rolled_back", source, f"{source}: rolled back to {_short(e.get('revision'))}",
                                 f"revision {_short(e.get('previous'))} was rolled back to {_short(e.get('revision'))}", e)]
        if t == "revision_invalid":
            problems = "\n".join(str(p) for p in e.get("problems") or ())
            return self._fail(("revision", source), Notification(
                "revision_invalid", source, f"{source}: revision {_short(e.get('revision'))} does not load", problems, e))
        if t == "revision_fixed":
            return self._recover(("revision", source), Notification(
                "revision_fixed", source, f"{source}: revision {_short(e.get('revision'))} loads again", "", e))
        if t == "source_error":
            return self._fail(("source", source), Notification(
                "source_error", source, f"{source}: cannot read the source", str(e.get("error", "")), e))
        if t == "source_recovered":
            return self._recover(("source", source), Notification(
                "source_recovered", source, f"{source}: source readable again", f"revision {_short(e.get('revision'))}", e))
        if t == "drift_reported":
            objects = ", ".join(str(o) for o in e.get("objects") or ())
            return self._fail(("drift", source), Notification(
                "drift", source, f"{source}: the host differs from the manifests", objects, e))
        if isinstance(t, str) and t.startswith(("image_", "write_back", "written_back")):
            return self._image(t, e, source)
        if t == "container_flapping":
            name = str(e.get("container", ""))
            return self._fail(("flapping", name), Notification(
                "container_flapping", source, _titled(source, f"container {name} is crash-looping"),
                str(e.get("message", "")), e))
        if t == "container_flapping_cleared":
            # started by hand, removed or resumed: nothing to send, but a next crash loop is news again
            self._forget(("flapping", str(e.get("container", ""))))
        return []

    def _image(self, t: str, e: Mapping[str, Any], source: str) -> list[Notification]:
        """Update policies (agent/updates.py): a newer tag is announced once per tag; a failed
        update once per tag; a failing write-back once, until one succeeds."""
        name, repo = str(e.get("container", "")), str(e.get("repository", ""))
        old, new = e.get("current"), e.get("chosen")
        if t == "image_update_available":
            return self._fail(("available", f"{source}/{name}"), Notification(
                t, source, f"{source}: {name} can run {repo}:{new}",
                f"its policy allows {repo}:{new}; it runs {repo}:{old} (mode notify: nothing changed)", e))
        if t == "image_updated":
            return [Notification(t, source, f"{source}: {name} updated to {repo}:{new}",
                                 f"{repo}:{old} -> {repo}:{new}, running and healthy", e)]
        if t == "image_update_failed":
            return self._fail(("update", f"{source}/{name}"), Notification(
                t, source, f"{source}: {name} could not be updated to {repo}:{new}",
                f"{e.get('error', '')}\n{name} stays on {repo}:{old}; the tag is not tried again", e))
        if t == "write_back_failed":
            return self._fail(("write_back", source), Notification(
                t, source, f"{source}: the chosen image tags could not be committed", str(e.get("error", "")), e))
        if t == "written_back":
            self._forget(("write_back", source))
        return []

    def _pass(self, e: Mapping[str, Any], source: str) -> list[Notification]:
        result = str(e.get("result"))
        if result == "interrupted":         # stopped (SIGTERM) before it could tell: neither failed nor recovered
            return []
        # a pass at a revision ran, failed or not: its source was read and the revision loaded
        out = self._inherited_recoveries(e, source) if e.get("revision") else []
        if result in ("failed", "degraded"):
            failures = [str(f) for f in e.get("failures") or ()]
            return out + self._fail(("pass", source), Notification(
                "pass_failed", source, f"{source}: pass {result} at revision {_short(e.get('revision'))}",
                "\n".join(failures), e), {failure_identity(f) for f in failures} or {result})
        out += self._recover(("pass", source), Notification(
            "recovered", source, f"{source}: converged again at revision {_short(e.get('revision'))}", "", e))
        counts = {k: v for k, v in (e.get("counts") or {}).items() if v}
        if counts:
            done = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
            out.append(Notification("applied", source, f"{source}: revision {_short(e.get('revision'))} applied", done, e))
        return out

    def _inherited_recoveries(self, e: Mapping[str, Any], source: str) -> list[Notification]:
        """An unreadable source or a refused revision an earlier process told of, which this one
        has not seen since, is over: a pass of the source ran at a revision."""
        revision = _short(e.get("revision"))
        out: list[Notification] = []
        for key, n in ((("source", source), Notification(
                           "source_recovered", source, f"{source}: source readable again", f"revision {revision}", e)),
                       (("revision", source), Notification(
                           "revision_fixed", source, f"{source}: revision {revision} loads again", "", e))):
            if key in self._inherited:
                out += self._recover(key, n)
        return out

    def _fail(self, key: tuple[str, str], n: Notification, identities: set[str] | None = None) -> list[Notification]:
        self._inherited.discard(key)            # seen by this process: its own from now on
        said = self._failing.pop(key, None) or {}
        self._failing[key] = said               # the newest failure last: the oldest are dropped first
        new = [i for i in sorted({_bounded(i) for i in identities or {n.message}}) if i not in said]
        for i in new:
            said[i] = None
        while len(said) > self.MAX_IDENTITIES:
            del said[next(iter(said))]
        self._trim()
        self._changed = self._changed or bool(new)
        return [n] if new else []

    def _recover(self, key: tuple[str, str], n: Notification) -> list[Notification]:
        self._inherited.discard(key)
        return [n] if self._forget(key) else []

    def _forget(self, key: tuple[str, str]) -> bool:
        if self._failing.pop(key, None) is None:
            return False
        self._inherited.discard(key)
        self._changed = True
        return True

    def _trim(self) -> None:
        while len(self._failing) > self.MAX_KEYS:
            oldest = next(iter(self._failing))
            del self._failing[oldest]
            self._inherited.discard(oldest)
            self._changed = True


def _titled(source: str, title: str) -> str:
    """A title named by its source first, as every notification's (`shop: ...`); a container
    of none of the agent's sources (`reconcile run`) has none to name."""
    return f"{source}: {title}" if source else title


def _short(revision: Any) -> str:
    """A revision as people read it in a title (a git commit's 12 characters, as `history` shows
    it); the event's payload keeps the whole id."""
    return str(revision or "")[:12]


class _Bus(Protocol):
    @property
    def last_seq(self) -> int: ...

    @property
    def closed(self) -> bool: ...

    def wait(self, seq: int, timeout: float) -> Sequence[Mapping[str, Any]]: ...


Sender = Callable[[NotifyTarget, Notification], None]


def send(target: NotifyTarget, n: Notification) -> None:
    """Deliver one notification; raises on failure (the caller retries)."""
    if target.webhook_url is not None:
        import httpx

        body = json.dumps(payload(n), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "X-Reconciler-Event": n.kind}
        if target.secret is not None:
            headers[SIGNATURE_HEADER] = sign(target.secret, body)
        r = httpx.post(target.webhook_url, content=body, headers=headers, timeout=10)
        r.raise_for_status()
        return
    import apprise

    a = apprise.Apprise()
    if target.url is None or not a.add(target.url):
        raise ValueError("Apprise does not know this URL")
    kind = {"info": apprise.NotifyType.INFO, "warning": apprise.NotifyType.WARNING,
            "error": apprise.NotifyType.FAILURE}[n.severity]
    if not a.notify(title=n.title, body=n.message or n.title, notify_type=kind):
        raise OSError("the Apprise service refused or could not be reached")


class _Queue:
    """One target's bounded queue and sender thread (until `close()`)."""

    def __init__(self, target: NotifyTarget, sender: Sender, backoff: float) -> None:
        self.target, self.sender, self.backoff = target, sender, backoff
        self.stop = threading.Event()
        self.items: collections.deque[Notification] = collections.deque()
        self.cond = threading.Condition()
        self.dropped = self.sent = self.failed = 0
        self.thread = threading.Thread(target=self._run, name=f"notify-{target.label}", daemon=True)

    def put(self, n: Notification) -> None:
        with self.cond:
            if len(self.items) >= QUEUE_LIMIT:
                self.items.popleft()
                self.dropped += 1
            self.items.append(n)
            self.cond.notify()

    def close(self) -> None:
        self.stop.set()
        with self.cond:
            self.cond.notify_all()

    def _run(self) -> None:
        while not self.stop.is_set():
            with self.cond:
                while not self.items and not self.stop.is_set():
                    self.cond.wait(1.0)
                if self.stop.is_set():
                    return
                n = self.items.popleft()
            self._deliver(n)

    def _deliver(self, n: Notification) -> None:
        for attempt in range(ATTEMPTS):
            try:
                self.sender(self.target, n)
                self.sent += 1
                return
            except Exception as exc:  # noqa: BLE001 - any failure of a target is retried, then logged
                error = f"{type(exc).__name__}: {exc}"
            if self.stop.wait(self.backoff * 2 ** attempt):
                return
        self.failed += 1
        log.warning("notification_failed", target=self.target.label, kind=n.kind, source=n.source,
                    attempts=ATTEMPTS, error=error[:200])


class Notifier:
    """Follows an EventBus and sends what each target wants, off the pass's path."""

    def __init__(self, targets: Sequence[NotifyTarget], bus: _Bus, *, sender: Sender = send,
                 backoff: float = 1.0) -> None:
        self.bus = bus
        self.dedupe = Deduper()
        self.sender, self.backoff = sender, backoff
        self._stop = threading.Event()
        self._started = False
        self.queues = [_Queue(t, sender, backoff) for t in targets]
        self._thread = threading.Thread(target=self._follow, name="notify", daemon=True)

    def start(self) -> Notifier:
        self._started = True
        for q in self.queues:
            q.thread.start()
        if self.queues:
            self._thread.start()
        return self

    def retarget(self, targets: Sequence[NotifyTarget]) -> None:
        """The targets of a reloaded config (SIGHUP): a target kept keeps its queue (nothing
        waiting is lost), a new one gets its own, a removed one's sender stops; what has been
        sent or de-duplicated is remembered (`dedupe` stays)."""
        old: dict[NotifyTarget, _Queue | None] = {q.target: q for q in self.queues}
        queues = [old.pop(t, None) or _Queue(t, self.sender, self.backoff) for t in targets]
        for q in queues:
            if self._started and not q.thread.is_alive() and not q.stop.is_set():
                q.thread.start()
        self.queues = queues                    # one assignment: the follower sees the old list or this
        for gone in old.values():
            if gone is not None:
                gone.close()
        if self._started and queues and not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        for q in self.queues:
            q.close()

    def stats(self) -> dict[str, dict[str, int]]:
        return {q.target.label: {"sent": q.sent, "failed": q.failed, "dropped": q.dropped} for q in self.queues}

    def _follow(self) -> None:
        seq = self.bus.last_seq
        while not self._stop.is_set() and not self.bus.closed:
            for e in self.bus.wait(seq, 1.0):
                seq = max(seq, int(e["seq"]))
                for n in self.dedupe(e):
                    for q in self.queues:
                        if q.target.wants(n):
                            q.put(n)


def read_secret(path: str, what: str) -> str:
    """A URL or secret from a file (first line, stripped); ValueError says which and why."""
    try:
        text = Path(path).read_text().strip()
    except OSError as e:
        raise ValueError(f"cannot read {what} {path}: {e.strerror}") from None
    if not text:
        raise ValueError(f"{what} {path} is empty")
    return text.splitlines()[0].strip()


def target_from_config(d: Mapping[str, Any]) -> NotifyTarget:
    """One validated `notify:` entry -> a NotifyTarget (files read now; ValueError if unusable)."""
    sources = frozenset(d["sources"]) if "sources" in d else None
    kinds = frozenset(d["events"]) if "events" in d else None
    severity = str(d.get("severity", "info"))
    if "webhook" in d:
        w = d["webhook"]
        secret = read_secret(w["secret_file"], "webhook secret_file").encode() if "secret_file" in w else None
        return NotifyTarget(webhook_url=str(w["url"]), secret=secret, sources=sources, kinds=kinds,
                            severity=severity)
    url = read_secret(d["url_file"], "url_file") if "url_file" in d else str(d["url"])
    try:
        import apprise
    except ImportError:
        raise ValueError("Apprise URLs need the apprise package (pip install apprise)") from None
    if apprise.Apprise.instantiate(url) is None:
        scheme = url.split("://", 1)[0]
        raise ValueError(f"Apprise does not know the URL scheme {scheme!r}: see "
                         "https://github.com/caronc/apprise/wiki for the services and their URLs")
    return NotifyTarget(url=url, sources=sources, kinds=kinds, severity=severity)
