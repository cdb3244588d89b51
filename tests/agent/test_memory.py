"""The agent's memory at rest (#21): its C heap (reconciler/agent/heap.py: an arena limit,
free pages given back), what it does not import (daemon.lean_process, the compose reader) and
the state DB connections its waiting thread does not keep.

Each case runs in a Python process of its own: malloc's arenas and heap are per process, and
the test runner's own threads and heap would blur what is counted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reconciler.runtime.fake import FakeRuntime
from reconciler.runtime.native.config import NativeConfig
from tests.runtime.conftest import leftovers, new_prefix

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="needs Linux /proc")

# six threads that each allocate (malloc, not pymalloc: > 512 bytes) while all six are alive:
# glibc gives each its own arena unless the arena count is capped; malloc_stats() (stderr)
# prints one "Arena N:" line per arena
ARENAS = """
import ctypes, sys, threading
from reconciler.agent import heap
if sys.argv[1] == "limit":
    assert heap.limit_arenas()
barrier = threading.Barrier(6)
keep = []
def work():
    barrier.wait()
    keep.append([bytearray(4096) for _ in range(64)])
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
ctypes.CDLL(None).malloc_stats()
"""

# 32 MiB freed below a block still in use: free() cannot shrink the heap past that block, so
# the pages stay resident until malloc_trim gives them back
RELEASE = """
import sys
from reconciler.agent import heap
def dirty():
    for line in open("/proc/self/smaps_rollup"):
        if line.startswith("Private_Dirty:"):
            return int(line.split()[1]) // 1024
blocks = [bytearray(4096) for _ in range(8192)]
top = bytearray(4096)
del blocks
before = dirty()
released = heap.release() if sys.argv[1] == "release" else False
print(before, dirty(), released)
"""


def _run(script: str, arg: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`script` run with `arg`; the environment's MALLOC_ARENA_MAX left out unless `env` sets one."""
    base = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script), arg], capture_output=True, text=True,
                          check=True, cwd=REPO, env={**base, "PYTHONPATH": str(REPO), **(env or {})})


def _arenas(done: subprocess.CompletedProcess[str]) -> int:
    return sum(1 for line in done.stderr.splitlines() if line.startswith("Arena "))


def test_the_arena_limit_keeps_threads_on_two_arenas() -> None:
    unlimited = _arenas(_run(ARENAS, "as-is"))
    limited = _arenas(_run(ARENAS, "limit"))
    assert unlimited > 2                 # the check can tell: glibc made more than two without the limit
    assert 1 <= limited <= 2


def test_an_operators_malloc_arena_max_wins() -> None:
    done = _run("from reconciler.agent import heap; print(heap.limit_arenas())", "-",
                env={"MALLOC_ARENA_MAX": "4"})
    assert done.stdout.strip() == "False"


def test_release_gives_freed_pages_back() -> None:
    kept_before, kept_after, _ = _run(RELEASE, "keep").stdout.split()
    before, after, released = _run(RELEASE, "release").stdout.split()
    assert int(kept_after) > int(kept_before) - 8           # without a trim the 32 MiB stay resident
    assert released == "True"
    assert int(after) <= int(before) - 24                   # most of the 32 MiB went back


def test_the_agent_loads_no_httpx_command_line() -> None:
    """httpx still works (a client made, its stub `main`), without its command line's imports."""
    done = _run("""
        import sys
        from reconciler.agent import daemon
        daemon.lean_process()
        from reconciler.registry_client import pull
        import httpx
        with httpx.Client() as client:
            print(type(client).__name__, callable(httpx.main))
        print(*[m for m in ("httpx._main", "click", "rich", "pygments") if sys.modules.get(m) is not None])
        """, "-")
    assert done.stdout.splitlines() == ["Client True", ""]


def test_a_valid_config_loads_without_jsonschema(tmp_path: Path) -> None:
    """jsonschema-rs decides; jsonschema is loaded only to word an invalid config's problems."""
    (tmp_path / "m").mkdir()
    (tmp_path / "ok.yaml").write_text(f"root: {tmp_path}/root\nsources:\n  - name: a\n    directory: {tmp_path}/m\n")
    (tmp_path / "bad.yaml").write_text("sources:\n  - name: a\n    directroy: /x\n")
    done = _run(f"""
        import sys
        from reconciler.agent import config
        cfg = config.load_config("{tmp_path}/ok.yaml")
        print([s.name for s in cfg.sources], "jsonschema" in sys.modules)
        try:
            config.load_config("{tmp_path}/bad.yaml")
        except config.ConfigError as e:
            print("refused:", " | ".join(str(e).splitlines()))
        """, "-")
    first, second = done.stdout.splitlines()
    assert first == "['a'] False"
    assert second.startswith("refused: 2 problem(s)")      # worded by jsonschema, file and line
    assert f"{tmp_path}/bad.yaml:" in second
    assert "directroy" in second


def test_the_agents_own_config_is_checked_aside(tmp_path: Path) -> None:
    """`reconcile agent` has its config's schema checked in a helper process: a valid config maps
    no validator at all; an invalid one is worded here as ever."""
    (tmp_path / "m").mkdir()
    (tmp_path / "ok.yaml").write_text(f"root: {tmp_path}/root\nsources:\n  - name: a\n    directory: {tmp_path}/m\n")
    (tmp_path / "bad.yaml").write_text("sources:\n  - name: a\n    directroy: /x\n")
    done = _run(f"""
        import sys
        from reconciler.agent import config
        cfg = config.load_config("{tmp_path}/ok.yaml", aside=True)
        print([s.name for s in cfg.sources], [m for m in ("jsonschema", "jsonschema_rs") if m in sys.modules])
        try:
            config.load_config("{tmp_path}/bad.yaml", aside=True)
        except config.ConfigError as e:
            print("refused:", " | ".join(str(e).splitlines()))
        """, "-")
    first, second = done.stdout.splitlines()
    assert first == "['a'] []"
    assert second.startswith("refused: 2 problem(s)")
    assert f"{tmp_path}/bad.yaml:" in second
    assert "directroy" in second


@pytest.mark.parametrize("doc", [
    {}, {"sources": []}, {"sources": [{"name": "a", "directory": "/m"}]},
    {"sources": [{"name": "a"}]}, {"sources": [{"name": "a", "directory": "/m", "git": {"url": "u"}}]},
    {"sources": [{"name": "a", "git": {"url": "https://h/r.git", "branch": "main"}, "interval": "1m"}]},
    {"sources": "a"}, {"parallel": 0}, {"parallel": 4}, {"drift_interval": "10m"}, {"nonsense": 1},
])
def test_jsonschema_rs_and_jsonschema_agree_on_the_config_schema(doc: dict[str, object]) -> None:
    import jsonschema

    from reconciler.agent import config

    assert config._valid(doc) == jsonschema.Draft202012Validator(config.SCHEMA).is_valid(doc)


# `reconcile agent` as a service runs it (default level `warning`, the fake engine: no containers
# needed), and, beside it in the same process, a thread that waits for its API, asks for a pass,
# then prints which of WATCH are loaded (the source holds manifests, no compose file: no compose
# reader), malloc's arenas (stderr) and stops the agent
AGENT = """
import ctypes, os, signal, sys, threading, time
from reconciler.api import client

WATCH = ("structlog", "asyncio", "jsonschema", "click", "rich", "reconciler.spec.compose", "httpx", "jsonschema_rs",
         "prometheus_client")

def probe():
    api = client.ApiClient(sys.argv[2], timeout=60)
    while not api.available():
        time.sleep(0.05)
    done = api.post("/v1/reconcile", {"source": "s", "wait": True, "timeout": 60}, timeout=70)
    print(done["sources"][0]["last_result"])
    print(*[m for m in WATCH if m in sys.modules])
    sys.stdout.flush()
    ctypes.CDLL(None).malloc_stats()
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=probe, daemon=True).start()
from reconciler.cli.main import main
sys.exit(main(["agent", "--config", sys.argv[1]]))
"""


def test_an_agent_at_rest_holds_two_arenas_and_loads_no_logging_schema_compose_or_registry_library(tmp_path: Path) -> None:
    manifests = tmp_path / "m"
    manifests.mkdir()
    (manifests / "web.yaml").write_text("apiVersion: reconciler/v1\nkind: Container\nmetadata: {name: web}\n"
                                        "spec: {image: busybox:1.36}\n")
    (tmp_path / "root").mkdir()
    FakeRuntime.at_root(tmp_path / "root").publish("busybox:1.36")      # the fake engine's registry
    (tmp_path / "agent.yaml").write_text(
        f"root: {tmp_path}/root\nrun_dir: {tmp_path}/run\nruntime: fake\nsocket: {tmp_path}/api.sock\n"
        f"sources:\n  - name: s\n    directory: {manifests}\n")
    done = subprocess.run([sys.executable, "-c", AGENT, str(tmp_path / "agent.yaml"), str(tmp_path / "api.sock")],
                          capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**{k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"},
                               "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    result, loaded = done.stdout.splitlines()[:2]
    assert result == "converged", done.stderr
    assert loaded == ""
    assert 1 <= _arenas(done) <= 2


# run_agent as `reconcile agent` calls it (the native engine, no containers); `ready` runs in its
# thread once the agent serves: that thread, which from there only waits for signals, holds no
# state DB connection (crash recovery opened one); the agent's records and the engine's, one file,
# are one Database object
WAITER = """
import os, signal, sys
from reconciler.agent import config, daemon

def ready(agent):
    # a file of its own: the agent's threads log to stdout meanwhile, and a line could land inside
    dbs = {"agent": agent.db, "engine": agent._runtime.config.db()}
    with open(sys.argv[2], "w") as out:
        print("connections held:", *[n for n, db in dbs.items() if getattr(db._local, "held", None) is not None],
              file=out)
        print("one database object:", dbs["agent"] is dbs["engine"], file=out)
    os.kill(os.getpid(), signal.SIGTERM)

sys.exit(daemon.run_agent(config.load_config(sys.argv[1]), ready=ready))
"""


@pytest.mark.root
def test_the_thread_that_waits_for_signals_holds_no_database_connection_and_one_database_serves_all(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    engine = NativeConfig(root=tmp_path / "root", run_dir=tmp_path / "run", name_prefix=new_prefix())
    (tmp_path / "agent.yaml").write_text(
        f"root: {tmp_path}/root\nrun_dir: {tmp_path}/run\nruntime: native\nname_prefix: {engine.name_prefix}\n"
        f"socket: {tmp_path}/api.sock\nsources:\n  - name: s\n    directory: {tmp_path}/m\n")
    said = tmp_path / "said"
    done = subprocess.run([sys.executable, "-c", WAITER, str(tmp_path / "agent.yaml"), str(said)],
                          capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    lines = said.read_text().splitlines()
    assert [line.split() for line in lines if line.startswith("connections held:")] == [["connections", "held:"]]
    assert "one database object: True" in lines     # a pass's thread opens one, not two
    assert leftovers(engine) == []
