"""ApiClient: the CLI's side of the agent API, stdlib `http.client` over AF_UNIX.

Stdlib only (the CLI imports it on every status/events call): no httpx outside the registry
client and the Docker backend.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from reconciler.api import errors
from reconciler.api.thin import DEFAULT_SOCKET

__all__ = ["DEFAULT_SOCKET", "ApiClient", "default_socket"]


def default_socket() -> str:
    return os.environ.get("RECONCILER_SOCKET", DEFAULT_SOCKET)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            s.settimeout(self.timeout)
        try:
            s.connect(self._path)
        except OSError:
            s.close()
            raise
        self.sock = s


class ApiClient:
    """One request per connection (the agent's API is not chatty)."""

    def __init__(self, socket_path: str | os.PathLike[str] | None = None, *, timeout: float | None = 30.0) -> None:
        self.socket_path = str(socket_path or default_socket())
        self.timeout = timeout

    def available(self) -> bool:
        """True when an agent answers on the socket."""
        if not Path(self.socket_path).exists():
            return False
        try:
            self.get("/v1/status")
        except errors.AgentUnreachable:
            return False
        return True

    def _open(self, method: str, path: str, body: Mapping[str, Any] | None,
              timeout: float | None) -> tuple[_UnixConnection, http.client.HTTPResponse]:
        conn = _UnixConnection(self.socket_path, timeout)
        data = None if body is None else json.dumps(dict(body)).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise errors.AgentUnreachable(
                f"no agent answers on {self.socket_path}: {getattr(e, 'strerror', None) or e}",
                hint="start it (`reconcile agent --config ...` or `systemctl start reconciler`) "
                     "or pass --socket") from None
        return conn, resp

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None,
                *, timeout: float | None = None) -> Any:
        conn, resp = self._open(method, path, body, timeout or self.timeout)
        try:
            raw = resp.read()
        finally:
            conn.close()
        ctype = resp.getheader("Content-Type", "")
        if resp.status >= 400:
            try:
                doc = json.loads(raw)
                raise errors.from_status(resp.status, str(doc.get("error")), doc.get("hint"))
            except ValueError:
                raise errors.from_status(resp.status, raw.decode(errors="replace")) from None
        if ctype.startswith("application/json"):
            return json.loads(raw)
        return raw.decode()

    def get(self, path: str, **query: Any) -> Any:
        q = {k: v for k, v in query.items() if v is not None}
        return self.request("GET", path + (f"?{urllib.parse.urlencode(q)}" if q else ""))

    def post(self, path: str, body: Mapping[str, Any], *, timeout: float | None = None) -> Any:
        return self.request("POST", path, body, timeout=timeout)

    def events(self, *, since: int = 0, follow: bool = False, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Events as they come (JSON lines); ends when not following, or the agent stops.
        `timeout` bounds each wait for a line when following (default: none)."""
        q = urllib.parse.urlencode({"since": since, "follow": int(follow)})
        conn, resp = self._open("GET", f"/v1/events?{q}", None, timeout if follow else self.timeout)
        try:
            if resp.status >= 400:
                raise errors.from_status(resp.status, resp.read().decode(errors="replace"))
            for line in resp:
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()
