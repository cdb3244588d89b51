"""What the agent takes in an exec's body (`POST /v1/containers/NAME/exec`): `argv`, and `user`,
`workdir`, `env` as `reconcile exec -u/-w/-e` sends them; anything else is refused by name, so a
field the agent does not know is never dropped (a newer CLI's option ignored could run the
command as another user)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.agent.daemon import _check_exec
from reconciler.api import errors as apierr


@pytest.mark.parametrize("body", [
    {"argv": ["true"]},
    {"argv": ["id"], "user": "app:app", "workdir": "/tmp", "env": ["X=1", "GONE"]},
    {"argv": ["id"], "user": None, "workdir": None},
])
def test_an_exec_body_is_taken(body: dict[str, Any]) -> None:
    _check_exec(body)


@pytest.mark.parametrize(("body", "said"), [
    ({"argv": ["id"], "privileged": True}, "exec does not take privileged"),
    ({"argv": []}, "POST a JSON object"),
    ({"argv": ["id"], "user": 0}, "POST a JSON object"),
    ({"argv": ["id"], "env": "X=1"}, "POST a JSON object"),
    ({"argv": ["id"], "env": ["=1"]}, "POST a JSON object"),
])
def test_an_exec_body_is_refused_saying_why(body: dict[str, Any], said: str) -> None:
    with pytest.raises(apierr.BadRequest) as refused:
        _check_exec(body)
    assert said in refused.value.message


def test_an_agent_before_exec_options_refuses_them_rather_than_drop_them(tmp_path: Path) -> None:
    """`reconcile exec -u/-w/-e` through an agent of the version before those options: the CLI
    asks for `exec-as`, which such an agent answers 404 ('no container action'), and says to
    restart the agent, never running the command as the container's own user. An agent of this
    version answers both names. (The older agent is a real HTTP server on a Unix socket answering
    as that agent's code answers: POST .../exec-as -> 404.)"""
    import json
    import socketserver
    import threading
    from http.server import BaseHTTPRequestHandler

    from reconciler.cli._agentapi import AgentEngine
    from reconciler.runtime import errors

    paths: list[str] = []

    class OldAgent(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            paths.append(self.path)
            action = self.path.rsplit("/", 1)[1]
            ok = action == "exec"
            body = json.dumps({"exit_code": 0, "stdout": "root\n", "stderr": ""} if ok else
                              {"error": f"no container action {action!r}"}).encode()
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    sock = str(tmp_path / "old.sock")
    server = socketserver.UnixStreamServer(sock, OldAgent)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        engine = AgentEngine(sock)
        assert engine.exec("web", ["id", "-u"]).stdout == b"root\n"         # no option: as before
        with pytest.raises(errors.Unavailable, match="older than this reconcile") as refused:
            engine.exec("web", ["id", "-u"], user="nobody")
        assert "restart the agent" in str(refused.value.hint)
        assert [p.rsplit("/", 1)[1] for p in paths] == ["exec", "exec-as"]
    finally:
        server.shutdown()
        server.server_close()
