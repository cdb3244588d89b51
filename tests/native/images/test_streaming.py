"""Unpacking while downloading (#21): a pull that unpacks in extractor processes starts each
layer whose blob it downloads before the download ends, reading the ingest as it grows. What
it builds is what a pull that waits builds; a blob whose digest fails at the end of the
download leaves no snapshot, no blob and no image, even though its unpack ran (the bytes
decompress to the right DiffID, so only the download's own check can refuse them); and a
pull killed mid-way leaves nothing half-made.

The registry is real; a loopback proxy in front of it (tests/helpers/fault_server.py) sends
the blobs slowly, as a slow link does, so that the unpack and the download overlap."""

from __future__ import annotations

import dataclasses
import gzip
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler import registry_client as rc
from reconciler.runtime import errors
from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.images import gc, images
from tests.helpers.fault_server import Fault, FaultProxy
from tests.helpers.images import layer_tar
from tests.helpers.registry import RegistryServer

from .conftest import Entry, native_config
from .test_extractors import _extractors_of, pull_in_child
from .test_parallel_unpack import _bulk, _trees
from .test_pull import _kill, _read_until

pytestmark = [pytest.mark.root, pytest.mark.registry]

_SLOW = {"chunk": 64 << 10, "delay": 0.02}       # ~3 MiB/s


@pytest.fixture
def slow(registry: RegistryServer) -> Iterator[FaultProxy]:
    """A proxy to the session registry that sends every blob slowly."""
    proxy = FaultProxy(registry.port).start()
    proxy.add(Fault("slow", path="/blobs/", times=1000, **_SLOW))   # type: ignore[arg-type]
    yield proxy
    proxy.stop()


def _streaming(tmp_path: Path) -> NativeConfig:
    """A store that unpacks every pull in extractor processes, however small."""
    return dataclasses.replace(native_config(tmp_path), process_unpack_min_bytes=0)


def _big_layer(seed: str) -> bytes:
    """~3 MiB of gzip: small files first (unpacked while the rest still downloads)."""
    return layer_tar([*_bulk(seed, 600), *(Entry(f"{seed}/blob{i}", os.urandom(256 << 10)) for i in range(10))])


def _extracting(store: images.ImageStore) -> int:
    """How many entries the store's unfinished snapshots hold now."""
    n = 0
    for d in store.snapshots.dir.iterdir():
        if d.name.startswith("extract-"):
            n += sum(len(files) + len(dirs) for _, dirs, files in os.walk(d / "fs"))
    return n


class Watch:
    """The pull's events in order, and what was unpacked when each blob finished downloading."""

    def __init__(self, store: images.ImageStore) -> None:
        self.store = store
        self.events: list[tuple[str, str]] = []
        self.unpacked_at_download: dict[str, int] = {}
        self.most_unpacked = 0
        self.lock = threading.Lock()

    def __call__(self, event: str, detail: Any) -> None:
        digest = detail.get("digest", "")
        with self.lock:
            if event == "layer-progress":
                self.most_unpacked = max(self.most_unpacked, _extracting(self.store))
                return
            self.events.append((event, digest))
            if event == "layer-downloaded":
                self.unpacked_at_download[digest] = _extracting(self.store)

    def index(self, event: str, digest: str) -> int:
        return self.events.index((event, digest))


def _layer_digests(store: images.ImageStore, ref: str) -> list[str]:
    return [rec.digest for rec in store.layer_records(store.get(ref).id)]


def test_a_layer_is_unpacked_while_its_blob_downloads_and_builds_what_waiting_builds(
    tmp_path: Path, push: Callable[..., str], registry: RegistryServer, slow: FaultProxy,
) -> None:
    ref = push([_big_layer("a"), _big_layer("b")])
    store = images.ImageStore(_streaming(tmp_path / "streamed"))
    watch = Watch(store)
    store.pull(ref.replace(registry.host, slow.host), progress=watch)
    for digest in _layer_digests(store, ref.replace(registry.host, slow.host)):
        assert watch.index("extract", digest) < watch.index("layer-downloaded", digest), \
            "the layer's unpack should start before its download ends"
        assert watch.unpacked_at_download[digest] > 0, "files should be unpacked while the blob downloads"
    waited = images.ImageStore(dataclasses.replace(native_config(tmp_path / "waited"), process_unpack_min_bytes=-1))
    waited.pull(ref)
    assert _trees(store, ref.replace(registry.host, slow.host)) == _trees(waited, ref)
    assert not [p for p in store.snapshots.dir.iterdir() if p.name.startswith("extract-")]
    assert _extractors_of(os.getpid()) == []


def _registry_blob(registry: RegistryServer, digest: str) -> Path:
    hexd = digest.split(":", 1)[1]
    return registry.workdir / "storage" / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexd[:2] / hexd / "data"


def test_a_digest_mismatch_found_at_the_end_of_a_streamed_unpack_leaves_nothing(
    tmp_path: Path, push: Callable[..., str], registry: RegistryServer, slow: FaultProxy,
    view: Callable[[images.ImageStore, str], Path],
) -> None:
    ref = push([_big_layer("m")])
    probe = images.ImageStore(native_config(tmp_path / "probe"))
    probe.pull(ref)
    digest = _layer_digests(probe, ref)[0]
    stored = _registry_blob(registry, digest)
    good = stored.read_bytes()
    # The same tar, gzip'ed with another MTIME in its header: the same size and DiffID, so
    # the unpack succeeds; only the digest, checked when the download ends, is wrong.
    bad = good[:4] + bytes(b ^ 0x5A for b in good[4:8]) + good[8:]
    assert gzip.decompress(bad) == gzip.decompress(good)
    assert len(bad) == len(good)
    stored.write_bytes(bad)
    slow_ref = ref.replace(registry.host, slow.host)
    store = images.ImageStore(_streaming(tmp_path), lambda: rc.RegistryClient(retries=0, backoff=0.01))
    watch = Watch(store)
    try:
        with pytest.raises(errors.ImageError, match="content hashes to"):
            store.pull(slow_ref, progress=watch)
    finally:
        stored.write_bytes(good)
    assert ("extract", digest) in watch.events, "the unpack should have started"
    assert watch.most_unpacked > 0, "files should have been unpacked while the blob downloaded"
    assert store.snapshots.list() == [], "no snapshot of bytes that failed their digest"
    assert not [p for p in store.snapshots.dir.iterdir() if p.name.startswith(("extract-", "remove-"))]
    assert not store.content.has(digest), "no blob that failed its digest"
    assert not store.content.ingest_data(digest).exists(), "nor its bytes, to resume from"
    assert store.list() == []
    assert store.db.connect().execute("SELECT COUNT(*) FROM pull_leases").fetchone()[0] == 0
    assert _extractors_of(os.getpid()) == []
    store.pull(slow_ref)                                   # the registry serves the blob again
    assert (view(store, slow_ref) / "m" / "blob9").stat().st_size == 256 << 10
    assert gc.collect(store).blobs == []


def test_a_pull_killed_while_it_unpacks_a_downloading_layer_leaves_nothing_half_made(
    tmp_path: Path, push: Callable[..., str], registry: RegistryServer, slow: FaultProxy,
    view: Callable[[images.ImageStore, str], Path],
) -> None:
    ref = push([_big_layer("k"), _big_layer("l")]).replace(registry.host, slow.host)
    proc = pull_in_child(tmp_path, ref)
    store = images.ImageStore(native_config(tmp_path))
    try:
        _read_until(proc, '["extract"', nth=2)
        deadline = time.monotonic() + 30
        while _extracting(store) == 0:           # the unpack has begun; the blobs still download
            assert time.monotonic() < deadline, "the layers should be unpacked while they download"
            time.sleep(0.01)
        assert not [d for d in store.content.digests() if store.content.size(d) > 1 << 20], \
            "the layers' blobs should still be downloading"
    finally:
        pid = proc.pid
        _kill(proc)
    deadline = time.monotonic() + 10
    while _extractors_of(pid):
        assert time.monotonic() < deadline, "the extractors should die with their pull"
        time.sleep(0.05)
    store = images.ImageStore(native_config(tmp_path))   # start-up removes dead extractions
    assert not [p for p in store.snapshots.dir.iterdir() if p.name.startswith("extract-")]
    assert store.list() == []
    for snap in store.snapshots.list():                 # whatever was committed is complete
        assert (snap.path / "chainid").read_text() == snap.chain_id
    store.pull(ref)
    assert (view(store, ref) / "l" / "blob9").stat().st_size == 256 << 10
    assert (view(store, ref) / "k" / "d2" / "f599").exists()
