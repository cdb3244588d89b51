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


def load_in_child(manifests: Path, cache: Path, *, aside: bool = False, first: str = "") -> dict[str, object]:
    """spec.load in a fresh interpreter (running `first` before it): the revision, and whether
    the validator was imported; a load refused: its problems."""
    script = "\n".join([
        "import json, sys", "from reconciler import spec", "from reconciler.spec import validity", first,
        f"known = validity.KnownValid({str(cache)!r}, aside={aside})",
        "validator = lambda: 'jsonschema_rs' in sys.modules or 'jsonschema' in sys.modules",
        f"try: d = spec.load({str(manifests)!r}, known_valid=known)",
        "except spec.SpecError as e: print(json.dumps({'problems': [str(p) for p in e.problems], "
        "'validator': validator()})); sys.exit()",
        "known.save()",
        "print(json.dumps({'revision': d.revision, 'restart': d.containers['web'].restart.name, "
        "'validator': validator()}))"])
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


def test_a_document_checked_aside_loads_without_the_validator_in_the_process(tmp_path: Path) -> None:
    """The agent's KnownValid: a helper process checks the new documents; the agent never maps
    the validator while its manifests are valid, and loads what a load without it loads."""
    m, cache = tmp_path / "m", tmp_path / "root" / validity.FILE
    m.mkdir()
    cache.parent.mkdir()
    (m / "web.yaml").write_text(WEB)
    first = load_in_child(m, cache, aside=True)
    assert first == {"revision": spec.load(m).revision, "restart": "always", "validator": False}
    data = {"apiVersion": "reconciler/v1", "kind": "Container", "metadata": {"name": "web"},
            "spec": {"image": "127.0.0.1:5000/demo/web:1", "restart": "always"}}
    assert cache.read_text().split() == [validity.key("Container", data)]     # what the helper vouched for
    # a document the helper finds invalid is validated here, for its problems' words and lines
    (m / "web.yaml").write_text(WEB.replace("restart: always", "restart: sometimes"))
    refused = load_in_child(m, cache, aside=True)
    assert refused["validator"] is True
    assert [p for p in refused["problems"] if "web.yaml:6:" in p and "spec.restart" in p]    # type: ignore[union-attr]
    assert len(cache.read_text().split()) == 1


def test_when_the_helper_cannot_run_every_document_is_validated_in_the_process(tmp_path: Path) -> None:
    m, cache = tmp_path / "m", tmp_path / validity.FILE
    m.mkdir()
    (m / "web.yaml").write_text(WEB)
    no_helper = "sys.executable = '/nonexistent/python3'"
    assert load_in_child(m, cache, aside=True, first=no_helper) == \
        {"revision": spec.load(m).revision, "restart": "always", "validator": True}
    (m / "web.yaml").write_text(WEB.replace("restart: always", "restart: sometimes"))
    refused = load_in_child(m, cache, aside=True, first=no_helper)
    assert [p for p in refused["problems"] if "spec.restart" in p]      # type: ignore[union-attr]
    # a helper that answers other than one boolean a document vouches for nothing either
    for program in ("/bin/true", "/bin/echo"):         # nothing at all; its arguments, not JSON
        assert "problems" in load_in_child(m, cache, aside=True, first=f"sys.executable = {program!r}")
    # the helper on its own: a schema per name, one verdict an item
    number = {"type": "integer", "minimum": 1}
    assert validity.ask_aside({"n": number, "s": {"type": "string"}}, [("n", 2), ("n", 0), ("s", "x"), ("n", "x")]) \
        == [True, False, True, False]


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
