"""Go's text/template, the part of it docker's `--format` is written in, and docker's rules
around it: the one home of `--format` for `ps`, `images`, `network ls`, `volume ls` and of
`-f/--format` for the inspect commands (listing.py gives ps's and images' rows their fields;
cli/output.py `print_documents` runs an inspect's).

    parse(text)                      the template (TemplateError: its position and what is wrong)
    Template.execute(data)           its text for one value (TemplateError likewise)
    Struct(kind, fields, methods)    a value whose fields are fixed, as a Go struct's: a name it
                                     has not is an error; a dict is a Go map: a key it has not
                                     is `<no value>`
    document(doc, maps)              a JSON document (inspect's) as Structs, its maps (Labels...) dicts
    render_rows(fmt, rows, header)   `ls --format`: `table` + a header, `json` (one object a line), or
                                     one line per row, as docker's formatter prints them
    render_documents(fmt, docs)      `inspect -f`: one line per document, or `json` (one array)
    go_json(value), go_print(value)  `{{json .X}}` and `{{.X}}`'s text of a value, as Go writes them

What it takes: text, `{{pipeline}}`, field chains (`.A.B`, `$x.A`, `(pipeline).A`), `$` and
variables (`$x := ...`, `$i, $v := ...` in range), `{{if}}`/`{{else if}}`/`{{else}}`/`{{end}}`,
`{{range}}` (with `{{else}}`, `{{break}}`, `{{continue}}`), `{{with}}`, `{{/* comments */}}`,
`{{-` and `-}}` trimming, strings ("..." and `...`), numbers, true, false, nil, pipes, and the
functions docker gives (json, split, join, title, lower, upper, pad, truncate) and Go's own
(and, or, not, len, index, slice, print, printf, println, eq, ne, lt, le, gt, ge). Not taken:
define, template, block, call, html, js, urlquery: "function ... not defined".

No maintained Python package implements Go's templates (PyPI has one CGo wrapper at 0.0.2):
this is ours, kept to what docker's users write. Stdlib only; nothing imported at load.
"""

from __future__ import annotations

from reconciler.errors import TerminalError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any

__all__ = ["MISSING", "Struct", "Template", "TemplateError", "document", "go_json", "go_print", "go_quote",
           "parse", "render_documents", "render_rows", "tabwriter"]


class TemplateError(TerminalError):
    """A template that does not parse (`stage` "parse"), or fails on a value ("execute"): docker's
    "template parsing error" (either), with Go's position (template: :LINE:COLUMN:) and what is
    wrong; exit 1, as docker's CLI exits (`worded`: another command's words and code for it:
    `ps`'s "failed to parse template", inspect's 64)."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, stage: str = "parse",
                 lead: str = "template parsing error") -> None:
        self.detail = message
        self.stage = stage
        super().__init__(f"{lead}: {message}",
                         hint=hint or "see docs/reference/cli.md, \"--format\": Go's text/template, as docker's")

    def worded(self, lead: str, *, exit_code: int = 1) -> TemplateError:
        """The same error as another command of docker's words it (`lead`) and exits."""
        new = TemplateError(self.detail, hint=self.hint, stage=self.stage, lead=lead)
        new.exit_code = exit_code
        return new


class _Missing:
    """Go's invalid value: what a map gives for a key it has not; printed `<no value>`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


MISSING = _Missing()


class Struct:
    """A value with fixed fields, as a Go struct: `kind` names it in errors, `fields` its
    fields in order, `methods` the ones called with arguments (`.Label "k"`); `html_json`:
    `{{json .}}` escapes <, > and & as docker's formatter contexts' MarshalJSON does; `sort_json`:
    their keys sorted, as the JSON of docker's formatter contexts (a map), else in order."""

    __slots__ = ("fields", "html_json", "kind", "methods", "sort_json")

    def __init__(self, kind: str, fields: Mapping[str, Any], methods: Mapping[str, Callable[..., Any]] | None = None,
                 *, html_json: bool = False, sort_json: bool = False) -> None:
        self.kind = kind
        self.fields = dict(fields)
        self.methods = dict(methods or {})
        self.html_json = html_json
        self.sort_json = sort_json


# -- lexing ----------------------------------------------------------------------------------------

_SPACE = " \t\r\n"
_KEYWORDS = ("if", "else", "end", "range", "with", "break", "continue", "define", "template", "block")


class _Tok:
    __slots__ = ("kind", "pos", "spaced", "value")

    def __init__(self, kind: str, value: Any, pos: int, spaced: bool) -> None:
        self.kind, self.value, self.pos, self.spaced = kind, value, pos, spaced


class _Source:
    """The template's text, for positions: Go's `:LINE:COLUMN` (the column a byte offset)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def where(self, pos: int) -> str:
        before = self.text[:pos]
        line = 1 + before.count("\n")
        col = len(before[before.rfind("\n") + 1:].encode())
        return f"template: :{line}:{col}"

    def error(self, pos: int, message: str) -> TemplateError:
        return TemplateError(f"{self.where(pos)}: {message}")


def _segments(src: _Source) -> list[tuple[str, Any, int, int]]:
    """The template cut into ("text", str, pos, end) and ("action", [tokens], pos, end), with
    the `{{-` and `-}}` trimming done and the comments left out."""
    text = src.text
    out: list[tuple[str, Any, int, int]] = []
    i, n = 0, len(text)
    trim_next = False
    while i < n:
        start = text.find("{{", i)
        chunk = text[i:] if start < 0 else text[i:start]
        if trim_next:
            chunk = chunk.lstrip(_SPACE)
        if start < 0:
            if chunk:
                out.append(("text", chunk, i, n))
            break
        j = start + 2
        if text.startswith("-", j) and j + 1 < n and text[j + 1] in _SPACE:
            chunk = chunk.rstrip(_SPACE)
            j += 2
        if chunk:
            out.append(("text", chunk, i, start))
        k = j
        while k < n and text[k] in _SPACE:
            k += 1
        if text.startswith("/*", k):                    # a comment: nothing but it in the action
            close = text.find("*/", k + 2)
            if close < 0:
                raise src.error(start, "unclosed comment")
            m = close + 2
            while m < n and text[m] in _SPACE:
                m += 1
            trim_next = False
            if text.startswith("-}}", m) and m > close + 2:
                trim_next, m = True, m + 1
            if not text.startswith("}}", m):
                raise src.error(start, "comment ends before closing delimiter")
            i = m + 2
            continue
        tokens, end, trim_next = _lex_action(src, j, start)
        out.append(("action", tokens, start, end))
        i = end
    return out


def _lex_action(src: _Source, i: int, start: int) -> tuple[list[_Tok], int, bool]:
    """The tokens of the action whose content starts at `i`; the offset after its `}}`, and
    whether it ends with `-}}` (the text after it trimmed)."""
    text = src.text
    n = len(text)
    toks: list[_Tok] = []
    spaced = True
    while True:
        if i >= n:
            raise src.error(start, "unclosed action")
        c = text[i]
        if c in _SPACE:
            m = i
            while m < n and text[m] in _SPACE:
                m += 1
            if text.startswith("-}}", m):
                return toks, m + 3, True
            if text.startswith("}}", m):
                return toks, m + 2, False
            i, spaced = m, True
            continue
        if text.startswith("}}", i):
            return toks, i + 2, False
        pos = i
        if c == '"':
            m = i + 1
            while m < n and text[m] != '"':
                if text[m] == "\\":
                    m += 1
                if m < n and text[m] == "\n":
                    break
                m += 1
            if m >= n or text[m] != '"':
                raise TemplateError(f"{src.where(pos)}: unterminated quoted string")
            toks.append(_Tok("string", _unquote(src, text[i + 1:m], pos), pos, spaced))
            i = m + 1
        elif c == "`":
            m = text.find("`", i + 1)
            if m < 0:
                raise TemplateError(f"{src.where(pos)}: unterminated raw quoted string")
            toks.append(_Tok("string", text[i + 1:m], pos, spaced))
            i = m + 1
        elif c == "'":
            m = text.find("'", i + 1)
            body = text[i + 1:m] if m > 0 else ""
            value = _unquote(src, body, pos) if body else ""
            if m < 0 or len(value) != 1:
                raise src.error(pos, "malformed character constant")
            toks.append(_Tok("number", ord(value), pos, spaced))
            i = m + 1
        elif c == "." and (i + 1 >= n or not (text[i + 1].isalnum() or text[i + 1] == "_")):
            if i + 1 < n and text[i + 1].isdigit():
                i = _number(src, toks, i, spaced)
            else:
                toks.append(_Tok("dot", ".", pos, spaced))
                i += 1
        elif c == "." or c == "$":
            m = i + 1
            while m < n and (text[m].isalnum() or text[m] == "_"):
                m += 1
            if c == "." and text[i + 1].isdigit():
                i = _number(src, toks, i, spaced)
                spaced = False
                continue
            toks.append(_Tok("field" if c == "." else "variable", text[i + 1:m] if c == "." else text[i:m], pos, spaced))
            i = m
        elif c.isdigit() or (c in "+-" and i + 1 < n and (text[i + 1].isdigit() or text[i + 1] == ".")):
            i = _number(src, toks, i, spaced)
        elif c.isalpha() or c == "_":
            m = i
            while m < n and (text[m].isalnum() or text[m] == "_"):
                m += 1
            word = text[i:m]
            if word in ("true", "false"):
                toks.append(_Tok("bool", word == "true", pos, spaced))
            elif word == "nil":
                toks.append(_Tok("nil", None, pos, spaced))
            elif word in _KEYWORDS:
                toks.append(_Tok("keyword", word, pos, spaced))
            else:
                toks.append(_Tok("ident", word, pos, spaced))
            i = m
        elif text.startswith(":=", i):
            toks.append(_Tok("declare", ":=", pos, spaced))
            i += 2
        elif c in "|(),=":
            toks.append(_Tok(c, c, pos, spaced))
            i += 1
        else:
            raise TemplateError(f"{src.where(pos)}: unexpected {c!r} in command")
        spaced = False


def _number(src: _Source, toks: list[_Tok], i: int, spaced: bool) -> int:
    text = src.text
    m = i + 1
    while m < len(text) and (text[m].isalnum() or text[m] in "._" or (text[m] in "+-" and text[m - 1] in "eEpP")):
        m += 1
    word = text[i:m].replace("_", "")
    try:
        value: Any = int(word, 0)
    except ValueError:
        try:
            value = float(word)
        except ValueError:
            raise TemplateError(f"{src.where(i)}: bad number syntax: {text[i:m]!r}") from None
    toks.append(_Tok("number", value, i, spaced))
    return m


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"',
            "'": "'"}


def _unquote(src: _Source, body: str, pos: int) -> str:
    """A Go string literal's value (its escapes: \\n, \\t, \\xHH, \\uHHHH, \\UHHHHHHHH, octal)."""
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1:i + 2]
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
            continue
        width = {"x": 2, "u": 4, "U": 8}.get(e)
        try:
            if width and len(body[i + 2:i + 2 + width]) == width:
                out.append(chr(int(body[i + 2:i + 2 + width], 16)))
                i += 2 + width
                continue
            if e.isdigit():
                out.append(chr(int(body[i + 1:i + 4], 8)))
                i += 4
                continue
        except ValueError:
            pass
        raise TemplateError(f"{src.where(pos)}: invalid syntax in quoted string")
    return "".join(out)


# -- the tree --------------------------------------------------------------------------------------

class _Node:
    __slots__ = ("pos",)
    pos: int


class _Text(_Node):
    __slots__ = ("text",)

    def __init__(self, text: str, pos: int) -> None:
        self.text, self.pos = text, pos


class _Operand(_Node):
    """A term and the fields read of it: kind is field (`.A.B`: term None), dot, variable,
    ident (a function), literal, or pipe (`(pipeline)`)."""

    __slots__ = ("at", "end", "fields", "kind", "term")

    def __init__(self, kind: str, term: Any, fields: list[str], pos: int, end: int, at: int) -> None:
        self.kind, self.term, self.fields, self.pos, self.end = kind, term, fields, pos, end
        self.at = at        # where Go says it is: a chain of fields (.A.B, $x.A) at its first link


class _Command(_Node):
    __slots__ = ("args", "end")

    def __init__(self, args: list[_Operand], pos: int, end: int) -> None:
        self.args, self.pos, self.end = args, pos, end


class _Pipe(_Node):
    __slots__ = ("assign", "commands", "decl")

    def __init__(self, decl: list[str], assign: bool, commands: list[_Command], pos: int) -> None:
        self.decl, self.assign, self.commands, self.pos = decl, assign, commands, pos


class _Action(_Node):
    __slots__ = ("pipe",)

    def __init__(self, pipe: _Pipe, pos: int) -> None:
        self.pipe, self.pos = pipe, pos


class _Branch(_Node):
    """if, range or with: its pipeline, what runs when it holds, and its else."""

    __slots__ = ("body", "kind", "otherwise", "pipe")

    def __init__(self, kind: str, pipe: _Pipe, body: list[_Node], otherwise: list[_Node], pos: int) -> None:
        self.kind, self.pipe, self.body, self.otherwise, self.pos = kind, pipe, body, otherwise, pos


class _Loop(_Node):
    """{{break}} or {{continue}}."""

    __slots__ = ("kind",)

    def __init__(self, kind: str, pos: int) -> None:
        self.kind, self.pos = kind, pos


class _Parser:
    def __init__(self, src: _Source, funcs: Mapping[str, Any]) -> None:
        self.src = src
        self.funcs = funcs
        self.segments = _segments(src)
        self.i = 0
        self.vars: list[list[str]] = [["$"]]
        self.loops = 0

    def error(self, pos: int, message: str) -> TemplateError:
        return self.src.error(pos, message)

    def parse(self) -> list[_Node]:
        nodes, stop = self.list_until(())
        if stop is not None:
            raise self.error(stop[1], f"unexpected {{{{{stop[0]}}}}}")
        return nodes

    def list_until(self, stops: tuple[str, ...]) -> tuple[list[_Node], tuple[str, int, list[_Tok]] | None]:
        """Nodes up to one of `stops` (end, else), which is returned with its position and the
        rest of its tokens; None at the end of the text."""
        nodes: list[_Node] = []
        while self.i < len(self.segments):
            kind, value, pos, end = self.segments[self.i]
            self.i += 1
            if kind == "text":
                nodes.append(_Text(value, pos))
                continue
            toks: list[_Tok] = value
            if not toks:
                raise self.error(pos, "missing value for command")
            head = toks[0]
            if head.kind == "keyword":
                word = head.value
                if word in ("end", "else"):
                    if word not in stops:
                        raise self.error(pos, f"unexpected {{{{{word}}}}}")
                    if word == "end" and len(toks) > 1:
                        raise self.error(pos, f"unexpected {_tok_text(toks[1])} in end")
                    return nodes, (word, pos, toks[1:])
                if word in ("if", "range", "with"):
                    nodes.append(self.branch(word, toks[1:], pos))
                    continue
                if word in ("break", "continue"):
                    if not self.loops:
                        raise self.error(pos, f"{{{{{word}}}}} outside {{{{range}}}}")
                    if len(toks) > 1:
                        raise self.error(pos, f"unexpected {_tok_text(toks[1])} in {word}")
                    nodes.append(_Loop(word, pos))
                    continue
                raise self.error(pos, f"{{{{{word}}}}} is not supported here: only if, range, with, else, end, "
                                      "break and continue")
            pipe = self.pipeline(toks, pos, end, "command", decl_ok=True)
            nodes.append(_Action(pipe, pos))
        if stops:
            raise self.error(len(self.src.text), "unexpected EOF")
        return nodes, None

    def branch(self, kind: str, toks: list[_Tok], pos: int) -> _Branch:
        self.vars.append([])
        try:
            pipe = self.pipeline(toks, pos, pos, kind, decl_ok=True, range_decl=kind == "range")
            if kind == "range":
                self.loops += 1
            try:
                body, stop = self.list_until(("end", "else"))
            finally:
                if kind == "range":
                    self.loops -= 1
            otherwise: list[_Node] = []
            assert stop is not None
            if stop[0] == "else":
                rest = stop[2]
                if rest and rest[0].kind == "keyword" and rest[0].value in ("if", "with"):
                    # {{else if ...}}: an if within the else, which the same {{end}} ends
                    otherwise = [self.branch(rest[0].value, rest[1:], rest[0].pos)]
                    return _Branch(kind, pipe, body, otherwise, pos)
                if rest:
                    raise self.error(stop[1], f"unexpected {_tok_text(rest[0])} in else")
                otherwise, stop = self.list_until(("end",))
            return _Branch(kind, pipe, body, otherwise, pos)
        finally:
            self.vars.pop()

    def pipeline(self, toks: list[_Tok], pos: int, end: int, context: str, *, decl_ok: bool = False,
                 range_decl: bool = False) -> _Pipe:
        if not toks:
            raise self.error(pos, f"missing value for {context}")
        decl: list[str] = []
        assign = False
        i = 0
        if decl_ok and toks and toks[0].kind == "variable":
            names = [toks[0]]
            j = 1
            if range_decl and len(toks) > 2 and toks[1].kind == "," and toks[2].kind == "variable":
                names.append(toks[2])
                j = 3
            if len(toks) > j and toks[j].kind in ("declare", "="):
                assign = toks[j].kind == "="
                for t in names:
                    if assign and not self.declared(t.value):
                        raise self.error(t.pos, f"undefined variable \"{t.value}\"")
                decl = [t.value for t in names]
                i = j + 1
        commands: list[_Command] = []
        while True:
            cmd, i = self.command(toks, i, pos)
            commands.append(cmd)
            if i >= len(toks):
                break
            if toks[i].kind == "|":
                i += 1
                if i >= len(toks):
                    raise self.error(toks[i - 1].pos, "missing command after |")
                continue
            if toks[i].kind == ")":
                raise self.error(toks[i].pos, "unexpected right paren")
            raise self.error(toks[i].pos, f"unexpected {_tok_text(toks[i])} in {context}")
        if decl and not assign:
            self.vars[-1].extend(decl)
        for stage, c in enumerate(commands[1:], 2):
            if c.args[0].kind == "literal":
                raise self.error(c.args[0].pos, f"non executable command in pipeline stage {stage}")
        return _Pipe(decl, assign, commands, pos)

    def declared(self, name: str) -> bool:
        base = name.split(".")[0]
        return any(base in scope for scope in self.vars)

    def command(self, toks: list[_Tok], i: int, pos: int) -> tuple[_Command, int]:
        args: list[_Operand] = []
        while i < len(toks) and toks[i].kind not in ("|", ")"):
            if args and not toks[i].spaced and toks[i].kind != "(":
                raise self.error(toks[i].pos, f"unexpected {_tok_text(toks[i])} in operand")
            op, i = self.operand(toks, i)
            args.append(op)
        if not args:
            raise self.error(toks[i].pos if i < len(toks) else pos, "missing value for command")
        return _Command(args, args[0].pos, args[-1].end), i

    def operand(self, toks: list[_Tok], i: int) -> tuple[_Operand, int]:
        t = toks[i]
        kind: str
        term: Any = None
        fields: list[str] = []
        end = t.pos + len(_tok_text(t))
        if t.kind == "field":
            kind = "field"
            fields = [t.value]
        elif t.kind == "dot":
            kind = "dot"
        elif t.kind == "variable":
            if not self.declared(t.value):
                raise self.error(t.pos, f"undefined variable \"{t.value}\"")
            kind, term = "variable", t.value
        elif t.kind == "ident":
            if t.value not in self.funcs:
                raise self.error(t.pos, f"function {t.value!r} not defined".replace("'", '"'))
            kind, term = "ident", t.value
        elif t.kind in ("string", "number", "bool", "nil"):
            kind, term = "literal", t.value
        elif t.kind == "(":
            depth, j = 1, i + 1
            while j < len(toks) and depth:
                depth += {"(": 1, ")": -1}.get(toks[j].kind, 0)
                j += 1
            if depth:
                raise self.error(t.pos, "unclosed left paren")
            inner = toks[i + 1:j - 1]
            if not inner:
                raise self.error(t.pos, "missing value for parenthesized pipeline")
            kind, term = "pipe", self.pipeline(inner, t.pos, toks[j - 1].pos, "parenthesized pipeline")
            end = toks[j - 1].pos + 1
            i = j - 1
        elif t.kind == "keyword":
            raise self.error(t.pos, f"unexpected <{t.value}> in command")
        else:
            raise self.error(t.pos, f"unexpected {_tok_text(t)} in operand")
        i += 1
        at = t.pos
        while i < len(toks) and toks[i].kind == "field" and not toks[i].spaced:
            if kind in ("literal", "ident"):
                raise self.error(toks[i].pos, f"unexpected . after term {_tok_text(t)!r}".replace("'", '"'))
            if at == t.pos:
                at = toks[i].pos
            fields.append(toks[i].value)
            end = toks[i].pos + 1 + len(toks[i].value)
            i += 1
        return _Operand(kind, term, fields, t.pos, end, at), i


def _tok_text(t: _Tok) -> str:
    if t.kind == "field":
        return f".{t.value}"
    if t.kind == "string":
        return go_quote(t.value)
    if t.kind == "bool":
        return "true" if t.value else "false"
    if t.kind == "nil":
        return "nil"
    return f"{t.value}"


# -- running it ------------------------------------------------------------------------------------

class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _CallError(Exception):
    """A function's failure: Go's `error calling NAME: ...` (or the text as it is, `plain`)."""

    def __init__(self, message: str, *, plain: bool = False) -> None:
        super().__init__(message)
        self.plain = plain


class Template:
    """A parsed template: `execute(data)` is its text for `data` (TemplateError: where and why)."""

    def __init__(self, text: str, funcs: Mapping[str, Any] | None = None) -> None:
        self.source = _Source(text)
        self.funcs = dict(FUNCTIONS if funcs is None else funcs)
        self.nodes = _Parser(self.source, self.funcs).parse()

    def execute(self, data: Any, *, funcs: Mapping[str, Any] | None = None) -> str:
        """Its text for `data`; `funcs` in place of some of its functions (a table's header)."""
        run = _Run(self, data, {**self.funcs, **(funcs or {})})
        out: list[str] = []
        run.walk(self.nodes, data, out)
        return "".join(out)


def parse(text: str) -> Template:
    """The template `text` (TemplateError when it does not parse)."""
    return Template(text)


class _Run:
    def __init__(self, template: Template, data: Any, funcs: Mapping[str, Any]) -> None:
        self.src = template.source
        self.funcs = funcs
        self.vars: list[dict[str, Any]] = [{"$": data}]

    def fail(self, node: _Node, end: int, message: str, hint: str | None = None) -> TemplateError:
        context = self.src.text[node.pos:end]
        at = node.at if isinstance(node, _Operand) else node.pos
        return TemplateError(f'{self.src.where(at)}: executing "" at <{context}>: {message}', hint=hint,
                             stage="execute")

    def walk(self, nodes: Sequence[_Node], dot: Any, out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                out.append(node.text)
            elif isinstance(node, _Action):
                value = self.pipe(node.pipe, dot)
                if not node.pipe.decl:
                    out.append(go_print(value))
            elif isinstance(node, _Branch):
                self.branch(node, dot, out)
            elif isinstance(node, _Loop):
                raise _Break() if node.kind == "break" else _Continue()

    def scoped(self, nodes: Sequence[_Node], dot: Any, out: list[str], names: dict[str, Any] | None = None) -> None:
        self.vars.append(dict(names or {}))
        try:
            self.walk(nodes, dot, out)
        finally:
            self.vars.pop()

    def branch(self, node: _Branch, dot: Any, out: list[str]) -> None:
        self.vars.append({})
        try:
            if node.kind == "range":
                self.range(node, dot, out)
                return
            value = self.pipe(node.pipe, dot, declare=node.kind != "range")
            if truth(value):
                self.scoped(node.body, value if node.kind == "with" else dot, out)
            else:
                self.scoped(node.otherwise, dot, out)
        finally:
            self.vars.pop()

    def range(self, node: _Branch, dot: Any, out: list[str]) -> None:
        value = self.pipe(_Pipe([], False, node.pipe.commands, node.pipe.pos), dot)
        items: list[tuple[Any, Any]]
        if isinstance(value, list | tuple):
            items = list(enumerate(value))
        elif isinstance(value, dict):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(k, k) for k in range(value)]
        elif value is None or value is MISSING:
            items = []
        else:
            first = node.pipe.commands[-1]
            raise self.fail(first, first.end, f"range can't iterate over {go_print(value)}")
        if not items:
            self.scoped(node.otherwise, dot, out)
            return
        decl = node.pipe.decl
        for key, elem in items:
            names: dict[str, Any] = {}
            if len(decl) == 1:
                names[decl[0]] = elem
            elif len(decl) == 2:
                names[decl[0]], names[decl[1]] = key, elem
            try:
                self.scoped(node.body, elem, out, names)
            except _Break:
                break
            except _Continue:
                continue

    def lookup(self, name: str) -> Any:
        for scope in reversed(self.vars):
            if name in scope:
                return scope[name]
        raise KeyError(name)

    def pipe(self, pipe: _Pipe, dot: Any, *, declare: bool = True) -> Any:
        value: Any = _NOFINAL
        for cmd in pipe.commands:
            value = self.command(cmd, dot, value)
        if pipe.decl and declare:
            if pipe.assign:
                for scope in reversed(self.vars):
                    if pipe.decl[0] in scope:
                        scope[pipe.decl[0]] = value
                        break
            else:
                self.vars[-1][pipe.decl[0]] = value
        return value

    def command(self, cmd: _Command, dot: Any, final: Any) -> Any:
        first = cmd.args[0]
        args = cmd.args[1:]
        if first.kind == "ident" and not first.fields:
            return self.call(cmd, first.term, args, dot, final)
        if first.kind in ("field", "variable", "pipe", "dot") and first.fields and (args or final is not _NOFINAL):
            receiver = self.operand(first, dot, upto=len(first.fields) - 1)
            values = [self.operand(a, dot) for a in args] + ([] if final is _NOFINAL else [final])
            return self.field(first, receiver, first.fields[-1], values)
        if args or final is not _NOFINAL:
            raise self.fail(first, first.end, f"can't give argument to non-function {self.src.text[first.pos:first.end]}")
        return self.operand(first, dot)

    def operand(self, op: _Operand, dot: Any, upto: int | None = None) -> Any:
        if op.kind in ("field", "dot"):
            value = dot
        elif op.kind == "variable":
            value = self.lookup(op.term)
        elif op.kind == "literal":
            value = op.term
        elif op.kind == "pipe":
            value = self.pipe(op.term, dot)
        else:                                           # a function without arguments, then fields
            value = self.call(_Command([op], op.pos, op.end), op.term, [], dot, _NOFINAL)
        for name in op.fields[:upto]:
            value = self.field(op, value, name, [])
        return value

    def field(self, op: _Operand, receiver: Any, name: str, args: list[Any]) -> Any:
        if isinstance(receiver, Struct):
            if name in receiver.methods:
                try:
                    return receiver.methods[name](*args)
                except TypeError:
                    raise self.fail(op, op.end, f"wrong number of args for {name}") from None
            if name in receiver.fields:
                if args:
                    raise self.fail(op, op.end, f"{name} is not a method but has arguments")
                return receiver.fields[name]
            known = ", ".join(f".{f}" for f in [*receiver.fields, *receiver.methods])
            raise self.fail(op, op.end, f"can't evaluate field {name} in type {receiver.kind}",
                            hint=f"{receiver.kind} has {known}" if known else None)
        if args:
            raise self.fail(op, op.end, f"{name} is not a method but has arguments")
        if isinstance(receiver, dict):
            return receiver.get(name, MISSING)
        if receiver is None or receiver is MISSING:
            raise self.fail(op, op.end, f"nil pointer evaluating interface {{}}.{name}")
        raise self.fail(op, op.end, f"can't evaluate field {name} in type {_go_type(receiver)}")

    def call(self, cmd: _Command, name: str, args: list[_Operand], dot: Any, final: Any) -> Any:
        fn = self.funcs[name]
        if name in ("and", "or"):                   # Go's: the first that decides, the rest not evaluated
            operands = list(args)
            if not operands and final is _NOFINAL:
                raise self.fail(cmd, cmd.end, f"wrong number of args for {name}: want at least 1 got 0")
            value: Any = None
            for a in operands:
                value = self.operand(a, dot)
                if truth(value) == (name == "or"):
                    return value
            if final is not _NOFINAL:
                value = final
            return value
        values = [self.operand(a, dot) for a in args] + ([] if final is _NOFINAL else [final])
        try:
            return fn(*values)
        except _CallError as e:
            raise self.fail(cmd, cmd.end, str(e) if e.plain else f"error calling {name}: {e}") from None
        except TypeError:
            raise self.fail(cmd, cmd.end, f"wrong number of args for {name}: got {len(values)}") from None


_NOFINAL = object()


# -- values as Go prints them ----------------------------------------------------------------------

def truth(value: Any) -> bool:
    """Go's truth: false, 0, nil, an empty string, slice or map are false; a struct is true."""
    if isinstance(value, Struct):
        return True
    return bool(value)


def _go_type(value: Any) -> str:
    if isinstance(value, Struct):
        return value.kind
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return "interface {}"


def _go_float(f: float) -> str:
    """fmt's %v of a float64 (strconv's 'g', shortest): %e form below exponent -4 and from 6 on."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    from decimal import Decimal

    sign, digits, exp = Decimal(repr(f)).normalize().as_tuple()
    text = "".join(map(str, digits))
    exponent = len(text) + int(exp) - 1
    minus = "-" if sign else ""
    if exponent < -4 or exponent >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{minus}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if int(exp) >= 0:
        return minus + text + "0" * int(exp)
    point = len(text) + int(exp)
    return minus + (text[:point] if point > 0 else "0") + "." + ("0" * -point if point < 0 else "") + text[max(point, 0):]


def go_print(value: Any) -> str:
    """`{{.X}}`'s text of a value: fmt's %v (a list `[a b]`, a map `map[k:v]` in key order,
    a struct `{v1 v2}`, nil `<nil>`, a missing map key `<no value>`)."""
    if isinstance(value, str):
        return value
    if value is MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_print(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_print(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, Struct):
        return "{" + " ".join(go_print(v) for v in value.fields.values()) + "}"
    return str(value)


def _plain(value: Any) -> Any:
    """A value as JSON data: Structs as objects (their keys sorted when Go's JSON of them is)."""
    if isinstance(value, Struct):
        keys = sorted(value.fields) if value.sort_json else list(value.fields)
        return {k: _plain(value.fields[k]) for k in keys}
    if isinstance(value, dict):
        return {k: _plain(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is MISSING:
        return None
    return value


def go_json(value: Any) -> str:
    """`{{json .X}}`: Go's encoding/json of the value, compact, maps' keys sorted, <, > and &
    left as they are (docker's `json` turns HTML escaping off) but in the JSON of a formatter
    context (a `ps` or `images` row: `json .`), which escapes them as Go's MarshalJSON does."""
    import json

    text = json.dumps(_plain(value), ensure_ascii=False, separators=(",", ":"))
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    if isinstance(value, Struct) and value.html_json:
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text


def go_quote(s: str) -> str:
    """Go's strconv.Quote: double quotes, `"` and `\\` escaped, control characters as \\n, \\t,
    \\xHH or \\uHHHH, printable Unicode as it is."""
    out = ['"']
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif c in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(c)])
        elif c.isprintable() or c == " ":
            out.append(c)
        elif ord(c) < 0x80:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    out.append('"')
    return "".join(out)


# -- functions -------------------------------------------------------------------------------------

def _string(value: Any, what: str = "string") -> str:
    if not isinstance(value, str):
        raise _CallError(f"wrong type for value; expected {what}; got {_go_type(value)}", plain=True)
    return value


def _join(items: Any, sep: Any) -> str:
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise _CallError(f"wrong type for value; expected []string; got {_go_type(items)}", plain=True)
    return _string(sep).join(items)


def _title(s: Any) -> str:
    """strings.Title: each word's first letter upper-cased (a word follows anything but a
    letter, a digit, `_` or `'`)."""
    out, prev = [], " "
    for c in _string(s):
        out.append(c.upper() if not (prev.isalnum() or prev in "_'") else c)
        prev = c
    return "".join(out)


def _pad(value: Any, prefix: Any, suffix: Any) -> str:
    s = _string(value)
    return s if not s else " " * int(prefix) + s + " " * int(suffix)


def _truncate(value: Any, length: Any) -> str:
    s = _string(value)
    raw = s.encode()
    return s if len(raw) < int(length) else raw[:int(length)].decode(errors="ignore")


def _len(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, list | tuple | dict):
        return len(value)
    raise _CallError(f"len of type {_go_type(value)}")


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, dict):
            if not isinstance(key, str):
                raise _CallError(f"value has type {_go_type(key)}; should be string")
            if key in item:
                item = item[key]
            else:   # the zero value of the map's values: "" for a map of strings (labels), else <no value>
                item = "" if all(isinstance(v, str) for v in item.values()) else MISSING
        elif isinstance(item, list | tuple | str):
            if not isinstance(key, int) or isinstance(key, bool):
                raise _CallError(f"cannot index slice/array with type {_go_type(key)}")
            if not 0 <= key < len(item):
                raise _CallError(f"index out of range: {key}")
            item = item[key] if not isinstance(item, str) else item.encode()[key]
        elif item is None or item is MISSING:
            raise _CallError("index of untyped nil")
        else:
            raise _CallError(f"can't index item of type {_go_type(item)}")
    return item


def _slice(item: Any, *bounds: Any) -> Any:
    if not isinstance(item, list | tuple | str):
        raise _CallError(f"can't slice item of type {_go_type(item)}")
    if len(bounds) > 2:
        raise _CallError(f"too many slice indexes: {len(bounds)}")
    lo = bounds[0] if bounds else 0
    hi = bounds[1] if len(bounds) > 1 else len(item)
    if not 0 <= lo <= hi <= len(item):
        raise _CallError(f"index out of range: {hi if hi > len(item) else lo}")
    return item[lo:hi]


def _sprint(*values: Any) -> str:
    """fmt.Sprint: a space between two operands when neither is a string."""
    out: list[str] = []
    for i, v in enumerate(values):
        if i and not isinstance(v, str) and not isinstance(values[i - 1], str):
            out.append(" ")
        out.append(go_print(v))
    return "".join(out)


def _sprintln(*values: Any) -> str:
    return " ".join(go_print(v) for v in values) + "\n"


def _sprintf(fmt: Any, *values: Any) -> str:
    """fmt.Sprintf with the verbs people write: %s %v %d %q %t %x %X %o %f %e %g %c %%, flags,
    width and precision; a wrong one as Go says it (%!d(string=x), %!s(MISSING), %!(EXTRA ...))."""
    fmt = _string(fmt)
    out: list[str] = []
    i, n, arg = 0, len(fmt), 0
    while i < n:
        c = fmt[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        j = i + 1
        while j < n and fmt[j] in "+-# 0":
            j += 1
        while j < n and (fmt[j].isdigit() or fmt[j] == "."):
            j += 1
        if j >= n:
            out.append("%!(NOVERB)")
            break
        spec, verb = fmt[i + 1:j], fmt[j]
        i = j + 1
        if verb == "%":
            out.append("%")
            continue
        if arg >= len(values):
            out.append(f"%!{verb}(MISSING)")
            continue
        v = values[arg]
        arg += 1
        out.append(_verb(spec, verb, v))
    if arg < len(values):
        extra = ", ".join(f"{_go_type(v)}={go_print(v)}" for v in values[arg:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _verb(spec: str, verb: str, v: Any) -> str:
    flags = "".join(ch for ch in spec if ch in "+-# 0")
    rest = spec[len(flags):]
    pad = ("<" if "-" in flags else ">")
    width, _, prec = rest.partition(".")

    def padded(text: str) -> str:
        if not width:
            return text
        fill = "0" if "0" in flags and "-" not in flags and verb not in "sqvt" else " "
        return format(text, f"{fill}{pad}{width}")

    number = isinstance(v, int | float) and not isinstance(v, bool)
    if verb in "vs":
        text = go_print(v) if verb == "v" or isinstance(v, str | list | tuple) else None
        if text is None:
            return f"%!s({_go_type(v)}={go_print(v)})"
        return padded(text[:int(prec)] if prec else text)
    if verb == "q" and isinstance(v, str):
        return padded(go_quote(v))
    if verb == "t" and isinstance(v, bool):
        return padded("true" if v else "false")
    if verb in "dxXobc" and isinstance(v, int) and not isinstance(v, bool):
        if verb == "c":
            return padded(chr(v))
        body = format(abs(v), {"d": "d", "x": "x", "X": "X", "o": "o", "b": "b"}[verb])
        sign = "-" if v < 0 else ("+" if "+" in flags else "")
        if "0" in flags and "-" not in flags and width:
            body = body.rjust(int(width) - len(sign), "0")
        return padded(sign + body)
    if verb in "xX" and isinstance(v, str):
        return padded(v.encode().hex() if verb == "x" else v.encode().hex().upper())
    if verb in "feEgG" and number:
        return padded(format(float(v), f"{'+' if '+' in flags else ''}.{prec or (6 if verb in 'feE' else '')}{verb}")
                      if prec or verb in "feE" else _go_float(float(v)))
    return f"%!{verb}({_go_type(v)}={go_print(v)})"


def _compare(name: str, a: Any, b: Any) -> int:
    if a is MISSING or b is MISSING:
        raise _CallError("invalid type for comparison")
    num = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        if not (isinstance(a, bool) and isinstance(b, bool)):
            raise _CallError("incompatible types for comparison")
        if name not in ("eq", "ne"):
            raise _CallError("invalid type for comparison")
    elif isinstance(a, num) and isinstance(b, num):
        pass
    elif type(a) is not type(b):
        if a is None or b is None:
            return 0 if a is b else 1
        raise _CallError("incompatible types for comparison")
    elif not isinstance(a, str | int | float) and name not in ("eq", "ne"):
        raise _CallError("invalid type for comparison")
    return 0 if a == b else (-1 if name not in ("eq", "ne") and a < b else 1)


def _eq(a: Any, *others: Any) -> bool:
    if not others:
        raise _CallError("missing argument for comparison")
    return any(_compare("eq", a, b) == 0 for b in others)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    # docker's (templates/templates.go)
    "json": go_json,
    "split": lambda s, sep: _string(s).split(_string(sep)) if sep != "" else list(_string(s)),
    "join": _join,
    "title": _title,
    "lower": lambda s: _string(s).lower(),
    "upper": lambda s: _string(s).upper(),
    "pad": _pad,
    "truncate": _truncate,
    # Go's own
    "and": lambda *v: v[-1],                # (short-circuited by _Run.call)
    "or": lambda *v: v[-1],
    "not": lambda v: not truth(v),
    "len": _len,
    "index": _index,
    "slice": _slice,
    "print": _sprint,
    "printf": _sprintf,
    "println": _sprintln,
    "eq": _eq,
    "ne": lambda a, b: _compare("ne", a, b) != 0,
    "lt": lambda a, b: _compare("lt", a, b) < 0,
    "le": lambda a, b: _compare("le", a, b) <= 0,
    "gt": lambda a, b: _compare("gt", a, b) > 0,
    "ge": lambda a, b: _compare("ge", a, b) >= 0,
}

# a table's header is the same template run over the column names: docker's HeaderFunctions
# leave them as they are where a function would change a value
HEADER_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": lambda v: v, "split": lambda v, _: v, "join": lambda v, _: v, "title": lambda v: v,
    "lower": lambda v: v, "upper": lambda v: v, "truncate": lambda v, _: v,
}


# -- docker's --format -----------------------------------------------------------------------------

def _prepared(fmt: str) -> tuple[bool, str]:
    """docker's Context.preFormat: whether it is a table, and the template: `json` is
    `{{json .}}`, `table` taken off, the spaces around trimmed, `\\t` and `\\n` written as
    two characters made a tab and a newline."""
    table = fmt.startswith("table")
    text = "{{json .}}" if fmt == "json" else fmt[len("table"):] if table else fmt
    return table, text.strip(" ").replace("\\t", "\t").replace("\\n", "\n")


def render_rows(fmt: str, rows: Iterable[Struct], header: Struct) -> str:
    """What docker prints of rows for `--format FMT` (not `table` alone: the command's own
    table): each row's line; with `table ...` a header first (the template run over `header`,
    the column names, with HEADER_FUNCTIONS) and the columns aligned as docker's tabwriter
    aligns them; `json` one JSON object a line. The template is run over the header first, so
    a field no row has is an error also when there are no rows, as `docker ps` checks it."""
    table, text = _prepared(fmt)
    template = parse(text)
    head = template.execute(header, funcs=HEADER_FUNCTIONS)
    body = "".join(template.execute(row) + "\n" for row in rows)
    if not table:
        return body
    return tabwriter(head + "\n" + body)


def render_documents(fmt: str, docs: Iterable[Any]) -> str:
    """What `docker inspect -f FMT` prints: `json` the documents as one compact JSON array,
    else the template's text of each document, a line each (no `\\t` made a tab: docker's
    inspect takes the template as written)."""
    docs = list(docs)
    if fmt == "json":
        return "[" + ",".join(go_json(d) for d in docs) + "]\n"
    template = parse(fmt)
    return "".join(template.execute(d) + "\n" for d in docs)


def document(doc: Any, kind: str = "document", *, maps: Iterable[str] = (), parent: str = "") -> Any:
    """A JSON document as the template sees it: its objects Structs (a key they have not is an
    unknown field: an error, as for `docker inspect`'s), except those under a key in `maps`
    (Labels, Networks...) or a `PARENT.KEY` there, which are maps (a key they have not:
    `<no value>`), whose values are documents again."""
    maps = frozenset(maps)
    return _document(doc, kind, maps, parent, as_map=False)


def _document(doc: Any, kind: str, maps: frozenset[str], parent: str, *, as_map: bool) -> Any:
    if isinstance(doc, dict):
        if as_map:
            return {k: _document(v, k, maps, kind, as_map=False) for k, v in doc.items()}
        fields = {k: _document(v, k, maps, kind, as_map=k in maps or f"{kind}.{k}" in maps) for k, v in doc.items()}
        return Struct(kind, fields)
    if isinstance(doc, list):
        return [_document(v, kind, maps, parent, as_map=False) for v in doc]
    return doc


# -- docker's tabwriter ----------------------------------------------------------------------------

def _width(text: str) -> int:
    """The columns a cell takes: East Asian wide and full-width characters two, as go-runewidth."""
    if text.isascii():
        return len(text)
    import unicodedata

    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def tabwriter(text: str, *, minwidth: int = 10, padding: int = 3) -> str:
    """Go's text/tabwriter as docker's tables use it (minwidth 10, padding 3, spaces): cells
    end at a tab; tab-ended cells of adjacent lines make a column, as wide as its widest cell
    and the padding (at least minwidth); a line's last cell is not in a column."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []

    def write(line0: int, line1: int, widths: list[int]) -> None:
        for i in range(line0, line1):
            cells = lines[i]
            parts = []
            for j, cell in enumerate(cells):
                parts.append(cell)
                if j < len(widths) and j < len(cells) - 1:
                    parts.append(" " * (widths[j] - _width(cell)))
            out.append("".join(parts))

    def fmt(line0: int, line1: int, widths: list[int]) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write(line0, this, widths)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, _width(lines[this][column]) + padding)
                this += 1
            fmt(line0, this, [*widths, width])
            line0 = this
        write(line0, line1, widths)

    fmt(0, len(lines), [])
    return "\n".join(out)
