"""`SwarmRuntime`: the Runtime protocol on a Docker Swarm cluster, through a manager's Engine API.

A manifest's Container is a service, its Network an overlay network, its Volume a volume;
the mapping is `services.py` (docs/swarm.md has the table). The cluster does the work:
it places the copies on its nodes, the nodes pull the images, an update rolls out task by
task and Swarm rolls a failed one back. This backend adds what the reconciler needs on top:

- images are pinned by digest, resolved through reconciler's own registry client (the
  planner pins the reference); the credentials reconciler has for that registry go to the
  manager as X-Registry-Auth, which hands them to the nodes that pull;
- `wait_rollout` follows a create or an update until every wanted copy runs (healthy where a
  healthcheck exists), and fails naming the service and Swarm's task error when Swarm rolled
  the update back, paused it, or it had not converged by the deadline; a job service's until
  the copies of its current run completed, failing once one failed and Swarm runs none again
  (`run_again`, `reconcile start`'s, runs a job that is over again);
- a removal returns once the service's tasks stopped, so the networks and volumes it used can
  go next;
- secret files become Swarm secrets named by content (the file's digest; a sops-encrypted one's
  is the keyed digest of its values), made before
  the service that names them and removed once a rollout is over and its spec no longer does.

There is no image store of its own (`list_images` is empty, `pull_image` refuses) and no
exec, kill or wait of a single copy: those happen on a node (`docker exec` there).
Volumes are node-local in Swarm: the manager creates, lists and removes them on itself;
another node creates a volume its copy mounts on first use.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reconciler.runtime import base, errors
from reconciler.runtime.docker import api as docker_api
from reconciler.runtime.docker import backend as docker_backend
from reconciler.runtime.swarm import rollout, services

if TYPE_CHECKING:
    from reconciler import registry_client as rc

__all__ = ["SwarmRuntime", "TaskRow"]

_POLL = 0.5
_REMOVE_MARGIN = 30.0       # seconds beyond a task's stop grace period that a removal waits
_ALLOCATE_WAIT = 10.0       # seconds a network may take to get its driver and subnet, or to go
_VOLUME_WAIT = 15.0         # seconds a removed service's container may still hold a volume
_OWNER = "reconciler.owner"             # labels of the Swarm secrets made for a service
_SERVICE = "reconciler.service"
_TARGET = "reconciler.target"


def _rc() -> Any:
    from reconciler import registry_client

    return registry_client


class TaskRow:
    """One task of a service as `reconcile ps --runtime swarm` shows it."""

    def __init__(self, service: str, task: Mapping[str, Any], nodes: Mapping[str, str]) -> None:
        status = task.get("Status") or {}
        self.service = service
        self.id = str(task.get("ID", ""))
        self.slot = task.get("Slot")
        self.name = f"{service}.{self.slot}" if self.slot else f"{service}.{task.get('NodeID', '')[:12]}"
        self.node = nodes.get(str(task.get("NodeID", "")), str(task.get("NodeID", ""))[:12])
        self.desired = str(task.get("DesiredState", ""))
        self.state = str(status.get("State", ""))
        self.since = str(status.get("Timestamp", ""))
        self.error = str(status.get("Err") or "")
        self.image = str(((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Image", ""))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "node": self.node, "desired": self.desired,
                "state": self.state, "since": self.since, "error": self.error, "image": self.image}


class SwarmRuntime:
    """Services, overlay networks and volumes of a Swarm cluster, through one manager."""

    name = "swarm"

    def __init__(
        self,
        engine: docker_api.EngineAPI,
        *,
        registry_client_factory: Callable[[], rc.RegistryClient] | None = None,
        credentials: rc.CredentialStore | None = None,
        poll: float = _POLL,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api = engine
        self._local = docker_backend.DockerRuntime(engine=engine)   # the manager's own networks, volumes
        self._client_factory = registry_client_factory
        self._credentials = credentials
        self._poll = poll
        self._clock = clock
        self._sleep = sleep

    @classmethod
    def from_docker_host(cls, host: str | None) -> SwarmRuntime:
        """The manager `DOCKER_HOST` names (default: the local socket), checked to be one."""
        rt = cls(docker_api.from_docker_host(host, what="swarm manager"))
        try:
            rt.check_manager()
        except errors.RuntimeBackendError:
            rt.close()
            raise
        return rt

    def check_manager(self) -> None:
        """Raise Unavailable unless the engine is an active Swarm manager."""
        swarm = self.api.info().get("Swarm") or {}
        if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
            state = swarm.get("LocalNodeState") or "unknown"
            raise errors.Unavailable(
                f"the engine at {self.api.socket_path} is not a Swarm manager (swarm state: {state})",
                hint="run `docker swarm init` there, or point DOCKER_HOST at a manager of the cluster")

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> SwarmRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- images: resolved in the registry; the nodes pull -------------------------------------

    def _registry(self) -> rc.RegistryClient:
        if self._client_factory is not None:
            return self._client_factory()
        client: rc.RegistryClient = _rc().RegistryClient(credentials=self._credential_store())
        return client

    def _credential_store(self) -> rc.CredentialStore:
        if self._credentials is None:
            self._credentials = _rc().CredentialStore()
        return self._credentials

    def _parse(self, ref: str) -> rc.Reference:
        rcm = _rc()
        try:
            parsed: rc.Reference = rcm.references.parse(ref)
        except rcm.errors.InvalidReference as exc:
            raise errors.InvalidArgument(f"invalid image reference {ref!r}: {exc}") from None
        return parsed

    def resolve_digest(self, ref: str) -> str:
        r = self._parse(ref)
        try:
            with self._registry() as client:
                return str(client.resolve(r).digest)
        except _rc().RegistryError as exc:
            raise errors.from_registry(exc) from None      # its message says "resolve REF: ..."

    def registry_auth(self, ref: str) -> str | None:
        """The X-Registry-Auth value for `ref`'s registry (base64url JSON, as the docker CLI
        sends it), or None when reconciler has no credentials for it."""
        self._parse(ref)
        return docker_backend.registry_auth(self._credential_store(), ref)

    def pull_image(self, ref: str, *, progress: base.ProgressCallback | None = None) -> base.ImageInfo:
        raise errors.Unavailable(f"pull {ref}: a Swarm cluster has no image store of its own",
                                 hint="its nodes pull the images their services run")

    def list_images(self) -> list[base.ImageInfo]:
        return []

    def inspect_image(self, ref: str) -> base.ImageInfo:
        """The image as its registry has it now (digest only: a cluster stores no image)."""
        digest = ref.rpartition("@")[2] if "@sha256:" in ref else self.resolve_digest(ref)
        return base.ImageInfo(id=digest, digest=digest, repo_tags=(ref,), size=0, created=None, config={})

    def remove_image(self, ref: str, *, force: bool = False) -> list[str]:
        raise errors.Unavailable(f"remove image {ref}: a Swarm cluster has no image store of its own",
                                 hint="remove it on the nodes (`docker image rm` there)")

    # -- services ----------------------------------------------------------------------------

    def _tasks(self, service_ids: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
        by_service: dict[str, list[dict[str, Any]]] = {}
        flt = {"service": service_ids} if service_ids else None
        for t in self.api.task_list(flt):
            by_service.setdefault(str(t.get("ServiceID", "")), []).append(t)
        return by_service

    def _up_to_date(self, service_ids: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
        """Each service's tasks of its current spec (Swarm's own rule, the `_up-to-date` filter):
        what a rollout (`rollout.look`) and a service's state count."""
        by_service: dict[str, list[dict[str, Any]]] = {}
        for t in self.api.task_list({**({"service": service_ids} if service_ids else {}), "_up-to-date": ["true"]}):
            by_service.setdefault(str(t.get("ServiceID", "")), []).append(t)
        return by_service

    def list_containers(self, selector: Mapping[str, str] | None = None) -> list[base.ContainerState]:
        """Services (matching `selector` by their labels), each with its tasks' state."""
        found = self.api.service_list(selector)
        if not found:
            return []
        tasks, current = self._tasks(), self._up_to_date()
        return [services.service_state(s, tasks.get(str(s["ID"]), []), current.get(str(s["ID"]), [])) for s in found]

    def _service(self, name_or_id: str) -> dict[str, Any]:
        return self.api.service_inspect(name_or_id)       # by name, id or id prefix, as docker does

    def inspect_container(self, name_or_id: str) -> base.ContainerState:
        svc = self._service(name_or_id)
        sid = str(svc["ID"])
        return services.service_state(svc, self._tasks([sid]).get(sid, []), self._up_to_date([sid]).get(sid, []))

    def refusals(self, config: base.ContainerConfig) -> list[str]:
        """What of `config` a service cannot have, on this manager's Engine API version."""
        return services.refusals(config, api_version=str(self.api.version().get("ApiVersion", "0")))

    def service_settings(self, config: base.ContainerConfig) -> Mapping[str, Any]:
        return services.settings(config)

    def _request_version(self, config: base.ContainerConfig) -> str | None:
        return services.request_version(config, self.api.api_version)

    def _body(self, config: base.ContainerConfig) -> dict[str, Any]:
        refused = self.refusals(config)
        if refused:
            raise errors.InvalidArgument(f"container {config.name} cannot run as a Swarm service: "
                                         + "; ".join(refused))
        return services.service_spec(config, self._ensure_secrets(config), self._volume_drivers(config))

    def _volume_drivers(self, config: base.ContainerConfig) -> dict[str, tuple[str, Mapping[str, str]]]:
        """The driver and options of each volume `config` mounts, as the manager made it (volumes
        are ensured before the services that mount them), for the nodes that make it next."""
        names = {m.source for m in config.mounts if m.type == "volume"}
        if not names:
            return {}
        return {str(v["Name"]): (str(v.get("Driver") or "local"), dict(v.get("Options") or {}))
                for v in self.api.volume_list() if v.get("Name") in names}

    # -- secrets: a Swarm secret per secret file and content, made before the service needs it --

    def _ensure_secrets(self, config: base.ContainerConfig) -> dict[str, str]:
        """The id of each Swarm secret `config`'s secret files are in, by name; a missing one is
        created from the file's content. A config read back from a record has no content: its
        secrets must exist still (a rollback to them finds them; a pruned one cannot come back)."""
        wanted = {services.secret_name(config.name, m): m for m in config.mounts if m.type == "secret"}
        if not wanted:
            return {}
        owner = config.labels.get(_OWNER, "")
        have = {str(x["Spec"]["Name"]): str(x["ID"])
                for x in self.api.secret_list({_OWNER: owner, _SERVICE: config.name})}
        for name, m in sorted(wanted.items()):
            if name in have:
                continue
            if m.data is None:
                raise errors.InvalidArgument(
                    f"service {config.name}: the Swarm secret {name} for {m.target} is gone and no record keeps "
                    "its content", hint="apply the manifests again (they read the file anew)")
            body = {"Name": name, "Data": base64.b64encode(m.data).decode(),
                    "Labels": {_OWNER: owner, _SERVICE: config.name, _TARGET: m.target}}
            try:
                have[name] = str(self.api.secret_create(body)["ID"])
            except (errors.AlreadyExists, errors.Conflict):     # made meanwhile: the same content by its name
                have.update({str(x["Spec"]["Name"]): str(x["ID"]) for x in self.api.secret_list({_OWNER: owner})})
        return {name: have[name] for name in wanted}

    def _prune_secrets(self, owner: str, service: str) -> None:
        """Remove the Swarm secrets made for `service` that its spec no longer names: called once
        a rollout is over (done, or rolled back) or the service removed, so the spec Swarm rolls
        back to during an update keeps its secrets. (`docker service rollback` after that finds
        the previous secret gone: apply the previous revision instead, `reconcile rollback`.)"""
        if not owner:
            return
        used: set[str] = set()
        for svc in self.api.service_list():
            cspec = (((svc.get("Spec") or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {})
            used.update(str(ref.get("SecretID", "")) for ref in cspec.get("Secrets") or ())
        for x in self.api.secret_list({_OWNER: owner, _SERVICE: service}):
            if str(x["ID"]) in used:
                continue
            try:
                self.api.secret_remove(str(x["ID"]))
            except (errors.NotFound, errors.Conflict, errors.InvalidArgument):
                pass        # gone meanwhile, or taken by an update that began meanwhile: the next pass

    def create_container(self, config: base.ContainerConfig) -> str:
        """Create the service (Swarm starts its copies at once); its id."""
        created = self.api.service_create(self._body(config), registry_auth=self.registry_auth(config.image),
                                          api_version=self._request_version(config))
        return str(created["ID"])

    def update_container(self, name_or_id: str, config: base.ContainerConfig) -> None:
        """Change the service to `config` in place; Swarm rolls it out (see wait_rollout)."""
        body = self._body(config)
        svc = self._service(name_or_id)
        self.api.service_update(str(svc["ID"]), int((svc.get("Version") or {}).get("Index", 0)), body,
                                registry_auth=self.registry_auth(config.image),
                                api_version=self._request_version(config))

    def start_container(self, name_or_id: str) -> None:
        """A service runs from its creation on: nothing to start (NotFound if it is missing).
        (Not even a job whose run failed: the executor's start follows a create, and a job that
        failed meanwhile would run twice; `run_again` is `reconcile start`'s.)"""
        self._service(name_or_id)

    def run_again(self, name_or_id: str) -> None:
        """`reconcile start` of a service: a job whose run is over (failed, or completed: as a
        host's `start` of an exited container) runs again: its task spec's ForceUpdate counter
        moves on, which starts Swarm's next job iteration. Any other service runs already:
        nothing to do (NotFound if it is missing)."""
        svc = self._service(name_or_id)
        sid = str(svc["ID"])
        run = services.job_run(svc, self._tasks([sid]).get(sid, []))
        if run is None or run.outcome == "running":
            return
        spec = dict(svc.get("Spec") or {})
        task = dict(spec.get("TaskTemplate") or {})
        task["ForceUpdate"] = int(task.get("ForceUpdate") or 0) + 1
        spec["TaskTemplate"] = task
        image = str(((task.get("ContainerSpec") or {}).get("Image")) or "")
        self.api.service_update(sid, int((svc.get("Version") or {}).get("Index", 0)), spec,
                                registry_auth=self.registry_auth(image) if image else None)

    def stop_container(self, name_or_id: str, *, timeout: float | None = None) -> None:
        """A service is not stopped, only removed (which stops its copies): nothing to do."""
        self._service(name_or_id)

    def remove_container(self, name_or_id: str, *, force: bool = False) -> None:
        """Remove the service, then wait (up to its stop grace period and a margin) until Swarm
        dropped its tasks, which it does once their containers are removed: the networks and
        volumes they used are free then."""
        svc = self._service(name_or_id)
        sid = str(svc["ID"])
        self.api.service_remove(sid)
        deadline = self._clock() + services.stop_grace(svc) + _REMOVE_MARGIN
        # (listed whole: a filter by a removed service finds nothing)
        while self._clock() < deadline and any(t.get("ServiceID") == sid for t in self.api.task_list()):
            self._sleep(self._poll)
        self._prune_secrets(str(((svc.get("Spec") or {}).get("Labels") or {}).get(_OWNER, "")),
                            str((svc.get("Spec") or {}).get("Name", "")))

    def wait_rollout(self, name_or_id: str, *, timeout: float, stop: Callable[[], bool] | None = None) -> None:
        if services.job_run(self._service(name_or_id), []) is not None:
            self._wait_job(name_or_id, timeout=timeout, stop=stop)
            return
        began = self._clock()
        settled_at: float | None = None
        reason = ""                 # Swarm's message when it began to roll back (the why)
        while True:
            svc = self._service(name_or_id)
            sid = str(svc["ID"])
            now = rollout.look(svc, self._up_to_date([sid]).get(sid, []))
            where = rollout.step(now)
            if now.state == "rollback_started":
                reason = reason or now.message
            if where is rollout.Step.DONE:
                self._prune_secrets_of(svc)
                return
            if where is rollout.Step.PAUSED or (where is rollout.Step.ROLLED_BACK and (
                    now.running >= now.wanted or self._clock() - began >= timeout)):
                # (a rollback is reported once the previous spec runs again, or at the deadline)
                if where is rollout.Step.ROLLED_BACK:
                    self._prune_secrets_of(svc)
                raise self._failed(svc, now, where, reason=reason)
            if where is rollout.Step.SETTLED:
                settled_at = self._clock() if settled_at is None else settled_at
                if self._clock() - settled_at >= now.monitor:
                    self._prune_secrets_of(svc)
                    return
            else:
                settled_at = None
            if stop is not None and stop():
                raise errors.Cancelled(f"service {now.name}: {now.counts()}; not waited for, the reconciler "
                                       "is stopping", hint="Swarm carries on with the rollout")
            if self._clock() - began >= timeout:
                raise self._failed(svc, now, where, timeout=timeout)
            self._sleep(self._poll)

    def _wait_job(self, name_or_id: str, *, timeout: float, stop: Callable[[], bool] | None) -> None:
        """Until every copy of the job's current run completed (exited 0); RolloutFailed naming
        the copy's exit code and Swarm's task error once one failed and Swarm runs none again,
        or when the run has not completed by `timeout`."""
        began = self._clock()
        while True:
            svc = self._service(name_or_id)
            sid, name = str(svc["ID"]), str((svc.get("Spec") or {}).get("Name", name_or_id))
            run = services.job_run(svc, self._tasks([sid]).get(sid, []))
            where = rollout.Step.WAIT if run is None else rollout.job_step(run)
            if run is None or where is not rollout.Step.WAIT:
                self._prune_secrets_of(svc)         # (a job has no rollback that needs the previous ones)
            if run is None or where is rollout.Step.DONE:
                return
            err = str(((run.failed or {}).get("Status") or {}).get("Err") or "")
            tail = f"; task error: {err}" if err else ""
            if where is rollout.Step.FAILED:
                raise errors.RolloutFailed(f"job {name} failed: a copy exited with code {run.exit_code} "
                                           f"({run.counts()}){tail}",
                                           hint=f"`reconcile ps --runtime swarm -a` shows its tasks; `docker service "
                                           f"logs {name}` their output")
            if stop is not None and stop():
                raise errors.Cancelled(f"job {name}: {run.counts()}; not waited for, the reconciler is stopping",
                                       hint="Swarm carries on with the job")
            if self._clock() - began >= timeout:
                raise errors.RolloutFailed(f"job {name} has not completed after {timeout:g}s: {run.counts()}{tail}",
                                           hint="raise --timeout, or see `reconcile ps --runtime swarm -a`")
            self._sleep(self._poll)

    def _prune_secrets_of(self, svc: Mapping[str, Any]) -> None:
        spec = svc.get("Spec") or {}
        self._prune_secrets(str((spec.get("Labels") or {}).get(_OWNER, "")), str(spec.get("Name", "")))

    def _failed(
        self, svc: Mapping[str, Any], now: rollout.Look, where: rollout.Step, *, timeout: float | None = None,
        reason: str = "",
    ) -> errors.RolloutFailed:
        err = services.task_error(self.api.task_list({"service": [str(svc["ID"])]}), since=now.since,
                                  blame=reason or now.message)
        tail = f"; task error: {err}" if err else ""
        if where is rollout.Step.ROLLED_BACK:
            return errors.RolloutFailed(f"service {now.name}: Swarm rolled the update back ({reason or now.message})"
                                        f"{tail}", rolled_back=True,
                                        hint="`reconcile ps --runtime swarm -a` shows its tasks")
        if where is rollout.Step.PAUSED:
            return errors.RolloutFailed(
                f"service {now.name}: Swarm paused the update ({now.message}){tail}",
                hint="fix the manifest and apply again, or `docker service rollback` it")
        phase = f"; update {now.state.replace('_', ' ')}" if now.state else ""
        if where is rollout.Step.SETTLED:       # all there at this look, but not for the monitor period
            phase += f", not yet for {now.monitor:g}s in a row"
        return errors.RolloutFailed(f"service {now.name} has not converged after {timeout:g}s: "
                                    f"{now.counts()}{phase}{tail}",
                                    hint="raise --timeout, or see `reconcile ps --runtime swarm -a`")

    def tasks(self, selector: Mapping[str, str] | None = None, *, all_tasks: bool = False) -> dict[str, list[TaskRow]]:
        """Each service's tasks (Swarm's current ones, a job's those of its current run, or its
        whole kept history), by service."""
        found = self.api.service_list(selector)
        nodes = {str(n["ID"]): str((n.get("Description") or {}).get("Hostname", "")) for n in self.api.node_list()}
        by_id = self._tasks() if found else {}
        out: dict[str, list[TaskRow]] = {}
        for s in sorted(found, key=lambda s: str((s.get("Spec") or {}).get("Name", ""))):
            name = str((s.get("Spec") or {}).get("Name", ""))
            mine = by_id.get(str(s["ID"]), [])
            run = services.current_run(s, mine)        # a job's: the copies of its current run
            ids = None if run is None else {t.get("ID") for t in run}
            rows = [TaskRow(name, t, nodes) for t in mine
                    if all_tasks or (t.get("DesiredState") == "running" if ids is None else t.get("ID") in ids)]
            out[name] = sorted(rows, key=lambda r: (str(r.slot or ""), r.node, services.timestamp(r.since)))
        return out

    def kill_container(self, name_or_id: str, signal: str = "KILL") -> None:
        raise self._on_node("kill", name_or_id)

    def wait_container(self, name_or_id: str, *, timeout: float | None = None) -> int:
        raise self._on_node("wait for", name_or_id)

    def exec(
        self, name_or_id: str, argv: list[str], *, tty: bool = False, user: str | None = None,
        workdir: str | None = None, env: Sequence[str] = (),
    ) -> base.ExecResult:
        raise self._on_node("exec in", name_or_id)

    @staticmethod
    def _on_node(what: str, name: str) -> errors.Unavailable:
        return errors.Unavailable(f"cannot {what} service {name}: its copies run on the cluster's nodes",
                                  hint="run `docker ps` and `docker exec` on the node that runs the copy")

    def logs(
        self, name_or_id: str, *, follow: bool = False, since: str | None = None, tail: int | None = None,
    ) -> Iterator[base.LogLine]:
        svc = self._service(name_or_id)
        tty = bool((((svc.get("Spec") or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("TTY"))
        param = None if since is None else docker_backend.since_param(since)
        return self._logs(str(svc["ID"]), tty=tty, follow=follow, since=param, tail=tail)

    def _logs(self, sid: str, *, tty: bool, follow: bool, since: str | None, tail: int | None) -> Iterator[base.LogLine]:
        with self.api.service_logs(sid, follow=follow, since=since,
                                   tail="all" if tail is None else str(tail)) as chunks:
            frames = ((1, c) for c in chunks) if tty else docker_backend.demux(chunks)
            yield from docker_backend.log_lines(frames)

    # -- networks: overlay -------------------------------------------------------------------

    def list_networks(self, selector: Mapping[str, str] | None = None) -> list[base.NetworkState]:
        return self._local.list_networks(selector)

    def ensure_network(self, config: base.NetworkConfig) -> base.NetworkState:
        """An attachable overlay network (standalone containers may join it too), with the overlay
        driver's options of `config` (`encrypted`, ...) as written, as docker stack deploy passes
        a compose network's driver_opts."""
        try:
            return self._verify_network(config, self._network(config.name))
        except errors.NotFound:
            pass
        ipam: dict[str, Any] = {"Driver": "default", "Config": []}
        if config.subnet:
            pool = {"Subnet": config.subnet, **({"Gateway": config.gateway} if config.gateway else {})}
            ipam["Config"] = [pool]
        if config.ipv6:
            ipam["Config"].append({"Subnet": config.ipv6_subnet or docker_backend.ula_subnet()})
        body = {"Name": config.name, "Driver": "overlay", "CheckDuplicate": True, "Attachable": True,
                "Internal": config.internal, "IPAM": ipam, "Labels": dict(config.labels), "EnableIPv6": config.ipv6,
                "Options": {**config.driver_opts, "com.docker.network.driver.mtu": str(config.mtu)}}
        try:
            self.api.network_create(body)
        except (errors.AlreadyExists, errors.Conflict):
            pass            # made meanwhile by someone else: verified below
        return self._verify_network(config, self._network(config.name))

    def _network(self, name: str) -> dict[str, Any]:
        """The cluster's network `name`, once the manager allocated it (a network made a moment
        ago has no driver and no subnet yet)."""
        deadline = self._clock() + _ALLOCATE_WAIT
        while True:
            attrs = self.api.network_inspect(name, scope="swarm")
            if attrs.get("Name") != name:
                raise errors.NotFound(f"swarm: network {name} not found")
            if attrs.get("Driver") or self._clock() >= deadline:
                return attrs
            self._sleep(self._poll)

    def _verify_network(self, config: base.NetworkConfig, attrs: Mapping[str, Any]) -> base.NetworkState:
        state = docker_backend.verify_network(config, attrs, driver="overlay", gateway=False)
        options = attrs.get("Options") or {}
        lacking = sorted(k for k in config.driver_opts if k not in options)
        if lacking:     # (their values are the manager's to normalise: a VXLAN id list, say)
            raise errors.Conflict(
                f"network {config.name} exists with a different configuration: driver options lack "
                f"{', '.join(lacking)}", hint=f"remove it (`docker network rm {config.name}`) so it can be re-created")
        return state

    def remove_network(self, name: str) -> None:
        """Remove the network; return once the manager no longer lists it (its node lets go of
        a removed overlay network a moment later)."""
        self._local.remove_network(name)
        deadline = self._clock() + _ALLOCATE_WAIT
        while self._clock() < deadline and any(n.get("Name") == name for n in self.api.network_list()):
            self._sleep(self._poll)

    # -- volumes: on the manager (Swarm volumes are node-local) ------------------------------

    def list_volumes(self, selector: Mapping[str, str] | None = None) -> list[base.VolumeState]:
        return self._local.list_volumes(selector)

    def ensure_volume(self, config: base.VolumeConfig) -> base.VolumeState:
        return self._local.ensure_volume(config)

    def remove_volume(self, name: str) -> None:
        """Remove the volume; while a removed service's container still holds it (the node
        removes them a moment after Swarm drops the task), try again for a few seconds."""
        deadline = self._clock() + _VOLUME_WAIT
        while True:
            try:
                self._local.remove_volume(name)
                return
            except errors.Conflict:
                if self._clock() >= deadline:
                    raise
            self._sleep(self._poll)


def _conforms(rt: SwarmRuntime) -> tuple[base.Runtime, base.ServiceEngine]:
    """mypy checks here that the backend implements the protocol and its capability (Swarm runs
    and restarts the copies itself; it renames, builds, pushes and transfers archives not)."""
    return rt, rt
