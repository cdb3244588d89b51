"""The image store's names of digests: a digest checked before it names a file (CVE-2024-3727),
its hex part (a blob's file name), and how many hex digits of a ChainID name a layer snapshot.

content.py re-exports these (its blobs are named so) and snapshots.py names its directories
with them; the re-pull's presence check (presence.py) finds blobs and snapshots with them
without importing the content store (shutil, pathlib and dataclasses: ~100 M instructions, #21).

Nothing but the engine's errors imported (no `re`: its import alone is ~15 M instructions, a
sixth of a re-pull's, #21).
"""

from __future__ import annotations

from reconciler.runtime import errors

__all__ = ["SNAPSHOT_NAME_LEN", "digest_hex", "is_digest", "validate_digest"]

# a layer snapshot's directory is named by this many hex digits of its ChainID (snapshots.py)
SNAPSHOT_NAME_LEN = 16

_HEX = frozenset("0123456789abcdef")


def is_digest(s: str) -> bool:
    """Whether `s` is `sha256:<64 lowercase hex>`, and nothing more (the expression it was,
    `^sha256:[a-f0-9]{64}$` with `re.match`, also took a trailing newline)."""
    return len(s) == 71 and s.startswith("sha256:") and _HEX.issuperset(s[7:])


def validate_digest(digest: object) -> str:
    """Return `digest` if it is `sha256:<64 lowercase hex>`; raise ImageError otherwise."""
    if not isinstance(digest, str) or not is_digest(digest):
        shown = repr(digest)[:80]
        raise errors.ImageError(f"invalid digest {shown}: expected sha256:<64 hex digits>",
                                hint="the registry or image is corrupt, or the reference has a typo")
    return digest


def digest_hex(digest: str) -> str:
    """The hex part of a validated digest."""
    return validate_digest(digest).split(":", 1)[1]
