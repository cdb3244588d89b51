"""The image store's names of digests: a digest checked before it names a file (CVE-2024-3727),
its hex part (a blob's file name), and how many hex digits of a ChainID name a layer snapshot.

content.py re-exports these (its blobs are named so) and snapshots.py names its directories
with them; the re-pull's presence check (presence.py) finds blobs and snapshots with them
without importing the content store (shutil, pathlib and dataclasses: ~100 M instructions, #21).

Stdlib `re` only at import.
"""

from __future__ import annotations

import re

from reconciler.runtime import errors

__all__ = ["DIGEST_RE", "SNAPSHOT_NAME_LEN", "digest_hex", "validate_digest"]

# a layer snapshot's directory is named by this many hex digits of its ChainID (snapshots.py)
SNAPSHOT_NAME_LEN = 16

DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


def validate_digest(digest: object) -> str:
    """Return `digest` if it is `sha256:<64 lowercase hex>`; raise ImageError otherwise."""
    if not isinstance(digest, str) or not DIGEST_RE.match(digest):
        shown = repr(digest)[:80]
        raise errors.ImageError(f"invalid digest {shown}: expected sha256:<64 hex digits>",
                                hint="the registry or image is corrupt, or the reference has a typo")
    return digest


def digest_hex(digest: str) -> str:
    """The hex part of a validated digest."""
    return validate_digest(digest).split(":", 1)[1]
