"""Image update policies: which of a repository's tags a container should run (pure, no I/O).

    image:
      track: registry.local:5000/shop/web:1.4.1   # {"$imagepolicy": "web"}
      policy: {semver: ">=1.4 <2"}                # or {pattern: "^main-(?P<ts>[0-9]+)$", order: numeric}
      mode: apply                                 # apply (default) | notify

`semver` is an npm-style range (`>=1.4 <2`, `^1.4`, `~1.4`, `1.x`, `a || b`), evaluated by the
`node-semver` package, a port of npm's own `semver`: Python's `packaging` implements PEP 440
(`>=1.4,<2`, and it reads `1.9.0-rc.1` differently), and `semver` (python-semver) compares
versions but has no range syntax with `||`, `^`, `~` or space-separated bounds. Ranges are
parsed strictly (a typo is an error, not a silently shorter range); tags are read loosely (a
leading `v` is allowed, as Flux allows it); pre-releases are candidates only for a range that
names one (npm's and Flux's rule); tags that are not versions are ignored.

`pattern` is a Python regular expression a tag must match in full (`re.fullmatch`); the tags
are ordered by the first named group's value (the whole tag without one), `alphabetical`
(default) or `numeric` (a value that is not a number leaves the tag out), and the last wins.

`choose(tags, policy)` gives the newest allowed tag, or None. `problem(policy)` says what is
wrong with a policy, for the manifest loader (None: usable).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from reconciler._dataclass import dataclass

__all__ = ["MAX_PATTERN", "Policy", "choose", "problem"]

MAX_PATTERN = 256                   # characters: a pattern runs against every tag of a repository
Order = Literal["alphabetical", "numeric"]
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


@dataclass(frozen=True)
class Policy:
    """One of `semver` or `pattern` (`order` only with `pattern`)."""

    semver: str | None = None
    pattern: str | None = None
    order: Order = "alphabetical"

    def describe(self) -> str:
        if self.semver is not None:
            return f"semver {self.semver!r}"
        return f"pattern {self.pattern!r} ({self.order})"


def problem(p: Policy) -> tuple[str, str] | None:
    """(field, message) of what makes `p` unusable, or None."""
    if (p.semver is None) == (p.pattern is None):
        return "", "set exactly one of semver (a version range) or pattern (a regular expression)"
    if p.semver is not None:
        import nodesemver

        if nodesemver.valid_range(p.semver, False) is None:
            return "semver", (f"{p.semver!r} is not a valid semver range (write it like '>=1.4 <2', "
                              "'^1.4', '~1.4.2' or '1.x || >=3')")
        return None
    assert p.pattern is not None
    if len(p.pattern) > MAX_PATTERN:
        return "pattern", f"is longer than {MAX_PATTERN} characters"
    try:
        rx = re.compile(p.pattern)
    except re.error as e:
        return "pattern", f"{p.pattern!r} is not a valid regular expression: {e}"
    if p.order == "numeric" and not rx.groupindex:
        return "order", ("numeric order needs a named group to read the number from, like "
                         "'^main-(?P<ts>[0-9]+)$'")
    return None


def choose(tags: Iterable[str], p: Policy) -> str | None:
    """The newest tag `p` allows, or None (ties: the tag that sorts last as text)."""
    if p.semver is not None:
        return _semver(tags, p.semver)
    assert p.pattern is not None
    return _pattern(tags, re.compile(p.pattern), p.order)


def _semver(tags: Iterable[str], expression: str) -> str | None:
    import nodesemver

    wanted = nodesemver.make_range(expression, False)
    best: tuple[Any, str] | None = None
    for tag in tags:
        if not nodesemver.valid(tag, True):
            continue
        version = nodesemver.make_semver(tag, True)
        if not wanted.test(version):
            continue
        if best is None or version.compare(best[0]) > 0 or (version.compare(best[0]) == 0 and tag > best[1]):
            best = (version, tag)
    return None if best is None else best[1]


def _pattern(tags: Iterable[str], rx: re.Pattern[str], order: Order) -> str | None:
    keyed: list[tuple[Any, str]] = []
    for tag in tags:
        m = rx.fullmatch(tag)
        if m is None:
            continue
        value = next((m.group(g) for g in rx.groupindex), None) if rx.groupindex else tag
        if value is None:
            continue
        if order == "numeric":
            if _NUMBER.fullmatch(value) is None:
                continue
            import decimal  # here: the planner imports this module, a no-op pass orders no tag (#21)

            keyed.append((decimal.Decimal(value), tag))
        else:
            keyed.append((value, tag))
    return max(keyed)[1] if keyed else None
