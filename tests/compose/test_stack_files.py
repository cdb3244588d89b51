"""Compose files read as `docker stack deploy` reads them, where a cluster's manifests load
(`spec.load(cluster=True)`, `--runtime swarm`), and what the same keys do on one host. What
reaches the Swarm service is in tests/swarm/test_stack_e2e.py."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

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


ENCRYPTED = """
    name: shop
    services:
      web: {image: "busybox:1", networks: [secure, plain]}
    networks:
      secure:
        driver: overlay
        driver_opts: {encrypted: "true", com.docker.network.driver.overlay.vxlanid_list: "4242"}
      plain: {}
    """


def test_an_overlay_networks_driver_opts_load_on_a_cluster_and_warn_on_one_host(tmp_path: Path) -> None:
    """The overlay driver's options were refused everywhere ("not supported yet: the network
    driver option 'encrypted'"); docker stack deploy passes them. On a cluster they are the
    Network's driverOpts (part of its hash: a network without them hashes as before); on one
    host the overlay network is a bridge, and they are a warning naming file, line and key."""
    cluster = _load(tmp_path, ENCRYPTED, cluster=True)
    secure, plain = cluster.networks["shop_secure"], cluster.networks["shop_plain"]
    assert dict(secure.driver_opts) == {"encrypted": "true", "com.docker.network.driver.overlay.vxlanid_list": "4242"}
    assert dict(plain.driver_opts) == {}
    bare = _load(tmp_path, ENCRYPTED.replace('encrypted: "true", ', ""), cluster=True).networks["shop_secure"]
    assert bare.spec_hash != secure.spec_hash
    assert _load(tmp_path, ENCRYPTED, cluster=True).networks["shop_plain"].spec_hash == plain.spec_hash

    host = _load(tmp_path, ENCRYPTED, cluster=False)
    assert dict(host.networks["shop_secure"].driver_opts) == {}
    assert [w for w in host.warnings if "driver_opts" in w] == [
        f"{tmp_path}/compose.yaml:8:19: networks.secure.driver_opts.encrypted: encrypted has no effect on one host: "
        "the overlay network is a bridge here, whose traffic stays on the host (--runtime swarm passes it to "
        "Swarm's overlay driver)",
        f"{tmp_path}/compose.yaml:8:38: networks.secure.driver_opts.com.docker.network.driver.overlay.vxlanid_list: "
        "com.docker.network.driver.overlay.vxlanid_list has no effect on one host: the overlay network is a bridge "
        "here, whose traffic stays on the host (--runtime swarm passes it to Swarm's overlay driver)"]


def test_a_networks_driver_opts_that_cannot_work_are_refused_naming_the_key(tmp_path: Path) -> None:
    """What the overlay driver does not know it ignores (docker stack deploy says nothing): an
    error here; `encrypted` on a bridge network of one host, and a manifest's driverOpts for a
    single host's engine, cannot work either."""
    (tmp_path / "compose.yaml").write_text(textwrap.dedent("""
        name: shop
        services:
          web: {image: "busybox:1", networks: [plain]}
        networks:
          plain:
            driver_opts: {encrypted: "", com.docker.network.bridge.name: br0}
        """))
    for cluster, expected in ((True, [
        "compose.yaml:7:34: networks.plain.driver_opts.com.docker.network.bridge.name: "
        "'com.docker.network.bridge.name' is not an option of Swarm's overlay driver, which would ignore it; it "
        "takes encrypted, com.docker.network.driver.overlay.vxlanid_list and com.docker.network.driver.mtu: remove it"]), (
        False, [
            "compose.yaml:7:19: networks.plain.driver_opts.encrypted: encrypted is an option of Swarm's overlay "
            "driver, and this network's driver is bridge: set driver: overlay and deploy with --runtime swarm, or "
            "remove it",
            "compose.yaml:7:34: networks.plain.driver_opts.com.docker.network.bridge.name: not supported yet: the "
            "network driver option 'com.docker.network.bridge.name'; only com.docker.network.driver.mtu is (and on "
            "Swarm the overlay driver's options), remove it"])):
        with pytest.raises(spec.SpecError) as exc:
            spec.load(tmp_path, cluster=cluster, engine="swarm" if cluster else None)
        assert [str(p).removeprefix(f"{tmp_path}/") for p in exc.value.problems] == expected

    manifest = tmp_path / "m"
    manifest.mkdir()
    (manifest / "n.yaml").write_text(textwrap.dedent("""
        apiVersion: reconciler/v1
        kind: Network
        metadata: {name: secure}
        spec:
          driverOpts: {encrypted: ""}
        """))
    assert dict(spec.load(manifest, cluster=True, engine="swarm").networks["secure"].driver_opts) == {"encrypted": ""}
    with pytest.raises(spec.SpecError) as refused:
        spec.load(manifest, engine="native")
    assert [str(p).removeprefix(f"{manifest}/") for p in refused.value.problems] == [
        "n.yaml:6:3: Network/secure: spec.driverOpts: driverOpts are Swarm's overlay driver's options, and a "
        "network of --runtime native is a bridge on one host, where they cannot work: converge with --runtime "
        "swarm, or remove them"]
