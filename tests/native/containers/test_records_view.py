"""What `records()` reports is never older than the last write to the records (#flaky agent
restart): its refreshed records are reused only while the rows they were made of are the rows
the state DB holds. These tests need no container: the records are rows written by hand, their
"processes" this test's own (alive, with the right start time and boot id)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from reconciler.runtime import base
from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.containers import procs, records


def _config(tmp_path: Path) -> NativeConfig:
    return NativeConfig(root=tmp_path / "root", run_dir=tmp_path / "run", name_prefix="rv")


def _created(store: records.RecordStore, name: str) -> records.Record:
    """A created container whose monitor runs (this process plays both its processes)."""
    me = os.getpid()
    rec = records.Record(
        id=f"{name}0000", name=name, image="img", image_id="sha256:" + "0" * 64, created=records.now(),
        config=base.ContainerConfig(name=name, image="img"), image_config={}, lowerdirs=(), hostname=name,
        stop_signal=15, status="created", pid=me, conmon_pid=me, pid_start=procs.start_time(me),
        conmon_start=procs.start_time(me), boot_id=procs.boot_id())
    with store.db.tx() as conn:
        conn.execute("INSERT INTO containers (id, name, data) VALUES (?, ?, ?)", (rec.id, rec.name, rec.to_json()))
    return rec


@pytest.mark.parametrize("watched", [False, True], ids=["within FRESH_FOR", "every monitor watched"])
def test_a_start_saved_while_records_are_refreshed_is_seen_by_the_next_look(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, watched: bool) -> None:
    """The agent's API thread lists the containers (a status poll) while a pass's START saves
    `a` running. The listing refreshed the rows it read before the save; if its refreshed
    records were kept for the rows as they are after it, every later observation said `a` was
    created, and every START found it running and did nothing: degraded for good while the
    restart watch vouched for those rows (`monitored`)."""
    store = records.RecordStore(_config(tmp_path))
    a = _created(store, "a")
    writer = records.RecordStore(_config(tmp_path))        # the START: another thread's connection
    refresh = store.refresh
    started = dataclasses.replace(a, status="running", started_at=records.now())

    def refresh_while_a_starts(rec: records.Record, *, exits: set[str] | None = None) -> records.Record:
        if rec.id == a.id and rec.status == "created":
            writer.update(a.id, lambda _: started)       # committed after the rows were read
        return refresh(rec, exits=exits)

    monkeypatch.setattr(store, "refresh", refresh_while_a_starts)
    assert [r.status for r in store.records()] == ["created"]      # the rows it read said so
    monkeypatch.setattr(store, "refresh", refresh)
    assert [r.status for r in store.stored()] == ["running"]
    if watched:
        store.monitored = store.stored()                 # what the restart watch does on a new version
    assert [r.status for r in store.records()] == ["running"]      # the look after the save


def test_an_exit_the_refresh_recorded_itself_is_not_refreshed_again(tmp_path: Path) -> None:
    """The other side of the rule: a refresh's own write (an exit it read from conmon's file)
    moves the version too, and the records it made are what the DB now holds, so the next look
    reuses them without refreshing anything again."""
    config = _config(tmp_path)
    store = records.RecordStore(config)
    a = _created(store, "a")
    _created(store, "b")                                 # its monitor runs: each refresh looks
    exits = config.run_dir / "exits"
    exits.mkdir(parents=True)
    (exits / a.id).write_text("0")                       # conmon's exit file: code 0
    looked = [(r.name, r.status, r.exit_code) for r in store.records()]
    assert looked == [("b", "created", None), ("a", "exited", 0)]
    refreshes, reads = store.refreshes, store.row_reads
    assert [(r.name, r.status, r.exit_code) for r in store.records()] == looked
    assert (store.refreshes, store.row_reads) == (refreshes, reads)
