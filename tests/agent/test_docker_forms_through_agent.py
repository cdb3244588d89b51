"""docker's forms of the commands (`container ls`, `image ls`, `container inspect`, `container
create`...) while an agent holds the state root: they go through the agent as their top-level
commands do (the CLI loads no engine code, no argparse for the everyday forms) and print what
those print."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.agent.conftest import AgentProc, wait_for
from tests.agent.test_native import doc, running
from tests.agent.test_thin_cli import engine_modules, modules_of, reconcile

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]

AGES = re.compile(r"\b(\d+ seconds?|Less than a second|About a minute|\d+ minutes)\b")
PAIRS = ((("ps", "-a"), ("container", "ls", "-a"), ("container", "ps", "-a"), ("container", "list", "-a")),
         (("ps", "-q", "--no-trunc"), ("container", "ls", "-q", "--no-trunc")),
         (("ps", "-a", "--format", "{{.Names}} {{.State}}"), ("container", "ls", "-a", "--format", "{{.Names}} {{.State}}")),
         (("inspect", "web"), ("container", "inspect", "web")),
         (("inspect", "nope"), ("container", "inspect", "nope")),
         (("logs", "web"), ("container", "logs", "web")),
         (("images",), ("image", "ls"), ("image", "list")),
         (("images", "-q", "--no-trunc"), ("image", "ls", "-q", "--no-trunc")))


def test_the_docker_forms_go_through_the_agent(
        tmp_path: Path, native_agent: AgentProc, busybox_image: str) -> None:
    a = native_agent
    (tmp_path / "m" / "web.yaml").write_text(doc("web", busybox_image, "echo started; sleep 3600"))
    a.start()
    wait_for("web running", lambda: running(a, "web"))

    for forms in PAIRS:
        done = [reconcile(a, *argv) for argv in forms]
        # (the ages made equal, and so the columns' widths: they may move on between two runs)
        shown = {(p.returncode, re.sub(r" {2,}", "  ", AGES.sub("AGE", p.stdout)), p.stderr) for p in done}
        assert len(shown) == 1, (forms, shown)
    assert "web" in reconcile(a, "container", "ls").stdout
    for argv in (("container", "ls", "-a"), ("container", "inspect", "web"), ("image", "ls")):
        proc = reconcile(a, *argv, importtime=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert engine_modules(modules_of(proc)) == [], argv     # the agent answered
        assert "argparse" not in modules_of(proc), argv         # the fast path parsed it

    created = reconcile(a, "container", "create", "--name", "made", busybox_image, "true", importtime=True)
    assert created.returncode == 0, created.stderr[-2000:]
    assert engine_modules(modules_of(created)) == []             # the agent's engine made it
    assert reconcile(a, "container", "start", "made").stdout == "made\n"
    assert reconcile(a, "container", "wait", "made").stdout == "0\n"
    assert reconcile(a, "container", "rm", "made").stdout == "made\n"
