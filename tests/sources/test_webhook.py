from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import select
import socket
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from reconciler.controller import loop
from reconciler.sources import errors, webhook
from reconciler.sources import git as gitsrc
from tests.controller.clocks import wait_for
from tests.sources.gitrepos import Upstream
from tests.sources.wakes import Wakes

SECRET = b"s3cret-shared-with-the-forge"
PUSH = {"ref": "refs/heads/main", "after": "0123456789abcdef0123456789abcdef01234567", "repository": {"name": "m"}}


@pytest.fixture
def wakes() -> Wakes:
    return Wakes()


@pytest.fixture
def server(wakes: Wakes) -> Iterator[webhook.WebhookServer]:
    hooks = [
        webhook.Hook(path="/hooks/shop", secret=SECRET, wake=wakes, refs={"refs/heads/main", "refs/tags/prod"}),
        webhook.Hook(path="/hooks/any", secret=SECRET, wake=wakes),
    ]
    with webhook.WebhookServer(hooks) as srv:
        yield srv


def post(
    srv: webhook.WebhookServer,
    path: str,
    body: bytes,
    headers: dict[str, str],
    method: str = "POST",
) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def github(body: bytes, event: str = "push", secret: bytes = SECRET) -> dict[str, str]:
    return {"X-GitHub-Event": event, "X-Hub-Signature-256": "sha256=" + sign(body, secret), "Content-Type": "application/json"}


def test_listens_on_loopback_by_default(server: webhook.WebhookServer) -> None:
    assert server.address.startswith("http://127.0.0.1:")


def test_a_github_push_with_a_good_signature_wakes(server: webhook.WebhookServer, wakes: Wakes) -> None:
    body = json.dumps(PUSH).encode()
    status, reply = post(server, "/hooks/shop", body, github(body))
    assert (status, reply) == (202, {"status": "accepted"})
    assert wakes.reasons == ["webhook github push refs/heads/main 0123456789ab"]


def test_a_bad_signature_is_401_and_does_not_wake(server: webhook.WebhookServer, wakes: Wakes) -> None:
    body = json.dumps(PUSH).encode()
    status, _ = post(server, "/hooks/shop", body, github(body, secret=b"guessed"))
    assert status == 401
    tampered = body.replace(b"main", b"evil")
    status, _ = post(server, "/hooks/shop", tampered, github(body))  # signature of another body
    assert status == 401
    assert wakes.reasons == []  # wake runs before the reply, so this is final


def test_a_missing_signature_is_401(server: webhook.WebhookServer, wakes: Wakes) -> None:
    body = json.dumps(PUSH).encode()
    status, _ = post(server, "/hooks/shop", body, {"X-GitHub-Event": "push"})
    assert status == 401
    assert wakes.reasons == []


def test_a_gitea_push_is_verified_by_its_own_header(server: webhook.WebhookServer, wakes: Wakes) -> None:
    body = json.dumps({**PUSH, "ref": "refs/tags/prod"}).encode()
    status, _ = post(server, "/hooks/shop", body, {"X-Gitea-Event": "push", "X-Gitea-Signature": sign(body)})
    assert status == 202
    bad = {"X-Gitea-Event": "push", "X-Gitea-Signature": sign(body, b"nope"), "X-Hub-Signature-256": "sha256=" + sign(body)}
    status, _ = post(server, "/hooks/shop", body, bad)  # a good GitHub header cannot rescue a bad Gitea one
    assert status == 401
    assert wakes.reasons == ["webhook gitea push refs/tags/prod 0123456789ab"]


def test_a_gitlab_tag_push_is_verified_by_its_token(server: webhook.WebhookServer, wakes: Wakes) -> None:
    body = json.dumps({"object_kind": "tag_push", "ref": "refs/tags/prod", "checkout_sha": "fedcba9876543210"}).encode()
    status, _ = post(server, "/hooks/shop", body, {"X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Token": SECRET.decode()})
    assert status == 202
    status, _ = post(server, "/hooks/shop", body, {"X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Token": "wrong"})
    assert status == 401
    assert wakes.reasons == ["webhook gitlab Tag Push Hook refs/tags/prod fedcba987654"]


def test_unknown_events_and_pings_are_answered_without_waking(server: webhook.WebhookServer, wakes: Wakes) -> None:
    body = json.dumps({"action": "opened"}).encode()
    status, reply = post(server, "/hooks/shop", body, github(body, event="issues"))
    assert status == 202
    assert reply["status"] == "ignored"
    body = json.dumps({"zen": "Keep it logically awesome."}).encode()
    status, reply = post(server, "/hooks/shop", body, github(body, event="ping"))
    assert (status, reply) == (200, {"status": "pong"})
    assert wakes.reasons == []


def test_pushes_to_refs_the_hook_does_not_follow_are_ignored(server: webhook.WebhookServer, wakes: Wakes) -> None:
    body = json.dumps({**PUSH, "ref": "refs/heads/feature"}).encode()
    status, reply = post(server, "/hooks/shop", body, github(body))
    assert (status, reply["status"]) == (202, "ignored")
    status, _ = post(server, "/hooks/any", body, github(body))  # this one follows every ref
    assert status == 202
    assert wakes.reasons == ["webhook github push refs/heads/feature 0123456789ab"]


def test_a_form_encoded_github_payload_is_understood(server: webhook.WebhookServer, wakes: Wakes) -> None:
    body = urllib.parse.urlencode({"payload": json.dumps(PUSH)}).encode()
    headers = {**github(body), "Content-Type": "application/x-www-form-urlencoded"}
    status, _ = post(server, "/hooks/shop", body, headers)
    assert status == 202
    assert wakes.reasons == ["webhook github push refs/heads/main 0123456789ab"]


def test_malformed_requests_are_refused(server: webhook.WebhookServer, wakes: Wakes) -> None:
    body = json.dumps(PUSH).encode()
    assert post(server, "/hooks/nope", body, github(body))[0] == 404
    assert post(server, "/hooks/shop", b"", {}, method="GET")[0] == 405
    junk = b"{not json"
    assert post(server, "/hooks/shop", junk, github(junk))[0] == 400
    assert wakes.reasons == []


def test_an_oversized_body_is_refused_before_it_is_read(wakes: Wakes) -> None:
    hooks = [webhook.Hook(path="/h", secret=SECRET, wake=wakes)]
    with webhook.WebhookServer(hooks, max_body=100) as srv:
        body = json.dumps({**PUSH, "padding": "x" * 200}).encode()
        assert post(srv, "/h", body, github(body))[0] == 413
    assert wakes.reasons == []


def test_secrets_and_signatures_stay_out_of_the_logs(wakes: Wakes) -> None:
    body = json.dumps(PUSH).encode()
    hooks = [webhook.Hook(path="/h", secret=SECRET, wake=wakes)]
    with capture_logs() as logs, webhook.WebhookServer(hooks) as srv:
        post(srv, "/h", body, github(body))
        post(srv, "/h", body, github(body, secret=b"other"))
        post(srv, "/h", body, {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "other-token"})
    text = repr(logs)
    assert "webhook_accepted" in text
    assert "webhook_rejected" in text
    for secret in (SECRET.decode(), sign(body), sign(body, b"other"), "other-token"):
        assert secret not in text


def test_secret_files_are_read_without_their_newline(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("abc\n")
    assert webhook.read_secret(tmp_path / "secret") == b"abc"
    with pytest.raises(errors.SourceInvalid):
        webhook.read_secret(tmp_path / "missing")


def test_a_signed_push_makes_the_loop_fetch_the_new_commit(tmp_path: Path) -> None:
    up = Upstream(tmp_path / "remote")
    up.commit({"web.yaml": "kind: Container\n"}, "first")
    src = gitsrc.GitSource(str(up.bare), cache_dir=tmp_path / "cache", branch="main", poll_interval=3600.0)
    fetched: list[str] = []

    def reconcile(request: loop.Request) -> loop.Result:
        fetched.append(src.fetch().id)
        return loop.Result()

    with loop.ControllerLoop(reconcile) as ctl:
        ctl.trigger("shop", "start")
        wait_for(lambda: len(fetched) == 1, what="the first pass")
        hook = webhook.Hook(path="/hooks/shop", secret=SECRET, wake=ctl.waker("shop"), refs={src.ref_name})
        with webhook.WebhookServer([hook]) as srv, src.watch(Wakes()):
            new = up.commit({"web.yaml": "kind: Container # v2\n"}, "second")
            body = json.dumps({"ref": "refs/heads/main", "after": new}).encode()
            assert post(srv, "/hooks/shop", body, github(body))[0] == 202
            wait_for(lambda: len(fetched) == 2, what="the pass the webhook triggered")
    assert fetched[1] == new


# -- what an unauthenticated client can hold (#14 item 7) -------------------------------------


def raw(srv: webhook.WebhookServer, source: str = "127.0.0.1", timeout: float = 30.0) -> socket.socket:
    """A plain TCP connection to the listener from `source` (any 127/8 address is this host)."""
    return socket.create_connection(("127.0.0.1", srv.port), timeout=timeout, source_address=(source, 0))


def head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: hooks.test", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_of(sock: socket.socket) -> int:
    """The status of the reply on `sock` (it must come within the socket's timeout)."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


def status_or_503(srv: webhook.WebhookServer, body: bytes) -> int:
    """A signed push's status; 503 also when the listener turned it away before it was all sent."""
    try:
        return post(srv, "/h", body, github(body))[0]
    except OSError:
        return 503


def until_closed(sock: socket.socket) -> bytes:
    """What the server sends until it ends the connection (within the socket's timeout)."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(4096):
            data += chunk
    return data


@pytest.mark.parametrize("signature", [
    {},                                                   # no signature header at all
    {"X-Hub-Signature-256": "sha256=not-hex"},            # one that cannot be an HMAC-SHA256
    {"X-Gitea-Signature": "0" * 63},
    {"X-Gitlab-Token": "wrong-token"},                    # GitLab's token is checked before the body too
])
def test_an_unsigned_request_is_refused_before_its_body_is_read(
        server: webhook.WebhookServer, wakes: Wakes, signature: dict[str, str]) -> None:
    with raw(server, timeout=5.0) as s:                   # less than the 10 s request deadline
        s.sendall(head("/hooks/shop", {"X-GitHub-Event": "push", "Content-Length": "500000", **signature}))
        assert status_of(s) == 401                        # answered with the body still to come
    assert wakes.reasons == []


@pytest.mark.parametrize(("length", "status"), [("-1", 400), ("1e3", 400), ("²", 400), (str((1 << 20) + 1), 413)])
def test_a_bad_or_oversized_length_is_refused_unread(server: webhook.WebhookServer, length: str, status: int) -> None:
    with raw(server, timeout=5.0) as s:
        s.sendall(head("/hooks/shop", {**github(b"{}"), "Content-Length": length}).replace(b"\xc2\xb2", b"\xb2"))
        assert status_of(s) == status                     # 1 MiB by default, and never read to EOF


def test_a_slow_loris_is_dropped_at_the_request_deadline(wakes: Wakes) -> None:
    hooks = [webhook.Hook(path="/h", secret=SECRET, wake=wakes)]
    with webhook.WebhookServer(hooks, request_timeout=1.0) as srv, raw(srv) as in_headers, raw(srv) as in_body:
        body = json.dumps(PUSH).encode()
        in_body.sendall(head("/h", {**github(body), "Content-Length": str(len(body))}))
        in_headers.sendall(b"POST /h HTTP/1.1\r\nX-Padding: ")
        started = time.monotonic()
        dropped: float | None = None
        while dropped is None and time.monotonic() - started < 6.0:
            try:                                          # a byte every 0.2 s: a per-recv timeout never fires
                in_headers.send(b"x")
                in_body.send(body[:1])
            except OSError:
                dropped = time.monotonic() - started
                break
            readable, _, _ = select.select([in_headers], [], [], 0.2)
            if readable and not in_headers.recv(4096):
                dropped = time.monotonic() - started
        assert dropped is not None, "the slow client was still connected after 6 s"
        assert 0.8 < dropped < 3.0
        assert status_of(in_body) == 408                  # a body that never completes: the same deadline
    assert wakes.reasons == []


def test_connections_over_the_caps_are_turned_away_at_once(wakes: Wakes) -> None:
    hooks = [webhook.Hook(path="/h", secret=SECRET, wake=wakes)]
    with webhook.WebhookServer(hooks, max_connections=8, request_timeout=30.0) as srv, \
            contextlib.ExitStack() as held:
        # one peer may hold a quarter of the connections (2 of 8) ...
        mine = [held.enter_context(raw(srv, "127.0.0.2")) for _ in range(2)]
        with raw(srv, "127.0.0.2", timeout=5.0) as third:
            assert status_of(third) == 503
        # ... and all peers together 8
        for source in ("127.0.0.3", "127.0.0.4", "127.0.0.5"):
            held.enter_context(raw(srv, source))
            held.enter_context(raw(srv, source))
        with raw(srv, "127.0.0.6", timeout=5.0) as ninth:
            assert status_of(ninth) == 503
        with raw(srv, timeout=5.0) as signed:             # whoever it is
            assert status_of(signed) == 503
        body = json.dumps(PUSH).encode()
        mine[0].close()                                   # a slot comes back when its connection ends
        wait_for(lambda: status_or_503(srv, body) == 202, what="the freed slot")
    assert wakes.reasons == ["webhook github push refs/heads/main 0123456789ab"]


def test_headers_past_their_limit_end_the_connection(server: webhook.WebhookServer) -> None:
    padding = {f"X-Pad-{i}": "p" * 1000 for i in range(70)}     # 70 KiB: each line and the count within http.server's own limits
    with raw(server, timeout=5.0) as s:
        with contextlib.suppress(OSError):
            s.sendall(head("/hooks/shop", {"X-GitHub-Event": "push", **padding}))
        # dropped unanswered; http.server alone reads all 70 headers and answers 401 (no signature)
        assert until_closed(s) == b""


def test_a_repeated_delivery_wakes_once(wakes: Wakes) -> None:
    body = json.dumps(PUSH).encode()
    deliveries = webhook.DeliveryIds()
    hooks = [webhook.Hook(path="/h", secret=SECRET, wake=wakes)]
    first = {**github(body), "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
    with webhook.WebhookServer(hooks, deliveries=deliveries) as srv:
        assert post(srv, "/h", body, first) == (202, {"status": "accepted"})
        status, reply = post(srv, "/h", body, first)      # a retry, a redelivery, or a replay
        assert (status, reply["status"]) == (202, "ignored")
        assert "received already" in reply["reason"]
        assert post(srv, "/h", body, {**first, "X-GitHub-Delivery": "another"})[0] == 202
        gitlab = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET.decode(), "Idempotency-Key": "k-1"}
        assert post(srv, "/h", body, gitlab)[1] == {"status": "accepted"}
        assert post(srv, "/h", body, {**gitlab, "X-Gitlab-Event-UUID": "e-2"})[1]["status"] == "ignored"
    with webhook.WebhookServer(hooks, deliveries=deliveries) as srv:    # the agent's reload keeps the ids
        assert post(srv, "/h", body, first)[1]["status"] == "ignored"
    assert len(wakes.reasons) == 3


def test_a_delivery_whose_wake_failed_can_be_retried() -> None:
    calls: list[str] = []

    def flaky(reason: str) -> None:
        calls.append(reason)
        if len(calls) == 1:
            raise RuntimeError("the loop is stopping")

    body = json.dumps(PUSH).encode()
    headers = {**github(body), "X-GitHub-Delivery": "d-1"}
    with webhook.WebhookServer([webhook.Hook(path="/h", secret=SECRET, wake=flaky)]) as srv:
        assert post(srv, "/h", body, headers)[0] == 500
        assert post(srv, "/h", body, headers)[0] == 202
    assert len(calls) == 2
