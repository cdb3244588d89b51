"""Rules import-linter cannot express: one module imports pyroute2; the planner's functions stay small."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "reconciler"
PYROUTE2_MODULE = PKG / "runtime" / "native" / "network" / "netlink.py"


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


def _probes_an_engine(node: ast.AST) -> bool:
    """`getattr(runtime, ...)` / `hasattr(rt, ...)`: a capability asked by attribute name."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")):
        return False
    target = node.args[0] if node.args else None
    name = target.id if isinstance(target, ast.Name) else target.attr if isinstance(target, ast.Attribute) else ""
    return name in ("runtime", "rt", "engine")


def test_engine_capabilities_are_asked_with_isinstance() -> None:
    """What an engine can do beyond the Runtime protocol is a runtime_checkable protocol of
    runtime/base.py, tested with isinstance; no caller probes an engine's attributes."""
    offenders = [f"{p.relative_to(PKG)}:{node.lineno}" for p in PKG.rglob("*.py")
                 for node in ast.walk(ast.parse(p.read_text(), filename=str(p))) if _probes_an_engine(node)]
    assert offenders == []
MAX_LINES = 80


def test_no_planner_function_is_longer_than_80_lines() -> None:
    long = []
    for path in sorted((PKG / "planning").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_LINES:
                    long.append(f"{path.relative_to(PKG)}:{node.lineno} {node.name}() has {length} lines")
    assert long == [], "split these into phases or helpers:\n" + "\n".join(long)
