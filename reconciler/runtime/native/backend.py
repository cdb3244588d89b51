"""NativeRuntime: the embedded engine behind the `Runtime` protocol.

It composes the parts: the image store (images.py, imported when first needed), the
container manager (containers.py: bundle, conmon, runc, cgroups, volumes), the optional
bridge networking (a `NetworkAttacher`, e.g. network.NetworkManager, or a `LazyNetwork` that
makes one when first needed), restart policies (restart.py) and healthchecks (health.py).
Nothing heavy is imported for a container on networks "none" or "host", so `run`, `ps` and
`logs` start fast, and an agent whose containers use no bridge network does not hold it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Protocol, cast

from reconciler._dataclass import dataclass, dataclasses
from reconciler.runtime import base
from reconciler.runtime import errors as rterrors
from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.containers import containers, inspection, sizes
from reconciler.runtime.native.volumes import volumes as vols

if TYPE_CHECKING:
    from reconciler.runtime import limits
    from reconciler.runtime.native.containers import health, records, restart
    from reconciler.runtime.native.images.images import ImageStore, ImageUser
    from reconciler.runtime.native.network import ipam
    from reconciler.runtime.native.network.network import Attachment, NetworkManager, RecoveryReport

__all__ = ["NEVER", "WAIT_CONDITIONS", "DiskUsage", "ImageSource", "LazyNetwork", "NativeRuntime"]

WAIT_CONDITIONS = ("not-running", "next-exit", "removed")      # Docker's, for wait_condition
NEVER = "0001-01-01T00:00:00Z"      # Go's zero time: the `read` of a stats sample of a container not running


class ImageSource(Protocol):
    """Where containers get their image: id, full OCI config, layer dirs (bottom first)."""

    def resolve(self, ref: str) -> tuple[str, Mapping[str, Any], list[Path]]: ...


class _StoreImages:
    """The image store (images.ImageStore) seen as an ImageSource, loaded on first use."""

    def __init__(self, config: NativeConfig, used: Callable[[], set[str]],
                 users: Callable[[], list[ImageUser]] | None = None) -> None:
        self.config = config
        self.used = used
        self.users = users
        self._store: ImageStore | None = None
        self._opening = threading.Lock()

    @property
    def store(self) -> ImageStore:
        if self._store is None:
            with self._opening:             # one store, whichever thread asks first (a pass's lookups)
                if self._store is None:
                    # imported when first used: `ps`, `inspect` and `logs` need no image store
                    from reconciler.runtime.native.images import images

                    self._store = images.ImageStore(self.config, container_image_ids=self.used,
                                                    image_users=self.users)
        return self._store

    def resolve(self, ref: str) -> tuple[str, Mapping[str, Any], list[Path]]:
        info = self.store.get(ref)
        image_id = str(info.id)
        return image_id, self.store.image_config(image_id), [Path(p) for p in self.store.layer_dirs(image_id)]


class LazyNetwork:
    """Bridge networking plugged in, its manager (network.NetworkManager: its modules, IPAM and
    firewall state) made when first needed. Until then a container without networks still gets
    the default network (the container manager sees bridge networking plugged in); what asks
    only whether there is anything (the networks a pass observes, crash recovery's look for
    leftovers) reads the state DB and the run dir. An agent whose containers all use networks
    "none" or "host" never makes it: 0.3 MiB at rest (#21)."""

    def __init__(self, config: NativeConfig) -> None:
        self.config = config
        self._manager: NetworkManager | None = None
        self._lock = threading.Lock()
        self._batches = 0           # open batch() contexts

    @property
    def manager(self) -> NetworkManager:
        with self._lock:
            if self._manager is None:
                from reconciler.runtime.native.network import network

                self._manager = network.NetworkManager(self.config)
                for _ in range(self._batches):          # opened before it was made
                    self._manager.begin_batch()
            return self._manager

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """The manager's batch (network.NetworkManager.batch), also when the manager is made
        inside it; a pass that makes no manager makes none for it."""
        with self._lock:
            self._batches += 1
            if self._manager is not None:
                self._manager.begin_batch()
        try:
            yield
        finally:
            with self._lock:
                self._batches -= 1
                manager = self._manager
            if manager is not None:
                manager.end_batch()

    def in_use(self) -> bool:
        """Whether the engine holds anything of bridge networking: the manager made, a network
        or an address recorded, a namespace or hosts files in the run dir."""
        if self._manager is not None:
            return True
        leases = self._leases()
        if leases.networks() or leases.containers():
            return True
        return any(d.is_dir() and any(d.iterdir()) for d in (self.config.netns_dir, self.config.net_files_dir))

    def _leases(self) -> ipam.IPAM:
        """The networks' records in the state DB (what the manager keeps them in), without the
        manager: its modules (netlink, firewall, socket) are loaded only for a change."""
        from reconciler.runtime.native.network import ipam

        return ipam.IPAM(self.config.db())

    # what the engine asks of its bridge networking (NativeRuntime, recovery)

    def list_networks(self, selector: Mapping[str, str] | None = None) -> list[base.NetworkState]:
        """Networks whose labels include every `selector` item: read from their records (as the
        manager does), so a pass that changes no network makes no manager (#21)."""
        if self._manager is not None:
            return self._manager.list_networks(selector)
        return [r.state() for r in self._leases().networks() if base.labels_match(r.labels, selector)]

    def ensure_network(self, config: base.NetworkConfig) -> base.NetworkState:
        return self.manager.ensure_network(config)

    def remove_network(self, name: str) -> None:
        self.manager.remove_network(name)

    def recover(self, live_container_ids: Sequence[str] = ()) -> RecoveryReport:
        return self.manager.recover(live_container_ids)

    def heal(self, running: Callable[[], Mapping[str, int]] | None = None) -> base.Healed:
        """network.NetworkManager.heal, when any network is recorded (else nothing to heal,
        and no manager made)."""
        if self._manager is None and not self._leases().networks():
            return base.Healed()
        return self.manager.heal(running)

    # containers.NetworkAttacher

    def attach(self, container_id: str, **how: Any) -> Attachment:
        return self.manager.attach(container_id, **how)

    def detach(self, container_id: str) -> None:
        self.manager.detach(container_id)

    def rename(self, container_id: str, name: str) -> None:
        self.manager.rename(container_id, name)

    def connect(self, container_id: str, network: str, aliases: Sequence[str] = (), *,
                address: str | None = None, address6: str | None = None, mac: str | None = None,
                link_local: Sequence[str] = (), gw_priority: int = 0) -> Attachment:
        return self.manager.connect(container_id, network, aliases, address=address, address6=address6, mac=mac,
                                    link_local=link_local, gw_priority=gw_priority)

    def disconnect(self, container_id: str, network: str) -> Attachment:
        return self.manager.disconnect(container_id, network)

    def drop_leftover(self, name_or_id: str, network: str) -> str:
        return self.manager.drop_leftover(name_or_id, network)

    def forward(self, container_id: str, on: bool, ports: Sequence[base.PortMapping] = ()) -> Attachment:
        return self.manager.forward(container_id, on, ports)

    def files(self, container_id: str) -> tuple[Path, Path]:
        return self.manager.files(container_id)


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
        self._store_images = _StoreImages(self.config, self._image_ids_in_use, self._image_users)
        self.images: ImageSource = images or self._store_images
        self.network = network
        self._restart: restart.RestartManager | None = None
        self._health: health.HealthChecker | None = None

    def _image_ids_in_use(self) -> set[str]:
        """GC roots and removal guards for the image store: images containers were made from."""
        return {r.image_id for r in self.containers.records()}

    def _image_users(self) -> list[ImageUser]:
        """Which containers use which image, and whether each runs (rmi decides by it)."""
        from reconciler.runtime.native.images.images import ImageUser

        return [ImageUser(r.image_id, r.id, r.runs()) for r in self.containers.records()]

    # -- parts the agent drives

    @property
    def restart_manager(self) -> restart.RestartManager:
        if self._restart is None:
            from reconciler.runtime.native.containers import restart

            self._restart = restart.RestartManager(self.containers, remove=self.remove_exited)
        return self._restart

    @property
    def health_checker(self) -> health.HealthChecker:
        if self._health is None:
            from reconciler.runtime.native.containers import health

            self._health = health.HealthChecker(self.containers)
        return self._health

    def rotate_logs(self) -> list[str]:
        """Rotate the logs that reached their size now (the health checker's tick does it too)."""
        return self.containers.rotate_logs()

    # -- images (the image store's)

    def pull_image(self, ref: str, *, progress: base.ProgressCallback | None = None,
                   auth: Mapping[str, Any] | None = None) -> base.ImageInfo:
        """`auth`: Docker's AuthConfig for the registry (an Engine API client's X-Registry-Auth),
        tried before the engine's own credential store."""
        info: base.ImageInfo = self._store_images.store.pull(ref, progress=progress, auth=auth)
        self.containers.journal.record("image", "pull", ref, {"name": ref})
        return info

    @property
    def image_store(self) -> ImageStore:
        """The engine's ImageStore (runtime/native/images/images.py), opened on first use."""
        return self._store_images.store

    def resolve_digest(self, ref: str) -> str:
        return str(self._store_images.store.resolve_digest(ref))

    def made_here(self, ref: str) -> bool:
        return self._store_images.store.made_here(ref)

    def list_images(self) -> list[base.ImageInfo]:
        return list(self._store_images.store.list())

    def inspect_image(self, ref: str) -> base.ImageInfo:
        info: base.ImageInfo = self._store_images.store.get(ref)
        return info

    def remove_image(self, ref: str, *, force: bool = False) -> list[str]:
        image_id = self.inspect_image(ref).id
        lines = list(self._store_images.store.remove(ref, force=force))   # the store checks use
        for line in lines:                                                # "Untagged: x", "Deleted: y"
            what, _, name = line.partition(": ")
            action = {"Untagged": "untag", "Deleted": "delete"}.get(what)
            if action:
                self.containers.journal.record("image", action, image_id, {"name": name})
        return lines

    def tag_image(self, source: str, target: str) -> str:
        """Give the stored image `source` the name `target` (NAME[:TAG]); its id."""
        from reconciler.runtime.native.build import push

        image_id = push.tag(self._store_images.store, source, target)
        self.containers.journal.record("image", "tag", image_id, {"name": target})
        return image_id

    # -- builds (build/manifests.py, imported on first use): what an Image with build: needs

    def build_due(self, ref: str, context: str, dockerfile: str, args: Mapping[str, str],
                  target: str | None, push: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
        from reconciler.runtime.native.build import manifests

        return manifests.due(self._store_images.store, ref, context, dockerfile, args, target, push)

    def build_image(self, ref: str, context: str, dockerfile: str, args: Mapping[str, str],
                    target: str | None, *, secrets: Mapping[str, bytes] | None = None,
                    ssh: Mapping[str, str] | None = None, allow_insecure: bool = False) -> base.ImageInfo:
        from reconciler.runtime.native.build import manifests

        return manifests.build(self._store_images.store, self.containers, ref, context, dockerfile, args, target,
                               secrets=secrets or {}, ssh=ssh or {}, allow_insecure=allow_insecure)

    def build_context(self, context: str, *, dockerfile: str = "Dockerfile", build_args: Mapping[str, str] | None = None,
                      target: str | None = None, tags: tuple[str, ...] = (), no_cache: bool = False,
                      pull: bool = False, network: str = "none", rm: bool | None = None,
                      force_rm: bool | None = None,
                      progress: Callable[[str], None] | None = None,
                      stored: Callable[[str], None] | None = None) -> str:
        """Build the Dockerfile of the directory `context` with the native builder (Docker's
        progress lines to `progress`, the image id to `stored` before `Successfully built`:
        Builder.build; `rm`/`force_rm`: which step containers are removed, None for dockerd's
        defaults: BuildOptions.rm); the image id."""
        from reconciler.runtime.native.build import builder

        opts = builder.BuildOptions(context=context, dockerfile=dockerfile, build_args=dict(build_args or {}),
                                    target=target, tags=tags, network=network, no_cache=no_cache, pull=pull,
                                    rm=builder.BuildOptions.rm if rm is None else rm,
                                    force_rm=builder.BuildOptions.force_rm if force_rm is None else force_rm)
        result = builder.Builder(self._store_images.store, self.containers).build(opts, progress, stored=stored)
        for tag in result.tags:
            self.containers.journal.record("image", "tag", result.image_id, {"name": tag})
        return result.image_id

    def push_image(self, ref: str, dest: str, *, auth: Mapping[str, Any] | None = None,
                   progress: Callable[[str], None] | None = None) -> str:
        from reconciler.runtime.native.build import manifests

        digest = manifests.push_to(self._store_images.store, ref, dest, auth=auth, progress=progress)
        self.containers.journal.record("image", "push", dest, {"name": dest})
        return digest

    def check_login(self, registry: str, auth: Mapping[str, Any]) -> str | None:
        """Whether `registry` accepts the credentials `auth` (Docker's AuthConfig): `docker login`.
        The refresh token its token server gave (the client keeps it as `identitytoken`), or None."""
        store = self._store_images.store
        from reconciler.registry_client import errors as rcerrors

        try:
            with store.client_factory_for(registry, auth)() as client:
                return client.check_login(registry)
        except rcerrors.RegistryError as exc:
            raise rterrors.ImageError(str(exc.args[0] if exc.args else exc), hint=getattr(exc, "hint", None)) from None

    # -- containers

    def list_containers(self, selector: Mapping[str, str] | None = None) -> list[base.ContainerState]:
        return [r.state() for r in self.containers.records(selector)]

    def create_container(self, config: base.ContainerConfig, *, terminal: bool = False, stdin: bool = False,
                         volatile: bool = False, auto_remove: bool = False, exposed: Sequence[str] = (),
                         publish_all: bool = False, late_start_errors: bool = False) -> str:
        """`terminal`/`stdin`: a pseudo-terminal / an open stdin for attach (`run -it`); `volatile`:
        a file system thrown away with the container, never synced (`run --rm`, ContainerManager.create);
        `auto_remove`: removed with its anonymous volumes once it exited (Docker's AutoRemove: the
        restart manager of the process that holds the engine removes it, `remove_exited`); `exposed`,
        `publish_all`: Docker's ExposedPorts and PublishAllPorts (`run -P`: ContainerManager.create);
        `late_start_errors`: a missing executable or a host port taken fails the start, not the
        create (the Engine API's, as dockerd's: ContainerManager.create). Its limits and restart
        policy are checked first by dockerd's rules (`checked_create`, `runtime/limits.py`, the
        one home of them for run, create, apply and the Engine API): InvalidArgument when they
        are wrong; a blkio weight the kernel cannot apply is discarded with dockerd's warning,
        logged, as dockerd's create does, and the container starts without it."""
        resources, warnings = self.checked_create(config.resources, config.restart)
        if resources != config.resources:
            config = dataclasses.replace(config, resources=resources)
        if warnings:
            from reconciler import logs  # lazily: `ps` and `--version` stay light

            for warning in warnings:
                logs.get_logger("reconciler.runtime.native.backend").warning(warning, container=config.name)
        image_id, image_cfg, layer_dirs = self.images.resolve(config.image_id or config.image)
        rec = self.containers.create(
            config, image_id=image_id, image_config=image_cfg.get("config") or {}, lowerdirs=layer_dirs,
            terminal=terminal or config.tty, stdin=stdin or config.stdin_open, volatile=volatile,
            auto_remove=auto_remove, exposed=exposed, publish_all=publish_all,
            late_start_errors=late_start_errors,
        )
        return rec.id

    def start_container(self, name_or_id: str) -> None:
        """Start a created or exited container; one a restart manager holds in its back-off
        (`restart.in_back_off`: "restarting", or exited from a crash loop a watch restarts) is left
        to it, decided under the container's lock, as dockerd takes a restarting container for a
        running one and answers its start 304: a pass's start (`docker compose up -d` starts no
        restarting one either) or a `docker start` does not start it at once and forget its
        back-off. A `restart_container` does (dockerd's restart stops it first)."""
        from reconciler.runtime.native.containers import restart

        run_dir = self.config.run_dir
        self.containers.start(name_or_id, only_if=lambda r: not restart.in_back_off(r, run_dir))

    def stop_container(self, name_or_id: str, *, timeout: float | None = None) -> None:
        rec = self.containers.stop(name_or_id, timeout=timeout)
        if self._restart is not None:
            self._restart.cancel(rec.id)

    def kill_container(self, name_or_id: str, signal: str = "KILL") -> None:
        self.containers.kill(name_or_id, signal)

    def restart_container(self, name_or_id: str, *, timeout: float | None = None) -> None:
        """base.Restarting (`docker restart`, `reconcile restart`): a running container stopped
        (its stop signal, `timeout`, then SIGKILL), then started. Its exit meanwhile removes no
        AutoRemove container, as dockerd turns AutoRemove off for the length of a restart: this
        process's restart manager leaves it alone (`restarting_by_hand`), and the supervisor lock
        held shared tells conmon's exit command that a supervisor decides (cleanup.py), which it
        would otherwise take for its own to remove when no engine process runs."""
        from reconciler.runtime.native.containers import autoremove

        cid = self.containers.get(name_or_id).id
        with autoremove.supervising(self.config.run_dir), self.restart_manager.restarting_by_hand(cid):
            rec = self.containers.get(cid)
            if rec.status == "running" or rec.restart_pending():    # a restarting one's back-off ends
                self.stop_container(cid, timeout=timeout)
            self.containers.start(cid)

    def remove_container(self, name_or_id: str, *, force: bool = False, volumes: bool = False) -> None:
        """`volumes`: its anonymous volumes (made for it, labelled so as dockerd labels them) go with
        it, those no other container mounts (`docker rm -v`; an AutoRemove container's removal)."""
        rec = self.containers.get(name_or_id)
        mounted = {m.source for m in rec.config.mounts if m.type == "volume"} if volumes else set()
        anonymous = sorted(vols.anonymous(self.containers.db, sorted(mounted)))
        self.containers.remove(rec.id, force=force)
        if self._restart is not None:
            self._restart.cancel(rec.id)
        if anonymous:
            used = {m.source for r in self.containers.records() for m in r.config.mounts if m.type == "volume"}
            for name in anonymous:
                if name not in used:
                    with contextlib.suppress(rterrors.NotFound):
                        self.remove_volume(name)

    def remove_exited(self, cid: str) -> None:
        """An AutoRemove container that exited, removed as `docker rm -f -v` removes it (the restart
        manager's `remove`, at its exit and at engine start)."""
        self.remove_container(cid, force=True, volumes=True)

    def inspect_container(self, name_or_id: str) -> base.ContainerState:
        return self.containers.get(name_or_id).state()

    def rename_container(self, name_or_id: str, new_name: str) -> None:
        """Give a container another name (start-first updates rename the new one into place)."""
        self.containers.rename(name_or_id, new_name)

    # what a pass connects in place (connect_container): a running container (an interface more in
    # its namespace). A created or exited one is replaced by a pass when it is to run, though
    # `network connect` (network_connect) records a change of its networks for its next start
    connects = frozenset({"running"})

    def connect_container(self, name_or_id: str, network: str, config: base.ContainerConfig, *,
                          again: bool = False) -> None:
        """base.Connecting: `docker network connect` of a running container (ContainerManager.
        connect_running) with its settings on `network` in `config`: its aliases, fixed
        addresses, MAC address, link-local addresses, gateway priority; journalled as the Engine
        API's connect is. `again`: disconnected from it first."""
        if again:
            self.containers.disconnect_running(name_or_id, network)
        rec = self.containers.connect_running(
            name_or_id, network, config.aliases, ipv4=config.ipv4_addresses.get(network),
            ipv6=config.ipv6_addresses.get(network), endpoint=base.endpoint_of(config, network))
        self._journal_connect(rec.id, network, "connect")

    def _journal_connect(self, cid: str, network: str, action: str) -> None:
        """Docker's network `connect` / `disconnect` event, its actor the network's id."""
        net = next((n for n in self.list_networks() if n.name == network), None)
        if net is not None:
            self.containers.journal.record("network", action, net.id,
                                           {"container": cid, "name": network, "type": "bridge"})

    # -- docker network connect / disconnect: the Engine API's and `reconcile network connect|disconnect`

    def network_connect(self, name_or_id: str, network: str, *, ipv4: str | None = None, ipv6: str | None = None,
                        endpoint: base.EndpointConfig | None = None) -> records.Record:
        """`docker network connect`: of a running container, an interface more in its namespace
        (ContainerManager.connect_running: veth, addresses, names; kept in its record for its next
        starts); of one created and not started yet (what compose does between create and start),
        and of one exited, as dockerd records them for the next start, its record's networks
        (ContainerManager.reconnect: its start attaches it, inspect shows the network before); a
        dead one (it cannot start again) is a Conflict. The container by its name, id or id
        prefix, the network by its name, id or unique id prefix (`_bridge_network`), as docker
        finds them. `ipv4`/`ipv6`: its fixed addresses there from then on (`--ip`/`--ip6`); `endpoint`: its interface settings there, its aliases its names on that
        network alone (an endpoint's, as dockerd's: gone with a disconnect), none on the default
        network (dockerd's 400). `bridge` is Docker's name of the default network, which is made
        at its first use, as by a start; `host` and `none` are no bridge networks to connect to.
        Journalled as Docker's network `connect` event. The container's record now."""
        own = endpoint or base.EndpointConfig()
        network = self._bridge_network(network, "connected to")
        from reconciler.runtime.native.network import dns

        if own.aliases and network == dns.DEFAULT_NETWORK:
            raise rterrors.InvalidArgument(dns.ALIAS_ON_PREDEFINED,
                                           hint="connect it to a network of your own (`network create`)")
        rec = self.containers.get(name_or_id)
        if network == dns.DEFAULT_NETWORK and not any(n.name == network for n in self.list_networks()):
            self.ensure_network(base.NetworkConfig(name=network))      # made at its first use, as by a start
        self._network_state(network)
        if rec.status == "running":
            rec = self.containers.connect_running(rec.id, network, ipv4=ipv4, ipv6=ipv6, endpoint=own)
        else:
            self._not_started(rec, "connect")
            if network in self.containers.networks_of(rec):
                raise rterrors.Conflict(f"container {rec.name} is already connected to network {network}")
            cfg = rec.config
            rec = self.containers.reconnect(
                rec.id, (*self.containers.networks_of(rec), network), cfg.aliases,
                ipv4_addresses={**cfg.ipv4_addresses, **({network: ipv4} if ipv4 else {})},
                ipv6_addresses={**cfg.ipv6_addresses, **({network: ipv6} if ipv6 else {})}, endpoints={network: own})
        self._journal_connect(rec.id, network, "connect")
        return rec

    def network_disconnect(self, name_or_id: str, network: str, *, force: bool = False) -> None:
        """`docker network disconnect`: of a running container, its interface there deleted, with
        its addresses and names (ContainerManager.disconnect_running: the ports it served and the
        default route move to the network that serves them now); of one created or exited, its
        record's networks (ContainerManager.reconnect: its next start is not on it); any other
        is a Conflict. A
        container created without a network stays on the default one through a connect to another
        and its disconnect, as Docker's. `force` (`-f`), as dockerd's: a container the engine no
        longer has loses the endpoint it left on `network` (NetworkManager.drop_leftover), and one
        created or exited loses a network that is gone. Journalled as Docker's `disconnect` event."""
        network = self._bridge_network(network, "disconnected from")
        try:
            rec = self.containers.get(name_or_id)
        except rterrors.NotFound:
            if not force:
                raise
            self._network_state(network)
            self._journal_connect(self._net().drop_leftover(name_or_id, network), network, "disconnect")
            return
        if not (force and rec.status in ("created", "exited")):
            self._network_state(network)
        if rec.status == "running":
            self.containers.disconnect_running(rec.id, network)
        else:
            self._not_started(rec, "disconnect")
            on = self.containers.networks_of(rec)
            if network not in on:
                raise rterrors.NotFound(f"container {rec.name} is not connected to network {network}")
            cfg = rec.config
            self.containers.reconnect(
                rec.id, tuple(n for n in on if n != network), cfg.aliases,
                ipv4_addresses={n: a for n, a in cfg.ipv4_addresses.items() if n != network},
                ipv6_addresses={n: a for n, a in cfg.ipv6_addresses.items() if n != network},
                endpoints={network: base.EndpointConfig()})
        self._journal_connect(rec.id, network, "disconnect")

    def _bridge_network(self, network: str, verb: str) -> str:
        """The engine's name of the network `network` names, which a container is connected to or
        disconnected from: by its name, id or unique id prefix, as dockerd finds it
        (`ipam.find_network`, the Engine API's rule too); Docker's `bridge` is the default one
        (made at its first use); `host` and `none` are no bridge networks. A name no network has
        is as given (the caller says it is not found, or, `disconnect -f`, drops it)."""
        from reconciler.runtime.native.network import ipam

        if network not in (containers.DOCKER_DEFAULT, "host", "none"):
            ids = {n.id: (n.name,) for n in self.list_networks()}
            ids.update({ipam.predefined_id(self.config.name_prefix, p): (p,) for p in ("host", "none")})
            with contextlib.suppress(rterrors.NotFound):
                network = ids[ipam.find_network(network, ids)][0]
        if network in ("host", "none"):
            raise rterrors.InvalidArgument(f"container cannot be {verb} network {network}: the native engine "
                                           "connects bridge networks only",
                                           hint="run the container with --network host|none instead")
        return containers.default_named(network)

    def _network_state(self, network: str) -> base.NetworkState:
        """The network `network`, or NotFound saying how to find or make one."""
        found = next((n for n in self.list_networks() if n.name == network), None)
        if found is None:
            raise rterrors.NotFound(f"network {network} not found",
                                    hint="see `reconcile network ls`, or create it: `reconcile network create NAME`")
        return found

    @staticmethod
    def _not_started(rec: records.Record, verb: str) -> None:
        """A container whose networks a connect or disconnect changes in its record, as dockerd
        records it for the next start: created (not started yet) or exited, on bridge networks
        (its namespace made again at its start; one whose restart is pending starts so too). A
        Conflict for one that cannot start again (dead: its secrets gone with a reboot); the
        engine connects a running one (a paused one too, as dockerd)."""
        if rec.status not in ("created", "exited"):
            raise rterrors.Conflict(f"network {verb} of a {rec.status} container: it cannot start again",
                                    hint=f"see `reconcile inspect {rec.name}`; remove it and create it again")
        if not rec.netns_path:
            raise rterrors.InvalidArgument(f"container {rec.name}: only a container on bridge networks can be "
                                           "connected to other bridge networks")

    def wait_container(self, name_or_id: str, *, timeout: float | None = None) -> int:
        return self.containers.wait(name_or_id, timeout=timeout)

    def wait_condition(self, name_or_id: str, condition: str = "not-running", *, tick: float = 1.0,
                       poll: float = 0.2) -> Iterator[int | None]:
        """Docker's wait, as `docker wait` and the Engine API's `POST /containers/{id}/wait` have
        it: until `not-running` (at once for one that does not run: created, exited), `next-exit`
        (the exit after the next start) or `removed`; the looks it makes, None each, then the exit
        code (of its last exit, from the journal, for one removed meanwhile). NotFound and a
        condition Docker has not (InvalidArgument) are raised at once, before any look.

        Between looks it waits for the container's monitor to end (a pidfd: woken at its exit,
        `RecordStore.until_exit`), `tick` seconds at most (`poll` for one without a monitor: a
        restart's back-off); a start any process made since the wait began, seen in the journal,
        counts even when its run ended between two looks (`docker start -a` of an exited `echo`)."""
        if condition not in WAIT_CONDITIONS:
            raise rterrors.InvalidArgument(f"invalid condition {condition!r}",
                                           hint=f"one of {', '.join(WAIT_CONDITIONS)}")
        manager = self.containers
        seq = manager.journal.last_seq()
        first = manager.get(name_or_id)

        def looks() -> Iterator[int | None]:
            nonlocal seq
            state = first.state()
            seen_running = first.status in ("running", "created")       # created: its start is next
            code = None
            while True:
                try:
                    rec = manager.get(first.id)
                except rterrors.NotFound:
                    code = manager.journal.last_exit(first.id)     # removed (AutoRemove: at its exit)
                    break
                state = rec.state()
                running = state.status.value in ("running", "restarting", "created")
                started, seq = manager.journal.started_since(first.id, seq)
                seen_running = seen_running or running or started
                if condition == "not-running" and state.status.value != "running":
                    break
                if not running and seen_running and condition == "next-exit":
                    break
                # its monitor's exit ends the pause; one without (a restart's back-off) is looked at again
                manager.until_exit(rec)(tick if rec.status in ("running", "created") else poll)
                yield None
            yield (state.exit_code if code is None else code) or 0
        return looks()

    def logs(
        self, name_or_id: str, *, follow: bool = False, since: str | None = None, tail: int | None = None,
    ) -> Iterator[base.LogLine]:
        return self.containers.logs(name_or_id, follow=follow, since=since, tail=tail)

    def exec(
        self, name_or_id: str, argv: list[str], *, tty: bool = False, user: str | None = None,
        workdir: str | None = None, env: Sequence[str] = (),
    ) -> base.ExecResult:
        # here: execs imports subprocess, which a pass with nothing to do does not need (#21)
        from reconciler.runtime.native.containers import execs

        return execs.run(self.containers, name_or_id, argv, tty=tty, user=user, workdir=workdir, env=env)

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """A pass's batch (base.Batching): the peers' hosts files of the containers it attaches
        are written once a second and at its end, not at each attach (network/network.py)."""
        return self.network.batch() if isinstance(self.network, base.Batching) else contextlib.nullcontext()

    def top(self, name_or_id: str, ps_args: str = "-ef") -> tuple[list[str], list[list[str]]]:
        """base.ProcessListing (`docker top`, `reconcile top`), as dockerd does it: the host's `ps`
        with `ps_args`, the rows whose PID is in the container's cgroup (every hierarchy's leaf);
        Conflict for one that does not run, RuntimeBackendError when `ps` fails or prints no PID
        column."""
        import shlex
        import subprocess

        from reconciler.runtime.native.containers import cgroups

        rec = self.containers.get(name_or_id)
        if rec.status != "running":
            raise rterrors.Conflict(f"Container {rec.id} is not running", hint=f"start it: reconcile start {rec.name}")
        pids: set[int] = set()
        for d in cgroups.leaf_dirs(rec.cgroup_prefix or self.config.name_prefix, rec.id):
            with contextlib.suppress(OSError):
                pids |= {int(x) for x in (d / "cgroup.procs").read_text().split()}
        try:
            out = subprocess.run(["ps", *shlex.split(ps_args)], capture_output=True, text=True, timeout=30,
                                 check=True).stdout.splitlines()
        except subprocess.CalledProcessError as exc:
            raise rterrors.RuntimeBackendError(f"ps {ps_args}: {(exc.stderr or '').strip() or exc}") from None
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            raise rterrors.RuntimeBackendError(f"ps {ps_args}: {exc}") from None
        titles = out[0].split() if out else []
        if "PID" not in titles:
            raise rterrors.RuntimeBackendError(f"ps {ps_args} printed no PID column",
                                               hint="keep pid among its columns (-o pid,...)")
        col = titles.index("PID")
        rows = []
        for line in out[1:]:
            fields = line.split(None, len(titles) - 1)
            if len(fields) > col and fields[col].isdigit() and int(fields[col]) in pids:
                rows.append(fields)
        return titles, rows

    def container_sizes(self, ids: Collection[str]) -> dict[str, tuple[int, int]]:
        """`docker ps -s`'s (SizeRw, SizeRootFs) of the containers of `ids` (containers/sizes.py:
        `ps -s` measures with it too, the CLI's own read and the agent's)."""
        image_ids = {r.id: r.image_id for r in self.containers.records()}
        return sizes.measure(self.config.root, ((cid, image_ids[cid]) for cid in ids if cid in image_ids))

    def container_stats(self, name_or_id: str) -> dict[str, Any]:
        """base.Statistics (`docker stats`, `reconcile stats`, the Engine API's stats): one sample
        of the container's cgroup files and its network namespace's counters (`stats.sample`) as
        Docker's stats document; for one that does not run every counter empty and `read` Go's
        zero time, as dockerd answers."""
        import time

        from reconciler.runtime.native.containers import stats

        rec = self.containers.get(name_or_id)
        empty = stats.zero()
        if rec.status != "running":
            sample, read = empty, NEVER
        else:
            sample = stats.sample(rec.cgroup_prefix or self.config.name_prefix, rec.id, rec.pid)
            now = time.time_ns()
            read = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now // 10**9)) + f".{now % 10**9:09d}Z"
        return {"read": read, "preread": NEVER, **sample, "precpu_stats": empty["cpu_stats"], "name": "/" + rec.name,
                "id": rec.id}

    # -- what the engine holds on disk and what nothing uses (`system df`, the prunes)

    def disk_usage(self) -> DiskUsage:
        """What `docker system df` counts of the engine: each image (its unpacked layers' size, as
        `images` shows it; its SharedSize, the layers it shares with the others, as dockerd counts
        it) with the containers made from it; each container with its writable layer's size;
        each volume with its data's size and the containers that mount it; and LayersSize, each
        layer once however many images share it."""
        recs = self.containers.records()
        infos = self.list_images()
        shared = self.image_store.shared_sizes([i.id for i in infos])
        return DiskUsage(
            layers_size=self.image_store.layers_size(),
            images=tuple((i, shared.get(i.id, 0), sum(1 for r in recs if r.image_id == i.id)) for i in infos),
            containers=tuple((c, sizes.writable(self.config.root, c.id)) for c in self.list_containers()),
            volumes=tuple((v, sizes.tree_size(v.mountpoint),
                           sum(1 for r in recs for m in r.config.mounts if m.type == "volume" and m.source == v.name))
                          for v in self.list_volumes()))

    def prune(self, kind: str, *, selected: Callable[[Mapping[str, str], str | None], bool] | None = None,
              dangling_only: bool = True, anonymous_only: bool = False) -> dict[str, Any]:
        """What nothing uses, removed, as dockerd prunes (`docker container|image|network|volume
        prune`, `reconcile system|container|volume|network prune`): `containers` stopped ones
        (exited, created, dead; not one whose restart is pending); `volumes` those no container
        mounts (a bound directory's data left where it is), with `anonymous_only` only anonymous
        ones (labelled so: a container's own, or made without a name), as dockerd 23+ prunes
        without `all`; `networks` those no container is on or
        would be at its start, never the default one; `images` those no container uses that are
        dangling (no tag, and no other image made from them: `images/lineage.py`), or every such
        one unless `dangling_only`. `selected(labels, created)` says which of these go (Docker's
        prune filters decide it: api/dockerfilters.py). Docker's report: what was deleted
        (`ContainersDeleted`, `VolumesDeleted`, `NetworksDeleted`, `ImagesDeleted`) and the bytes
        that freed (`SpaceReclaimed`: a container's writable layer, a volume's data, an image's
        size, as dockerd counts them)."""
        chosen = selected or (lambda labels, created: True)
        recs = self.containers.records()
        if kind == "containers":
            gone = [r.id for r in recs if r.status in ("exited", "created", "dead")
                    and not r.restart_pending() and chosen(r.config.labels, r.created)]
            space = 0
            for cid in gone:
                size = sizes.writable(self.config.root, cid)
                with contextlib.suppress(rterrors.NotFound):
                    self.remove_container(cid)
                    space += size
            return {"ContainersDeleted": gone, "SpaceReclaimed": space}
        if kind == "volumes":
            used = {m.source for r in recs for m in r.config.mounts if m.type == "volume"}
            removed, space = [], 0
            for v in self.list_volumes():
                if v.name in used or not chosen(v.labels, None) or (anonymous_only and vols.ANONYMOUS_LABEL not in v.labels):
                    continue
                data = Path(v.mountpoint)                       # its data, as `system df` counts it;
                size = 0 if data.is_symlink() else sizes.tree_size(data)    # a bound directory stays
                self.remove_volume(v.name)
                removed.append(v.name)
                space += size
            return {"VolumesDeleted": removed, "SpaceReclaimed": space}
        if kind == "networks":
            # used: any container on it, or to be on it at its start (the default network's too)
            on = {n for r in recs for n in (*r.ip_addresses, *(self.containers.networks_of(r) if r.netns_path else ()))}
            from reconciler.runtime.native.network import dns

            default = dns.DEFAULT_NETWORK
            deleted = []
            for n in self.list_networks():
                if n.name in on or n.name == default or not chosen(n.labels, n.created or None):
                    continue
                try:
                    self.remove_network(n.name)
                except (rterrors.Conflict, rterrors.NotFound):
                    continue                # a container joined it meanwhile, or it went
                deleted.append(n.name)
            return {"NetworksDeleted": deleted}
        if kind != "images":
            raise rterrors.InvalidArgument(f"nothing to prune of {kind!r}", hint="containers, images, networks or volumes")
        from reconciler.runtime.native.images import lineage

        users = {r.image_id for r in recs}
        infos = self.list_images()
        untagged = [i for i in infos if not i.repo_tags]
        family = lineage.lineage_of(self.image_store, infos) if dangling_only and untagged else {}
        lines: list[dict[str, str]] = []
        space = 0
        for image in infos:
            if image.id in users or not chosen(image.config.get("Labels") or {}, image.created):
                continue
            if dangling_only and (image.repo_tags or lineage.descendants(family, image.id)):
                continue
            said = self.remove_image(image.id, force=True)
            lines += [{k: v} for k, _, v in (line.partition(": ") for line in said)]
            space += image.size
        return {"ImagesDeleted": lines, "SpaceReclaimed": space}

    # -- docker cp (base.PathCopying): the container's view, its paths resolved inside it

    def stat_path(self, name_or_id: str, path: str) -> dict[str, Any]:
        """Docker's PathStat of `path` in the container (its last component not followed): name,
        size, mode (Go's os.FileMode bits), mtime, linkTarget; NotFound when it is not there. A
        relative path is from `/`, as dockerd reads it."""
        from reconciler.runtime.native.containers import copying

        fd, keep = self.containers.open_view(name_or_id)
        try:
            with _naming(name_or_id):
                return copying.path_stat(fd, _absolute(path))
        finally:
            os.close(fd)
            if keep >= 0:
                os.close(keep)

    def read_archive(self, name_or_id: str, path: str) -> tuple[dict[str, Any], Iterator[bytes]]:
        """`path` in the container as a tar stream (`containers/copying.py` `archive`: entries named
        from its last component, `DIR/.` from `.`), with its PathStat; the stream holds what it
        reads through (a stopped container's copy view: `ContainerManager.open_view`) until it is
        read to its end or closed. NotFound before any byte when `path` is not there."""
        from reconciler.runtime.native.containers import copying

        path = _absolute(path)
        fd, keep = self.containers.open_view(name_or_id)
        try:
            with _naming(name_or_id):
                stat = copying.path_stat(fd, path)
                chunks = copying.archive(fd, path)      # (its own fd of the path's parent)
        except BaseException:
            if keep >= 0:
                os.close(keep)
            raise
        finally:
            os.close(fd)

        def held() -> Iterator[bytes]:
            try:
                yield from chunks
            finally:
                if keep >= 0:
                    os.close(keep)
        return stat, held()

    def write_archive(self, name_or_id: str, path: str, src: IO[bytes], *, copy_uid_gid: bool = False) -> None:
        """The tar stream `src` unpacked into the directory `path` of the container through the
        layer extractor (nothing reaches outside it); its entries' owners as the archive has them,
        or with `copy_uid_gid` (`docker cp -a`) the container's user's (its `User`, looked up in
        its own /etc/passwd and /etc/group; the archive's when it has none), as dockerd chowns
        them. NotFound / InvalidArgument when `path` is not a directory there."""
        from reconciler.runtime.native.containers import bundle, copying

        path = _absolute(path)
        owner = None
        fd, keep = self.containers.open_view(name_or_id)
        try:
            if copy_uid_gid:
                rec = self.containers.get(name_or_id)
                user = rec.config.user if rec.config.user is not None else rec.image_config.get("User", "")
                if user:
                    who = bundle.resolve_user(Path(f"/proc/self/fd/{fd}"), user)
                    owner = (who.uid, who.gid)
            with _naming(name_or_id):
                copying.extract(fd, path, cast(BinaryIO, src), owner=owner)
        finally:
            os.close(fd)
            if keep >= 0:
                os.close(keep)

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

    def heal(self) -> base.Healed:
        """base.Healing: the recorded networks' bridges, the engine's nft table and the veths of
        its containers made again (plugged in again) where another program took them
        (network.NetworkManager.heal); the running containers' pids for a namespace to bind again.
        Then each container's published ports forwarded while it runs and only then
        (containers.ContainerManager.forward_as_running): a running container whose ports are
        not forwarded gets them, one that cannot is listed cut off."""
        if self.network is None:
            return base.Healed()
        healed: base.Healed = self._net().heal(self._running_pids)
        made, failed = self.containers.forward_as_running()
        if made or failed:
            healed = base.Healed(made=(*healed.made, *made), cut_off={**healed.cut_off, **failed})
        return healed

    def _running_pids(self) -> dict[str, int]:
        """The running containers' main pids, as their records say once refreshed (pid, start
        time and boot id checked)."""
        return {r.id: r.pid for r in self.containers.records() if r.status == "running" and r.pid}

    def ensure_network(self, config: base.NetworkConfig) -> base.NetworkState:
        known = any(n.name == config.name for n in self.list_networks())
        state: base.NetworkState = self._net().ensure_network(config)
        if not known:       # the actor is the network's id, as Docker's events name it
            self.containers.journal.record("network", "create", state.id,
                                           {**config.labels, "name": state.name, "type": "bridge"})
        return state

    def remove_network(self, name: str) -> None:
        found = [n for n in self.list_networks() if n.name == name]
        self._net().remove_network(name)
        if found:
            self.containers.journal.record("network", "destroy", found[0].id,
                                           {"name": name, "type": "bridge"})

    # -- archives (container import)

    def load_image_archive(self, src: IO[bytes]) -> list[str]:
        from reconciler.runtime.native.images import archive

        return [i.id for i in archive.load(self._store_images.store, cast(BinaryIO, src))]

    def commit_container(self, name_or_id: str, ref: str | None, *, changes: tuple[str, ...] = (),
                         message: str = "", author: str = "", pause: bool = True) -> str:
        """`docker commit`: the container's changes as a new image (commit.py); its id."""
        from reconciler.runtime.native import commit

        image_id = commit.commit(self._store_images.store, self.containers, name_or_id, ref, changes=list(changes),
                                 message=message, author=author, pause=pause)
        self.containers.journal.record("container", "commit", self.containers.get(name_or_id).id,
                                       {"comment": message, "imageID": image_id, "imageRef": ref or ""})
        return image_id

    def import_image(self, source: str, body: IO[bytes] | None, ref: str | None, *, changes: tuple[str, ...] = (),
                     message: str = "", platform: str | None = None) -> str:
        """`docker import` through the Engine API (POST /images/create?fromSrc=): the filesystem
        tarball `body` (`source` "-") or an http(s) URL's as an image of one layer (commit.py
        `import_image`); its id. Never a path on this host: dockerd reads none either."""
        from reconciler.runtime.native import commit

        image_id = commit.import_image(self._store_images.store, source, ref, stdin=body, changes=list(changes),
                                       message=message, platform=platform, files=False)
        self.containers.journal.record("image", "import", image_id, {"name": image_id})
        return image_id

    def container_changes(self, name_or_id: str) -> list[tuple[str, str]]:
        """`docker diff`: what the container changed in its root filesystem, ("A"|"C"|"D", path)
        in docker's order (commit.py `container_changes`)."""
        from reconciler.runtime.native import commit

        return commit.container_changes(self.containers, name_or_id)

    def host_limits(self) -> limits.HostLimits:
        """What this host lets a container have (`runtime/limits.py` HostLimits): the CPUs this
        process may run on, its cpuset's CPUs and memory nodes, whether the kernel weighs block
        I/O (`containers/cgroups.py`)."""
        from reconciler.runtime import limits
        from reconciler.runtime.native.containers import cgroups

        cpus, mems = cgroups.cpusets()
        return limits.HostLimits(ncpu=limits.cpus_available(), cpus=cpus, mems=mems,
                                 blkio_weight=cgroups.blkio_weight())

    def checked_update(self, update: base.ResourceUpdate) -> tuple[base.ResourceUpdate, list[str]]:
        """`docker update`'s change as the engine applies it, and the warnings to show;
        InvalidArgument when it is wrong in itself (`runtime/limits.py` `checked`)."""
        from reconciler.runtime import limits

        return limits.checked(update, self.host_limits())

    def checked_create(self, resources: base.Resources,
                       restart: base.RestartPolicy) -> tuple[base.Resources, list[str]]:
        """A create's limits and restart policy as the engine applies them, and the warnings to
        show (a blkio weight discarded); InvalidArgument in dockerd's words when they are wrong
        (`runtime/limits.py` `checked_create`): every create's (`create_container`: run, create,
        apply), which the Engine API's `POST /containers/create` asks first, for its 400."""
        from reconciler.runtime import limits

        return limits.checked_create(resources, restart, self.host_limits())

    def update_resources(self, name_or_id: str, update: base.ResourceUpdate) -> list[str]:
        """`docker update`: the change checked (`checked_update`) and applied to the container
        (`ContainerManager.update_config`: now to a running one, at its next start to a stopped
        one); the warnings to show."""
        checked, warnings = self.checked_update(update)
        self.containers.update_config(name_or_id, checked)
        return warnings

    def load_images(self, src: IO[bytes]) -> list[tuple[str, tuple[str, ...]]]:
        """`docker load`: every image of the archive `src`; (id, tags) of each."""
        from reconciler.runtime.native.images import archive

        loaded = archive.load(self._store_images.store, cast(BinaryIO, src))
        for image in loaded:
            self.containers.journal.record("image", "load", image.id, {"name": ",".join(image.tags)})
        return [(i.id, i.tags) for i in loaded]

    def save_images(self, refs: list[str], out: IO[bytes]) -> None:
        """`docker save`: the images `refs` names as one docker-archive tar stream."""
        from reconciler.runtime.native.images import archive

        archive.save(self._store_images.store, refs, out)

    def image_history(self, ref: str) -> list[dict[str, Any]]:
        """The steps that made the image, newest first, with their layers' sizes (ImageStore.history)."""
        return self._store_images.store.history(ref)

    def import_volume(self, name: str, src: IO[bytes], *, helper_image: str,
                      labels: Mapping[str, str] | None = None) -> None:
        from reconciler.runtime.native import transfer

        transfer.import_volume(self.containers.volumes, name, src, store=self._store_images.store, labels=labels)

    # -- volumes

    def list_volumes(self, selector: Mapping[str, str] | None = None) -> list[base.VolumeState]:
        return self.containers.volumes.list(selector)

    def ensure_volume(self, config: base.VolumeConfig) -> base.VolumeState:
        if (config.driver != "local" or config.driver_opts) and base.local_bind(config.driver, config.driver_opts) is None:
            raise rterrors.InvalidArgument(
                f"volume {config.name}: spec.driver and spec.driverOpts need the docker or swarm runtime, as "
                "`volume create`'s --driver and --opt do; the native engine's volumes are directories of its own "
                "(or bind one: driver local, options type=none, o=bind, device=/DIR)",
                hint="remove them, or mount what they name with a bind mount")
        known = any(v.name == config.name for v in self.list_volumes())
        state = self.containers.volumes.ensure(config)
        if not known:
            self.containers.journal.record("volume", "create", state.name, {**config.labels, "driver": "local"})
        return state

    def remove_volume(self, name: str) -> None:
        in_use = any(m.type == "volume" and m.source == name
                     for r in self.containers.records() for m in r.config.mounts)
        known = any(v.name == name for v in self.list_volumes())
        self.containers.volumes.remove(name, in_use=in_use)
        if known:
            self.containers.journal.record("volume", "destroy", name, {"driver": "local"})

    def close(self) -> None:
        self.config.db().close()

    # -- extras for the CLI

    def inspect_document(self, name_or_id: str) -> dict[str, Any]:
        return inspection.document(self.containers, self.containers.get(name_or_id))


@dataclass(frozen=True)
class DiskUsage:
    """What `docker system df` counts of the native engine (NativeRuntime.disk_usage)."""

    layers_size: int                                        # every layer once
    images: tuple[tuple[base.ImageInfo, int, int], ...]     # (image, shared size, containers made from it)
    containers: tuple[tuple[base.ContainerState, int], ...]  # (container, its writable layer's bytes)
    volumes: tuple[tuple[base.VolumeState, int, int], ...]   # (volume, its data's bytes, containers mounting it)


@contextlib.contextmanager
def _naming(container: str) -> Iterator[None]:
    """A path not found in a container said as dockerd says it: naming the container."""
    try:
        yield
    except rterrors.NotFound as exc:
        if not exc.message.endswith(" in container"):
            raise
        raise rterrors.NotFound(f"{exc.message} {container}", hint=exc.hint) from None


def _absolute(path: str) -> str:
    """A container path as dockerd reads it: relative ones from `/`, a trailing `/` or `/.` kept."""
    return path if path.startswith("/") else "/" + path


def _conforms(rt: NativeRuntime) -> tuple[base.Runtime, base.Renaming, base.Connecting, base.ImageBuilding,
                                          base.ImagePushing, base.Supervised, base.ArchiveTransfer,
                                          base.Restarting, base.Inspecting, base.ProcessListing, base.Statistics,
                                          base.PathCopying, base.Sizing, base.Updating, base.ImageHistory]:
    """mypy checks here that the engine implements the protocol and every capability the
    executor and the CLI look for (the isinstance checks would only say "cannot" at run time)."""
    return rt, rt, rt, rt, rt, rt, rt, rt, rt, rt, rt, rt, rt, rt, rt
