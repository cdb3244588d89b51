"""Every example under examples/manifests loads and validates, alone and all together."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "manifests"
NAMES = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir())


def test_there_are_at_least_three_examples() -> None:
    assert {"hello", "app-db", "build"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_example_validates(name: str) -> None:
    folder = EXAMPLES / name
    readme = (folder / "README.md").read_text().strip()
    assert readme
    assert "\n" not in readme, "each example has a one-line README"
    desired = spec.load(folder)
    assert desired.containers, f"{name} defines at least one container"
    assert all(c.spec_hash for c in desired.containers.values())


def test_all_examples_together_form_one_valid_revision() -> None:
    desired = spec.load(EXAMPLES)
    assert {"hello", "app", "db", "web"} <= set(desired.containers)
    assert desired.containers["web"].image == desired.images["web"].ref
    assert desired.containers["app"].depends_on == ("db",)
    assert desired.containers["db"].env["POSTGRES_USER"] == "shop"       # from db.env
