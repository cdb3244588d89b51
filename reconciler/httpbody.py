"""The one rule for a request body's declared length, shared by the project's small HTTP servers
(the agent API, the Engine API, the webhook listener; all on the stdlib's `http.server`).

`http.server` leaves `Content-Length` to the handler, and `rfile.read(n)` with a negative `n`
reads until the client closes: a `-1` would walk past any size limit. So the length is checked
before a byte of the body is read: ASCII digits only (`str.isdigit()` also takes `²`, which
`int()` refuses), at most 19 of them, one value when the header repeats, and not over `limit`.
"""

from __future__ import annotations

import re
from email.message import Message
from typing import Protocol

__all__ = ["BodyRefused", "BodyStream", "Readable", "content_length"]

_LENGTH = re.compile(r"[0-9]{1,19}")


class BodyRefused(Exception):
    """A request whose body must not be read; `status` is the answer (400, 413)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def content_length(headers: Message, limit: int) -> int | None:
    """The body's length as declared, checked; None when the request declares none."""
    values = {v.strip() for v in headers.get_all("Content-Length") or ()}
    if not values:
        return None
    if len(values) > 1:
        raise BodyRefused(400, "the request has conflicting Content-Length headers")
    value = values.pop()
    if not _LENGTH.fullmatch(value):
        raise BodyRefused(400, f"invalid Content-Length {value[:40]!r}: a number of bytes is expected")
    length = int(value)
    if length > limit:
        raise BodyRefused(413, f"request body of {length} bytes is over the limit of {limit} bytes")
    return length


class Readable(Protocol):
    def read(self, n: int, /) -> bytes: ...

    def readline(self, n: int, /) -> bytes: ...


class BodyStream:
    """A request body of any size as a stream (a tar sent to the Engine API): `read(n)` gives
    at most `n` bytes, b"" at its end. The body is `Content-Length` bytes, or the chunks of
    `Transfer-Encoding: chunked` (what Go clients send for a body of unknown length), or
    nothing. More than `limit` bytes in all, or a malformed chunk, is BodyRefused."""

    def __init__(self, headers: Message, rfile: Readable, limit: int) -> None:
        self.rfile = rfile
        self.limit = limit
        self.total = 0
        self.chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        length = None if self.chunked else content_length(headers, limit)
        self.left = length or 0                 # bytes left in the body or the current chunk
        self.done = not self.chunked and not length

    def _next_chunk(self) -> None:
        line = self.rfile.readline(100)
        size = line.split(b";", 1)[0].strip()
        if not re.fullmatch(rb"[0-9a-fA-F]{1,16}", size):
            raise BodyRefused(400, f"malformed chunk size {size[:20]!r} in a chunked body")
        self.left = int(size, 16)
        if self.left == 0:
            while self.rfile.readline(1000) not in (b"\r\n", b"\n", b""):
                pass                            # trailers
            self.done = True

    def read(self, n: int = 1 << 16) -> bytes:
        if n is None or n < 0:
            n = 1 << 16
        while not self.done and self.left == 0:
            self._next_chunk()
        if self.done:
            return b""
        data = self.rfile.read(min(n, self.left))
        if not data:
            raise BodyRefused(400, "the request body ended early")
        self.left -= len(data)
        self.total += len(data)
        if self.total > self.limit:
            raise BodyRefused(413, f"request body over the limit of {self.limit} bytes")
        if self.chunked and self.left == 0:
            self.rfile.readline(10)             # the CRLF after the chunk
        elif not self.chunked and self.left == 0:
            self.done = True
        return data

    def drain(self) -> None:
        """Read what is left (so the connection can serve its next request)."""
        while self.read():
            pass
