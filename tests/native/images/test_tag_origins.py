"""Where each local tag came from (`ImageStore.made_here`, base.TagOrigins): a tag pulled or
pushed is the registry's, one loaded or tagged here is not, so a pass asks no registry for it
(the pulls and pushes against the session's real registry)."""

from __future__ import annotations

import io
import json
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler import listing
from reconciler.runtime import errors
from reconciler.runtime.native.build import push as pushing
from reconciler.runtime.native.images import archive, images, summaries
from tests.helpers import images as timg
from tests.helpers.registry import RegistryServer
from tests.native.images.conftest import native_config


def test_pulled_and_pushed_tags_are_the_registrys_loaded_and_tagged_ones_are_made_here(
        tmp_path: Path, store: images.ImageStore, push: Callable[..., str], registry: RegistryServer) -> None:
    pulled = push([timg.busybox_layer()])
    store.pull(pulled)
    assert not store.made_here(pulled)
    assert not store.made_here(f"{pulled.rsplit(':', 1)[0]}:absent")          # no such tag here

    mine = f"{registry.host}/t{secrets.token_hex(4)}/mine:1"
    pushing.tag(store, pulled, mine)
    assert store.made_here(mine)
    assert not store.made_here(pulled)                 # the source keeps its origin
    repo = pulled.rsplit(":", 1)[0]
    digest = store.get(pulled).digest
    assert store.get(mine).repo_digests == (f"{repo}@{digest}",)    # as Docker's RepoDigests: not `mine`'s
    pushed = pushing.push(store, mine)
    assert not store.made_here(mine)                   # the registry has it as `mine` now
    assert store.get(mine).repo_digests == tuple(sorted((f"{repo}@{digest}", f"{mine.rsplit(':', 1)[0]}@{pushed}")))

    saved = io.BytesIO()
    archive.save(store, [pulled], saved)
    other = images.ImageStore(native_config(tmp_path / "other"))
    archive.load(other, io.BytesIO(saved.getvalue()))
    assert other.made_here(pulled)                     # as `docker load`: no repository digest
    assert other.get(pulled).repo_digests == ()
    other.pull(pulled)
    assert not other.made_here(pulled)                 # pulled as that tag: the registry's again


def test_a_store_from_before_the_origins_gains_the_column_and_its_tags_stay_followed(tmp_path: Path) -> None:
    config = native_config(tmp_path)
    config.root.mkdir(parents=True)
    with sqlite3.connect(config.root / "state.db") as conn:       # image_refs as versions before it
        conn.execute("CREATE TABLE image_refs (ref TEXT PRIMARY KEY, image_id TEXT NOT NULL, digest TEXT NOT NULL)")
        conn.execute("INSERT INTO image_refs VALUES ('127.0.0.1:5000/old/app:1', 'sha256:' || ?, 'sha256:' || ?)",
                     ("1" * 64, "2" * 64))
    conn.close()
    store = images.ImageStore(config)
    assert not store.made_here("127.0.0.1:5000/old/app:1")       # asked for, as it was
    with sqlite3.connect(config.root / "state.db") as conn:
        assert "local" in {r[1] for r in conn.execute("PRAGMA table_info(image_refs)")}
    conn.close()


def test_images_digests_show_a_tags_repository_digest_and_none_for_one_made_here(
        tmp_path: Path, store: images.ImageStore, push: Callable[..., str], registry: RegistryServer) -> None:
    pulled = push([timg.busybox_layer()])
    store.pull(pulled)
    mine = f"{registry.host}/t{secrets.token_hex(4)}/mine:1"
    pushing.tag(store, pulled, mine)
    from_store = [listing.image_summary(i) for i in store.list()]
    assert summaries.read(str(store.config.root)) == from_store         # `images` without the store: the same
    options = listing.options_of(listing.IMAGES_FLAGS, "json", {"quiet": False, "digests": True, "no_trunc": False})
    rows = {f"{r['repository']}:{r['tag']}": r["digest"] for r in json.loads(listing.images_text(from_store, options))}
    assert rows == {pulled: store.get(pulled).digest, mine: "<none>"}    # as docker images --digests
    digest = pushing.push(store, mine)
    rows = {f"{r['repository']}:{r['tag']}": r["digest"]
            for r in json.loads(listing.images_text(summaries.read(str(store.config.root)) or [], options))}
    assert rows == {pulled: store.get(pulled).digest, mine: digest}


def test_an_image_pulled_by_digest_alone_is_listed_under_its_repository_with_its_digest(
        store: images.ImageStore, push: Callable[..., str]) -> None:
    """`docker pull repo@sha256:...` then `docker images --digests`: REPOSITORY repo, TAG <none>,
    DIGEST the one pulled (not a `<none> <none>` row no one can tell from a dangling image)."""
    tagged = push([timg.busybox_layer()])
    repo = tagged.rsplit(":", 1)[0]
    probe = images.ImageStore(store.config)
    digest = probe.pull(tagged).digest
    probe.remove(tagged)
    by_digest = f"{repo}@{digest}"
    store.pull(by_digest)
    options = listing.options_of(listing.IMAGES_FLAGS, "json", {"quiet": False, "digests": True, "no_trunc": False})
    from_store = [listing.image_summary(i) for i in store.list()]
    assert summaries.read(str(store.config.root)) == from_store         # `images` without the store: the same
    rows = json.loads(listing.images_text(from_store, options))
    assert [(r["repository"], r["tag"], r["digest"]) for r in rows] == [(repo, "<none>", digest)]
    assert store.get(by_digest).repo_digests == (by_digest,)           # docker inspect's RepoDigests
    image_id = store.pull(tagged).id                                     # its tag too: the last tag takes the digest along
    assert store.remove(tagged) == [f"Untagged: {tagged}", f"Untagged: {by_digest}", f"Deleted: {image_id}"]
    store.pull(by_digest)
    assert store.prune() == [image_id]              # untagged ("repo:<none>"): dockerd's prune takes it too
    assert summaries.read(str(store.config.root)) == []


def test_rmi_of_a_digest_reference_untags_it_and_deletes_an_image_it_alone_named(
        store: images.ImageStore, push: Callable[..., str]) -> None:
    tagged = push([timg.busybox_layer()])
    digest = images.ImageStore(store.config).pull(tagged).digest
    store.remove(tagged)
    by_digest = f"{tagged.rsplit(':', 1)[0]}@{digest}"
    image_id = store.pull(by_digest).id
    assert store.remove(by_digest) == [f"Untagged: {by_digest}", f"Deleted: {image_id}"]
    assert store.list() == []


def test_rmi_by_id_of_an_image_named_by_a_tag_and_a_digest_of_one_repository_needs_no_force(
        store: images.ImageStore, push: Callable[..., str]) -> None:
    """dockerd's isSingleReference: a tag and digests of the same repository are one reference;
    a second repository needs force."""
    tagged = push([timg.busybox_layer()])
    image = store.pull(tagged)
    by_digest = f"{tagged.rsplit(':', 1)[0]}@{image.digest}"
    store.pull(by_digest)
    assert store.remove(image.id) == [f"Untagged: {tagged}", f"Untagged: {by_digest}", f"Deleted: {image.id}"]
    store.pull(tagged)
    pushing.tag(store, tagged, "elsewhere/other:1")
    with pytest.raises(errors.Conflict, match="multiple repositories"):
        store.remove(image.id)
