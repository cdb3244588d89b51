"""A loaded compose project (`compose.load`) as native manifest documents.

Each active service becomes a `Container` (and an `Image` when it builds, or pins a pull policy),
each network and volume the active services use a `Network` or `Volume`. The documents then go
through the same schema, checks and defaults as hand-written manifests (`building.Builder`), so
a compose project and its `reconcile convert` output load into the same models. Every field of
a document remembers the compose key it came from: a problem found later (an invalid image
reference, a port published twice, a policy refusal) is reported at that key.

Names follow compose: containers `<project>-<service>-1` (or `container_name`), networks and
volumes `<project>_<key>` (or their `name:`), built images `<project>-<service>`; on a cluster
(Swarm) a service is `<project>_<service>` whatever its replicas, as docker stack deploy names
it (container_name ignored, as there), and its containers and the project's networks carry
`com.docker.stack.namespace` (`docker stack services/ps` list by it); containers
carry compose's labels `com.docker.compose.project`, `.service`, `.container-number` and
`.oneoff`, networks and volumes `com.docker.compose.project` and `.network` / `.volume`. The
labels of where the project is, `.project.working_dir` and `.project.config_files`, are not in
the documents (`location_labels`: spec.load puts them on the containers, outside the spec hash).

What each compose key becomes is `SERVICE_KEYS` (service keys), `TOP_KEYS`, `NETWORK_KEYS`
and `VOLUME_KEYS`, published as docs/reference/compose.md.

A key compose defines that the manifest language cannot say yet is an error naming it
("not supported yet"); a key that changes nothing here (expose, a port's name, on the native
engine a log driver other than json-file/local) is a warning. Nothing is dropped silently.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Mapping
from typing import Any

from reconciler._dataclass import dataclass, field
from reconciler.spec import compose, interpolation, located, reading, schemas, units
from reconciler.spec.located import Map, Seq
from reconciler.spec.models import Origin

__all__ = ["CONFIG_FILES_LABEL", "WORKING_DIR_LABEL", "documents", "location_labels", "not_supported"]

Path_ = tuple[str | int, ...]

# What each service key becomes (the `_Service.k_<key>` handlers); docs/reference/compose.md.
SERVICE_KEYS: dict[str, str] = {
    "image": "`image` (a bare `name` is `name:latest`); with `build`, the Image's `ref`",
    "build": "an Image object `<project>-<service>`: `context`, `dockerfile` (`file`), `args`, `target`, `secrets` "
             "(top-level secrets with `file:` or `environment:`: the short syntax names one, and that name is the id "
             "the Dockerfile's `RUN --mount=type=secret,id=ID` uses; the long syntax names it by `source`, the id by "
             "`target`, default the source, as docker compose passes them; one without `source` is an error saying "
             "so, and `uid`, `gid`, `mode` a warning: the Dockerfile's mount sets them), `ssh` (`default` or `ID=SOCKET`), "
             "`entitlements` (`security.insecure`: `allow`); other build keys are errors",
    "pull_policy": "`missing`/`if_not_present` (the default); `always`/`never`: an Image object with that `pull`; `build` with `build:` (without one: an error saying to add it)",
    "command": "`args` (a string is split as a shell splits words)",
    "entrypoint": "`command` (a string is split as a shell splits words)",
    "environment": "`env`, over the env files; a bare `KEY` takes the shell's or `.env`'s value, or is left out",
    "env_file": "`env`: read in compose's dotenv format, interpolated; `required: false` files may be missing",
    "ports": "`ports`: short and long syntax, ranges, tcp/udp; a long form's `mode: ingress` is the manifest's `mode: ingress` (Swarm's routing mesh: `--runtime swarm` only; `host_ip` with it is an error); no host port (`80`, `127.0.0.1::80`, a long form without `published`) is the manifest's long form without `published`: the engine chooses a free host port (each replica its own); a host range for one port is an error",
    "networks": "`networks` (`<project>_<name>`), and `aliases`: the service name and every `aliases:` entry (on every network of the container); `ipv4_address` / `ipv6_address`: the entry's `ipv4Address` / `ipv6Address` (a fixed address, checked against the network's `ipam` subnet at load; the engine refuses one taken); `mac_address`, `link_local_ips`, `gw_priority`: the entry's `macAddress`, `linkLocalIPs`, `gwPriority` (checked at load: a unicast MAC of 6 octets, one container's per network; link-local addresses; the highest `gw_priority` gives the default gateway; the Docker backend needs Docker 25 for a `mac_address` on a network other than the main one and Docker 28 for `gw_priority`); `priority`: the order of `networks` (compose's: the higher first, ties by name; the first is the main network, eth0); `interface_name` and `driver_opts` are errors: not supported yet",
    "mac_address": "the `macAddress` of the main network's entry (the first by `priority`, as docker compose puts it there); one that differs from that entry's own `mac_address` is an error, and so is one with `network_mode`",
    "network_mode": "`host` and `none`: `networks: [host]` / `[none]`; `service:NAME` and `container:NAME`: `networks: [container:<its Container>]` (it joins that container's network namespace, is made after it and publishes no ports; one joining a container on `host` is on the host's network too (the host's links and host name, that container's hosts file), and one joining a container on `none` shares its loopback alone, as on Docker: the native engine joins that container's process's namespace at each start, so it must run; when that container is replaced it is replaced too, removed first: Podman refuses to remove a container another one joins); other modes are errors",
    "volumes": "`volumes`: named volumes, anonymous volumes (`/data`: the container's own, kept when it is replaced, removed by the prune that removes it), binds (relative to the project directory), tmpfs (a long form's `tmpfs.mode` read as compose-go reads a file mode: a YAML integer is the mode, `01777` or `0o1777`, a string octal digits, `\"1777\"`; a decimal integer like `1777` is read as the octal digits it shows, with a warning: compose-go takes the number); `read_only`",
    "tmpfs": "`volumes` of type tmpfs, with `size` and `mode` options (other options are errors)",
    "restart": "`restart`",
    "healthcheck": "`healthcheck`: `test`, `interval`, `timeout`, `retries`, `start_period` (`startPeriod`), `start_interval` (`startInterval`: refused on an engine older than Docker 25, Podman's among them); `disable: true` is `[NONE]`; without `test`, the image's HEALTHCHECK with these timings, as Docker merges them (with `test`, an `interval`, `timeout` or `retries` left out is Docker's default, where Docker takes the image's)",
    "depends_on": "`dependsOn` (created, and healthy when they have a healthcheck, their own or their image's, first); a dependency with `service_completed_successfully` becomes a `job: true` Container (run to exit 0 first, and what depends on it is not started while it has failed); `service_healthy` on a service whose healthcheck is disabled is an error (compose stops there), on one without a healthcheck test a warning (it relies on the image's `HEALTHCHECK`, as compose v2); `required: false` on a service no active profile enables drops it; `restart: true` is a warning (not honoured)",
    "deploy": "`replicas` (as `scale`), `resources.limits` (`memory`, `cpus`, `pids`) and `resources.reservations` (`memory`: also the soft limit `memoryReservation`, as docker compose sets it; `cpus`) into `resources`, `placement` (`constraints`, `preferences` of `spread`) into `placement`, `mode: global` into `replicas: global`, `restart_policy` (`condition` none/on-failure/any, unset: any as the specification says, and `max_attempts`, as docker compose maps them; over `restart:`) into `restart`, its `delay` and `window` into `restartDelay` and `restartWindow`; `labels` into `serviceLabels` (the Swarm service's own labels, not its containers'); `endpoint_mode` into `endpointMode`; `update_config` into `update` and `rollback_config` into `rollback` (`parallelism`, `delay`, `failure_action` as `onFailure`, `monitor` as `minReady`, `max_failure_ratio`, `order`), as `docker stack deploy` makes the service of them; on one host what only Swarm honours (`labels`, `endpoint_mode`, `rollback_config`, the restart policy's `delay` and `window`, update_config's `parallelism`, `delay` and `max_failure_ratio`) is a warning; other deploy keys are errors",
    "scale": "`replicas`: other than 1, the Container is `<project>-<service>` with `replicas: N`, run as `<project>-<service>-1..N`; with `container_name` or a fixed published host port it is an error (ports without a host port are fine: each replica gets its own). On Swarm (`--runtime swarm`) the Container is the service `<project>_<service>` with `replicas: N` whatever N, as `docker stack deploy` names it, so a change of N scales it in place",
    "mem_limit": "`resources.memory` (compose's binary units)",
    "cpus": "`resources.cpus`",
    "pids_limit": "`resources.pids` (-1: unlimited)",
    "mem_reservation": "`resources.memoryReservation` (as `deploy.resources.reservations.memory`)",
    "cpu_shares": "`resources.cpuShares` (Swarm refuses it)",
    "cpuset": "`resources.cpuset` (Swarm refuses it)",
    "memswap_limit": "`resources.memorySwap` (-1: unlimited swap)",
    "cpu_period": "`resources.cpuPeriod` (microseconds; 0: not set, the kernel's 100000; Swarm refuses it)",
    "cpu_quota": "`resources.cpuQuota` (microseconds per period, -1: no limit; 0: not set; Swarm refuses it)",
    "blkio_config": "`weight` is `resources.blkioWeight` (10 to 1000; 0: not set; a kernel that cannot weigh block "
                    "I/O discards it with Docker's warning; Swarm refuses it); `weight_device`, `device_read_bps`, "
                    "`device_read_iops`, `device_write_bps` and `device_write_iops` are errors: not supported yet",
    "user": "`user`",
    "group_add": "`groupAdd`",
    "working_dir": "`workdir`",
    "hostname": "`hostname`",
    "domainname": "`domainname` (native: the kernel.domainname sysctl of the container's UTS namespace)",
    "read_only": "`readOnly`",
    "cap_add": "`capAdd`",
    "cap_drop": "`capDrop`",
    "privileged": "`privileged` (every capability and host device, no seccomp filter; Swarm refuses it)",
    "devices": "`devices` (`HOST[:CONTAINER[:PERMISSIONS]]`, or the long form's `source`, `target`, `permissions`); a CDI device name is an error",
    "security_opt": "`no-new-privileges[:true]` is `noNewPrivileges`; other options (seccomp, apparmor, label) are errors",
    "stop_signal": "`stopSignal`",
    "stop_grace_period": "`stopTimeout`",
    "init": "`init`",
    "tty": "`tty`",
    "stdin_open": "`stdinOpen`",
    "sysctls": "`sysctls` (map or `key=value` list); only namespaced ones (net.*, fs.mqueue.*, kernel IPC), as Docker allows",
    "ulimits": "`ulimits` (a number or `soft`/`hard`)",
    "shm_size": "`shmSize` (compose's binary units; 0 is Docker's \"not set\": the default 64m)",
    "extra_hosts": "`extraHosts` (list of `host:ip` / `host=ip`, or a map); `host-gateway`: the host's address on the container's network (native: its first network's gateway; Docker: dockerd's, the default bridge's gateway)",
    "dns": "`dns`",
    "dns_search": "`dnsSearch`",
    "dns_opt": "`dnsOptions`",
    "oom_score_adj": "`oomScoreAdj`",
    "labels": "`metadata.labels`, with compose's `com.docker.compose.*` labels",
    "label_file": "`metadata.labels`: KEY=VALUE lines of each file (part of the revision), under `labels:`",
    "container_name": "`metadata.name` (default `<project>-<service>-1`); on Swarm (`--runtime swarm`) a warning: ignored, as `docker stack deploy` ignores it, the service is `<project>_<service>`",
    "secrets": "`secrets`: the top-level secret's `file` (or `environment`, `content`) at `target` (`/run/secrets/<name>` by default), "
               "`uid`, `gid`, `mode` (0400); a file sops encrypted is decrypted (docs/security.md)",
    "configs": "`secrets` too (a tmpfs file of the container's own, read-only): at `target` (`/<name>` by "
               "default), `mode` 0444 by default",
    "profiles": "whether the service runs, as compose decides: a service without profiles always; one with profiles when one of them is active (`--profile` on `validate`, `convert`, `diff` and `apply`, else `COMPOSE_PROFILES` from the shell or `.env`; `*`: every profile); a dependency is not enabled by the service depending on it (an error, unless `required: false`); `reconcile rollback` re-applies a revision with the profiles it was applied with",
    "extends": "applied while loading (same file or another file)",
    "logging": "`logging` (`driver`, `options`): the Docker backend's LogConfig; the native engine keeps the output "
               "itself and honours `json-file`/`local` with `max-size`/`max-file` (it rotates that container's log so); "
               "another driver or option is a warning naming it",
}
# deploy.restart_policy's conditions as docker compose maps them (None: unset, the specification's "any")
_RESTART_CONDITIONS = {None: "always", "none": "no", "no": "no", "on-failure": "on-failure", "any": "always",
                       "always": "always", "unless-stopped": "unless-stopped"}
# Service keys that are errors unless they say what the engine does anyway.
_SERVICE_DEFAULTS: dict[str, Any] = {"oom_kill_disable": False}
# Service keys that change nothing on this engine (a warning names them).
_SERVICE_NO_EFFECT = {
    "expose": "has no effect: every port of a container is reachable on its networks; publish with ports: to reach it from the host",
    "attach": "has no effect: reconcile does not attach to containers' output",
    "develop": "has no effect: reconcile has no watch mode; commit or save the change and the agent applies it",
}
_TOP_UNSUPPORTED = ("models",)
# a service's network entry: its keys the manifest entry says too
_ENTRY_KEYS = {"ipv4_address": "ipv4Address", "ipv6_address": "ipv6Address", "mac_address": "macAddress",
               "link_local_ips": "linkLocalIPs", "gw_priority": "gwPriority", "priority": "priority"}
_ADDRESSES = ("ipv4_address", "ipv6_address", "mac_address")
# The rest of the file (docs/reference/compose.md): key -> ("supported" | "warning" | "error", what it does)
TOP_KEYS: dict[str, tuple[str, str]] = {
    "name": ("supported", "the project name (after `-p` and `COMPOSE_PROJECT_NAME`), normalised as compose does"),
    "include": ("supported", "each entry's services, networks, volumes, secrets and configs added to the project (`path`: one file, or several merged in order; its relative paths and includes from `project_directory`, default the first file's directory; its own includes and extends applied); a resource defined twice differently is an error (the same definition twice is kept once), and so is a remote include (a git or OCI address). Interpolated with the project's environment over the entry's `env_file`s (relative to the including project, later ones win), else over the `.env` of its project directory: the included files and env files are part of the revision, so an edit replaces exactly the services using it"),
    "services": ("supported", "one Container each (below)"),
    "networks": ("supported", "one Network each that an active service uses (below)"),
    "volumes": ("supported", "one Volume each that an active service uses (below)"),
    "version": ("warning", "obsolete, ignored (compose warns too)"),
    "secrets": ("supported", "`file:`, `environment:` and `content:` secrets: put into the services naming them (`secrets`); "
                "`external` is an error there; a service's `build.secrets` takes `file:` and "
                "`environment:` ones (the variable read from the reconciler's environment)"),
    "configs": ("supported", "`file:`, `environment:` and `content:` configs: put into the services naming them (`configs`); "
                "`external` is an error"),
    **{k: ("error", "not supported yet") for k in _TOP_UNSUPPORTED},
    "x-*": ("supported", "extension fields, anywhere: ignored, usable as YAML anchors"),
}
NETWORK_KEYS: dict[str, tuple[str, str]] = {
    "name": ("supported", "`metadata.name` (default `<project>_<key>`)"),
    "labels": ("supported", "`metadata.labels`, with `com.docker.compose.project` and `.network`"),
    "driver": ("supported", "`bridge` (the default), and `overlay`, Swarm's: on `--runtime swarm` every Network is an overlay network, and on one host an `overlay` network is a bridge, with a warning; other drivers are errors"),
    "internal": ("supported", "`internal`"),
    "ipam": ("supported", "one IPv4 `config` entry's `subnet` and `gateway`, and one IPv6 entry's `subnet` (`ipv6Subnet`, with `enable_ipv6`); other IPAM settings are errors"),
    "driver_opts": ("supported", "`com.docker.network.driver.mtu` is `mtu`; the overlay driver's `encrypted` and `com.docker.network.driver.overlay.vxlanid_list` are the Network's `driverOpts` on Swarm (`--runtime swarm`), passed as written, as `docker stack deploy` passes them (on one host, with `driver: overlay`, a warning: the network is a bridge, its traffic stays on the host); other options are errors (the driver would ignore them)"),
    "attachable": ("supported", "on Swarm every Network is an attachable overlay network (standalone containers may join it): `true` says so, `false` is a warning; on one host a warning: no effect, any container of the project can join"),
    "external": ("supported", "a Network with `external: true` named `name` (or the key): used, never created or pruned; converging fails while it is missing"),
    "enable_ipv6": ("supported", "`ipv6`: dual stack, an IPv6 /64 from the ULA pool unless `ipam` gives one"),
    "enable_ipv4": ("error", "not supported yet when false"),
}
# Top-level secrets and configs (docs/reference/compose.md), as `docker compose` runs them on one host.
SECRET_KEYS: dict[str, tuple[str, str]] = {
    "file": ("supported", "the file (relative to the project directory) put into the services naming it as a secret file (a tmpfs of the container's own, read-only; sops-encrypted: decrypted); its content is part of the spec hash, so an edit replaces the services using it"),
    "name": ("supported", "no effect for a file (the mount is named by the service's reference)"),
    "labels": ("warning", "no effect: the file is put into the container, no secret or config object is made"),
    "environment": ("supported", "the variable's value (the shell over `.env`) as the file's content: the manifest's `env:` (the native engine: on a tmpfs of the container's own; Docker: copied into the container, as docker compose does)"),
    "content": ("supported", "the text (interpolated) as the file's content: the manifest's `content:` (in the converted manifest in plain text: a config, not a secret)"),
    "external": ("error", "not supported: external secrets and configs live in a swarm"),
    "driver": ("error", "not supported: secret drivers are a swarm feature"),
    "driver_opts": ("error", "not supported: secret drivers are a swarm feature"),
    "template_driver": ("error", "not supported: templates are a swarm feature"),
}
VOLUME_KEYS: dict[str, tuple[str, str]] = {
    "name": ("supported", "`metadata.name` (default `<project>_<key>`)"),
    "labels": ("supported", "`metadata.labels`, with `com.docker.compose.project` and `.volume`"),
    "driver": ("supported", "`driver` (another than `local` needs `--runtime docker` or `swarm`: loading for the native engine refuses it)"),
    "driver_opts": ("supported", "`driverOpts` (like `type: nfs`, `o:`, `device:`; `--runtime docker` or `swarm`: loading for the native engine refuses them, but for a local bind volume, `type: none, o: bind, device: /DIR`, which it binds to the directory)"),
    "external": ("supported", "a Volume with `external: true` named `name` (or the key): used, never created or pruned; converging fails while it is missing"),
}


def service_support(keys: list[str]) -> dict[str, tuple[str, str]]:
    """What becomes of each service key: ("supported" | "warning" | "error", what it does)."""
    out: dict[str, tuple[str, str]] = {}
    for key in keys:
        if key in SERVICE_KEYS:
            out[key] = ("supported", SERVICE_KEYS[key])
        elif key in _SERVICE_NO_EFFECT:
            out[key] = ("warning", f"{key} {_SERVICE_NO_EFFECT[key]}")
        elif key in _SERVICE_DEFAULTS:
            out[key] = ("error", f"not supported yet, unless `{key}: {str(_SERVICE_DEFAULTS[key]).lower()}` (the default)")
        else:
            out[key] = ("error", "not supported yet")
    return out


def not_supported(what: str, hint: str = "") -> str:
    """The message for a compose key or value reconciler cannot honour yet."""
    return f"not supported yet: {what}; " + (hint or "the manifest language cannot say it yet, remove it")


@dataclass
class _Doc:
    """A native document being built, and which compose key each of its fields came from."""

    kind: str
    data: dict[str, Any]
    at: Path_                                   # the compose key of the whole object
    paths: dict[Path_, Path_] = field(default_factory=dict)     # native path -> compose path
    secret_env: dict[str, str] = field(default_factory=dict)   # keys from SOPS env_files -> digest

    def came(self, native: Path_, source: Path_) -> None:
        self.paths[native] = source


class _Translator:
    def __init__(self, model: compose.Model, rd: compose.Reader, *, cluster: bool = False) -> None:
        self.model = model
        self.cluster = cluster                  # read for a cluster of services (Swarm), as docker stack deploy
        self.rd = rd
        self.data = model.data
        self.project = model.name
        self.networks: dict[str, str] = {}      # compose key -> native name, for those used
        self.volumes: dict[str, str] = {}
        self.docs: list[_Doc] = []
        self.checked: set[Path_] = set()        # top-level secrets and configs already checked
        self.jobs: set[str] = set()             # services some service waits to complete

    # -- reporting ------------------------------------------------------------------------------

    def at(self, path: Path_, *, key: bool = False) -> Origin | None:
        return located.where(self.data, path, key=key)

    def error(self, path: Path_, message: str, *, key: bool = False) -> None:
        self.rd.error(self.at(path, key=key), compose.fmt(path), message)

    def warn(self, path: Path_, message: str, *, key: bool = False) -> None:
        self.rd.warn(self.at(path, key=key), compose.fmt(path), message)

    # -- the project ------------------------------------------------------------------------------

    def run(self) -> list[_Doc]:
        for key in _TOP_UNSUPPORTED:
            if self.data.get(key):
                self.error((key,), not_supported(f"top-level {key}"), key=True)
        services: Map = self.data.get("services") or Map(self.data.at)
        declared_networks = self.data.get("networks") or {}
        declared_volumes = self.data.get("volumes") or {}
        for name in self.model.services:         # only what the active services use is made
            for net in (services[name].get("networks") or ()):
                if net in declared_networks:
                    self.networks.setdefault(net, "")
            for vol in services[name].get("volumes") or ():
                if isinstance(vol, Map) and vol.get("type") == "volume" and vol.get("source") in declared_volumes:
                    self.volumes.setdefault(str(vol["source"]), "")
        for key in sorted(self.networks):
            self.network(key)
        for key in sorted(self.volumes):
            self.volume(key)
        for name in self.model.services:         # dependencies others wait to complete are jobs
            for dep, cfg in (services[name].get("depends_on") or {}).items():
                if isinstance(cfg, Map) and cfg.get("condition") == "service_completed_successfully":
                    self.jobs.add(dep)
        containers = [self.service(name, services[name]) for name in self.model.services]
        self.docs.extend(d for d in containers if d is not None)
        return self.docs

    @staticmethod
    def labels(owner: Map, extra: dict[str, str]) -> dict[str, str]:
        """The `labels:` of a service, network or volume, then compose's own (which win, as in compose)."""
        labels = owner.get("labels")
        out = {k: "" if v is None else str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
        out.update(extra)
        return out

    def _resource_name(self, kind: str, key: str) -> str:
        cfg = self.data[kind][key]
        custom = cfg.get("name") if isinstance(cfg, Map) else None
        if isinstance(cfg, Map) and cfg.get("external"):
            return str(custom or key)            # compose: an external object is named as written
        return str(custom) if custom else f"{self.project}_{key}"

    def external(self, kind: str, key: str) -> bool:
        """An `external: true` network or volume: a document that only names it (the rest of its
        keys are errors: nothing of them would be made)."""
        path: Path_ = (kind, key)
        cfg: Map = self.data[kind][key]
        if not cfg.get("external"):
            return False
        for opt, value in cfg.items():
            if opt not in ("external", "name") and not opt.startswith("x-") and value not in (None, {}, [], False, ""):
                self.error((*path, opt), f"an external {kind[:-1]} is used as it is; remove {opt} or external: true", key=True)
        name = self._resource_name(kind, key)
        (self.networks if kind == "networks" else self.volumes)[key] = name
        doc = _Doc(kind[:-1].title(), _manifest(kind[:-1].title(), name, {}, {"external": True}), path)
        doc.came(("metadata", "name"), (*path, "name") if "name" in cfg else path)
        doc.came(("spec", "external"), (*path, "external"))
        self.docs.append(doc)
        return True

    def container_of(self, service: str, svc: Any) -> str:
        """The Container a service becomes: on a cluster `<project>_<service>`, the service docker
        stack deploy makes (container_name ignored, as there), whatever its replicas; on one host
        `container_name`, else `<project>-<service>-1`, or `<project>-<service>` with replicas (run
        as `-1` .. `-N`), as docker compose names its containers."""
        if self.cluster:
            return f"{self.project}_{service}"
        custom = svc.get("container_name") if isinstance(svc, dict) else None
        return str(custom) if custom else _container(self.project, service, svc)

    def stack_label(self) -> dict[str, str]:
        """On a cluster, docker stack deploy's label of the stack a service (its containers too)
        or a network belongs to: `docker stack services/ps NAME` list by it."""
        return {STACK_LABEL: self.project} if self.cluster else {}

    # -- networks and volumes -----------------------------------------------------------------------

    def network(self, key: str) -> None:
        if self.external("networks", key):
            return
        path: Path_ = ("networks", key)
        cfg: Map = self.data["networks"][key]
        name = self._resource_name("networks", key)
        self.networks[key] = name
        doc = _Doc("Network", {}, path)
        spec: dict[str, Any] = {}
        for opt, value in cfg.items():
            here = (*path, opt)
            if opt.startswith("x-") or opt in ("name", "labels"):
                continue
            if opt == "external":
                continue                        # false: external() took the true ones
            if opt == "driver":
                if value == "overlay" and not self.cluster:
                    self.warn(here, "overlay is Swarm's network driver (--runtime swarm): on one host the network is "
                              "a bridge")
                elif value not in ("bridge", "default", "overlay"):
                    self.error(here, not_supported(f"the {value!r} network driver", "use bridge (the default), or "
                                                   "overlay on Swarm"))
            elif opt == "internal":
                spec["internal"] = bool(value)
                doc.came(("spec", "internal"), here)
            elif opt == "attachable":
                if not self.cluster:
                    self.warn(here, "has no effect: every network can be joined by the project's containers")
                elif value is False:            # (true is what Swarm's networks are here)
                    self.warn(here, "attachable: false has no effect: on Swarm reconciler makes every network an "
                              "attachable overlay network (standalone containers may join it)")
            elif opt == "enable_ipv6":
                if value:
                    spec["ipv6"] = True
                    doc.came(("spec", "ipv6"), here)
            elif opt == "enable_ipv4":
                if value is False:
                    self.error(here, not_supported("networks without IPv4"))
            elif opt == "driver_opts":
                self.driver_opts(value, here, spec, doc, cfg.get("driver"))
            elif opt == "ipam":
                self.ipam(value, here, spec, doc)
            else:
                self.error(here, not_supported(f"networks.{opt}"))
        labels = self.labels(cfg, {"com.docker.compose.project": self.project, "com.docker.compose.network": key,
                                   **self.stack_label()})
        doc.data = _manifest("Network", name, labels, spec)
        doc.came(("metadata", "name"), (*path, "name") if "name" in cfg else path)
        doc.came(("metadata", "labels"), (*path, "labels") if "labels" in cfg else path)
        self.docs.append(doc)

    def driver_opts(self, opts: Any, path: Path_, spec: dict[str, Any], doc: _Doc, driver: Any) -> None:
        """The MTU (`mtu`), and on Swarm the overlay driver's own options, passed as written
        (`driverOpts`), as docker stack deploy passes them; on one host an overlay network is a
        bridge, whose traffic stays on the host: they are a warning there. Any other option is
        an error: the driver would ignore it without a word."""
        from reconciler.runtime.base import OVERLAY_DRIVER_OPTIONS  # the engine's list, one home

        overlay = driver == "overlay" or (self.cluster and driver in (None, "default"))
        for opt, value in (opts or {}).items():
            here = (*path, opt)
            if opt == "com.docker.network.driver.mtu":
                try:
                    spec["mtu"] = int(value)
                except (TypeError, ValueError):
                    self.error(here, f"{value!r} is not an MTU (a number like 1450)")
                doc.came(("spec", "mtu"), here)
            elif opt in OVERLAY_DRIVER_OPTIONS and overlay and self.cluster:
                spec.setdefault("driverOpts", {})[str(opt)] = str(value)
                doc.came(("spec", "driverOpts", str(opt)), here)
            elif opt in OVERLAY_DRIVER_OPTIONS and overlay:
                self.warn(here, f"{opt} has no effect on one host: the overlay network is a bridge here, whose "
                          "traffic stays on the host (--runtime swarm passes it to Swarm's overlay driver)", key=True)
            elif opt in OVERLAY_DRIVER_OPTIONS:
                self.error(here, f"{opt} is an option of Swarm's overlay driver, and this network's driver is "
                           f"{driver or 'bridge'}: set driver: overlay and deploy with --runtime swarm, or remove "
                           "it", key=True)
            elif self.cluster:
                self.error(here, f"{opt!r} is not an option of Swarm's overlay driver, which would ignore it; it takes "
                           f"{', '.join(OVERLAY_DRIVER_OPTIONS)} and com.docker.network.driver.mtu: remove it", key=True)
            else:
                self.error(here, not_supported(f"the network driver option {opt!r}", "only com.docker.network.driver.mtu "
                                               "is (and on Swarm the overlay driver's options), remove it"), key=True)

    def ipam(self, ipam: Map, path: Path_, spec: dict[str, Any], doc: _Doc) -> None:
        for opt, value in ipam.items():
            here = (*path, opt)
            if opt.startswith("x-"):
                continue
            if opt == "driver":
                if value != "default":
                    self.error(here, not_supported(f"the IPAM driver {value!r}"))
            elif opt == "config":
                self.ipam_configs(list(value or ()), here, spec, doc)
            elif value:
                self.error(here, not_supported(f"ipam.{opt}"), key=True)

    def ipam_configs(self, configs: list[Any], here: Path_, spec: dict[str, Any], doc: _Doc) -> None:
        """At most one IPv4 entry (subnet, gateway) and one IPv6 entry (subnet)."""
        seen: set[bool] = set()
        for i, config in enumerate(configs):
            v6 = ":" in str((config or {}).get("subnet", ""))
            if v6 in seen:
                self.error((*here, i), not_supported(f"more than one IPv{6 if v6 else 4} IPAM config (subnet) per network", "keep one"))
                continue
            seen.add(v6)
            for sub, item in (config or {}).items():
                if sub == "subnet" and v6:
                    spec["ipv6Subnet"] = item
                    doc.came(("spec", "ipv6Subnet"), (*here, i, sub))
                elif sub in ("subnet", "gateway") and not v6:
                    spec[sub] = item
                    doc.came(("spec", sub), (*here, i, sub))
                elif not sub.startswith("x-"):
                    what = "an IPv6 gateway (it is the subnet's first address)" if v6 and sub == "gateway" else f"ipam.config {sub}"
                    self.error((*here, i, sub), not_supported(what), key=True)

    def volume(self, key: str) -> None:
        if self.external("volumes", key):
            return
        path: Path_ = ("volumes", key)
        cfg: Map = self.data["volumes"][key]
        name = self._resource_name("volumes", key)
        self.volumes[key] = name
        doc = _Doc("Volume", {}, path)
        spec: dict[str, Any] = {}
        for opt, value in cfg.items():
            here = (*path, opt)
            if opt.startswith("x-") or opt in ("name", "labels"):
                continue
            if opt == "external":
                continue                        # false: external() took the true ones
            if opt == "driver":
                if value not in (None, "", "local"):
                    spec["driver"] = str(value)
                    doc.came(("spec", "driver"), here)
            elif opt == "driver_opts":
                if value:
                    spec["driverOpts"] = {str(k): str(v) for k, v in value.items()}
                    doc.came(("spec", "driverOpts"), here)
            elif value:
                self.error(here, not_supported(f"volumes.{opt}"), key=True)
        labels = self.labels(cfg, {"com.docker.compose.project": self.project, "com.docker.compose.volume": key})
        doc.data = _manifest("Volume", name, labels, spec)
        doc.came(("metadata", "name"), (*path, "name") if "name" in cfg else path)
        self.docs.append(doc)

    def file_source(self, kind: str, name: str, at: Path_) -> dict[str, str] | None:
        """Where the content of top-level secret or config `name` comes from, as a manifest
        secret says it (`source: ./path`, `env: VAR` or `content: TEXT`); None (reported) when it
        is undefined or has none."""
        top = self.data.get(kind) or {}
        what = kind[:-1]
        if name not in top:
            if self.rd.was_dropped((kind, name)):
                return None             # its own problem is reported
            self.error(at, f"refers to undefined {what} {name!r}{schemas.did_you_mean(name, sorted(top))}; "
                       f"declare it under the top-level {kind}:")
            return None
        cfg = top[name]
        path: Path_ = (kind, name)
        if path not in self.checked:
            self.checked.add(path)
            for opt, value in cfg.items():
                status, text = SECRET_KEYS.get(opt, ("error", "not supported yet"))
                if opt.startswith("x-") or status == "supported" or value in (None, {}, [], False, ""):
                    continue
                if status == "warning":
                    self.warn((*path, opt), f"{opt} has {text}", key=True)
                else:
                    self.error((*path, opt), f"{what} {opt}: {text}", key=True)
        file = cfg.get("file")
        if cfg.get("environment"):
            return {"env": str(cfg["environment"])}
        if cfg.get("content") is not None and not file:
            return {"content": str(cfg["content"])}
        if not isinstance(file, str) or not file:
            if not cfg.get("external"):
                self.error(path, f"{what} {name!r} has no file, environment or content: say where its content is", key=True)
            return None
        return {"source": file if file.startswith(("/", ".", "~")) else "./" + file}

    # -- services -------------------------------------------------------------------------------------

    def service(self, name: str, svc: Map) -> _Doc | None:
        return _Service(self, name, svc).build()


class _Service:
    """One service into a Container document (and an Image document when it builds)."""

    def __init__(self, tr: _Translator, name: str, svc: Map) -> None:
        self.tr = tr
        self.name = name
        self.svc = svc
        self.path: Path_ = ("services", name)
        self.spec: dict[str, Any] = {}
        self.reserved: dict[str, Any] = {}      # deploy.resources.reservations
        self.doc = _Doc("Container", {}, self.path)

    def p(self, *parts: str | int) -> Path_:
        return (*self.path, *parts)

    def put(self, native: str, value: Any, *source: str | int) -> None:
        self.spec[native] = value
        self.doc.came(("spec", native), self.p(*source))

    def build(self) -> _Doc | None:
        svc = self.svc
        for key, value in svc.items():
            if key.startswith("x-"):
                continue
            handler = getattr(self, "k_" + key, None)
            if handler is not None:
                handler(value)
            elif key in _SERVICE_NO_EFFECT:
                self.tr.warn(self.p(key), f"{key} {_SERVICE_NO_EFFECT[key]}", key=True)
            elif (key in _SERVICE_DEFAULTS and value == _SERVICE_DEFAULTS[key]) or value in (None, [], {}):
                continue            # says what the engine does anyway
            else:                   # every other key compose defines (the schema refused the rest)
                self.tr.error(self.p(key), not_supported(key), key=True)
        self.image()
        self.env()
        self.resources()
        container = self.container_name()
        if self.name in self.tr.jobs:
            self.spec["job"] = True
            self.doc.came(("spec", "job"), self.path)
        replicas = self.replicas()
        if replicas is not None:
            self.spec["replicas"] = replicas[0]
            self.doc.came(("spec", "replicas"), self.p(*replicas[1]))
        labels = {**self.label_files(), **self.tr.labels(svc, {
            "com.docker.compose.project": self.tr.project, "com.docker.compose.service": self.name,
            "com.docker.compose.container-number": "1", "com.docker.compose.oneoff": "False",
            **self.tr.stack_label(),
        })}
        self.doc.data = _manifest("Container", container, labels, self.spec)
        self.doc.came(("metadata", "name"), self.p("container_name") if "container_name" in svc and not self.tr.cluster
                      else self.path)
        self.doc.came(("metadata", "labels"), self.p("labels") if "labels" in svc else self.path)
        return self.doc

    def label_files(self) -> dict[str, str]:
        """The `label_file:` files' KEY=VALUE lines (compose's dotenv format, not interpolated),
        in order; `labels:` win over them."""
        value = self.svc.get("label_file")
        out: dict[str, str] = {}
        for i, rel in enumerate([value] if isinstance(value, str) else value or ()):
            at = self.p("label_file") if isinstance(value, str) else self.p("label_file", i)
            full = os.path.normpath(os.path.join(self.tr.model.directory, str(rel)))
            content = self.tr.rd.read(full, self.tr.at(at), compose.fmt(at), "label file")
            if content is None:
                continue
            try:
                out.update(interpolation.parse_dotenv(content.decode("utf-8"), lambda _name: None))
            except (UnicodeDecodeError, interpolation.DotenvError) as exc:
                self.tr.error(at, f"label file {rel} cannot be read as KEY=VALUE lines: {exc}")
        return out

    def k_label_file(self, value: Any) -> None:
        """Handled with the metadata (label_files())."""

    def container_name(self) -> str:
        custom = self.svc.get("container_name")
        if custom and self.tr.cluster:
            self.tr.warn(self.p("container_name"), f"ignored on Swarm, as docker stack deploy ignores it: the service is "
                         f"{self.tr.container_of(self.name, self.svc)} (<project>_<service>)", key=True)
        elif custom and _replicas(self.svc) != 1:
            self.tr.error(self.p("container_name"), f"container_name {custom!r} names one container, but the service runs "
                          f"{_replicas(self.svc)}; remove container_name or run one replica", key=True)
        return self.tr.container_of(self.name, self.svc)

    def replicas(self) -> tuple[int, Path_] | None:
        """The service's replica count and its key when other than 1 (None: one container)."""
        deploy = self.svc.get("deploy") or {}
        given = [(v, p) for v, p in ((self.svc.get("scale"), ("scale",)), (deploy.get("replicas"), ("deploy", "replicas")))
                 if v is not None]
        if len({v for v, _ in given}) > 1:
            self.tr.error(self.p("deploy", "replicas"), "can't set distinct values on 'scale' and 'deploy.replicas'; keep one")
        if not given or given[0][0] == 1:
            return None
        if given[0][0] < 0:
            self.tr.error(self.p(*given[0][1]), f"{given[0][0]} is not a number of replicas (0 or more)")
            return None
        return given[0][0], given[0][1]

    def k_scale(self, value: Any) -> None:
        """Handled with the metadata (replicas())."""

    # -- image ------------------------------------------------------------------------------

    def image(self) -> None:
        svc = self.svc
        image = svc.get("image")
        policy = str(svc.get("pull_policy") or "missing")
        build = svc.get("build")
        if build is not None:
            self.build_image(build, image, policy)
            return
        if policy == "build":
            self.tr.error(self.p("pull_policy"), "pull_policy build builds the service's image, and the service "
                          "has no build section: add build: (its context, like build: ./web), or use pull_policy "
                          "missing, always or never to pull image:")
        if image is None:
            return                               # reported by the consistency check
        ref = _reference(str(image))
        if policy in ("missing", "if_not_present", "build"):     # build: reported above
            self.put("image", ref, "image")
        elif policy in ("always", "never"):
            obj = f"{self.tr.project}-{self.name}"
            self.image_doc(obj, {"ref": ref, "pull": policy}, {("spec", "ref"): self.p("image"),
                                                               ("spec", "pull"): self.p("pull_policy")})
            self.put("image", obj, "image")
        else:       # the image stays: a Container without one is only a second problem here
            self.tr.error(self.p("pull_policy"), not_supported(f"pull_policy {policy!r}", "use always, never or missing"))
            self.put("image", ref, "image")

    def build_image(self, build: Map, image: Any, policy: str) -> None:
        here = self.p("build")
        out: dict[str, Any] = {}
        paths: dict[Path_, Path_] = {}
        for opt, value in build.items():
            at = (*here, opt)
            if opt.startswith("x-"):
                continue
            if opt == "context":
                if "://" in str(value) or str(value).startswith("git@"):
                    self.tr.error(at, not_supported("a remote build context (a git or https URL)", "clone it beside the compose file and name its directory"))
                out["context"] = str(value)
                paths[("spec", "build", "context")] = at
            elif opt == "dockerfile":
                out["file"] = str(value)
                paths[("spec", "build", "file")] = at
            elif opt == "args":
                args = {}
                for key, arg in value.items():
                    if arg is None:
                        arg = self.tr.model.env.get(key)
                        if arg is None:
                            continue         # compose leaves an unset bare arg out
                    args[key] = arg
                    paths[("spec", "build", "args", key)] = (*at, key)
                if args:
                    out["args"] = args
            elif opt == "target":
                out["target"] = str(value)
                paths[("spec", "build", "target")] = at
            elif opt == "secrets" and value:
                out["secrets"] = self.build_secrets(value, at, paths)
            elif opt == "ssh" and value:
                out["ssh"] = self.build_ssh(value, at, paths)
            elif opt == "entitlements" and value:
                out["allow"] = [str(v) for v in value]
                paths[("spec", "build", "allow")] = at
            elif value in (None, [], {}, False):
                continue
            else:
                self.tr.error(at, not_supported(f"build.{opt}"), key=True)
        out.setdefault("context", ".")
        if policy not in ("missing", "if_not_present", "build"):
            self.tr.error(self.p("pull_policy"), not_supported(f"pull_policy {policy!r} with build:", "remove it: a built image is rebuilt when its context changes"))
        obj = f"{self.tr.project}-{self.name}"
        spec: dict[str, Any] = {"ref": _reference(str(image)) if image else obj, "build": out}
        paths[("spec", "ref")] = self.p("image") if image else here
        self.image_doc(obj, spec, paths)
        self.put("image", obj, "build")

    def build_secrets(self, value: Seq, at: Path_, paths: dict[Path_, Path_]) -> list[dict[str, str]]:
        """`build.secrets`, as compose reads them: the short syntax is a top-level secret's name,
        which is also the id the Dockerfile's `RUN --mount=type=secret,id=ID` names; the long one
        names the secret by `source` and the id by `target` (default: the source). Secrets with
        `file:` or `environment:`. `uid`, `gid` and `mode` are the mount's, which the Dockerfile
        sets: compose passes them nowhere (a warning)."""
        declared = self.tr.data.get("secrets") or {}
        out: list[dict[str, str]] = []
        for i, item in enumerate(value):
            here = (*at, i)
            ref = item if isinstance(item, Map) else {"source": item}
            for key in ref:
                if key in ("uid", "gid", "mode"):
                    self.tr.warn((*here, key), f"{key} has no effect on a build secret (compose passes it nowhere): "
                                 f"the Dockerfile's RUN --mount=type=secret,id=ID,{key}=... sets it", key=True)
            name = str(ref.get("source") or "")
            if not name:
                self.tr.error(here, "a build secret without source: name the top-level secret with source: NAME "
                              "(or write the short syntax, - NAME); target: is the id the Dockerfile's RUN "
                              "--mount=type=secret,id=ID names, the source's name when left out")
                continue
            ident = str(ref.get("target") or name)
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", ident):
                self.tr.error((*here, "target") if ref.get("target") else here,
                              f"{ident!r} is not a build secret id: target: is the id the Dockerfile's RUN "
                              "--mount=type=secret,id=ID names (letters, digits, '_', '.' and '-'), not a path; the "
                              "step mounts it at /run/secrets/ID, or where its own target= says")
                continue
            top = declared.get(name) if isinstance(declared, dict) else None
            if not isinstance(top, dict) or not (top.get("file") or top.get("environment")):
                self.tr.error(here, f"no top-level secrets entry named {name!r} with file: or environment:")
                continue
            entry = {"id": ident, "file": str(top["file"])} if top.get("file") else \
                {"id": ident, "env": str(top["environment"])}
            paths[("spec", "build", "secrets", len(out))] = here
            out.append(entry)
        return out

    def build_ssh(self, value: Seq | Map, at: Path_, paths: dict[Path_, Path_]) -> list[dict[str, str]]:
        """`build.ssh`: `default` ($SSH_AUTH_SOCK) or `ID=SOCKET` (a key file is not an agent)."""
        items = [f"{k}={v}" if v else str(k) for k, v in value.items()] if isinstance(value, dict) else list(value)
        out: list[dict[str, str]] = []
        for i, item in enumerate(items):
            ident, eq, path = str(item).partition("=")
            paths[("spec", "build", "ssh", len(out))] = (*at, i)
            out.append({"id": ident, "socket": path} if eq else {"id": ident})
        return out

    def image_doc(self, name: str, spec: dict[str, Any], paths: dict[Path_, Path_]) -> None:
        doc = _Doc("Image", _manifest("Image", name, {}, spec), self.p("build") if "build" in self.svc else self.p("image"))
        doc.paths.update(paths)
        doc.came(("metadata", "name"), self.path)
        self.tr.docs.append(doc)

    # -- keys -------------------------------------------------------------------------------

    def k_image(self, value: Any) -> None:
        """Handled with build (image())."""

    def k_build(self, value: Any) -> None:
        """Handled with image (image())."""

    def k_pull_policy(self, value: Any) -> None:
        """Handled with image (image())."""

    def k_container_name(self, value: Any) -> None:
        """Handled with the metadata."""

    def k_labels(self, value: Any) -> None:
        """Handled with the metadata."""

    def k_profiles(self, value: Any) -> None:
        """Chose whether the service runs at all (compose.load)."""

    def k_extends(self, value: Any) -> None:
        """Applied by compose.load."""

    def k_deploy(self, value: Map) -> None:
        for opt, item in value.items():
            at = self.p("deploy", opt)
            if opt.startswith("x-") or opt == "resources":
                continue
            if opt == "replicas":
                continue                        # replicas()
            if opt == "mode":
                if item == "global":
                    self.put("replicas", "global", "deploy", "mode")
                elif item != "replicated":
                    self.tr.error(at, not_supported(f"deploy.mode {item!r}"))
            elif opt == "placement":
                if item:
                    self.placement(item)
            elif opt == "restart_policy":
                self.restart_policy(item)
            elif opt == "labels":
                if item:
                    self.put("serviceLabels", {str(k): "" if v is None else str(v) for k, v in item.items()},
                             "deploy", "labels")
            elif opt == "endpoint_mode":
                if item in ("vip", "dnsrr"):
                    self.put("endpointMode", item, "deploy", "endpoint_mode")
                elif item:
                    self.tr.error(at, f"endpoint_mode {item!r}: vip or dnsrr")
            elif opt in ("update_config", "rollback_config"):
                if item:
                    self.rollout(opt, item)
            elif item not in (None, [], {}):
                self.tr.error(at, not_supported(f"deploy.{opt}"), key=True)

    def rollout(self, key: str, value: Map) -> None:
        """deploy.update_config into `update`, deploy.rollback_config into `rollback`, key by key
        as docker stack deploy makes the service's UpdateConfig and RollbackConfig (`monitor`
        is `minReady`, which is Swarm's Monitor)."""
        target = "update" if key == "update_config" else "rollback"
        names = {"parallelism": "parallelism", "delay": "delay", "failure_action": "onFailure", "monitor": "minReady",
                 "max_failure_ratio": "maxFailureRatio", "order": "order"}
        actions = ("rollback", "pause", "continue") if target == "update" else ("pause", "continue")
        out: dict[str, Any] = {}
        for opt, item in value.items():
            here = ("deploy", key, opt)
            if opt.startswith("x-") or item is None:
                continue
            if opt not in names:
                self.tr.error(self.p(*here), not_supported(f"deploy.{key}.{opt}"), key=True)
                continue
            if opt == "failure_action" and item not in actions:
                self.tr.error(self.p(*here), f"failure_action {item!r}: {', '.join(actions[:-1])} or {actions[-1]}")
                continue
            out[names[opt]] = _duration(item) if opt in ("delay", "monitor") else item
            self.doc.came(("spec", target, names[opt]), self.p(*here))
        if out:
            self.spec[target] = {**self.spec.get(target, {}), **out}
            self.doc.came(("spec", target), self.p("deploy", key))

    def restart_policy(self, value: Map) -> None:
        """deploy.restart_policy as docker compose runs it on one host (its getRestartPolicy):
        `condition` and `max_attempts` into `restart`, over the service's `restart:`; no
        condition is `any` (the Compose Specification's default, and docker-compose 1.29's;
        compose v2 passes Docker an empty policy, "no"); `delay` and `window` are Swarm's:
        `restartDelay`, `restartWindow` (the loader warns that one host has no use for them)."""
        base = ("deploy", "restart_policy")
        for opt, native in (("delay", "restartDelay"), ("window", "restartWindow")):
            if value.get(opt) is not None:      # Swarm's RestartPolicy.Delay, .Window (one host: a warning)
                self.put(native, _duration(value[opt]), *base, opt)
        condition = value.get("condition")
        name = _RESTART_CONDITIONS.get(condition) if isinstance(condition, str | None) else None
        if name is None:
            self.tr.error(self.p(*base, "condition"), f"unknown restart condition {condition!r}: none, on-failure, "
                          "any or unless-stopped")
            return
        attempts = value.get("max_attempts") or 0
        self.put("restart", f"on-failure:{attempts}" if name == "on-failure" and attempts else name, *base)
        if "restart" in self.svc:
            self.tr.warn(self.p("restart"), "restart is overridden by deploy.restart_policy, as docker compose "
                         "does; keep one", key=True)

    def placement(self, value: Map) -> None:
        """deploy.placement: constraints as they are, spread preferences as their label."""
        out: dict[str, Any] = {}
        for opt, item in value.items():
            at = self.p("deploy", "placement", opt)
            if opt == "constraints" and item:
                out["constraints"] = [str(c) for c in item]
                self.doc.came(("spec", "placement", "constraints"), at)
            elif opt == "preferences" and item:
                spread = [p.get("spread") if isinstance(p, dict) else None for p in item]
                for i, label in enumerate(spread):
                    if not label:
                        self.tr.error(self.p("deploy", "placement", opt, i),
                                      not_supported("a preference other than spread", "write {spread: node.labels.KEY}"))
                out["preferences"] = [str(label) for label in spread if label]
                self.doc.came(("spec", "placement", "preferences"), at)
            elif not opt.startswith("x-") and item not in (None, [], {}, 0):
                self.tr.error(at, not_supported(f"deploy.placement.{opt}"), key=True)
        if out:
            self.spec["placement"] = out

    def resources(self) -> None:
        deploy = self.svc.get("deploy") or {}
        res = deploy.get("resources") or {}
        limits = res.get("limits") or {}
        base = ("deploy", "resources")
        for opt in res:
            if opt not in ("limits", "reservations") and not opt.startswith("x-") and res[opt]:
                self.tr.error(self.p(*base, opt), not_supported(f"deploy.resources.{opt}"), key=True)
        reservations = res.get("reservations") or {}
        for opt, value in reservations.items():
            if opt not in ("memory", "cpus") and not opt.startswith("x-") and value not in (None, [], {}):
                self.tr.error(self.p(*base, "reservations", opt), not_supported(
                    f"reservations.{opt}", "only memory and cpus can be reserved (GPUs and generic resources "
                    "are not: the engine has no device scheduler)"), key=True)
        self.reservations(reservations, (*base, "reservations"))
        out: dict[str, Any] = {}
        for native, short, long_ in (("memory", "mem_limit", "memory"), ("cpus", "cpus", "cpus"),
                                     ("pids", "pids_limit", "pids")):
            values = [(v, p) for v, p in ((self.svc.get(short), (short,)), (limits.get(long_), (*base, "limits", long_)))
                      if v is not None]
            parsed = [(self.resource(native, v, p), p) for v, p in values]
            parsed = [(v, p) for v, p in parsed if v is not None]
            if len({v for v, _ in parsed}) > 1:
                self.tr.error(self.p(*parsed[1][1]), f"can't set distinct values on {short!r} and "
                              f"'deploy.resources.limits.{long_}'; keep one")
            if parsed and parsed[0][0] != "unlimited":
                out[native] = parsed[0][0]
                self.doc.came(("spec", "resources", native), self.p(*parsed[0][1]))
        for opt in limits:
            if opt not in ("memory", "cpus", "pids") and not opt.startswith("x-"):
                self.tr.error(self.p(*base, "limits", opt), not_supported(f"limits.{opt}"), key=True)
        for native, value, path in (("memoryReservation", self.svc.get("mem_reservation"), ("mem_reservation",)),
                                    ("memoryReservation", reservations.get("memory"), (*base, "reservations", "memory")),
                                    ("cpuShares", self.svc.get("cpu_shares"), ("cpu_shares",)),
                                    ("cpuset", self.svc.get("cpuset"), ("cpuset",)),
                                    ("memorySwap", self.svc.get("memswap_limit"), ("memswap_limit",)),
                                    ("cpuPeriod", self.svc.get("cpu_period"), ("cpu_period",)),
                                    ("cpuQuota", self.svc.get("cpu_quota"), ("cpu_quota",)),
                                    ("blkioWeight", (self.svc.get("blkio_config") or {}).get("weight"),
                                     ("blkio_config", "weight"))):
            if value is None:
                continue
            if native in ("cpuPeriod", "cpuQuota", "blkioWeight"):
                # integers as compose-go reads them; 0 is compose's "not set" (the engine's default)
                number = self.integer(value, path)
                if number:
                    out[native] = number
                    self.doc.came(("spec", "resources", native), self.p(*path))
                continue
            given: Any = -1 if native == "memorySwap" and str(value) == "-1" else \
                self.resource("memory", value, path) if native in ("memoryReservation", "memorySwap") else \
                int(value) if native == "cpuShares" else str(value)
            if native in out and out[native] != given:
                self.tr.error(self.p(*path), "can't set distinct values on 'mem_reservation' and "
                              "'deploy.resources.reservations.memory'; keep one")
                continue
            out[native] = given
            self.doc.came(("spec", "resources", native), self.p(*path))
        if self.reserved:
            out["reservations"] = self.reserved
        if out:
            self.spec["resources"] = out

    def reservations(self, reservations: Map | dict[str, Any], at: Path_) -> None:
        """`deploy.resources.reservations` memory and cpus: `resources.reservations` (what a Swarm
        node must have free; one host reserves nothing, and the memory is also its soft limit,
        `memoryReservation`, as docker compose sets it)."""
        out: dict[str, Any] = {}
        for opt in ("memory", "cpus"):
            value = reservations.get(opt)
            if value is None:
                continue
            parsed = self.resource(opt, value, (*at, opt))
            if parsed is not None and parsed != "unlimited":
                out[opt] = parsed
                self.doc.came(("spec", "resources", "reservations", opt), self.p(*at, opt))
        if out:
            self.reserved = out

    def integer(self, value: Any, path: Path_) -> int | None:
        """An integer key's value (a YAML integer, or a string of one: compose's schema takes
        both); None, said, when it is not one."""
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"[-+]?[0-9]+", value.strip()):
            return int(value)
        self.tr.error(self.p(*path), f"{value!r} is not an integer; give a whole number")
        return None

    def resource(self, native: str, value: Any, path: Path_) -> Any:
        try:
            if native == "memory":
                amount = int(value) if isinstance(value, int | float) else units.parse_docker_size(str(value))
                return _bytes(amount)
            if native == "cpus":
                cpus = float(value)
                return "unlimited" if cpus == 0 else cpus
            pids = int(value)
            return "unlimited" if pids <= 0 else pids
        except (TypeError, ValueError) as exc:
            self.tr.error(self.p(*path), str(exc))
            return None

    def k_command(self, value: Any) -> None:
        self.put("args", self.words(value, "command"), "command")

    def k_entrypoint(self, value: Any) -> None:
        self.put("command", self.words(value, "entrypoint"), "entrypoint")

    def words(self, value: Any, key: str) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            try:
                return shlex.split(value)
            except ValueError as exc:
                self.tr.error(self.p(key), f"cannot split {value!r} into words: {exc}")
                return []
        return [str(v) for v in value]

    def k_environment(self, value: Any) -> None:
        """Merged with env_file (env())."""

    def k_env_file(self, value: Any) -> None:
        """Merged with environment (env())."""

    def env(self) -> None:
        env: dict[str, str] = {}
        sources: dict[str, Path_] = {}
        environment: Map = self.svc.get("environment") or Map(self.svc.at)
        own = {k: v for k, v in environment.items() if v is not None}
        project = self.tr.model.env

        def lookup(name: str) -> str | None:
            return project.get(name, own.get(name))

        secret: dict[str, str] = {}     # keys from a SOPS-encrypted env_file -> its digest
        for i, item in enumerate(self.svc.get("env_file") or ()):
            values = self.env_file(item, self.p("env_file", i), lookup)
            env.update(values)
            sources.update(dict.fromkeys(values, self.p("env_file", i)))
            digest = self.tr.rd.decrypted.get(self.env_file_path(item))
            for key in values:
                if digest is None:
                    secret.pop(key, None)
                else:
                    secret[key] = digest
        for key, value in environment.items():
            if value is None:
                value = project.get(key)
                if value is None:
                    continue                    # compose leaves an unset variable out
            env[key] = value
            sources[key] = self.p("environment", key)
            secret.pop(key, None)
        self.doc.secret_env = secret
        if env:
            self.spec["env"] = env
            for key, src in sources.items():
                self.doc.came(("spec", "env", key), src)

    def env_file_path(self, item: Map) -> str:
        return os.path.normpath(os.path.join(self.tr.model.directory, str(item.get("path"))))

    def env_file(self, item: Map, at: Path_, lookup: interpolation.Lookup) -> dict[str, str]:
        path = str(item.get("path"))
        if item.get("format") not in (None, ""):
            self.tr.error((*at, "format"), not_supported(f"env_file format {item['format']!r}"))
            return {}
        full = self.env_file_path(item)
        if not os.path.lexists(full) and item.get("required") is False:
            return {}
        content = self.tr.rd.read(full, self.tr.at(at), compose.fmt(at), "env file", dotenv=True)
        if content is None:
            return {}
        try:
            return interpolation.parse_dotenv(content.decode("utf-8"), lookup)
        except UnicodeDecodeError:
            self.tr.error(at, f"env file {path} is not UTF-8 text")
        except interpolation.DotenvError as exc:
            self.tr.error(at, f"env file {path} {exc}")
        return {}

    def k_ports(self, value: Seq) -> None:
        out: list[str | dict[str, Any]] = []
        for i, port in enumerate(value):
            at = ("ports", i)
            text = self.port(port, at)
            if text is not None:
                self.doc.came(("spec", "ports", len(out)), self.p(*at))
                out.append(text)
        if out:
            self.spec["ports"] = out

    def port(self, port: Map, at: Path_) -> str | dict[str, Any] | None:
        for opt in port:
            if opt in ("name", "app_protocol"):
                self.tr.warn(self.p(*at, opt), f"{opt} is descriptive only and not kept", key=True)
            elif opt not in ("target", "published", "host_ip", "protocol", "mode") and not opt.startswith("x-"):
                self.tr.error(self.p(*at, opt), not_supported(f"ports.{opt}"), key=True)
        target = port.get("target")
        if target in (None, ""):        # the schema lets the long form leave it out; compose cannot run it
            self.tr.error(self.p(*at), schemas.required_field("target", "the container's port"))
            return None
        published = port.get("published")
        protocol = str(port.get("protocol") or "tcp")
        if port.get("mode") not in (None, "ingress", "host"):
            self.tr.error(self.p(*at, "mode"), f"{port['mode']!r} is not a port mode (host or ingress)")
        if protocol not in ("tcp", "udp"):
            self.tr.error(self.p(*at), not_supported(f"the {protocol} protocol", "use tcp or udp"))
            return None
        if "-" in str(published or ""):
            self.tr.error(self.p(*at), not_supported(f"a host port range ({published}) for one container port", "name one host port"))
            return None
        host_ip = port.get("host_ip")
        if port.get("mode") == "ingress":       # Swarm's routing mesh: the manifest's long form says it
            if host_ip:
                self.tr.error(self.p(*at, "host_ip"), "a port on Swarm's routing mesh (mode: ingress) is published "
                              "on every address of every node; remove host_ip, or use mode: host", key=True)
                return None
            return {**_published(published), "target": int(str(target)), "protocol": protocol, "mode": "ingress"}
        if published in (None, ""):             # a host port the engine chooses: the long form without published
            return {"target": int(str(target)), "protocol": protocol, **({"hostIP": str(host_ip)} if host_ip else {})}
        head = "" if not host_ip else f"[{host_ip}]:" if ":" in str(host_ip) else f"{host_ip}:"
        return f"{head}{published}:{target}/{protocol}"

    def k_network_mode(self, value: Any) -> None:
        kind, _, target = str(value).partition(":")
        if value in ("host", "none"):
            self.put("networks", [value], "network_mode")
        elif kind == "service" and target in self.tr.data["services"]:
            other = self.tr.data["services"][target]
            self.put("networks", ["container:" + self.tr.container_of(target, other)], "network_mode")
        elif kind == "container" and target:
            self.put("networks", [value], "network_mode")
        elif kind == "service":
            if not self.tr.rd.was_dropped(("services", target)):    # else taken out for its own problem
                self.tr.error(self.p("network_mode"), f"network_mode {value!r}: no service named {target!r} in the project")
        else:
            self.tr.error(self.p("network_mode"), not_supported(
                f"network_mode {value!r}", "use host, none, service:NAME or container:NAME, or networks:"))

    def k_networks(self, value: Map) -> None:
        names: list[str] = []
        entries: list[str | dict[str, Any]] = []
        aliases: list[str] = [self.name]
        for key, cfg in value.items():
            names.append(self.tr.networks.get(key) or key)
            own: dict[str, Any] = {}
            for opt, item in (cfg or {}).items():
                if opt == "aliases":
                    aliases.extend(str(a) for a in item or ())
                elif opt in _ENTRY_KEYS and item not in (None, "", []):
                    setting = self.entry_setting(("networks", key, opt), opt, item)
                    if setting is not None:
                        own[_ENTRY_KEYS[opt]] = setting
                elif not opt.startswith("x-") and item not in (None, [], {}):
                    self.tr.error(self.p("networks", key, opt), not_supported(f"networks.{opt}"), key=True)
            entries.append({"name": names[-1], **own} if own else names[-1])
        # compose's NetworksByPriority: the higher priority first (the main network: eth0, and the
        # one a service-level mac_address is for), then by name
        order = sorted(range(len(names)), key=lambda i: (-_priority(entries[i]), names[i]))
        keys = list(value)
        self.service_mac(entries, keys, order)
        self.spec["networks"] = [entries[i] for i in order]
        for n, i in enumerate(order):
            self.doc.came(("spec", "networks", n), self.p("networks", keys[i]))
            entry = entries[i]
            for opt, native in _ENTRY_KEYS.items():
                if isinstance(entry, dict) and native in entry:
                    came = ("mac_address",) if (opt, n) == ("mac_address", 0) and not (value[keys[i]] or {}).get(opt) \
                        else ("networks", keys[i], opt)     # the service-level one, put on the main network
                    self.doc.came(("spec", "networks", n, native), self.p(*came))
                    if opt == "link_local_ips":
                        for j in range(len(entry[native])):
                            self.doc.came(("spec", "networks", n, native, j), self.p(*came, j))
        if len(value) > 1 and any((cfg or {}).get("aliases") for cfg in value.values()):
            self.tr.warn(self.p("networks"), "aliases apply on every network of the container here, not only on the network naming them")
        self.put("aliases", list(dict.fromkeys(aliases)), "networks")

    def entry_setting(self, at: Path_, opt: str, item: Any) -> Any:
        """A network entry's mac_address, link_local_ips, gw_priority or priority as the manifest
        entry's (None: reported, or a priority of 0, which says what no priority says)."""
        if opt in _ADDRESSES:
            return str(item)
        if opt == "link_local_ips":
            return [str(a) for a in item]
        try:
            number = float(str(item))
        except ValueError:
            number = float("nan")
        if not number.is_integer():
            self.tr.error(self.p(*at), f"{opt} must be a whole number, not {item!r}")
            return None
        return int(number) or None

    def service_mac(self, entries: list[str | dict[str, Any]], keys: list[Any], order: list[int]) -> None:
        """The service-level mac_address, as docker compose applies it: to the main network (the
        first by priority), whose own mac_address, if any, must be the same."""
        mac = self.svc.get("mac_address")
        if mac in (None, "") or not order:
            return
        main = order[0]
        entry = entries[main]
        given = entry.get("macAddress") if isinstance(entry, dict) else None
        if given is not None and str(given).lower() != str(mac).lower():
            self.tr.error(self.p("mac_address"), f"the service-level mac_address {mac} differs from the mac_address "
                          f"{given} of its main network {keys[main]}; remove one of them")
        elif given is None:
            entries[main] = {**entry, "macAddress": str(mac)} if isinstance(entry, dict) else {"name": entry, "macAddress": str(mac)}

    def k_mac_address(self, value: Any) -> None:
        """Put on the main network by k_networks (service_mac): a service with a network_mode has none."""
        if value not in (None, "") and "network_mode" in self.svc:
            self.tr.error(self.p("mac_address"), f"mac_address conflicts with network_mode {self.svc['network_mode']!r}: "
                          "the container has no interface of its own there (Docker refuses it too); remove one of them")

    def k_volumes(self, value: Seq) -> None:
        mounts = self.spec.setdefault("volumes", [])
        for i, vol in enumerate(value):
            mount = self.mount(vol, ("volumes", i))
            if mount is not None:
                self.doc.came(("spec", "volumes", len(mounts)), self.p("volumes", i))
                mounts.append(mount)

    def mount(self, vol: Map, at: Path_) -> Any:
        kind = vol.get("type")
        target = vol.get("target")
        ro = bool(vol.get("read_only", False))
        for opt, item in vol.items():
            here = self.p(*at, opt)
            if opt in ("type", "source", "target", "read_only") or opt.startswith("x-"):
                continue
            if opt == "consistency":
                self.tr.warn(here, f"consistency {item!r} has no effect on Linux", key=True)
            elif opt == "tmpfs" and kind == "tmpfs":
                for t, tv in item.items():
                    if t not in ("size", "mode") and not t.startswith("x-") and tv not in (None, "", 0):
                        self.tr.error(self.p(*at, opt, t), not_supported(f"tmpfs.{t}"), key=True)
            elif opt == "bind" and kind == "bind":
                for b, bv in item.items():
                    if b not in ("create_host_path",) and not b.startswith("x-") and bv not in (None, "", False):
                        self.tr.error(self.p(*at, opt, b), not_supported(f"bind.{b}"), key=True)
            elif item not in (None, {}, False):
                self.tr.error(here, not_supported(f"{opt} options of a {kind} mount"), key=True)
        if target in (None, "") and kind in ("volume", "bind", "tmpfs"):   # the schema lets the long form leave it out
            self.tr.error(self.p(*at), schemas.required_field("target", "the path in the container"))
            return None
        if kind == "volume":
            source = vol.get("source")
            if not source:      # an anonymous volume: the container's own (the manifests' `/path`)
                return {"type": "volume", "target": target, "readOnly": True} if ro else str(target)
            return f"{self.tr.volumes.get(str(source), source)}:{target}" + (":ro" if ro else "")
        if kind == "bind":
            source = str(vol.get("source") or "")
            if not source:
                self.tr.error(self.p(*at), "a bind mount needs a source")
                return None
            if not source.startswith(("/", ".", "~")):
                source = "./" + source
            return f"{source}:{target}" + (":ro" if ro else "")
        if kind == "tmpfs":
            opts = vol.get("tmpfs") or {}
            out: dict[str, Any] = {"type": "tmpfs", "target": target}
            size = opts.get("size")
            if size not in (None, ""):
                size = size if isinstance(size, int) else _docker_size(str(size))
                if size != 0:                       # 0: Docker's "not set", the kernel's default
                    out["size"] = size
            if opts.get("mode") not in (None, ""):
                mode = _file_mode(opts["mode"])     # a manifest writes octal digits
                if self.decimal_mode(opts["mode"], self.p(*at, "tmpfs", "mode")):
                    mode = int(str(opts["mode"]), 8)    # `1777`: the octal digits meant, as before
                out["mode"] = format(mode, "03o") if isinstance(mode, int) and mode >= 0 else str(mode)
            return out
        self.tr.error(self.p(*at, "type"), not_supported(f"{kind} mounts"))
        return None

    def decimal_mode(self, value: Any, path: Path_) -> bool:
        """Whether a tmpfs mode is written as a decimal YAML integer that reads like octal digits
        (`1777`), with a warning: it is read as the octal mode its digits say (what is meant, and
        what reconciler read before), where compose-go takes the number (1777 is mode 3361: no
        sticky bit on a shared /tmp); `01777` or `"1777"` say it the same way to both."""
        if isinstance(value, bool) or not isinstance(value, int) or value < 8 or not re.fullmatch(r"[0-7]+", str(value)):
            return False
        at = self.tr.at(path)
        if at is None:
            return False
        try:                            # the compose file read again (it parsed: within the limits), not
            with open(at.file, "rb") as f:      # as a referenced file, which would count in the revision
                text = f.read(self.tr.rd.limits.file_bytes)
        except OSError:
            return False
        lines = text.decode("utf-8", "replace").splitlines()
        written = lines[at.line - 1][at.column - 1:] if 0 < at.line <= len(lines) else ""
        if not written.startswith(str(value)):  # 0-prefixed: an octal number to YAML
            return False
        self.tr.warn(path, f"mode {value} is read as the octal mode {value}, as meant; compose reads the YAML "
                     f"integer as the decimal number {value} (mode {value:o}): write 0{value} or \"{value}\" to "
                     "say it the same way to both")
        return True

    def k_tmpfs(self, value: Seq) -> None:
        mounts = self.spec.setdefault("volumes", [])
        for i, item in enumerate(value):
            target, _, options = str(item).partition(":")
            mount: dict[str, Any] = {"type": "tmpfs", "target": target}
            for option in filter(None, options.split(",")):
                key, _, val = option.partition("=")
                if key == "size" and val:
                    if (size := _docker_size(val)) != 0:     # 0: no limit but the kernel's
                        mount["size"] = size
                elif key == "mode" and val:
                    mount["mode"] = val
                else:
                    self.tr.error(self.p("tmpfs", i), not_supported(f"the tmpfs option {option!r}", "only size= and mode= are"))
            self.doc.came(("spec", "volumes", len(mounts)), self.p("tmpfs", i))
            mounts.append(mount)

    def k_secrets(self, value: Seq) -> None:
        self.files("secrets", value, lambda name: f"/run/secrets/{name}", 0o400)

    def k_configs(self, value: Seq) -> None:
        self.files("configs", value, lambda name: f"/{name}", 0o444)

    def files(self, kind: str, value: Seq, default_target: Callable[[str], str], default_mode: int) -> None:
        """Service `secrets`/`configs` into `secrets` entries: the top-level entry's `file`."""
        out = self.spec.setdefault("secrets", [])
        for i, item in enumerate(value):
            ref = item if isinstance(item, Map) else {"source": item}
            name = str(ref.get("source") or "")
            if not name:                # the schema lets the long form leave it out
                self.tr.error(self.p(kind, i), schemas.required_field("source", f"the top-level {kind[:-1]} it mounts"))
                continue
            source = self.tr.file_source(kind, name, self.p(kind, i))      # checks the top-level entry
            if source is None:
                continue
            target = str(ref.get("target") or default_target(name))
            if kind == "secrets" and not target.startswith("/"):
                target = f"/run/secrets/{target}"
            entry: dict[str, Any] = {**source, "target": target}
            mode = ref.get("mode")
            entry["mode"] = _file_mode(mode) if mode is not None else default_mode
            for key in ("uid", "gid"):
                if ref.get(key) not in (None, ""):
                    entry[key] = int(str(ref[key]))
            self.doc.came(("spec", "secrets", len(out)), self.p(kind, i))
            out.append(entry)

    def k_restart(self, value: Any) -> None:
        if not (self.svc.get("deploy") or {}).get("restart_policy"):     # that one wins (restart_policy())
            self.put("restart", str(value), "restart")

    def k_healthcheck(self, hc: Map) -> None:
        names = {"start_period": "startPeriod", "start_interval": "startInterval"}
        out: dict[str, Any] = {}
        for opt, value in hc.items():
            here = ("healthcheck", opt)
            if opt.startswith("x-"):
                continue
            if opt == "test":
                out["test"] = ["CMD-SHELL", value] if isinstance(value, str) else [str(v) for v in value]
            elif opt in ("interval", "timeout", "start_period", "start_interval"):
                out[names.get(opt, opt)] = _duration(value)
            elif opt == "retries":
                if int(value) > 0:
                    out["retries"] = int(value)
            elif opt == "disable":
                continue
            else:
                self.tr.error(self.p(*here), not_supported(f"healthcheck.{opt}"), key=True)
                continue
            self.doc.came(("spec", "healthcheck", names.get(opt, opt)), self.p(*here))
        if hc.get("disable") is True:
            out = {"test": ["NONE"]}
            self.doc.came(("spec", "healthcheck", "test"), self.p("healthcheck", "disable"))
        if out:                         # without test: the image's HEALTHCHECK with these timings
            self.put("healthcheck", out, "healthcheck")

    def k_depends_on(self, deps: Map) -> None:
        services = self.tr.data["services"]
        out: list[str] = []
        for dep, cfg in deps.items():
            here = ("depends_on", dep)
            if dep not in services and self.tr.rd.was_dropped(("services", dep)):
                continue                # taken out for its own problem (compose.Reader.dropped)
            if cfg.get("restart") is True:
                self.tr.warn(self.p(*here, "restart"), "restart: true is not honoured: a container is replaced only when its own spec changes")
            other = services.get(dep) or {}
            name = self.tr.container_of(dep, other)
            if cfg.get("condition") == "service_healthy" and dep in services:
                self.healthy_dependency(dep, other, str(name), (*here, "condition"))
            self.doc.came(("spec", "dependsOn", len(out)), self.p(*here))
            out.append(str(name))
        if out:
            order = sorted(range(len(out)), key=lambda i: out[i])
            self.spec["dependsOn"] = [out[i] for i in order]
            moved: dict[Path_, Path_] = {("spec", "dependsOn", n): self.doc.paths[("spec", "dependsOn", i)]
                                         for n, i in enumerate(order)}
            self.doc.paths.update(moved)

    def healthy_dependency(self, dep: str, other: Mapping[str, Any], name: str, here: Path_) -> None:
        """`condition: service_healthy` on `dep`, as compose v2 judges it when it starts the
        dependant: the container's health (its own healthcheck, else its image's HEALTHCHECK)
        must become healthy, and one without a check stops the start ("container ... has no
        healthcheck configured"; docker-compose 1.29: "Service ... is missing a healthcheck
        configuration"). A check the compose file disables can never pass: an error here. None
        in the compose file leaves it to the image, which the loader does not read: a warning
        (reconciler waits for the image's check, and only for the start when there is none)."""
        hc = other.get("healthcheck")
        test = hc.get("test") if isinstance(hc, Map) else None
        if isinstance(hc, Map) and (hc.get("disable") is True or (isinstance(test, list) and test[:1] == ["NONE"])):
            self.tr.error(self.p(*here), f"service {dep!r} has its healthcheck disabled, so service_healthy can "
                          f"never hold (compose stops: container {name} has no healthcheck configured); give "
                          f"{dep} a healthcheck, or wait with condition: service_started")
        elif not test:                  # none, or only timings: the image's test
            self.tr.warn(self.p(*here), f"service {dep!r} has no healthcheck test here, so service_healthy relies "
                         "on its image's HEALTHCHECK: without one compose stops (container has no healthcheck "
                         f"configured) and reconciler waits only for {dep} to start; give {dep} a healthcheck")

    def k_user(self, value: Any) -> None:
        self.put("user", str(value), "user")

    def k_group_add(self, value: Any) -> None:
        if value:
            self.put("groupAdd", [str(g) for g in value], "group_add")

    def k_working_dir(self, value: Any) -> None:
        self.put("workdir", str(value), "working_dir")

    def k_domainname(self, value: Any) -> None:
        if value:
            self.put("domainname", str(value), "domainname")

    def k_hostname(self, value: Any) -> None:
        self.put("hostname", str(value), "hostname")

    def k_read_only(self, value: Any) -> None:
        self.put("readOnly", bool(value), "read_only")

    def k_tty(self, value: Any) -> None:
        if value:
            self.put("tty", True, "tty")

    def k_stdin_open(self, value: Any) -> None:
        if value:
            self.put("stdinOpen", True, "stdin_open")

    def k_init(self, value: Any) -> None:
        self.put("init", bool(value), "init")

    def k_cap_add(self, value: Any) -> None:
        self.put("capAdd", [str(c) for c in value], "cap_add")

    def k_cap_drop(self, value: Any) -> None:
        self.put("capDrop", [str(c) for c in value], "cap_drop")

    def k_privileged(self, value: Any) -> None:
        if value:
            self.put("privileged", True, "privileged")

    def k_devices(self, value: Any) -> None:
        out: list[str] = []
        for i, item in enumerate(value or ()):
            if isinstance(item, dict):
                text = ":".join(str(item[k]) for k in ("source", "target", "permissions") if item.get(k))
            else:
                text = str(item)
            if not text.startswith("/"):
                self.tr.error(self.p("devices", i), not_supported(
                    f"the device {text!r} (a CDI device name)", "name a device node of the host, like /dev/fuse"))
                continue
            self.doc.came(("spec", "devices", len(out)), self.p("devices", i))
            out.append(text)
        if out:
            self.spec["devices"] = out

    def k_security_opt(self, value: Any) -> None:
        for i, item in enumerate(value):
            key, _, flag = str(item).replace("=", ":", 1).partition(":")
            if key == "no-new-privileges" and flag in ("", "true", "false"):
                if flag != "false":
                    self.put("noNewPrivileges", True, "security_opt", i)
            else:
                self.tr.error(self.p("security_opt", i), not_supported(
                    f"security_opt {item!r}", "only no-new-privileges is; the default seccomp profile always applies"))

    def k_stop_signal(self, value: Any) -> None:
        self.put("stopSignal", str(value), "stop_signal")

    def k_stop_grace_period(self, value: Any) -> None:
        self.put("stopTimeout", _duration(value), "stop_grace_period")

    def k_sysctls(self, value: Any) -> None:
        out: dict[str, Any] = {}
        items = value.items() if isinstance(value, dict) else (str(v).partition("=")[::2] for v in value)
        for key, item in items:
            out[str(key).strip()] = "" if item is None else item if isinstance(item, int | float) else str(item).strip()
            self.doc.came(("spec", "sysctls", str(key).strip()), self.p("sysctls", key) if isinstance(value, dict) else self.p("sysctls"))
        if out:
            self.spec["sysctls"] = out
            self.doc.came(("spec", "sysctls"), self.p("sysctls"))

    def k_ulimits(self, value: Map) -> None:
        out: dict[str, Any] = {}
        for name, item in value.items():
            out[name] = item if isinstance(item, int) else {k: v for k, v in item.items() if k in ("soft", "hard")}
            self.doc.came(("spec", "ulimits", name), self.p("ulimits", name))
        if out:
            self.spec["ulimits"] = out
            self.doc.came(("spec", "ulimits"), self.p("ulimits"))

    def k_extra_hosts(self, value: Any) -> None:
        if isinstance(value, dict):
            items = [f"{k}:{a}" for k, v in value.items() for a in (v if isinstance(v, list) else [v])]
        else:
            items = [str(v) for v in value]
        if items:
            self.put("extraHosts", items, "extra_hosts")

    def k_logging(self, value: Map) -> None:
        out: dict[str, Any] = {}
        if value.get("driver"):
            out["driver"] = str(value["driver"])
            self.doc.came(("spec", "logging", "driver"), self.p("logging", "driver"))
        options = {str(k): str(v) for k, v in (value.get("options") or {}).items() if v is not None}
        if options:
            out["options"] = options
            for key in options:
                self.doc.came(("spec", "logging", "options", key), self.p("logging", "options", key))
        if out:
            self.put("logging", out, "logging")

    def k_dns(self, value: Any) -> None:
        if value:
            self.put("dns", [str(v) for v in value], "dns")

    def k_dns_search(self, value: Any) -> None:
        if value:
            self.put("dnsSearch", [str(v) for v in value], "dns_search")

    def k_dns_opt(self, value: Any) -> None:
        if value:
            self.put("dnsOptions", [str(v) for v in value], "dns_opt")

    def k_oom_score_adj(self, value: Any) -> None:
        self.put("oomScoreAdj", int(value), "oom_score_adj")

    def k_shm_size(self, value: Any) -> None:
        try:
            size = int(value) if isinstance(value, int | float) else units.parse_docker_size(str(value))
        except ValueError as exc:
            self.tr.error(self.p("shm_size"), str(exc))
            return
        if size != 0:                   # 0: Docker's "not set", its default 64m
            self.put("shmSize", _bytes(size), "shm_size")

    def k_mem_limit(self, value: Any) -> None:
        """Handled with deploy.resources (resources())."""

    def k_cpus(self, value: Any) -> None:
        """Handled with deploy.resources (resources())."""

    def k_pids_limit(self, value: Any) -> None:
        """Handled with deploy.resources (resources())."""

    def k_mem_reservation(self, value: Any) -> None:
        """Handled with deploy.resources (resources())."""

    def k_cpu_shares(self, value: Any) -> None:
        """Handled with deploy.resources (resources())."""

    def k_cpuset(self, value: Any) -> None:
        """Handled with deploy.resources (resources())."""

    def k_memswap_limit(self, value: Any) -> None:
        """Handled with deploy.resources (resources())."""

    def k_cpu_period(self, value: Any) -> None:
        """Handled with deploy.resources (resources())."""

    def k_cpu_quota(self, value: Any) -> None:
        """Handled with deploy.resources (resources())."""

    def k_blkio_config(self, value: Any) -> None:
        """`weight`: handled with deploy.resources (resources()); the per-device weights and
        throttles the manifest language cannot say (runtime.base.Resources has no place for
        them): each an error naming it."""
        for opt, given in (value or {}).items():
            if opt != "weight" and not opt.startswith("x-") and given not in (None, [], {}):
                self.tr.error(self.p("blkio_config", opt), not_supported(
                    f"blkio_config.{opt}", "a container's block I/O can be weighted (blkio_config.weight), not "
                    "limited or weighted per device yet; remove it"), key=True)



def _published(published: Any) -> dict[str, int]:
    """A long-form port's `published` key: absent when compose leaves the host port to the engine."""
    return {} if published in (None, "") else {"published": int(str(published))}


def _replicas(svc: Any) -> Any:
    """How many containers a service runs (`scale`, else `deploy.replicas`, else 1)."""
    deploy = svc.get("deploy") or {}
    return next((v for v in (svc.get("scale"), deploy.get("replicas")) if v is not None), 1)


def _container(project: str, service: str, svc: Any) -> str:
    """The Container a service becomes: `<project>-<service>-1`, or `<project>-<service>` with
    replicas (run as `-1` .. `-N`)."""
    return f"{project}-{service}-1" if _replicas(svc) == 1 else f"{project}-{service}"


def _manifest(kind: str, name: str, labels: dict[str, str], spec: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = dict(sorted(labels.items()))
    order = list(schemas.schema(kind)["properties"]["spec"]["properties"])    # the reference's order
    spec = {k: spec[k] for k in sorted(spec, key=order.index)}
    return {"apiVersion": "reconciler/v1", "kind": kind, "metadata": meta, "spec": spec}


def _reference(image: str) -> str:
    """An image as a manifest names it: `nginx` is Docker's `nginx:latest`."""
    return image if any(c in image for c in "/:@") else f"{image}:latest"


def _file_mode(value: Any) -> Any:
    """A compose file mode (a secret's, a config's, a tmpfs's) as a number, as compose-go reads
    one (types.FileMode): a YAML integer is the mode itself (`0440`, `01777` and `0o1777` are
    octal integers to YAML), a string is octal digits (`"1777"`); anything else is left as it
    is, for the manifest's checks to report at the key."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"(0o)?[0-7]+", value.strip()):
        return int(value.strip().removeprefix("0o"), 8)
    return value


def _docker_size(text: str) -> str | int:
    """A size as compose and the docker CLI write it (`64m`: binary) as a manifest writes it."""
    try:
        return _bytes(units.parse_docker_size(text))
    except ValueError:
        return text                     # the loader reports it at this key


def _bytes(amount: int) -> str | int:
    for unit, size in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if amount and amount % size == 0:
            return f"{amount // size}{unit}"
    return amount


_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(value: Any) -> Any:
    """A compose duration (Go's syntax) as a manifest writes it: kept when the manifest syntax
    reads it too, else seconds; left as it is when it is none (the loader then reports it)."""
    if not isinstance(value, str):
        return value
    try:
        units.parse_duration(value)
        return value
    except ValueError:
        pass
    parts = re.findall(r"([0-9]+(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)", value)
    if parts and "".join(a + b for a, b in parts) == value:
        return round(sum(float(a) * _GO_UNITS[b] for a, b in parts), 9)
    return value


# -- documents -------------------------------------------------------------------------------------


def _locator(tr: _Translator, doc: _Doc) -> Any:
    def locate(path: Path_, key: bool) -> tuple[str, int, int, str]:
        for n in range(len(path), -1, -1):
            source = doc.paths.get(path[:n])
            if source is not None:
                break
        else:
            source = doc.at
        exact = n == len(path)
        at = tr.at(source, key=key and exact) or tr.at(doc.at)
        if at is None:
            return (tr.model.files[0], 0, 0, compose.fmt(source))
        return (at.file, at.line, at.column, compose.fmt(source))
    return locate


_ORDER = {"Network": 0, "Volume": 1, "Image": 2, "Container": 3}


STACK_LABEL = "com.docker.stack.namespace"
WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"
CONFIG_FILES_LABEL = "com.docker.compose.project.config_files"


def location_labels(model: compose.Model, live: str | None = None) -> dict[str, str]:
    """compose's labels of where a project is, for its containers: its project directory
    (`working_dir`) and its compose files, comma-separated in the order they merge
    (`config_files`), as docker compose stamps them and `docker compose ls`, Portainer or Dozzle
    read them; `live`: the place the project directory (a revision copy) stands for, where they
    are named. They vary with the checkout's place, so they are no part of the documents (whose
    content is the revision) nor of a spec hash (`Container.location_labels`)."""
    def placed(path: str) -> str:
        if live is None:
            return path
        return os.path.normpath(os.path.join(os.path.abspath(live), os.path.relpath(path, model.directory)))

    return {WORKING_DIR_LABEL: placed(model.directory), CONFIG_FILES_LABEL: ",".join(placed(f) for f in model.files)}


def documents(model: compose.Model, rd: compose.Reader, *, cluster: bool = False) -> list[reading.Document]:
    """The native documents of `model`, in the order networks, volumes, images, containers;
    with `cluster` (spec.load's: Swarm) read as `docker stack deploy` reads a stack file (a
    service is `<project>_<service>`: `_Translator.container_of`).

    Problems are reported to `rd`; the documents of a project with problems are still returned
    (the loader checks them too, so one run reports everything)."""
    tr = _Translator(model, rd, cluster=cluster)
    docs = tr.run()
    out: list[reading.Document] = []
    for i, d in enumerate(sorted(docs, key=lambda d: _ORDER[d.kind])):
        at = tr.at(d.at, key=True) or Origin(model.files[0], 1, 1)
        out.append(reading.Document(file=at.file, base=model.directory, index=i, line=at.line, column=at.column,
                                    data=d.data, locate=_locator(tr, d), secret_env=d.secret_env,
                                    environ=model.env))
    return out


def _priority(entry: str | dict[str, Any]) -> int:
    return 0 if isinstance(entry, str) else int(entry.get("priority") or 0)
