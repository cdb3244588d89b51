"""Extractor processes (#21): a pull of enough bytes unpacks its layers in processes of their
own, not in threads of the pulling process. What they build is what the threads build; a
hostile layer is refused there with its own error (and its blob dropped); an extractor that
dies fails the pull without a partial snapshot; a pull killed with kill -9 takes its
extractors with it; and none is left running after a pull."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler import registry_client as rc
from reconciler.runtime import errors
from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.images import images, snapshots
from tests.helpers.fault_server import Fault, FaultProxy
from tests.helpers.images import layer_tar
from tests.helpers.registry import RegistryServer

from .conftest import Entry, native_config
from .test_hostile import Canary, canary  # noqa: F401 - the fixture
from .test_parallel_unpack import _bulk, _layers, _snapshot_tree, _trees
from .test_pull import REPO, _kill, _read_until

pytestmark = [pytest.mark.root, pytest.mark.registry]

_MODULE = b"reconciler.runtime.native.images.extractors"


def _processes(tmp_path: Path, **kw: int) -> NativeConfig:
    """A store that unpacks every pull in extractor processes, however small."""
    return dataclasses.replace(native_config(tmp_path), process_unpack_min_bytes=0, **kw)


def pull_in_child(tmp_path: Path, ref: str) -> subprocess.Popen[str]:
    """A pull of `ref` into the store at `tmp_path`, unpacking in extractor processes whatever
    the size, run by a process of its own (to be killed), printing each progress event as a
    JSON line [event, detail]."""
    script = textwrap.dedent(f"""
        import dataclasses, json, sys, threading
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from reconciler.runtime.native.images import images
        from tests.native.images.conftest import native_config
        lock = threading.Lock()
        def cb(event, detail):
            with lock:
                sys.stdout.write(json.dumps([event, dict(detail)]) + "\\n")
                sys.stdout.flush()
        config = dataclasses.replace(native_config(Path({str(tmp_path)!r})), process_unpack_min_bytes=0)
        images.ImageStore(config).pull({ref!r}, progress=cb)
    """)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)


def _extractors_of(parent: int) -> list[int]:
    """The pids of the extractor processes `parent` started (their last argument)."""
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(entry.path, "cmdline").read_bytes().split(b"\0")[:-1]
        except OSError:
            continue
        if any(_MODULE in a for a in argv) and argv[-1] == str(parent).encode():
            out.append(int(entry.name))
    return out


@pytest.fixture
def extractors_seen() -> Iterator[Callable[[int], set[int]]]:
    """seen(parent) -> a set that gets, every few ms, the pids of `parent`'s extractors."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def seen(parent: int) -> set[int]:
        pids: set[int] = set()

        def run() -> None:
            while not stop.is_set():
                pids.update(_extractors_of(parent))
                time.sleep(0.005)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        threads.append(t)
        return pids

    yield seen
    stop.set()
    for t in threads:
        t.join()


def test_layers_unpacked_in_extractor_processes_are_what_threads_build(
    tmp_path: Path, push: Callable[..., str], extractors_seen: Callable[[int], set[int]],
    view: Callable[[images.ImageStore, str], Path],
) -> None:
    ref = push(_layers(3000))
    threads = images.ImageStore(dataclasses.replace(native_config(tmp_path / "threads"), process_unpack_min_bytes=-1))
    procs = images.ImageStore(_processes(tmp_path / "procs", max_concurrent_unpacks=3))
    threads.pull(ref)
    seen = extractors_seen(os.getpid())
    children = os.times()
    procs.pull(ref)
    assert seen, "the layers should have been unpacked by extractor processes"
    assert os.times().children_user > children.children_user, "the extractors did the unpacking"
    assert _extractors_of(os.getpid()) == [], "no extractor may outlive its pull"
    assert _trees(procs, ref) == _trees(threads, ref)
    top = view(procs, ref)
    assert sorted(os.listdir(top / "opq")) == ["b"]
    assert (top / "hl" / "link2").read_bytes() == b"linked"


def test_only_a_pull_above_the_floor_starts_extractors(
    tmp_path: Path, push: Callable[..., str], extractors_seen: Callable[[int], set[int]],
) -> None:
    ref = push([layer_tar([Entry("etc/hostname", b"small\n")])])
    seen = extractors_seen(os.getpid())
    images.ImageStore(native_config(tmp_path / "default")).pull(ref)      # the default floor: 4 MiB to unpack
    assert not seen, "a pull below the floor should not pay for starting extractors"
    images.ImageStore(_processes(tmp_path / "floor-0")).pull(ref)
    assert seen, "the same pull above the floor should unpack in extractor processes"


def test_a_hostile_layer_is_refused_by_its_extractor_and_its_blob_dropped(
    tmp_path: Path, push: Callable[..., str], canary: Canary,  # noqa: F811
    extractors_seen: Callable[[int], set[int]],
) -> None:
    hostile = layer_tar([*_bulk("h", 500), Entry("../../host/canary", b"pwned")])
    big = _layers(3000)
    ref = push([big[0], hostile, big[1], big[2]])
    store = images.ImageStore(_processes(tmp_path))
    seen = extractors_seen(os.getpid())
    with pytest.raises(errors.ImageError, match="outside the layer root"):
        store.pull(ref)
    assert seen, "the layers should have been unpacked by extractor processes"
    diff_ids = ["sha256:" + hashlib.sha256(x).hexdigest() for x in [big[0], hostile]]
    chains = snapshots.chain_ids(diff_ids)
    assert {snap.chain_id for snap in store.snapshots.list()} <= {chains[0]}
    assert not [p for p in store.snapshots.dir.iterdir() if p.name.startswith("extract-")]
    stored = {"sha256:" + hashlib.sha256(gzip.decompress(store.content.read(d, max_size=1 << 30))).hexdigest()
              for d in store.content.digests() if store.content.read(d, max_size=1 << 30)[:2] == b"\x1f\x8b"}
    assert diff_ids[0] in stored, "a good layer's blob stays"
    assert diff_ids[1] not in stored, "the hostile layer's blob is dropped, as a bad download"
    assert _extractors_of(os.getpid()) == []


def test_an_extractor_that_dies_fails_the_pull_and_the_next_pull_completes(
    tmp_path: Path, push: Callable[..., str], view: Callable[[images.ImageStore, str], Path],
) -> None:
    ref = push([layer_tar(_bulk(f"l{i}", 6000)) for i in range(3)])
    store = images.ImageStore(_processes(tmp_path))
    failed: list[BaseException] = []

    def pull() -> None:
        try:
            store.pull(ref)
        except BaseException as exc:
            failed.append(exc)
    t = threading.Thread(target=pull)
    t.start()
    deadline = time.monotonic() + 30
    while not _unpacking(store):
        assert time.monotonic() < deadline, "the pull should have started unpacking"
        assert t.is_alive(), "the pull ended before its extractors could be killed"
        time.sleep(0.002)
    for pid in _extractors_of(os.getpid()):
        os.kill(pid, signal.SIGKILL)        # what an out-of-memory kill does
    t.join()
    assert failed, "the pull should fail when its extractors die"
    assert isinstance(failed[0], errors.ImageError)
    assert "extractor process" in str(failed[0])
    assert "died" in str(failed[0])
    assert not [p for p in store.snapshots.dir.iterdir() if p.name.startswith("extract-")]
    assert _extractors_of(os.getpid()) == []
    store.pull(ref)                         # the blobs were kept: nothing is wrong with them
    assert len(list((view(store, ref) / "l2" / "d29").iterdir())) == 200


def _unpacking(store: images.ImageStore) -> bool:
    """True once some layer's files are being written into an extract-* dir."""
    for p in store.snapshots.dir.iterdir():
        try:
            if p.name.startswith("extract-") and any((p / "fs").iterdir()):
                return True
        except OSError:
            continue
    return False


@pytest.mark.slow
def test_a_pull_killed_while_extractors_run_takes_them_along_and_the_next_pull_completes(
    tmp_path: Path, push: Callable[..., str], view: Callable[[images.ImageStore, str], Path],
) -> None:
    ref = push([layer_tar(_bulk(f"l{i}", 6000)) for i in range(4)])
    proc = pull_in_child(tmp_path, ref)
    try:
        _read_until(proc, '["extract"', nth=3)
        assert _extractors_of(proc.pid), "the pull should unpack in extractor processes"
    finally:
        pid = proc.pid
        _kill(proc)
    deadline = time.monotonic() + 10
    while _extractors_of(pid):
        assert time.monotonic() < deadline, "the extractors should die with their pull"
        time.sleep(0.05)
    store = images.ImageStore(native_config(tmp_path))   # start-up removes dead extractions
    assert not [p for p in store.snapshots.dir.iterdir() if p.name.startswith("extract-")]
    fresh = images.ImageStore(native_config(tmp_path / "fresh"))
    fresh.pull(ref)
    whole = {d.name: _snapshot_tree(d / "fs") for d in fresh.snapshots.dir.iterdir()}
    for snap in store.snapshots.list():                 # whatever was committed is complete
        assert _snapshot_tree(snap.path / "fs") == whole[snap.short_id]
    store.pull(ref)
    assert len(list((view(store, ref) / "l3" / "d29").iterdir())) == 200


def test_extractors_that_cannot_start_leave_the_unpacking_to_the_pulling_process(
    tmp_path: Path, push: Callable[..., str], monkeypatch: pytest.MonkeyPatch,
    view: Callable[[images.ImageStore, str], Path],
) -> None:
    ref = push(_layers(300))
    monkeypatch.setenv("PYTHONHOME", str(tmp_path / "no-such-python"))    # their interpreter cannot start
    store = images.ImageStore(_processes(tmp_path))
    store.pull(ref)
    monkeypatch.delenv("PYTHONHOME")
    reference = images.ImageStore(dataclasses.replace(native_config(tmp_path / "ref"), process_unpack_min_bytes=-1))
    reference.pull(ref)
    assert _trees(store, ref) == _trees(reference, ref)
    assert sorted(os.listdir(view(store, ref) / "opq")) == ["b"]


def test_extractors_start_with_the_manifest_before_the_config_is_fetched(
    tmp_path: Path, push: Callable[..., str], registry: RegistryServer,
    extractors_seen: Callable[[int], set[int]],
) -> None:
    """The extractor processes start once the manifest says how much the image holds, so their
    interpreters start while the config is fetched: a pull whose config cannot be fetched has
    started (and then ended) them."""
    ref = push([layer_tar([Entry("etc/hostname", b"x\n")])])
    proxy = FaultProxy(registry.port).start()
    try:
        proxy.add(Fault("status", path="/blobs/", status=404))       # the config, the first blob fetched
        seen = extractors_seen(os.getpid())
        store = images.ImageStore(_processes(tmp_path), lambda: rc.RegistryClient(retries=0))
        with pytest.raises(errors.ImageError):
            store.pull(ref.replace(registry.host, proxy.host))
    finally:
        proxy.stop()
    assert [r.path for r in proxy.requests(path="/blobs/")], "the config fetch should have been tried"
    assert seen, "the extractors should have started before the config was fetched"
    assert _extractors_of(os.getpid()) == [], "and been ended with the failed pull"
