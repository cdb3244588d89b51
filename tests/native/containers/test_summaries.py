"""`reconcile ps` without an agent (#21): the state DB's rows read without building Records
(summaries.read) give what the record store gives, only while every record is what observation
finds; otherwise the record store answers (refreshing, refusing) as before."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.runtime import opening
from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.containers import summaries
from tests.runtime.conftest import cleanup, leftovers, native_config

REPO = Path(__file__).resolve().parents[3]

WORDS = ["", " ", "a b", "it's", 'say "hi"', "$HOME", "a*", "~x", "é", "tab\there", "--flag=x,y", "/bin/sh",
         "a@b%c+d=e:f,g.h/i-j_k", *(chr(c) for c in range(32, 127))]


@pytest.mark.parametrize("argv", [[w] for w in WORDS] + [WORDS, ["sleep", "3600"], []])
def test_the_command_text_is_shlex_join(argv: list[str]) -> None:
    assert summaries.command_text(argv) == shlex.join(argv)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[NativeRuntime, NativeConfig]]:
    config = native_config(tmp_path)
    rt = NativeRuntime(config)
    try:
        yield rt, config
    finally:
        cleanup(rt)
        left = leftovers(config)
        rt.close()
        assert left == [], left


def ps(config: NativeConfig, *argv: str, importtime: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RECONCILER_ROOT": str(config.root), "RECONCILER_RUN_DIR": str(config.run_dir),
           "RECONCILER_PREFIX": config.name_prefix}
    # as the console script starts it (`-m`'s runpy imports functools and collections itself)
    start = ["-c", "import sys; from reconciler.cli.main import main; sys.exit(main())"]
    return subprocess.run([sys.executable, *(["-X", "importtime"] if importtime else []), *start, "ps",
                           *argv], cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=60)


def read(config: NativeConfig) -> list[dict[str, object]] | None:
    return summaries.read(str(config.root), str(config.run_dir), config.name_prefix)


@pytest.mark.root
@pytest.mark.registry
def test_ps_reads_the_rows_alone_while_they_are_what_is(engine: tuple[NativeRuntime, NativeConfig],
                                                         busybox_image: str) -> None:
    rt, config = engine
    from reconciler.runtime import base

    rt.pull_image(busybox_image)
    def create(name: str, argv: tuple[str, ...], **extra: object) -> str:
        return rt.create_container(base.ContainerConfig(name=name, image=busybox_image, args=argv,
                                                        labels={"app": name}, **extra))  # type: ignore[arg-type]

    rt.start_container(create("web", ("sleep", "1000")))
    create("made", ("true",), command=("/bin/sh", "-c"))

    # the path `ps` takes: no Record, dataclass, engine config, json or re loaded (no word of
    # these commands needs shlex's quotes); sqlite3's and datetime's C cores, not their Python
    # modules (sqlite3 imports datetime and collections.abc for adapters it does not use), and
    # no functools (the C core's start takes it: dbformat._sqlite_core)
    proc = ps(config, "-a", importtime=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = {ln.rsplit("|", 1)[1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}
    heavy = {"dataclasses", "json", "re", "pathlib", "typing", "reconciler.runtime.base", "reconciler._sqlite",
             "reconciler.runtime.native.config", "reconciler.runtime.native.containers.records", "sqlite3",
             "datetime", "collections.abc", "functools", "collections", "contextlib"}
    assert sorted(heavy & modules) == [], proc.stderr
    assert "reconciler.runtime.native.containers.summaries" in modules

    rt.start_container(create("done", ("sh", "-c", "echo 'it''s done'; exit 5")))
    rt.wait_container("done")
    store = opening.open_records(opening.Place(root=config.root, run_dir=config.run_dir,
                                               name_prefix=config.name_prefix))
    found = read(config)
    assert found is not None
    assert found == opening.summaries(store)                    # what the record store says
    assert [(s["name"], s["status"], s["exit_code"]) for s in found] == [
        ("done", "exited", 5), ("made", "created", None), ("web", "running", None)]

    # a container that ended on its own: conmon wrote its exit file, its record still says
    # running (nobody looked yet). A look changes it: the record store answers, and records it
    brief = create("brief", ("sleep", "0.2"))
    rt.start_container(brief)
    _wait_for(lambda: (config.run_dir / "exits" / brief).exists())
    assert store.stored()[0].status == "running"                # as recorded, not looked at
    assert read(config) is None
    table = ps(config, "-a")
    assert table.returncode == 0, table.stderr
    assert "Exited (0)" in table.stdout.splitlines()[1]         # brief, newest
    after = read(config)                                        # recorded now: the rows alone again
    assert after is not None
    assert after[0]["status"] == "exited"


@pytest.mark.root
def test_a_run_dir_of_another_root_is_refused_by_the_record_store(engine: tuple[NativeRuntime, NativeConfig],
                                                                  tmp_path: Path) -> None:
    _, config = engine
    assert read(config) == []
    (config.run_dir / ".state-root").write_text(f"{tmp_path / 'other'}\n")
    assert read(config) is None
    proc = ps(config, "-a")
    assert proc.returncode == 1
    assert f"belongs to state root {tmp_path / 'other'}" in proc.stderr


def _wait_for(done: Callable[[], bool]) -> None:
    import time

    for _ in range(200):
        if done():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")
