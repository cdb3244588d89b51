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

__all__ = ["BodyRefused", "content_length"]

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
