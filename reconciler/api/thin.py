"""The smallest client of the agent's API: one request over its Unix socket, a JSON reply back.

For the read-only commands the agent serves (#21, the client–server split), which must start
as fast as docker's: `http.client` (ApiClient) imports `email` and `ssl`, about as much as the
rest of `reconcile ps` together. The agent always answers HTTP/1.1 with a Content-Length
(api/server.py), and closes when asked to, so a reply is the bytes up to EOF.

    thin.request(socket_path, "GET", "/v1/containers")          -> (status, JSON value)
    thin.request(socket_path, "POST", "/v1/pull", {"ref": ...})  (OSError when nobody answers)
    thin.stream(socket_path, "/v1/containers/web/logs?follow=1")  -> (status, JSON lines as they come)
    thin.Lines(socket_path, "/v1/run", body)                    the same, and hangup() (`run`'s Ctrl-C)
    thin.text(socket_path, "/v1/containers?print=table")        -> (status, content type, text)
    thin.loads('{"socket": "/run/reconciler/reconciler.sock"}')  -> a JSON value, without `json`

`text` and `loads` import no `json` (which imports `re` and compiles its patterns, ~1/5 of a
thin client's start-up): the agent renders what `ps` and `images` print (listing.py), and the
agent's file `<root>/agent.json` is read with the C scanner `json` itself parses with (#21).
"""

from __future__ import annotations

from reconciler.jsonscan import loads

# annotations only: what the read-only commands import at start-up stays small (#21)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Generator
    from typing import Any

__all__ = ["DEFAULT_SOCKET", "Lines", "loads", "request", "stream", "text"]

DEFAULT_SOCKET = "/run/reconciler/reconciler.sock"


def request(socket_path: str, method: str, path: str, body: Any = None, *,
            timeout: float | None = 30.0) -> tuple[int, Any]:
    """`method` `path` (with `body` as JSON, if any) to the agent on `socket_path`: (HTTP
    status, the JSON reply). OSError when the socket does not answer; ValueError for a reply
    that is not whole HTTP with JSON."""
    import json

    data = None if body is None else json.dumps(body).encode()
    status, _, reply = _exchange(socket_path, method, path, data, timeout=timeout)
    return status, json.loads(reply)


def text(socket_path: str, path: str, *, timeout: float | None = 30.0) -> tuple[int, str, str]:
    """GET `path` from the agent on `socket_path`: (HTTP status, the reply's content type, its
    body as text). OSError and ValueError as for `request`."""
    status, headers, reply = _exchange(socket_path, "GET", path, None, timeout=timeout)
    return status, headers.get("content-type", "").strip(), reply.decode()


def _exchange(socket_path: str, method: str, path: str, data: bytes | None, *,
              timeout: float | None) -> tuple[int, dict[str, str], bytes]:
    """One request (a JSON body `data`, if any) and its whole reply: (status, headers with
    lower-case names, body)."""
    asked = (f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
             + (f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n" if data is not None else "")
             + "\r\n")
    # _socket, socket's C core: `socket` itself builds four enums from the platform's constants
    # and imports selectors, ~4 ms of every `ps` an agent answers (#21); a request needs none
    import _socket

    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(socket_path)
        s.sendall(asked.encode() + (data or b""))
        chunks = []
        while chunk := s.recv(1 << 16):
            chunks.append(chunk)
    finally:
        s.close()
    head, sep, reply = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not sep or not lines[0].startswith("HTTP/1."):
        raise ValueError(f"the agent on {socket_path} did not answer HTTP")
    headers = dict(line.lower().split(":", 1) for line in lines[1:] if ":" in line)
    if int(headers.get("content-length", len(reply))) != len(reply):
        raise ValueError(f"the agent on {socket_path} closed the connection mid-reply")
    return int(lines[0].split(" ", 2)[1]), headers, reply


def stream(socket_path: str, path: str, *, timeout: float | None = None,
           body: Any = None) -> tuple[int, Generator[Any, None, None]]:
    """GET `path` (POST `body` as JSON, if any: a build), whose reply (200) is JSON lines written
    as they come (api/server.py streams events, logs and builds so): (HTTP status, each line's
    value as it arrives, until the agent ends the reply). A reply other than 200 yields
    nothing. OSError when the socket does not answer."""
    reply = Lines(socket_path, path, timeout=timeout, body=body)
    return reply.status, reply.values()


class Lines:
    """A reply of JSON lines to GET `path` (POST `body`, if any), as they come: `status`, then
    `values()` (200), or `error()` (the JSON of a refusal); `hangup()` closes our side of the
    connection while the reply goes on (`run`'s Ctrl-C: the agent stops the container and
    still sends its last lines). OSError when the socket does not answer.

    On `_socket` with jsonscan, as `_exchange`: no `socket` (its enums, selectors) and no `json`
    (re and its patterns) loaded, ~5 ms of a `run` or `logs` through an agent (#21)."""

    def __init__(self, socket_path: str, path: str, *, timeout: float | None = None, body: Any = None) -> None:
        import _socket

        self._buf = bytearray()
        s = self._socket = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            s.settimeout(timeout)
            s.connect(socket_path)
            if body is None:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
            else:
                from reconciler import jsonscan

                data = jsonscan.dumps(body).encode()
                s.sendall(f"POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: "
                          f"application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
            status_line = self._line().decode("latin-1")
            if not status_line.startswith("HTTP/1."):
                raise ValueError(f"the agent on {socket_path} did not answer HTTP")
            while self._line() not in (b"\r\n", b"\n", b""):
                continue
        except BaseException:
            s.close()
            raise
        self.status = int(status_line.split(" ", 2)[1])

    def _line(self) -> bytes:
        """The next line of the reply with its end (b"" at its end), read as it comes."""
        while (end := self._buf.find(b"\n")) < 0:
            chunk = self._socket.recv(1 << 16)
            if not chunk:
                line = bytes(self._buf)
                self._buf.clear()
                return line
            self._buf += chunk
        line = bytes(self._buf[:end + 1])
        del self._buf[:end + 1]
        return line

    def values(self) -> Generator[Any, None, None]:
        """Each line's value as it arrives (none unless the status is 200); closes at the end."""
        try:
            while self.status == 200 and (line := self._line()):
                if line.strip():
                    yield loads(line.decode())
        finally:
            self.close()

    def error(self) -> Any:
        """The JSON body of a reply other than 200 (the agent's error and hint); closes."""
        try:
            rest = bytearray()
            while line := self._line():
                rest += line
            return loads(rest.decode() or "null")
        finally:
            self.close()

    def hangup(self) -> None:
        """Close our side: the agent reads EOF, the reply goes on."""
        import _socket

        try:
            self._socket.shutdown(_socket.SHUT_WR)
        except OSError:
            pass                # the agent closed already: the reply ends by itself

    def close(self) -> None:
        self._socket.close()
