"""A plain GET of an http(s) URL as a stream (`docker import URL`): httpx as the registry
client's session uses it (no proxy or netrc from the environment, TLS verified for https),
redirects followed; no auth and no retries (the body is read once, as it comes)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import BinaryIO, cast

import httpx

from reconciler.registry_client import errors

__all__ = ["open_url"]

_CHUNK = 1 << 20


class _Body:
    """A file-like over the response's bytes (decoded of any Content-Encoding); a transport
    failure while reading is `errors.Unavailable`."""

    def __init__(self, url: str, chunks: Iterator[bytes]) -> None:
        self._url = url
        self._chunks = chunks
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            try:
                chunk = next(self._chunks, None)
            except httpx.HTTPError as exc:
                raise errors.Unavailable(f"reading {self._url} failed: {exc}",
                                         hint="check that its server still runs, then try again") from None
            if chunk is None:
                break
            self._buf += chunk
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out


@contextlib.contextmanager
def open_url(url: str, *, timeout: float = 30.0) -> Iterator[BinaryIO]:
    """The body of `url` (http:// or https://) as a stream, until the block ends. A status of
    400 or more is `errors.NotFound` (404) or `errors.RegistryError` naming it; a server that
    cannot be reached, `errors.Unavailable`; `timeout`: seconds without a byte."""
    try:
        with httpx.Client(trust_env=False, follow_redirects=True, timeout=httpx.Timeout(timeout)) as client, \
                client.stream("GET", url) as resp:
            if resp.status_code >= 400:
                kind = errors.NotFound if resp.status_code == 404 else errors.RegistryError
                raise kind(f"GET {url}: the server answered {resp.status_code} {resp.reason_phrase}",
                           status=resp.status_code, hint="check the URL")
            yield cast(BinaryIO, _Body(url, resp.iter_bytes(_CHUNK)))
    except httpx.HTTPError as exc:
        raise errors.Unavailable(f"GET {url} failed: {exc}", hint="check the URL and that its server runs") from None
