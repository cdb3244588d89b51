"""`docker inspect`-shaped documents of container records (the CLI's `inspect`, the Engine API).

Reading only: imports the records, not the lifecycle, so `reconcile inspect` starts light.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from reconciler.runtime import base
from reconciler.runtime.native.containers import records, summaries
from reconciler.runtime.native.volumes import volumes

__all__ = ["document", "endpoint_names", "endpoint_networks", "host_config", "mount_points", "network_mode"]


def document(store: records.RecordStore, rec: records.Record) -> dict[str, Any]:
    """A `docker inspect`-shaped document of one container."""
    argv = rec.command_line()
    p = store.paths(rec.id)
    cfg = rec.config
    hc = records.effective_healthcheck(rec)
    observed = rec.state()          # the rules of paused and of a pending restart: records.Record
    state: dict[str, Any] = {
        "Status": "paused" if observed.paused else observed.status.value, "Running": rec.status == "running",
        "Paused": observed.paused, "Restarting": observed.status == base.ContainerStatus.RESTARTING,
        "OOMKilled": rec.oom_killed, "Dead": rec.status == "dead",
        "Pid": rec.pid if rec.status == "running" else 0,
        "ExitCode": rec.exit_code or 0, "Error": rec.error or "",
        "StartedAt": rec.started_at or "0001-01-01T00:00:00Z",
        "FinishedAt": rec.finished_at or "0001-01-01T00:00:00Z",
    }
    if observed.stale_binds:
        # reconciler's, beside Docker's keys: bind sources it no longer has mounted (deleted or
        # replaced since it started: runtime/binds.py), which a pass notes; a restart mounts them
        state["StaleBinds"] = list(observed.stale_binds)
    if hc is not None:
        # Stale (reconciler's, beside Docker's keys): no probe observed it lately (healthtimes.stale)
        state["Health"] = {"Status": observed.health or "starting", "FailingStreak": rec.health_failures,
                           "Log": [dict(x) for x in rec.health_log], "Stale": observed.health_stale}
    anonymous = volumes.anonymous(store.db, [m.source for m in cfg.mounts if m.type == "volume"])
    exposed = records.exposed_ports(cfg, rec.image_config, rec.exposed)     # Docker's merge: its, its image's
    return {
        "Id": rec.id,
        "Name": "/" + rec.name,
        "Created": rec.created,
        "Path": argv[0] if argv else "",
        "Args": argv[1:],
        "State": state,
        "Image": rec.image_id,
        "ImageRef": rec.image,
        "RestartCount": rec.restart_count,
        "Driver": "overlay2",          # dockerd's name for a multi-lower overlay: its GraphDriver.Data's keys
        "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",    # no SELinux label, no AppArmor profile
        "LogPath": str(p.log),
        "ResolvConfPath": str(p.dir / "resolv.conf"),
        "HostnamePath": str(p.dir / "hostname"),
        "HostsPath": str(p.dir / "hosts"),
        "Platform": "linux",
        "Mounts": mount_points(store.config.root, cfg.mounts),
        "GraphDriver": {"Name": "overlay2", "Data": {
            "LowerDir": ":".join(reversed(rec.lowerdirs)), "UpperDir": str(p.upper),
            "WorkDir": str(p.work), "MergedDir": str(p.rootfs)}},
        "Config": {
            "Hostname": rec.hostname, "Domainname": cfg.domainname or "",
            "User": cfg.user if cfg.user is not None else rec.image_config.get("User", ""),
            "Env": summaries.config_env(rec.image_config.get("Env"), cfg.env),     # as dockerd merges them
            # as dockerd merges them (summaries.argv_of): an entrypoint given drops the image's Cmd, and
            # an empty one (`--entrypoint ""`) is none
            "Cmd": list(cfg.args) if cfg.args is not None else (
                None if cfg.command is not None else rec.image_config.get("Cmd")),
            "Entrypoint": (list(cfg.command) or None) if cfg.command is not None else rec.image_config.get("Entrypoint"),
            "Image": rec.image,
            # its terminal and stdin (`-t`, `-i`; StdinOnce: base.ContainerConfig.stdin_once), as dockerd's
            "Tty": rec.terminal, "OpenStdin": rec.stdin, "StdinOnce": rec.config.stdin_once,
            "AttachStdin": False, "AttachStdout": True, "AttachStderr": True,
            # the image's VOLUMEs and the container's anonymous volumes (`docker run -v /data`), as dockerd merges them
            "Volumes": {**(rec.image_config.get("Volumes") or {}),
                        **{m.target: {} for m in cfg.mounts if m.type == "volume" and m.source in anonymous}} or None,
            "WorkingDir": cfg.workdir or rec.image_config.get("WorkingDir", ""),
            **({"ExposedPorts": {key: {} for key in exposed}} if exposed else {}),
            "Labels": dict(cfg.labels), "StopSignal": cfg.stop_signal or rec.image_config.get("StopSignal", "SIGTERM"),
            "StopTimeout": cfg.stop_timeout,
            "Healthcheck": None if hc is None else {"Test": list(hc.test), "Interval": int(hc.interval * 1e9),
                                                     "Timeout": int(hc.timeout * 1e9), "Retries": hc.retries,
                                                     "StartPeriod": int(hc.start_period * 1e9),
                                                     **({"StartInterval": int(hc.start_interval * 1e9)}
                                                        if hc.start_interval else {})},
        },
        "HostConfig": host_config(rec, anonymous),
        "NetworkSettings": {
            "Networks": _networks(rec),
            "Ports": _bindings(summaries.forwarded(rec.status, rec.published)),    # as forwarded now
            "SandboxKey": rec.netns_path or "",
        },
    }


def host_config(rec: records.Record, anonymous: Collection[str] = ()) -> dict[str, Any]:
    """Docker's HostConfig of a container: every key dockerd 20.10 always gives (API 1.41), in its
    order, the engine's values or dockerd's zero values where the engine has none (Windows', blkio
    and realtime ones), and the ones dockerd gives only when set (Tmpfs, Sysctls, Init).

    The engine keeps a container's mounts one way, whichever field of the create named them:
    `Binds` lists its bind and named volume mounts (`SRC:DST[:MODE]`), `Tmpfs` its tmpfs mounts,
    and its `anonymous` volumes (`docker run -v /data`) are Config.Volumes', as dockerd has them;
    `Mounts` (`docker run --mount`), which dockerd leaves out when empty, is not given."""
    cfg = rec.config
    res = cfg.resources
    binds = [":".join([m.source, m.target, *([_mode(m)] if _mode(m) else [])])
             for m in cfg.mounts if m.type == "bind" or (m.type == "volume" and m.source not in anonymous)]
    tmpfs = {m.target: ",".join(m.options) for m in cfg.mounts if m.type == "tmpfs"}
    host: dict[str, Any] = {
        "Binds": binds or None, "ContainerIDFile": "",
        # the engine keeps the output itself, as json-file (Docker's default) does
        "LogConfig": {"Type": cfg.log_driver or "json-file", "Config": dict(cfg.log_options)},
        "NetworkMode": network_mode(rec), "PortBindings": _bindings(cfg.ports),
        "RestartPolicy": {"Name": cfg.restart.name, "MaximumRetryCount": cfg.restart.max_retries},
        "AutoRemove": rec.auto_remove, "VolumeDriver": "", "VolumesFrom": None,
        "CapAdd": list(cfg.cap_add), "CapDrop": list(cfg.cap_drop),
        "CgroupnsMode": "host",                 # the engine's containers have no cgroup namespace
        "Dns": list(cfg.dns), "DnsOptions": list(cfg.dns_options), "DnsSearch": list(cfg.dns_search),
        "ExtraHosts": list(cfg.extra_hosts), "GroupAdd": list(cfg.group_add) or None,
        "IpcMode": "private", "Cgroup": "", "Links": None, "OomScoreAdj": cfg.oom_score_adj or 0, "PidMode": "",
        "Privileged": cfg.privileged, "PublishAllPorts": rec.publish_all, "ReadonlyRootfs": cfg.read_only,
        "SecurityOpt": ["no-new-privileges"] if cfg.no_new_privileges else None,
        **({"Tmpfs": tmpfs} if tmpfs else {}),
        "UTSMode": "", "UsernsMode": "",
        "ShmSize": cfg.shm_size or summaries.DEFAULT_SHM_SIZE,
        **({"Sysctls": dict(cfg.sysctls)} if cfg.sysctls else {}),
        "Runtime": rec.runtime, "ConsoleSize": [0, 0], "Isolation": "",
        "CpuShares": res.cpu_shares or 0, "Memory": res.memory or 0, "NanoCpus": int((res.cpus or 0) * 1e9),
        "CgroupParent": "", "BlkioWeight": res.blkio_weight or 0, "BlkioWeightDevice": [], "BlkioDeviceReadBps": [],
        "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [],
        "CpuPeriod": res.cpu_period or 0, "CpuQuota": res.cpu_quota or 0, "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0, "CpusetCpus": res.cpuset or "", "CpusetMems": res.cpuset_mems or "",
        "Devices": [dict(zip(("PathOnHost", "PathInContainer", "CgroupPermissions"), d.split(":"), strict=True))
                    for d in cfg.devices],
        "DeviceCgroupRules": None, "DeviceRequests": None, "KernelMemory": 0, "KernelMemoryTCP": 0,
        "MemoryReservation": res.memory_reservation or 0,
        # what the engine applies: no swap beyond a memory limit unless one is given (dockerd's
        # default is twice the memory)
        "MemorySwap": res.memory_swap if res.memory_swap is not None else res.memory or 0,
        "MemorySwappiness": None, "OomKillDisable": False, "PidsLimit": res.pids,
        "Ulimits": [{"Name": u.name, "Hard": u.hard, "Soft": u.soft} for u in cfg.ulimits],
        "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
        # a privileged container's are none, as dockerd's
        "MaskedPaths": None if cfg.privileged else list(summaries.MASKED_PATHS),
        "ReadonlyPaths": None if cfg.privileged else list(summaries.READONLY_PATHS),
        **({"Init": True} if cfg.init else {}),
    }
    return host


def mount_points(root: Path, mounts: Iterable[base.Mount]) -> list[dict[str, Any]]:
    """Docker's MountPoints of a container's mounts (inspect's and the list's `Mounts`): a volume's
    name, data directory (volumes.data_dir) and driver, a bind's source; `Mode` its mode as `Binds`
    has it; bind `Propagation` the one the engine mounts with (rprivate). Its tmpfs mounts are
    HostConfig.Tmpfs', as dockerd lists `--tmpfs` ones (host_config). Strings joined, not Paths:
    the list makes these for every container it shows."""
    out: list[dict[str, Any]] = []
    where = _volumes_dir(root)
    for m in mounts:
        rw = not m.read_only
        if m.type == "volume":
            out.append({"Type": "volume", "Name": m.source, "Source": f"{where}/{m.source}/_data",
                        "Destination": m.target, "Driver": "local", "Mode": _mode(m), "RW": rw, "Propagation": ""})
        elif m.type == "bind":
            out.append({"Type": "bind", "Source": m.source, "Destination": m.target, "Mode": _mode(m), "RW": rw,
                        "Propagation": "rprivate"})
    return out


@functools.lru_cache(maxsize=8)
def _volumes_dir(root: Path) -> str:
    """Where the volumes of the engine with state root `root` are (volumes.data_dir's parent's parent)."""
    return os.fspath(volumes.data_dir(root, "_").parent.parent)


def _mode(m: base.Mount) -> str:
    """A bind or volume mount's mode as `docker run -v` writes it: `ro`, then its options (nocopy,
    propagation)."""
    if m.type not in ("bind", "volume"):
        return ""
    return ",".join([*(["ro"] if m.read_only else []), *m.options])


def network_mode(rec: records.Record) -> str:
    """Docker's HostConfig.NetworkMode of a container: "host", "none" (no namespace of its own),
    "container:ID" (the container it joins, by the full id its create resolved: `_joining`), else the network it was created on: its first (the one a connect does not
    change), "default" for the default network, as Docker's for a container created without one
    (also once disconnected from every network: Docker's mode stays what it was created with)."""
    nets = rec.config.networks
    if nets == ("host",) or (nets[:1] and nets[0].startswith("container:")):
        return nets[0]
    if not rec.netns_path:
        return "none"
    return nets[0] if nets and nets[0] not in ("none", "default") else "default"   # (network.DEFAULT_NETWORK)


def _bindings(ports: Iterable[base.PortMapping]) -> dict[str, list[dict[str, str]]]:
    """Docker's shape of published ports: each "port/protocol" with the list of its host bindings
    (one container port may be published on several host ports and addresses). A host port 0
    (the engine chooses one) is "", as in Docker's PortBindings."""
    out: dict[str, list[dict[str, str]]] = {}
    for pm in ports:
        out.setdefault(f"{pm.container_port}/{pm.protocol}", []).append(
            {"HostIp": pm.host_ip, "HostPort": str(pm.host_port) if pm.host_port else ""})
    return out


def _networks(rec: records.Record) -> dict[str, dict[str, Any]]:
    """Docker's NetworkSettings.Networks: each endpoint's addresses, its interface's MAC address
    and link-local addresses as the kernel has them now (the interface that holds the endpoint's
    address, in the container's namespace; the ones asked for when the namespace is gone, as
    after a reboot until the next start), and its gateway priority."""
    # (here: socket is not for a pass that only reads, whose engine imports this module)
    from reconciler.runtime.native.network import interfaces

    found = interfaces.interfaces(os.fspath(rec.netns_path)) if rec.netns_path and rec.ip_addresses else {}
    by_address = {ip: iface for iface in found.values() for ip in iface["ipv4"]}
    out: dict[str, dict[str, Any]] = {}
    cfg = rec.config
    for n in endpoint_networks(rec):
        ip = rec.ip_addresses.get(n, "")
        iface = by_address.get(ip) if ip else None
        if iface is None:
            mac, local = cfg.mac_addresses.get(n, ""), list(cfg.link_local_ips.get(n) or ())
        else:
            mac, local = str(iface["mac"]), _link_local(iface)
        ipam = _fixed(cfg, n)
        if local:
            ipam = {**(ipam or {}), "LinkLocalIPs": local}
        aliases, dns_names = endpoint_names(rec, n)
        out[n] = {"IPAddress": ip, "GlobalIPv6Address": rec.ip6_addresses.get(n, ""), "IPAMConfig": ipam,
                  "MacAddress": mac, "GwPriority": int(cfg.gw_priorities.get(n) or 0),
                  "Aliases": aliases, "DNSNames": dns_names}
    return out


def endpoint_networks(rec: records.Record) -> list[str]:
    """The networks inspect shows an endpoint of: those the container is on (`Record.attached_networks`,
    a network a connect or disconnect of a stopped one changed too, before its start attaches it
    there: its address "" until then, as dockerd's), then any other its record holds an address on."""
    return list(dict.fromkeys((*rec.attached_networks(), *rec.ip_addresses)))


def endpoint_names(rec: records.Record, network: str) -> tuple[list[str] | None, list[str] | None]:
    """An endpoint's `Aliases` and `DNSNames` as dockerd 28 keeps them (API 1.45 on): on a
    user-defined network the aliases given, the container's (a manifest's or compose's `aliases`:
    on each of its networks) then the endpoint's own (`network connect --alias`, `--network-alias`,
    `EndpointsConfig.Aliases`), null when none; its DNS names, the names its peers there resolve
    (`dns.peer_names`: its name, those aliases, its short id, its host name). Both null on the
    default network, which has no names of its own. The Engine API adds the short id and host name
    to the aliases, as dockerd does for a client older than 1.45 (`api/engine.py` `endpoint_settings_of`)."""
    from reconciler.runtime.native.network import dns

    if network == dns.DEFAULT_NETWORK:
        return None, None
    given = list(dict.fromkeys((*rec.config.aliases, *rec.config.network_aliases.get(network, ()))))
    return given or None, list(dns.peer_names(rec.name, given, rec.id, rec.hostname))


def _link_local(iface: dict[str, Any]) -> list[str]:
    """The link-local addresses of an interface but the kernel's own fe80:: one (the engine adds
    its own without duplicate address detection: flag NODAD)."""
    from reconciler.runtime.native.network import interfaces

    return ([a for a in iface["ipv4"] if a.startswith("169.254.")]
            + [a for a, scope, flags in iface["ipv6"] if scope == interfaces.LINK_SCOPE and flags & interfaces.NODAD])


def _fixed(cfg: base.ContainerConfig, network: str) -> dict[str, Any] | None:
    """Docker's IPAMConfig of an endpoint: the fixed addresses the container asked for there."""
    fixed: dict[str, Any] = {key: by[network] for key, by in (("IPv4Address", cfg.ipv4_addresses),
                                                              ("IPv6Address", cfg.ipv6_addresses)) if network in by}
    return fixed or None
