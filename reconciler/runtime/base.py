"""The Runtime protocol every backend implements, and the value types it speaks.

A runtime is an engine seen through a narrow, idempotent interface (containerd/compose style):
the executor calls it, the planner never does. Value types are frozen dataclasses; the manifest
models of `reconciler.spec` are translated into these by the execution layer, so a backend
knows nothing of manifests, revisions or owners beyond the labels it is given.

Contract: every method either does what it says or raises one of `runtime.errors`; `remove_*`
of a missing object raises NotFound (the executor counts that as done); `ensure_*` creates or
verifies and returns the state.

What only some engines can do is a capability: a small `runtime_checkable` protocol below
(`Renaming`, `Connecting`, `ImageBuilding`, `ImagePushing`, `Supervised`, `ArchiveTransfer`, `Restarting`,
`Inspecting`, `ProcessListing`, `Statistics`, `Sizing`, `PathCopying`) that callers test with `isinstance` before they use it, and say
what is missing when it is not there.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

from reconciler._dataclass import dataclass, dataclasses, field

if TYPE_CHECKING:          # built when first named: see __getattr__ below
    from contextlib import AbstractContextManager

    from reconciler.runtime.basetypes import (
        ContainerState,
        ExecResult,
        Healed,
        NetworkConfig,
        NetworkState,
        VolumeConfig,
        VolumeState,
    )

__all__ = [
    "ANONYMOUS_VOLUME_LABEL",
    "HEALTH_DEFAULTS",
    "OVERLAY_DRIVER_OPTIONS",
    "ArchiveTransfer",
    "AttachedStart",
    "Connecting",
    "ContainerConfig",
    "ContainerState",
    "ContainerStatus",
    "EndpointConfig",
    "ExecResult",
    "Healed",
    "Healing",
    "HealthSupervision",
    "Healthcheck",
    "ImageBuilding",
    "ImageHistory",
    "ImageInfo",
    "ImagePushing",
    "Inspecting",
    "LogLine",
    "Mount",
    "NetworkConfig",
    "NetworkState",
    "PathCopying",
    "PortMapping",
    "ProcessListing",
    "ProgressCallback",
    "Renaming",
    "ResourceUpdate",
    "Resources",
    "RestartPolicy",
    "RestartSupervision",
    "Restarting",
    "Runtime",
    "ServiceEngine",
    "Sizing",
    "Statistics",
    "Supervised",
    "SupervisionLoop",
    "TagOrigins",
    "UpdateConfig",
    "VolumeConfig",
    "VolumeState",
]

# Docker's label of a volume made for one container (a mount without source: `docker run -v
# /data`, an image's VOLUME), which goes with it (`docker rm -v`, AutoRemove); every engine's
ANONYMOUS_VOLUME_LABEL = "com.docker.volume.anonymous"

# Called as progress(event: str, detail: Mapping) during long work (pulls, builds). Events:
# "resolve", "layer-start", "layer-progress" (digest, done, total), "layer-done" (digest,
# "downloaded" | "exists"), "extract", "done" (id, digest, status: "downloaded", "up to date"
# (the tag named that image already), "tag moved" (the image was stored, the tag named another)).
ProgressCallback = Callable[[str, Mapping[str, Any]], None]


@dataclass(frozen=True)
class ImageInfo:
    """An image in the engine's store."""

    id: str                         # config digest, "sha256:..."
    digest: str | None              # manifest digest it was pulled by, if any
    repo_tags: tuple[str, ...]      # normalised "registry/repo:tag"
    size: int                       # sum of compressed layer sizes
    created: str | None             # from the image config
    config: Mapping[str, Any]       # the image config's "config" object (Env, Cmd, ...)
    layers: tuple[str, ...] = ()    # diff_ids, bottom first
    # "registry/repo@digest" (normalised) of each repository the image was pulled from or pushed
    # to as one of its tags: Docker's RepoDigests (none for one built, loaded or tagged here)
    repo_digests: tuple[str, ...] = ()


@dataclass(frozen=True)
class PortMapping:
    """`[host_ip:]host_port:container_port[/proto]`."""

    container_port: int
    host_port: int
    protocol: str = "tcp"           # "tcp" | "udp"
    host_ip: str = "0.0.0.0"  # noqa: S104 - Docker publishes on all addresses by default
    ingress: bool = False           # Swarm's routing mesh (every node) instead of the copy's node


@dataclass(frozen=True)
class Mount:
    """A volume, bind or tmpfs mount in the container."""

    type: str                       # "volume" | "bind" | "tmpfs" | "secret"
    target: str
    source: str = ""                # volume name, or absolute host path for bind (a secret: where it came from)
    read_only: bool = False
    options: tuple[str, ...] = ()   # tmpfs size=, mode=; secret mode=, uid=, gid=
    relative: bool = False          # a bind source written relative to the manifests (a path where reconciler runs)
    # a secret's content: held in memory only, never in a record (config_to_json leaves it out),
    # so a config read back has none (the engine refuses to create from it)
    data: bytes | None = field(default=None, repr=False, compare=False, metadata={"transient": True})



def unmounted_volumes(declared: Any, mounts: Sequence[Mount]) -> list[str]:
    """The VOLUMEs an image's config declares (`declared`: its `Volumes`) that none of `mounts`
    has a destination at, each an absolute clean path (a relative one from the root, as dockerd
    takes it), sorted: where an engine gives the container a volume of its own."""
    if not isinstance(declared, Mapping) or not declared:
        return []
    import posixpath

    taken = {posixpath.normpath(m.target) for m in mounts}
    out = []
    for target in sorted(str(t) for t in declared):
        where = posixpath.normpath("/" + target.lstrip("/"))
        if where not in taken:
            taken.add(where)
            out.append(where)
    return out

@dataclass(frozen=True)
class RestartPolicy:
    """Docker's restart policies; `max_retries` only for on-failure (0 = unlimited)."""

    name: str = "no"                # "no" | "on-failure" | "always" | "unless-stopped"
    max_retries: int = 0
    # a Swarm service's (RestartPolicy.Delay, .Window), seconds; single hosts: Docker's backoff
    delay: float | None = None      # None: Swarm's 5 s
    window: float | None = None     # None: unbounded


@dataclass(frozen=True)
class Healthcheck:
    """`test` as Docker has it: ["CMD", ...], ["CMD-SHELL", "..."], ["NONE"], or [] (the image's
    test). As in Docker's HealthConfig, a timing of 0 (retries 0) is the image's, else Docker's
    default (`healthcheck_of` merges them). During `start_period`, while the container has not
    been healthy yet, the engine probes every `start_interval` (0: 5 s), then every `interval`."""

    test: tuple[str, ...]
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0
    start_interval: float = 0.0


# Docker's defaults for a healthcheck timing that neither the container nor its image sets
HEALTH_DEFAULTS = {"interval": 30.0, "timeout": 30.0, "retries": 3, "start_period": 0.0, "start_interval": 5.0}
_IMAGE_HEALTH_KEYS = {"interval": "Interval", "timeout": "Timeout", "start_period": "StartPeriod",
                      "start_interval": "StartInterval"}


def healthcheck_of(own: Healthcheck | None, image: Mapping[str, Any] | None) -> Healthcheck | None:
    """The healthcheck a container runs, as Docker merges it (moby's daemon `merge`): its own,
    its test or timings left empty (0) taken from the image config's `Healthcheck` (durations in
    ns), the ones neither sets Docker's defaults (`start_interval` stays 0: the engine's 5 s).
    None when there is none, or its test is NONE."""
    img = image or {}
    test = own.test if own is not None and own.test else tuple(img.get("Test") or ())
    if not test or test[0] == "NONE":
        return None
    values: dict[str, Any] = {}
    for name, key in _IMAGE_HEALTH_KEYS.items():
        mine = getattr(own, name) if own is not None else 0.0
        default = 0.0 if name == "start_interval" else HEALTH_DEFAULTS[name]
        values[name] = mine or (img.get(key) or 0) / 1e9 or default
    retries = (own.retries if own is not None else 0) or int(img.get("Retries") or 0) or 3
    return Healthcheck(test=test, retries=retries, **values)


def first_probe(hc: Healthcheck) -> float:
    """Seconds from a start to the first probe of `hc` (a merged one) on an engine that has
    Docker 25's start interval: `start_interval` (5 s unset) when there is a start period, else
    `interval`."""
    if hc.start_period > 0:
        return hc.start_interval or HEALTH_DEFAULTS["start_interval"]
    return hc.interval


@dataclass(frozen=True)
class Resources:
    """cgroup limits; None means unlimited."""

    memory: int | None = None       # bytes
    cpus: float | None = None       # CPUs (quota / period)
    pids: int | None = None
    memory_reservation: int | None = None   # bytes (soft limit)
    cpu_shares: int | None = None           # relative weight
    cpuset: str | None = None               # CPUs it may run on
    memory_swap: int | None = None          # memory + swap bytes; -1 unlimited; None: = memory
    # the CFS limit in docker's own two numbers (`--cpu-period`, `--cpu-quota`, microseconds),
    # never with `cpus`, which sets both (quota per 100 ms)
    cpu_period: int | None = None
    cpu_quota: int | None = None
    cpuset_mems: str | None = None          # memory nodes it may use
    blkio_weight: int | None = None         # relative block I/O weight, 10 to 1000


# Resources' fields added later: left out of config_to_json when unset, so a record or an
# inventory entry written before them reads and compares the same
_LATER_RESOURCES = ("cpu_period", "cpu_quota", "cpuset_mems", "blkio_weight")


@dataclass(frozen=True)
class ResourceUpdate:
    """What `docker update` changes of a container: each field None is left as it is. Docker's
    rules (`runtime/limits.py`) check it, on every engine (`Updating`), and the native engine
    merges it over the container's Resources and restart policy by them (dockerd merges it
    itself); the CLI's `update` and the Engine API's `POST /containers/{id}/update` make it."""

    memory: int | None = None
    memory_swap: int | None = None          # -1: unlimited swap
    memory_reservation: int | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    cpu_period: int | None = None
    cpu_quota: int | None = None
    cpuset: str | None = None
    cpuset_mems: str | None = None
    pids: int | None = None                 # 0 or -1: no limit, as docker's --pids-limit
    blkio_weight: int | None = None
    restart: RestartPolicy | None = None

    def empty(self) -> bool:
        """Whether it changes nothing (`docker update` without a flag)."""
        return self == ResourceUpdate()


@dataclass(frozen=True)
class Ulimit:
    """One setrlimit(2) limit of the container's processes; -1 is unlimited."""

    name: str                       # "nofile", "nproc", ...
    soft: int
    hard: int


@dataclass(frozen=True)
class UpdateConfig:
    """How an engine that replaces a container's copies itself (a Swarm service) rolls out a change;
    the single-host engines replace containers as the plan says and ignore it."""

    order: str = "stop-first"       # "stop-first" | "start-first"
    on_failure: str = "rollback"    # "rollback" | "pause" | "continue": what the engine does when new copies fail
    monitor: float = 0.0            # seconds each new copy is watched for failure (0: the engine's default)
    parallelism: int = 1            # copies replaced at once (0: all)
    delay: float = 0.0              # seconds between two batches
    max_failure_ratio: float = 0.0  # the share of copies that may fail before on_failure applies


@dataclass(frozen=True)
class ContainerConfig:
    """What to run: the image plus everything that overrides or adds to its config."""

    name: str
    image: str                      # reference as given ("reg/repo:tag", "...@sha256:...", or image id)
    # the exact image to run when `image`, the name the container shows (Docker's Config.Image),
    # may name another by now: a rollback's, the image the replaced container ran (its tag may
    # have moved to the image that failed); None: `image` as it resolves at create
    image_id: str | None = None
    command: tuple[str, ...] | None = None   # Entrypoint override (None = image's)
    args: tuple[str, ...] | None = None      # Cmd override (None = image's)
    env: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    workdir: str | None = None
    hostname: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[PortMapping, ...] = ()
    networks: tuple[str, ...] = ()           # () = the default network; ("none",) or ("host",)
    aliases: tuple[str, ...] = ()
    mounts: tuple[Mount, ...] = ()
    restart: RestartPolicy = RestartPolicy()
    healthcheck: Healthcheck | None = None
    resources: Resources = Resources()
    read_only: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    stop_signal: str | None = None
    stop_timeout: float = 10.0
    init: bool = False
    replicas: int = 1                        # copies (a Swarm service's replicas); single hosts run one
    update: UpdateConfig = UpdateConfig()
    global_mode: bool = False                # a Swarm global service: one copy per node it is placed on
    constraints: tuple[str, ...] = ()        # Swarm placement constraints ("node.labels.role==edge")
    spread: tuple[str, ...] = ()             # Swarm spread preferences ("node.labels.zone")
    sysctls: Mapping[str, str] = field(default_factory=dict)     # namespaced kernel parameters
    ulimits: tuple[Ulimit, ...] = ()
    shm_size: int | None = None                 # bytes of /dev/shm; None: 64 MiB (Docker's)
    extra_hosts: tuple[str, ...] = ()           # "name:address" lines added to /etc/hosts
    dns: tuple[str, ...] = ()                   # nameservers instead of the host's
    dns_search: tuple[str, ...] = ()            # search domains instead of the host's
    tty: bool = False                           # main process on a pseudo-terminal (run -t)
    stdin_open: bool = False                    # main process's stdin kept open (run -i)
    # Docker's StdinOnce: the attach that sends its stdin closes it as it ends (`run -i` in the
    # foreground, `create -i`; not `run -d -i`, whose stdin stays open across attaches), unless a terminal
    stdin_once: bool = False
    no_new_privileges: bool = False             # the no_new_privs bit (security-opt no-new-privileges)
    dns_options: tuple[str, ...] = ()           # resolv.conf options instead of the host's
    oom_score_adj: int | None = None            # -1000..1000
    group_add: tuple[str, ...] = ()             # supplementary groups: names in the image, or gids
    privileged: bool = False                    # every capability and host device, no seccomp, no masks
    devices: tuple[str, ...] = ()               # host device nodes: "HOST:CONTAINER:PERMISSIONS"
    domainname: str | None = None               # the UTS namespace's NIS domain name
    reservations: Resources = Resources()    # Swarm's reservations (memory, cpus); single hosts: unused
    # env keys whose values came from a SOPS-encrypted file, by that file's keyed digest (of its values):
    # their values are in `env` in memory only; a record keeps the keys and digests, never the
    # values (config_to_json leaves them out), so a config read back lacks them (secret_env_missing)
    secret_env: Mapping[str, str] = field(default_factory=dict)
    ipv4_addresses: Mapping[str, str] = field(default_factory=dict)   # fixed addresses by network name
    ipv6_addresses: Mapping[str, str] = field(default_factory=dict)
    # an interface's own settings by network name: its MAC address, extra link-local addresses
    # (169.254.0.0/16 ones a /16, fe80::/10 ones a /64, as Docker adds them), and its gateway
    # priority (the highest gives the default route; absent: 0); `networks` is in connection order
    mac_addresses: Mapping[str, str] = field(default_factory=dict)
    link_local_ips: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    gw_priorities: Mapping[str, int] = field(default_factory=dict)
    # an endpoint's own aliases, by network name (`docker network connect --alias`, a create's
    # NetworkingConfig): names on that network alone, beside `aliases`, which are on every one
    network_aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Docker's legacy links on a user-defined network ("TARGET:ALIAS": `docker run --link`,
    # compose's `links:` and the links `docker-compose run` gives a one-off container): ALIAS
    # names TARGET (a container's name or id) to this container alone, at TARGET's address on a
    # network they share, as dockerd's embedded DNS answers a link there
    links: tuple[str, ...] = ()
    log_driver: str | None = None               # Docker's LogConfig.Type (None: the engine's default)
    log_options: Mapping[str, str] = field(default_factory=dict)   # LogConfig.Config: max-size, max-file, ...
    # runs to completion (exit 0) once: on a single host the executor waits for the container's
    # exit; a Swarm service runs it as a replicated job (`Mode.ReplicatedJob`)
    job: bool = False
    # a Swarm service's own settings (single hosts: unused): how a failed update is rolled back
    # (None: as `update`, failing to pause), labels of the service alone (not its copies'), and
    # how its name resolves ("vip" | "dnsrr"; None: vip, Swarm's and docker stack deploy's default)
    rollback: UpdateConfig | None = None
    service_labels: Mapping[str, str] = field(default_factory=dict)
    endpoint_mode: str | None = None


@dataclass(frozen=True)
class EndpointConfig:
    """A container's own settings on one network's interface: one network's part of
    ContainerConfig's `mac_addresses`, `link_local_ips`, `gw_priorities` and `network_aliases`
    (a connect's)."""

    mac: str | None = None
    link_local: tuple[str, ...] = ()
    gw_priority: int = 0
    aliases: tuple[str, ...] = ()


def endpoint_of(config: ContainerConfig, network: str) -> EndpointConfig:
    """`config`'s interface settings on `network`."""
    return EndpointConfig(config.mac_addresses.get(network), tuple(config.link_local_ips.get(network) or ()),
                          int(config.gw_priorities.get(network) or 0), tuple(config.network_aliases.get(network) or ()))


def with_endpoints(config: ContainerConfig, endpoints: Mapping[str, EndpointConfig]) -> ContainerConfig:
    """`config` with the interface settings of `endpoints` on those networks (an empty one: none
    there), and none on a network it does not join (a disconnect, a reconnect elsewhere)."""
    joined = set(config.networks)
    maps: dict[str, dict[str, Any]] = {"mac_addresses": dict(config.mac_addresses),
                                       "link_local_ips": dict(config.link_local_ips),
                                       "gw_priorities": dict(config.gw_priorities),
                                       "network_aliases": dict(config.network_aliases)}
    for network, ep in endpoints.items():
        for key, value in (("mac_addresses", ep.mac), ("link_local_ips", tuple(ep.link_local)),
                           ("gw_priorities", ep.gw_priority), ("network_aliases", tuple(ep.aliases))):
            maps[key].pop(network, None)
            if value:
                maps[key][network] = value
    kept = {k: {n: v for n, v in m.items() if n in joined} for k, m in maps.items()}
    return dataclasses.replace(config, mac_addresses=kept["mac_addresses"], link_local_ips=kept["link_local_ips"],
                               gw_priorities=kept["gw_priorities"], network_aliases=kept["network_aliases"])


def labels_match(labels: Mapping[str, str], selector: Mapping[str, str] | None) -> bool:
    """The `list_*(selector)` rule: every selector key has that value in `labels` (None: all)."""
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not f.metadata.get("transient")}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def config_to_json(config: ContainerConfig) -> dict[str, Any]:
    """Plain JSON data of a container config (the inventory and the fake runtime keep these):
    without a secret mount's content, nor the values of `secret_env`'s keys."""
    out: dict[str, Any] = _jsonable(config)
    if config.secret_env:
        out["env"] = {k: v for k, v in out["env"].items() if k not in config.secret_env}
    else:
        out.pop("secret_env")            # absent when none: records written before it read the same
    for key in ("image_id", "ipv4_addresses", "ipv6_addresses", "log_driver", "log_options", "mac_addresses",
                "link_local_ips", "gw_priorities", "job", "network_aliases", "rollback", "service_labels",
                "endpoint_mode", "links", "stdin_once"):
        if not out[key]:
            out.pop(key)                 # likewise
    for key in ("delay", "window"):
        if out["restart"][key] is None:
            del out["restart"][key]      # likewise
    for key, default in (("parallelism", 1), ("delay", 0.0), ("max_failure_ratio", 0.0)):
        if out["update"][key] == default:
            del out["update"][key]       # likewise
    if out["healthcheck"] is not None and not out["healthcheck"]["start_interval"]:
        del out["healthcheck"]["start_interval"]    # likewise
    for key in ("resources", "reservations"):
        for later in _LATER_RESOURCES:
            if out[key][later] is None:
                del out[key][later]          # likewise
    return out


def secret_env_missing(config: ContainerConfig) -> list[str]:
    """The keys of `secret_env` that have no value in `env`: a config read back from a record
    (a rollback's, a copy's) never carries them."""
    return sorted(k for k in config.secret_env if k not in config.env)


def _tuple(v: Any) -> tuple[str, ...] | None:
    return None if v is None else tuple(v)


def _strings(v: Any) -> tuple[str, ...]:
    return tuple(v or ())


def _same(v: Any) -> Any:
    return v


def _dict(v: Any) -> dict[str, Any]:
    return dict(v or {})


def _healthcheck(hc: Any) -> Healthcheck | None:
    return Healthcheck(**{**hc, "test": tuple(hc["test"])}) if hc else None


# How each key of config_to_json's document becomes the field again. A key a document lacks is
# the field's default, which is what config_to_json wrote for an empty config
# (tests/runtime/test_base_json.py): a record keeps only the keys that differ from it, and reads
# back by converting those alone (#21).
_FROM_JSON: dict[str, Callable[[Any], Any]] = {
    "name": str, "image": str, "image_id": _same, "command": _tuple, "args": _tuple,
    "env": _dict, "labels": _dict,
    "user": _same, "workdir": _same, "hostname": _same,
    "ports": lambda v: tuple(PortMapping(**p) for p in v or ()),
    "networks": _strings, "aliases": _strings,
    "mounts": lambda v: tuple(Mount(**{**m, "options": tuple(m.get("options") or ())}) for m in v or ()),
    "restart": lambda v: RestartPolicy(**(v or {})),
    "healthcheck": _healthcheck,
    "resources": lambda v: Resources(**(v or {})),
    "read_only": bool, "cap_add": _strings, "cap_drop": _strings, "stop_signal": _same,
    "stop_timeout": float, "init": bool, "replicas": int,
    "update": lambda v: UpdateConfig(**(v or {})),
    "global_mode": bool, "constraints": _strings, "spread": _strings,
    "sysctls": _dict,
    "ulimits": lambda v: tuple(Ulimit(**u) for u in v or ()),
    "shm_size": _same, "extra_hosts": _strings, "dns": _strings, "dns_search": _strings,
    "tty": bool, "stdin_open": bool, "stdin_once": bool, "no_new_privileges": bool, "dns_options": _strings,
    "oom_score_adj": _same, "group_add": _strings, "privileged": bool, "devices": _strings,
    "domainname": _same,
    "reservations": lambda v: Resources(**(v or {})),
    "secret_env": _dict,
    "ipv4_addresses": _dict, "ipv6_addresses": _dict,
    "log_driver": _same, "log_options": _dict,
    "mac_addresses": _dict,
    "link_local_ips": lambda v: {n: tuple(ips) for n, ips in (v or {}).items()},
    "gw_priorities": lambda v: {n: int(p) for n, p in (v or {}).items()},
    "job": bool,
    "network_aliases": lambda v: {n: tuple(names) for n, names in (v or {}).items()},
    "rollback": lambda v: UpdateConfig(**v) if v else None,
    "service_labels": _dict,
    "endpoint_mode": _same,
    "links": _strings,
}


def config_from_json(d: Mapping[str, Any]) -> ContainerConfig:
    """The inverse of `config_to_json` (keys it does not know are left out: a later version's)."""
    return ContainerConfig(**{k: conv(v) for k, v in d.items() if (conv := _FROM_JSON.get(k)) is not None})


class ContainerStatus(enum.StrEnum):
    """Docker's container states."""

    CREATED = "created"
    RUNNING = "running"
    RESTARTING = "restarting"       # exited and waiting for a policy restart (backoff)
    EXITED = "exited"
    DEAD = "dead"


@dataclass(frozen=True)
class LogLine:
    """One reassembled log line (partial chunks joined)."""

    time: str                       # RFC 3339 with nanoseconds
    stream: str                     # "stdout" | "stderr"
    data: bytes                     # without the trailing newline
    # False for the last bytes a process wrote without a newline after them: what prints the
    # line writes no newline either, so `run IMG cat FILE > out` is FILE, byte for byte
    newline: bool = True

    @property
    def written(self) -> bytes:
        """The bytes as the process wrote them: the data and its newline, if it had one."""
        return self.data + b"\n" if self.newline else self.data


# built when first named (runtime/basetypes.py: a run without networks or named volumes needs none of them)
_LATER = frozenset({"ContainerState", "ExecResult", "Healed", "NetworkConfig", "NetworkState", "VolumeConfig",
                    "VolumeState"})

if not TYPE_CHECKING:
    def __getattr__(name: str) -> Any:
        if name in _LATER:
            from reconciler.runtime import basetypes

            globals().update({n: getattr(basetypes, n) for n in _LATER})    # later lookups find them here
            return globals()[name]
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The options of Swarm's overlay network driver that a Network's `driverOpts` may carry (moby's
# libnetwork drivers/overlay: `encrypted`, IPsec between the nodes, and the VXLAN ids of its
# subnets; the MTU is the Network's `mtu`). The driver ignores any other option without a word,
# so one is refused where it is written instead (spec/building.py, spec/compose_native.py).
OVERLAY_DRIVER_OPTIONS = ("encrypted", "com.docker.network.driver.overlay.vxlanid_list")


def volume_to_create(name: str | None, labels: Mapping[str, str], driver: str = "local",
                     driver_opts: Mapping[str, str] | None = None) -> VolumeConfig:
    """What `docker volume create` asks for (the CLI's and the Engine API's): the volume `name`,
    or without one a random name, labelled anonymous, as dockerd 23+ makes it."""
    import secrets

    from reconciler.runtime import basetypes  # (VolumeConfig is built when first named)

    labels = dict(labels)
    if not name:
        name = secrets.token_hex(32)
        labels[ANONYMOUS_VOLUME_LABEL] = ""
    return basetypes.VolumeConfig(name=name, labels=labels, driver=driver or "local",
                                  driver_opts=dict(driver_opts or {}))


def local_bind(driver: str, opts: Mapping[str, str]) -> str | None:
    """The host directory a `local` volume binds (Docker's `--opt type=none --opt o=bind --opt
    device=/DIR`, compose's "local bind volume"), or None for any other driver or options."""
    if driver != "local" or set(opts) != {"type", "o", "device"} or opts["type"] != "none":
        return None
    binds = {o.strip() for o in str(opts["o"]).split(",")}
    device = str(opts["device"])
    return device if binds and binds <= {"bind", "rbind"} and device.startswith("/") else None


class Runtime(Protocol):
    """A container engine: native, Docker Engine API, or Swarm."""

    name: str

    # images
    # `progress` may raise errors.Cancelled to stop the pull: the native engine stops at the next
    # chunk of a download or before the next layer is extracted, removes what it half-downloaded
    # and passes Cancelled on (a layer being extracted is finished first)
    def pull_image(self, ref: str, *, progress: ProgressCallback | None = None) -> ImageInfo: ...
    def resolve_digest(self, ref: str) -> str: ...         # registry HEAD; no download
    def list_images(self) -> list[ImageInfo]: ...
    def inspect_image(self, ref: str) -> ImageInfo: ...     # local only; NotFound if absent
    def remove_image(self, ref: str, *, force: bool = False) -> list[str]: ...  # untagged/deleted

    # containers
    def list_containers(self, selector: Mapping[str, str] | None = None) -> list[ContainerState]: ...
    def create_container(self, config: ContainerConfig) -> str: ...
    def start_container(self, name_or_id: str) -> None: ...
    def stop_container(self, name_or_id: str, *, timeout: float | None = None) -> None: ...
    def kill_container(self, name_or_id: str, signal: str = "KILL") -> None: ...
    def remove_container(self, name_or_id: str, *, force: bool = False) -> None: ...
    def inspect_container(self, name_or_id: str) -> ContainerState: ...
    def wait_container(self, name_or_id: str, *, timeout: float | None = None) -> int: ...
    def logs(
        self, name_or_id: str, *, follow: bool = False, since: str | None = None, tail: int | None = None,
    ) -> Iterator[LogLine]: ...
    # as `docker exec` runs it: `user` in Docker's forms (user, uid, user:group, uid:gid), `workdir`
    # (default: the container's), `env` KEY=VALUE entries over the container's (a KEY alone unsets
    # it); it ends when its process exits; one that cannot start (a missing command) exits 126
    def exec(
        self, name_or_id: str, argv: list[str], *, tty: bool = False, user: str | None = None,
        workdir: str | None = None, env: Sequence[str] = (),
    ) -> ExecResult: ...

    # networks and volumes
    def list_networks(self, selector: Mapping[str, str] | None = None) -> list[NetworkState]: ...
    def ensure_network(self, config: NetworkConfig) -> NetworkState: ...
    def remove_network(self, name: str) -> None: ...
    def list_volumes(self, selector: Mapping[str, str] | None = None) -> list[VolumeState]: ...
    def ensure_volume(self, config: VolumeConfig) -> VolumeState: ...
    def remove_volume(self, name: str) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class ServiceEngine(Protocol):
    """A cluster engine whose "containers" are services (Docker Swarm): the engine places their
    copies on its nodes, which pull images themselves, replaces them in a rolling update and
    rolls a failed update back on its own. The planner then updates in place instead of
    recreating, pins images by registry digest, and waits for every rollout."""

    def refusals(self, config: ContainerConfig) -> list[str]: ...
    # what in `config` the engine cannot run, each as "FIELD: why" in manifest terms
    # (spec.volumes[1], spec.ports[0]); [] when it can run it all

    def update_container(self, name_or_id: str, config: ContainerConfig) -> None: ...
    # change the service to `config` in place; the engine rolls the change out

    def service_settings(self, config: ContainerConfig) -> Mapping[str, Any]: ...
    # what `config` makes of a service's own settings, which the spec hash leaves out (its
    # labels, rolling update and rollback, endpoint mode, restart timing), comparable with
    # ContainerState.service_settings: a difference is an update in place

    def wait_rollout(
        self, name_or_id: str, *, timeout: float, stop: Callable[[], bool] | None = None,
    ) -> None: ...
    # until every wanted copy of the current spec runs (healthy where checked), a job's until its
    # copies completed; raises errors.RolloutFailed naming the service and the engine's own reason
    # when the engine rolled the update back or paused it, when a job's copy failed for good, or
    # when it has not converged after `timeout` seconds; errors.Cancelled once `stop()` is true


@runtime_checkable
class ArchiveTransfer(Protocol):
    """An engine that takes images and volume content as tar streams (container import)."""

    def load_image_archive(self, src: IO[bytes]) -> list[str]: ...     # the loaded images' ids
    def import_volume(self, name: str, src: IO[bytes], *, helper_image: str,
                      labels: Mapping[str, str] | None = None) -> None: ...
    # a new volume `name` (with `labels`) filled from the tar stream `src`


@runtime_checkable
class Batching(Protocol):
    """An engine that leaves work many calls of a pass share to the pass's end (the native
    engine: the peers' hosts files a new container's name goes into, network/network.py)."""

    def batch(self) -> AbstractContextManager[None]: ...


@runtime_checkable
class Renaming(Protocol):
    """An engine that renames containers (a start-first update renames the new one into place)."""

    def rename_container(self, name_or_id: str, new_name: str) -> None: ...


@runtime_checkable
class Restarting(Protocol):
    """An engine that restarts a container in one step (`docker restart`): a running one stopped as
    `stop_container` stops it (`timeout`: its stop timeout when None), then started; an AutoRemove
    one is kept across it, as dockerd keeps it."""

    def restart_container(self, name_or_id: str, *, timeout: float | None = None) -> None: ...


@runtime_checkable
class Inspecting(Protocol):
    """An engine that gives a container's `docker inspect` document (the native engine's own,
    dockerd's, Podman's): `reconcile port` reads its published ports there, as `docker port`
    reads them (`NetworkSettings.Ports`: the IPv6 twin of a binding too, which ContainerState
    leaves out)."""

    def inspect_document(self, name_or_id: str) -> dict[str, Any]: ...


@runtime_checkable
class ProcessListing(Protocol):
    """An engine that lists a container's processes (`docker top`): the host's `ps` with
    `ps_args`, the rows of the container's processes; Conflict when it does not run."""

    def top(self, name_or_id: str, ps_args: str = "-ef") -> tuple[list[str], list[list[str]]]: ...
    # (the titles, one row of fields per process)


@runtime_checkable
class Statistics(Protocol):
    """An engine that samples a container's resource usage (`docker stats`): one sample of Docker's
    stats document, as `GET /containers/{id}/stats?stream=0&one-shot=1` answers it: `read`,
    `name`, `id`, `cpu_stats`, `memory_stats`, `pids_stats`, `blkio_stats`, `networks`
    (`precpu_stats` empty: a CPU % is the difference of two samples); every counter empty for a
    container that does not run."""

    def container_stats(self, name_or_id: str) -> dict[str, Any]: ...


@runtime_checkable
class ImageHistory(Protocol):
    """An engine that tells the steps that made an image (`docker history`), newest first, each
    as the native store gives them (`ImageStore.history`): `id` (the image's on the newest,
    `<missing>` below), `created` (RFC 3339, None when unknown), `created_by`, `comment`, `tags`,
    `size` (the layer the step made), `empty_layer` (the native engine's; dockerd's and Podman's
    `GET /images/{name}/history`, its empty layers those of size 0)."""

    def image_history(self, ref: str) -> list[dict[str, Any]]: ...


@runtime_checkable
class Sizing(Protocol):
    """An engine that measures what its containers' files take (`docker ps -s`): each one's
    (SizeRw, SizeRootFs), Docker's list with `size=1`: its writable layer's bytes, and those with
    its image's; by full id, of the `ids` it has (the native engine's `containers/sizes.py`;
    dockerd's and Podman's `GET /containers/json?size=1`). Costly: asked only for what is shown."""

    def container_sizes(self, ids: Collection[str]) -> dict[str, tuple[int, int]]: ...


@runtime_checkable
class Updating(Protocol):
    """An engine that changes a container's limits and restart policy (`docker update`): the
    change checked alone first by the rules every engine shares (`runtime/limits.py`:
    InvalidArgument in dockerd's words, nothing changed), then applied to one container (NotFound,
    or Conflict when it does not fit what the container has); the warnings to show each time
    (a blkio weight the kernel discards). The native engine's (its cgroups, `runc update`),
    dockerd's and Podman's (`POST /containers/{id}/update`)."""

    def checked_update(self, update: ResourceUpdate) -> tuple[ResourceUpdate, list[str]]: ...

    def update_resources(self, name_or_id: str, update: ResourceUpdate) -> list[str]: ...


@runtime_checkable
class PathCopying(Protocol):
    """An engine that copies files in and out of a container (`docker cp`'s engine half: its
    archive endpoints), running or stopped, paths resolved inside the container (relative ones
    from `/`); `runtime/pathcopy.py` is the client half, which decides what to send and where."""

    def stat_path(self, name_or_id: str, path: str) -> dict[str, Any]: ...
    # Docker's PathStat (name, size, mode as Go's os.FileMode bits, mtime, linkTarget); NotFound

    def read_archive(self, name_or_id: str, path: str) -> tuple[dict[str, Any], Iterator[bytes]]: ...
    # its PathStat and `path` as a tar stream (entries named from its last component; `DIR/.`
    # from `.`), which holds what it reads through until read to its end or closed

    def write_archive(self, name_or_id: str, path: str, src: IO[bytes], *, copy_uid_gid: bool = False) -> None: ...
    # the tar stream `src` unpacked into the directory `path`; `copy_uid_gid` (`docker cp -a`):
    # every entry owned by the container's user, as dockerd chowns it


@runtime_checkable
class Connecting(Protocol):
    """An engine that connects an existing container to a network (`docker network connect`), with
    the settings its config gives it there (aliases, fixed addresses, MAC address, link-local
    addresses, gateway priority): a pass repairs a container found off one of its networks so
    (ContainerState.networks), where it would otherwise replace it."""

    connects: frozenset[str]        # the container statuses (ContainerStatus values) it connects in

    def connect_container(self, name_or_id: str, network: str, config: ContainerConfig, *,
                          again: bool = False) -> None: ...
    # `again`: it is on `network` already, not as `config` says (an alias missing, a network
    # made again since): disconnected from it first


@runtime_checkable
class ImageBuilding(Protocol):
    """An engine that builds images from a Dockerfile (an Image object with `build:`)."""

    def build_due(self, ref: str, context: str, dockerfile: str, args: Mapping[str, str],
                  target: str | None, push: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]: ...
    # (why `ref` must be built now, None if its build is current; the `push` targets that lack it)

    def build_image(self, ref: str, context: str, dockerfile: str, args: Mapping[str, str],
                    target: str | None, *, secrets: Mapping[str, bytes] | None = None,
                    ssh: Mapping[str, str] | None = None, allow_insecure: bool = False) -> ImageInfo: ...
    # (secrets: RUN --mount=type=secret contents by id, never stored; ssh: agent sockets by id;
    # allow_insecure: RUN --security=insecure may run)


@runtime_checkable
class ImagePushing(Protocol):
    """An engine that pushes a local image to a registry (an Image object with `push:`)."""

    def push_image(self, ref: str, dest: str) -> str: ...     # the pushed manifest's digest


@runtime_checkable
class AttachedStart(Protocol):
    """An engine that starts a container with its output attached first (Docker, Podman), as
    `docker run` reads it: a foreground `reconcile run` gets every byte, where a logs follow can
    end before the last ones."""

    def started_attached(self, name_or_id: str) -> AbstractContextManager[Iterator[LogLine]]: ...
    # start the created container; the lines it writes until it exits


@runtime_checkable
class TagOrigins(Protocol):
    """An engine that knows whether a local tag came from a registry (the native engine, and
    Docker's by its RepoDigests; Podman gives every local image a repo digest, so it does not)."""

    def made_here(self, ref: str) -> bool: ...
    # whether the local image tagged `ref` was made on this host (built, committed, loaded,
    # imported or tagged here) and never pulled nor pushed as `ref`: no registry holds that tag's
    # image, so a pass does not ask one for it (as docker and compose use such an image); False
    # when no image is tagged `ref`


class SupervisionLoop(Protocol):
    """A loop the engine's host process runs until `stop` is set, a sweep every `poll` seconds."""

    def watch(self, stop: threading.Event, *, poll: float = ...) -> None: ...


class RestartSupervision(SupervisionLoop, Protocol):
    """The restart-policy loop, which also starts at engine start what its policy wants up."""

    # the containers it started; `held` (ids) it leaves stopped whatever their policy
    def boot(self, *, held: Collection[str] = ...) -> list[str]: ...

    # whether a restart waits its back-off, which only the running loop makes (`boot` schedules
    # a crash-looping container's: a lazy session then runs the loop at once)
    def pending(self) -> bool: ...


class HealthSupervision(SupervisionLoop, Protocol):
    """The healthcheck loop, which also probes one container when asked (a pass that finds a
    health status stale, `ContainerState.health_stale`, probes it before it judges)."""

    def probe(self, cid: str) -> str | None: ...              # run its check now: the status it records


@runtime_checkable
class Healing(Protocol):
    """An engine whose host plumbing another program can take while it runs (a bridge deleted,
    its containers' veths unplugged or deleted, a firewall reload that flushes its nft rules),
    which it makes again when asked: the agent asks before each pass, so what a pass observes is
    what the host has (the native engine)."""

    def heal(self) -> Healed: ...            # what was made again, and which containers stay cut off


@runtime_checkable
class Supervised(Protocol):
    """An engine whose restart policies and healthchecks are loops that the process holding it
    must run (the native engine; dockerd runs its own)."""

    @property
    def restart_manager(self) -> RestartSupervision: ...

    @property
    def health_checker(self) -> HealthSupervision: ...
