"""Digest strings, validated before any use (in a URL, a path, a comparison).

Only `sha256:<64 lowercase hex>` and `sha512:<128 lowercase hex>` are accepted; anything else
(`sha256:../../x`, `md5:...`, uppercase hex) raises InvalidDigest (CVE-2024-3727's shape).
"""

from __future__ import annotations

import re

from reconciler.registry_client import errors

TYPE_CHECKING = False       # annotations only: `typing` costs ~30 M instructions to import (#21)
if TYPE_CHECKING:
    import hashlib

__all__ = ["ALGORITHMS", "compute", "hasher", "validate"]

ALGORITHMS = {"sha256": 64, "sha512": 128}
_DIGEST = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")


def validate(digest: object) -> str:
    """Return `digest` unchanged when it is a valid sha256/sha512 digest, else InvalidDigest."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        shown = repr(digest)[:80]
        raise errors.InvalidDigest(
            f"invalid digest {shown}: expected sha256:<64 hex> or sha512:<128 hex>",
            hint="the manifest or reference carries a malformed digest; do not use this image",
        )
    return digest


def hasher(digest: str) -> hashlib._Hash:
    """A fresh hashlib object for the algorithm of a (validated) digest."""
    import hashlib  # here: loading OpenSSL costs ~5 ms, and parsing a reference hashes nothing

    return hashlib.new(validate(digest).split(":", 1)[0])


def compute(data: bytes, algorithm: str = "sha256") -> str:
    """`algorithm:hex` of data."""
    if algorithm not in ALGORITHMS:
        raise errors.InvalidDigest(f"unsupported digest algorithm {algorithm!r}")
    import hashlib

    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
