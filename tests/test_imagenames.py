"""The reference rule (`reconciler/imagenames.py`): what the registry client parses, what the
observed state and the planner compare, and what the fake engine keys, are one normalisation."""

from __future__ import annotations

import pytest

from reconciler import imagenames
from reconciler.registry_client import references
from reconciler.runtime.fake import FakeRuntime
from reconciler.state import observed

D = "sha256:" + "5" * 64

# (written, what it names) for every form a manifest, Docker's RepoTags or the native store write
FORMS = [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1", "docker.io/library/busybox:1"),
    ("docker.io/busybox:1", "docker.io/library/busybox:1"),
    ("docker.io/library/busybox:1", "docker.io/library/busybox:1"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/busybox:1", "docker.io/library/busybox:1"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("me/app:2", "docker.io/me/app:2"),
    ("docker.io/me/app:2", "docker.io/me/app:2"),
    (f"docker.io/library/busybox@{D}", f"docker.io/library/busybox@{D}"),
    (f"busybox@{D}", f"docker.io/library/busybox@{D}"),
    (f"docker.io/busybox:1@{D}", f"docker.io/library/busybox@{D}"),      # the digest decides
    ("localhost/x", "localhost/x:latest"),
    ("localhost:5000/x", "localhost:5000/x:latest"),
    ("127.0.0.1:5000/a/b:t", "127.0.0.1:5000/a/b:t"),
    (f"127.0.0.1:5000/a/b:t@{D}", f"127.0.0.1:5000/a/b@{D}"),
    ("[::1]:5000/x", "[::1]:5000/x:latest"),
    ("registry-1.docker.io/library/busybox:1", "registry-1.docker.io/library/busybox:1"),  # not aliased by Docker
    ("registry-1.docker.io/busybox", "registry-1.docker.io/busybox:latest"),
    ("ghcr.io/o/r", "ghcr.io/o/r:latest"),
    ("reg.example:443/deep/er/path:v1.2_3", "reg.example:443/deep/er/path:v1.2_3"),
]


def _as_parsed(written: str) -> str:
    """What the registry client's parse says `written` names, in the key's form."""
    r = references.parse(written)
    return f"{r.name}@{r.digest}" if r.digest else str(r)


@pytest.mark.parametrize(("written", "names"), FORMS)
def test_the_key_is_what_the_registry_clients_parse_names(written: str, names: str) -> None:
    assert _as_parsed(written) == names
    assert imagenames.key(written) == names
    assert imagenames.key(names) == names                   # a key is its own key
    assert observed.normalize_ref(written) == names         # the planner's side
    registry, repository = imagenames.locate(imagenames.cut(written)[0])
    r = references.parse(written)
    assert (registry, repository) == (r.registry, r.repository)


@pytest.mark.parametrize("written", ["busybox:1", "docker.io/busybox:1", "index.docker.io/library/busybox:1",
                                     "library/busybox:1", "docker.io/library/busybox:1"])
def test_the_fake_engine_keys_every_spelling_of_a_tag_as_the_native_store_tags_it(written: str) -> None:
    rt = FakeRuntime()
    digest = rt.publish("docker.io/busybox:1")
    assert rt.resolve_digest(written) == digest
    info = rt.pull_image(written)
    assert info.repo_tags == ("docker.io/library/busybox:1",)       # as images.py `_tag` records it
    assert rt.inspect_image("busybox:1").id == info.id


@pytest.mark.parametrize("junk", ["<none>:<none>", "", "sha256:" + "a" * 64, "UPPER/Case", "a@", "x:"])
def test_the_key_of_what_is_no_reference_is_a_string_and_no_error(junk: str) -> None:
    assert isinstance(imagenames.key(junk), str)             # Docker's RepoTags hold `<none>:<none>`


@pytest.mark.parametrize(("stored", "shown"), [
    ("docker.io/library/app", "app"), ("docker.io/library/app:1", "app:1"), ("docker.io/me/app:2", "me/app:2"),
    ("127.0.0.1:5000/test/busybox:latest", "127.0.0.1:5000/test/busybox:latest"), ("localhost/x", "localhost/x"),
    ("docker.io/library/a/b:1", "library/a/b:1"),        # library/ goes only before a one-component name
    (f"docker.io/library/busybox@{D}", f"busybox@{D}"), ("ghcr.io/library/x:2", "ghcr.io/library/x:2"),
])
def test_the_familiar_form_is_what_docker_shows_and_the_client_agrees(stored: str, shown: str) -> None:
    assert imagenames.familiar(stored) == shown
    _, tag, digest = imagenames.cut(stored)
    if tag or digest:                   # (the client's parse gives a name without one `latest`)
        assert references.parse(stored).familiar == shown


def test_images_lists_familiar_names_as_docker_images_does() -> None:
    """`reconcile images` (with or without an agent: the same rendering) shows `app`, not the
    stored `docker.io/library/app`, in its table and its JSON."""
    import json

    from reconciler import listing

    summary = {"id": "sha256:" + "1" * 64, "digest": None, "created": "2026-12-06T09:00:00Z", "size": 1,
               "repo_tags": ["docker.io/library/app:1", "127.0.0.1:5000/x:2"]}
    table = listing.images_text([summary], listing.options_of(listing.IMAGES_FLAGS, "table", {
        "quiet": False, "digests": False, "no_trunc": False}))
    assert [line.split()[:2] for line in table.splitlines()[1:]] == [["app", "1"], ["127.0.0.1:5000/x", "2"]]
    rows = json.loads(listing.images_text([summary], listing.options_of(listing.IMAGES_FLAGS, "json", {
        "quiet": False, "digests": False, "no_trunc": False})))
    assert [r["repository"] for r in rows] == ["app", "127.0.0.1:5000/x"]
