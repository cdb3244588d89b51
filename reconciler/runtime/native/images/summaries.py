"""What `reconcile images` shows of the native engine's images, read from the state DB's rows
without opening the image store (#21): `read(root)` gives listing.image_summary's fields of
every image (id, digest, tags, size, created, repository digests), newest pull first, as `ImageStore.list()` makes
them, building no ImageInfo, dataclass, content store or snapshot table, creating nothing.

An image's size is its layers' unpacked bytes (the images row's `unpacked`, as `docker images`
counts them); an image an older version recorded, not measured yet, shows its compressed size
(`size`) until a process opens the store (images.py `_measure_older`), and a state DB whose
images table has no `unpacked` column yet is read without it: `images` never measures.

An image whose config blob is gone is left out, as the store leaves it out. A state DB that
cannot be read read-only (none yet, no images table, a newer format): None, and the store
answers.

Stdlib `os` only at import (sqlite3's C core when reading).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

__all__ = ["read", "repo_digests"]

# local 2: a digest reference (image_digest_refs: pulled by digest), a repository digest and no tag
_QUERY = ("SELECT i.id, COALESCE(i.index_digest, i.manifest_digest), {size}, i.created, r.ref, r.digest, r.local "
          "FROM images i LEFT JOIN (SELECT ref, image_id, digest, local FROM image_refs UNION ALL "
          "SELECT ref, image_id, '', 2 FROM image_digest_refs) r ON r.image_id = i.id "
          "ORDER BY i.pulled_at DESC, i.id, r.ref")


def read(root: str) -> list[dict[str, Any]] | None:
    from reconciler import dbformat

    db = os.path.join(root, "state.db")
    rows = dbformat.query(db, _QUERY.format(size="COALESCE(i.unpacked, i.size)"))
    if rows is None:        # an images table older than its `unpacked` column (or none: None again)
        rows = dbformat.query(db, _QUERY.format(size="i.size"))
    if rows is None:
        return None
    blobs = os.path.join(root, "blobs", "sha256")
    found: dict[str, dict[str, Any]] = {}
    for image_id, digest, size, created, ref, ref_digest, local in rows:
        summary = found.get(image_id)
        if summary is None:
            summary = found[image_id] = {"id": image_id, "digest": digest, "repo_tags": [], "size": int(size),
                                         "created": created, "repo_digests": []}
        if ref is not None and local == 2:
            summary.setdefault("by_digest", []).append(ref)
        elif ref is not None:
            summary["repo_tags"].append(ref)
            summary["repo_digests"].append((ref, ref_digest, local))
    for s in found.values():
        s["repo_digests"] = repo_digests(s["repo_digests"], s.pop("by_digest", ()))
    return [s for s in found.values() if os.path.exists(os.path.join(blobs, s["id"].removeprefix("sha256:")))]


def repo_digests(refs: Iterable[tuple[str, str, int]], by_digest: Iterable[str] = ()) -> list[str]:
    """An image's repository digests (Docker's RepoDigests, `ImageInfo.repo_digests`), from its
    image_refs rows (ref, digest, local): "name@digest" of each tag pulled or pushed as itself,
    none of a tag made here; and its digest references (`by_digest`: pulled as name@digest);
    sorted, each once."""
    return sorted({f"{ref.rsplit(':', 1)[0]}@{digest}" for ref, digest, local in refs if not local} | set(by_digest))
