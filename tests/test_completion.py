"""`reconcile completion bash` completes commands, subcommands and flags in a real bash."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest


def complete(line: str) -> list[str]:
    """What bash offers for the last word of `line`, with the generated script sourced."""
    words = line.split(" ")
    prog = f"""
source <({sys.executable} -m reconciler completion bash)
COMP_WORDS=({" ".join(f"'{w}'" for w in words)})
COMP_CWORD={len(words) - 1}
_reconcile
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    out = subprocess.run(["bash", "-c", prog], capture_output=True, text=True, check=True, timeout=60)
    return sorted(out.stdout.split())


def test_bash_completes_commands_subcommands_and_flags() -> None:
    assert complete("reconcile ima") == ["image", "images"]
    assert complete("reconcile image pr") == ["prune"]
    assert complete("reconcile apply --allow") == ["--allow-empty"]
    assert complete("reconcile container export --leave") == ["--leave-running"]
    assert complete("reconcile --root /x con") == ["container", "convert"]
    assert "--leave-running" not in complete("reconcile container import --")


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed")
def test_zsh_script_parses() -> None:
    script = subprocess.run([sys.executable, "-m", "reconciler", "completion", "zsh"], capture_output=True,
                            text=True, check=True).stdout
    subprocess.run(["zsh", "-n", "-c", script], check=True, timeout=60)
