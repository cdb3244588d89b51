"""A CLI newer than the agent holding its state root: what the older agent does not do is never
dropped silently. `ps -s` (an agent before it ignores size=1: the CLI measures the rows itself)
and `create --rm` (an agent before it made the container without AutoRemove: removed again and
refused). The older agent is a real HTTP server on a Unix socket answering as that agent's code
answers, named by the root's agent.json as a running agent names itself."""

from __future__ import annotations

import json
import os
import re
import socketserver
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.helpers.host import Host

REPO = Path(__file__).resolve().parents[2]
Answer = Callable[[str, str, bytes], tuple[int, str, bytes]]    # method, path, body -> status, type, body


class OldAgent:
    """An agent's API socket answering by `answer`; the requests it had, in order."""

    def __init__(self, sock: Path, answer: Answer) -> None:
        self.requests: list[tuple[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests.append((method, self.path))
                status, ctype, text = answer(method, self.path, body)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def do_GET(self) -> None:
                self._reply("GET")

            def do_POST(self) -> None:
                self._reply("POST")

            def log_message(self, *args: object) -> None:
                pass

        self.server = socketserver.UnixStreamServer(str(sock), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def old_agent(tmp_path: Path) -> Iterator[Callable[[Path, Answer], OldAgent]]:
    """`old_agent(root, answer)`: an older agent serving `root` (its agent.json names it)."""
    started: list[tuple[OldAgent, Path]] = []

    def start(root: Path, answer: Answer) -> OldAgent:
        agent = OldAgent(tmp_path / f"old{len(started)}.sock", answer)
        (root / "agent.json").write_text(json.dumps({"pid": os.getpid(), "socket": str(tmp_path / f"old{len(started)}.sock"),
                                                     "runtime": "native"}))
        started.append((agent, root))
        return agent

    yield start
    for agent, root in started:
        agent.close()
        (root / "agent.json").unlink(missing_ok=True)


def _json(status: int, doc: Any) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(doc).encode()


def test_create_rm_through_an_agent_before_it_removes_what_it_made_and_refuses(
        tmp_path: Path, old_agent: Callable[[Path, Answer], OldAgent]) -> None:
    """`reconcile create --rm` through an agent that does not know AutoRemove (its reply has no
    `auto_remove`): the container it made is removed again and the CLI says to restart the agent,
    rather than leave a container that outlives its exit. Without --rm the agent's id is taken."""
    from reconciler.cli import _agentapi
    from reconciler.runtime import errors

    def answer(method: str, path: str, body: bytes) -> tuple[int, str, bytes]:
        if (method, path) == ("POST", "/v1/containers"):
            return _json(200, {"id": "c0ffee" * 10 + "abcd"})           # as before --rm: no auto_remove
        if method == "POST" and path.startswith("/v1/containers/"):
            return _json(200, {"removed": path.split("/")[3]})
        return _json(404, {"error": f"no route {path}"})

    agent = old_agent(tmp_path, answer)
    args = SimpleNamespace(root=str(tmp_path), runtime="native", socket=None)
    config = {"name": "web", "image": "busybox"}
    assert _agentapi.create(args, config, remove=False) == "c0ffee" * 10 + "abcd"
    with pytest.raises(errors.Unavailable, match="older than this reconcile") as refused:
        _agentapi.create(args, config, remove=True)
    assert "restart the agent" in str(refused.value.hint)
    assert agent.requests == [("POST", "/v1/containers"), ("POST", "/v1/containers"),
                              ("POST", "/v1/containers/" + "c0ffee" * 10 + "abcd/remove")]


@pytest.mark.root
@pytest.mark.registry
def test_ps_size_through_an_agent_before_it_measures_here(
        host: Host, busybox_image: str, old_agent: Callable[[Path, Answer], OldAgent]) -> None:
    """`ps -s` (and a template's .Size) through an agent that ignores size=1 (its rows have no
    `size_rw`, its table no SIZE column): the CLI measures the rows itself and prints what it
    prints with no agent, never the table without the sizes asked for."""
    cfg = host.config
    env = {**os.environ, "RECONCILER_ROOT": str(cfg.root), "RECONCILER_RUN_DIR": str(cfg.run_dir),
           "RECONCILER_PREFIX": cfg.name_prefix, "RECONCILER_SUBNET_POOL": str(cfg.subnet_pool)}
    env.pop("RECONCILER_RUNTIME", None)
    ages = re.compile(r"\b(\d+ seconds?|Less than a second|About a minute|\d+ minutes)\b")

    def reconcile(*argv: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "reconciler", *argv], cwd=REPO, env=env, capture_output=True,
                              text=True, check=False, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return re.sub(r" {2,}", "  ", ages.sub("AGE", proc.stdout))

    reconcile("run", "-d", "--name", "writer", "--network", "none", busybox_image,
              "sh", "-c", "head -c 100000 /dev/zero > /blob; sleep 3600")
    reconcile("exec", "writer", "sh", "-c", "while ! test -s /blob; do sleep 0.1; done")
    sized = (("ps", "-s"), ("ps", "-as", "-o", "json"), ("ps", "--format", "{{.Names}} {{.Size}}"))
    alone = [reconcile(*argv) for argv in sized]
    assert re.search(r"writer  100kB \(virtual [\d.]+MB\)\n", alone[0])
    # what an agent before `ps -s` answers: its rows unmeasured, its table without SIZE
    rows = json.loads(reconcile("ps", "-a", "-o", "json"))
    table = reconcile("ps").encode()
    assert "size_rw" not in rows[0]

    def answer(method: str, path: str, body: bytes) -> tuple[int, str, bytes]:
        if method == "GET" and path.startswith("/v1/containers"):
            return (200, "text/plain; charset=utf-8", table) if "print=" in path else _json(200, rows)
        return _json(404, {"error": f"no route {path}"})

    agent = old_agent(Path(cfg.root), answer)
    assert [reconcile(*argv) for argv in sized] == alone
    assert agent.requests                                               # it was asked first
    assert reconcile("ps") == table.decode()                            # without -s: its answer
