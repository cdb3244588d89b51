"""Labels, observation, the inventory/failure/digest stores and the history in the state DB."""

from __future__ import annotations

import dataclasses
import gc
import sqlite3
import threading
from pathlib import Path

import pytest

from reconciler._sqlite import Database
from reconciler.execution import observing
from reconciler.runtime import base
from reconciler.runtime.fake import FakeRuntime
from reconciler.state import history, inventory, labels, observed

REF = "registry.local:5000/shop/web:1"


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(tmp_path / "state.db")


def test_labels_round_trip_and_user_labels_cannot_forge_ownership() -> None:
    made = labels.make(owner="blue", kind="Container", name="web", spec_hash="h", revision="r",
                       image_digest="sha256:d", user={"tier": "front", "reconciler.owner": "evil"})
    assert made["tier"] == "front"
    assert made["reconciler.owner"] == "blue"
    assert labels.parse(made) == labels.Ownership("blue", "Container", "web", "h", "sha256:d", "r")
    assert labels.parse({"tier": "front"}) is None
    assert labels.selector("blue") == {"reconciler.owner": "blue"}


@pytest.mark.parametrize(("ref", "norm"), [
    ("busybox", "docker.io/library/busybox:latest"),
    ("library/busybox:1", "docker.io/library/busybox:1"),
    ("docker.io/busybox:1", "docker.io/library/busybox:1"),        # as the native store tags it
    ("index.docker.io/library/busybox", "docker.io/library/busybox:latest"),
    ("127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b:latest"),
    ("localhost/x:2", "localhost/x:2"),
    ("reg.io/a@sha256:" + "1" * 64, "reg.io/a@sha256:" + "1" * 64),
])
def test_normalize_ref(ref: str, norm: str) -> None:
    assert observed.normalize_ref(ref) == norm


def test_observe_reads_everything_in_one_pass_with_ownership_decoded() -> None:
    rt = FakeRuntime()
    digest = rt.publish(REF)
    rt.pull_image(REF)
    own = labels.make(owner="default", kind="Container", name="web", spec_hash="h", revision="r")
    rt.create_container(base.ContainerConfig(name="web", image=REF, labels=own))
    rt.create_container(base.ContainerConfig(name="theirs", image=REF))
    rt.ensure_network(base.NetworkConfig(name="shop", labels=labels.make(
        owner="default", kind="Network", name="shop", spec_hash="n", revision="r")))
    rt.ensure_volume(base.VolumeConfig(name="data"))
    o = observing.observe(rt, resolved={REF: digest})
    assert o.containers["web"].owner is not None
    assert o.containers["web"].owner.spec_hash == "h"
    assert o.containers["theirs"].owner is None
    assert o.networks["shop"].owner is not None
    assert o.volumes["data"].owner is None
    assert o.local_digest(REF) == digest
    assert o.remote_digest(REF) == digest
    assert o.remote_digest("reg.io/a@sha256:" + "2" * 64) == "sha256:" + "2" * 64


def test_resolve_digests_once_per_reference_and_cached_with_ttl(db: Database) -> None:
    rt = FakeRuntime()
    digest = rt.publish(REF)
    calls: list[str] = []
    real = rt.resolve_digest

    def counting(ref: str) -> str:
        calls.append(ref)
        return real(ref)

    rt.resolve_digest = counting  # type: ignore[method-assign]
    store = inventory.InventoryStore(db, "default")
    refs = [REF, REF, "registry.local:5000/shop/web:1", "reg.io/a@sha256:" + "1" * 64, "reg.io/nope:1"]
    got, errors = observing.resolve_digests(rt, refs, inventory=store, ttl=60, now=1000.0)
    assert got == {REF: digest}
    assert list(errors) == ["reg.io/nope:1"]
    assert sorted(calls) == sorted(["reg.io/nope:1", REF])  # pinned refs need no lookup
    calls.clear()
    observing.resolve_digests(rt, [REF], inventory=store, ttl=60, now=1030.0)
    assert calls == []                                      # cached
    observing.resolve_digests(rt, [REF], inventory=store, ttl=60, now=1100.0)
    assert calls == [REF]                                   # expired


def test_inventory_store_round_trip(db: Database) -> None:
    store = inventory.InventoryStore(db, "default")
    other = inventory.InventoryStore(db, "team-b")
    e = inventory.Entry(kind="Container", name="web", spec_hash="h", image_digest="sha256:d",
                        revision="r1", spec={"env": {"A": "1"}},
                        config={"name": "web", "image": "x", "env": {"A": "1"}})
    store.put(e)
    other.put(inventory.Entry(kind="Volume", name="data", spec_hash="v", deletion_policy="Delete"))
    # env values come back masked in the spec (diff only needs to see a change) and in clear
    # in the rollback config (kept beside the DB, not in it)
    masked = inventory.mask_value("A", "1")
    assert masked != "1"
    assert store.load().entries == {("Container", "web"): dataclasses.replace(e, spec={"env": {"A": masked}})}
    assert list(other.load().entries) == [("Volume", "data")]
    store.remove("Container", "web")
    assert store.load().entries == {}


def test_an_entrys_spec_and_config_are_parsed_only_when_read(db: Database, tmp_path: Path) -> None:
    """A pass with nothing to do reads no entry's spec (diff's) or config (a rollback's) (#21): a
    row whose JSON is damaged loads, and only reading that spec or config fails; a config whose
    env values are not to be had (their file is gone) is empty, as no rollback config."""
    store = inventory.InventoryStore(db, "default")
    store.update(put=[inventory.Entry(kind="Container", name=n, spec_hash="h", spec={"env": {"A": "1"}},
                                      config={"name": n, "env": {"A": "1"}}) for n in ("web", "db")])
    db.connect().execute("UPDATE inv_objects SET spec_json = '{', config_json = '{' WHERE name = 'web'")
    entries = store.load().entries
    web, other = entries[("Container", "web")], entries[("Container", "db")]
    assert (web.spec_hash, other.spec_hash) == ("h", "h")
    with pytest.raises(ValueError, match="Expecting property name"):
        dict(web.spec)
    with pytest.raises(ValueError, match="Expecting property name"):
        dict(web.config or {})
    assert other.config == {"name": "db", "env": {"A": "1"}}
    for f in (tmp_path / "inventory-env").iterdir():
        f.unlink()
    gone = store.load().entries[("Container", "db")].config
    assert gone is not None
    assert not gone


def test_failures_count_attempts_per_revision_and_hash(db: Database) -> None:
    store = inventory.InventoryStore(db, "default")
    f1 = store.record_failure("Container", "web", revision="r1", spec_hash="h", error="boom", now=100.0)
    f2 = store.record_failure("Container", "web", revision="r1", spec_hash="h", error="boom", now=200.0)
    assert (f1.attempts, f2.attempts) == (1, 2)
    assert f2.retry_at == 200.0 + inventory.backoff_delay(2)
    f3 = store.record_failure("Container", "web", revision="r2", spec_hash="h", error="boom", now=300.0)
    assert f3.attempts == 1
    assert store.load().failures[("Container", "web")].revision == "r2"
    store.clear_failure("Container", "web")
    assert store.load().failures == {}


def test_backoff_doubles_up_to_a_cap() -> None:
    assert [inventory.backoff_delay(n, base=10, cap=50) for n in (1, 2, 3, 4)] == [10, 20, 40, 50]


def test_history_newest_first_and_last_good(db: Database) -> None:
    h = history.HistoryStore(db, "default")
    h.record(revision="r1", source="/m", started_at=1, finished_at=2, result="converged",
             counts={"created": 2}, changes=[{"resource": "container:web", "outcome": "created"}])
    h.record(revision="r2", source="/m", started_at=3, finished_at=4, result="failed",
             counts={"failed": 1}, changes=[])
    assert [p.revision for p in h.list()] == ["r2", "r1"]
    good = h.last_good()
    assert good is not None
    assert good.revision == "r1"
    assert good.changes == [{"resource": "container:web", "outcome": "created"}]
    assert history.HistoryStore(db, "team-b").list() == []


def test_a_pass_is_on_record_before_it_acts_and_one_never_finished_becomes_interrupted(db: Database) -> None:
    h = history.HistoryStore(db, "default")
    done = h.begin(revision="r1", source="/m", started_at=1)
    h.finish(done, finished_at=2, result="converged", counts={"created": 1}, changes=[{"resource": "container:a"}])
    h.begin(revision="r2", source="/m", started_at=3)            # its process died (kill -9, second SIGTERM)
    other = history.HistoryStore(db, "team-b")
    other.begin(revision="b1", source="/b", started_at=4)
    assert [p.result for p in h.list()] == ["running", "converged"]
    assert h.list()[1].counts == {"created": 1}
    assert history.close_unfinished(db) == 2                     # the next writer, under the store lock
    assert [p.result for p in h.list()] == ["interrupted", "converged"]
    assert [p.result for p in other.list()] == ["interrupted"]
    assert history.close_unfinished(db) == 0


def test_a_failure_repeating_the_pass_before_is_merged_only_when_its_error_is_the_same(
        db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One rule for `record` and `finish`: a failed pass equal to the one before it, its error
    included, is that row again (`repeats`); another error is a row of its own, so `status`
    shows the newest cause beside the newest time (the error was left out of the comparison:
    a disk-full failure went on being shown after the pass failed for another reason)."""
    from reconciler.cli.main import main

    h = history.HistoryStore(db, "default")
    fail = {"revision": "r1", "source": "/m", "result": "failed", "counts": {}, "changes": []}
    h.record(started_at=1, finished_at=2, error="no space left on device", **fail)
    h.record(started_at=3, finished_at=4, error="no space left on device", **fail)
    h.record(started_at=5, finished_at=6, error="runc not found", **fail)
    assert [(p.error, p.repeats, p.first_started_at, p.started_at) for p in h.list()] == [
        ("runc not found", 1, 5, 5), ("no space left on device", 2, 1, 3)]
    # the same through begin/finish (an agent's passes): an equal failure merges, another does not
    again = h.begin(revision="r1", source="/m", started_at=7)
    h.finish(again, finished_at=8, result="failed", counts={}, changes=[])
    assert [(p.error, p.repeats) for p in h.list()][:2] == [("", 1), ("runc not found", 1)]
    twice = h.begin(revision="r1", source="/m", started_at=9)
    h.finish(twice, finished_at=10, result="failed", counts={}, changes=[])
    assert [(p.error, p.repeats, p.started_at) for p in h.list()][:2] == [("", 2, 9), ("runc not found", 1, 5)]
    # `reconcile status` without an agent reads the newest row
    h.record(started_at=11, finished_at=12, error="no space left on device", **fail)
    h.record(started_at=13, finished_at=14, error="runc not found", **fail)
    capsys.readouterr()
    main(["status", "--root", str(tmp_path)])
    out = capsys.readouterr().out
    assert "error: runc not found" in out
    assert "no space left" not in out
    # both views of a pass carry every field, the error and the repeats among them
    newest = h.list()[0].to_json()
    assert (newest["error"], newest["repeats"], newest["cause"]) == ("runc not found", 1, "")


def test_spec_document_is_plain_json() -> None:
    from tests.planning.builders import container

    doc = inventory.spec_document(container("web", env={"A": "1"}))
    assert doc["env"] == {"A": inventory.mask_value("A", "1")}          # stored: no value in clear
    assert "origin" not in doc
    assert "spec_hash" not in doc
    assert doc["restart"] == {"name": "no", "max_retries": 0}


def test_a_threads_connection_is_closed_when_the_thread_ends(tmp_path: Path) -> None:
    """Not left open, with its page and statement caches, until a garbage collection finds it
    (a connection and its statement cache refer to each other): a pass's worker threads and
    the API's request threads each opened one (#21, memory at rest)."""
    db = Database(tmp_path / "state.db")
    db.ensure_schema("t", "CREATE TABLE IF NOT EXISTS t (x INTEGER);")

    def open_connections() -> int:
        return sum(isinstance(o, sqlite3.Connection) for o in gc.get_objects())

    def work() -> None:
        with db.tx() as conn:
            conn.execute("INSERT INTO t VALUES (1)")

    gc.disable()
    try:
        before = open_connections()
        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
        assert open_connections() == before
    finally:
        gc.enable()
    assert db.connect().execute("SELECT count(*) FROM t").fetchone()[0] == 1   # what it wrote stays
    db.close()


def test_a_new_database_opened_while_another_process_writes_it_waits_instead_of_failing(tmp_path: Path) -> None:
    """The switch to WAL wants an exclusive lock; while another connection holds the write lock
    of a database still in rollback mode (two CLIs opening a new state root at once), sqlite
    answers "database is locked" at once, without the busy timeout: the open tries again until
    the other is done (a CI run saw `reconcile pull` fail so)."""
    path = tmp_path / "state.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE t (x INTEGER)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    commit = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    commit.start()
    db = Database(path)
    try:
        conn = db.connect()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1
    finally:
        commit.join()
        db.close()
        other.close()
