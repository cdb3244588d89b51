"""Typed, frozen models of the four manifest kinds, with every default applied.

The loader (`reconciler.spec.load`) is the only producer of these values. Field names are the
snake_case forms of the manifest's camelCase keys (`envFiles` -> `env_files`). Durations are
seconds (float), memory is bytes, relative paths are already absolute (resolved against the
directory of the manifest file that named them).

Mappings are read-only views; the objects compare by value but are not hashable (they hold
mappings) — key them by `name`.

`spec_hash` (DESIGN.md §5.2) is the sha256 of the canonical JSON of the object's spec minus
the fields whose change needs no recreate, plus the content hash of every file the spec
references (env files, bind sources that are regular files). See `reconciler.spec.hashing`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from types import MappingProxyType
from typing import Any, Literal

from reconciler._dataclass import dataclass, dataclasses, field
from reconciler.spec import tagpolicy

__all__ = [
    "KINDS",
    "BuildSecret",
    "BuildSpec",
    "BuildSsh",
    "Container",
    "DesiredState",
    "Healthcheck",
    "Image",
    "ImageUpdate",
    "Network",
    "Origin",
    "Placement",
    "PortSpec",
    "Reservations",
    "Resources",
    "RestartPolicy",
    "RollbackPolicy",
    "SecretFile",
    "Selection",
    "Ulimit",
    "UpdatePolicy",
    "Volume",
    "VolumeMount",
]

KINDS: tuple[str, ...] = ("Container", "Image", "Network", "Volume")

PullPolicy = Literal["always", "missing", "never"]
UpdateOrder = Literal["stop-first", "start-first"]
OnFailure = Literal["rollback", "pause", "continue"]
RollbackOnFailure = Literal["pause", "continue"]
EndpointMode = Literal["vip", "dnsrr"]
DriftMode = Literal["correct", "report"]
MountType = Literal["volume", "bind", "tmpfs"]
DeletionPolicy = Literal["Retain", "Delete"]
UpdateMode = Literal["apply", "notify"]


@dataclass(frozen=True)
class Origin:
    """Where a document (or a node in it) starts: 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class PortSpec:
    """A published port: `[host_ip:]host_port:container_port[/protocol]`."""

    host_ip: str                    # "0.0.0.0" when not given (Docker's default)
    host_port: int
    container_port: int
    protocol: str                   # "tcp" | "udp"
    # mode: ingress (Swarm's routing mesh); absent from the hash when False, so older hashes stay
    ingress: bool = field(default=False, metadata={"omit_empty": True})


@dataclass(frozen=True)
class VolumeMount:
    """`volume` (source = Volume object name), `bind` (source = absolute host path) or `tmpfs`."""

    type: MountType
    source: str                     # "" for tmpfs
    target: str                     # absolute path in the container
    read_only: bool
    options: tuple[str, ...] = ()   # tmpfs: "size=<bytes>", "mode=<octal>"
    # a bind source written relative to the manifests (or ~): a path where reconciler runs, which
    # a cluster's node does not have. Not hashed (transient): how a path was written changes
    # nothing that runs, and the hashes of existing containers stay as they were
    relative: bool = field(default=False, compare=False, metadata={"transient": True})


@dataclass(frozen=True)
class SecretFile:
    """A file put into the container from a tmpfs of its own (`secrets:`). `data` is the file's
    content, decrypted in memory when sops encrypted it: never part of the spec hash (`digest`
    is), never stored (repr and comparisons leave it out)."""

    source: str                     # absolute host path (the live path, as env files are named); "": content or env
    target: str                     # absolute path in the container
    mode: int                       # default 0o400
    uid: int                        # default 0
    gid: int                        # default 0
    digest: str = ""                # of the file (sops-encrypted: the keyed digest of its values): what the hash and a rollback compare
    data: bytes = field(default=b"", repr=False, compare=False, metadata={"transient": True})


@dataclass(frozen=True)
class RestartPolicy:
    """Docker's restart policies; `max_retries` only for on-failure (0 = unlimited)."""

    name: str                       # "no" | "on-failure" | "always" | "unless-stopped"
    max_retries: int


@dataclass(frozen=True)
class Healthcheck:
    """`test` as Docker has it: ("CMD", ...), ("CMD-SHELL", "...") or ("NONE",); () when the
    manifest names none: the image's HEALTHCHECK with these timings, and then a timing it leaves
    out is 0, the image's (Docker's HealthConfig: 0 inherits)."""

    test: tuple[str, ...]
    interval: float                 # seconds; default 30 (no test: 0, the image's)
    timeout: float                  # seconds; default 30 (no test: 0, the image's)
    start_period: float             # seconds; default 0
    retries: int                    # default 3 (no test: 0, the image's)
    # seconds between probes during start_period until healthy; 0: the engine's (Docker's 5 s)
    start_interval: float = field(default=0.0, metadata={"omit_empty": True})


@dataclass(frozen=True)
class Resources:
    """cgroup limits; None means unlimited."""

    memory: int | None              # bytes
    cpus: float | None              # CPUs (quota / period)
    pids: int | None
    memory_reservation: int | None = None   # bytes (soft limit)
    cpu_shares: int | None = None           # relative weight (Docker's 1024 when None)
    cpuset: str | None = None               # CPUs it may run on, like "0-1,3"
    memory_swap: int | None = None          # bytes of memory + swap; -1 unlimited; None: = memory
    # docker's own CFS numbers (microseconds), never with `cpus`, which sets both (quota per 100 ms)
    cpu_period: int | None = None
    cpu_quota: int | None = None            # -1: no limit
    cpuset_mems: str | None = None          # memory nodes it may use, like "0-1"
    blkio_weight: int | None = None         # relative block I/O weight, 10 to 1000


@dataclass(frozen=True)
class LogConfig:
    """`logging:`: where a container's output goes (Docker's --log-driver / --log-opt)."""

    driver: str | None              # None: the engine's default
    options: Mapping[str, str]


@dataclass(frozen=True)
class Ulimit:
    """One setrlimit(2) limit; -1 is unlimited."""

    name: str                       # "nofile", "nproc", ... (RLIMIT_ without the prefix, lower case)
    soft: int
    hard: int


@dataclass(frozen=True)
class Reservations:
    """`resources.reservations`: what a Swarm node must have free to run a copy; None: nothing."""

    memory: int | None              # bytes
    cpus: float | None


@dataclass(frozen=True)
class UpdatePolicy:
    """How a changed container is replaced (DESIGN.md §5.6); on Swarm the service's rolling
    update (its UpdateConfig), where `parallelism`, `delay` and `max_failure_ratio` apply too."""

    order: UpdateOrder              # default "stop-first"
    health_timeout: float           # seconds to wait for healthy/running; default 60
    min_ready: float                # seconds running before "ready" without healthcheck; default 0 (Swarm: Monitor)
    on_failure: OnFailure           # default "rollback" ("continue": Swarm's; one host: as "pause")
    # (absent from the documents the inventory keeps while not set: older ones stay the same)
    parallelism: int | None = field(default=None, metadata={"omit_empty": True})   # Swarm: copies at once; None: 1, 0: all
    delay: float = field(default=0.0, metadata={"omit_empty": True})               # Swarm: seconds between two batches
    max_failure_ratio: float = field(default=0.0, metadata={"omit_empty": True})   # Swarm: the share that may fail


@dataclass(frozen=True)
class RollbackPolicy:
    """`spec.rollback`: how Swarm rolls a failed update back (its RollbackConfig); None where a
    field is left out: update's (order, minReady)."""

    order: UpdateOrder | None = None
    parallelism: int = 1
    delay: float = 0.0
    min_ready: float | None = None
    on_failure: RollbackOnFailure = "pause"
    max_failure_ratio: float = 0.0


@dataclass(frozen=True)
class ImageUpdate:
    """`image: {track, policy, mode}`: the agent follows the repository's tags (spec/tagpolicy.py)."""

    repository: str                 # the tracked reference without its tag ("registry:5000/shop/web")
    tag: str                        # the tag the manifest names (what runs until the policy picks another)
    policy: tagpolicy.Policy
    mode: UpdateMode                # default "apply"
    at: Origin                      # where the `track` value is written (write-back edits that line)


@dataclass(frozen=True)
class Placement:
    """Where a container runs (`spec.placement`); empty = every host."""

    labels: Mapping[str, str] = field(default_factory=dict)  # the host (Swarm: node) carries all of them
    constraints: tuple[str, ...] = ()   # Swarm syntax ("node.labels.zone==east", "node.role!=manager")
    preferences: tuple[str, ...] = ()   # Swarm spread preferences ("node.labels.zone")

    def __bool__(self) -> bool:
        return bool(self.labels or self.constraints or self.preferences)

    def __hash__(self) -> int:
        return hash((tuple(sorted(self.labels.items())), self.constraints, self.preferences))

    def swarm_constraints(self) -> tuple[str, ...]:
        """The labels as Swarm constraints on node labels, then the constraints as written."""
        return (*(f"node.labels.{k}=={v}" for k, v in sorted(self.labels.items())), *self.constraints)

    def __str__(self) -> str:
        """`role=edge, node.labels.zone==east` (for messages)."""
        return ", ".join([*(f"{k}={v}" for k, v in sorted(self.labels.items())), *self.constraints]) or "every host"


@dataclass(frozen=True)
class Container:
    """A `kind: Container` document."""

    name: str
    labels: Mapping[str, str]
    origin: Origin
    image: str                      # resolved reference (an Image object's name -> its ref)
    image_object: str | None        # name of the Image object it came from, if any
    command: tuple[str, ...] | None  # Entrypoint override (None = image's)
    args: tuple[str, ...] | None    # Cmd override (None = image's)
    env: Mapping[str, str]          # envFiles merged in order, then `env` on top
    env_files: tuple[str, ...]      # absolute paths
    ports: tuple[PortSpec, ...]
    networks: tuple[str, ...]       # Network object names (or ("host",) / ("none",)), by entry priority
    aliases: tuple[str, ...]        # extra DNS names on its networks
    volumes: tuple[VolumeMount, ...]
    restart: RestartPolicy          # default "no"
    healthcheck: Healthcheck | None
    resources: Resources
    depends_on: tuple[str, ...]     # Container names
    update: UpdatePolicy
    drift: DriftMode                # default "correct"
    user: str | None
    workdir: str | None
    hostname: str | None
    read_only: bool
    cap_add: tuple[str, ...]
    cap_drop: tuple[str, ...]
    stop_signal: str | None
    stop_timeout: float             # seconds; default 10
    init: bool
    spec_hash: str
    # `image:` as an update policy (None: a plain reference); `image` is then `repository:tag`,
    # and the spec hash names the repository only: which tag runs is the image digest's matter
    image_update: ImageUpdate | None = None
    secrets: tuple[SecretFile, ...] = field(default=(), metadata={"omit_empty": True})
    replicas: int = 1               # copies that run: a Swarm service's replicas; one on a single host
    placement: Placement = Placement()  # where it runs (spec.placement; reconciler.spec.placement)
    global_mode: bool = False       # replicas: global: one copy per node placed on (replicas is 1 then)
    sysctls: Mapping[str, str] = field(default_factory=dict)    # namespaced kernel parameters
    ulimits: tuple[Ulimit, ...] = ()                            # sorted by name
    shm_size: int | None = None                                 # bytes of /dev/shm; None: 64 MiB
    extra_hosts: tuple[str, ...] = ()                           # "name:address" lines for /etc/hosts
    dns: tuple[str, ...] = ()                                   # nameserver addresses (): the host's
    dns_search: tuple[str, ...] = ()                            # search domains (): the host's
    job: bool = False                                           # runs to completion (exit 0) once
    tty: bool = False                                           # main process on a pseudo-terminal
    stdin_open: bool = False                                    # main process's stdin kept open
    no_new_privileges: bool = False                             # the no_new_privs bit for every process
    dns_options: tuple[str, ...] = ()                           # resolv.conf options (): the host's
    oom_score_adj: int | None = None                            # -1000..1000; None: the engine's
    group_add: tuple[str, ...] = ()                             # supplementary groups (names or gids)
    privileged: bool = False                                    # docker run --privileged
    devices: tuple[str, ...] = ()                               # "HOST:CONTAINER:PERMISSIONS", normalised
    domainname: str | None = None                               # the UTS namespace's NIS domain name
    # resources.reservations (Swarm's scheduler); absent when not set, so older hashes stay
    reservations: Reservations | None = field(default=None, metadata={"omit_empty": True})
    # env keys whose values came from a SOPS-encrypted env file (the last file or `env` to set a
    # key wins), by that file's keyed digest (of its values: sopskeys.Keys.digest): the spec hash,
    # the inventory and the engines' records take the digest, never the value (docs/security.md);
    # absent when none
    secret_env: Mapping[str, str] = field(default_factory=dict, metadata={"omit_empty": True})
    # fixed addresses by Network name (`networks: [{name, ipv4Address, ipv6Address}]`); absent when none
    ipv4_addresses: Mapping[str, str] = field(default_factory=dict, metadata={"omit_empty": True})
    ipv6_addresses: Mapping[str, str] = field(default_factory=dict, metadata={"omit_empty": True})
    # the network entries' own settings by Network name (`networks: [{name, macAddress, linkLocalIPs,
    # gwPriority}]`; an entry's `priority` is the order of `networks`); absent when none
    mac_addresses: Mapping[str, str] = field(default_factory=dict, metadata={"omit_empty": True})     # normalised: 02:42:0a:00:00:05
    link_local_ips: Mapping[str, tuple[str, ...]] = field(default_factory=dict, metadata={"omit_empty": True})
    gw_priorities: Mapping[str, int] = field(default_factory=dict, metadata={"omit_empty": True})     # only those not 0
    logging: LogConfig | None = field(default=None, metadata={"omit_empty": True})      # absent when not set
    # Swarm's settings of the service itself, beside its copies (no effect on one host; not in the
    # spec hash: the planner compares them with the service's own, `PlanOptions.service_settings`)
    rollback: RollbackPolicy | None = field(default=None, metadata={"omit_empty": True})
    service_labels: Mapping[str, str] = field(default_factory=dict, metadata={"omit_empty": True})
    endpoint_mode: EndpointMode | None = field(default=None, metadata={"omit_empty": True})   # None: vip (Swarm's default)
    restart_delay: float | None = field(default=None, metadata={"omit_empty": True})  # seconds; None: Swarm's 5 s
    restart_window: float | None = field(default=None, metadata={"omit_empty": True})  # seconds; None: unbounded
    # labels that say where the manifests are read from, not what runs: stamped on the container
    # with `labels`, never in its spec hash (moving a checkout replaces nothing): a compose
    # project's `com.docker.compose.project.working_dir` and `.config_files` (spec.load sets them)
    location_labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildSecret:
    """A secret for `RUN --mount=type=secret,id=ID` (`build.secrets`). Only where it comes from is
    part of the spec hash; `data` (read or decrypted at load) never is, and is never stored."""

    id: str
    file: str = ""                  # absolute host path (the live path), or
    env: str = ""                   # an environment variable of the loading process
    data: bytes = field(default=b"", repr=False, compare=False, metadata={"transient": True})


@dataclass(frozen=True)
class BuildSsh:
    """An SSH agent for `RUN --mount=type=ssh,id=ID` (`build.ssh`)."""

    id: str                         # default "default"
    socket: str                     # absolute path of the agent's socket


@dataclass(frozen=True)
class BuildSpec:
    """How to build an Image from a context directory."""

    context: str                    # absolute path
    file: str                       # Dockerfile path relative to the context; default "Dockerfile"
    args: Mapping[str, str]         # build args
    target: str | None              # multi-stage target
    # (omitted from hashes and state while empty: the hashes of older builds stay the same)
    secrets: tuple[BuildSecret, ...] = field(default=(), metadata={"omit_empty": True})
    ssh: tuple[BuildSsh, ...] = field(default=(), metadata={"omit_empty": True})
    allow: tuple[str, ...] = field(default=(), metadata={"omit_empty": True})   # "security.insecure"


@dataclass(frozen=True)
class Image:
    """A `kind: Image` document: a pinned pull policy, or a build."""

    name: str
    labels: Mapping[str, str]
    origin: Origin
    ref: str | None                 # reference to pull or to tag the build as; builds without
                                    # one get "localhost/<name>:latest", so set after loading
    pull: PullPolicy                # default "missing"
    track: bool                     # follow the tag's digest; default False
    build: BuildSpec | None
    push: tuple[str, ...]           # references to push the built image to
    spec_hash: str


@dataclass(frozen=True)
class Network:
    """A `kind: Network` document: a bridge network."""

    name: str
    labels: Mapping[str, str]
    origin: Origin
    subnet: str | None              # CIDR; None = allocate from the pool
    gateway: str | None
    internal: bool
    mtu: int                        # default 1500
    spec_hash: str
    ipv6: bool = False              # dual stack
    ipv6_subnet: str | None = None  # IPv6 CIDR; None = a /64 of the ULA pool
    driver_opts: Mapping[str, str] = field(default_factory=dict)   # spec.driverOpts: Swarm's overlay driver's


@dataclass(frozen=True)
class Volume:
    """A `kind: Volume` document: a named volume."""

    name: str
    labels: Mapping[str, str]
    origin: Origin
    deletion_policy: DeletionPolicy  # default "Retain": never deleted by prune
    spec_hash: str
    driver: str = "local"           # spec.driver
    driver_opts: Mapping[str, str] = field(default_factory=dict)   # spec.driverOpts


@dataclass(frozen=True)
class Selection:
    """The services a command line named (`reconcile apply SOURCE web worker`, as `docker compose
    up web worker`): what `reconciler.spec.selection.select` took of a revision, and the one
    record of it a pass, the history and a rollback read."""

    services: tuple[str, ...]           # as named: compose services, or Container names of manifests
    deps: bool = True                   # with what they depend on (False: --no-deps)
    units: tuple[str, ...] = ()         # the services (Containers) taken: those named and, with deps, their
    #                                     dependencies, sorted (filled by `select`)
    containers: tuple[str, ...] = ()    # their containers, sorted (filled by `select`)
    project: str = ""                   # the compose project's name ("" for manifests)

    def __str__(self) -> str:
        """`web worker`, `web (--no-deps)`: what was named, as the command line said it."""
        return " ".join(self.services) + ("" if self.deps else " (--no-deps)")

    def words(self) -> str:
        """What was taken, for a summary: `services db, web`, `services web (--no-deps)`."""
        what = "services" if self.project else "Containers"
        return f"{what} {', '.join(self.units or self.services)}" + ("" if self.deps else " (--no-deps)")


@dataclass(frozen=True)
class DesiredState:
    """One validated revision: every object by kind and name."""

    containers: Mapping[str, Container]
    images: Mapping[str, Image]
    networks: Mapping[str, Network]
    volumes: Mapping[str, Volume]
    revision: str                   # sha256 of the canonical content of every document and file
    sources: tuple[str, ...]        # manifest files read, sorted
    files: Mapping[str, str] = field(default_factory=dict)  # referenced files (absolute) -> digest
    project: str = ""               # the compose project's name, when loaded from compose files
    compose_files: tuple[str, ...] = ()     # those compose files, in the order they merge (-f's, COMPOSE_FILE's)
    compose_profiles: tuple[str, ...] = ()  # the profiles active in that project (--profile, COMPOSE_PROFILES)
    warnings: tuple[str, ...] = ()  # what loads but is not honoured ("file:line:col: field: message")
    # what the manifests place on other hosts than this one ("Container/web" -> why), when a
    # single host took its part (reconciler.spec.placement.select)
    elsewhere: Mapping[str, str] = field(default_factory=dict)
    external_networks: tuple[str, ...] = ()     # Networks declared `external: true`: used, never made
    external_volumes: tuple[str, ...] = ()      # Volumes declared `external: true`: used, never made
    # the part of the revision a command line selected (reconciler.spec.selection): a pass over it
    # makes, changes and prunes only that part; None: all of it
    selection: Selection | None = None
    # with a selection, the whole revision it was taken from: what `apply` keeps a copy of for rollback
    whole: DesiredState | None = field(default=None, repr=False, compare=False)

    def narrowed(self, containers: Mapping[str, Container], *, images: Collection[str], networks: Collection[str],
                 volumes: Collection[str], **changes: Any) -> DesiredState:
        """This revision with only `containers`, and of its Images, Networks and Volumes (declared
        or external) only those `images`, `networks` and `volumes` name; `changes`: the other
        fields to set (what took the part says so: `selection`, `elsewhere`). The one narrowing
        of a revision: a host's part (`spec/placement.py`), a command line's (`spec/selection.py`)."""
        return dataclasses.replace(
            self,
            containers=MappingProxyType(dict(containers)),
            images=MappingProxyType({n: v for n, v in self.images.items() if n in images}),
            networks=MappingProxyType({n: v for n, v in self.networks.items() if n in networks}),
            volumes=MappingProxyType({n: v for n, v in self.volumes.items() if n in volumes}),
            external_networks=tuple(n for n in self.external_networks if n in networks),
            external_volumes=tuple(n for n in self.external_volumes if n in volumes),
            **changes,
        )
