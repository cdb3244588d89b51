"""A pass that ends in an unexpected exception (a bug, or state nothing expected) is a failed
pass like any other: its event (which notifications follow) and the passes metric say so, not
only the loop's log line and `status`."""

from __future__ import annotations

import http.client
import re
from pathlib import Path

import pytest

from reconciler.api import errors as api_errors
from reconciler.runtime.fake import FakeRuntime
from tests.agent.conftest import AgentProc, free_port, wait_for
from tests.execution.helpers import IMG, container_doc, write


def test_an_unexpected_exception_in_a_pass_is_published_as_a_failed_pass(
        tmp_path: Path, agents: list[AgentProc]) -> None:
    port = free_port()
    a = AgentProc(tmp_path, sources=[{"name": "local", "directory": str(tmp_path / "m")}],
                  metrics={"listen": f"127.0.0.1:{port}"})
    FakeRuntime.at_root(a.root).publish(IMG)
    write(tmp_path / "m", "web.yaml", container_doc("web"))
    agents.append(a)
    a.start()
    wait_for("web's pass", lambda: a.source("local")["last_result"] == "converged")
    (a.root / "fake-runtime.json").write_text("{ not json")       # the engine's state unreadable: no ReconcilerError
    with pytest.raises(api_errors.ApiError, match="JSONDecodeError"):
        a.reconcile("local")                    # reconcile-now says it, as before
    failed = wait_for("a failed pass event", lambda: [e for e in a.events()
                                                      if e["type"] == "pass" and e.get("result") == "failed"])
    assert "JSONDecodeError" in " ".join(failed[-1]["failures"]), failed[-1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    scraped = conn.getresponse().read().decode()               # the scrape works, and counts it (retries too)
    assert re.search(r'reconciler_passes_total\{result="failed",source="local"\} [1-9]', scraped), scraped
    conn.close()
