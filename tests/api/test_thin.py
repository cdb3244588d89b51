"""The thin client's JSON reader (api/thin.py `loads`, #21): what json.loads reads, without
importing json (and the re it imports), for `<root>/agent.json`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import hypothesis
import pytest
from hypothesis import strategies as st

from reconciler.api import thin

REPO = Path(__file__).resolve().parents[2]

DOCUMENTS = (
    '{"pid": 4242, "socket": "/run/reconciler/reconciler.sock", "runtime": "native"}',
    '  {"socket": "/tmp/a \\u00e9\\"b\\\\c", "x": [1.5, -2, 3e2, null, true, false, NaN, -Infinity], "y": {}}\n',
    "[]", '"text"', "12", "\t\r\n{}\n",
)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_loads_reads_what_json_loads_reads(document: str) -> None:
    assert json.dumps(thin.loads(document)) == json.dumps(json.loads(document))


@pytest.mark.parametrize("document", ["", "   ", '{"a": 1} x', '{"a": 1}{}', "{'a': 1}", '{"a": "\x01"}', "[1,]",
                                      '{"a": 1'])
def test_loads_refuses_what_json_loads_refuses(document: str) -> None:
    with pytest.raises(ValueError):
        json.loads(document)
    with pytest.raises(ValueError):
        thin.loads(document)


def test_loads_imports_no_json_or_re() -> None:
    code = ("import sys; from reconciler.api import thin; thin.loads('{\"a\": [1, 2.5, \"b\"]}'); "
            "print(sorted({'json', 're'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out == "[]\n"


@pytest.mark.parametrize("document", DOCUMENTS)
def test_dumps_writes_what_json_dumps_writes(document: str) -> None:
    from reconciler import jsonscan

    value = json.loads(document)
    assert jsonscan.dumps(value) == json.dumps(value)
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsonscan.dumps({"a": [object()]})


def test_dumps_imports_no_json_or_re() -> None:
    code = ("import sys; from reconciler import jsonscan; print(jsonscan.dumps({'a': [1, 2.5, 'b']})); "
            "print(sorted({'json', 're'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out == '{"a": [1, 2.5, "b"]}\n[]\n'


class _Named:
    """An object json has no form for: `default=str` writes its text."""

    def __str__(self) -> str:
        return "named <\u00e9>"


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                     st.text(), st.builds(_Named))
_KEYS = st.one_of(st.text(), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner),
    st.dictionaries(st.text(max_size=5), inner, max_size=4)), max_leaves=20)


# the machine's load must not fail a property of the text (CI runs four workers on two cores)
_LOADED = hypothesis.settings(deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow])


@_LOADED
@hypothesis.given(_VALUES)
def test_pretty_writes_what_print_json_wrote(value: object) -> None:
    """`-o json`'s text is json.dumps(indent=2, sort_keys=True, default=str)'s, to the byte."""
    from reconciler import jsonscan

    assert jsonscan.pretty(value) == json.dumps(value, indent=2, sort_keys=True, default=str)


@_LOADED
@hypothesis.given(st.dictionaries(_KEYS, _SCALARS, max_size=1))
def test_pretty_writes_keys_as_json_converts_them(value: dict[object, object]) -> None:
    from reconciler import jsonscan

    assert jsonscan.pretty(value) == json.dumps(value, indent=2, sort_keys=True, default=str)


def test_pretty_refuses_what_json_refuses() -> None:
    from reconciler import jsonscan

    with pytest.raises(TypeError):
        jsonscan.pretty({("a", "b"): 1})                    # a key json has no form for
    with pytest.raises(TypeError):
        jsonscan.pretty({"a": 1, 2: 1})                     # keys sorted: str and int do not compare
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        jsonscan.pretty(loop)


def test_ps_json_imports_no_json_or_re(tmp_path: Path) -> None:
    """`reconcile ps -o json` on a root with no agent prints its document without `json` and `re`
    (#21: 3.8 ms of a 22 ms command)."""
    # at exit: `ps` ends without the interpreter's teardown, the exit functions still run
    code = ("import atexit, sys, runpy; sys.argv = ['reconcile', 'ps', '-a', '-o', 'json']\n"
            "atexit.register(lambda: print(sorted({'json', 're'} & set(sys.modules)), file=sys.stderr))\n"
            "runpy.run_module('reconciler', run_name='__main__')\n")
    env = {**os.environ, "RECONCILER_ROOT": str(tmp_path / "root"), "RECONCILER_RUN_DIR": str(tmp_path / "run"),
           "RECONCILER_PREFIX": "tpj"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env=env)
    assert json.loads(proc.stdout) == []
    assert proc.stderr.strip().splitlines()[-1] == "[]"
