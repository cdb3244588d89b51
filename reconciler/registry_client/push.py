"""Pushing through a RegistryClient's session: blobs (monolithic or chunked uploads,
cross-repository mounts), manifests, and whole images with their tags."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

import httpx

from reconciler.registry_client import digests, errors, models, references
from reconciler.registry_client.session import Session, _ref

__all__ = ["BlobSource", "Pushing"]

BlobSource = bytes | Path | IO[bytes]


class Pushing(Session):
    """The writing half of the OCI Distribution API."""

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
        on_blob: Callable[[models.Descriptor, str], object] | None = None,
    ) -> models.Descriptor:
        """Push an image or an index: blobs (config and layers of every manifest, in parallel),
        then child manifests by digest, then the top manifest by digest, then the tags last.
        `blobs(desc)` returns the source of a blob. Tags default to the reference's tag.
        `mount_from` (a repository of the same registry) is asked to mount each blob first;
        `on_blob(desc, how)` hears how each blob got there (`push_blob`'s answer), from the
        uploading threads."""
        ref = _ref(ref)
        manifests = [m for m in children if not m.is_index] + ([manifest] if not manifest.is_index else [])
        needed: dict[str, models.Descriptor] = {}
        for m in manifests:
            for d in [m.config, *m.layers]:
                needed.setdefault(d.digest, d)
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            def one(d: models.Descriptor) -> None:
                how = self.push_blob(ref, d, blobs(d), mount_from=mount_from, chunk_size=chunk_size)
                if on_blob is not None:
                    on_blob(d, how)

            futures = [pool.submit(one, d) for d in needed.values()]
            for f in futures:
                f.result()
        for m in children:
            self.push_manifest(ref, m)
        self.push_manifest(ref, manifest)
        for t in (tags if tags is not None else ([ref.tag] if ref.tag else [])):
            self.push_manifest(ref, manifest, tag=t)
        return manifest.descriptor


# -- helpers ---------------------------------------------------------------------------------


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
