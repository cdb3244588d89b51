"""The `created_by` texts of a built image's history, as dockerd's classic builder writes them
(`DOCKER_BUILDKIT=0 docker build`; `docker history --no-trunc` shows them).

dockerd commits each step through a container whose Cmd says what the step did, and the
history entry is that Cmd joined by spaces (moby builder/dockerfile): a RUN's command (the
SHELL and the command line, or the exec form's words) after `|N K=V ...`, the build args the
step saw (declared, with a value, not shadowed by an ENV; sorted), when there are any; a
metadata step's `SHELL #(nop)  COMMENT` (two spaces: `#(nop) ` and the comment are two
words), its comment the instruction with its values as dockerd formats them (Go's %q of a
CMD's words, `VOLUME [/v]`, `HEALTHCHECK &{...}`); WORKDIR's and COPY/ADD's one word
`#(nop) WORKDIR /w` and `#(nop) COPY file:<hash> in /dst ` (context.classic_source_hash).
The texts are in the image config, so in its id: the image ids of builds before this module
differ from this version's, while every step's cache still hits (no cache key holds a text).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["copy_comment", "healthcheck", "nop", "run", "workdir"]


def nop(shell: Sequence[str], comment: str) -> str:
    """A metadata step's text: its Cmd [*SHELL, "#(nop) ", comment] joined."""
    return " ".join([*shell, "#(nop) ", comment])


def workdir(shell: Sequence[str], path: str) -> str:
    return " ".join([*shell, "#(nop) WORKDIR " + path])


def copy_comment(cmd: str, chown: str | None, source: str, dest: str) -> str:
    """COPY/ADD's one word (dockerd writes --chown's value against the source's hash)."""
    flag = f" --chown={chown}" if chown else ""
    return f"#(nop) {cmd}{flag}{' ' if not chown else ''}{source} in {dest} "


def run(argv: Sequence[str], args: Mapping[str, str]) -> str:
    """A RUN's text: `|N K=V ...` (the build args it saw, sorted) before its command."""
    words = list(argv)
    if args:
        pairs = sorted(f"{k}={v}" for k, v in args.items())
        words = [f"|{len(pairs)}", *pairs, *words]
    return " ".join(words)


def go_strings(words: Sequence[str]) -> str:
    """Go's %q of a []string: `["a" "b"]`."""
    return "[" + " ".join(_quote(w, '"') for w in words) + "]"


def healthcheck(hc: Mapping[str, Any]) -> str:
    """HEALTHCHECK's comment: Go's %q of dockerd 20.10's *HealthConfig (Test, Interval,
    Timeout, StartPeriod, Retries)."""
    durations = " ".join(_quote(_duration(int(hc.get(k) or 0)), '"') for k in ("Interval", "Timeout", "StartPeriod"))
    return f"HEALTHCHECK &{{{go_strings(hc.get('Test') or [])} {durations} {_quote(chr(int(hc.get('Retries') or 0)), chr(39))}}}"


_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v", "\\": "\\\\"}


def _quote(text: str, mark: str) -> str:
    """Go's strconv.Quote (mark `"`) or QuoteRune (mark `'`)."""
    out = []
    for ch in text:
        if ch == mark:
            out.append("\\" + ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return mark + "".join(out) + mark


def _duration(ns: int) -> str:
    """Go's time.Duration.String()."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _fraction(ns, size) + unit
    hours, rest = divmod(ns, 3600 * 1_000_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000_000)
    seconds = _fraction(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return sign + seconds


def _fraction(value: int, unit: int) -> str:
    whole, part = divmod(value, unit)
    if not part:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{part:0{digits}d}".rstrip("0")
