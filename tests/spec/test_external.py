"""`external: true` Networks and Volumes: named in the desired state apart from the ones the
engine makes (the planner uses them and never makes, changes or prunes them:
tests/planning golden scenarios `external_*`, tests/execution/test_docker_e2e.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler import spec

DOCS = """\
apiVersion: reconciler/v1
kind: Network
metadata: {name: proxy}
spec: {external: true}
---
apiVersion: reconciler/v1
kind: Volume
metadata: {name: certs}
spec: {external: true}
---
apiVersion: reconciler/v1
kind: Network
metadata: {name: own}
---
apiVersion: reconciler/v1
kind: Container
metadata: {name: web}
spec:
  image: nginx:1
  networks: [proxy, own]
  volumes: ["certs:/certs:ro"]
"""


def test_external_objects_are_listed_apart(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(DOCS)
    desired = spec.load(tmp_path)
    assert (desired.external_networks, desired.external_volumes) == (("proxy",), ("certs",))
    assert (sorted(desired.networks), sorted(desired.volumes)) == (["own"], [])
    assert desired.containers["web"].networks == ("proxy", "own")


def test_an_external_object_sets_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(DOCS.replace("metadata: {name: proxy}\nspec: {external: true}",
                                                  "metadata: {name: proxy, labels: {a: b}}\nspec: {external: true, subnet: 10.9.0.0/24}")
                                     .replace("spec: {external: true}\n---\napiVersion: reconciler/v1\nkind: Network",
                                              "spec: {external: true, deletionPolicy: Delete}\n---\napiVersion: reconciler/v1\nkind: Network"))
    with pytest.raises(spec.SpecError) as info:
        spec.load(tmp_path)
    assert [str(p).replace(str(tmp_path) + os.sep, "") for p in info.value.problems] == [
        "m.yaml:3:25: Network/proxy: metadata.labels: an external Network is used as it is and cannot be labelled; remove the labels",
        "m.yaml:4:24: Network/proxy: spec.subnet: an external Network is used as it is; remove subnet or external: true",
        "m.yaml:9:24: Volume/certs: spec.deletionPolicy: an external Volume is used as it is; remove deletionPolicy or external: true",
    ]
