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

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from reconciler.spec import tagpolicy

__all__ = [
    "KINDS",
    "BuildSpec",
    "Container",
    "DesiredState",
    "Healthcheck",
    "Image",
    "ImageUpdate",
    "Network",
    "Origin",
    "PortSpec",
    "Resources",
    "RestartPolicy",
    "UpdatePolicy",
    "Volume",
    "VolumeMount",
]

KINDS: tuple[str, ...] = ("Container", "Image", "Network", "Volume")

PullPolicy = Literal["always", "missing", "never"]
UpdateOrder = Literal["stop-first", "start-first"]
OnFailure = Literal["rollback", "pause"]
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


@dataclass(frozen=True)
class VolumeMount:
    """`volume` (source = Volume object name), `bind` (source = absolute host path) or `tmpfs`."""

    type: MountType
    source: str                     # "" for tmpfs
    target: str                     # absolute path in the container
    read_only: bool


@dataclass(frozen=True)
class RestartPolicy:
    """Docker's restart policies; `max_retries` only for on-failure (0 = unlimited)."""

    name: str                       # "no" | "on-failure" | "always" | "unless-stopped"
    max_retries: int


@dataclass(frozen=True)
class Healthcheck:
    """`test` as Docker has it: ("CMD", ...), ("CMD-SHELL", "...") or ("NONE",)."""

    test: tuple[str, ...]
    interval: float                 # seconds; default 30
    timeout: float                  # seconds; default 30
    start_period: float             # seconds; default 0
    retries: int                    # default 3


@dataclass(frozen=True)
class Resources:
    """cgroup limits; None means unlimited."""

    memory: int | None              # bytes
    cpus: float | None              # CPUs (quota / period)
    pids: int | None


@dataclass(frozen=True)
class UpdatePolicy:
    """How a changed container is replaced (DESIGN.md §5.6)."""

    order: UpdateOrder              # default "stop-first"
    health_timeout: float           # seconds to wait for healthy/running; default 60
    min_ready: float                # seconds running before "ready" without healthcheck; default 0
    on_failure: OnFailure           # default "rollback"


@dataclass(frozen=True)
class ImageUpdate:
    """`image: {track, policy, mode}`: the agent follows the repository's tags (spec/tagpolicy.py)."""

    repository: str                 # the tracked reference without its tag ("registry:5000/shop/web")
    tag: str                        # the tag the manifest names (what runs until the policy picks another)
    policy: tagpolicy.Policy
    mode: UpdateMode                # default "apply"
    at: Origin                      # where the `track` value is written (write-back edits that line)


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
    networks: tuple[str, ...]       # Network object names (or ("host",) / ("none",))
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


@dataclass(frozen=True)
class BuildSpec:
    """How to build an Image from a context directory."""

    context: str                    # absolute path
    file: str                       # Dockerfile path relative to the context; default "Dockerfile"
    args: Mapping[str, str]         # build args
    target: str | None              # multi-stage target


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


@dataclass(frozen=True)
class Volume:
    """A `kind: Volume` document: a named volume."""

    name: str
    labels: Mapping[str, str]
    origin: Origin
    deletion_policy: DeletionPolicy  # default "Retain": never deleted by prune
    spec_hash: str


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
    warnings: tuple[str, ...] = ()  # what loads but is not honoured ("file:line:col: field: message")
