"""The id of one object of the manifests: a kind and a name (#15: one type instead of strings
formatted in one place and split in another).

    ResourceId("Container", "web")          str() -> "container:web" (a plan's `resource`)
    ResourceId.parse("network:shop")        -> ResourceId("Network", "shop")
    ResourceId.container("web").key         -> "Container/web" (the key a revision's spec hashes
                                               are kept under on disk)
"""

from __future__ import annotations

from reconciler._dataclass import dataclass

__all__ = ["KINDS", "ResourceId"]

KINDS = ("Container", "Network", "Volume", "Image")


@dataclass(frozen=True, order=True)
class ResourceId:
    """One object: its kind (a manifest's: Container, Network, Volume, Image; or Revision, what a
    pass refused as a whole) and its name (an image's: its reference, which may hold ':' and '/')."""

    kind: str
    name: str

    @classmethod
    def parse(cls, text: str) -> ResourceId:
        """The id `str()` wrote ("container:web"); ValueError for text that is not one."""
        prefix, sep, name = text.partition(":")
        if not sep or not prefix.isalpha() or not name:
            raise ValueError(f"{text!r} is not a resource id (KIND:NAME, KIND like "
                             f"{', '.join(k.lower() for k in KINDS)})")
        return cls(prefix.title(), name)

    @classmethod
    def container(cls, name: str) -> ResourceId:
        return cls("Container", name)

    @classmethod
    def network(cls, name: str) -> ResourceId:
        return cls("Network", name)

    @classmethod
    def volume(cls, name: str) -> ResourceId:
        return cls("Volume", name)

    @classmethod
    def image(cls, ref: str) -> ResourceId:
        return cls("Image", ref)

    @property
    def key(self) -> str:
        """"Container/web": how a revision's kept spec hashes name it (state/revisions.py)."""
        return f"{self.kind}/{self.name}"

    def __str__(self) -> str:
        return f"{self.kind.lower()}:{self.name}"
