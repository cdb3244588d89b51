"""Image references, parsed and normalised as Docker does (distribution/reference normalize.go).

    parse("nginx")                   -> docker.io/library/nginx:latest
    parse("index.docker.io/x/y")     -> docker.io/x/y:latest
    parse("localhost:5000/x")        -> localhost:5000/x:latest
    parse("[::1]:5000/x@sha256:...") -> [::1]:5000/x@sha256:...   (no default tag with a digest)
    parse("x:1@sha256:...")          -> keeps both; the digest wins for pulls (`ref.reference`)

The first path component is a registry only when it is `localhost` or contains "." or ":".
`ref.api_host` is where the HTTP API lives (registry-1.docker.io for docker.io).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from reconciler.registry_client import digests, errors

__all__ = ["DEFAULT_REGISTRY", "DEFAULT_TAG", "Reference", "is_loopback", "parse"]

DEFAULT_REGISTRY = "docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
DEFAULT_TAG = "latest"

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$"
)
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")
NAME_TOTAL_MAX = 255


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
        return DOCKER_HUB_API_HOST if self.registry == DEFAULT_REGISTRY else self.registry

    def with_digest(self, digest: str) -> Reference:
        return replace(self, digest=digests.validate(digest))

    def with_tag(self, tag: str) -> Reference:
        _check_tag(tag)
        return replace(self, tag=tag, digest=None)

    @property
    def familiar(self) -> str:
        """How Docker shows it to people: `nginx:latest`, `me/app:1`, `localhost:5000/x:1` (the
        docker.io registry and its `library/` left out)."""
        name = self.name
        if self.registry == DEFAULT_REGISTRY:
            name = self.repository.removeprefix("library/")
        return name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        s = self.name
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s


def _check_tag(tag: str) -> None:
    if not _TAG.fullmatch(tag):
        raise errors.InvalidReference(
            f"invalid tag {tag!r}: tags are 1-128 of [A-Za-z0-9_.-], not starting with . or -"
        )


def parse(s: str) -> Reference:
    """Parse and normalise `[registry/]name[:tag][@digest]`; InvalidReference when it cannot."""
    if not isinstance(s, str) or not s:
        raise errors.InvalidReference("empty image reference", hint="write e.g. nginx:1.27 or registry.example/app@sha256:…")
    if s != s.strip() or any(c.isspace() for c in s):
        raise errors.InvalidReference(f"invalid image reference {s!r}: contains whitespace")
    rest, digest = s, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        try:
            digests.validate(digest)
        except errors.InvalidDigest as e:
            raise errors.InvalidReference(f"invalid image reference {s!r}: {e.message}") from None
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        _check_tag(tag)
    if not rest:
        raise errors.InvalidReference(f"invalid image reference {s!r}: no repository name")
    first, sep, remainder = rest.partition("/")
    if sep and (first == "localhost" or "." in first or ":" in first):
        registry, path = first, remainder
        if not _DOMAIN.fullmatch(registry):
            raise errors.InvalidReference(f"invalid registry host {registry!r} in {s!r}")
    else:
        registry, path = DEFAULT_REGISTRY, rest
    if registry == "index.docker.io":
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    for comp in path.split("/"):
        if not _PATH_COMPONENT.fullmatch(comp):
            low = " (repository names must be lowercase)" if comp.lower() != comp else ""
            raise errors.InvalidReference(f"invalid repository name {path!r} in {s!r}{low}")
    if registry == DEFAULT_REGISTRY and _HEX64.match(path.removeprefix("library/")):
        raise errors.InvalidReference(
            f"invalid reference {s!r}: a 64-hex string is an image ID, not a repository name"
        )
    if len(registry) + 1 + len(path) > NAME_TOTAL_MAX:
        raise errors.InvalidReference(f"repository name too long (over {NAME_TOTAL_MAX} chars): {s!r}")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry=registry, repository=path, tag=tag, digest=digest)


def is_loopback(host: str) -> bool:
    """Whether a registry host (`name[:port]`, `[v6]:port`) is this machine: localhost or a
    loopback address. The registry client speaks plain http to these (and only these, unless
    told a host is insecure); the re-pull's HEAD (images/presence.py) asks the same rule."""
    name = host
    if name.startswith("["):
        name = name[1 : name.find("]")]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
