"""The read-only commands' fast path (cli/fastpath.py, #21): `reconcile ps -a` and the other
everyday forms of ps, images, inspect, logs, status and version are parsed without argparse
into the namespace argparse makes, and every other form still goes to argparse."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli import fastpath
from reconciler.cli import main as climain

REPO = Path(__file__).resolve().parent.parent

EVERYDAY = [
    ["ps"], ["ps", "-a"], ["ps", "-aq"], ["ps", "-qa", "--no-trunc"], ["ps", "--all", "--quiet"],
    ["ps", "-a", "-o", "json"], ["ps", "--output", "yaml"], ["ps", "--output=table", "-a"],
    ["images"], ["images", "-q", "--no-trunc"], ["images", "--digests", "-o", "json"],
    ["inspect", "web"], ["inspect", "web", "job", "-o", "yaml"],
    ["logs", "web"], ["logs", "-f", "web"], ["logs", "web", "-ft"], ["logs", "--timestamps", "--follow", "web"],
    ["status"], ["status", "-o", "json"], ["version"], ["version", "-o", "yaml"],
]

# help, options with values the fast path does not take, and usage errors: argparse's
TO_ARGPARSE = [
    ["ps", "--help"], ["ps", "-h"], ["ps", "--root", "/x"], ["ps", "-f", "label=a=b"], ["ps", "-o"],
    ["ps", "-o", "bogus"], ["ps", "-ojson"], ["ps", "-ax"], ["ps", "web"], ["ps", "--"], ["ps", "--runtime", "fake"],
    ["inspect"], ["inspect", "-o", "table", "web"], ["logs"], ["logs", "a", "b"], ["logs", "--tail", "1", "web"],
    ["logs", "-o", "json", "web"], ["version", "--root", "/x"], ["--log-level", "debug", "ps"], ["-a", "ps"],
    ["rm", "web"], [],
]


@pytest.fixture(params=["defaults", "environment"])
def environment(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The options' defaults as they are, or as the RECONCILER_* variables set them."""
    for name in ("RECONCILER_ROOT", "RECONCILER_RUN_DIR", "RECONCILER_PREFIX", "RECONCILER_OCI_RUNTIME",
                 "RECONCILER_RUNTIME"):
        monkeypatch.delenv(name, raising=False)
    if request.param == "environment":
        monkeypatch.setenv("RECONCILER_ROOT", str(tmp_path / "root"))
        monkeypatch.setenv("RECONCILER_RUN_DIR", str(tmp_path / "run"))
        monkeypatch.setenv("RECONCILER_PREFIX", "rfp")
        monkeypatch.setenv("RECONCILER_OCI_RUNTIME", "crun")
        monkeypatch.setenv("RECONCILER_RUNTIME", "fake")


@pytest.mark.parametrize("argv", EVERYDAY, ids=" ".join)
def test_the_fast_path_makes_the_namespace_argparse_makes(environment: None, argv: list[str]) -> None:
    fast = fastpath.parse(argv)
    assert fast is not None, f"{argv} should take the fast path"
    parsed = climain._parse(list(argv))
    assert not isinstance(parsed, int)
    assert vars(fast) == vars(parsed)


@pytest.mark.parametrize("argv", TO_ARGPARSE, ids=lambda a: " ".join(a) or "(nothing)")
def test_every_other_form_goes_to_argparse(argv: list[str]) -> None:
    assert fastpath.parse(argv) is None


def test_the_fast_path_knows_only_commands_the_parser_has() -> None:
    assert set(fastpath.COMMANDS) <= set(climain.COMMANDS)


@pytest.mark.parametrize("run_dir_named", [True, False], ids=["run-dir-named", "run-dir-derived"])
def test_ps_starts_without_argparse_and_creates_nothing(tmp_path: Path, run_dir_named: bool) -> None:
    """`python -X importtime -m reconciler ps -a` on a root that does not exist yet: it prints
    the empty table, loads no argparse (nor gettext and locale, which it asks for) and no engine
    code, even to find the run dir and name prefix the root would get, and makes no root."""
    root, run = tmp_path / "root", tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    env.update({"RECONCILER_ROOT": str(root), "PYTHONPATH": str(REPO)})
    if run_dir_named:
        env.update({"RECONCILER_RUN_DIR": str(run), "RECONCILER_PREFIX": "rfp"})
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "reconciler", "ps", "-a"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    modules = {ln.rsplit("|", 1)[1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}
    assert "reconciler.cli.fastpath" in modules                 # the measurement saw the command
    # (not pathlib: a development venv's editable finder imports it before any of ours)
    heavy = {"argparse", "gettext", "locale", "shutil", "sqlite3", "dataclasses", "typing",
             "reconciler.runtime.native.config"}
    assert sorted(modules & heavy) == []
    assert not root.exists()
    assert not run.exists()


@pytest.mark.parametrize("command", fastpath.COMMANDS)
def test_each_fast_command_describes_its_flags_once(command: str) -> None:
    """One home (#21): a fast-path command's flags are its module's SPEC, which its parser is
    made of too: the parser's flags that take no value are exactly the spec's."""
    import argparse
    import importlib

    spec = importlib.import_module(f"reconciler.cli.cmd_{command}").SPEC
    parser = climain.build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    flags = {o: a.dest for a in sub._actions if isinstance(a, argparse._StoreTrueAction) for o in a.option_strings
             if o not in ("--log-json",)}
    assert flags == spec.dests()
