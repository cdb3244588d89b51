"""Documents known valid are not validated again (spec.load's `known_valid`, #21), and an edit
is always validated: the key is the document's content and its kind's schema, not its file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler import spec
from reconciler.spec import schemas, validity

REPO = Path(__file__).resolve().parents[2]

WEB = """\
apiVersion: reconciler/v1
kind: Container
metadata: {name: web}
spec:
  image: 127.0.0.1:5000/demo/web:1
  restart: always
"""


def load_in_child(manifests: Path, cache: Path) -> dict[str, object]:
    """spec.load in a fresh interpreter: the revision, and whether the validator was imported."""
    script = ("import json, sys; from reconciler import spec; "
              "from reconciler.spec import validity; "
              f"known = validity.KnownValid({str(cache)!r}); "
              f"d = spec.load({str(manifests)!r}, known_valid=known); known.save(); "
              "print(json.dumps({'revision': d.revision, 'restart': d.containers['web'].restart.name, "
              "'validator': 'jsonschema_rs' in sys.modules or 'jsonschema' in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    loaded: dict[str, object] = json.loads(out.stdout)
    return loaded


def load(manifests: Path, cache: Path) -> spec.DesiredState:
    known = validity.KnownValid(cache)
    desired = spec.load(manifests, known_valid=known)
    known.save()
    return desired


def test_a_document_known_valid_is_loaded_the_same_without_a_validator(tmp_path: Path) -> None:
    m, cache = tmp_path / "m", tmp_path / "root" / validity.FILE
    m.mkdir()
    cache.parent.mkdir()
    (m / "web.yaml").write_text(WEB)
    first = load_in_child(m, cache)
    assert first["validator"] is True
    assert cache.is_file()
    again = load_in_child(m, cache)
    assert again == {**first, "validator": False}
    assert again["revision"] == spec.load(m).revision         # the same as a load without the file


def test_an_edit_is_validated_whatever_the_files_size_and_times_say(tmp_path: Path) -> None:
    m, cache = tmp_path / "m", tmp_path / validity.FILE
    m.mkdir()
    f = m / "web.yaml"
    f.write_text(WEB)
    load(m, cache)
    before = f.stat()
    with open(f, "r+") as out:                  # the same inode, size and times, one word changed
        out.write(WEB.replace("restart: always", "restart: alwayz"))
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = f.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    with pytest.raises(spec.SpecError, match=r"web.yaml:6:\d+: Container/web: spec.restart"):
        load(m, cache)


def test_only_documents_without_problems_are_remembered(tmp_path: Path) -> None:
    m, cache = tmp_path / "m", tmp_path / validity.FILE
    m.mkdir()
    (m / "web.yaml").write_text(WEB.replace("restart: always", "restart: sometimes"))
    for _ in range(2):
        with pytest.raises(spec.SpecError, match=r"spec\.restart"):
            load(m, cache)
    assert not cache.exists()
    (m / "web.yaml").write_text(WEB)
    load(m, cache)
    data = {"apiVersion": "reconciler/v1", "kind": "Container", "metadata": {"name": "web"},
            "spec": {"image": "127.0.0.1:5000/demo/web:1", "restart": "always"}}
    assert cache.read_text().split() == [validity.key("Container", data)]


def test_the_key_is_the_content_and_the_schema() -> None:
    data = {"apiVersion": "reconciler/v1", "kind": "Network", "metadata": {"name": "n"}, "spec": {}}
    shipped = validity.key("Network", data)
    assert shipped is not None
    assert shipped == validity.key("Network", data, schemas.schema_text("Network"))
    assert shipped != validity.key("Network", data, schemas.schema_text("Network") + " ")    # another schema
    assert shipped != validity.key("Volume", {**data, "kind": "Volume"})
    assert validity.key("Network", {**data, "spec": {"internal": 1}}) != \
        validity.key("Network", {**data, "spec": {"internal": True}})
    # what JSON would not tell apart is never a key: validated every time
    assert validity.key("Network", {**data, "spec": {1: "x"}}) is None
    assert validity.key("Network", {**data, "spec": {"x": float("nan")}}) is None
    assert validity.key("Network", {**data, "spec": {"x": (1, 2)}}) is None


def test_a_damaged_file_holds_nothing(tmp_path: Path) -> None:
    m, cache = tmp_path / "m", tmp_path / validity.FILE
    m.mkdir()
    (m / "web.yaml").write_text(WEB.replace("restart: always", "restart: sometimes"))
    cache.write_bytes(b"\xff\xfe not a digest\n" + b"0" * 63 + b"\n")
    with pytest.raises(spec.SpecError, match=r"spec\.restart"):
        load(m, cache)
