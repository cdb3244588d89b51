"""Limits the same on every engine reconciler drives: `reconcile update --runtime docker` does on
dockerd what it does on the native engine (the same checks first, `runtime/limits.py`, then
dockerd's `POST /containers/{id}/update`: the same output, exit codes, warnings and limits), and
the Docker backend's create sends the CFS period and quota, the memory nodes and the block I/O
weight a ContainerConfig asks (dockerd and Podman alike)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reconciler.runtime import base
from reconciler.runtime.docker import backend
from tests.docker.conftest import TEST_LABEL, Cli, Engine, PulledImage, Scope

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.root]

MiB = 1 << 20
BLKIO_DISCARDED = "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."
CGROUP_FILES = ("memory/memory.limit_in_bytes", "memory/memory.memsw.limit_in_bytes",
                "memory/memory.soft_limit_in_bytes", "cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us",
                "cpu/cpu.shares", "pids/pids.max")
HOST_CONFIG = ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuPeriod", "CpuQuota",
               "CpusetMems", "PidsLimit", "BlkioWeight", "RestartPolicy")


def _blkio_weighed() -> bool:
    """Whether this kernel weighs block I/O (dockerd's sysinfo: cgroup v1 CFQ/BFQ weight, v2 io)."""
    root = Path("/sys/fs/cgroup")
    if (root / "cgroup.controllers").exists():
        return "io" in (root / "cgroup.controllers").read_text().split()
    return any((root / "blkio" / f).exists() for f in ("blkio.weight", "blkio.bfq.weight"))


def updates(cli: Cli, image: str, prefix: str, host_config: Any) -> dict[str, Any]:
    """`reconcile update` on an engine, of a running container: what it printed, the exit codes,
    the limits its cgroups and its inspect document have after each step."""
    box = f"{prefix}-box"

    def kernel() -> list[str]:
        read = cli("exec", box, "cat", *(f"/sys/fs/cgroup/{f}" for f in CGROUP_FILES))
        assert read.returncode == 0, read.stderr
        return read.stdout.split()

    def step(*args: str) -> tuple[int, str, list[str]]:
        done = cli("update", *args)
        return done.returncode, done.stdout.replace(prefix, "P"), done.stderr.replace(prefix, "P").splitlines()

    ran = cli("run", "-d", "--name", box, "-l", f"{TEST_LABEL}={prefix}", "--network", "none", "-m", "64m",
              "--pids-limit", "50", image, "sleep", "3600")
    assert ran.returncode == 0, ran.stderr
    out: dict[str, Any] = {}
    out["changed"] = step("--memory", "96m", "--memory-swap", "128m", "--memory-reservation", "32m", "--cpus", "0.5",
                          "--pids-limit", "70", "-c", "512", "--restart", "on-failure:3", box)
    out["kernel"] = kernel()
    out["inspect"] = {k: host_config(box)[k] for k in HOST_CONFIG}
    out["missing"] = step("--pids-limit", "-1", "--memory-swap", "-1", f"{prefix}-nosuch", box)
    out["unlimited"] = (kernel()[-1], host_config(box)["MemorySwap"], host_config(box)["PidsLimit"])
    out["too_small"] = step("--memory", "4m", box)
    out["below_reservation"] = step("--memory", "16m", "--memory-reservation", "32m", box)
    out["cpu_range"] = step("--cpus", "64", box)
    out["conflict"] = step("--cpu-quota", "20000", box)
    out["no_flag"] = step(box)
    out["blkio"] = step("--blkio-weight", "300", box)
    out["mems"] = step("--cpuset-mems", "0", box)
    out["after"] = kernel()
    out["inspect_after"] = {k: host_config(box)[k] for k in ("Memory", "CpusetMems", "BlkioWeight")}
    cli("rm", "-f", box)
    return out


def test_update_on_docker_does_what_it_does_on_the_native_engine(
        tmp_path: Path, scope: Scope, docker_image: PulledImage, native_cli: Cli, busybox_image: str) -> None:
    docker_cli = Cli(tmp_path / "docker", "docker")
    scope.containers.append(f"{scope.prefix}-box")      # removed even on failure

    def on_dockerd(name: str) -> dict[str, Any]:
        doc = subprocess.run(["docker", "inspect", name], capture_output=True, text=True, check=True).stdout
        config: dict[str, Any] = json.loads(doc)[0]["HostConfig"]
        return config

    def on_native(name: str) -> dict[str, Any]:
        config: dict[str, Any] = json.loads(native_cli("inspect", name).stdout)[0]["HostConfig"]
        return config

    on_docker = updates(docker_cli, docker_image.ref, scope.prefix, on_dockerd)
    native = updates(native_cli, busybox_image, scope.prefix, on_native)

    # the name of each container changed, as docker update prints it, and its limits at once
    assert on_docker["changed"] == native["changed"] == (0, "P-box\n", [])
    assert on_docker["kernel"] == native["kernel"] == [str(96 * MiB), str(128 * MiB), str(32 * MiB), "50000",
                                                        "100000", "512", "70"]
    assert on_docker["inspect"] == native["inspect"] == {
        "Memory": 96 * MiB, "MemorySwap": 128 * MiB, "MemoryReservation": 32 * MiB, "NanoCpus": 500_000_000,
        "CpuShares": 512, "CpuPeriod": 0, "CpuQuota": 0, "CpusetMems": "", "PidsLimit": 70, "BlkioWeight": 0,
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}}
    # a container not found is said, the others are changed: exit 1
    for engine in (on_docker, native):
        code, out, err = engine["missing"]
        assert (code, out) == (1, "P-box\n")
        assert "No such container: P-nosuch" in err[0]
        # (dockerd 20.10 leaves a running container's memsw limit as it was on a -1: its own way)
        # (no pids limit: dockerd's inspect says 0 after an update to it, the native engine's null)
        assert engine["unlimited"][:2] == ("max", -1)
        assert engine["unlimited"][2] in (0, None)
    # wrong in itself: the same words, exit 2, no container changed
    assert on_docker["too_small"] == native["too_small"]
    assert on_docker["too_small"][:2] == (2, "")
    assert on_docker["too_small"][2][0] == "error: Minimum memory limit allowed is 6MB"
    assert on_docker["below_reservation"] == native["below_reservation"]
    assert on_docker["below_reservation"][2][0] == \
        "error: Minimum memory limit can not be less than memory reservation limit, see usage"
    assert on_docker["cpu_range"] == native["cpu_range"]
    assert on_docker["cpu_range"][:2] == (2, "")
    assert on_docker["cpu_range"][2][0].startswith("error: Range of CPUs is from 0.01 to ")
    assert on_docker["no_flag"] == native["no_flag"]
    assert on_docker["no_flag"][2][0] == "error: you must provide one or more flags when using this command"
    # not fitting what the container has: said for it, in dockerd's words, exit 1
    for engine in (on_docker, native):
        code, out, err = engine["conflict"]
        assert (code, out) == (1, "")
        assert "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set" in err[0]
    # a block I/O weight this kernel cannot apply: dockerd's warning, on both; memory nodes applied
    blkio = (0, "P-box\n", [] if _blkio_weighed() else [f"warning: {BLKIO_DISCARDED}"])
    assert on_docker["blkio"] == native["blkio"] == blkio
    assert on_docker["mems"] == native["mems"] == (0, "P-box\n", [])
    assert on_docker["after"][:1] + on_docker["after"][2:] == native["after"][:1] + native["after"][2:]   # (memsw: above)
    assert on_docker["after"][0] == str(96 * MiB)                         # none of the refused ones changed it
    assert on_docker["inspect_after"] == native["inspect_after"] == {
        "Memory": 96 * MiB, "CpusetMems": "0", "BlkioWeight": 300 if _blkio_weighed() else 0}


def test_the_docker_clis_update_prints_what_reconciles_does(
        tmp_path: Path, scope: Scope, docker_image: PulledImage) -> None:
    """The same change by `docker update` and `reconcile update --runtime docker`: the same names
    printed, the same limits."""
    cli = Cli(tmp_path, "docker")
    ours, theirs = scope.name("containers", "ours"), scope.name("containers", "theirs")
    for name in (ours, theirs):
        ran = cli("run", "-d", "--name", name, "--network", "none", docker_image.ref, "sleep", "3600")
        assert ran.returncode == 0, ran.stderr
    flags = ("--memory", "80m", "--memory-swap", "-1", "--cpu-period", "50000", "--cpu-quota", "25000",
             "--cpuset-mems", "0", "--restart", "always")
    mine = cli("update", *flags, ours)
    docker = subprocess.run(["docker", "update", *flags, theirs], capture_output=True, text=True, check=False)
    assert (mine.returncode, mine.stdout) == (docker.returncode, docker.stdout.replace(theirs, ours)) == (0, f"{ours}\n")

    def limits(name: str) -> list[Any]:
        doc = json.loads(subprocess.run(["docker", "inspect", name], capture_output=True, text=True,
                                        check=True).stdout)[0]["HostConfig"]
        return [doc[k] for k in HOST_CONFIG]

    assert limits(ours) == limits(theirs)
    assert limits(ours)[:1] == [80 * MiB]


def test_update_on_swarm_and_fake_is_refused_naming_the_tool(tmp_path: Path) -> None:
    for runtime, hint in (("swarm", "docker service update"), ("fake", "use --runtime native or docker")):
        proc = Cli(tmp_path, runtime)("update", "--memory", "64m", "web")
        assert proc.returncode == 2
        assert f"reconcile update does not work with --runtime {runtime}" in proc.stderr
        assert hint in proc.stderr


def test_create_sends_the_cfs_limit_memory_nodes_and_blkio_weight(engine: Engine) -> None:
    """A ContainerConfig's CFS period and quota, memory nodes and block I/O weight reach the
    engine: inspect shows them (a weight this kernel cannot apply: dockerd's warning, which says
    it was sent)."""
    rt, scope = engine.rt, engine.scope
    resources = base.Resources(memory=64 * MiB, cpu_period=50_000, cpu_quota=20_000, cpuset_mems="0",
                               blkio_weight=300)
    name = scope.name("containers", "cfs")
    config = base.ContainerConfig(name=name, image=engine.image.ref, args=("sleep", "600"), networks=("none",),
                                  labels=scope.labels, resources=resources)
    rt.create_container(config)
    host = rt.api.container_inspect(name)["HostConfig"]
    assert (host["CpuPeriod"], host["CpuQuota"], host["CpusetMems"]) == (50_000, 20_000, "0")
    rt.start_container(name)
    read = rt.exec(name, ["cat", "/sys/fs/cgroup/cpu/cpu.cfs_period_us", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
                          "/sys/fs/cgroup/cpuset/cpuset.mems"])
    assert read.stdout.split() == [b"50000", b"20000", b"0"], read.stderr
    if engine.kind == "docker":
        # what the create sends, to dockerd itself: its warning names the weight it was sent
        sent = scope.name("containers", "sent")
        created = rt.api.container_create(sent, {**backend.container_body(config), "Image": engine.image.ref})
        weighed = _blkio_weighed()
        assert (BLKIO_DISCARDED in (created.get("Warnings") or [])) is not weighed
        assert rt.api.container_inspect(sent)["HostConfig"]["BlkioWeight"] == (300 if weighed else 0)


def test_the_backend_updates_a_running_container_on_dockerd_and_podman(engine: Engine) -> None:
    """`update_resources` (base.Updating) on each engine the Docker backend drives: the change
    checked first (wrong in itself: InvalidArgument, in dockerd's words, nothing sent), then on the
    running container's cgroups and in its inspect document."""
    from reconciler.runtime import errors

    rt, scope = engine.rt, engine.scope
    name = scope.name("containers", "upd")
    rt.create_container(base.ContainerConfig(name=name, image=engine.image.ref, args=("sleep", "600"),
                                             networks=("none",), labels=scope.labels,
                                             resources=base.Resources(memory=64 * MiB)))
    rt.start_container(name)
    with pytest.raises(errors.InvalidArgument, match=r"^Minimum memory limit allowed is 6MB"):
        rt.update_resources(name, base.ResourceUpdate(memory=MiB))
    if engine.kind == "podman":
        refused = None
        try:
            rt.update_resources(name, base.ResourceUpdate(memory=96 * MiB))
        except errors.Unavailable as exc:      # Podman 4.3's compat API has no update: said, with what to use
            refused = exc
        if refused is not None:
            assert "does not implement docker update" in refused.message
            assert "podman update" in (refused.hint or "")
            assert rt.api.container_inspect(name)["HostConfig"]["Memory"] == 64 * MiB
            return
    assert rt.update_resources(name, base.ResourceUpdate(memory=96 * MiB, memory_swap=-1, cpu_period=50_000,
                                                         cpu_quota=25_000, pids=70)) == []
    host = rt.api.container_inspect(name)["HostConfig"]
    assert (host["Memory"], host["CpuPeriod"], host["CpuQuota"], host["PidsLimit"]) == (96 * MiB, 50_000, 25_000, 70)
    read = rt.exec(name, ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
                          "/sys/fs/cgroup/pids/pids.max"])
    assert read.stdout.split() == [str(96 * MiB).encode(), b"25000", b"70"], read.stderr


def _post(sock: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST `body` as JSON to an Engine API on a Unix socket: (status, the JSON answer)."""
    import http.client
    import socket as socketmod

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socketmod.socket(socketmod.AF_UNIX, socketmod.SOCK_STREAM)
            self.sock.connect(sock)

    conn = Conn("localhost", timeout=60)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


# create bodies' HostConfig that dockerd refuses, or takes with a warning, by its checks of limits
CREATE_LIMITS: tuple[dict[str, Any], ...] = (
    {"Memory": 1000}, {"MemorySwap": 100 * MiB}, {"Memory": 10 * MiB, "MemorySwap": 5 * MiB},
    {"MemoryReservation": 1000}, {"Memory": 10 * MiB, "MemoryReservation": 20 * MiB},
    {"NanoCpus": 500_000_000, "CpuPeriod": 50_000}, {"NanoCpus": 500_000_000, "CpuQuota": 50_000},
    {"NanoCpus": 4096 * 1_000_000_000}, {"CpuPeriod": 500}, {"CpuPeriod": 2_000_000}, {"CpuQuota": 500},
    {"CpusetCpus": "0-4095"}, {"CpusetCpus": "x"}, {"CpusetMems": "1-9"}, {"CpusetMems": "0-"},
    {"BlkioWeight": 5000}, {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}},
    {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}},
)


def test_the_engine_apis_create_checks_limits_as_dockerd_does(
        tmp_path: Path, host: Any, busybox_image: str, docker: Any, docker_image: PulledImage, scope: Scope) -> None:
    """The native Engine API's `POST /containers/create` takes CpusetMems and BlkioWeight (it
    refused both: not applied) and checks a create's limits and restart policy as dockerd does
    (it checked none): for each body, the status and words dockerd answers, and for one it takes,
    the same warnings and the same limits in inspect."""
    from tests.api.test_engine_api import docker as docker_cli
    from tests.api.test_engine_api import serving

    with serving(host, tmp_path / "docker.sock") as sock:
        docker_cli(sock, "pull", busybox_image)
        for n, settings in enumerate(CREATE_LIMITS):
            theirs = _post("/var/run/docker.sock", f"/v1.41/containers/create?name={scope.name('containers', f'c{n}')}",
                           {"Image": docker_image.ref, "Cmd": ["true"], "Labels": scope.labels,
                            "HostConfig": settings})
            ours = _post(sock, f"/v1.41/containers/create?name=c{n}",
                         {"Image": busybox_image, "Cmd": ["true"], "HostConfig": settings})
            assert (ours[0], ours[1].get("message"), ours[1].get("Warnings")) == \
                (theirs[0], theirs[1].get("message"), theirs[1].get("Warnings")), settings
            assert theirs[0] in (201, 400), theirs

        taken = {"Memory": 64 * MiB, "CpuPeriod": 50_000, "CpuQuota": 25_000, "CpusetMems": "0", "BlkioWeight": 300}
        theirs = _post("/var/run/docker.sock", f"/v1.41/containers/create?name={scope.name('containers', 'taken')}",
                       {"Image": docker_image.ref, "Cmd": ["sleep", "600"], "Labels": scope.labels,
                        "HostConfig": {**taken, "NetworkMode": "none"}})
        ours = _post(sock, "/v1.41/containers/create?name=taken",
                     {"Image": busybox_image, "Cmd": ["sleep", "600"], "HostConfig": {**taken, "NetworkMode": "none"}})
        assert ours[0] == theirs[0] == 201, (ours, theirs)
        assert ours[1]["Warnings"] == theirs[1]["Warnings"]

        def shown(sock: str, name: str) -> list[Any]:
            doc = json.loads(docker_cli(sock, "inspect", name).stdout)[0]["HostConfig"]
            return [doc[k] for k in taken]

        assert shown(sock, "taken") == shown("/var/run/docker.sock", f"{scope.prefix}-taken")
        assert shown(sock, "taken")[:4] == [64 * MiB, 50_000, 25_000, "0"]
        docker_cli(sock, "start", "taken")
        read = docker_cli(sock, "exec", "taken", "cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
                          "/sys/fs/cgroup/cpuset/cpuset.mems")
        assert read.stdout.split() == ["25000", "0"]
        docker_cli(sock, "rm", "-f", "taken")


MANIFEST = """\
apiVersion: reconciler/v1
kind: Container
metadata: {{name: {name}}}
spec:
  image: {image}
  command: [sleep, "3600"]
  networks: [none]
  resources: {{cpuPeriod: 50000, cpuQuota: {quota}, cpusetMems: "0", blkioWeight: 300}}
"""
COMPOSE = """\
name: {project}
services:
  svc:
    image: {image}
    command: sleep 3600
    network_mode: none
    cpu_period: 40000
    cpu_quota: ${{QUOTA:-30000}}
    cpuset: "0"
    blkio_config:
      weight: 300
"""


def declared(cli: Cli, tmp: Path, image: str, prefix: str, host_config: Any) -> dict[str, Any]:
    """A manifest's cpuPeriod, cpuQuota, cpusetMems, blkioWeight and a compose file's cpu_period,
    cpu_quota, blkio_config.weight applied on an engine (`reconcile apply`): what each container's
    cgroups and inspect document have, and what a change of the quota does."""
    name, project = f"{prefix}-lim", f"{prefix}c"
    files = ("cpu/cpu.cfs_period_us", "cpu/cpu.cfs_quota_us", "cpuset/cpuset.mems")

    def kernel(container: str) -> list[str]:
        read = cli("exec", container, "cat", *(f"/sys/fs/cgroup/{f}" for f in files))
        assert read.returncode == 0, read.stderr
        return read.stdout.split()

    def inspect(container: str) -> list[Any]:
        doc = host_config(container)
        return [doc[k] for k in ("CpuPeriod", "CpuQuota", "CpusetCpus", "CpusetMems", "BlkioWeight")]

    manifests, compose = tmp / f"{cli.runtime}-m", tmp / f"{cli.runtime}-c" / project
    manifests.mkdir()
    compose.mkdir(parents=True)
    (manifests / "c.yaml").write_text(MANIFEST.format(name=name, image=image, quota=25000))
    (compose / "compose.yaml").write_text(COMPOSE.format(project=project, image=image))
    out: dict[str, Any] = {}
    applied = cli("apply", str(manifests), "--owner", f"{prefix}-m")
    assert applied.returncode == 0, applied.stderr
    out["manifest_warned"] = BLKIO_DISCARDED in applied.stderr
    applied = cli("apply", str(compose), "--owner", f"{prefix}-c")
    assert applied.returncode == 0, applied.stderr
    svc = f"{project}-svc-1"
    out["kernel"] = (kernel(name), kernel(svc))
    out["inspect"] = (inspect(name), inspect(svc))
    before = host_config(name)
    # a change of one is drift that recreates the container, as for the other limits
    (manifests / "c.yaml").write_text(MANIFEST.format(name=name, image=image, quota=-1))
    out["diff"] = cli("diff", str(manifests), "--owner", f"{prefix}-m").returncode
    applied = cli("apply", str(manifests), "--owner", f"{prefix}-m")
    assert applied.returncode == 0, applied.stderr
    out["recreated"] = host_config(name)["Id"] != before["Id"]
    out["changed"] = kernel(name)[1]
    for container in (name, svc):
        cli("rm", "-f", container)
    return out


def test_a_manifest_and_a_compose_file_set_the_cfs_limit_memory_nodes_and_blkio_weight_on_each_engine(
        tmp_path: Path, scope: Scope, docker_image: PulledImage, native_cli: Cli, busybox_image: str) -> None:
    """resources.cpuPeriod, cpuQuota, cpusetMems and blkioWeight, and compose's cpu_period,
    cpu_quota and blkio_config.weight: a manifest could not say them (its schema refused them,
    compose's were "not supported yet"). Applied on dockerd and on the native engine, the
    containers' cgroups and inspect documents have them; a weight this kernel cannot apply is
    discarded with dockerd's warning, as dockerd discards it, and the container runs (runc
    refused its start on the native engine); a change of one recreates the container."""
    docker_cli = Cli(tmp_path / "docker", "docker")
    scope.containers += [f"{scope.prefix}-lim", f"{scope.prefix}c-svc-1"]     # removed even on failure

    def on_dockerd(name: str) -> dict[str, Any]:
        doc = subprocess.run(["docker", "inspect", name], capture_output=True, text=True, check=True).stdout
        return {**json.loads(doc)[0]["HostConfig"], "Id": json.loads(doc)[0]["Id"]}

    def on_native(name: str) -> dict[str, Any]:
        doc = json.loads(native_cli("inspect", name).stdout)[0]
        return {**doc["HostConfig"], "Id": doc["Id"]}

    on_docker = declared(docker_cli, tmp_path, docker_image.ref, scope.prefix, on_dockerd)
    native = declared(native_cli, tmp_path, busybox_image, scope.prefix, on_native)
    weighed = _blkio_weighed()
    assert on_docker["kernel"] == native["kernel"] == (["50000", "25000", "0"], ["40000", "30000", "0"])
    assert on_docker["inspect"] == native["inspect"] == (
        [50000, 25000, "", "0", 300 if weighed else 0], [40000, 30000, "0", "", 300 if weighed else 0])
    # dockerd's warning, which the native engine's create logs, and the Docker backend's from dockerd's create
    assert on_docker["manifest_warned"] is native["manifest_warned"] is not weighed
    for engine in (on_docker, native):
        assert (engine["diff"], engine["recreated"], engine["changed"]) == (1, True, "-1")
