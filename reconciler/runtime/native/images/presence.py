"""Whether the native engine holds the image a tag names now, without opening the image store (#21).

The re-pull at the floor: `reconcile pull` of a present tag (and the image store's own pull,
in the agent) asks `present` first. It reads the state DB and a file per layer snapshot, and
sends one plain HEAD of the tag (none when the caller says `head=False`, `--pull=missing`):
no registry client (httpx, its CA bundle), no store directories, no debris scan, no lock.
This module imports only the store's names of digests (digestpaths.py: not the content store,
the snapshot store, the GC or the store) and the rules of references (the registry client's
refnames.py: no Reference, no dataclass), so a CLI re-pull loads no more than it reads.
"""

from __future__ import annotations

import collections
import os

from reconciler.runtime.native.images import digestpaths

# annotations only, and no dataclass: `dataclasses`, `typing`, `pathlib`, `json` and the content
# store's `shutil` were ~150 M instructions of a CLI re-pull's ~210 M (#21)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from reconciler.runtime.native.config import NativeConfig

__all__ = ["Present", "complete", "head", "platform_matches", "present", "present_at", "stored"]

_STORED = ("SELECT r.image_id, r.digest, i.layers, i.index_digest FROM image_refs r JOIN images i ON i.id = r.image_id"
           " WHERE r.ref = ?")
_PULLED = _STORED + " AND r.local = 0"      # (a root from before the column: no row, the full pull adds it)


class Present(collections.namedtuple("Present", ("image_id", "digest", "shown", "repo_tag"))):
    """A stored image that `reference` names now (see `present`): its id, the digest the tag
    resolved to when it was pulled (index or manifest), how `reconcile pull` names it, and
    "name:tag" as `resolve` reports it."""

    __slots__ = ()


def present(config: NativeConfig, ref: str, *, head: bool = True, platform: str | None = None) -> Present | None:
    """`present_at` the state root of `config`."""
    return present_at(config.root, ref, head=head, platform=platform)


def present_at(root: str | os.PathLike[str], ref: str, *, head: bool = True,
               platform: str | None = None) -> Present | None:
    """The re-pull at the floor (#21): the stored image the tag `ref` names, complete (its
    config and layer blobs there and every layer snapshot committed), read from the state DB and a stat per
    layer without opening the image store (no directory made, no debris scan, no registry
    client); with `head`, only if one plain HEAD of the tag answers the digest it was pulled
    at. None means "ask the full pull": not stored, not complete, not a tag, the tag moved, or
    the HEAD was not answered plainly (a 401 of a registry that wants a token, TLS, a redirect,
    any error), or the image was chosen from an index for another platform than `platform`
    ("os/arch[/variant]"; None: this host's, `platform_matches`), so no answer here is ever
    wrong, only sometimes not given. The reference's rules are refnames.py's: no Reference (a
    dataclass) is made."""
    from reconciler.registry_client.refnames import api_host, text

    parts = _tag_of(ref)
    if parts is None:
        return None
    registry, repository, tag = parts
    name = f"{registry}/{repository}:{tag}"
    row = _stored(root, name, pulled=head)
    if row is None:
        return None
    image_id, digest, index_digest = row
    if index_digest == digest and not _chosen_for(root, image_id, platform):
        return None
    if head and _head_digest(api_host(registry), repository, tag) != digest:
        return None
    return Present(image_id, digest, text(registry, repository, tag, None), name)


def head(ref: str) -> str | None:
    """The digest the tag `ref` names at its registry now, from one plain HEAD (`_head_digest`):
    a pass's tag lookup at the floor (#21: without it, a no-op `--once` whose cached digest had
    expired imported httpx and built its TLS context to send that one request). None when `ref`
    names no tag or the HEAD is not answered plainly (a token wanted, TLS, an error): then the
    registry client asks, with its credentials and retries."""
    from reconciler.registry_client.refnames import api_host

    parts = _tag_of(ref)
    return None if parts is None else _head_digest(api_host(parts[0]), parts[1], parts[2])


def _tag_of(ref: str) -> tuple[str, str, str] | None:
    """(registry, repository, tag) of a reference by tag alone; None for a digest or an invalid
    reference. By refnames.py's rules: no Reference (a dataclass) is made."""
    # the modules by their names: the registry client package's lazy attributes import importlib
    from reconciler.registry_client.errors import InvalidReference
    from reconciler.registry_client.refnames import split

    try:
        registry, repository, tag, digest = split(ref)
    except InvalidReference:
        return None
    return None if tag is None or digest else (registry, repository, tag)


def stored(root: str | os.PathLike[str], name: str, *, pulled: bool = False) -> tuple[str, str] | None:
    """The image id and the digest the tag `name` ("name:tag", as the store records it) has in
    the state DB of `root`, if that image is complete (its config blob, every layer blob and
    every layer snapshot there: `complete`); None otherwise, or when the DB cannot be read (dbformat.query:
    read-only, its format checked). `pulled`: only a tag pulled or pushed as `name` (a tag made
    here that the registry confirms becomes the registry's through the store's full pull)."""
    row = _stored(root, name, pulled=pulled)
    return None if row is None else row[:2]


def _stored(root: str | os.PathLike[str], name: str, *, pulled: bool) -> tuple[str, str, str | None] | None:
    """`stored`, and the index the image was chosen from (None: none)."""
    from reconciler import dbformat, jsonscan

    rows = dbformat.query(os.path.join(root, "state.db"), _PULLED if pulled else _STORED, (name,), timeout=5.0)
    if not rows:
        return None
    image_id, digest, layers_json = str(rows[0][0]), str(rows[0][1]), str(rows[0][2])
    index_digest = None if rows[0][3] is None else str(rows[0][3])
    layers = jsonscan.loads(layers_json)
    chains = [str(d["chain_id"]) for d in layers]
    blobs = [image_id, *(str(d["digest"]) for d in layers)]     # push and save send the layer blobs
    return (image_id, digest, index_digest) if complete(root, blobs, chains) else None


# the host's machine names that need no normalising beyond this (else platforms.normalize)
_PLAIN_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "s390x": "s390x", "ppc64le": "ppc64le", "riscv64": "riscv64"}


def platform_matches(config: Mapping[str, Any], platform: str | None) -> bool:
    """Whether the image config `config` (its os, architecture, variant) is for `platform`
    ("os/arch[/variant]", as `pull --platform` takes it; None: this host's, as a pull without
    it chooses). Normalised as the registry client's platforms.py does (x86_64 is amd64, arm64's
    v8 is none, ...); that module (a dataclass) is loaded only when this host's plain name or
    the config's variant does not settle it."""
    got = (str(config.get("os") or ""), str(config.get("architecture") or ""), str(config.get("variant") or ""))
    if platform is None:
        plain = _PLAIN_ARCH.get(os.uname().machine)
        if plain is not None and not got[2]:
            return got[:2] == ("linux", plain)
    from reconciler.registry_client import platforms

    want = platforms.host() if platform is None else platforms.normalize(*[*platform.split("/"), "", ""][:3])
    return platforms.normalize(*got) == want


def _chosen_for(root: str | os.PathLike[str], image_id: str, platform: str | None) -> bool:
    """Whether the stored image `image_id` (its config blob) is for `platform` (`platform_matches`)."""
    from reconciler import jsonscan

    try:
        with open(os.path.join(root, "blobs", "sha256", digestpaths.digest_hex(image_id)), encoding="utf-8") as f:
            config = jsonscan.loads(f.read())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and platform_matches(config, platform)


def complete(root: str | os.PathLike[str], blobs: Sequence[str], chains: Sequence[str]) -> bool:
    """Whether the store at `root` holds the blobs `blobs` and the committed layer snapshots
    `chains` (ChainIDs): a stat per blob, a small read per snapshot."""
    store = os.path.join(root, "snapshots")
    for chain in chains:
        name = digestpaths.digest_hex(chain)[:digestpaths.SNAPSHOT_NAME_LEN]
        try:
            with open(os.path.join(store, name, "chainid"), encoding="utf-8") as f:
                if f.read() != chain:
                    return False
        except OSError:
            return False
    return all(os.path.exists(os.path.join(root, "blobs", "sha256", digestpaths.digest_hex(b))) for b in blobs)


def _head_digest(host: str, repository: str, tag: str) -> str | None:
    """Docker-Content-Digest of one unauthenticated HEAD of the tag at the registry API `host`,
    with the stdlib (the registry client's httpx and its CA bundle cost more than the request);
    https verified against the system's trust store, plain http only where the client uses it
    (loopback), over a bare socket (http.client imports ssl, ~40 ms, for nothing there)."""
    from reconciler.registry_client.mediatypes import ACCEPT_MANIFESTS
    from reconciler.registry_client.refnames import is_loopback

    plain = is_loopback(host)
    path = f"/v2/{repository}/manifests/{tag}"
    headers = {"Accept": ACCEPT_MANIFESTS, "User-Agent": "reconciler"}
    try:
        return _plain_head(host, path, headers) if plain else _tls_head(host, path, headers)
    except (OSError, ValueError):
        return None


def _plain_head(host: str, path: str, headers: Mapping[str, str]) -> str | None:
    name, port = host, 80
    if ":" in host and not host.endswith("]"):
        name, _, number = host.rpartition(":")
        port = int(number)
    # the host as bytes: a str is encoded with the idna codec (unicodedata, stringprep: ~2 ms
    # of imports); a loopback host is ASCII, else UnicodeEncodeError (a ValueError) says "no answer"
    sock = _connect(name.strip("[]").encode("ascii"), port)
    try:
        lines = [f"HEAD {path} HTTP/1.1", f"Host: {host}", "Connection: close",
                 *(f"{k}: {v}" for k, v in headers.items())]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        got = b""
        while b"\r\n\r\n" not in got and len(got) < 65536:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
    finally:
        sock.close()
    head = got.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    if len(head[0].split()) < 2 or head[0].split()[1] != "200":
        return None
    for line in head[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == "docker-content-digest":
            return value.strip()
    return None


def _connect(host: bytes, port: int) -> Any:
    """A TCP connection to the loopback `host` (10 s timeout), with `_socket`, socket's C core:
    `socket` builds four enums from the platform's constants and imports selectors, more than
    the HEAD itself costs (#21). socket.create_connection's loop: each address in turn."""
    import _socket

    failed: OSError = OSError(f"{host!r} has no address")
    for family, kind, proto, _, address in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(10)
            sock.connect(address)
        except OSError as e:
            sock.close()
            failed = e
            continue
        return sock
    raise failed


def _tls_head(host: str, path: str, headers: Mapping[str, str]) -> str | None:
    import http.client
    import ssl

    conn = http.client.HTTPSConnection(host, timeout=10, context=ssl.create_default_context())
    try:
        conn.request("HEAD", path, headers=dict(headers))
        resp = conn.getresponse()
        return resp.getheader("Docker-Content-Digest") if resp.status == 200 else None
    except http.client.HTTPException:
        return None
    finally:
        conn.close()


