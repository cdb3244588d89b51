"""Manifest files parsed in earlier loads are not parsed again (spec.load's `parsed`, #21), and
every change is seen: the key is the file's text, never its name, size or time stamps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler import spec
from reconciler.spec import errors, parsecache, reading, validity
from tests.spec.test_known_valid import WEB

REPO = Path(__file__).resolve().parents[2]



def load(manifests: Path, cache: Path) -> spec.DesiredState:
    parsed = parsecache.ParseCache(cache)
    desired = spec.load(manifests, parsed=parsed)
    parsed.save()
    return desired


def kept(cache: Path) -> dict[str, Any]:
    files: dict[str, Any] = json.loads(cache.read_bytes())["files"]
    return files


def forge(cache: Path, restart: str) -> None:
    """Change the data every kept document holds (as only the root's owner could)."""
    doc = json.loads(cache.read_bytes())
    for docs in doc["files"].values():
        for d in docs:
            d[3]["spec"]["restart"] = restart
    cache.write_text(json.dumps(doc))


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    m = tmp_path / "m"
    m.mkdir()
    (m / "web.yaml").write_text(WEB)
    return m


def test_a_kept_file_is_not_parsed_again_and_loads_the_same(manifests: Path, tmp_path: Path) -> None:
    cache = tmp_path / parsecache.FILE
    first = load(manifests, cache)
    assert len(kept(cache)) == 1
    assert os.stat(cache).st_mode & 0o777 == 0o600
    again = load(manifests, cache)
    assert again == first == spec.load(manifests)
    forge(cache, "on-failure")                  # the data comes from the cache, not from a parse
    assert load(manifests, cache).containers["web"].restart.name == "on-failure"


def test_an_edit_is_seen_whatever_the_files_size_and_times_say(manifests: Path, tmp_path: Path) -> None:
    cache = tmp_path / parsecache.FILE
    load(manifests, cache)
    f = manifests / "web.yaml"
    before = f.stat()
    with open(f, "r+") as out:                  # the same inode, size and times, one word changed
        out.write(WEB.replace("restart: always", "restart: 'no'  "))
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = f.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert load(manifests, cache).containers["web"].restart.name == "no"
    assert len(kept(cache)) == 2


def test_a_renamed_file_is_its_new_name_and_a_deleted_one_is_gone(manifests: Path, tmp_path: Path) -> None:
    cache = tmp_path / parsecache.FILE
    (manifests / "db.yaml").write_text(WEB.replace("name: web", "name: db"))
    load(manifests, cache)
    before = kept(cache)
    (manifests / "sub").mkdir()
    (manifests / "web.yaml").rename(manifests / "sub" / "front.yaml")
    moved = load(manifests, cache)
    origin = moved.containers["web"].origin
    assert (origin.file, origin.line) == (str(manifests / "sub" / "front.yaml"), 1)
    assert moved == spec.load(manifests)
    assert kept(cache) == before                # read from the cache: the same text, the same key
    (manifests / "db.yaml").unlink()
    assert sorted(load(manifests, cache).containers) == ["web"]


def test_the_texts_of_earlier_edits_are_dropped_once_they_outnumber_the_current_ones(
        manifests: Path, tmp_path: Path) -> None:
    cache = tmp_path / parsecache.FILE
    (manifests / "db.yaml").write_text(WEB.replace("name: web", "name: db"))
    sizes = []
    for i in range(parsecache.SLACK + 5):
        (manifests / "web.yaml").write_text(WEB.replace("restart: always", f"restart: always\n  env: {{V: '{i}'}}"))
        assert dict(load(manifests, cache).containers["web"].env) == {"V": str(i)}
        sizes.append(len(kept(cache)))
    assert max(sizes) == 2 * 2 + parsecache.SLACK
    assert sizes[-1] < max(sizes)
    assert all(n >= 2 for n in sizes)


def test_a_damaged_or_unreadable_cache_is_ignored(manifests: Path, tmp_path: Path) -> None:
    cache = tmp_path / parsecache.FILE
    want = spec.load(manifests)
    load(manifests, cache)
    good = json.loads(cache.read_bytes())
    key = next(iter(good["files"]))
    damaged: list[bytes] = [
        b"\x00garbage{", b"[]", json.dumps({"format": 999, "files": good["files"]}).encode(),
        json.dumps({"format": parsecache.FORMAT, "files": {key: "not a list"}}).encode(),
        json.dumps({"format": parsecache.FORMAT, "files": {key: [["0", 1, 1, {}]]}}).encode(),
        json.dumps({"format": parsecache.FORMAT, "files": {key: [[0, 1, 1]]}}).encode(),
        json.dumps({"format": parsecache.FORMAT, "files": {key: [d[:4] for d in good["files"][key]]}}).encode(),
        json.dumps({"format": parsecache.FORMAT, "files": {key: [[*d[:4], "short"] for d in good["files"][key]]}}).encode(),
    ]
    for raw in damaged:
        cache.write_bytes(raw)
        assert load(manifests, cache) == want, raw
    cache.unlink()
    cache.mkdir()                               # not a file: nothing read, nothing written
    assert load(manifests, cache) == want
    assert list(cache.iterdir()) == []


def test_an_error_in_a_kept_file_is_located_in_its_text(manifests: Path, tmp_path: Path) -> None:
    """A kept document has no node tree: a message about one of its fields parses its text."""
    cache = tmp_path / parsecache.FILE
    (manifests / "other.yaml").write_text("# the same name again\n\n" + WEB)
    parsed = parsecache.ParseCache(cache)
    with pytest.raises(spec.SpecError) as without:
        spec.load(manifests, parsed=parsed)
    parsed.save()
    assert len(kept(cache)) == 2
    parsed = parsecache.ParseCache(cache)
    with pytest.raises(spec.SpecError) as again:
        spec.load(manifests, parsed=parsed)
    assert str(again.value) == str(without.value)
    assert f"{manifests / 'web.yaml'}:3:" in str(again.value)        # metadata.name, not the document's line 1


def test_a_file_with_values_json_cannot_hold_is_not_kept(tmp_path: Path) -> None:
    """A YAML date or binary value would come back as a string: such a file is parsed every time."""
    cache = tmp_path / parsecache.FILE
    for text in (WEB.replace("name: web}", "name: web, labels: {since: 2024-01-01}}"),
                 WEB.replace("name: web}", "name: web, labels: {a: !!binary aGk=}}")):
        parsed = parsecache.ParseCache(cache)
        problems: list[errors.Problem] = []
        docs = reading.parse(reading.SourceFile(str(tmp_path / "web.yaml"), str(tmp_path), text), problems,
                             cache=parsed)
        assert len(docs) == 1
        assert problems == []
        parsed.save()
        assert not cache.exists()


def test_a_kept_document_is_known_valid_without_its_json_again(manifests: Path, tmp_path: Path) -> None:
    """The kept digest of a document's canonical JSON is the schema check's key (validity.py): a
    load from both caches finds every document known valid and imports no validator."""
    script = ("import json, sys; from reconciler import spec; from reconciler.spec import parsecache, validity; "
              f"known = validity.KnownValid({str(tmp_path / validity.FILE)!r}); "
              f"parsed = parsecache.ParseCache({str(tmp_path / parsecache.FILE)!r}); "
              f"d = spec.load({str(manifests)!r}, known_valid=known, parsed=parsed); known.save(); parsed.save(); "
              "print(json.dumps({'revision': d.revision, "
              "'validator': 'jsonschema_rs' in sys.modules or 'jsonschema' in sys.modules}))")

    def child() -> dict[str, object]:
        out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
        loaded: dict[str, object] = json.loads(out.stdout)
        return loaded

    first = child()
    assert first["validator"] is True
    assert child() == {**first, "validator": False}
    assert first["revision"] == spec.load(manifests).revision
    cache = tmp_path / parsecache.FILE
    doc = json.loads(cache.read_bytes())
    for docs in doc["files"].values():
        for d in docs:
            d[4] = "0" * 64                 # the kept digest, not the data's JSON again, keys the check
    cache.write_text(json.dumps(doc))
    assert child() == first
