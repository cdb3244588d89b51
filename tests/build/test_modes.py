"""Docker's modes for what a build creates: COPY/ADD destination directories and WORKDIR are
0755 root:root (or --chown's owner; WORKDIR's the USER's, as BuildKit makes them), whatever the
context directory's own mode (#20 item 1)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.build.conftest import Engine

pytestmark = [pytest.mark.root, pytest.mark.registry]

Ctx = Callable[..., Path]

# what both engines are asked about (tests/build/test_docker_peer.py runs it under dockerd too)
MODES_DOCKERFILE = """FROM {base}
COPY . /ctx/
COPY sub /subdst
COPY --chown=123:456 f /new/deep/f
ADD sub /added/
WORKDIR /w/x
USER nobody
WORKDIR /w/y
WORKDIR /tmp
"""
MODES_PATHS = "/ctx /ctx/sub /ctx/sub/g /subdst /subdst/g /new /new/deep /new/deep/f /added /w /w/x /w/y"
MODES_CMD = f"stat -c '%n %a %u:%g' {MODES_PATHS}"


def private_context(context_dir: Ctx, base: str) -> Path:
    """A context as `mktemp -d` makes it: the directory and a subdirectory 0700."""
    ctx = context_dir({"Dockerfile": MODES_DOCKERFILE.format(base=base), "f": "f\n", "sub/g": "g\n"})
    os.chmod(ctx, 0o700)
    os.chmod(ctx / "sub", 0o700)
    return ctx


EXPECTED = [
    "/ctx 755 0:0", "/ctx/sub 700 0:0", "/ctx/sub/g 644 0:0", "/subdst 755 0:0", "/subdst/g 644 0:0",
    "/new 755 123:456", "/new/deep 755 123:456", "/new/deep/f 644 123:456", "/added 755 0:0",
    "/w 755 0:0", "/w/x 755 0:0", "/w/y 755 65534:65534",
]


def test_destination_directories_are_0755_whatever_the_context_mode(
    engine: Engine, context_dir: Ctx, busybox_image: str,
) -> None:
    ctx = private_context(context_dir, busybox_image)
    engine.build(ctx, tags=("localhost/modes:1",))
    code, out = engine.run("localhost/modes:1", "sh", "-c", MODES_CMD, user="0")
    assert (code, out.splitlines()) == (0, EXPECTED)
    # the point of it: the image's user reads what was copied
    code, out = engine.run("localhost/modes:1", "sh", "-c", "id -un; ls /ctx /subdst")
    assert code == 0, out
    assert out.split() == ["nobody", "/ctx:", "Dockerfile", "f", "sub", "/subdst:", "g"]


def test_workdir_is_created_as_a_layer_only_when_missing(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nUSER nobody\nWORKDIR /srv/app\nWORKDIR /tmp\n"
                                     "WORKDIR /\n"})
    first = engine.build(ctx, tags=("localhost/wd:1",))
    cfg = engine.config_of("localhost/wd:1")
    assert len(cfg["rootfs"]["diff_ids"]) == 2      # busybox, /srv/app; /tmp and / exist already
    assert [h.get("empty_layer", False) for h in cfg["history"][-4:]] == [True, False, True, True]
    code, out = engine.run("localhost/wd:1", "stat", "-c", "%n %a %u:%g", "/srv", "/srv/app")
    assert (code, out.splitlines()) == (0, ["/srv 755 65534:65534", "/srv/app 755 65534:65534"])
    again = engine.build(ctx, tags=("localhost/wd:1",))
    assert (again.cached, again.image_id) == (1, first.image_id)
    clash = context_dir({"Dockerfile": f"FROM {busybox_image}\nRUN echo > /file\nWORKDIR /file/sub\n"})
    with pytest.raises(Exception, match="/file/sub: a part of it exists and is not a directory"):
        engine.build(clash)


def test_workdir_under_user_is_the_users_own(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    """BuildKit makes WORKDIR's missing directories owned by USER (a name: its passwd uid and
    gid; a number alone: uid = gid), so the user can write in it; an existing one is left; a
    USER the image does not define leaves them root's, with a warning (BuildKit says nothing)."""
    from tests.build.test_build import ADD_BOB

    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\n{ADD_BOB}USER bob\nWORKDIR /home/bob/app\n"
                                     "RUN touch build.log\nUSER 1002\nWORKDIR /n/m\nWORKDIR /home/bob/x\n"
                                     "USER 1003:staff\nWORKDIR /g\nUSER ghost\nWORKDIR /ghost\n"})
    engine.build(ctx, tags=("localhost/wd-user:1",))
    assert ("[Warning] unable to find user ghost: no matching entries in the image's /etc/passwd; uid and gid 0 "
            "are taken, as BuildKit does") in engine.lines
    code, out = engine.run("localhost/wd-user:1", "stat", "-c", "%n %a %u:%g", "/home", "/home/bob", "/home/bob/app",
                           "/home/bob/app/build.log", "/n", "/n/m", "/home/bob/x", "/g", "/ghost", user="0")
    assert (code, out.splitlines()) == (0, [
        "/home 755 0:0", "/home/bob 755 1001:50", "/home/bob/app 755 1001:50", "/home/bob/app/build.log 644 1001:50",
        "/n 755 1002:1002", "/n/m 755 1002:1002", "/home/bob/x 755 1002:1002", "/g 755 1003:50", "/ghost 755 0:0"])
