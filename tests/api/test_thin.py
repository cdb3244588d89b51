"""The thin client's JSON reader (api/thin.py `loads`, #21): what json.loads reads, without
importing json (and the re it imports), for `<root>/agent.json`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
