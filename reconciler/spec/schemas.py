"""The JSON Schemas (draft 2020-12) of the four kinds, shipped in `schemas/*.json`.

Validators are compiled once per process and cached. Schema errors are rewritten into short
messages; unknown fields get a "did you mean" suggestion from difflib.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from reconciler.spec import models

__all__ = ["REQUIRED", "SchemaIssue", "combined", "compiled", "did_you_mean", "explain", "is_valid", "issues",
           "required_field", "schema", "schema_text", "vouches"]

SchemaIssue = tuple[tuple[str | int, ...], bool, str]   # (path, at the key?, message)
# the message of a `required` issue, whose path ends with the missing key (`required_field`
# words it for a reader who is shown where the object lacking it is, not that key's path)
REQUIRED = "required field is missing"


def schema_text(kind: str) -> str:
    """The schema file of `kind` ("Container", ...), as shipped (beside this module: the package
    is installed as files; importlib.resources would cost every start ~2 ms)."""
    return (Path(__file__).parent / "schemas" / f"{kind.lower()}.json").read_text("utf-8")


@functools.cache
def schema(kind: str) -> Mapping[str, Any]:
    loaded: Mapping[str, Any] = json.loads(schema_text(kind))
    return loaded


@functools.cache
def _validator(kind: str) -> Any:
    import jsonschema

    cls = jsonschema.Draft202012Validator
    return cls(schema(kind), format_checker=None)


@functools.cache
def _fast_validator(kind: str) -> Any:
    return compiled(schema(kind))


def compiled(schema: Mapping[str, Any]) -> Any:
    """jsonschema-rs's validator of a draft 2020-12 `schema` (compiled, ~20x faster than
    jsonschema), which decides validity; None when it is not installed. Callers cache it."""
    try:
        import jsonschema_rs
    except ImportError:
        return None
    return jsonschema_rs.Draft202012Validator(dict(schema))


def vouches(fast: Any, data: Any) -> bool:
    """Whether `fast` (a `compiled` validator) finds `data` valid; False when there is none, or
    for a value JSON has no type for (a YAML date, !!binary): jsonschema then decides and words."""
    try:
        return fast is not None and bool(fast.is_valid(data))
    except ValueError:
        return False


def did_you_mean(word: str, choices: list[str] | tuple[str, ...] | Any) -> str:
    """` (did you mean 'x'?)` for the closest choice, or ""."""
    import difflib  # only a manifest with a mistake needs it

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close and isinstance(word, str):   # case-only differences ("Image" for "image")
        close = [c for c in choices if c.lower() == word.lower()][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def _typename(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


_TYPE_WORDS = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
               "number": "a number", "boolean": "a boolean (true or false)", "null": "null"}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_valid(kind: str, data: Any) -> bool:
    """Whether a document of `kind` satisfies its schema."""
    fast = _fast_validator(kind)
    try:
        if fast is not None:
            return bool(fast.is_valid(data))
    except ValueError:
        pass
    return bool(_validator(kind).is_valid(data))


def issues(kind: str, data: Any) -> Iterator[SchemaIssue]:
    """Every schema violation of a document of `kind`, as (path, at_key, message).

    Valid documents (the common case) are recognised by the compiled jsonschema-rs validator;
    only invalid ones go through the `jsonschema` package, whose error objects carry what the
    messages need (the failing keyword, its schema, the instance path).
    """
    if vouches(_fast_validator(kind), data):
        return
    yield from explain(_validator(kind).iter_errors(data))   # "required" fails once per missing key


def explain(errors: Iterator[Any]) -> Iterator[SchemaIssue]:
    """`jsonschema` validation errors as short (path, at_key, message) issues, each once."""
    seen: set[SchemaIssue] = set()
    for err in errors:
        for issue in _rewrite(err):
            if issue not in seen:
                seen.add(issue)
                yield issue


def _rewrite(err: Any) -> Iterator[SchemaIssue]:
    path = tuple(err.absolute_path)
    v, sch, inst = err.validator, err.schema, err.instance
    if v == "additionalProperties" and isinstance(inst, dict):
        known = list(sch.get("properties", {}))
        patterns = [re.compile(p) for p in sch.get("patternProperties", {})]
        for key in inst:
            if key not in known and not any(p.search(key) for p in patterns):
                yield (*path, key), True, f"unknown field {key!r}{did_you_mean(key, known)}"
        return
    if v == "required":
        missing = [k for k in err.validator_value if k not in inst]
        for key in missing:
            yield (*path, key), True, REQUIRED
        return
    if v == "type":
        want = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        names = [_TYPE_WORDS.get(str(w), str(w)) for w in want]
        words = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
        yield path, False, f"must be {words}, not {_typename(inst)}"
        return
    if v == "const":
        yield path, False, f"must be {err.validator_value!r}, not {_short(inst)}"
        return
    if v == "enum":
        choices = err.validator_value
        hint = did_you_mean(inst, [str(c) for c in choices]) if isinstance(inst, str) else ""
        yield path, False, f"{_short(inst)} is not one of {', '.join(map(str, choices))}{hint}"
        return
    if v == "pattern":
        syntax = sch.get("x-syntax", f"value (pattern {err.validator_value})")
        yield path, False, f"{_short(inst)} is not a valid {syntax}"
        return
    if v in ("minLength",) and err.validator_value == 1:
        yield path, False, "must not be empty"
        return
    if v == "maxLength":
        yield path, False, f"is longer than {err.validator_value} characters"
        return
    if v in ("minimum", "exclusiveMinimum", "maximum"):
        rel = {"minimum": "at least", "exclusiveMinimum": "greater than", "maximum": "at most"}[v]
        yield path, False, f"must be {rel} {err.validator_value}, not {_short(inst)}"
        return
    if v == "minItems":
        yield path, False, f"must have at least {err.validator_value} item(s)"
        return
    if v in ("anyOf", "oneOf") and err.context:
        # report the branch that got furthest (deepest path), like jsonschema's best_match
        import jsonschema

        # a branch whose type the value does not have says least ("must be a string, not mapping"
        # for a mapping that has a branch of its own): the others first
        # (likewise a constant of another type: -1 against `const: global` beside an integer branch)
        typed = [e for e in err.context if not (e.absolute_path == err.absolute_path and (
            e.validator == "type" or (e.validator == "const" and type(e.validator_value) is not type(inst))))]
        best = jsonschema.exceptions.best_match(typed or err.context)
        if best is not None:
            yield from _rewrite(best)
            return
    yield path, False, err.message


def required_field(key: str | int, what: str = "") -> str:
    """The message of a `required` issue that names the missing field itself (REQUIRED names it
    by the issue's path): for a problem reported at the object that lacks it, as compose input's
    are (the object is what the reader wrote; the path to a key that is not there names nothing
    written, and a compose document's manifest path is not the reader's)."""
    return f"required field {str(key)!r}{f' ({what})' if what else ''} is missing: add {key}: to it"


def combined() -> dict[str, Any]:
    """One schema for any manifest document: the four kind schemas embedded, chosen by `kind`."""
    base = str(schema("Container")["$id"]).rsplit("/", 1)[0]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{base}/manifest.json",
        "title": "reconciler/v1 manifest",
        "description": "Any reconciler/v1 document; `kind` selects the schema.",
        "type": "object",
        "required": ["kind"],
        "properties": {"kind": {"enum": list(models.KINDS)}},
        "$defs": {kind: dict(schema(kind)) for kind in models.KINDS},
        "allOf": [
            {
                "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                "then": {"$ref": str(schema(kind)["$id"])},
            }
            for kind in models.KINDS
        ],
    }
