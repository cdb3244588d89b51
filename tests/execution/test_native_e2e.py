"""`reconcile apply|diff` end to end on the native engine (root, a real registry, runc + conmon).

One engine per test (own state root, run dir, name prefix and subnet); teardown removes
everything and fails the test if a mount, conmon process, cgroup or container dir is left.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.execution.helpers import write
from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]


def manifests(m: Path, image: str, subnet: str, *, web_env: str = "1", web_health: str = "true",
              timeout: str = "30s") -> None:
    write(m, "net.yaml", f"""
        apiVersion: reconciler/v1
        kind: Network
        metadata: {{name: shop}}
        spec: {{subnet: {subnet}}}
        """)
    write(m, "web.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: web}}
        spec:
          image: {image}
          command: [sleep, "3600"]
          env: {{V: "{web_env}"}}
          networks: [shop]
          volumes: ["data:/data"]
          restart: always
          healthcheck: {{test: [CMD, "{web_health}"], interval: 1s, timeout: 2s, retries: 1}}
          update: {{healthTimeout: {timeout}}}
        ---
        apiVersion: reconciler/v1
        kind: Volume
        metadata: {{name: data}}
        spec: {{}}
        """)
    write(m, "api.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: api}}
        spec:
          image: {image}
          command: [sleep, "3600"]
          networks: [shop]
          dependsOn: [web]
        """)


def test_converge_change_one_break_and_prune(tmp_path: Path, host: Host, busybox_image: str) -> None:
    m = tmp_path / "m"
    manifests(m, busybox_image, host.subnet)
    assert host.cli("apply", str(m)) == 0
    first = host.ids()
    assert set(first) == {"web", "api"}
    assert host.cli("apply", str(m)) == 0
    assert host.ids() == first                                   # nothing to do, nothing done
    assert host.cli("diff", str(m)) == 0

    manifests(m, busybox_image, host.subnet, web_env="2")        # one field of one container
    assert host.cli("diff", str(m)) == 1
    assert host.cli("apply", str(m)) == 0
    second = host.ids()
    assert second["web"] != first["web"]
    assert second["api"] == first["api"]

    (m / "api.yaml").write_text("kind: Container\nmetadata: {name: api\n")    # broken
    assert host.cli("apply", str(m)) == 2
    assert host.ids() == second

    rt = host.runtime()
    try:
        assert rt.exec("web", ["touch", "/data/keep"]).exit_code == 0
    finally:
        rt.close()
    (m / "api.yaml").unlink()
    (m / "web.yaml").unlink()
    assert host.cli("apply", str(m)) == 0                        # containers pruned ...
    assert host.ids() == {}
    rt = host.runtime()
    try:
        [vol] = rt.list_volumes({"reconciler.owner": "default"})   # ... the volume kept with its data
        assert (Path(vol.mountpoint) / "keep").exists()
        rt.remove_volume(vol.name)
    finally:
        rt.close()


def test_failing_healthcheck_on_update_rolls_back(tmp_path: Path, host: Host, busybox_image: str) -> None:
    m = tmp_path / "m"
    manifests(m, busybox_image, host.subnet)
    assert host.cli("apply", str(m)) == 0
    before = host.runtime().inspect_container("web")
    manifests(m, busybox_image, host.subnet, web_env="2", web_health="false", timeout="20s")
    assert host.cli("apply", str(m)) == 1
    rt = host.runtime()
    try:
        after = rt.inspect_container("web")
        assert after.status == "running"
        assert after.labels["reconciler.spec-hash"] == before.labels["reconciler.spec-hash"]
        assert after.image_id == before.image_id
        assert rt.inspect_container("api").status == "running"
        assert rt.exec("web", ["sh", "-c", "test \"$V\" = 1"]).exit_code == 0
    finally:
        rt.close()


START_FIRST_WEB = """
    apiVersion: reconciler/v1
    kind: Container
    metadata: {{name: web}}
    spec:
      image: {image}
      # what was alive when this one started, then an alive marker it drops when stopped
      command: [sh, -c, 'ls /data > /data/seen-by-$V; touch /data/alive-$V; trap "rm /data/alive-$V; exit 0" TERM; sleep 3600 & wait']
      env: {{V: "{v}"}}
      networks: [shop]
      volumes: ["data:/data"]
      healthcheck: {{test: [CMD, "true"], interval: 1s, timeout: 2s, retries: 1}}
      update: {{order: start-first, healthTimeout: 30s}}
    ---
    apiVersion: reconciler/v1
    kind: Volume
    metadata: {{name: data}}
    spec: {{}}
    """


def test_start_first_update_starts_the_new_container_before_stopping_the_old(
        tmp_path: Path, host: Host, busybox_image: str) -> None:
    m = tmp_path / "m"
    manifests(m, busybox_image, host.subnet)
    write(m, "web.yaml", START_FIRST_WEB.format(image=busybox_image, v="1"))
    assert host.cli("apply", str(m)) == 0
    first = host.ids()
    write(m, "web.yaml", START_FIRST_WEB.format(image=busybox_image, v="2"))
    assert host.cli("apply", str(m)) == 0
    second = host.ids()
    assert second["web"] != first["web"]
    assert second["api"] == first["api"]
    rt = host.runtime()
    try:
        web = rt.inspect_container("web")               # renamed into place, running
        assert web.id == second["web"]
        assert web.status == "running"
        assert sorted(c.name for c in rt.list_containers()) == ["api", "web"]
        # the new one started while the old one was still running (its marker was there) ...
        assert "alive-1" in rt.exec("web", ["cat", "/data/seen-by-2"]).stdout.decode().split()
        # ... and the old one stopped afterwards (its trap removed the marker)
        assert rt.exec("web", ["ls", "/data"]).stdout.decode().split() == ["alive-2", "seen-by-1", "seen-by-2"]
        # peers know it by its final name, and no more by its temporary one
        hosts = rt.exec("api", ["cat", "/etc/hosts"]).stdout.decode()
        ip = web.ip_addresses["shop"]
        assert any(line.split()[:2] == [ip, "web"] for line in hosts.splitlines()), hosts
        assert ".next" not in hosts
    finally:
        rt.close()
    assert host.cli("apply", str(m)) == 0                   # converged: nothing more to do
    assert host.ids() == second


def test_a_docker_io_reference_finds_the_image_the_native_store_tagged_and_plans_no_pull(
        tmp_path: Path, host: Host, busybox_image: str) -> None:
    """The native store records `docker.io/busybox:1` as `docker.io/library/busybox:1` (the
    registry client's parse); the observed state keys it by the same rule, so a manifest that
    writes it either way finds it and plans no pull (before: `pull-image ... not present
    locally` on every pass). No registry of the internet is asked: the tag is given locally
    and the planner is asked with nothing resolved."""
    from reconciler import spec
    from reconciler.execution import observing
    from reconciler.planning import actions, planner
    from reconciler.state import inventory

    assert host.cli("pull", "-q", busybox_image) == 0
    write(tmp_path / "m", "web.yaml", """
        apiVersion: reconciler/v1
        kind: Container
        metadata: {name: web}
        spec: {image: "docker.io/busybox:1", command: [sleep, "3600"]}
        ---
        apiVersion: reconciler/v1
        kind: Container
        metadata: {name: api}
        spec: {image: "index.docker.io/library/busybox:1", command: [sleep, "3600"]}
        """)
    rt = host.runtime()
    try:
        rt.tag_image(busybox_image, "docker.io/busybox:1")
        recorded = [t for i in rt.list_images() for t in i.repo_tags if "busybox:1" in t]
        observed = observing.observe(rt)
    finally:
        rt.close()
    assert recorded == ["docker.io/library/busybox:1"]
    plan = planner.plan(spec.load(tmp_path / "m"), observed, inventory.Inventory(),
                        planner.PlanOptions(owner="default"))
    assert [a.render() for a in plan.actions if a.kind == actions.ActionKind.PULL_IMAGE] == []
    assert {a.resource for a in plan.actions if a.kind == actions.ActionKind.CREATE} == {
        "container:web", "container:api"}
