"""YAML data that remembers where each value was written, through merges and rewrites.

Compose files are interpolated, merged with override files, extended and rewritten into a
canonical form before they become manifests; a problem found at any step must still name the
file, line and column the user wrote. `Map` and `Seq` are a dict and a list that carry the
position of every key and item (`Origin`, 1-based), so code that builds a new value from old
ones keeps the old positions with it (`Map.put`, `Seq.add`, `copy`).

Scalars carry no position of their own: the container holding them knows where they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from reconciler.spec import reading
from reconciler.spec.models import Origin

__all__ = ["Map", "Seq", "build", "copy", "plain", "where"]

Path_ = tuple[str | int, ...]


class Map(dict[str, Any]):
    """A mapping with the position of itself, of each key and of each value."""

    __slots__ = ("at", "key_at", "value_at")

    def __init__(self, at: Origin, items: Iterable[tuple[str, Any]] = ()) -> None:
        super().__init__()
        self.at = at
        self.key_at: dict[str, Origin] = {}
        self.value_at: dict[str, Origin] = {}
        for key, value in items:
            self.put(key, value, at)

    def put(self, key: str, value: Any, value_at: Origin, key_at: Origin | None = None) -> None:
        """Set `key` to `value`, written at `value_at` (its key at `key_at`, default the same)."""
        self[key] = value
        self.value_at[key] = value_at
        self.key_at[key] = key_at or value_at

    def drop(self, key: str) -> None:
        self.pop(key, None)
        self.value_at.pop(key, None)
        self.key_at.pop(key, None)

    def origin(self, key: str) -> Origin:
        """Where the value of `key` was written (the mapping itself when the key is absent)."""
        return self.value_at.get(key, self.at)

    def key_origin(self, key: str) -> Origin:
        return self.key_at.get(key, self.at)


class Seq(list[Any]):
    """A list with the position of itself and of each item."""

    __slots__ = ("at", "item_at")

    def __init__(self, at: Origin, items: Iterable[tuple[Any, Origin]] = ()) -> None:
        super().__init__()
        self.at = at
        self.item_at: list[Origin] = []
        for value, where_ in items:
            self.add(value, where_)

    def add(self, value: Any, at: Origin) -> None:
        self.append(value)
        self.item_at.append(at)

    def origin(self, index: int) -> Origin:
        return self.item_at[index] if 0 <= index < len(self.item_at) else self.at


def _origin(file: str, mark: Any) -> Origin:
    return Origin(file, mark.line + 1, mark.column + 1)


def build(doc: reading.Document) -> Any:
    """The document's data as Map/Seq, positions taken from its node tree.

    The data was built by `reading` (aliases expanded, merge keys applied, duplicates reported);
    the node tree is walked beside it, so every copy of an aliased node gets positions of its own.
    """
    return _zip(doc.data, doc.node, doc.file)


def _zip(data: Any, node: Any, file: str) -> Any:
    if isinstance(data, dict) and isinstance(node, yaml.MappingNode):
        out = Map(_origin(file, node.start_mark))
        pairs: dict[str, tuple[Any, Any]] = {}
        for knode, vnode in node.value:     # the last pair of a key won (it overrides a merged one)
            if isinstance(knode, yaml.ScalarNode):
                pairs[str(knode.value)] = (knode, vnode)
        for key, value in data.items():
            knode, vnode = pairs.get(key, (node, node))
            out.put(key, _zip(value, vnode, file), _origin(file, vnode.start_mark), _origin(file, knode.start_mark))
        return out
    if isinstance(data, list) and isinstance(node, yaml.SequenceNode):
        seq = Seq(_origin(file, node.start_mark))
        for value, child in zip(data, node.value, strict=False):
            seq.add(_zip(value, child, file), _origin(file, child.start_mark))
        return seq
    if isinstance(data, dict):          # a node shape the data does not have (cannot happen): no positions
        at = _origin(file, node.start_mark)
        return Map(at, ((k, _zip(v, node, file)) for k, v in data.items()))
    if isinstance(data, list):
        at = _origin(file, node.start_mark)
        return Seq(at, ((_zip(v, node, file), at) for v in data))
    return data


def copy(value: Any) -> Any:
    """A deep copy that keeps every position."""
    if isinstance(value, Map):
        out = Map(value.at)
        for key, item in value.items():
            out.put(key, copy(item), value.origin(key), value.key_origin(key))
        return out
    if isinstance(value, Seq):
        return Seq(value.at, ((copy(item), value.origin(i)) for i, item in enumerate(value)))
    if isinstance(value, dict):
        return {k: copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy(v) for v in value]
    return value


def plain(value: Any) -> Any:
    """Plain dicts and lists (for JSON Schema validators and YAML output)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def where(root: Any, path: Path_, *, key: bool = False) -> Origin | None:
    """Where the value at `path` (or its key) was written; the deepest existing part when the
    path goes further than the data. None when `root` carries no position."""
    current = root
    found: Origin | None = root.at if isinstance(root, Map | Seq) else None
    for part in path:
        if isinstance(current, Map) and isinstance(part, str) and part in current:
            found = current.key_origin(part) if key else current.origin(part)
            current = current[part]
        elif isinstance(current, Seq) and isinstance(part, int) and 0 <= part < len(current):
            found = current.origin(part)
            current = current[part]
        else:
            break
    return found
