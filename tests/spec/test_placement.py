"""A host's part of the manifests (reconciler.spec.placement): the containers whose
spec.placement selects the host's labels, the objects that follow them, and the errors a single
host cannot judge its way past. Manifests on disk, loaded by the real loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import spec
from reconciler.spec import placement
from tests.execution.helpers import IMG, container_doc, write

NET = "---\napiVersion: reconciler/v1\nkind: Network\nmetadata: {name: edge-net}\n"
VOL = "---\napiVersion: reconciler/v1\nkind: Volume\nmetadata: {name: shared}\n"
IMAGE = f"---\napiVersion: reconciler/v1\nkind: Image\nmetadata: {{name: edge-img}}\nspec: {{ref: {IMG}}}\n"


def fleet(tmp_path: Path) -> spec.DesiredState:
    write(tmp_path, "m.yaml", NET + VOL + IMAGE
          + container_doc("proxy", image="edge-img", extra="""
              networks: [edge-net]
              volumes: ["shared:/data"]
              placement: {labels: {role: edge}}
              """)
          + container_doc("db", extra="""
              volumes: ["shared:/data"]
              placement: {constraints: ["node.labels.role == db", "node.labels.zone!=west"]}
              """)
          + container_doc("agent"))
    return spec.load(tmp_path)


def test_each_host_takes_the_containers_its_labels_select_and_every_host_the_unplaced(tmp_path: Path) -> None:
    desired = fleet(tmp_path)
    edge = placement.select(desired, {"role": "edge", "zone": "west"})
    assert sorted(edge.containers) == ["agent", "proxy"]
    assert (sorted(edge.networks), sorted(edge.volumes), sorted(edge.images)) == (["edge-net"], ["shared"],
                                                                                  ["edge-img"])
    assert edge.elsewhere == {"Container/db": "placed on hosts with node.labels.role == db, node.labels.zone!=west; "
                                              "this host has role=edge, zone=west"}
    db = placement.select(desired, {"role": "db", "zone": "east"})
    assert sorted(db.containers) == ["agent", "db"]
    # what only the edge's containers use goes with them; a volume one of its containers uses stays
    assert (sorted(db.networks), sorted(db.volumes), sorted(db.images)) == ([], ["shared"], [])
    assert db.elsewhere["Network/edge-net"] == "used only by containers placed on other hosts: proxy"
    assert db.elsewhere["Image/edge-img"] == "used only by containers placed on other hosts: proxy"
    # a db host in the west is excluded by the != constraint; a host with no labels takes the unplaced only
    assert sorted(placement.select(desired, {"role": "db", "zone": "west"}).containers) == ["agent"]
    bare = placement.select(desired, {})
    assert sorted(bare.containers) == ["agent"]
    assert "this host has no labels" in bare.elsewhere["Container/proxy"]
    assert bare.revision == desired.revision         # the same revision of the same repository


def test_placement_is_not_in_the_spec_hash(tmp_path: Path) -> None:
    """Where a container runs is not what runs: a host it still selects keeps its container."""
    write(tmp_path / "a", "m.yaml", container_doc("web", extra="placement: {labels: {role: edge}}"))
    write(tmp_path / "b", "m.yaml", container_doc("web", extra="placement: {labels: {role: edge, zone: east}}"))
    a, b = spec.load(tmp_path / "a").containers["web"], spec.load(tmp_path / "b").containers["web"]
    assert a.placement != b.placement
    assert a.spec_hash == b.spec_hash


def test_a_constraint_only_a_swarm_can_judge_is_an_error_on_a_single_host(tmp_path: Path) -> None:
    write(tmp_path, "m.yaml", container_doc("web", extra='placement: {constraints: ["node.role==manager"]}'))
    desired = spec.load(tmp_path)                     # valid manifests: a Swarm judges it
    with pytest.raises(spec.SpecError) as err:
        placement.select(desired, {"role": "edge"})
    assert "Container/web: spec.placement.constraints[0]: 'node.role==manager': a single host judges only " \
           "node.labels.KEY==VALUE" in str(err.value)


def test_a_container_here_cannot_wait_for_one_placed_elsewhere(tmp_path: Path) -> None:
    write(tmp_path, "m.yaml", container_doc("db", extra="placement: {labels: {role: db}}")
          + container_doc("app", extra="dependsOn: [db]"))
    with pytest.raises(spec.SpecError) as err:
        placement.select(spec.load(tmp_path), {"role": "edge"})
    assert "Container/app: spec.dependsOn[0]: 'db' is not placed on this host (placed on hosts with role=db; " \
           "this host has role=edge); dependsOn waits for a container on the same host" in str(err.value)


def test_bad_placement_fields_are_refused_by_the_schema(tmp_path: Path) -> None:
    write(tmp_path, "m.yaml", container_doc("web", extra="""
        placement: {labels: {role: 1}, constraints: ["zone"], preferences: ["zone"], spread: x}
        """))
    with pytest.raises(spec.SpecError) as err:
        spec.load(tmp_path)
    text = str(err.value)
    for where in ("spec.placement.labels.role", "spec.placement.constraints[0]", "spec.placement.preferences[0]",
                  "spec.placement"):
        assert f"Container/web: {where}" in text


@pytest.mark.parametrize(("given", "wanted"), [
    (["role=edge", "zone=east"], {"role": "edge", "zone": "east"}),
    (["empty="], {"empty": ""}),
])
def test_host_labels_from_flags(given: list[str], wanted: dict[str, str]) -> None:
    assert placement.parse_labels(given) == wanted


@pytest.mark.parametrize("bad", ["role", "=edge", "ro le=edge"])
def test_a_host_label_that_is_not_key_value_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="is not KEY=VALUE"):
        placement.parse_labels([bad])
