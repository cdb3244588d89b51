"""The reference pages under docs/reference are generated from the code and kept current."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_reference_pages_match_the_code() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILER_", "DOCKER_"))}
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_docs.py"), "--check"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_every_schema_field_and_command_is_documented() -> None:
    from reconciler.cli.main import COMMANDS
    from reconciler.spec import schemas

    manifests = (REPO / "docs" / "reference" / "manifests.md").read_text()
    for kind in ("Container", "Image", "Network", "Volume"):
        spec = schemas.schema(kind)["properties"]["spec"]["properties"]
        for field in spec:
            assert f"`spec.{field}`" in manifests, (kind, field)
    cli = (REPO / "docs" / "reference" / "cli.md").read_text()
    for command in COMMANDS:
        assert f"## reconcile {command}\n" in cli, command


def test_the_man_page_renders_without_warnings_and_names_every_command() -> None:
    import shutil

    import pytest

    from reconciler.cli.main import COMMANDS

    if shutil.which("groff") is None:
        pytest.skip("groff is not installed")
    page = REPO / "docs" / "man" / "reconcile.1"
    proc = subprocess.run(["groff", "-man", "-ww", "-Tutf8", str(page)], capture_output=True, text=True,
                          timeout=60, check=True)
    assert proc.stderr == ""
    text = proc.stdout.replace("\u2010", "-")
    for command in COMMANDS:
        assert f"reconcile {command}" in text, command
