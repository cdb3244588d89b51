"""`replicas: N`: one Container document, N containers `<name>-1` .. `<name>-N` in the desired state.

The planner, executor and engines only ever see the expanded containers, so these tests look at
what `spec.load` returns: the names, the dependencies, the spec hashes and the errors.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler import spec


def doc(name: str, body: str, labels: str = "") -> str:
    meta = f"{{name: {name}{', labels: ' + labels if labels else ''}}}"
    return f"---\napiVersion: reconciler/v1\nkind: Container\nmetadata: {meta}\nspec:\n{body}"


def load(tmp_path: Path, *docs: str) -> spec.DesiredState:
    (tmp_path / "m.yaml").write_text("".join(docs))
    return spec.load(tmp_path)


def problems(tmp_path: Path, *docs: str) -> list[str]:
    with pytest.raises(spec.SpecError) as info:
        load(tmp_path, *docs)
    return [str(p).replace(str(tmp_path) + os.sep, "") for p in info.value.problems]


def test_replicas_expand_into_numbered_containers_and_dependants_wait_for_all(tmp_path: Path) -> None:
    desired = load(
        tmp_path,
        doc("worker", "  image: busybox:1\n  replicas: 3\n  dependsOn: [db]\n"),
        doc("db", "  image: postgres:16\n"),
        doc("web", "  image: nginx:1\n  dependsOn: [worker]\n"),
    )
    assert sorted(desired.containers) == ["db", "web", "worker-1", "worker-2", "worker-3"]
    assert desired.containers["web"].depends_on == ("worker-1", "worker-2", "worker-3")
    assert {desired.containers[f"worker-{i}"].depends_on for i in (1, 2, 3)} == {("db",)}
    # same spec, same hash: the name is not part of it
    assert len({desired.containers[f"worker-{i}"].spec_hash for i in (1, 2, 3)}) == 1


def test_zero_replicas_run_nothing_and_the_replica_count_is_not_hashed(tmp_path: Path) -> None:
    desired = load(tmp_path, doc("worker", "  image: busybox:1\n  replicas: 0\n"),
                   doc("web", "  image: nginx:1\n  dependsOn: [worker]\n"))
    assert sorted(desired.containers) == ["web"]
    assert desired.containers["web"].depends_on == ()
    two = load(tmp_path, doc("worker", "  image: busybox:1\n  replicas: 2\n"))
    five = load(tmp_path, doc("worker", "  image: busybox:1\n  replicas: 5\n"))
    assert two.containers["worker-1"].spec_hash == five.containers["worker-1"].spec_hash      # scaling keeps -1


def test_a_compose_service_replica_carries_its_number(tmp_path: Path) -> None:
    labels = "{com.docker.compose.service: worker, com.docker.compose.container-number: '1'}"
    desired = load(tmp_path, doc("shop-worker", "  image: busybox:1\n  replicas: 2\n", labels))
    numbers = {n: c.labels["com.docker.compose.container-number"] for n, c in desired.containers.items()}
    assert numbers == {"shop-worker-1": "1", "shop-worker-2": "2"}
    assert desired.containers["shop-worker-1"].spec_hash != desired.containers["shop-worker-2"].spec_hash
    plain = load(tmp_path, doc("worker", "  image: busybox:1\n  replicas: 2\n", "{tier: back}"))
    assert {dict(c.labels)["tier"] for c in plain.containers.values()} == {"back"}
    assert all("com.docker.compose.container-number" not in c.labels for c in plain.containers.values())


def test_replica_errors(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        doc("web", "  image: nginx:1\n  replicas: 2\n  ports: ['8080:80']\n"),
        doc("web-1", "  image: nginx:1\n"),
        doc("x" * 62, "  image: nginx:1\n  replicas: 10\n"),
        doc("neg", "  image: nginx:1\n  replicas: -1\n"),
    ) == [
        "m.yaml:7:13: Container/web: spec.replicas: replica 'web-1' has the name of another Container; rename one of them",
        "m.yaml:8:11: Container/web: spec.ports[0]: 2 replicas cannot all publish host port 8080/tcp; "
        "publish it from one container (a proxy in front of the replicas) or set replicas: 1",
        f"m.yaml:18:18: Container/{'x' * 62}: metadata.name: replica name '{'x' * 62}-10' is longer than 63 characters; shorten the name",
        "m.yaml:28:13: Container/neg: spec.replicas: must be at least 0, not -1",
    ]
