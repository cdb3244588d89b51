"""Anonymous volumes (`/data`, or a volume mount without source): each becomes a Volume of its
container's own in the desired state, named from the container and the target, so a replacement
mounts the same data and the prune that removes the container removes the volume too.

The planner, executor and engines only see a named volume with deletionPolicy Delete, so these
tests look at what `spec.load` (and `reconcile convert` for compose) return; the end-to-end
behaviour on the engines is in tests/compose/test_native_e2e.py and tests/docker/test_containers.py.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from reconciler import spec
from reconciler.cli.main import main
from reconciler.planning import implied
from reconciler.spec.building import ANONYMOUS_LABEL, anonymous_name


def doc(name: str, body: str) -> str:
    return f"---\napiVersion: reconciler/v1\nkind: Container\nmetadata: {{name: {name}}}\nspec:\n{body}"


def load(tmp_path: Path, *docs: str) -> spec.DesiredState:
    (tmp_path / "m.yaml").write_text("".join(docs))
    return spec.load(tmp_path)


def test_a_mount_without_source_is_a_volume_the_container_owns(tmp_path: Path) -> None:
    desired = load(tmp_path, doc("web", "  image: busybox:1\n  volumes:\n  - /data\n"
                                        "  - {type: volume, target: /cache, readOnly: true}\n"))
    mounts = desired.containers["web"].volumes
    names = [anonymous_name("web", "/data"), anonymous_name("web", "/cache")]
    assert [(m.type, m.source, m.target, m.read_only) for m in mounts] == [
        ("volume", names[0], "/data", False), ("volume", names[1], "/cache", True)]
    assert sorted(desired.volumes) == sorted(names)
    for name in names:
        volume = desired.volumes[name]
        assert volume.deletion_policy == "Delete"       # pruned with its container
        assert dict(volume.labels) == {ANONYMOUS_LABEL: ""}


def test_a_replacement_keeps_the_volume_and_each_replica_has_its_own(tmp_path: Path) -> None:
    before = load(tmp_path, doc("web", "  image: busybox:1\n  env: {A: '1'}\n  volumes: [/data]\n"))
    after = load(tmp_path, doc("web", "  image: busybox:1\n  env: {A: '2'}\n  volumes: [/data]\n"))
    assert before.containers["web"].spec_hash != after.containers["web"].spec_hash     # replaced...
    assert before.containers["web"].volumes == after.containers["web"].volumes         # ...onto the same data
    scaled = load(tmp_path, doc("web", "  image: busybox:1\n  replicas: 2\n  volumes: [/data]\n"))
    assert [scaled.containers[f"web-{i}"].volumes[0].source for i in (1, 2)] == [
        anonymous_name("web-1", "/data"), anonymous_name("web-2", "/data")]


def test_on_a_cluster_the_mount_stays_without_source(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(doc("web", "  image: busybox:1\n  replicas: 2\n  volumes: [/data]\n"))
    desired = spec.load(tmp_path, cluster=True)          # each task gets Swarm's own anonymous volume
    assert [(m.type, m.source, m.target) for m in desired.containers["web"].volumes] == [("volume", "", "/data")]
    assert dict(desired.volumes) == {}
    assert implied.volumes(desired) == {}


def test_the_name_stays_a_valid_volume_name_for_the_longest_container_name() -> None:
    name = anonymous_name("c" * 63, "/data")
    assert len(name) == 63
    assert name.startswith("c" * 45 + "-anon-")
    assert anonymous_name("c" * 63, "/data") != anonymous_name("c" * 62 + "d", "/data")


def test_compose_anonymous_volumes_convert_and_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "compose.yaml").write_text(textwrap.dedent("""
        name: shop
        services:
          web:
            image: busybox:1
            volumes:
              - /data
              - {type: volume, target: /cache, read_only: true}
        """))
    assert main(["convert", str(tmp_path)]) == 0
    container = next(d for d in yaml.safe_load_all(capsys.readouterr().out) if d["kind"] == "Container")
    assert container["spec"]["volumes"] == ["/data", {"type": "volume", "target": "/cache", "readOnly": True}]
    assert main(["validate", str(tmp_path)]) == 0
    desired = spec.load(tmp_path)
    assert sorted(desired.volumes) == sorted(anonymous_name("shop-web-1", t) for t in ("/data", "/cache"))
