"""The Compose Specification's schema check (compose.py `_valid`, `_validate`, #21): jsonschema-rs
decides whether a document is valid; jsonschema (~100 ms to import) is loaded only to word the
problems of an invalid one. A document known valid (the state root's `valid-documents`, keyed by
the schema's text and the document) is not checked again, and the agent's check runs in a
helper process (validity.ask_aside), as manifests' do."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler import spec
from reconciler.spec import compose, validity
from tests.compose.test_loading import ERRORS

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).parent / "corpus"

WEB = """\
services:
  web:
    image: 127.0.0.1:5000/demo/web:1
    restart: always
"""


def _agree(doc: Any) -> bool:
    return bool(compose._fast_validator().is_valid(doc)) == (not list(compose._validator().iter_errors(doc)))


def test_jsonschema_rs_and_jsonschema_agree_on_the_corpus_and_on_the_errors(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every document the corpus's projects have checked (after interpolation, as the loader
    checks them), and the error cases' compose files: the two validators say the same."""
    seen: list[Any] = []
    validate = compose._validate

    def recording(doc: Any, rd: Any, reported: Any = ()) -> bool:
        seen.append(copy.deepcopy(doc))
        return validate(doc, rd, reported)

    monkeypatch.setattr(compose, "_validate", recording)
    for project in sorted(p for p in CORPUS.iterdir() if p.is_dir()):
        expected = json.loads((project / "expected.json").read_text())
        shutil.copytree(project, tmp_path / project.name)
        spec.load(tmp_path / project.name / expected.get("dir", ""), compose=spec.ComposeOptions(environ={}))
    assert len(seen) >= 30
    assert [i for i, doc in enumerate(seen) if not _agree(doc)] == []
    invalid = [yaml.safe_load(textwrap.dedent(text)) for text, _ in ERRORS.values()]
    assert sum(not compose._fast_validator().is_valid(doc) for doc in invalid) >= 3    # the check can tell
    assert [i for i, doc in enumerate(invalid) if not _agree(doc)] == []


def _child(project: Path, cache: Path, *, aside: bool = False) -> dict[str, Any]:
    """spec.load of `project` in a fresh interpreter with the KnownValid at `cache`: its
    containers (or problems) and the validators it imported."""
    script = "\n".join([
        "import json, sys", "from reconciler import spec", "from reconciler.spec import validity",
        f"known = validity.KnownValid({str(cache)!r}, aside={aside})",
        "loaded = lambda: [m for m in ('jsonschema', 'jsonschema_rs') if m in sys.modules]",
        f"try: d = spec.load({str(project)!r}, known_valid=known)",
        "except spec.SpecError as e: print(json.dumps({'problems': [str(p) for p in e.problems], "
        "'loaded': loaded()})); sys.exit()",
        "known.save()",
        "print(json.dumps({'containers': sorted(d.containers), 'loaded': loaded()}))"])
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    loaded: dict[str, Any] = json.loads(out.stdout)
    return loaded


def test_a_valid_project_loads_without_jsonschema_and_again_without_a_validator(tmp_path: Path) -> None:
    project = tmp_path / "shop"
    project.mkdir()
    (project / "compose.yaml").write_text(WEB)
    cache = tmp_path / "valid-documents"
    assert _child(project, cache) == {"containers": ["shop-web-1"], "loaded": ["jsonschema_rs"]}
    assert _child(project, cache) == {"containers": ["shop-web-1"], "loaded": []}     # known valid
    (project / "compose.yaml").write_text(WEB.replace("restart: always", "restart: always\n    imgae: x"))
    refused = _child(project, cache)
    assert refused["loaded"] == ["jsonschema", "jsonschema_rs"]         # jsonschema words the problem
    assert any("compose.yaml:5:5: services.web.imgae: unknown field 'imgae'" in p for p in refused["problems"])


def test_the_agents_check_runs_aside(tmp_path: Path) -> None:
    project = tmp_path / "shop"
    project.mkdir()
    (project / "compose.yaml").write_text(WEB)
    cache = tmp_path / "valid-documents"
    assert _child(project, cache, aside=True) == {"containers": ["shop-web-1"], "loaded": []}
    # the compose document (by the compose schema's text), beside the documents it makes
    assert validity.key("compose", yaml.safe_load(WEB), compose._schema_text()) in cache.read_text().split()
    (project / "compose.yaml").write_text(WEB.replace("restart: always", "restart: always\n    imgae: x"))
    refused = _child(project, cache, aside=True)
    assert "jsonschema" in refused["loaded"]
    assert any("services.web.imgae: unknown field 'imgae'" in p for p in refused["problems"])
