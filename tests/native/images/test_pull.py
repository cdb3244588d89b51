"""ImageStore against a real registry: pull, re-pull, shared and duplicate layers, concurrent
pulls, resume after a crash (kill -9), rmi keeping shared layers, GC and prune."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler import registry_client as rc
from reconciler.cli.main import main
from reconciler.runtime import errors
from reconciler.runtime.native.images import gc, images
from tests.helpers.images import layer_tar

from .conftest import DIR, Entry, native_config

pytestmark = [pytest.mark.root, pytest.mark.registry]

REPO = Path(__file__).resolve().parents[3]


class Recorder(httpx.HTTPTransport):
    """The real HTTP transport, recording each request and the blob GETs in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        blob = request.method == "GET" and "/blobs/" in request.url.path
        with self.lock:
            self.requests.append((request.method, request.url.path, request.headers.get("range")))
            if blob:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
        resp = super().handle_request(request)
        if blob:
            inner = resp.stream
            rec = self

            class Stream(httpx.SyncByteStream):
                def __iter__(self) -> Iterator[bytes]:
                    yield from inner  # type: ignore[union-attr]

                def close(self) -> None:
                    with rec.lock:
                        rec.in_flight -= 1
                    inner.close()  # type: ignore[union-attr]

            resp.stream = Stream()
        return resp

    def blob_gets(self, digest: str | None = None) -> list[tuple[str, str, str | None]]:
        return [r for r in self.requests if r[0] == "GET" and "/blobs/" in r[1]
                and (digest is None or r[1].endswith(digest))]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def rstore(tmp_path: Path, recorder: Recorder) -> images.ImageStore:
    return images.ImageStore(native_config(tmp_path),
                             lambda: rc.RegistryClient(transport=recorder, retries=1, backoff=0.01))


def _files(n: int, size: int, seed: str) -> list[bytes]:
    return [layer_tar([Entry(f"{seed}-{i}", os.urandom(size))]) for i in range(n)]


def _events() -> tuple[list[tuple[str, dict[str, Any]]], Callable[[str, Any], None]]:
    out: list[tuple[str, dict[str, Any]]] = []
    lock = threading.Lock()

    def cb(event: str, detail: Any) -> None:
        with lock:
            out.append((event, dict(detail)))
    return out, cb


def test_pull_records_the_image_and_repull_is_one_head(
    rstore: images.ImageStore, recorder: Recorder, push: Callable[..., str],
    view: Callable[[images.ImageStore, str], Path],
) -> None:
    base = layer_tar([Entry("etc", type=DIR), Entry("etc/os-release", b"ID=test\n")])
    ref = push([base, layer_tar([Entry("app", b"app")])],
               config={"Cmd": ["/app"], "Env": ["A=1"], "User": "1000"})
    info = rstore.pull(ref)
    assert info.repo_tags == (ref,)
    assert info.config["Cmd"] == ["/app"]
    assert len(info.layers) == 2
    assert rstore.get(ref) == info
    assert rstore.get(info.id) == info
    assert rstore.get(info.id[7:19]) == info                 # short id, docker style
    assert rstore.get(f"{ref.rsplit(':', 1)[0]}@{info.digest}").id == info.id
    assert [i.id for i in rstore.list()] == [info.id]
    full = rstore.image_config(info.id)
    assert full["rootfs"]["diff_ids"] == list(info.layers)
    dirs = rstore.layer_dirs(info.id)
    assert (dirs[0] / "etc" / "os-release").exists()          # bottom first
    assert (dirs[1] / "app").exists()
    assert (view(rstore, ref) / "app").read_bytes() == b"app"

    recorder.requests.clear()
    events, cb = _events()
    assert rstore.pull(ref, progress=cb) == info
    assert [r[0] for r in recorder.requests] == ["HEAD"]
    assert events[-1][1]["status"] == "up to date"
    recorder.requests.clear()
    rstore.pull(f"{ref.rsplit(':', 1)[0]}@{info.digest}")
    assert recorder.requests == []                             # a known digest needs no request


def test_unknown_image_and_missing_tag(rstore: images.ImageStore, push: Callable[..., str]) -> None:
    with pytest.raises(errors.NotFound):
        rstore.get("nothing/here:latest")
    ref = push([layer_tar([Entry("a", b"a")])])
    with pytest.raises(errors.ImageError, match="not found"):
        rstore.pull(ref.rsplit(":", 1)[0] + ":nope")
    with pytest.raises(errors.InvalidArgument):
        rstore.pull("UPPER/case")


def test_duplicate_layer_downloaded_once_applied_twice(
    rstore: images.ImageStore, recorder: Recorder, push: Callable[..., str],
    view: Callable[[images.ImageStore, str], Path],
) -> None:
    dup = layer_tar([Entry("same", b"same")])
    ref = push([dup, layer_tar([Entry("same", b"changed")]), dup])
    info = rstore.pull(ref)
    layer_digest = rstore.layer_records(info.id)[0].digest
    assert rstore.layer_records(info.id)[2].digest == layer_digest
    assert len(recorder.blob_gets(layer_digest)) == 1
    assert len(rstore.snapshots.list()) == 3
    assert (view(rstore, ref) / "same").read_bytes() == b"same"


def test_shared_base_is_not_downloaded_again_and_downloads_are_capped(
    rstore: images.ImageStore, recorder: Recorder, push: Callable[..., str],
) -> None:
    base = _files(1, 300_000, "base")
    a = push(base + _files(8, 200_000, "a"))
    b = push(base + _files(2, 1000, "b"))
    rstore.pull(a)
    assert recorder.max_in_flight <= 3
    base_digest = rstore.layer_records(rstore.get(a).id)[0].digest
    recorder.requests.clear()
    events, cb = _events()
    rstore.pull(b, progress=cb)
    assert recorder.blob_gets(base_digest) == []
    assert ("layer-done", {"digest": base_digest, "status": "exists"}) in events


def test_concurrent_pulls_sharing_a_base_extract_it_once(
    rstore: images.ImageStore, recorder: Recorder, push: Callable[..., str],
    view: Callable[[images.ImageStore, str], Path],
) -> None:
    base = _files(2, 2_000_000, "base")
    a = push(base + _files(2, 100_000, "a"))
    b = push(base + _files(2, 100_000, "b"))
    events, cb = _events()
    results: dict[str, Any] = {}

    def run(ref: str) -> None:
        try:
            results[ref] = rstore.pull(ref, progress=cb)
        except BaseException as exc:
            results[ref] = exc

    threads = [threading.Thread(target=run, args=(r,)) for r in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(v, type(results[a])) and not isinstance(v, BaseException) for v in results.values()), results
    base_digests = [rec.digest for rec in rstore.layer_records(rstore.get(a).id)[:2]]
    for d in base_digests:
        built = [e for e in events if e == ("layer-done", {"digest": d, "status": "downloaded"})]
        assert len(built) == 1, events
        assert len(recorder.blob_gets(d)) == 1
    assert len(rstore.snapshots.list()) == 6
    assert {p.name for p in view(rstore, a).iterdir()} == {"base-0", "base-1", "a-0", "a-1"}
    assert {p.name for p in view(rstore, b).iterdir()} == {"base-0", "base-1", "b-0", "b-1"}


def test_concurrent_pulls_in_two_processes(tmp_path: Path, push: Callable[..., str]) -> None:
    base = _files(2, 3_000_000, "base")
    refs = [push(base + _files(1, 1000, "a")), push(base + _files(1, 1000, "b"))]
    procs = [_pull_process(tmp_path, r) for r in refs]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    for p in procs:
        if p.stdout is not None:
            p.stdout.close()
    assert [p.returncode for p in procs] == [0, 0], outs
    built = [line for out in outs for line in out.splitlines() if '"downloaded"' in line and "layer-done" in line]
    store = images.ImageStore(native_config(tmp_path))
    base_digests = {rec.digest for rec in store.layer_records(store.get(refs[0]).id)[:2]}
    assert sorted(d for line in built for d in base_digests if d in line) == sorted(base_digests), outs


def _pull_process(tmp_path: Path, ref: str, *, hang_on: str = "") -> subprocess.Popen[str]:
    script = textwrap.dedent(f"""
        import json, sys, threading, time
        sys.path.insert(0, {str(REPO)!r})
        from reconciler.runtime.native.images import images
        from tests.native.images.conftest import native_config
        from pathlib import Path
        hang_on = {hang_on!r}
        lock = threading.Lock()
        def cb(event, detail):
            with lock:  # download threads report too: one whole line per event
                sys.stdout.write(json.dumps([event, dict(detail)]) + "\\n")
                sys.stdout.flush()
            if hang_on == "partial-download" and event == "layer-progress" and detail["done"] < detail["total"]:
                time.sleep(3600)
        images.ImageStore(native_config(Path({str(tmp_path)!r}))).pull({ref!r}, progress=cb)
        print("PULLED", flush=True)
    """)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)


def _read_until(proc: subprocess.Popen[str], prefix: str, nth: int = 1) -> None:
    """Read the pull's progress lines until the nth one starting with `prefix`."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(prefix):
            nth -= 1
            if nth == 0:
                return
    raise AssertionError("the pull ended before the expected point")


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.mark.slow
def test_kill_9_mid_download_then_repull_resumes_and_completes(
    tmp_path: Path, push: Callable[..., str], recorder: Recorder,
    view: Callable[[images.ImageStore, str], Path],
) -> None:
    ref = push(_files(3, 4_000_000, "big"))
    proc = _pull_process(tmp_path, ref, hang_on="partial-download")
    try:
        _read_until(proc, '["layer-progress"')
    finally:
        _kill(proc)
    store = images.ImageStore(native_config(tmp_path),
                              lambda: rc.RegistryClient(transport=recorder, retries=1, backoff=0.01))
    partial = [i for i in store.content.ingests() if i.size > 0]
    assert partial, "the kill should have left a partial download"
    info = store.pull(ref)
    resumed = [r for r in recorder.blob_gets() if r[2] and r[2].startswith("bytes=")]
    assert resumed, "the partial ingest should be resumed with a Range request"
    assert len(list(view(store, ref).iterdir())) == 3
    assert store.get(ref).id == info.id


@pytest.mark.slow
def test_image_prune_reclaims_what_a_killed_pull_left(
    tmp_path: Path, push: Callable[..., str], capsys: pytest.CaptureFixture[str],
) -> None:
    ref = push(_files(3, 4_000_000, "big"))
    proc = _pull_process(tmp_path, ref, hang_on="partial-download")
    try:
        _read_until(proc, '["layer-progress"')
    finally:
        _kill(proc)
    store = images.ImageStore(native_config(tmp_path))
    partial = sum(i.size for i in store.content.ingests())
    leases = store.db.connect().execute("SELECT COUNT(*) FROM pull_leases").fetchone()[0]
    assert (partial > 0, leases) == (True, 1), "the kill should have left a partial download and its lease"
    assert gc.collect(store).ingests == []          # the automatic sweep keeps them to resume

    capsys.readouterr()
    assert main(["image", "prune", "--root", str(store.config.root), "--run-dir", str(store.config.run_dir)]) == 0
    reclaimed = capsys.readouterr().out.split("Total reclaimed space: ")[1]
    assert float(reclaimed.removesuffix("MB\n")) >= partial / 1e6 - 0.01
    assert store.content.ingests() == []
    assert store.db.connect().execute("SELECT COUNT(*) FROM pull_leases").fetchone()[0] == 0
    assert list(store.content.digests()) == []


@pytest.mark.slow
def test_kill_9_during_extraction_leaves_nothing_committed_half(
    tmp_path: Path, push: Callable[..., str], view: Callable[[images.ImageStore, str], Path],
) -> None:
    many = layer_tar([Entry(f"d{i // 100}/f{i}", os.urandom(2000)) for i in range(6000)])
    ref = push([layer_tar([Entry("first", b"1")]), many, layer_tar([Entry("last", b"l")])])
    proc = _pull_process(tmp_path, ref)
    try:
        _read_until(proc, '["extract"', nth=2)   # the big layer's extraction has begun
    finally:
        _kill(proc)
    store = images.ImageStore(native_config(tmp_path))   # start-up removes dead extractions
    assert not [p for p in store.snapshots.dir.iterdir() if p.name.startswith("extract-")]
    for snap in store.snapshots.list():             # whatever was committed is complete
        assert (snap.path / "chainid").read_text() == snap.chain_id
    store.pull(ref)
    top = view(store, ref)
    assert len(list((top / "d59").iterdir())) == 100
    assert (top / "last").exists()
    result = gc.collect(store)
    assert not [p for p in store.snapshots.dir.iterdir() if p.name.startswith(("extract-", "remove-"))]
    assert result.blobs == []


def test_rmi_keeps_shared_layers_and_gc_sweeps_the_rest(
    store: images.ImageStore, push: Callable[..., str], view: Callable[[images.ImageStore, str], Path],
) -> None:
    base = _files(1, 1000, "base")
    a = push(base + _files(1, 1000, "a"))
    b = push(base + _files(1, 1000, "b"))
    ia, ib = store.pull(a), store.pull(b)
    assert len(store.snapshots.list()) == 3
    assert store.remove(a) == [f"Untagged: {a}", f"Deleted: {ia.id}"]
    assert len(store.snapshots.list()) == 2
    assert {p.name for p in view(store, b).iterdir()} == {"base-0", "b-0"}
    with pytest.raises(errors.NotFound):
        store.get(a)
    store.remove(ib.id)
    assert store.snapshots.list() == []
    assert list(store.content.digests()) == []


def test_rmi_of_one_tag_only_untags_and_in_use_needs_force(tmp_path: Path, push: Callable[..., str]) -> None:
    used: set[str] = set()
    store = images.ImageStore(native_config(tmp_path), container_image_ids=lambda: used)
    layers = _files(1, 100, "x")
    a = push(layers, tag="one")
    info = store.pull(a)
    two = a.rsplit(":", 1)[0] + ":two"
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{a}", f"docker://{two}"], check=True, capture_output=True)
    store.pull(two)
    assert set(store.get(info.id).repo_tags) == {a, two}
    with pytest.raises(errors.Conflict, match="referenced in multiple repositories"):
        store.remove(info.id)
    assert store.remove(two) == [f"Untagged: {two}"]
    used.add(info.id)
    with pytest.raises(errors.Conflict, match="must force"):
        store.remove(a)
    assert store.remove(a, force=True) == [f"Untagged: {a}"]
    assert store.get(info.id).repo_tags == ()                  # dangling, kept for the container
    assert store.prune() == []                                 # in use: prune keeps it
    used.clear()
    assert store.prune() == [info.id]
    assert store.list() == []


def test_gc_respects_leases_and_removes_stale_ingests_and_debris(
    store: images.ImageStore, push: Callable[..., str],
) -> None:
    ref = push(_files(1, 1000, "x"))
    info = store.pull(ref)
    orphan = store.content.write_blob(b"orphan blob")
    leased = store.content.write_blob(b"leased blob")
    with store.db.tx() as c:
        c.execute("INSERT INTO pull_leases(id, expires, blobs, chains) VALUES (?,?,?,?)",
                  ("live", time.time() + 60, json.dumps([leased]), "[]"))
        c.execute("INSERT INTO pull_leases(id, expires, blobs, chains) VALUES (?,?,?,?)",
                  ("dead", time.time() - 60, json.dumps([orphan]), "[]"))
    stale = store.content.ingest("sha256:" + "a" * 64, 100)
    with stale:
        stale.write(b"partial")
    fresh = store.content.ingest("sha256:" + "b" * 64, 100)
    with fresh:
        fresh.write(b"partial")
    old = time.time() - 48 * 3600
    os.utime(stale.dir / "data", (old, old))
    debris = store.snapshots.dir / "extract-999999999-dead"
    (debris / "fs").mkdir(parents=True)

    result = gc.collect(store)
    assert result.blobs == [orphan]
    assert result.ingests == ["sha256:" + "a" * 64]
    assert result.expired_leases == 1
    assert not debris.exists()
    assert store.content.has(leased)
    assert (fresh.dir / "data").exists()
    assert store.get(ref).id == info.id
    assert store.layer_dirs(info.id)[0].is_dir()


def test_content_store_validates_digests_and_verifies_commits(store: images.ImageStore) -> None:
    for bad in ("sha256:../../etc/passwd", "sha256:" + "A" * 64, "md5:abc", "", "sha256:" + "a" * 63):
        with pytest.raises(errors.ImageError, match="invalid digest"):
            store.content.blob_path(bad)
    good = "sha256:" + "c" * 64
    with store.content.ingest(good, 3) as ing:
        ing.write(b"abc")
        with pytest.raises(errors.ImageError, match="corrupt"):
            ing.commit()
    assert not store.content.has(good)
    with pytest.raises(errors.ImageError, match="larger"), store.content.ingest(good, 2) as ing:
        ing.write(b"abc")
    d = store.content.write_blob(b"hello")
    assert store.content.read(d) == b"hello"
    assert os.stat(store.content.blob_path(d)).st_mode & 0o222 == 0


def test_a_discarded_ingest_leaves_nothing_and_a_writer_waiting_on_it_starts_afresh(
        store: images.ImageStore) -> None:
    import hashlib

    data = b"the whole blob"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    committed: list[str] = []
    first = store.content.ingest(digest, len(data)).__enter__()
    first.write(data[:5])                               # half a download, then cancelled

    def second() -> None:                               # waits for the first's lock
        with store.content.ingest(digest, len(data)) as ing:
            assert ing.offset == 0                      # nothing of the discarded bytes
            ing.write(data)
            committed.append(str(ing.commit()))

    t = threading.Thread(target=second)
    t.start()
    time.sleep(0.2)
    first.discard()
    first.close()
    t.join(10)
    assert committed
    assert store.content.read(digest) == data
    assert list(store.content.ingest_dir.iterdir()) == []

    other = "sha256:" + "d" * 64
    with store.content.ingest(other, 10) as ing:
        ing.write(b"12345")
        ing.discard()
    assert list(store.content.ingest_dir.iterdir()) == []


def test_writers_of_one_digest_at_once_never_trip_over_a_removed_ingest(store: images.ImageStore) -> None:
    """Each writer's ingest directory goes when it commits; another writer of the same digest
    making it again at that moment (its mkdir, its lock file's open) starts over instead of
    failing: two builds through the agent at once failed so on their shared base layer."""
    import hashlib

    data = b"a layer both builds pull" * 40
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    failures: list[str] = []

    def writer() -> None:
        for _ in range(200):
            try:
                with store.content.ingest(digest, len(data)) as ing:
                    if not ing.committed:
                        ing.reset()
                        ing.write(data)
                        ing.commit()
                store.content.delete(digest)            # the next round writes it again
            except Exception as exc:            # every failure is the test's finding
                failures.append(repr(exc))
                return

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == []
    assert list(store.content.ingest_dir.iterdir()) == []


def test_image_with_120_layers_mounts(
    tmp_path: Path, push: Callable[..., str], view: Callable[[images.ImageStore, str], Path],
) -> None:
    layers = [layer_tar([Entry(f"l{i}", str(i).encode()), Entry("top", str(i).encode())]) for i in range(120)]
    ref = push(layers)
    store = images.ImageStore(native_config(tmp_path), durable=True)    # the fsync path too
    store.pull(ref)
    top = view(store, ref)
    assert (top / "top").read_bytes() == b"119"
    assert len(list(top.iterdir())) == 121


def _lsattr(path: Path) -> str:
    return subprocess.run(["lsattr", "-d", str(path)], check=True, capture_output=True, text=True).stdout.split()[0]


def test_snapshots_dir_spreads_its_subdirs_over_block_groups(
    tmp_path: Path, store: images.ImageStore, push: Callable[..., str],
) -> None:
    """The snapshots dir is marked the top of directory hierarchies (ext4's TOPDIR, `chattr +T`)
    once a pull made a snapshot: a pull after an rmi then does not allocate its inodes among
    the ones just freed (ext4 without a journal scans past each of them, #21)."""
    probe = tmp_path / "probe"
    probe.mkdir()
    if subprocess.run(["chattr", "+T", str(probe)], check=False, capture_output=True).returncode != 0:
        pytest.skip("the file system under the test's tmp dir has no TOPDIR flag (not ext2/3/4)")
    assert "T" not in _lsattr(store.snapshots.dir)
    store.pull(push([layer_tar([Entry("a", b"a")])]))
    assert "T" in _lsattr(store.snapshots.dir)


def _freed_windows(store: images.ImageStore) -> set[int]:
    marks = store.snapshots.lock_dir / "freed-inodes"
    return {int(p.name) for p in marks.iterdir()} if marks.is_dir() else set()


def _window(path: Path) -> int:
    return (os.stat(path).st_ino - 1) // (8192 * 16)


def test_new_snapshots_keep_away_from_inodes_a_removal_just_freed(store: images.ImageStore) -> None:
    """A removed snapshot marks the inode window (ext4 flex group) it freed; an `extract-*` dir
    made while the mark is fresh is placed in another window (#21: ext4 without a journal scans
    past every inode freed in the last minute for each file it creates there)."""
    def fill(fs: Path, _lowers: list[Path]) -> dict[str, Any]:
        for i in range(50):
            (fs / f"f{i}").write_bytes(b"x")
        return {"diff_id": "sha256:" + "0" * 64, "size": 50}

    chains = [f"sha256:{i:02x}" + "0" * 62 for i in range(1, 13)]
    removed: set[int] = set()
    for chain in chains[:4]:
        store.snapshots.create(chain, [], fill)
        removed.add(_window(store.snapshots.path(chain)))
        store.snapshots.remove(chain)
    assert _freed_windows(store) == removed, "each removal should mark the window it freed"
    placed = []
    for chain in chains[4:]:
        def check(fs: Path, lowers: list[Path]) -> dict[str, Any]:
            placed.append(_window(fs.parent))
            return fill(fs, lowers)
        store.snapshots.create(chain, [], check)
    assert not set(placed) & removed, f"new snapshots {placed} should avoid the freed windows {removed}"
    assert len(store.snapshots.list()) == 8, "the removed are gone, the marks are no snapshots"
