"""Whether the native engine holds the image a tag names now, without opening the image store (#21).

The re-pull at the floor: `reconcile pull` of a present tag (and the image store's own pull,
in the agent) asks `present` first. It reads the state DB and a file per layer snapshot, and
sends one plain HEAD of the tag (none when the caller says `head=False`, `--pull=missing`):
no registry client (httpx, its CA bundle), no store directories, no debris scan, no lock.
This module imports only the content helpers (not the snapshot store, the GC or the store),
so a CLI re-pull loads no more of the engine than it reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler.runtime.native.images import content

if TYPE_CHECKING:
    from pathlib import Path

    from reconciler import registry_client as rc
    from reconciler.runtime.native.config import NativeConfig

__all__ = ["Present", "complete", "present", "present_at", "stored"]


@dataclass(frozen=True)
class Present:
    """A stored image that `reference` names now (see `present`)."""

    image_id: str
    digest: str             # what the tag resolved to when it was pulled (index or manifest)
    shown: str              # how `reconcile pull` names it
    repo_tag: str           # "name:tag", as `resolve` reports it


def present(config: NativeConfig, ref: str, *, head: bool = True) -> Present | None:
    """`present_at` the state root of `config`."""
    return present_at(config.root, ref, head=head)


def present_at(root: Path, ref: str, *, head: bool = True) -> Present | None:
    """The re-pull at the floor (#21): the stored image the tag `ref` names, complete (its
    config blob and every layer snapshot committed), read from the state DB and a stat per
    layer without opening the image store (no directory made, no debris scan, no registry
    client); with `head`, only if one plain HEAD of the tag answers the digest it was pulled
    at. None means "ask the full pull": not stored, not complete, not a tag, the tag moved, or
    the HEAD was not answered plainly (a 401 of a registry that wants a token, TLS, a redirect,
    any error), so no answer here is ever wrong, only sometimes not given."""
    from reconciler.registry_client import errors as rcerrors
    from reconciler.registry_client import references

    try:
        r = references.parse(ref)
    except rcerrors.InvalidReference:
        return None
    if r.tag is None or r.digest:
        return None
    name = f"{r.name}:{r.tag}"
    row = stored(root, name)
    if row is None:
        return None
    image_id, digest = row
    if head and _head_digest(r) != digest:
        return None
    return Present(image_id, digest, str(r), name)


def stored(root: Path, name: str) -> tuple[str, str] | None:
    """The image id and the digest the tag `name` ("name:tag", as the store records it) has in
    the state DB of `root`, if that image is complete (its config blob and every layer
    snapshot there: `complete`); None otherwise, or when the DB cannot be read."""
    if not (root / "state.db").exists():
        return None
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{root / 'state.db'}?mode=ro", uri=True, timeout=5.0)
        try:
            row = conn.execute("SELECT r.image_id, r.digest, i.layers FROM image_refs r JOIN images i"
                               " ON i.id = r.image_id WHERE r.ref = ?", (name,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    if row is None:
        return None
    image_id, digest, layers_json = str(row[0]), str(row[1]), str(row[2])
    chains = [str(d["chain_id"]) for d in json.loads(layers_json)]
    return (image_id, digest) if complete(root, [image_id], chains) else None


def complete(root: Path, blobs: Sequence[str], chains: Sequence[str]) -> bool:
    """Whether the store at `root` holds the blobs `blobs` and the committed layer snapshots
    `chains` (ChainIDs): a stat per blob, a small read per snapshot."""
    store = root / "snapshots"
    for chain in chains:
        try:
            if (store / content.digest_hex(chain)[:content.SNAPSHOT_NAME_LEN] / "chainid").read_text() != chain:
                return False
        except OSError:
            return False
    return all((root / "blobs" / "sha256" / content.digest_hex(b)).exists() for b in blobs)


def _head_digest(r: rc.Reference) -> str | None:
    """Docker-Content-Digest of one unauthenticated HEAD of the tag, with the stdlib (the
    registry client's httpx and its CA bundle cost more than the request); https verified
    against the system's trust store, plain http only where the client uses it (loopback),
    over a bare socket (http.client imports ssl, ~40 ms, for nothing there)."""
    from reconciler.registry_client import models, references

    host = r.api_host
    plain = references.is_loopback(host)
    path = f"/v2/{r.repository}/manifests/{r.tag}"
    headers = {"Accept": models.ACCEPT_MANIFESTS, "User-Agent": "reconciler"}
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


