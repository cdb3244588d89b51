"""What a desired state implies (`planning/implied.py`): the rules the planner and a pass share."""

from __future__ import annotations

from dataclasses import replace

from reconciler.planning import implied
from reconciler.spec import models
from reconciler.state import labels as labelmod
from tests.planning.builders import REF, container, desired, image, volume

OTHER = "registry.local:5000/shop/api:2"


def test_tracked_refs_follow_the_image_objects() -> None:
    web = container("web")                                              # no Image object: tracked
    pinned = container("api", image=OTHER, image_object="apiimg")       # track: false, pull missing
    d = desired(web, pinned, image("apiimg", OTHER))
    assert implied.tracked_refs(d) == [REF]
    assert implied.tracked_refs(desired(web, pinned, image("apiimg", OTHER, pull="always"))) == [OTHER, REF]
    assert implied.tracked_refs(desired(web, pinned, image("apiimg", OTHER, track=True))) == [OTHER, REF]
    assert implied.image_policy(pinned, d) == implied.ImagePolicy(pull="missing", track=False, build=False)


def test_a_tag_made_here_is_not_tracked_unless_its_image_object_says_so() -> None:
    web, worker = container("web"), container("worker")                 # one tag, no Image object
    api = container("api", image=OTHER, image_object="apiimg")
    pinned = container("db", image=f"{OTHER.rsplit(':', 1)[0]}@sha256:{'1' * 64}")
    asked: list[str] = []

    def made_here(ref: str) -> bool:
        asked.append(ref)
        return True

    d = desired(web, worker, api, pinned, image("apiimg", OTHER, track=True))
    assert implied.tracked_refs(d, made_here=made_here) == [OTHER, pinned.image]   # track: true still asks
    assert asked == [REF]                       # once per tag; never for an Image object's or a digest
    assert implied.tracked_refs(d, made_here=lambda ref: False) == sorted([OTHER, REF, pinned.image])
    assert implied.tracked_refs(d, every=True, made_here=made_here) == sorted([OTHER, REF, pinned.image])


def test_implicit_volumes_are_desired_after_the_declared_ones() -> None:
    mounts = tuple(models.VolumeMount("volume", n, f"/{n}", False) for n in ("zz", "cache", "data"))
    d = desired(container("web", volumes=mounts), volume("data"), volume("logs"))
    assert list(implied.volumes(d).items()) == [("data", d.volumes["data"]), ("logs", d.volumes["logs"]),
                                                ("cache", None), ("zz", None)]
    assert implied.keys(d) == {("Container", "web"), ("Volume", "data"), ("Volume", "logs"),
                               ("Volume", "cache"), ("Volume", "zz")}


def test_labels_carry_ownership_and_never_let_a_manifest_forge_it() -> None:
    web = replace(container("web"), labels={"tier": "front", labelmod.OWNER: "someone-else"})
    got = implied.labels(owner="blue", revision="rev-9", kind="Container", name="web", obj=web,
                         image_digest="sha256:" + "1" * 64)
    assert got[labelmod.OWNER] == "blue"
    assert (got["tier"], got[labelmod.SPEC_HASH], got[labelmod.REVISION]) == ("front", "h-web", "rev-9")
    assert got[labelmod.DIGEST] == "sha256:" + "1" * 64
    implicit = implied.labels(owner="blue", revision="rev-9", kind="Volume", name="cache", obj=None)
    assert implicit[labelmod.SPEC_HASH] == ""
    assert labelmod.DIGEST not in implicit
