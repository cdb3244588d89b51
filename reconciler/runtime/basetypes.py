"""The Runtime protocol's value types that running a container needs not: what the engine reports
of its containers, exec results, networks and volumes.

They are `runtime.base`'s (named there: `base.ContainerState`, `from reconciler.runtime.base
import NetworkConfig`, ...) and live here only so that they are built when first named: each
frozen dataclass costs its module ~0.5 ms of compiling at import, and `reconcile run --rm` without
a network or a named volume uses none of them, a pass with nothing to do few (#21).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler._dataclass import dataclass, field
from reconciler.runtime.base import ContainerStatus, PortMapping

__all__ = ["ContainerState", "ExecResult", "Healed", "NetworkConfig", "NetworkState", "VolumeConfig", "VolumeState"]


@dataclass(frozen=True)
class ContainerState:
    """One container as the engine sees it now."""

    id: str
    name: str
    image: str                      # reference it was created from
    image_id: str                   # config digest
    labels: Mapping[str, str]
    status: ContainerStatus
    created: str
    exit_code: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    pid: int | None = None
    oom_killed: bool = False
    health: str | None = None       # "starting" | "healthy" | "unhealthy" | None
    restart_count: int = 0
    ip_addresses: Mapping[str, str] = field(default_factory=dict)   # network -> address
    ports: tuple[PortMapping, ...] = ()
    manually_stopped: bool = False
    error: str | None = None        # why the engine ended it (Docker's State.Error; a service's
                                    # newest task error)
    replicas: int | None = None     # a service's wanted copies (Swarm); None: one container
    replicas_running: int | None = None   # of those, how many run (healthy where checked); a job's: completed
    placement: tuple[tuple[str, ...], tuple[str, ...]] | None = None  # a service's (constraints, spread)
    ip6_addresses: Mapping[str, str] = field(default_factory=dict)  # network -> IPv6 address (dual stack)
    paused: bool = False            # running, its processes frozen (Docker's State.Paused): status stays RUNNING
    # running with a healthcheck that no probe observed for longer than its interval allows, so
    # `health` is what a probe saw then, not what runs now (the native engine, whose probes run
    # only while an agent or a `reconcile` session does: healthtimes.stale); False elsewhere
    # (dockerd and Swarm probe on their own)
    health_stale: bool = False
    health_probed_at: str | None = None     # when a probe last observed its health in this run (native)
    first_probe: float | None = None   # seconds from its start to its healthcheck's first probe
                                       # (None: no healthcheck, or the engine does not say)
    # running, the host paths of its bind mounts that are no longer what it has mounted: deleted,
    # or replaced (an editor's save writes a new file; a daemon makes its socket anew), so it
    # still reads and writes the old one (native; () elsewhere)
    stale_binds: tuple[str, ...] = ()
    job: bool = False               # a Swarm job service (replicated-job): exited once its copies completed
    # the networks it is attached to (the ones it starts on, when stopped), by name:
    # the id of the network it was attached to ("" when the engine does not say: a native
    # record, a Docker endpoint not yet started, Podman, which gives the name); None: the engine
    # cannot tell (Swarm), and nothing is judged by it
    networks: Mapping[str, str] | None = None
    # its DNS aliases on each of those networks (Docker's endpoint Aliases; the native engine's
    # are the container's own, on every network it is on)
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # a Swarm service's own settings (its labels, rolling update and rollback, endpoint mode,
    # restart delay and window), as `ServiceEngine.service_settings` makes them of a config;
    # None: a container (nothing judged by it)
    service_settings: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ExecResult:
    """Output of a finished exec."""

    exit_code: int
    stdout: bytes
    stderr: bytes


@dataclass(frozen=True)
class Healed:
    """What `Healing.heal` made again of the engine's host plumbing, and what it could not."""

    made: tuple[str, ...] = ()      # as words: "bridge rcl-lan", "nft table rcl", "container web on bridge rcl-lan (veth ...)"
    # container name -> why it is still cut off from a network it runs on (a running container
    # whose interface could not be plugged in again): what the agent's status lists as down
    cut_off: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NetworkConfig:
    """A bridge network."""

    name: str
    subnet: str | None = None       # CIDR; None = allocate from the pool
    gateway: str | None = None
    internal: bool = False
    mtu: int = 1500
    labels: Mapping[str, str] = field(default_factory=dict)
    ipv6: bool = False              # dual stack: an IPv6 /64 besides the IPv4 subnet
    ipv6_subnet: str | None = None  # CIDR; None = a /64 from the ULA pool (fd00::/8)
    # Docker's Attachable, recorded and shown (`docker network create --attachable`): on one host
    # any container joins a bridge network, so the native engine does nothing more with it
    attachable: bool = False
    # the overlay driver's options (base.OVERLAY_DRIVER_OPTIONS: `encrypted`, ...): Swarm's only
    driver_opts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NetworkState:
    """A network as the engine has it."""

    id: str
    name: str
    subnet: str
    gateway: str
    internal: bool
    labels: Mapping[str, str]
    bridge: str = ""                # Linux interface name
    ipv6_subnet: str = ""           # "" = IPv4 only
    ipv6_gateway: str = ""
    mtu: int = 1500                 # its bridge's and veths' MTU
    created: str = ""               # RFC 3339, when the engine made it ("" when it does not say)
    attachable: bool = False        # as it was created (NetworkConfig.attachable)


@dataclass(frozen=True)
class VolumeConfig:
    """A named volume."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    driver: str = "local"
    driver_opts: Mapping[str, str] = field(default_factory=dict)   # `docker volume create --opt`


@dataclass(frozen=True)
class VolumeState:
    """A named volume as the engine has it."""

    name: str
    mountpoint: str
    labels: Mapping[str, str]
    created: str
    # what the engine observed wrong with it, which a mount of it would be refused for (the
    # native engine: its data directory gone, `volumes.lost`), and what to do; None: nothing
    problem: str | None = None
    hint: str | None = None


