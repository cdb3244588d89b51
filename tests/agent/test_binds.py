"""Binds named relative to a source's manifests, in a real agent with real containers (native).

A container binds `./data` (where it writes a file) and `./app.conf`, and reads an env file. The
bind resolves in the source's live directory (a drop-in directory itself; a git source's one
checkout), never in the per-revision copy: a new revision that changes another file leaves the
container alone (same id, same process) and what it wrote stays; an edit of the bound file
recreates it, and the new container reads the new content.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.config import NativeConfig
from reconciler.sources.directory import DirectorySource
from tests.agent.conftest import AgentProc, wait_for
from tests.runtime.conftest import cleanup, leftovers
from tests.sources.gitrepos import Upstream

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]

# copies the bound file into the bound directory, then writes a token of its own start there
SCRIPT = "cat /etc/app.conf > /data/seen; cat /proc/sys/kernel/random/uuid > /data/written; sleep 3600"


def web(image: str) -> str:
    return textwrap.dedent(f"""\
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: web}}
        spec:
          image: {image}
          command: [sh, -c, "{SCRIPT}"]
          networks: [none]
          restart: always
          envFiles: [app.env]
          volumes: ['./data:/data', './app.conf:/etc/app.conf:ro']
        """)


@pytest.fixture
def native_agents(tmp_path: Path) -> Iterator[list[AgentProc]]:
    """Native agents a test made: stopped, their containers removed, nothing of them left."""
    made: list[AgentProc] = []
    try:
        yield made
    finally:
        for a in made:
            a.stop()
            rt = NativeRuntime(NativeConfig(root=a.root, run_dir=a.run_dir, name_prefix=a.prefix))
            cleanup(rt)
            left = leftovers(rt.config)
            rt.close()
            assert left == [], f"left on the host: {left}"


def web_state(a: AgentProc, owner: str) -> Any:
    rt = NativeRuntime(NativeConfig(root=a.root, run_dir=a.run_dir, name_prefix=a.prefix))
    try:
        return next((c for c in rt.list_containers({"reconciler.owner": owner}) if c.name == "web"), None)
    finally:
        rt.close()


def running(a: AgentProc, owner: str) -> Any:
    c = web_state(a, owner)
    return c if c is not None and str(c.status) == "running" else None


def written(data: Path) -> str:
    """The token the running container wrote (empty until it has)."""
    try:
        return (data / "written").read_text()
    except FileNotFoundError:
        return ""


def check_binds(a: AgentProc, owner: str, data: Path, applied: Callable[[str], None],
                change: Callable[[], str], edit_conf: Callable[[], object]) -> None:
    """The steps both kinds of source go through: `change()` changes another file and returns the
    revision that makes, `applied(rev)` waits for it; `edit_conf()` changes the bound file."""
    first = wait_for("web running", lambda: running(a, owner))
    token = wait_for("web wrote into ./data", lambda: written(data))
    assert (data / "seen").read_text() == "v1\n"

    applied(change())                   # another file changes: a new revision, nothing to do for web
    again = running(a, owner)
    assert (again.id, again.pid) == (first.id, first.pid)
    assert written(data) == token       # what it wrote stays (the bind did not move)

    edit_conf()                         # the bound file changes: recreated, reads the new content
    new = wait_for("web recreated", lambda: (c := running(a, owner)) and c.id != first.id and c)
    wait_for("the new web read the new app.conf", lambda: (data / "seen").read_text() == "v2\n")
    wait_for("the new web wrote its token", lambda: written(data) not in ("", token))
    assert new.labels["reconciler.spec-hash"] != first.labels["reconciler.spec-hash"]


def test_directory_source_binds_the_live_directory(tmp_path: Path, native_agents: list[AgentProc],
                                                    busybox_image: str) -> None:
    m = tmp_path / "m"
    (m / "data").mkdir(parents=True)    # empty: a revision copy holds no such directory
    (m / "web.yaml").write_text(web(busybox_image))
    (m / "app.conf").write_text("v1\n")
    (m / "app.env").write_text("MODE=test\n")
    (m / "notes.txt").write_text("a\n")
    a = AgentProc(tmp_path / "agent", runtime="native", sources=[{"name": "host", "directory": str(m)}])
    a.tmp.mkdir()
    native_agents.append(a)
    a.start()

    def revision_now() -> str:          # what the agent's source reads now (another cache, same id)
        return DirectorySource(m, cache_dir=tmp_path / "probe").fetch().id

    def applied(rev: str) -> None:
        wait_for(f"revision {rev[:12]} applied", lambda: (s := a.source("host"))["revision"] == rev
                 and s["last_result"] in ("converged", "in-sync"))

    def change() -> str:
        (m / "notes.txt").write_text("b\n")
        return revision_now()

    check_binds(a, "host", m / "data", applied, change, lambda: (m / "app.conf").write_text("v2\n"))


def test_git_source_binds_its_one_checkout(tmp_path: Path, native_agents: list[AgentProc],
                                           busybox_image: str) -> None:
    up = Upstream(tmp_path / "forge", "shop")
    up.commit({"hosts/h1/web.yaml": web(busybox_image), "hosts/h1/app.conf": "v1\n", "hosts/h1/app.env": "MODE=test\n",
               "hosts/h1/data/.keep": "", "hosts/h1/notes.txt": "a\n"})
    # restricted, but for writable binds (its ./data): binds stay beneath the checkout
    writable = tmp_path / "writable-binds.yaml"
    writable.write_text("writableBinds: true\n")
    src = {"name": "shop", "git": {"url": str(up.bare), "branch": "main", "path": "hosts/h1"}, "interval": "0.5s",
           "policy": str(writable)}
    a = AgentProc(tmp_path / "agent", runtime="native", sources=[src])
    a.tmp.mkdir()
    native_agents.append(a)
    a.start()

    def applied(rev: str) -> None:
        wait_for(f"commit {rev[:12]} applied", lambda: (s := a.source("shop"))["revision"] == rev
                 and s["last_result"] in ("converged", "in-sync"))

    data = a.root / "sources" / "shop" / "checkout" / "hosts" / "h1" / "data"
    check_binds(a, "shop", data, applied, lambda: up.commit({"hosts/h1/notes.txt": "b\n"}),
                lambda: up.commit({"hosts/h1/app.conf": "v2\n"}))
    assert (data / ".keep").exists()    # the committed file is there too
