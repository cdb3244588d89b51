"""OCI Distribution client on httpx. Imports nothing else of reconciler but two standalone modules
(`_dataclass`, and `imagenames`: the reference rule it shares with the planner), so it could ship alone.

Modules (import the module, use its names):

* `references`: `parse(s) -> Reference(registry, repository, tag, digest)`, normalised as
  Docker does (`nginx` → `docker.io/library/nginx:latest`); `str(ref)` is canonical,
  `ref.api_host` the HTTP host (registry-1.docker.io for docker.io), `ref.reference` the digest
  if any else the tag. Invalid input raises `errors.InvalidReference`.
* `digests`: `validate(d) -> d` (sha256:<64 hex> | sha512:<128 hex>, else InvalidDigest),
  `hasher(d)`, `compute(data)`.
* `models`: `Descriptor(media_type, digest, size, annotations, platform, urls)`,
  `Manifest(descriptor, raw, parsed)` (`.is_index`, `.config`, `.layers`, `.manifests`,
  `Manifest.from_bytes(raw)`), media type constants.
* `platforms`: `Platform(os, architecture, variant)`, `normalize`, `host()`, `select`.
* `credentials`: `CredentialStore(static=, docker_config=, auth_file=, env=)` reading
  DOCKER_AUTH_CONFIG, ~/.docker/config.json (credHelpers, credsStore, auths) and Podman's
  auth.json; `Credential(username, password, identity_token)`; `save`/`erase` write the
  Docker config's side as `docker login`/`logout` do (`reconcile login`).
* `client`: `RegistryClient` = `session.Session` (the HTTP client, auth, errors, retries) +
  `pull.Pulling` (manifests, blobs, tags) + `push.Pushing` (uploads), one module each.
  `RegistryClient(*, credentials=None, transport=None, timeout=30, retries=4,
  backoff=0.5, max_backoff=20, sleep=time.sleep, insecure_hosts=(), max_retry_after=60,
  max_manifest_size=4*1048*1048, max_connections=16, download_concurrency=3,
  clock=time.monotonic)`; a context
  manager; thread-safe (one pooled httpx.Client). Loopback hosts (127.0.0.0/8, localhost,
  [::1]) and `insecure_hosts` use http, all others https; a Bearer token realm too, and also
  on the host of a registry in `insecure_hosts` (see `auth`).
    - `resolve(ref) -> Descriptor` (HEAD + Docker-Content-Digest, GET fallback)
    - `get_manifest(ref, reference=None) -> Manifest` (byte-exact, verified, size-capped,
      Content-Type checked against mediaType, schema1 refused)
    - `select_platform(index, os="linux", arch=None (host), variant="") -> Descriptor`
    - `pull_plan(ref, platform=None) -> PullPlan(reference, manifest, index, config, layers)`
    - `fetch_blob(ref, descriptor, sink, *, offset=0, prefix_hash=None, progress=None)`:
      streams into `sink` (callable(bytes) or binary file), hashing as it goes, resuming with
      Range; returns only when the digest matched. **The sink may have received bytes of an
      attempt that then failed** (DigestMismatch etc.): write to an ingest file and commit
      (rename into the store) only after fetch_blob returns.
    - `fetch_blobs(ref, descriptors, open_sink, concurrency=None)`, `fetch_blob_bytes(...)`
    - push: `blob_exists`, `push_blob(ref, desc, source, mount_from=, chunk_size=)`,
      `push_manifest(ref, manifest, tag=None)`, `push_image(ref, manifest, blobs, children=,
      tags=)` (blobs, then child manifests, then the manifest, tags last)
    - `list_tags(ref, page_size=None, limit=None)` with Link pagination, each page read up to MAX_TAGS_PAGE_SIZE.
    - `check_login(registry) -> identity token | None`: `docker login`'s check (GET /v2/).
* `errors`: RegistryError(code, hint, status, temporary) and its subclasses (see errors.py).
* `urls`: `open_url(url, timeout=30)`: a plain GET of an http(s) URL as a stream, until the
  block ends (`docker import URL`: no registry, no auth).
"""

from __future__ import annotations

# annotations only (`typing` costs ~30 M instructions to import: a re-pull asks refnames alone, #21)
TYPE_CHECKING = False
if TYPE_CHECKING:  # the names below are loaded on first use: httpx costs ~0.2 s at start-up
    from typing import Any

    from reconciler.registry_client import (
        auth,
        client,
        credentials,
        digests,
        errors,
        mediatypes,
        models,
        platforms,
        pull,
        push,
        references,
        refnames,
        session,
        urls,
    )
    from reconciler.registry_client.client import RegistryClient
    from reconciler.registry_client.credentials import Credential, CredentialStore
    from reconciler.registry_client.errors import RegistryError
    from reconciler.registry_client.models import Descriptor, Manifest
    from reconciler.registry_client.pull import PullPlan
    from reconciler.registry_client.references import Reference

_NAMES = {
    "PullPlan": "pull",
    "RegistryClient": "client",
    "Credential": "credentials",
    "CredentialStore": "credentials",
    "RegistryError": "errors",
    "Descriptor": "models",
    "Manifest": "models",
    "Reference": "references",
}
_MODULES = {"auth", "client", "credentials", "digests", "errors", "mediatypes", "models", "platforms", "pull", "push",
            "references", "refnames", "session", "urls"}


def __getattr__(name: str) -> Any:
    """Import submodules and re-exported names lazily (PEP 562)."""
    import importlib

    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Credential",
    "CredentialStore",
    "Descriptor",
    "Manifest",
    "PullPlan",
    "Reference",
    "RegistryClient",
    "RegistryError",
    "auth",
    "client",
    "credentials",
    "digests",
    "errors",
    "mediatypes",
    "models",
    "platforms",
    "pull",
    "push",
    "references",
    "refnames",
    "session",
    "urls",
]
