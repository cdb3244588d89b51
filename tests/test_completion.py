"""`reconcile completion bash` exercised in a real bash, as TAB does: the hook sourced, COMP_LINE
and COMP_WORDS set, the completion function run, COMPREPLY read. It completes commands,
subcommands, flags and choices from the parser, flags written before the command, and the
names of a real engine's containers, images, volumes and networks and of a running agent's
sources."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.runtime import base
from tests.agent.conftest import AgentProc, wait_for
from tests.runtime.conftest import cleanup, leftovers, make_native

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PATH entry with `reconcile` running this tree (the hook calls the command by name)."""
    d = tmp_path_factory.mktemp("bin")
    (d / "reconcile").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m reconciler "$@"\n')
    (d / "reconcile").chmod(0o755)
    return d


def complete(bin_dir: Path, line: str, env: dict[str, str] | None = None) -> list[str]:
    """What bash offers for the end of `line`, with the generated hook sourced."""
    words = line.split(" ")
    prog = f"""
source <(reconcile completion bash)
COMP_LINE={shlex.quote(line)}
COMP_POINT=${{#COMP_LINE}}
COMP_WORDS=({" ".join(shlex.quote(w) for w in words)})
COMP_CWORD={len(words) - 1}
COMP_TYPE=9
_python_argcomplete reconcile
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILER_", "_ARC"))}
    out = subprocess.run(["bash", "-c", prog], capture_output=True, text=True, check=True, timeout=120,
                         env={**clean, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(REPO),
                              **(env or {})})
    return sorted(w.strip() for w in out.stdout.splitlines() if w.strip())


def test_bash_completes_commands_subcommands_flags_and_choices(bin_dir: Path) -> None:
    assert complete(bin_dir, "reconcile ima") == ["image", "images"]
    assert complete(bin_dir, "reconcile image pr") == ["prune"]
    assert complete(bin_dir, "reconcile image hi") == ["history"]
    assert complete(bin_dir, "reconcile container l") == ["list", "logs", "ls"]     # docker's forms, aliases too
    assert complete(bin_dir, "reconcile container create --rea") == ["--read-only"]     # run's options
    assert complete(bin_dir, "reconcile apply --allow") == ["--allow-empty"]
    assert complete(bin_dir, "reconcile container export --leave") == ["--leave-running"]
    assert "--leave-running" not in complete(bin_dir, "reconcile container import --")
    assert complete(bin_dir, "reconcile completion ") == ["bash", "fish", "zsh"]
    assert complete(bin_dir, "reconcile --log-level d") == ["debug"]
    assert complete(bin_dir, "reconcile --root /x ps --no-") == ["--no-trunc"]   # an option before the command
    # the everyday docker commands: their subcommands and flags
    assert complete(bin_dir, "reconcile sys") == ["system"]
    assert complete(bin_dir, "reconcile system ") == ["df", "info", "prune"]
    assert complete(bin_dir, "reconcile container pr") == ["prune"]
    assert complete(bin_dir, "reconcile system prune --vol") == ["--volumes"]
    assert complete(bin_dir, "reconcile stats --no-s") == ["--no-stream"]
    assert complete(bin_dir, "reconcile cp --follow") == ["--follow-link"]


@pytest.mark.root
@pytest.mark.registry
def test_bash_completes_the_names_of_an_engines_objects(tmp_path: Path, bin_dir: Path, busybox_image: str) -> None:
    rt, ref = make_native(tmp_path, busybox_image, networking=True)
    try:
        rt.ensure_network(base.NetworkConfig(name="shopnet"))
        rt.ensure_volume(base.VolumeConfig(name="shopdata"))
        rt.create_container(base.ContainerConfig(name="shopweb", image=ref, networks=("none",)))
        rt.create_container(base.ContainerConfig(name="other", image=ref, networks=("none",)))
        where = f"--root {tmp_path / 'root'} --run-dir {tmp_path / 'run'} --name-prefix {rt.config.name_prefix}"

        assert complete(bin_dir, f"reconcile logs {where} sh") == ["shopweb"]
        assert complete(bin_dir, f"reconcile {where} stop ") == ["other", "shopweb"]   # options first
        for command in ("restart", "kill", "wait", "rename", "port", "top", "stats"):
            assert complete(bin_dir, f"reconcile {command} {where} sh") == ["shopweb"], command
        assert complete(bin_dir, f"reconcile rmi {where} 127") == [ref]
        assert complete(bin_dir, f"reconcile network {where} inspect sh") == ["shopnet"]
        assert complete(bin_dir, f"reconcile volume rm {where} sh") == ["shopdata"]
        assert complete(bin_dir, "reconcile logs sh", env={"RECONCILER_ROOT": str(tmp_path / "root"),
                                                             "RECONCILER_RUN_DIR": str(tmp_path / "run")}) == ["shopweb"]
        assert complete(bin_dir, f"reconcile logs --root {tmp_path / 'nothing-here'} sh") == []
        assert not (tmp_path / "nothing-here").exists()                  # completion creates no engine
    finally:
        cleanup(rt)
        left = leftovers(rt.config)
        rt.close()
        assert left == [], f"left on the host: {left}"


def test_bash_completes_a_running_agents_sources(tmp_path: Path, bin_dir: Path) -> None:
    for name in ("shop", "infra"):
        (tmp_path / name).mkdir()
    a = AgentProc(tmp_path, sources=[{"name": "shop", "directory": str(tmp_path / "shop")},
                                     {"name": "infra", "directory": str(tmp_path / "infra")}])
    try:
        a.start()
        wait_for("both sources", lambda: len(a.status()["sources"]) == 2)
        assert complete(bin_dir, f"reconcile reconcile-now --socket {a.socket} sh") == ["shop"]
        assert complete(bin_dir, f"reconcile rollback --socket {a.socket} ") == ["infra", "shop"]
    finally:
        a.stop()


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_the_zsh_and_fish_scripts_parse(shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    script = subprocess.run([sys.executable, "-m", "reconciler", "completion", shell], capture_output=True,
                            text=True, check=True, cwd=REPO).stdout
    assert "reconcile" in script
    subprocess.run([shell, "-n", "-c", script], check=True, timeout=60)
