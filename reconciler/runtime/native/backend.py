"""NativeRuntime: the embedded engine behind the `Runtime` protocol.

It composes the parts: the image store (images.py, imported when first needed), the
container manager (containers.py: bundle, conmon, runc, cgroups, volumes), the optional
bridge networking (a `NetworkAttacher`, e.g. network.NetworkManager), restart policies
(restart.py) and healthchecks (health.py). Nothing heavy is imported for a container on
networks "none" or "host", so `run`, `ps` and `logs` start fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol, cast

from reconciler.runtime import base
from reconciler.runtime import errors as rterrors
from reconciler.runtime.native import bundle, containers, health, logs, restart
from reconciler.runtime.native.config import NativeConfig

__all__ = ["ImageSource", "NativeRuntime", "command_line", "inspect_document"]


class ImageSource(Protocol):
    """Where containers get their image: id, full OCI config, layer dirs (bottom first)."""

    def resolve(self, ref: str) -> tuple[str, Mapping[str, Any], list[Path]]: ...


class _StoreImages:
    """The image store (images.ImageStore) seen as an ImageSource, loaded on first use."""

    def __init__(self, config: NativeConfig, used: Callable[[], set[str]]) -> None:
        self.config = config
        self.used = used
        self._store: Any = None

    @property
    def store(self) -> Any:
        if self._store is None:
            try:
                mod = importlib.import_module("reconciler.runtime.native.images")
            except ImportError as exc:  # pragma: no cover - during development only
                raise rterrors.Unavailable("the native image store is not available") from exc
            self._store = mod.ImageStore(self.config, container_image_ids=self.used)
        return self._store

    def resolve(self, ref: str) -> tuple[str, Mapping[str, Any], list[Path]]:
        info = self.store.get(ref)
        image_id = str(info.id)
        return image_id, self.store.image_config(image_id), [Path(p) for p in self.store.layer_dirs(image_id)]


class NativeRuntime:
    """The native engine: runc + conmon containers on overlay snapshots."""

    name = "native"

    def __init__(
        self,
        config: NativeConfig | None = None,
        *,
        images: ImageSource | None = None,
        network: containers.NetworkAttacher | None = None,
        oci_runtime: str | None = None,
        log_size_max: int | None = None,
        log_max_size: int | None = None,
        log_max_files: int | None = None,
    ) -> None:
        self.config = config or NativeConfig()
        self.containers = containers.ContainerManager(self.config, network=network, oci_runtime=oci_runtime)
        if log_size_max is not None:
            self.containers.log_size_max = log_size_max      # conmon's own cap
        if log_max_size is not None:
            self.containers.log_max_size = log_max_size      # rotation (the config's by default)
        if log_max_files is not None:
            self.containers.log_max_files = log_max_files
        self._store_images = _StoreImages(self.config, self._image_ids_in_use)
        self.images: ImageSource = images or self._store_images
        self.network = network
        self._restart: restart.RestartManager | None = None
        self._health: health.HealthChecker | None = None

    def _image_ids_in_use(self) -> set[str]:
        """GC roots and removal guards for the image store: images containers were made from."""
        return {r.image_id for r in self.containers.records()}

    # -- parts the agent drives

    @property
    def restart_manager(self) -> restart.RestartManager:
        if self._restart is None:
            self._restart = restart.RestartManager(self.containers)
        return self._restart

    @property
    def health_checker(self) -> health.HealthChecker:
        if self._health is None:
            self._health = health.HealthChecker(self.containers)
        return self._health

    def rotate_logs(self) -> list[str]:
        """Rotate the logs that reached their size now (the health checker's tick does it too)."""
        return self.containers.rotate_logs()

    # -- images (the image store's)

    def pull_image(self, ref: str, *, progress: base.ProgressCallback | None = None) -> base.ImageInfo:
        info: base.ImageInfo = self._store_images.store.pull(ref, progress=progress)
        return info

    def resolve_digest(self, ref: str) -> str:
        return str(self._store_images.store.resolve_digest(ref))

    def list_images(self) -> list[base.ImageInfo]:
        return list(self._store_images.store.list())

    def inspect_image(self, ref: str) -> base.ImageInfo:
        info: base.ImageInfo = self._store_images.store.get(ref)
        return info

    def remove_image(self, ref: str, *, force: bool = False) -> list[str]:
        return list(self._store_images.store.remove(ref, force=force))   # the store checks use

    def tag_image(self, source: str, target: str) -> str:
        """Give the stored image `source` the name `target` (NAME[:TAG]); its id."""
        from reconciler.runtime.native.build import push

        return push.tag(self._store_images.store, source, target)

    # -- builds (build/manifests.py, imported on first use): what an Image with build: needs

    def build_due(self, ref: str, context: str, dockerfile: str, args: Mapping[str, str],
                  target: str | None, push: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
        from reconciler.runtime.native.build import manifests

        return manifests.due(self._store_images.store, ref, context, dockerfile, args, target, push)

    def build_image(self, ref: str, context: str, dockerfile: str, args: Mapping[str, str],
                    target: str | None) -> base.ImageInfo:
        from reconciler.runtime.native.build import manifests

        return manifests.build(self._store_images.store, self.containers, ref, context, dockerfile, args, target)

    def push_image(self, ref: str, dest: str) -> str:
        from reconciler.runtime.native.build import manifests

        return manifests.push_to(self._store_images.store, ref, dest)

    # -- containers

    def list_containers(self, selector: Mapping[str, str] | None = None) -> list[base.ContainerState]:
        return [r.state() for r in self.containers.records(selector)]

    def create_container(self, config: base.ContainerConfig) -> str:
        image_id, image_cfg, layer_dirs = self.images.resolve(config.image)
        rec = self.containers.create(
            config, image_id=image_id, image_config=image_cfg.get("config") or {}, lowerdirs=layer_dirs,
        )
        return rec.id

    def start_container(self, name_or_id: str) -> None:
        self.containers.start(name_or_id)

    def stop_container(self, name_or_id: str, *, timeout: float | None = None) -> None:
        rec = self.containers.stop(name_or_id, timeout=timeout)
        if self._restart is not None:
            self._restart.cancel(rec.id)

    def kill_container(self, name_or_id: str, signal: str = "KILL") -> None:
        self.containers.kill(name_or_id, signal)

    def remove_container(self, name_or_id: str, *, force: bool = False) -> None:
        rec = self.containers.get(name_or_id)
        self.containers.remove(rec.id, force=force)
        if self._restart is not None:
            self._restart.cancel(rec.id)

    def inspect_container(self, name_or_id: str) -> base.ContainerState:
        return self.containers.get(name_or_id).state()

    def rename_container(self, name_or_id: str, new_name: str) -> None:
        """Give a container another name (start-first updates rename the new one into place)."""
        self.containers.rename(name_or_id, new_name)

    def wait_container(self, name_or_id: str, *, timeout: float | None = None) -> int:
        return self.containers.wait(name_or_id, timeout=timeout)

    def logs(
        self, name_or_id: str, *, follow: bool = False, since: str | None = None, tail: int | None = None,
    ) -> Iterator[base.LogLine]:
        rec = self.containers.get(name_or_id)
        path = self.containers.paths(rec.id).log

        def running() -> bool:
            try:
                return self.containers.get(rec.id).status in ("running", "created")
            except rterrors.NotFound:
                return False

        return logs.read_logs(path, follow=follow, since=since, tail=tail, is_running=running)

    def exec(self, name_or_id: str, argv: list[str], *, tty: bool = False) -> base.ExecResult:
        return self.containers.exec(name_or_id, argv, tty=tty)

    # -- networks (bridge networking when plugged in)

    def _net(self) -> Any:
        if self.network is None:
            raise rterrors.Unavailable("this native engine runs without bridge networking",
                                       hint="containers can use networks 'none' or 'host'")
        return self.network

    def list_networks(self, selector: Mapping[str, str] | None = None) -> list[base.NetworkState]:
        if self.network is None:
            return []
        return list(self._net().list_networks(selector))

    def ensure_network(self, config: base.NetworkConfig) -> base.NetworkState:
        state: base.NetworkState = self._net().ensure_network(config)
        return state

    def remove_network(self, name: str) -> None:
        self._net().remove_network(name)

    # -- archives (container import)

    def load_image_archive(self, src: IO[bytes]) -> list[str]:
        from reconciler.runtime.native import archive

        return [i.id for i in archive.load(self._store_images.store, cast(BinaryIO, src))]

    def import_volume(self, name: str, src: IO[bytes], *, helper_image: str) -> None:
        from reconciler.runtime.native import transfer

        transfer.import_volume(self.containers.volumes, name, src, store=self._store_images.store)

    # -- volumes

    def list_volumes(self, selector: Mapping[str, str] | None = None) -> list[base.VolumeState]:
        return self.containers.volumes.list(selector)

    def ensure_volume(self, config: base.VolumeConfig) -> base.VolumeState:
        if config.driver != "local" or config.driver_opts:
            raise rterrors.InvalidArgument(
                f"volume {config.name}: spec.driver and spec.driverOpts need the docker or swarm runtime; "
                "the native engine's volumes are directories of its own",
                hint="remove them, or mount what they name with a bind mount")
        return self.containers.volumes.ensure(config)

    def remove_volume(self, name: str) -> None:
        in_use = any(m.type == "volume" and m.source == name
                     for r in self.containers.records() for m in r.config.mounts)
        self.containers.volumes.remove(name, in_use=in_use)

    def close(self) -> None:
        self.config.db().close()

    # -- extras for the CLI

    def inspect_document(self, name_or_id: str) -> dict[str, Any]:
        return inspect_document(self.containers, self.containers.get(name_or_id))


def command_line(rec: containers.Record) -> list[str]:
    """The container's argv (Entrypoint + Cmd after overrides)."""
    try:
        return list(bundle.process_argv(rec.image_config, rec.config))
    except rterrors.RuntimeBackendError:
        return []


def inspect_document(manager: containers.ContainerManager, rec: containers.Record) -> dict[str, Any]:
    """A `docker inspect`-shaped document of one container."""
    argv = command_line(rec)
    p = manager.paths(rec.id)
    cfg = rec.config
    hc = health.effective_healthcheck(rec)
    state: dict[str, Any] = {
        "Status": rec.state().status.value, "Running": rec.status == "running",
        "Paused": False, "Restarting": rec.restarting and rec.status == "exited",
        "OOMKilled": rec.oom_killed, "Dead": rec.status == "dead",
        "Pid": rec.pid if rec.status == "running" else 0,
        "ExitCode": rec.exit_code or 0, "Error": rec.error or "",
        "StartedAt": rec.started_at or "0001-01-01T00:00:00Z",
        "FinishedAt": rec.finished_at or "0001-01-01T00:00:00Z",
    }
    if hc is not None:
        state["Health"] = {"Status": rec.health or "starting", "FailingStreak": rec.health_failures,
                           "Log": [dict(x) for x in rec.health_log]}
    env = [f"{k}={v}" for k, v in cfg.env.items()]
    mounts = [{"Type": m.type, "Name": m.source if m.type == "volume" else "",
               "Source": str(manager.volumes.data_dir(m.source)) if m.type == "volume" else m.source,
               "Destination": m.target, "RW": not m.read_only} for m in cfg.mounts]
    res = cfg.resources
    network_mode = "host" if cfg.networks == ("host",) else ("none" if cfg.networks in ((), ("none",)) and not rec.netns_path else ",".join(cfg.networks) or "default")
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
        "Driver": "overlay",
        "LogPath": str(p.log),
        "ResolvConfPath": str(p.dir / "resolv.conf"),
        "HostnamePath": str(p.dir / "hostname"),
        "HostsPath": str(p.dir / "hosts"),
        "Platform": "linux",
        "Mounts": mounts,
        "GraphDriver": {"Name": "overlay", "Data": {
            "LowerDir": ":".join(reversed(rec.lowerdirs)), "UpperDir": str(p.upper),
            "WorkDir": str(p.work), "MergedDir": str(p.rootfs)}},
        "Config": {
            "Hostname": rec.hostname, "User": cfg.user if cfg.user is not None else rec.image_config.get("User", ""),
            "Env": list(rec.image_config.get("Env") or []) + env,
            "Cmd": list(cfg.args) if cfg.args is not None else rec.image_config.get("Cmd"),
            "Entrypoint": list(cfg.command) if cfg.command is not None else rec.image_config.get("Entrypoint"),
            "Image": rec.image, "WorkingDir": cfg.workdir or rec.image_config.get("WorkingDir", ""),
            "Labels": dict(cfg.labels), "StopSignal": cfg.stop_signal or rec.image_config.get("StopSignal", "SIGTERM"),
            "StopTimeout": cfg.stop_timeout,
            "Healthcheck": None if hc is None else {"Test": list(hc.test), "Interval": int(hc.interval * 1e9),
                                                     "Timeout": int(hc.timeout * 1e9), "Retries": hc.retries,
                                                     "StartPeriod": int(hc.start_period * 1e9)},
        },
        "HostConfig": {
            "NetworkMode": network_mode,
            "RestartPolicy": {"Name": cfg.restart.name, "MaximumRetryCount": cfg.restart.max_retries},
            "Memory": res.memory or 0, "NanoCpus": int((res.cpus or 0) * 1e9), "PidsLimit": res.pids,
            "ReadonlyRootfs": cfg.read_only, "CapAdd": list(cfg.cap_add), "CapDrop": list(cfg.cap_drop),
            "Runtime": rec.runtime,
        },
        "NetworkSettings": {
            "Networks": {n: {"IPAddress": ip} for n, ip in rec.ip_addresses.items()},
            "Ports": {f"{pm.container_port}/{pm.protocol}": [{"HostIp": pm.host_ip, "HostPort": str(pm.host_port)}]
                      for pm in cfg.ports},
            "SandboxKey": rec.netns_path or "",
        },
    }


def _conforms(rt: NativeRuntime) -> tuple[base.Runtime, base.Renaming, base.ImageBuilding, base.ImagePushing,
                                          base.Supervised, base.ArchiveTransfer]:
    """mypy checks here that the engine implements the protocol and every capability the
    executor looks for (the isinstance checks would only say "cannot" at run time)."""
    return rt, rt, rt, rt, rt, rt
