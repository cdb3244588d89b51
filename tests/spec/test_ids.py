"""Resource ids (#15): one type for "container:web" in plans and "Container/web" in revisions."""

from __future__ import annotations

import pytest

from reconciler.planning import actions
from reconciler.spec.ids import ResourceId


@pytest.mark.parametrize(("text", "kind", "name"), [
    ("container:web", "Container", "web"),
    ("network:shop", "Network", "shop"),
    ("volume:data", "Volume", "data"),
    ("image:127.0.0.1:5000/team/app:1.2", "Image", "127.0.0.1:5000/team/app:1.2"),
    ("image:busybox@sha256:" + "a" * 64, "Image", "busybox@sha256:" + "a" * 64),
    ("revision:e3b0c44298fc", "Revision", "e3b0c44298fc"),    # a pass refused as a whole
])
def test_a_resource_id_reads_back_what_it_wrote(text: str, kind: str, name: str) -> None:
    rid = ResourceId.parse(text)
    assert rid == ResourceId(kind, name)
    assert str(rid) == text
    assert rid.key == f"{kind}/{name}"          # a revision's spec hashes, as kept on disk


@pytest.mark.parametrize("text", ["web", "container:", ":web", "127.0.0.1:5000/x"])
def test_text_that_is_no_resource_id_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a resource id"):
        ResourceId.parse(text)


def test_an_action_names_its_inventory_key_through_the_id() -> None:
    a = actions.Action(id=1, kind=actions.ActionKind.PULL_IMAGE, resource=str(ResourceId.image("reg:5000/x:1")),
                       cause="not present")
    assert a.kind_name == ("Image", "reg:5000/x:1")
    with pytest.raises(ValueError, match="not a resource id"):
        _ = actions.Action(id=2, kind=actions.ActionKind.PULL_IMAGE, resource="x", cause="").kind_name
