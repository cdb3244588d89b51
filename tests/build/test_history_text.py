"""A built image's history as dockerd's classic builder writes it (`docker history
--no-trunc`): each step's `created_by` text (history.py), a COPY/ADD's sources by dockerd's
hashes (context.classic_source_hash), checked side by side with dockerd on the same context."""

from __future__ import annotations

import difflib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.runtime.native.build import history
from tests.build import test_corpus
from tests.build.conftest import Engine
from tests.build.test_cli import cli
from tests.build.test_corpus import docker_refs as docker_refs  # the fixture

pytestmark = [pytest.mark.root, pytest.mark.registry]

Ctx = Callable[..., Path]

# every kind of step, and the forms whose text differs: a RUN with build args (one shadowed by
# an ENV, one declared without a value), exec-form RUN, a SHELL that later steps use, ENV and
# LABEL quoted and expanded, COPY of a file, a directory (with a symlink, a setuid file and a
# second name of a file inside), several sources, --chown, --from a stage and an image path through a symlink, ADD
# of a directory, WORKDIR relative and to a path already there, HEALTHCHECK's Go struct
FILES = {"f": "hello\n", "d/a": "a\n", "d/sub/c": "c\n"}
DOCKERFILE = """FROM {base} AS first
ARG X
RUN echo stage1 > /s1
FROM {base}
ARG B=2
ARG C
ARG E=
ENV B=3
LABEL "x"="a b" y=$B
ENV D="p q" E2=r\\ s
MAINTAINER me
RUN echo $B $C
RUN ["sh", "-c", "echo json"]
COPY f /f
COPY d /d
COPY f d/a d/hard /multi/
COPY --chown=1:1 f /h
COPY --from=first /s1 /s1
COPY --from=first /etc/passwd /bin/sh /etc/
SHELL ["/bin/sh", "-xc"]
RUN echo shell
ENV AFTER=shell
WORKDIR w
COPY f .
WORKDIR /
ADD d/ /dir/
EXPOSE ${{B}}0 22/udp
USER root
VOLUME /v /v2
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=90s --retries=3 CMD ["true"]
HEALTHCHECK NONE
ONBUILD RUN echo later
CMD echo "hi there"
ENTRYPOINT ["/bin/sh", "-c"]
"""


def _history_of(engine: Engine, ref: str) -> list[str]:
    res = cli(engine, "image", "history", "--no-trunc", "--format", "{{.CreatedBy}}", ref)
    assert res.returncode == 0, res.stderr
    return res.stdout.splitlines()


@pytest.mark.docker
def test_the_history_is_dockerds(engine: Engine, context_dir: Ctx, busybox_image: str,
                                 docker_refs: list[str]) -> None:
    """The same Dockerfile and context built by dockerd's classic builder and by the native
    builder: `history --no-trunc`'s CREATED BY column is the same, line for line (COPY and
    ADD's hashes too), built and from the cache."""
    test_corpus._docker_ready()
    docker_refs.append(busybox_image)
    test_corpus.docker("pull", "-q", busybox_image)
    engine.store.pull(busybox_image)
    ctx = context_dir({"Dockerfile": DOCKERFILE.format(base=busybox_image), **FILES})
    os.symlink("a", ctx / "d" / "l")
    os.link(ctx / "f", ctx / "d" / "hard")             # the CLI's tar: a link to f, its first name
    os.chmod(ctx / "d" / "a", 0o4755)
    tag = f"localhost/history{secrets.token_hex(3)}:1"
    docker_refs.append(tag)
    theirs = test_corpus.build(docker_refs, "-t", tag, "--build-arg", "C=9", str(ctx))
    assert theirs.returncode == 0, theirs.stderr
    want = test_corpus.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", tag).stdout.splitlines()
    first = engine.build(ctx, tags=(tag,), build_args={"C": "9"})
    assert _history_of(engine, tag) == want, "\n".join(difflib.unified_diff(
        want, _history_of(engine, tag), "dockerd", "native", lineterm=""))
    again = engine.build(ctx, tags=(tag,), build_args={"C": "9"})
    assert again.image_id == first.image_id
    assert again.cached == 13               # the steps that made a layer: 4 RUN, 7 COPY, ADD, WORKDIR w
    assert _history_of(engine, tag) == want


def test_a_cached_copy_reads_no_file_for_its_history(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    """A COPY's sources are named once, when the step is made (the name is kept with its cache
    row): a rebuild from the cache names them the same without reading them; another build of
    the same step elsewhere in the tree names them as dockerd would."""
    engine.store.pull(busybox_image)
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nCOPY f /f\n", "f": "hello\n"})
    made = engine.build(ctx, tags=("localhost/named:1",))
    text = engine.config_of("localhost/named:1")["history"][-1]["created_by"]
    # the docker CLI's tar header of f (0644, owners 0:0, no names): dockerd's tarsum of it
    assert text == ("/bin/sh -c #(nop) COPY file:7d70391f0d5adb51fc26141f58002b62862a2d7bfeec1389438ea684d00e6046"
                    " in /f ")
    again = engine.build(ctx, tags=("localhost/named:1",))
    assert (again.image_id, again.cached) == (made.image_id, 1)
    # the name comes from the step's row, not from the files: one changed there is the one used
    with engine.store.db.tx() as c:
        assert c.execute("UPDATE build_sources SET text = 'file:kept'").rowcount == 1
    engine.build(ctx, tags=("localhost/named:1",))
    assert engine.config_of("localhost/named:1")["history"][-1]["created_by"] == "/bin/sh -c #(nop) COPY file:kept in /f "


def test_go_formats() -> None:
    """Go's %q and Duration.String(), as dockerd's texts hold them."""
    assert history.go_strings(["/bin/sh", "-c", 'echo "hi"\t\x01é']) == '["/bin/sh" "-c" "echo \\"hi\\"\\t\\x01é"]'
    assert history.healthcheck({"Test": ["NONE"]}) == """HEALTHCHECK &{["NONE"] "0s" "0s" "0s" '\\x00'}"""
    assert history.healthcheck({"Test": ["CMD", "true"], "Interval": 90 * 10**9, "Timeout": 1_500_000_000,
                                "StartPeriod": 3600 * 10**9, "Retries": 65}) == \
        """HEALTHCHECK &{["CMD" "true"] "1m30s" "1.5s" "1h0m0s" 'A'}"""
    assert history.run(["/bin/sh", "-c", "echo"], {"B": "2", "A": "1"}) == "|2 A=1 B=2 /bin/sh -c echo"


def test_a_kept_step_container_has_dockerds_command(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    """rm=false keeps each metadata step's container (WORKDIR's too, one that made a
    directory) with the Cmd dockerd commits the step through: its history text's words."""
    engine.store.pull(busybox_image)
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nENV A=1\nWORKDIR /made\nCMD echo hi\n"})
    engine.build(ctx, rm=False)
    args = sorted(r.config.args for r in engine.manager.records())
    assert args == sorted([("/bin/sh", "-c", "#(nop) ", "ENV A=1"), ("/bin/sh", "-c", "#(nop) WORKDIR /made"),
                           ("/bin/sh", "-c", "#(nop) ", 'CMD ["/bin/sh" "-c" "echo hi"]')]), args
