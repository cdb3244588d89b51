"""reconciler/_dataclass.py: the code `dataclasses` generates, kept between processes (#21)."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from reconciler import _dataclass

REPO = Path(__file__).resolve().parent.parent
METHODS = ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__", "__lt__", "__le__",
           "__gt__", "__ge__")


def _classes() -> list[type]:
    """Classes of the shapes reconciler uses (and a few it does not), made afresh."""
    @_dataclass.dataclass(frozen=True)
    class Frozen:
        name: str
        ports: tuple[int, ...] = ()
        labels: dict[str, str] = dataclasses.field(default_factory=dict, hash=False)
        secret: str = dataclasses.field(default="", repr=False)
        kind: ClassVar[str] = "x"

    @_dataclass.dataclass
    class Mutable:
        a: int
        b: list[int] = dataclasses.field(default_factory=list)
        c: dataclasses.InitVar[int] = 0

        def __post_init__(self, c: int) -> None:
            self.b.append(c)

    @_dataclass.dataclass(order=True, kw_only=True, slots=True)
    class Ordered:
        x: int
        y: int = 1

    @_dataclass.dataclass(eq=False, repr=False)
    class Plain:
        v: Any = None

    return [Frozen, Mutable, Ordered, Plain]


@pytest.fixture
def plain_and_cached() -> tuple[list[type], list[type], list[type]]:
    """The same classes made by the builtin `exec`, then twice through the cache (compiled, or
    from the file, and then from what this process kept, or compiled again: a text taken from
    the file leaves it until a second use marks it shared)."""
    _dataclass.uninstall()
    try:
        plain = _classes()
    finally:
        _dataclass.install()
    used = _dataclass.stats()["used"]
    first = _classes()
    second = _classes()
    assert _dataclass.stats()["used"] > used, "the cache's exec made them"
    return plain, first, second


def test_cached_methods_are_the_code_dataclasses_compiles(
    plain_and_cached: tuple[list[type], list[type], list[type]],
) -> None:
    plain, first, second = plain_and_cached
    for p, a, b in zip(plain, first, second, strict=True):
        for name in METHODS:
            fp, fa, fb = (vars(c).get(name) for c in (p, a, b))
            if fp is None:
                assert fa is None, f"{p.__name__}.{name}"
                assert fb is None, f"{p.__name__}.{name}"
                continue
            # code equality covers the bytecode, constants, names, flags (no __future__ flag of
            # _dataclass.py leaks in: `dont_inherit`) and line numbers
            assert fa.__code__ == fp.__code__, f"{p.__name__}.{name}"
            assert fb.__code__ == fp.__code__, f"{p.__name__}.{name}"
            assert fb.__annotations__ == fp.__annotations__, f"{p.__name__}.{name}"
            assert fb.__defaults__ == fp.__defaults__, f"{p.__name__}.{name}"


def test_cached_classes_behave_as_dataclasses_made(
    plain_and_cached: tuple[list[type], list[type], list[type]],
) -> None:
    _, _, (frozen, mutable, ordered, plain) = plain_and_cached
    f = frozen("a", (1,), {"k": "v"}, secret="s")
    assert repr(f).endswith("Frozen(name='a', ports=(1,), labels={'k': 'v'})")     # no secret
    assert f == frozen("a", (1,), {"k": "v"}, secret="s")
    assert hash(frozen("a")) == hash(frozen("a"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.name = "b"                                   # type: ignore[misc]
    m = mutable(1, c=5)
    assert m.b == [5]
    assert mutable(1).b is not mutable(1).b                 # the factory runs per instance
    assert sorted([ordered(x=2), ordered(x=1, y=0)]) == [ordered(x=1, y=0), ordered(x=2)]
    assert plain(1) != plain(1)                             # eq=False: identity


def _run(cache: Path, code: str, **env: str) -> dict[str, int]:
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nfrom reconciler import _dataclass\nimport json\n"
         "print(json.dumps({**_dataclass.stats(), 'file': _dataclass.cache_file()}))"],
        env={**base, "PYTHONPATH": str(REPO), "PYTHONPYCACHEPREFIX": str(cache), **env},
        capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout.splitlines()[-1])


MODELS = ("import reconciler.spec.models, reconciler.runtime.base, reconciler.planning.actions\n"
          "from reconciler._dataclass import dataclass\n"
          "A = dataclass(frozen=True)(type('A', (), {'__annotations__': {'x': 'int'}}))\n"
          "B = dataclass(frozen=True)(type('B', (), {'__annotations__': {'x': 'int'}}))\n")   # the same texts


def test_a_second_process_compiles_nothing(tmp_path: Path) -> None:
    first = _run(tmp_path, MODELS)
    assert first["compiled"] > 50                           # the models' methods, made once
    assert Path(first["file"]).is_file()
    assert str(first["file"]).startswith(str(tmp_path))     # beside the bytecode (the prefix's)
    second = _run(tmp_path, MODELS)
    assert second["compiled"] == 0
    assert second["used"] == first["used"]


def test_nothing_is_kept_where_bytecode_is_not_written(tmp_path: Path) -> None:
    run = _run(tmp_path, MODELS, PYTHONDONTWRITEBYTECODE="1")
    assert run["compiled"] > 0
    assert not Path(run["file"]).exists()
    assert _run(tmp_path, MODELS, PYTHONDONTWRITEBYTECODE="1")["compiled"] == run["compiled"]


def test_a_torn_or_foreign_file_is_not_run(tmp_path: Path) -> None:
    made = _run(tmp_path, MODELS)
    path = Path(made["file"])
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])                # torn: compiled again, written whole
    assert _run(tmp_path, MODELS)["compiled"] == made["compiled"]
    assert _run(tmp_path, MODELS)["compiled"] == 0
    os.chmod(path, 0o666)                                   # anyone could have put code there
    assert _run(tmp_path, MODELS)["compiled"] == made["compiled"]
    assert path.stat().st_mode & 0o022 == 0                 # and it is written again, private to its owner


def _dataclasses_of(tree: ast.Module) -> list[ast.ClassDef]:
    def made_by_dataclass(d: ast.expr) -> bool:
        d = d.func if isinstance(d, ast.Call) else d
        return isinstance(d, ast.Name) and d.id == "dataclass"
    return [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and any(map(made_by_dataclass, n.decorator_list))]


def test_every_dataclass_of_reconciler_has_a_docstring() -> None:
    """`dataclasses` writes a docstring with `inspect.signature` for a class without one, which
    would import `inspect` after all (_dataclass._InspectOnUse): each class says what it is."""
    found, missing = 0, []
    for path in sorted((REPO / "reconciler").rglob("*.py")):
        for node in _dataclasses_of(ast.parse(path.read_text(), str(path))):
            found += 1
            if ast.get_docstring(node) is None:
                missing.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}")
    assert found > 100                                      # the walk saw reconciler's classes
    assert missing == []


def test_the_engine_and_its_classes_load_without_inspect(tmp_path: Path) -> None:
    """Importing the engine (its ~100 dataclasses) loads no `inspect`, nor its `ast`, `dis` and
    `tokenize` (#21: ~5 ms of every command's start); `dataclasses` still gets the real module
    when it needs it (a class without a docstring), and so does anyone importing it."""
    probe = ("import sys\n"
             "import reconciler.runtime.native.backend, reconciler.runtime.native.containers.recovery\n"
             "print(sorted(m for m in ('inspect', 'ast', 'dis', 'tokenize') if m in sys.modules))\n"
             "from reconciler._dataclass import dataclass\n"
             "@dataclass(frozen=True)\n"
             "class NoDoc:\n"
             "    a: int\n"
             "    b: str = ''\n"
             "print(NoDoc.__doc__)\n"
             "import inspect\n"
             "print(type(inspect).__name__, hasattr(inspect, 'getsource'))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONPYCACHEPREFIX": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True,
                         check=True, timeout=60).stdout.splitlines()
    assert out == ["[]", "NoDoc(a: int, b: str = '')", "module True"]
