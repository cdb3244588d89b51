"""The client–server split for `build` (#21): while an agent holds a state root, `reconcile build`
sends its options to the agent's warm builder (`POST /v1/build`) and loads no engine code; what it
prints, the image it makes, its tags, its refusals and its exit codes are the same as when the CLI
builds itself (no agent, or one that no longer answers)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.api import thin
from tests.agent.conftest import AgentProc
from tests.agent.test_thin_cli import REPO, engine_modules, modules_of, reconcile

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]

DOCKERFILE = """FROM {image}
ARG WHO=world
RUN echo "hello $WHO" > /greeting
COPY app/ /app/
CMD ["cat", "/greeting"]
"""


def context(tmp: Path, image: str) -> Path:
    ctx = tmp / "ctx"
    (ctx / "app").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE.format(image=image))
    (ctx / "app" / "main.sh").write_text("#!/bin/sh\necho app\n")
    (ctx / "Failing").write_text(f"FROM {image}\nRUN echo boom; exit 3\n")
    (ctx / "Broken").write_text(f"FROM {image}\nNOSUCH thing\n")
    return ctx


def outputs(a: AgentProc, ctx: Path) -> list[tuple[int, str, str]]:
    """Exit code, stdout and stderr of an unchanged rebuild in its forms, and of builds the
    engine refuses or that fail (a RUN's exit code, an unknown instruction, a bad tag, no context);
    the id of the container a RUN ran in (each run its own) as CONTAINER."""
    tag = ("-t", "localhost/app:1", "-t", "localhost/app:latest")
    commands = [("build", *tag, str(ctx)),
                ("build", "-q", *tag, str(ctx)),
                ("build", "--build-arg", "WHO=you", "--build-arg", "UNUSED=1", *tag, str(ctx)),
                ("build", "-f", str(ctx / "Failing"), str(ctx)),
                ("build", "-f", str(ctx / "Broken"), str(ctx)),
                ("build", "-t", "BAD::", str(ctx)),
                ("build", str(ctx / "nope")),
                ("build", "-f", str(ctx / "nope"), str(ctx)),
                ("build", "--force-rm", "-f", str(ctx / "Failing"), str(ctx))]
    done = [reconcile(a, *argv) for argv in commands]
    ran = re.compile(r"(?m)^( ---> Running in |Removing intermediate container )[0-9a-f]{12}$")
    return [(p.returncode, ran.sub(r"\1CONTAINER", p.stdout), p.stderr) for p in done]


def image_of(a: AgentProc, ref: str) -> tuple[str, list[str]]:
    """The id and tags of the stored image `ref` names."""
    proc = reconcile(a, "image", "inspect", ref)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)[0]
    return doc["Id"], sorted(doc["RepoTags"])


def test_build_goes_through_the_agent_and_prints_what_it_prints_without_one(
        tmp_path: Path, native_agent: AgentProc, busybox_image: str) -> None:
    a = native_agent
    a.start()
    ctx = context(tmp_path, busybox_image)
    first = reconcile(a, "build", "-t", "localhost/app:1", "-t", "localhost/app:latest", str(ctx), importtime=True)
    assert first.returncode == 0, first.stderr[-3000:]
    assert engine_modules(modules_of(first)) == []              # the agent built it: no engine code here
    assert "argparse" not in modules_of(first)                 # its everyday form: the CLI's fast path
    assert "Successfully tagged localhost/app:latest\n" in first.stdout
    assert "Using cache" not in first.stdout
    built = image_of(a, "localhost/app:1")
    assert built[1] == ["localhost/app:1", "localhost/app:latest"]
    assert reconcile(a, "build", "--build-arg", "WHO=you", str(ctx)).returncode == 0   # cached for both rounds

    served = outputs(a, ctx)
    tagged = image_of(a, "localhost/app:1")                     # the --build-arg WHO=you build's
    assert served[0][0] == 0
    assert served[0][1].count(" ---> Using cache\n") == 4      # ARG, RUN, COPY, CMD: from the agent's cache (the classic builder's lines)
    assert f"Successfully built {built[0][7:19]}\n" in served[0][1]
    assert served[1] == (0, built[0] + "\n", "")
    assert "[Warning] One or more build-args [UNUSED] were not consumed\n" in served[2][1]
    assert served[3][0] == 1
    assert "boom" in served[3][2]
    assert served[4][0] != 0
    assert "NOSUCH" in served[4][2]
    assert served[5][0] == 2
    assert served[5][2].startswith("error: invalid image reference 'BAD::'")
    assert served[6] == (1, "", f"error: build context '{ctx / 'nope'}' is not a directory\n")
    assert served[7][0] == 1
    assert f"cannot read the Dockerfile {ctx / 'nope'}" in served[7][2]
    # a failed RUN's container is kept (docker build's --rm), removed with --force-rm, which the
    # agent is sent
    assert "Removing intermediate container CONTAINER" not in served[3][1]
    assert served[8][0] == 1
    assert served[8][1].endswith("Removing intermediate container CONTAINER\n"), served[8][1]

    # a changed context file is built again (its COPY and what follows), by the agent
    (ctx / "app" / "main.sh").write_text("#!/bin/sh\necho changed\n")
    changed = reconcile(a, "build", "-t", "localhost/app:1", "-t", "localhost/app:latest", str(ctx), importtime=True)
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert engine_modules(modules_of(changed)) == []
    assert re.search(r"Step 4/5 : COPY app/ /app/\n ---> [0-9a-f]{12}\n", changed.stdout), changed.stdout
    rebuilt = image_of(a, "localhost/app:1")
    assert rebuilt[0] != built[0]
    (ctx / "app" / "main.sh").write_text("#!/bin/sh\necho app\n")

    a.kill9()                                                   # its agent.json stays, nobody answers
    assert (a.root / "agent.json").exists()
    here = reconcile(a, "build", "-q", "-t", "localhost/app:1", str(ctx), importtime=True)
    assert "reconciler.runtime.native.build.builder" in modules_of(here)     # the CLI built it itself
    assert outputs(a, ctx) == served
    assert image_of(a, "localhost/app:1") == tagged


def test_the_agent_refuses_build_options_it_cannot_take(native_agent: AgentProc) -> None:
    a = native_agent
    a.start()
    for options, message in (({"context": "relative/ctx"}, "the build context must be an absolute path"),
                             ({"context": "/x", "secrets": {"id": "c2VjcmV0"}}, "build options not understood: secrets"),
                             ({"context": "/x", "tags": "a:1"}, "build options not understood: tags")):
        status, doc = thin.request(str(a.socket), "POST", "/v1/build", {"options": options})
        assert (status, doc["error"]) == (400, message)


def test_two_builds_through_the_agent_at_once_each_make_their_own_image(
        tmp_path: Path, native_agent: AgentProc, busybox_image: str) -> None:
    """The agent's builder serves two clients at the same time: each build finishes, and each
    tag names the image of its own build arguments (no step of one is taken for the other's)."""
    a = native_agent
    a.start()
    ctx = context(tmp_path, busybox_image)
    env = {**os.environ, "RECONCILER_ROOT": str(a.root), "RECONCILER_RUN_DIR": str(a.run_dir),
           "RECONCILER_PREFIX": a.prefix}
    procs = {who: subprocess.Popen([sys.executable, "-m", "reconciler", "build", "--build-arg", f"WHO={who}",
                                    "-t", f"localhost/both:{who}", str(ctx)], cwd=REPO, env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for who in ("ann", "bob")}
    for who, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        assert f"Successfully tagged localhost/both:{who}\n" in out
    for who in procs:
        ran = reconcile(a, "run", "--rm", f"localhost/both:{who}")
        assert (ran.returncode, ran.stdout) == (0, f"hello {who}\n"), ran.stderr
    assert image_of(a, "localhost/both:ann")[0] != image_of(a, "localhost/both:bob")[0]
