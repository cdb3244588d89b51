"""The Swarm backend's pure parts: a ContainerConfig as a ServiceSpec, what a cluster refuses,
where a rollout stands, and which engine DOCKER_HOST names. No engine needed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.execution import translate
from reconciler.runtime import base, errors
from reconciler.runtime.docker import api
from reconciler.runtime.swarm import rollout, services
from tests.planning.builders import container

NS = 1_000_000_000


def full_config() -> base.ContainerConfig:
    return base.ContainerConfig(
        name="web", image="reg:5000/shop/web:1.4@sha256:" + "2" * 64,
        command=("/bin/web",), args=("-v",), env={"LOG": "info"}, user="app", workdir="/srv", hostname="web1",
        labels={"reconciler.owner": "blue", "reconciler.revision": "r1", "tier": "front"},
        ports=(base.PortMapping(80, 8080), base.PortMapping(53, 5353, "udp")),
        networks=("shop",), aliases=("www",),
        mounts=(base.Mount("volume", "/data", "data"), base.Mount("tmpfs", "/tmp", options=("size=64m",))),
        restart=base.RestartPolicy("on-failure", 3),
        healthcheck=base.Healthcheck(("CMD", "/bin/check"), interval=2, timeout=1, retries=4, start_period=5),
        resources=base.Resources(memory=256 << 20, cpus=0.5, pids=100),
        read_only=True, cap_add=("CAP_NET_ADMIN",), cap_drop=("CAP_MKNOD",), stop_signal="SIGQUIT",
        stop_timeout=3, init=True, replicas=3,
        update=base.UpdateConfig(order="start-first", on_failure="pause", monitor=2),
    )


def test_a_container_config_as_a_service_spec() -> None:
    assert services.service_spec(full_config()) == {
        "Name": "web",
        "Labels": {"reconciler.owner": "blue", "reconciler.revision": "r1", "tier": "front"},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "reg:5000/shop/web:1.4@sha256:" + "2" * 64,
                "Labels": {"tier": "front"},                    # ownership stays on the service
                "Env": ["LOG=info"], "StopGracePeriod": 3 * NS, "ReadOnly": True, "Init": True,
                "Command": ["/bin/web"], "Args": ["-v"], "User": "app", "Dir": "/srv", "Hostname": "web1",
                "StopSignal": "SIGQUIT",
                "Mounts": [{"Type": "volume", "Target": "/data", "ReadOnly": False, "Source": "data"},
                           {"Type": "tmpfs", "Target": "/tmp", "ReadOnly": False,
                            "TmpfsOptions": {"SizeBytes": 64 << 20}}],
                "Healthcheck": {"Test": ["CMD", "/bin/check"], "Interval": 2 * NS, "Timeout": 1 * NS,
                                "Retries": 4, "StartPeriod": 5 * NS},
                "CapabilityAdd": ["CAP_NET_ADMIN"], "CapabilityDrop": ["CAP_MKNOD"],
            },
            "RestartPolicy": {"Condition": "on-failure", "MaxAttempts": 3},
            "Resources": {"Limits": {"MemoryBytes": 256 << 20, "NanoCPUs": NS // 2, "Pids": 100}},
            "Networks": [{"Target": "shop", "Aliases": ["www"]}],
        },
        "Mode": {"Replicated": {"Replicas": 3}},
        # start-first falls back to stop-first: a published port cannot be bound twice on a node
        "UpdateConfig": {"Parallelism": 1, "Order": "stop-first", "MaxFailureRatio": 0,
                         "FailureAction": "pause", "Monitor": 2 * NS},
        "RollbackConfig": {"Parallelism": 1, "Order": "stop-first", "MaxFailureRatio": 0,
                           "FailureAction": "pause", "Monitor": 2 * NS},
        "EndpointSpec": {"Mode": "dnsrr", "Ports": [
            {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "host"},
            {"Protocol": "udp", "TargetPort": 53, "PublishedPort": 5353, "PublishMode": "host"}]},
    }


def test_an_anonymous_volume_is_a_mount_without_source_each_task_gets_its_own() -> None:
    config = replace(full_config(), mounts=(base.Mount("volume", "/data"),))
    assert services.service_spec(config)["TaskTemplate"]["ContainerSpec"]["Mounts"] == [
        {"Type": "volume", "Target": "/data", "ReadOnly": False}]


@pytest.mark.parametrize(("restart", "condition"), [("no", "none"), ("always", "any"), ("unless-stopped", "any")])
def test_restart_policies_become_swarm_conditions(restart: str, condition: str) -> None:
    spec = services.service_spec(base.ContainerConfig(name="a", image="i", restart=base.RestartPolicy(restart)))
    assert spec["TaskTemplate"]["RestartPolicy"] == {"Condition": condition}
    assert spec["UpdateConfig"]["FailureAction"] == "rollback"       # the default: Swarm rolls back


def test_the_manifest_update_policy_reaches_the_service() -> None:
    from dataclasses import replace

    from reconciler.spec import models

    c = replace(container("web"), replicas=2,
                update=models.UpdatePolicy("start-first", 60.0, 4.0, "rollback"))
    spec = services.service_spec(translate.container_config(c, name="web", labels={}))
    assert spec["Mode"] == {"Replicated": {"Replicas": 2}}
    assert spec["UpdateConfig"]["Order"] == "start-first"              # no published port here
    assert spec["UpdateConfig"]["Monitor"] == 4 * NS                   # minReady


def test_the_placement_becomes_constraints_and_spread_preferences() -> None:
    from dataclasses import replace

    from reconciler.spec import models

    c = replace(container("web"), placement=models.Placement(
        labels={"role": "edge", "disk": "ssd"}, constraints=("node.role!=manager",), preferences=("node.labels.zone",)))
    spec = services.service_spec(translate.container_config(c, name="web", labels={}))
    assert spec["TaskTemplate"]["Placement"] == {
        "Constraints": ["node.labels.disk==ssd", "node.labels.role==edge", "node.role!=manager"],
        "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}]}
    # observed back as the planner compares it
    assert services.placement(spec) == (("node.labels.disk==ssd", "node.labels.role==edge", "node.role!=manager"),
                                        ("node.labels.zone",))
    unplaced = services.service_spec(translate.container_config(container("web"), name="web", labels={}))
    assert "Placement" not in unplaced["TaskTemplate"]
    assert services.placement(unplaced) == ((), ())


def test_a_global_container_is_a_global_service() -> None:
    spec = services.service_spec(base.ContainerConfig(name="a", image="i", global_mode=True))
    assert spec["Mode"] == {"Global": {}}
    assert services.wanted_replicas({"Spec": spec}) is None


def test_secret_files_are_swarm_secrets_named_by_file_digest_and_target() -> None:
    def secret(target: str, digest: str) -> base.Mount:
        return base.Mount("secret", target, "/m/pw", read_only=True, data=b"pw",
                          options=("mode=0440", "uid=1000", "gid=7", f"digest={digest}"))

    a, b = secret("/run/secrets/pw", "sha256:" + "1" * 64), secret("/etc/pw", "sha256:" + "1" * 64)
    changed = secret("/run/secrets/pw", "sha256:" + "2" * 64)
    names = {services.secret_name("web", m) for m in (a, b, changed)}
    assert len(names) == 3                     # another target or another file: another secret
    assert all(n.startswith("web-") and len(n) <= 64 for n in names)
    config = base.ContainerConfig(name="web", image="i", mounts=(a, base.Mount("tmpfs", "/tmp")))
    spec = services.service_spec(config, {services.secret_name("web", a): "sid1"})
    cspec = spec["TaskTemplate"]["ContainerSpec"]
    assert cspec["Mounts"] == [{"Type": "tmpfs", "Target": "/tmp", "ReadOnly": False}]
    assert cspec["Secrets"] == [{"SecretID": "sid1", "SecretName": services.secret_name("web", a),
                                 "File": {"Name": "/run/secrets/pw", "UID": "1000", "GID": "7", "Mode": 0o440}}]


def test_reservations_are_the_services_resource_reservations_and_keep_older_hashes(tmp_path: Path) -> None:
    from reconciler import spec as specs

    doc = """apiVersion: reconciler/v1
kind: Container
metadata: {name: web}
spec:
  image: reg:5000/web:1
  resources: {memory: 256Mi%s}
"""
    (tmp_path / "a.yaml").write_text(doc % ", reservations: {memory: 64Mi, cpus: 250m}")
    (tmp_path / "b.yaml").write_text(doc.replace("name: web}", "name: web2}") % "")
    desired = specs.load(tmp_path)
    config = translate.container_config(desired.containers["web"], name="web", labels={})
    resources = services.service_spec(config)["TaskTemplate"]["Resources"]
    assert resources == {"Limits": {"MemoryBytes": 256 << 20}, "Reservations": {"MemoryBytes": 64 << 20,
                                                                                "NanoCPUs": NS // 4}}
    assert base.config_from_json(base.config_to_json(config)) == config
    plain = translate.container_config(desired.containers["web2"], name="web2", labels={})
    assert "Reservations" not in services.service_spec(plain)["TaskTemplate"]["Resources"]
    # a reservation is part of the spec hash; a container without one hashes as before the field
    # existed (the hash main gave it), so an upgrade recreates nothing
    assert desired.containers["web"].spec_hash != desired.containers["web2"].spec_hash
    assert desired.containers["web2"].spec_hash == "bd6812867d659fa781a0cf57fe0940fd941741f9d2b817a388ad005ecde32b37"


def test_the_long_form_of_a_port_says_ingress_and_the_short_form_hashes_as_before(tmp_path: Path) -> None:
    from reconciler import spec as specs

    doc = "apiVersion: reconciler/v1\nkind: Container\nmetadata: {name: %s}\nspec:\n  image: reg:5000/web:1\n  ports: [%s]\n"
    (tmp_path / "a.yaml").write_text(doc % ("web", '"8080:80"'))
    (tmp_path / "b.yaml").write_text(doc % ("mesh", "{published: 8081, target: 80, mode: ingress}"))
    desired = specs.load(tmp_path)
    web, mesh = desired.containers["web"], desired.containers["mesh"]
    (tmp_path / "a.yaml").write_text(doc % ("long", "{published: 8080, target: 80, protocol: tcp, mode: host}"))
    long = specs.load(tmp_path).containers["long"]
    # the hash main gave a short-form port: the new field leaves it alone; the long host form is the same port
    assert web.spec_hash == long.spec_hash == "cbb6d7f41b9c0ab023c8676505168a973966cf3d494ce7b0a54931af5fc9c22b"
    spec = services.service_spec(translate.container_config(mesh, name="mesh", labels={}))
    assert spec["EndpointSpec"] == {"Mode": "vip", "Ports": [
        {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8081, "PublishMode": "ingress"}]}
    plain = services.service_spec(translate.container_config(web, name="web", labels={}))
    assert plain["EndpointSpec"]["Mode"] == "dnsrr"
    assert plain["EndpointSpec"]["Ports"][0]["PublishMode"] == "host"


def test_one_host_fields_are_refused_naming_them() -> None:
    config = base.ContainerConfig(
        name="web", image="i", mounts=(base.Mount("volume", "/d", "data"), base.Mount("bind", "/c", "/srv/c")),
        ports=(base.PortMapping(80, 8080), base.PortMapping(443, 8443, host_ip="127.0.0.1")))
    assert services.refusals(config) == [
        "spec.volumes[1]: /srv/c:/c is a host bind mount, but a service's copies run on any node of the "
        "cluster; use a named Volume, or pin the service to one node (spec.placement.constraints: "
        "[node.hostname==NODE])",
        "spec.ports[1]: a service publishes on every address of its node, not on 127.0.0.1 alone; "
        "write 8443:443/tcp",
    ]
    assert services.refusals(base.ContainerConfig(name="ok", image="i", ports=(base.PortMapping(80, 8080),))) == []
    assert services.refusals(base.ContainerConfig(name="p", image="i", privileged=True, devices=("/dev/fuse:/dev/fuse:rwm",))) == [
        "spec.privileged: a Swarm service cannot be privileged; name the capabilities it needs (capAdd), or run it "
        "with a single-host agent",
        "spec.devices[0]: a Swarm service cannot have a host device (/dev/fuse); run it with a single-host agent on "
        "the host that has the device"]
    assert services.refusals(base.ContainerConfig(name="f", image="i", networks=("front", "back"),
                                                  ipv4_addresses={"back": "10.0.9.5"})) == [
        "spec.networks[1]: a Swarm service's tasks get their addresses from Swarm, not a fixed one; remove "
        "ipv4Address/ipv6Address, or run it with a single-host agent"]


def test_logging_is_the_task_templates_log_driver() -> None:
    config = base.ContainerConfig(name="web", image="i", log_driver="json-file", log_options={"max-size": "1m"})
    assert services.service_spec(config)["TaskTemplate"]["LogDriver"] == {"Name": "json-file", "Options": {"max-size": "1m"}}
    assert "LogDriver" not in services.service_spec(base.ContainerConfig(name="web", image="i"))["TaskTemplate"]


def test_a_bind_mount_runs_where_the_service_is_pinned_to_one_node_if_its_path_is_that_nodes() -> None:
    absolute, relative = base.Mount("bind", "/c", "/srv/c", read_only=True), base.Mount("bind", "/d", "/m/d", relative=True)
    pinned = base.ContainerConfig(name="web", image="i", mounts=(absolute,), constraints=("node.hostname == n1",))
    assert services.pinned_node(pinned.constraints) == "n1"
    assert services.refusals(pinned) == []
    assert services.service_spec(pinned)["TaskTemplate"]["ContainerSpec"]["Mounts"] == [
        {"Type": "bind", "Source": "/srv/c", "Target": "/c", "ReadOnly": True}]
    by_id = replace(pinned, mounts=(relative,), constraints=("node.labels.a==b", "node.id==abc"))
    assert services.refusals(by_id) == [
        "spec.volumes[0]: /m/d:/d is named relative to the manifests, a path where reconciler runs, not on node "
        "abc; write the absolute path on that node"]
    for loose in ("node.hostname!=n1", "node.labels.hostname==n1", "node.role==manager"):
        assert services.pinned_node((loose,)) is None
        assert len(services.refusals(replace(pinned, constraints=(loose,)))) == 1


def look(state: str = "", *, wanted: int = 2, running: int = 2) -> rollout.Look:
    return rollout.Look(name="web", state=state, message="", wanted=wanted, running=running, since="", monitor=5)


@pytest.mark.parametrize(("now", "step"), [
    (look("completed"), rollout.Step.DONE),
    (look("completed", running=1), rollout.Step.WAIT),        # completed, but a copy died since
    (look("updating"), rollout.Step.WAIT),
    (look("rollback_started"), rollout.Step.WAIT),             # followed until the rollback ends
    (look("rollback_completed"), rollout.Step.ROLLED_BACK),
    (look("paused"), rollout.Step.PAUSED),
    (look("rollback_paused"), rollout.Step.PAUSED),
    (look(""), rollout.Step.SETTLED),                         # made or scaled: no rolling update
    (look("", running=1), rollout.Step.WAIT),
    (look("", wanted=0, running=0), rollout.Step.SETTLED),    # scaled to none
])
def test_where_a_rollout_stands(now: rollout.Look, step: rollout.Step) -> None:
    assert rollout.step(now) is step


def test_a_look_counts_one_running_copy_per_slot() -> None:
    service = {"ID": "s1", "UpdatedAt": "2026-01-01T00:00:01Z",
               "Spec": {"Name": "web", "Mode": {"Replicated": {"Replicas": 2}}},
               "UpdateStatus": {"State": "updating", "StartedAt": "2026-01-01T00:00:00.5Z"}}
    tasks = [  # start-first: slot 1 has the old copy (being shut down) and the new one, both running
        {"Slot": 1, "DesiredState": "shutdown", "Status": {"State": "running"}},
        {"Slot": 1, "DesiredState": "running", "Status": {"State": "running"}},
        {"Slot": 2, "DesiredState": "running", "Status": {"State": "starting"}},
    ]
    now = rollout.look(service, tasks)
    assert (now.state, now.wanted, now.running, now.since, now.monitor) == (
        "updating", 2, 1, "2026-01-01T00:00:00.5Z", rollout.DEFAULT_MONITOR)


def test_the_task_error_is_the_newest_since_the_change() -> None:
    tasks = [{"Status": {"Err": "old failure", "Timestamp": "2026-01-01T00:00:00.9Z"}},
             {"Status": {"Err": "task: non-zero exit (3)", "Timestamp": "2026-01-01T00:00:02.000000001Z"}},
             {"Status": {"Err": "", "Timestamp": "2026-01-01T00:00:03Z"}}]
    assert services.task_error(tasks, since="2026-01-01T00:00:01Z") == "task: non-zero exit (3)"
    assert services.task_error(tasks[:1], since="2026-01-01T00:00:01Z") == ""


def test_docker_host_names_the_engine() -> None:
    local = api.from_docker_host(None)
    assert local.socket_path == api.DEFAULT_SOCKET
    assert api.from_docker_host("unix:///run/m.sock").socket_path == "/run/m.sock"
    tcp = api.from_docker_host("tcp://10.0.0.5:2375")
    assert tcp.socket_path == "10.0.0.5:2375"
    assert str(tcp._client.base_url) == "http://10.0.0.5:2375"
    for client in (local, tcp):
        client.close()
    with pytest.raises(errors.InvalidArgument, match="ssh -L"):
        api.from_docker_host("ssh://admin@manager")


def test_tls_to_the_engine_is_refused_with_a_way_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    with pytest.raises(errors.InvalidArgument, match="TLS to the engine is not supported"):
        api.from_docker_host("tcp://manager:2376")


def test_the_task_error_is_that_of_the_task_swarm_blames() -> None:
    tasks = [{"ID": "a" * 25, "Status": {"Err": "task: non-zero exit (137): dockerexec: unhealthy container",
                                         "Timestamp": "2026-01-01T00:00:02Z"}},
             {"ID": "b" * 25, "Status": {"Err": "no suitable node (host-mode port already in use on 1 node)",
                                         "Timestamp": "2026-01-01T00:00:05Z"}}]
    blame = f"update rolled back due to failure or early termination of task {'a' * 25}"
    assert services.task_error(tasks, blame=blame) == "task: non-zero exit (137): dockerexec: unhealthy container"
    assert services.task_error(tasks) == "no suitable node (host-mode port already in use on 1 node)"


def test_the_swarm_engine_is_a_service_engine_and_nothing_more() -> None:
    from reconciler.runtime.swarm import SwarmRuntime
    from tests.runtime.test_capabilities import PROTOCOLS

    rt = SwarmRuntime(api.EngineAPI("/nonexistent/docker.sock"))       # no call is made
    try:
        assert {p.__name__ for p in PROTOCOLS if isinstance(rt, p)} == {"ServiceEngine"}
    finally:
        rt.close()
