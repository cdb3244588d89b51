"""Pulling through a RegistryClient's session: manifests (resolve, get, platform selection,
the pull plan), blobs (streamed, verified, resumed) and tag lists."""

from __future__ import annotations

import contextlib
import io
import json
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, Protocol

import httpx

from reconciler._dataclass import dataclass
from reconciler.registry_client import digests, errors, models, platforms, references
from reconciler.registry_client.session import Session, _host_of, _ref, _Retry

__all__ = ["MAX_CONFIG_SIZE", "MAX_TAGS_PAGE_SIZE", "Progress", "PullPlan", "Pulling", "Sink"]

MAX_CONFIG_SIZE = 16 * 1024 * 1024
# One page of a tag list, as read: a page of 1000 tags of at most 128 bytes is ~150 KB, so the
# manifests' cap leaves a wide margin, and a registry answering a huge list gets no more memory.
MAX_TAGS_PAGE_SIZE = 4 * 1024 * 1024
MAX_INDEX_DEPTH = 4


class _Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


Sink = Callable[[bytes], object] | _Writable | IO[bytes]
Progress = Callable[[int, int], object]


@dataclass(frozen=True)
class PullPlan:
    """What pulling one platform of an image needs: the image manifest (byte-exact), the index
    it was chosen from (if any), the verified config bytes and the layer descriptors."""

    reference: references.Reference
    manifest: models.Manifest
    index: models.Manifest | None
    config: bytes
    layers: list[models.Descriptor]


def _media_type(resp: httpx.Response) -> str:
    value: str = resp.headers.get("content-type", "")
    return value.split(";", 1)[0].strip().lower()


class Pulling(Session):
    """The reading half of the OCI Distribution API."""

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

    # -- tags --------------------------------------------------------------------------------

    def list_tags(
        self, ref: references.Reference | str, *, page_size: int | None = None, limit: int | None = None
    ) -> list[str]:
        """All tags of the repository, page by page: the `Link: <...>; rel="next"` the registry
        sends, else (with `page_size`) a full page of `n` tags asks for the next with `last=` (the
        distribution spec's two ways); `limit` stops after that many tags, counted as the pages
        come. Each page's body is read as it arrives, up to MAX_TAGS_PAGE_SIZE bytes: a bigger
        one is refused (SIZE_INVALID, naming the registry) before the rest is read."""
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
                with contextlib.closing(self._send(
                    "GET", ref, page_url, scopes=self._scopes(ref), stream=True, follow_redirects=True,
                )) as resp:
                    self._retryable(resp, ref, what)
                    if resp.status_code != 200:
                        raise self._error(resp, ref, what)
                    raw = _bounded_body(resp, MAX_TAGS_PAGE_SIZE, ref, what)
                try:
                    tags = json.loads(raw).get("tags") or []
                except (ValueError, AttributeError):
                    raise errors.RegistryError(f"{what}: invalid JSON from the registry") from None
                if not isinstance(tags, list):
                    raise errors.RegistryError(f"{what}: the registry's \"tags\" is not a list")
                nxt = _next_link(resp)
                # exactly n: a full page of a registry that honours n (one that ignores it sent all)
                if nxt is None and page_size and len(tags) == page_size:
                    nxt = f"{first.partition('?')[0]}?" + urllib.parse.urlencode({"n": page_size, "last": tags[-1]})
                return [str(t) for t in tags], (urllib.parse.urljoin(str(resp.url), nxt) if nxt else None)

            tags, url = self._run(what, ref, attempt)
            fresh = [t for t in tags if t not in seen_tags]
            if not fresh:                   # a page of nothing new: a registry that ignores `last`
                break
            if limit is not None:
                fresh = fresh[: max(0, limit - len(out))]
            seen_tags.update(fresh)
            out.extend(fresh)
            if limit is not None and len(out) >= limit:
                break
        return out


# -- helpers ---------------------------------------------------------------------------------


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


def _bounded_body(resp: httpx.Response, cap: int, ref: references.Reference, what: str) -> bytes:
    """A streamed response's body (decoded), refused once it passes `cap` bytes: the rest is
    never read (closing the response drops the connection)."""
    length = resp.headers.get("content-length")
    if length and length.isdigit() and int(length) > cap:
        raise _page_too_big(ref, what, int(length), cap)
    buf = bytearray()
    for chunk in resp.iter_bytes():
        buf += chunk
        if len(buf) > cap:
            raise _page_too_big(ref, what, len(buf), cap)
    return bytes(buf)


def _page_too_big(ref: references.Reference, what: str, size: int, cap: int) -> errors.RegistryError:
    return errors.RegistryError(
        f"{what}: {ref.registry} sent a page of {size}+ bytes, over the {cap}-byte limit",
        code="SIZE_INVALID", hint=f"refusing an oversized tag list; {ref.registry} may be hostile or broken",
    )


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
