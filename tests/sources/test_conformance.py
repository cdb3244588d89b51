"""One suite every Source implementation passes (STYLE.md rule 6): the contract the agent relies on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.sources import base, directory
from reconciler.sources import git as gitsrc
from tests.sources.gitrepos import Upstream
from tests.sources.wakes import Wakes

WEB = "kind: Container\nmetadata: {name: web}\n"


@dataclass
class Harness:
    source: base.Source
    write: Callable[[str, str], None]  # change a file in the source, as its user would


def directory_harness(tmp_path: Path) -> Harness:
    root = tmp_path / "manifests.d"
    root.mkdir()

    def write(name: str, text: str) -> None:
        (root / name).write_text(text)

    write("web.yaml", WEB)
    src = directory.DirectorySource(root, cache_dir=tmp_path / "cache", debounce=0.05, keep=1, resync_interval=3600)
    return Harness(src, write)


def git_harness(tmp_path: Path) -> Harness:
    up = Upstream(tmp_path / "remote")
    up.commit({"web.yaml": WEB})
    src = gitsrc.GitSource(str(up.bare), cache_dir=tmp_path / "cache", branch="main", keep=1, poll_interval=0.05, jitter=0)

    def write(name: str, text: str) -> None:
        up.commit({name: text})

    return Harness(src, write)


@pytest.fixture(params=[directory_harness, git_harness], ids=["directory", "git"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    make: Callable[[Path], Harness] = request.param
    return make(tmp_path)


def test_fetch_returns_a_readable_snapshot_with_a_stable_id(harness: Harness) -> None:
    rev = harness.source.fetch()
    assert isinstance(rev, base.Revision)
    assert (rev.path / "web.yaml").read_text() == WEB
    assert harness.source.fetch().id == rev.id
    assert rev.origin  # says where the files came from, for messages
    assert str(rev.path) not in rev.origin


def test_a_change_makes_a_new_revision_and_the_retained_one_survives(harness: Harness) -> None:
    old = harness.source.fetch()
    harness.source.retain([old.id])
    for i in range(3):
        harness.write("web.yaml", WEB + f"# {i}\n")
        new = harness.source.fetch()
        assert new.id != old.id
    assert (old.path / "web.yaml").read_text() == WEB
    assert (new.path / "web.yaml").read_text() == WEB + "# 2\n"


def test_live_is_one_place_that_follows_revisions_and_keeps_what_others_wrote(harness: Harness) -> None:
    old = harness.source.fetch()
    harness.source.place(old)
    assert old.live is not None
    assert not old.live.is_relative_to(old.path)
    assert (old.live / "web.yaml").read_text() == WEB
    (old.live / "data").mkdir()
    (old.live / "data" / "written").write_text("a container's")     # as through a bind of ./data
    harness.write("web.yaml", WEB + "# 2\n")
    new = harness.source.fetch()
    harness.source.place(new)
    assert new.live == old.live
    assert (new.live / "web.yaml").read_text() == WEB + "# 2\n"
    assert (new.live / "data" / "written").read_text() == "a container's"


def test_watch_wakes_on_a_change_and_closes_cleanly(harness: Harness) -> None:
    harness.source.fetch()
    wakes = Wakes()
    watcher = harness.source.watch(wakes)
    try:
        harness.write("db.yaml", "kind: Container\n")
        assert wakes.wait(1)
    finally:
        watcher.close()
    watcher.close()  # idempotent
