"""Peer check against Docker: an image we build and push runs under `docker`, and its config
matches what `docker build` makes of the same Dockerfile and context.

`docker build --network none`: RUN steps need no network, and the check then does not depend
on dockerd's default bridge (docker0), which another test on the host may have taken down."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.runtime.native.build import push
from tests.build import test_modes, test_onbuild
from tests.build.conftest import Engine
from tests.helpers.registry import RegistryServer

pytestmark = [
    pytest.mark.root, pytest.mark.registry, pytest.mark.docker,
    pytest.mark.skipif(shutil.which("docker") is None, reason="docker not installed"),
]

DOCKERFILE = """FROM {base}
ARG GREETING=hello
ENV APP_HOME=/srv/app PATH=/srv/app/bin:$PATH
ENV MESSAGE="$GREETING from the peer check"
LABEL org.example.name=peer "org.example.two words"="yes"
EXPOSE 8080 53/udp
WORKDIR $APP_HOME
COPY run.sh bin/run.sh
RUN mkdir -p data && echo "$MESSAGE" > data/msg && chown -R 1000:1000 data
USER 1000
ENTRYPOINT ["run.sh"]
CMD ["--flag", "value"]
"""

SCRIPT = "#!/bin/sh\necho \"args: $*\"\ncat /srv/app/data/msg\nid -u\npwd\n"


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=300)


@pytest.fixture
def docker_images() -> Iterator[list[str]]:
    """References this test makes in dockerd; removed afterwards (only those)."""
    made: list[str] = []
    yield made
    for ref in made:
        docker("rmi", "-f", ref, check=False)


def test_docker_runs_what_we_push_and_builds_the_same_config(
    engine: Engine, context_dir: Callable[..., Path], busybox_image: str, registry: RegistryServer,
    docker_images: list[str],
) -> None:
    if docker("info", check=False).returncode != 0:
        pytest.skip("dockerd is not running")
    ctx = context_dir({"Dockerfile": DOCKERFILE.format(base=busybox_image), "run.sh": SCRIPT})
    (ctx / "run.sh").chmod(0o755)      # (dockerd 20.10's classic builder has no COPY --chmod)
    repo = f"{registry.host}/peer{secrets.token_hex(3)}"
    ours = f"{repo}/native:1"
    engine.build(ctx, tags=(ours,), build_args={"GREETING": "hi"})
    push.push(engine.store, ours)

    docker_images.append(ours)
    docker("pull", ours)
    ran = docker("run", "--rm", "--network", "none", ours, "one", "two")
    assert ran.stdout.splitlines() == ["args: one two", "hi from the peer check", "1000", "/srv/app"]

    theirs = f"{repo}/docker:1"
    docker_images.append(theirs)
    docker("build", "-q", "--network", "none", "--build-arg", "GREETING=hi", "-t", theirs, str(ctx))
    ran = docker("run", "--rm", "--network", "none", theirs)
    assert ran.stdout.splitlines() == ["args: --flag value", "hi from the peer check", "1000", "/srv/app"]

    def config(ref: str) -> dict[str, object]:
        data = json.loads(docker("image", "inspect", ref).stdout)[0]["Config"]
        return {k: data.get(k) for k in ("Env", "Cmd", "Entrypoint", "User", "WorkingDir", "ExposedPorts", "Labels")}

    assert config(ours) == config(theirs)
    # the size `reconcile images` shows of what we built (its layers unpacked, as a COPY and a RUN
    # made them) is dockerd's, of our layers as of its own build of the same Dockerfile
    sizes = {int(docker("image", "inspect", "-f", "{{.Size}}", ref).stdout) for ref in (ours, theirs)}
    assert sizes == {engine.store.get(ours).size}
    # and the native store's own view of our image says the same
    native = engine.config_of(ours)["config"]
    assert {k: native.get(k) for k in ("Env", "Cmd", "Entrypoint", "User", "WorkingDir")} == {
        k: v for k, v in config(theirs).items() if k in ("Env", "Cmd", "Entrypoint", "User", "WorkingDir")}


@pytest.mark.parametrize("body", [
    "ENTRYPOINT [\"/bin/echo\"]\n",                                 # an inherited CMD is dropped
    "CMD echo a\nENTRYPOINT echo b\n",                             # a CMD of this stage stays
    "SHELL [\"/bin/sh\", \"-ec\"]\nCMD echo shell\nWORKDIR a\nWORKDIR ../b\nUSER nobody:nogroup\n",
    "ENV A=1 B=\"two words\" C=${A:-x}-${UNSET:-d}-${A:+alt}\nLABEL a=$A b=\"$B\"\nEXPOSE 1-3/udp 80\n",
])
def test_config_matches_docker_build(
    engine: Engine, context_dir: Callable[..., Path], busybox_image: str, registry: RegistryServer,
    docker_images: list[str], body: str,
) -> None:
    if docker("info", check=False).returncode != 0:
        pytest.skip("dockerd is not running")
    base = f"{busybox_image}"
    ctx = context_dir({"Dockerfile": f"FROM {base}\nCMD [\"base-cmd\"]\n" + body.replace("{base}", base)})
    theirs = f"{registry.host}/peer{secrets.token_hex(3)}/docker:1"
    docker_images.append(theirs)
    docker("build", "-q", "--network", "none", "-t", theirs, str(ctx))
    engine.build(ctx, tags=("localhost/peer:1",))
    want = json.loads(docker("image", "inspect", theirs).stdout)[0]["Config"]
    got = engine.config_of("localhost/peer:1")["config"]
    for key in ("Env", "Cmd", "Entrypoint", "User", "WorkingDir", "ExposedPorts", "Labels"):
        assert (key, got.get(key) or None) == (key, want.get(key) or None)


def test_modes_of_what_the_build_creates_match_docker_build(
    engine: Engine, context_dir: Callable[..., Path], busybox_image: str, registry: RegistryServer,
    docker_images: list[str],
) -> None:
    """#20 item 1: a 0700 context (as `mktemp -d` makes it) gives the same destination
    directories (modes, owners) under both builders, WORKDIR's included."""
    if docker("info", check=False).returncode != 0:
        pytest.skip("dockerd is not running")
    ctx = test_modes.private_context(context_dir, busybox_image)
    theirs = f"{registry.host}/peer{secrets.token_hex(3)}/modes:1"
    docker_images.append(theirs)
    docker("build", "-q", "--network", "none", "-t", theirs, str(ctx))
    want = docker("run", "--rm", "--network", "none", "--user", "0", theirs, "sh", "-c", test_modes.MODES_CMD)
    engine.build(ctx, tags=("localhost/peer-modes:1",))
    code, got = engine.run("localhost/peer-modes:1", "sh", "-c", test_modes.MODES_CMD, user="0")
    assert code == 0, got
    # dockerd's legacy builder (the oracle: BuildKit's frontend is an image from the internet)
    # makes WORKDIR root's whatever USER says; BuildKit makes it the USER's (dockerfile2llb's
    # dispatchWorkdir: llb.Mkdir with llb.WithUser), which the native builder follows
    buildkit = {"/w/y 755 0:0": "/w/y 755 65534:65534"}
    assert got.splitlines() == [buildkit.get(x, x) for x in want.stdout.splitlines()] == test_modes.EXPECTED


def test_onbuild_matches_docker_build(
    engine: Engine, context_dir: Callable[..., Path], busybox_image: str, registry: RegistryServer,
    docker_images: list[str],
) -> None:
    """#20 item 4: the parent's stored triggers, and what a child built FROM it gets (files,
    owners, Env, no inherited OnBuild), are Docker's."""
    if docker("info", check=False).returncode != 0:
        pytest.skip("dockerd is not running")
    parent_ctx = context_dir({"Dockerfile": test_onbuild.PARENT.format(base=busybox_image), "parent-file": "p"})
    repo = f"{registry.host}/peer{secrets.token_hex(3)}"
    docker_images.extend([f"{repo}/parent:1", f"{repo}/child:1"])
    docker("build", "-q", "--network", "none", "-t", f"{repo}/parent:1", str(parent_ctx))
    engine.build(parent_ctx, tags=("localhost/parent:1",))

    def inspect(ref: str) -> dict[str, object]:
        data = json.loads(docker("image", "inspect", ref).stdout)[0]["Config"]
        return {"OnBuild": data.get("OnBuild"), "Env": data.get("Env")}

    ours = engine.config_of("localhost/parent:1")["config"]
    assert ours["OnBuild"] == inspect(f"{repo}/parent:1")["OnBuild"] == test_onbuild.PARENT_TRIGGERS

    child_ctx = context_dir({"Dockerfile": test_onbuild.CHILD.format(parent=f"{repo}/parent:1"), "file": "c"})
    docker("build", "-q", "--network", "none", "-t", f"{repo}/child:1", str(child_ctx))
    (child_ctx / "Dockerfile").write_text(test_onbuild.CHILD.format(parent="localhost/parent:1"))
    engine.build(child_ctx, tags=("localhost/child:1",))
    want = docker("run", "--rm", "--network", "none", f"{repo}/child:1", "sh", "-c", test_onbuild.CHILD_CMD)
    code, got = engine.run("localhost/child:1", "sh", "-c", test_onbuild.CHILD_CMD)
    assert code == 0, got
    assert got.splitlines() == want.stdout.splitlines() == ["Dockerfile", "file", "yes", "/app/file 1:2"]
    ours = engine.config_of("localhost/child:1")["config"]
    assert {"OnBuild": ours.get("OnBuild"), "Env": ours["Env"]} == inspect(f"{repo}/child:1")
