"""The Swarm backend's pure parts: a ContainerConfig as a ServiceSpec, what a cluster refuses,
where a rollout stands, and which engine DOCKER_HOST names. No engine needed."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from reconciler.execution import translate
from reconciler.runtime import base, errors
from reconciler.runtime.docker import api
from reconciler.runtime.swarm import rollout, services
from tests.planning.builders import container

NS = 1_000_000_000
API = "1.41"            # Docker 20.10's Engine API (Debian 12's dockerd, the tests' swarm)
NEWEST = max((since for _, since, _ in services.SINCE.values()), key=lambda v: tuple(map(int, v.split("."))))


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
        "EndpointSpec": {"Mode": "vip", "Ports": [
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


STACK_FILE = """
    services:
      web:
        image: reg:5000/web:1
        labels: {clabel: c}
        deploy:
          replicas: 2
          labels: {slabel: s}
          endpoint_mode: dnsrr
          update_config: {parallelism: 2, delay: 3s, failure_action: rollback, monitor: 7s, max_failure_ratio: 0.3,
                          order: start-first}
          rollback_config: {parallelism: 0, delay: 1s, failure_action: continue, monitor: 2s, max_failure_ratio: 0.1,
                            order: stop-first}
          restart_policy: {condition: on-failure, delay: 4s, max_attempts: 3, window: 20s}
    """


def test_a_stack_files_deploy_keys_make_the_service_docker_stack_deploy_makes(tmp_path: Path) -> None:
    """What `docker stack deploy` (Docker 20.10) made of STACK_FILE, read back from the service
    (tests/swarm/test_stack_e2e.py deploys both on a swarm): deploy.labels on the service alone,
    update_config and rollback_config key by key, the restart policy's delay and window, the
    endpoint mode. They were refused ("not supported yet"), or warned about as having no effect."""
    import textwrap

    from reconciler import spec

    (tmp_path / "compose.yaml").write_text(textwrap.dedent(STACK_FILE))
    desired = spec.load(tmp_path, cluster=True)
    assert not desired.warnings, desired.warnings
    (name,) = desired.containers
    c = desired.containers[name]
    body = services.service_spec(translate.container_config(c, name=name, labels=c.labels))
    assert body["Labels"]["slabel"] == "s"
    assert "slabel" not in body["TaskTemplate"]["ContainerSpec"]["Labels"]
    assert body["TaskTemplate"]["ContainerSpec"]["Labels"]["clabel"] == "c"
    assert body["UpdateConfig"] == {"Parallelism": 2, "Delay": 3 * NS, "FailureAction": "rollback", "Monitor": 7 * NS,
                                    "MaxFailureRatio": 0.3, "Order": "start-first"}
    assert body["RollbackConfig"] == {"Parallelism": 0, "Delay": 1 * NS, "FailureAction": "continue",
                                      "Monitor": 2 * NS, "MaxFailureRatio": 0.1, "Order": "stop-first"}
    assert body["TaskTemplate"]["RestartPolicy"] == {"Condition": "on-failure", "Delay": 4 * NS, "MaxAttempts": 3,
                                                     "Window": 20 * NS}
    assert body["EndpointSpec"]["Mode"] == "dnsrr"
    assert body["Mode"] == {"Replicated": {"Replicas": 2}}
    # the settings the planner compares are the same read back from the service as made of the config
    assert services.settings_of(body) == services.settings(translate.container_config(c, name=name, labels=c.labels))


def test_dnsrr_beside_an_ingress_port_is_refused_and_vip_is_kept() -> None:
    mesh = replace(BASE, ports=(base.PortMapping(80, 8080, ingress=True),))
    assert services.refusals(replace(mesh, endpoint_mode="dnsrr"), api_version=API) == [
        "spec.endpointMode: dnsrr gives the service no virtual IP, which Swarm's routing mesh needs for spec.ports[0] "
        "(mode: ingress); use vip, or publish the port in host mode"]
    assert services.service_spec(replace(mesh, endpoint_mode="vip"))["EndpointSpec"]["Mode"] == "vip"
    assert services.service_spec(replace(BASE, endpoint_mode="dnsrr"))["EndpointSpec"]["Mode"] == "dnsrr"
    # none asked: vip, as Swarm and docker stack deploy make a service (it was dnsrr)
    assert services.service_spec(BASE)["EndpointSpec"]["Mode"] == "vip"


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


def test_a_job_is_a_replicated_job_run_one_copy_at_a_time_without_update_config() -> None:
    spec = services.service_spec(replace(full_config(), job=True, restart=base.RestartPolicy("no")))
    # (with more copies at once Swarm starts a failing job's copies again and again, whatever
    # its restart policy; and it refuses an update config for a job: "Jobs may not have an update config")
    assert spec["Mode"] == {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 3}}
    assert "UpdateConfig" not in spec
    assert "RollbackConfig" not in spec
    assert spec["TaskTemplate"]["RestartPolicy"] == {"Condition": "none"}
    assert services.wanted_replicas({"Spec": spec}) == 3
    none = services.service_spec(base.ContainerConfig(name="a", image="i", job=True, replicas=0))
    assert none["Mode"] == {"ReplicatedJob": {"MaxConcurrent": 0, "TotalCompletions": 0}}
    assert [r.partition(":")[0] for r in services.refusals(replace(BASE, job=True, global_mode=True),
                                                            api_version=API)] == ["spec.replicas"]


def _task(state: str, desired: str = "complete", *, iteration: int = 1, code: int = 0, at: str = "01") -> dict[str, Any]:
    return {"ID": f"t-{state}-{at}", "DesiredState": desired, "JobIteration": {"Index": iteration} if iteration else {},
            "Status": {"State": state, "Timestamp": f"2026-01-01T00:00:{at}Z", "Err": "task: non-zero exit (3)"
                       if state == "failed" else "", "ContainerStatus": {"ExitCode": code}}}


JOB = {"ID": "j1", "CreatedAt": "2026-01-01T00:00:00Z",
       "Spec": {"Name": "migrate", "Labels": {"reconciler.owner": "blue"},
                "TaskTemplate": {"ContainerSpec": {"Image": "reg:5000/m:1@sha256:" + "2" * 64}},
                "Mode": {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 2}}},
       "JobStatus": {"JobIteration": {"Index": 1}, "LastExecution": "2026-01-01T00:00:00Z"}}


@pytest.mark.parametrize(("tasks", "outcome", "step"), [
    ([], "running", rollout.Step.WAIT),                                          # not begun yet
    ([_task("complete"), _task("running", at="02")], "running", rollout.Step.WAIT),
    ([_task("complete"), _task("complete", at="02")], "completed", rollout.Step.DONE),
    # a run before an update of the same task spec is not this run (Swarm's `_up-to-date` would count it)
    ([_task("complete", iteration=0), _task("complete", iteration=0, at="02"), _task("complete", at="03")],
     "running", rollout.Step.WAIT),
    # failed, and Swarm runs no copy again (restart none: Swarm shut it down)
    ([_task("complete"), _task("failed", "shutdown", code=3, at="02")], "failed", rollout.Step.FAILED),
    # failed, but Swarm has not decided yet, or restarts it (on-failure: a new copy, ready)
    ([_task("failed", code=3)], "running", rollout.Step.WAIT),
    ([_task("failed", "shutdown", code=3), _task("ready", "ready", at="02")], "running", rollout.Step.WAIT),
    # a restart that completed makes up for the failure
    ([_task("failed", "shutdown", code=3), _task("complete", at="02"), _task("complete", at="03")],
     "completed", rollout.Step.DONE),
])
def test_where_a_jobs_run_stands(tasks: list[dict[str, Any]], outcome: str, step: rollout.Step) -> None:
    run = services.job_run(JOB, tasks)
    assert run is not None
    assert (run.outcome, rollout.job_step(run)) == (outcome, step)


def test_a_job_service_is_seen_as_a_container_that_runs_a_job() -> None:
    running = services.service_state(JOB, [_task("complete"), _task("running", at="02")], [])
    assert (running.status, running.exit_code, running.job, running.replicas, running.replicas_running) == (
        base.ContainerStatus.RUNNING, None, True, 2, 1)
    done = services.service_state(JOB, [_task("complete"), _task("complete", at="02")], [])
    assert (done.status, done.exit_code, done.error) == (base.ContainerStatus.EXITED, 0, None)
    failed = services.service_state(JOB, [_task("complete"), _task("failed", "shutdown", code=3, at="02")], [])
    assert (failed.status, failed.exit_code, failed.restart_count, failed.error) == (
        base.ContainerStatus.EXITED, 3, 1, "task: non-zero exit (3)")
    never_ran = services.service_state(JOB, [_task("rejected", "shutdown")], [])
    assert (never_ran.status, never_ran.exit_code) == (base.ContainerStatus.EXITED, 1)
    assert services.job_run({"Spec": {"Mode": {"Replicated": {"Replicas": 1}}}}, []) is None


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
    assert plain["EndpointSpec"]["Mode"] == "vip"
    assert plain["EndpointSpec"]["Ports"][0]["PublishMode"] == "host"


def test_one_host_fields_are_refused_naming_them() -> None:
    config = base.ContainerConfig(
        name="web", image="i", mounts=(base.Mount("volume", "/d", "data"), base.Mount("bind", "/c", "/srv/c")),
        ports=(base.PortMapping(80, 8080), base.PortMapping(443, 8443, host_ip="127.0.0.1")))
    assert services.refusals(config, api_version=API) == [
        "spec.volumes[1]: /srv/c:/c is a host bind mount, but a service's copies run on any node of the "
        "cluster; use a named Volume, or pin the service to one node (spec.placement.constraints: "
        "[node.hostname==NODE])",
        "spec.ports[1]: a service publishes on every address of its node, not on 127.0.0.1 alone; "
        "write 8443:443/tcp",
    ]
    assert services.refusals(base.ContainerConfig(name="ok", image="i", ports=(base.PortMapping(80, 8080),)), api_version=API) == []
    assert services.refusals(base.ContainerConfig(name="p", image="i", privileged=True, devices=("/dev/fuse:/dev/fuse:rwm",)), api_version=API) == [
        "spec.privileged: a Swarm service cannot be privileged; name the capabilities it needs (capAdd), or run it "
        "with a single-host agent",
        "spec.devices[0]: a Swarm service cannot have a host device (/dev/fuse); run it with a single-host agent on "
        "the host that has the device"]
    assert services.refusals(base.ContainerConfig(name="f", image="i", networks=("front", "back"),
                                                  ipv4_addresses={"back": "10.0.9.5"}), api_version=API) == [
        "spec.networks[1]: a Swarm service's tasks get their addresses from Swarm, not a fixed one; remove "
        "ipv4Address/ipv6Address, or run it with a single-host agent"]
    assert services.refusals(base.ContainerConfig(
        name="f", image="i", networks=("front", "back"), mac_addresses={"back": "02:00:00:00:00:01"},
        link_local_ips={"front": ("169.254.0.9",)}, gw_priorities={"back": 3}), api_version=API) == [
        "spec.networks[0]: a Swarm service's network attachment (front) has no linkLocalIPs: its tasks' interfaces "
        "are Swarm's; remove linkLocalIPs, or run it with a single-host agent",
        "spec.networks[1]: a Swarm service's network attachment (back) has no macAddress/gwPriority: its tasks' "
        "interfaces are Swarm's; remove macAddress/gwPriority, or run it with a single-host agent"]


# -- every field of a ContainerConfig is in the service's spec or refused ------------------------

def _leaves(cls: type, prefix: str = "") -> list[str]:
    """The leaf fields of dataclass `cls`, as paths: "resources.cpus", "mounts[].target"."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if isinstance(hint, types.UnionType) and len(args) == 1:
            hint = args[0]                                         # Healthcheck | None
        if typing.get_origin(hint) is tuple and dataclasses.is_dataclass(typing.get_args(hint)[0]):
            out += _leaves(typing.get_args(hint)[0], f"{prefix}{f.name}[].")
        elif dataclasses.is_dataclass(hint):
            out += _leaves(typing.cast(type, hint), f"{prefix}{f.name}.")
        else:
            out.append(prefix + f.name)
    return out


def _set(obj: Any, path: str, value: Any) -> Any:
    """`obj` with the field at `path` (a `_leaves` path; [] is the first item) set to `value`."""
    head, _, rest = path.partition(".")
    if head.endswith("[]"):
        items = getattr(obj, head[:-2])
        return replace(obj, **{head[:-2]: (_set(items[0], rest, value), *items[1:])})
    return replace(obj, **{head: _set(getattr(obj, head), rest, value) if rest else value})


BASE = base.ContainerConfig(
    name="web", image="reg:5000/web:1", networks=("net",), ports=(base.PortMapping(80, 8080),),
    mounts=(base.Mount("tmpfs", "/t", options=("size=1m",)),), restart=base.RestartPolicy("on-failure", 1),
    healthcheck=base.Healthcheck(("CMD", "true")), resources=base.Resources(memory=64 << 20),
    ulimits=(base.Ulimit("nofile", 10, 20),))
VOLUME = replace(BASE, mounts=(base.Mount("volume", "/d", "data"),))
SECRET = replace(BASE, mounts=(base.Mount("secret", "/run/secrets/pw", "pw", read_only=True, data=b"pw",
                                          options=("mode=0400", "uid=0", "gid=0", "digest=sha256:" + "1" * 64)),))
PINNED = replace(BASE, mounts=(base.Mount("bind", "/c", "/srv/c"),), constraints=("node.hostname==n1",))
ROLLBACK = replace(BASE, ports=(), rollback=base.UpdateConfig(on_failure="pause"))

# a value other than its base's for every leaf field, and the base (BASE unless named) it is set in
CHANGES: dict[str, tuple[Any, base.ContainerConfig]] = {
    "name": ("api", BASE), "image": ("reg:5000/web:2", BASE), "command": (("/bin/web",), BASE),
    "args": (("-v",), BASE), "env": ({"A": "1"}, BASE), "user": ("app", BASE), "workdir": ("/srv", BASE),
    "hostname": ("web1", BASE), "labels": ({"tier": "front"}, BASE),
    "ports[].container_port": (81, BASE), "ports[].host_port": (8081, BASE), "ports[].protocol": ("udp", BASE),
    "ports[].host_ip": ("127.0.0.1", BASE), "ports[].ingress": (True, BASE),
    "networks": (("other",), BASE), "aliases": (("www",), BASE),
    "mounts[].type": ("volume", BASE), "mounts[].target": ("/u", BASE), "mounts[].source": ("other", VOLUME),
    "mounts[].read_only": (True, BASE), "mounts[].options": (("size=2m",), BASE),
    "mounts[].relative": (True, PINNED),
    "mounts[].data": (None, SECRET),            # a secret file whose content no record keeps: refused at create
    "restart.name": ("always", BASE), "restart.max_retries": (2, BASE), "restart.delay": (3.0, BASE),
    "restart.window": (30.0, BASE),
    "healthcheck.test": (("CMD", "false"), BASE), "healthcheck.interval": (2.0, BASE),
    "healthcheck.timeout": (2.0, BASE), "healthcheck.retries": (4, BASE), "healthcheck.start_period": (1.0, BASE),
    "healthcheck.start_interval": (0.5, BASE),
    "resources.memory": (128 << 20, BASE), "resources.cpus": (0.5, BASE), "resources.pids": (100, BASE),
    "resources.memory_reservation": (32 << 20, BASE), "resources.cpu_shares": (512, BASE),
    "resources.cpuset": ("0", BASE), "resources.memory_swap": (128 << 20, BASE),
    "resources.cpu_period": (50000, BASE), "resources.cpu_quota": (25000, BASE),
    "resources.cpuset_mems": ("0", BASE), "resources.blkio_weight": (300, BASE),
    "read_only": (True, BASE), "cap_add": (("CAP_NET_ADMIN",), BASE), "cap_drop": (("CAP_MKNOD",), BASE),
    "stop_signal": ("SIGQUIT", BASE), "stop_timeout": (3.0, BASE), "init": (True, BASE), "replicas": (2, BASE),
    "update.order": ("start-first", replace(BASE, ports=())), "update.on_failure": ("pause", BASE),
    "update.monitor": (2.0, BASE), "update.parallelism": (2, BASE), "update.delay": (1.0, BASE),
    "update.max_failure_ratio": (0.5, BASE), "global_mode": (True, BASE), "constraints": (("node.role==worker",), BASE),
    "spread": (("node.labels.zone",), BASE), "sysctls": ({"net.core.somaxconn": "1024"}, BASE),
    "ulimits[].name": ("nproc", BASE), "ulimits[].soft": (11, BASE), "ulimits[].hard": (21, BASE),
    "shm_size": (128 << 20, BASE), "extra_hosts": (("db:10.0.0.5",), BASE), "dns": (("10.0.0.53",), BASE),
    "dns_search": (("example.org",), BASE), "tty": (True, BASE), "stdin_open": (True, BASE),
    "no_new_privileges": (True, BASE), "dns_options": (("ndots:2",), BASE), "oom_score_adj": (500, BASE),
    "group_add": (("audio",), BASE), "privileged": (True, BASE), "devices": (("/dev/fuse:/dev/fuse:rwm",), BASE),
    "domainname": ("example.org", BASE),
    "reservations.memory": (32 << 20, BASE), "reservations.cpus": (0.25, BASE), "reservations.pids": (10, BASE),
    "reservations.memory_reservation": (1, BASE), "reservations.cpu_shares": (1, BASE),
    "reservations.cpuset": ("0", BASE), "reservations.memory_swap": (1, BASE),
    "reservations.cpu_period": (1, BASE), "reservations.cpu_quota": (1, BASE),
    "reservations.cpuset_mems": ("0", BASE), "reservations.blkio_weight": (10, BASE),
    "secret_env": ({"PW": "sha256:" + "2" * 64}, replace(BASE, env={"PW": "x"})),
    "ipv4_addresses": ({"net": "10.0.9.5"}, BASE), "ipv6_addresses": ({"net": "fd00::5"}, BASE),
    "log_driver": ("json-file", BASE), "log_options": ({"max-size": "1m"}, BASE),
    "mac_addresses": ({"net": "02:00:00:00:00:01"}, BASE), "link_local_ips": ({"net": ("169.254.0.9",)}, BASE),
    "gw_priorities": ({"net": 2}, BASE), "network_aliases": ({"net": ("web2",)}, BASE), "image_id": ("sha256:" + "3" * 64, BASE), "job": (True, BASE),
    "rollback.order": ("start-first", ROLLBACK), "rollback.on_failure": ("continue", ROLLBACK),
    "rollback.monitor": (2.0, ROLLBACK), "rollback.parallelism": (0, ROLLBACK), "rollback.delay": (1.0, ROLLBACK),
    "rollback.max_failure_ratio": (0.5, ROLLBACK), "service_labels": ({"team": "shop"}, BASE),
    "endpoint_mode": ("dnsrr", BASE), "links": (("db:database",), BASE), "stdin_once": (True, BASE),
}


def outcome(config: base.ContainerConfig, api_version: str) -> tuple[list[str], Any]:
    """What a cluster makes of `config`: its refusals, and its service spec (or why there is none)."""
    try:
        spec: Any = services.service_spec(config, {services.secret_name(config.name, m): "sid"
                                                   for m in config.mounts if m.type == "secret"})
    except errors.InvalidArgument as exc:
        spec = str(exc)
    if any(m.type == "secret" and m.data is None for m in config.mounts):
        spec = "no content"             # (the backend refuses to make a secret of none: _ensure_secrets)
    return services.refusals(config, api_version=api_version), spec


def test_every_container_field_is_in_the_service_spec_or_refused() -> None:
    """Set one field at a time: the spec changes (no field silently dropped, no update that
    changes nothing) or the config is refused. A field added to ContainerConfig fails here
    until it has a value in CHANGES, and then until services.py maps or refuses it."""
    assert sorted(CHANGES) == sorted(_leaves(base.ContainerConfig))
    dropped = []
    for path, (value, start) in CHANGES.items():
        changed = _set(start, path, value)
        assert changed != start or path == "mounts[].data", path         # (data is not compared)
        if outcome(changed, NEWEST) == outcome(start, NEWEST):
            dropped.append(path)
    assert dropped == []


def test_what_a_service_cannot_have_is_refused_naming_the_field() -> None:
    refused = {path: services.refusals(_set(start, path, value), api_version=NEWEST)
               for path, (value, start) in CHANGES.items()
               if path.startswith(("resources.", "reservations.")) or path == "domainname"}
    assert {path: [r.partition(":")[0] for r in why] for path, why in refused.items() if why} == {
        "resources.memory_reservation": ["spec.resources.memoryReservation"],
        "resources.cpu_shares": ["spec.resources.cpuShares"],
        "resources.cpuset": ["spec.resources.cpuset"],
        "resources.cpu_period": ["spec.resources.cpuPeriod"], "resources.cpu_quota": ["spec.resources.cpuQuota"],
        "resources.cpuset_mems": ["spec.resources.cpusetMems"], "resources.blkio_weight": ["spec.resources.blkioWeight"],
        **{f"reservations.{n}": ["spec.resources.reservations"]
           for n in ("pids", "memory_reservation", "cpu_shares", "cpuset", "memory_swap", "cpu_period", "cpu_quota",
                     "cpuset_mems", "blkio_weight")},
    }
    assert refused["resources.cpu_shares"] == [
        "spec.resources.cpuShares: a Swarm service has no CPU weight; limit it with resources.cpus, reserve CPUs "
        "on its node with resources.reservations.cpus, or run it with a single-host agent"]
    # compose's deploy.resources.reservations.memory sets both: Swarm's reservation, as docker stack deploy has it
    both = replace(BASE, resources=replace(BASE.resources, memory_reservation=32 << 20),
                   reservations=base.Resources(memory=32 << 20))
    assert services.refusals(both, api_version=API) == []
    assert services.service_spec(both)["TaskTemplate"]["Resources"]["Reservations"] == {"MemoryBytes": 32 << 20}
    shm = replace(BASE, shm_size=1 << 20, mounts=(base.Mount("tmpfs", "/dev/shm/"),))
    assert services.refusals(shm, api_version=API) == [
        "spec.shmSize: spec.volumes[0] mounts /dev/shm already, and on Swarm shmSize is a tmpfs mounted there; "
        "give that tmpfs the size, or remove one of them"]
    named = replace(BASE, domainname="a.org", sysctls={"kernel.domainname": "b.org"})
    assert services.refusals(named, api_version=API) == [
        "spec.domainname: spec.sysctls sets kernel.domainname to another name; keep one of them"]


def test_the_fields_docker_run_sets_on_a_host_are_the_container_specs() -> None:
    config = replace(BASE, mounts=(), sysctls={"net.core.somaxconn": "1024"}, ulimits=(base.Ulimit("nofile", 100, 200),),
                     shm_size=128 << 20, extra_hosts=("db:10.0.0.5", "v6:fd00::5"), dns=("10.0.0.53",),
                     dns_search=("example.org",), dns_options=("ndots:2",), tty=True, stdin_open=True,
                     group_add=("audio", "1234"), domainname="example.org", no_new_privileges=True, oom_score_adj=-500,
                     resources=base.Resources(memory=64 << 20, memory_swap=96 << 20))
    spec = services.service_spec(config)
    cspec = spec["TaskTemplate"]["ContainerSpec"]
    assert {k: cspec[k] for k in ("Sysctls", "Ulimits", "Hosts", "DNSConfig", "TTY", "OpenStdin", "Groups",
                                  "Privileges", "OomScoreAdj", "Mounts")} == {
        "Sysctls": {"net.core.somaxconn": "1024", "kernel.domainname": "example.org"},
        "Ulimits": [{"Name": "nofile", "Soft": 100, "Hard": 200}],
        "Hosts": ["10.0.0.5 db", "fd00::5 v6"],                   # hosts(5) lines, as Swarm takes them
        "DNSConfig": {"Nameservers": ["10.0.0.53"], "Search": ["example.org"], "Options": ["ndots:2"]},
        "TTY": True, "OpenStdin": True, "Groups": ["audio", "1234"],
        "Privileges": {"NoNewPrivileges": True}, "OomScoreAdj": -500,
        "Mounts": [{"Type": "tmpfs", "Target": "/dev/shm", "ReadOnly": False,
                    "TmpfsOptions": {"SizeBytes": 128 << 20, "Mode": 0o1777}}],
    }
    assert spec["TaskTemplate"]["Resources"]["SwapBytes"] == 32 << 20         # the swap alone
    unlimited = replace(config, resources=base.Resources(memory=64 << 20, memory_swap=-1))
    assert services.service_spec(unlimited)["TaskTemplate"]["Resources"]["SwapBytes"] == -1
    for key in ("Sysctls", "Ulimits", "Hosts", "DNSConfig", "TTY", "OpenStdin", "Groups", "Privileges", "OomScoreAdj"):
        assert key not in services.service_spec(base.ContainerConfig(name="web", image="i"))["TaskTemplate"]["ContainerSpec"]


PLAIN = base.ContainerConfig(name="web", image="reg:5000/web:1")
SETTING = {
    "spec.capAdd": replace(PLAIN, cap_add=("CAP_NET_ADMIN",)), "spec.capDrop": replace(PLAIN, cap_drop=("CAP_MKNOD",)),
    "spec.resources.pids": replace(PLAIN, resources=base.Resources(pids=100)),
    "spec.ulimits": replace(PLAIN, ulimits=(base.Ulimit("nofile", 10, 20),)),
    "spec.noNewPrivileges": replace(PLAIN, no_new_privileges=True), "spec.oomScoreAdj": replace(PLAIN, oom_score_adj=0),
    "spec.resources.memorySwap": replace(PLAIN, resources=base.Resources(memory=1 << 20, memory_swap=-1)),
    "spec.healthcheck.startInterval": replace(PLAIN, healthcheck=base.Healthcheck(("CMD", "true"), start_period=60,
                                                                                  start_interval=0.5)),
}


@pytest.mark.parametrize("field", sorted(services.SINCE))
def test_a_field_the_managers_api_version_lacks_is_refused_naming_the_docker_that_has_it(field: str) -> None:
    is_set, since, docker = services.SINCE[field]
    config = SETTING[field]
    assert is_set(config)
    older = f"1.{int(since.split('.')[1]) - 1}"
    assert services.refusals(config, api_version=since) == []
    assert services.refusals(config, api_version=older) == [
        f"{field}: the Swarm manager speaks Engine API {older}, and a service takes this field from API {since} "
        f"(Docker {docker}) on; upgrade the cluster to Docker {docker} or later, or run it with a single-host agent"]


def test_a_spec_with_a_field_newer_than_the_client_speaks_is_sent_at_that_fields_version() -> None:
    assert services.request_version(BASE, "1.43") is None
    assert services.request_version(replace(BASE, no_new_privileges=True), "1.43") == "1.44"
    assert services.request_version(replace(BASE, no_new_privileges=True, oom_score_adj=1), "1.43") == "1.46"
    assert services.request_version(replace(BASE, no_new_privileges=True), "1.44") is None
    assert services.request_version(replace(BASE, cap_add=("CAP_NET_ADMIN",)), "1.41") is None


def test_logging_is_the_task_templates_log_driver() -> None:
    config = base.ContainerConfig(name="web", image="i", log_driver="json-file", log_options={"max-size": "1m"})
    assert services.service_spec(config)["TaskTemplate"]["LogDriver"] == {"Name": "json-file", "Options": {"max-size": "1m"}}
    assert "LogDriver" not in services.service_spec(base.ContainerConfig(name="web", image="i"))["TaskTemplate"]


def test_a_bind_mount_runs_where_the_service_is_pinned_to_one_node_if_its_path_is_that_nodes() -> None:
    absolute, relative = base.Mount("bind", "/c", "/srv/c", read_only=True), base.Mount("bind", "/d", "/m/d", relative=True)
    pinned = base.ContainerConfig(name="web", image="i", mounts=(absolute,), constraints=("node.hostname == n1",))
    assert services.pinned_node(pinned.constraints) == "n1"
    assert services.refusals(pinned, api_version=API) == []
    assert services.service_spec(pinned)["TaskTemplate"]["ContainerSpec"]["Mounts"] == [
        {"Type": "bind", "Source": "/srv/c", "Target": "/c", "ReadOnly": True}]
    by_id = replace(pinned, mounts=(relative,), constraints=("node.labels.a==b", "node.id==abc"))
    assert services.refusals(by_id, api_version=API) == [
        "spec.volumes[0]: /m/d:/d is named relative to the manifests, a path where reconciler runs, not on node "
        "abc; write the absolute path on that node"]
    for loose in ("node.hostname!=n1", "node.labels.hostname==n1", "node.role==manager"):
        assert services.pinned_node((loose,)) is None
        assert len(services.refusals(replace(pinned, constraints=(loose,)), api_version=API)) == 1


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


def test_validate_for_swarm_reports_what_every_manager_refuses_naming_file_and_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`validate --runtime swarm` finds what `apply --runtime swarm` would refuse before it asks
    the manager (a host bind mount, a non-wildcard port, privileged), with no engine at all."""
    from reconciler.cli.main import main

    (tmp_path / "web.yaml").write_text("""\
apiVersion: reconciler/v1
kind: Container
metadata: {name: web}
spec:
  image: reg:5000/shop/web:1.4
  privileged: true
  ports: ["127.0.0.1:8080:80"]
---
apiVersion: reconciler/v1
kind: Container
metadata: {name: ok}
spec:
  image: reg:5000/shop/web:1.4
  capAdd: [NET_ADMIN]
""")
    assert main(["validate", "--runtime", "swarm", str(tmp_path)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2, out
    assert out[0].startswith(f"{tmp_path / 'web.yaml'}:1:1: Container/web: spec.ports[0]: a service publishes on every")
    assert out[1].startswith(f"{tmp_path / 'web.yaml'}:1:1: Container/web: spec.privileged: a Swarm service cannot")
    assert main(["validate", "--runtime", "native", str(tmp_path)]) == 0     # a single host runs them


def test_a_healthcheck_without_test_and_a_start_interval_go_as_dockerd_takes_them() -> None:
    """A test left empty (and a timing of 0) is the image's: the task's container merges them,
    as a container's does; a start interval goes as StartInterval (ns), at API 1.44."""
    timings = replace(PLAIN, healthcheck=base.Healthcheck((), interval=0, timeout=0, retries=0, start_period=60,
                                                          start_interval=0.5))
    assert services.service_spec(timings)["TaskTemplate"]["ContainerSpec"]["Healthcheck"] == {
        "Test": [], "Interval": 0, "Timeout": 0, "Retries": 0, "StartPeriod": 60 * NS, "StartInterval": NS // 2}
    assert services.request_version(timings, "1.43") == "1.44"
    plain = replace(timings, healthcheck=replace(timings.healthcheck, start_interval=0.0))
    assert "StartInterval" not in services.service_spec(plain)["TaskTemplate"]["ContainerSpec"]["Healthcheck"]
    assert services.request_version(plain, "1.43") is None
