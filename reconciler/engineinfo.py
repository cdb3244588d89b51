"""The native engine's Info document (`docker info`'s, the Engine API's GET /info) and its text.

One home for it: the Engine API's /info (api/engine.py) and `reconcile info` (cli/cmd_info.py)
build it here, from what each observed (the containers' states as `ps` sees them, checked against
their processes; how many images; the engine's programs, components.py) and what the host says
(/proc, os.uname, the cgroup mounts, the state root's file system). Nothing is made up: a fact
this host does not give is left out or empty, and the warnings are dockerd's, each only where it
is true of this host.

    document(states=, images=, root=, oci_runtime=, components=)   the Info document
    text(doc, client)                                              docker info's text layout
    warnings()                                                     dockerd's warnings that hold here

Stdlib only, and only os at import time: `reconcile info` is a read command (#21).
"""

from __future__ import annotations

import os

# annotations only (#21)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

__all__ = ["INSECURE_CIDRS", "OCI_RUNTIMES", "backing_filesystem", "cgroup_version", "client_info", "counts",
           "document", "insecure_registries", "sysinfo", "text", "warnings"]

OCI_RUNTIMES = ("runc", "crun")          # the OCI runtimes the engine can run containers with
# the registries the registry client speaks plain http to (registry_client: loopback hosts), as
# dockerd's InsecureRegistryCIDRs and insecure index names
INSECURE_CIDRS = ("127.0.0.0/8", "::1/128")
# statfs' file system names as dockerd's graphdriver names them (`Backing Filesystem`)
_FS_NAMES = {"ext2": "extfs", "ext3": "extfs", "ext4": "extfs", "xfs": "xfs", "btrfs": "btrfs", "tmpfs": "tmpfs",
             "overlay": "overlayfs", "zfs": "zfs", "nfs": "nfs", "nfs4": "nfs", "f2fs": "f2fs",
             "squashfs": "squashfs", "ramfs": "ramfs", "ecryptfs": "ecryptfs", "aufs": "aufs", "jfs": "jfs",
             "reiserfs": "reiserfs", "vxfs": "vxfs", "fuse": "fuse"}
CGROUP = "/sys/fs/cgroup"


def counts(states: Iterable[str]) -> dict[str, int]:
    """Containers, ContainersRunning, ContainersPaused, ContainersStopped of containers in these
    states (Docker's State as `ps` shows it: "paused" for a paused one; a restarting one runs, as
    dockerd counts it)."""
    running = paused = stopped = 0
    for state in states:
        if state == "paused":
            paused += 1
        elif state in ("running", "restarting"):
            running += 1
        else:
            stopped += 1
    return {"Containers": running + paused + stopped, "ContainersRunning": running, "ContainersPaused": paused,
            "ContainersStopped": stopped}


def document(*, states: Iterable[str], images: int, root: str, oci_runtime: str,
             components: Iterable[Any]) -> dict[str, Any]:
    """The Info document of the native engine at the state root `root`: `states` each container's
    State as observed now, `images` how many images it holds, `oci_runtime` the one new containers
    get, `components` its programs as they report themselves (components.of_engine: name, path,
    version, commit)."""
    from reconciler import __version__

    u = os.uname()
    release = _os_release()
    allowed = sysinfo()
    return {
        "ID": "reconciler", **counts(states), "Images": images,
        "Driver": "overlay2", "DriverStatus": [["Backing Filesystem", backing_filesystem(root)]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Authorization": None,
                    "Log": ["json-file", "local"]},
        **allowed,
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs", "CgroupVersion": cgroup_version(),
        "KernelVersion": u.release, "OperatingSystem": release.get("PRETTY_NAME") or "Linux",
        "OSVersion": release.get("VERSION_ID", ""), "OSType": "linux", "Architecture": u.machine,
        "NCPU": _cpus(), "MemTotal": _mem_total(), "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": insecure_registries(),
        "DockerRootDir": str(root), "Name": u.nodename, "Labels": [], "ExperimentalBuild": False,
        "ServerVersion": f"reconciler-{__version__}",
        **_runtime_info(oci_runtime, list(components)),
        # no swarm here (`docker info -f '{{.Swarm.LocalNodeState}}'`), the seccomp profile applied
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": False, "SecurityOptions": ["name=seccomp,profile=default"], "Debug": False,
        "Warnings": warnings(allowed),
    }


def _runtime_info(oci_runtime: str, components: list[Any]) -> dict[str, Any]:
    """What `docker info` says of the engine's programs: the OCI runtimes found on this host
    (`Runtimes`, by path), the one new containers get (`Default Runtime`), runc's commit (`runc
    version`), the init (`Init Binary`, `init version`), each as the binary reports itself; no
    containerd (`containerd version` empty: conmon, its counterpart here, is in /version's
    Components)."""
    import shutil

    found = {c.name: c for c in components}
    runtimes = {}
    for name in OCI_RUNTIMES:           # as OciRuntime.find looks for them
        path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
        if path is not None or name == oci_runtime:
            runtimes[name] = {"path": path or name}
    init = found.get("docker-init")
    commit = found["runc"].commit if "runc" in found else ""
    return {"Runtimes": runtimes, "DefaultRuntime": oci_runtime,
            "RuncCommit": {"ID": commit, "Expected": commit}, "InitBinary": init.path if init else "",
            "InitCommit": {"ID": init.commit if init else "", "Expected": init.commit if init else ""},
            "ContainerdCommit": {"ID": "", "Expected": ""}}


def insecure_registries() -> dict[str, Any]:
    """dockerd's RegistryConfig: the registries spoken to over plain http, the loopback ones (the
    registry client's rule: registry_client/refnames.is_loopback)."""
    return {"AllowNondistributableArtifactsCIDRs": [], "AllowNondistributableArtifactsHostnames": [],
            "InsecureRegistryCIDRs": list(INSECURE_CIDRS),
            "IndexConfigs": {"docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": True, "Official": True},
                             "localhost": {"Name": "localhost", "Mirrors": [], "Secure": False, "Official": False}},
            "Mirrors": []}


# -- the host --------------------------------------------------------------------------------------

def _os_release() -> dict[str, str]:
    """/etc/os-release's (else /usr/lib/os-release's) KEY=VALUE lines."""
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        out = {}
        for line in lines:
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                out[key.strip()] = value.strip().strip("\"'")
        return out
    return {}


def _cpus() -> int:
    """The CPUs this process may run on, as Go's runtime.NumCPU (dockerd's NCPU) counts them."""
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return os.cpu_count() or 1


def _mem_total() -> int:
    """The host's memory in bytes (/proc/meminfo's MemTotal, as dockerd's sysinfo reads it)."""
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def backing_filesystem(path: str) -> str:
    """The file system that holds `path` (the state root: its overlay layers are there), as
    dockerd's `Backing Filesystem` names it (ext4: extfs); the mount's own type when dockerd
    has no name for it. A path not made yet: the nearest directory above it that is."""
    path = os.path.realpath(path)
    while not os.path.exists(path) and path != "/":
        path = os.path.dirname(path)
    best, fstype = "", ""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                if " - " not in line or len(fields) < 5:
                    continue
                point = fields[4].encode().decode("unicode_escape")     # \040 is a space
                after = line.split(" - ", 1)[1].split()
                inside = path == point or path.startswith(point.rstrip("/") + "/") or point == "/"
                if inside and len(point) >= len(best):
                    best, fstype = point, after[0] if after else ""
    except OSError:
        return "<unknown>"
    return _FS_NAMES.get(fstype.split(".")[0], fstype or "<unknown>")


def cgroup_version() -> str:
    """"2" on the unified hierarchy (cgroup2 at /sys/fs/cgroup), else "1"."""
    return "2" if os.path.exists(os.path.join(CGROUP, "cgroup.controllers")) else "1"


def _v1_has(controller: str, file: str) -> bool:
    return os.path.exists(os.path.join(CGROUP, controller, file))


def _own_v2_group() -> str:
    """This process's cgroup v2 directory (/proc/self/cgroup's `0::/path`)."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            for line in f:
                if line.startswith("0::"):
                    return os.path.join(CGROUP, line[3:].strip().lstrip("/"))
    except OSError:
        pass
    return CGROUP


def _v2_controllers() -> set[str]:
    try:
        with open(os.path.join(CGROUP, "cgroup.controllers"), encoding="ascii") as f:
            return set(f.read().split())
    except OSError:
        return set()


def _proc_on(path: str) -> bool:
    """A /proc/sys switch read as dockerd's sysinfo reads it: set when it holds 1; a file that is
    not there (br_netfilter not loaded) is off."""
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


# dockerd's Info fields of what the host's cgroups and network allow, and the warning it prints
# for each that does not hold (its sysinfo's)
_SYSINFO_WARNINGS = (
    ("MemoryLimit", "WARNING: No memory limit support"),
    ("SwapLimit", "WARNING: No swap limit support"),
    ("KernelMemoryTCP", "WARNING: No kernel memory TCP limit support"),
    ("OomKillDisable", "WARNING: No oom kill disable support"),
    ("CpuCfsQuota", "WARNING: No cpu cfs quota support"),
    ("CpuCfsPeriod", "WARNING: No cpu cfs period support"),
    ("CPUShares", "WARNING: No cpu shares support"),
    ("CPUSet", "WARNING: No cpuset support"),
    ("IPv4Forwarding", "WARNING: IPv4 forwarding is disabled"),
    ("BridgeNfIptables", "WARNING: bridge-nf-call-iptables is disabled"),
    ("BridgeNfIp6tables", "WARNING: bridge-nf-call-ip6tables is disabled"),
)


def sysinfo() -> dict[str, bool]:
    """What this host's cgroups and network allow, by dockerd's Info fields (MemoryLimit,
    SwapLimit, CpuCfsQuota...): the cgroup v1 controllers' files, or the v2 controllers enabled;
    IP forwarding and bridged traffic through iptables from /proc/sys. (KernelMemoryTCP and
    OomKillDisable are cgroup v1's alone: v2 has neither, and dockerd warns of neither there.)"""
    if cgroup_version() == "1":
        found = {
            "MemoryLimit": _v1_has("memory", "memory.limit_in_bytes"),
            "SwapLimit": _v1_has("memory", "memory.memsw.limit_in_bytes"),
            "KernelMemoryTCP": _v1_has("memory", "memory.kmem.tcp.limit_in_bytes"),
            "OomKillDisable": _v1_has("memory", "memory.oom_control"),
            "CpuCfsQuota": _v1_has("cpu", "cpu.cfs_quota_us"),
            "CpuCfsPeriod": _v1_has("cpu", "cpu.cfs_period_us"),
            "CPUShares": _v1_has("cpu", "cpu.shares"),
            "CPUSet": _v1_has("cpuset", "cpuset.cpus"),
        }
    else:
        have = _v2_controllers()
        found = {
            "MemoryLimit": "memory" in have,
            "SwapLimit": "memory" in have and os.path.exists(os.path.join(_own_v2_group(), "memory.swap.max")),
            "CpuCfsQuota": "cpu" in have, "CpuCfsPeriod": "cpu" in have, "CPUShares": "cpu" in have,
            "CPUSet": "cpuset" in have,
        }
    found["IPv4Forwarding"] = _proc_on("/proc/sys/net/ipv4/ip_forward")
    found["BridgeNfIptables"] = _proc_on("/proc/sys/net/bridge/bridge-nf-call-iptables")
    found["BridgeNfIp6tables"] = _proc_on("/proc/sys/net/bridge/bridge-nf-call-ip6tables")
    return found


def warnings(allowed: dict[str, bool] | None = None) -> list[str]:
    """The warnings dockerd 20.10 prints in `docker info`, each only where it holds on this host
    (`allowed`: sysinfo(), read again when not given): a limit the cgroups cannot set, IP
    forwarding off, bridged traffic not seen by iptables."""
    allowed = sysinfo() if allowed is None else allowed
    return [said for key, said in _SYSINFO_WARNINGS if key in allowed and not allowed[key]]


# -- docker info's text ----------------------------------------------------------------------------

def client_info(*, debug: bool = False) -> dict[str, Any]:
    """The client's part of `docker info` (its `ClientInfo` in --format): this reconciler."""
    from reconciler import __version__

    return {"Debug": debug, "Version": __version__, "Plugins": [], "Warnings": None}


def text(doc: dict[str, Any], client: dict[str, Any]) -> tuple[str, str]:
    """`docker info`'s text of an Info document (the native engine's, or another engine's
    /info): the Client: and Server: sections on stdout, the server's warnings for stderr."""
    from reconciler import printing

    out = ["Client:", f" Version:    {client.get('Version', '')}", f" Debug Mode: {_go_bool(client.get('Debug'))}",
           "", "Server:"]
    add = out.append
    add(f" Containers: {doc.get('Containers', 0)}")
    add(f"  Running: {doc.get('ContainersRunning', 0)}")
    add(f"  Paused: {doc.get('ContainersPaused', 0)}")
    add(f"  Stopped: {doc.get('ContainersStopped', 0)}")
    add(f" Images: {doc.get('Images', 0)}")
    add(f" Server Version: {doc.get('ServerVersion', '')}")
    add(f" Storage Driver: {doc.get('Driver', '')}")
    for pair in doc.get("DriverStatus") or ():
        if len(pair) == 2:
            add(f"  {pair[0]}: {pair[1]}")
    add(f" Logging Driver: {doc.get('LoggingDriver', '')}")
    add(f" Cgroup Driver: {doc.get('CgroupDriver', '')}")
    if doc.get("CgroupVersion"):
        add(f" Cgroup Version: {doc['CgroupVersion']}")
    plugins = doc.get("Plugins") or {}
    add(" Plugins:")
    for kind in ("Volume", "Network", "Authorization", "Log"):
        if plugins.get(kind):
            add(f"  {kind}: {' '.join(plugins[kind])}")
    swarm = (doc.get("Swarm") or {}).get("LocalNodeState") or "inactive"
    add(f" Swarm: {swarm}")
    if doc.get("Runtimes"):
        add(f" Runtimes: {' '.join(sorted(doc['Runtimes']))}")
        add(f" Default Runtime: {doc.get('DefaultRuntime', '')}")
    if doc.get("OSType") == "linux":
        add(f" Init Binary: {doc.get('InitBinary', '')}")
        for label, key in (("containerd", "ContainerdCommit"), ("runc", "RuncCommit"), ("init", "InitCommit")):
            commit = doc.get(key) or {}
            said = str(commit.get("ID", ""))
            if commit.get("Expected") and commit.get("Expected") != commit.get("ID"):
                said += f" (expected: {commit['Expected']})"
            add(f" {label} version: {said}")
    options = doc.get("SecurityOptions") or []
    if options:
        add(" Security Options:")
        for option in options:
            fields = dict(kv.partition("=")[::2] for kv in str(option).split(","))
            add(f"  {fields.get('name', option)}")
            for key, value in fields.items():
                if key != "name":
                    add(f"   {key.title()}: {value}")
    add(f" Kernel Version: {doc.get('KernelVersion', '')}")
    add(f" Operating System: {doc.get('OperatingSystem', '')}")
    add(f" OSType: {doc.get('OSType', '')}")
    add(f" Architecture: {doc.get('Architecture', '')}")
    add(f" CPUs: {doc.get('NCPU', 0)}")
    add(f" Total Memory: {printing.binary_size(float(doc.get('MemTotal') or 0))}")
    add(f" Name: {doc.get('Name', '')}")
    add(f" ID: {doc.get('ID', '')}")
    add(f" Docker Root Dir: {doc.get('DockerRootDir', '')}")
    add(f" Debug Mode: {_go_bool(doc.get('Debug'))}")
    for key, label in (("HttpProxy", "HTTP Proxy"), ("HttpsProxy", "HTTPS Proxy"), ("NoProxy", "No Proxy")):
        if doc.get(key):
            add(f" {label}: {doc[key]}")
    if doc.get("Labels"):
        add(" Labels:")
        out.extend(f"  {label}" for label in doc["Labels"])
    add(f" Experimental: {_go_bool(doc.get('ExperimentalBuild'))}")
    registry = doc.get("RegistryConfig") or {}
    insecure = [name for name, index in sorted((registry.get("IndexConfigs") or {}).items())
                if isinstance(index, dict) and not index.get("Secure", True)]
    insecure += list(registry.get("InsecureRegistryCIDRs") or ())
    if insecure:
        add(" Insecure Registries:")
        out.extend(f"  {name}" for name in insecure)
    if registry.get("Mirrors"):
        add(" Registry Mirrors:")
        out.extend(f"  {mirror}" for mirror in registry["Mirrors"])
    add(f" Live Restore Enabled: {_go_bool(doc.get('LiveRestoreEnabled'))}")
    warned = "".join(f"{w}\n" for w in doc.get("Warnings") or ())
    return "\n".join(out) + "\n\n", warned


def _go_bool(value: Any) -> str:
    return "true" if value else "false"
