"""Layering rules import-linter cannot express: one module imports pyroute2."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "reconciler"
PYROUTE2_MODULE = PKG / "runtime" / "native" / "netlink.py"


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_pyroute2_is_imported_in_one_module_only() -> None:
    offenders = [p for p in PKG.rglob("*.py") if p != PYROUTE2_MODULE and "pyroute2" in imported_roots(p)]
    assert offenders == []
