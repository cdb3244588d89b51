"""The rules of image references as plain strings (Docker's distribution/reference normalize.go):
their parsing and normalising, how one is written, where its registry's API is, and whether
that registry is this machine.

    split("nginx")              -> ("docker.io", "library/nginx", "latest", None)
    text(*split("nginx"))       -> "docker.io/library/nginx:latest"
    api_host("docker.io")       -> "registry-1.docker.io"

`references.Reference` is these four strings (`references.parse(s)` is `Reference(*split(s))`,
its properties ask these functions); a re-pull of a present tag (runtime/native/images/
presence.py) asks them without it: `dataclasses` costs ~60 M instructions to import, three
times the re-pull's HEAD and lookup (#21).

Which registry and repository a name is, and the default tag, are `reconciler/imagenames.py`'s
(`cut`, `locate`): the one rule the observed state and the planner compare references by too;
this module adds the validation. Nothing else imported at load but the registry client's errors
(its digest rules when a reference has a digest, `ipaddress` when a host is asked about).
"""

from __future__ import annotations

from reconciler import imagenames
from reconciler.imagenames import DEFAULT_REGISTRY, DEFAULT_TAG

# the module itself, not the package's lazy attribute (its __getattr__ imports importlib)
from reconciler.registry_client.errors import InvalidDigest, InvalidReference

__all__ = ["DEFAULT_REGISTRY", "DEFAULT_TAG", "DOCKER_HUB_API_HOST", "NAME_TOTAL_MAX", "api_host", "check_tag",
           "is_domain", "is_loopback", "is_path_component", "is_tag", "split", "text"]

DOCKER_HUB_API_HOST = "registry-1.docker.io"

# The rules of normalize.go's regular expressions, checked with sets of characters: `re` (its
# import, enum's, and compiling them) was ~18 M instructions of a re-pull's ~95 M (#21).
# tests/registry_client/test_references.py checks each against its expression:
#   domain          ^(?:C(?:\.C)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$   C: [a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
#   path component  ^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$
#   tag             ^[\w][\w.-]{0,127}$
#   image id        ^[a-f0-9]{64}$
_DIGITS = frozenset("0123456789")
_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz") | _DIGITS
_ALNUM = _LOWER_ALNUM | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_HOST_LABEL = _ALNUM | {"-"}
_IPV6 = _DIGITS | frozenset("abcdefABCDEF:")
_HEX = _DIGITS | frozenset("abcdef")
NAME_TOTAL_MAX = 255


def is_domain(host: str) -> bool:
    """Whether `host` is a registry host: dot-separated labels of letters, digits and inner
    dashes, or a bracketed IPv6 address; then optionally `:port`."""
    if host.startswith("["):
        address, bracket, port = host[1:].partition("]")
        if not (bracket and address and _IPV6.issuperset(address)):
            return False
        return not port or (port[0] == ":" and _is_port(port[1:]))
    name, colon, port = host.partition(":")
    if colon and not _is_port(port):
        return False
    return all(label and label[0] in _ALNUM and label[-1] in _ALNUM and _HOST_LABEL.issuperset(label)
               for label in name.split("."))


def _is_port(port: str) -> bool:
    return bool(port) and _DIGITS.issuperset(port)


def is_path_component(comp: str) -> bool:
    """Whether `comp` is one component of a repository path: runs of [a-z0-9] joined by ".",
    "_", "__" or dashes."""
    if not comp or comp[0] not in _LOWER_ALNUM or comp[-1] not in _LOWER_ALNUM:
        return False
    separator = ""
    for c in comp:
        if c in _LOWER_ALNUM:
            if separator and separator not in (".", "_", "__") and separator.strip("-"):
                return False
            separator = ""
        elif c in "._-":
            separator += c
        else:
            return False
    return True


def is_tag(tag: str) -> bool:
    """Whether `tag` is 1-128 word characters, dots and dashes, not starting with . or -."""
    return 0 < len(tag) <= 128 and _is_word(tag[0]) and all(_is_word(c) or c in ".-" for c in tag[1:])


def _is_word(c: str) -> bool:
    return c.isalnum() or c == "_"          # what `\w` is in a str pattern


def check_tag(tag: str) -> None:
    """InvalidReference unless `tag` is 1-128 of [A-Za-z0-9_.-], not starting with . or -."""
    if not is_tag(tag):
        raise InvalidReference(
            f"invalid tag {tag!r}: tags are 1-128 of [A-Za-z0-9_.-], not starting with . or -"
        )


def split(s: str) -> tuple[str, str, str | None, str | None]:
    """(registry, repository, tag, digest) of `[registry/]name[:tag][@digest]`, normalised; tag
    None only when a digest is given without one. InvalidReference when it cannot be parsed."""
    if not isinstance(s, str) or not s:
        raise InvalidReference("empty image reference", hint="write e.g. nginx:1.27 or registry.example/app@sha256:…")
    if s != s.strip() or any(c.isspace() for c in s):
        raise InvalidReference(f"invalid image reference {s!r}: contains whitespace")
    rest, tag, digest = imagenames.cut(s)
    if digest is not None:
        _check_digest(s, digest)
    if tag is not None:
        check_tag(tag)
    if not rest:
        raise InvalidReference(f"invalid image reference {s!r}: no repository name")
    registry, path = _registry_and_path(s, rest)
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return registry, path, tag, digest


def _check_digest(s: str, digest: str) -> None:
    from reconciler.registry_client.digests import validate

    try:
        validate(digest)
    except InvalidDigest as e:
        raise InvalidReference(f"invalid image reference {s!r}: {e.message}") from None


def _registry_and_path(s: str, rest: str) -> tuple[str, str]:
    """The registry and repository of `rest` (the reference `s` without tag or digest)."""
    registry, path = imagenames.locate(rest)
    if not is_domain(registry):         # docker.io where none is named: only a named one can fail
        raise InvalidReference(f"invalid registry host {registry!r} in {s!r}")
    for comp in path.split("/"):
        if not is_path_component(comp):
            low = " (repository names must be lowercase)" if comp.lower() != comp else ""
            raise InvalidReference(f"invalid repository name {path!r} in {s!r}{low}")
    if registry == DEFAULT_REGISTRY and _is_hex64(path.removeprefix("library/")):
        raise InvalidReference(
            f"invalid reference {s!r}: a 64-hex string is an image ID, not a repository name"
        )
    if len(registry) + 1 + len(path) > NAME_TOTAL_MAX:
        raise InvalidReference(f"repository name too long (over {NAME_TOTAL_MAX} chars): {s!r}")
    return registry, path


def _is_hex64(s: str) -> bool:
    return len(s) == 64 and _HEX.issuperset(s)


def text(registry: str, repository: str, tag: str | None, digest: str | None) -> str:
    """The reference written out: `registry/repository[:tag][@digest]`."""
    s = f"{registry}/{repository}"
    if tag:
        s += f":{tag}"
    if digest:
        s += f"@{digest}"
    return s


def api_host(registry: str) -> str:
    """host[:port] of the registry's HTTP API."""
    return DOCKER_HUB_API_HOST if registry == DEFAULT_REGISTRY else registry


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
