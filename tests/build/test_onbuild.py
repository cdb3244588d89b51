"""ONBUILD (#20 item 4): stored in the image config as written; a build FROM that image runs
the triggers right after its FROM, with its own context, and its image does not inherit them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.runtime.native.build import builder, dockerfile
from tests.build.conftest import Engine

pytestmark = [pytest.mark.root, pytest.mark.registry]

Ctx = Callable[..., Path]

# also built by dockerd in tests/build/test_docker_peer.py (which has no heredocs)
PARENT = """FROM {base}
ONBUILD   COPY --chown=1:2  . /app/
ONBUILD ENV FROM_TRIGGER=yes \\
    SECOND=2
onbuild run echo "$FROM_TRIGGER" > /trig
"""
PARENT_TRIGGERS = ["COPY --chown=1:2  . /app/", "ENV FROM_TRIGGER=yes     SECOND=2",
                   'run echo "$FROM_TRIGGER" > /trig']
CHILD = "FROM {parent}\nRUN ls /app > /listing\n"
CHILD_CMD = "cat /listing /trig; stat -c '%n %u:%g' /app/file"


def test_triggers_run_in_the_child_build_only(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    heredoc = "ONBUILD RUN <<EOF\necho heredoc >> /trig\nEOF\n"
    parent = context_dir({"Dockerfile": PARENT.format(base=busybox_image) + heredoc, "parent-file": "p"})
    engine.build(parent, tags=("localhost/parent:1",))
    cfg = engine.config_of("localhost/parent:1")
    assert cfg["config"]["OnBuild"] == [*PARENT_TRIGGERS, "RUN <<EOF\necho heredoc >> /trig\nEOF"]
    assert len(cfg["rootfs"]["diff_ids"]) == 1          # nothing ran in the parent's build

    child = context_dir({"Dockerfile": CHILD.format(parent="localhost/parent:1"), "file": "c"})
    engine.build(child, tags=("localhost/child:1",))
    assert engine.lines[:2] == ["Step 1/2 : FROM localhost/parent:1", "# Executing 4 build triggers"]
    assert not any("Running trigger" in line for line in engine.lines)     # dockerd prints no such line
    code, out = engine.run("localhost/child:1", "sh", "-c", CHILD_CMD)
    assert code == 0, out
    assert out.splitlines() == ["Dockerfile", "file", "yes", "heredoc", "/app/file 1:2"]   # the child's context
    c = engine.config_of("localhost/child:1")["config"]
    assert "OnBuild" not in c
    assert {"FROM_TRIGGER=yes", "SECOND=2"} <= set(c["Env"])
    assert engine.build(child).cached == 4              # the triggers' layers are cached like any step

    grandchild = context_dir({"Dockerfile": "FROM localhost/child:1\nRUN test ! -e /grand\n"})
    engine.build(grandchild)
    assert not any("build trigger" in line for line in engine.lines)


def test_triggers_of_a_stage_run_in_stages_built_from_it(engine: Engine, context_dir: Ctx,
                                                          busybox_image: str) -> None:
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image} AS base\nONBUILD RUN echo from-base > /x\n"
                                     "FROM base\nCMD [\"cat\", \"/x\"]\n"})
    engine.build(ctx, tags=("localhost/onbuild-stage:1",))
    assert engine.run("localhost/onbuild-stage:1") == (0, "from-base")


def test_a_trigger_arg_consumes_its_build_arg(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    """`ONBUILD ARG OA=dflt` takes `--build-arg OA=cli` in the child's build: dockerd warns only of
    the args nothing declared, as a Go list (`[U2 UNUSED]`); the trigger's ARG was reported."""
    parent = context_dir({"Dockerfile": f"FROM {busybox_image}\nONBUILD ARG OA=dflt\n"
                                        "ONBUILD RUN echo \"trig $OA\" > /trig\n"})
    engine.build(parent, tags=("localhost/onbuild-arg:1",))
    child = context_dir({"Dockerfile": "FROM localhost/onbuild-arg:1\n"})
    engine.build(child, tags=("localhost/onbuild-arg:2",), build_args={"OA": "cli", "UNUSED": "1", "U2": "2"})
    assert engine.run("localhost/onbuild-arg:2", "cat", "/trig") == (0, "trig cli")
    assert [x for x in engine.lines if "not consumed" in x] == [
        "[Warning] One or more build-args [U2 UNUSED] were not consumed"]


@pytest.mark.parametrize(("line", "message"), [
    ("ONBUILD ONBUILD RUN true", "line 2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("ONBUILD FROM scratch", "line 2: FROM isn't allowed as an ONBUILD trigger"),
    ("ONBUILD maintainer me", "line 2: MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("ONBUILD FROBNICATE", "line 2: unknown instruction: FROBNICATE"),
    ("ONBUILD", "line 2: ONBUILD requires at least one argument"),
])
def test_bad_triggers_are_refused(engine: Engine, context_dir: Ctx, busybox_image: str, line: str,
                                  message: str) -> None:
    with pytest.raises(dockerfile.DockerfileError, match=message):
        engine.build(context_dir({"Dockerfile": f"FROM {busybox_image}\n{line}\n"}))


def test_a_failing_trigger_names_itself(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    parent = context_dir({"Dockerfile": f"FROM {busybox_image}\nONBUILD COPY missing /x\n"})
    engine.build(parent, tags=("localhost/parent:2",))
    child = context_dir({"Dockerfile": "# a child\nFROM localhost/parent:2\n"})
    with pytest.raises(builder.BuildError, match=r"COPY missing /x \(Dockerfile line 2\): missing: not found"):
        engine.build(child)


def test_commit_change_takes_onbuild() -> None:
    """`docker commit --change 'ONBUILD ...'` is allowed, and so is `reconcile commit -c`."""
    cfg = builder.apply_changes({"config": {"OnBuild": ["RUN a"]}}, ["ONBUILD RUN echo x", "onbuild COPY . /app"])
    assert cfg["config"]["OnBuild"] == ["RUN a", "RUN echo x", "COPY . /app"]
