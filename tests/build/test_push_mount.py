"""`reconcile push` of an image another of whose tags names a repository of the same registry:
each blob is mounted from that repository (docker push's "Mounted from"), none uploaded.

Real parts: the session's docker-registry, behind the fault proxy only to record the requests
(no fault is injected), and native image stores of the test's own.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.runtime.native.build import push as build_push
from reconciler.runtime.native.images import images
from tests.helpers.fault_server import FaultProxy
from tests.helpers.registry import RegistryServer
from tests.native.images.conftest import native_config

pytestmark = [pytest.mark.registry]


@pytest.fixture
def proxy(registry: RegistryServer) -> Iterator[FaultProxy]:
    p = FaultProxy(registry.port).start()
    try:
        yield p
    finally:
        p.stop()


def test_push_mounts_blobs_from_the_repository_of_another_tag(
    tmp_path: Path, busybox_image: str, proxy: FaultProxy
) -> None:
    source = busybox_image.replace(busybox_image.split("/", 1)[0], proxy.host, 1)   # test/busybox
    store = images.ImageStore(native_config(tmp_path / "a"))
    store.pull(source)
    dest = f"{proxy.host}/x/mounted{secrets.token_hex(3)}:1"
    build_push.tag(store, source, dest)
    said: list[str] = []
    digest = build_push.push(store, dest, progress=said.append)

    blob_lines = [line for line in said if ": " in line and not line.startswith(("The push", "1:"))]
    assert blob_lines, said
    assert all(line.endswith(": Mounted from test/busybox") for line in blob_lines), said
    mounts = proxy.requests(path=r"/blobs/uploads/\?mount=", method="POST")
    assert mounts, [(r.method, r.path) for r in proxy.log]
    assert all(r.status == 201 for r in mounts), [(r.path, r.status) for r in mounts]
    assert "from=test%2Fbusybox" in mounts[0].path
    assert not proxy.requests(path="/blobs/uploads/", method="PUT"), "a blob was uploaded, not mounted"
    assert not proxy.requests(path="/blobs/uploads/", method="PATCH")

    # what was mounted pulls back whole into another store, under the same manifest digest
    other = images.ImageStore(native_config(tmp_path / "b"))
    other.pull(dest)
    image_id = other.image_id(dest)
    assert image_id == store.image_id(source)
    assert (Path(other.layer_dirs(image_id)[-1]) / "bin" / "busybox").is_file()
    row = other.db.connect().execute("SELECT manifest_digest FROM images WHERE id = ?", (image_id,)).fetchone()
    assert row["manifest_digest"] == digest
