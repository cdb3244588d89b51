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
