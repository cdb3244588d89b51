"""#20 item 4: COPY --parents, the Dockerfile's own ignore file, FROM --platform through ARGs,
and the `# syntax=` directive's rules."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.runtime import errors as rterrors
from reconciler.runtime.native.build import builder, dockerfile
from tests.build.conftest import Engine

Ctx = Callable[..., Path]
FILES: dict[str, str | bytes] = {"x/a.txt": "xa\n", "x/y/b.txt": "xyb\n", "x/y/c.md": "xyc\n", "top.txt": "top\n",
                                 "z/deep/er/d.txt": "d\n"}


@pytest.mark.root
@pytest.mark.registry
def test_copy_parents_keeps_the_source_paths(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({"Dockerfile": f"""FROM {busybox_image}
COPY --parents x/a.txt x/y/b.txt top.txt /p/
COPY --parents x/*/*.txt /glob/
COPY --parents ./x/./y/b.txt /pivot/
COPY --parents --chown=7:8 z/deep /dir
COPY x/y/b.txt /flat/
""", **FILES})
    os.chmod(ctx / "x", 0o750)
    os.chmod(ctx / "z" / "deep", 0o700)
    engine.build(ctx, tags=("localhost/parents:1",))
    code, out = engine.run("localhost/parents:1", "sh", "-c",
                           "cd / && stat -c '%n %a %u:%g' p/x p/x/a.txt p/x/y/b.txt p/top.txt glob/x/y/b.txt "
                           "pivot/y/b.txt dir/z dir/z/deep dir/z/deep/er/d.txt flat/b.txt; ls glob/x/y; ls pivot")
    assert code == 0, out
    assert out.splitlines() == [
        "p/x 750 0:0", "p/x/a.txt 644 0:0", "p/x/y/b.txt 644 0:0", "p/top.txt 644 0:0",
        "glob/x/y/b.txt 644 0:0",                 # (x/*/*.txt: c.md is not matched)
        "pivot/y/b.txt 644 0:0",                  # the part before /./ is dropped
        "dir/z 755 7:8", "dir/z/deep 700 7:8", "dir/z/deep/er/d.txt 644 7:8",
        "flat/b.txt 644 0:0",
        "b.txt", "y",
    ]


@pytest.mark.root
@pytest.mark.registry
def test_dockerfile_specific_ignore_file_wins(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({
        "Dockerfile": f"FROM {busybox_image}\nCOPY . /c/\n", ".dockerignore": "top.txt\n",
        "Dockerfile.dockerignore": "x\n!x/y/b.txt\nDockerfile.dockerignore\n",
        "build/app.Dockerfile": f"FROM {busybox_image}\nCOPY . /c/\n", "build/app.Dockerfile.dockerignore": "z\nbuild\n",
        **FILES,
    })
    engine.build(ctx, tags=("localhost/ignore:1",))
    code, out = engine.run("localhost/ignore:1", "sh", "-c", "cd /c && find . -type f | sort")
    assert code == 0, out
    assert out.splitlines() == ["./.dockerignore", "./Dockerfile", "./build/app.Dockerfile",
                                "./build/app.Dockerfile.dockerignore", "./top.txt",
                                "./x/y/b.txt", "./z/deep/er/d.txt"]
    engine.build(ctx, dockerfile=str(ctx / "build" / "app.Dockerfile"), tags=("localhost/ignore:2",))
    code, out = engine.run("localhost/ignore:2", "sh", "-c", "cd /c && find . -type f | sort")
    assert code == 0, out
    assert out.splitlines() == ["./.dockerignore", "./Dockerfile", "./Dockerfile.dockerignore", "./top.txt",
                                "./x/a.txt", "./x/y/b.txt", "./x/y/c.md"]


@pytest.mark.root
@pytest.mark.registry
def test_from_platform_through_args(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    host = builder.platform_args()["BUILDPLATFORM"]
    ctx = context_dir({"Dockerfile": f"""ARG PLAT={host}
FROM --platform=${{BUILDPLATFORM}} {busybox_image} AS a
FROM --platform=$PLAT a
"""})
    engine.build(ctx, tags=("localhost/plat:1",))
    engine.build(ctx, tags=("localhost/plat:1",), build_args={"PLAT": host.upper()})
    with pytest.raises(rterrors.InvalidArgument,
                       match=f"line 3: FROM --platform=linux/riscv64: this builder makes {host} images only"):
        engine.build(ctx, tags=("localhost/plat:2",), build_args={"PLAT": "linux/riscv64"})


@pytest.mark.parametrize("value", [
    "docker/dockerfile:1", "docker/dockerfile:1.7", "docker/dockerfile:1.7.1", "docker/dockerfile:1-labs",
    "docker/dockerfile:1.7-labs", "docker.io/docker/dockerfile:1", "docker/dockerfile",
    "docker/dockerfile:1@sha256:" + "a" * 64,
])
def test_syntax_this_builder_is(value: str) -> None:
    assert dockerfile.parse(f"# syntax={value}\nFROM x\n").directives["syntax"] == value


@pytest.mark.parametrize("value", ["docker/dockerfile:2", "docker/dockerfile:0.9", "example.com/frontend:1",
                                   "tonistiigi/dockerfile:1", "docker/dockerfile-upstream:master"])
def test_syntax_of_another_frontend_is_refused(value: str) -> None:
    with pytest.raises(dockerfile.DockerfileError, match=f"line 1: # syntax={value}: this builder is the docker/dockerfile:1"):
        dockerfile.parse(f"# syntax={value}\nFROM x\n")
