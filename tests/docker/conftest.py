"""Fixtures for the Docker backend: the host's real dockerd, a test image, tracked cleanup.

Every test gets a `Scope`: a random name prefix and a label (`reconciler-test=<prefix>`).
Everything the test makes carries that prefix (and label where the engine has labels), and
the scope removes exactly those objects afterwards, even when the test fails. Objects the test
did not create are never touched.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import resource
import secrets
import select
import shlex
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reconciler.runtime import errors
from reconciler.runtime.docker import DockerRuntime
from reconciler.runtime.docker.podman import PodmanRuntime
from tests.helpers import images, subnets
from tests.helpers.registry import RegistryServer

DOCKER_SOCKET = "/var/run/docker.sock"
USER, PASSWORD = "alice", "alice-secret"        # auth_registry's
TEST_LABEL = "reconciler-test"


def rand(n: int = 4) -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def remove_compose_project(docker: DockerRuntime, name: str) -> None:
    """Remove what a compose project NAME made on `docker`: its containers (by compose's project
    label, volumes kept) and its `NAME_*` networks; what is gone already is fine."""
    for c in docker.api.container_list({"com.docker.compose.project": name}):
        try:
            docker.api.container_remove(c["Id"], force=True, volumes=False)
        except errors.NotFound:
            pass
    for n in docker.list_networks(None):
        if n.name.startswith(name + "_"):
            try:
                docker.remove_network(n.name)
            except errors.NotFound:
                pass


@dataclass
class Scope:
    """One test's names, label and subnet; `cleanup()` removes what they name."""

    runtime: DockerRuntime
    prefix: str = field(default_factory=lambda: "rtd" + rand())
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    @property
    def labels(self) -> dict[str, str]:
        return {TEST_LABEL: self.prefix}

    def name(self, kind: str, suffix: str) -> str:
        n = f"{self.prefix}-{suffix}"
        getattr(self, kind).append(n)
        return n

    def subnet(self) -> str:
        """A random 10.2xx.x.0/24 that no route on the host (another test's bridge) uses."""
        return str(next(subnets.lease_block().subnets(new_prefix=24)))

    def cleanup(self) -> None:
        api = self.runtime.api
        ours = {c["Id"] for c in api.container_list(self.labels)}
        for name in self.containers:
            try:
                ours.add(api.container_inspect(name)["Id"])
            except errors.NotFound:
                pass
        for cid in ours:
            try:
                self.runtime.remove_container(cid, force=True)     # (podman's: killed, not stopped)
            except errors.NotFound:
                pass
        nets = {n["Name"] for n in api.network_list(self.labels)} | set(self.networks)
        for net in nets:
            if not net.startswith(self.prefix):
                continue
            try:
                api.network_remove(net)
            except errors.NotFound:
                pass
        vols = {v["Name"] for v in api.volume_list(self.labels)} | set(self.volumes)
        for vol in vols:
            if not vol.startswith(self.prefix):
                continue
            try:
                api.volume_remove(vol)
            except errors.NotFound:
                pass
        for ref in self.images:
            try:
                api.image_remove(ref, force=True)
            except errors.NotFound:
                pass


def push_busybox(
    registry: RegistryServer, layout: Path, repo: str, *, unique: bool = False, **cfg: object,
) -> tuple[str, str]:
    """Push a busybox image to `registry` as `repo:latest`; returns (ref, manifest digest).

    `unique` adds a second layer of random bytes, so no engine has it already.
    """
    config = {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], **cfg}
    layers = [images.busybox_layer()]
    if unique:
        layers.append(images.layer_tar([images.Entry("unique", secrets.token_bytes(64 << 10))]))
    digest = images.write_layout(layout, layers, config=config)
    ref = f"{registry.host}/{repo}:latest"
    images.push_layout(layout, ref)
    return ref, digest


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A loopback registry that wants Basic credentials (htpasswd)."""
    bcrypt = pytest.importorskip("bcrypt")
    work = tmp_path_factory.mktemp("auth-registry")
    (work / "htpasswd").write_text(f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()}\n")
    server = RegistryServer(work, auth={"htpasswd": {"realm": "test", "path": str(work / "htpasswd")}}).start()
    try:
        yield server
    finally:
        server.stop()


def docker_config(where: Path, registry: RegistryServer) -> Path:
    """A DOCKER_CONFIG directory whose config.json has `auths` for `registry` (`docker login`'s)."""
    where.mkdir()
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (where / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
    return where


@pytest.fixture(scope="session")
def docker() -> Iterator[DockerRuntime]:
    if not os.path.exists(DOCKER_SOCKET):
        pytest.skip("no dockerd socket at /var/run/docker.sock")
    rt = DockerRuntime(DOCKER_SOCKET)
    try:
        rt.api.ping()
    except errors.Unavailable as exc:
        rt.close()
        pytest.skip(f"dockerd not answering: {exc}")
    try:
        yield rt
    finally:
        rt.close()


@dataclass(frozen=True)
class PulledImage:
    ref: str
    digest: str


@pytest.fixture(scope="session")
def docker_image(
    docker: DockerRuntime, registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PulledImage]:
    """A busybox image of our own (unique repo), pulled into dockerd; removed at session end."""
    ref, digest = push_busybox(registry, tmp_path_factory.mktemp("dbusybox"), f"dockertest-{rand(6)}/busybox")
    docker.pull_image(ref)
    try:
        yield PulledImage(ref, digest)
    finally:
        try:
            docker.remove_image(ref, force=True)
        except errors.NotFound:
            pass


@pytest.fixture
def scope(docker: DockerRuntime) -> Iterator[Scope]:
    s = Scope(docker)
    try:
        yield s
    finally:
        s.cleanup()


# -- Podman: the same API from `podman system service`, on its own storage and config ------

PODMAN_CONF = """\
[containers]
netns = "none"          # no default network: containers stay off the host's bridges
default_ulimits = ["nofile={nofile}:{nofile}", "nproc=4096:4096"]  # podman's exceed our hard limits
init_path = "{init}"    # Debian's podman has no catatonit: tini (Docker's docker-init) is PID 1 with --init
[engine]
runtime = "runc"        # crun fails on this host's hybrid cgroups
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{work}/events.log"
lock_type = "file"      # the default shm locks (/libpod_lock) are shared with the host's podman
exit_command_delay = 3  # exec sessions (and their monitors) linger 5 minutes by default
volume_path = "{work}/volumes"
[network]
network_backend = "cni"
network_config_dir = "{work}/net.d"
cni_plugin_dirs = ["/usr/lib/cni"]
default_network = "{name}"
default_subnet = "{subnet}"
default_subnet_pools = [{{base = "{pool}", size = 24}}]
"""

# The default network, written so that podman does not make its own (bridge cni-podman0).
DEFAULT_NETWORK = """\
{{"cniVersion": "0.4.0", "name": "{name}", "plugins": [
  {{"type": "bridge", "bridge": "{name}", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {{"type": "host-local", "routes": [{{"dst": "0.0.0.0/0"}}],
            "ranges": [[{{"subnet": "{subnet}", "gateway": "{gateway}"}}]]}}}},
  {{"type": "portmap", "capabilities": {{"portMappings": true}}}},
  {{"type": "firewall"}}, {{"type": "tuning"}}]}}
"""

REGISTRIES_CONF = """\
unqualified-search-registries = []
[[registry]]
location = "127.0.0.1"
insecure = true
"""

CNI_STATE = Path("/var/lib/cni")      # host-local's leases and libcni's cache: no flag moves them
DNSNAME_STATE = Path("/run/containers/cni/dnsname")     # dnsname's dnsmasq per network: config, pid, hosts


def _helpers(work: Path) -> list[int]:
    """Processes our podman service started that still use `work` (conmon, cleanup runs)."""
    marker = str(work).encode()
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            if marker in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.append(int(pid))
        except OSError:
            continue
    return pids


def _end_helpers(work: Path, limit: float = 10.0) -> None:
    """Let the service's helpers finish, then end the rest by pid (they would re-mount)."""
    deadline = time.monotonic() + limit
    while _helpers(work) and time.monotonic() < deadline:
        time.sleep(0.1)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _helpers(work):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        end = time.monotonic() + 5
        while _helpers(work) and time.monotonic() < end:
            time.sleep(0.05)


def _end_dnsmasqs(networks: Iterable[str]) -> None:
    """End the dnsmasq dnsname started for each of `networks` (by pid, found by its config file
    in the argv) and remove its files. dnsname ends it when a network's last container is torn
    down; a container the service left running (a failed test) leaves it serving the bridge's
    name, which the next network podman makes takes again (`bind-dynamic`: the new network's
    dnsmasq then finds its address in use). Each is waited for: the sockets of one that was
    told to end are held until it has (dnsname's own teardown signals it without waiting, and a
    next network on the same subnet failed a test once, its dnsmasq's listener "already in
    use")."""
    ending: list[int] = []
    for name in networks:
        conf = str(DNSNAME_STATE / name / "dnsmasq.conf").encode()
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[0].endswith(b"dnsmasq") and any(a.endswith(conf) for a in argv):
                try:
                    fd = os.pidfd_open(int(pid))
                except ProcessLookupError:
                    continue
                ending.append(fd)
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(fd, signal.SIGTERM)
        shutil.rmtree(DNSNAME_STATE / name, ignore_errors=True)
    for fd in ending:
        try:
            if not select.select([fd], [], [], 10)[0]:       # readable once the process has exited
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                select.select([fd], [], [], 10)
        finally:
            os.close(fd)


def _unmount_under(root: Path) -> None:
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    for point in sorted((p for p in points if p.startswith(str(root) + "/")), reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def _drop_cni_rules(networks: Mapping[str, str]) -> None:
    """Delete the iptables rules CNI's plugins added for `networks` (name -> bridge) that
    podman 4.3 leaves behind: the firewall plugin's ingressPolicy rules in CNI-ISOLATION-STAGE-1/2
    when a network is removed, dnsname's INPUT rule for the bridge's port 53, and, for a
    container whose network was never torn down (the service stopped while it ran, its monitor
    ended by pid), the bridge plugin's masquerade: a POSTROUTING rule whose comment names the
    network and the CNI-<hash> chain it jumps to."""
    bridges = set(networks.values())
    names = {f'"{name}"' for name in networks}
    for table in ("filter", "nat"):
        rules = subprocess.run(["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True,
                               check=False).stdout
        chains: set[str] = set()
        for rule in rules.splitlines():
            words = shlex.split(rule)
            if words[:1] != ["-A"]:
                continue
            ours = any(w in bridges for w in words) or any(w.startswith("name: ") and
                                                           w.split()[1] in names for w in words)
            if not ours:
                continue
            if "-j" in words and words[words.index("-j") + 1].startswith("CNI-") \
                    and words[1] in ("POSTROUTING", "PREROUTING", "OUTPUT"):
                chains.add(words[words.index("-j") + 1])
            while subprocess.run(["iptables", "-w", "-t", table, "-D", *words[1:]], check=False,
                                 capture_output=True).returncode == 0:
                pass                            # the same rule can be there more than once
        for chain in sorted(chains - {"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ"}):
            subprocess.run(["iptables", "-w", "-t", table, "-F", chain], check=False, capture_output=True)
            subprocess.run(["iptables", "-w", "-t", table, "-X", chain], check=False, capture_output=True)


class PodmanService:
    """A `podman system service` on a socket of its own, with its own storage, run dir, tmp
    dir, locks, events log, volumes and network config (its default network is a bridge named
    after the service, on a leased subnet; other networks get subnets from a leased pool), runc
    and cgroupfs, so that it shares nothing with the host's podman.

    `start()` raises Unavailable when the service does not come up; `stop()` ends it (by pid),
    ends the monitors it left (by pid, found by the private work dir in their argv), unmounts
    its storage, deletes the bridges of its networks and CNI's files about them.
    """

    def __init__(self, work: Path) -> None:
        self.work = work
        self.name = "rpod" + rand(6)
        self.sock = f"/run/{self.name}.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.runtime: PodmanRuntime | None = None
        self.blocks: list[ipaddress.IPv4Network] = []
        self.networks: dict[str, str] = {}     # network name -> bridge, of those the tests made

    def argv(self) -> list[str]:
        work = self.work
        return ["podman", "--root", str(work / "root"), "--runroot", str(work / "run"),
                "--tmpdir", str(work / "tmp"), "--cgroup-manager=cgroupfs", "--runtime", "runc",
                "--network-config-dir", str(work / "net.d"), "--volumepath", str(work / "volumes"),
                "--events-backend", "file"]

    def _configure(self) -> dict[str, str]:
        work = self.work
        default, pool = subnets.lease_block(), subnets.lease_block()
        self.blocks = [default, pool]
        subnet = next(default.subnets(new_prefix=24))
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        init = shutil.which("docker-init") or shutil.which("tini") or "/usr/bin/tini"
        (work / "containers.conf").write_text(PODMAN_CONF.format(
            nofile=nofile, init=init, work=work, name=self.name, subnet=subnet, pool=pool))
        (work / "net.d").mkdir(exist_ok=True)
        (work / "net.d" / f"{self.name}.conflist").write_text(DEFAULT_NETWORK.format(
            name=self.name, subnet=subnet, gateway=subnet[1]))
        (work / "registries.conf").write_text(REGISTRIES_CONF)
        return {**os.environ, "CONTAINERS_CONF": str(work / "containers.conf"),
                "CONTAINERS_REGISTRIES_CONF": str(work / "registries.conf")}

    def start(self) -> PodmanRuntime:
        env = self._configure()
        with (self.work / "service.log").open("wb") as log:
            self.proc = subprocess.Popen(
                [*self.argv(), "system", "service", "--time=0", f"unix://{self.sock}"],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.runtime = PodmanRuntime(self.sock, what="podman")
        deadline = time.monotonic() + 30
        while True:
            try:
                self.runtime.api.ping()
                return self.runtime
            except errors.Unavailable:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise errors.Unavailable(
                        f"podman service did not start: {(self.work / 'service.log').read_text()[-500:]}") from None
                time.sleep(0.1)

    def _networks(self) -> dict[str, str]:
        """The service's networks and their bridges (its CNI config files name them)."""
        out = dict(self.networks)
        for conf in (self.work / "net.d").glob("*.conflist"):
            try:
                doc = json.loads(conf.read_text())
            except (OSError, ValueError):
                continue
            for p in doc.get("plugins", []):
                if p.get("type") == "bridge" and p.get("bridge"):
                    out[str(doc.get("name"))] = str(p["bridge"])
        return out

    def stop(self) -> None:
        try:
            self._stop()
        finally:
            for block in self.blocks:
                subnets.release(block)
            try:
                os.unlink(self.sock)
            except FileNotFoundError:
                pass

    def _stop(self) -> None:
        if self.runtime is not None:
            self.runtime.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        _end_helpers(self.work)
        _unmount_under(self.work)
        self.drop(self._networks())

    def drop(self, networks: Mapping[str, str]) -> None:
        """Delete what CNI leaves of removed `networks` (name -> bridge): podman's network
        removal keeps the bridge, with its address, and the next network given the same bridge
        name (cni-podman1, 2, ... are reused) on another subnet then fails to start a container
        ("already has an IP address different from ...")."""
        for bridge in set(networks.values()):
            subprocess.run(["ip", "link", "del", bridge], check=False, capture_output=True)
        for name in networks:
            shutil.rmtree(CNI_STATE / "networks" / name, ignore_errors=True)
            self.networks.pop(name, None)
        _end_dnsmasqs(networks)
        _drop_cni_rules(networks)


def podman_usable() -> str | None:
    """Why the podman service cannot be used here, or None."""
    if shutil.which("podman") is None:
        return "podman not installed"
    if os.geteuid() != 0:
        return "the podman service fixture runs rootful podman"
    return None


@pytest.fixture(scope="session")
def podman() -> Iterator[DockerRuntime]:
    """A podman service for the session (see PodmanService)."""
    why = podman_usable()
    if why:
        pytest.skip(why)
    # podman refuses a run root over 50 characters, and xdist's temp paths are longer
    work = Path(tempfile.mkdtemp(prefix="rpod", dir="/tmp"))
    service = PodmanService(work)
    try:
        try:
            rt = service.start()
        except errors.Unavailable as exc:
            pytest.skip(str(exc))
        yield rt
    finally:
        service.stop()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def podman_image(podman: DockerRuntime, docker_image: PulledImage) -> PulledImage:
    """The same test image pulled into the podman service (its storage goes with it)."""
    podman.pull_image(docker_image.ref)
    return docker_image


@dataclass(frozen=True)
class Engine:
    """One engine under test: its runtime, the test image in it, and the test's scope."""

    kind: str
    rt: DockerRuntime
    image: PulledImage
    scope: Scope


# (one podman service for the whole run, on one worker: tests/runtime/conftest.py says why)
@pytest.fixture(params=["docker", pytest.param("podman", marks=pytest.mark.xdist_group("podman"))])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """Parametrizes a test over dockerd and a podman service speaking the same API."""
    kind = request.param
    rt: DockerRuntime = request.getfixturevalue(kind)
    image: PulledImage = request.getfixturevalue(f"{kind}_image")
    s = Scope(rt)
    try:
        yield Engine(kind, rt, image, s)
    finally:
        s.cleanup()


REPO = Path(__file__).resolve().parents[2]


class Cli:
    """`reconcile CMD --runtime RUNTIME ARGS...` on a state root of its own."""

    def __init__(self, tmp: Path, runtime: str) -> None:
        from tests.runtime.conftest import native_config  # (it imports this module's conformance)

        self.runtime = runtime
        config = native_config(tmp)
        self.config = config
        self.env = {**os.environ, "RECONCILER_ROOT": str(config.root), "RECONCILER_RUN_DIR": str(config.run_dir),
                    "RECONCILER_PREFIX": config.name_prefix}
        self.env.pop("RECONCILER_RUNTIME", None)

    def __call__(self, cmd: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "reconciler", cmd, "--runtime", self.runtime, *args], cwd=REPO,
                              env=self.env, capture_output=True, text=True, check=False, timeout=120)


@pytest.fixture
def native_cli(tmp_path: Path) -> Iterator[Cli]:
    """`reconcile CMD --runtime native` on a state root of its own, emptied after the test."""
    from reconciler.runtime.native.backend import NativeRuntime
    from tests.runtime.conftest import cleanup, leftovers

    cli = Cli(tmp_path / "native", "native")
    try:
        yield cli
    finally:
        rt = NativeRuntime(cli.config)
        cleanup(rt)
        left = leftovers(cli.config)
        rt.close()
        assert left == [], left
