"""A pass's tag lookups against real registries: a registry that does not answer is asked once
per pass, not once per tag (#21: ten tags on a dead registry held a no-op pass 75 s)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from reconciler import registry_client as rc
from reconciler.execution import observing
from reconciler.runtime import errors as rterrors
from reconciler.runtime.native.images import images
from tests.helpers import images as timg
from tests.helpers.registry import Hangup
from tests.helpers.registry import hangup as hangup  # the fixture
from tests.native.images.conftest import native_config


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


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_agent_asks_a_registry_that_did_not_answer_again_only_after_its_back_off(
        tmp_path: Path, push: Callable[..., str], hangup: Hangup) -> None:
    """Across passes (an agent's `RegistryBackoff`): a dead registry is asked by the first pass,
    not by the passes within its back-off (10 s, doubling with each failure in a row), asked
    again after it; the other registry is asked by every pass all along, and an answer clears
    a registry's back-off."""
    live = push([timg.busybox_layer()], tag="a")
    dead = [f"{hangup.host}/app/{n}:1" for n in ("api", "web")]
    clock = Clock()
    backoff = observing.RegistryBackoff(clock=clock)
    runtime = _runtime(_store(tmp_path))

    def one_pass() -> tuple[dict[str, str], dict[str, str]]:
        return observing.resolve_digests(runtime, [live, *dead], inventory=None, ttl=60, now=0.0, backoff=backoff)

    digests, errors = one_pass()
    assert list(digests) == [live]
    assert hangup.accepted == 2                     # its first tag, retried once
    assert backoff.hosts() == {hangup.host: 1}

    clock.now += 9                                   # within the back-off: not asked at all
    digests, errors = one_pass()
    assert list(digests) == [live]                  # the live registry still is
    assert hangup.accepted == 2
    assert sorted(errors) == sorted(dead)
    for ref in dead:
        assert errors[ref].startswith(f"not asked: registry {hangup.host} did not answer (once; last: ")
        assert errors[ref].endswith("asked again in 1s")

    clock.now += 2                                   # past it: asked again, and backed off twice as long
    digests, errors = one_pass()
    assert hangup.accepted == 4
    assert backoff.hosts() == {hangup.host: 2}
    clock.now += 19
    one_pass()
    assert hangup.accepted == 4
    assert "(2 times in a row; last: " in one_pass()[1][dead[0]]

    # a registry that answers, even "no such tag", is cleared
    registry = live.split("/", 1)[0]
    backoff.failed(registry, "earlier")
    clock.now += 10
    missing = live.rsplit(":", 1)[0] + ":missing"
    observing.resolve_digests(runtime, [missing], inventory=None, ttl=60, now=0.0, backoff=backoff)
    assert registry not in backoff.hosts()
    clock.now += 1000
    assert backoff.hosts() == {}                     # expired back-offs are not reported


def test_the_back_off_doubles_up_to_its_longest() -> None:
    clock = Clock()
    backoff = observing.RegistryBackoff(first=10, longest=300, clock=clock)
    waits = []
    for _ in range(8):
        backoff.failed("r:5000", "refused")
        start = clock.now
        while backoff.waiting("r:5000") is not None:
            clock.now += 1
        waits.append(clock.now - start)
    assert waits == [10, 20, 40, 80, 160, 300, 300, 300]
    backoff.answered("r:5000")
    backoff.failed("r:5000", "refused")
    assert "(once; last: refused); asked again in 10s" in (backoff.waiting("r:5000") or "")
