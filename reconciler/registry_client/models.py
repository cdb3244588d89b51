"""Value types: descriptors, manifests, platforms (and the media types, from mediatypes.py)."""

from __future__ import annotations

import json
from typing import Any

from reconciler._dataclass import dataclass, field
from reconciler.registry_client import digests, errors
from reconciler.registry_client.mediatypes import (  # re-exported: their home is mediatypes.py
    ACCEPT_MANIFESTS,
    CONFIG_TYPES,
    DOCKER_CONFIG,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
)

__all__ = [
    "ACCEPT_MANIFESTS",
    "CONFIG_TYPES",
    "DOCKER_CONFIG",
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "DOCKER_SCHEMA1",
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Descriptor",
    "Manifest",
]


@dataclass(frozen=True)
class Descriptor:
    """What a manifest or the registry says about one piece of content.

    `digest` is always validated on construction (from_dict / the client); `urls` are foreign
    locations that the client never fetches with credentials (and not at all by default)."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    platform: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    urls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        digests.validate(self.digest)
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise errors.ManifestError(f"descriptor {self.digest} has an invalid size {self.size!r}")

    @classmethod
    def from_dict(cls, d: object) -> Descriptor:
        if not isinstance(d, dict):
            raise errors.ManifestError(f"descriptor is not an object: {str(d)[:80]}")
        try:
            urls = d.get("urls") or ()
            return cls(
                media_type=str(d.get("mediaType", "")),
                digest=digests.validate(d.get("digest")),
                size=d["size"],
                annotations=dict(d.get("annotations") or {}),
                platform=d.get("platform"),
                urls=tuple(str(u) for u in urls),
            )
        except KeyError as e:
            raise errors.ManifestError(f"descriptor lacks {e.args[0]!r}") from None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = dict(self.platform)
        return out


@dataclass(frozen=True)
class Manifest:
    """A manifest or index as the registry stored it: `raw` is byte-exact (its digest is
    `descriptor.digest`), `parsed` the decoded JSON."""

    descriptor: Descriptor
    raw: bytes
    parsed: dict[str, Any] = field(compare=False, hash=False)

    @property
    def media_type(self) -> str:
        return self.descriptor.media_type

    @property
    def is_index(self) -> bool:
        return self.descriptor.media_type in INDEX_TYPES

    @property
    def config(self) -> Descriptor:
        if self.is_index:
            raise errors.ManifestError(f"{self.descriptor.digest} is an index, it has no config")
        return Descriptor.from_dict(self.parsed.get("config"))

    @property
    def layers(self) -> list[Descriptor]:
        if self.is_index:
            raise errors.ManifestError(f"{self.descriptor.digest} is an index, it has no layers")
        layers = self.parsed.get("layers")
        if not isinstance(layers, list):
            raise errors.ManifestError(f"manifest {self.descriptor.digest} has no layers list")
        return [Descriptor.from_dict(x) for x in layers]

    @property
    def manifests(self) -> list[Descriptor]:
        if not self.is_index:
            raise errors.ManifestError(f"{self.descriptor.digest} is not an index")
        ms = self.parsed.get("manifests")
        if not isinstance(ms, list):
            raise errors.ManifestError(f"index {self.descriptor.digest} has no manifests list")
        return [Descriptor.from_dict(x) for x in ms]

    @classmethod
    def from_bytes(cls, raw: bytes, media_type: str | None = None) -> Manifest:
        """Build from bytes you made (for push); media type from the JSON when not given."""
        try:
            parsed = json.loads(raw)
        except ValueError as e:
            raise errors.ManifestError(f"manifest is not valid JSON: {e}") from None
        if not isinstance(parsed, dict):
            raise errors.ManifestError("manifest is not a JSON object")
        mt = media_type or parsed.get("mediaType")
        if not isinstance(mt, str) or not mt:
            raise errors.ManifestError("manifest has no mediaType; pass media_type=")
        return cls(Descriptor(mt, digests.compute(raw), len(raw)), raw, parsed)
