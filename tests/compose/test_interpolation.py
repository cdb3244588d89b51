"""Compose's interpolation and dotenv format, golden: every operator, escaping, nesting, errors.

The expected values are what `docker compose config` prints for the same templates and files
(compose-go's template and dotenv packages, which reconciler.spec.interpolation ports).
"""

from __future__ import annotations

import pytest

from reconciler.spec import interpolation

ENV = {"SET": "value", "EMPTY": "", "OTHER": "other", "PORT": "8080"}

SUBSTITUTIONS = [
    # plain and braced
    ("$SET", "value", []),
    ("${SET}", "value", []),
    ("x${SET}y", "xvaluey", []),
    ("${UNSET}", "", ["UNSET"]),
    ("$UNSET/x", "/x", ["UNSET"]),
    ("${set}", "", ["set"]),                            # names are case-sensitive
    # defaults
    ("${UNSET:-d}", "d", []),
    ("${EMPTY:-d}", "d", []),
    ("${SET:-d}", "value", []),
    ("${UNSET-d}", "d", []),
    ("${EMPTY-d}", "", []),
    ("${SET-d}", "value", []),
    # replacements
    ("${SET:+r}", "r", []),
    ("${EMPTY:+r}", "", []),
    ("${UNSET:+r}", "", []),
    ("${SET+r}", "r", []),
    ("${EMPTY+r}", "r", []),
    ("${UNSET+r}", "", []),
    # required, when set
    ("${SET:?msg}", "value", []),
    ("${SET?msg}", "value", []),
    ("${EMPTY?msg}", "", []),
    # nesting and neighbours
    ("${UNSET:-${OTHER}}", "other", []),
    ("${UNSET:-${ALSO:-deep}}", "deep", []),
    ("${UNSET:-a}-${SET:-b}", "a-value", []),
    ("${SET:-a}}", "value}", []),
    ("${UNSET:-http://h:${PORT}/}", "http://h:8080/", []),
    ("${UNSET:-a b c}", "a b c", []),
    ("${SET}${OTHER}", "valueother", []),
    # escaping, and what is not a variable
    ("$$", "$", []),
    ("$${SET}", "${SET}", []),
    ("$$$SET", "$value", []),
    ("cost $5", "cost $5", []),
    ("tail$", "tail$", []),
    ("a $ b", "a $ b", []),
]


@pytest.mark.parametrize(("template", "expected", "unset"), SUBSTITUTIONS, ids=[t for t, _, _ in SUBSTITUTIONS])
def test_substitution(template: str, expected: str, unset: list[str]) -> None:
    seen: list[str] = []
    assert interpolation.substitute(template, ENV.get, seen) == expected
    assert seen == unset


ERRORS = [
    ("${UNSET:?set UNSET in .env}", "required variable UNSET is missing a value: set UNSET in .env"),
    ("${EMPTY:?must not be empty}", "required variable EMPTY is missing a value: must not be empty"),
    ("${UNSET?}", "required variable UNSET is missing a value"),
    ("${UNSET:?need ${OTHER}}", "required variable UNSET is missing a value: need other"),
    ("${", "invalid interpolation format in '${'; write $$ for a literal $"),
    ("${}", "invalid interpolation format in '${}'; write $$ for a literal $"),
    ("${1ABC}", "invalid interpolation format in '${1ABC}'; write $$ for a literal $"),
    ("x ${SET", "invalid interpolation format in 'x ${SET'; write $$ for a literal $"),
    ("${SET SET}", "invalid interpolation format in '${SET SET}'; write $$ for a literal $"),
]


@pytest.mark.parametrize(("template", "message"), ERRORS, ids=[t for t, _ in ERRORS])
def test_substitution_errors(template: str, message: str) -> None:
    with pytest.raises(interpolation.InterpolationError) as info:
        interpolation.substitute(template, ENV.get)
    assert str(info.value) == message


DOTENV = r"""# a comment
PLAIN=value
export EXPORTED=yes
  SPACED =  padded value
COMMENTED=kept # dropped
HASH=a#b
COLON: yaml style
EMPTY=
SINGLE='literal ${PLAIN} \n'
DOUBLE="line1\nline2 ${PLAIN} \$PLAIN $$PLAIN"
MULTI="first
second"
QUOTED_HASH="a # b" # comment
REF=${PLAIN}-${FROM_SHELL}
DEFAULT=${NOPE:-fallback}
INHERITED
NOT_INHERITED
OCTAL="\0101"
"""


def test_dotenv_format() -> None:
    shell = {"FROM_SHELL": "shell", "INHERITED": "from-shell", "PLAIN": "shell-plain"}
    values = interpolation.parse_dotenv(DOTENV, shell.get)
    assert values == {
        "PLAIN": "value",
        "EXPORTED": "yes",
        "SPACED": "padded value",
        "COMMENTED": "kept",
        "HASH": "a#b",
        "COLON": "yaml style",
        "EMPTY": "",
        "SINGLE": "literal ${PLAIN} \\n",
        # the shell is asked before the lines above: compose's precedence
        "DOUBLE": "line1\nline2 shell-plain $PLAIN $PLAIN",
        "MULTI": "first\nsecond",
        "QUOTED_HASH": "a # b",
        "REF": "shell-plain-shell",
        "DEFAULT": "fallback",
        "INHERITED": "from-shell",
        "OCTAL": "A",
    }


@pytest.mark.parametrize(("text", "message"), [
    ("A=1\nB C=2\n", "line 2: key 'B C' cannot contain a space"),
    ("A=1\n\nB?=x\n", "line 3: unexpected character '?' in variable name 'B?=x'"),
    ('A=1\nB="open\nC=2\n', 'line 2: unterminated quoted value "open'),
    ("A=${B:?B is required}\n", "line 1: required variable B is missing a value: B is required"),
    ("=x\n", "line 1: a line starts with '=': write KEY=VALUE"),
])
def test_dotenv_errors(text: str, message: str) -> None:
    with pytest.raises(interpolation.DotenvError) as info:
        interpolation.parse_dotenv(text)
    assert str(info.value) == message
