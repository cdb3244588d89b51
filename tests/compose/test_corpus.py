"""Real-world-shaped compose projects (tests/compose/corpus/*) load, convert and validate.

Each directory is a project as people write them (a three-tier app, a reverse proxy, health-gated
start order, env files, a hardened read-only service, host networking, image builds, WordPress,
a development override file (with an anonymous volume for its modules), shared `extends` definitions, profiles, monitoring, Gitea,
Nextcloud, apps on an external Traefik network, worker replicas, file secrets and configs,
OpenSearch's limits, MinIO, Home Assistant, Pi-hole, a built notebook, a sysctl-tuned cache pool,
MongoDB, analytics, a CI runner with an external cache, a static site, Keycloak, Matrix), with
an `expected.json` naming what it becomes and `native.yaml`, its native form (the golden
`reconcile convert` output). For each: the project loads with an empty shell environment, it
converts to exactly `native.yaml`, that output saved beside it loads into the same objects with
the same spec hashes, and `reconcile validate` accepts both.

After a deliberate change of the conversion, rewrite the golden files with
`RECONCILER_UPDATE_GOLDEN=1 pytest tests/compose/test_corpus.py` and review their diff.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from reconciler import spec
from reconciler.cli.main import main

CORPUS = Path(__file__).parent / "corpus"
PROJECTS = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())


def test_the_corpus_is_large_enough() -> None:
    assert len(PROJECTS) >= 30


@pytest.mark.parametrize("name", PROJECTS)
def test_project_loads_converts_and_validates(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = json.loads((CORPUS / name / "expected.json").read_text())
    shutil.copytree(CORPUS / name, tmp_path / name)
    project = tmp_path / name / expected.get("dir", "")
    desired = spec.load(project, compose=spec.ComposeOptions(environ={}))
    assert sorted(desired.containers) == expected["containers"]
    assert sorted(desired.networks) == expected["networks"]
    assert sorted(desired.volumes) == expected["volumes"]
    assert sorted(desired.images) == expected["images"]
    assert list(desired.external_networks) == expected.get("external_networks", [])
    assert list(desired.external_volumes) == expected.get("external_volumes", [])
    assert len(desired.warnings) == expected["warnings"], desired.warnings

    converted, docs = spec.convert(project, compose=spec.ComposeOptions(environ={}))
    text = yaml.safe_dump_all(docs, sort_keys=False)
    golden = CORPUS / name / "native.yaml"
    if os.environ.get("RECONCILER_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), f"{name}: the conversion changed; see the module docstring"
    (project / "converted.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    native = spec.load(project / "converted.yaml")
    for kind in ("containers", "images", "networks", "volumes"):
        assert {n: o.spec_hash for n, o in getattr(native, kind).items()} == \
            {n: o.spec_hash for n, o in getattr(converted, kind).items()}, kind

    for var in ("COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE"):
        monkeypatch.delenv(var, raising=False)
    assert main(["validate", str(project)]) == 0
    assert main(["validate", str(project / "converted.yaml")]) == 0
