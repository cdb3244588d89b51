"""Push webhooks from GitHub, Gitea (and Gogs) and GitLab, turned into wakes.

A small HTTP/1.1 listener (stdlib `ThreadingHTTPServer`, bound to 127.0.0.1 unless told
otherwise: put a TLS reverse proxy in front to expose it). Each `Hook` owns one URL path and
one secret. A delivery is authenticated before its body is parsed:

- GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`;
- Gitea/Gogs: `X-Gitea-Signature` / `X-Gogs-Signature: <hex HMAC-SHA256 of the body>`;
- GitLab: `X-Gitlab-Token: <the secret itself>` (GitLab does not sign bodies).

Then only push events (GitHub/Gitea `push`, GitLab `Push Hook` and `Tag Push Hook`) whose
`ref` the hook follows call `wake(reason)`; the loop then fetches (the payload's commit id is
never trusted, rule 1). Replies: 202 woken, ignored or a repeated delivery (with a JSON
reason), 200 for GitHub's `ping`, 401 bad or missing signature, 404 unknown path, 405 not
POST, 408 too slow, 411/413 missing or oversized body, 400 unreadable payload, 503 too many
connections. Secrets and signatures never reach a log line.

The listener faces whoever can reach its port, so what an unauthenticated client can hold is
bounded (docs/security.md, "Webhooks"):

- a request without a well-formed signature header (or with a wrong GitLab token) is answered
  401 as soon as its headers are in: its body is never read;
- the headers may take `HEADER_LIMIT` bytes, the body `max_body` (1 MiB by default);
- one deadline covers the whole request (`request_timeout`, 10 s by default), however the
  client spaces its bytes; then the connection is dropped;
- at most `max_connections` connections are served at once, a quarter of them from one peer
  address; one over either cap is answered 503 at once and closed, without a thread;
- one request per connection (every reply closes it);
- the delivery id of an accepted delivery (`X-GitHub-Delivery`, `X-Gitea-Delivery`,
  `X-Gogs-Delivery`, GitLab's `Idempotency-Key` or `X-Gitlab-Event-UUID`) is remembered
  (`DeliveryIds`): the same id again wakes nothing.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import hmac
import io
import json
import re
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Collection, Iterable
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from reconciler import httpbody, logs
from reconciler._dataclass import dataclass, field
from reconciler.sources import base, errors

__all__ = [
    "HEADER_LIMIT",
    "MAX_BODY",
    "MAX_CONNECTIONS",
    "REQUEST_TIMEOUT",
    "Delivery",
    "DeliveryIds",
    "Hook",
    "WebhookServer",
    "read_secret",
]

MAX_BODY = 1 << 20             # a push payload is a few KiB; GitHub's own cap (25 MB) is far above
MAX_CONNECTIONS = 16           # served at once; a quarter of them from one peer address
REQUEST_TIMEOUT = 10.0         # seconds for a whole request, from accept to its last byte
HEADER_LIMIT = 64 * 1024       # bytes of request line and headers
_REPLY_TIMEOUT = 2.0           # seconds to write a (small) reply

_PUSH_EVENTS = {"push", "push hook", "tag push hook"}
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# the first of these a delivery carries is its id; GitLab's Idempotency-Key stays the same on retries
_DELIVERY_HEADERS = ("Idempotency-Key", "X-GitHub-Delivery", "X-Gitea-Delivery", "X-Gogs-Delivery",
                     "X-Gitlab-Event-UUID")
_DELIVERY_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_BUSY_BODY = b'{"error": "too many connections, try again later"}\n'
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 10\r\n"
         b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))


def read_secret(path: Path) -> bytes:
    """A webhook secret from a file (one line; the trailing newline is not part of it)."""
    try:
        secret = path.read_bytes().strip()
    except OSError as e:
        raise errors.SourceInvalid(
            f"cannot read the webhook secret file {path}: {e.strerror}",
            hint="check the path and that the agent's user can read it",
        ) from None
    if not secret:
        raise errors.SourceInvalid(f"the webhook secret file {path} is empty", hint="put the shared secret in it")
    return secret


@dataclass(frozen=True)
class Hook:
    """One webhook endpoint: a path, its secret, what it wakes, and which refs it follows."""

    path: str  # e.g. "/hooks/shop"
    secret: bytes = field(repr=False)
    wake: base.Wake = field(repr=False, compare=False)
    refs: Collection[str] | None = None  # full ref names ("refs/heads/main"); None: every push


@dataclass(frozen=True)
class Delivery:
    """What the listener understood of one authenticated request."""

    forge: str  # "github" | "gitea" | "gitlab"
    event: str  # as the forge named it: "push", "Tag Push Hook", "ping", ...
    ref: str | None
    after: str | None  # the pushed commit id, for the wake reason only


class DeliveryIds:
    """The ids of the last `size` deliveries that woke a source, per hook path.

    A forge's retry or redelivery of one of them, or a replay of a captured request, wakes
    nothing. The id header is not covered by the signature, so a replay with a new id still
    wakes: that costs one coalesced fetch, since the loop trusts nothing of the payload. Give
    one instance to each new `WebhookServer` (the agent does on reload) to keep the memory.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._ids: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()
        self._lock = threading.Lock()

    def claim(self, path: str, delivery_id: str) -> bool:
        """Remember the id; False when it was already there (a repeated delivery)."""
        key = (path, delivery_id)
        with self._lock:
            if key in self._ids:
                self._ids.move_to_end(key)
                return False
            self._ids[key] = None
            while len(self._ids) > self._size:
                self._ids.popitem(last=False)
            return True

    def release(self, path: str, delivery_id: str) -> None:
        """Forget the id (its delivery failed: a retry must work)."""
        with self._lock:
            self._ids.pop((path, delivery_id), None)


class _HeadersTooLarge(Exception):
    """Internal: the request line and headers went past HEADER_LIMIT."""


class _DeadlineReader(io.RawIOBase):
    """A connection's bytes under one deadline and a byte allowance.

    Every read waits only for what is left of the request's time (a per-recv timeout would be
    renewed by each byte of a client that sends one a second), and hands out at most
    `allowed` bytes: HEADER_LIMIT until the handler lets the declared body in with `allow()`.
    """

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self.deadline = deadline
        self._allowed = HEADER_LIMIT

    def readable(self) -> bool:
        return True

    def allow(self, n: int) -> None:
        self._allowed += n

    def readinto(self, buf: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request's deadline passed")
        if self._allowed <= 0:
            raise _HeadersTooLarge
        self._sock.settimeout(left)
        with memoryview(buf) as view:
            try:
                n = self._sock.recv_into(view[: self._allowed])
            except TimeoutError:
                raise TimeoutError("the request's deadline passed") from None
        self._allowed -= n
        return n


class _Server(ThreadingHTTPServer):
    """`ThreadingHTTPServer` that hands out at most `max_connections` threads (and a quarter
    of them to one peer address); a connection over the cap gets a canned 503 and is closed."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *,
                 max_connections: int, log: Any) -> None:
        super().__init__(address, handler, bind_and_activate=False)
        self.max_connections = max_connections
        self.max_per_peer = max(1, max_connections // 4)
        self._open: collections.Counter[str] = collections.Counter()
        self._slots = threading.Lock()
        self._turning_away = False
        self._log = log

    def _take(self, peer: str) -> bool:
        with self._slots:
            if self._open.total() >= self.max_connections or self._open[peer] >= self.max_per_peer:
                return False
            self._open[peer] += 1
            return True

    def _give_back(self, peer: str) -> None:
        with self._slots:
            self._open[peer] -= 1
            if self._open[peer] <= 0:
                del self._open[peer]

    def process_request(self, request: Any, client_address: Any) -> None:
        peer = str(client_address[0])
        if not self._take(peer):
            self._turn_away(request, peer)
            return
        self._turning_away = False
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._give_back(peer)     # no thread started: nothing else will
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._give_back(str(client_address[0]))

    def _turn_away(self, request: socket.socket, peer: str) -> None:
        if not self._turning_away:    # one line per episode, not one per connection of a flood
            self._turning_away = True
            with self._slots:
                total, mine = self._open.total(), self._open[peer]
            self._log.warning("webhook_busy", peer=peer, connections=total, from_peer=mine,
                              max_connections=self.max_connections, max_per_peer=self.max_per_peer)
        with contextlib.suppress(OSError):
            request.setblocking(False)
            request.send(_BUSY)
        self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # instead of socketserver's traceback on stderr: a connection the client reset is not
        # the agent's problem; anything else is a bug, logged as one
        if isinstance(sys.exc_info()[1], OSError):
            self._log.debug("webhook_connection_error", peer=str(client_address[0]), exc_info=True)
        else:
            self._log.exception("webhook_failed", peer=str(client_address[0]))


class WebhookServer:
    """The listener; `start()` serves on a thread, `close()` stops it."""

    def __init__(
        self,
        hooks: Iterable[Hook],
        *,
        host: str = "127.0.0.1",
        port: int = 0,  # 0: any free port (read `.port` after start)
        max_body: int = MAX_BODY,
        max_connections: int = MAX_CONNECTIONS,
        request_timeout: float = REQUEST_TIMEOUT,
        deliveries: DeliveryIds | None = None,
    ) -> None:
        self._hooks: dict[str, Hook] = {}
        for hook in hooks:
            if not hook.path.startswith("/"):
                raise ValueError(f"webhook path {hook.path!r} must start with '/'")
            if hook.path in self._hooks:
                raise ValueError(f"two webhooks share the path {hook.path!r}")
            self._hooks[hook.path] = hook
        self.max_body = max_body
        self.request_timeout = request_timeout
        self.deliveries = deliveries if deliveries is not None else DeliveryIds()
        self._log = logs.get_logger("reconciler.sources.webhook")
        self._httpd = _Server((host, port), self._handler_class(), max_connections=max_connections, log=self._log)
        self._thread: threading.Thread | None = None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "reconciler-webhook"
            sys_version = ""
            timeout = server.request_timeout
            reader: _DeadlineReader

            def setup(self) -> None:
                super().setup()
                self.rfile.close()
                self.reader = _DeadlineReader(self.connection, time.monotonic() + server.request_timeout)
                self.rfile = io.BufferedReader(self.reader)

            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()
                except _HeadersTooLarge:
                    server._log.warning("webhook_rejected", peer=self.client_address[0],
                                        reason=f"headers over {HEADER_LIMIT} bytes: connection dropped")
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass  # one structured line per delivery instead (without headers)

            def log_error(self, format: str, *args: Any) -> None:
                # http.server's own refusals: a malformed request line, a deadline during the headers
                server._log.warning("webhook_rejected", peer=self.client_address[0], reason=format % args)

            def do_POST(self) -> None:
                try:
                    status, body = server._handle(self)
                except Exception:  # noqa: BLE001 - a bug here must answer, not drop the connection
                    server._log.exception("webhook_failed")
                    status, body = 500, {"error": "internal error"}
                self._reply(status, body)

            def do_GET(self) -> None:
                self._reply(405, {"error": "webhooks are POSTed"}, allow=True)

            do_PUT = do_DELETE = do_PATCH = do_GET

            def _reply(self, status: int, body: dict[str, str], *, allow: bool = False) -> None:
                data = json.dumps(body).encode() + b"\n"
                self.connection.settimeout(_REPLY_TIMEOUT)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if allow:
                    self.send_header("Allow", "POST")
                self.send_header("Connection", "close")  # one request per connection: one deadline
                self.close_connection = True
                self.end_headers()
                self.wfile.write(data)

        return Handler

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def address(self) -> str:
        host = self._httpd.server_address[0]
        if isinstance(host, bytes):
            host = host.decode()
        return f"http://{host}:{self.port}"

    def start(self) -> WebhookServer:
        try:
            self._httpd.server_bind()
            self._httpd.server_activate()
        except OSError as e:
            self._httpd.server_close()
            raise errors.SourceInvalid(
                f"cannot listen for webhooks on {self._httpd.server_address}: {e.strerror}",
                hint="pick a free port or address in the agent config",
            ) from None
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="webhooks", daemon=True)
        self._thread.start()
        self._log.info("webhook_listening", address=self.address, paths=sorted(self._hooks))
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> WebhookServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one request --------------------------------------------------------------------------

    def _handle(self, req: Any) -> tuple[int, dict[str, str]]:
        path = urllib.parse.urlsplit(req.path).path
        log = self._log.bind(path=path, peer=req.client_address[0])
        hook = self._hooks.get(path)
        if hook is None:
            log.info("webhook_rejected", status=404)
            return 404, {"error": "no webhook at this path"}
        signature = _signature(req.headers)
        if signature is None or not signature.may_be_right(hook.secret):
            log.warning("webhook_rejected", status=401, reason="missing or wrong signature")
            return 401, {"error": "missing or wrong signature"}
        try:
            length = httpbody.content_length(req.headers, self.max_body)
        except httpbody.BodyRefused as e:
            log.warning("webhook_rejected", status=e.status, reason=e.message)
            return e.status, {"error": e.message}
        if length is None:
            return 411, {"error": "a Content-Length is required"}
        req.reader.allow(length)
        try:
            body = req.rfile.read(length)
        except TimeoutError:
            log.warning("webhook_rejected", status=408, reason=f"the body did not arrive within {self.request_timeout:g}s")
            return 408, {"error": "the request took too long"}
        if len(body) != length:
            log.warning("webhook_rejected", status=400, reason="the body ended before its Content-Length")
            return 400, {"error": "the body is shorter than its Content-Length"}
        if not signature.verify(body, hook.secret):
            log.warning("webhook_rejected", status=401, reason="missing or wrong signature")
            return 401, {"error": "missing or wrong signature"}
        return self._authenticated(req.headers, body, hook, signature.forge, log)

    def _authenticated(self, headers: Message, body: bytes, hook: Hook, forge: str,
                       log: Any) -> tuple[int, dict[str, str]]:
        event = (
            headers.get("X-GitHub-Event")
            or headers.get("X-Gitea-Event")
            or headers.get("X-Gogs-Event")
            or headers.get("X-Gitlab-Event")
            or ""
        )
        if event == "ping":
            log.info("webhook_ping", forge=forge)
            return 200, {"status": "pong"}
        if event.lower() not in _PUSH_EVENTS:
            log.info("webhook_ignored", forge=forge, hook_event=event)
            return 202, {"status": "ignored", "reason": f"event {event!r} is not a push"}
        try:
            payload = _parse(headers.get("Content-Type", ""), body)
        except ValueError:
            log.warning("webhook_rejected", status=400, forge=forge, hook_event=event)
            return 400, {"error": "the payload is not JSON"}
        ref = payload.get("ref") if isinstance(payload.get("ref"), str) else None
        after = payload.get("after") or payload.get("checkout_sha")
        delivery = Delivery(forge=forge, event=event, ref=ref, after=after if isinstance(after, str) else None)
        if hook.refs is not None and delivery.ref not in hook.refs:
            log.info("webhook_ignored", forge=forge, hook_event=event, ref=delivery.ref)
            return 202, {"status": "ignored", "reason": f"ref {delivery.ref!r} is not followed here"}
        delivery_id = _delivery_id(headers)
        if delivery_id is not None and not self.deliveries.claim(hook.path, delivery_id):
            log.info("webhook_repeated", forge=forge, delivery=delivery_id)
            return 202, {"status": "ignored", "reason": f"delivery {delivery_id} was received already"}
        return self._wake(hook, delivery, delivery_id, log)

    def _wake(self, hook: Hook, delivery: Delivery, delivery_id: str | None, log: Any) -> tuple[int, dict[str, str]]:
        reason = f"webhook {delivery.forge} {delivery.event} {delivery.ref or '?'}"
        if delivery.after:
            reason += f" {delivery.after[:12]}"
        try:
            hook.wake(reason)
        except Exception:  # the sender cannot help: log it and answer 500
            if delivery_id is not None:
                self.deliveries.release(hook.path, delivery_id)
            log.exception("webhook_wake_failed")
            return 500, {"error": "could not trigger a reconcile"}
        log.info("webhook_accepted", forge=delivery.forge, hook_event=delivery.event, ref=delivery.ref,
                 after=delivery.after, delivery=delivery_id)
        return 202, {"status": "accepted"}


@dataclass(frozen=True)
class _Signature:
    """The signature header a request carries, checked for its form only."""

    forge: str
    scheme: str  # "hmac": hex HMAC-SHA256 of the body; "token": the secret itself (GitLab)
    value: str = field(repr=False)

    def may_be_right(self, secret: bytes) -> bool:
        """What can be known before the body: a token is compared in full, an HMAC's form was checked."""
        return self.scheme != "token" or self.verify(b"", secret)

    def verify(self, body: bytes, secret: bytes) -> bool:
        if self.scheme == "token":
            return hmac.compare_digest(self.value.encode(), secret)
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.value.lower().encode(), expected.encode())


def _signature(headers: Message) -> _Signature | None:
    """The request's signature header, or None when it has none of a usable form; the first
    present of Gitea's, Gogs', GitHub's and GitLab's counts (a good one cannot rescue a bad one)."""
    for name, forge in (("X-Gitea-Signature", "gitea"), ("X-Gogs-Signature", "gitea")):
        sig = headers.get(name)
        if sig is not None:
            sig = sig.strip()
            return _Signature(forge, "hmac", sig) if _HEX_SHA256.fullmatch(sig) else None
    sig = headers.get("X-Hub-Signature-256")
    if sig is not None:
        scheme, _, value = sig.strip().partition("=")
        return _Signature("github", "hmac", value) if scheme == "sha256" and _HEX_SHA256.fullmatch(value) else None
    token = headers.get("X-Gitlab-Token")
    if token is not None:
        return _Signature("gitlab", "token", token)
    return None


def _delivery_id(headers: Message) -> str | None:
    for name in _DELIVERY_HEADERS:
        value = headers.get(name)
        if value is not None:
            value = value.strip()
            return value if _DELIVERY_ID.fullmatch(value) else None
    return None


def _parse(content_type: str, body: bytes) -> dict[str, Any]:
    """The JSON payload; GitHub may send it form-encoded as `payload=`."""
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        body = fields.get("payload", [""])[0].encode()
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError("not JSON") from e
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data
