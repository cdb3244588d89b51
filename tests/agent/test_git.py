"""Git sources in a real agent process (fake engine): commits on a branch, a force-push,
webhooks with good and bad signatures, an unreachable remote. Real repositories, served by
git http-backend on 127.0.0.1 behind a token."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.agent import config
from reconciler.runtime.fake import FakeRuntime
from reconciler.sources import webhook
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


# -- the webhook listener under a flood (#14 item 7) --------------------------------------------


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


def unsigned_head(length: int) -> bytes:
    return (f"POST /hooks/shop HTTP/1.1\r\nHost: hooks\r\nX-GitHub-Event: push\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


def flood(port: int, sources: list[str], length: int, pid: int) -> tuple[list[socket.socket], int]:
    """One connection from each address, each sending an unsigned request's headers and then as
    much of its body as the agent reads, all but its last KiB (as the issue's reproduction did);
    the connections and the agent's highest RSS meanwhile, in KiB."""
    socks = []
    for source in sources:
        s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
        s.sendall(unsigned_head(length))
        s.setblocking(False)
        socks.append(s)
    pending = {s: length - 1024 for s in socks}
    chunk = b" " * 65536
    peak = rss_kib(pid)
    until = time.monotonic() + 10
    while pending and time.monotonic() < until:
        _, writable, _ = select.select([], list(pending), [], 0.2)
        for s in writable:
            try:
                pending[s] -= s.send(chunk[: pending[s]])
            except OSError:             # the agent answered and closed it: nothing more is read
                pending[s] = 0
            if pending[s] == 0:
                del pending[s]
        peak = max(peak, rss_kib(pid))
    for _ in range(10):                 # what the agent holds while the bodies stay incomplete
        time.sleep(0.1)
        peak = max(peak, rss_kib(pid))
    return socks, peak


def dribble(socks: list[socket.socket], dropped_after: list[float], started: float) -> None:
    """Send each socket a partial request line, then a byte every 0.2 s until the agent closes
    it (or 12 s pass); record when each was closed, in seconds after `started`."""
    for s in socks:
        with contextlib.suppress(OSError):          # one turned away (503) may be reset already
            s.sendall(b"POST /hooks/shop HTTP/1.1\r\nX-Pad: ")
        s.setblocking(False)
    open_ = set(socks)
    while open_ and time.monotonic() - started < 12:
        for s in list(open_):
            try:
                s.send(b"x")
                closed = s.recv(4096) == b""
            except BlockingIOError:
                closed = False
            except OSError:
                closed = True
            if closed:
                open_.discard(s)
                dropped_after.append(time.monotonic() - started)
        time.sleep(0.2)


def signed_post(port: int, body: bytes, delivery: str, patience: float) -> tuple[int, bytes]:
    """POST a signed push, again while the listener answers 503 (busy), for up to `patience` s."""
    signature = "sha256=" + hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    until = time.monotonic() + patience
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("POST", "/hooks/shop", body=body, headers={
                "Content-Type": "application/json", "X-GitHub-Event": "push", "X-Hub-Signature-256": signature,
                "X-GitHub-Delivery": delivery})
            resp = conn.getresponse()
            status, reply = resp.status, resp.read()
        except OSError:                 # turned away before the request was all sent
            status, reply = 503, b""
        finally:
            conn.close()
        if status != 503 or time.monotonic() > until:
            return status, reply
        time.sleep(0.1)


def test_webhook_flood_slow_clients_and_a_replayed_delivery(
        tmp_path: Path, forge: tuple[Upstream, GitHTTPServer], agents: list[AgentProc]) -> None:
    up, server = forge
    c1 = up.commit({"hosts/web1/web.yaml": container_doc("web")})
    secret = tmp_path / "hook.secret"
    secret.write_text(HOOK_SECRET + "\n")
    port = free_port()
    a = make_agent(tmp_path, server, interval="1h", webhook={"path": "/hooks/shop", "secret_file": str(secret)})
    a.config["webhook"] = {"listen": f"127.0.0.1:{port}", "request_timeout": "3s"}
    agents.append(a.start())
    wait_for("c1 deployed", lambda: a.source("shop")["revision"] == c1)

    # 60 unsigned ~1 MB bodies from 60 addresses (so the per-address cap does not help): none is read
    before = rss_kib(a.pid)
    socks, peak = flood(port, [f"127.0.1.{i}" for i in range(1, 61)], 1_000_000, a.pid)
    try:
        assert peak - before < 8 * 1024, f"RSS grew by {(peak - before) // 1024} MiB under the flood"
        c2 = up.commit({"hosts/web1/api.yaml": container_doc("api")})
        body = json.dumps({"ref": "refs/heads/main", "after": c2}).encode()
        assert signed_post(port, body, "delivery-1", patience=10)[0] == 202
        wait_for("c2 deployed via the webhook", lambda: a.source("shop")["revision"] == c2)
    finally:
        for s in socks:
            s.close()

    # slow clients hold every connection (16), sending their request line a byte every 0.2 s (a
    # per-read timeout would never fire): each is dropped at the 3 s deadline, and a signed
    # delivery gets through once they are
    slow = [socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(f"127.0.2.{i}", 0))
            for i in range(1, 21)]
    started = time.monotonic()
    dropped_after: list[float] = []
    dribbler = threading.Thread(target=dribble, args=(slow, dropped_after, started), daemon=True)
    dribbler.start()
    try:
        c3 = up.commit({"hosts/web1/db.yaml": container_doc("db")})
        body3 = json.dumps({"ref": "refs/heads/main", "after": c3}).encode()
        assert signed_post(port, body3, "delivery-2", patience=10)[0] == 202
        dribbler.join(15)
        assert len(dropped_after) == len(slow), f"{len(slow) - len(dropped_after)} slow connections still open"
        assert max(dropped_after) < 3 + 3
    finally:
        for s in slow:
            s.close()
    wait_for("c3 deployed via the webhook", lambda: a.source("shop")["revision"] == c3)

    # the first delivery again (a forge's retry, or a replay): answered, wakes nothing
    status, reply = signed_post(port, body, "delivery-1", patience=0)
    assert (status, json.loads(reply)["status"]) == (202, "ignored")
    log = a.log()
    assert log.count('"event": "webhook_accepted"') == 2
    assert log.count('"event": "webhook_repeated"') == 1


def test_the_webhook_limits_in_the_agent_config(tmp_path: Path) -> None:
    text = f"root: {tmp_path}\nsources: [{{name: s, git: {{url: 'https://git.example/x.git'}}}}]\nwebhook: "
    cfg = config.parse_config(text + "{listen: ':9465', max_body: 65536, max_connections: 4, request_timeout: 2s}\n")
    assert (cfg.webhook_max_body, cfg.webhook_max_connections, cfg.webhook_request_timeout) == (65536, 4, 2.0)
    cfg = config.parse_config(text + "{listen: ':9465'}\n")      # the listener's own defaults
    assert (cfg.webhook_max_body, cfg.webhook_max_connections, cfg.webhook_request_timeout) == (
        webhook.MAX_BODY, webhook.MAX_CONNECTIONS, webhook.REQUEST_TIMEOUT)
    for bad, says in (("request_timeout: 0s", "webhook: request_timeout must be more than 0s"),
                      ("max_connections: 0", "webhook.max_connections: 0 is less than the minimum of 1"),
                      ("max_body: 100", "webhook.max_body: 100 is less than the minimum of 1024"),
                      ("max_bodies: 100", "webhook: Additional properties are not allowed ('max_bodies' was")):
        with pytest.raises(config.ConfigError) as e:
            config.parse_config(text + f"{{listen: ':9465', {bad}}}\n", where="agent.yaml")
        assert f"agent.yaml:3: {says}" in str(e.value)


def env_of(root: Path, name: str) -> dict[str, str]:
    return dict(FakeRuntime.at_root(root).config_of(name).env)


def test_a_pin_and_a_suspend_outlive_a_restart_of_the_agent(
        tmp_path: Path, forge: tuple[Upstream, GitHTTPServer], agents: list[AgentProc],
        capsys: pytest.CaptureFixture[str]) -> None:
    from reconciler.cli.main import main

    up, server = forge
    good = up.commit({"hosts/web1/web.yaml": container_doc("web", extra="env: {V: good}")})
    a = make_agent(tmp_path, server, interval="0.5s")
    agents.append(a.start())
    wait_for("good deployed", lambda: a.source("shop")["last_good"] == good)
    bad = up.commit({"hosts/web1/web.yaml": container_doc("web", extra="env: {V: bad}")})
    wait_for("bad deployed", lambda: a.source("shop")["last_good"] == bad)
    assert main(["rollback", "shop", "--socket", str(a.socket)]) == 0
    assert f"pinned to {good[:12]} (was {bad[:12]})" in capsys.readouterr().out
    assert env_of(a.root, "web")["V"] == "good"

    a.stop()                                    # systemctl restart, an upgrade, a reboot
    a.start()
    a.reconcile("shop")                         # a pass after the restart (and the poller's fetches)
    src = a.source("shop")
    assert (src["pinned"], src["revision"]) == (good, good)
    assert env_of(a.root, "web")["V"] == "good"  # not what was rolled back from
    assert "source_pinned" in a.log()
    assert any(e["type"] == "source_pinned" and e["revision"] == good for e in a.events())
    # the revisions kept for rollback are still there: the bad one by its id, then the good again
    assert main(["rollback", "shop", bad[:12], "--socket", str(a.socket)]) == 0
    assert env_of(a.root, "web")["V"] == "bad"
    assert main(["rollback", "shop", good, "--socket", str(a.socket)]) == 0
    assert env_of(a.root, "web")["V"] == "good"

    # a suspend through the API outlives a restart too; resume follows the source again
    a.api.post("/v1/sources/shop", {"suspend": True})
    a.stop()
    a.start()
    newer = up.commit({"hosts/web1/web.yaml": container_doc("web", extra="env: {V: newer}")})
    a.reconcile("shop")
    assert a.source("shop")["suspended"] is True
    assert 'reconciler_source_suspended{source="shop"} 1.0' in a.api.get("/metrics")
    assert env_of(a.root, "web")["V"] == "good"
    a.api.post("/v1/sources/shop", {"suspend": False})
    wait_for("the newest followed after resume", lambda: a.source("shop")["revision"] == newer)
    assert a.source("shop")["pinned"] is None
    assert env_of(a.root, "web")["V"] == "newer"
    a.stop()                                    # and resumed stays resumed
    a.start()
    a.reconcile("shop")
    assert (a.source("shop")["suspended"], a.source("shop")["pinned"]) == (False, None)
