"""Which repository an image reference names: Docker's normalisation, written once.

`busybox`, `busybox:latest`, `library/busybox`, `docker.io/busybox` and
`index.docker.io/library/busybox` all name `docker.io/library/busybox:latest`. Every part that
compares references by what they name asks this module: the registry client's parse
(`registry_client/refnames.py` `split`, which validates and then cuts and locates here),
the observed state's keys (`state/observed.py` `normalize_ref` is `key`), through which the
planner finds a desired image among the local ones, and the fake engine's registry and tags.
Two rules (one per side) made a manifest's `docker.io/busybox:1` a different image from the
`docker.io/library/busybox:1` the native store records: a pull planned on every pass.

It validates nothing and never raises: `key` of a string that is no reference (Docker's
`<none>:<none>`) is a key that no valid reference has. Stdlib-free and importing nothing of
reconciler, so the pure planner and the registry client may both use it (import-linter).

    locate("busybox")                    -> ("docker.io", "library/busybox")
    locate("localhost:5000/x")           -> ("localhost:5000", "x")
    key("docker.io/busybox:1")           -> "docker.io/library/busybox:1"
    key("busybox:1@sha256:...")          -> "docker.io/library/busybox@sha256:..."  (the digest decides)
"""

from __future__ import annotations

__all__ = ["DEFAULT_REGISTRY", "DEFAULT_TAG", "LEGACY_REGISTRY", "cut", "familiar", "familiar_tagged", "key", "locate"]

DEFAULT_REGISTRY = "docker.io"
LEGACY_REGISTRY = "index.docker.io"     # Docker's old name of Docker Hub: the same registry
DEFAULT_TAG = "latest"


def cut(ref: str) -> tuple[str, str | None, str | None]:
    """(name, tag, digest) of `name[:tag][@digest]`: the digest after the first "@", the tag
    after the last ":" that follows the last "/" (a registry's port is no tag); None where
    there is none ("" where the separator is there and nothing follows)."""
    name, at, digest = ref.partition("@")
    slash, colon = name.rfind("/"), name.rfind(":")
    tag = None
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
    return name, tag, digest if at else None


def locate(name: str) -> tuple[str, str]:
    """(registry, repository) of a reference's name (no tag or digest), as Docker reads it: the
    first component is a registry only when it is `localhost` or has a "." or ":"; otherwise,
    and for index.docker.io, the registry is docker.io, where a one-component name is in
    `library/`."""
    first, sep, remainder = name.partition("/")
    if sep and (first == "localhost" or "." in first or ":" in first):
        registry, repository = first, remainder
    else:
        registry, repository = DEFAULT_REGISTRY, name
    if registry == LEGACY_REGISTRY:
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = f"library/{repository}"
    return registry, repository


def familiar(ref: str) -> str:
    """How Docker shows a reference to people (its FamiliarString): `nginx:latest`, `me/app:1`,
    `localhost:5000/x:1` (docker.io, and `library/` before a one-component name, left out); a
    tag or digest only as given. `images`, the Engine API and the registry client show this."""
    name, tag, digest = cut(ref)
    registry, repository = locate(name)
    if registry != DEFAULT_REGISTRY:
        shown = f"{registry}/{repository}"
    elif repository.startswith("library/") and "/" not in repository[len("library/"):]:
        shown = repository[len("library/"):]
    else:
        shown = repository
    return shown + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def familiar_tagged(ref: str) -> str:
    """A reference as Docker's API lists it: `familiar`, a name without a tag or digest as
    NAME:latest (as dockerd names what it looked for). The Engine API's lists and `images -f`."""
    _, tag, digest = cut(ref)
    return familiar(ref if tag is not None or digest is not None else f"{ref}:{DEFAULT_TAG}")


def key(ref: str) -> str:
    """The one form of what `ref` names: `registry/repository:tag` (`latest` by default), or
    `registry/repository@digest` when it has a digest (a tag beside it says nothing more)."""
    name, tag, digest = cut(ref)
    registry, repository = locate(name)
    if digest is not None:
        return f"{registry}/{repository}@{digest}"
    return f"{registry}/{repository}:{DEFAULT_TAG if tag is None else tag}"
