"""The shipped JSON Schemas: valid 2020-12, printed by `reconcile schema`, usable by editors."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from reconciler.cli.main import main
from reconciler.spec import models, schemas
from tests.spec.test_broken_manifests import CASES

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "manifests"


def example_documents() -> list[dict[str, object]]:
    return [d for f in sorted(EXAMPLES.rglob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]


@pytest.mark.parametrize("kind", models.KINDS)
def test_each_kind_schema_is_valid_draft_2020_12(kind: str) -> None:
    schema = json.loads(schemas.schema_text(kind))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["kind"] == {"const": kind}


@pytest.mark.parametrize("kind", models.KINDS)
def test_schema_command_prints_the_shipped_file(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", kind.lower()]) == 0
    assert capsys.readouterr().out == schemas.schema_text(kind)


def test_schema_command_without_kind_prints_one_schema_for_any_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    combined = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(combined)
    validator = jsonschema.Draft202012Validator(combined)
    docs = example_documents()
    assert {d["kind"] for d in docs} == set(models.KINDS)
    for doc in docs:
        assert list(validator.iter_errors(doc)) == []
    bad = {"apiVersion": "reconciler/v1", "kind": "Volume", "metadata": {"name": "v"}, "spec": {"size": 1}}
    assert not validator.is_valid(bad)
    assert not validator.is_valid({**bad, "kind": "Pod"})


def test_schema_command_rejects_unknown_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "Pod"]) == 2
    assert "invalid choice: 'Pod'" in capsys.readouterr().err


def test_fast_and_full_validators_agree() -> None:
    """jsonschema-rs decides validity and `jsonschema` words errors: they must never disagree."""
    fast = {kind: schemas._fast_validator(kind) for kind in models.KINDS}
    full = {kind: schemas._validator(kind) for kind in models.KINDS}
    assert all(v is not None for v in fast.values())
    docs = example_documents()
    for files, _ in CASES.values():
        text = files["m.yaml"]
        if isinstance(text, str):
            try:
                docs += [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
            except yaml.YAMLError:
                pass
    checked = 0
    for doc in docs:
        kind = doc.get("kind")
        if kind in models.KINDS:
            assert fast[kind].is_valid(doc) == full[kind].is_valid(doc), doc
            checked += 1
    assert checked > 60


def _fields(schema: dict[str, object]) -> set[str]:
    """Every property name in a schema, at any depth."""
    found: set[str] = set()
    stack: list[object] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                found |= set(props)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def test_readme_manifest_reference_covers_every_schema_field() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Manifest reference", 1)[1].split("\n## ", 1)[0]
    for kind in models.KINDS:
        assert f"**{kind}**" in section
        missing = sorted(f for f in _fields(json.loads(schemas.schema_text(kind))) if f"`{f}`" not in section)
        assert missing == [], f"README's manifest reference lacks {kind} fields {missing}"
