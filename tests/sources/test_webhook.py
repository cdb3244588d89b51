from __future__ import annotations

import hashlib
import hmac
import http.client
import json
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
