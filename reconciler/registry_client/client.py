"""RegistryClient: the OCI Distribution API (pull, push, tags) over one pooled httpx.Client.

See the package docstring for the contract. Implementation notes:

* Auth is per API host: a learnt challenge (Basic or Bearer) is applied before each request;
  a 401 re-learns it and retries once. Authorization is only ever attached to requests whose
  URL is on the registry's own API host (never on a redirect or upload Location elsewhere,
  never to a descriptor's `urls`); httpx also drops it on cross-origin redirects.
* Retries: transport errors, 5xx and 408 are retried with backoff (`backoff * 2**n`, capped),
  429 only when `Retry-After` is at most `max_retry_after`; auth, denied and unknown errors
  are not retried.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

import httpx

from reconciler.registry_client import (
    auth,
    credentials,
    digests,
    errors,
    models,
    platforms,
    references,
)

__all__ = ["MAX_MANIFEST_SIZE", "PullPlan", "RegistryClient", "Sink"]

MAX_MANIFEST_SIZE = 4 * 1048 * 1048  # containerd's MaxManifestSize
MAX_CONFIG_SIZE = 16 * 1024 * 1024
MAX_INDEX_DEPTH = 4
_T = TypeVar("_T")


class _Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


Sink = Callable[[bytes], object] | _Writable | IO[bytes]
Progress = Callable[[int, int], object]
BlobSource = bytes | Path | IO[bytes]


@dataclass(frozen=True)
class PullPlan:
    """What pulling one platform of an image needs: the image manifest (byte-exact), the index
    it was chosen from (if any), the verified config bytes and the layer descriptors."""

    reference: references.Reference
    manifest: models.Manifest
    index: models.Manifest | None
    config: bytes
    layers: list[models.Descriptor]


class _Retry(Exception):
    """Internal: this attempt failed in a retryable way."""

    def __init__(self, error: errors.RegistryError, delay: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.delay = delay


def _is_loopback(host: str) -> bool:
    name = host
    if name.startswith("["):
        name = name[1 : name.find("]")]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_of(url: httpx.URL) -> str:
    host = url.host
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{url.port}" if url.port else host


def _media_type(resp: httpx.Response) -> str:
    value: str = resp.headers.get("content-type", "")
    return value.split(";", 1)[0].strip().lower()


class RegistryClient:
    """A client for OCI / Docker v2 registries. Use as a context manager (or call close()).

    Thread-safe: one httpx.Client with a connection pool serves all threads, so several
    fetch_blob calls may run concurrently.

    Args:
        credentials: a CredentialStore (None: anonymous unless a registry asks and the
            default store has credentials; pass `CredentialStore(static={})` to force anonymous).
        transport: an httpx transport to use instead of the network one (tests, proxies).
        timeout: seconds for connect/read/write of each request.
        retries: extra attempts after the first for retryable failures.
        backoff: base delay in seconds; attempt n waits backoff * 2**(n-1), capped at max_backoff.
        sleep: called with the delay (inject a recorder in tests).
        insecure_hosts: hosts spoken to over plain http; loopback hosts (127.0.0.0/8,
            localhost, [::1]) always are.
        max_retry_after: a 429 whose Retry-After exceeds this is raised, not waited for.
        max_manifest_size: manifests larger than this are refused.
        max_connections: size of the connection pool.
        download_concurrency: default parallel downloads of fetch_blobs (docker's default: 3).
        clock: monotonic clock for token expiry.
    """

    def __init__(
        self,
        *,
        credentials: credentials.CredentialStore | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
        insecure_hosts: tuple[str, ...] | list[str] = (),
        max_retry_after: float = 60.0,
        max_manifest_size: int = MAX_MANIFEST_SIZE,
        max_connections: int = 16,
        download_concurrency: int = 3,
        clock: Callable[[], float] = time.monotonic,
        user_agent: str = "reconciler-registry-client/0.1",
    ) -> None:
        self.credentials = credentials if credentials is not None else credentials_default()
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.insecure_hosts = frozenset(insecure_hosts)
        self.max_retry_after = max_retry_after
        self.max_manifest_size = max_manifest_size
        self.download_concurrency = download_concurrency
        self.clock = clock
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(timeout),
            limits=limits,
            headers={"User-Agent": user_agent},
            follow_redirects=False,
            max_redirects=10,
            trust_env=False,
        )
        self._tokens = auth.TokenCache(clock)
        self._challenges: dict[str, auth.Challenge] = {}
        self._lock = threading.Lock()
        # Registry `Warning: 299` headers (deduplicated, for the user; never acted upon) and the
        # last rate-limit headers seen per registry host (ratelimit-limit/-remaining).
        self.warnings: list[str] = []
        self.rate_limits: dict[str, dict[str, str]] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- URLs and auth ---------------------------------------------------------------------

    def base_url(self, host: str) -> str:
        return f"{'http' if self._plain_http(host) else 'https'}://{host}"

    def _plain_http(self, host: str) -> bool:
        """Whether `host` (host[:port]) is spoken to in clear: loopback, or named insecure."""
        return _is_loopback(host) or host in self.insecure_hosts

    def _http_realm_ok(self, realm: httpx.URL, registry_host: str) -> bool:
        """A token realm may be plain http on a host spoken to in clear anyway, or on the host
        (any port) of a registry named insecure; anywhere else credentials would leak."""
        if self._plain_http(_host_of(realm)):
            return True
        return self._plain_http(registry_host) and realm.host == httpx.URL(f"http://{registry_host}").host

    def _url(self, ref: references.Reference, kind: str, tail: str) -> str:
        return f"{self.base_url(ref.api_host)}/v2/{ref.repository}/{kind}/{tail}"

    def _credential(self, ref: references.Reference) -> credentials.Credential | None:
        return self.credentials.get(ref.registry)

    def _auth_header(self, ref: references.Reference, scopes: list[str]) -> str | None:
        host = ref.api_host
        with self._lock:
            challenge = self._challenges.get(host)
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            cred = self._credential(ref)
            if cred is None or cred.identity_token is not None:
                return None
            return auth.basic_header(cred)
        if challenge.scheme == "bearer":
            key = (host, " ".join(sorted(scopes)))
            tok = self._tokens.get(key)
            if tok is None:
                with self._tokens.key_lock(key):
                    tok = self._tokens.get(key)
                    if tok is None:
                        tok = auth.fetch_token(
                            self._http, challenge, scopes, self._credential(ref),
                            registry=ref.registry, clock=self.clock,
                            http_realm_ok=lambda url: self._http_realm_ok(url, host),
                        )
                        self._tokens.put(key, tok)
            return f"Bearer {tok.value}"
        return None

    def _learn(
        self, ref: references.Reference, resp: httpx.Response, scopes: list[str], refused: bool
    ) -> list[str] | None:
        """Learn the challenge of a 401; returns the scopes to use, or None if unusable.
        `refused`: the request carried our credentials/token (so a cached token is stale);
        otherwise a token another thread just fetched is kept."""
        challenges = auth.parse_challenges(resp.headers.get_list("www-authenticate"))
        chosen = next((c for c in challenges if c.scheme == "bearer"), None)
        chosen = chosen or next((c for c in challenges if c.scheme == "basic"), None)
        if chosen is None:
            return None
        host = ref.api_host
        with self._lock:
            self._challenges[host] = chosen
        merged = list(scopes)
        for s in chosen.scopes:
            if s not in merged:
                merged.append(s)
        if refused:
            self._tokens.drop((host, " ".join(sorted(scopes))))
            self._tokens.drop((host, " ".join(sorted(merged))))
        return merged

    def _scopes(self, ref: references.Reference, push: bool = False, extra: tuple[str, ...] = ()) -> list[str]:
        actions = "pull,push" if push else "pull"
        return [f"repository:{ref.repository}:{actions}", *extra]

    def _send(
        self,
        method: str,
        ref: references.Reference,
        url: str,
        *,
        scopes: list[str],
        headers: dict[str, str] | None = None,
        content: bytes | Iterator[bytes] | None = None,
        body_factory: Callable[[], bytes | Iterator[bytes]] | None = None,
        stream: bool = False,
        follow_redirects: bool = False,
    ) -> httpx.Response:
        """One request with auth (and one re-auth on 401). Returns the response (any status);
        raises httpx.TransportError for transport failures. Streamed responses must be closed."""
        target = httpx.URL(url)
        own_host = _host_of(target) == ref.api_host
        for attempt in (0, 1):
            hdrs = dict(headers or {})
            if own_host:
                value = self._auth_header(ref, scopes)
                if value:
                    hdrs["Authorization"] = value
            body = body_factory() if body_factory is not None else content
            req = self._http.build_request(method, target, headers=hdrs, content=body)
            resp = self._http.send(req, stream=stream, follow_redirects=follow_redirects)
            self._note_warnings(resp)
            if resp.status_code != 401 or attempt == 1 or not own_host:
                return resp
            if _host_of(resp.url) != ref.api_host:
                return resp  # a 401 from a redirect target: never send our credentials there
            merged = self._learn(ref, resp, scopes, refused="Authorization" in hdrs)
            if merged is None:
                return resp
            if body_factory is None and content is not None and not isinstance(content, bytes):
                return resp  # a one-shot body cannot be resent
            scopes = merged
            resp.close()
        raise AssertionError("unreachable")

    def _note_warnings(self, resp: httpx.Response) -> None:
        for w in resp.headers.get_list("warning"):
            if w.startswith("299") and w not in self.warnings:
                with self._lock:
                    if w not in self.warnings:
                        self.warnings.append(w)
        limits = {k: resp.headers[k] for k in ("ratelimit-limit", "ratelimit-remaining") if k in resp.headers}
        if limits:
            with self._lock:
                self.rate_limits[_host_of(resp.request.url)] = limits

    # -- errors and retries ------------------------------------------------------------------

    def _error(self, resp: httpx.Response, ref: references.Reference, what: str) -> errors.RegistryError:
        """Translate an error response into our error tree (caller decides about retrying)."""
        status = resp.status_code
        code, message = None, ""
        try:
            if not resp.is_stream_consumed:
                resp.read()
            doc = json.loads(resp.content[:65536]) if resp.content else None
            if isinstance(doc, dict) and isinstance(doc.get("errors"), list) and doc["errors"]:
                first = doc["errors"][0]
                code = str(first.get("code") or "") or None
                message = str(first.get("message") or "")
        except (ValueError, httpx.HTTPError, httpx.StreamError):
            pass
        detail = f" ({code}: {message})" if code else ""
        host = ref.registry
        if status == 401:
            params = {k: v for c in auth.parse_challenges(resp.headers.get_list("www-authenticate"))
                      for k, v in c.params.items()}
            if params.get("error") == "insufficient_scope":
                return errors.Denied(
                    f"{what}: {host} granted less access than needed ({params.get('scope', '?')}){detail}",
                    code=code or "DENIED", status=status,
                    hint=f"the account in use may not do this on {ref.name}; run docker login {host} with one that may",
                )
            cred = self._credential(ref)
            hint = (f"run docker login {host}" if cred is None
                    else f"the stored credentials for {host} were refused; run docker login {host}")
            return errors.Unauthorized(f"{what}: authentication required by {host}{detail}",
                                       code=code, hint=hint, status=status)
        if status == 403:
            return errors.Denied(f"{what}: access denied by {host}{detail}", code=code,
                                 hint=f"check that your account may access {ref.name}; run docker login {host}",
                                 status=status)
        if status == 404:
            return errors.NotFound(f"{what}: not found{detail}", code=code or "NAME_UNKNOWN", status=status)
        if status == 429:
            ra = _retry_after(resp)
            return errors.TooManyRequests(
                f"{what}: {host} is rate limiting requests{detail}", retry_after=ra, code=code,
                hint=f"wait {ra:.0f}s" if ra is not None else "wait, or log in for a higher limit",
                status=status,
            )
        if status >= 500 or status == 408:
            return errors.Unavailable(f"{what}: {host} answered HTTP {status}{detail}", code=code, status=status)
        return errors.RegistryError(f"{what}: {host} answered HTTP {status}{detail}", code=code, status=status)

    def _retryable(self, resp: httpx.Response, ref: references.Reference, what: str) -> None:
        """Raise _Retry for a retryable status (after reading the body), else nothing."""
        if resp.status_code >= 500 or resp.status_code == 408:
            raise _Retry(self._error(resp, ref, what))
        if resp.status_code == 429:
            err = self._error(resp, ref, what)
            assert isinstance(err, errors.TooManyRequests)
            if err.retry_after is not None and err.retry_after <= self.max_retry_after:
                raise _Retry(err, delay=err.retry_after)
            raise err

    def _run(self, what: str, ref: references.Reference, fn: Callable[[int], _T]) -> _T:
        """Run fn(attempt) with bounded retries for _Retry and transport errors."""
        last: errors.RegistryError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
                if isinstance(last, errors.TooManyRequests) and last.retry_after is not None:
                    delay = last.retry_after
                self.sleep(delay)
            try:
                return fn(attempt)
            except _Retry as r:
                last = r.error
            except httpx.TransportError as e:
                last = errors.Unavailable(f"{what}: {ref.api_host}: {type(e).__name__}: {e}")
            except httpx.TooManyRedirects:
                raise errors.RegistryError(f"{what}: too many redirects", code="TOO_MANY_REDIRECTS") from None
        assert last is not None
        last.message += f" (gave up after {self.retries + 1} attempts)"
        raise last

    # -- manifests ---------------------------------------------------------------------------

    def resolve(self, ref: references.Reference | str) -> models.Descriptor:
        """What `ref` points to: HEAD (Docker-Content-Digest) and, if that is not enough, GET."""
        ref = _ref(ref)
        url = self._url(ref, "manifests", ref.reference)
        what = f"resolve {ref}"

        def attempt(_: int) -> models.Descriptor | None:
            resp = self._send("HEAD", ref, url, scopes=self._scopes(ref),
                              headers={"Accept": models.ACCEPT_MANIFESTS}, follow_redirects=True)
            self._retryable(resp, ref, what)
            if resp.status_code == 404:
                raise self._not_found(ref, resp, what)
            if resp.status_code in (405, 501) or resp.status_code >= 400:
                if resp.status_code in (405, 501, 400):
                    return None
                raise self._error(resp, ref, what)
            mt = _media_type(resp)
            _check_manifest_type(mt, ref)
            header = resp.headers.get("docker-content-digest")
            length = resp.headers.get("content-length")
            if not header or not length or not mt:
                return None
            try:
                d = digests.validate(header)
            except errors.InvalidDigest:
                return None
            if ref.digest and d != ref.digest:
                return None  # the registry disagrees with our digest: let GET verify bytes
            size = int(length)
            if size > self.max_manifest_size:
                raise _too_big(ref, size, self.max_manifest_size)
            return models.Descriptor(mt, d, size)

        got = self._run(what, ref, attempt)
        if got is not None:
            return got
        return self.get_manifest(ref).descriptor

    def get_manifest(self, ref: references.Reference | str, reference: str | None = None) -> models.Manifest:
        """The manifest or index for `reference` (a digest or tag; default ref.reference),
        byte-exact. Verified against the requested digest, or against Docker-Content-Digest
        for a tag. Raises ManifestError for schema1, oversize, bad JSON, media type mismatch."""
        ref = _ref(ref)
        want = reference or ref.reference
        by_digest = ":" in want
        if by_digest:
            digests.validate(want)
        else:
            ref.with_tag(want)  # validates the tag
        url = self._url(ref, "manifests", want)
        what = f"get manifest {ref.name}{'@' if by_digest else ':'}{want}"

        def attempt(_: int) -> models.Manifest:
            with contextlib.closing(self._send(
                "GET", ref, url, scopes=self._scopes(ref),
                headers={"Accept": models.ACCEPT_MANIFESTS, "Accept-Encoding": "identity"},
                stream=True, follow_redirects=True,
            )) as resp:
                self._retryable(resp, ref, what)
                if resp.status_code == 404:
                    raise self._not_found(ref, resp, what, tag=None if by_digest else want)
                if resp.status_code != 200:
                    raise self._error(resp, ref, what)
                mt = _media_type(resp)
                _check_manifest_type(mt, ref)
                length = resp.headers.get("content-length")
                if length and length.isdigit() and int(length) > self.max_manifest_size:
                    raise _too_big(ref, int(length), self.max_manifest_size)
                buf = bytearray()
                for chunk in resp.iter_bytes():  # decoded, should a server compress anyway
                    buf += chunk
                    if len(buf) > self.max_manifest_size:
                        raise _too_big(ref, len(buf), self.max_manifest_size)
                raw = bytes(buf)
                header = resp.headers.get("docker-content-digest")
            if by_digest:
                expected = want
            elif header:
                try:
                    expected = digests.validate(header)
                except errors.InvalidDigest:
                    raise errors.ManifestError(f"{what}: the registry sent an invalid Docker-Content-Digest {header[:80]!r}") from None
            else:
                expected = digests.compute(raw)
            algo = expected.split(":", 1)[0]
            actual = digests.compute(raw, algo)
            if actual != expected:
                raise errors.ManifestError(
                    f"{what}: manifest bytes hash to {actual}, expected {expected}",
                    code="DIGEST_INVALID",
                    hint="the registry (or something between) served wrong content; do not use it",
                )
            try:
                parsed = json.loads(raw)
            except ValueError as e:
                raise errors.ManifestError(f"{what}: manifest is not valid JSON ({e})") from None
            if not isinstance(parsed, dict):
                raise errors.ManifestError(f"{what}: manifest is not a JSON object")
            embedded = parsed.get("mediaType")
            if embedded is not None and embedded != mt:
                if embedded in models.DOCKER_SCHEMA1:
                    _check_manifest_type(embedded, ref)
                raise errors.ManifestError(
                    f"{what}: manifest says mediaType {embedded!r} but was served as {mt!r}",
                    hint="refusing an ambiguous manifest (CVE-2021-41190)",
                )
            if parsed.get("schemaVersion") == 1:
                _check_manifest_type(models.DOCKER_SCHEMA1[0], ref)
            return models.Manifest(models.Descriptor(mt, expected, len(raw)), raw, parsed)

        return self._run(what, ref, attempt)

    def select_platform(
        self,
        index: models.Manifest,
        os: str = "linux",
        arch: str | None = None,
        variant: str = "",
    ) -> models.Descriptor:
        """The descriptor in `index` best matching os/arch/variant (arch defaults to the host)."""
        want = platforms.host() if arch is None else platforms.normalize(os, arch, variant)
        if arch is None:
            want = platforms.Platform(os, want.architecture, variant or want.variant)
        return platforms.select(index, want)

    def pull_plan(
        self, ref: references.Reference | str, platform: platforms.Platform | str | None = None
    ) -> PullPlan:
        """Resolve `ref` to one platform's image manifest, fetch and verify its config."""
        ref = _ref(ref)
        want = _platform(platform)
        manifest = self.get_manifest(ref)
        index: models.Manifest | None = None
        depth = 0
        while manifest.is_index:
            depth += 1
            if depth > MAX_INDEX_DEPTH:
                raise errors.ManifestError(f"{ref}: indexes nested deeper than {MAX_INDEX_DEPTH}")
            index = manifest
            chosen = platforms.select(manifest, want)
            manifest = self.get_manifest(ref, chosen.digest)
        if manifest.media_type not in models.MANIFEST_TYPES:
            raise errors.ManifestError(
                f"{ref}: {manifest.media_type!r} is not an image manifest",
                hint="this reference names an artifact, not a runnable image",
            )
        config_desc = manifest.config
        if config_desc.size > MAX_CONFIG_SIZE:
            raise errors.ManifestError(f"{ref}: config blob of {config_desc.size} bytes is too large")
        buf = io.BytesIO()
        self.fetch_blob(ref, config_desc, buf)
        return PullPlan(ref, manifest, index, buf.getvalue(), manifest.layers)

    def _not_found(
        self, ref: references.Reference, resp: httpx.Response, what: str, tag: str | None = None
    ) -> errors.RegistryError:
        err = self._error(resp, ref, what)
        tag = tag if tag is not None else (None if ref.digest else ref.tag)
        if tag is None:
            err.hint = f"no manifest with that digest in {ref.name}"
            return err
        try:
            tags = self.list_tags(ref, limit=200)
        except errors.NotFound:
            err.message = f"repository not found: {ref.name} (looking for tag {tag})"
            err.code = "NAME_UNKNOWN"
            err.hint = f"check the name; if the repository is private, run docker login {ref.registry}"
            return err
        except errors.RegistryError:
            err.message = f"tag not found: {ref.name}:{tag}"
            err.hint = "the repository does not exist, or is private (run docker login " + ref.registry + ")"
            return err
        shown = ", ".join(tags[:20]) + (", …" if len(tags) > 20 else "")
        err.message = f"tag not found: {ref.name}:{tag}; available tags: {shown or 'none'}"
        err.code = "MANIFEST_UNKNOWN"
        return err

    # -- blobs -------------------------------------------------------------------------------

    def fetch_blob(
        self,
        ref: references.Reference | str,
        descriptor: models.Descriptor,
        sink: Sink,
        *,
        offset: int = 0,
        prefix_hash: Any = None,
        progress: Progress | None = None,
    ) -> None:
        """Stream the blob into `sink` (a callable taking bytes, or a binary file), hashing as
        it goes; returns only when all `descriptor.size` bytes hashed to `descriptor.digest`.

        The sink may have received bytes of an attempt that then failed (DigestMismatch,
        SizeMismatch, Unavailable...): write into an ingest file and commit it only after
        fetch_blob returns. Transfers resume with `Range` after transport errors and short
        reads (a server that ignores Range is handled by skipping the bytes already had). When
        the digest fails after a resume and the sink is a seekable file, the sink is rewound
        and truncated to 0 and the blob fetched once more from the start; otherwise the
        mismatch is raised. Bytes past `size` are never passed on (SizeMismatch).

        `progress(done, size)` is called after each chunk written and before each retry; an
        exception it raises ends the transfer there (how a caller cancels a download).

        To continue an earlier partial download pass `offset` (bytes the sink already holds)
        and `prefix_hash`, a hashlib object already fed those bytes (a file sink must be
        positioned at `offset`). Blob `urls` (foreign layers) are never used.
        """
        ref = _ref(ref)
        digest = digests.validate(descriptor.digest)
        size = descriptor.size
        write: Callable[[bytes], object] = sink.write if hasattr(sink, "write") else sink
        if offset:
            if prefix_hash is None or offset < 0 or offset > size:
                raise ValueError("offset needs prefix_hash (a hashlib object fed the first `offset` bytes)")
            h = prefix_hash
        else:
            h = digests.hasher(digest)
        state = {"written": offset, "resumed": offset > 0, "restarted": False}
        url = self._url(ref, "blobs", digest)
        what = f"fetch blob {digest} of {ref.name}"

        def attempt(n: int) -> None:
            nonlocal h
            start = state["written"]
            if n and progress is not None:
                progress(start, size)   # before a retry too: a caller that is stopping can raise here
            headers = {"Accept-Encoding": "identity"}
            if start:
                headers["Range"] = f"bytes={start}-"
                state["resumed"] = True
            with contextlib.closing(self._send(
                "GET", ref, url, scopes=self._scopes(ref), headers=headers,
                stream=True, follow_redirects=True,
            )) as resp:
                self._retryable(resp, ref, what)
                if resp.status_code == 416 and start == size:
                    pass  # we already have every byte
                elif resp.status_code == 404 and descriptor.urls:
                    raise errors.NotFound(
                        f"{what}: not in the registry; it is a foreign layer at {descriptor.urls[0]}",
                        code="BLOB_UNKNOWN",
                        hint="foreign (non-distributable) layers are not fetched; mirror the image with skopeo copy --dest-... first",
                    )
                elif resp.status_code not in (200, 206):
                    if resp.status_code == 401 and _host_of(resp.url) != ref.api_host:
                        raise errors.Unauthorized(
                            f"{what}: the redirect target {_host_of(resp.url)} asked for credentials; "
                            "credentials are never sent to another host",
                            hint="the registry's storage redirect is misconfigured",
                            status=401,
                        )
                    raise self._error(resp, ref, what)
                else:
                    skip = 0
                    if start and resp.status_code == 200:
                        skip = start  # Range ignored: the body starts at 0
                    elif start:
                        cr = resp.headers.get("content-range", "")
                        if not cr.startswith(f"bytes {start}-"):
                            skip = -1
                    if skip < 0:
                        raise _Retry(errors.Unavailable(f"{what}: unexpected Content-Range {cr!r}"))
                    self._stream(resp, write, h, state, size, skip, progress, what)
            if state["written"] < size:
                raise _Retry(errors.SizeMismatch(
                    f"{what}: connection ended after {state['written']} of {size} bytes"))
            actual = f"{digest.split(':', 1)[0]}:{h.hexdigest()}"
            if actual != digest:
                if state["resumed"] and not state["restarted"] and _rewindable(sink):
                    state["restarted"] = True
                    state["resumed"] = False
                    state["written"] = 0
                    h = digests.hasher(digest)
                    sink.seek(0)  # type: ignore[union-attr]
                    sink.truncate(0)  # type: ignore[union-attr]
                    raise _Retry(errors.DigestMismatch(f"{what}: digest mismatch after a resume"))
                raise errors.DigestMismatch(
                    f"{what}: content hashes to {actual}, expected {digest}",
                    hint="the registry (or something between) served wrong content; the partial data must be discarded",
                )

        self._run(what, ref, attempt)

    def _stream(
        self,
        resp: httpx.Response,
        write: Callable[[bytes], object],
        h: Any,
        state: dict[str, Any],
        size: int,
        skip: int,
        progress: Progress | None,
        what: str,
    ) -> None:
        length = resp.headers.get("content-length")
        if length and length.isdigit():
            total = int(length) if resp.status_code == 200 else state["written"] + int(length)
            if total > size:
                raise errors.SizeMismatch(
                    f"{what}: the registry announces {total} bytes, the descriptor says {size}",
                    hint="the manifest and the blob disagree; do not use this image",
                )
        try:
            encoded = resp.headers.get("content-encoding", "identity").lower() not in ("", "identity")
            # As received (a chunker would lose its buffer on errors); decoded only if a server
            # compressed the transfer although we asked for identity.
            body = resp.iter_bytes() if encoded else resp.iter_raw()
            for chunk in body:
                if skip:
                    if len(chunk) <= skip:
                        skip -= len(chunk)
                        continue
                    chunk = chunk[skip:]
                    skip = 0
                room = size - state["written"]
                if len(chunk) > room:
                    raise errors.SizeMismatch(
                        f"{what}: the registry sent more than the descriptor's {size} bytes",
                        hint="the manifest and the blob disagree; do not use this image",
                    )
                h.update(chunk)
                write(chunk)
                state["written"] += len(chunk)
                if progress is not None:
                    progress(state["written"], size)
        except httpx.TransportError as e:
            raise _Retry(errors.Unavailable(f"{what}: {type(e).__name__} after {state['written']} bytes")) from None

    def fetch_blob_bytes(
        self, ref: references.Reference | str, descriptor: models.Descriptor, *, max_size: int = MAX_CONFIG_SIZE
    ) -> bytes:
        """A small blob (config) in memory, verified."""
        if descriptor.size > max_size:
            raise errors.SizeMismatch(f"blob {descriptor.digest} is {descriptor.size} bytes, over {max_size}")
        buf = io.BytesIO()
        self.fetch_blob(ref, descriptor, buf)
        return buf.getvalue()

    def fetch_blobs(
        self,
        ref: references.Reference | str,
        descriptors: list[models.Descriptor],
        open_sink: Callable[[models.Descriptor], IO[bytes]],
        *,
        concurrency: int | None = None,
    ) -> None:
        """Fetch several blobs in parallel (deduplicated by digest); `open_sink(desc)` returns
        a binary file that is closed after its blob (caller commits after this returns)."""
        ref = _ref(ref)
        unique = list({d.digest: d for d in descriptors}.values())

        def one(d: models.Descriptor) -> None:
            with open_sink(d) as f:
                self.fetch_blob(ref, d, f)

        workers = concurrency if concurrency is not None else self.download_concurrency
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for fut in [pool.submit(one, d) for d in unique]:
                fut.result()

    # -- push --------------------------------------------------------------------------------

    def blob_exists(self, ref: references.Reference | str, digest: str, *, push: bool = False) -> bool:
        ref = _ref(ref)
        url = self._url(ref, "blobs", digests.validate(digest))
        what = f"check blob {digest} in {ref.name}"

        def attempt(_: int) -> bool:
            resp = self._send("HEAD", ref, url, scopes=self._scopes(ref, push), follow_redirects=True)
            self._retryable(resp, ref, what)
            if resp.status_code == 200:
                return True
            if resp.status_code == 404:
                return False
            raise self._error(resp, ref, what)

        return self._run(what, ref, attempt)

    def push_blob(
        self,
        ref: references.Reference | str,
        descriptor: models.Descriptor,
        source: BlobSource,
        *,
        mount_from: str | None = None,
        chunk_size: int | None = None,
    ) -> str:
        """Upload a blob unless the registry has it. Returns how: "exists", "mounted", "uploaded".

        `mount_from` is another repository on the same registry that has the blob (cross-repo
        mount; a 202 answer continues with the session it opened). `chunk_size` switches to a
        chunked upload (PATCH with Content-Range per chunk, always following the newest
        Location). `source` is bytes, a Path or a seekable binary file."""
        ref = _ref(ref)
        digest = digests.validate(descriptor.digest)
        what = f"push blob {digest} to {ref.name}"
        if self.blob_exists(ref, digest, push=True):
            return "exists"
        extra: tuple[str, ...] = ()
        if mount_from:
            mount_repo = references.parse(f"{ref.registry}/{mount_from}").repository
            extra = (f"repository:{mount_repo}:pull",)
        scopes = self._scopes(ref, push=True, extra=extra)
        base = f"{self.base_url(ref.api_host)}/v2/{ref.repository}/blobs/uploads/"

        def attempt(_: int) -> str:
            url = base
            if mount_from:
                url += "?" + urllib.parse.urlencode({"mount": digest, "from": mount_repo})
            resp = self._send("POST", ref, url, scopes=scopes, headers={"Content-Length": "0"})
            resp.read()
            self._retryable(resp, ref, what)
            if resp.status_code == 201 and mount_from:
                return "mounted"
            if resp.status_code != 202:
                raise self._upload_error(resp, ref, what)
            location = _location(resp)
            try:
                if chunk_size:
                    location = self._upload_chunks(ref, location, source, descriptor.size, chunk_size, scopes, what)
                    final = self._send("PUT", ref, _with_digest(location, digest), scopes=scopes,
                                       headers={"Content-Type": "application/octet-stream", "Content-Length": "0"},
                                       content=b"")
                else:
                    final = self._send("PUT", ref, _with_digest(location, digest), scopes=scopes,
                                       headers={"Content-Type": "application/octet-stream",
                                                "Content-Length": str(descriptor.size)},
                                       body_factory=lambda: _iter_source(source))
                final.read()
                self._retryable(final, ref, what)
                if final.status_code != 201:
                    raise self._upload_error(final, ref, what)
            except BaseException:
                self._cancel(ref, location, scopes)
                raise
            return "uploaded"

        return self._run(what, ref, attempt)

    def _upload_chunks(
        self,
        ref: references.Reference,
        location: str,
        source: BlobSource,
        size: int,
        chunk_size: int,
        scopes: list[str],
        what: str,
    ) -> str:
        start = 0
        for chunk in _chunks(source, chunk_size):
            if start + len(chunk) > size:
                raise errors.UploadError(f"{what}: source is longer than the descriptor's {size} bytes")
            end = start + len(chunk) - 1
            resp = self._send("PATCH", ref, location, scopes=scopes, content=chunk, headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{start}-{end}",
                "Content-Length": str(len(chunk)),
            })
            resp.read()
            self._retryable(resp, ref, what)
            if resp.status_code != 202:
                raise self._upload_error(resp, ref, what)
            location = _location(resp)
            start = end + 1
        if start != size:
            raise errors.UploadError(f"{what}: source has {start} bytes, descriptor says {size}")
        return location

    def _cancel(self, ref: references.Reference, location: str, scopes: list[str]) -> None:
        try:
            self._send("DELETE", ref, location, scopes=scopes).read()
        except (httpx.HTTPError, errors.RegistryError):
            pass

    def _upload_error(self, resp: httpx.Response, ref: references.Reference, what: str) -> errors.RegistryError:
        err = self._error(resp, ref, what)
        if type(err) is errors.RegistryError:
            return errors.UploadError(err.message, code=err.code, status=err.status)
        return err

    def push_manifest(
        self,
        ref: references.Reference | str,
        manifest: models.Manifest,
        *,
        tag: str | None = None,
    ) -> models.Descriptor:
        """PUT a manifest or index (byte-exact) under `tag`, or by its digest when tag is None.
        Checks the registry's Docker-Content-Digest against ours."""
        ref = _ref(ref)
        target = tag if tag is not None else manifest.descriptor.digest
        if tag is not None:
            ref.with_tag(tag)
        url = self._url(ref, "manifests", target)
        what = f"push manifest {ref.name}:{target}"

        def attempt(_: int) -> models.Descriptor:
            resp = self._send("PUT", ref, url, scopes=self._scopes(ref, push=True),
                              headers={"Content-Type": manifest.media_type}, content=manifest.raw)
            resp.read()
            self._retryable(resp, ref, what)
            if resp.status_code not in (200, 201):
                raise self._upload_error(resp, ref, what)
            got = resp.headers.get("docker-content-digest")
            if got and got != manifest.descriptor.digest:
                raise errors.UploadError(
                    f"{what}: the registry stored digest {got[:80]}, we sent {manifest.descriptor.digest}",
                    code="DIGEST_INVALID",
                )
            return manifest.descriptor

        return self._run(what, ref, attempt)

    def push_image(
        self,
        ref: references.Reference | str,
        manifest: models.Manifest,
        blobs: Callable[[models.Descriptor], BlobSource],
        *,
        children: list[models.Manifest] | tuple[models.Manifest, ...] = (),
        tags: list[str] | tuple[str, ...] | None = None,
        mount_from: str | None = None,
        concurrency: int = 4,
        chunk_size: int | None = None,
    ) -> models.Descriptor:
        """Push an image or an index: blobs (config and layers of every manifest, in parallel),
        then child manifests by digest, then the top manifest by digest, then the tags last.
        `blobs(desc)` returns the source of a blob. Tags default to the reference's tag."""
        ref = _ref(ref)
        manifests = [m for m in children if not m.is_index] + ([manifest] if not manifest.is_index else [])
        needed: dict[str, models.Descriptor] = {}
        for m in manifests:
            for d in [m.config, *m.layers]:
                needed.setdefault(d.digest, d)
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            futures = [pool.submit(self.push_blob, ref, d, blobs(d), mount_from=mount_from, chunk_size=chunk_size)
                       for d in needed.values()]
            for f in futures:
                f.result()
        for m in children:
            self.push_manifest(ref, m)
        self.push_manifest(ref, manifest)
        for t in (tags if tags is not None else ([ref.tag] if ref.tag else [])):
            self.push_manifest(ref, manifest, tag=t)
        return manifest.descriptor

    # -- tags --------------------------------------------------------------------------------

    def list_tags(
        self, ref: references.Reference | str, *, page_size: int | None = None, limit: int | None = None
    ) -> list[str]:
        """All tags of the repository, page by page: the `Link: <...>; rel="next"` the registry
        sends, else (with `page_size`) a full page of `n` tags asks for the next with `last=` (the
        distribution spec's two ways); `limit` stops after that many tags."""
        ref = _ref(ref)
        base = self.base_url(ref.api_host)
        first = f"{base}/v2/{ref.repository}/tags/list"
        if page_size:
            first += f"?n={page_size}"
        url: str | None = first
        what = f"list tags of {ref.name}"
        out: list[str] = []
        seen_urls: set[str] = set()
        seen_tags: set[str] = set()
        while url and url not in seen_urls:
            seen_urls.add(url)
            page_url = url

            def attempt(_: int, page_url: str = page_url) -> tuple[list[str], str | None]:
                resp = self._send("GET", ref, page_url, scopes=self._scopes(ref), follow_redirects=True)
                resp.read()
                self._retryable(resp, ref, what)
                if resp.status_code != 200:
                    raise self._error(resp, ref, what)
                try:
                    tags = resp.json().get("tags") or []
                except (ValueError, AttributeError):
                    raise errors.RegistryError(f"{what}: invalid JSON from the registry") from None
                nxt = _next_link(resp)
                # exactly n: a full page of a registry that honours n (one that ignores it sent all)
                if nxt is None and page_size and len(tags) == page_size:
                    nxt = f"{first.partition('?')[0]}?" + urllib.parse.urlencode({"n": page_size, "last": tags[-1]})
                return [str(t) for t in tags], (urllib.parse.urljoin(str(resp.url), nxt) if nxt else None)

            tags, url = self._run(what, ref, attempt)
            fresh = [t for t in tags if t not in seen_tags]
            if not fresh:                   # a page of nothing new: a registry that ignores `last`
                break
            seen_tags.update(fresh)
            out.extend(fresh)
            if limit is not None and len(out) >= limit:
                break
        return out


# -- helpers ---------------------------------------------------------------------------------


def credentials_default() -> credentials.CredentialStore:
    return credentials.CredentialStore()


def _ref(ref: references.Reference | str) -> references.Reference:
    return references.parse(ref) if isinstance(ref, str) else ref


def _platform(p: platforms.Platform | str | None) -> platforms.Platform:
    if p is None:
        return platforms.host()
    if isinstance(p, platforms.Platform):
        return p
    parts = p.split("/")
    if len(parts) < 2:
        raise errors.PlatformNotFound(f"invalid platform {p!r}: write os/arch[/variant]")
    return platforms.normalize(parts[0], parts[1], parts[2] if len(parts) > 2 else "")


def _check_manifest_type(mt: str, ref: references.Reference) -> None:
    if mt in models.DOCKER_SCHEMA1:
        raise errors.ManifestError(
            f"{ref}: Docker schema 1 manifests are not supported",
            code="MANIFEST_UNSUPPORTED",
            hint="rebuild or re-push the image with a current Docker, BuildKit or skopeo",
        )


def _too_big(ref: references.Reference, size: int, cap: int) -> errors.ManifestError:
    return errors.ManifestError(
        f"{ref}: manifest of {size}+ bytes exceeds the {cap}-byte limit",
        code="SIZE_INVALID", hint="refusing an oversized manifest",
    )


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _location(resp: httpx.Response) -> str:
    loc: str | None = resp.headers.get("location")
    if not loc:
        raise errors.UploadError(f"the registry answered {resp.status_code} without a Location header")
    return urllib.parse.urljoin(str(resp.url), loc)


def _with_digest(location: str, digest: str) -> str:
    sep = "&" if "?" in location else "?"
    return f"{location}{sep}digest={urllib.parse.quote(digest, safe=':')}"


def _iter_source(source: BlobSource, chunk: int = 1 << 20) -> bytes | Iterator[bytes]:
    """The blob as a body: bytes as they are, files streamed from the start (re-readable)."""
    if isinstance(source, bytes):
        return source

    def gen() -> Iterator[bytes]:
        if isinstance(source, Path | os.PathLike):
            with Path(source).open("rb") as f:
                while block := f.read(chunk):
                    yield block
        else:
            source.seek(0)
            while block := source.read(chunk):
                yield block

    return gen()


def _chunks(source: BlobSource, size: int) -> Iterator[bytes]:
    """The blob in pieces of exactly `size` bytes (the last may be shorter)."""
    if isinstance(source, bytes):
        for i in range(0, len(source), size):
            yield source[i : i + size]
        return
    body = _iter_source(source, size)
    assert not isinstance(body, bytes)
    pending = b""
    for block in body:
        pending += block
        while len(pending) >= size:
            yield pending[:size]
            pending = pending[size:]
    if pending:
        yield pending


def _rewindable(sink: object) -> bool:
    try:
        return bool(getattr(sink, "seekable", lambda: False)()) and hasattr(sink, "truncate")
    except (OSError, ValueError):
        return False


def _next_link(resp: httpx.Response) -> str | None:
    for link in resp.headers.get_list("link"):
        for part in link.split(","):
            if 'rel="next"' in part or "rel=next" in part:
                start, end = part.find("<"), part.find(">")
                if 0 <= start < end:
                    return part[start + 1 : end]
    return None
