"""Notifications from a real agent process (fake engine) to real HTTP servers on loopback: the
signed JSON webhook, an Apprise URL (Apprise's own json:// service), filters, de-duplication of
a failure repeated on every pass, and a target that hangs without slowing anything down."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.agent import config as cfgmod
from reconciler.agent import notify
from reconciler.runtime.fake import FakeRuntime
from tests.agent.conftest import AgentProc, wait_for
from tests.execution.helpers import IMG, container_doc, write

SECRET = b"hook-secret-of-this-test"
BROKEN = "apiVersion: reconciler/v1\nkind: Container\nmetadata: {name: api\n"


class Receiver:
    """An HTTP server on 127.0.0.1 that keeps what is POSTed to it."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kinds(self) -> list[str]:
        return [json.loads(body)["kind"] for _, body in self.got]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for r in made:
        r.close()


def agent_with(tmp_path: Path, agents: list[AgentProc], targets: list[dict[str, Any]]) -> AgentProc:
    a = AgentProc(tmp_path, sources=[{"name": "local", "directory": str(tmp_path / "m")}], notify=targets)
    FakeRuntime.at_root(a.root).publish(IMG)
    (tmp_path / "m").mkdir()
    agents.append(a)
    return a


def test_signed_webhook_hears_a_failure_once_then_its_recovery(
        tmp_path: Path, agents: list[AgentProc], receivers: list[Receiver]) -> None:
    hook = Receiver()
    receivers.append(hook)
    (tmp_path / "hook.secret").write_bytes(SECRET + b"\n")
    a = agent_with(tmp_path, agents, [{"webhook": {"url": hook.url, "secret_file": str(tmp_path / "hook.secret")}}])
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web"))
    a.start()
    wait_for("applied", lambda: "applied" in hook.kinds())

    (m / "api.yaml").write_text(BROKEN)                      # a revision that does not load
    wait_for("revision_invalid", lambda: "revision_invalid" in hook.kinds())
    for _ in range(3):                                       # failing again and again: said once
        a.reconcile("local")
    write(m, "api.yaml", container_doc("api"))                # fixed
    wait_for("revision_fixed", lambda: "revision_fixed" in hook.kinds())
    wait_for("api applied", lambda: hook.kinds().count("applied") == 2)
    assert hook.kinds().count("revision_invalid") == 1

    for headers, body in hook.got:                           # each signed with the secret
        assert headers["x-reconciler-signature"] == "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        assert headers["content-type"] == "application/json"
    invalid = next(json.loads(b) for _, b in hook.got if json.loads(b)["kind"] == "revision_invalid")
    assert invalid["severity"] == "error"
    assert invalid["source"] == "local"
    assert "api.yaml:" in invalid["message"]                 # the user's file:line
    assert SECRET.decode() not in a.log()


def test_apprise_url_filters_and_a_hanging_target_that_slows_nothing(
        tmp_path: Path, agents: list[AgentProc], receivers: list[Receiver]) -> None:
    chat, errors_only = Receiver(), Receiver()
    receivers += [chat, errors_only]
    hang = socket.socket()                                   # accepts, never answers
    hang.bind(("127.0.0.1", 0))
    hang.listen(16)
    try:
        url_file = tmp_path / "chat.url"
        url_file.write_text(chat.url.replace("http://", "json://") + "\n")     # Apprise's JSON service
        a = agent_with(tmp_path, agents, [
            {"webhook": {"url": f"http://127.0.0.1:{hang.getsockname()[1]}/never"}},
            {"url_file": str(url_file)},
            {"webhook": {"url": errors_only.url}, "severity": "error", "sources": ["local"]},
            {"webhook": {"url": errors_only.url}, "sources": ["another"]},   # never this source
        ])
        m = tmp_path / "m"
        write(m, "web.yaml", container_doc("web"))
        a.start()
        wait_for("chat told of the apply", lambda: chat.got)
        (m / "web.yaml").write_text(BROKEN)
        wait_for("the error sent", lambda: errors_only.got)
        for _ in range(3):                                   # passes are not held up by the hung target
            a.reconcile("local")
        wait_for("chat told of the error", lambda: len(chat.got) >= 2)
    finally:
        hang.close()
    assert [json.loads(b)["kind"] for _, b in errors_only.got] == ["revision_invalid"]
    first = json.loads(chat.got[0][1])                       # Apprise's json:// body
    assert "applied" in first["title"]
    assert first["type"] == "info"
    assert json.loads(chat.got[1][1])["type"] == "failure"
    assert str(url_file) not in a.log()


def test_config_refuses_an_unknown_apprise_scheme_and_an_unreadable_url_file(tmp_path: Path) -> None:
    text = "sources: [{name: a, directory: /srv/m}]\nnotify:\n  - url: nosuchservice://x\n"
    with pytest.raises(cfgmod.ConfigError, match=r"agent.yaml:3: notify.0: Apprise does not know the URL scheme"):
        cfgmod.parse_config(text, where="agent.yaml")
    text = f"sources: [{{name: a, directory: /srv/m}}]\nnotify:\n  - url_file: {tmp_path}/missing\n"
    with pytest.raises(cfgmod.ConfigError, match="cannot read url_file"):
        cfgmod.parse_config(text, where="agent.yaml")
    text = "sources: [{name: a, directory: /srv/m}]\nnotify:\n  - {webhook: {url: 'http://h/x'}, events: [nope]}\n"
    with pytest.raises(cfgmod.ConfigError, match=r"notify\.0\.events\.0"):
        cfgmod.parse_config(text, where="agent.yaml")


def test_a_degraded_pass_repeated_is_one_notification_and_recovery_is_one() -> None:
    d = notify.Deduper()
    fail = {"type": "pass", "source": "s", "revision": "r1", "result": "degraded", "failures": ["container:web: exited (1)"]}
    ok = {"type": "pass", "source": "s", "revision": "r1", "result": "converged", "counts": {}}
    assert [n.kind for n in d(fail)] == ["pass_failed"]
    assert d(fail) == []
    assert [n.kind for n in d(ok)] == ["recovered"]
    assert d(ok) == []
    changed = {**fail, "failures": ["container:api: exited (2)"]}     # a new failure is news
    assert [n.kind for n in d(changed)] == ["pass_failed"]


def test_a_target_added_by_a_reload_is_told_and_one_removed_no_more(
        tmp_path: Path, agents: list[AgentProc], receivers: list[Receiver]) -> None:
    first, added = Receiver(), Receiver()
    receivers += [first, added]
    a = agent_with(tmp_path, agents, [{"webhook": {"url": first.url}}])
    m = tmp_path / "m"
    write(m, "web.yaml", container_doc("web"))
    a.start()
    wait_for("the first target told of the apply", lambda: "applied" in first.kinds())

    a.write_config(notify=[{"webhook": {"url": added.url}}])     # SIGHUP: systemctl reload
    a.signal(signal.SIGHUP)
    wait_for("the reload", lambda: any(e["type"] == "config_reloaded" for e in a.events()))
    (m / "web.yaml").write_text(BROKEN)
    wait_for("the added target told", lambda: "revision_invalid" in added.kinds())
    write(m, "api.yaml", container_doc("api"))
    (m / "web.yaml").write_text(container_doc("web"))
    wait_for("the added target told of the fix", lambda: "revision_fixed" in added.kinds())
    assert first.kinds() == ["applied"]                          # removed: told nothing more


def test_a_failure_held_back_is_one_notification_whatever_its_counter_and_retry_time() -> None:
    """One failed health gate and one crash loop, pass after pass: the planner's words change
    (attempts, retry time, restart counts) and the crash loop comes and goes; one message."""
    d = notify.Deduper()

    def failed(*failures: str) -> dict[str, Any]:
        return {"type": "pass", "source": "s", "revision": "r1", "result": "failed", "failures": list(failures)}

    gate = "container:web: health check failed: not healthy within 60s (rolled back)"
    crash = "container:crash: restarting (exit code 3, {} restarts): its restart policy keeps it down"
    held = ("container:web: previous attempt failed ({}x: health check failed: not healthy within 60s (rolled back)); "
            "retry after 2026-05-0{}T10:00:00Z or with a new revision")
    sent = d(failed(gate, crash.format(1)))
    assert [n.kind for n in sent] == ["pass_failed"]
    for i in range(2, 8):
        assert d(failed(held.format(i, i), crash.format(i))) == []
        assert d(failed(held.format(i, i))) == []                          # the crash loop between restarts
    other = d(failed(held.format(9, 9), "container:db: exited (exit code 1) but its restart policy is no"))
    assert [n.kind for n in other] == ["pass_failed"]                     # a new failure is news
    assert [n.kind for n in d({"type": "pass", "source": "s", "revision": "r1", "result": "converged"})] == [
        "recovered"]


def test_an_interrupted_pass_is_neither_a_failure_nor_a_recovery() -> None:
    d = notify.Deduper()
    fail = {"type": "pass", "source": "s", "revision": "r1", "result": "failed", "failures": ["container:web: x"]}
    stopped = {"type": "pass", "source": "s", "revision": "r1", "result": "interrupted", "failures": [],
               "counts": {"created": 1}}
    assert [n.kind for n in d(fail)] == ["pass_failed"]
    assert d(stopped) == []                                                # SIGTERM: no false "recovered"
    assert d(fail) == []                                                   # still the same failure
    assert [n.kind for n in d({**fail, "result": "converged", "failures": []})] == ["recovered"]


def test_a_crash_loop_is_titled_by_its_source_as_every_notification() -> None:
    """`shop: container web is crash-looping`, as `shop: pass degraded ...`: a target that
    hears of many sources can tell which one (before, only this title named none); a container
    of no source (`reconcile run`) is titled by itself."""
    d = notify.Deduper()
    event = {"type": "container_flapping", "source": "shop", "container": "web", "restarts": 3,
             "message": "restarted 3 times in 300s: left stopped after its next exit"}
    [told] = d(event)
    assert told.title == "shop: container web is crash-looping"
    assert (told.source, told.kind, told.severity) == ("shop", "container_flapping", "error")
    [alone] = d({**event, "source": "", "container": "adhoc"})
    assert alone.title == "container adhoc is crash-looping"


def test_titles_name_a_revision_by_its_12_characters_and_the_payload_keeps_it_whole() -> None:
    """As the docs' example and `history` show it: `shop: pass degraded at revision 3f2c9a1b7e0d`."""
    rev, old = "3f2c9a1b7e0d" + "5" * 28, "a1b2c3d4e5f6" + "7" * 28
    said = notify.Deduper()
    [failed] = said({"type": "pass", "source": "shop", "revision": rev, "result": "degraded", "failures": ["x"]})
    assert failed.title == "shop: pass degraded at revision 3f2c9a1b7e0d"
    assert failed.event["revision"] == rev
    [back] = said({"type": "rollback", "source": "shop", "revision": rev, "previous": old})
    assert back.title == "shop: rolled back to 3f2c9a1b7e0d"
    assert "a1b2c3d4e5f6 was rolled back" in back.message


def test_what_was_told_outlives_the_deduper_in_its_memory_file(tmp_path: Path) -> None:
    """A Deduper with a memory (agent/recall.py) puts what it told into `<root>/agent-memory.json`
    at each change; the next process's Deduper, restored from it, does not tell an unchanged
    failure again, tells a changed one and the recovery; an unreadable source and a refused
    revision an earlier process told of recover at the first pass at a revision (this process
    never sees their errors end); a source no longer in the config is forgotten."""
    from reconciler.agent import recall

    failed = {"type": "pass", "source": "s", "revision": "r1", "result": "degraded",
              "failures": ["container:web: exited (exit code 1) but its restart policy is always"]}
    first = notify.Deduper(recall.Memory(tmp_path))
    assert [n.kind for n in first(failed)] == ["pass_failed"]
    assert [n.kind for n in first({"type": "source_error", "source": "git", "error": "remote down"})] == ["source_error"]
    assert [n.kind for n in first({"type": "revision_invalid", "source": "s", "revision": "r2",
                                   "problems": ["a.yaml:1:1: bad"]})] == ["revision_invalid"]
    first({"type": "drift_reported", "source": "gone", "objects": ["container:x"]})

    def restarted() -> notify.Deduper:
        d = notify.Deduper(recall.Memory(tmp_path))
        d.restore(d.memory.get("notified"), sources={"s", "git"}, flapping=set())
        return d

    again = restarted()
    still = {"type": "revision_invalid", "source": "s", "revision": "r2", "problems": ["a.yaml:1:1: bad"]}
    assert again(still) == []                                             # still refused: not again
    assert again(failed) == []                                            # unchanged: not again
    assert [n.kind for n in again({**failed, "failures": ["container:api: exited (2)"]})] == ["pass_failed"]
    assert [n.kind for n in again({**failed, "result": "converged", "failures": []})] == ["recovered"]
    assert again({"type": "source_error", "source": "git", "error": "remote down"}) == []
    assert sorted((w, k) for w, k, _ in again.export()["failing"]) == [("revision", "s"), ("source", "git")]

    third = restarted()                                   # `gone` forgotten: not a source any more
    assert [(n.kind, n.title) for n in third({**failed, "result": "converged", "failures": [], "revision": "r3"})] == [
        ("revision_fixed", "s: revision r3 loads again")]                # put right while no agent ran
    assert [n.kind for n in third({"type": "pass", "source": "git", "revision": "r9", "result": "converged"})] == [
        "source_recovered"]
    assert restarted().export() == {"failing": []}


def test_the_memory_is_bounded_and_one_that_does_not_read_is_none(tmp_path: Path) -> None:
    """However many failures come and go, the file stays small (the oldest dropped, a long
    identity kept as its head and a digest); a file missing, not JSON, of another version or
    too big reads as an empty memory, and the next change writes a good one in its place."""
    from reconciler.agent import recall

    d = notify.Deduper(recall.Memory(tmp_path))
    for i in range(600):
        d({"type": "pass", "source": f"s{i % 400}", "revision": "r", "result": "failed",
           "failures": [f"container:c{i}: " + "x" * 5000]})
    size = (tmp_path / recall.FILE).stat().st_size
    assert size < recall.MAX_BYTES
    assert len(d.export()["failing"]) == notify.Deduper.MAX_KEYS
    assert max(len(i) for _, _, ids in d.export()["failing"] for i in ids) <= notify.MAX_IDENTITY
    big = {"type": "pass", "source": "s1", "revision": "r", "result": "failed", "failures": ["container:a: " + "y" * 5000]}
    assert [n.kind for n in d(big)] == ["pass_failed"]
    other = {**big, "failures": ["container:a: " + "y" * 4999 + "z"]}    # past the kept head: still another
    assert [n.kind for n in d(other)] == ["pass_failed"]

    for text in ("", "{not json", '{"version": 99, "notified": {}}', "[1, 2]", " " * (recall.MAX_BYTES + 1)):
        (tmp_path / recall.FILE).write_text(text)
        memory = recall.Memory(tmp_path)
        assert memory.get("notified") is None
        memory.put("flapping", [])
        assert json.loads((tmp_path / recall.FILE).read_text()) == {"version": recall.VERSION, "flapping": []}
    (tmp_path / recall.FILE).unlink()
    assert recall.Memory(tmp_path).get("flapping") is None
    assert recall.Memory(tmp_path / "no-such-dir").get("flapping") is None
    recall.Memory(tmp_path / "no-such-dir").put("flapping", [])          # cannot write: said, not raised
    assert [p.name for p in tmp_path.iterdir()] == []                   # no temporary file left
