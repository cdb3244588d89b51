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
    # labelled with their stack, as docker stack deploy labels its services (`docker stack services shop`)
    assert {c.labels.get("com.docker.stack.namespace") for c in cluster.containers.values()} == {"shop"}
    assert "com.docker.stack.namespace" not in _load(tmp_path, compose, cluster=False).containers["shopdb"].labels
    assert any("services.db.container_name: ignored on Swarm, as docker stack deploy ignores it: the service is "
               "shop_db (<project>_<service>)" in w for w in cluster.warnings), cluster.warnings

    scaled = _load(tmp_path, compose.replace("replicas: 1", "replicas: 2"), cluster=True)
    assert sorted(scaled.containers) == sorted(cluster.containers)
    assert scaled.containers["shop_web"].replicas == 2
    assert scaled.containers["shop_web"].spec_hash == cluster.containers["shop_web"].spec_hash

    host = _load(tmp_path, compose, cluster=False)
    assert sorted(host.containers) == ["shop-api-1", "shop-api-2", "shop-api-3", "shop-web-1", "shopdb"]
    assert not any("container_name" in w for w in host.warnings)


STACK = """
    name: shop
    services:
      web:
        image: busybox:1
        networks: [front]
        deploy:
          labels: [team=shop]
          endpoint_mode: vip
          update_config: {parallelism: 2, delay: 10s, failure_action: continue, monitor: 5s, max_failure_ratio: 0.5}
          rollback_config: {parallelism: 0, failure_action: continue}
          restart_policy: {condition: any, delay: 5s, window: 1m}
    networks:
      front: {driver: overlay, attachable: true}
    """


def test_a_stack_files_deploy_keys_load_on_a_cluster_and_warn_on_one_host(tmp_path: Path) -> None:
    """These keys were refused ("not supported yet": deploy.labels, endpoint_mode, update_config,
    rollback_config, an overlay driver) or warned about as having no effect on Swarm too
    (restart_policy.delay and window, attachable)."""
    cluster = _load(tmp_path, STACK, cluster=True)
    assert cluster.warnings == ()
    web = cluster.containers["shop_web"]
    assert (dict(web.service_labels), web.endpoint_mode, web.restart_delay, web.restart_window) == (
        {"team": "shop"}, "vip", 5.0, 60.0)
    assert (web.update.parallelism, web.update.delay, web.update.on_failure, web.update.min_ready,
            web.update.max_failure_ratio) == (2, 10.0, "continue", 5.0, 0.5)
    assert web.rollback is not None
    assert (web.rollback.parallelism, web.rollback.on_failure, web.rollback.order) == (0, "continue", None)
    assert set(cluster.networks) == {"shop_front"}

    host = _load(tmp_path, STACK, cluster=False)
    said = sorted(w.split(": ", 2)[1] for w in host.warnings)
    assert said == sorted([
        "services.web.deploy.labels", "services.web.deploy.endpoint_mode", "services.web.deploy.rollback_config",
        "services.web.deploy.update_config.parallelism", "services.web.deploy.update_config.delay",
        "services.web.deploy.update_config.max_failure_ratio", "services.web.deploy.restart_policy.delay",
        "services.web.deploy.restart_policy.window", "networks.front.driver", "networks.front.attachable"]), host.warnings
    assert any("services.web.deploy.labels: Swarm's setting (--runtime swarm): no effect on one host" in w
               for w in host.warnings)
    # what has no effect on one host recreates nothing there: the hash is the one without those keys
    plain = _load(tmp_path, STACK.split("        deploy:")[0] + "        deploy: {restart_policy: {condition: any}}\n"
                  + STACK.split("restart_policy: {condition: any, delay: 5s, window: 1m}\n")[1], cluster=False)
    assert plain.warnings[-1].endswith("networks.front.attachable: has no effect: every network can be joined by the "
                                       "project's containers"), plain.warnings
    assert host.containers["shop-web-1"].spec_hash == plain.containers["shop-web-1"].spec_hash
