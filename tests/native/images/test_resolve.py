"""A pass's tag lookups against real registries: a registry that does not answer is asked once
per pass, not once per tag (#21: ten tags on a dead registry held a no-op pass 75 s)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from reconciler import registry_client as rc
from reconciler.execution import observing
from reconciler.runtime import errors as rterrors
from reconciler.runtime.native.images import images
from tests.helpers import images as timg
from tests.native.images.conftest import native_config


class Hangup:
    """A loopback server that accepts each connection and closes it unanswered (a registry
    whose process died behind its load balancer), counting the connections."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()
        self._thread.join(5)


@pytest.fixture
def hangup() -> Iterator[Hangup]:
    server = Hangup()
    try:
        yield server
    finally:
        server.close()


def _store(tmp_path: Path) -> images.ImageStore:
    # the real client with one retry, quickly: the test counts attempts, it does not wait them out
    return images.ImageStore(native_config(tmp_path), lambda: rc.RegistryClient(
        retries=1, backoff=0.01))


def _runtime(store: images.ImageStore) -> SimpleNamespace:
    return SimpleNamespace(resolve_digest=lambda ref: str(store.resolve_digest(ref)))


def test_a_registry_that_does_not_answer_is_asked_once_a_pass_and_the_others_still_are(
        tmp_path: Path, push: Callable[..., str], hangup: Hangup) -> None:
    live = [push([timg.busybox_layer()], tag=t) for t in ("a", "b")]
    dead = [f"{hangup.host}/app/{n}:1" for n in ("api", "web", "worker")]
    digests, errors = observing.resolve_digests(_runtime(_store(tmp_path)), live + dead,
                                                inventory=None, ttl=60, now=0.0)
    assert sorted(digests) == sorted(live)
    assert all(d.startswith("sha256:") for d in digests.values())
    assert sorted(errors) == sorted(dead)
    assert hangup.accepted == 2                 # the first tag, retried once; the others not asked
    first, *rest = sorted(dead)
    assert "did not answer" not in errors[first]
    assert first in errors[first]
    for ref in rest:
        assert errors[ref].startswith(f"not asked: registry {hangup.host} did not answer this pass")


def test_a_missing_tag_does_not_stop_the_lookups_of_its_registry(tmp_path: Path, push: Callable[..., str]) -> None:
    present = push([timg.busybox_layer()], tag="present")
    missing = present.rsplit(":", 1)[0] + ":missing"
    digests, errors = observing.resolve_digests(_runtime(_store(tmp_path)), [missing, present],
                                                inventory=None, ttl=60, now=0.0)
    assert list(digests) == [present]
    assert list(errors) == [missing]
    assert "not asked" not in errors[missing]


def test_the_store_names_an_unreachable_registry_apart_from_a_bad_reference(tmp_path: Path, hangup: Hangup,
                                                                            push: Callable[..., str]) -> None:
    store = _store(tmp_path)
    with pytest.raises(rterrors.RegistryUnavailable, match=f"resolve {hangup.host}/app/api:1"):
        store.resolve_digest(f"{hangup.host}/app/api:1")
    with pytest.raises(rterrors.ImageError) as info:
        store.resolve_digest(push([timg.busybox_layer()], tag="x").rsplit(":", 1)[0] + ":nope")
    assert not isinstance(info.value, rterrors.RegistryUnavailable)
