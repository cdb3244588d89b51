from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import TemporaryError, TerminalError
from reconciler.sources import directory, errors
from tests.sources.wakes import Wakes

WEB = "apiVersion: reconciler/v1\nkind: Container\nmetadata: {name: web}\nspec: {image: busybox}\n"
DB = "apiVersion: reconciler/v1\nkind: Container\nmetadata: {name: db}\nspec: {image: busybox}\n"


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    d = tmp_path / "manifests.d"
    d.mkdir()
    (d / "web.yaml").write_text(WEB)
    return d


def make_source(manifests: Path, **kw: object) -> directory.DirectorySource:
    return directory.DirectorySource(manifests, cache_dir=manifests.parent / "cache", **kw)  # type: ignore[arg-type]


@pytest.fixture
def watched(manifests: Path) -> Iterator[tuple[directory.DirectorySource, Wakes]]:
    # a large re-list interval: every wake in these tests comes from inotify
    src = make_source(manifests, debounce=0.3, max_delay=10.0, resync_interval=3600.0)
    wakes = Wakes()
    with src.watch(wakes):
        yield src, wakes


# -- fetch ----------------------------------------------------------------------------------


def test_revision_is_a_content_hash_and_a_readable_snapshot(manifests: Path) -> None:
    src = make_source(manifests)
    first = src.fetch()
    assert len(first.id) == 64
    assert (first.path / "web.yaml").read_text() == WEB
    assert src.fetch() == first  # same content, same revision
    (manifests / "web.yaml").write_text(WEB.replace("busybox", "alpine"))
    second = src.fetch()
    assert second.id != first.id
    assert "alpine" in (second.path / "web.yaml").read_text()
    assert (first.path / "web.yaml").read_text() == WEB  # the old snapshot did not change
    (manifests / "web.yaml").write_text(WEB)
    assert src.fetch().id == first.id


def test_ignored_files_neither_change_the_revision_nor_reach_the_snapshot(manifests: Path) -> None:
    src = make_source(manifests)
    before = src.fetch().id
    for name in [".web.yaml.swp", "web.yaml~", "#web.yaml#", "4913", "web.yaml.tmp", "web.yaml.dpkg-new"]:
        (manifests / name).write_text("garbage: [")
    (manifests / ".git").mkdir()
    (manifests / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    rev = src.fetch()
    assert rev.id == before
    assert sorted(p.name for p in rev.path.iterdir()) == ["web.yaml"]


def test_env_files_change_the_revision_and_reach_the_snapshot(manifests: Path) -> None:
    src = make_source(manifests)
    before = src.fetch().id
    (manifests / ".env").write_text("TAG=1\n")
    (manifests / ".env.local").write_text("DEBUG=1\n")
    rev = src.fetch()
    assert rev.id != before
    assert sorted(p.name for p in rev.path.iterdir()) == [".env", ".env.local", "web.yaml"]
    assert rev.name == manifests.name                   # a compose project's default name
    (manifests / ".env").write_text("TAG=2\n")
    assert src.fetch().id != rev.id


def test_editing_an_env_file_wakes(watched: tuple[directory.DirectorySource, Wakes], manifests: Path) -> None:
    _, wakes = watched
    (manifests / ".env").write_text("TAG=1\n")
    assert ".env" in wakes.wait(1)[0]


def test_subdirectories_modes_and_file_symlinks_are_snapshotted(manifests: Path, tmp_path: Path) -> None:
    (manifests / "shop").mkdir()
    (manifests / "shop" / "db.yaml").write_text(DB)
    (manifests / "shop" / "init.sh").write_text("#!/bin/sh\n")
    os.chmod(manifests / "shop" / "init.sh", 0o750)
    outside = tmp_path / "configmap-data.yaml"
    outside.write_text("kind: Network\n")
    (manifests / "net.yaml").symlink_to(outside)
    rev = make_source(manifests).fetch()
    assert (rev.path / "shop" / "db.yaml").read_text() == DB
    assert (rev.path / "shop" / "init.sh").stat().st_mode & 0o777 == 0o750
    assert (rev.path / "net.yaml").read_text() == "kind: Network\n"
    assert not (rev.path / "net.yaml").is_symlink()


def test_an_atomic_replace_is_seen_by_the_next_fetch(manifests: Path) -> None:
    src = make_source(manifests)
    old = src.fetch()
    tmp = manifests / ".web.yaml.new"
    tmp.write_text(WEB.replace("web", "web2"))
    os.rename(tmp, manifests / "web.yaml")
    new = src.fetch()
    assert new.id != old.id
    assert "web2" in (new.path / "web.yaml").read_text()


def test_old_snapshots_are_dropped_unless_retained(manifests: Path) -> None:
    src = make_source(manifests, keep=1)
    applied = src.fetch()
    src.retain([applied.id])  # the agent retains what it last applied
    revs = []
    for i in range(3):
        (manifests / "web.yaml").write_text(WEB + f"# edit {i}\n")
        revs.append(src.fetch())
    assert applied.path.is_dir()
    assert not revs[0].path.exists()
    assert not revs[1].path.exists()
    assert revs[2].path.is_dir()
    src.retain([])
    (manifests / "web.yaml").write_text(WEB + "# last\n")
    src.fetch()
    assert not applied.path.exists()


def test_a_missing_directory_is_temporary(tmp_path: Path) -> None:
    src = directory.DirectorySource(tmp_path / "nope", cache_dir=tmp_path / "cache")
    with pytest.raises(errors.SourceUnavailable) as info:
        src.fetch()
    assert isinstance(info.value, TemporaryError)
    assert "does not exist" in str(info.value)


def test_a_file_instead_of_a_directory_is_terminal(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(WEB)
    src = directory.DirectorySource(tmp_path / "web.yaml", cache_dir=tmp_path / "cache")
    with pytest.raises(errors.SourceInvalid) as info:
        src.fetch()
    assert isinstance(info.value, TerminalError)


def test_a_tree_over_the_size_limit_is_refused(manifests: Path) -> None:
    (manifests / "big.bin").write_bytes(b"x" * 4096)
    with pytest.raises(errors.SourceInvalid, match="more than"):
        make_source(manifests, max_bytes=1024).fetch()


def test_an_empty_directory_is_a_valid_empty_revision(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    rev = directory.DirectorySource(tmp_path / "empty", cache_dir=tmp_path / "cache").fetch()
    assert list(rev.path.iterdir()) == []


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        ("web.yaml", False),
        ("shop/db.yml", False),
        (".web.yaml.swp", True),
        ("web.yaml~", True),
        ("#web.yaml#", True),
        ("4913", True),
        ("shop/.hidden/x.yaml", True),
        ("..data/web.yaml", True),
        ("web.yaml.part", True),
        ("web.yaml.rpmnew", True),
        (".env", False),                # a compose project's environment and env files
        (".env.production", False),
        ("api/.env", False),
        (".env.swp", True),
        (".env.production~", True),
        (".envrc", True),
        (".hidden/.env", True),
    ],
)
def test_ignore_rules(path: str, ignored: bool) -> None:
    assert directory.is_ignored(path) is ignored


# -- watch (real inotify through watchdog) --------------------------------------------------


def test_writing_a_new_file_wakes(watched: tuple[directory.DirectorySource, Wakes], manifests: Path) -> None:
    _, wakes = watched
    (manifests / "db.yaml").write_text(DB)
    assert "db.yaml" in wakes.wait(1)[0]


def test_editing_a_file_wakes(watched: tuple[directory.DirectorySource, Wakes], manifests: Path) -> None:
    _, wakes = watched
    with open(manifests / "web.yaml", "a") as f:
        f.write("# tweak\n")
    assert "web.yaml" in wakes.wait(1)[0]


def test_an_atomic_rename_over_a_manifest_wakes(watched: tuple[directory.DirectorySource, Wakes], manifests: Path) -> None:
    _, wakes = watched
    tmp = manifests / ".web.yaml.tmp123"
    tmp.write_text(WEB + "# replaced\n")
    os.rename(tmp, manifests / "web.yaml")
    reason = wakes.wait(1)[0]
    assert "web.yaml moved" in reason
    assert "tmp123" not in reason


def test_deleting_a_file_wakes(watched: tuple[directory.DirectorySource, Wakes], manifests: Path) -> None:
    _, wakes = watched
    (manifests / "web.yaml").unlink()
    assert "web.yaml deleted" in wakes.wait(1)[0]


def test_editor_swap_and_temp_files_do_not_wake(watched: tuple[directory.DirectorySource, Wakes], manifests: Path) -> None:
    _, wakes = watched
    for name in [".web.yaml.swp", "web.yaml~", "4913", "#web.yaml#", ".#web.yaml"]:
        (manifests / name).write_text("x")
        (manifests / name).unlink()
    (manifests / ".cache").mkdir()
    (manifests / ".cache" / "x.yaml").write_text("x")
    # a real change after the ignored ones: inotify delivers in order, so had any of the
    # ignored events counted, it would be in this same debounced wake or an earlier one
    (manifests / "db.yaml").write_text(DB)
    reasons = wakes.wait(1)
    assert len(reasons) == 1
    changes = reasons[0].removeprefix(f"directory {manifests}: ").split(", ")
    assert changes
    assert all(c.startswith("db.yaml ") for c in changes), reasons


def test_the_sources_own_reads_do_not_wake(watched: tuple[directory.DirectorySource, Wakes], manifests: Path) -> None:
    src, wakes = watched
    src.fetch()  # opens and reads every file: IN_OPEN / IN_CLOSE_NOWRITE must not count
    (manifests / "db.yaml").write_text(DB)
    reasons = wakes.wait(1)
    assert len(reasons) == 1
    assert "web.yaml" not in reasons[0]


def test_a_burst_of_writes_makes_one_wake(manifests: Path) -> None:
    src = make_source(manifests, debounce=0.5, max_delay=30.0, resync_interval=3600.0)
    wakes = Wakes()
    with src.watch(wakes):
        for i in range(20):
            (manifests / f"app{i}.yaml").write_text(WEB.replace("web", f"app{i}"))
        first = wakes.wait(1)
        (manifests / "after.yaml").write_text(DB)
        reasons = wakes.wait(2)
    assert len(reasons) == 2
    assert "(+" in first[0]  # many changes summarised in the single wake
    assert "after.yaml" in reasons[1]
    assert "app" not in reasons[1]


def test_relisting_alone_finds_changes_without_inotify(manifests: Path) -> None:
    src = make_source(manifests, inotify=False, resync_interval=0.05)
    wakes = Wakes()
    with src.watch(wakes):
        (manifests / "db.yaml").write_text(DB)
        reason = wakes.wait(1)[0]
    assert "re-list found changes" in reason


def test_a_replaced_directory_is_watched_again_after_a_relist(manifests: Path) -> None:
    src = make_source(manifests, debounce=0.1, resync_interval=3600.0)
    wakes = Wakes()
    with src.watch(wakes) as watch:
        shutil.rmtree(manifests)
        manifests.mkdir()
        n = len(wakes.wait(1))  # the deletion of the watched tree was seen
        assert watch.relist()  # new inode: the watch is re-armed (and the change reported)
        n = len(wakes.wait(n + 1))
        (manifests / "db.yaml").write_text(DB)
        reasons = wakes.wait(n + 1)
    assert "db.yaml" in reasons[-1]  # a named change: inotify itself saw it


def test_snapshots_inside_the_watched_directory_are_refused(manifests: Path) -> None:
    with pytest.raises(errors.SourceInvalid, match="inside the manifest directory"):
        directory.DirectorySource(manifests, cache_dir=manifests / "cache")
    directory.DirectorySource(manifests, cache_dir=manifests / ".cache")  # hidden: never read


def test_a_directory_created_after_the_watch_started_is_picked_up(tmp_path: Path) -> None:
    root = tmp_path / "later.d"
    src = directory.DirectorySource(root, cache_dir=tmp_path / "cache", debounce=0.05, resync_interval=3600.0)
    wakes = Wakes()
    with src.watch(wakes) as watch:
        root.mkdir()
        assert watch.relist()  # the safety net notices the directory and arms inotify on it
        n = len(wakes.wait(1))
        (root / "web.yaml").write_text(WEB)
        reasons = wakes.wait(n + 1)
    assert "web.yaml" in reasons[-1]
    assert (src.fetch().path / "web.yaml").read_text() == WEB


def test_a_continuous_stream_of_writes_still_wakes_after_max_delay(manifests: Path) -> None:
    # the quiet period (5 s) never comes while we write every few milliseconds; max_delay must
    # wake the loop anyway, and the wake arrives while the writes are still going on
    src = make_source(manifests, debounce=5.0, max_delay=0.2, resync_interval=3600.0)
    wakes = Wakes()
    writes = 0
    with src.watch(wakes):
        while not wakes.reasons and writes < 2000:
            (manifests / "churn.yaml").write_text(f"# {writes}\n")
            writes += 1
            time.sleep(0.01)
    assert wakes.reasons, "no wake during a continuous stream of writes"
    assert "churn.yaml" in wakes.reasons[0]


def test_a_file_written_in_place_wakes_once_it_is_closed(manifests: Path) -> None:
    """A writer that flushes between two documents (a script, a config-management run writing
    in place): the wake waits for the file's close, so the fetch it leads to has both documents
    (applying the first alone pruned the second's container and made it again)."""
    import threading

    src = make_source(manifests, debounce=0.1, max_delay=0.3, resync_interval=3600.0)
    wakes = Wakes()
    flushed, go = threading.Event(), threading.Event()

    def write() -> None:
        with open(manifests / "two.yaml", "w") as f:
            f.write(WEB.replace("web", "one"))
            f.flush()
            flushed.set()
            go.wait(20)
            f.write("---\n" + DB)

    with src.watch(wakes):
        writer = threading.Thread(target=write)
        writer.start()
        assert flushed.wait(20)
        time.sleep(1.0)                 # debounce and max_delay passed while the file stays open
        seen_open = list(wakes.reasons)
        go.set()
        writer.join()
        reasons = wakes.wait(1)
    assert seen_open == []
    assert "two.yaml" in reasons[0]
    assert (src.fetch().path / "two.yaml").read_text() == WEB.replace("web", "one") + "---\n" + DB


def test_a_writer_that_keeps_a_file_open_wakes_after_open_wait(manifests: Path) -> None:
    src = make_source(manifests, debounce=0.05, max_delay=0.1, open_wait=0.5, resync_interval=3600.0)
    wakes = Wakes()
    with src.watch(wakes), open(manifests / "held.yaml", "w") as f:
        f.write(DB)
        f.flush()
        assert "held.yaml" in wakes.wait(1)[0]
