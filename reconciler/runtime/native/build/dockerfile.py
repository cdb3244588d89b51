"""Dockerfile parsing (BuildKit's rules) and variable substitution.

`parse(text)` turns a Dockerfile (a leading UTF-8 byte order mark dropped) into `Instruction`s:
parser directives (`# escape=`,
`# syntax=` is read and ignored), comments, line continuations with the escape character,
JSON (exec) and shell forms, `--flag=value` options, and heredocs: in the shell form of RUN,
COPY and ADD (and ONBUILD of those) every word `<<WORD`, `<<-WORD`, `<<"WORD"` takes the lines
that follow, up to a line that is WORD, as its body (`<<-` strips leading tabs; a quoted word
switches off expansion), several in the order they appear. `substitute(word, env)` expands
`$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`, `${VAR+alt}` with
BuildKit's quoting: single quotes are literal, double quotes group, the escape character
escapes; quotes are removed. `split_words` is the same lexer splitting on blanks (ENV,
LABEL, ARG, EXPOSE, ... take several words).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from reconciler._dataclass import dataclass, dataclasses, field
from reconciler.runtime import errors

__all__ = ["DockerfileError", "Heredoc", "Instruction", "expand_text", "heredoc_word", "parse", "raw_words",
           "split_words",
           "substitute"]

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9_-]*)\s*=\s*(.*?)\s*$")
_FLAG = re.compile(r"^--([^=\s]*)(?:=(.*))?$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEREDOC = re.compile(r"^(\d*)<<(-?)\s*([^<]*)$")
_HEREDOC_CMDS = frozenset({"RUN", "COPY", "ADD"})


class DockerfileError(errors.InvalidArgument):
    """The Dockerfile cannot be parsed or names something unsupported; says the line."""


@dataclass(frozen=True)
class Heredoc:
    """One heredoc: `<<NAME` and the lines up to the line `NAME`."""

    name: str
    content: str = ""       # the body lines, each with its newline, as written
    expand: bool = True     # the word was not quoted: COPY expands variables in the body
    chomp: bool = False     # <<-NAME: leading tabs are removed from the body lines

    @property
    def text(self) -> str:
        """The body as the command or file gets it (tabs chomped for <<-)."""
        return re.sub(r"(?m)^\t+", "", self.content) if self.chomp else self.content


@dataclass(frozen=True)
class Instruction:
    """One instruction: `cmd` upper case, `line` where it starts, `original` as written."""

    cmd: str
    line: int
    original: str
    args: str                                 # the text after the keyword and the flags
    flags: Mapping[str, str] = field(default_factory=dict)      # the last value of each flag
    repeated: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # every value of a repeatable flag
    json_args: tuple[str, ...] | None = None   # the exec (JSON) form, when it parsed as one
    heredocs: tuple[Heredoc, ...] = ()         # in the order of their words
    bare_flags: tuple[str, ...] = ()           # flags given without =VALUE (`--link`)


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile: its instructions, escape character and parser directives."""

    instructions: tuple[Instruction, ...]
    escape: str
    directives: Mapping[str, str] = field(default_factory=dict)     # escape, syntax, check: as given
    empty_continuations: tuple[int, ...] = ()     # lines of instructions with a blank line inside a continuation


def parse(text: str) -> Dockerfile:
    """Parse a Dockerfile; DockerfileError names the line of the first problem. A UTF-8 byte
    order mark at the start is dropped, as BuildKit's parser drops it from the first line."""
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").split("\n")
    escape = "\\"
    i = 0
    # parser directives: only at the very top, before any comment, blank line or instruction
    seen: dict[str, str] = {}
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i].strip())
        if not m:
            break
        key = m.group(1).lower()
        if key not in ("escape", "syntax", "check"):
            break
        if key in seen:
            raise DockerfileError(f"Dockerfile line {i + 1}: the parser directive {key!r} is given twice")
        seen[key] = m.group(2)
        if key == "syntax":
            _check_syntax(m.group(2), i + 1)
        if key == "escape":
            if m.group(2) not in ("\\", "`"):
                raise DockerfileError(f"Dockerfile line {i + 1}: invalid escape token {m.group(2)!r} does not match ` or \\",
                                      hint="# escape=\\ (the default) or # escape=`")
            escape = m.group(2)
        i += 1
    out: list[Instruction] = []
    empty: list[int] = []
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = i
        parts: list[str] = []
        original: list[str] = []
        cur = raw
        while True:
            body = cur.rstrip()
            if body.endswith(escape):
                parts.append(body[:-1])
                original.append(cur)
                i += 1
                # continuation: skip comment and blank lines inside it
                while i < len(lines) and (not lines[i].strip() or lines[i].strip().startswith("#")):
                    if not lines[i].strip() and (not empty or empty[-1] != start + 1):
                        empty.append(start + 1)     # BuildKit warns (NoEmptyContinuation)
                    i += 1
                if i >= len(lines):
                    break
                cur = lines[i]
                continue
            parts.append(cur)
            original.append(cur)
            i += 1
            break
        full = "".join(parts).strip()
        ins = _instruction(full, start + 1, "\n".join(original))
        if _may_have_heredocs(ins) and "<<" in full:
            docs: list[Heredoc] = []
            for doc in _heredoc_words(full):
                body, i = _heredoc_body(lines, i, doc, start + 1)
                docs.append(Heredoc(doc.name, body, doc.expand, doc.chomp))
            ins = dataclasses.replace(ins, heredocs=tuple(docs))
        out.append(ins)
    return Dockerfile(tuple(out), escape, seen, tuple(empty))


_FRONTEND = re.compile(r"^(?:docker\.io/)?docker/dockerfile(?::(?:1(?:\.\d+){0,2}|latest)(?:-labs)?)?(?:@sha256:[0-9a-f]{64})?$")


def _check_syntax(value: str, line: int) -> None:
    """`# syntax=`: a docker/dockerfile:1.x frontend is this builder; any other frontend
    (an image BuildKit would run to parse the file) is refused by name."""
    if not _FRONTEND.match(value):
        raise DockerfileError(f"Dockerfile line {line}: # syntax={value}: this builder is the docker/dockerfile:1 "
                              "frontend and cannot run another frontend",
                              hint="remove the directive, or write # syntax=docker/dockerfile:1")


def _may_have_heredocs(ins: Instruction) -> bool:
    if ins.json_args is not None:
        return False
    if ins.cmd == "ONBUILD":
        inner = ins.args.split(None, 1)
        return bool(inner) and inner[0].upper() in _HEREDOC_CMDS and not (len(inner) > 1 and inner[1].startswith("["))
    return ins.cmd in _HEREDOC_CMDS


def heredoc_word(word: str) -> Heredoc | None:
    """The heredoc a word such as `<<EOF`, `<<-EOF`, `<<'EOF'` opens (BuildKit's rule), else None."""
    m = _HEREDOC.match(word)
    if not m or not m.group(3):
        return None
    rest = m.group(3)
    try:
        names = split_words(rest, None)
    except DockerfileError:
        return None
    if len(names) != 1:
        return None
    quoted = names[0].count("'") + names[0].count('"') != rest.count("'") + rest.count('"')
    return Heredoc(names[0], expand=not quoted, chomp=m.group(2) == "-")


def _heredoc_words(line: str) -> list[Heredoc]:
    return [doc for word in raw_words(line) if (doc := heredoc_word(word)) is not None]


def _heredoc_body(lines: list[str], i: int, doc: Heredoc, line_no: int) -> tuple[str, int]:
    """The body of `doc` from lines[i] on, and the index after its terminating line."""
    body: list[str] = []
    while i < len(lines):
        line = lines[i]
        i += 1
        if (line.lstrip("\t") if doc.chomp else line) == doc.name:
            return "".join(body), i
        body.append(line + "\n")
    raise DockerfileError(f"Dockerfile line {line_no}: unterminated heredoc <<{doc.name}",
                          hint=f"end it with a line that is just {doc.name}")


def raw_words(text: str, escape: str = "\\") -> list[str]:
    """Split on blanks outside quotes, keeping quotes and escapes as written (how BuildKit
    finds heredoc words in a line, and the sources of COPY before expansion)."""
    out: list[str] = []
    cur: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == escape and quote != "'" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in " \t\n":
            if cur:
                out.append("".join(cur))
                cur = []
            i += 1
            continue
        cur.append(ch)
        i += 1
    if cur:
        out.append("".join(cur))
    return out


def _instruction(full: str, line: int, original: str) -> Instruction:
    keyword, _, rest = full.partition(" ")
    if "\t" in keyword:
        keyword, _, more = keyword.partition("\t")
        rest = more + " " + rest
    cmd = keyword.upper()
    rest = rest.strip()
    flags: dict[str, str] = {}
    repeated: dict[str, tuple[str, ...]] = {}
    bare: list[str] = []
    if cmd in _TAKES_FLAGS:
        while rest.startswith("--"):
            word, _, tail = rest.partition(" ")
            m = _FLAG.match(word)
            if not m:
                raise DockerfileError(f"Dockerfile line {line}: bad flag {word!r} in {cmd}")
            name = m.group(1).lower()
            value = m.group(2) if m.group(2) is not None else "true"
            if m.group(2) is None:
                bare.append(name)
            if name in _REPEATABLE:
                repeated[name] = (*repeated.get(name, ()), value)
            elif name in flags:
                raise DockerfileError(f"Dockerfile line {line}: flag --{name} given twice")
            flags[name] = value
            rest = tail.strip()
    json_args: tuple[str, ...] | None = None
    if rest.startswith("[") and cmd in _JSON_FORM:
        try:
            value = json.loads(rest)
        except ValueError:
            value = None
        if isinstance(value, list):
            if not all(isinstance(x, str) for x in value):     # BuildKit: an error, not the shell form
                raise DockerfileError(f"Dockerfile line {line}: when using JSON array syntax, arrays must be "
                                      "comprised of strings only", hint='quote every element: ["a", "1"]')
            json_args = tuple(value)
    return Instruction(cmd=cmd, line=line, original=original, args=rest, flags=flags, json_args=json_args,
                       repeated=repeated, bare_flags=tuple(bare))


_TAKES_FLAGS = {"FROM", "RUN", "COPY", "ADD", "HEALTHCHECK"}
_REPEATABLE = frozenset({"exclude", "mount"})        # flags BuildKit takes more than once
_JSON_FORM = {"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME", "HEALTHCHECK"}


# ----------------------------------------------------------------------------- substitution

def substitute(word: str, env: Mapping[str, str], *, escape: str = "\\") -> str:
    """Expand variables in one word and remove its quotes (BuildKit's ProcessWord)."""
    words = _lex(word, env, escape, split=False)
    return words[0] if words else ""


def split_words(text: str, env: Mapping[str, str] | None, *, escape: str = "\\") -> list[str]:
    """Split on unquoted blanks, expanding variables (unless env is None) and removing quotes."""
    return _lex(text, env, escape, split=True)


def expand_text(text: str, env: Mapping[str, str], *, escape: str = "\\") -> str:
    """A heredoc body COPY expands: variables expanded and escapes applied, quotes kept as
    they are (BuildKit's SkipProcessQuotes)."""
    words = _lex(text, env, escape, split=False, quotes=False)
    return words[0] if words else ""


def _lex(text: str, env: Mapping[str, str] | None, escape: str, *, split: bool, quotes: bool = True) -> list[str]:
    out: list[str] = []
    cur: list[str] = []
    have = False
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if split and ch in " \t\n":
            if have:
                out.append("".join(cur))
                cur, have = [], False
            i += 1
            continue
        have = True
        if ch == escape:
            if i + 1 < n:
                cur.append(text[i + 1])
                i += 2
            else:
                cur.append(ch)
                i += 1
            continue
        if not quotes and ch in "'\"":
            cur.append(ch)
            i += 1
            continue
        if ch == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise DockerfileError(f"unterminated single quote in {text!r}")
            cur.append(text[i + 1:end])
            i = end + 1
            continue
        if ch == '"':
            i += 1
            while i < n and text[i] != '"':
                c = text[i]
                if c == escape and i + 1 < n and text[i + 1] in ('"', "$", escape):
                    cur.append(text[i + 1])
                    i += 2
                elif c == "$" and env is not None:
                    value, i = _variable(text, i, env, escape)
                    cur.append(value)
                else:
                    cur.append(c)
                    i += 1
            if i >= n:
                raise DockerfileError(f"unterminated double quote in {text!r}")
            i += 1
            continue
        if ch == "$" and env is not None:
            value, i = _variable(text, i, env, escape)
            cur.append(value)
            continue
        cur.append(ch)
        i += 1
    if have:
        out.append("".join(cur))
    return out


def _variable(text: str, i: int, env: Mapping[str, str], escape: str) -> tuple[str, int]:
    """Expand the variable at text[i] == '$'; returns its value and the index after it."""
    n = len(text)
    if i + 1 < n and text[i + 1] == "{":
        j = i + 2
        m = _NAME.match(text, j)
        if not m:
            raise DockerfileError(f"bad substitution in {text!r}: expected a name after ${{")
        name = m.group(0)
        j = m.end()
        if j < n and text[j] == "}":
            return env.get(name, ""), j + 1
        op = ""
        if text.startswith((":-", ":+", ":?"), j):
            op = text[j:j + 2]
            j += 2
        elif j < n and text[j] in "-+?":
            op = text[j]
            j += 1
        else:
            raise DockerfileError(f"bad substitution in {text!r}: unsupported modifier after ${{{name}")
        # the word up to the matching brace (nested ${...} allowed)
        depth = 1
        k = j
        while k < n:
            if text[k] == escape:
                k += 2
                continue
            if text.startswith("${", k):
                depth += 1
                k += 2
                continue
            if text[k] == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        if k >= n:
            raise DockerfileError(f"bad substitution in {text!r}: missing }}")
        word = substitute(text[j:k], env, escape=escape)
        value = env.get(name)
        if op == ":-":
            result = value if value else word
        elif op == "-":
            result = value if value is not None else word
        elif op == ":+":
            result = word if value else ""
        elif op == "+":
            result = word if value is not None else ""
        else:   # ?, :?
            if value is None or (op == ":?" and not value):
                raise DockerfileError(f"{name}: {word or 'is not set'}")
            result = value
        return result, k + 1
    m = _NAME.match(text, i + 1)
    if not m:
        return "$", i + 1
    return env.get(m.group(0), ""), m.end()
