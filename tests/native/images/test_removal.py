"""`rmi` as dockerd 20.10 decides it (images.removal): which tags go, whether the image goes, or
dockerd's conflict, for an image with one or two tags, by tag or by id, unused, used by a stopped
container and by a running one, with and without force."""

from __future__ import annotations

import pytest

from reconciler.runtime import errors
from reconciler.runtime.native.images.images import ImageUser, removal

IMG = "sha256:" + "ab" * 32
ONE = ["reg/a:1"]
TWO = ["reg/a:1", "reg/b:2"]
STOPPED = [ImageUser(IMG, "c" * 64, running=False)]
RUNNING = [ImageUser(IMG, "d" * 64, running=True), *STOPPED]


def rmi(ref: str, refs: list[str], users: list[ImageUser], force: bool) -> tuple[list[str], bool] | str:
    by_tag = ref if ref in refs else None
    try:
        return removal(IMG, ref, by_tag, refs, users, force=force)
    except errors.Conflict as exc:
        return exc.message


@pytest.mark.parametrize(("ref", "refs", "users", "force", "expected"), [
    # by tag: one of several goes alone, whoever uses the image
    ("reg/a:1", TWO, RUNNING, False, (["reg/a:1"], False)),
    # its last tag: deleted when unused; used, it needs force and then only the tag goes
    ("reg/a:1", ONE, [], False, (["reg/a:1"], True)),
    ("reg/a:1", ONE, STOPPED, False, 'conflict: unable to remove repository reference "reg/a:1" (must force) - '
                                     f"container {'c' * 12} is using its referenced image {'ab' * 6}"),
    ("reg/a:1", ONE, STOPPED, True, (["reg/a:1"], False)),
    ("reg/a:1", ONE, RUNNING, True, (["reg/a:1"], False)),
    # by id: several tags need force; a stopped container needs force; a running one refuses it
    (IMG, TWO, [], False, f"conflict: unable to delete {'ab' * 6} (must be forced) - image is referenced in "
                          "multiple repositories"),
    (IMG, TWO, [], True, (TWO, True)),
    (IMG, ONE, [], False, (ONE, True)),
    (IMG, ONE, STOPPED, False, f"conflict: unable to delete {'ab' * 6} (must be forced) - image is being used "
                               f"by stopped container {'c' * 12}"),
    (IMG, TWO, STOPPED, True, (TWO, False)),               # untagged; kept: the container runs on its layers
    (IMG, ONE, RUNNING, True, f"conflict: unable to delete {'ab' * 6} (cannot be forced) - image is being used "
                              f"by running container {'d' * 12}"),
    (IMG, TWO, RUNNING, True, f"conflict: unable to delete {'ab' * 6} (cannot be forced) - image is being used "
                              f"by running container {'d' * 12}"),
    (IMG, [], STOPPED, True, f"conflict: unable to delete {'ab' * 6} (cannot be forced) - image is being used "
                             f"by stopped container {'c' * 12}"),      # nothing to untag, nothing done
    (IMG, [], [], False, ([], True)),
])
def test_rmi_decides_as_dockerd(ref: str, refs: list[str], users: list[ImageUser], force: bool,
                                expected: tuple[list[str], bool] | str) -> None:
    assert rmi(ref, refs, users, force) == expected
