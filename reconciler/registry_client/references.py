"""Image references, parsed and normalised as Docker does (distribution/reference normalize.go).

    parse("nginx")                   -> docker.io/library/nginx:latest
    parse("index.docker.io/x/y")     -> docker.io/x/y:latest
    parse("localhost:5000/x")        -> localhost:5000/x:latest
    parse("[::1]:5000/x@sha256:...") -> [::1]:5000/x@sha256:...   (no default tag with a digest)
    parse("x:1@sha256:...")          -> keeps both; the digest wins for pulls (`ref.reference`)

The first path component is a registry only when it is `localhost` or contains "." or ":".
`ref.api_host` is where the HTTP API lives (registry-1.docker.io for docker.io). The rules
themselves are refnames.py's, on plain strings (a re-pull asks them without a dataclass, #21).
"""

from __future__ import annotations

from reconciler import imagenames
from reconciler._dataclass import dataclass, replace
from reconciler.registry_client import digests, refnames
from reconciler.registry_client.refnames import DEFAULT_REGISTRY, DEFAULT_TAG, is_loopback

__all__ = ["DEFAULT_REGISTRY", "DEFAULT_TAG", "Reference", "is_loopback", "parse"]


@dataclass(frozen=True)
class Reference:
    """A normalised reference. `tag` is None only when a digest is given without a tag."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """`registry/repository` (no tag or digest)."""
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def api_host(self) -> str:
        """host[:port] of the registry's HTTP API."""
        return refnames.api_host(self.registry)

    def with_digest(self, digest: str) -> Reference:
        return replace(self, digest=digests.validate(digest))

    def with_tag(self, tag: str) -> Reference:
        refnames.check_tag(tag)
        return replace(self, tag=tag, digest=None)

    @property
    def familiar(self) -> str:
        """How Docker shows it to people: `nginx:latest`, `me/app:1`, `localhost:5000/x:1` (the
        docker.io registry and its `library/` left out)."""
        return imagenames.familiar(str(self))

    def __str__(self) -> str:
        return refnames.text(self.registry, self.repository, self.tag, self.digest)


def parse(s: str) -> Reference:
    """Parse and normalise `[registry/]name[:tag][@digest]`; InvalidReference when it cannot."""
    return Reference(*refnames.split(s))
