"""Compose files read as `docker stack deploy` reads them, where a cluster's manifests load
(`spec.load(cluster=True)`, `--runtime swarm`), and what the same keys do on one host. What
reaches the Swarm service is in tests/swarm/test_stack_e2e.py."""

from __future__ import annotations

import textwrap
from pathlib import Path

from reconciler import spec


def _load(tmp_path: Path, body: str, *, cluster: bool) -> spec.DesiredState:
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(body))
    return spec.load(tmp_path, cluster=cluster)


def test_a_compose_service_on_a_cluster_is_project_underscore_service_whatever_its_replicas(tmp_path: Path) -> None:
    """docker stack deploy names a service `<stack>_<service>`: so does a cluster's load, for one
    copy or many (a change of replicas is then a scale of the same service, not another one), with
    container_name ignored as docker stack deploy ignores it; a single host keeps compose's
    container names."""
    compose = """
        name: shop
        services:
          web:
            image: busybox:1
            deploy: {replicas: 1}
            depends_on: [db]
          api:
            image: busybox:1
            deploy: {replicas: 3}
          db:
            image: busybox:1
            container_name: shopdb
        """
    cluster = _load(tmp_path, compose, cluster=True)
    assert sorted(cluster.containers) == ["shop_api", "shop_db", "shop_web"]
    assert cluster.containers["shop_web"].depends_on == ("shop_db",)
    assert (cluster.containers["shop_api"].replicas, cluster.containers["shop_web"].replicas) == (3, 1)
    assert "web" in cluster.containers["shop_web"].aliases          # found by its service name, as in a stack
    assert any("services.db.container_name: ignored on Swarm, as docker stack deploy ignores it: the service is "
               "shop_db (<project>_<service>)" in w for w in cluster.warnings), cluster.warnings

    scaled = _load(tmp_path, compose.replace("replicas: 1", "replicas: 2"), cluster=True)
    assert sorted(scaled.containers) == sorted(cluster.containers)
    assert scaled.containers["shop_web"].replicas == 2
    assert scaled.containers["shop_web"].spec_hash == cluster.containers["shop_web"].spec_hash

    host = _load(tmp_path, compose, cluster=False)
    assert sorted(host.containers) == ["shop-api-1", "shop-api-2", "shop-api-3", "shop-web-1", "shopdb"]
    assert not any("container_name" in w for w in host.warnings)
