"""Documents known to satisfy their kind's schema, remembered across runs (#21).

A document's key is the sha256 of its kind's schema as shipped, its kind and the sha256 of the
canonical JSON of its data (`data_digest`), so any edit (one character, whatever the file's size or time stamps say) and a
schema changed by an upgrade make a new key, which is validated as before. Only a document that
passed with no problem at all is remembered, and only one made of JSON's types with string keys
(anything else is validated every time). A `reconcile --once` whose manifests did not change
then validates nothing and loads no validator (jsonschema-rs costs every start ~10 ms).

The file (`valid-documents` under the state root: one hex digest a line, written under the
CLI's umask 077) is a cache: a missing, unreadable or damaged one holds nothing, and it is
rewritten whole (a temporary file renamed into place) when a load found new valid documents.
Whoever can write it can let a document skip its schema check; that is the state root's owner
(docs/security.md).

A KnownValid made `aside` (the agent's) checks the documents it does not know in a helper
process (`check_aside`, `ask_aside`: this interpreter with jsonschema-rs and none of our modules,
one run for all of a load's new documents) and remembers those that pass, so a long-running agent never maps the validator's
library (jsonschema-rs: ~7 MiB resident) while its manifests are valid. A document that fails
there, or any document when the helper cannot run or answers nothing sound, is validated in
the process as without it: its problems are worded as ever, and nothing is taken for valid on
the helper's failure.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.spec import schemas

__all__ = ["FILE", "KnownValid", "ask_aside", "data_digest", "key", "plain"]

_HEX = frozenset("0123456789abcdef")
HELPER_TIMEOUT = 120.0      # seconds for the helper to check a load's new documents

FILE = "valid-documents"
MAX_ENTRIES = 100_000       # past this many the file starts again with the last load's documents


def key(kind: str, data: Any, schema: str | None = None, *, digest: str | None = None) -> str | None:
    """The cache key of a document of `kind` (None: not made of JSON's types with string keys);
    `schema`: the kind's schema text (by default the one shipped); `digest`: the document's
    `data_digest`, when known already (a parse cache keeps it beside the data)."""
    digest = digest or data_digest(data)
    if digest is None:
        return None
    h = hashlib.sha256(_schema_digest(kind) if schema is None else hashlib.sha256(schema.encode()).digest())
    h.update(b"\0" + kind.encode() + b"\0" + digest.encode())
    return h.hexdigest()


def data_digest(data: Any) -> str | None:
    """The sha256 of a document's canonical JSON (None: not made of JSON's types with string keys)."""
    if not plain(data):
        return None
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@functools.cache
def _schema_digest(kind: str) -> bytes:
    return hashlib.sha256(schemas.schema_text(kind).encode()).digest()


def plain(value: Any) -> bool:
    """Whether `value` is JSON's: mappings with string keys, lists, strings, finite numbers,
    booleans, null (anything else would not round-trip through the key's JSON)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(plain(v) for v in value)
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    return value is None or isinstance(value, str | int | bool)


class KnownValid:
    """The keys of the documents known valid, read from `path` (None: kept in memory only)."""

    def __init__(self, path: str | os.PathLike[str] | None, *, aside: bool = False) -> None:
        self.path = None if path is None else os.fspath(path)
        self.aside = aside          # check_aside() asks a helper process (the agent)
        self._keys = self._read()
        self._new: set[str] = set()
        self._used: set[str] = set()

    def _read(self) -> set[str]:
        if self.path is None:
            return set()
        try:
            with open(self.path, encoding="ascii") as f:
                lines = f.read().split()
        except (OSError, UnicodeDecodeError):
            return set()
        return {line for line in lines if len(line) == 64 and _HEX.issuperset(line)}

    def __contains__(self, digest: str) -> bool:
        if digest in self._keys:
            self._used.add(digest)
            return True
        return False

    def add(self, digest: str) -> None:
        """Remember a document that passed its schema with no problem."""
        if digest not in self._keys:
            self._keys.add(digest)
            self._new.add(digest)
        self._used.add(digest)

    def check_aside(self, docs: Iterable[tuple[str, Any, str | None]]) -> int:
        """With `aside`: the documents (kind, data, its `data_digest` when known) not known yet,
        checked in one helper process; those that pass are remembered (as `add`). Returns how
        many were asked; 0 without `aside`, when every one is known, or when the helper failed
        (what it did not vouch for is validated in this process, as without it)."""
        if not self.aside:
            return 0
        pending: dict[str, tuple[str, Any]] = {}
        for kind, data, digest in docs:
            k = key(kind, data, digest=digest)
            if k is not None and k not in self._keys:
                pending.setdefault(k, (kind, data))
        if not pending:
            return 0
        verdicts = ask_aside({kind: schemas.schema(kind) for kind, _ in pending.values()}, list(pending.values()))
        if verdicts is None:
            return 0
        for k, ok in zip(pending, verdicts, strict=True):
            if ok:
                self.add(k)
        return len(pending)

    def save(self) -> None:
        """Write the file again if this load added keys; a failure to write is no error (the
        next load validates again)."""
        if self.path is None or not self._new:
            return
        keys = self._keys if len(self._keys) <= MAX_ENTRIES else self._used
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="ascii") as f:
                f.write("".join(f"{k}\n" for k in sorted(keys)))
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self._new.clear()


# the helper: jsonschema-rs alone (no package of ours: its start is the interpreter's, ~25 ms),
# on the caller's sys.path; each item a schema's name and the data, one boolean each on stdout
_HELPER = """
import json, sys
sys.path[:] = json.loads(sys.argv[1])
import jsonschema_rs
job = json.load(sys.stdin.buffer)
made = {}
def valid(name, data):
    if name not in made:
        made[name] = jsonschema_rs.Draft202012Validator(job["schemas"][name])
    try:
        return made[name].is_valid(data) is True
    except ValueError:
        return False
json.dump([valid(name, data) for name, data in job["items"]], sys.stdout)
"""


def ask_aside(schemas: Mapping[str, Any], items: list[tuple[str, Any]]) -> list[bool] | None:
    """Whether each item (the name of one of `schemas`, data of JSON's types) satisfies that
    JSON Schema (draft 2020-12), as jsonschema-rs decides in a helper process: this interpreter,
    started without site (-I -S) on the caller's sys.path, so that the caller never maps the
    validator's library. None when the helper cannot run (no jsonschema-rs, no process) or
    answers other than one boolean per item: the caller then checks in its own process, and
    takes nothing for valid on the helper's failure."""
    import subprocess  # here: only the agent asks, and it has it loaded

    try:
        job = json.dumps({"schemas": schemas, "items": items}).encode()
        done = subprocess.run([sys.executable, "-I", "-S", "-c", _HELPER, json.dumps(sys.path)], input=job,
                              capture_output=True, timeout=HELPER_TIMEOUT, check=False)
        verdicts = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError, TypeError):
        return None
    if not (isinstance(verdicts, list) and len(verdicts) == len(items) and all(v is True or v is False for v in verdicts)):
        return None
    return verdicts
