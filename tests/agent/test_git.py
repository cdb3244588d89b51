"""Git sources in a real agent process (fake engine): commits on a branch, a force-push,
webhooks with good and bad signatures, an unreachable remote. Real repositories, served by
git http-backend on 127.0.0.1 behind a token."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.runtime.fake import FakeRuntime
from tests.agent.conftest import AgentProc, free_port, wait_for
from tests.execution.helpers import IMG, container_doc
from tests.sources.gitrepos import GitHTTPServer, Upstream, git

TOKEN = "tok-9f8e7d6c5b4a-never-logged"
HOOK_SECRET = "hook-secret-1234"


def labels(root: Path) -> dict[str, dict[str, str]]:
    return {c.name: dict(c.labels) for c in FakeRuntime.at_root(root).list_containers()}


@pytest.fixture
def forge(tmp_path: Path) -> Iterator[tuple[Upstream, GitHTTPServer]]:
    up = Upstream(tmp_path / "forge", "shop")
    server = GitHTTPServer(tmp_path / "forge", token=TOKEN)
    try:
        yield up, server
    finally:
        server.stop()


def make_agent(tmp_path: Path, server: GitHTTPServer, *, interval: str, **extra: Any) -> AgentProc:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    src = {"name": "shop", "git": {"url": server.url("shop.git"), "branch": "main", "path": "hosts/web1",
                                   "token_file": str(token)}, "interval": interval, **extra}
    a = AgentProc(tmp_path / "agent", sources=[src])
    a.tmp.mkdir(parents=True, exist_ok=True)
    FakeRuntime.at_root(a.root).publish(IMG)
    return a


def test_commits_force_push_and_unreachable_remote(tmp_path: Path, forge: tuple[Upstream, GitHTTPServer],
                                                   agents: list[AgentProc]) -> None:
    up, server = forge
    c1 = up.commit({"hosts/web1/web.yaml": container_doc("web", extra="env: {V: '1'}"),
                    "hosts/other/x.yaml": container_doc("other")})
    a = make_agent(tmp_path, server, interval="0.5s")
    agents.append(a.start())
    wait_for("c1 deployed", lambda: a.source("shop")["revision"] == c1)
    assert labels(a.root)["web"]["reconciler.revision"] == c1
    assert "other" not in labels(a.root)                         # only the sub-path is deployed

    c2 = up.commit({"hosts/web1/api.yaml": container_doc("api")})
    wait_for("c2 deployed", lambda: labels(a.root).get("api", {}).get("reconciler.revision") == c2)
    assert labels(a.root)["web"]["reconciler.revision"] == c1   # unchanged objects keep their revision

    # force-push: history rewritten to c1 plus another commit; followed, api pruned
    git(up.work, "reset", "--quiet", "--hard", c1)
    c3 = up.commit({"hosts/web1/web.yaml": container_doc("web", extra="env: {V: '3'}")}, push=False)
    up.push(force=True)
    wait_for("c3 deployed", lambda: a.source("shop")["revision"] == c3 and "api" not in labels(a.root))
    assert labels(a.root)["web"]["reconciler.revision"] == c3

    # the remote goes away: reported, nothing changes
    before = labels(a.root)
    os.rename(up.bare, up.bare.with_name("moved.git"))
    a.reconcile("shop")                         # the poller only logs; a pass fetches and reports
    src = wait_for("the fetch error reported", lambda: (s := a.source("shop"))["error"] and s)
    assert "shop.git" in src["error"]
    assert labels(a.root) == before
    assert 'reconciler_source_error{reason="fetch",source="shop"} 1.0' in a.api.get("/metrics")
    os.rename(up.bare.with_name("moved.git"), up.bare)
    c4 = up.commit({"hosts/web1/db.yaml": container_doc("db")})
    wait_for("c4 deployed after recovery", lambda: a.source("shop")["revision"] == c4)
    wait_for("error cleared", lambda: a.source("shop")["error"] is None)

    everything = a.log() + json.dumps(a.status()) + json.dumps(a.events()) + a.api.get("/metrics")
    assert TOKEN not in everything


def post_hook(port: int, body: bytes, signature: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/hooks/shop", body=body, headers={
            "Content-Type": "application/json", "X-GitHub-Event": "push", "X-Hub-Signature-256": signature})
        return conn.getresponse().status
    finally:
        conn.close()


def test_webhook_good_and_bad_signature(tmp_path: Path, forge: tuple[Upstream, GitHTTPServer],
                                        agents: list[AgentProc]) -> None:
    up, server = forge
    c1 = up.commit({"hosts/web1/web.yaml": container_doc("web")})
    secret = tmp_path / "hook.secret"
    secret.write_text(HOOK_SECRET + "\n")
    port = free_port()
    a = make_agent(tmp_path, server, interval="1h",            # no polling: only the webhook wakes it
                   webhook={"path": "/hooks/shop", "secret_file": str(secret)})
    a.config["webhook"] = {"listen": f"127.0.0.1:{port}"}
    agents.append(a.start())
    wait_for("c1 deployed", lambda: a.source("shop")["revision"] == c1)
    c2 = up.commit({"hosts/web1/api.yaml": container_doc("api")})
    body = json.dumps({"ref": "refs/heads/main", "after": c2}).encode()

    assert post_hook(port, body, "sha256=" + "0" * 64) == 401
    a.reconcile("shop")                         # a pass now would fetch c2; prove the bad hook did not wake one
    passes_before = a.source("shop")["passes"]
    assert post_hook(port, body, "sha256=" + "1" * 64) == 401
    assert a.source("shop")["passes"] == passes_before

    # the good signature wakes a pass that fetches the new commit
    good = "sha256=" + hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    c3 = up.commit({"hosts/web1/db.yaml": container_doc("db")})
    assert post_hook(port, body, good) == 202
    wait_for("c3 deployed via the webhook", lambda: a.source("shop")["revision"] == c3 and "db" in labels(a.root))
    log = a.log()
    assert HOOK_SECRET not in log
    # of three deliveries only the signed one woke the loop (the pass lists its trigger reasons)
    assert log.count('"webhook github push refs/heads/main') == 1
