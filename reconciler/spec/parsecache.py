"""Manifest files parsed in earlier loads, remembered across runs (#21).

A file's key is the sha256 of its text together with what its parse depends on: the parser's
own source (reading.py, yamltree.py), PyYAML's (its version) and loader (libyaml's or Python's), and the limits that reject a document.
Any edit (one character, whatever the file's name, size or time stamps say) makes a new key,
which is parsed as before; a file renamed or moved keeps its key (the name and directory of a
document are the file's as found now, never the cache's). Only a file that parsed with no
problem at all into documents made of JSON's types is remembered (validity.plain: a YAML date
or binary value is parsed every time). What the cache gives back is what the parse gave:
each document's position and data, with the sha256 of the data's canonical JSON that the schema
check's cache (validity.py) is keyed by, so neither is computed again; the node tree that locates a field for an error message is
parsed again from the text when a message needs it.

The file (`parsed-documents` under the state root: JSON, 0600, written under the CLI's umask
077) is a cache: a missing, unreadable or damaged one holds nothing, an entry of the wrong shape
is ignored, and it is rewritten whole (a temporary file renamed into place) when a load parsed
new files, without the texts no load asks for any more once they outnumber the ones it read (`SLACK`). Whoever can write it can make a manifest load as other data than its text says; that
is the state root's owner, who can change the state database and the engine's records anyway
(docs/security.md).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from typing import TYPE_CHECKING, Any

from reconciler.spec import validity

__all__ = ["FILE", "ParseCache"]

FILE = "parsed-documents"
FORMAT = 1
# Files kept beyond the last load's: every edit adds one (its old text stays until then), and
# another source loaded on the same root keeps its own. Past twice the last load's files and
# this many, the file starts again with the last load's.
SLACK = 100

if TYPE_CHECKING:
    from reconciler.spec.reading import Document

# one document as kept: its 0-based index in the file, 1-based line and column, its data and
# the sha256 of the data's canonical JSON (validity.data_digest: the schema check's key needs it)
Parsed = tuple[int, int, int, Any, str]


class ParseCache:
    """The parsed files of earlier loads, read from `path` (None: kept in memory only)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = None if path is None else os.fspath(path)
        self._files = self._read()
        self._new = False
        self._used: set[str] = set()

    def _read(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        try:
            with open(self.path, "rb") as f:
                kept = json.loads(f.read())
        except (OSError, ValueError):
            return {}
        if not isinstance(kept, dict) or kept.get("format") != FORMAT or not isinstance(kept.get("files"), dict):
            return {}
        files: dict[str, Any] = kept["files"]
        return files

    def get(self, text: str, salt: str) -> list[Parsed] | None:
        """The documents of a file with this text, parsed as `salt` says (reading's key of the
        loader and limits); None when not known (or its entry is not of the right shape)."""
        key = _key(text, salt)
        docs = self._files.get(key) if key is not None else None
        if not isinstance(docs, list) or not all(_entry(d) for d in docs):
            return None
        assert key is not None
        self._used.add(key)
        return [(d[0], d[1], d[2], d[3], d[4]) for d in docs]

    def put(self, text: str, salt: str, docs: list[Document]) -> None:
        """Remember a file that parsed with no problem (nothing if a document is not plain
        data); each document gets its `digest`."""
        key = _key(text, salt)
        digests = [validity.data_digest(d.data) for d in docs]
        if key is None or None in digests:
            return
        for d, digest in zip(docs, digests, strict=True):
            d.digest = digest
        self._files[key] = [[d.index, d.line, d.column, d.data, d.digest] for d in docs]
        self._used.add(key)
        self._new = True

    def save(self) -> None:
        """Write the file again if this load parsed new files; a failure to write is no error
        (the next load parses them again)."""
        if self.path is None or not self._new:
            return
        files = self._files if len(self._files) <= 2 * len(self._used) + SLACK else \
            {k: self._files[k] for k in self._used}
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"format": FORMAT, "files": files}, f, ensure_ascii=False, separators=(",", ":"))
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self._new = False


def _entry(d: Any) -> bool:
    return isinstance(d, list) and len(d) == 5 and all(type(n) is int for n in d[:3]) and isinstance(d[4], str) \
        and len(d[4]) == 64


def _key(text: str, salt: str) -> str | None:
    parser = _parser_digest()
    if parser is None:
        return None
    h = hashlib.sha256(parser)
    h.update(f"\0{FORMAT}\0{salt}\0".encode())
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


@functools.cache
def _parser_digest() -> bytes | None:
    """The sha256 of the parser's source (reading.py and yamltree.py) and of PyYAML's: its
    package's `__init__.py` (which holds its version) and whether libyaml's extension is there
    (the C loader or the pure-Python one). A change of any of them parses every file again.
    Read from the files, so that a load the cache answers does not import PyYAML (#21)."""
    import importlib.util

    from reconciler.spec import reading

    h = hashlib.sha256()
    try:
        spec = importlib.util.find_spec("yaml")
        if spec is None or spec.origin is None:
            return None
        for name in (reading.__file__, os.path.join(os.path.dirname(reading.__file__), "yamltree.py"), spec.origin):
            with open(name, "rb") as f:
                h.update(f.read())
            h.update(b"\0")
        h.update(str(sorted(n for n in os.listdir(os.path.dirname(spec.origin)) if n.startswith("_yaml."))).encode())
    except (OSError, TypeError, ValueError, ImportError):
        return None
    return h.digest()
