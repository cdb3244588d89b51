"""Compose's variable interpolation and its `.env` file format, as `docker compose` has them.

A port of compose-go's `template` and `dotenv` packages (github.com/compose-spec/compose-go,
Apache-2.0), so a compose file means here what it means to `docker compose`:

- `$$` is a literal `$`; `$VAR` and `${VAR}` are the variable's value ("" when unset, with a
  warning); `${VAR:-default}` (unset or empty) and `${VAR-default}` (unset) give a default;
  `${VAR:?message}` and `${VAR?message}` make it required; `${VAR:+replacement}` and
  `${VAR+replacement}` replace a set (and non-empty) value. Defaults, messages and
  replacements are themselves interpolated (`${A:-${B}}`). `${` not followed by a variable
  name and `}` is an error; a `$` before anything else is kept as it is.
- `.env` and `env_file` files: `KEY=VALUE` or `KEY: VALUE` lines, optionally `export KEY=...`;
  `#` comments; unquoted values end at ` #` and are trimmed and interpolated; double-quoted
  values may span lines, take `\\n`-style escapes and are interpolated; single-quoted values
  are literal; a line holding only `KEY` takes KEY from the lookup (or is skipped).
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["DotenvError", "InterpolationError", "Lookup", "parse_dotenv", "substitute"]

Lookup = Callable[[str], str | None]
"""A variable's value, or None when it is not set."""

_PATTERN = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<named>[_a-z][_a-z0-9]*)|\{(?:(?P<braced>[_a-z][_a-z0-9]*(?::?[-+?](.*))?)\}|(?P<invalid>)))",
    re.IGNORECASE,
)
_SEPARATORS = (":?", "?", ":-", "-", ":+", "+")


class InterpolationError(ValueError):
    """A template compose would refuse: `${` without a name, or a required variable unset."""


class _Interpolator:
    def __init__(self, lookup: Lookup, unset: list[str]) -> None:
        self.lookup = lookup
        self.unset = unset          # names of variables used without a value (compose warns)

    def substitute(self, template: str) -> str:
        out: list[str] = []
        pos = 0
        for m in _PATTERN.finditer(template):
            out.append(template[pos : m.start()])
            out.append(self.replace(m.group(0), template))
            pos = m.end()
        out.append(template[pos:])
        return "".join(out)

    def replace(self, substring: str, template: str) -> str:
        sep = _first_separator(substring)
        end = _closing_brace(substring)
        rest = ""
        if end > -1:
            substring, rest = substring[: end + 1], substring[end + 1 :]
        m = _PATTERN.match(substring)
        if m is None:
            raise InterpolationError(f"invalid interpolation format in {template!r}; write $$ for a literal $")
        if m.group("escaped"):
            return "$"
        name = m.group("named") or m.group("braced")
        if not name:
            raise InterpolationError(f"invalid interpolation format in {template!r}; write $$ for a literal $")
        braced = m.group("named") is None
        if braced and sep is not None:
            applied = self.operator(sep, name)
            if applied is not None:
                return applied + self.substitute(rest)
        value = self.lookup(name)
        if value is None:
            self.unset.append(name)
            return ""
        return value

    def operator(self, sep: str, text: str) -> str | None:
        """`NAME<sep>arg` applied, or None when `text` has no such separator."""
        if sep not in text:
            return None
        name, arg = text.split(sep, 1)
        value = self.lookup(name)
        if sep in (":-", "-"):
            if value is None or (sep == ":-" and value == ""):
                return self.substitute(arg)
            return value
        if sep in (":+", "+"):
            if value is not None and (sep == "+" or value != ""):
                return self.substitute(arg)
            return value or ""
        # ":?" and "?": required
        if value is None or (sep == ":?" and value == ""):
            reason = self.substitute(arg)
            raise InterpolationError(
                f"required variable {name} is missing a value" + (f": {reason}" if reason else ""))
        return value


def _first_separator(template: str) -> str | None:
    """The operator compose applies: the one found earliest in the matched text."""
    found = [(template.find(s), i, s) for i, s in enumerate(_SEPARATORS) if s in template]
    return min(found)[2] if found else None


def _closing_brace(s: str) -> int:
    """Index of the `}` closing the first `${`, counting nested `${...}` (compose's rule)."""
    depth = 0
    i = 0
    while i < len(s):
        if s[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        if s[i] == "{":
            depth += 1
            i += 1
        i += 1
    return -1


def substitute(template: str, lookup: Lookup, unset: list[str] | None = None) -> str:
    """`template` with its variables replaced; names used while unset are appended to `unset`.

    Raises InterpolationError for a malformed `${...}` or a required variable without a value.
    """
    return _Interpolator(lookup, unset if unset is not None else []).substitute(template)


# -- .env files --------------------------------------------------------------------------------


class DotenvError(ValueError):
    """A line of an env file compose would refuse; `line` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


_EXPORT = re.compile(r"^export\s+")
_ESCAPES = re.compile(r'\\(?:[abcfnrtv$"\\]|0[0-9]{0,3})')
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                   '"': '"', "\\": "\\"}
_SPACE = "\t\v\f\r \x85\xa0"


def _unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        seq = m.group(0)[1:]
        if seq == "$":
            return "$$"         # kept literal by the interpolation that follows
        if seq.startswith("0"):         # \0ddd: three octal digits, else kept (as Go's UnquoteChar)
            digits = seq[1:]
            if len(digits) == 3 and all(c in "01234567" for c in digits) and int(digits, 8) < 256:
                return chr(int(digits, 8))
            return "\\" + digits
        return _SIMPLE_ESCAPES.get(seq, m.group(0))     # \c is no escape: kept
    return _ESCAPES.sub(one, text)


def parse_dotenv(text: str, lookup: Lookup | None = None, unset: list[str] | None = None) -> dict[str, str]:
    """The variables of an env file, in order; `lookup` is asked first when a value interpolates,
    then the variables defined above it. Raises DotenvError naming the line."""
    look: Lookup = lookup or (lambda _name: None)
    out: dict[str, str] = {}

    def resolve(name: str) -> str | None:
        value = look(name)
        return value if value is not None else out.get(name)

    line = 1
    src = text.removeprefix("\ufeff")
    while True:
        src, line = _statement_start(src, line)
        if not src:
            return out
        key, src, inherited, line = _key(src, line)
        if inherited:
            value = look(key)
            if value is not None:
                out[key] = value
            continue
        value, src, line = _value(src, line, resolve, unset)
        out[key] = value


def _statement_start(src: str, line: int) -> tuple[str, int]:
    """Skip blank space and comment lines."""
    while True:
        stripped = src.lstrip(_SPACE + "\n")
        line += src[: len(src) - len(stripped)].count("\n")
        src = stripped
        if not src.startswith("#"):
            return src, line
        newline = src.find("\n")
        if newline < 0:
            return "", line
        src = src[newline:]


def _key(src: str, line: int) -> tuple[str, str, bool, int]:
    if _EXPORT.match(src):
        src = src[len("export"):].lstrip(_SPACE)
    for i, ch in enumerate(src):
        if ch in _SPACE:
            continue
        if ch in "=:\n":
            key = src[:i].rstrip()
            if not key:
                raise DotenvError(line, f"a line starts with {ch!r}: write KEY=VALUE")
            if " " in key:
                raise DotenvError(line, f"key {key!r} cannot contain a space")
            if ch == "\n":
                return key, src[i + 1 :], True, line + 1
            return key, src[i + 1 :].lstrip(_SPACE), False, line
        if not (ch.isalnum() or ch in "_.-[]"):
            first = src.split("\n", 1)[0]
            raise DotenvError(line, f"unexpected character {ch!r} in variable name {first!r}")
    return src.rstrip(), "", True, line        # the last line: a key alone, no newline


def _value(src: str, line: int, resolve: Lookup, unset: list[str] | None) -> tuple[str, str, int]:
    quote = src[:1]
    if quote not in ("'", '"'):
        value, _, rest = src.partition("\n")
        value = value.split(" #", 1)[0].rstrip()
        return _expand(value, resolve, unset, line), rest, line + 1
    chars: list[str] = []
    escaped = False
    start = line
    for i in range(1, len(src)):
        ch = src[i]
        if ch == "\n":
            line += 1
        if ch != quote:
            if not escaped and ch == "\\":
                escaped = True
                continue
            if escaped:
                escaped = False
                chars.append("\\")
            chars.append(ch)
            continue
        if escaped:                         # \" or \' inside its own quotes
            escaped = False
            chars.append(ch)
            continue
        value = "".join(chars)
        if quote == '"':
            value = _expand(_unescape(value), resolve, unset, start)
        return value, src[i + 1 :], line
    first = src.split("\n", 1)[0]
    raise DotenvError(start, f"unterminated quoted value {first}")


def _expand(value: str, resolve: Lookup, unset: list[str] | None, line: int) -> str:
    try:
        return substitute(value, resolve, unset)
    except InterpolationError as exc:
        raise DotenvError(line, str(exc)) from None
