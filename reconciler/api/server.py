"""The API server: HTTP/1.1 and JSON on a Unix socket, metrics optionally on TCP too.

The socket is created mode 0660 (root and the socket's group may manage the host, as with
docker.sock); a stale socket file left by a killed agent is replaced, a live one is refused.
Request bodies are bounded; every reply is JSON except `/metrics` (Prometheus text) and
`/v1/events` (JSON lines, streamed until the client goes or the agent stops).
"""

from __future__ import annotations

import contextlib
import hmac
import itertools
import json
import os
import select
import socket
import socketserver
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol, Self

from reconciler import httpbody, listing, logs
from reconciler.api import dashboard, errors
from reconciler.api import events as events_mod
from reconciler.errors import ReconcilerError

__all__ = ["AgentView", "ApiServer", "DashboardServer", "MetricsServer"]

MAX_BODY = 1024 * 1024


class AgentView(Protocol):
    """What the API needs from the agent; every method is called on a request thread."""

    events: events_mod.EventBus

    def status(self) -> Mapping[str, Any]: ...

    def source_status(self, name: str) -> Mapping[str, Any]: ...

    def set_suspended(self, name: str, suspended: bool) -> Mapping[str, Any]: ...

    def plan(self, name: str | None) -> Mapping[str, Any]: ...

    def reconcile_now(self, name: str | None, *, wait: bool, timeout: float) -> Mapping[str, Any]: ...

    def history(self, name: str | None, limit: int) -> Sequence[Mapping[str, Any]]: ...

    def rollback(self, name: str, revision: str | None) -> Mapping[str, Any]: ...

    def metrics(self) -> tuple[bytes, str]: ...

    def logs_tail(self, container: str, lines: int) -> Sequence[str]: ...

    def logs_tails(self, lines: int) -> Mapping[str, Sequence[str]]: ...

    def containers(self, labels: Mapping[str, str], *,
                   measure: Callable[[Mapping[str, Any]], bool] | None = None) -> Sequence[Mapping[str, Any]]: ...

    def inspect_container(self, name: str) -> Mapping[str, Any]: ...

    def images(self) -> Sequence[Mapping[str, Any]]: ...

    def pull_if_present(self, ref: str, *, missing: bool = False) -> Mapping[str, Any]: ...

    def build(self, options: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]: ...

    def container_logs(self, name: str, *, follow: bool, since: str | None,
                       tail: int | None) -> Iterator[Mapping[str, Any]]: ...

    def create_container(self, config: Mapping[str, Any], *, volatile: bool = False,
                         auto_remove: bool = False) -> Mapping[str, Any]: ...

    def container_action(self, name: str, action: str, body: Mapping[str, Any]) -> Mapping[str, Any]: ...

    def run_container(self, config: Mapping[str, Any], *, remove: bool, detach: bool,
                      hangup: Callable[[], bool]) -> Iterator[Mapping[str, Any]]: ...


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The agent's and the Engine API's server. Its socket is bound under a name of its own and
    renamed to its path once it listens: a client that waits for the path (a test, a unit's
    ExecStartPost, `docker` started beside it) never finds it there refusing connections."""

    daemon_threads = True
    allow_reuse_address = False

    def server_bind(self) -> None:
        final = str(self.server_address)
        self._binding = os.path.join(os.path.dirname(final) or ".", f".{os.getpid()}.bind")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._binding)            # a process of this pid that died between the two
        self.socket.bind(self._binding)
        self.server_address = final

    def server_activate(self) -> None:
        super().server_activate()               # listen(), then the path appears
        os.rename(self._binding, str(self.server_address))


def _remove_stale(path: Path) -> None:
    """Remove a socket file nobody listens on; refuse one an agent serves."""
    if not path.exists() and not path.is_symlink():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    raise errors.Conflict(f"an agent already serves {path}",
                          hint="stop it first, or give this agent another socket in its config")


def _labels(text: str | None) -> dict[str, str]:
    """The `labels` query parameter: a JSON object of label values to match (none: all)."""
    if not text:
        return {}
    try:
        labels = json.loads(text)
    except ValueError as e:
        raise errors.BadRequest(f"labels is not JSON: {e}") from None
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise errors.BadRequest('labels must be a JSON object of strings, e.g. {"tier": "front"}')
    return labels


def _make_handler(view: AgentView, *, metrics_only: bool, follow_poll: float,
                  dashboard_token: bytes | None = None, dashboard_only: bool = False) -> type[BaseHTTPRequestHandler]:
    log = logs.get_logger("reconciler.api")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "reconciler"
        sys_version = ""
        timeout = 30

        def address_string(self) -> str:
            addr = self.client_address
            return str(addr[0]) if isinstance(addr, tuple) and addr else "unix"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        # -- plumbing ---------------------------------------------------------------------

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, value: Any, *, sort: bool = True) -> None:
            self._send(status, json.dumps(value, sort_keys=sort, default=str).encode() + b"\n",
                       "application/json")

        def _listing(self, q: Mapping[str, str], rows: list[Mapping[str, Any]], flags: tuple[str, ...],
                     render: Callable[[list[Mapping[str, Any]], dict[str, Any]], str]) -> None:
            """The rows as JSON, or with `print=table|json|yaml` (and flags=1) the text the
            command prints (#21: a thin client then renders nothing, listing.py)."""
            if "print" not in q:
                self._json(200, rows)
                return
            try:
                options = listing.options_of(flags, q["print"], q)
            except ValueError as e:
                raise errors.BadRequest(str(e)) from None
            self._send(200, render(rows, options).encode(), "text/plain; charset=utf-8")

        def _body(self) -> dict[str, Any]:
            try:
                length = httpbody.content_length(self.headers, MAX_BODY)
            except httpbody.BodyRefused as e:
                self.close_connection = True    # the body is left unread: the connection cannot go on
                raise (errors.PayloadTooLarge if e.status == 413 else errors.BadRequest)(e.message) from None
            if not length:
                return {}
            try:
                data = json.loads(self.rfile.read(length))
            except ValueError as e:
                raise errors.BadRequest(f"the body is not JSON: {e}") from None
            if not isinstance(data, dict):
                raise errors.BadRequest("the body must be a JSON object")
            return data

        def _dispatch(self, method: str) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
            try:
                self._route(method, url.path.rstrip("/") or "/", query)
            except errors.ApiError as e:
                self._json(e.status, {"error": e.message, "hint": e.hint})
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            except Exception as e:
                log.exception("api_request_failed", path=url.path)
                self._json(500, {"error": f"internal error: {type(e).__name__}"})

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_HEAD(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        # -- routes -----------------------------------------------------------------------

        def _route(self, method: str, path: str, q: Mapping[str, str]) -> None:
            if dashboard_only or path == "/" or path.startswith("/ui/"):
                self._dashboard(method, path, q)
                return
            if path == "/metrics" and method == "GET":
                text, ctype = view.metrics()
                self._send(200, text, ctype)
                return
            if metrics_only:
                raise errors.NotFound(f"{path}: only /metrics is served on TCP")
            if path == "/v1/status" and method == "GET":
                self._json(200, view.status())
            elif path.startswith("/v1/sources/"):
                name = urllib.parse.unquote(path[len("/v1/sources/"):])
                if method == "GET":
                    self._json(200, view.source_status(name))
                else:
                    body = self._body()
                    if not isinstance(body.get("suspend"), bool):
                        raise errors.BadRequest('POST a JSON object {"suspend": true|false}')
                    self._json(200, view.set_suspended(name, body["suspend"]))
            elif path == "/v1/plan" and method == "GET":
                self._json(200, view.plan(q.get("source")))
            elif path == "/v1/reconcile" and method == "POST":
                body = self._body()
                timeout = float(body.get("timeout", 300))
                self._json(200, view.reconcile_now(body.get("source"), wait=bool(body.get("wait")), timeout=timeout))
            elif path == "/v1/containers" and method == "GET":
                # sizes measured (`ps -s`) only for the rows printed: `size=1`, and `all=1` for stopped ones too
                measure = listing.ps_measured({f: q.get(f) == "1" for f in listing.PS_FLAGS})
                rows = list(view.containers(_labels(q.get("labels")), measure=measure))
                self._listing(q, rows, listing.PS_FLAGS, listing.ps_text)
            elif path.startswith("/v1/containers/") and path.endswith("/logs") and method == "GET":
                name = urllib.parse.unquote(path[len("/v1/containers/"):-len("/logs")])
                tail = q.get("tail")
                self._stream_lines(view.container_logs(name, follow=q.get("follow") in ("1", "true"),
                                                       since=q.get("since"), tail=int(tail) if tail else None))
            elif path == "/v1/containers" and method == "POST":     # `reconcile create` (#21)
                body = self._body()
                if not isinstance(body.get("config"), dict):
                    raise errors.BadRequest('POST a JSON object {"config": CONTAINER CONFIG, "volatile": BOOL, '
                                            '"auto_remove": BOOL}')
                self._json(200, view.create_container(body["config"], volatile=body.get("volatile") is True,
                                                      auto_remove=body.get("auto_remove") is True))
            elif path == "/v1/run" and method == "POST":    # `reconcile run` in one request (#21)
                body = self._body()
                if not isinstance(body.get("config"), dict):
                    raise errors.BadRequest('POST a JSON object {"config": CONTAINER CONFIG, "remove": BOOL, '
                                            '"detach": BOOL}')
                self._stream_lines(view.run_container(body["config"], remove=body.get("remove") is True,
                                                      detach=body.get("detach") is True, hangup=self._hung_up))
            elif path.startswith("/v1/containers/") and method == "POST":   # start, stop, wait, remove, exec
                name, _, action = path[len("/v1/containers/"):].rpartition("/")
                self._json(200, view.container_action(urllib.parse.unquote(name), action, self._body()))
            elif path.startswith("/v1/containers/") and method == "GET":   # in `docker inspect`'s order
                self._json(200, view.inspect_container(urllib.parse.unquote(path[len("/v1/containers/"):])),
                           sort=False)
            elif path == "/v1/images" and method == "GET":
                self._listing(q, list(view.images()), listing.IMAGES_FLAGS, listing.images_text)
            elif path == "/v1/pull" and method == "POST":
                body = self._body()
                policy = body.get("pull", "always")        # a client before --pull=missing sends none
                if not isinstance(body.get("ref"), str) or policy not in ("always", "missing"):
                    raise errors.BadRequest('POST a JSON object {"ref": IMAGE, "pull": "always" or "missing"}')
                self._json(200, view.pull_if_present(body["ref"], missing=policy == "missing"))
            elif path == "/v1/build" and method == "POST":          # `reconcile build` (#21)
                body = self._body()
                if not isinstance(body.get("options"), dict):
                    raise errors.BadRequest('POST a JSON object {"options": BUILD OPTIONS}')
                self._stream_lines(view.build(body["options"]))
            elif path == "/v1/events" and method == "GET":
                self._stream_events(int(q.get("since", "0") or 0), q.get("follow") in ("1", "true"))
            elif path == "/v1/history" and method == "GET":
                self._json(200, list(view.history(q.get("source"), int(q.get("limit", "20") or 20))))
            elif path == "/v1/rollback" and method == "POST":
                body = self._body()
                if not isinstance(body.get("source"), str):
                    raise errors.BadRequest('POST a JSON object {"source": NAME, "revision": ID (optional)}')
                self._json(200, view.rollback(body["source"], body.get("revision")))
            elif path in ("/v1/status", "/v1/plan", "/v1/events", "/v1/history", "/v1/reconcile", "/v1/rollback",
                          "/v1/containers", "/v1/images", "/v1/pull", "/v1/build", "/v1/run"):
                raise errors.MethodNotAllowed(f"{method} is not allowed on {path}")
            else:
                raise errors.NotFound(f"no such API path {path}", hint="paths are versioned: /v1/status, ...")

        def _dashboard(self, method: str, path: str, q: Mapping[str, str]) -> None:
            if method != "GET":
                raise errors.MethodNotAllowed(f"{method} is not allowed on the dashboard (it is read-only)")
            if dashboard_token is not None and path == "/" and "token" in q:
                if not hmac.compare_digest(q["token"].encode(), dashboard_token):
                    raise errors.Unauthorized("wrong dashboard token")
                self.send_response(303)           # keep the token out of the address bar and history
                self.send_header("Set-Cookie", f"{dashboard.COOKIE}={q['token']}; HttpOnly; SameSite=Strict; Path=/")
                self.send_header("Location", "/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if not dashboard.authorized(dashboard_token, self.headers.get("Authorization") or "",
                                        self.headers.get("Cookie") or ""):
                raise errors.Unauthorized("the dashboard needs its token",
                                          hint="open /?token=TOKEN once, or send Authorization: Bearer TOKEN")
            html_type = "text/html; charset=utf-8"
            if path == "/":
                self._send(200, dashboard.render_index(*self._dashboard_data()), html_type)
            elif path.startswith("/ui/logs/"):
                name = urllib.parse.unquote(path[len("/ui/logs/"):])
                self._send(200, dashboard.render_logs(name, view.logs_tail(name, 200)), html_type)
            elif path == "/ui/events":
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                self._follow_dashboard()
            else:
                raise errors.NotFound(f"no dashboard page {path}")

        def _stream_lines(self, values: Iterator[Mapping[str, Any]]) -> None:
            """JSON lines as `values` yields them; its first is taken before the reply starts,
            so an error in it (no such container, a bad argument) is answered with its status.
            An error after that is the reply's last line, {"error", "hint", "status"}: a status
            line written into a started reply would read as garbage to the client."""
            first = next(values, None)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                for value in itertools.chain(() if first is None else (first,), values):
                    self.wfile.write(json.dumps(value).encode() + b"\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                raise
            except errors.ApiError as e:
                self._last_line({"error": e.message, "hint": e.hint, "status": e.status})
            except Exception as e:
                log.exception("api_stream_failed", path=self.path)
                self._last_line({"error": f"internal error: {type(e).__name__}",
                                 "hint": "the agent's log has the details", "status": 500})

        def _last_line(self, value: Mapping[str, Any]) -> None:
            self.wfile.write(json.dumps(value).encode() + b"\n")
            self.wfile.flush()

        def _hung_up(self) -> bool:
            """Whether the client of a streamed reply closed its side (`run`'s Ctrl-C: a
            half-close); BrokenPipeError when it is gone altogether (a keep-alive blank line,
            which a client skips, cannot be written)."""
            ready, _, _ = select.select([self.connection], [], [], 0)
            if not ready or self.connection.recv(1, socket.MSG_PEEK):
                return False
            self.wfile.write(b"\n")
            self.wfile.flush()
            return True

        def _dashboard_data(self) -> tuple[Mapping[str, Any], Sequence[Mapping[str, Any]],
                                           Mapping[str, Sequence[str]]]:
            """What the page shows: status, the last passes, each container's last log lines."""
            try:
                tails = view.logs_tails(dashboard.TAIL_LINES)
            except ReconcilerError:
                tails = {}                      # the engine cannot be read: status says why
            return view.status(), view.history(None, 20), tails

        def _follow_dashboard(self) -> None:
            """Events as they come; and after each batch or poll interval, the page's sections
            when they differ from what this client was last sent."""
            bus, seq = view.events, view.events.last_seq
            sent: dict[str, str] = {}
            while not bus.closed:
                batch = bus.wait(seq, follow_poll)
                for chunk in dashboard.sse_lines(batch):
                    self.wfile.write(chunk)
                seq = max([seq, *(int(e["seq"]) for e in batch)])
                parts = dashboard.sections(*self._dashboard_data())
                changed = {k: v for k, v in parts.items() if sent.get(k) != v}
                if changed:
                    self.wfile.write(dashboard.sse_sections(changed))
                    sent.update(changed)
                elif not batch:
                    self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()

        def _stream_events(self, since: int, follow: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            seq = since
            bus = view.events
            while True:
                batch = bus.wait(seq, follow_poll) if follow else bus.since(seq)
                for e in batch:
                    self.wfile.write(json.dumps(e, sort_keys=True, default=str).encode() + b"\n")
                    seq = max(seq, int(e["seq"]))
                self.wfile.flush()
                if not follow or bus.closed:
                    return

    return Handler


class ApiServer:
    """Serves `view` on a Unix socket; `start()` returns at once, `close()` stops and unlinks."""

    def __init__(self, view: AgentView, socket_path: Path, *, follow_poll: float = 1.0) -> None:
        self.view = view
        self.socket_path = Path(socket_path)
        self._handler = _make_handler(view, metrics_only=False, follow_poll=follow_poll)
        self._server: _UnixHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ApiServer:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(self.socket_path)
        old = os.umask(0o117)
        try:
            self._server = _UnixHTTPServer(str(self.socket_path), self._handler)
        except OSError as e:
            raise errors.ApiError(f"cannot listen on {self.socket_path}: {e.strerror}",
                                  hint="check the directory exists and is writable by the agent") from None
        finally:
            os.umask(old)
        self._thread = threading.Thread(target=self._server.serve_forever, name="api", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class MetricsServer:
    """`/metrics` only, on TCP (for a Prometheus that cannot reach the socket)."""

    what = "metrics"

    def __init__(self, view: AgentView, host: str, port: int) -> None:
        self._make(_make_handler(view, metrics_only=True, follow_poll=1.0), host, port)

    def _make(self, handler: type[BaseHTTPRequestHandler], host: str, port: int) -> None:
        self._server = ThreadingHTTPServer((host, port), handler, bind_and_activate=False)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> Self:
        try:
            self._server.server_bind()
            self._server.server_activate()
        except OSError as e:
            self._server.server_close()
            raise errors.ApiError(f"cannot listen for {self.what} on {self._server.server_address}: {e.strerror}",
                                  hint=f"pick a free port in the agent config ({self.what}.listen)") from None
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.what, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()


class DashboardServer(MetricsServer):
    """The dashboard alone on TCP, every request checked against the token."""

    what = "dashboard"

    def __init__(self, view: AgentView, host: str, port: int, token: bytes) -> None:
        self._make(_make_handler(view, metrics_only=False, follow_poll=1.0, dashboard_token=token,
                                 dashboard_only=True), host, port)
