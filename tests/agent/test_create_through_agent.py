"""`reconcile create` while an agent holds the state root: the agent's engine makes the container
(the CLI loads no engine code), `start` runs it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.agent.conftest import AgentProc, wait_for
from tests.agent.test_native import doc, running
from tests.agent.test_thin_cli import engine_modules, modules_of, reconcile

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]


def test_create_goes_through_the_agent(tmp_path: Path, native_agent: AgentProc, busybox_image: str) -> None:
    a = native_agent
    (tmp_path / "m" / "web.yaml").write_text(doc("web", busybox_image, "echo started; sleep 3600"))
    a.start()
    wait_for("web running", lambda: running(a, "web"))

    created = reconcile(a, "create", "--name", "made", "-e", "X=through the agent", busybox_image, "sh", "-c",
                        "echo $X", importtime=True)
    assert created.returncode == 0, created.stderr[-2000:]
    assert re.fullmatch(r"[0-9a-f]{64}\n", created.stdout)
    assert engine_modules(modules_of(created)) == []             # the agent's engine made it
    assert "made Created" in reconcile(a, "ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout
    assert reconcile(a, "start", "made").stdout == "made\n"
    assert reconcile(a, "wait", "made").stdout == "0\n"
    assert reconcile(a, "logs", "made").stdout == "through the agent\n"
    # --rm: removed at its exit after its start (by the agent's restart manager)
    created = reconcile(a, "create", "--rm", "--name", "gone", busybox_image, "sleep", "0.2")
    assert created.returncode == 0, created.stderr
    assert reconcile(a, "start", "gone").stdout == "gone\n"
    wait_for("the --rm container removed at its exit", lambda: "gone" not in reconcile(a, "ps", "-a").stdout)
    taken = reconcile(a, "create", "--name", "made", busybox_image)
    assert taken.returncode == 1                                 # the engine refused: docker create's 1
    assert "made" in taken.stderr
    assert reconcile(a, "rm", "made").returncode == 0
