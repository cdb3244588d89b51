"""Docker's filter semantics: the `filters` of the Engine API's lists and prunes, as dockerd 20.10
reads them (moby v20.10: api/types/filters/parse.go, daemon/list.go, daemon/prune.go,
daemon/images/images.go and image_prune.go, volume/service/convert.go and service.go).

The one home of these rules (docs/architecture.md): which filters each list and prune accepts
(any other is refused, 400 `Invalid filter 'NAME'`: a filter ignored would widen what a script
acts on, `docker ps -q -f health=unhealthy | xargs docker restart` restarting every container),
how a value matches (`match`: the value itself or a regular expression found in the field;
`labels_match`: every `label=KEY[=VALUE]`, no `label!`; `reference_match`: a path pattern over
the familiar reference, or over its name alone), `until` times, port ranges, the order of a
container list (newest first) with its `before`, `since` and `limit`, and the image descendant
relation that `ancestor` and dangling images need (`descendants`, whose home is the native engine's
`images/lineage.py`, re-exported here).

Pure: no engine, no I/O. `api/engine.py` builds the views (`ContainerView`, `ImageView`) from what
the native engine has and gives lookups for what a filter names (an image, a container).
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from reconciler._dataclass import dataclass
from reconciler.runtime import errors as rterrors
from reconciler.runtime.native.images.lineage import Lineage, descendants

__all__ = [
    "CONTAINER_LIST",
    "IMAGE_LIST",
    "NETWORK_LIST",
    "PRUNE",
    "VOLUME_LIST",
    "ContainerView",
    "ImageView",
    "Lineage",
    "containers",
    "descendants",
    "from_flags",
    "images",
    "labels_match",
    "match",
    "name_of",
    "network_matches",
    "parse",
    "prune_until",
    "reference_match",
    "rfc3339_ns",
    "validate",
    "volumes",
    "yes_no",
]

Filters = Mapping[str, Sequence[str]]

# What each list and prune accepts (dockerd 20.10's acceptedPsFilterTags, acceptedListFilters,
# acceptedImageFilterTags, containersAcceptedFilters, imagesAcceptedFilters, networksAcceptedFilters,
# volume acceptedPruneFilters). `isolation` is Windows' (a no-op on Linux, as dockerd's).
CONTAINER_LIST = frozenset({"ancestor", "before", "exited", "expose", "health", "id", "is-task", "isolation",
                            "label", "name", "network", "publish", "since", "status", "volume"})
VOLUME_LIST = frozenset({"dangling", "driver", "label", "name"})
NETWORK_LIST = frozenset({"dangling", "driver", "id", "label", "name", "scope", "type"})
IMAGE_LIST = frozenset({"before", "dangling", "label", "reference", "since"})
PRUNE = {"containers": frozenset({"label", "label!", "until"}),
         "images": frozenset({"dangling", "label", "label!", "until"}),
         "networks": frozenset({"label", "label!", "until"}),
         "volumes": frozenset({"label", "label!"})}

_STATES = ("created", "dead", "exited", "paused", "removing", "restarting", "running")
_HEALTH = ("healthy", "none", "starting", "unhealthy")


def _invalid(message: str) -> rterrors.InvalidArgument:
    return rterrors.InvalidArgument(message)


def _go_list(values: Iterable[str]) -> str:
    """A list of strings as Go's %s prints it: [a b]."""
    return "[" + " ".join(values) + "]"


# ----------------------------------------------------------------------------- the query's filters

def parse(raw: str | None) -> dict[str, list[str]]:
    """The `filters` query parameter: JSON, `{"KEY": {"VALUE": true}}` (what clients send since
    API 1.22) or the older `{"KEY": ["VALUE"]}`; a value mapped to false is not given."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise _invalid(f"invalid filters {raw!r}: {exc}") from None
    if not isinstance(data, dict):
        raise _invalid(f"invalid filters {raw!r}: not a JSON object")
    out: dict[str, list[str]] = {}
    for key, values in data.items():
        if isinstance(values, list):
            out[str(key)] = [str(v) for v in values]
        elif isinstance(values, dict):
            out[str(key)] = [str(v) for v, on in values.items() if on]
        else:
            raise _invalid(f"invalid filters {raw!r}: the values of {key!r} are neither a list nor a map")
    return out


def from_flags(items: Iterable[str]) -> dict[str, list[str]]:
    """The docker CLI's `--filter KEY=VALUE` flags (repeatable) as filters, as it reads them
    (opts.FilterOpt): InvalidArgument in its words for one without `=`. What a list accepts is
    `validate`'s."""
    out: dict[str, list[str]] = {}
    for item in items:
        kind, sep, value = item.partition("=")
        if not sep:
            raise rterrors.InvalidArgument(f"bad format of filter (expected name=value): {item}")
        out.setdefault(kind.strip().lower(), []).append(value.strip())
    return out


def validate(fl: Filters, accepted: Iterable[str]) -> None:
    """Refuse a filter the list or prune does not have (dockerd's `Args.Validate`)."""
    allowed = set(accepted)
    for key in sorted(fl):
        if key not in allowed:
            raise _invalid(f"Invalid filter '{key}'")


def match(values: Sequence[str], source: str) -> bool:
    """dockerd's `Args.Match`: no value given, a value equal to `source`, or one that is a regular
    expression found in it (a value that is not a valid expression matches only itself)."""
    if not values or source in values:
        return True
    for pattern in values:
        try:
            if re.search(pattern, source):
                return True
        except re.error:
            continue
    return False


def _kv(values: Sequence[str], labels: Mapping[str, str]) -> bool:
    """dockerd's `MatchKVList`: each KEY (present) or KEY=VALUE (equal) of `values` holds."""
    if not values:
        return True
    if not labels:
        return False
    for value in values:
        key, eq, want = value.partition("=")
        if key not in labels or (eq and labels[key] != want):
            return False
    return True


def labels_match(fl: Filters, labels: Mapping[str, str]) -> bool:
    """`label` (every one holds) and `label!` (not all of them hold: dockerd excludes an object only
    when its labels match the whole `label!` list, as `matchLabels` does)."""
    if not _kv(fl.get("label", ()), labels):
        return False
    return not (fl.get("label!") and _kv(fl["label!"], labels))


def yes_no(fl: Filters, key: str, true: Sequence[str], false: Sequence[str]) -> bool | None:
    """A yes/no filter (`dangling`, `is-task`): None when not given, else its value (true when a
    true word is among the values); a value that is neither is refused."""
    if key not in fl:
        return None
    values = fl[key]
    if any(v in true for v in values):
        return True
    if any(v in false for v in values):
        return False
    raise _invalid(f"Invalid filter '{key}={_go_list(values)}'")


# ----------------------------------------------------------------------------- times

def rfc3339_ns(text: str | None) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 time (up to 9 decimals; no zone: UTC), None for
    none or one that does not read."""
    if not text:
        return None
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?", text.strip())
    if m is None:
        return None
    from datetime import datetime

    try:
        whole = datetime.fromisoformat(m[1] + ("+00:00" if m[3] in (None, "Z") else m[3]))
    except ValueError:
        return None
    return int(whole.timestamp()) * 1_000_000_000 + int((m[2] or "").ljust(9, "0")[:9] or 0)


_DURATION = re.compile(r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}


def _duration_ns(text: str) -> int | None:
    """Go's time.ParseDuration ("1h", "90m", "1h30m", "1.5h"), None for what is not one."""
    if not _DURATION.fullmatch(text):
        return None
    sign = -1 if text.startswith("-") else 1
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)", text):
        total += float(number) * _UNIT_NS[unit]
    return sign * int(total)


def _timestamp_ns(value: str, now_ns: int) -> int:
    """A time as dockerd reads `until` (api/types/time GetTimestamp): a Go duration before now,
    an RFC 3339 date or time (without a zone: the daemon's local time), or seconds since the
    epoch with a fraction."""
    ago = _duration_ns(value) if value != "0" else None
    if ago is not None:
        return now_ns - ago
    if "-" in value:
        from datetime import datetime

        text = value
        zoned = re.fullmatch(r"(\d{4}-\d{2}-\d{2})(Z|[+-]\d{2}:\d{2})", text)    # a date with a zone
        if zoned:
            text = f"{zoned[1]}T00:00:00{zoned[2]}"
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise _invalid(f"until: {value!r} is not a time (RFC 3339), a duration (1h30m) or seconds since "
                           "the epoch") from None
        if when.tzinfo is None:
            when = when.astimezone()           # the daemon's local time
        frac = re.search(r"\.(\d+)", value)
        nanos = int(frac[1].ljust(9, "0")[:9]) if frac else 0
        return int(when.replace(microsecond=0).timestamp()) * 1_000_000_000 + nanos
    m = re.fullmatch(r"(-?\d+)(?:\.(\d+))?", value)
    if m is None:
        raise _invalid(f'failed to parse value as time or duration: "{value}"')
    return int(m[1]) * 1_000_000_000 + int((m[2] or "").ljust(9, "0")[:9] or 0)


def prune_until(fl: Filters, now_ns: int | None = None) -> int | None:
    """A prune's `until`: the newest creation time (ns since the epoch) an object may have to be
    pruned; None when not given. Objects created after it are kept (dockerd: `Created.After(until)`)."""
    values = fl.get("until")
    if not values:
        return None
    if len(values) > 1:
        raise _invalid("more than one until filter specified")
    return _timestamp_ns(values[0], time.time_ns() if now_ns is None else now_ns)


# ----------------------------------------------------------------------------- ports

def _ports(key: str, values: Sequence[str]) -> set[tuple[int, str]]:
    """`publish`/`expose`: PORT[/PROTO] or START-END[/PROTO] (tcp unless named)."""
    out: set[tuple[int, str]] = set()
    for value in values:
        if ":" in value:
            raise _invalid(f"filter for '{key}' should not contain ':': {value}")
        port, _, proto = value.partition("/")
        start, dash, end = port.partition("-")
        if not start.isdigit() or (dash and not end.isdigit()) or int(end or start) < int(start) \
                or int(end or start) > 65535:
            raise _invalid(f"error while looking up for {key} {value}: invalid port range {port!r}")
        out.update((p, proto.lower() or "tcp") for p in range(int(start), int(end or start) + 1))
    return out


# ----------------------------------------------------------------------------- containers

@dataclass(frozen=True)
class ContainerView:
    """What the container list's filters look at (dockerd's container.Snapshot)."""

    id: str
    name: str
    state: str                  # Docker's State: created, running, paused, restarting, exited, dead
    created_ns: int
    labels: Mapping[str, str]
    image_id: str
    exit_code: int | None
    started: bool               # it has started once (an exit code is its process's)
    health: str                 # starting, healthy, unhealthy or none
    networks: Mapping[str, str]         # the networks it is on: name -> network id
    mounts: tuple[tuple[str, str], ...]     # (volume name or bind source, destination)
    ports: tuple[tuple[int, int, str], ...]     # (container port, host port or 0: exposed, protocol)

    @property
    def running(self) -> bool:
        return self.state in ("running", "paused", "restarting")


def _find_container(views: Sequence[ContainerView], value: str) -> str:
    """`before`/`since`: a container by its id or name (dockerd's `idOrNameFilter`)."""
    if any(v.id == value for v in views):
        return value
    named = {v.id for v in views if v.name.lstrip("/") == value.lstrip("/")}
    if len(named) != 1:
        raise rterrors.NotFound(f"no such container {value}")     # dockerd's words
    return named.pop()


def _unique_prefix(views: Sequence[ContainerView], prefix: str) -> str | None:
    found = [v.id for v in views if v.id.startswith(prefix)] if prefix else []
    return found[0] if len(found) == 1 else None


def containers(views: Iterable[ContainerView], fl: Filters, *, all_: bool, limit: int,
               ancestors: Callable[[str], set[str]]) -> list[ContainerView]:
    """The containers `GET /containers/json` lists: newest first, those `fl` selects, `limit` of
    them at most (a limit also lists stopped ones, as `docker ps -n`), running ones only unless
    `all_` or a `status` filter. `ancestors(IMAGE)` gives the ids of IMAGE and of the images made
    from it (empty when there is no such image: then nothing matches)."""
    validate(fl, CONTAINER_LIST)
    ordered = sorted(views, key=lambda v: (v.created_ns, v.id), reverse=True)
    exited: set[int] = set()
    for value in fl.get("exited", ()):
        try:
            exited.add(int(value))
        except ValueError:
            raise _invalid(f'strconv.Atoi: parsing "{value}": invalid syntax') from None
    for value in fl.get("status", ()):
        if value not in _STATES:
            raise _invalid(f"Invalid filter 'status={value}'")
        all_ = True
    task = yes_no(fl, "is-task", ("true",), ("false",))    # a Swarm task: none is, here
    for value in fl.get("health", ()):
        if value not in _HEALTH:
            raise _invalid(f"Unrecognised filter value for health: {value}")
    before = _find_container(ordered, fl["before"][-1]) if fl.get("before") else None
    since = _find_container(ordered, fl["since"][-1]) if fl.get("since") else None
    image_ids: set[str] | None = None
    if "ancestor" in fl:
        image_ids = set()
        for value in fl["ancestor"]:
            image_ids |= ancestors(value)
    publish, expose = _ports("publish", fl.get("publish", ())), _ports("expose", fl.get("expose", ()))
    ids = [i for i in (_unique_prefix(ordered, p) for p in fl.get("id", ())) if i is not None]
    out: list[ContainerView] = []
    for c in ordered:
        if before is not None:
            if c.id == before:
                before = None
            continue
        if since is not None and c.id == since:
            break
        if not c.running and not all_ and limit <= 0:
            continue
        if fl.get("id") and (c.id not in ids or not match(fl["id"], c.id)):
            continue
        if not (match(fl.get("name", ()), "/" + c.name) or match(fl.get("name", ()), c.name)):
            continue
        if task is True or not _kv(fl.get("label", ()), c.labels):
            continue
        if 0 < limit <= len(out):
            break
        if exited and (c.running or not c.started or c.exit_code not in exited):
            continue
        if not match(fl.get("status", ()), c.state):
            continue
        if fl.get("health") and c.health not in fl["health"]:
            continue
        if fl.get("volume") and not any(v in (name, dest) for v in fl["volume"] for name, dest in c.mounts):
            continue
        if image_ids is not None and c.image_id not in image_ids:
            continue
        if fl.get("network") and not any(v in c.networks or any(nid.startswith(v) for nid in c.networks.values())
                                         for v in fl["network"]):
            continue
        if (publish or expose) and not any((public, proto) in publish or (private, proto) in expose
                                           for private, public, proto in c.ports):
            continue
        out.append(c)
    return out


# ----------------------------------------------------------------------------- networks

def network_matches(n: Mapping[str, Any], fl: Filters, *, builtin: bool) -> bool:
    """Whether the network list's filters select the network `n` (its Docker document: Name, Id,
    Labels, Driver, Scope): label (all given), name and id (any given: a part of it), driver, scope
    (`local`: every network here), type (`builtin`: a predefined network, `custom`: the others);
    `dangling` is the caller's (it needs the containers). The Engine API's `GET /networks` and
    `reconcile network ls -f`."""
    labels = n.get("Labels") or {}
    for key, values in fl.items():
        if key == "label":
            ok = _kv(values, labels)
        elif key in ("name", "id"):
            ok = any(v in n["Name" if key == "name" else "Id"] for v in values)
        elif key == "driver":
            ok = n.get("Driver", "bridge") in values
        elif key == "type":
            ok = ("builtin" if builtin else "custom") in values
        elif key == "scope":
            ok = n.get("Scope", "local") in values
        else:                       # dangling (the caller's); the list refused any other first
            ok = True
        if not ok:
            return False
    return True


# ----------------------------------------------------------------------------- volumes

def volumes(vols: Iterable[Any], fl: Filters, *, used: set[str], driver: str = "local") -> list[Any]:
    """The volumes `GET /volumes` lists (each with `.name` and `.labels`; all of `driver`):
    `name` (match), `driver`, `label`, `dangling` (no container mounts it; true/1 or false/0)."""
    validate(fl, VOLUME_LIST)
    dangling = yes_no(fl, "dangling", ("true", "1"), ("false", "0"))
    if fl.get("driver") and driver not in fl["driver"]:
        return []
    return [v for v in vols if ("name" not in fl or match(fl["name"], v.name)) and _kv(fl.get("label", ()), v.labels)
            and (dangling is None or (v.name not in used) == dangling)]


# ----------------------------------------------------------------------------- images

@functools.lru_cache(maxsize=256)
def _path_pattern(pattern: str) -> re.Pattern[str]:
    """Go's path.Match pattern as a regular expression: `*` any run of characters but `/`, `?`
    one such character, `[...]` a class (`^` negates, ranges, `\\` escapes), `\\c` a c."""
    out, i, n = [], 0, len(pattern)
    bad = _invalid(f"syntax error in pattern {pattern!r}")
    while i < n:
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i + 1 >= n:
                raise bad
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            i += 1
            negated = i < n and pattern[i] == "^"
            i += negated
            items: list[str] = []
            count = 0
            while True:
                if i < n and pattern[i] == "]" and count > 0:
                    break
                lo, i = _class_char(pattern, i, bad)
                hi = lo
                if i < n and pattern[i] == "-":
                    hi, i = _class_char(pattern, i + 1, bad)
                count += 1
                if lo <= hi:
                    items.append(re.escape(lo) + ("-" + re.escape(hi) if hi != lo else ""))
            if items:
                out.append(("[^" if negated else "[") + "".join(items) + "]")
            else:
                out.append("(?s:.)" if negated else "(?!)")
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _class_char(pattern: str, i: int, bad: Exception) -> tuple[str, int]:
    if i >= len(pattern) or pattern[i] in "-]":
        raise bad
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            raise bad
    return pattern[i], i + 1


def name_of(familiar: str) -> str:
    """A familiar reference's name: without its tag or digest."""
    name = familiar.partition("@")[0]
    last = name.rpartition("/")[2]
    return name[: len(name) - len(last)] + last.partition(":")[0] if ":" in last else name


def reference_match(pattern: str, familiar: str) -> bool:
    """The images list's `reference` (`docker images NAME[:TAG]`): the pattern (Go's path.Match)
    matches the familiar reference (`busybox:1.36`, `busybox@sha256:...`) or its name alone
    (distribution's `FamiliarMatch`)."""
    compiled = _path_pattern(pattern)
    return bool(compiled.fullmatch(familiar) or compiled.fullmatch(name_of(familiar)))


@dataclass(frozen=True)
class ImageView:
    """What the image list's filters look at, and the references it lists."""

    id: str
    created_ns: int | None
    labels: Mapping[str, str] | None         # the image config's labels (None: it has no config)
    tags: tuple[str, ...]                   # familiar NAME:TAG
    digests: tuple[str, ...]                # familiar NAME@DIGEST
    has_children: bool                      # images were made from it (descendants)


def images(views: Iterable[ImageView], fl: Filters, *, all_: bool,
           find: Callable[[str], ImageView]) -> list[tuple[ImageView, list[str], list[str]]]:
    """The images `GET /images/json` lists, newest first, each with the tags and digests it shows:
    those the `reference` patterns match (an image none of whose references match is not listed),
    `["<none>:<none>"]` and `["<none>@<none>"]` for one without any (as dockerd, so the CLI shows
    it). `dangling=true`: images without a tag; `label`; `before`/`since` an image (`find`: by
    reference or id, NotFound). An untagged image others were made from is listed with `all_`."""
    validate(fl, IMAGE_LIST)
    dangling = yes_no(fl, "dangling", ("true",), ("false",))
    before = (find(fl["before"][-1]).created_ns or 0) if fl.get("before") else None
    since = (find(fl["since"][-1]).created_ns or 0) if fl.get("since") else None
    patterns = fl.get("reference", ())
    out: list[tuple[ImageView, list[str], list[str]]] = []
    for img in views:
        created = img.created_ns or 0
        if (before is not None and created >= before) or (since is not None and created <= since):
            continue
        if dangling and img.has_children:
            continue
        if "label" in fl and (img.labels is None or not _kv(fl["label"], img.labels)):
            continue
        tags = [t for t in img.tags if not patterns or any(reference_match(p, t) for p in patterns)]
        digests = [d for d in img.digests if not patterns or any(reference_match(p, d) for p in patterns)]
        if not tags and not digests:
            if not (all_ or not img.has_children) or dangling is False or patterns:
                continue
            tags, digests = ["<none>:<none>"], ["<none>@<none>"]
        elif dangling and tags:
            continue
        out.append((img, tags, digests))
    out.sort(key=lambda item: item[0].created_ns or 0, reverse=True)
    return out
