"""Hostile and arbitrary input: the loader returns a DesiredState or raises SpecError, nothing else.

Hypothesis feeds raw bytes, arbitrary text, YAML-ish token soup, arbitrary YAML structures and
manifest-shaped documents with arbitrary values. Fixed cases check the limits are quick.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import spec
from reconciler.spec import reading

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TOKENS = [
    "apiVersion: reconciler/v1", "kind: Container", "kind: Image", "kind: Network", "kind: Volume",
    "metadata:", "name: web", "spec:", "image: r/a:1", "ports:", "- '8080:80'", "- 80", "env:", "A: 1",
    "envFiles: [x.env]", "volumes: ['./x:/x', 'v:/data']", "dependsOn: [web]", "restart: always",
    "networks: [n]", "build: {context: .}", "ref: r/a:1", "&a", "*a", "<<: *a", "!!binary", "!!python/name:os.system",
    "!!set", "!!omap", "!!bool", "!!timestamp", "!!int", "!!float", "!!map", "!!seq", "!!str", "!!null", "!!merge", "!custom", "---", "...", "%YAML 1.1", "? ", ": ", "-", "[", "]", "{", "}", ",", "'", '"', "|", ">",
    "#", "~", "null", "true", "1e999", "0x1F", "2001-12-14", "1" * 5000, "\t", "\\x00", "\ufeff", "é",
]


def load_bytes(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            path = Path(tmp) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        error: spec.SpecError | None = None
        try:
            spec.load(tmp)
        except spec.SpecError as exc:   # the only exception allowed out
            error = exc
    if error is not None:
        assert error.problems
        assert all(p.file.startswith(tmp) for p in error.problems), error


@SETTINGS
@given(st.binary(max_size=2000))
def test_arbitrary_bytes(data: bytes) -> None:
    load_bytes({"m.yaml": data})


@SETTINGS
@given(st.text(max_size=2000))
def test_arbitrary_text(text: str) -> None:
    load_bytes({"m.yaml": text.encode("utf-8", "surrogatepass")})


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(TOKENS), st.sampled_from(["", " ", "\n", "\n  ", "\n    ", "\n- "])), max_size=60))
def test_yaml_token_soup(parts: list[tuple[str, str]]) -> None:
    load_bytes({"m.yaml": "".join(a + b for a, b in parts).encode(), "x.env": b"A=1\n", "x": b"x"})


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
    st.sampled_from(["10s", "256Mi", "8080:80", "r/a:1", "web", "./x", "/abs", "CMD", "on-failure:3", "0.5"]),
)
keys = st.one_of(
    st.text(max_size=10),
    st.sampled_from(["image", "env", "ports", "volumes", "networks", "dependsOn", "restart", "healthcheck", "test",
                     "resources", "memory", "cpus", "update", "order", "envFiles", "build", "context", "ref", "subnet",
                     "gateway", "labels", "name", "command", "args", "type", "source", "target", "readOnly"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5), max_leaves=25)


@SETTINGS
@given(values)
def test_arbitrary_structures(value: Any) -> None:
    load_bytes({"m.yaml": yaml.safe_dump(value, allow_unicode=True).encode()})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    st.sampled_from(["Container", "Image", "Network", "Volume", "Pod"]),
    st.one_of(st.sampled_from(["web", "db", "Web", ""]), st.integers()),
    st.dictionaries(keys, values, max_size=8),
    st.lists(st.dictionaries(keys, values, max_size=5), max_size=2),
)
def test_manifest_shaped_documents(kind: str, name: Any, body: dict[str, Any], others: list[dict[str, Any]]) -> None:
    docs = [{"apiVersion": "reconciler/v1", "kind": kind, "metadata": {"name": name}, "spec": body}]
    docs += [{"apiVersion": "reconciler/v1", "kind": "Container", "metadata": {"name": f"c{i}"}, "spec": o} for i, o in enumerate(others)]
    load_bytes({"m.yaml": yaml.safe_dump_all(docs).encode(), "x": b"content", "sub/Dockerfile": b"FROM scratch\n"})


@pytest.mark.parametrize(("text", "message"), [
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(9)),
     "document rejected: expands to more than 50000 nodes (too many aliases?)"),
    ("a: &a\n  b: *a\n", "document rejected: recursive alias (a node contains itself)"),
    ("a: !!bool maybe\n", "invalid YAML: 'maybe' is not a valid bool value"),
    ("a: !!timestamp soon\n", "invalid YAML: 'soon' is not a valid timestamp value"),
    ("a: !!int 0x\n", "invalid YAML: '0x' is not a valid int value"),
    ("a: !!map [1]\n", "invalid YAML: unsupported tag 'tag:yaml.org,2002:map' (only plain mappings and lists)"),
    ("[" * 100_000 + "]" * 100_000, "invalid YAML: while increasing flow level exceeded maximum nesting depth"),
    ("".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "x: 1\n", "document rejected: nested deeper than 64 levels"),
])
def test_bombs_are_rejected(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "m.yaml").write_text(text)
    with pytest.raises(spec.SpecError) as info:
        spec.load(tmp_path)
    assert [p.message for p in info.value.problems] == [message]


def test_size_limits(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_bytes(b"#" * (reading.MAX_FILE_BYTES + 1))
    with pytest.raises(spec.SpecError) as info:
        spec.load(tmp_path)
    assert [p.message for p in info.value.problems] == [f"file larger than {reading.MAX_FILE_BYTES} bytes; split it into several files"]
    (tmp_path / "big.yaml").unlink()
    for i in range(3):
        (tmp_path / f"{i}.yaml").write_bytes(b"# filler\n" * 100)
    with pytest.raises(spec.SpecError) as info:
        spec.load(tmp_path, limits=spec.Limits(revision_bytes=2000))
    assert [(Path(p.file).name, p.message) for p in info.value.problems] == [
        ("2.yaml", "the manifests exceed 2000 bytes in total; reading stopped here"),
    ]
