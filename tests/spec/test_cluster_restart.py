"""A Container without `restart`: Docker's `no` on a single host, `always` (Swarm's `any`) where a
cluster's manifests load (`spec.load(cluster=True)`), as `docker stack deploy` gives a service
without a restart policy; a job keeps `no`. What reaches the service is in tests/swarm."""

from __future__ import annotations

import textwrap
from pathlib import Path

from reconciler import spec


def _load(tmp_path: Path, body: str, *, cluster: bool, name: str = "m.yaml") -> spec.DesiredState:
    (tmp_path / name).write_text(textwrap.dedent(body))
    return spec.load(tmp_path, cluster=cluster)


def _doc(name: str, extra: str = "") -> str:
    return (f"---\napiVersion: reconciler/v1\nkind: Container\nmetadata: {{name: {name}}}\n"
            f"spec:\n  image: busybox:1\n{extra}")


def test_a_container_without_restart_is_restarted_on_a_cluster_and_left_down_on_a_host(tmp_path: Path) -> None:
    docs = _doc("web") + _doc("pinned", '  restart: "no"\n') + _doc("migrate", "  job: true\n") \
        + _doc("retry", "  restart: on-failure:3\n")
    host, cluster = _load(tmp_path, docs, cluster=False), _load(tmp_path, docs, cluster=True)
    policy = {name: (c.restart.name, c.restart.max_retries) for name, c in cluster.containers.items()}
    assert policy == {"web": ("always", 0), "pinned": ("no", 0), "migrate": ("no", 0), "retry": ("on-failure", 3)}
    assert {name: c.restart.name for name, c in host.containers.items()} == {
        "web": "no", "pinned": "no", "migrate": "no", "retry": "on-failure"}
    # what the default changes is hashed (the service made before it is updated once); written
    # out, `no` hashes as the default did
    assert cluster.containers["web"].spec_hash != host.containers["web"].spec_hash
    for name in ("pinned", "migrate", "retry"):
        assert cluster.containers[name].spec_hash == host.containers[name].spec_hash, name


def test_a_compose_service_without_a_restart_policy_is_restarted_on_a_cluster(tmp_path: Path) -> None:
    compose = """
        name: shop
        services:
          web: {image: busybox:1}
          once: {image: busybox:1, restart: "no"}
          policy:
            image: busybox:1
            deploy: {restart_policy: {condition: none}}
        """
    cluster = _load(tmp_path, compose, cluster=True, name="compose.yaml")
    assert {name: c.restart.name for name, c in cluster.containers.items()} == {
        "shop_web": "always", "shop_once": "no", "shop_policy": "no"}
    host = _load(tmp_path, compose, cluster=False, name="compose.yaml")
    assert {c.restart.name for c in host.containers.values()} == {"no"}
