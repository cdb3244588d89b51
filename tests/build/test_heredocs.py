"""Heredocs in RUN and COPY (#20 item 2), built on the native engine: BuildKit's rules for
which body runs how, `<<-` tab stripping, quoted words switching off expansion, several
heredocs on one line, and a heredoc as the content of a file COPY makes."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.runtime.native.build import builder, dockerfile
from tests.build.conftest import Engine

pytestmark = [pytest.mark.root, pytest.mark.registry]

Ctx = Callable[..., Path]

RUN_HEREDOCS = """FROM {base}
ARG WHO=arg
ENV GREETING=hello
RUN <<EOF
echo "$GREETING $WHO" > /plain
id -u >> /plain
EOF
RUN cat <<-A > /two && cat <<"B" >> /two && cat <<C >> /two
	tabbed $GREETING
	A
literal $GREETING
B
third $WHO
C
SHELL ["/bin/false"]
RUN <<EOF
#!/bin/sh -e
echo "$0 $GREETING" > /script
EOF
CMD ["cat", "/plain", "/two", "/script"]
"""


def test_run_heredocs(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({"Dockerfile": RUN_HEREDOCS.format(base=busybox_image)})
    first = engine.build(ctx, tags=("localhost/heredoc:1",), build_args={"WHO": "builder"})
    code, out = engine.run("localhost/heredoc:1")
    assert code == 0, out
    assert out.splitlines() == [
        "hello builder", "0",                                   # the body ran with the SHELL
        "tabbed hello", "literal $GREETING", "third builder",   # <<- strips tabs, <<"B" is literal
        "/dev/pipes/EOF hello",                                 # #!: run as a script, not with SHELL
    ]
    # the script's mount is not content of the layer
    rec = engine.store.layer_records(engine.store.get("localhost/heredoc:1").id)[-1]
    with engine.store.content.open(rec.digest) as f, tarfile.open(fileobj=io.BytesIO(gzip.decompress(f.read()))) as t:
        assert t.getnames() == ["script"]
    again = engine.build(ctx, build_args={"WHO": "builder"})
    assert (again.cached, again.image_id) == (3, first.image_id)
    (ctx / "Dockerfile").write_text(RUN_HEREDOCS.format(base=busybox_image).replace("literal", "changed"))
    assert engine.build(ctx, build_args={"WHO": "builder"}).cached == 1      # a body is part of its step's key


COPY_HEREDOCS = """FROM {base}
ARG NAME=value
COPY <<EOF /etc/app.conf
name=$NAME "quoted" \\$escaped
EOF
COPY <<'EOF' /literal.txt
name=$NAME
EOF
COPY --chmod=755 <<run.sh <<-notes.txt f /many/
#!/bin/sh
echo "$NAME"
run.sh
	tabbed
	notes.txt
CMD ["sh", "-c", "cat /etc/app.conf /literal.txt /many/notes.txt; /many/run.sh; \\
stat -c '%n %a %u:%g' /etc/app.conf /many/run.sh /many/notes.txt /many/f"]
"""


def test_copy_heredocs_are_files(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({"Dockerfile": COPY_HEREDOCS.format(base=busybox_image), "f": "f\n"})
    engine.build(ctx, tags=("localhost/heredoc:2",))
    code, out = engine.run("localhost/heredoc:2")
    assert code == 0, out
    assert out.splitlines() == [
        'name=value "quoted" $escaped',           # expanded, escapes applied, quotes kept
        "name=$NAME",                             # a quoted word: as written
        "tabbed",
        "value",                                  # the script was expanded when copied
        "/etc/app.conf 644 0:0", "/many/run.sh 755 0:0", "/many/notes.txt 755 0:0", "/many/f 755 0:0",
    ]


@pytest.mark.parametrize(("body", "message"), [
    ("COPY <<EOF\nx\nEOF\n", "COPY requires at least two arguments"),
    ("COPY a <<EOF\nx\nEOF\n", "cannot take a heredoc as its destination"),
    ("COPY <<EOF a /x\nx\nEOF\n", "when copying several sources, the destination '/x' must be a directory"),
    ("RUN <<EOF\necho never ends\n", "line 2: unterminated heredoc <<EOF"),
])
def test_heredoc_errors(engine: Engine, context_dir: Ctx, busybox_image: str, body: str, message: str) -> None:
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\n{body}", "a": "a"})
    with pytest.raises((builder.BuildError, dockerfile.DockerfileError), match=message):
        engine.build(ctx)
