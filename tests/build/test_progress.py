"""The builder's progress as dockerd's classic builder prints it (`docker build` with
DOCKER_BUILDKIT=0 and docker-py read it): each step ends with ` ---> <id>`, the 12 hex digits of
the id of the image the step left (a FROM: the image it starts from, none for scratch), a cached
step with ` ---> Using cache` before it; the last id is the built image's. A RUN names the
container that ran it (` ---> Running in ID`, `Removing intermediate container ID`), and so does
a metadata step (dockerd commits it through one); a base image's triggers print as steps."""

from __future__ import annotations

import difflib
import re
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.runtime.native.build import builder
from tests.build import test_corpus
from tests.build.conftest import Engine
from tests.build.test_corpus import docker_refs as docker_refs  # the fixture

pytestmark = [pytest.mark.root, pytest.mark.registry]

Ctx = Callable[..., Path]

_STEP = re.compile(r"Step (\d+)/(\d+) : (.*)")


def steps(lines: list[str]) -> list[tuple[str, list[str]]]:
    """(the step's instruction, the lines it printed) of each `Step N/M : ...` in `lines`."""
    out: list[tuple[str, list[str]]] = []
    for line in lines:
        m = _STEP.fullmatch(line)
        if m:
            out.append((m.group(3), []))
        elif line.startswith("Successfully built "):
            break
        elif out:
            out[-1][1].append(line)
    return out


def step_ids(lines: list[str]) -> list[str]:
    """The id each step ended with (its last line, ` ---> ID`)."""
    ids = []
    for text, printed in steps(lines):
        assert printed, text
        m = re.fullmatch(r" ---> ([0-9a-f]{12}|)", printed[-1])
        assert m, (text, printed)
        ids.append(m.group(1))
    return ids


def built_id(lines: list[str]) -> str:
    (line,) = [x for x in lines if x.startswith("Successfully built ")]
    return line.removeprefix("Successfully built ")


DOCKERFILE = """FROM {base} AS base
ENV A=1
RUN echo hi > /hi
COPY f /f
FROM base AS mid
LABEL x=y
WORKDIR /w
FROM scratch
COPY --from=mid /f /f
"""


def test_each_step_ends_with_the_id_of_the_image_it_left(engine: Engine, context_dir: Ctx,
                                                          busybox_image: str) -> None:
    engine.store.pull(busybox_image)
    text = DOCKERFILE.format(base=busybox_image)
    ctx = context_dir({"Dockerfile": text, "f": "x\n"})
    result = engine.build(ctx, tags=("localhost/progress:1",))
    full = list(engine.lines)
    ids = step_ids(full)
    assert len(ids) == 9
    assert ids[0] == engine.store.image_id(busybox_image)[7:19]     # FROM an image: that image's id
    assert ids[4] == ids[3]                                         # FROM a stage: the stage's image
    assert ids[7] == ""                                             # FROM scratch: none, as dockerd prints it
    assert ids[-1] == built_id(full) == result.image_id[7:19]      # the last one is the built image
    assert len(set(ids[1:4] + ids[5:7])) == 5                       # each step its own image

    # each id is the image a build that ends at that step makes (the same cache, so the same
    # image); one that ends at the FROM of an image makes that image, as dockerd's
    instructions = text.splitlines()
    for n, want in enumerate(ids, start=1):
        if instructions[n - 1] == "FROM scratch":
            continue
        (ctx / "Dockerfile").write_text("\n".join(instructions[:n]) + "\n")
        assert engine.build(ctx, tags=("localhost/part:1",)).image_id[7:19] == want, instructions[n - 1]
        if n == 1:
            assert engine.store.image_id("localhost/part:1") == engine.store.image_id(busybox_image)

    (ctx / "Dockerfile").write_text(text)
    again = engine.build(ctx, tags=("localhost/progress:1",))
    assert again.image_id == result.image_id
    assert step_ids(engine.lines) == ids
    for instruction, printed in steps(engine.lines):
        if instruction.startswith(("RUN", "COPY")):
            assert printed[-2] == " ---> Using cache", (instruction, printed)


def test_a_from_with_source_date_epoch_leaves_a_new_image(engine: Engine, context_dir: Ctx,
                                                           busybox_image: str) -> None:
    """SOURCE_DATE_EPOCH re-dates the base image: the FROM leaves that new image, which a build
    of the FROM alone makes (the base image itself without it)."""
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\n"})
    plain = engine.build(ctx)
    assert step_ids(engine.lines) == [plain.image_id[7:19]]
    assert plain.image_id == engine.store.image_id(busybox_image)
    dated = engine.build(ctx, build_args={"SOURCE_DATE_EPOCH": "0"})
    assert step_ids(engine.lines) == [dated.image_id[7:19]]
    assert dated.image_id != plain.image_id
    assert engine.config_of(dated.image_id)["created"] == "1970-01-01T00:00:00Z"


def test_a_run_names_the_container_that_ran_it(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    """The container's id is the one the step ran in: its host name (network none: the id's 12
    first hex digits, as dockerd's build containers have); it is removed, also when the step
    fails with force_rm (dockerd's --force-rm)."""
    engine.store.pull(busybox_image)
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nRUN hostname\nRUN hostname && exit 3\n"})
    with pytest.raises(builder.RunFailed):
        engine.build(ctx, force_rm=True)
    (_, first), (_, second), (_, failed) = steps(engine.lines)
    assert first == [f" ---> {engine.store.image_id(busybox_image)[7:19]}"]
    cid = re.fullmatch(r" ---> Running in ([0-9a-f]{12})", second[0])
    assert cid, second
    assert second[1:-1] == [cid.group(1), f"Removing intermediate container {cid.group(1)}"]
    assert re.fullmatch(r" ---> [0-9a-f]{12}", second[-1])
    other = re.fullmatch(r" ---> Running in ([0-9a-f]{12})", failed[0])
    assert other, failed
    assert other.group(1) != cid.group(1)
    assert failed[1:] == [other.group(1), f"Removing intermediate container {other.group(1)}"]
    assert engine.manager.records() == []

    (ctx / "Dockerfile").write_text(f"FROM {busybox_image}\nRUN hostname\n")
    engine.build(ctx)
    assert steps(engine.lines)[1][1][:1] == [" ---> Using cache"]      # nothing ran: no container
    assert not any("Running in" in line for line in engine.lines)


PARITY = """FROM {base}
RUN echo one > /one && echo printed
COPY f /f
RUN cat /f
"""


def _shape(lines: list[str]) -> list[str]:
    """`lines` with the ids that differ between two builds (new steps' images, containers) as ID."""
    out = []
    for line in lines:
        line = re.sub(r"^( ---> Running in | ---> |Removing intermediate container |Successfully built )[0-9a-f]{12}$",
                      r"\1ID", line)
        out.append(line)
    return out


@pytest.mark.docker
def test_the_progress_is_dockerds(engine: Engine, context_dir: Ctx, busybox_image: str,
                                  docker_refs: list[str]) -> None:
    """The same Dockerfile built by dockerd's classic builder (DOCKER_BUILDKIT=0) and by the
    native builder prints the same lines but for the ids of what each made (the FROM's, the
    same image in both, is the same), to the unused build-arg's warning and the tags."""
    test_corpus._docker_ready()
    docker_refs.append(busybox_image)
    test_corpus.docker("pull", "-q", busybox_image)
    engine.store.pull(busybox_image)
    ctx = context_dir({"Dockerfile": PARITY.format(base=busybox_image), "f": "from the context\n"})
    repo = f"localhost/progress{secrets.token_hex(3)}"
    tags = (f"{repo}:1", repo, f"docker.io/library/{repo[10:]}")  # dockerd prints them name:tag, as people read them
    docker_refs.extend(tags)
    for _ in ("built", "from the cache"):
        theirs = test_corpus.build(docker_refs, *(f"-t{x}" for x in tags), "--build-arg", "UNUSED=1", str(ctx))
        assert theirs.returncode == 0, theirs.stderr
        printed = theirs.stdout.splitlines()            # after "Sending build context to Docker daemon"
        want = printed[printed.index(f"Step 1/4 : FROM {busybox_image}"):]
        engine.build(ctx, tags=tags, build_args={"UNUSED": "1"})
        assert _shape(engine.lines) == _shape(want), "\n".join(difflib.unified_diff(
            _shape(want), _shape(engine.lines), "dockerd", "native", lineterm=""))
        assert engine.lines[1] == want[1]                   # the FROM's id


TRIGGERS = """FROM {base}
ONBUILD ENV T=1
ONBUILD RUN echo trig
ONBUILD COPY f /t
"""

# every metadata instruction (and WORKDIR: a new directory, then one there), after the triggers
EVERY_KIND = """FROM {parent}
ENV A=1
LABEL x=y
ARG B=2
EXPOSE 80
WORKDIR /w
WORKDIR /
USER root
VOLUME /v
STOPSIGNAL SIGTERM
SHELL ["/bin/sh", "-c"]
HEALTHCHECK CMD true
ONBUILD RUN echo later
MAINTAINER me
CMD ["sh"]
ENTRYPOINT ["/bin/sh", "-c"]
RUN echo ran
COPY f /f
ADD f /g
"""


@pytest.mark.docker
def test_each_kind_of_step_and_the_triggers_print_as_dockerds(engine: Engine, context_dir: Ctx, busybox_image: str,
                                                               docker_refs: list[str]) -> None:
    """dockerd's classic builder makes a container for every step but a COPY/ADD, a metadata
    step's too (created, never started): ` ---> Running in ID` and `Removing intermediate
    container ID` before the step's id, or ` ---> Using cache` when it has that step's image;
    a base image's ONBUILD triggers print `# Executing N build trigger(s)` and then each
    trigger's lines as a step's, with no id between them. The native builder prints the same
    lines, built and from the cache."""
    test_corpus._docker_ready()
    docker_refs.append(busybox_image)
    test_corpus.docker("pull", "-q", busybox_image)
    engine.store.pull(busybox_image)
    parent = f"localhost/triggers{secrets.token_hex(3)}:1"
    docker_refs.append(parent)
    pctx = context_dir({"Dockerfile": TRIGGERS.format(base=busybox_image)})
    assert test_corpus.build(docker_refs, "-t", parent, str(pctx)).returncode == 0
    engine.build(pctx, tags=(parent,))
    child = f"localhost/kinds{secrets.token_hex(3)}:1"
    docker_refs.append(child)
    ctx = context_dir({"Dockerfile": EVERY_KIND.format(parent=parent), "f": "from the context\n"})
    for when in ("built", "from the cache"):
        theirs = test_corpus.build(docker_refs, "-t", child, str(ctx))
        assert theirs.returncode == 0, theirs.stderr
        printed = theirs.stdout.splitlines()
        want = printed[printed.index(f"Step 1/19 : FROM {parent}"):]
        engine.build(ctx, tags=(child,))
        assert _shape(engine.lines) == _shape(want), "\n".join(difflib.unified_diff(
            _shape(want), _shape(engine.lines), "dockerd", "native", lineterm=""))
        assert want[1:3] == ["# Executing 3 build triggers", " ---> Using cache" if when != "built"
                             else want[2]]


def test_metadata_steps_print_their_container_or_the_cache(engine: Engine, context_dir: Ctx,
                                                           busybox_image: str) -> None:
    """Without dockerd at hand: a metadata step prints ` ---> Running in ID` and `Removing
    intermediate container ID` when made, ` ---> Using cache` when a build made it before (not
    with --no-cache), a trigger's lines as a step's (no `Running trigger`), one trigger in the
    singular; a FROM alone prints only its id."""
    engine.store.pull(busybox_image)
    pctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nONBUILD LABEL t=1\n"})
    engine.build(pctx, tags=("localhost/onelabel:1",))
    ctx = context_dir({"Dockerfile": "FROM localhost/onelabel:1\nENV A=1\nCOPY f /f\n", "f": "x"})
    made = [
        "Step 1/3 : FROM localhost/onelabel:1", "# Executing 1 build trigger",
        " ---> Running in ID", "Removing intermediate container ID", " ---> ID",
        "Step 2/3 : ENV A=1", " ---> Running in ID", "Removing intermediate container ID", " ---> ID",
        "Step 3/3 : COPY f /f", " ---> ID", "Successfully built ID",
    ]
    engine.build(ctx)
    assert _shape(engine.lines) == made
    engine.build(ctx)
    assert _shape(engine.lines) == [
        "Step 1/3 : FROM localhost/onelabel:1", "# Executing 1 build trigger", " ---> Using cache", " ---> ID",
        "Step 2/3 : ENV A=1", " ---> Using cache", " ---> ID",
        "Step 3/3 : COPY f /f", " ---> Using cache", " ---> ID", "Successfully built ID",
    ]
    engine.build(ctx, no_cache=True)
    assert _shape(engine.lines) == made


def test_a_kept_metadata_step_container_needs_no_shell(engine: Engine, context_dir: Ctx) -> None:
    """rm=false keeps a metadata step's container, created and never started as dockerd's: FROM
    scratch, without a shell to run its `#(nop)` command, it is made all the same."""
    ctx = context_dir({"Dockerfile": "FROM scratch\nENV A=1\n"})
    engine.build(ctx, rm=False, force_rm=False)
    (cid,) = [line.removeprefix(" ---> Running in ") for line in engine.lines if "Running in" in line]
    (rec,) = engine.manager.records()
    assert (rec.id[:12], rec.status, rec.config.args) == (cid, "created", ("/bin/sh", "-c", "#(nop) ", "ENV A=1"))
    assert "reconciler.build" not in rec.config.labels
