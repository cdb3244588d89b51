"""`DockerRuntime`: the Runtime protocol on an existing Docker (or Podman) engine.

The engine does the work; this module translates. `ContainerConfig` becomes a
`/containers/create` body, engine JSON becomes `ContainerState` and friends, and the
engine's streams (pull progress, multiplexed logs and exec output) become callbacks,
`LogLine`s and bytes. Errors come from `api.EngineAPI` already mapped to `runtime.errors`.

Where Docker differs from the protocol's wording, Docker wins and the difference is noted:
`ImageInfo.size` is the engine's (uncompressed) size; `manually_stopped` is inferred (the
engine does not report it) as "exited although its policy would have run it again"
(`reconciler.restarting`, at an exit: Docker marks such a container restarting instead).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import ipaddress
import itertools
import json
import math
import os
import re
import secrets
import struct
import tarfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from reconciler import healthtimes, imagenames, restarting
from reconciler._dataclass import dataclasses
from reconciler.runtime import base, binds, buildinputs, errors
from reconciler.runtime.docker import api

if TYPE_CHECKING:
    import httpx

    from reconciler import registry_client as rc

__all__ = [
    "DockerRuntime",
    "auth_config",
    "container_body",
    "container_state",
    "demux",
    "history_step",
    "image_info",
    "log_lines",
    "network_state",
    "registry_auth",
    "since_param",
    "split_reference",
    "ula_subnet",
    "volume_state",
]

_NS = 1_000_000_000
START_INTERVAL_API = "1.44"     # the Engine API version that brought healthchecks' StartInterval (Docker 25)
# An endpoint's own MAC address (EndpointSettings.MacAddress) and several endpoints in one create
# came with Engine API 1.44 (Docker 25); before it the primary network's MAC is the container's
# (Config.MacAddress), and no other network can have one (a connect drops it up to API 1.54, so
# a MAC on a further network goes in the create). The gateway priority came with 1.48 (Docker 28).
ENDPOINT_MAC_API = "1.44"
GW_PRIORITY_API = "1.48"
_STREAMS = {1: "stdout", 2: "stderr"}
_NETWORK_MODES = ("none", "host", "bridge", "default")
_INSPECT_THREADS = 8   # list_* inspect every object (the lists lack state): a few at a time
_CONTEXT_SPOOL = 64 << 20   # a build context's tar is kept in memory up to this size, else in a temporary file


def split_reference(ref: str) -> tuple[str, str]:
    """`repo[:tag][@digest]` → (repo, tag-or-digest); the tag defaults to "latest"."""
    name, _, digest = ref.partition("@")
    if digest:
        return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name, digest
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = name.rsplit(":", 1)
        return repo, tag
    return name, "latest"


def demux(chunks: Iterator[bytes]) -> Iterator[tuple[int, bytes]]:
    """Docker's multiplexed stream: frames of [stream, 0, 0, 0, size:uint32 BE] + payload."""
    buf = bytearray()
    pos = 0
    for chunk in chunks:
        buf += chunk
        while len(buf) - pos >= 8:
            kind, size = struct.unpack_from(">BxxxL", buf, pos)
            if len(buf) - pos < 8 + size:
                break
            yield kind, bytes(buf[pos + 8:pos + 8 + size])
            pos += 8 + size
        if pos:
            del buf[:pos]
            pos = 0
    if buf:
        # A truncated frame at the end of the stream: give the payload we have.
        yield (buf[0], bytes(buf[8:])) if len(buf) >= 8 else (1, b"")


def _ns(seconds: float) -> int:
    return round(seconds * _NS)


def _size(text: str) -> int:
    m = re.fullmatch(r"(\d+)([kmgKMG]?)[bB]?", text.strip())
    if m is None:
        raise errors.InvalidArgument(f"tmpfs size {text!r} is not a size", hint="use e.g. size=64m")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    return int(m.group(1)) * mult


def _mount(m: base.Mount) -> dict[str, Any] | None:
    out: dict[str, Any] = {"Type": m.type, "Target": m.target, "ReadOnly": m.read_only}
    if m.type == "volume":
        out["Source"] = m.source
        if "nocopy" in m.options:
            out["VolumeOptions"] = {"NoCopy": True}
    elif m.type == "bind":
        out["Source"] = m.source
        prop = [o for o in m.options if o in {"private", "rprivate", "shared", "rshared", "slave", "rslave"}]
        if prop:
            out["BindOptions"] = {"Propagation": prop[-1]}
    elif m.type == "tmpfs":
        opts: dict[str, Any] = {}
        for o in m.options:
            key, _, value = o.partition("=")
            if key == "size":
                opts["SizeBytes"] = _size(value)
            elif key == "mode":
                try:
                    opts["Mode"] = int(value, 8)
                except ValueError:
                    raise errors.InvalidArgument(f"tmpfs mode {value!r} is not octal") from None
            elif key in {"ro", "rw"}:
                out["ReadOnly"] = key == "ro"
            else:
                raise errors.InvalidArgument(
                    f"tmpfs option {o!r} on {m.target} is not supported by the docker backend",
                    hint="use size= and mode=")
        if opts:
            out["TmpfsOptions"] = opts
    elif m.type == "secret" and not m.source:
        return None         # content or an environment variable's value: copied in (_copy_secrets)
    elif m.type == "secret":
        # a plain file is bind-mounted read-only, as docker compose mounts file secrets on one
        # host (its own owner and mode: compose ignores uid/gid/mode for files too); a file whose
        # content is not what the container must see (sops decrypted it) has nowhere to go
        try:
            plain = Path(m.source).read_bytes() == m.data
        except OSError:
            plain = False
        if not plain:
            raise errors.InvalidArgument(
                f"the secret file {m.target} needs the native engine: its content was decrypted in memory, and "
                "neither Docker nor Podman has a tmpfs a file can be put on before the container starts",
                hint="use the native runtime, or a secret file that is not encrypted (bind-mounted read-only)")
        out.update(Type="bind", Source=m.source, ReadOnly=True)
    else:
        raise errors.InvalidArgument(f"mount type {m.type!r} on {m.target} is not volume, bind or tmpfs")
    return out


def container_body(config: base.ContainerConfig, *, endpoints: int = 1, container_mac: bool = False) -> dict[str, Any]:
    """The `/containers/create` body for a ContainerConfig (first network only; see create)."""
    if config.secret_env:
        raise errors.InvalidArgument(
            f"container {config.name}: env {', '.join(sorted(config.secret_env))} came from a SOPS-encrypted "
            "env file, and the engine writes a container's environment to disk (Docker's config.v2.json, Podman's "
            "container config)",
            hint="use the native runtime (it keeps such values on the container's own tmpfs), or put the "
                 "value in a secret file that is not encrypted (bind-mounted read-only): on disk in clear either way")
    host: dict[str, Any] = {
        "RestartPolicy": {"Name": "" if config.restart.name == "no" else config.restart.name,
                          "MaximumRetryCount": config.restart.max_retries},
        "ReadonlyRootfs": config.read_only,
        "Init": config.init,
    }
    body: dict[str, Any] = {
        "Image": config.image,
        "Env": [f"{k}={v}" for k, v in config.env.items()],
        "Labels": dict(config.labels),
        "StopTimeout": math.ceil(config.stop_timeout),
        "HostConfig": host,
    }
    if config.tty:
        body["Tty"] = True
    if config.stdin_open:
        body["OpenStdin"] = True
    if config.stdin_once:
        body["StdinOnce"] = True
    if config.command is not None:
        body["Entrypoint"] = list(config.command)
    if config.args is not None:
        body["Cmd"] = list(config.args)
    for key, value in (("User", config.user), ("WorkingDir", config.workdir), ("Hostname", config.hostname),
                       ("Domainname", config.domainname), ("StopSignal", config.stop_signal)):
        if value is not None:
            body[key] = value
    if config.ports:
        bindings: dict[str, list[dict[str, str]]] = {}
        for p in config.ports:
            if p.protocol not in ("tcp", "udp", "sctp"):
                raise errors.InvalidArgument(f"port protocol {p.protocol!r} is not tcp or udp")
            bindings.setdefault(f"{p.container_port}/{p.protocol}", []).append(
                # no address given ("0.0.0.0" in the model): Docker's own default, every address
                # (IPv6 too), as the docker CLI and docker compose send it
                {"HostIp": "" if p.host_ip == "0.0.0.0" else p.host_ip,  # noqa: S104
                 "HostPort": str(p.host_port) if p.host_port else ""})
        body["ExposedPorts"] = {k: {} for k in bindings}
        host["PortBindings"] = bindings
    if config.mounts:
        host["Mounts"] = [body for body in map(_mount, config.mounts) if body is not None]
    if config.healthcheck is not None:
        hc = config.healthcheck
        # NONE: the image's check is off, timings say nothing; an empty test (and a timing of 0)
        # is the image's: dockerd merges them (Podman: podman.py merges them itself)
        body["Healthcheck"] = {"Test": ["NONE"]} if hc.test[:1] == ("NONE",) else {
            "Test": list(hc.test), "Interval": _ns(hc.interval), "Timeout": _ns(hc.timeout), "Retries": hc.retries,
            "StartPeriod": _ns(hc.start_period),
            **({"StartInterval": _ns(hc.start_interval)} if hc.start_interval else {})}
    res = config.resources
    if res.memory is not None:
        host["Memory"] = res.memory
        if res.memory_swap is not None:
            host["MemorySwap"] = res.memory_swap
    if res.cpus is not None:
        host["NanoCpus"] = _ns(res.cpus)
    if res.pids is not None:
        host["PidsLimit"] = res.pids
    reserved: tuple[tuple[str, int | str | None], ...] = (
        ("MemoryReservation", res.memory_reservation), ("CpuShares", res.cpu_shares), ("CpusetCpus", res.cpuset),
        ("CpuPeriod", res.cpu_period), ("CpuQuota", res.cpu_quota), ("CpusetMems", res.cpuset_mems),
        ("BlkioWeight", res.blkio_weight))
    for key, setting in reserved:
        if setting is not None:
            host[key] = setting
    if config.cap_add:
        host["CapAdd"] = list(config.cap_add)
    if config.cap_drop:
        host["CapDrop"] = list(config.cap_drop)
    if config.no_new_privileges:
        host["SecurityOpt"] = ["no-new-privileges:true"]
    if config.privileged:
        host["Privileged"] = True
    if config.devices:
        host["Devices"] = [dict(zip(("PathOnHost", "PathInContainer", "CgroupPermissions"), d.split(":"), strict=True))
                           for d in config.devices]
    sysctls = dict(config.sysctls)
    if config.domainname:   # runc 1.1 leaves Domainname unapplied; the UTS namespace's sysctl is applied
        sysctls.setdefault("kernel.domainname", config.domainname)
    if sysctls:
        host["Sysctls"] = sysctls
    if config.shm_size is not None:
        host["ShmSize"] = config.shm_size
    if config.oom_score_adj is not None:
        host["OomScoreAdj"] = config.oom_score_adj
    for key, values in (("ExtraHosts", config.extra_hosts), ("Dns", config.dns), ("DnsSearch", config.dns_search),
                        ("DnsOptions", config.dns_options), ("GroupAdd", config.group_add), ("Links", config.links)):
        if values:
            host[key] = list(values)
    if config.log_driver or config.log_options:
        host["LogConfig"] = {"Type": config.log_driver or "", "Config": dict(config.log_options)}
    if config.ulimits:
        host["Ulimits"] = [{"Name": u.name, "Soft": u.soft, "Hard": u.hard} for u in config.ulimits]
    if config.networks:
        first = config.networks[0]
        host["NetworkMode"] = first             # "container:NAME" joins NAME's namespace (Docker's own form)
        if first not in _NETWORK_MODES and not first.startswith("container:"):
            body["NetworkingConfig"] = {"EndpointsConfig": {
                net: endpoint_config(config, net) for net in config.networks[:max(endpoints, 1)]}}
            mac = config.mac_addresses.get(first)
            if container_mac and mac:           # an engine before Engine API 1.44: the container's
                body["MacAddress"] = mac
                del body["NetworkingConfig"]["EndpointsConfig"][first]["MacAddress"]
        elif config.aliases:
            raise errors.InvalidArgument(
                f"container {config.name}: aliases need a user-defined network, not {first!r}")
    elif config.aliases:
        raise errors.InvalidArgument(
            f"container {config.name}: aliases need a user-defined network",
            hint="add the container to a Network object")
    return body


def update_body(update: base.ResourceUpdate) -> dict[str, Any]:
    """The `POST /containers/{id}/update` body of a change, as the docker CLI sends it: each
    field it names (one it leaves None is left out: as it is), `PidsLimit` as given (0 or -1:
    no limit), the restart policy by name."""
    u = update
    fields: tuple[tuple[str, int | str | None], ...] = (
        ("Memory", u.memory), ("MemorySwap", u.memory_swap), ("MemoryReservation", u.memory_reservation),
        ("NanoCpus", _ns(u.cpus) if u.cpus is not None else None), ("CpuShares", u.cpu_shares),
        ("CpuPeriod", u.cpu_period), ("CpuQuota", u.cpu_quota), ("CpusetCpus", u.cpuset),
        ("CpusetMems", u.cpuset_mems), ("PidsLimit", u.pids), ("BlkioWeight", u.blkio_weight))
    body: dict[str, Any] = {key: value for key, value in fields if value is not None}
    if u.restart is not None:
        body["RestartPolicy"] = {"Name": u.restart.name, "MaximumRetryCount": u.restart.max_retries}
    return body


def endpoint_config(config: base.ContainerConfig, network: str) -> dict[str, Any]:
    """A container's EndpointConfig on `network`: its aliases (the container's and its own there)
    and fixed addresses (Docker takes those on a user-defined network with a subnet only, and
    says so), its link-local addresses, MAC address and gateway priority."""
    out: dict[str, Any] = {"Aliases": list(dict.fromkeys((*config.aliases, *config.network_aliases.get(network, ()))))
                           or None}
    ipam: dict[str, Any] = {key: fixed[network] for key, fixed in (("IPv4Address", config.ipv4_addresses),
                                                                   ("IPv6Address", config.ipv6_addresses))
                            if network in fixed}
    if config.link_local_ips.get(network):
        ipam["LinkLocalIPs"] = list(config.link_local_ips[network])
    if ipam:
        out["IPAMConfig"] = ipam
    if config.mac_addresses.get(network):
        out["MacAddress"] = config.mac_addresses[network]
    if config.gw_priorities.get(network):
        out["GwPriority"] = config.gw_priorities[network]
    return out


def _time(value: str | None) -> str | None:
    if not value or value.startswith("0001-01-01"):
        return None
    return value


def _ports(attrs: Mapping[str, Any]) -> tuple[base.PortMapping, ...]:
    """The ports the engine publishes now (NetworkSettings.Ports, what `docker ps` shows), never
    the ones asked for (HostConfig.PortBindings): none while the container is not running, nor
    for one on internal networks only, whose ports Docker does not publish."""
    live = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    out: list[base.PortMapping] = []
    seen: set[tuple[int, int, str, str]] = set()
    for key, bound in sorted(live.items()):
        port, _, proto = key.partition("/")
        for b in bound or []:
            host_ip = b.get("HostIp") or "0.0.0.0"  # noqa: S104 - Docker's default
            if host_ip == "::":
                continue   # the IPv6 twin of a 0.0.0.0 binding
            item = (int(port), int(b.get("HostPort") or 0), proto or "tcp", host_ip)
            if item not in seen:
                seen.add(item)
                out.append(base.PortMapping(item[0], item[1], item[2], item[3]))
    return tuple(out)


def container_state(attrs: Mapping[str, Any], *, start_interval: bool = False,
                    probed_here: bool = False) -> base.ContainerState:
    """`GET /containers/{id}/json` → ContainerState; `start_interval`: whether the engine probes
    at a healthcheck's start interval (Docker 25, Engine API 1.44), for `first_probe`;
    `probed_here`: whether its healthchecks are reconciler's loop (Podman: then a status no
    probe observed lately is stale, `_health_seen`), not the engine's own (dockerd's: its
    probe times are its clock's, which a remote engine's need not agree with)."""
    state = attrs.get("State") or {}
    cfg = attrs.get("Config") or {}
    raw_status = str(state.get("Status", "exited"))
    status = {"paused": "running", "removing": "dead"}.get(raw_status, raw_status)
    try:
        st = base.ContainerStatus(status)
    except ValueError:
        st = base.ContainerStatus.DEAD
    finished = st in (base.ContainerStatus.EXITED, base.ContainerStatus.DEAD,
                      base.ContainerStatus.RESTARTING)
    health = (state.get("Health") or {}).get("Status")
    if finished and health in ("starting", "healthy"):
        health = "unhealthy"        # a stopped container, as dockerd says at every exit (Podman keeps its last)
    # its healthcheck as the engine runs it (Config: dockerd's merge with the image's)
    hc = base.healthcheck_of(None, cfg.get("Healthcheck")) if health else None
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    exit_code = int(state.get("ExitCode", 0)) if finished else None
    restart_count = int(attrs.get("RestartCount") or 0)
    pid = int(state.get("Pid") or 0)
    return base.ContainerState(
        id=str(attrs["Id"]),
        name=str(attrs.get("Name", "")).lstrip("/"),
        image=str(cfg.get("Image", "")),
        image_id=str(attrs.get("Image", "")),
        labels=dict(cfg.get("Labels") or {}),
        status=st,
        created=str(attrs.get("Created", "")),
        exit_code=exit_code,
        started_at=_time(state.get("StartedAt")),
        finished_at=_time(state.get("FinishedAt")),
        pid=pid or None,
        oom_killed=bool(state.get("OOMKilled")),
        health=health if health in ("starting", "healthy", "unhealthy") else None,
        restart_count=restart_count,
        ip_addresses={n: str(e["IPAddress"]) for n, e in networks.items()
                      if e and e.get("IPAddress")},
        # its endpoints, stopped too (the id "" until a connect made while stopped starts; Podman's
        # is the network's name): what a pass judges its place on its networks by, from the
        # inspect it reads anyway (the list's endpoints have no aliases)
        networks={n: str((e or {}).get("NetworkID") or "") for n, e in networks.items()},
        aliases={n: tuple(str(a) for a in (e or {}).get("Aliases") or ()) for n, e in networks.items()},
        ports=_ports(attrs),
        manually_stopped=st == base.ContainerStatus.EXITED and restarting.decide(
            _restart_policy(attrs), exit_code=exit_code, restart_count=restart_count,
            manually_stopped=False, moment=restarting.Moment.EXIT).start,
        paused=raw_status == "paused",
        stale_binds=_stale_binds(attrs, pid) if st == base.ContainerStatus.RUNNING and pid else (),
        first_probe=None if hc is None else (base.first_probe(hc) if start_interval else hc.interval),
        **(_health_seen(state, hc, st) if probed_here and hc is not None else {}),
    )


def _stale_binds(attrs: Mapping[str, Any], pid: int) -> tuple[str, ...]:
    """The bind sources of a running container that its process no longer has mounted
    (runtime.binds), when its engine runs on this host: its pid names the container's process
    here (binds.owned), which an engine elsewhere's (a TCP or forwarded socket) does not."""
    pairs = [(str(m.get("Source") or ""), str(m.get("Destination") or ""))
             for m in attrs.get("Mounts") or () if m.get("Type") == "bind"]
    if not pairs or not binds.owned(pid, str(attrs["Id"])):
        return ()
    return binds.stale(pairs, pid)


def _health_seen(state: Mapping[str, Any], hc: base.Healthcheck, st: base.ContainerStatus) -> dict[str, Any]:
    """`health_stale` and `health_probed_at` of an inspect's State (healthtimes' rule, as the
    native engine's) for its healthcheck `hc`: Podman's checks run only while reconciler's loop
    does (podman.py), so a status can be hours old (dockerd's run on their own: not asked)."""
    started = _time(state.get("StartedAt"))
    probed = healthtimes.last_probe(state["Health"].get("Log") or (), started)
    stale = healthtimes.stale(st.value, hc.interval, hc.timeout, hc.start_period, started, probed, time.time())
    return {"health_stale": stale, "health_probed_at": probed}


def _restart_policy(attrs: Mapping[str, Any]) -> base.RestartPolicy:
    raw = (attrs.get("HostConfig") or {}).get("RestartPolicy") or {}
    return base.RestartPolicy(raw.get("Name") or "no", int(raw.get("MaximumRetryCount") or 0))


def _repo_of(ref: str) -> str:
    return split_reference(ref)[0]


def image_info(attrs: Mapping[str, Any], ref: str | None = None) -> base.ImageInfo:
    """`GET /images/{name}/json` → ImageInfo (digest: the repo digest matching `ref`'s repo)."""
    digests = [str(d) for d in attrs.get("RepoDigests") or []]
    digest = None
    if digests:
        want = _repo_of(ref) if ref else None
        match = [d for d in digests if want is not None and d.split("@", 1)[0] == want]
        digest = (match or digests)[0].split("@", 1)[1]
    if ref and "@sha256:" in ref:
        digest = ref.split("@", 1)[1]
    return base.ImageInfo(
        id=str(attrs["Id"]),
        digest=digest,
        repo_digests=tuple(sorted({imagenames.key(d) for d in digests})),
        repo_tags=tuple(t for t in attrs.get("RepoTags") or [] if t != "<none>:<none>"),
        size=int(attrs.get("Size") or 0),
        created=_time(attrs.get("Created")),            # an image without a time has Go's zero time
        config=dict(attrs.get("Config") or {}),
        layers=tuple((attrs.get("RootFS") or {}).get("Layers") or ()),
    )


def history_step(h: Mapping[str, Any]) -> dict[str, Any]:
    """One step of `GET /images/{name}/history` as the native store gives it (base.ImageHistory):
    its time RFC 3339 (None for Go's zero time, before 1970), its tags as the store keys them."""
    created = int(h.get("Created") or 0)
    size = int(h.get("Size") or 0)
    return {"id": str(h.get("Id") or "<missing>"),
            "created": datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if created > 0 else None,
            "created_by": str(h.get("CreatedBy") or ""), "comment": str(h.get("Comment") or ""),
            "tags": [imagenames.key(t) for t in h.get("Tags") or () if t != "<none>:<none>"],
            "empty_layer": size == 0, "size": size}


def auth_config(store: rc.CredentialStore, ref: str) -> tuple[str, dict[str, str]] | None:
    """`ref`'s registry host and Docker's AuthConfig of the credentials `store` has for it (the
    lookup every engine of reconciler uses: DOCKER_AUTH_CONFIG, the Docker config's credHelpers,
    credsStore and auths, Podman's auth file); None when there are none (anonymous) or `ref`
    names no registry reconciler can read (the engine then says what is wrong with it)."""
    from reconciler.registry_client import credentials, references
    from reconciler.registry_client import errors as rcerrors

    try:
        host = references.parse(ref).registry
    except rcerrors.InvalidReference:
        return None
    try:
        cred = store.get(host)
    except rcerrors.RegistryError as exc:          # a credential helper that failed
        raise errors.from_registry(exc, f"credentials for {host}") from None
    return None if cred is None else (host, credentials.to_auth_config(cred, host))


def registry_auth(store: rc.CredentialStore, ref: str) -> str | None:
    """The `X-Registry-Auth` value for `ref`'s registry (`auth_config`), as the docker CLI sends
    it to an engine that pulls, pushes or runs a service; None: anonymous."""
    found = auth_config(store, ref)
    return None if found is None else api.auth_header_value(found[1])


def _refused(message: str) -> bool:
    """Whether an engine's error says the registry wanted (other) credentials."""
    low = message.lower()
    return any(word in low for word in _AUTH_REFUSED)


def _pull_hint(ref: str, message: str, auth: str | None, cli: str) -> str:
    return _auth_hint(ref, auth is not None, cli) if _refused(message) else \
        "check the reference and that the registry is reachable"


def _registry_of(ref: str) -> str:
    """The registry host `ref` names (docker.io when none), for messages."""
    from reconciler import imagenames

    return imagenames.key(ref).split("/", 1)[0]


_AUTH_REFUSED = ("no basic auth credentials", "unauthorized", "authentication required", "denied",
                 "incorrect username or password")


def _auth_hint(ref: str, sent: bool, cli: str) -> str:
    """What to do when the registry refused the engine's pull or push of `ref` for want of
    credentials: which ones reconciler sent (it sends what it finds; the engine keeps none); `cli`:
    the engine's own command, whose login writes where reconciler reads."""
    host = _registry_of(ref)
    if sent:
        return (f"the registry refused the credentials reconciler found for {host}: `{cli} login {host}` again "
                "(they are read from DOCKER_AUTH_CONFIG, $DOCKER_CONFIG/config.json, Podman's auth.json)")
    return (f"reconciler found no credentials for {host}: `{cli} login {host}` (they are read from "
            "DOCKER_AUTH_CONFIG, $DOCKER_CONFIG/config.json or ~/.docker/config.json, Podman's auth.json)")


T = TypeVar("T")


def _asked_again(call: Callable[[], T], transient: str, tries: int = 3) -> T:
    """`call()`, asked again (up to `tries` times in all) while it fails with an engine error
    whose message holds `transient`: a race inside the engine (Podman) that the same request
    does not meet twice."""
    attempt = 1
    while True:
        try:
            return call()
        except errors.RuntimeBackendError as exc:
            if transient not in str(exc) or attempt == tries:
                raise
        time.sleep(0.05 * attempt)
        attempt += 1


def verify_network(config: base.NetworkConfig, attrs: Mapping[str, Any], *, driver: str,
                   gateway: bool = True, cli: str = "docker") -> base.NetworkState:
    """The state of an existing network `attrs`, or Conflict naming how it differs from `config`
    (its driver, subnet, `gateway` when asked, internal flag, labels): made by someone else; its
    hint removes it with the engine's command `cli`."""
    state = network_state(attrs)
    diffs = []
    if attrs.get("Driver") != driver:
        diffs.append(f"driver {attrs.get('Driver')!r} (want {driver!r})")
    if config.subnet and state.subnet != config.subnet:
        diffs.append(f"subnet {state.subnet} (want {config.subnet})")
    if gateway and config.gateway and state.gateway != config.gateway:
        diffs.append(f"gateway {state.gateway} (want {config.gateway})")
    if state.internal != config.internal:
        diffs.append(f"internal={state.internal} (want {config.internal})")
    if bool(attrs.get("EnableIPv6")) != config.ipv6:
        diffs.append(f"EnableIPv6={bool(attrs.get('EnableIPv6'))} (want {config.ipv6})")
    elif config.ipv6_subnet and state.ipv6_subnet != config.ipv6_subnet:
        diffs.append(f"IPv6 subnet {state.ipv6_subnet or 'none'} (want {config.ipv6_subnet})")
    missing = {k: v for k, v in config.labels.items() if state.labels.get(k) != v}
    if missing:
        diffs.append(f"labels lack {missing}")
    if diffs:
        raise errors.Conflict(
            f"network {config.name} exists with a different configuration: {'; '.join(diffs)}",
            hint=f"remove it (`{cli} network rm {config.name}`) so it can be re-created")
    return state


def network_state(attrs: Mapping[str, Any]) -> base.NetworkState:
    configs = (attrs.get("IPAM") or {}).get("Config") or []
    v4 = [c for c in configs if ":" not in str(c.get("Subnet", ""))] or configs or [{}]
    subnet = str(v4[0].get("Subnet", ""))
    gateway = str(v4[0].get("Gateway", ""))
    v6: Mapping[str, Any] = next((c for c in configs if ":" in str(c.get("Subnet", ""))), {})
    if subnet and not gateway and attrs.get("Driver") == "bridge":
        # the engine leaves out the gateway it picked itself: the subnet's first address
        try:
            gateway = str(next(ipaddress.ip_network(subnet, strict=False).hosts()))
        except (ValueError, StopIteration):
            pass
    options = attrs.get("Options") or {}
    nid = str(attrs.get("Id", ""))
    bridge = options.get("com.docker.network.bridge.name") or (
        f"br-{nid[:12]}" if attrs.get("Driver") == "bridge" and nid else "")
    return base.NetworkState(
        id=nid,
        name=str(attrs.get("Name", "")),
        subnet=subnet,
        gateway=gateway,
        internal=bool(attrs.get("Internal")),
        labels=dict(attrs.get("Labels") or {}),
        bridge=str(bridge),
        ipv6_subnet=str(v6.get("Subnet", "")),
        ipv6_gateway=str(v6.get("Gateway", "")) or (
            str(ipaddress.IPv6Network(v6["Subnet"], strict=False).network_address + 1) if v6 else ""),
        mtu=int(options.get("com.docker.network.driver.mtu") or 1500),
    )


def ula_subnet() -> str:
    """A /64 of fd00::/8 with a random 40-bit global ID (RFC 4193), for a dual-stack network
    given no IPv6 subnet: Docker has no IPv6 pool of its own unless its daemon config names one."""
    return str(ipaddress.IPv6Network((0xFD << 120 | secrets.randbits(40) << 80, 64)))


def volume_state(attrs: Mapping[str, Any]) -> base.VolumeState:
    # `Status` is the driver's own map; reconciler's Engine API puts there why it cannot mount
    # a volume (its data gone) and what to do, which the native engine reports the same way
    status = attrs.get("Status")
    problem, hint = (status.get("Problem"), status.get("Hint")) if isinstance(status, Mapping) else (None, None)
    return base.VolumeState(
        name=str(attrs["Name"]),
        mountpoint=str(attrs.get("Mountpoint", "")),
        labels=dict(attrs.get("Labels") or {}),
        created=str(attrs.get("CreatedAt", "")),
        problem=problem if isinstance(problem, str) else None,
        hint=hint if isinstance(hint, str) else None,
    )


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def since_param(since: str, now: datetime | None = None) -> str:
    """Docker's `since` (unix seconds[.nanos]) from a timestamp, RFC 3339 time or duration."""
    text = since.strip()
    if re.fullmatch(r"\d+(\.\d{1,9})?", text):
        return text
    if re.fullmatch(r"(\d+(\.\d+)?(ns|us|ms|s|m|h))+", text):
        seconds = sum(float(n) * _UNIT[u] for n, u in _DURATION.findall(text))
        then = (now or datetime.now(UTC)) - timedelta(seconds=seconds)
        return f"{then.timestamp():.9f}"
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", text)
    if m is None:
        raise errors.InvalidArgument(
            f"since={since!r} is not a time", hint="use RFC 3339, unix seconds or a duration like 10m")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    whole = datetime.fromisoformat(m.group(1) + zone)
    frac = (m.group(2) or "").ljust(9, "0")
    return f"{int(whole.timestamp())}.{frac}"


def _split_timestamp(payload: bytes) -> tuple[str, bytes]:
    stamp, sep, rest = payload.partition(b" ")
    if not sep:
        return "", payload
    text = stamp.decode("ascii", "replace")
    m = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if m is None:
        return "", payload
    return f"{m.group(1)}.{(m.group(2) or '').ljust(9, '0')[:9]}{m.group(3)}", rest


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """A raw (TTY) stream cut after each newline, so each piece has its own timestamp."""
    buf = b""
    for chunk in chunks:
        buf += chunk
        *done, buf = buf.split(b"\n")
        for line in done:
            yield line + b"\n"
    if buf:
        yield buf


def log_lines(frames: Iterator[tuple[int, bytes]], *, stamped: bool = True) -> Iterator[base.LogLine]:
    """Log frames → LogLines, joining partial messages per stream (`stamped`: each frame begins
    with its timestamp, as the logs endpoint sends them with timestamps=1; an attach's do not)."""
    pending: dict[str, tuple[str, bytes]] = {}
    for kind, payload in frames:
        stream = _STREAMS.get(kind, "stdout")
        stamp, data = _split_timestamp(payload) if stamped else ("", payload)
        if stream in pending:
            first, head = pending.pop(stream)
            stamp, data = first, head + data
        # One frame may carry several lines (raw/TTY streams); each ends with "\n".
        parts = data.split(b"\n")
        for part in parts[:-1]:
            yield base.LogLine(time=stamp, stream=stream, data=part.removesuffix(b"\r"))
        if parts[-1]:
            pending[stream] = (stamp, parts[-1])
    for stream, (stamp, data) in pending.items():          # written without a newline after it
        yield base.LogLine(time=stamp, stream=stream, data=data, newline=False)


def _inspect_all(
    inspect: Callable[[str], dict[str, Any]], ids: list[str],
) -> list[dict[str, Any]]:
    """Inspect each id, a few at a time; ids removed since the listing are left out."""

    def one(ident: str) -> dict[str, Any] | None:
        try:
            return inspect(ident)
        except errors.NotFound:
            return None

    if len(ids) <= 2:
        found = [one(i) for i in ids]
    else:
        with concurrent.futures.ThreadPoolExecutor(min(_INSPECT_THREADS, len(ids))) as pool:
            found = list(pool.map(one, ids))
    return [a for a in found if a is not None]


class DockerRuntime:
    """The Runtime protocol on the Docker Engine API (also Podman's compat API)."""

    name = "docker"

    def __init__(
        self,
        socket_path: str = api.DEFAULT_SOCKET,
        transport: httpx.BaseTransport | None = None,
        *,
        what: str = "docker",
        engine: api.EngineAPI | None = None,
        credentials: rc.CredentialStore | None = None,
        state_root: Path | None = None,
    ) -> None:
        """`transport` replaces the Unix socket (e.g. `httpx.HTTPTransport` to a TCP engine);
        `engine` is a client made already (`api.from_docker_host`); `credentials`: where the
        registry credentials sent with pulls and pushes come from (default: the one lookup of
        `registry_client.credentials`, which the native engine pulls with too); `state_root`:
        where the records of the builds of Images with `build:` are kept (its state DB; without
        one such an Image cannot be built here)."""
        self.api = engine or api.EngineAPI(socket_path, transport=transport, what=what)
        self._credentials = credentials
        self._state_root = state_root
        self._records: buildinputs.BuildRecords | None = None

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> DockerRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- images -----------------------------------------------------------------------------

    def credential_store(self) -> rc.CredentialStore:
        """Where the registry credentials this engine is sent come from (made when first asked)."""
        if self._credentials is None:
            from reconciler.registry_client import credentials

            self._credentials = credentials.CredentialStore()
        return self._credentials

    def registry_auth(self, ref: str) -> str | None:
        """The X-Registry-Auth value sent with a pull, push or resolve of `ref` (`registry_auth`)."""
        return registry_auth(self.credential_store(), ref)

    def pull_image(self, ref: str, *, progress: base.ProgressCallback | None = None) -> base.ImageInfo:
        repo, tag = split_reference(ref)
        emit = progress or (lambda event, detail: None)
        emit("resolve", {"ref": ref})
        pulled_digest: str | None = None
        started: set[str] = set()
        extracting: set[str] = set()
        auth = self.registry_auth(ref)
        try:
            with self.api.image_pull(repo, tag, registry_auth=auth) as messages:
                for msg in messages:
                    if "error" in msg:
                        detail = (msg.get("errorDetail") or {}).get("message") or msg["error"]
                        raise errors.ImageError(f"pull {ref}: {detail}", hint=_pull_hint(ref, str(detail), auth, self.api.cli))
                    status = str(msg.get("status", ""))
                    layer = str(msg.get("id", ""))
                    if status.startswith("Digest: "):
                        pulled_digest = status.removeprefix("Digest: ").strip()
                    elif not layer or layer == tag:
                        continue
                    elif status in ("Pulling fs layer", "Waiting") and layer not in started:
                        started.add(layer)
                        emit("layer-start", {"digest": layer})
                    elif status == "Downloading":
                        det = msg.get("progressDetail") or {}
                        emit("layer-progress", {"digest": layer, "done": int(det.get("current") or 0),
                                                "total": int(det.get("total") or 0)})
                    elif status == "Extracting" and layer not in extracting:
                        extracting.add(layer)
                        emit("extract", {"digest": layer})
                    elif status == "Pull complete":
                        emit("layer-done", {"digest": layer, "result": "downloaded"})
                    elif status == "Already exists":
                        if layer not in started:
                            started.add(layer)
                            emit("layer-start", {"digest": layer})
                        emit("layer-done", {"digest": layer, "result": "exists"})
        except (errors.NotFound, errors.InvalidArgument, errors.Conflict) as exc:
            raise errors.ImageError(exc.message, hint=_pull_hint(ref, exc.message, auth, self.api.cli)) from None
        except (errors.Unavailable, errors.ImageError):
            raise
        except errors.RuntimeBackendError as exc:
            raise errors.ImageError(exc.message, hint=_pull_hint(ref, exc.message, auth, self.api.cli) if _refused(exc.message)
                                    else None) from None
        info = image_info(self.api.image_inspect(ref), ref)
        if pulled_digest and info.digest != pulled_digest and "@" not in ref:
            info = dataclasses.replace(info, digest=pulled_digest)
        emit("done", {"ref": ref, "id": info.id, "digest": info.digest})
        return info

    def resolve_digest(self, ref: str) -> str:
        """The registry's digest of `ref` now, as the engine asks it (`GET /distribution`), with
        the credentials reconciler has for it; an engine without that endpoint (Podman) has the
        registry asked by reconciler's own client, with the same credentials (`_resolve_here`)."""
        if not self._engine_resolves:
            return self._resolve_here(ref)
        auth = self.registry_auth(ref)
        try:
            data = self.api.distribution(ref, registry_auth=auth)
        except api.MissingRoute:
            self._engine_resolves = False
            return self._resolve_here(ref)
        except errors.NotFound as exc:
            raise errors.ImageError(exc.message, hint="check the reference and the registry") from None
        except (errors.Unavailable, errors.ImageError):
            raise
        except errors.RuntimeBackendError as exc:
            raise errors.ImageError(exc.message, hint=_auth_hint(ref, auth is not None, self.api.cli) if _refused(exc.message)
                                    else None) from None
        digest = (data.get("Descriptor") or {}).get("digest")
        if not digest:
            raise errors.ImageError(f"resolve {ref}: the engine returned no digest")
        return str(digest)

    _engine_resolves = True     # False once the engine said it has no /distribution (Podman)

    def _resolve_here(self, ref: str) -> str:
        """The digest of `ref` from a HEAD of its manifest by reconciler's registry client (the
        native engine's), with the credentials this engine is sent (`credential_store`)."""
        from reconciler.registry_client import client, references
        from reconciler.registry_client import errors as rcerrors

        try:
            with client.RegistryClient(credentials=self.credential_store()) as registry:
                return str(registry.resolve(references.parse(ref)).digest)
        except rcerrors.RegistryError as exc:
            raise errors.from_registry(exc) from None      # its message says "resolve REF: ..."

    def made_here(self, ref: str) -> bool:
        """Docker records a repository digest (RepoDigests) for an image pulled or pushed as that
        repository, none for one built, committed, loaded, imported, or tagged into it here."""
        if "@" in ref:
            return False
        try:
            attrs = self.api.image_inspect(ref)
        except errors.RuntimeBackendError:      # absent (then pulled), or not answered: ask as before
            return False
        repo = imagenames.key(ref).rsplit(":", 1)[0]
        return not any(imagenames.key(str(d)).split("@", 1)[0] == repo for d in attrs.get("RepoDigests") or ())

    # -- builds and pushes (an Image with build: and push:): the engine builds, reconciler keeps
    #    the records of what it built from which inputs (runtime/buildinputs.py, as on native)

    def _build_records(self) -> buildinputs.BuildRecords:
        if self._records is None:
            if self._state_root is None:
                raise errors.Unavailable(
                    f"{self.api.what}: an Image's build records are kept in a state root, and this engine was "
                    "opened without one", hint="open it as `apply --runtime docker` and the agent do (runtime.opening)")
            from reconciler._sqlite import Database

            self._records = buildinputs.BuildRecords(Database(self._state_root / "state.db"),
                                                     f"{self.name}_build_records")
        return self._records

    def _image_id(self, ref: str) -> str | None:
        try:
            return str(self.api.image_inspect(ref)["Id"])
        except errors.NotFound:
            return None

    def build_due(self, ref: str, context: str, dockerfile: str, args: Mapping[str, str],
                  target: str | None, push: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
        """Why `ref` must be built now (None: its build is current) and the push targets that lack
        it, by the input digest of the context as it would be sent (buildinputs.SentContext) and
        this engine's records: the rule of every engine (`buildinputs.due`). An unreadable context
        is a reason to build (the build then says what is wrong)."""
        try:
            digest = buildinputs.SentContext(context, dockerfile).input_digest(args, target)
        except OSError as exc:
            return f"build context unreadable ({exc})", push
        return buildinputs.due(self._build_records().get(ref), digest, self._image_id(ref), push)

    def build_image(self, ref: str, context: str, dockerfile: str, args: Mapping[str, str],
                    target: str | None, *, secrets: Mapping[str, bytes] | None = None,
                    ssh: Mapping[str, str] | None = None, allow_insecure: bool = False) -> base.ImageInfo:
        """Build `ref` on the engine (`POST /build`, its classic builder; Podman's buildah): the
        context sent as the docker CLI sends it, with the credentials reconciler has for the
        registries its FROM lines pull from; recorded with the input digest taken before it is
        read. Secrets, SSH agents and insecure steps need a build session the Engine API's build
        endpoint does not have: refused (the manifest is refused first, at load, naming them)."""
        refused = [what for what, given in (("build.secrets", secrets), ("build.ssh", ssh),
                                            ("build.allow: [security.insecure]", allow_insecure)) if given]
        if refused:
            raise errors.InvalidArgument(
                f"build {ref}: {', '.join(refused)}: {self.api.what}'s build endpoint has no build session to pass "
                "them through", hint="build with the native runtime, or without them")
        try:
            sent = buildinputs.SentContext(context, dockerfile)
            digest = sent.input_digest(args, target)
        except OSError as exc:
            raise errors.ImageError(f"build {ref}: the build context cannot be read: {exc}") from None
        params = {"t": ref, "dockerfile": sent.dockerfile, "target": target, "rm": "1", "forcerm": "1",
                  "buildargs": json.dumps(dict(args)) if args else None}
        import tempfile

        with tempfile.SpooledTemporaryFile(max_size=_CONTEXT_SPOOL) as tar:
            try:
                sent.write_tar(tar)
            except OSError as exc:
                raise errors.ImageError(f"build {ref}: the build context cannot be read: {exc}") from None
            tar.seek(0)
            image_id = self._built(ref, iter(lambda: tar.read(1 << 20), b""), params,
                                   self._from_credentials(os.path.join(context, sent.dockerfile)))
        self._build_records().built(ref, digest, image_id)
        return image_info(self.api.image_inspect(ref), ref)

    def _built(self, ref: str, body: Iterator[bytes], params: Mapping[str, Any], registry_config: str | None) -> str:
        """Run the engine's build; the id of the image it made (its `aux` message, else what `ref` names)."""
        step, image_id = "", None
        try:
            with self.api.image_build(body, params, registry_config=registry_config) as messages:
                for msg in messages:
                    if "error" in msg or "errorDetail" in msg:
                        detail = str((msg.get("errorDetail") or {}).get("message") or msg.get("error")).strip()
                        raise errors.ImageError(f"build {ref}: {step + ': ' if step else ''}{detail}",
                                                hint=_auth_hint(ref, True, self.api.cli) if _refused(detail) else None)
                    text = str(msg.get("stream") or "").strip()
                    if text.startswith(("Step ", "STEP ")):
                        step = text.splitlines()[0]
                    aux = msg.get("aux")
                    if isinstance(aux, Mapping) and aux.get("ID"):
                        image_id = str(aux["ID"])
        except (errors.ImageError, errors.Unavailable):
            raise
        except errors.RuntimeBackendError as exc:
            raise errors.ImageError(exc.message, hint=exc.hint) from None
        return image_id or str(self.api.image_inspect(ref)["Id"])

    def _from_credentials(self, dockerfile: str) -> str | None:
        """The X-Registry-Config of a build: the credentials reconciler has for each registry the
        Dockerfile's FROM lines name (as the docker CLI sends its own), or None."""
        try:
            with open(dockerfile, encoding="utf-8", errors="replace") as f:
                text = f.read(1 << 20)
        except OSError:
            return None
        from reconciler.registry_client import credentials

        stages: set[str] = set()
        found: dict[str, dict[str, str]] = {}
        for line in text.splitlines():
            words = line.split()
            if len(words) < 2 or words[0].upper() != "FROM":
                continue
            named = [w for w in words[1:] if not w.startswith("--")]
            image = named[0] if named else ""
            earlier = image.lower() in stages           # FROM a stage of this Dockerfile
            if len(named) >= 3 and named[1].upper() == "AS":
                stages.add(named[2].lower())
            if not image or "$" in image or image == "scratch" or earlier:
                continue
            given = auth_config(self.credential_store(), image)
            if given is not None:
                found[credentials.server_key(given[0])] = given[1]
        return api.auth_header_value(found) if found else None

    def push_image(self, ref: str, dest: str) -> str:
        """Push the image `ref` names to `dest` through the engine (tagged `dest` first, as `docker
        tag` and `docker push` do), with the credentials reconciler has for its registry; the
        pushed manifest's digest. A build of `ref` recorded here remembers that `dest` has it."""
        image = self._image_id(ref)
        if image is None:
            raise errors.ImageError(f"push {ref} to {dest}: no image {ref} on {self.api.what}",
                                    hint="build or pull it first")
        repo, tag = split_reference(dest)
        if self._image_id(dest) != image:
            self.api.image_tag(ref, repo, tag)
        auth = self.registry_auth(dest)
        digest = None
        try:
            with self.api.image_push(repo, tag, registry_auth=auth or api.auth_header_value({})) as messages:
                for msg in messages:
                    if "error" in msg or "errorDetail" in msg:
                        detail = str((msg.get("errorDetail") or {}).get("message") or msg.get("error")).strip()
                        raise errors.ImageError(f"push {dest}: {detail}", hint=_pull_hint(dest, detail, auth, self.api.cli))
                    aux = msg.get("aux")
                    if isinstance(aux, Mapping) and aux.get("Digest"):
                        digest = str(aux["Digest"])
        except (errors.ImageError, errors.Unavailable):
            raise
        except errors.RuntimeBackendError as exc:
            raise errors.ImageError(exc.message, hint=_pull_hint(dest, exc.message, auth, self.api.cli)) from None
        digest = digest or image_info(self.api.image_inspect(dest), dest).digest
        if not digest:
            raise errors.ImageError(f"push {dest}: {self.api.what} did not say the digest it pushed")
        if self._state_root is not None:
            last = self._build_records().get(ref)
            if last is not None:
                self._build_records().pushed(ref, dest, last.input)
        return digest

    def list_images(self) -> list[base.ImageInfo]:
        ids = [str(i["Id"]) for i in self.api.image_list()]
        return [image_info(a) for a in _inspect_all(self.api.image_inspect, ids)]

    def inspect_image(self, ref: str) -> base.ImageInfo:
        return image_info(self.api.image_inspect(ref), ref)

    def image_history(self, ref: str) -> list[dict[str, Any]]:
        """base.ImageHistory: the engine's `GET /images/{ref}/history` as the native store's rows
        (`reconcile image history --runtime docker` prints them as the native engine's)."""
        return [history_step(h) for h in self.api.image_history(ref)]

    def remove_image(self, ref: str, *, force: bool = False) -> list[str]:
        out: list[str] = []
        for item in self.api.image_remove(ref, force=force):
            out.extend(str(v) for k, v in item.items() if k in ("Untagged", "Deleted"))
        return out

    # -- containers -------------------------------------------------------------------------

    def list_containers(self, selector: Mapping[str, str] | None = None) -> list[base.ContainerState]:
        # The list lacks exit codes, health and restart counts: inspect each, a few at a time
        # (one inspect is a few ms; a 500-container host is listed every pass).
        ids = [str(c["Id"]) for c in self.api.container_list(selector)]
        return [container_state(a, start_interval=self._start_interval, probed_here=self._probed_here) for a in
                _inspect_all(self.api.container_inspect, ids)]

    _probed_here = False        # dockerd runs its containers' healthchecks itself (container_state)

    def container_sizes(self, ids: Collection[str]) -> dict[str, tuple[int, int]]:
        """`docker ps -s`'s (SizeRw, SizeRootFs) of the containers of `ids`, as the engine measures them."""
        return self.api.container_sizes(ids)

    @property
    def _start_interval(self) -> bool:
        """Whether the engine has healthchecks' start interval (Engine API 1.44, Docker 25)."""
        return api.at_least(str(self.api.version().get("ApiVersion", "0")), START_INTERVAL_API)

    def _pinned_image(self, config: base.ContainerConfig) -> str:
        """What to create a container pinned to `config.image_id` from: dockerd shows the name it
        was given and runs what that name resolves to, so the name while it still names that
        image, else the id (as `docker ps` shows a container whose tag moved on)."""
        assert config.image_id is not None
        try:
            if self.api.image_inspect(config.image).get("Id") == config.image_id:
                return config.image
        except errors.NotFound:
            pass
        return config.image_id

    def create_container(self, config: base.ContainerConfig, *, auto_remove: bool = False) -> str:
        """`auto_remove`: the engine removes it at its exit (HostConfig.AutoRemove: `run --rm -d`)."""
        version, together, container_mac = self._endpoints_plan(config)
        body = container_body(config, endpoints=together, container_mac=container_mac)
        if config.image_id is not None:
            body["Image"] = self._pinned_image(config)
        if auto_remove:
            body["HostConfig"]["AutoRemove"] = True
        if config.healthcheck is not None and config.healthcheck.start_interval:
            if not self._start_interval:
                raise errors.InvalidArgument(
                    f"container {config.name}: healthcheck.startInterval needs Engine API {START_INTERVAL_API} "
                    f"(Docker 25 or later), and {self.api.what} speaks "
                    f"{self.api.version().get('ApiVersion', '?')}: it would drop it without a word and probe "
                    "every interval from the start",
                    hint="remove startInterval (and give the healthcheck a shorter interval if starts must be "
                         "quick), upgrade the engine, or use the native runtime")
            if not api.at_least(self.api.api_version, START_INTERVAL_API):
                version = max(version or START_INTERVAL_API, START_INTERVAL_API, key=api.version_key)
                # (dockerd drops it from a request of an older version)
        for network in config.networks:
            if network not in _NETWORK_MODES and not network.startswith("container:"):
                # checked up front: the engine accepts a connect to a missing network on a
                # created container and fails only at start
                self._network(network)
        created = self.api.container_create(config.name, body, api_version=version)
        cid = str(created["Id"])
        for warning in created.get("Warnings") or ():     # a blkio weight the kernel discards: the native engine's too
            from reconciler import logs  # lazily: `ps` and `--version` stay light

            logs.get_logger("reconciler.runtime.docker.backend").warning(str(warning), container=config.name)
        try:
            for network in config.networks[together:]:
                self.api.network_connect(network, cid, endpoint_config(config, network), api_version=version)
            self._copy_secrets(cid, config)
        except errors.RuntimeBackendError:
            try:
                self.api.container_remove(cid, force=True)
            except errors.RuntimeBackendError:
                pass
            raise
        return cid

    def _endpoints_plan(self, config: base.ContainerConfig) -> tuple[str | None, int, bool]:
        """How a container's networks' own settings reach this engine: the Engine API version to
        send its create (and connects) at (None: the one spoken), how many of its networks go in
        the create (the rest are connected after it), and whether the first network's MAC address
        is the container's (Config.MacAddress: an engine before API 1.44). A setting the engine's
        version does not have is refused, naming the field and the Docker release that has it:
        the engine would drop it without a word."""
        server = str(self.api.version().get("ApiVersion", "0"))
        needs: list[str] = []
        together, container_mac = 1, False
        for i, net in enumerate(config.networks):
            for field, since, docker, is_set in (
                    ("gwPriority", GW_PRIORITY_API, "28", bool(config.gw_priorities.get(net))),
                    ("macAddress", ENDPOINT_MAC_API, "25", i > 0 and bool(config.mac_addresses.get(net)))):
                if not is_set:
                    continue
                if not api.at_least(server, since):
                    raise errors.InvalidArgument(
                        f"container {config.name}: networks[{i}].{field} ({net}) needs Engine API {since} (Docker "
                        f"{docker} or later), and {self.api.what} speaks {server}: it would drop it without a word",
                        hint=f"remove {field}" + (" or make that network the first (priority)" if field == "macAddress"
                                                  else "") + ", upgrade the engine, or use the native runtime")
                needs.append(since)
                if field == "macAddress":
                    together = len(config.networks)      # a connect drops it (before API 1.54)
        if config.networks and config.mac_addresses.get(config.networks[0]):
            if api.at_least(server, ENDPOINT_MAC_API):
                needs.append(ENDPOINT_MAC_API)          # the endpoint's own (the container's is gone in 1.52)
            else:
                container_mac = True
        need = max(needs, key=api.version_key, default=None)
        if need is None or api.at_least(self.api.api_version, need):
            return None, together, container_mac
        return need, together, container_mac

    def _copy_secrets(self, cid: str, config: base.ContainerConfig) -> None:
        """Secret files with no host file (inline content, an environment variable's value) copied
        into the created container, as docker compose copies them: Docker has no tmpfs a file can
        be put on before the start, so they live in the container's own layer (docs/security.md)."""
        inline = [m for m in config.mounts if m.type == "secret" and not m.source]
        if not inline:
            return
        if config.read_only:
            raise errors.InvalidArgument(
                f"container {config.name}: a secret from content or env ({inline[0].target}) is copied into the "
                "container, and its root file system is read-only", hint="use a secret file (source:), or the native runtime")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for m in inline:
                opts = dict(o.split("=", 1) for o in m.options if "=" in o)
                info = tarfile.TarInfo(m.target.lstrip("/"))
                info.size, info.mode = len(m.data or b""), int(opts.get("mode", "0400"), 8)
                info.uid, info.gid = int(opts.get("uid", "0")), int(opts.get("gid", "0"))
                tar.addfile(info, io.BytesIO(m.data or b""))
        self.api.container_put_archive(cid, "/", iter([buf.getvalue()]))

    def start_container(self, name_or_id: str) -> None:
        self.api.container_start(name_or_id)

    def stop_container(self, name_or_id: str, *, timeout: float | None = None) -> None:
        self.api.container_stop(name_or_id, None if timeout is None else math.ceil(timeout))

    def kill_container(self, name_or_id: str, signal: str = "KILL") -> None:
        self.api.container_kill(name_or_id, signal)

    def restart_container(self, name_or_id: str, *, timeout: float | None = None) -> None:
        """base.Restarting: the engine's own restart (`POST /containers/{id}/restart`)."""
        self.api.container_restart(name_or_id, None if timeout is None else math.ceil(timeout))

    def remove_container(self, name_or_id: str, *, force: bool = False, volumes: bool = False) -> None:
        """`volumes`: its anonymous volumes go with it (`docker rm -v`; `run --rm`'s removal)."""
        self.api.container_remove(name_or_id, force=force, volumes=volumes)

    def checked_update(self, update: base.ResourceUpdate) -> tuple[base.ResourceUpdate, list[str]]:
        """`docker update`'s change checked by the rules every engine shares (`runtime/limits.py`
        `checked`: InvalidArgument in dockerd's words when it is wrong in itself, before any
        container is changed), against the CPUs the engine counts (`/info` NCPU); its cpuset and
        whether its kernel weighs block I/O the engine checks itself, in the same words."""
        from reconciler.runtime import limits

        return limits.checked(update, limits.HostLimits(ncpu=int(self.api.info().get("NCPU") or 1)))

    def update_resources(self, name_or_id: str, update: base.ResourceUpdate) -> list[str]:
        """`docker update`: the change checked (`checked_update`), then sent as the engine's
        `POST /containers/{id}/update`, which merges it over what the container has by its own
        rules (dockerd's words: a conflict with it is a Conflict); the warnings to show (the
        engine's: a blkio weight its kernel discards)."""
        checked, warnings = self.checked_update(update)
        return [*warnings, *self.api.container_update(name_or_id, update_body(checked))]

    def inspect_container(self, name_or_id: str) -> base.ContainerState:
        # Podman reads the container's /proc/<pid>/cgroup to answer, and a process that ends
        # meanwhile (a restart policy at work) fails the call: the container is there, its state moved
        return container_state(_asked_again(lambda: self.api.container_inspect(name_or_id), "no such process"),
                               start_interval=self._start_interval, probed_here=self._probed_here)

    def rename_container(self, name_or_id: str, new_name: str) -> None:
        """Give a container another name (start-first updates rename the new one into place)."""
        self.api.container_rename(name_or_id, new_name)

    def inspect_document(self, name_or_id: str) -> dict[str, Any]:
        """base.Inspecting: the engine's own `docker inspect` document of the container."""
        return self.api.container_inspect(name_or_id)

    def stat_path(self, name_or_id: str, path: str) -> dict[str, Any]:
        """base.PathCopying: the engine's PathStat (`HEAD /containers/{id}/archive`)."""
        try:
            return self.api.container_stat_path(name_or_id, path)
        except errors.NotFound:
            self.api.container_inspect(name_or_id)          # no such container: its own words
            raise errors.NotFound(f"Could not find the file {path} in container {name_or_id}") from None

    def read_archive(self, name_or_id: str, path: str) -> tuple[dict[str, Any], Iterator[bytes]]:
        """base.PathCopying: its PathStat, then `GET /containers/{id}/archive` streamed."""
        stat = self.stat_path(name_or_id, path)

        def chunks() -> Iterator[bytes]:
            with self.api.container_get_archive(name_or_id, path) as body:
                yield from body
        return stat, chunks()

    def write_archive(self, name_or_id: str, path: str, src: IO[bytes], *, copy_uid_gid: bool = False) -> None:
        """base.PathCopying: `PUT /containers/{id}/archive` of the tar stream `src`."""
        self.api.container_put_archive(name_or_id, path, iter(lambda: src.read(1 << 16), b""),
                                       copy_uid_gid=copy_uid_gid)

    def container_stats(self, name_or_id: str) -> dict[str, Any]:
        """base.Statistics: one sample of the engine's stats document."""
        return self.api.container_stats(name_or_id)

    def top(self, name_or_id: str, ps_args: str = "-ef") -> tuple[list[str], list[list[str]]]:
        """base.ProcessListing: the engine's `docker top` (`GET /containers/{id}/top`)."""
        data = self.api.container_top(name_or_id, ps_args or None)
        return [str(t) for t in data.get("Titles") or []], [[str(f) for f in p] for p in data.get("Processes") or []]

    # the engine connects a container running or stopped (a stopped one's endpoint is made at its start)
    connects = frozenset({"created", "running", "exited"})

    def connect_container(self, name_or_id: str, network: str, config: base.ContainerConfig, *,
                          again: bool = False) -> None:
        """`docker network connect` with the container's settings on `network` (`endpoint_config`:
        its aliases, fixed addresses, MAC address...) at the Engine API version they need
        (`_endpoints_plan`); `again`: disconnected from it first, forced, as its endpoint may
        name a network removed since (then dockerd would not start it: "network ... not found")."""
        version, _, _ = self._endpoints_plan(config)
        if again:
            with contextlib.suppress(errors.NotFound):
                self.api.network_disconnect(network, name_or_id, force=True)
        self.api.network_connect(network, name_or_id, endpoint_config(config, network), api_version=version)

    def wait_container(self, name_or_id: str, *, timeout: float | None = None) -> int:
        try:
            data = self.api.container_wait(name_or_id, timeout)
        except errors.Unavailable:
            if timeout is not None and self.inspect_container(name_or_id).status in (
                    base.ContainerStatus.RUNNING, base.ContainerStatus.RESTARTING,
                    base.ContainerStatus.CREATED):
                # the same kind as the native engine: not an error of the container
                raise errors.Unavailable(
                    f"container {name_or_id} still running after {timeout}s") from None
            raise
        err = (data.get("Error") or {}).get("Message")
        if err:
            raise errors.RuntimeBackendError(f"wait for container {name_or_id}: {err}")
        return int(data.get("StatusCode", 0))

    def logs(
        self, name_or_id: str, *, follow: bool = False, since: str | None = None,
        tail: int | None = None,
    ) -> Iterator[base.LogLine]:
        # Checked now, not at the first next(): a missing container or a bad `since` fails
        # the call itself.
        tty = bool((self.api.container_inspect(name_or_id).get("Config") or {}).get("Tty"))
        param = None if since is None else since_param(since)
        return self._logs(name_or_id, tty=tty, follow=follow, since=param, tail=tail)

    @contextlib.contextmanager
    def started_attached(self, name_or_id: str) -> Iterator[Iterator[base.LogLine]]:
        """Start the created container, attached first, and give its output until it exits, as
        `docker run` reads it (`reconcile run` in the foreground). Not a logs follow: dockerd 20.10
        can end a follow when the container stops, before the bytes it logs last (a final line
        without a newline: seen lost under load)."""
        tty = bool((self.api.container_inspect(name_or_id).get("Config") or {}).get("Tty"))
        with self.api.container_attach(name_or_id) as chunks:
            self.start_container(name_or_id)
            yield log_lines(((1, c) for c in chunks) if tty else demux(chunks), stamped=False)

    def _logs(
        self, name_or_id: str, *, tty: bool, follow: bool, since: str | None, tail: int | None,
    ) -> Iterator[base.LogLine]:
        with self.api.container_logs(name_or_id, follow=follow, since=since,
                                     tail="all" if tail is None else str(tail)) as chunks:
            frames = ((1, line) for line in _lines(chunks)) if tty else demux(chunks)
            yield from log_lines(frames)

    def exec(
        self, name_or_id: str, argv: list[str], *, tty: bool = False, user: str | None = None,
        workdir: str | None = None, env: Sequence[str] = (),
    ) -> base.ExecResult:
        created = self.api.exec_create(name_or_id, {
            "AttachStdin": False, "AttachStdout": True, "AttachStderr": True,
            "Tty": tty, "Cmd": list(argv), "User": user or "", "WorkingDir": workdir or "", "Env": list(env)})
        exec_id = str(created["Id"])
        out: dict[int, list[bytes]] = {1: [], 2: []}
        with self.api.exec_start(exec_id, tty=tty) as chunks:
            frames = ((1, c) for c in chunks) if tty else demux(chunks)
            for kind, payload in frames:
                out.setdefault(kind, []).append(payload)
        # The stream ends when the process exits; the exit code lands a moment later.
        deadline = time.monotonic() + 10.0
        info = self.api.exec_inspect(exec_id)
        while info.get("Running") and time.monotonic() < deadline:
            time.sleep(0.01)
            info = self.api.exec_inspect(exec_id)
        code = info.get("ExitCode")
        if code is None:
            raise errors.RuntimeBackendError(f"exec in {name_or_id}: the engine reported no exit code")
        return base.ExecResult(exit_code=int(code), stdout=b"".join(out[1]), stderr=b"".join(out[2]))

    # -- networks ---------------------------------------------------------------------------

    def list_networks(self, selector: Mapping[str, str] | None = None) -> list[base.NetworkState]:
        return [network_state(n) for n in self.api.network_list(selector)]

    def _network(self, name: str) -> dict[str, Any]:
        attrs = self.api.network_inspect(name)
        if attrs.get("Name") != name:   # the engine also matches ID prefixes
            raise errors.NotFound(f"{self.api.what}: network {name} not found")
        return attrs

    def ensure_network(self, config: base.NetworkConfig) -> base.NetworkState:
        try:
            return self._verify_network(config, self._network(config.name))
        except errors.NotFound:
            pass
        ipam: dict[str, Any] = {"Driver": "default", "Config": []}
        if config.subnet:
            pool: dict[str, str] = {"Subnet": config.subnet}
            if config.gateway:
                pool["Gateway"] = config.gateway
            ipam["Config"] = [pool]
        elif config.gateway:
            raise errors.InvalidArgument(f"network {config.name}: a gateway needs a subnet")
        if config.ipv6:         # with no IPv4 entry, Docker's pool still picks the IPv4 subnet
            ipam["Config"].append({"Subnet": config.ipv6_subnet or ula_subnet()})
        body = {"Name": config.name, "Driver": "bridge", "CheckDuplicate": True,
                "Internal": config.internal, "Attachable": True, "IPAM": ipam, "EnableIPv6": config.ipv6,
                "Labels": dict(config.labels),
                "Options": {"com.docker.network.driver.mtu": str(config.mtu)}}
        try:
            # Podman lists the host's interfaces and then their addresses to choose or check a
            # subnet; a link removed in between (another container's veth) fails the call with
            # Go's "route ip+net: no such network interface". Nothing was made.
            _asked_again(lambda: self.api.network_create(body), "no such network interface")
        except (errors.AlreadyExists, errors.Conflict):
            pass   # made meanwhile by someone else: verify below
        return self._verify_network(config, self._network(config.name))

    def _verify_network(self, config: base.NetworkConfig, attrs: Mapping[str, Any]) -> base.NetworkState:
        return verify_network(config, attrs, driver="bridge", cli=self.api.cli)

    def remove_network(self, name: str) -> None:
        self._network(name)
        self.api.network_remove(name)

    # -- volumes ----------------------------------------------------------------------------

    # -- archives (container import)

    def load_image_archive(self, src: IO[bytes]) -> list[str]:
        said = self.api.image_load(iter(lambda: src.read(1 << 20), b""))
        ids = []
        for line in said:
            name = line.removeprefix("Loaded image ID: ").removeprefix("Loaded image: ")
            ids.append(name if name.startswith("sha256:") else str(self.api.image_inspect(name)["Id"]))
        if not ids:
            raise errors.ImageError(f"{self.api.what} loaded no image from the archive")
        return ids

    def import_volume(self, name: str, src: IO[bytes], *, helper_image: str,
                      labels: Mapping[str, str] | None = None) -> None:
        """Create the volume and unpack `src` into it through a never-started helper container
        (the Engine API's archive upload writes into the volumes a container mounts)."""
        self.ensure_volume(base.VolumeConfig(name=name, labels=dict(labels or {})))
        root, head = _root_entry(src)
        helper = self.api.container_create(
            f"reconciler-volume-import-{secrets.token_hex(4)}",
            {"Image": helper_image, "Entrypoint": ["/nonexistent"], "Cmd": [], "NetworkDisabled": True,
             "HostConfig": {"Binds": [f"{name}:/_restore"], "NetworkMode": "none"}})
        try:
            rest = iter(lambda: src.read(1 << 20), b"")
            self.api.container_put_archive(helper["Id"], "/_restore", itertools.chain((head,), rest))
            if root is not None:
                # the engine skips an archive's `.` (moby's Unpack, and so the volume's own owner,
                # mode, times and xattrs): given as the mount point's entry, unpacked at `/`
                self.api.container_put_archive(helper["Id"], "/", iter((_renamed_root(root, "_restore"),)))
        finally:
            self.api.container_remove(helper["Id"], force=True)

    def list_volumes(self, selector: Mapping[str, str] | None = None) -> list[base.VolumeState]:
        return [volume_state(v) for v in self.api.volume_list(selector)]

    def ensure_volume(self, config: base.VolumeConfig) -> base.VolumeState:
        try:
            attrs = self.api.volume_inspect(config.name)
        except errors.NotFound:
            attrs = self.api.volume_create({"Name": config.name, "Driver": config.driver,
                                            "DriverOpts": dict(config.driver_opts), "Labels": dict(config.labels)})
        state = volume_state(attrs)
        missing = {k: v for k, v in config.labels.items() if state.labels.get(k) != v}
        if missing:
            raise errors.Conflict(
                f"volume {config.name} exists without labels {missing}",
                hint="volume labels cannot change: remove the volume or rename it")
        return state

    def remove_volume(self, name: str) -> None:
        self.api.volume_remove(name)


_ROOT_HEADER_MAX = 4 << 20     # the first entry's headers a volume archive may have (PAX xattrs)


def _root_entry(src: IO[bytes]) -> tuple[tarfile.TarInfo | None, bytes]:
    """The volume archive's root entry (`.`, first, as a volume export writes it) or None, and
    the bytes read to find it, which the upload sends first."""
    head = b""
    while len(head) < _ROOT_HEADER_MAX:
        more = src.read(64 << 10)
        head += more
        try:
            with tarfile.open(fileobj=io.BytesIO(head), mode="r:") as tar:
                first = tar.next()
        except (tarfile.TarError, EOFError):
            if more:
                continue            # the first entry's headers go on
            return None, head       # (the engine says what is wrong with the archive)
        return (first if first is not None and first.isdir() and first.name in (".", "./") else None), head
    return None, head


def _renamed_root(root: tarfile.TarInfo, name: str) -> bytes:
    """A one-entry tar: directory `name` with the owner, mode, time and xattrs of `root`."""
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = tarfile.DIRTYPE, root.mode, root.uid, root.gid, root.mtime
    info.pax_headers = {k: v for k, v in root.pax_headers.items() if k.startswith("SCHILY.xattr.")}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info)
    return buf.getvalue()


def _conforms(rt: DockerRuntime) -> tuple[base.Runtime, base.Renaming, base.Connecting, base.ArchiveTransfer, base.ImageBuilding,
                                         base.ImagePushing, base.Restarting, base.Inspecting, base.ProcessListing,
                                         base.Statistics, base.PathCopying, base.Sizing, base.Updating, base.ImageHistory]:
    """mypy checks here that the backend implements the protocol and its capabilities (dockerd
    supervises its containers itself; it builds and pushes the Images with build: and push:)."""
    return rt, rt, rt, rt, rt, rt, rt, rt, rt, rt, rt, rt, rt, rt
