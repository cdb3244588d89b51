"""A fault-injecting HTTP proxy in front of a real registry, on loopback.

Faults the real registry cannot produce on demand: a slow link, a connection dropped mid-body, 5xx, 429 +
Retry-After, a 307 to another host (a second server on 127.0.0.2 that serves the same content
and records whether credentials reached it), a server that ignores Range, a body that does not
match its digest, a body longer than announced, an oversized manifest. Every request is
recorded. Rules apply to the first `times` matching requests, then expire.

    proxy = FaultProxy(upstream_port).start()
    proxy.add(Fault("drop", path="/blobs/", after_bytes=1000))
    ... use proxy.host instead of the registry's host ...
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Fault", "FaultProxy", "Recorded"]

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization"}


@dataclass
class Fault:
    """kind: slow | drop | status | ratelimit | redirect | ignore_range | corrupt | extra | oversize | retype |
    paginate | warn
    (slow: the body goes out `chunk` bytes at a time, `delay` seconds apart, as over a slow link)
    (warn: adds `Warning: 299` and rate-limit headers to the real response)
    (huge_tags: a tags list of `size` bytes of JSON, chunked, made as it is sent; `sent` counts the
    bytes written before the client went away, `finished` is set when the server stops writing)
    (paginate: the tags list is served in pages of `n` with Link headers, as newer registries do;
    paginate_bare: the same pages without Link, as registries that only honour `n` and `last` do)."""

    kind: str
    path: str = ""  # regex searched in the request path
    method: str = "GET"
    times: int = 1
    status: int = 500
    retry_after: str | None = "1"
    after_bytes: int = 0  # drop: bytes of body sent before the connection is cut
    size: int = 5 * 1024 * 1024  # oversize: manifest body length
    content_type: str = "application/vnd.docker.distribution.manifest.v2+json"  # retype
    chunk: int = 8192  # slow: bytes per write
    delay: float = 0.05  # slow: seconds between writes
    sent: int = 0  # huge_tags: body bytes written
    finished: threading.Event = field(default_factory=threading.Event)  # huge_tags: done writing


@dataclass
class Recorded:
    server: str  # "proxy" or "cdn"
    method: str
    path: str
    headers: dict[str, str]
    status: int = 0


def _paginate(path: str, data: bytes) -> tuple[bytes, str | None]:
    """One page of a tags list per `n` and `last`, and the next page's link if any."""
    url = urllib.parse.urlsplit(path)
    q = dict(urllib.parse.parse_qsl(url.query))
    doc = json.loads(data)
    tags = sorted(doc.get("tags") or [])
    if "last" in q:
        tags = [t for t in tags if t > q["last"]]
    n = int(q.get("n", len(tags) or 1))
    page, more = tags[:n], len(tags) > n
    doc["tags"] = page
    link = f"{url.path}?n={n}&last={page[-1]}" if more and page else None
    return json.dumps(doc).encode(), link


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@dataclass
class FaultProxy:
    upstream_port: int
    basic_auth: tuple[str, str] | None = None  # require these credentials (challenge if absent)
    cdn_status: int | None = None  # the 127.0.0.2 server answers this (e.g. 401) instead of content
    faults: list[Fault] = field(default_factory=list)
    log: list[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.blobs_in_flight = 0        # blob GETs being answered now, and the most at once
        self.max_blobs_in_flight = 0
        self.track_blobs = "/blobs/"    # which blob GETs count: a regex searched in the path

    def add(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.method == method and re.search(f.path, path) and f.times > 0:
                    f.times -= 1
                    return f
        return None

    def start(self) -> FaultProxy:
        self._proxy = _Server(("127.0.0.1", 0), self._handler("proxy"))
        self._cdn = _Server(("127.0.0.2", 0), self._handler("cdn"))
        self.port = self._proxy.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.cdn_host = f"127.0.0.2:{self._cdn.server_address[1]}"
        for srv in (self._proxy, self._cdn):
            threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        for srv in (self._proxy, self._cdn):
            srv.shutdown()
            srv.server_close()

    def requests(self, server: str = "proxy", path: str = "", method: str | None = None) -> list[Recorded]:
        return [r for r in self.log if r.server == server and re.search(path, r.path)
                and (method is None or r.method == method)]

    # -- the handler --------------------------------------------------------------------------

    def _handler(self, role: str) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _simple(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            counted = False     # this request is among blobs_in_flight

            def _handle(self) -> None:
                if self.command == "GET" and "/blobs/" in self.path and re.search(proxy.track_blobs, self.path):
                    with proxy._lock:
                        proxy.blobs_in_flight += 1
                        proxy.max_blobs_in_flight = max(proxy.max_blobs_in_flight, proxy.blobs_in_flight)
                    self.counted = True
                try:
                    self._answer()
                finally:
                    self._uncount()

            def _uncount(self) -> None:
                """No longer in flight: before the last bytes of a slowed body go out (the client
                cannot have finished with it before), else once the answer is written."""
                if self.counted:
                    self.counted = False
                    with proxy._lock:
                        proxy.blobs_in_flight -= 1

            def _answer(self) -> None:
                rec = Recorded(role, self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
                proxy.log.append(rec)
                body = self._body()
                if role == "cdn" and proxy.cdn_status:
                    rec.status = proxy.cdn_status
                    self._simple(proxy.cdn_status, b'{"errors":[{"code":"UNAUTHORIZED","message":"cdn"}]}',
                                 {"WWW-Authenticate": 'Basic realm="cdn"', "Content-Type": "application/json"})
                    return
                if role == "proxy" and proxy.basic_auth:
                    want = "Basic " + base64.b64encode(":".join(proxy.basic_auth).encode()).decode()
                    if self.headers.get("Authorization") != want:
                        rec.status = 401
                        self._simple(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"login"}]}',
                                     {"WWW-Authenticate": 'Basic realm="fault-proxy"',
                                      "Content-Type": "application/json"})
                        return
                fault = proxy._take(self.command, self.path) if role == "proxy" else None
                kind = fault.kind if fault else None
                if fault and kind == "status":
                    rec.status = fault.status
                    self._simple(fault.status, b'{"errors":[{"code":"UNKNOWN","message":"injected"}]}',
                                 {"Content-Type": "application/json"})
                    return
                if fault and kind == "ratelimit":
                    rec.status = 429
                    hdrs = {"Content-Type": "application/json"}
                    if fault.retry_after is not None:
                        hdrs["Retry-After"] = fault.retry_after
                    self._simple(429, b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}', hdrs)
                    return
                if fault and kind == "redirect":
                    rec.status = 307
                    self._simple(307, b"", {"Location": f"http://{proxy.cdn_host}{self.path}"})
                    return
                if fault and kind == "oversize":
                    rec.status = 200
                    self.send_response(200)
                    self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    chunk = b" " * 65536
                    sent = 0
                    try:
                        while sent < fault.size:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                            sent += len(chunk)
                        self.wfile.write(b"0\r\n\r\n")
                    except OSError:
                        pass
                    return
                if fault and kind == "huge_tags":
                    rec.status = 200
                    self._huge_tags(fault)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                if kind == "ignore_range":
                    headers.pop("Range", None)
                    headers.pop("range", None)
                if role == "cdn":
                    headers.pop("Authorization", None)  # the cdn serves without the registry's auth
                    headers["Host"] = proxy.host
                if proxy.basic_auth:
                    headers.pop("Authorization", None)
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                if kind in ("paginate", "paginate_bare") and resp.status == 200:
                    data, link = _paginate(self.path, data)
                    if link and kind == "paginate":
                        self.send_response(200)
                        self.send_header("Link", f'<{link}>; rel="next"')
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                        return
                if kind == "corrupt" and data:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                if kind == "extra":
                    data += b"EXTRA BYTES"
                rec.status = resp.status
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() in HOP or k.lower() == "content-length":
                        continue
                    if kind == "retype" and k.lower() == "content-type" and fault:
                        v = fault.content_type
                    self.send_header(k, v)
                if kind == "warn":
                    self.send_header("Warning", '299 - "this registry is deprecated"')
                    self.send_header("RateLimit-Limit", "100;w=21600")
                    self.send_header("RateLimit-Remaining", "42;w=21600")
                if self.command == "HEAD":
                    self.send_header("Content-Length", resp.getheader("Content-Length") or "0")
                    self.end_headers()
                    return
                if kind == "drop":
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data[: fault.after_bytes] if fault else b"")
                    self.wfile.flush()
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if kind == "slow" and fault:
                    try:
                        for i in range(0, len(data), fault.chunk):
                            if i + fault.chunk >= len(data):
                                self._uncount()
                            self.wfile.write(data[i:i + fault.chunk])
                            self.wfile.flush()
                            time.sleep(fault.delay)
                    except OSError:             # the client went away (cancelled)
                        self.close_connection = True
                    return
                self.wfile.write(data)

            def _huge_tags(self, fault: Fault) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    head = b'{"name":"x/huge","tags":['
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(head), head))
                    fault.sent += len(head)
                    n = 0
                    while fault.sent < fault.size:
                        chunk = b"".join(b'"1.0.%d",' % (n + i) for i in range(4096))
                        n += 4096
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        fault.sent += len(chunk)
                    tail = b'"1.0.0"]}'
                    self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(tail), tail))
                    fault.sent += len(tail)
                except OSError:             # the client went away
                    self.close_connection = True
                finally:
                    fault.finished.set()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        return Handler
