"""The Dockerfile parser and substitution (BuildKit's rules), and .dockerignore matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.runtime.native.build import context, dockerfile


def test_continuations_comments_and_forms() -> None:
    df = dockerfile.parse(
        "# syntax=docker/dockerfile:1\n"
        "FROM busybox AS base\n"
        "\n"
        "RUN echo a \\\n"
        "# a comment inside the continuation\n"
        "\n"
        "    && echo b\n"
        "CMD [\"echo\", \"x y\"]\n"
        "cmd echo shell form\n"
        "COPY --from=base --chown=1:2 /a /b\n"
        "ENTRYPOINT [not json\n"
    )
    cmds = [(i.cmd, i.line) for i in df.instructions]
    assert cmds == [("FROM", 2), ("RUN", 4), ("CMD", 8), ("CMD", 9), ("COPY", 10), ("ENTRYPOINT", 11)]
    run = df.instructions[1]
    assert run.args == "echo a     && echo b"
    assert df.instructions[2].json_args == ("echo", "x y")
    assert df.instructions[3].json_args is None
    assert df.instructions[3].args == "echo shell form"
    assert df.instructions[4].flags == {"from": "base", "chown": "1:2"}
    assert df.instructions[4].args == "/a /b"
    assert df.instructions[5].json_args is None       # not JSON: the shell form


def test_repeatable_flags() -> None:
    (ins,) = dockerfile.parse("COPY --exclude=*.md --chmod=644 --exclude=tmp/ --link . /x/\n").instructions
    assert ins.repeated == {"exclude": ("*.md", "tmp/")}
    assert ins.flags == {"exclude": "tmp/", "chmod": "644", "link": "true"}
    with pytest.raises(dockerfile.DockerfileError, match="flag --chmod given twice"):
        dockerfile.parse("COPY --chmod=644 --chmod=600 a /b\n")


def test_escape_directive() -> None:
    df = dockerfile.parse("# escape=`\nFROM x\nRUN echo a `\n  b\nRUN echo c\\\n")
    assert df.escape == "`"
    assert [i.args for i in df.instructions] == ["x", "echo a   b", "echo c\\"]
    # a directive after a comment is just a comment
    df = dockerfile.parse("# hello\n# escape=`\nFROM x\nRUN a \\\n b\n")
    assert df.escape == "\\"
    assert df.instructions[1].args == "a  b"


def test_a_byte_order_mark_at_the_start_is_dropped() -> None:
    """An editor's UTF-8 BOM before the first line: BuildKit drops it (a directive stays one);
    anywhere else it is text."""
    df = dockerfile.parse("\ufeff# escape=`\nARG A=1\nFROM x\n")
    assert df.escape == "`"
    assert [(i.cmd, i.args) for i in df.instructions] == [("ARG", "A=1"), ("FROM", "x")]
    assert dockerfile.parse("\ufeffFROM x\n").instructions[0].cmd == "FROM"
    assert dockerfile.parse("FROM x\nLABEL a=\ufeffb\n").instructions[1].args == "a=\ufeffb"


def test_directive_twice_is_an_error() -> None:
    with pytest.raises(dockerfile.DockerfileError, match="line 2"):
        dockerfile.parse("# escape=`\n# escape=\\\nFROM x\n")


def test_heredocs() -> None:
    df = dockerfile.parse(
        "FROM x\n"
        "RUN <<EOF\n"
        "echo $A\n"
        "\n"
        "EOF\n"
        "RUN cat <<-'A' 3<<B > f && echo \"<<no\" '<<no' \\\n"
        "    done\n"
        "\t\tone\n"
        "\tA\n"
        "two\n"
        "B\n"
        "COPY --chmod=644 <<a.txt <<\"b.txt\" /d/\n"
        "a $A\n"
        "a.txt\n"
        "b\n"
        "b.txt\n"
        "ONBUILD RUN <<X\n"
        "x\n"
        "X\n"
        "CMD <<NOT\n"
        "RUN [\"<<NOT\"]\n"
    )
    got = [(i.cmd, i.line, i.args, [(d.name, d.content, d.expand, d.chomp) for d in i.heredocs])
           for i in df.instructions]
    assert got == [
        ("FROM", 1, "x", []),
        ("RUN", 2, "<<EOF", [("EOF", "echo $A\n\n", True, False)]),
        ("RUN", 6, "cat <<-'A' 3<<B > f && echo \"<<no\" '<<no'     done",
         [("A", "\t\tone\n", False, True), ("B", "two\n", True, False)]),
        ("COPY", 12, "<<a.txt <<\"b.txt\" /d/", [("a.txt", "a $A\n", True, False), ("b.txt", "b\n", False, False)]),
        ("ONBUILD", 17, "RUN <<X", [("X", "x\n", True, False)]),
        ("CMD", 20, "<<NOT", []),                  # only RUN, COPY and ADD (and ONBUILD of them) take heredocs
        ("RUN", 21, '["<<NOT"]', []),              # and only in the shell form
    ]
    assert df.instructions[2].heredocs[0].text == "one\n"      # <<- strips the leading tabs
    with pytest.raises(dockerfile.DockerfileError, match="line 2: unterminated heredoc <<EOF"):
        dockerfile.parse("FROM x\nRUN <<EOF\necho\n EOF\n")


def test_heredoc_bodies_copy_expands() -> None:
    assert dockerfile.expand_text('a=$A "$A" \'$A\' \\$A ${B:-b} $', {"A": "1"}) == "a=1 \"1\" '1' $A b $"


@pytest.mark.parametrize(("word", "expected"), [
    ("$A", "a"), ("${A}", "a"), ("x${A}y", "xay"), ("$UNSET", ""),
    ("${UNSET:-dflt}", "dflt"), ("${EMPTY:-dflt}", "dflt"), ("${EMPTY-dflt}", ""), ("${UNSET-dflt}", "dflt"),
    ("${A:+alt}", "alt"), ("${UNSET:+alt}", ""), ("${EMPTY+alt}", "alt"), ("${UNSET:-${A}}", "a"),
    ("'$A'", "$A"), ('"$A b"', "a b"), ("\\$A", "$A"), ("a\\ b", "a b"), ("$", "$"), ("$1x", "$1x"),
])
def test_substitution(word: str, expected: str) -> None:
    assert dockerfile.substitute(word, {"A": "a", "EMPTY": ""}) == expected


def test_split_words_keeps_quoted_blanks() -> None:
    assert dockerfile.split_words('A="x y" B=$A C=\'$A\'', {"A": "1"}) == ["A=x y", "B=1", "C=$A"]
    with pytest.raises(dockerfile.DockerfileError, match="unterminated"):
        dockerfile.split_words('A="x', {})
    with pytest.raises(dockerfile.DockerfileError, match="bad substitution"):
        dockerfile.substitute("${A", {})


@pytest.mark.parametrize(("patterns", "path", "excluded"), [
    (["*.log"], "x.log", True), (["*.log"], "sub/x.log", False), (["**/*.log"], "sub/x.log", True),
    (["secret"], "secret/key", True), (["sub/*/tmp"], "sub/a/tmp/f", True), (["*.log", "!keep.log"], "keep.log", False),
    (["!keep.log", "*.log"], "keep.log", True), (["/abs"], "abs", True), (["a?c"], "abc", True),
    (["[a-c]x"], "bx", True), (["# comment"], "# comment", False), (["./x"], "x", True),
])
def test_dockerignore_rules(patterns: list[str], path: str, excluded: bool) -> None:
    assert context.IgnoreRules(patterns).excluded(path) is excluded


def test_context_walk_keeps_reincluded_files_under_excluded_dirs(tmp_path: Path) -> None:
    for rel in ("docs/a.md", "docs/keep/b.md", "src/x.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    (tmp_path / ".dockerignore").write_text("docs\n!docs/keep\n")
    with context.BuildContext(str(tmp_path)) as ctx:
        (src,) = ctx.resolve(".")
        got = [rel for rel, _ in ctx.walk(src)]
    assert got == ["", ".dockerignore", "docs", "docs/keep", "docs/keep/b.md", "src", "src/x.py"]


def test_globs_resolve_inside_the_context(tmp_path: Path) -> None:
    for rel in ("a.txt", "b.txt", "c.md", "d/e.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    with context.BuildContext(str(tmp_path)) as ctx:
        assert [s.rel for s in ctx.resolve("*.txt")] == ["a.txt", "b.txt"]
        assert [s.rel for s in ctx.resolve("*/*.txt")] == ["d/e.txt"]
        assert ctx.resolve("*.nope") == []         # BuildKit's AllowEmptyWildcard
        with pytest.raises(context.ContextError, match="nodir: not found"):
            ctx.resolve("nodir/*.txt")                # the directory a glob starts from must be there
        with pytest.raises(context.ContextError, match="not found"):
            ctx.resolve("missing")
        assert [s.rel for s in ctx.resolve("../../a.txt")] == ["a.txt"]   # clamped, as Docker does


@pytest.mark.parametrize(("spec", "mode", "is_dir", "expected"), [
    # BuildKit applies --chmod with BSD setmode (tonistiigi/dchapes-mode): `t` belongs to u/g/a,
    # not to o (GNU chmod: the other way round)
    ("u+t", 0o644, False, 0o1644), ("o+t", 0o644, False, 0o644), ("o=", 0o1644, False, 0o1640),
    ("=", 0o6755, False, 0o0), ("a=rX", 0o700, True, 0o555), ("a=rX", 0o600, False, 0o444),
    ("g=u,o=g", 0o750, False, 0o777), ("u-x,+X", 0o744, False, 0o755),
])
def test_symbolic_chmod_is_buildkits(spec: str, mode: int, is_dir: bool, expected: int) -> None:
    assert context.Chmod.parse(spec).apply(mode, is_dir=is_dir) == expected

