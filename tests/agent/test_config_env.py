"""The agent takes the engine's environment variables as every other command does: a config
without `root`, `run_dir` or `name_prefix` uses RECONCILER_ROOT, RECONCILER_RUN_DIR and
RECONCILER_PREFIX (an agent started with RECONCILER_PREFIX named its host objects otherwise,
and the CLI beside it, which took the variable, was then refused the root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.agent.config import parse_config


def test_the_engine_variables_are_the_configs_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("RECONCILER_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("RECONCILER_PREFIX", "xenv")
    cfg = parse_config("sources: []\n", where="agent.yaml")
    assert (cfg.root, cfg.run_dir, cfg.name_prefix) == (tmp_path / "root", tmp_path / "run", "xenv")

    given = parse_config(f"root: {tmp_path / 'other'}\nrun_dir: {tmp_path / 'orun'}\nname_prefix: xcfg\nsources: []\n",
                         where="agent.yaml")
    assert (given.root, given.run_dir, given.name_prefix) == (tmp_path / "other", tmp_path / "orun", "xcfg")
