"""Faults injected between the client and a real registry: every pull ends verified or with a
clear error, and nothing unverified is reported complete."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.registry_client import Credential, CredentialStore, RegistryClient, errors, models
from tests.helpers import images
from tests.helpers.fault_server import Fault, FaultProxy
from tests.helpers.registry import RegistryServer
from tests.registry_client.imagegen import make_image

pytestmark = pytest.mark.registry

REPO = "faults/big"


@pytest.fixture(scope="module")
def big_image(registry: RegistryServer) -> tuple[models.Manifest, dict[str, bytes]]:
    """An image with one ~3 MB incompressible layer, pushed straight to the open registry."""
    layer = images.layer_tar([images.Entry("blob.bin", os.urandom(3 * 1024 * 1024))])
    m, blobs = make_image([layer])
    with RegistryClient() as c:
        c.push_image(f"{registry.host}/{REPO}:v1", m, lambda d: blobs[d.digest])
    return m, blobs


@pytest.fixture
def proxy(registry: RegistryServer) -> Iterator[FaultProxy]:
    p = FaultProxy(registry.port).start()
    try:
        yield p
    finally:
        p.stop()


class Sleeps(list[float]):
    def __call__(self, s: float) -> None:
        self.append(s)


def client(sleeps: Sleeps | None = None, **kw: object) -> RegistryClient:
    creds = kw.pop("credentials", None) or CredentialStore(static={}, docker_config=Path("/nonexistent"), env={})
    return RegistryClient(credentials=creds, sleep=sleeps if sleeps is not None else Sleeps(),  # type: ignore[arg-type]
                          backoff=0.01, retries=3, **kw)  # type: ignore[arg-type]


def layer_of(image: tuple[models.Manifest, dict[str, bytes]]) -> tuple[models.Descriptor, bytes]:
    m, blobs = image
    d = m.layers[0]
    return d, blobs[d.digest]


def test_dropped_connection_mid_blob_resumes_with_range(proxy: FaultProxy, big_image: tuple[models.Manifest, dict[str, bytes]]) -> None:
    d, data = layer_of(big_image)
    proxy.add(Fault("drop", path="/blobs/", after_bytes=1_000_000))
    out = io.BytesIO()
    sleeps = Sleeps()
    with client(sleeps) as c:
        c.fetch_blob(f"{proxy.host}/{REPO}", d, out)
    assert out.getvalue() == data
    gets = proxy.requests(path="/blobs/", method="GET")
    assert len(gets) == 2
    assert "range" not in gets[0].headers
    resumed_at = int(gets[1].headers["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 1_000_000
    assert len(sleeps) == 1


def test_a_caller_stopping_is_asked_before_a_retry(
        proxy: FaultProxy, big_image: tuple[models.Manifest, dict[str, bytes]]) -> None:
    """A download whose connection broke is not retried when progress raises (a reconciler
    told to stop cancels there instead of waiting out the retries)."""
    d, _ = layer_of(big_image)
    proxy.add(Fault("drop", path="/blobs/", after_bytes=0))

    class Stopping(Exception):
        pass

    def progress(done: int, total: int) -> None:
        raise Stopping

    with client() as c, pytest.raises(Stopping):
        c.fetch_blob(f"{proxy.host}/{REPO}", d, io.BytesIO(), progress=progress)
    assert len(proxy.requests(path="/blobs/", method="GET")) == 1


def test_resume_when_server_ignores_range(proxy: FaultProxy, big_image: tuple[models.Manifest, dict[str, bytes]]) -> None:
    d, data = layer_of(big_image)
    proxy.add(Fault("drop", path="/blobs/", after_bytes=500_000))
    proxy.add(Fault("ignore_range", path="/blobs/"))
    chunks: list[bytes] = []
    with client() as c:
        c.fetch_blob(f"{proxy.host}/{REPO}", d, chunks.append)
    assert b"".join(chunks) == data
    assert [r.status for r in proxy.requests(path="/blobs/")] == [200, 200]


def test_server_errors_are_retried_then_verified(proxy: FaultProxy, big_image: tuple[models.Manifest, dict[str, bytes]]) -> None:
    d, data = layer_of(big_image)
    proxy.add(Fault("status", path="/blobs/", status=500, times=2))
    sleeps = Sleeps()
    out = io.BytesIO()
    with client(sleeps) as c:
        c.fetch_blob(f"{proxy.host}/{REPO}", d, out)
    assert out.getvalue() == data
    assert sleeps == [0.01, 0.02]


def test_persistent_server_errors_give_up_with_a_clear_error(proxy: FaultProxy, big_image: tuple[models.Manifest, dict[str, bytes]]) -> None:
    d, _ = layer_of(big_image)
    proxy.add(Fault("status", path="/blobs/", status=503, times=100))
    with client() as c, pytest.raises(errors.Unavailable) as ei:
        c.fetch_blob(f"{proxy.host}/{REPO}", d, io.BytesIO())
    assert "503" in str(ei.value)
    assert "gave up after 4 attempts" in str(ei.value)
    assert ei.value.temporary
    assert len(proxy.requests(path="/blobs/")) == 4


def test_429_honours_retry_after(proxy: FaultProxy, big_image: tuple[models.Manifest, dict[str, bytes]]) -> None:
    m, _ = big_image
    proxy.add(Fault("ratelimit", path="/manifests/", retry_after="7"))
    sleeps = Sleeps()
    with client(sleeps) as c:
        got = c.get_manifest(f"{proxy.host}/{REPO}:v1")
    assert got.raw == m.raw
    assert sleeps == [7.0]


def test_429_with_long_retry_after_is_not_hammered(proxy: FaultProxy, big_image: tuple[models.Manifest, dict[str, bytes]]) -> None:
    proxy.add(Fault("ratelimit", path="/manifests/", retry_after="3600", times=10))
    sleeps = Sleeps()
    with client(sleeps) as c, pytest.raises(errors.TooManyRequests) as ei:
        c.get_manifest(f"{proxy.host}/{REPO}:v1")
    assert ei.value.retry_after == 3600
    assert sleeps == []
    assert len(proxy.requests(path="/manifests/")) == 1


def test_redirect_to_another_host_never_carries_credentials(registry: RegistryServer, big_image: tuple[models.Manifest, dict[str, bytes]]) -> None:
    p = FaultProxy(registry.port, basic_auth=("alice", "s3cret")).start()
    try:
        d, data = layer_of(big_image)
        p.add(Fault("redirect", path="/blobs/"))
        creds = CredentialStore(static={p.host: Credential("alice", "s3cret")}, docker_config=Path("/nonexistent"), env={})
        out = io.BytesIO()
        with client(credentials=creds) as c:
            c.fetch_blob(f"{p.host}/{REPO}", d, out)
        assert out.getvalue() == data
        cdn = p.requests("cdn")
        assert len(cdn) == 1
        assert "authorization" not in cdn[0].headers
        assert any("authorization" in r.headers for r in p.requests("proxy", path="/blobs/"))
    finally:
        p.stop()


def test_401_from_redirect_target_does_not_send_credentials_there(registry: RegistryServer, big_image: tuple[models.Manifest, dict[str, bytes]]) -> None:
    p = FaultProxy(registry.port, basic_auth=("alice", "s3cret"), cdn_status=401).start()
    try:
        d, _ = layer_of(big_image)
        p.add(Fault("redirect", path="/blobs/", times=10))
        creds = CredentialStore(static={p.host: Credential("alice", "s3cret")}, docker_config=Path("/nonexistent"), env={})
        with client(credentials=creds) as c, pytest.raises(errors.Unauthorized) as ei:
            c.fetch_blob(f"{p.host}/{REPO}", d, io.BytesIO())
        assert "never sent to another host" in str(ei.value)
        assert all("authorization" not in r.headers for r in p.requests("cdn"))
        assert len(p.requests("cdn")) == 1
    finally:
        p.stop()


def test_corrupt_blob_is_never_accepted(proxy: FaultProxy, big_image: tuple[models.Manifest, dict[str, bytes]]) -> None:
    d, _ = layer_of(big_image)
    proxy.add(Fault("corrupt", path="/blobs/"))
    received: list[bytes] = []
    with client() as c, pytest.raises(errors.DigestMismatch):
        c.fetch_blob(f"{proxy.host}/{REPO}", d, received.append)
    # The sink saw the bytes of the failed attempt (documented): callers commit only on return.
    assert hashlib.sha256(b"".join(received)).hexdigest() != d.digest.split(":")[1]


def test_corruption_after_a_resume_restarts_a_file_sink_from_zero(
    proxy: FaultProxy, big_image: tuple[models.Manifest, dict[str, bytes]], tmp_path: Path
) -> None:
    d, data = layer_of(big_image)
    proxy.add(Fault("drop", path="/blobs/", after_bytes=1_000_000))
    proxy.add(Fault("corrupt", path="/blobs/"))
    proxy.add(Fault("ignore_range", path="/blobs/"))  # corrupt applies to the 2nd GET (200, offset 0)
    ingest = tmp_path / "ingest"
    with client() as c, ingest.open("w+b") as f:
        c.fetch_blob(f"{proxy.host}/{REPO}", d, f)
    assert ingest.read_bytes() == data
    ranges = [r.headers.get("range") for r in proxy.requests(path="/blobs/")]
    assert ranges[0] is None
    assert ranges[-1] is None, "the last attempt restarted from byte 0"
    assert len(ranges) == 3


def test_longer_body_than_descriptor_is_refused(proxy: FaultProxy, big_image: tuple[models.Manifest, dict[str, bytes]]) -> None:
    d, _ = layer_of(big_image)
    proxy.add(Fault("extra", path="/blobs/"))
    got = io.BytesIO()
    with client() as c, pytest.raises(errors.SizeMismatch):
        c.fetch_blob(f"{proxy.host}/{REPO}", d, got)
    assert len(got.getvalue()) <= d.size


def test_oversized_manifest_is_refused(proxy: FaultProxy, big_image: tuple[models.Manifest, dict[str, bytes]]) -> None:
    proxy.add(Fault("oversize", path="/manifests/"))
    with client() as c, pytest.raises(errors.ManifestError) as ei:
        c.get_manifest(f"{proxy.host}/{REPO}:v1")
    assert ei.value.code == "SIZE_INVALID"


@pytest.mark.parametrize("by", ["tag", "digest"])
def test_corrupt_manifest_is_refused(proxy: FaultProxy, big_image: tuple[models.Manifest, dict[str, bytes]], by: str) -> None:
    m, _ = big_image
    proxy.add(Fault("corrupt", path="/manifests/"))
    ref = f"{proxy.host}/{REPO}:v1" if by == "tag" else f"{proxy.host}/{REPO}@{m.descriptor.digest}"
    with client() as c, pytest.raises(errors.ManifestError) as ei:
        c.get_manifest(ref)
    assert ei.value.code == "DIGEST_INVALID"


def test_content_type_disagreeing_with_media_type_is_refused(proxy: FaultProxy, big_image: tuple[models.Manifest, dict[str, bytes]]) -> None:
    proxy.add(Fault("retype", path="/manifests/"))
    with client() as c, pytest.raises(errors.ManifestError) as ei:
        c.get_manifest(f"{proxy.host}/{REPO}:v1")
    assert "mediaType" in str(ei.value)


def test_schema1_is_refused_with_advice(proxy: FaultProxy, big_image: tuple[models.Manifest, dict[str, bytes]]) -> None:
    proxy.add(Fault("retype", path="/manifests/", method="HEAD",
                    content_type="application/vnd.docker.distribution.manifest.v1+prettyjws"))
    with client() as c, pytest.raises(errors.ManifestError) as ei:
        c.resolve(f"{proxy.host}/{REPO}:v1")
    assert "schema 1" in str(ei.value)
    assert "rebuild" in str(ei.value)


def test_manifest_drop_is_retried(proxy: FaultProxy, big_image: tuple[models.Manifest, dict[str, bytes]]) -> None:
    m, _ = big_image
    proxy.add(Fault("drop", path="/manifests/", after_bytes=10))
    with client() as c:
        assert c.get_manifest(f"{proxy.host}/{REPO}:v1").raw == m.raw


def test_parallel_blob_fetches_share_one_client(registry: RegistryServer, tmp_path: Path) -> None:
    layers = [images.layer_tar([images.Entry(f"f{i}", os.urandom(200_000))]) for i in range(8)]
    m, blobs = make_image(layers)
    ref = f"{registry.host}/faults/many:v1"
    with client() as c:
        c.push_image(ref, m, lambda d: blobs[d.digest])
        c.fetch_blobs(ref, m.layers + m.layers[:2], lambda d: (tmp_path / d.digest.split(":")[1]).open("wb"), concurrency=4)
    for d in m.layers:
        assert (tmp_path / d.digest.split(":")[1]).read_bytes() == blobs[d.digest]


def test_head_refused_falls_back_to_get(proxy: FaultProxy, big_image: tuple[models.Manifest, dict[str, bytes]]) -> None:
    m, _ = big_image
    proxy.add(Fault("status", path="/manifests/", method="HEAD", status=405))
    with client() as c:
        assert c.resolve(f"{proxy.host}/{REPO}:v1") == m.descriptor
    assert [r.method for r in proxy.requests(path="/manifests/")] == ["HEAD", "GET"]


def test_warnings_and_rate_limits_are_surfaced_once(proxy: FaultProxy, big_image: tuple[models.Manifest, dict[str, bytes]]) -> None:
    proxy.add(Fault("warn", path="/manifests/", method="HEAD", times=2))
    with client() as c:
        c.resolve(f"{proxy.host}/{REPO}:v1")
        c.resolve(f"{proxy.host}/{REPO}:v1")
        assert c.warnings == ['299 - "this registry is deprecated"']
        assert c.rate_limits[proxy.host] == {"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "42;w=21600"}


def test_foreign_urls_are_never_fetched(proxy: FaultProxy) -> None:
    foreign = models.Descriptor("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "sha256:" + "5" * 64, 10,
                                urls=(f"http://{proxy.cdn_host}/layer.tar.gz",))
    with client() as c, pytest.raises(errors.NotFound) as ei:
        c.fetch_blob(f"{proxy.host}/{REPO}", foreign, io.BytesIO())
    assert "foreign layer" in str(ei.value)
    assert proxy.requests("cdn") == []


def test_refused_mount_continues_with_the_session_it_opened(proxy: FaultProxy) -> None:
    data = os.urandom(50_000)
    desc = models.Descriptor("application/octet-stream", "sha256:" + hashlib.sha256(data).hexdigest(), len(data))
    with client() as c:
        assert c.push_blob(f"{proxy.host}/faults/mount-dst", desc, data, mount_from="faults/never-had-it") == "uploaded"
        out = io.BytesIO()
        c.fetch_blob(f"{proxy.host}/faults/mount-dst", desc, out)
    assert out.getvalue() == data
    posts = proxy.requests(path="/blobs/uploads/", method="POST")
    assert len(posts) == 1
    assert "mount=" in posts[0].path
    assert len(proxy.requests(path="/blobs/uploads/", method="PUT")) == 1


def test_failed_chunk_aborts_the_session_and_the_push_is_retried(proxy: FaultProxy) -> None:
    data = os.urandom(300_000)
    desc = models.Descriptor("application/octet-stream", "sha256:" + hashlib.sha256(data).hexdigest(), len(data))
    proxy.add(Fault("status", path="/blobs/uploads/", method="PATCH", status=500))
    sleeps = Sleeps()
    with client(sleeps) as c:
        assert c.push_blob(f"{proxy.host}/faults/chunked", desc, data, chunk_size=100_000) == "uploaded"
        out = io.BytesIO()
        c.fetch_blob(f"{proxy.host}/faults/chunked", desc, out)
    assert out.getvalue() == data
    assert len(sleeps) == 1
    assert len(proxy.requests(path="/blobs/uploads/", method="POST")) == 2
    assert len(proxy.requests(path="/blobs/uploads/", method="DELETE")) == 1
    patches = proxy.requests(path="/blobs/uploads/", method="PATCH")
    assert [p.headers["content-range"] for p in patches] == ["0-99999", "0-99999", "100000-199999", "200000-299999"]
    # Every PATCH after the first of a session went to the Location the previous one returned.
    assert len({p.path for p in patches[1:]}) == 3


def test_huge_tag_list_is_refused_before_it_is_read() -> None:
    """A registry answering a tag list of 200 MB: the client stops reading the page once it
    passes MAX_TAGS_PAGE_SIZE (the agent's image updates list tags of any registry a policy
    names), so the server could write only that and what the sockets buffer."""
    proxy = FaultProxy(upstream_port=9).start()     # the fault answers: nothing goes upstream
    try:
        fault = Fault("huge_tags", path="/tags/list", size=200 * 1024 * 1024)
        proxy.add(fault)
        with client() as c, pytest.raises(errors.RegistryError) as ei:
            c.list_tags(f"{proxy.host}/x/huge", page_size=1000, limit=10_000)
        assert ei.value.code == "SIZE_INVALID"
        assert proxy.host in str(ei.value)
        assert "x/huge" in str(ei.value)
        assert fault.finished.wait(60), "the server is still writing: the client kept reading"
        assert fault.sent < 32 * 1024 * 1024, f"{fault.sent} bytes were sent: the client read on"
        assert len(proxy.requests(path="/tags/list")) == 1, "an oversized page is not retried"
    finally:
        proxy.stop()
