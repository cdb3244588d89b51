"""Push webhooks from GitHub, Gitea (and Gogs) and GitLab, turned into wakes.

A small HTTP/1.1 listener (stdlib `ThreadingHTTPServer`, bound to 127.0.0.1 unless told
otherwise: put a TLS reverse proxy in front to expose it). Each `Hook` owns one URL path and
one secret. A delivery is authenticated before its body is parsed:

- GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`;
- Gitea/Gogs: `X-Gitea-Signature` / `X-Gogs-Signature: <hex HMAC-SHA256 of the body>`;
- GitLab: `X-Gitlab-Token: <the secret itself>` (GitLab does not sign bodies).

Then only push events (GitHub/Gitea `push`, GitLab `Push Hook` and `Tag Push Hook`) whose
`ref` the hook follows call `wake(reason)`; the loop then fetches (the payload's commit id is
never trusted, rule 1). Replies: 202 woken or ignored (with a JSON reason), 200 for GitHub's
`ping`, 401 bad or missing signature, 404 unknown path, 405 not POST, 411/413 missing or
oversized body, 400 unreadable payload. Secrets and signatures never reach a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import urllib.parse
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import structlog

from reconciler.sources import base, errors

__all__ = ["Delivery", "Hook", "WebhookServer", "read_secret"]

_PUSH_EVENTS = {"push", "push hook", "tag push hook"}


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


class WebhookServer:
    """The listener; `start()` serves on a thread, `close()` stops it."""

    def __init__(
        self,
        hooks: Iterable[Hook],
        *,
        host: str = "127.0.0.1",
        port: int = 0,  # 0: any free port (read `.port` after start)
        max_body: int = 5 * 1024 * 1024,  # bounded reads; GitHub caps payloads at 25 MB
        timeout: float = 10.0,  # per-connection socket timeout (slow clients)
    ) -> None:
        self._hooks: dict[str, Hook] = {}
        for hook in hooks:
            if not hook.path.startswith("/"):
                raise ValueError(f"webhook path {hook.path!r} must start with '/'")
            if hook.path in self._hooks:
                raise ValueError(f"two webhooks share the path {hook.path!r}")
            self._hooks[hook.path] = hook
        self.max_body = max_body
        self._log = structlog.get_logger("reconciler.sources.webhook")
        server = self
        conn_timeout = timeout

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "reconciler-webhook"
            sys_version = ""
            timeout = conn_timeout

            def log_message(self, format: str, *args: Any) -> None:
                pass  # one structured line per delivery instead (without headers)

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
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if allow:
                    self.send_header("Allow", "POST")
                if status >= 400:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer((host, port), Handler, bind_and_activate=False)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

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

    def _handle(self, req: BaseHTTPRequestHandler) -> tuple[int, dict[str, str]]:
        path = urllib.parse.urlsplit(req.path).path
        log = self._log.bind(path=path, peer=req.client_address[0])
        hook = self._hooks.get(path)
        if hook is None:
            log.info("webhook_rejected", status=404)
            return 404, {"error": "no webhook at this path"}
        length_header = req.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            return 411, {"error": "a Content-Length is required"}
        length = int(length_header)
        if length > self.max_body:
            log.warning("webhook_rejected", status=413, length=length)
            return 413, {"error": f"payload larger than {self.max_body} bytes"}
        body = req.rfile.read(length)
        forge = _authenticate(req.headers, body, hook.secret)
        if forge is None:
            log.warning("webhook_rejected", status=401, reason="missing or wrong signature")
            return 401, {"error": "missing or wrong signature"}
        event = (
            req.headers.get("X-GitHub-Event")
            or req.headers.get("X-Gitea-Event")
            or req.headers.get("X-Gogs-Event")
            or req.headers.get("X-Gitlab-Event")
            or ""
        )
        if event == "ping":
            log.info("webhook_ping", forge=forge)
            return 200, {"status": "pong"}
        if event.lower() not in _PUSH_EVENTS:
            log.info("webhook_ignored", forge=forge, hook_event=event)
            return 202, {"status": "ignored", "reason": f"event {event!r} is not a push"}
        try:
            payload = _parse(req.headers.get("Content-Type", ""), body)
        except ValueError:
            log.warning("webhook_rejected", status=400, forge=forge, hook_event=event)
            return 400, {"error": "the payload is not JSON"}
        ref = payload.get("ref") if isinstance(payload.get("ref"), str) else None
        after = payload.get("after") or payload.get("checkout_sha")
        delivery = Delivery(forge=forge, event=event, ref=ref, after=after if isinstance(after, str) else None)
        if hook.refs is not None and delivery.ref not in hook.refs:
            log.info("webhook_ignored", forge=forge, hook_event=event, ref=delivery.ref)
            return 202, {"status": "ignored", "reason": f"ref {delivery.ref!r} is not followed here"}
        reason = f"webhook {forge} {event} {delivery.ref or '?'}"
        if delivery.after:
            reason += f" {delivery.after[:12]}"
        try:
            hook.wake(reason)
        except Exception:  # the sender cannot help: log it and answer 500
            log.exception("webhook_wake_failed")
            return 500, {"error": "could not trigger a reconcile"}
        log.info("webhook_accepted", forge=forge, hook_event=event, ref=delivery.ref, after=delivery.after)
        return 202, {"status": "accepted"}


def _authenticate(headers: Any, body: bytes, secret: bytes) -> str | None:
    """The forge whose signature scheme verified the body, or None."""
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    for name, forge in (("X-Gitea-Signature", "gitea"), ("X-Gogs-Signature", "gitea")):
        sig = headers.get(name)
        if sig is not None:
            return forge if hmac.compare_digest(sig.strip().lower().encode(), expected.encode()) else None
    sig = headers.get("X-Hub-Signature-256")
    if sig is not None:
        scheme, _, value = sig.strip().partition("=")
        ok = scheme == "sha256" and hmac.compare_digest(value.lower().encode(), expected.encode())
        return "github" if ok else None
    token = headers.get("X-Gitlab-Token")
    if token is not None:
        return "gitlab" if hmac.compare_digest(token.encode(), secret) else None
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
