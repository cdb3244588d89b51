"""JSON read and written without importing `json`: `loads`, by the C scanner json.loads itself
parses with, and `dumps`, by the C encoder json.dumps writes with.

`import json` imports `re` and compiles json's patterns (~30 M instructions, a fifth of a thin
client's start-up); reading needs none of that (#21): the agent's file `<root>/agent.json`
(api/thin.py) and the container records `ps` reads from the state DB without an agent
(runtime/native/containers/summaries.py) are read with this; `run` through an agent sends its
request and reads the reply's lines with it (api/thin.py). `pretty` writes what `-o json` prints
(printing.print_json): json's C encoder has no indentation in this Python, so the layout is
written here, the strings still by its C escaper (`ps -o json`: 3.8 ms of `json` and `re` imports
in a 22 ms command).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["dumps", "loads", "pretty"]


class _Strict:
    """The settings json.JSONDecoder() gives its C scanner: strict strings, plain dicts, floats
    and ints, NaN and Infinity as Python's."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod({"NaN": float("nan"), "Infinity": float("inf"),
                                   "-Infinity": float("-inf")}.__getitem__)


_scan: Any = None      # the scanner, made at first use


def loads(document: str) -> Any:
    """The JSON value of `document`, as json.loads reads it, parsed by json's own C scanner
    (`_json`) without importing `json` and `re`; ValueError when it is not one JSON value."""
    try:
        import _json
    except ImportError:                         # an interpreter without the C accelerator
        import json

        return json.loads(document)
    global _scan
    if _scan is None:
        _scan = _json.make_scanner(_Strict())  # type: ignore[arg-type]  # duck-typed settings, as JSONDecoder's
    stripped = document.strip(" \t\n\r")
    try:
        value, end = _scan(stripped, 0)
    except StopIteration:
        raise ValueError("not a JSON document") from None
    if end != len(stripped):
        raise ValueError(f"extra data after the JSON value at {end}")
    return value


def dumps(value: Any) -> str:
    """`value` as json.dumps(value) writes it (ASCII, ", " and ": ", NaN allowed), by json's own
    C encoder (`_json`) without importing `json` and `re`; TypeError for a value JSON has no
    form for, as json.dumps raises."""
    try:
        import _json
    except ImportError:                         # an interpreter without the C accelerator
        import json

        return json.dumps(value)

    def unknown(o: object) -> Any:
        raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")

    encode = _json.make_encoder({}, unknown, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True)
    return "".join(encode(value, 0))


def pretty(value: Any) -> str:
    """`value` as json.dumps(value, indent=2, sort_keys=True, default=str) writes it, without
    importing `json` and `re`: the same text (tests/test_jsonscan.py compares them), TypeError and
    ValueError where json.dumps raises them."""
    try:
        from _json import encode_basestring_ascii as string
    except ImportError:                         # an interpreter without the C accelerator
        import json

        return json.dumps(value, indent=2, sort_keys=True, default=str)
    parts: list[str] = []
    _pretty(value, parts, "\n", string, set())
    return "".join(parts)


def _number(o: Any) -> str:
    """A float as json writes it (NaN, Infinity and -Infinity as Python's json allows)."""
    if o != o:
        return "NaN"
    if o == float("inf"):
        return "Infinity"
    if o == float("-inf"):
        return "-Infinity"
    return float.__repr__(o)


def _key(key: Any) -> str:
    """A dict key as json converts it: a str as it is, a number, true, false or null as its text."""
    if isinstance(key, str):
        return key
    if isinstance(key, float):
        return _number(key)
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return int.__repr__(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _pretty(o: Any, parts: list[str], newline: str, string: Any, seen: set[int]) -> None:
    """Append `o`'s text to `parts`; `newline` is the line break and indentation of `o`'s own level."""
    if isinstance(o, str):
        parts.append(string(o))
    elif o is None:
        parts.append("null")
    elif o is True:
        parts.append("true")
    elif o is False:
        parts.append("false")
    elif isinstance(o, int):
        parts.append(int.__repr__(o))
    elif isinstance(o, float):
        parts.append(_number(o))
    elif isinstance(o, (list, tuple, dict)):
        if not o:
            parts.append("{}" if isinstance(o, dict) else "[]")
            return
        if id(o) in seen:
            raise ValueError("Circular reference detected")
        seen.add(id(o))
        inner = newline + "  "
        if isinstance(o, dict):
            parts.append("{")
            for i, (key, item) in enumerate(sorted(o.items())):
                parts.append(("," if i else "") + inner + string(_key(key)) + ": ")
                _pretty(item, parts, inner, string, seen)
            parts.append(newline + "}")
        else:
            parts.append("[")
            for i, item in enumerate(o):
                parts.append(("," if i else "") + inner)
                _pretty(item, parts, inner, string, seen)
            parts.append(newline + "]")
        seen.discard(id(o))
    else:                                       # default=str: the object's text, as a string
        _pretty(str(o), parts, newline, string, seen)
