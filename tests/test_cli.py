"""The `reconcile` entry point: version, help and usage errors, as a user runs it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from reconciler import __version__
from reconciler.cli.main import main


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True, check=False)


def test_version_prints_and_exits_zero() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"reconcile {__version__}"


def test_no_command_is_usage_error(capsys) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_unknown_command_is_usage_error(capsys) -> None:
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_version_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys; from reconciler.cli.main import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('httpx', 'pyroute2', 'structlog', 'jsonschema', 'watchdog') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"reconcile {__version__}"
    assert out.stderr.strip() == ""


@pytest.mark.parametrize("columns", [None, "100", "0", "-3", "wide"])
def test_help_is_as_wide_as_shutil_measures_without_importing_it(monkeypatch, columns: str | None) -> None:
    """The width help is formatted to is shutil's answer ($COLUMNS, else the terminal, else 80),
    found without importing shutil (bz2, lzma: #21); `--help` imports neither it nor typing."""
    import shutil

    from reconciler.cli import parsing

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert parsing.terminal_columns() == shutil.get_terminal_size().columns
    if columns is None:
        code = ("import sys; from reconciler.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n"
                "    pass\nprint(sorted(m for m in ('shutil', 'typing', 'bz2', 'lzma') if m in sys.modules))")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert proc.stdout.splitlines()[-1] == "[]"


def test_the_top_level_help_is_the_parsers_without_importing_a_command_module(monkeypatch) -> None:
    """`reconcile --help` is made of main.SUMMARIES (#21): the same text as the parser every
    command's module registers, and no command module imported."""
    import argparse
    import contextlib
    import io

    from reconciler.cli import main as climain
    from reconciler.cli import parsing

    monkeypatch.setenv("COLUMNS", "100")           # the same width here and in the process
    monkeypatch.setattr(parsing, "_width", None)    # measured again (it is once per process)
    full = climain.build_parser()
    registered = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    assert [(c.dest, c.help) for c in registered._choices_actions] == list(climain.SUMMARIES)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        full.print_help()
    assert run_cli("--help").stdout == out.getvalue()

    code = ("import sys; from reconciler.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('reconciler.cli.cmd_')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.splitlines()[-1] == "[]"
