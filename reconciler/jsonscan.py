"""JSON read and written without importing `json`: `loads`, by the C scanner json.loads itself
parses with, and `dumps`, by the C encoder json.dumps writes with.

`import json` imports `re` and compiles json's patterns (~30 M instructions, a fifth of a thin
client's start-up); reading needs none of that (#21): the agent's file `<root>/agent.json`
(api/thin.py) and the container records `ps` reads from the state DB without an agent
(runtime/native/containers/summaries.py) are read with this; `run` through an agent sends its
request and reads the reply's lines with it (api/thin.py).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["dumps", "loads"]


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
