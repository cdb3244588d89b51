"""The YAML side of reading manifests (`reading`): the loader, the node tree's builder under
its limits, and the walk that locates a path in a tree. Loaded when a file is parsed or a message
needs a node's position: a load whose files the parse cache holds (a pass with nothing to do)
does not import PyYAML (#21)."""

from __future__ import annotations

from typing import Any

import yaml

from reconciler.spec import errors, reading
from reconciler.spec.reading import Path_

__all__ = ["BaseLoader", "Loader", "locate", "node_at", "parse", "yaml_problem"]

BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # libyaml's, where it is built in
_RESOLVED: dict[tuple[str, bool, bool], str] = {}      # plain scalar -> tag, shared by all loads


class Loader(BaseLoader):  # type: ignore[misc]
    """libyaml's safe loader with the implicit-tag resolution of scalars memoised.

    Manifests repeat the same keys and values ("image", "spec", "true") thousands of times,
    and resolving a scalar's tag runs regexes in Python for each one.
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and implicit is not None and len(value) <= 64:
            key = (value, bool(implicit[0]), bool(implicit[1]))
            tag = _RESOLVED.get(key)
            if tag is None:
                tag = super().resolve(kind, value, implicit)
                if len(_RESOLVED) < 50_000:
                    _RESOLVED[key] = tag
            return tag
        return super().resolve(kind, value, implicit)


_SEQ_TAG = "tag:yaml.org,2002:seq"
_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_MERGE_TAG = "tag:yaml.org,2002:merge"


def locate(node: Any, path: Path_, *, key: bool = False) -> tuple[int, int]:
    """1-based line and column of the node at `path` under `node` (Document.where's walk)."""
    current = node
    value_mark = current.start_mark
    key_mark = None
    for part in path:
        child = None
        if isinstance(current, yaml.MappingNode) and isinstance(part, str):
            for knode, vnode in current.value:
                if isinstance(knode, yaml.ScalarNode) and knode.value == part:
                    key_mark, child = knode.start_mark, vnode
                    break
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(current.value):
            child = current.value[part]
        if child is None:
            break
        current = child
        value_mark = child.start_mark
    mark = key_mark if key and key_mark is not None else value_mark
    return mark.line + 1, mark.column + 1


def node_at(text: str, index: int) -> Any:
    """The node tree of the `index`-th document of a text that parsed before (None if it does not now)."""
    try:
        for i, node in enumerate(yaml.compose_all(text, Loader=Loader)):
            if i == index:
                return node
    except yaml.YAMLError:
        pass
    return None


class _Bomb(Exception):
    """Internal: the document is too large after alias expansion, recursive or too deep."""


class _Builder:
    """Turns a composed node tree into plain data.

    Aliases are expanded as they are built, under a budget: more than MAX_DOCUMENT_NODES
    nodes (a "billion laughs" bomb stops after that many, in milliseconds), nesting deeper
    than MAX_DEPTH, or an alias to one of its own ancestors, rejects the document.
    """

    def __init__(self, doc: reading.Document, problems: list[errors.Problem], limits: reading.Limits) -> None:
        self.doc = doc
        self.limits = limits
        self.problems = problems
        self.constructor = yaml.constructor.SafeConstructor()
        self.budget = limits.document_nodes
        self.active: set[int] = set()
        self.merged: dict[int, int] = {}        # mapping node -> pairs its merge keys brought in

    def fail(self, node: yaml.Node, path: Path_, message: str) -> None:
        self.problems.append(
            reading._problem(self.doc.file, node.start_mark.line + 1, node.start_mark.column + 1, message, reading._fmt(path))
        )

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise _Bomb(f"expands to more than {self.limits.document_nodes} nodes (too many aliases?)")
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR_TAG:
                return node.value
            return self.scalar(node)
        if node.tag != (_SEQ_TAG if isinstance(node, yaml.SequenceNode) else _MAP_TAG):
            raise yaml.constructor.ConstructorError(
                None, None, f"unsupported tag {node.tag!r} (only plain mappings and lists)", node.start_mark
            )
        key = id(node)
        if key in self.active:
            raise _Bomb("recursive alias (a node contains itself)")
        if len(path) >= self.limits.depth:
            raise _Bomb(f"nested deeper than {self.limits.depth} levels")
        self.active.add(key)
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
            assert isinstance(node, yaml.MappingNode)
            merged = self.flatten(node)
            out: dict[str, Any] = {}
            first: dict[str, int] = {}
            for i, (knode, vnode) in enumerate(node.value):
                name = self.build_key(knode, path)
                if name is None:
                    continue
                if name in out and first[name] >= merged:
                    self.fail(knode, (*path, name), f"duplicate key {name!r}; remove one of them")
                    continue
                first[name] = i                     # a key of the mapping's own overrides a merged one
                out[name] = self.build(vnode, (*path, name))
            return out
        finally:
            self.active.discard(key)

    def flatten(self, node: yaml.MappingNode) -> int:
        """Apply the "<<" merge keys (as safe_load does); how many leading pairs they brought in."""
        if id(node) not in self.merged:            # an aliased node is flattened once
            own = sum(1 for k, _ in node.value if k.tag != _MERGE_TAG)
            self.constructor.flatten_mapping(node)
            self.merged[id(node)] = len(node.value) - own
        return self.merged[id(node)]

    def scalar(self, node: yaml.Node) -> Any:
        """A scalar as safe_load builds it; an explicit tag the text does not fit is a located error."""
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, IndexError):
            # PyYAML's constructors fail this way on e.g. `!!bool maybe`, `!!timestamp soon`
            tag = str(node.tag).removeprefix("tag:yaml.org,2002:")
            raise yaml.constructor.ConstructorError(
                None, None, f"{_short(node.value)} is not a valid {tag} value", node.start_mark,
            ) from None

    def build_key(self, knode: yaml.Node, path: Path_) -> str | None:
        if isinstance(knode, yaml.ScalarNode):
            if knode.tag == _STR_TAG:
                return str(knode.value)
            key = self.scalar(knode)
            if isinstance(key, str):
                return key
            if key is None:
                return "null"
            if isinstance(key, bool):
                return "true" if key else "false"
            if isinstance(key, int | float):
                return str(key)
        self.fail(knode, path, "mapping keys must be plain strings")
        return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse(source: reading.SourceFile, problems: list[errors.Problem], limits: reading.Limits, loader: Any) -> list[reading.Document]:
    docs: list[reading.Document] = []
    try:
        for index, node in enumerate(yaml.compose_all(source.text, Loader=loader)):
            if node is None:
                continue
            mark = node.start_mark
            doc = reading.Document(
                file=source.path, base=source.base, index=index, line=mark.line + 1, column=mark.column + 1,
                data=None, node=node,
            )
            try:
                doc.data = _Builder(doc, doc.problems, limits).build(node, ())
            except _Bomb as exc:
                problems.append(reading._problem(source.path, doc.line, doc.column, f"document rejected: {exc}"))
                continue
            except yaml.YAMLError as exc:
                problems.append(yaml_problem(source.path, exc))
                continue
            docs.append(doc)
    except yaml.YAMLError as exc:
        problems.append(yaml_problem(source.path, exc))
    except RecursionError:
        problems.append(reading._problem(source.path, 1, 1, f"YAML nested too deeply (limit {limits.depth} levels)"))
    return docs


def yaml_problem(file: str, exc: yaml.YAMLError) -> errors.Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    if isinstance(exc, yaml.MarkedYAMLError):
        what = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
    else:
        what = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
    return reading._problem(file, line, column, f"invalid YAML: {what}")
