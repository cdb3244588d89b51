"""The `runtime` fixture: every conformance test runs against each backend: fake, native, docker,
the native engine through its Engine API ("native-api"), and Podman through its Docker-compatible
API ("podman": a `podman system service` of the session's own, tests/docker/conftest.py
PodmanService, driven by the Docker backend's podman variant; the two cases Podman cannot pass
are skipped by name in PODMAN_CANNOT, each with its reason).

The fake engine (reconciler/runtime/fake.py) needs no root and runs unmarked; it runs no
process, so the tests that need one (its output, its own exit, its signal handlers, its
user, files, limits, namespaces or traffic) are skipped for it by name in FAKE_CANNOT, each
with its reason. Everything else (names, states, conflicts, volumes, networks, health,
rename) holds for it as for the real engines, which is what the executor, CLI and rollback
tests that use it rely on.

The native engine gets its own state root, run dir, name prefix and subnet pool per test (with
bridge networking, as `reconcile` opens it), and the loops an
agent would run (restart policies, healthchecks) run in background threads, so that it
behaves like a Docker daemon seen through the Runtime protocol. Teardown removes every
container and network, then fails the test if a mount, a conmon process, a cgroup, a container
directory, a link, an nft table or an iptables rule of the test's prefix is left.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import secrets
import tarfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from reconciler.runtime import base, fake
from reconciler.runtime import errors as rterrors
from reconciler.runtime.native.backend import LazyNetwork, NativeRuntime
from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.containers import cgroups, mounts
from reconciler.runtime.native.network import network
from tests.docker import conformance as docker_conformance
from tests.docker.conformance import (
    podman_service as podman_service,  # the session's podman, a fixture
)
from tests.helpers import images

BUSYBOX_CONFIG: dict[str, Any] = {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]}
FAKE_IMAGE = "test/busybox:latest"      # published in the fake's own registry

# Conformance tests the fake engine cannot pass, and why; the rest run on it.
NO_OUTPUT = "runs no process, so a container writes no output"
FAKE_CANNOT: dict[str, str] = {
    "test_restart_of_exited_container": NO_OUTPUT,
    "test_a_bind_source_replaced_or_deleted_while_it_runs_is_named_stale": "runs no process, so no mount can go stale",
    "test_exit_codes": "runs no process: only a `false` command exits by itself, with code 1",
    "test_bad_entrypoint_is_a_clear_error": "has no image filesystem in which a command could be missing",
    "test_stop_sends_stop_signal_and_waits": "runs no process, so none traps the stop signal",
    "test_stop_signal_override": "runs no process, so none traps the stop signal",
    "test_stop_kills_a_process_ignoring_sigterm": NO_OUTPUT,
    "test_a_new_volume_takes_the_owner_of_an_empty_image_directory": NO_OUTPUT,
    "test_a_forced_removal_kills_at_once": "runs no process, so none traps the stop signal",
    "test_the_default_route_is_on_the_first_network_by_name_as_on_docker": "has no namespaces (it runs no process)",
    "test_the_first_networks_mac_address_is_its_interfaces": "has no namespaces (it runs no process)",
    "test_logs_streams_partial_and_long_lines": NO_OUTPUT,
    "test_logs_follow_until_exit": NO_OUTPUT,
    "test_env_user_workdir": NO_OUTPUT,
    "test_numeric_user_not_in_passwd": NO_OUTPUT,
    "test_unknown_user_is_rejected": "has no image filesystem, so no /etc/passwd to look a user up in",
    "test_command_and_args_override": NO_OUTPUT,
    "test_an_empty_command_drops_the_images_entrypoint_and_keeps_its_cmd": "runs no process: only a `false` command "
    "exits by itself, with code 1",
    "test_read_only_rootfs": "has no filesystem to write to",
    "test_capabilities_drop": "runs no process to hold capabilities",
    "test_memory_limit_triggers_oom_kill": "runs no process, so no cgroup limit can end one",
    "test_pids_limit": "runs no process, so no cgroup limit can end one",
    "test_cpu_quota_is_applied": NO_OUTPUT,
    "test_sysctls_and_ulimits_are_set_in_the_container": NO_OUTPUT,
    "test_shm_size": NO_OUTPUT,
    "test_memory_swap": NO_OUTPUT,
    "test_group_add": NO_OUTPUT,
    "test_domainname_is_the_containers_own": NO_OUTPUT,
    "test_secret_files_from_values_are_in_the_container": NO_OUTPUT,
    "test_privileged_has_every_capability_and_device_and_no_seccomp": NO_OUTPUT,
    "test_devices_put_a_host_device_node_into_the_container": NO_OUTPUT,
    "test_oom_score_adj": NO_OUTPUT,
    "test_no_new_privileges": NO_OUTPUT,
    "test_cpu_shares_cpuset_and_memory_reservation": NO_OUTPUT,
    "test_tty_and_open_stdin": "runs no process, so no file can be read in a container",
    "test_tmpfs_size_and_mode": NO_OUTPUT,
    "test_a_tmpfs_mount_has_dockers_default_options": NO_OUTPUT,
    "test_extra_hosts_and_dns_on_and_off_networks": "runs no process, so no file can be read in a container",
    "test_named_volume_survives_recreation": "keeps no volume content (volumes are names only)",
    "test_new_volume_is_populated_from_the_image": "has no image filesystem to copy into a volume",
    "test_bind_mount_read_only": "has no filesystem to mount",
    "test_exec": "runs no process: an exec has no output and exits 1 only for `false`",
    "test_exec_ends_when_its_process_exits": "runs no process: an exec has no output and exits 1 only for `false`",
    "test_exec_as_a_user_in_a_directory_with_an_environment": "runs no process: an exec has no output",
    "test_exec_env_of_a_key_alone_unsets_it": "runs no process: an exec has no output",
    "test_exec_of_a_missing_command_exits_126_with_dockers_message": "has no image filesystem in which a command "
                                                                     "could be missing",
    "test_on_failure_restarts_up_to_max": "runs no process that exits by itself, so no policy restarts it",
    "test_always_restarts_but_not_after_stop": "runs no process that exits by itself, so no policy restarts it",
    "test_no_policy_does_not_restart": "runs no process that exits by itself (wait_container cannot return)",
    "test_container_cannot_see_host_processes": "has no namespaces (it runs no process)",
    "test_container_cannot_see_other_containers_files": "has no namespaces (it runs no process)",
    "test_container_cannot_see_host_mounts": "has no namespaces (it runs no process)",
    "test_init_forwards_the_stop_signal": "runs no process, so there is no init to forward a signal",
    "test_default_seccomp_refuses_new_namespaces": "runs no process for seccomp to filter",
    "test_containers_on_one_network_reach_each_other_by_name_and_alias": "carries no traffic",
    "test_containers_on_different_networks_cannot_reach_each_other": "carries no traffic",
    "test_internal_network_has_no_egress": "carries no traffic",
    "test_published_port_answers_on_loopback": "carries no traffic",
    "test_container_on_two_networks": "carries no traffic",
}

# Conformance tests the native engine's Engine API, driven by the Docker backend, cannot pass, and why.
NATIVE_API_CANNOT: dict[str, str] = {
}

# Conformance tests Podman (4.3, through its Docker-compatible API) cannot pass, and why.
PODMAN_CANNOT: dict[str, str] = {
    "test_a_tmpfs_mount_has_dockers_default_options": "4.3 mounts a tmpfs of the compat API's HostConfig.Mounts "
                                                      "without noexec (dockerd's default), and API 1.41 has no "
                                                      "option to ask for it",
    "test_memory_limit_triggers_oom_kill": "never reports OOMKilled for a container on a hybrid-cgroup host "
                                           "with cgroupfs (the kill happens, exit 137, the flag stays false)",
    "test_default_seccomp_refuses_new_namespaces": "has a default seccomp profile that allows unshare(2) of a "
                                                   "user namespace (for rootless nesting), and a manifest names none",
    "test_extra_hosts_and_dns_on_and_off_networks": "writes an empty /etc/resolv.conf for a container without a "
                                                    "network, leaving out its dns, dns_search and dns_options",
    "test_internal_network_has_no_egress": "with CNI gives an internal network no DNS (dnsname needs the gateway "
                                           "an internal network lacks), so peers there cannot be found by name",
    "test_container_on_two_networks": "with CNI lists one dnsmasq per network in resolv.conf and busybox's resolver "
                                      "asks only the first, so names on the second network are not found",
    "test_domainname_is_the_containers_own": "4.3 refuses the kernel.domainname sysctl (\"not allowed\") that "
                                             "applies a domain name under runc 1.1, which ignores config.json's "
                                             "domainname: such a container is refused at create, with Podman's error",
    "test_exec_of_a_missing_command_exits_126_with_dockers_message": "4.3 answers 127 (a shell's \"command not "
                                                                     "found\") with its own words, where dockerd "
                                                                     "answers 126 for any exec that could not start",
    "test_exec_env_of_a_key_alone_unsets_it": "4.3 refuses an exec's Env entry without \"=\" (\"badly formed, "
                                              "must be key=value\"), where dockerd unsets the key",
    "test_the_default_route_is_on_the_first_network_by_name_as_on_docker": "with CNI gives a container a default "
                                                                           "route on each of its networks "
                                                                           "(host-local's 0.0.0.0/0 route per network)",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip FAKE_CANNOT's tests for the fake engine, NATIVE_API_CANNOT's for the native engine's
    Engine API and PODMAN_CANNOT's for podman, saying why."""
    here = Path(__file__).parent
    for item in items:
        if not isinstance(item, pytest.Function) or item.path.parent != here:
            continue
        params = item.callspec.params if hasattr(item, "callspec") else {}
        backend = params.get("backend")
        cannot = {"fake": FAKE_CANNOT, "podman": PODMAN_CANNOT, "native-api": NATIVE_API_CANNOT}.get(str(backend), {})
        reason = cannot.get(item.originalname)
        if reason is not None:
            who = {"fake": "the fake engine", "native-api": "the native engine's Engine API"}.get(str(backend), "Podman")
            item.add_marker(pytest.mark.skip(reason=f"{who} {reason}"))


class LayerDirImages:
    """Images as extracted layer directories (used until the native image store is present)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.images: dict[str, tuple[str, dict[str, Any], list[Path]]] = {}

    def add(self, ref: str, layers: list[bytes], config: Mapping[str, Any]) -> None:
        dirs = []
        for i, raw in enumerate(layers):
            d = self.root / f"{len(self.images)}-{i}"
            d.mkdir(parents=True)
            import io

            with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
                tar.extractall(d, filter="fully_trusted")  # our own test layer
            dirs.append(d)
        image_id = "sha256:" + secrets.token_hex(32)
        self.images[ref] = (image_id, {"config": dict(config), "rootfs": {"type": "layers"}}, dirs)

    def resolve(self, ref: str) -> tuple[str, Mapping[str, Any], list[Path]]:
        if ref not in self.images:
            raise rterrors.NotFound(f"no such image: {ref}")
        return self.images[ref]


def _have_image_store() -> bool:
    return importlib.util.find_spec("reconciler.runtime.native.images.images") is not None


def new_prefix() -> str:
    """A name prefix no other live test holds (leased, tests/helpers/leases.py) and nothing on the
    host already uses (a cgroup, link or nft table of that name, say one a killed run left), nor
    claims (an earlier test's root, kept by pytest until the session ends, holds its claim: the
    engine refuses a second root with that prefix)."""
    import glob

    from reconciler.runtime.native.config import PREFIX_CLAIMS
    from tests.helpers import leases

    with leases.held("prefixes") as live:
        while True:
            prefix = "rt" + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(3))
            if prefix in live or glob.glob(f"/sys/fs/cgroup/*/{prefix}") or glob.glob(f"/sys/class/net/{prefix}*") \
                    or Path(f"/sys/fs/cgroup/{prefix}").exists() or (PREFIX_CLAIMS / prefix).exists():
                continue
            live[prefix] = os.getpid()
            return prefix


def native_config(tmp: Path, prefix: str | None = None) -> NativeConfig:
    return NativeConfig(root=tmp / "root", run_dir=tmp / "run", name_prefix=prefix or new_prefix())


def leftovers(config: NativeConfig) -> list[str]:
    """Everything of this engine instance that is still on the host: its mounts, conmon
    processes, cgroups and container dirs, and the network objects of its prefix
    (`net_leftovers`), which outlive the test's tmp dir and would go unnoticed otherwise."""
    found: list[str] = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split(" ")[4]
            if mp.startswith((str(config.root), str(config.run_dir))):
                found.append(f"mount {mp}")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"conmon" in cmdline.split(b"\0")[0] and str(config.run_dir).encode() in cmdline:
            found.append(f"conmon pid {pid}")
    for h in cgroups.hierarchies():
        if (h / config.name_prefix).exists():
            found.append(f"cgroup {h / config.name_prefix}")
    cdir = config.root / "containers"
    if cdir.exists():
        found += [f"container dir {d}" for d in cdir.iterdir()]
    return found + net_leftovers(config.name_prefix)


def net_leftovers(prefix: str) -> list[str]:
    """Host network objects named with `prefix`, every kind the engine makes (network/): links
    (bridges, veths), its nft tables (ip and ip6), and rules naming it in the iptables filter
    table (the DOCKER-USER or FORWARD accepts of its bridges). The engine adds no ip6tables rule;
    that table is read too, so that one added there would not go unseen."""
    import shutil
    import subprocess

    from reconciler.runtime.native.network import netlink

    with netlink.host() as h:
        found = [f"link {x.name}" for x in h.links() if x.name.startswith(prefix)]
    for family in ("ip", "ip6"):
        if subprocess.run(["nft", "list", "table", family, prefix], capture_output=True, check=False).returncode == 0:
            found.append(f"nft table {family} {prefix}")
    for tool in ("iptables", "ip6tables"):
        if tool == "ip6tables" and shutil.which(tool) is None:
            continue
        rules = subprocess.run([tool, "-w", "-S"], capture_output=True, text=True, check=True).stdout
        found += [f"{tool} {r}" for r in rules.splitlines() if prefix in r]
    return found


def remove_networks(rt: NativeRuntime) -> None:
    """Remove the engine's networks and let recovery delete whatever they or its containers left
    (after cleanup). An engine opened without networking (a fixture's view of what an agent or a
    CLI made) gets a network manager of its config for this: their networks are its records."""
    if isinstance(rt.network, LazyNetwork):
        manager = rt.network.manager
    elif isinstance(rt.network, network.NetworkManager):
        manager = rt.network
    elif rt.network is None and (rt.config.root / "state.db").exists() and rt.config.run_dir.is_dir():
        manager = network.NetworkManager(rt.config)
    else:
        return
    for n in manager.list_networks():
        try:
            manager.remove_network(n.name)
        except Exception:
            continue
    manager.recover([])


def cleanup(rt: NativeRuntime) -> None:
    """Remove every container and network, and whatever a failed test left behind."""
    try:
        for rec in rt.containers.records():
            try:
                rt.containers.remove(rec.id, force=True)
            except Exception:
                continue
        config = rt.config
        for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
            mp = line.split(" ")[4]
            if mp.startswith((str(config.root), str(config.run_dir))):
                mounts.unmount(Path(mp))
        cgroups.remove(config.name_prefix, None, config.locks_dir)
    finally:
        remove_networks(rt)


def private_pool() -> str:
    """A /22 of 10.200-254 for one test's networks, leased so that no other test gets it."""
    from tests.helpers import subnets

    return str(subnets.lease_block())


def make_native(tmp: Path, busybox_ref: str | None = None, *, networking: bool = False,
                **kw: Any) -> tuple[NativeRuntime, str]:
    """A native engine on `tmp`; with `networking`, bridge networks from a private pool."""
    config = native_config(tmp, kw.pop("prefix", None))
    if networking:
        config = dataclasses.replace(config, subnet_pool=private_pool())
        kw["network"] = network.NetworkManager(config)
    if busybox_ref is not None and _have_image_store():
        rt = NativeRuntime(config, **kw)
        rt.pull_image(busybox_ref)
        return rt, busybox_ref
    source = LayerDirImages(tmp / "images")
    source.add("test/busybox:latest", [images.busybox_layer()], BUSYBOX_CONFIG)
    return NativeRuntime(config, images=source, **kw), "test/busybox:latest"


class Loops:
    """What the agent runs for a native engine: restart policies and healthchecks."""

    def __init__(self, rt: NativeRuntime) -> None:
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=rt.restart_manager.watch, args=(self.stop,), kwargs={"poll": 0.05}, daemon=True),
            threading.Thread(target=rt.health_checker.watch, args=(self.stop,), kwargs={"poll": 0.05}, daemon=True),
        ]
        for t in self.threads:
            t.start()

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


def fake_backend(tmp_path: Path) -> Iterator[tuple[base.Runtime, str]]:
    """The fake engine with FAKE_IMAGE pulled, its state in the test's own file."""
    rt = fake.FakeRuntime(tmp_path / fake.STATE_FILE)
    rt.publish(FAKE_IMAGE)
    rt.pull_image(FAKE_IMAGE)
    try:
        yield rt, FAKE_IMAGE
    finally:
        rt.close()


@pytest.fixture(params=[
    "fake",
    pytest.param("native", marks=pytest.mark.root),
    pytest.param("docker", marks=[pytest.mark.root, pytest.mark.docker]),
    pytest.param("native-api", marks=pytest.mark.root),
    # one podman service for the whole run, on one worker: CNI names its bridges cni-podman1, 2, ...
    # per service, so two services (one per xdist worker) would fight over the same bridge names
    pytest.param("podman", marks=[pytest.mark.root, pytest.mark.xdist_group("podman")]),
])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[base.Runtime, str]]:
    """(runtime, busybox image reference) for each backend. "native-api" is the native engine
    through its own Engine API (reconciler/api/engine.py), with the Docker backend as the client."""
    if request.param == "docker":
        yield from docker_conformance.docker_backend(request)
        return
    if request.param == "fake":
        yield from fake_backend(tmp_path)
        return
    if request.param == "podman":
        yield from docker_conformance.podman_backend(request)
        return
    if os.geteuid() != 0:
        pytest.skip("the native runtime needs root")
    rt, ref = make_native(tmp_path, request.getfixturevalue("busybox_image") if _have_image_store() else None,
                          networking=True)
    loops = Loops(rt)
    try:
        if request.param == "native-api":
            yield from _through_engine_api(rt, ref, tmp_path)
        else:
            yield rt, ref
    finally:
        loops.close()
        cleanup(rt)
        left = leftovers(rt.config)
        rt.close()
        assert left == [], f"left on the host: {left}"


def _through_engine_api(rt: NativeRuntime, ref: str, tmp: Path) -> Iterator[tuple[base.Runtime, str]]:
    """The Docker backend as a client of `rt`'s Engine API on a socket of the test's own."""
    from reconciler.api.engine import EngineApi
    from reconciler.runtime.docker import DockerRuntime

    class Client(DockerRuntime):
        """The networks the test made: the Engine API lists the predefined bridge, host and none
        beside them, as dockerd does (the docker run hides those behind its namespace)."""

        def list_networks(self, selector: Mapping[str, str] | None = None) -> list[base.NetworkState]:
            return [n for n in super().list_networks(selector) if n.name not in ("bridge", "host", "none")]

    api = EngineApi(rt, tmp / "docker.sock")
    api.start()
    client = Client(str(tmp / "docker.sock"), what="the native engine's Engine API")
    try:
        yield client, ref
    finally:
        client.close()
        api.stop()


@pytest.fixture
def runtime(backend: tuple[base.Runtime, str]) -> base.Runtime:
    return backend[0]


@pytest.fixture
def image(backend: tuple[base.Runtime, str]) -> str:
    return backend[1]
