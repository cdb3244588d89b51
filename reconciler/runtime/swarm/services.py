"""A `ContainerConfig` as a Swarm service, and a service (with its tasks) as a `ContainerState`.

Pure translation, no I/O: `service_spec` is the `ServiceSpec` body of `POST /services/create`
and `/services/{id}/update`, `refusals` says what of a config a cluster cannot run, and
`service_state` reads a service and its tasks back. The mapping, field by field, is the table
in docs/swarm.md; where Swarm has no equivalent the choice is noted here:

- the ownership labels go on the service only; the task containers carry the user's labels
  (the revision label on every container would restart all copies at a mere scale);
- `restart: no` is Swarm's `none` (a copy that exits stays down), `always` and
  `unless-stopped` are `any` (a service cannot be stopped by hand);
- ports are published in host mode (each copy on its own node, as on one host), or with
  `mode: ingress` on Swarm's routing mesh (which needs the service's virtual IP: `endpointMode:
  dnsrr` is refused with it); a service has a virtual IP (`vip`) unless `endpointMode` says
  dnsrr, as `docker stack deploy` makes it;
  `update.order: start-first` falls back to stop-first when a port is published (a new copy
  could not bind it beside the old one, as on one host);
- a secret file (`spec.secrets`) is a Swarm secret, named by `secret_name` (the backend makes
  it; `service_spec` is given the ids);
- `update.minReady` is Swarm's update monitor (0: Swarm's 5 s); a failed update is rolled
  back (`onFailure: rollback`, FailureAction rollback), paused or continued; `update`'s
  parallelism, delay and failure ratio and `rollback` (RollbackConfig) as docker stack deploy
  maps compose's update_config and rollback_config;
- the service's own settings, which the spec hash leaves out (its labels that its copies do not
  carry: `serviceLabels`, compose's deploy.labels; its update and rollback configs; its endpoint
  mode; its restart delay and window), are compared with the service's own each pass: `settings`
  makes them of a config, `settings_of` reads them from a ServiceSpec, one normal form for both;
- a job (`job: true`) is a replicated job (`Mode.ReplicatedJob`, Engine API 1.41): its copies
  run to completion one at a time (`MaxConcurrent` 1: with more at once, Swarm starts the copies
  of a failing job again and again, whatever its restart policy), with no update or rollback
  config (Swarm refuses one for a job); a change runs it again (Swarm's next job iteration).
  `job_run` says where the current run stands: completed, failed (a copy failed or was
  rejected and Swarm runs none again), or running;
- `shmSize` is a tmpfs mount at /dev/shm of that size (a ContainerSpec has no ShmSize; Docker
  mounts a tmpfs the spec names there instead of its own), and `domainname` the UTS namespace's
  kernel.domainname sysctl (a ContainerSpec has no Domainname), as the Docker backend sets it;
- a field Swarm took on in a later Engine API (`SINCE`) is refused where the manager speaks an
  older one (a manager drops what its version does not know without a word), and a spec that
  sets one is sent at that version (`request_version`), above the one the client negotiated;
- what a service cannot have at all (a CPU weight or set, a soft memory limit of its own) is
  refused, each naming the field; `memoryReservation` equal to `reservations.memory` (compose's
  `deploy.resources.reservations.memory` sets both) is the scheduler's reservation, as `docker
  stack deploy` makes it.

Every field of a `ContainerConfig` is either in the spec or refused (tests/swarm/test_mapping.py
enumerates them: a new field fails it until it is mapped here or refused).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from reconciler._dataclass import dataclass
from reconciler.runtime import base, errors

__all__ = [
    "LABEL_PREFIX",
    "SINCE",
    "UNFINISHED",
    "JobRun",
    "current_run",
    "job_run",
    "pinned_node",
    "placement",
    "refusals",
    "request_version",
    "running_by_slot",
    "running_tasks",
    "secret_name",
    "secret_refs",
    "service_spec",
    "service_state",
    "settings",
    "settings_of",
    "stop_grace",
    "task_error",
    "timestamp",
    "wanted_replicas",
]

LABEL_PREFIX = "reconciler."           # ownership labels: on the service, never on its containers
_NS = 1_000_000_000
_RESTART = {"no": "none", "on-failure": "on-failure", "always": "any", "unless-stopped": "any"}
_WILDCARDS = ("0.0.0.0", "::", "")  # noqa: S104 - Docker's "every address"
_SPECIAL_NETWORKS = ("host", "none")
_PIN = re.compile(r"\s*node\.(?:hostname|id)\s*==\s*(\S+)\s*")
_BLAMED = re.compile(r"\btask ([a-z0-9]{25})\b")
_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)")
_SHM = "/dev/shm"
_DOMAINNAME = "kernel.domainname"

# The manifest fields a Swarm service honours only from an Engine API version on (moby's
# api/server/router/swarm/helpers.go drops them from a request of an older version, and an
# older manager does not know them), with the Docker release that brought the version:
# field -> (is it set in the config, API version, Docker version). The older ones (Sysctls: 1.40)
# every manager the client accepts (docker/api.py MIN_API_VERSION) has.
SINCE: dict[str, tuple[Callable[[base.ContainerConfig], bool], str, str]] = {
    "spec.capAdd": (lambda c: bool(c.cap_add), "1.41", "20.10"),
    "spec.capDrop": (lambda c: bool(c.cap_drop), "1.41", "20.10"),
    "spec.resources.pids": (lambda c: c.resources.pids is not None, "1.41", "20.10"),
    "spec.ulimits": (lambda c: bool(c.ulimits), "1.41", "20.10"),
    "spec.noNewPrivileges": (lambda c: c.no_new_privileges, "1.44", "25.0"),
    "spec.healthcheck.startInterval": (lambda c: c.healthcheck is not None and c.healthcheck.start_interval > 0,
                                       "1.44", "25.0"),
    "spec.oomScoreAdj": (lambda c: c.oom_score_adj is not None, "1.46", "27.0"),
    "spec.resources.memorySwap": (lambda c: c.resources.memory_swap is not None, "1.52", "29.0"),
}


def _ns(seconds: float) -> int:
    return round(seconds * _NS)


def pinned_node(constraints: Sequence[str]) -> str | None:
    """The node a service's constraints pin it to (`node.hostname==H` or `node.id==I`), if any."""
    for c in constraints:
        m = _PIN.fullmatch(c)
        if m is not None:
            return m.group(1)
    return None


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text))


def request_version(config: base.ContainerConfig, spoken: str) -> str | None:
    """The Engine API version to send `config`'s spec at when the client speaks `spoken`: None
    (the negotiated one) unless a field it sets came later (`SINCE`), then the newest of those
    (refusals have checked that the manager speaks it)."""
    needed = max((since for is_set, since, _ in SINCE.values() if is_set(config)), key=_version, default=None)
    return needed if needed is not None and _version(needed) > _version(spoken) else None


def refusals(config: base.ContainerConfig, *, api_version: str) -> list[str]:
    """What in `config` a Swarm service cannot have, as "FIELD: why" in manifest terms, for a
    manager that speaks Engine API `api_version`: what only makes sense on one host, what no
    service has, and what its version does not know."""
    out: list[str] = []
    pinned = pinned_node(config.constraints)
    for i, m in enumerate(config.mounts):
        if m.type == "bind" and pinned is None:
            out.append(f"spec.volumes[{i}]: {m.source}:{m.target} is a host bind mount, but a service's "
                       "copies run on any node of the cluster; use a named Volume, or pin the service to "
                       "one node (spec.placement.constraints: [node.hostname==NODE])")
        elif m.type == "bind" and m.relative:
            out.append(f"spec.volumes[{i}]: {m.source}:{m.target} is named relative to the manifests, a path "
                       f"where reconciler runs, not on node {pinned}; write the absolute path on that node")
    for i, p in enumerate(config.ports):
        if p.host_ip not in _WILDCARDS:
            out.append(f"spec.ports[{i}]: a service publishes on every address of its node, not on "
                       f"{p.host_ip} alone; write {p.host_port}:{p.container_port}/{p.protocol}")
    if config.image_id is not None:         # (a rollback's pin; a cluster rolls a service back itself)
        out.append(f"image: a Swarm service's tasks pull their image by its reference on their nodes, not by the "
                   f"id {config.image_id[:19]} one host holds; name it by its digest (NAME@sha256:...)")
    if config.stdin_once:       # (a CLI's `run -i`/`create -i` alone sets it: no manifest field has it)
        out.append("stdin_once: a Swarm service's stdin is not closed by the attach that sends it (Docker's "
                   "StdinOnce); make it without StdinOnce (run -d -i)")
    if config.privileged:
        out.append("spec.privileged: a Swarm service cannot be privileged; name the capabilities it needs "
                   "(capAdd), or run it with a single-host agent")
    for i, d in enumerate(config.devices):
        out.append(f"spec.devices[{i}]: a Swarm service cannot have a host device ({d.split(':')[0]}); run it "
                   "with a single-host agent on the host that has the device")
    for i, net in enumerate(config.networks):
        if net in config.ipv4_addresses or net in config.ipv6_addresses:
            out.append(f"spec.networks[{i}]: a Swarm service's tasks get their addresses from Swarm, not a fixed "
                       "one; remove ipv4Address/ipv6Address, or run it with a single-host agent")
        own = [key for key, by in (("macAddress", config.mac_addresses), ("linkLocalIPs", config.link_local_ips),
                                   ("gwPriority", config.gw_priorities)) if by.get(net)]
        if own:
            out.append(f"spec.networks[{i}]: a Swarm service's network attachment ({net}) has no "
                       f"{'/'.join(own)}: its tasks' interfaces are Swarm's; remove {'/'.join(own)}, or run it with a "
                       "single-host agent")
    ingress = [i for i, p in enumerate(config.ports) if p.ingress]
    if config.endpoint_mode == "dnsrr" and ingress:
        out.append(f"spec.endpointMode: dnsrr gives the service no virtual IP, which Swarm's routing mesh needs for "
                   f"spec.ports[{ingress[0]}] (mode: ingress); use vip, or publish the port in host mode")
    if config.job and config.global_mode:
        out.append("spec.replicas: a job on every node (replicas: global) is not run on Swarm yet; give replicas a "
                   "number (its copies run one after another), or run it with a single-host agent")
    out += _unhonoured(config)
    for field, (is_set, since, docker) in SINCE.items():
        if is_set(config) and _version(api_version) < _version(since):
            out.append(f"{field}: the Swarm manager speaks Engine API {api_version}, and a service takes this field "
                       f"from API {since} (Docker {docker}) on; upgrade the cluster to Docker {docker} or later, "
                       "or run it with a single-host agent")
    return out


def offline_refusals(config: base.ContainerConfig) -> list[str]:
    """`refusals` that hold whatever Engine API version the manager speaks (`validate --runtime
    swarm` knows no manager): every one but a field's version."""
    newest = max((since for _, since, _ in SINCE.values()), key=_version)
    return refusals(config, api_version=newest)


def _unhonoured(config: base.ContainerConfig) -> list[str]:
    """The fields a Swarm service has no equivalent of, in any version."""
    out: list[str] = []
    res, reserve = config.resources, config.reservations
    if res.cpu_shares is not None:
        out.append("spec.resources.cpuShares: a Swarm service has no CPU weight; limit it with resources.cpus, "
                   "reserve CPUs on its node with resources.reservations.cpus, or run it with a single-host agent")
    if res.cpuset is not None:
        out.append("spec.resources.cpuset: a Swarm service cannot be pinned to CPUs (a node's CPUs are not "
                   "another's); limit it with resources.cpus, or run it with a single-host agent")
    # what `docker update`/`create` may give a container (the Engine API's), no Swarm service has
    for name, field_, what in (("cpu_period", "cpuPeriod", "CFS period"), ("cpu_quota", "cpuQuota", "CFS quota"),
                               ("cpuset_mems", "cpusetMems", "memory nodes to pin to"),
                               ("blkio_weight", "blkioWeight", "block I/O weight")):
        if getattr(res, name) is not None:
            out.append(f"spec.resources.{field_}: a Swarm service has no {what}; limit its CPUs with resources.cpus, "
                       "or run it with a single-host agent")
    if res.memory_reservation is not None and res.memory_reservation != reserve.memory:
        out.append("spec.resources.memoryReservation: a Swarm service has no soft memory limit; "
                   "resources.reservations.memory keeps that much free on its node (the scheduler's reservation), "
                   "or run it with a single-host agent")
    for name in ("pids", "memory_reservation", "cpu_shares", "cpuset", "memory_swap", "cpu_period", "cpu_quota",
                 "cpuset_mems", "blkio_weight"):
        if getattr(reserve, name) is not None:     # (translate sets memory and cpus only)
            out.append(f"spec.resources.reservations: Swarm reserves memory and cpus, not {name}")
    if config.shm_size is not None:
        for i, m in enumerate(config.mounts):
            if m.target.rstrip("/") == _SHM:
                out.append(f"spec.shmSize: spec.volumes[{i}] mounts {_SHM} already, and on Swarm shmSize is a tmpfs "
                           "mounted there; give that tmpfs the size, or remove one of them")
    if config.domainname is not None and config.sysctls.get(_DOMAINNAME, config.domainname) != config.domainname:
        out.append(f"spec.domainname: spec.sysctls sets {_DOMAINNAME} to another name; keep one of them")
    if config.links:            # (the Engine API's, never a manifest's)
        out.append("links: a Swarm service has no legacy links; its tasks reach the services on their networks by "
                   "service name and aliases")
    return out


def _option(m: base.Mount, key: str, default: str) -> str:
    for o in m.options:
        k, _, value = o.partition("=")
        if k == key:
            return value
    return default


def secret_name(service: str, m: base.Mount) -> str:
    """The Swarm secret holding secret file `m` of `service`: named by the file's digest (of a
    sops-encrypted one, the keyed digest of its values, never a plain hash of the decrypted content:
    that would give a short value away) and the target, so a changed file is a new secret and
    the service an update (a Swarm secret is immutable)."""
    key = hashlib.sha256(f"{m.target}\0{_option(m, 'digest', '')}".encode()).hexdigest()[:20]
    return f"{service[:40]}-{key}"


def secret_refs(config: base.ContainerConfig, ids: Mapping[str, str]) -> list[dict[str, Any]]:
    """`ContainerSpec.Secrets` for `config`'s secret files, given each secret's id by name."""
    out = []
    for m in config.mounts:
        if m.type != "secret":
            continue
        name = secret_name(config.name, m)
        out.append({"SecretID": ids[name], "SecretName": name,
                    "File": {"Name": m.target, "UID": _option(m, "uid", "0"), "GID": _option(m, "gid", "0"),
                             "Mode": int(_option(m, "mode", "0400"), 8)}})
    return out


def _mount(m: base.Mount, drivers: Mapping[str, tuple[str, Mapping[str, str]]]) -> dict[str, Any]:
    out: dict[str, Any] = {"Type": m.type, "Target": m.target, "ReadOnly": m.read_only}
    if m.type == "volume":
        if m.source:            # none: an anonymous volume, each task's own
            out["Source"] = m.source
        driver, driver_opts = drivers.get(m.source, ("local", {}))
        if driver != "local" or driver_opts:    # each node makes the volume so where a copy first mounts it
            out["VolumeOptions"] = {"DriverConfig": {"Name": driver, "Options": dict(driver_opts)}}
    elif m.type == "bind":         # (refusals allow it only where the service is pinned to one node)
        out["Source"] = m.source
    elif m.type == "tmpfs":
        opts: dict[str, Any] = {}
        for o in m.options:
            key, _, value = o.partition("=")
            if key == "mode":
                opts["Mode"] = int(value, 8)
            elif key == "size":
                opts["SizeBytes"] = _size(value)
        if opts:
            out["TmpfsOptions"] = opts
    else:
        raise errors.InvalidArgument(f"service {m.target}: mount type {m.type!r} cannot run on a cluster",
                                     hint="use a named volume or tmpfs")
    return out


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().removesuffix("b")
    if t and t[-1] in units:
        return int(t[:-1]) * units[t[-1]]
    return int(t)


def _networks(config: base.ContainerConfig) -> list[dict[str, Any]]:
    if config.aliases and (not config.networks or config.networks[0] in _SPECIAL_NETWORKS):
        raise errors.InvalidArgument(f"service {config.name}: aliases need an overlay network",
                                     hint="add the container to a Network object")
    out = []
    for n in config.networks:
        # the aliases on every network, and those of this attachment alone (an endpoint's own)
        aliases = [] if n in _SPECIAL_NETWORKS else list(dict.fromkeys((*config.aliases,
                                                                        *config.network_aliases.get(n, ()))))
        out.append({"Target": n, **({"Aliases": aliases} if aliases else {})})
    return out


def _container_spec(
    config: base.ContainerConfig, secret_ids: Mapping[str, str], drivers: Mapping[str, tuple[str, Mapping[str, str]]],
) -> dict[str, Any]:
    if config.secret_env:
        raise errors.InvalidArgument(
            f"service {config.name}: env {', '.join(sorted(config.secret_env))} came from a SOPS-encrypted env "
            "file; a service's environment is in its spec on every manager and in each task's container record",
            hint="put the value in a secret file (spec.secrets): it becomes a Swarm secret, mounted from a tmpfs")
    spec: dict[str, Any] = {
        "Image": config.image,
        "Labels": _task_labels(config),
        "Env": [f"{k}={v}" for k, v in config.env.items()],
        "StopGracePeriod": _ns(config.stop_timeout),
        "ReadOnly": config.read_only,
        "Init": config.init,
    }
    for key, value in (("Command", config.command), ("Args", config.args)):
        if value is not None:
            spec[key] = list(value)
    for key, text in (("User", config.user), ("Dir", config.workdir), ("Hostname", config.hostname),
                      ("StopSignal", config.stop_signal)):
        if text is not None:
            spec[key] = text
    mounts = [_mount(m, drivers) for m in config.mounts if m.type != "secret"]
    if config.shm_size is not None:     # Docker's /dev/shm: a tmpfs, mode 1777
        mounts.append({"Type": "tmpfs", "Target": _SHM, "ReadOnly": False,
                       "TmpfsOptions": {"SizeBytes": config.shm_size, "Mode": 0o1777}})
    if mounts:
        spec["Mounts"] = mounts
    secrets = secret_refs(config, secret_ids)
    if secrets:
        spec["Secrets"] = secrets
    if config.healthcheck is not None:
        hc = config.healthcheck
        spec["Healthcheck"] = {"Test": list(hc.test), "Interval": _ns(hc.interval), "Timeout": _ns(hc.timeout),
                               "Retries": hc.retries, "StartPeriod": _ns(hc.start_period),
                               **({"StartInterval": _ns(hc.start_interval)} if hc.start_interval else {})}
    if config.cap_add:
        spec["CapabilityAdd"] = list(config.cap_add)
    if config.cap_drop:
        spec["CapabilityDrop"] = list(config.cap_drop)
    spec.update(_host_settings(config))
    return spec


def _host_settings(config: base.ContainerConfig) -> dict[str, Any]:
    """The ContainerSpec fields of what `docker run` sets in HostConfig (and -t, -i)."""
    out: dict[str, Any] = {}
    sysctls = dict(config.sysctls)
    if config.domainname is not None:
        sysctls.setdefault(_DOMAINNAME, config.domainname)
    if sysctls:
        out["Sysctls"] = sysctls
    if config.ulimits:
        out["Ulimits"] = [{"Name": u.name, "Soft": u.soft, "Hard": u.hard} for u in config.ulimits]
    if config.extra_hosts:          # hosts(5) lines, "ADDRESS NAME", where the manifest has NAME:ADDRESS
        out["Hosts"] = [f"{address} {name}" for name, _, address in (h.partition(":") for h in config.extra_hosts)]
    dns = {key: list(values) for key, values in (("Nameservers", config.dns), ("Search", config.dns_search),
                                                 ("Options", config.dns_options)) if values}
    if dns:
        out["DNSConfig"] = dns
    if config.tty:
        out["TTY"] = True
    if config.stdin_open:
        out["OpenStdin"] = True
    if config.group_add:
        out["Groups"] = list(config.group_add)
    if config.no_new_privileges:
        out["Privileges"] = {"NoNewPrivileges": True}
    if config.oom_score_adj is not None:
        out["OomScoreAdj"] = config.oom_score_adj
    return out


def _update_config(config: base.ContainerConfig, *, rollback: bool) -> dict[str, Any]:
    """UpdateConfig (RollbackConfig) from `update` (`rollback`; without one: update's order and
    monitor, one copy at a time, failing to pause), as docker stack deploy maps update_config
    and rollback_config; start-first falls back to stop-first while a port is published in host
    mode (a new copy could not bind it beside the old one)."""
    u = config.update if not rollback else config.rollback or base.UpdateConfig(
        order=config.update.order, on_failure="pause", monitor=config.update.monitor)
    order = u.order
    if any(p.host_port and not p.ingress for p in config.ports):
        order = "stop-first"
    out: dict[str, Any] = {"Parallelism": u.parallelism, "Order": order, "MaxFailureRatio": u.max_failure_ratio,
                           "FailureAction": u.on_failure}
    if u.delay > 0:
        out["Delay"] = _ns(u.delay)
    if u.monitor > 0:
        out["Monitor"] = _ns(u.monitor)
    return out


def _endpoint_mode(config: base.ContainerConfig) -> str:
    """The manifest's `endpointMode`; else vip, Swarm's own default and `docker stack deploy`'s
    (the service's name is a virtual IP that spreads connections over its copies; dnsrr, DNS
    round robin over the copies' addresses, is asked for by name)."""
    return config.endpoint_mode or "vip"


def _restart_policy(config: base.ContainerConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"Condition": _RESTART.get(config.restart.name, "none")}
    if config.restart.name == "on-failure" and config.restart.max_retries:
        out["MaxAttempts"] = config.restart.max_retries
    if config.restart.delay is not None:
        out["Delay"] = _ns(config.restart.delay)
    if config.restart.window is not None:
        out["Window"] = _ns(config.restart.window)
    return out


def _service_level(config: base.ContainerConfig) -> dict[str, Any]:
    """The parts of `config`'s ServiceSpec that `settings_of` compares (its labels, the task's
    labels and restart policy, the rolling update and rollback, the endpoint mode)."""
    out: dict[str, Any] = {
        "Labels": {**config.labels, **config.service_labels},
        "TaskTemplate": {"ContainerSpec": {"Labels": _task_labels(config)}, "RestartPolicy": _restart_policy(config)},
        "EndpointSpec": {"Mode": _endpoint_mode(config)},
    }
    if not config.job:      # Swarm refuses an update config for a job (no rolling update)
        out["UpdateConfig"] = _update_config(config, rollback=False)
        out["RollbackConfig"] = _update_config(config, rollback=True)
    return out


def _task_labels(config: base.ContainerConfig) -> dict[str, str]:
    return {k: v for k, v in config.labels.items() if not k.startswith(LABEL_PREFIX)}


def settings(config: base.ContainerConfig) -> dict[str, Any]:
    """What `config` makes of a service's own settings, as `settings_of` reads them back from
    the service: where they differ, the service is updated in place (the spec hash leaves them
    out: they change nothing on one host)."""
    return settings_of(_service_level(config))


def settings_of(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A ServiceSpec's own settings, beside its copies' task: its labels that its copies do not
    carry (the manifest's serviceLabels: compose's deploy.labels), its rolling update and
    rollback (UpdateConfig, RollbackConfig), endpoint mode and restart delay and window, each
    under the name a cause shows. Reconciler's labels are left out (the spec hash and revision
    are compared on their own)."""
    task = spec.get("TaskTemplate") or {}
    restart = task.get("RestartPolicy") or {}
    theirs = ((task.get("ContainerSpec") or {}).get("Labels")) or {}
    return {
        "labels": {str(k): str(v) for k, v in sorted((spec.get("Labels") or {}).items())
                   if not str(k).startswith(LABEL_PREFIX) and theirs.get(k) != v},
        "update": _rollout_of(spec.get("UpdateConfig")),
        "rollback": _rollout_of(spec.get("RollbackConfig")),
        "endpoint-mode": str((spec.get("EndpointSpec") or {}).get("Mode") or "vip"),
        "restart-delay": _seconds(restart.get("Delay")),
        "restart-window": _seconds(restart.get("Window")),
    }


def _seconds(ns: Any) -> float | None:
    return None if ns is None else int(ns) / _NS


def _rollout_of(c: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not c:
        return None
    return {"parallelism": int(c.get("Parallelism") or 0), "delay": _seconds(c.get("Delay") or 0),
            "failure-action": str(c.get("FailureAction") or "pause"), "monitor": _seconds(c.get("Monitor") or 0),
            "max-failure-ratio": float(c.get("MaxFailureRatio") or 0), "order": str(c.get("Order") or "stop-first")}


def service_spec(
    config: base.ContainerConfig, secret_ids: Mapping[str, str] | None = None,
    drivers: Mapping[str, tuple[str, Mapping[str, str]]] | None = None,
) -> dict[str, Any]:
    """The ServiceSpec of `config` (refusals are checked by the caller; see `refusals`);
    `secret_ids`: the id of each Swarm secret its secret files are in, by `secret_name`;
    `drivers`: (driver, options) of the volumes it mounts, by name (default: local, none)."""
    if config.replicas < 0:
        raise errors.InvalidArgument(f"service {config.name}: replicas {config.replicas} is below 0")
    limits: dict[str, Any] = {}
    if config.resources.memory is not None:
        limits["MemoryBytes"] = config.resources.memory
    if config.resources.cpus is not None:
        limits["NanoCPUs"] = _ns(config.resources.cpus)
    if config.resources.pids is not None:
        limits["Pids"] = config.resources.pids
    reserve: dict[str, Any] = {}
    if config.reservations.memory is not None:
        reserve["MemoryBytes"] = config.reservations.memory
    if config.reservations.cpus is not None:
        reserve["NanoCPUs"] = _ns(config.reservations.cpus)
    swap = config.resources.memory_swap
    resources: dict[str, Any] = {"Limits": limits, **({"Reservations": reserve} if reserve else {})}
    if swap is not None:            # Swarm's SwapBytes is the swap alone; memorySwap counts memory plus swap
        resources["SwapBytes"] = -1 if swap == -1 else max(0, swap - (config.resources.memory or 0))
    ports = []
    for p in config.ports:
        if p.protocol not in ("tcp", "udp", "sctp"):
            raise errors.InvalidArgument(f"service {config.name}: port protocol {p.protocol!r} is not tcp or udp")
        ports.append({"Protocol": p.protocol, "TargetPort": p.container_port, "PublishedPort": p.host_port,
                      "PublishMode": "ingress" if p.ingress else "host"})
    level = _service_level(config)
    task: dict[str, Any] = {"ContainerSpec": _container_spec(config, secret_ids or {}, drivers or {}),
                            "RestartPolicy": level["TaskTemplate"]["RestartPolicy"], "Resources": resources}
    if config.networks:
        task["Networks"] = _networks(config)
    if config.log_driver or config.log_options:     # Swarm's TaskTemplate.LogDriver (docker stack deploy's)
        task["LogDriver"] = {"Name": config.log_driver or "", "Options": dict(config.log_options)}
    if config.constraints or config.spread:
        task["Placement"] = {"Constraints": list(config.constraints),
                             "Preferences": [{"Spread": {"SpreadDescriptor": s}} for s in config.spread]}
    out: dict[str, Any] = {"Name": config.name, "Labels": level["Labels"], "TaskTemplate": task}
    if config.job:      # one copy at a time; Swarm refuses an update config for a job (no rolling update)
        out["Mode"] = {"ReplicatedJob": {"MaxConcurrent": min(1, config.replicas),
                                         "TotalCompletions": config.replicas}}
    else:
        out["Mode"] = {"Global": {}} if config.global_mode else {"Replicated": {"Replicas": config.replicas}}
        out["UpdateConfig"] = level["UpdateConfig"]
        out["RollbackConfig"] = level["RollbackConfig"]
    out["EndpointSpec"] = {**level["EndpointSpec"], "Ports": ports}
    return out


def timestamp(text: str | None) -> tuple[int, int]:
    """An RFC 3339 time of the engine (nanoseconds, trailing zeros dropped) as a sortable
    (seconds, nanoseconds); (0, 0) when absent. Compared only with the same engine's times."""
    m = _TIME.fullmatch(text or "")
    if m is None:
        return (0, 0)
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    seconds = int(datetime.fromisoformat(m.group(1) + zone).timestamp())
    return (seconds, int((m.group(2) or "").ljust(9, "0")[:9]))


def task_error(tasks: Sequence[Mapping[str, Any]], *, since: str | None = None, blame: str = "") -> str:
    """Swarm's own words for why a task failed: those of the task that Swarm's update message
    `blame`s ("... failure or early termination of task ID"), else the newest error of a task
    changed at or after `since`."""
    named = _BLAMED.search(blame)
    blamed = named.group(1) if named else None
    for t in tasks:
        if blamed is not None and t.get("ID") == blamed and (t.get("Status") or {}).get("Err"):
            return str(t["Status"]["Err"])
    floor = timestamp(since)
    best: tuple[tuple[int, int], str] = ((0, 0), "")
    for t in tasks:
        status = t.get("Status") or {}
        err = str(status.get("Err") or "")
        when = timestamp(status.get("Timestamp"))
        if err and when >= floor and when >= best[0]:
            best = (when, err)
    return best[1]


def _healthchecked(spec: Mapping[str, Any]) -> bool:
    hc = ((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Healthcheck") or {}
    return bool(hc.get("Test")) and hc["Test"][:1] != ["NONE"]


def wanted_replicas(service: Mapping[str, Any]) -> int | None:
    """A replicated service's replicas (a job's: its completions); None for a global one."""
    mode = (service.get("Spec") or {}).get("Mode") or {}
    if "ReplicatedJob" in mode:
        return int((mode["ReplicatedJob"] or {}).get("TotalCompletions") or 0)
    replicated = mode.get("Replicated")
    return None if replicated is None else int(replicated.get("Replicas") or 0)


# task states a copy of a job does not leave (Swarm's own order: complete < shutdown < failed ...)
_ENDED = ("complete", "shutdown", "failed", "rejected", "remove", "orphaned")
_PENDING_DESIRE = ("ready", "running", "complete")     # what Swarm still wants of a copy it runs or will


@dataclass(frozen=True)
class JobRun:
    """Where a job service's current run (Swarm's job iteration) stands, from its tasks."""

    wanted: int                         # copies to complete (TotalCompletions)
    completed: int                      # copies that exited 0
    active: int                         # copies Swarm runs, or will (a restart its policy allows)
    failures: int                       # copies that failed or were rejected (each one Swarm's restart, if any)
    failed: Mapping[str, Any] | None    # the newest of those, if any

    @property
    def outcome(self) -> str:
        """completed (every copy exited 0), failed (a copy failed and Swarm runs none again:
        the restart policy gave up), else running."""
        if self.completed >= self.wanted:
            return "completed"
        return "running" if self.active or self.failed is None else "failed"

    @property
    def exit_code(self) -> int:
        """The failed copy's exit code (1 when it never ran: rejected, or no code)."""
        code = (((self.failed or {}).get("Status") or {}).get("ContainerStatus") or {}).get("ExitCode")
        return int(code) if code else 1

    def counts(self) -> str:
        return f"{self.completed} of {self.wanted} copies completed"


def current_run(service: Mapping[str, Any], tasks: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]] | None:
    """The tasks of a job service's current run (its job iteration); None: not a job."""
    if "ReplicatedJob" not in ((service.get("Spec") or {}).get("Mode") or {}):
        return None
    iteration = int((((service.get("JobStatus") or {}).get("JobIteration")) or {}).get("Index") or 0)
    return [t for t in tasks if int((t.get("JobIteration") or {}).get("Index") or 0) == iteration]


def job_run(service: Mapping[str, Any], tasks: Sequence[Mapping[str, Any]]) -> JobRun | None:
    """Where the current run of a job service stands (None: not a job), from all its tasks: the
    run's are those of its job iteration (Swarm counts a job's completions so; a run before an
    update of the same task spec would pass Swarm's `_up-to-date` filter). A copy that failed
    while Swarm still wants it complete is one Swarm has not decided about yet: active."""
    run = current_run(service, tasks)
    if run is None:
        return None
    completed = active = 0
    failures = sorted((t for t in run if (t.get("Status") or {}).get("State") in ("failed", "rejected")),
                      key=lambda t: timestamp((t.get("Status") or {}).get("Timestamp")))
    for t in run:
        state, desired = (t.get("Status") or {}).get("State"), t.get("DesiredState")
        if state == "complete":
            completed += 1
        elif desired in _PENDING_DESIRE and (state not in _ENDED or state in ("failed", "rejected")):
            active += 1
    return JobRun(wanted=wanted_replicas(service) or 0, completed=completed, active=active,
                  failures=len(failures), failed=failures[-1] if failures else None)


def running_tasks(tasks: Sequence[Mapping[str, Any]]) -> int:
    """Tasks Swarm wants running that run: for a healthchecked service Swarm reports a task
    running only once it is healthy (it is "starting" until then)."""
    return sum(1 for t in tasks if _runs(t))


def _runs(t: Mapping[str, Any]) -> bool:
    return t.get("DesiredState") == "running" and (t.get("Status") or {}).get("State") == "running"


def running_by_slot(tasks: Sequence[Mapping[str, Any]]) -> int:
    """Running copies, one per slot (node, for a global service): a slot's task Swarm wants
    running wins over one it is shutting down (start-first updates have both for a while)."""
    best: dict[Any, Mapping[str, Any]] = {}
    for t in tasks:
        key = t.get("Slot") or t.get("NodeID")
        have = best.get(key)
        if have is None or (have.get("DesiredState") != "running" and t.get("DesiredState") == "running"):
            best[key] = t
    return running_tasks(list(best.values()))


# Swarm's UpdateStatus.State of a rolling update (or rollback) not finished: updating or rolling
# back goes on by itself (converging), paused waits for a new update (docker service update)
UNFINISHED = ("updating", "paused", "rollback_started", "rollback_paused")


def _task_image(t: Mapping[str, Any]) -> str:
    return str((((t.get("Spec") or {}).get("ContainerSpec")) or {}).get("Image", ""))


def service_state(
    service: Mapping[str, Any], tasks: Sequence[Mapping[str, Any]], up_to_date: Sequence[Mapping[str, Any]],
) -> base.ContainerState:
    """A service (`GET /services/{id}`) and its tasks (`tasks`: all of them; `up_to_date`: those
    of its current spec, Swarm's `_up-to-date` filter, as `rollout.look` counts them), seen as a
    ContainerState: running when every wanted copy of the current spec runs and no rolling update
    is unfinished (`UNFINISHED`), restarting (converging) while not; its image, the one its
    running tasks run (", "-joined when an update left them mixed; the spec's while none runs)."""
    job = job_run(service, tasks)
    if job is not None:
        return _job_state(service, job)
    spec = service.get("Spec") or {}
    cspec = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    image = str(cspec.get("Image", ""))
    update = service.get("UpdateStatus") or {}
    unfinished = str(update.get("State") or "") if update.get("State") in UNFINISHED else ""
    running = running_by_slot(up_to_date)
    wanted = wanted_replicas(service)
    if wanted is None:
        wanted = sum(1 for t in up_to_date if t.get("DesiredState") == "running")
    converged = running >= wanted and not unfinished
    failed = [t for t in tasks if (t.get("Status") or {}).get("State") in ("failed", "rejected")]
    current = [t for t in tasks if _runs(t)]
    started = max((str((t.get("Status") or {}).get("Timestamp", "")) for t in current),
                  key=timestamp, default=None)
    ran = sorted({_task_image(t) for t in current} - {""})
    ports = tuple(base.PortMapping(container_port=int(p.get("TargetPort") or 0),
                                   host_port=int(p.get("PublishedPort") or 0),
                                   protocol=str(p.get("Protocol") or "tcp"))
                  for p in (spec.get("EndpointSpec") or {}).get("Ports") or ())
    error = task_error(tasks) or None
    if unfinished:
        said = str(update.get("Message") or "")
        error = f"rolling update {unfinished}" + (f" ({said})" if said else "") + (f"; {error}" if error else "")
    return base.ContainerState(
        id=str(service.get("ID", "")),
        name=str(spec.get("Name", "")),
        image=", ".join(ran) if ran else image,
        image_id=image.rpartition("@")[2] if "@" in image else "",
        labels=dict(spec.get("Labels") or {}),
        status=base.ContainerStatus.RUNNING if converged else base.ContainerStatus.RESTARTING,
        created=str(service.get("CreatedAt", "")),
        started_at=started or None,
        health=("healthy" if converged else "starting") if _healthchecked(spec) else None,
        restart_count=len(failed),
        ports=ports,
        error=error,
        replicas=wanted_replicas(service),
        replicas_running=running,
        placement=placement(spec),
        service_settings=settings_of(spec),
    )


def _job_state(service: Mapping[str, Any], job: JobRun) -> base.ContainerState:
    """A job service as a container that runs a job: running while its current run does (or has
    not begun), exited 0 once every copy completed, exited with the failed copy's code once a
    copy failed and Swarm runs none again (the planner's job rules then hold what depends on it)."""
    spec = service.get("Spec") or {}
    image = str((((spec.get("TaskTemplate") or {}).get("ContainerSpec")) or {}).get("Image", ""))
    outcome = job.outcome
    status = base.ContainerStatus.RUNNING if outcome == "running" else base.ContainerStatus.EXITED
    failed = (job.failed or {}).get("Status") or {}
    return base.ContainerState(
        id=str(service.get("ID", "")),
        name=str(spec.get("Name", "")),
        image=image,
        image_id=image.rpartition("@")[2] if "@" in image else "",
        labels=dict(spec.get("Labels") or {}),
        status=status,
        created=str(service.get("CreatedAt", "")),
        exit_code=None if outcome == "running" else 0 if outcome == "completed" else job.exit_code,
        started_at=str(((service.get("JobStatus") or {}).get("LastExecution")) or "") or None,
        restart_count=job.failures,
        error=str(failed.get("Err") or "") or None,
        replicas=job.wanted,
        replicas_running=job.completed,
        placement=placement(spec),
        job=True,
        service_settings=settings_of(spec),
    )


def placement(spec: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A ServiceSpec's (constraints, spread descriptors)."""
    p = (spec.get("TaskTemplate") or {}).get("Placement") or {}
    spread = tuple(str((pref.get("Spread") or {}).get("SpreadDescriptor", "")) for pref in p.get("Preferences") or ())
    return tuple(str(c) for c in p.get("Constraints") or ()), spread


def stop_grace(service: Mapping[str, Any]) -> float:
    """Seconds Swarm gives a task to stop before it kills it (10 by default)."""
    cspec = (((service.get("Spec") or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {})
    grace = cspec.get("StopGracePeriod")
    return 10.0 if grace is None else math.ceil(int(grace) / _NS)
