"""A Docker-compatible Engine API served from the native engine (`reconcile engine-api`).

It is a view of the native engine, not a second engine: every call becomes the runtime call the
reconciler itself makes, so `docker ps` and `reconcile ps` show one state. Paths are accepted
versioned (`/v1.41/containers/json`) and unversioned, bodies and answers have Docker's JSON
shapes and status codes, errors are `{"message": ...}`.

What is served and what is not: docs/engine-api.md (keep its table true when a route changes).
Routes of Docker's API not served answer 501 with the route named; a path that is none of its
routes, dockerd's 404 "page not found".
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import platform
import re
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from reconciler import __version__, httpbody, listing
from reconciler._dataclass import dataclass, dataclasses, replace
from reconciler.api import dockerfilters
from reconciler.api.server import _remove_stale, _UnixHTTPServer
from reconciler.runtime import base
from reconciler.runtime import errors as rterrors
from reconciler.state import labels as ownership

__all__ = ["API_VERSION", "EngineApi"]

API_VERSION = "1.41"
MIN_API_VERSION = "1.24"
MAX_BODY = 1 << 20
MAX_UPLOAD = 1 << 40           # a tar body (docker cp, build): the layer extractor's limits apply
MAX_UNREAD = 1 << 26           # bytes of a body a route left unread read and dropped before its answer
_VERSIONED = re.compile(r"^/v1\.\d+(/.*)$")
_PRUNE = ("containers", "images", "networks", "volumes")
# the first segments of Docker's API paths: a path under another is dockerd's 404 "page not found";
# under one of these, a route the engine does not serve is a 501 naming it
_DOCKER_ROOTS = frozenset(("_ping", "auth", "build", "commit", "configs", "containers", "distribution", "events",
                           "exec", "grpc", "images", "info", "networks", "nodes", "plugins", "secrets", "services",
                           "session", "swarm", "system", "tasks", "version", "volumes"))
_UNSERVED_CONTAINER_ROUTES = ("attach/ws",)     # Docker's, which this API does not serve (501)
WAIT_TICK = 1.0                # seconds a wait waits on a container's exit before it checks its client
DETACHED_START_WAIT = 10.0     # seconds a detached exec's start waits for its process to run
WAIT_POLL = 0.2                # ... on one without a monitor (between a restart's exit and its start)
# seconds an attach to a stopped container waits for its start (dockerd waits as long as the
# client does; `docker start -a` starts right after it attached, compose after its dependencies)
ATTACH_START_WAIT = 3600.0
# a pull's progress events as dockerd's status lines say them
_PULL_STATUS = {"layer-start": "Pulling fs layer", "layer-downloaded": "Download complete", "extract": "Extracting",
                "layer-done": "Pull complete"}
# the first kind an error is of decides (a PortInUse is a Conflict): a port taken fails dockerd's
# start with a 500, "driver failed programming external connectivity" (docker-py raises APIError)
_STATUS_CODES = {rterrors.PortInUse: 500, rterrors.NotFound: 404, rterrors.AlreadyExists: 409,
                 rterrors.Conflict: 409, rterrors.InvalidArgument: 400}


class Hijack:
    """A raw stream on the hijacked connection (attach, exec start): Docker's 8-byte framed
    stdout/stderr (raw with a TTY), after a 101 Upgrade when the client asked for one; the
    connection closes at its end. `stdin`, when given, gets what the client sends, chunk by
    chunk, then None at its end (the client closed its writing side)."""

    def __init__(self, frames: Iterator[bytes], stdin: Callable[[bytes | None], None] | None = None) -> None:
        self.frames = frames
        self.stdin = stdin


def _frame(stream: str, data: bytes) -> bytes:
    return struct.pack(">BxxxL", 1 if stream == "stdout" else 2, len(data)) + data


class WithHeaders:
    """An answer with headers of its own (docker cp's path stat, a tar's content type)."""

    def __init__(self, payload: Any, headers: Mapping[str, str]) -> None:
        self.payload = payload
        self.headers = headers


class HttpError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ----------------------------------------------------------------------------- translations


def _duration_ns(ns: Any, default: float) -> float:
    return float(ns) / 1e9 if isinstance(ns, int | float) and ns > 0 else default


def config_from_create(name: str, body: Mapping[str, Any]) -> base.ContainerConfig:
    """A Docker `POST /containers/create` body as the runtime's ContainerConfig."""
    if not isinstance(body.get("Image"), str) or not body["Image"]:
        raise HttpError(400, "config.Image is required")
    host = body.get("HostConfig") or {}
    mounts: list[base.Mount] = []
    for spec in host.get("Binds") or ():
        src, _, rest = str(spec).partition(":")
        dst, _, mode = rest.partition(":")
        if not dst:             # `/data` alone: an anonymous volume
            src, dst = "", src
        kind = "bind" if src.startswith("/") else "volume"
        modes = mode.split(",") if mode else []
        if not _valid_modes(modes):     # a typo (`:r0`) was taken, and mounted read-write: dockerd's 400
            raise HttpError(400, f"invalid mode: {mode}")
        mounts.append(base.Mount(type=kind, source=src, target=dst, read_only="ro" in modes,
                                 options=tuple(o for o in modes if o in _MOUNT_MODES)))
    for m in host.get("Mounts") or ():
        tmpfs = m.get("TmpfsOptions") or {}
        propagation = (m.get("BindOptions") or {}).get("Propagation")
        options = tuple([*((f"size={tmpfs['SizeBytes']}",) if tmpfs.get("SizeBytes") else ()),
                         *((f"mode={int(tmpfs['Mode']):o}",) if tmpfs.get("Mode") is not None else ()),
                         *(("nocopy",) if (m.get("VolumeOptions") or {}).get("NoCopy") else ()),
                         *((str(propagation),) if propagation else ())])
        mounts.append(base.Mount(type=str(m.get("Type", "volume")), source=str(m.get("Source", "")),
                                 target=str(m["Target"]), read_only=bool(m.get("ReadOnly")), options=options))
    for dst, opts in (host.get("Tmpfs") or {}).items():
        mounts.append(base.Mount(type="tmpfs", target=dst, options=tuple(o for o in str(opts).split(",") if o)))
    targets = {m.target for m in mounts}        # `docker run -v /data`: Config.Volumes, an anonymous volume each
    mounts += [base.Mount(type="volume", target=str(dst)) for dst in body.get("Volumes") or {} if dst not in targets]
    ports = []
    for key, binds in (host.get("PortBindings") or {}).items():
        cport, _, proto = str(key).partition("/")
        for b in binds or [{}]:
            hport = str((b or {}).get("HostPort") or 0)         # "" (docker run -p 80): the engine chooses
            ports.append(base.PortMapping(container_port=int(cport), host_port=int(hport), protocol=proto or "tcp",
                                          host_ip=(b or {}).get("HostIp") or "0.0.0.0"))  # noqa: S104
    rp = host.get("RestartPolicy") or {}
    _refuse_unapplied(host)
    mode = str(host.get("NetworkMode") or "")
    links = _links(host.get("Links") or (), mode)
    networks: tuple[str, ...] = () if mode in ("", "default", "bridge") else (mode,)
    endpoints = {str(n): endpoint_settings(ep) for n, ep in
                 ((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}).items()}
    # an endpoint's aliases are its network's alone (dockerd's): those of the network it joins
    aliases = {net: tuple(dict.fromkeys(ep.aliases)) for net, ep in endpoints.items() if ep.aliases}
    if aliases and mode in ("", "default", "bridge", "host", "none"):
        from reconciler.runtime.native.network import dns

        raise HttpError(400, dns.ALIAS_ON_PREDEFINED)     # dockerd's words, the engine's connect's too
    fixed = {n: ep for n, ep in endpoints.items() if ep.ipv4 or ep.ipv6}
    own = _primary_endpoint(body, mode, networks, endpoints)
    for net in fixed:
        if net not in networks:         # dockerd's words: the default bridge takes no fixed address
            raise HttpError(400, "user specified IP address is supported on user defined networks only"
                            if mode in ("", "default", "bridge") else
                            f"a fixed address on network {net}, which the container does not join (NetworkMode {mode})")
    hc = body.get("Healthcheck")
    healthcheck = None
    if hc and (hc.get("Test") or any(hc.get(k) for k in ("Interval", "Timeout", "Retries", "StartPeriod",
                                                          "StartInterval"))):
        # as dockerd keeps it: an empty test and a timing of 0 are the image's (`base.healthcheck_of`)
        healthcheck = base.Healthcheck(test=tuple(hc.get("Test") or ()), interval=_duration_ns(hc.get("Interval"), 0.0),
                                       timeout=_duration_ns(hc.get("Timeout"), 0.0),
                                       retries=int(hc.get("Retries") or 0),
                                       start_period=_duration_ns(hc.get("StartPeriod"), 0.0),
                                       start_interval=_duration_ns(hc.get("StartInterval"), 0.0))
    env = {}
    for item in body.get("Env") or ():
        k, sep, v = str(item).partition("=")
        if sep:             # a bare name (`-e NAME`, NAME unset where the CLI runs): dockerd leaves it out
            env[k] = v
    nano = host.get("NanoCpus") or 0
    entrypoint = body.get("Entrypoint")
    return base.ContainerConfig(
        name=name, image=body["Image"],
        # [""] (`--entrypoint ""`): none, not the image's (dockerd resets it, and runs the Cmd given)
        command=(() if entrypoint == [""] else tuple(entrypoint)) if isinstance(entrypoint, list) else None,
        args=tuple(body["Cmd"]) if isinstance(body.get("Cmd"), list) else None,
        env=env, user=body.get("User") or None, workdir=body.get("WorkingDir") or None,
        hostname=body.get("Hostname") or None, domainname=body.get("Domainname") or None, labels=dict(body.get("Labels") or {}), ports=tuple(ports),
        networks=networks, mounts=tuple(mounts),
        restart=base.RestartPolicy(name=str(rp.get("Name") or "no"), max_retries=int(rp.get("MaximumRetryCount") or 0)),
        healthcheck=healthcheck,
        resources=base.Resources(memory=host.get("Memory") or None, cpus=nano / 1e9 if nano else None,
                                 pids=host.get("PidsLimit") or None,
                                 memory_swap=host.get("MemorySwap") or None,
                                 memory_reservation=host.get("MemoryReservation") or None,
                                 cpu_shares=host.get("CpuShares") or None, cpuset=host.get("CpusetCpus") or None,
                                 # `--cpu-quota`/`--cpu-period`: the CFS limit in docker's two numbers, kept
                                 # so (inspect shows them, `docker update` changes them), as dockerd keeps them
                                 cpu_period=host.get("CpuPeriod") or None, cpu_quota=host.get("CpuQuota") or None,
                                 cpuset_mems=host.get("CpusetMems") or None,
                                 blkio_weight=host.get("BlkioWeight") or None),
        read_only=bool(host.get("ReadonlyRootfs")), cap_add=tuple(host.get("CapAdd") or ()),
        cap_drop=tuple(host.get("CapDrop") or ()), stop_signal=body.get("StopSignal") or None,
        stop_timeout=_stop_timeout(body.get("StopTimeout")), init=bool(host.get("Init")),
        tty=bool(body.get("Tty")), stdin_open=bool(body.get("OpenStdin")),
        stdin_once=bool(body.get("StdinOnce")),
        ipv4_addresses={n: ep.ipv4 for n, ep in fixed.items() if ep.ipv4},
        ipv6_addresses={n: ep.ipv6 for n, ep in fixed.items() if ep.ipv6},
        mac_addresses={n: ep.mac for n, ep in own.items() if ep.mac},
        link_local_ips={n: ep.link_local for n, ep in own.items() if ep.link_local},
        gw_priorities={n: ep.gw_priority for n, ep in own.items() if ep.gw_priority},
        network_aliases={n: names for n, names in aliases.items() if n in networks},
        links=links,
        **_host_extras(host, domainname=body.get("Domainname") or None),
        **_log_config(host),
    )


# HostConfig settings the native engine does not apply, each with the values it has anyway (what
# it does without being asked: no remap, the host's cgroup namespace, no AppArmor or SELinux
# label): any other is a 400 naming it, not a container made without it (`docker run --pid host`
# ran in a PID namespace of its own, `--volumes-from` mounted nothing, without a word)
_UNAPPLIED: dict[str, tuple[Any, ...]] = {
    "PidMode": ("",), "IpcMode": ("", "private", "shareable"), "UTSMode": ("",), "UsernsMode": ("", "host"),
    "CgroupnsMode": ("", "host"), "VolumesFrom": (), "VolumeDriver": ("", "local"), "CgroupParent": ("",),
    "Isolation": ("", "default"), "OomKillDisable": (False,),
    "MemorySwappiness": (-1,), "KernelMemory": (0,), "KernelMemoryTCP": (0,),
    "BlkioWeightDevice": (), "BlkioDeviceReadBps": (), "BlkioDeviceWriteBps": (), "BlkioDeviceReadIOps": (),
    "BlkioDeviceWriteIOps": (), "CpuRealtimePeriod": (0,), "CpuRealtimeRuntime": (0,), "DeviceRequests": (),
    "DeviceCgroupRules": (), "StorageOpt": (),
}
# SecurityOpt entries it has anyway (no AppArmor profile, no SELinux label) or applies (no-new-privileges)
_SECURITY_OPTS = ("no-new-privileges", "apparmor=unconfined", "apparmor:unconfined", "label=disable", "label:disable")


def _refuse_unapplied(host: Mapping[str, Any]) -> None:
    """A 400 naming each HostConfig setting of `host` the native engine would not apply."""
    unapplied = [f"{key} {json.dumps(value)}" for key, allowed in _UNAPPLIED.items()
                 if (value := host.get(key)) not in (None, "", [], {}, *allowed)]
    unapplied += [f"SecurityOpt {json.dumps(o)}" for o in host.get("SecurityOpt") or ()
                  if not str(o).startswith(_SECURITY_OPTS)]
    if unapplied:
        raise HttpError(400, f"{', '.join(unapplied)}: not supported by the native engine, which would run the "
                             "container without it; leave it out, or run the container on dockerd")


def _links(given: Iterable[Any], mode: str) -> tuple[str, ...]:
    """HostConfig.Links as "TARGET:ALIAS" (`--link db` is `db:db`; the legacy `/db:/web/alias`
    form read as dockerd reads it): on a user-defined network, names the container alone
    resolves (`ContainerConfig.links`), as dockerd keeps them there, which compose's
    `links:` and the one-off containers of `docker-compose run` need. The default bridge's
    legacy links (environment variables, a hosts line fixed at the start), and those of `host`
    or `none`, the native engine has not: a 400 naming them, not a container made without them;
    its default network names its containers to each other anyway."""
    out = []
    for item in given:
        target, _, alias = str(item).partition(":")
        target, alias = target.strip("/"), alias.rstrip("/").rpartition("/")[2] or target.strip("/")
        if not target:
            raise HttpError(400, f"invalid link {item!r}: name the container to link to (NAME or NAME:ALIAS)")
        out.append(f"{target}:{alias}")
    if out and (mode in ("", "default", "bridge", "host", "none") or mode.startswith("container:")):
        raise HttpError(400, "HostConfig.Links (docker run --link) on the default bridge, host or none is not "
                             "supported by the native engine: put the containers on a user-defined network "
                             "(--network), where a link names its container to the linking one, and every "
                             "container on it reaches the others by name and aliases")
    return tuple(out)


def create_settings(body: Mapping[str, Any]) -> dict[str, Any]:
    """What a create body asks of the native engine beyond the ContainerConfig: Docker's settings
    it records for the container (NativeRuntime.create_container): a terminal and an open stdin
    (`run -t`/`-i`), AutoRemove (the engine removes it at its exit: RestartManager), ExposedPorts
    and PublishAllPorts (`--expose`, `run -P`: every exposed port published)."""
    host = body.get("HostConfig") or {}
    return {"terminal": bool(body.get("Tty")), "stdin": bool(body.get("OpenStdin")),
            "auto_remove": bool(host.get("AutoRemove")), "exposed": tuple(str(k) for k in body.get("ExposedPorts") or {}),
            "publish_all": bool(host.get("PublishAllPorts"))}


_MOUNT_MODES = ("nocopy", "private", "rprivate", "shared", "rshared", "slave", "rslave")   # Binds' modes kept
# the modes of a Binds entry dockerd takes, at most one of each kind (volume/mounts/linux_parser.go
# ValidMountMode): the SELinux labels and the consistency ones mean nothing here and are left
_MODE_KINDS = ({"rw", "ro"}, {"z", "Z"}, {"nocopy"}, {"consistent", "cached", "delegated"},
               {"private", "rprivate", "shared", "rshared", "slave", "rslave"})


def _valid_modes(modes: Sequence[str]) -> bool:
    return all(any(m in kind for kind in _MODE_KINDS) for m in modes) and \
        all(sum(m in kind for m in modes) <= 1 for kind in _MODE_KINDS)


def _stop_timeout(value: Any) -> float:
    """Config.StopTimeout: whole seconds, 0 included (a stop kills at once); absent (null): 10."""
    if value is None:
        return 10.0
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise HttpError(400, f"StopTimeout {value!r} is not a number of seconds (0 or more)")
    return float(value)


@dataclass(frozen=True)
class Endpoint:
    """An EndpointSettings as a client sends it (create's NetworkingConfig.EndpointsConfig[NET],
    network connect's EndpointConfig): its aliases and the fixed addresses of its IPAMConfig, and
    the interface's own settings: MacAddress, IPAMConfig.LinkLocalIPs, GwPriority."""

    aliases: tuple[str, ...]
    ipv4: str | None
    ipv6: str | None
    mac: str | None = None
    link_local: tuple[str, ...] = ()
    gw_priority: int = 0

    def own(self) -> base.EndpointConfig:
        return base.EndpointConfig(self.mac, self.link_local, self.gw_priority, self.aliases)


def endpoint_settings(ep: Mapping[str, Any] | None) -> Endpoint:
    """An EndpointSettings checked as a manifest's network entry is: a unicast MAC of 6 octets,
    link-local addresses, a whole gateway priority (400 otherwise, naming the field)."""
    from reconciler.spec import building

    ep = ep or {}
    ipam = ep.get("IPAMConfig") or {}
    mac = str(ep.get("MacAddress") or "") or None
    if mac is not None:
        mac, problem = building.mac_address(mac)
        if problem:
            raise HttpError(400, f"MacAddress: {problem}")
    local = []
    for text in ipam.get("LinkLocalIPs") or ():
        address, problem = building.link_local_address(str(text))
        if problem:
            raise HttpError(400, f"IPAMConfig.LinkLocalIPs: {problem}")
        local.append(address)
    priority = ep.get("GwPriority") or 0
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise HttpError(400, f"GwPriority {priority!r} is not a whole number")
    return Endpoint(tuple(str(a) for a in ep.get("Aliases") or ()),
                    str(ipam.get("IPv4Address") or "") or None, str(ipam.get("IPv6Address") or "") or None,
                    mac, tuple(dict.fromkeys(local)), priority)


def _primary_endpoint(body: Mapping[str, Any], mode: str, networks: tuple[str, ...],
                      endpoints: Mapping[str, Endpoint]) -> dict[str, Endpoint]:
    """The interface settings of the network a create names (NetworkMode; the default network
    for the default bridge), with the container-wide MacAddress (Engine API before 1.44, still
    taken up to 1.51) as its MAC, as dockerd migrates it; others are the connects' to give."""
    from reconciler.spec import building

    primary = networks[0] if networks else "default"
    ep = endpoints.get(primary) or endpoints.get(mode) or Endpoint((), None, None)
    wide = str(body.get("MacAddress") or "") or None
    if wide is not None:
        if mode in ("host", "none") or mode.startswith("container:"):
            raise HttpError(400, "conflicting options: mac-address and the network mode")
        mac, problem = building.mac_address(wide)
        if problem:
            raise HttpError(400, f"MacAddress: {problem}")
        if ep.mac is not None and ep.mac != mac:
            raise HttpError(400, "the container-wide MAC address must match the endpoint-specific MAC address for "
                                 "the main network, or be left empty")
        ep = replace(ep, mac=mac)
    return {primary: ep} if ep.mac or ep.link_local or ep.gw_priority else {}


def _log_config(host: Mapping[str, Any]) -> dict[str, Any]:
    """HostConfig.LogConfig as the container's log_driver and log_options. The native engine keeps
    each container's output itself and rotates it as json-file and local do, by max-size and
    max-file: another driver or option is refused (400), as dockerd refuses one it does not have."""
    given = host.get("LogConfig") or {}
    driver = str(given.get("Type") or "") or None
    options = {str(k): str(v) for k, v in (given.get("Config") or {}).items()}
    if driver is None and not options:
        return {}
    from reconciler.spec import building, units

    if driver not in (None, *building.NATIVE_LOG_DRIVERS):
        raise HttpError(400, f"log driver {driver!r} is not supported by the native engine: it keeps each container's "
                             f"output itself (docker logs) and rotates it as {' and '.join(building.NATIVE_LOG_DRIVERS)} "
                             "do")
    for key, value in sorted(options.items()):
        if key not in building.NATIVE_LOG_OPTIONS:
            raise HttpError(400, f"unknown log opt {key!r} for the native engine's logs: it honours "
                                 f"{' and '.join(building.NATIVE_LOG_OPTIONS)}")
        try:
            (units.parse_docker_size if key == "max-size" else building.positive_int)(value)
        except ValueError as exc:
            raise HttpError(400, f"log opt {key}: {exc}") from None
    return {"log_driver": driver, "log_options": options}


def _host_extras(host: Mapping[str, Any], *, domainname: str | None) -> dict[str, Any]:
    """The HostConfig settings beyond the basics, as the Docker backend writes them (its inverse;
    the `kernel.domainname` sysctl it adds for a Domainname is that Domainname, applied so anyway)."""
    security = [str(o) for o in host.get("SecurityOpt") or ()]
    sysctls = {str(k): str(v) for k, v in (host.get("Sysctls") or {}).items()}
    if domainname is not None and sysctls.get("kernel.domainname") == domainname:
        del sysctls["kernel.domainname"]
    return {
        "sysctls": sysctls,
        "ulimits": tuple(base.Ulimit(str(u["Name"]), int(u["Soft"]), int(u["Hard"])) for u in host.get("Ulimits") or ()),
        "shm_size": host.get("ShmSize") or None,
        "extra_hosts": tuple(str(h) for h in host.get("ExtraHosts") or ()),
        "dns": tuple(str(d) for d in host.get("Dns") or ()),
        "dns_search": tuple(str(d) for d in host.get("DnsSearch") or ()),
        "dns_options": tuple(str(d) for d in host.get("DnsOptions") or ()),
        "group_add": tuple(str(g) for g in host.get("GroupAdd") or ()),
        "privileged": bool(host.get("Privileged")),
        "devices": tuple(f"{d['PathOnHost']}:{d.get('PathInContainer') or d['PathOnHost']}:{d.get('CgroupPermissions') or 'rwm'}"
                         for d in host.get("Devices") or ()),
        "oom_score_adj": host.get("OomScoreAdj") if host.get("OomScoreAdj") else None,
        "no_new_privileges": any(o.split(":")[0].split("=")[0] == "no-new-privileges"
                                 and not o.endswith(("false", "=false")) for o in security),
    }


_MTU_OPTION = "com.docker.network.driver.mtu"


def _network_mtu(options: Mapping[str, Any]) -> int:
    """A network's MTU from its create's Options (the bridge driver's option, which the native
    engine's bridges honour); any other driver option is refused: the native engine has none."""
    for key in options:
        if key != _MTU_OPTION:
            raise HttpError(400, f"network option {key!r} is not supported: the native engine's bridge networks "
                                 f"take {_MTU_OPTION} only")
    raw = str(options.get(_MTU_OPTION) or "1500")
    if not raw.isdigit():
        raise HttpError(400, f"{_MTU_OPTION}: {raw!r} is not a whole number")
    return int(raw)


def _network_ipam(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A network create's IPv4 and IPv6 IPAM config ({} for one not given): its Subnet and Gateway,
    which the native engine's bridges take. What else a create may ask, the engine has not (a
    range to allocate from, reserved addresses, another IPAM driver, a swarm-scoped, ingress or
    config-only network): a 400 naming the field, not a network made without it."""
    ipam = data.get("IPAM") or {}
    if str(ipam.get("Driver") or "default") != "default":
        raise HttpError(400, f"IPAM.Driver {ipam['Driver']!r} is not supported: the native engine allocates addresses itself")
    if ipam.get("Options"):
        raise HttpError(400, f"IPAM.Options {sorted(ipam['Options'])} is not supported by the native engine")
    for key, wanted in (("Scope", "local"), ("Ingress", False), ("ConfigOnly", False)):
        if data.get(key) not in (None, "", wanted):
            raise HttpError(400, f"{key} {data[key]!r} is not supported: the native engine makes local bridge networks")
    if (data.get("ConfigFrom") or {}).get("Network"):
        raise HttpError(400, "ConfigFrom is not supported: the native engine makes no network from another's config")
    configs = [c or {} for c in ipam.get("Config") or []]
    for c in configs:
        for key in ("IPRange", "AuxiliaryAddresses"):
            if c.get(key):
                raise HttpError(400, f"IPAM.Config {key} is not supported by the native engine: it allocates from "
                                     "the whole subnet (give the containers that need one a fixed address)")
    v4 = [c for c in configs if ":" not in str(c.get("Subnet", ""))]
    v6 = [c for c in configs if ":" in str(c.get("Subnet", ""))]
    if len(v4) > 1 or len(v6) > 1:
        raise HttpError(400, "IPAM.Config: the native engine's networks take one IPv4 subnet and one IPv6 subnet")
    if v6 and not data.get("EnableIPv6"):
        raise HttpError(400, "an IPv6 subnet needs EnableIPv6: true")
    return (v4[0] if v4 else {}), (v6[0] if v6 else {})


# The native engine's default network is Docker's default bridge: this API names it "bridge" (its
# native name, "default", is accepted too), and lists "host" and "none", the network modes the
# engine keeps no record of, as dockerd lists its predefined networks. None of the three is
# created, removed or pruned through it (dockerd's 403s). docs/engine-api.md, "Networks".
_BRIDGE = "bridge"
_PREDEFINED_DRIVERS = {"bridge": "bridge", "host": "host", "none": "null"}
_ZERO_TIME = "0001-01-01T00:00:00Z"         # Go's zero time: what dockerd shows of a time it has not


def _native_default() -> str:
    """The native engine's name of its default network (network.DEFAULT_NETWORK)."""
    from reconciler.runtime.native.network import network

    return network.DEFAULT_NETWORK


def _docker_name(native: str) -> str:
    """A native network's name as this API shows it: the default network is "bridge"."""
    return _BRIDGE if native == _native_default() else native


def _rfc3339(created: str) -> str:
    """A record's creation time (Python's isoformat, UTC) as dockerd writes times."""
    return created.replace("+00:00", "Z") if created else _ZERO_TIME


@dataclass(frozen=True)
class NetworkView:
    """A network as this API shows it: the engine's name for it (`native`: "default" for the
    default bridge, "host", "none") and Docker's NetworkResource (`doc`, its `Containers` empty)."""

    native: str
    doc: dict[str, Any]


def network_doc(n: base.NetworkState) -> dict[str, Any]:
    """A native bridge network as Docker's NetworkResource (its Containers filled by the caller)."""
    options: dict[str, str] = {}
    if n.name == _native_default():         # what dockerd says of docker0, true of the native one
        options = {"com.docker.network.bridge.default_bridge": "true", "com.docker.network.bridge.name": n.bridge}
    if n.mtu != 1500:
        options[_MTU_OPTION] = str(n.mtu)
    return {"Name": _docker_name(n.name), "Id": n.id, "Created": _rfc3339(n.created), "Scope": "local",
            "Driver": "bridge", "EnableIPv6": bool(n.ipv6_subnet),
            "IPAM": {"Driver": "default", "Options": {},
                     "Config": [{"Subnet": n.subnet, "Gateway": n.gateway}] + (
                         [{"Subnet": n.ipv6_subnet, "Gateway": n.ipv6_gateway}] if n.ipv6_subnet else [])},
            "Internal": n.internal, "Attachable": n.attachable, "Ingress": False, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False, "Containers": {}, "Options": options, "Labels": dict(n.labels)}


def _predefined_doc(name: str, nid: str) -> dict[str, Any]:
    """"host" or "none" as dockerd lists them: no subnet, no record, no creation time."""
    return {"Name": name, "Id": nid, "Created": _ZERO_TIME, "Scope": "local", "Driver": _PREDEFINED_DRIVERS[name],
            "EnableIPv6": False, "IPAM": {"Driver": "default", "Options": None, "Config": []}, "Internal": False,
            "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
            "Containers": {}, "Options": {}, "Labels": {}}


def endpoint_id(network_id: str, container_id: str) -> str:
    """A container's endpoint on a network, as a Docker EndpointID (64 hex digits). The native
    engine's endpoint is the container's veth there, named from the container and network, and
    has no id of its own: this one is made of theirs, the same each time it is read."""
    import hashlib

    return hashlib.sha256(f"endpoint/{network_id}/{container_id}".encode()).hexdigest()


def _prefixed(address: str, length: int) -> str:
    return f"{address}/{length}" if address else ""


def endpoint_settings_of(rec: Any, nets: Mapping[str, NetworkView],
                         seen: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Docker's NetworkSettings.Networks of the container record `rec`, keyed by Docker's names:
    each bridge network it is on (its addresses and fixed ones as recorded, the network's id,
    gateway and prefix lengths from the network's record, its interface's MAC: the one the
    engine gives the veth's container end, `NetworkManager.mac_address`; on a user-defined
    network its aliases (the container's and the endpoint's own), its short id and its host name,
    and its DNSNames, which its peers resolve; on the default bridge none, as dockerd's; no
    address yet on a network a stopped container was connected to), over what `seen` (inspect's
    Networks, by native name) says;
    "none" or "host" for a container in those modes, as dockerd lists them; nothing for one
    that joins another's namespace or was disconnected from every network."""
    import ipaddress

    from reconciler.runtime.native.network import network

    out: dict[str, dict[str, Any]] = {}
    mode = rec.config.networks
    if not rec.netns_path:
        name = "host" if mode == ("host",) else ("none" if mode in ((), ("none",)) else "")
        if name and name in nets:
            out[name] = {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": nets[name].doc["Id"],
                         "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                         "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": None}
        return out
    from reconciler.runtime.native.containers import inspection

    for native in inspection.endpoint_networks(rec):
        ip = rec.ip_addresses.get(native, "")
        # an endpoint's aliases and DNS names (inspection.endpoint_names); on a user-defined network
        # its short id and host name added to the aliases, as dockerd 28 does for a client older than
        # 1.45 (this API is 1.41); none on the default bridge (dockerd's null)
        given_aliases, dns_names = inspection.endpoint_names(rec, native)
        aliases = None if dns_names is None else [*dict.fromkeys((*(given_aliases or ()), rec.id[:12],
                                                                   *((rec.hostname,) if rec.hostname else ())))]
        given = dict((seen or {}).get(native) or {})
        view = nets.get(native)
        if view is None:                    # (its network's record gone: only what inspect says)
            out[_docker_name(native)] = given or {"IPAddress": ip}
            continue
        configs: list[dict[str, str]] = view.doc["IPAM"]["Config"]
        v4 = next((c for c in configs if ":" not in c["Subnet"]), {})
        v6 = next((c for c in configs if ":" in c["Subnet"]), {})
        ip6 = rec.ip6_addresses.get(native, "")
        fixed = {key: by[native] for key, by in (("IPv4Address", rec.config.ipv4_addresses),
                                                 ("IPv6Address", rec.config.ipv6_addresses)) if native in by}
        out[_docker_name(native)] = {
            # the links on the network it was created on, as dockerd keeps them (HostConfig.Links null)
            "IPAMConfig": fixed or None, "Links": list(rec.config.links) if mode[:1] == (native,) and rec.config.links
            else None, "NetworkID": view.doc["Id"],
            # (no address: a stopped container connected, before its start attaches it there)
            "EndpointID": endpoint_id(view.doc["Id"], rec.id) if ip else "",
            "Gateway": v4.get("Gateway", "") if ip else "", "IPAddress": ip,
            "IPPrefixLen": ipaddress.ip_network(v4["Subnet"]).prefixlen if v4 and ip else 0,
            "IPv6Gateway": v6.get("Gateway", "") if ip6 else "", "GlobalIPv6Address": ip6,
            "GlobalIPv6PrefixLen": ipaddress.ip_network(v6["Subnet"]).prefixlen if ip6 and v6 else 0,
            # the MAC the engine gives the interface: the one asked for, else derived (inspect
            # reads the kernel's over it, `seen`)
            "MacAddress": rec.config.mac_addresses.get(native)
            or (network.NetworkManager.mac_address(rec.id, native) if ip else ""),
            "DriverOpts": None,
            **given, "Aliases": aliases, "DNSNames": dns_names}
    return out


def _top_level(networks: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """NetworkSettings' own address fields: the default network's endpoint, as dockerd fills them
    from the default bridge's (empty for a container not on it); `Bridge` is dockerd's `--bridge`
    option, which it leaves empty by default."""
    ep = networks.get(_BRIDGE) or {}
    return {"Bridge": "", "EndpointID": ep.get("EndpointID", ""), "Gateway": ep.get("Gateway", ""),
            "GlobalIPv6Address": ep.get("GlobalIPv6Address", ""), "GlobalIPv6PrefixLen": ep.get("GlobalIPv6PrefixLen", 0),
            "IPAddress": ep.get("IPAddress", ""), "IPPrefixLen": ep.get("IPPrefixLen", 0),
            "IPv6Gateway": ep.get("IPv6Gateway", ""), "MacAddress": ep.get("MacAddress", "")}


_ZERO_UNIX = -62135596800      # Go's zero time (0001-01-01T00:00:00Z) in seconds since the epoch


def _unix(ts: str | None) -> int:
    """Seconds since the epoch of an RFC 3339 UTC time (Docker lists times as integers)."""
    import calendar
    import time

    if not ts or len(ts) < 19:
        return 0
    try:
        return calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0


def _state(c: base.ContainerState) -> str:
    """Docker's State of a container: its status, or "paused" (a paused one is running)."""
    return "paused" if c.paused else c.status.value


def _status_text(c: base.ContainerState) -> str:
    """Docker's Status of a listed container ("Up 3 minutes (healthy)", "Up 5 seconds (Paused)",
    "Exited (3) 2 seconds ago"): the words `reconcile ps` prints (listing.status_text, the one
    home of that rule)."""
    return listing.status_text({"status": _state(c), "started_at": c.started_at, "health": c.health,
                                "exit_code": c.exit_code, "finished_at": c.finished_at,
                                "health_stale": c.health_stale, "health_probed_at": c.health_probed_at})


def docker_command(argv: Sequence[str]) -> str:
    """A container's Command as dockerd lists it (moby's container/view.go): its path and
    arguments joined by spaces, an argument with a space in single quotes, nothing escaped
    (`sh -c 'sleep 100'`; the docker CLI shows it in double quotes, cut unless `--no-trunc`)."""
    if not argv:
        return ""
    return " ".join([argv[0], *(f"'{a}'" if " " in a else a for a in argv[1:])])


def container_summary(c: base.ContainerState, networks: Mapping[str, Any] | None = None,
                      mode: str = "default", *, command: str = "",
                      mounts: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """A container as Docker's list shows it; `networks`: its NetworkSettings.Networks
    (`endpoint_settings_of`), else its addresses by network; `mode`: its HostConfig.NetworkMode;
    `command`: its `docker_command`; `mounts`: its MountPoints (inspection.mount_points)."""
    if networks is None:
        networks = {_docker_name(n): {"IPAddress": ip, "GlobalIPv6Address": c.ip6_addresses.get(n, "")}
                    for n, ip in c.ip_addresses.items()}
    return {
        "Id": c.id, "Names": ["/" + c.name], "Image": c.image, "ImageID": c.image_id, "Command": command,
        "Created": _unix(c.created), "State": _state(c), "Status": _status_text(c),
        "Ports": [{"IP": p.host_ip, "PrivatePort": p.container_port, "PublicPort": p.host_port, "Type": p.protocol}
                  for p in c.ports],
        "Labels": dict(c.labels), "SizeRw": 0, "SizeRootFs": 0, "HostConfig": {"NetworkMode": mode},
        "NetworkSettings": {"Networks": dict(networks)},
        "Mounts": [dict(m) for m in mounts],
    }


def _shown_image(row: dict[str, Any], named: Mapping[str, str | None]) -> dict[str, Any]:
    """A list row's Image as dockerd's list shows it: the reference the container was made
    from while that still names its image, else its image id (the tag moved by a pull or a
    build, or was removed): `docker ps` then shows the id, not a name of another image."""
    if row["Image"] != row["ImageID"] and named.get(row["Image"]) != row["ImageID"]:
        row["Image"] = row["ImageID"]
    return row


def _container_view(rec: Any, c: base.ContainerState, net_ids: Mapping[str, str]) -> dockerfilters.ContainerView:
    """A native container (its record and state) as the container list's filters see it: its
    mounts, networks (and their ids), and while it runs its ports, the published ones and those
    its image exposes (dockerd's NetworkSettings.Ports)."""
    ports = [(p.container_port, p.host_port, p.protocol) for p in c.ports]
    if c.status.value == "running":
        for key in (rec.image_config.get("ExposedPorts") or {}):
            port, _, proto = str(key).partition("/")
            if port.isdigit() and not any(p[0] == int(port) and p[2] == (proto or "tcp") for p in ports):
                ports.append((int(port), 0, proto or "tcp"))
    names = [*c.ip_addresses, *(n for n in rec.config.networks if n in ("none", "host"))]
    started = bool(c.started_at) and not str(c.started_at).startswith("0001-")
    return dockerfilters.ContainerView(
        id=c.id, name=c.name, state=_state(c), created_ns=dockerfilters.rfc3339_ns(c.created) or 0,
        labels=dict(c.labels), image_id=c.image_id, exit_code=c.exit_code, started=started,
        # by the engine's name and the one the API gives it (the default network is `bridge` too)
        health=c.health or "none", networks={m: net_ids.get(n, n) for n in names for m in {n, _docker_name(n)}},
        mounts=tuple((m.source, m.target) for m in rec.config.mounts if m.type in ("volume", "bind")),
        ports=tuple(ports))


def _terminal_size(q: Mapping[str, str]) -> tuple[int, int]:
    """A resize's `h` and `w` (rows, columns), or dockerd's 400 for one that is not a number."""
    try:
        rows, cols = int(q.get("h") or 0), int(q.get("w") or 0)
    except ValueError:
        raise HttpError(400, f"invalid terminal size: h={q.get('h')!r} w={q.get('w')!r}: give whole numbers") from None
    if not (0 <= rows < 1 << 16 and 0 <= cols < 1 << 16):
        raise HttpError(400, f"invalid terminal size: {rows}x{cols}")
    return rows, cols


def _image_or_404(rt: Any, ref: str) -> base.ImageInfo:
    """The local image `ref`, or Docker's 404 "No such image: REF" (docker-py and compose key
    their pull-on-missing on those words), REF as dockerd words it (`missing:latest`)."""
    try:
        info: base.ImageInfo = rt.inspect_image(ref)
    except rterrors.NotFound:
        raise HttpError(404, f"No such image: {_familiar(ref)}") from None     # a name without tag: NAME:latest
    return info


def _familiar(ref: str) -> str:
    """A reference as Docker's API shows it (`imagenames.familiar_tagged`)."""
    from reconciler import imagenames

    return imagenames.familiar_tagged(ref)


def _repo_refs(i: base.ImageInfo) -> tuple[list[str], list[str]]:
    """An image's tags and digests as Docker's API shows them (familiar NAME:TAG, NAME@DIGEST: a
    repository's digest only where the image was pulled from or pushed to it, as dockerd's)."""
    return [_familiar(t) for t in i.repo_tags], sorted({_familiar(d) for d in i.repo_digests})


def image_summary(i: base.ImageInfo, refs: tuple[list[str], list[str]] | None = None,
                  shared: int = -1) -> dict[str, Any]:
    """The images list's summary; `refs`: the tags and digests it shows (the list's `reference`
    filter keeps the matching ones), else all of them. An image without any has dockerd's
    `<none>:<none>` and `<none>@<none>`, which the docker CLI shows as a dangling image.
    `shared`: its SharedSize (`ImageStore.shared_sizes`), -1 when not asked for, as dockerd's."""
    tags, digests = refs if refs is not None else _repo_refs(i)
    if not tags and not digests:
        tags, digests = ["<none>:<none>"], ["<none>@<none>"]
    # an image without a time: Go's zero time, as dockerd lists it (`docker images`: N/A, not 56 years ago)
    return {"Id": i.id, "ParentId": "", "RepoTags": tags, "RepoDigests": digests,
            "Created": _unix(i.created) if i.created else _ZERO_UNIX,
            "Size": i.size, "VirtualSize": i.size, "SharedSize": shared, "Labels": dict(i.config.get("Labels") or {}),
            "Containers": -1}




def image_inspect(i: base.ImageInfo, image_config: Mapping[str, Any]) -> dict[str, Any]:
    """`GET /images/{name}/json`: Docker's ImageInspect, not the list's summary: `Created` the
    image config's RFC 3339 time (the list has seconds), no `<none>:<none>` tag, the platform
    and author the image config names; from `image_config`, the whole OCI image config."""
    tags, digests = _repo_refs(i)
    return {
        "Id": i.id, "RepoTags": tags, "RepoDigests": digests,
        "Parent": "", "Comment": str(image_config.get("comment") or ""), "Created": i.created or _ZERO_TIME,
        "Container": "", "ContainerConfig": dict(image_config.get("container_config") or {}),
        "DockerVersion": str(image_config.get("docker_version") or ""), "Author": str(image_config.get("author") or ""),
        "Config": dict(i.config), "Architecture": str(image_config.get("architecture") or ""),
        **({"Variant": str(image_config["variant"])} if image_config.get("variant") else {}),
        "Os": str(image_config.get("os") or "linux"), "Size": i.size, "VirtualSize": i.size,
        "GraphDriver": {"Name": "overlay2", "Data": None}, "RootFS": {"Type": "layers", "Layers": list(i.layers)},
        "Metadata": {"LastTagTime": _ZERO_TIME},
    }


def _filters(raw: str | None) -> dict[str, list[str]]:
    return dockerfilters.parse(raw)          # JSON that does not read: a 400


def _after(before: list[base.LogLine], hijack: Hijack, want: set[str], raw: bool) -> Hijack:
    """An attach's stream with the output logged before it first (`logs=1`); raw with a TTY."""
    if not before:
        return hijack
    past = [line.written if raw else _frame(line.stream, line.written) for line in before if line.stream in want]
    return Hijack(itertools.chain(past, hijack.frames), hijack.stdin)


def _flag(q: Mapping[str, str], key: str, *, default: bool = False) -> bool:
    """A boolean query parameter as Docker reads one: absent is `default`; "", 0, no, false
    and none (any case) are false; anything else (1, true, True as docker-py sends it) is true."""
    if key not in q:
        return default
    return q[key].strip().lower() not in ("", "0", "no", "false", "none")


def registry_auth(header: str | None) -> dict[str, Any] | None:
    """The `X-Registry-Auth` header: Docker's AuthConfig as URL-safe base64 JSON (padding
    optional); None when absent, empty or unreadable (then the engine's own credentials)."""
    import base64
    import binascii

    if not header:
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc else None


def _timestamp_ns(raw: str | None, what: str) -> int | None:
    """`since`/`until` as the docker CLI sends them (seconds since the epoch, with a fraction)."""
    if not raw:
        return None
    try:
        return int(float(raw) * 1e9)
    except ValueError:
        raise HttpError(400, f"{what}: {raw!r} is not a timestamp (seconds since the epoch)") from None


def event_message(ev: Any) -> dict[str, Any]:
    """A journal event (native/journal.Event, its actor `_resolved`) as Docker's events message."""
    attrs = dict(ev.attributes)
    if ev.type == "network" and "name" in attrs:
        attrs["name"] = _docker_name(attrs["name"])
    doc: dict[str, Any] = {"Type": ev.type, "Action": ev.action,
                           "Actor": {"ID": ev.actor, "Attributes": attrs},
                           "scope": "local", "time": ev.time_ns // 1_000_000_000, "timeNano": ev.time_ns}
    if ev.type in ("container", "image"):      # the fields of the older API, docker-py reads them
        doc.update({"status": ev.action, "id": ev.actor})
        if "image" in ev.attributes:
            doc["from"] = ev.attributes["image"]
    return doc


_LOG_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)")


def log_time(ts: str) -> str:
    """A log line's time (conmon's: RFC 3339 with nanoseconds in the host's zone) as dockerd's
    `docker logs -t` writes it: in UTC, nine digits of nanoseconds and `Z` (Go's RFC3339NanoFixed,
    `2006-01-02T15:04:05.000000000Z`)."""
    m = _LOG_TIME.fullmatch(ts)
    if m is None:
        return ts
    second, fraction, zone = m.groups()
    if zone not in ("Z", "+00:00", "-00:00"):
        from datetime import UTC, datetime

        second = datetime.fromisoformat(second + zone).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{second}.{(fraction or '').ljust(9, '0')[:9]}Z"


def _event_matches(ev: Any, filters: Mapping[str, list[str]]) -> bool:
    attrs = ev.attributes
    for key, values in filters.items():
        if key == "type":
            ok = ev.type in values
        elif key == "event":
            ok = any(ev.action == v or ev.action.startswith(v + ":") for v in values)
        elif key in ("container", "network", "volume"):
            name = str(attrs.get("name", ""))
            named = {name, _docker_name(name)} if key == "network" else {name}
            ok = ev.type == key and any(ev.actor.startswith(v) or v in named for v in values)
        elif key == "image":
            ok = any(v in (attrs.get("image"), attrs.get("name"), ev.actor) for v in values)
        elif key == "label":
            ok = all(attrs.get(v.partition("=")[0]) == v.partition("=")[2] if "=" in v else v in attrs
                     for v in values)
        else:
            ok = True
        if not ok:
            return False
    return True


def _volume_doc(v: base.VolumeState) -> dict[str, Any]:
    """A volume as Docker's API gives it; one the engine cannot mount (its data gone) has the
    why and what to do in `Status`, the driver-specific map (`docker volume inspect` shows it)."""
    doc: dict[str, Any] = {"Name": v.name, "Driver": "local", "Mountpoint": v.mountpoint, "Labels": dict(v.labels),
                           "Scope": "local", "CreatedAt": v.created}
    if v.problem:
        doc["Status"] = {"Problem": v.problem, "Hint": v.hint}
    return doc


def prune_selection(filters: Mapping[str, Sequence[str]]) -> Callable[[Mapping[str, str], str | None], bool]:
    """Which objects a prune's filters select (`label`, `label!`, `until`), as dockerd reads
    them: an object made when? one without a time is Go's zero time to dockerd, older than any
    `until`. `reconcile system prune` and `container prune --filter` select by it too."""
    until = dockerfilters.prune_until(filters)

    def selected(labels: Mapping[str, str], created: str | None) -> bool:
        made = dockerfilters.rfc3339_ns(created) or 0
        return dockerfilters.labels_match(filters, labels) and (until is None or made <= until)
    return selected


def _name_taken(rt: Any, name: str) -> str:
    """Docker's words for a container name in use (its clients key AlreadyExists on them)."""
    try:
        holder = rt.inspect_container(name).id
    except rterrors.NotFound:
        holder = ""
    return (f'Conflict. The container name "/{name.lstrip("/")}" is already in use by container "{holder}". '
            "You have to remove (or rename) that container to be able to reuse that name.")


# ----------------------------------------------------------------------------- the server

class EngineApi:
    """Serves the Engine API for `runtime` (a NativeRuntime) on the Unix socket `path`."""

    def __init__(self, runtime: Any, path: Path, *, group: int | None = None) -> None:
        self.runtime = runtime
        self.path = path
        self.group = group
        self._server: _UnixHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._execs: dict[str, dict[str, Any]] = {}          # exec id -> container, argv, result
        self._lock = threading.Lock()

    def start(self) -> None:
        _remove_stale(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        server = _UnixHTTPServer(str(self.path), _handler(self))
        os.chmod(self.path, 0o660)
        if self.group is not None:
            os.chown(self.path, -1, self.group)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="engine-api", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self.path.unlink(missing_ok=True)

    # -- routes -------------------------------------------------------------------------------

    def route(self, method: str, path: str, q: Mapping[str, str], body: Callable[[], Any],
              raw: Callable[[], Any] | None = None, headers: Mapping[str, str] | None = None,
              query: str = "") -> tuple[int, Any]:
        """`q` has the last value of each query parameter, `query` is the whole query string
        (parameters given more than once: build's `t`); `body()` is the request's JSON body,
        `raw()` the body as a stream (a tar); `headers` in title case."""
        rt = self.runtime
        auth = registry_auth((headers or {}).get("X-Registry-Auth"))
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        if parts[0] not in _DOCKER_ROOTS:
            raise HttpError(404, "page not found")         # dockerd's words for a path its API has not
        if method in ("GET", "HEAD") and parts == ["_ping"]:
            return 200, b"OK"
        if method == "GET" and parts == ["version"]:
            return 200, self._version()
        if method == "GET" and parts == ["info"]:
            return 200, self._info()
        if method == "GET" and parts == ["system", "df"]:
            return 200, self._disk_usage()
        if method == "GET" and parts == ["events"]:
            return 200, self._events(q)
        if method == "POST" and len(parts) == 2 and parts[1] == "prune" and parts[0] in _PRUNE:
            return 200, self._prune(parts[0], _filters(q.get("filters")))
        if method == "POST" and parts == ["build", "prune"]:
            # (`docker system prune` asks it too) the native build cache's rows hold no space: the
            # layers they name are the content store's, which images prune's GC frees
            return 200, {"CachesDeleted": [], "SpaceReclaimed": 0}
        if parts[0] == "containers":
            return self._containers(method, parts[1:], q, body, raw)
        if parts[0] == "images" and method == "GET" and (parts[1:] == ["get"] or parts[-1:] == ["get"]):
            names = urllib.parse.parse_qs(query).get("names", []) if parts[1:] == ["get"] else ["/".join(parts[1:-1])]
            return 200, WithHeaders(self._save(names), {"Content-Type": "application/x-tar"})
        if parts[0] == "images" and method == "POST" and parts[1:] == ["load"]:
            return 200, self._load(raw)
        if parts[0] == "images" and method == "POST" and parts[1:] == ["create"] and "fromSrc" in q:
            return 200, self._import(q, query, raw)
        if parts[0] == "images":
            return self._images(method, parts[1:], q, auth)
        if method == "POST" and parts == ["auth"]:
            return 200, self._login(body() or {})
        if method == "POST" and parts == ["commit"]:
            return 201, self._commit(q, query)
        if method == "POST" and parts == ["build"]:
            return 200, self._build(q, query, raw)
        if parts[0] == "exec" and len(parts) == 3:
            return self._exec(method, parts[1], parts[2], q, body)
        if parts[0] == "networks" and (method != "GET" or len(parts) > 2):
            return self._network_change(method, parts[1:], body)
        if parts[0] == "volumes" and method != "GET":
            return self._volume_change(method, parts[1:], body)
        if method == "GET" and parts[0] == "networks" and len(parts) <= 2:
            if len(parts) == 1:
                fl = dockerfilters.parse(q.get("filters"))
                dockerfilters.validate(fl, dockerfilters.NETWORK_LIST)
                dangling = dockerfilters.yes_no(fl, "dangling", ("true", "1"), ("false", "0"))
                used: set[str] = set()
                if dangling is not None:    # a network no container is on (dockerd's `dangling`)
                    used = {_docker_name(n) for r in rt.containers.records()
                            for n in (*r.ip_addresses, *rt.containers.networks_of(r))}
                return 200, [n.doc for n in self._networks() if dockerfilters.network_matches(
                    n.doc, fl, builtin=n.doc["Name"] in _PREDEFINED_DRIVERS) and (
                    dangling is None or dangling == (n.doc["Name"] not in used and n.doc["Name"] not in
                                                     _PREDEFINED_DRIVERS))]
            view = self._network(parts[1])
            return 200, {**view.doc, "Containers": self._members(view)}
        if method == "GET" and parts[0] == "volumes" and len(parts) <= 2:
            if len(parts) == 1:
                return 200, {"Volumes": [_volume_doc(v) for v in self._volume_list(q)], "Warnings": []}
            vols = [_volume_doc(v) for v in rt.list_volumes()]
            found = [v for v in vols if v["Name"] == parts[1]]
            if not found:
                raise HttpError(404, f"get {parts[1]}: no such volume")
            return 200, found[0]
        if method == "GET" and parts[0] == "plugins":
            raise HttpError(404, "plugin not found")
        raise HttpError(501, f"{method} /{'/'.join(parts)} is not served by reconciler's engine API yet")

    def _disk_usage(self) -> dict[str, Any]:
        """docker system df: what the native engine counts (`NativeRuntime.disk_usage`: images,
        their shared and unpacked sizes and users, containers' writable layers, volumes' data),
        as Docker's documents."""
        from reconciler.runtime.native.containers import inspection

        rt = self.runtime
        manager = rt.containers
        usage = rt.disk_usage()
        images = [{**image_summary(info, shared=shared), "Containers": users} for info, shared, users in usage.images]
        by_id = {r.id: r for r in manager.records()}
        conts = []
        for c, size in usage.containers:
            rec = by_id.get(c.id)
            doc = container_summary(c, command=docker_command(rec.command_line()) if rec else "",
                                    mounts=inspection.mount_points(manager.config.root, rec.config.mounts) if rec else ())
            conts.append({**doc, "SizeRw": size})
        vols = [{**_volume_doc(v), "Options": {}, "UsageData": {"Size": size, "RefCount": refs}}
                for v, size, refs in usage.volumes]
        return {"LayersSize": usage.layers_size, "Images": images, "Containers": conts, "Volumes": vols,
                "BuildCache": []}

    def _events(self, q: Mapping[str, str]) -> Iterator[bytes]:
        """Docker's event stream from the engine's journal: from `since` (else from now), until
        `until` (else for as long as the client stays), filtered. Empty chunks are ticks: the
        server checks the client is still there."""
        import time

        manager = self.runtime.containers
        journal = manager.journal
        fl = _filters(q.get("filters"))
        since, until = _timestamp_ns(q.get("since"), "since"), _timestamp_ns(q.get("until"), "until")
        seq = 0 if since is not None else journal.last_seq()

        def stream() -> Iterator[bytes]:
            nonlocal seq
            while True:
                for ev in journal.after(seq, since_ns=since or 0):
                    seq = ev.seq
                    ev = self._resolved(ev)
                    if until is not None and ev.time_ns > until:
                        return
                    if _event_matches(ev, fl):
                        yield json.dumps(event_message(ev)).encode() + b"\n"
                if until is not None and time.time_ns() > until:
                    return
                yield b""
                manager.records()       # a death nobody has looked at yet is journalled now
                time.sleep(0.2)
        return stream()

    # -- networks --------------------------------------------------------------------------

    def _networks(self) -> list[NetworkView]:
        """Every network as this API shows it: the engine's bridge networks (the default one as
        "bridge", once made: at the first container on it) and the predefined "host" and "none"."""
        views = [NetworkView(n.name, network_doc(n)) for n in self.runtime.list_networks()]
        return views + [NetworkView(name, _predefined_doc(name, self._predefined_id(name))) for name in ("host", "none")]

    def _resolved(self, ev: Any) -> Any:
        """A journal event with the id Docker gives its actor: a run's network event on `none`
        or `host` is journalled by the network's name (RecordStore.network_event), its id made
        here, as the network list makes it."""
        if ev.type == "network" and ev.actor in ("none", "host"):
            return replace(ev, actor=self._predefined_id(ev.actor))
        return ev

    def _predefined_id(self, name: str) -> str:
        """The id of "host" or "none", which the engine keeps no record of (ipam.predefined_id)."""
        from reconciler.runtime.native.network import ipam

        return ipam.predefined_id(self.runtime.config.name_prefix, name)

    def _network(self, term: str) -> NetworkView:
        """The network `term` names, as dockerd finds one (daemon.FindNetwork): its full id, else
        its name (the default network's native name "default" too), else the one id it begins;
        404 when none, 400 when it begins several (`ipam.find_network`, the engine's rule too)."""
        from reconciler.runtime.native.network import ipam

        views = {v.doc["Id"]: v for v in self._networks()}
        try:
            return views[ipam.find_network(term, {i: (v.doc["Name"], v.native) for i, v in views.items()})]
        except (rterrors.NotFound, rterrors.InvalidArgument) as exc:
            raise HttpError(404 if isinstance(exc, rterrors.NotFound) else 400, exc.message) from None

    def _views(self) -> dict[str, NetworkView]:
        return {v.native: v for v in self._networks()}

    def _endpoints(self, rec: Any, views: Mapping[str, NetworkView], *, inspect: bool = False) -> dict[str, Any]:
        """Container record `rec`'s NetworkSettings.Networks (`endpoint_settings_of`), over what
        its inspect document says of them when `inspect`."""
        seen = None
        if inspect:
            from reconciler.runtime.native.containers import inspection

            seen = inspection.document(self.runtime.containers, rec)["NetworkSettings"]["Networks"]
        return endpoint_settings_of(rec, views, seen)

    def _members(self, view: NetworkView) -> dict[str, dict[str, str]]:
        """A network's Containers, as dockerd's network inspect has them: each container with an
        endpoint there (a stopped one too: the native engine holds its address for its next
        start), by id: its name, endpoint, MAC and addresses with their prefix lengths, as its
        own inspect says them."""
        views = self._views()
        out: dict[str, dict[str, str]] = {}
        for rec in self.runtime.containers.records():
            if view.native not in rec.ip_addresses and view.doc["Name"] not in ("host", "none"):
                continue        # (a stopped container connected there: no endpoint until its start)
            if view.doc["Name"] not in endpoint_settings_of(rec, views):
                continue
            ep = self._endpoints(rec, views, inspect=True)[view.doc["Name"]]
            out[rec.id] = {"Name": rec.name, "EndpointID": ep.get("EndpointID", ""),
                           "MacAddress": ep.get("MacAddress", ""),
                           "IPv4Address": _prefixed(ep.get("IPAddress", ""), ep.get("IPPrefixLen", 0)),
                           "IPv6Address": _prefixed(ep.get("GlobalIPv6Address", ""), ep.get("GlobalIPv6PrefixLen", 0))}
        return out

    def _named_networks(self, config: base.ContainerConfig) -> base.ContainerConfig:
        """`config` with each network it names by id or id prefix (`docker run --network ID`)
        named by its name, as dockerd finds it; a name, or one no network has, as it is (the
        engine says what it lacks)."""
        natives = {v.native for v in self._networks()}
        found = {}
        for net in config.networks:
            if net in natives or net.startswith("container:"):
                continue
            with contextlib.suppress(HttpError):
                found[net] = self._network(net).native
        if not found:
            return config
        return dataclasses.replace(     # every per-network setting follows its network's name
            config, networks=tuple(found.get(n, n) for n in config.networks),
            ipv4_addresses={found.get(n, n): a for n, a in config.ipv4_addresses.items()},
            ipv6_addresses={found.get(n, n): a for n, a in config.ipv6_addresses.items()},
            mac_addresses={found.get(n, n): m for n, m in config.mac_addresses.items()},
            link_local_ips={found.get(n, n): a for n, a in config.link_local_ips.items()},
            gw_priorities={found.get(n, n): p for n, p in config.gw_priorities.items()},
            network_aliases={found.get(n, n): a for n, a in config.network_aliases.items()})

    def _networks_or_400(self, config: base.ContainerConfig) -> None:
        """A create's networks are there, or a 400 in dockerd's words (`network NAME not found`):
        not the engine's 404, which the docker CLI takes for the image's and pulls it (`docker
        run --network typo IMG` said "Unable to find image" and tried the registry). dockerd 20.10
        makes the container and refuses its start; here nothing is made."""
        natives = {v.native for v in self._networks()}
        for net in config.networks:
            if net not in natives and not net.startswith("container:"):
                raise HttpError(400, f"network {net} not found")

    def _network_change(self, method: str, parts: list[str], body: Callable[[], Any]) -> tuple[int, Any]:
        """docker network create / rm / connect / disconnect: a bridge network of the engine's own;
        a container connected to one (a running one: an interface more in its namespace; one
        created, not started yet: its record's networks) or disconnected (`Force`: also a
        container the engine no longer has, its leftover endpoint removed), as
        NativeRuntime.network_connect and network_disconnect do it."""
        rt = self.runtime
        if method == "POST" and parts == ["create"]:
            data = body() or {}
            name = str(data.get("Name") or "")
            if not name:
                raise HttpError(400, "network name is required")
            if name in (*_PREDEFINED_DRIVERS, _native_default()):
                raise HttpError(403, f"operation is not permitted on predefined {name} network")
            if data.get("Driver") not in (None, "", "bridge"):
                raise HttpError(400, f"network driver {data['Driver']!r} is not supported: the native engine makes "
                                     "bridge networks")
            if any(n.name == name for n in rt.list_networks()):
                raise HttpError(409, f"network with name {name} already exists")
            v4, v6 = _network_ipam(data)
            state = rt.ensure_network(base.NetworkConfig(
                name=name, subnet=v4.get("Subnet"), gateway=v4.get("Gateway"),
                internal=bool(data.get("Internal")), labels=dict(data.get("Labels") or {}),
                ipv6=bool(data.get("EnableIPv6")), ipv6_subnet=v6.get("Subnet"),
                mtu=_network_mtu(data.get("Options") or {}), attachable=bool(data.get("Attachable"))))
            return 201, {"Id": state.id, "Warning": ""}
        if method == "POST" and len(parts) == 2 and parts[1] in ("connect", "disconnect"):
            # the engine's rules (NativeRuntime.network_connect / network_disconnect): `bridge` is
            # its default network, made at its first connect; host and none are refused (400)
            native = _native_default() if parts[0] in (_BRIDGE, _native_default()) else self._network(parts[0]).native
            data = body() or {}
            container = str(data.get("Container") or "")
            if parts[1] == "connect":
                ep = endpoint_settings(data.get("EndpointConfig"))
                rt.network_connect(container, native, ipv4=ep.ipv4, ipv6=ep.ipv6, endpoint=ep.own())
            else:
                rt.network_disconnect(container, native, force=bool(data.get("Force")))
            return 200, None
        if method == "DELETE" and len(parts) == 1:
            named = _docker_name(parts[0])
            found = self._network(parts[0]) if named not in _PREDEFINED_DRIVERS else None
            if found is None or found.doc["Name"] in _PREDEFINED_DRIVERS:
                name = named if found is None else found.doc["Name"]
                raise HttpError(403, f"{name} is a pre-defined network and cannot be removed")
            rt.remove_network(found.native)
            return 204, None
        raise HttpError(501, f"{method} /networks/{'/'.join(parts)} is not served by reconciler's engine API yet")

    def _anonymous_volumes(self, config: base.ContainerConfig) -> tuple[base.ContainerConfig, list[str]]:
        """`config` with each volume mount without source on a new volume of its own, named at
        random and labelled anonymous, as dockerd makes one; and the names of those volumes."""
        import secrets

        from reconciler.runtime.native.volumes import volumes

        mounts, made = [], []
        for m in config.mounts:
            if m.type == "volume" and not m.source:
                v = self.runtime.ensure_volume(base.VolumeConfig(name=secrets.token_hex(32),
                                                                 labels={volumes.ANONYMOUS_LABEL: ""}))
                made.append(v.name)
                m = dataclasses.replace(m, source=v.name)
            mounts.append(m)
        return dataclasses.replace(config, mounts=tuple(mounts)), made

    def _remove_failed_start(self, ident: str) -> None:
        """An AutoRemove container whose start failed removed, with its anonymous volumes, as
        dockerd's start removes it (a `docker run --rm` of a missing command leaves nothing)."""
        with contextlib.suppress(rterrors.RuntimeBackendError):
            rec = self.runtime.containers.get(ident)
            if rec.auto_remove and rec.status != "running":
                self.runtime.remove_container(rec.id, force=True, volumes=True)

    def _remove_unused(self, names: list[str]) -> None:
        """Remove the volumes `names` that no container mounts (any more)."""
        if not names:
            return
        used = {m.source for r in self.runtime.containers.records() for m in r.config.mounts if m.type == "volume"}
        for name in names:
            if name not in used:
                with contextlib.suppress(rterrors.NotFound):
                    self.runtime.remove_volume(name)

    def _volume_change(self, method: str, parts: list[str], body: Callable[[], Any]) -> tuple[int, Any]:
        """docker volume create / rm: a local named volume."""
        rt = self.runtime
        if method == "POST" and parts == ["create"]:
            # the engine's rule of drivers and options (a local volume, or one binding a host
            # directory: type=none, o=bind, device=/DIR), as `reconcile volume create`'s
            data = body() or {}
            opts = {str(k): str(v) for k, v in (data.get("DriverOpts") or {}).items()}
            config = base.volume_to_create(str(data.get("Name") or ""), dict(data.get("Labels") or {}),
                                           str(data.get("Driver") or "local"), opts)
            v = rt.ensure_volume(config)
            return 201, {**_volume_doc(v), "Options": opts}
        if method == "DELETE" and len(parts) == 1:
            if not any(v.name == parts[0] for v in rt.list_volumes()):
                raise HttpError(404, f"get {parts[0]}: no such volume")
            rt.remove_volume(parts[0])
            return 204, None
        raise HttpError(501, f"{method} /volumes/{'/'.join(parts)} is not served by reconciler's engine API yet")

    def _version(self) -> dict[str, Any]:
        u = platform.uname()
        own = {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
               "Arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(u.machine, u.machine), "KernelVersion": u.release,
               "GitCommit": "", "GoVersion": "", "BuildTime": ""}
        # the docker CLI prints each component's details (the Engine's `OS/Arch`, `minimum
        # version`; the others' `Version` and `GitCommit`): the engine's own programs, as
        # dockerd lists containerd, runc and docker-init
        return {"Version": f"reconciler-{__version__}", **own,
                "Components": [{"Name": "Engine", "Version": __version__, "Details": {**own, "Experimental": "false"}},
                               *({"Name": c.name, "Version": c.version, "Details": {"GitCommit": c.commit}}
                                 for c in self._components())]}

    def _components(self) -> list[Any]:
        """The programs the engine runs containers with, as each reports itself (components.py:
        conmon, the OCI runtime new containers get, the init for `--init`)."""
        from reconciler.runtime.native.containers import components

        try:
            oci = self.runtime.containers.oci()
        except rterrors.RuntimeBackendError:        # no runtime on the host: the others still are
            return components.of_engine(self.runtime.containers.runtime_name, None)
        return components.of_engine(oci.name, oci.path)

    def _info(self) -> dict[str, Any]:
        """`docker info`'s document: engineinfo.document, the one home of it (`reconcile info`
        prints the same), of the containers as the engine observes them now and its images."""
        from reconciler import engineinfo

        return engineinfo.document(states=[_state(c) for c in self.runtime.list_containers()],
                                   images=len(self.runtime.list_images()), root=str(self.runtime.config.root),
                                   oci_runtime=self.runtime.containers.runtime_name, components=self._components())

    def _runtime_or_400(self, asked: Any) -> None:
        """`docker run --runtime NAME`: the engine has one OCI runtime (`reconcile engine-api
        --oci-runtime`); another is dockerd's 400, not a container run by the engine's own
        (`--runtime runc` on a crun engine was taken, and its inspect said crun)."""
        have = self.runtime.containers.runtime_name
        if asked not in (None, "", have):
            raise HttpError(400, f"Unknown runtime specified {asked}: this engine runs {have} (its --oci-runtime); "
                                 f"leave --runtime out, or ask for {have}")

    def _containers(self, method: str, parts: list[str], q: Mapping[str, str],
                    body: Callable[[], Any], raw: Callable[[], Any] | None = None) -> tuple[int, Any]:
        rt = self.runtime
        if method == "GET" and parts == ["json"]:
            return 200, self._container_list(q)
        if method == "POST" and parts == ["create"]:
            import secrets

            data = body() or {}
            self._runtime_or_400((data.get("HostConfig") or {}).get("Runtime"))
            config = self._named_networks(config_from_create(q.get("name") or f"r_{secrets.token_hex(4)}", data))
            try:        # dockerd's checks of the limits and restart policy, in its words, before the image's
                resources, warnings = rt.checked_create(config.resources, config.restart)
            except rterrors.InvalidArgument as exc:
                raise HttpError(400, exc.message) from None
            config = dataclasses.replace(config, resources=resources)
            _image_or_404(rt, config.image)      # the docker CLI pulls on this 404, then creates again
            self._networks_or_400(config)
            config, made = self._anonymous_volumes(config)
            try:
                # as dockerd's create, which makes no process: a missing executable fails the start
                cid = rt.create_container(config, late_start_errors=True, **create_settings(data))
            except rterrors.AlreadyExists:
                self._remove_unused(made)
                raise HttpError(409, _name_taken(rt, config.name)) from None
            except rterrors.NotFound as exc:
                # a 404 of the create is the image's to the docker CLI and compose, which then
                # pull it: what else is missing (a container to join, `--network container:X`)
                # is a 400, so `docker run` says it rather than "Unable to find image" and a pull
                self._remove_unused(made)
                raise HttpError(400, exc.message) from None
            except Exception:
                self._remove_unused(made)
                raise
            return 201, {"Id": cid, "Warnings": warnings}
        if not parts:
            raise HttpError(404, "page not found")
        ident, action = parts[0], "/".join(parts[1:])
        if method == "GET" and action == "json":
            from reconciler.runtime.native.containers import inspection

            manager = rt.containers
            rec = manager.get(ident)
            doc = inspection.document(manager, rec)
            cfg = doc["Config"]
            if isinstance(cfg.get("StopTimeout"), float):          # Go clients decode it as an int
                cfg["StopTimeout"] = int(cfg["StopTimeout"])
            settings = doc["NetworkSettings"]
            settings["Networks"] = endpoint_settings_of(rec, self._views(), settings["Networks"])
            settings.update(_top_level(settings["Networks"]))
            with self._lock:            # dockerd's: the execs made in it that have not ended
                doc["ExecIDs"] = [x["id"] for x in self._execs.values()
                                  if x["container"] == rec.id and x["exit"] is None] or None
            return 200, doc
        if method == "POST" and action == "start":
            if rt.inspect_container(ident).status.value in ("running", "restarting"):
                return 304, None            # dockerd's IsRunning: a restart waiting its back-off too
            try:
                rt.start_container(ident)
            except rterrors.RuntimeBackendError:
                self._remove_failed_start(ident)
                raise
            return 204, None
        if method == "POST" and action == "stop":
            was = rt.inspect_container(ident).status.value
            rt.stop_container(ident, timeout=float(q["t"]) if "t" in q else None)   # also ends a restart backoff
            return (204, None) if was in ("running", "restarting") else (304, None)
        if method == "POST" and action == "restart":
            rt.restart_container(ident, timeout=float(q["t"]) if "t" in q else None)    # NativeRuntime's rule
            return 204, None
        if method == "POST" and action == "kill":
            rt.kill_container(ident, q.get("signal") or "KILL")
            return 204, None
        if method == "POST" and action == "wait":
            return 200, self._wait(ident, q.get("condition") or "not-running")
        if method == "DELETE" and action == "":
            try:
                rt.remove_container(ident, force=_flag(q, "force"), volumes=_flag(q, "v"))   # `docker rm -v`
            except rterrors.Conflict:
                state = rt.inspect_container(ident)
                if state.status.value != "running":
                    raise
                # dockerd's words, which say what to do (the engine's hint is not in an API error)
                raise HttpError(409, f"You cannot remove a {'paused' if state.paused else 'running'} container "
                                     f"{state.id}. {'Unpause and then stop' if state.paused else 'Stop'} the "
                                     "container before attempting removal or force remove") from None
            return 204, None
        if method == "GET" and action == "logs":
            return 200, self._logs(ident, q)
        if method == "GET" and action == "stats":
            return 200, self._stats(ident, q)
        if method == "GET" and action == "top":
            return 200, self._top(ident, q.get("ps_args") or "-ef")
        if method == "GET" and action == "export":
            from reconciler.runtime.native.containers import copying

            fd = rt.containers.open_root(ident, live=False)
            try:
                return 200, WithHeaders(copying.archive(fd, "/"), {"Content-Type": "application/x-tar"})
            finally:
                os.close(fd)
        if action == "archive" and method in ("GET", "HEAD", "PUT"):
            return self._archive(method, ident, q, raw)
        if method == "POST" and action == "exec":
            import secrets

            data = body() or {}
            if not isinstance(data.get("Cmd"), list) or not data["Cmd"]:
                raise HttpError(400, "No exec command specified")
            state = rt.inspect_container(ident)
            if state.status.value != "running":
                raise HttpError(409, f"Container {ident} is not running")
            if state.paused:                    # dockerd's words: its processes run nothing while frozen
                raise HttpError(409, f"Container {state.id} is paused, unpause the container before exec")
            for key in ("User", "WorkingDir"):
                if not isinstance(data.get(key) or "", str):
                    raise HttpError(400, f"{key} must be a string")
            env = data.get("Env") or []
            if not isinstance(env, list) or not all(isinstance(e, str) and e.partition("=")[0] for e in env):
                raise HttpError(400, "Env must be a list of KEY=VALUE strings")
            exec_id = secrets.token_hex(32)
            # DetachKeys is not read: the client's input goes to the process as it comes
            with self._lock:
                self._execs[exec_id] = {"container": state.id, "argv": [str(x) for x in data["Cmd"]],
                                        "tty": bool(data.get("Tty")), "stdin": bool(data.get("AttachStdin")),
                                        "user": data.get("User") or "", "workdir": data.get("WorkingDir") or "",
                                        "env": env, "privileged": bool(data.get("Privileged")),
                                        "running": False, "exit": None, "id": exec_id}
            self._exec_event(self._execs[exec_id], "exec_create")
            return 201, {"Id": exec_id}
        if method == "POST" and action == "attach":
            attached = self._attach(ident, q)
            return 200, attached if isinstance(attached, Hijack) else Hijack(attached)
        if method == "POST" and action == "resize":
            # `docker run -it`, `docker attach`: conmon's terminal (its ctl fifo); one without a
            # terminal has nothing to size, as dockerd's answers
            from reconciler.runtime.native.containers import execs

            rows, cols = _terminal_size(q)
            rec = rt.containers.get(ident)
            if rec.terminal:
                execs.resize(rt.containers, rec.id, rows, cols)
            return 200, None
        if method == "POST" and action == "update":
            return 200, self._update(ident, body() or {})
        if method == "GET" and action == "changes":
            return 200, self._changes(ident)
        if method == "POST" and action in ("pause", "unpause"):
            self._pause(ident, freeze=action == "pause")
            return 204, None
        if method == "POST" and action == "rename":
            if not q.get("name"):
                raise HttpError(400, "the new name is required (?name=)")
            try:
                rt.rename_container(ident, q["name"])
            except rterrors.AlreadyExists:
                raise HttpError(409, "Error when allocating new name: " + _name_taken(rt, q["name"])) from None
            return 204, None
        if action not in _UNSERVED_CONTAINER_ROUTES:
            raise HttpError(404, "page not found")         # not a route of Docker's API either
        raise HttpError(501, f"{method} /containers/{{id}}/{action} is not served by reconciler's engine API yet")

    def _update(self, ident: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """docker update: what the body names (0 or absent: as it was; `PidsLimit` 0 or -1: no
        limit, null: as it was) and the restart policy, by the native engine's rules
        (`NativeRuntime.update_resources`: now on a running container's cgroups, at its next
        start on a stopped one); the warnings dockerd would give (a blkio weight discarded),
        and that of a change to a container manifests own (`state/labels.py` `changed_by_hand`)."""

        def given(key: str) -> Any:
            return data.get(key) or None                    # 0 is "not changed", as dockerd reads it

        policy = data.get("RestartPolicy") or {}
        restart = base.RestartPolicy(str(policy["Name"]), int(policy.get("MaximumRetryCount") or 0)) \
            if policy.get("Name") else None
        nano = given("NanoCpus")
        update = base.ResourceUpdate(
            memory=given("Memory"), memory_swap=given("MemorySwap"), memory_reservation=given("MemoryReservation"),
            cpus=nano / 1e9 if nano else None, cpu_shares=given("CpuShares"), cpu_period=given("CpuPeriod"),
            cpu_quota=given("CpuQuota"), cpuset=given("CpusetCpus"), cpuset_mems=given("CpusetMems"),
            pids=data.get("PidsLimit"), blkio_weight=given("BlkioWeight"), restart=restart)
        try:
            warnings = self.runtime.update_resources(ident, update)
        except rterrors.InvalidArgument as exc:
            raise HttpError(400, exc.message) from None
        rec = self.runtime.containers.get(ident)
        drift = ownership.changed_by_hand(rec.name, rec.config.labels)      # a container manifests own
        return {"Warnings": [*warnings, *([drift] if drift else [])]}

    def _changes(self, ident: str) -> list[dict[str, Any]]:
        """docker diff: the container's changes (`NativeRuntime.container_changes`), each as
        dockerd's `{"Path", "Kind"}` (0 changed, 1 added, 2 deleted)."""
        kinds = {"C": 0, "A": 1, "D": 2}
        return [{"Path": path, "Kind": kinds[kind]} for kind, path in self.runtime.container_changes(ident)]

    def _pause(self, ident: str, *, freeze: bool) -> None:
        """docker pause / unpause: the engine's (`ContainerManager.pause`: the cgroup freezer, the
        record, Docker's `pause` / `unpause` events); a container not running, or paused (not
        paused) already, is a 409."""
        self.runtime.containers.pause(ident, freeze=freeze)

    def _wait(self, ident: str, condition: str) -> Iterator[bytes]:
        """Docker's wait, the native engine's (`NativeRuntime.wait_condition`): the answer is
        streamed once the condition holds, so a client can send its wait before the start
        (docker run does). Between its looks (`WAIT_TICK` seconds at most) an empty chunk: the
        server then checks the client is still there, and ends the wait with it (`docker run -d`
        sends one and closes it once the container started: no thread is left behind)."""
        try:
            looks = self.runtime.wait_condition(ident, condition, tick=WAIT_TICK, poll=WAIT_POLL)
        except rterrors.InvalidArgument as exc:
            raise HttpError(400, exc.message) from None

        def answer() -> Iterator[bytes]:
            for code in looks:
                yield b"" if code is None else json.dumps({"StatusCode": code, "Error": None}).encode()
        return answer()

    def _attach(self, ident: str, q: Mapping[str, str]) -> Iterator[bytes] | Hijack:
        """A container created with a TTY or an open stdin: conmon's attach socket, both ways.
        Any other: its output from now until it exits (it has no stdin to attach). A stopped
        one (exited, or created without its conmon): from its next start (_attach_at_start).
        `logs=1` (docker-py's `attach(logs=True)`): what it wrote before, first; `stream=0`:
        only that, and the attach ends (dockerd's; a client that omits `stream` gets the live
        output, as every client asks for it)."""
        want = {s for s in ("stdout", "stderr") if _flag(q, s)} or {"stdout", "stderr"}
        manager = self.runtime.containers
        seq = manager.journal.last_seq()        # before the look: a start after it is seen
        rec = manager.get(ident)
        manager.event(rec, "attach")            # dockerd's event, before what the attach relays
        stdin = rec.stdin and _flag(q, "stdin")
        history, live = _flag(q, "logs"), _flag(q, "stream", default=True)
        if not live:
            return self._attach_logs(manager.logs(rec.id, tail=None if history else 0), want, raw=rec.terminal)
        if not (rec.terminal or rec.stdin) and rec.status == "running":
            # its log is the stream: read on from the start (logs=1) or from now, one read, no gap
            return self._attach_logs(manager.logs(rec.id, follow=True, tail=None if history else 0), want)
        before = list(manager.logs(rec.id)) if history else []
        if rec.status != "running" and not (rec.status == "created" and rec.conmon_alive()):
            return _after(before, self._attach_at_start(rec, want, stdin=stdin, seq=seq), want, rec.terminal)
        if rec.terminal or rec.stdin:
            from reconciler.runtime.native.containers import execs

            return _after(before, self._attach_socket(rec, execs.attach(manager, rec.id), want, stdin=stdin),
                          want, rec.terminal)
        return self._attach_logs(manager.logs(rec.id, follow=True), want)     # a created one: from its start

    @staticmethod
    def _attach_logs(lines: Iterable[base.LogLine], want: set[str], *, raw: bool = False) -> Iterator[bytes]:
        for line in lines:
            if line.stream in want:
                yield line.written if raw else _frame(line.stream, line.written)

    def _attach_at_start(self, rec: Any, want: set[str], *, stdin: bool, seq: int) -> Hijack:
        """An attach to a stopped container: dockerd's `docker start -a`/`-ai` attaches, then
        starts, and a start of an exited container makes its conmon (and the attach socket)
        anew. The connection is held until that start (up to ATTACH_START_WAIT; it ends if the
        container goes), then relayed as a running one's. A start in this process calls back
        once its conmon is up and before its process runs (ContainerManager.on_next_start), so
        the socket misses no output; what the client sent meanwhile goes to the stdin then. A
        start by another process (`reconcile start`) is seen in the journal: the socket is
        connected then, late; the output of a container without one is read from its log from
        the moment of the attach, complete either way (the run before ended before it)."""
        from reconciler.runtime.native.containers import execs

        manager = self.runtime.containers
        since = f"{time.time():.6f}"
        started = threading.Event()     # the start came (or the wait ended)
        sock: list[execs.AttachSocket] = []
        streams = rec.terminal or rec.stdin

        def at_start(now: Any) -> None:             # in the start's thread, its process not run yet
            if streams and not started.is_set():
                with contextlib.suppress(rterrors.RuntimeBackendError):
                    sock.append(execs.connect(manager, now))
            started.set()

        withdraw = manager.on_next_start(rec.id, at_start)

        def wait() -> bool:
            deadline = time.monotonic() + ATTACH_START_WAIT
            nonlocal seq
            try:
                while not started.wait(WAIT_POLL):
                    by_another, seq = manager.journal.started_since(rec.id, seq)
                    if by_another:
                        break
                    try:
                        manager.get(rec.id)
                    except rterrors.NotFound:
                        return False
                    if time.monotonic() > deadline:
                        return False
            finally:
                withdraw()
                started.set()
            if streams and not sock:
                with contextlib.suppress(rterrors.RuntimeBackendError):
                    sock.append(execs.attach(manager, rec.id))
            return True

        waited: list[bool] = []
        gate = threading.Lock()

        def ready() -> bool:
            """The wait, once, for whichever of the output and the stdin asks first."""
            with gate:
                if not waited:
                    waited.append(wait())
                return waited[0]

        def frames() -> Iterator[bytes]:
            if not ready():
                return
            if sock:
                yield from self._attach_socket(rec, sock[0], want, stdin=False).frames
            elif not streams:
                yield from self._attach_logs(manager.logs(rec.id, follow=True, since=since), want)

        def to_stdin(chunk: bytes | None) -> None:
            if ready() and sock:
                self._stdin_to(sock[0], chunk)

        return Hijack(frames(), to_stdin if stdin else None)

    def _attach_socket(self, rec: Any, sock: Any, want: set[str], *, stdin: bool) -> Hijack:
        """Relay between the client and conmon's attach socket (execs.AttachSocket): packets
        from conmon (a byte naming the stream: 2 stdout, 3 stderr, then data) become Docker's
        frames (raw with a TTY); what the client sends goes to the process's stdin, and its
        end closes that stdin (conmon does when the socket is shut for writing)."""

        def frames() -> Iterator[bytes]:
            try:
                while data := sock.recv(65536):
                    stream = "stderr" if data[:1] == b"\x03" else "stdout"
                    if stream in want:
                        yield data[1:] if rec.terminal else _frame(stream, data[1:])
            finally:
                sock.close()

        return Hijack(frames(), (lambda chunk: self._stdin_to(sock, chunk)) if stdin else None)

    @staticmethod
    def _stdin_to(sock: Any, chunk: bytes | None) -> None:
        """One chunk of the client's input to the attach socket; None: its end."""
        try:
            if chunk is None:
                sock.shutdown(socket.SHUT_WR)
            else:
                sock.sendall(chunk)
        except OSError:
            pass                            # the container ended meanwhile

    def _exec(self, method: str, exec_id: str, action: str, q: Mapping[str, str],
              body: Callable[[], Any]) -> tuple[int, Any]:
        with self._lock:
            ex = self._execs.get(exec_id)
        if ex is None:
            raise HttpError(404, f"No such exec instance: {exec_id}")
        if method == "GET" and action == "json":
            return 200, {"ID": exec_id, "Running": ex["running"], "ExitCode": ex["exit"], "ContainerID": ex["container"],
                         "ProcessConfig": {"entrypoint": ex["argv"][0], "arguments": ex["argv"][1:], "tty": ex["tty"],
                                           "privileged": ex["privileged"], "user": ex["user"]},
                         "OpenStdin": ex["stdin"], "OpenStdout": True, "OpenStderr": True, "Pid": 0}
        if method == "POST" and action == "resize":
            self._exec_resize(ex, *_terminal_size(q))
            return 201, None
        if method == "POST" and action == "start":
            opts = body() or {}
            if opts.get("Detach"):
                # answered once its process runs (or could not start), as dockerd's: `docker exec -d`
                # then `docker top` lists it; its output is read, and its exit recorded, aside
                run = self._exec_run(ex, detach=True)
                threading.Thread(target=lambda: list(run.frames), daemon=True).start()
                return 200, None
            return 200, self._exec_run(ex)
        raise HttpError(501, f"{method} /exec/{{id}}/{action} is not served by reconciler's engine API yet")

    def _archive(self, method: str, ident: str, q: Mapping[str, str],
                 raw: Callable[[], Any] | None) -> tuple[int, Any]:
        """docker cp, the native engine's (base.PathCopying): HEAD stats a path, GET reads it as a
        tar, PUT unpacks a tar into a directory (through the layer extractor; `copyUIDGID`: owned
        by the container's user); paths resolved inside the container, relative ones from `/`."""
        from reconciler.runtime.native.containers import copying

        rt = self.runtime
        path = q.get("path") or ""
        if not path:
            raise HttpError(400, "path is required")
        if method == "PUT":
            if raw is None:
                raise HttpError(400, "the request has no body")
            stream = raw()
            try:
                rt.write_archive(ident, path, stream, copy_uid_gid=_flag(q, "copyUIDGID"))
            except BaseException:
                # read the rest of the tar before answering: a client still sending it (the
                # docker CLI streams it chunked) would get a broken pipe instead of the error
                with contextlib.suppress(Exception):
                    while stream.read(1 << 16):
                        pass
                raise
            return 200, None
        if method == "HEAD":
            return 200, WithHeaders(None, {"X-Docker-Container-Path-Stat": copying.stat_header(rt.stat_path(ident, path))})
        stat, chunks = rt.read_archive(ident, path)
        return 200, WithHeaders(chunks, {"X-Docker-Container-Path-Stat": copying.stat_header(stat),
                                         "Content-Type": "application/x-tar"})

    def _top(self, ident: str, ps_args: str) -> dict[str, Any]:
        """docker top: the native engine's (`NativeRuntime.top`: the host's `ps` with the client's
        arguments, the rows of the processes in the container's cgroup); a `ps` that failed is
        dockerd's 500."""
        titles, rows = self.runtime.top(ident, ps_args)
        return {"Titles": titles, "Processes": rows}

    # -- lists and prunes: Docker's filters (api/dockerfilters.py, the one home of their rules) ----

    def _container_list(self, q: Mapping[str, str]) -> list[dict[str, Any]]:
        """docker ps: newest first, Docker's filters, `all`, `limit` (`docker ps -n`/`-l`)."""
        rt = self.runtime
        fl = dockerfilters.parse(q.get("filters"))
        try:
            limit = int(q.get("limit") or 0)
        except ValueError:
            raise HttpError(400, f"limit: {q['limit']!r} is not a whole number") from None
        from reconciler.runtime.native.containers import inspection

        recs = {r.id: r for r in rt.containers.records()}
        states = {cid: r.state() for cid, r in recs.items()}
        net_ids = {n.name: n.id for n in rt.list_networks()} if "network" in fl else {}
        views = [_container_view(r, states[r.id], net_ids) for r in recs.values()]
        chosen = dockerfilters.containers(views, fl, all_=_flag(q, "all"), limit=limit, ancestors=self._ancestry())
        networks = self._views() if chosen else {}
        root = rt.containers.config.root
        named = self._named_images({states[v.id].image for v in chosen})
        out = [_shown_image(container_summary(states[v.id], endpoint_settings_of(recs[v.id], networks),
                                              inspection.network_mode(recs[v.id]),
                                              command=docker_command(recs[v.id].command_line()),
                                              mounts=inspection.mount_points(root, recs[v.id].config.mounts)), named)
               for v in chosen]
        if _flag(q, "size"):        # `docker ps -s`: its writable layer, and with its image's
            sizes = rt.container_sizes([v.id for v in chosen])
            for doc, v in zip(out, chosen, strict=True):
                doc["SizeRw"], doc["SizeRootFs"] = sizes.get(v.id, (0, 0))
        return out

    def _named_images(self, refs: set[str]) -> dict[str, str | None]:
        """The image id each reference names today (None: no image by that name)."""
        out: dict[str, str | None] = {}
        for ref in refs:
            try:
                out[ref] = self.runtime.image_store.image_id(ref)
            except rterrors.RuntimeBackendError:
                out[ref] = None
        return out

    def _lineage(self, infos: list[base.ImageInfo]) -> dict[str, dockerfilters.Lineage]:
        """Each image's layers and history (dockerfilters.descendants reads which were made from which)."""
        from reconciler.runtime.native.images import lineage

        return lineage.lineage_of(self.runtime.image_store, infos)

    def _ancestry(self) -> Callable[[str], set[str]]:
        """The `ancestor` filter's images: the one a value names (reference, id or id prefix, as
        dockerd's GetImage) and those made from it; none when there is no such image."""
        rt = self.runtime
        lineage: dict[str, dockerfilters.Lineage] = {}

        def of(value: str) -> set[str]:
            try:
                image_id = str(rt.inspect_image(value).id)
            except (rterrors.NotFound, rterrors.InvalidArgument):
                return set()
            if not lineage:
                lineage.update(self._lineage(rt.list_images()))
            return {image_id} | dockerfilters.descendants(lineage, image_id)
        return of

    def _volume_list(self, q: Mapping[str, str]) -> list[base.VolumeState]:
        """docker volume ls: filters `name`, `label`, `driver`, `dangling` (none mounts it)."""
        rt = self.runtime
        fl = dockerfilters.parse(q.get("filters"))
        used = ({m.source for r in rt.containers.records() for m in r.config.mounts if m.type == "volume"}
                if "dangling" in fl else set())
        chosen: list[base.VolumeState] = dockerfilters.volumes(rt.list_volumes(), fl, used=used)
        return chosen

    def _image_views(self, infos: list[base.ImageInfo]) -> dict[str, dockerfilters.ImageView]:
        """The images as the image filters see them; which untagged ones others were made from
        is read only when there is one (dockerfilters.descendants)."""
        lineage = self._lineage(infos) if any(not i.repo_tags for i in infos) else {}
        views = {}
        for i in infos:
            tags, digests = _repo_refs(i)
            views[i.id] = dockerfilters.ImageView(
                id=i.id, created_ns=dockerfilters.rfc3339_ns(i.created), labels=dict(i.config.get("Labels") or {}),
                tags=tuple(tags), digests=tuple(digests),
                has_children=bool(not tags and dockerfilters.descendants(lineage, i.id)))
        return views

    def _image_list(self, q: Mapping[str, str]) -> list[dict[str, Any]]:
        """docker images: newest first; filters `reference` (each image with the tags and digests
        that match), `dangling`, `label`, `before`, `since`; `shared-size=1`: each listed image's
        SharedSize, the layers it shares with the others listed (API 1.42's, as Docker 23 counts
        it; -1 otherwise, as dockerd 20.10 always gives it)."""
        rt = self.runtime
        fl = dockerfilters.parse(q.get("filters"))
        infos = {i.id: i for i in rt.list_images()}
        views = self._image_views(list(infos.values()))

        def find(value: str) -> dockerfilters.ImageView:
            info = _image_or_404(rt, value)
            return views.get(info.id) or self._image_views([info])[info.id]

        chosen = dockerfilters.images(views.values(), fl, all_=_flag(q, "all"), find=find)
        shared = rt.image_store.shared_sizes([v.id for v, _, _ in chosen]) if _flag(q, "shared-size") else {}
        return [image_summary(infos[v.id], (tags, digests), shared.get(v.id, -1)) for v, tags, digests in chosen]

    def _prune(self, kind: str, filters: Mapping[str, list[str]]) -> dict[str, Any]:
        """docker container|image|network|volume prune: what nothing uses, as the native engine
        prunes it (`NativeRuntime.prune`), filtered as dockerd filters each: `label`, `label!`,
        `until` (created before it; not for volumes, as dockerd 20.10), images `dangling`; any
        other filter is refused (400), never ignored: a prune is never wider than asked."""
        dockerfilters.validate(filters, dockerfilters.PRUNE[kind])
        report: dict[str, Any] = self.runtime.prune(
            kind, selected=prune_selection(filters),
            dangling_only=dockerfilters.yes_no(filters, "dangling", ("true", "1"), ("false", "0")) is not False)
        return report

    def _stats(self, ident: str, q: Mapping[str, str]) -> Any:
        """Docker's stats documents, the native engine's samples (`NativeRuntime.container_stats`):
        one a second while `stream` (the default), each with the one before as `precpu_stats`;
        else one; a one-shot answer without `one-shot=1` has the CPU counters of a second before
        in `precpu_stats`, as Docker's (so `docker stats --no-stream` shows a CPU %)."""
        import time

        from reconciler.runtime.native.backend import NEVER

        rt = self.runtime
        first = rt.container_stats(ident)           # NotFound: the 404
        cid = first["id"]

        def take() -> dict[str, Any] | None:
            try:
                return dict(rt.container_stats(cid))
            except rterrors.NotFound:
                return None

        def after(cur: dict[str, Any], pre: dict[str, Any]) -> dict[str, Any]:
            return {**cur, "preread": pre["read"], "precpu_stats": pre["cpu_stats"]}

        if not _flag(q, "stream", default=True):
            if not _flag(q, "one-shot") and first["read"] != NEVER:
                time.sleep(1)
                return after(take() or first, first)
            return first

        def stream() -> Iterator[bytes]:
            cur: dict[str, Any] | None = first
            pre: dict[str, Any] | None = None
            while cur is not None:
                yield json.dumps(cur if pre is None else after(cur, pre)).encode() + b"\n"
                pre = cur
                for _ in range(4):
                    yield b""                       # the client may have gone
                    time.sleep(0.25)
                cur = take()
        return stream()

    def _exec_event(self, ex: Mapping[str, Any], action: str, **extra: Any) -> None:
        """Docker's exec events: `exec_create: CMD`, `exec_start: CMD` (the command after the
        colon), `exec_die` (attributes execID and exitCode)."""
        manager = self.runtime.containers
        try:
            rec = manager.get(ex["container"])
        except rterrors.NotFound:
            return                              # removed meanwhile: no container to name
        text = action if action == "exec_die" else f"{action}: {' '.join(ex['argv'])}"
        manager.event(rec, text, execID=ex["id"], **extra)

    def _exec_resize(self, ex: dict[str, Any], rows: int, cols: int) -> None:
        """`docker exec -it` sizes the exec's terminal once it started, and at each resize of the
        client's window: its pty, while it runs (`execs.resize_exec`); before, the size is kept
        for its start. It stayed 0x0 (vi, top, less and line editing drew for no size)."""
        from reconciler.runtime.native.containers import execs

        with self._lock:            # the pty's fd and the runtime's pid, while they are the exec's
            ex["size"] = (rows, cols)
            term = ex.get("term")
            if term is not None:
                with contextlib.suppress(OSError):
                    execs.resize_exec(term[0], term[1], rows, cols)

    def _exec_run(self, ex: dict[str, Any], *, detach: bool = False) -> Hijack:
        """Run an exec and relay it live: its output as Docker's frames (raw with a TTY) as it
        comes, until its process exits (a background child that keeps its output open does not
        hold the exec: `execs.output`); the client's input to its stdin when it was created
        with AttachStdin and is not detached (the client's end of input closes that stdin); the
        exit code for /exec/{id}/json, recorded before the output ends. An exec that could not
        start (a user not found, a missing command) ends as dockerd ends it: ExitCode 126, the
        error written into the stream. As the exec's create asked: User, WorkingDir, Env (over
        the container's), Privileged (every capability)."""
        from reconciler.runtime.native.containers import execs

        fed = ex["stdin"] and not detach
        ex["running"] = True
        self._exec_event(ex, "exec_start")
        try:
            proc, master, launch = execs.spawn(
                self.runtime.containers, ex["container"], ex["argv"], tty=ex["tty"], stdin=fed,
                user=ex["user"] or None, workdir=ex["workdir"] or None, env=ex["env"], privileged=ex["privileged"])
        except (rterrors.RuntimeBackendError, OSError) as exc:  # a user not found, the container stopped
            ex["exit"], ex["running"] = execs.START_FAILED, False   # meanwhile, no fd or process left
            message = (exc.message if isinstance(exc, rterrors.RuntimeBackendError) else
                       f"exec failed: {exc.strerror or exc}").encode() + b"\r\n"
            return Hijack(iter([message if ex["tty"] else _frame("stdout", message)]))
        if detach:                              # its process runs, or the runtime gave up on it
            deadline = time.monotonic() + DETACHED_START_WAIT
            while not launch.started() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
        # the input's own fd, closed by the input's end alone: the output's end may come while a
        # write waits, and a closed fd's number may be another file's by the next write
        into = os.dup(master) if master is not None and fed else None
        if master is not None:      # the terminal's own fd for resizes, closed before the runtime is reaped
            with self._lock:
                ex["term"] = (os.dup(master), proc.pid)
                if ex.get("size"):
                    with contextlib.suppress(OSError):
                        execs.resize_exec(ex["term"][0], proc.pid, *ex["size"])

        def frames() -> Iterator[bytes]:
            failure: str | None = None
            try:
                for stream, chunk in execs.output(proc, launch, master):
                    yield chunk if master is not None else _frame(stream, chunk)
            finally:
                with self._lock:
                    term = ex.pop("term", None)
                    if term is not None:
                        os.close(term[0])
                execs.release(proc, master)
                code = proc.wait()
                failure = launch.failure()
                launch.remove()
                ex["exit"] = execs.START_FAILED if failure is not None else code
                ex["running"] = False
                if failure is None:             # dockerd journals no exec_die for an exec that never ran
                    self._exec_event(ex, "exec_die", exitCode=ex["exit"])
            if failure is not None:             # dockerd writes its error into the stream, as output
                message = failure.encode() + b"\r\n"
                yield message if master is not None else _frame("stdout", message)

        def to_stdin(chunk: bytes | None) -> None:
            try:
                if into is not None:
                    if chunk is None:
                        os.close(into)
                    else:
                        os.write(into, chunk)
                elif proc.stdin is not None:
                    if chunk is None:
                        proc.stdin.close()
                    else:
                        proc.stdin.write(chunk)
                        proc.stdin.flush()
            except (OSError, ValueError):
                pass                            # it ended meanwhile

        return Hijack(frames(), to_stdin if fed else None)

    def _logs(self, ident: str, q: Mapping[str, str]) -> Iterator[bytes]:
        """docker logs: the streams asked for (one at least: dockerd's 400 otherwise, before the
        answer starts), framed (one raw stream for a terminal's output)."""
        want = {s for s in ("stdout", "stderr") if _flag(q, s)}
        if not want:
            raise HttpError(400, "Bad parameters: you must choose at least one stream")
        tail = None if q.get("tail", "all") == "all" else int(q["tail"])
        tty = self.runtime.containers.get(ident).terminal      # a terminal's output is one raw stream
        stamps = _flag(q, "timestamps")
        since = q.get("since") if q.get("since") not in (None, "", "0") else None
        until = _timestamp_ns(q.get("until") if q.get("until") not in ("", "0") else None, "until")

        def frames() -> Iterator[bytes]:
            for line in self.runtime.logs(ident, follow=_flag(q, "follow"), tail=tail, since=since):
                if until is not None and (dockerfilters.rfc3339_ns(line.time) or 0) > until:
                    break                           # the lines come in time order: none later is wanted
                if line.stream not in want:
                    continue
                data = (log_time(line.time).encode() + b" " if stamps else b"") + line.written
                yield data if tty else struct.pack(">BxxxL", 1 if line.stream == "stdout" else 2, len(data)) + data
        return frames()

    def _build(self, q: Mapping[str, str], query: str, raw: Callable[[], Any] | None) -> Iterator[bytes]:
        """docker build (the classic API): the tar context is unpacked by the image layer
        extractor into a directory of its own, then built by the native builder; its progress
        streamed as Docker's `{"stream": ...}` lines, the image id as `aux` before `Successfully built`,
        as dockerd's; `rm` and `forcerm` as dockerd's (a step's container kept unless the step
        succeeded with rm, or with forcerm: BuildOptions.rm); with `q`, no progress and the image id as the one stream line, as dockerd answers
        (`docker build -q` prints it, docker-py's `images.build(quiet=True)` finds the image by it)."""
        import queue
        import shutil
        import tempfile

        from reconciler.runtime.native.build import builder
        from reconciler.runtime.native.images import layers

        if raw is None:
            raise HttpError(400, "the build context (a tar) is missing")
        multi = urllib.parse.parse_qs(query, keep_blank_values=True)
        try:
            build_args = {k: str(v) for k, v in json.loads(q.get("buildargs") or "{}").items() if v is not None}
        except (ValueError, AttributeError):
            raise HttpError(400, "buildargs must be a JSON object") from None
        if q.get("remote"):
            raise HttpError(501, "a remote build context is not served by reconciler's engine API: send a tar")
        where = Path(self.runtime.config.root) / "build" / "api-contexts"
        where.mkdir(parents=True, exist_ok=True, mode=0o700)
        ctx = Path(tempfile.mkdtemp(dir=where))
        try:
            layers.apply_layer(raw(), ctx, root_attrs=False)
        except layers.LayerError as exc:
            shutil.rmtree(ctx, ignore_errors=True)
            raise HttpError(400, f"the build context is not a usable tar: {exc.message}") from None
        except BaseException:
            shutil.rmtree(ctx, ignore_errors=True)
            raise
        out: queue.Queue[dict[str, Any] | None] = queue.Queue()
        quiet = _flag(q, "q")

        def run() -> None:
            try:
                image_id = self.runtime.build_context(
                    str(ctx), dockerfile=q.get("dockerfile") or "Dockerfile", build_args=build_args,
                    target=q.get("target") or None, tags=tuple(t for t in multi.get("t", []) if t),
                    no_cache=_flag(q, "nocache"), pull=_flag(q, "pull"),
                    network="host" if q.get("networkmode") == "host" else "none",
                    rm=_flag(q, "rm", default=builder.BuildOptions.rm),      # dockerd's defaults
                    force_rm=_flag(q, "forcerm", default=builder.BuildOptions.force_rm),
                    progress=None if quiet else lambda line: out.put({"stream": line + "\n"}),
                    stored=None if quiet else lambda image_id: out.put({"aux": {"ID": image_id}}))
                if quiet:
                    out.put({"stream": image_id + "\n"})
            except rterrors.RuntimeBackendError as exc:
                detail: dict[str, Any] = {"message": exc.message}
                if isinstance(exc, builder.RunFailed):
                    detail["code"] = exc.code           # a RUN's exit code, as dockerd's: `docker build` exits with it
                out.put({"errorDetail": detail, "error": exc.message})
            except Exception as exc:  # noqa: BLE001 - any failure is the build's answer, never an empty success
                # (the stream ends here either way: a bug that escaped as an exception left the
                # client with no error line, and `docker build` said nothing and exited 0)
                from reconciler import logs

                logs.get_logger("reconciler.api.engine").exception("build failed")
                message = f"the build failed: {type(exc).__name__}: {exc}"
                out.put({"errorDetail": {"message": message}, "error": message})
            finally:
                shutil.rmtree(ctx, ignore_errors=True)
                out.put(None)

        threading.Thread(target=run, name="engine-api-build", daemon=True).start()

        def stream() -> Iterator[bytes]:
            while (item := out.get()) is not None:
                yield json.dumps(item).encode() + b"\r\n"
        return stream()

    def _commit(self, q: Mapping[str, str], query: str) -> dict[str, str]:
        """docker commit: the container's changes as an image (the native engine's commit), with
        the request's `changes` (Dockerfile instructions), comment, author and pause."""
        if not q.get("container"):
            raise HttpError(400, "the container is required (?container=)")
        repo = q.get("repo") or ""
        ref = f"{repo}:{q.get('tag') or 'latest'}" if repo else None
        changes = tuple(c for c in urllib.parse.parse_qs(query).get("changes", []) if c)
        image_id = self.runtime.commit_container(q["container"], ref, changes=changes, message=q.get("comment") or "",
                                                 author=q.get("author") or "", pause=_flag(q, "pause", default=True))
        return {"Id": image_id}

    def _save(self, names: list[str]) -> Iterator[bytes]:
        """docker save: the archive streamed as it is written (a thread writes, this reads)."""
        import queue

        if not names:
            raise HttpError(400, "no image names given (?names=)")
        for name in names:
            _image_or_404(self.runtime, name)
        chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=64)

        class Out:
            def write(self, data: bytes) -> int:
                chunks.put(bytes(data))
                return len(data)

        def produce() -> None:
            try:
                self.runtime.save_images(names, Out())
                chunks.put(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the reading side
                chunks.put(exc)

        threading.Thread(target=produce, name="engine-api-save", daemon=True).start()

        def stream() -> Iterator[bytes]:
            while (item := chunks.get()) is not None:
                if isinstance(item, BaseException):
                    return              # the client sees a truncated archive, as with Docker
                yield item
        return stream()

    def _load(self, raw: Callable[[], Any] | None) -> Iterator[bytes]:
        """docker load: the archive (docker save's, podman's, OCI layout) read as a stream; the
        names loaded (always: `quiet` only leaves out progress, of which there is none)."""
        if raw is None:
            raise HttpError(400, "the archive is missing")
        try:
            loaded = self.runtime.load_images(raw())
            lines = [f"Loaded image: {_familiar(t)}" for _, tags in loaded for t in tags]
            lines += [f"Loaded image ID: {i}" for i, tags in loaded if not tags]
            items: list[dict[str, Any]] = [{"stream": line + "\n"} for line in lines]   # quiet: no progress
        except rterrors.RuntimeBackendError as exc:
            items = [{"errorDetail": {"message": exc.message}, "error": exc.message}]
        return (json.dumps(item).encode() + b"\r\n" for item in items)

    def _import(self, q: Mapping[str, str], query: str, raw: Callable[[], Any] | None) -> Iterator[bytes]:
        """docker import: the tarball in the body (fromSrc=-) or at an http(s) URL as an image of
        one layer, tagged `repo` (the CLI sends REPOSITORY[:TAG] there) with `tag` when given;
        dockerd's one status line, the image id. A refusal is an error answer, as dockerd's
        (nothing was written to the client before it)."""
        src = q.get("fromSrc") or ""
        repo, tag = q.get("repo") or "", q.get("tag") or ""
        ref = (f"{repo}:{tag}" if tag else repo) or None
        changes = tuple(c for c in urllib.parse.parse_qs(query).get("changes", []) if c)
        body = raw() if src == "-" and raw is not None else None
        try:
            image_id = self.runtime.import_image(src, body, ref, changes=changes, message=q.get("message") or "",
                                                 platform=q.get("platform") or None)
        except BaseException:
            # read the rest of the tar before answering: a client still sending it (the docker
            # CLI streams it chunked) would get a broken pipe instead of the error
            with contextlib.suppress(Exception):
                while body is not None and body.read(1 << 16):
                    pass
            raise
        return iter([json.dumps({"status": image_id}).encode() + b"\r\n"])

    def _login(self, data: Mapping[str, Any]) -> dict[str, str]:
        """docker login: the registry checks the credentials (nothing is kept here: the client
        stores them and sends them with each pull and push); a refresh token its token server
        gave goes back as IdentityToken, which the client keeps in place of the password."""
        server = str(data.get("serveraddress") or "docker.io")
        host = server.split("://", 1)[-1].split("/", 1)[0]
        registry = "docker.io" if host in ("index.docker.io", "registry-1.docker.io", "docker.io") else host
        try:
            token = self.runtime.check_login(registry, data)
        except rterrors.ImageError as exc:
            raise HttpError(401, exc.message) from None
        return {"Status": "Login Succeeded", "IdentityToken": token or ""}

    def _images(self, method: str, parts: list[str], q: Mapping[str, str],
                auth: Mapping[str, Any] | None = None) -> tuple[int, Any]:
        rt = self.runtime
        if method == "GET" and parts == ["json"]:
            return 200, self._image_list(q)
        if method == "POST" and parts == ["create"]:
            ref = q.get("fromImage") or ""
            tag = q.get("tag") or ""
            if not ref:
                raise HttpError(400, "fromImage is required")
            full = f"{ref}@{tag}" if tag.startswith("sha256:") else (f"{ref}:{tag}" if tag else ref)
            return 200, self._pull(full, auth)
        if method == "POST" and len(parts) >= 2 and parts[-1] == "push":
            name = "/".join(parts[:-1])
            if q.get("tag"):
                return 200, self._push(f"{name}:{q['tag']}", auth)
            return 200, self._push_all(name, auth)
        if method == "POST" and len(parts) >= 2 and parts[-1] == "tag":
            repo, tag = q.get("repo") or "", q.get("tag") or "latest"
            if not repo:
                raise HttpError(400, "repository name is required (?repo=)")
            _image_or_404(rt, "/".join(parts[:-1]))           # dockerd's 404 words (docker tag MISSING NEW)
            rt.tag_image("/".join(parts[:-1]), f"{repo}:{tag}")
            return 201, None
        if method == "DELETE" and parts:
            name = "/".join(parts)
            _image_or_404(rt, name)
            lines = rt.remove_image(name, force=_flag(q, "force"))     # "Untagged: x", "Deleted: y"
            return 200, [{k: _familiar(v) if k == "Untagged" else v}
                         for k, _, v in (line.partition(": ") for line in lines)]
        if method == "GET" and len(parts) >= 2 and parts[-1] == "history":
            info = _image_or_404(rt, "/".join(parts[:-1]))
            return 200, [{"Id": h["id"], "Created": _unix(h["created"]) if h["created"] else _ZERO_UNIX, "CreatedBy": h["created_by"],
                          "Tags": [_familiar(t) for t in h["tags"]] or None, "Size": h["size"],
                          "Comment": h["comment"]} for h in rt.image_history(info.id)]
        if method == "GET" and len(parts) >= 2 and parts[-1] == "json":
            info = _image_or_404(rt, "/".join(parts[:-1]))
            return 200, image_inspect(info, rt.image_store.image_config(info.id))
        raise HttpError(501, f"{method} /images/{'/'.join(parts)} is not served by reconciler's engine API yet")

    def _push_all(self, name: str, auth: Mapping[str, Any] | None) -> Iterator[bytes]:
        """docker push --all-tags (the request names no tag): every tag of `name`, in order
        (checked before the answer starts: none is a 404)."""
        want = _familiar(f"{name}:latest").rpartition(":")[0]
        tags = sorted({_familiar(t) for i in self.runtime.list_images() for t in i.repo_tags
                       if _familiar(t).rpartition(":")[0] == want})
        if not tags:
            raise HttpError(404, f"An image does not exist locally with the tag: {name}")
        return itertools.chain.from_iterable(self._push(ref, auth) for ref in tags)

    def _push(self, ref: str, auth: Mapping[str, Any] | None) -> Iterator[bytes]:
        """docker push: Docker's JSON progress lines, the digest last (an error as Docker's
        errorDetail line: the CLI prints it and fails)."""
        _image_or_404(self.runtime, ref)
        lines: list[dict[str, Any]] = []
        try:
            digest = self.runtime.push_image(ref, ref, auth=auth, progress=lambda text: lines.append({"status": text}))
        except rterrors.RuntimeBackendError as exc:
            lines.append({"errorDetail": {"message": exc.message}, "error": exc.message})
        else:
            size = lines[-1]["status"].rpartition("size: ")[2] if lines else ""
            lines.append({"progressDetail": {}, "aux": {"Tag": ref.rpartition(":")[2], "Digest": digest,
                                                        "Size": int(size) if size.isdigit() else 0}})
        for item in lines:
            yield json.dumps(item).encode() + b"\r\n"

    def _pull(self, ref: str, auth: Mapping[str, Any] | None = None) -> Iterator[bytes]:
        """docker pull: Docker's JSON progress lines, from its first (`TAG: Pulling from REPO`) to
        its last (`Status: Downloaded newer image for REF`, or `Image is up to date` when the tag
        named that image already, as dockerd's `tagUpdated`; deploy scripts read it). The pull
        runs in a thread and the answer waits for its first event: an error before any (a
        reference its registry does not know, refused credentials, a registry that does not
        answer) is the answer's status and message, as dockerd's (a 404 `manifest for REF not
        found`: docker-py raises NotFound; others a 500), not a 200 with the error inside; one
        after is an errorDetail line, which the CLI prints and fails with."""
        import queue

        from reconciler import imagenames

        rt = self.runtime
        try:
            before: str | None = rt.inspect_image(ref).id
        except rterrors.RuntimeBackendError:
            before = None
        events: queue.Queue[tuple[str, Any]] = queue.Queue()

        def run() -> None:
            try:
                info = rt.pull_image(ref, progress=lambda event, d: events.put(("progress", (event, d))), auth=auth)
                events.put(("pulled", info))
            except rterrors.RuntimeBackendError as exc:
                events.put(("failed", exc))
            except Exception as exc:  # noqa: BLE001 - said to the client, never a silent end of the stream
                from reconciler import logs

                logs.get_logger("reconciler.api.engine").exception("pull failed", ref=ref)
                events.put(("failed", rterrors.ImageError(f"pulling {ref}: {type(exc).__name__}: {exc}")))

        threading.Thread(target=run, name="engine-api-pull", daemon=True).start()
        first = events.get()
        if first[0] == "failed":
            exc = first[1]
            if isinstance(exc, rterrors.ImageNotFound):
                raise HttpError(404, _not_found_words(ref, exc.code))
            raise exc
        name, tag, digest = imagenames.cut(ref)
        _, repository = imagenames.locate(name)

        def line(item: Mapping[str, Any]) -> bytes:
            return json.dumps(item).encode() + b"\r\n"

        def stream() -> Iterator[bytes]:
            yield line({"status": f"Pulling from {repository}",
                        "id": _familiar(ref) if digest is not None else (tag or imagenames.DEFAULT_TAG)})
            kind, value = first
            while True:
                if kind == "progress":
                    event, d = value
                    text = _PULL_STATUS.get(event)
                    if text:
                        yield line({"status": text, "id": str(d.get("digest", ""))[7:19]})
                elif kind == "failed":
                    yield line({"errorDetail": {"message": value.message}, "error": value.message})
                    return
                else:
                    yield line({"status": f"Digest: {value.digest}"})
                    fresh = "Image is up to date" if value.id == before else "Downloaded newer image"
                    yield line({"status": f"Status: {fresh} for {_familiar(ref)}"})
                    return
                kind, value = events.get()
        return stream()


def _not_found_words(ref: str, code: str) -> str:
    """dockerd's words for a pull its registry refused as not there (distribution/errors.go's
    notFoundError): DENIED is Docker Hub's answer for a repository it does not have."""
    from reconciler import imagenames

    if code == "DENIED":
        return (f"pull access denied for {imagenames.familiar(imagenames.cut(ref)[0])}, repository does not exist or "
                "may require 'docker login': denied: requested access to the resource is denied")
    return f"manifest for {_familiar(ref)} not found: manifest unknown: manifest unknown"


def _handler(api: EngineApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def version_string(self) -> str:
            """The one `Server` header (send_response writes it; Python's own was a second)."""
            return f"reconciler/{__version__}"

        def log_message(self, fmt: str, *args: Any) -> None:
            pass

        def _body(self) -> Any:
            self.body_taken = True
            try:
                n = httpbody.content_length(self.headers, MAX_BODY)
            except httpbody.BodyRefused as e:
                self.close_connection = True    # the body is left unread: the connection cannot go on
                raise HttpError(e.status, e.message) from None
            raw = self.rfile.read(n) if n else b""
            if not raw:
                return None
            try:
                return json.loads(raw)
            except ValueError:
                raise HttpError(400, "the request body is not JSON") from None

        def _stream(self) -> httpbody.BodyStream:
            self.body_taken = True
            self.close_connection = True        # what the route leaves unread ends the connection
            return httpbody.BodyStream(self.headers, self.rfile, MAX_UPLOAD)

        def _answer(self, method: str) -> None:
            url = urllib.parse.urlsplit(self.path)
            path = url.path
            m = _VERSIONED.match(path)
            if m:
                path = m.group(1)
            q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
            self.body_taken = False
            try:
                code, payload = api.route(method, path, q, self._body, self._stream,
                                          {k.title(): v for k, v in self.headers.items()}, url.query)
            except HttpError as exc:
                code, payload = exc.code, {"message": exc.message}
            except rterrors.RuntimeBackendError as exc:
                code = next((c for cls, c in _STATUS_CODES.items() if isinstance(exc, cls)), 500)
                payload = {"message": exc.message}
            except httpbody.BodyRefused as exc:
                code, payload = exc.status, {"message": exc.message}
            inner = payload.payload if isinstance(payload, WithHeaders) else payload
            if not self.body_taken and not isinstance(inner, Iterator | Hijack):   # (a stream may read it yet)
                self._drop_body()
            self._send(method, code, payload)

        def _drop_body(self) -> None:
            """Read and drop a body the route left unread (an early answer: an error, a 501), before
            the answer, as dockerd reads it: else it was read as the connection's next request,
            whose answer a Go client took for an "Unsolicited response received on idle HTTP
            channel". One over MAX_UNREAD bytes (or malformed) ends the connection instead."""
            chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
            if not chunked and self.headers.get("Content-Length", "0").strip() == "0":
                return
            try:
                httpbody.BodyStream(self.headers, self.rfile, MAX_UNREAD).drain()
            except (httpbody.BodyRefused, OSError):
                self.close_connection = True

        def _hijacked(self, payload: Hijack) -> None:
            upgrade = self.headers.get("Upgrade", "").lower() == "tcp"
            self.send_response(101 if upgrade else 200)
            self.send_header("Content-Type", "application/vnd.docker.raw-stream")
            if upgrade:
                self.send_header("Connection", "Upgrade")
                self.send_header("Upgrade", "tcp")
            self.end_headers()
            self.close_connection = True
            if payload.stdin is not None:
                threading.Thread(target=self._pump_stdin, args=(payload.stdin,), name="engine-api-stdin",
                                 daemon=True).start()
            try:
                for chunk in payload.frames:
                    self.wfile.write(chunk)
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                # The output ended (its exit code recorded first): the connection ends both ways
                # now, as dockerd ends it, whether or not the client closed its input. The
                # client reads what was sent, then EOF; the stdin pump, blocked in rfile.read1
                # with the reader's lock held, wakes, so finish()'s rfile.close() can take that
                # lock (without the shutdown, `docker exec -it` waited for input that never came).
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

        def _pump_stdin(self, stdin: Callable[[bytes | None], None]) -> None:
            """What the client sends on the hijacked connection, to `stdin`, until it closes its
            writing side (or the connection goes)."""
            try:
                while chunk := self.rfile.read1(65536):
                    stdin(chunk)
            except (OSError, ValueError):
                pass
            stdin(None)

        def _peer_gone(self) -> bool:
            """The client closed its end (it sends nothing while it reads a stream)."""
            import select

            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            try:
                return bool(self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"")
            except BlockingIOError:
                return False
            except OSError:
                return True

        def _send(self, method: str, code: int, payload: Any) -> None:
            if isinstance(payload, Hijack):
                self._hijacked(payload)
                return
            extra: Mapping[str, str] = {}
            if isinstance(payload, WithHeaders):
                payload, extra = payload.payload, payload.headers
            streaming = isinstance(payload, Iterator)
            self.send_response(code)
            self.send_header("Api-Version", API_VERSION)
            self.send_header("Docker-Experimental", "false")
            self.send_header("OSType", "linux")
            for key, value in extra.items():
                if key != "Content-Type":
                    self.send_header(key, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            if streaming:
                ctype = extra.get("Content-Type") or (
                    "application/vnd.docker.raw-stream" if "/logs" in self.path else "application/json")
                self.send_header("Content-Type", ctype)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for chunk in payload:
                        if not chunk:                   # a tick of a quiet stream
                            if self._peer_gone():
                                self.close_connection = True
                                return
                            continue
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                return
            if payload is None or code in (204, 304):
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_header("Content-Type", "text/plain; charset=utf-8" if isinstance(payload, bytes)
                             else "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(raw)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_HEAD(self) -> None:
            self._answer("HEAD")

        def do_POST(self) -> None:
            self._answer("POST")

        def do_DELETE(self) -> None:
            self._answer("DELETE")

        def do_PUT(self) -> None:
            self._answer("PUT")

    return Handler
