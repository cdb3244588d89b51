"""Native containers: the create/start/stop/kill/remove lifecycle (records: records.py).

A container is a directory `<root>/containers/<id>/` (overlay `rootfs` of the image's layer
dirs plus the private `upper`/`work`, `config.json`, the generated `hosts`, `hostname` and
`resolv.conf`, and conmon's `ctr.log`), a record in the state DB, and, while it exists in the
OCI runtime, a conmon process plus runc state under `<run_dir>/runc`.

`ContainerManager` does not care where the image came from: `create()` takes the image
config (its "config" object) and the layer directories (bottom first). `runc create` runs at
create time (through conmon), so a bad entrypoint fails `create` and leaves nothing behind.
It is a `records.RecordStore`: reading records (`get`, `records`, `refresh`) is done there,
with a smaller set of imports, for the commands that only read.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reconciler._dataclass import dataclasses
from reconciler.runtime import base
from reconciler.runtime import errors as rterrors
from reconciler.runtime.native import procs
from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.containers import (
    cgroups,
    conmon,
    logs,
    mounts,
    oci,
    records,
)
from reconciler.runtime.native.volumes import volumes

if TYPE_CHECKING:
    from reconciler.runtime.native.network import ipam

__all__ = ["Attachment", "ContainerManager", "NetworkAttacher", "default_named"]

_NAME = r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$"     # compiled at its first use (re caches it, #21)

HOSTS_BASE = (
    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
)


# ---------------------------------------------------------------------------- networking plug

class Attachment(Protocol):
    """What a network manager hands back for a container (see network.py)."""

    @property
    def netns_path(self) -> str | os.PathLike[str]: ...
    @property
    def ip_addresses(self) -> Mapping[str, str]: ...
    @property
    def ip6_addresses(self) -> Mapping[str, str]: ...     # its networks with IPv6 (dual stack)
    @property
    def hosts_path(self) -> str | os.PathLike[str] | None: ...
    @property
    def resolv_conf_path(self) -> str | os.PathLike[str] | None: ...
    @property
    def ports(self) -> Sequence[base.PortMapping]: ...     # as published: host port 0 is the chosen one


class NetworkAttacher(Protocol):
    """The bridge networking the container manager delegates named networks to."""

    def attach(
        self, container_id: str, *, name: str, hostname: str, networks: Sequence[str],
        ports: Sequence[base.PortMapping] = (), aliases: Sequence[str] = (),
        extra_hosts: Sequence[str] = (), dns: Sequence[str] = (), dns_search: Sequence[str] = (),
        dns_options: Sequence[str] = (), domainname: str | None = None, static_ips: Mapping[str, str] | None = None,
        static_ips6: Mapping[str, str] | None = None, forward: bool = True,
        macs: Mapping[str, str] | None = None, link_local: Mapping[str, Sequence[str]] | None = None,
        gw_priorities: Mapping[str, int] | None = None, network_aliases: Mapping[str, Sequence[str]] | None = None,
        links: Sequence[str] = (), ports_at_start: bool = False,
    ) -> Attachment: ...

    def detach(self, container_id: str) -> None: ...

    def rename(self, container_id: str, name: str) -> None: ...

    def connect(self, container_id: str, network: str, aliases: Sequence[str] = (), *,
                address: str | None = None, address6: str | None = None, mac: str | None = None,
                link_local: Sequence[str] = (), gw_priority: int = 0) -> Attachment: ...

    def disconnect(self, container_id: str, network: str) -> Attachment: ...

    def forward(self, container_id: str, on: bool, ports: Sequence[base.PortMapping] = ()) -> Attachment: ...

    def files(self, container_id: str) -> tuple[Path, Path]: ...


# ---------------------------------------------------------------------------- helpers

def _with_addresses(rec: records.Record, att: Attachment) -> records.Record:
    """`rec` with its addresses and published ports as its attachment holds them (IPv4 and IPv6;
    the ports forwarded now): after an attach at a start, a connect or a disconnect."""
    return dataclasses.replace(rec, ip_addresses=dict(att.ip_addresses), ip6_addresses=dict(att.ip6_addresses),
                               published=tuple(att.ports))


def _attach_options(config: base.ContainerConfig, ports: Sequence[base.PortMapping]) -> dict[str, Any]:
    """What a container's attachment is made of besides its networks, at its create and when a
    start makes it again (after a reboot, or a connect before its first start): one list, so
    that neither forgets a field (the start's once left out the extra hosts and DNS settings).
    `ports`: those it publishes (`records.published_ports`: its config's, with `run -P` more)."""
    return {"ports": tuple(ports), "aliases": config.aliases, "extra_hosts": config.extra_hosts,
            "dns": config.dns, "dns_search": config.dns_search, "dns_options": config.dns_options,
            "domainname": config.domainname,
            "static_ips": config.ipv4_addresses, "static_ips6": config.ipv6_addresses,
            "macs": config.mac_addresses, "link_local": config.link_local_ips, "gw_priorities": config.gw_priorities,
            "network_aliases": config.network_aliases, "links": config.links}


def _extra_hosts(extra_hosts: Sequence[str]) -> str:
    """The hosts lines of `--add-host` entries for a container without a network of its own."""
    if not extra_hosts:
        return ""
    from reconciler.runtime.native.network import dns

    return "".join(f"{e.address}\t{e.names[0]}\n" for e in dns.extra_entries(extra_hosts))


def _resolv_conf(host_network: bool, nameservers: Sequence[str] = (), search: Sequence[str] = (),
                 options: Sequence[str] = ()) -> str:
    try:
        text = Path("/etc/resolv.conf").read_text(errors="replace")
    except OSError:
        text = ""
    if nameservers or search or options:
        from reconciler.runtime.native.network import dns

        return dns.render_resolv_conf(text, nameservers, search, options)
    if host_network:
        return text
    lines, servers = [], 0
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["nameserver"] and len(words) > 1:
            if words[1].startswith("127.") or words[1] == "::1":
                continue                        # the host's loopback is not reachable from a netns
            servers += 1
        lines.append(line)
    if servers == 0:
        lines += ["nameserver 8.8.8.8", "nameserver 8.8.4.4"]   # Docker's fallback
    return "\n".join(lines) + "\n"


INIT_PATH = "/sbin/docker-init"


BUNDLE_ROOM = 1 << 20               # bytes of a secrets tmpfs kept for the bundle (config.json, conmon's files)


def _secret_entries(p: records.Paths, config: base.ContainerConfig, undo: list[Callable[[], None]]) -> list[dict[str, Any]]:
    """The container's secret files written to a tmpfs of its own (0700; each file with its
    mode and owner, 0400 root by default) and bound read-only at their targets. The content is
    in the config only in memory: a config read back from a record has none, and is refused.
    A container with env values from a SOPS file gets that tmpfs too: its bundle goes there."""
    secrets_ = [m for m in config.mounts if m.type == "secret"]
    missing = base.secret_env_missing(config)
    if missing:
        raise rterrors.InvalidArgument(
            f"env {', '.join(missing)} came from a SOPS-encrypted file and has no value: a container config "
            "read back from a record (a rollback, a copy) never carries one",
            hint="apply the manifests: they give it again")
    if not records.has_secrets(config):
        return []
    for m in secrets_:
        if m.data is None:
            raise rterrors.InvalidArgument(
                f"the secret for {m.target} has no content: a container config read back from a record "
                "(a rollback, a copy) never carries one", hint="apply the manifests: they give it again")
        if not m.target.startswith("/"):
            raise rterrors.InvalidArgument(f"secret target {m.target!r} must be an absolute path")
    p.secrets.mkdir(mode=0o700)
    size = sum(len(m.data or b"") + 4096 for m in secrets_) + (BUNDLE_ROOM if config.secret_env else 0)
    mounts.mount_tmpfs(p.secrets, [f"size={max(size, 65536)}", "mode=0700", "nosuid", "nodev", "noexec"])
    undo.append(lambda: mounts.unmount(p.secrets))
    out = []
    for i, m in enumerate(secrets_):
        opts = dict(o.split("=", 1) for o in m.options if "=" in o)
        path = p.secrets / str(i)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, m.data or b"")
            os.fchown(fd, int(opts.get("uid", "0")), int(opts.get("gid", "0")))
            os.fchmod(fd, int(opts.get("mode", "0400"), 8))
        finally:
            os.close(fd)
        out.append({"destination": m.target, "type": "bind", "source": str(path),
                    "options": ["bind", "rprivate", "ro", "nosuid", "nodev", "noexec"]})
    return out


def _find_init() -> str:
    from reconciler.runtime.native.containers import components

    found = components.init_path()
    if found:
        return found
    raise rterrors.Unavailable("init: true needs a static tini on the host",
                               hint="install the tini package (it provides /usr/bin/tini-static)")


# Docker's name for its default network (`docker run --network bridge`): this engine's default
# network, which no network of its own may be named (network.py `_RESERVED`)
DOCKER_DEFAULT = "bridge"


def default_named(network: str) -> str:
    """A network's name with Docker's name of the default network (DOCKER_DEFAULT) as this
    engine's (`network.DEFAULT_NETWORK`), as the Engine API takes NetworkMode `bridge` and
    `network connect bridge`."""
    from reconciler.runtime.native.network import dns

    return dns.DEFAULT_NETWORK if network == DOCKER_DEFAULT else network


def _default_named(networks: Sequence[str]) -> tuple[str, ...]:
    """`networks`, each `default_named` (once each)."""
    return tuple(dict.fromkeys(default_named(n) for n in networks))


def _restarts(policy: base.RestartPolicy) -> bool:
    """A restart policy other than none (which AutoRemove excludes, as on dockerd)."""
    return policy.name not in ("", "no")


def _identity(pid: int | None, conmon_pid: int | None) -> dict[str, Any]:
    """The start times and boot id that tell these processes from later ones with their pids."""
    return {"pid_start": procs.start_time(pid), "conmon_start": procs.start_time(conmon_pid),
            "boot_id": procs.boot_id()}


_wait_pid = procs.wait_gone


def _forget_ended(rt: oci.OciRuntime, prefix: str, rec: records.Record) -> bool:
    """What `runc delete` does for a container whose processes all ended, without a runc process
    (~10 ms of every `run --rm`): its leaf cgroups removed, then runc's state directory. False
    where that is not certain (another runtime, no state, a process still alive, a leaf with
    processes or child groups): the caller then asks the runtime, which kills and removes them."""
    state = rt.root / rec.id
    if rt.name != "runc" or rec.main_alive() or not (state / "state.json").is_file():
        return False
    if not cgroups.remove_leaves(prefix, rec.id):
        return False
    shutil.rmtree(state)
    return True


# ---------------------------------------------------------------------------- manager

class ContainerManager(records.RecordStore):
    """Creates and drives native containers; the backend composes it with images and networks."""

    def __init__(
        self,
        config: NativeConfig,
        *,
        volume_store: volumes.VolumeStore | None = None,
        network: NetworkAttacher | None = None,
        oci_runtime: str | None = None,
        log_size_max: int | None = None,
    ) -> None:
        config.ensure_dirs()
        super().__init__(config, oci_runtime=oci_runtime)
        # conmon's own cap of the k8s-file log, bytes; None: 100 MiB or 4 x the rotation size
        self.log_size_max = log_size_max
        self.log_max_size = config.log_max_size      # rotation (rotate_logs), see logs.rotate
        self.log_max_files = config.log_max_files
        self.volumes = volume_store or volumes.VolumeStore(config.root, self.db)
        self.network = network
        # container id -> what its next start in this process calls (on_next_start)
        self._start_hooks: dict[str, list[Callable[[records.Record], None]]] = {}
        self._start_hooks_lock = threading.Lock()

    # -- plumbing

    @contextlib.contextmanager
    def lock(self, cid: str) -> Iterator[None]:
        """An flock per container: one writer at a time, across threads and processes."""
        path = self.config.locks_dir / f"{cid}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _network(self) -> NetworkAttacher:
        """The bridge networking; loaded on demand (pyroute2) for containers that have one."""
        if self.network is None:
            from reconciler.runtime.native.network import network

            net: NetworkAttacher = network.NetworkManager(self.config)
            self.network = net
            return net
        return self.network

    def _creating(self, rec: records.Record) -> contextlib.AbstractContextManager[None]:
        """Held while runc makes the container's cgroups: the parent they share stays meanwhile."""
        return cgroups.creating(self.config.locks_dir, self._prefix(rec))

    def _place(self, rec: records.Record) -> Callable[[int], None]:
        prefix = self._prefix(rec)
        return lambda pid: cgroups.move_monitor(prefix, pid)

    def _exit_command(self, rec: records.Record) -> list[str]:
        """What conmon runs at the container's exit: an AutoRemove one's removal when no engine
        process supervises (autoremove.py); nothing for the others."""
        if not rec.auto_remove:
            return []
        from reconciler.runtime.native.containers import autoremove

        return autoremove.command(self.config, rec.id)

    def _log_cap(self, config: base.ContainerConfig) -> int | None:
        if self.log_size_max is not None:
            return self.log_size_max
        # a backstop well above the rotation size (logs.rotate keeps what its cut drops)
        return max(conmon.DEFAULT_LOG_SIZE_MAX, 4 * self.rotation(config)[0])

    def rotation(self, config: base.ContainerConfig) -> tuple[int, int]:
        """The size a container's log rotates at and how many files it keeps: its json-file or
        local logging's max-size and max-file (checked at load), else the engine's."""
        opts = config.log_options if config.log_driver in (None, "json-file", "local") else {}
        size = self.log_max_size
        if "max-size" in opts:
            from reconciler.spec import units  # here: a `run` does not load the spec package (#21)

            size = units.parse_docker_size(opts["max-size"])
        return size, int(opts["max-file"]) if "max-file" in opts else self.log_max_files

    def rotate_logs(self, recs: Sequence[records.Record] | None = None) -> list[str]:
        """Rotate the logs of running containers that reached `log_max_size` (a stat() each);
        the supervision loop calls this every few seconds. Returns the ids rotated."""
        done = []
        for rec in self.records() if recs is None else recs:
            max_size, max_files = self.rotation(rec.config)
            if rec.status != "running" or max_size <= 0:
                continue
            p = self.paths(rec.id)
            try:
                if logs.rotate(p.log, p.dir / "ctl", max_size=max_size, max_files=max_files):
                    done.append(rec.id)
            except OSError:
                continue                        # removed meanwhile; the next tick tries again
        return done

    # -- observation

    def unmonitored(self, rec: records.Record) -> bool:
        """Running, its process alive, its conmon gone without an exit file (killed, OOM-killed):
        nobody reaps it, records its exit or reads its output any more."""
        # conmon ends (a zombie until PID 1 reaps it) only after the container's process did:
        # conmon ended first and that process still runs (not even a zombie) = conmon was killed
        return (rec.status == "running" and rec.conmon_pid is not None and not self.monitor_seen(rec)
                and not procs.alive(rec.conmon_pid, rec.conmon_start, rec.boot_id)
                and procs.alive(rec.pid, rec.pid_start, rec.boot_id)
                and conmon.read_exit(self.paths(rec.id).conmon, rec.id) is None)

    def end_unmonitored(self, name_or_id: str) -> records.Record | None:
        """A container whose conmon is gone cannot be adopted by a new one (conmon must create
        it), so it is ended: SIGKILL to its PID 1 (its pid namespace goes with it), recorded as
        exited 137 with the reason, for its restart policy to bring it back with a monitor, as
        containerd does when a shim dies. The record if it was ended, else None."""
        rec = self._load(name_or_id)
        with self.lock(rec.id):
            rec = self.refresh(self._load(rec.id))
            if not self.unmonitored(rec):
                return None
            from reconciler import logs  # lazily: `ps` and `--version` stay light

            logs.get_logger("reconciler.runtime.native.containers.containers").warning(
                "container monitor lost: ending it so its restart policy brings it back",
                container=rec.name, id=rec.id[:12], conmon_pid=rec.conmon_pid)
            self._signal(rec, 9)
            deadline = time.monotonic() + 10
            while procs.alive(rec.pid, rec.pid_start, rec.boot_id) and time.monotonic() < deadline:
                time.sleep(0.01)
            rec = dataclasses.replace(rec, status="exited", exit_code=137, finished_at=records.now(), pid=None,
                                      error="monitor (conmon) lost; the container was killed")
            self._save(rec)
            self.event(rec, "die", exitCode=137)
            self.network_event(rec, "disconnect")
            return rec

    # -- create

    def create(
        self,
        config: base.ContainerConfig,
        *,
        image_id: str,
        image_config: Mapping[str, Any],
        lowerdirs: Sequence[Path],
        terminal: bool = False,
        stdin: bool = False,
        volatile: bool = False,
        auto_remove: bool = False,
        exposed: Sequence[str] = (),
        publish_all: bool = False,
        late_start_errors: bool = False,
    ) -> records.Record:
        """Create the container (rootfs, bundle, conmon + `runc create`); nothing runs yet.

        `terminal`/`stdin` give the main process a pseudo-terminal / an open stdin that
        `attach()` connects to (`run -it`). `volatile`: its file system is thrown away with it
        (`run --rm`), so its overlay skips syncs (mounts.mount_overlay), its removal's included.
        `auto_remove`: recorded (`Record.auto_remove`), for the restart manager that learns of its
        exit to remove it; refused with a restart policy, in dockerd's words. `exposed`: ports it
        exposes ("80/tcp", Docker's ExposedPorts); `publish_all`: it publishes every port it and its
        image expose (`docker run -P`: `records.published_ports`). `late_start_errors` (the Engine
        API's creates): what dockerd's start, not its create, fails at fails the start here too. A
        process that cannot be made (its executable missing or not executable:
        `oci.ProcessFailed`), as dockerd's create makes no process: the container is kept created
        without one (as after a reboot), which its start makes, and a container that never runs
        (the helper `container import --runtime docker` copies a volume's data through) can be made
        of any image. A host port taken (by a running container, by another program), as dockerd
        binds one at a start: not held for it (`NetworkManager.attach`'s `ports_at_start`), its
        start takes it or fails (`docker run -p` of a taken port leaves the container created)."""
        if auto_remove and _restarts(config.restart):
            raise rterrors.InvalidArgument("can't create 'AutoRemove' container with restart policy")
        name = config.name.lstrip("/")
        if not re.match(_NAME, name):
            raise rterrors.InvalidArgument(
                f"invalid container name {config.name!r}",
                hint="names are letters, digits, '_', '.', '-', starting with a letter or digit",
            )
        if self.db.connect().execute("SELECT 1 FROM containers WHERE name = ?", (name,)).fetchone():
            raise rterrors.AlreadyExists(f"a container named {name} exists already",
                                         hint="remove it first or choose another name")
        if DOCKER_DEFAULT in config.networks:
            config = dataclasses.replace(config, networks=_default_named(config.networks))
        networks = tuple(config.networks)
        if len(networks) > 1 and any(n in ("host", "none") or n.startswith("container:") for n in networks):
            raise rterrors.InvalidArgument("networks 'host', 'none' and 'container:NAME' cannot be combined with others")
        if networks[:1] and networks[0].startswith("container:"):
            config = self._joining(config)
        cid = os.urandom(32).hex()          # secrets.token_hex(32); its import costs `run` ~5 ms
        p = self.paths(cid)
        undo: list[Callable[[], None]] = []
        try:
            config = self._image_volumes(config, image_config, undo)
            p.dir.mkdir(parents=True, mode=0o700)
            undo.append(lambda: shutil.rmtree(p.dir, ignore_errors=True))
            for d in (p.upper, p.work, p.rootfs):
                d.mkdir()
            os.chmod(p.upper, 0o755)  # noqa: S103 - the container's "/" has the upper dir's mode, not the umask's
            mounts.mount_overlay([Path(d) for d in reversed(lowerdirs)], p.upper, p.work, p.rootfs, volatile=volatile)
            undo.append(lambda: mounts.unmount(p.rootfs))
            ports = records.published_ports(config, image_config, tuple(exposed), publish_all)
            rec = self._prepare(cid, name, config, image_id, image_config, lowerdirs, undo, terminal=terminal,
                                ports=ports, ports_at_start=late_start_errors)
            rec = dataclasses.replace(rec, terminal=terminal, stdin=stdin, auto_remove=auto_remove,
                                      exposed=tuple(exposed), publish_all=publish_all)
            try:
                with self.db.tx() as conn:
                    conn.execute("INSERT INTO containers (id, name, data) VALUES (?, ?, ?)", (cid, name, rec.to_json()))
            except sqlite3.IntegrityError:          # a concurrent create took the name
                raise rterrors.AlreadyExists(f"a container named {name} exists already") from None
            undo.append(lambda: self._delete_record(cid))
            try:
                with self._creating(rec):
                    pid, conmon_pid = conmon.create(cid, name, self.oci(rec.runtime), p.conmon, place=self._place(rec),
                                                     log_size_max=self._log_cap(rec.config), terminal=rec.terminal,
                                                     stdin=rec.stdin, stdin_once=rec.config.stdin_once,
                                                     exit_command=self._exit_command(rec))
            except oci.ProcessFailed:
                if not late_start_errors:
                    raise
                cgroups.remove(self.config.name_prefix, cid, self.config.locks_dir)
            else:
                undo.append(lambda: cgroups.remove(self.config.name_prefix, cid, self.config.locks_dir))
                rec = dataclasses.replace(rec, pid=pid, conmon_pid=conmon_pid, **_identity(pid, conmon_pid))
                self._save(rec)
        except BaseException:
            for fn in reversed(undo):
                try:
                    fn()
                except Exception:  # noqa: BLE001, S110 - best-effort cleanup; the original error wins
                    pass
            cgroups.remove(self.config.name_prefix, cid, self.config.locks_dir)
            raise
        self.event(rec, "create")
        return rec

    def _image_volumes(self, config: base.ContainerConfig, image_config: Mapping[str, Any],
                       undo: list[Callable[[], None]]) -> base.ContainerConfig:
        """`config` with a volume mounted at each VOLUME of its image that none of its mounts
        has a destination at, as dockerd makes one: new, named at random, labelled anonymous (so it
        goes with the container's `docker rm -v` or AutoRemove), filled from the image at its first
        mount (`volumes.mount_entries`). Without it the data a database image keeps there went into
        the container's writable layer, and was lost with it. A volume made here is removed again
        (`undo`) when the create fails."""
        added = []
        for where in base.unmounted_volumes(image_config.get("Volumes"), config.mounts):
            name = os.urandom(32).hex()
            self.volumes.ensure(base.VolumeConfig(name=name, labels={volumes.ANONYMOUS_LABEL: ""}))
            undo.append(self._volume_removal(name))
            added.append(base.Mount(type="volume", target=where, source=name))
        return dataclasses.replace(config, mounts=(*config.mounts, *added)) if added else config

    def _volume_removal(self, name: str) -> Callable[[], None]:
        return lambda: self.volumes.remove(name)

    def _joining(self, config: base.ContainerConfig) -> base.ContainerConfig:
        """`config` of a container that joins another's network namespace (`container:TARGET`), as
        dockerd makes it: the target's host name and domain name (its hosts file, which the joiner
        shares, names that host name: `hostname -i` answers), and the target named by its full id
        (inspect's NetworkMode `container:<id>`: the namespace it joins is that container's, not
        whichever may take its name later). A host name of its own is refused, in dockerd's words."""
        if config.hostname:
            raise rterrors.InvalidArgument(
                "conflicting options: hostname and the network mode",
                hint=f"leave the host name out: a container on {config.networks[0]} has that container's")
        target = self._load(config.networks[0].removeprefix("container:"))
        return dataclasses.replace(config, networks=(f"container:{target.id}",), hostname=target.hostname,
                                   domainname=target.config.domainname)

    def _joined(self, name: str, target: str, ports: Sequence[base.PortMapping]) -> tuple[str | None, Path, Path]:
        """The network namespace, hosts and resolv.conf of `target`, which container `name` joins
        (`networks: [container:TARGET]`); the joiner owns none of them, so its removal leaves them.
        The namespace is None for a target on the host's network: the joiner is on it too, as
        dockerd joins it there (the host's namespace is that container's), with its hosts file."""
        if ports:
            raise rterrors.InvalidArgument(f"container {name}: ports cannot be published on a container that joins "
                                           f"{target}'s network", hint=f"publish them on {target}")
        rec = self._load(target)
        if rec.config.networks == ("host",):
            own = self.paths(rec.id).dir
            return None, own / "hosts", own / "resolv.conf"
        if not rec.netns_path:
            # on no network (`none`): its namespace, with its loopback alone, is its process's
            own = self.paths(rec.id).dir
            return self._process_netns(name, rec), own / "hosts", own / "resolv.conf"
        if not os.path.exists(rec.netns_path):
            raise rterrors.InvalidArgument(f"container {name}: {target} has no network namespace of its own to join",
                                           hint=f"connect {target} to a network (and start it) first")
        hosts, resolv = self._network().files(rec.id)
        return os.fspath(rec.netns_path), hosts, resolv

    def _process_netns(self, name: str, target: records.Record) -> str:
        """The network namespace of `target`'s process, for a container joining one on no network
        (`none`), whose namespace runc made with its process and no file names: the process's,
        as dockerd joins `container:TARGET` (`/proc/PID/ns/net`). It must run (or be created):
        dockerd's "cannot join network of a non running container"."""
        rec = self.refresh(target)
        if rec.status not in ("created", "running") or not rec.pid or not rec.main_alive():
            raise rterrors.Conflict(f"container {name}: cannot join the network of {target.name}, which is not "
                                    "running", hint=f"start {target.name} first")
        return f"/proc/{rec.pid}/ns/net"

    def _rejoin(self, rec: records.Record) -> None:
        """Before a start of `rec`, which joins a container on no network: its bundle names the
        namespace of that container's process now (a restart of either made a new process; the
        one named at create may be gone), as dockerd resolves it at each start."""
        nets = rec.config.networks
        if not (nets[:1] and nets[0].startswith("container:")):
            return
        target = self._load(nets[0].removeprefix("container:"))
        if target.netns_path or target.config.networks == ("host",):
            return                  # a namespace file of its own, or the host's, which stays the same: named at create
        path = self._process_netns(rec.name, target)
        spec_path = self.paths(rec.id).config_json
        spec = json.loads(spec_path.read_text())
        for ns in spec.get("linux", {}).get("namespaces", []):
            if ns.get("type") == "network" and ns.get("path") != path:
                ns["path"] = path
                tmp = spec_path.with_suffix(".json.tmp")
                tmp.write_text(json.dumps(spec))
                os.replace(tmp, spec_path)

    def _delete_record(self, cid: str) -> None:
        with self.db.tx() as conn:
            conn.execute("DELETE FROM containers WHERE id = ?", (cid,))

    def _prepare(
        self, cid: str, name: str, config: base.ContainerConfig, image_id: str,
        image_config: Mapping[str, Any], lowerdirs: Sequence[Path], undo: list[Callable[[], None]],
        *, terminal: bool = False, ports: Sequence[base.PortMapping], ports_at_start: bool = False,
    ) -> records.Record:
        # the OCI spec's parts are loaded by create, kill and update, not by a pass that reads (#21)
        from reconciler.runtime.native.containers import bundle

        p = self.paths(cid)
        networks = tuple(config.networks)
        host_network = networks == ("host",)
        hostname = os.uname().nodename if host_network else (config.hostname or cid[:12])   # socket.gethostname()
        user = bundle.resolve_user(p.rootfs, config.user if config.user is not None else image_config.get("User"),
                                   group_add=config.group_add)
        argv = records.process_argv(image_config, config)
        cwd = config.workdir or image_config.get("WorkingDir") or "/"
        if not cwd.startswith("/"):
            raise rterrors.InvalidArgument(f"working directory {cwd!r} must be an absolute path")
        bundle.ensure_dir_in_root(p.rootfs, cwd)
        env = bundle.merge_env(image_config.get("Env"), config.env, hostname=hostname, home=user.home)
        if terminal and not any(e.startswith("TERM=") for e in env):
            env = (*env, "TERM=xterm")          # as `docker run -t` does
        stop_signal = bundle.parse_signal(config.stop_signal or image_config.get("StopSignal"))
        netns_path: str | None = None
        ips: dict[str, str] = {}
        ips6: dict[str, str] = {}
        published: tuple[base.PortMapping, ...] = ()
        hosts_src: Path | None = None
        resolv_src: Path | None = None
        join = networks[0].removeprefix("container:") if networks[:1] and networks[0].startswith("container:") else None
        join_netns: str | None = None
        if join is not None:
            # compose's network_mode service:/container: -- the target's netns, hosts and resolv.conf
            join_netns, hosts_src, resolv_src = self._joined(name, join, ports)
            host_network = join_netns is None       # the target's is the host's network
        elif networks not in (("none",), ("host",)) and (networks or self.network is not None):
            # () means the default network when bridge networking is plugged in, else none
            if self.network is None:
                raise rterrors.Unavailable(
                    f"container {name}: networks {', '.join(networks)} need bridge networking, "
                    "which this engine was started without",
                    hint="use networks 'none' or 'host'",
                )
            att = self.network.attach(cid, name=name, hostname=hostname, networks=networks,
                                      **_attach_options(config, ports), forward=False,   # forwarded from its start on
                                      ports_at_start=ports_at_start)
            undo.append(lambda: self.network.detach(cid) if self.network else None)
            netns_path, ips, ips6 = os.fspath(att.netns_path), dict(att.ip_addresses), dict(att.ip6_addresses)
            published = tuple(att.ports)
            hosts_src = Path(att.hosts_path) if att.hosts_path else None
            resolv_src = Path(att.resolv_conf_path) if att.resolv_conf_path else None
        # the network manager's own files are bound directly: it updates them as peers come and go
        hosts = hosts_src or p.dir / "hosts"
        if hosts_src is None:       # no network of its own: host-gateway names nothing (extra_entries says so)
            extra = _extra_hosts(config.extra_hosts)
            if host_network:
                hosts.write_text(Path("/etc/hosts").read_text(errors="replace") + extra)
            else:
                hosts.write_text(HOSTS_BASE + "".join(f"{ip}\t{hostname}\n" for ip in ips.values()) + extra)
        resolv = resolv_src or p.dir / "resolv.conf"
        if resolv_src is None:
            resolv.write_text(_resolv_conf(host_network, config.dns, config.dns_search, config.dns_options))
        (p.dir / "hostname").write_text(hostname + "\n")
        for f in (hosts, resolv, p.dir / "hostname"):
            if f.parent == p.dir:
                os.chmod(f, 0o644)
        etc = {"/etc/hosts": hosts, "/etc/resolv.conf": resolv, "/etc/hostname": p.dir / "hostname"}
        mount_specs = volumes.mount_entries(tuple(m for m in config.mounts if m.type != "secret"),
                                            self.volumes, p.rootfs)
        mount_specs += _secret_entries(p, config, undo)
        if config.init:
            # Docker's --init: a static tini as PID 1 reaps zombies and forwards the stop signal
            mount_specs.append({"destination": INIT_PATH, "type": "bind", "source": _find_init(),
                                "options": ["bind", "ro", "nosuid", "nodev"]})
            argv = (INIT_PATH, "--", *argv)
        spec = bundle.build_spec(bundle.BundleInputs(
            config=config, image_config=image_config, rootfs=p.rootfs, hostname=hostname, user=user,
            argv=argv, env=env, cwd=cwd,
            cgroups_path=cgroups.cgroups_path(self.config.name_prefix, cid),
            etc_files=etc, netns_path=netns_path or join_netns, host_network=host_network,
            volume_mounts=tuple(mount_specs), terminal=terminal,
            annotations={"io.reconciler.name": name},
        ))
        # env values from a SOPS file stay in memory: the bundle goes to the secrets tmpfs
        (p.secrets if config.secret_env else p.dir).joinpath("config.json").write_text(json.dumps(spec))
        return records.Record(
            id=cid, name=name, image=config.image, image_id=image_id, created=records.now(), config=config,
            image_config=dict(image_config), lowerdirs=tuple(str(d) for d in lowerdirs),
            hostname=hostname, stop_signal=stop_signal, runtime=self.runtime_name,
            ip_addresses=ips, netns_path=netns_path, cgroup_prefix=self.config.name_prefix, ip6_addresses=ips6,
            published=published,
        )

    # -- start / stop / kill

    def on_next_start(self, cid: str, hook: Callable[[records.Record], None]) -> Callable[[], None]:
        """Call `hook` once, at the container's next start made in this process: its conmon is
        up (a stopped container's start makes a new one, and with it the attach socket) and its
        process has not run yet. An attach to a stopped container waits for it, as dockerd's
        does (`docker start -ai` attaches, then starts), and connects there: it misses none of
        the process's output. A hook must be quick and never raises into the start. The
        function returned withdraws it."""
        with self._start_hooks_lock:
            self._start_hooks.setdefault(cid, []).append(hook)

        def withdraw() -> None:
            with self._start_hooks_lock:
                hooks = self._start_hooks.get(cid, [])
                if hook in hooks:
                    hooks.remove(hook)
                if not hooks:
                    self._start_hooks.pop(cid, None)
        return withdraw

    def _starting(self, rec: records.Record) -> None:
        """The hooks of `rec`'s start (on_next_start), right before its process starts."""
        with self._start_hooks_lock:
            hooks = self._start_hooks.pop(rec.id, [])
        for hook in hooks:
            try:
                hook(rec)
            except Exception as exc:  # noqa: BLE001 - an attach's trouble is no reason to fail the start
                from reconciler import logs

                logs.get_logger("reconciler.runtime.native.containers.containers").warning(
                    "start hook failed", container=rec.name, id=rec.id[:12], error=str(exc))

    def start(self, name_or_id: str, *, only_if: Callable[[records.Record], bool] | None = None,
              keep_backoff: bool = False) -> records.Record:
        """Start a created or exited container. `only_if`: asked of the record under the
        container's lock, and nothing is started when it says no (a restart checks there that
        no stop by hand came between its decision and the start). `keep_backoff`: a restart
        policy's start (restart.py), which keeps the record's back-off; any other start forgets it,
        as a `docker start` resets dockerd's restart manager."""
        rec = self._load(name_or_id)
        with self.lock(rec.id):
            rec = self.refresh(self._load(rec.id))
            if rec.status == "running" or (only_if is not None and not only_if(rec)):
                return rec
            rt = self.oci(rec.runtime)
            p = self.paths(rec.id)
            fresh = rec.status == "created" and rec.conmon_alive() and rec.main_alive()
            if not fresh and records.has_secrets(rec.config) and not mounts.is_mounted(p.secrets):
                raise rterrors.Conflict(
                    f"container {rec.name}: its secret files or SOPS env values were in memory only and are gone (the host "
                    "rebooted, or their tmpfs was unmounted); it cannot start again",
                    hint="remove it; applying its manifests creates it again with them")
            if not fresh:
                # exited (or lost with a reboot): a fresh runtime container from the same bundle
                if not _forget_ended(rt, self._prefix(rec), rec):
                    rt.delete(rec.id, force=True)
                _wait_pid(rec.conmon_pid, 5)
                if not mounts.is_mounted(p.rootfs):
                    self._mount_rootfs(rec)
                volumes.ensure_bind_sources(rec.config.mounts)     # deleted while it was stopped
                if rec.netns_path and not os.path.exists(rec.netns_path):
                    # a reboot (or an emptied run dir) took the namespace, interfaces, hosts file
                    # and rules: attach repairs them, with the addresses the IPAM still leases (after
                    # reconnect(), none: it gives the fixed ones asked for, else chooses); one
                    # disconnected from every network ("none") gets its namespace with none, as
                    # Docker starts such a container with its loopback alone. Whoever starts it (a
                    # CLI that opened the engine without bridge networking too): it has a namespace
                    att = self._network().attach(rec.id, name=rec.name, hostname=rec.hostname,
                                              networks=rec.config.networks, **_attach_options(rec.config, rec.ports()),
                                              forward=False)
                    rec = _with_addresses(rec, att)     # reconnect() changes them
                    self._save(rec)
            if not fresh:
                self._rejoin(rec)
            # its ports, as Docker's, before its process is made: a host port another program took
            # meanwhile is refused here, and the container stays as it was (created or exited),
            # with the error and an exit code, as dockerd records a start that failed (128 unless
            # it had one: inspect's State.Error and ExitCode)
            try:
                rec = self._forwarding(rec, on=True)
            except rterrors.PortInUse as exc:
                self._save(dataclasses.replace(rec, error=exc.message, exit_code=rec.exit_code or 128))
                raise
            try:
                rec = self._launch(rec, rt, fresh=fresh)
            except BaseException:
                # its networks, as dockerd journals a start that failed: connected, released again
                with self.db.tx() as conn:
                    self.network_event(rec, "connect", conn=conn)
                    self.network_event(rec, "disconnect", conn=conn)
                raise
            rec = dataclasses.replace(rec, status="running", started_at=records.now(), exit_code=None, error=None,
                                      finished_at=None, oom_killed=False, manually_stopped=False,
                                      restarting=False, paused=False,
                                      restart_delay=rec.restart_delay if keep_backoff else 0.0,
                                      health="starting" if self._has_health(rec) else None,
                                      health_failures=0)
            # its networks' `connect` (as dockerd journals them, before its `start`) and its `start`
            # in the transaction that stores it running: before any `die` a look at its exit
            # journals, and one write for the three (#21: a start's hot path)
            self._save(rec, event="start", connect=True)
            return self.refresh(rec)

    def _launch(self, rec: records.Record, rt: oci.OciRuntime, *, fresh: bool) -> records.Record:
        """Under the container's lock, its ports forwarded: its process made (unless `fresh`: the
        create's waits) and started; the record as it is then. A failure leaves it as it was,
        its ports no longer forwarded."""
        p = self.paths(rec.id)
        if not fresh:
            try:
                with self._creating(rec):
                    pid, conmon_pid = conmon.create(rec.id, rec.name, rt, p.conmon, place=self._place(rec),
                                                     log_size_max=self._log_cap(rec.config),
                                                     terminal=rec.terminal, stdin=rec.stdin,
                                                     stdin_once=rec.config.stdin_once,
                                                     exit_command=self._exit_command(rec))
            except oci.ProcessFailed as exc:
                # as dockerd records a start whose process could not be made: the status kept,
                # the exit code 127 (126), the error in inspect's State.Error
                self._save(dataclasses.replace(self._forwarding(rec, on=False), exit_code=exc.process_exit,
                                               error=exc.message))
                raise
            except BaseException:
                self._save(self._forwarding(rec, on=False))
                raise
            rec = dataclasses.replace(rec, pid=pid, conmon_pid=conmon_pid, status="created",
                                      **_identity(pid, conmon_pid))
            self._save(rec)
        self._starting(rec)
        started = rec
        try:
            rt.start(rec.id, alive=lambda: procs.alive(started.pid, started.pid_start, started.boot_id),
                     pid=started.pid)
        except rterrors.RuntimeBackendError:
            # a caller killed after `runc start` but before saving "running": it runs already
            if not (fresh and (rt.state(rec.id) or {}).get("status") == "running"):
                rec = self._forwarding(self.refresh(rec), on=False)
                self._save(rec)
                raise
        return rec

    @staticmethod
    def _has_health(rec: records.Record) -> bool:
        return records.effective_healthcheck(rec) is not None

    def _wait_exit_file(self, rec: records.Record, timeout: float) -> records.Record:
        deadline = time.monotonic() + timeout
        while True:
            new = self.refresh(rec)
            if new.status != rec.status or time.monotonic() >= deadline:
                return new
            time.sleep(0.005)

    def _forwarding(self, rec: records.Record, *, on: bool) -> records.Record:
        """`rec` with its published ports forwarded (`on`: it starts) or not (it stopped or
        exited), its `published` as the network forwards them now: a container publishes its
        ports while it runs, as Docker's does (`ps -a` shows none of an exited one, inspect's
        NetworkSettings.Ports is empty). Under the container's lock; the caller saves `rec`.
        The bridge networking is loaded for it when the engine was opened without (`reconcile
        start` and `stop`: cli/engines.py): a start that skipped it ran the container with none
        of its ports where an agent had taken them at its stop (`unpublish`), and a stop left
        them forwarded to a container that no longer ran."""
        if not rec.netns_path or not rec.ports() or (not on and not rec.published):
            return rec
        # at a start, the ports it gave up while stopped to a container made meanwhile are taken back
        att = self._network().forward(rec.id, on, rec.ports() if on else ())
        return dataclasses.replace(rec, published=tuple(att.ports))

    def unpublish(self, name_or_id: str) -> records.Record:
        """Stop forwarding the ports of a container that is not running (the restart manager,
        as it learns of an exit the engine did not cause)."""
        rec = self._load(name_or_id)
        if not rec.published:
            return rec
        with self.lock(rec.id):
            rec = self.refresh(self._load(rec.id))
            if rec.status == "running" or not rec.published:
                return rec
            ports = self._forwarding(rec, on=False).published
            return self.update(rec.id, lambda r: dataclasses.replace(r, published=ports))

    def forward_as_running(self) -> tuple[list[str], dict[str, str]]:
        """Each container's published ports forwarded while it runs and only then, and its
        record's `published` what the network forwards for it: what every start and stop keeps,
        made good where one did not (a release whose CLI started a container without its bridge
        networking: it ran with none of its ports, and nothing noticed; a process killed between
        the network's change and the record's). Two queries when all agree (the agent asks before
        each pass, an engine start once); a container that disagrees is looked at again under its
        lock, refreshed. What was changed, as words, and the running containers whose ports could
        not be forwarded (name -> why), which the agent's status lists down."""
        from reconciler.runtime.native.network import ipam

        store = ipam.IPAM(self.db)
        publishers = store.publishers()
        if not publishers:
            return [], {}
        forwarded: dict[str, set[base.PortMapping]] = {}
        for p in store.forwarded_ports():
            forwarded.setdefault(p.container_id, set()).add(
                base.PortMapping(container_port=p.container_port, host_port=p.host_port, protocol=p.protocol,
                                 host_ip=p.host_ip))
        made: list[str] = []
        failed: dict[str, str] = {}
        for rec in self.stored():
            if rec.id not in publishers or not rec.netns_path:
                continue
            runs = rec.status == "running"
            if publishers[rec.id] == runs and (not runs or set(rec.published) == forwarded.get(rec.id, set())):
                continue
            try:
                word = self._forward_again(rec.id, store)
            except rterrors.NotFound:
                continue                        # removed meanwhile
            except rterrors.RuntimeBackendError as exc:
                failed[rec.name] = f"its published ports are not forwarded: {exc}"
                continue
            if word:
                made.append(word)
        return made, failed

    def _forward_again(self, cid: str, store: ipam.IPAM) -> str | None:
        """forward_as_running for one container, under its lock: what changed, as words."""
        with self.lock(cid):
            rec = self.refresh(self._load(cid))
            on, was = rec.status == "running", bool(store.forwarding(cid))
            att = self._network().forward(rec.id, on)
            ports = tuple(att.ports) if on else ()
            if ports != rec.published:
                self._save(dataclasses.replace(rec, published=ports))
        if on == was:
            return None                         # only the record said otherwise: now it says what is forwarded
        if on:
            return f"published ports of container {rec.name}"
        return f"published ports of container {rec.name} taken down: it does not run"

    def stop(self, name_or_id: str, *, timeout: float | None = None) -> records.Record:
        """StopSignal, wait `timeout` (the container's stop_timeout by default), then SIGKILL;
        its ports are no longer forwarded."""
        rec = self._load(name_or_id)
        with self.lock(rec.id):
            rec = self.refresh(self._load(rec.id))
            if rec.status != "running":
                rec = dataclasses.replace(self._forwarding(rec, on=False), manually_stopped=True, restarting=False,
                                          restart_delay=0.0)
                self._save(rec)
                return rec
            rec = dataclasses.replace(rec, manually_stopped=True, restarting=False, restart_delay=0.0)
            self._save(rec)
            timeout = rec.config.stop_timeout if timeout is None else timeout
            # every container has its own pid namespace: ending PID 1 ends them all (no --all)
            if timeout > 0:
                self.event(rec, "kill", signal=rec.stop_signal)
                if self._signal(rec, rec.stop_signal):
                    rec = self._thaw(rec)
                    _wait_pid(rec.pid, timeout)
            if rec.main_alive():
                self.event(rec, "kill", signal=9)
                self._signal(rec, 9)
                rec = self._thaw(rec)
                _wait_pid(rec.pid, 10)
            _wait_pid(rec.conmon_pid, 10)
            rec = self._wait_exit_file(rec, 5)
            if rec.status != "running":
                rec = self._forwarding(rec, on=False)
                self._save(rec)
            self.event(rec, "stop")
            return rec

    def kill(self, name_or_id: str, signal: str | int = "KILL") -> records.Record:
        rec = self.get(name_or_id)
        if rec.status != "running":
            raise rterrors.Conflict(f"container {rec.name} is not running")
        from reconciler.runtime.native.containers import bundle

        signo = bundle.parse_signal(signal)
        if signo in (9, rec.stop_signal):
            # Docker: a kill that ends the container counts as stopped by hand (no restart)
            rec = self.update(rec.id, lambda r: dataclasses.replace(r, manually_stopped=True, restarting=False))
        self.event(rec, "kill", signal=signo)
        self._signal(rec, signo)
        rec = self._thaw(rec)
        if signo == 9:
            _wait_pid(rec.pid, 10)
            _wait_pid(rec.conmon_pid, 10)
            self._wait_exit_file(rec, 5)
            return self.unpublish(rec.id)
        return rec

    def _signal(self, rec: records.Record, signo: int) -> bool:
        """Send `signo` to the container's init process through its OCI runtime, or straight to
        it (by its pid, start time and boot id) when the runtime no longer knows the container
        (its state dir deleted under it) while the process runs on: a stop or removal that
        believed the runtime's "does not exist" left it running, beside its replacement and on
        its volumes. False when it runs no more."""
        if self.oci(rec.runtime).kill(rec.id, signo):
            return True
        return procs.send(rec.pid, rec.pid_start, rec.boot_id, signo)

    def _thaw(self, rec: records.Record) -> records.Record:
        """A paused container unpaused after a signal was sent to it, as Docker does: a frozen
        process acts on no signal (a stop would wait out its timeout, and on a v1 freezer a
        SIGKILL waits for the thaw too). Nothing for one not paused."""
        if not rec.paused:
            return rec
        frozen = rec.is_paused()                # a SIGKILL may have ended it already (a v2 freezer)
        if frozen:
            self.oci(rec.runtime).resume(rec.id)
        rec = self.update(rec.id, lambda r: dataclasses.replace(r, paused=False))
        if frozen:
            self.event(rec, "unpause")
        return rec

    def wait(self, name_or_id: str, *, timeout: float | None = None) -> int:
        """Block until the container is not running; its exit code."""
        deadline = None if timeout is None else time.monotonic() + timeout
        rec = self.get(name_or_id)
        while rec.status in ("running", "created"):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if rec.status == "running":
                _wait_pid(rec.conmon_pid or rec.pid, left if left is None else min(left, 1.0))
            else:
                time.sleep(0.05)
            rec = self.get(rec.id)
            if deadline is not None and time.monotonic() >= deadline and rec.status in ("running", "created"):
                raise rterrors.Unavailable(f"container {rec.name} still running after {timeout}s")
        return rec.exit_code if rec.exit_code is not None else 0

    # -- remove

    def remove(self, name_or_id: str, *, force: bool = False) -> None:
        rec = self.get(name_or_id)
        with self.lock(rec.id):
            rec = self.refresh(self._load(rec.id))
            rt = self.oci(rec.runtime)
            if rec.status == "running":
                if not force:
                    raise rterrors.Conflict(
                        f"container {rec.name} is running", hint="stop it first, or remove with force")
                self._signal(rec, 9)
                if not _wait_pid(rec.pid, 10) and rec.main_alive():
                    raise rterrors.RuntimeBackendError(
                        f"container {rec.name}: its process {rec.pid} did not end on SIGKILL; it is kept",
                        hint=f"see what holds it: cat /proc/{rec.pid}/stack; then remove it again")
            if not _forget_ended(rt, self._prefix(rec), rec):
                rt.delete(rec.id, force=True)
            _wait_pid(rec.conmon_pid, 10)
            p = self.paths(rec.id)
            mounts.unmount(p.rootfs)
            mounts.unmount(p.secrets)
            if rec.netns_path:
                self._network().detach(rec.id)
            shutil.rmtree(p.dir, ignore_errors=True)
            shutil.rmtree(p.conmon.persist_dir, ignore_errors=True)
            for f in (p.conmon.exit_file(rec.id), self.config.locks_dir / f"{rec.id}.lock"):
                try:
                    f.unlink()
                except FileNotFoundError:
                    pass
            cgroups.remove(self._prefix(rec), rec.id, self.config.locks_dir)
            self._delete_record(rec.id)
            self.event(rec, "destroy")

    # -- rename

    def rename(self, name_or_id: str, new_name: str) -> records.Record:
        """Give a container another name (a running one keeps running): its record, the name in
        its bundle's annotations, and its entries in the hosts files of its networks."""
        name = new_name.lstrip("/")
        if not re.match(_NAME, name):
            raise rterrors.InvalidArgument(
                f"invalid container name {new_name!r}",
                hint="names are letters, digits, '_', '.', '-', starting with a letter or digit",
            )
        rec = self._load(name_or_id)
        with self.lock(rec.id):
            try:
                with self.db.tx() as conn:
                    row = conn.execute("SELECT data FROM containers WHERE id = ?", (rec.id,)).fetchone()
                    if row is None:
                        raise rterrors.NotFound(f"No such container: {name_or_id}")
                    cur = records.Record.from_json(row["data"])
                    if cur.name == name:
                        return cur
                    rec = dataclasses.replace(cur, name=name, config=dataclasses.replace(cur.config, name=name))
                    conn.execute("UPDATE containers SET name = ?, data = ? WHERE id = ?", (name, rec.to_json(), rec.id))
            except sqlite3.IntegrityError:
                raise rterrors.AlreadyExists(f"a container named {name} exists already",
                                             hint="remove it first or choose another name") from None
            spec_path = self.paths(rec.id).config_json
            with contextlib.suppress(OSError, ValueError):
                spec = json.loads(spec_path.read_text())
                spec.setdefault("annotations", {})["io.reconciler.name"] = name
                tmp = spec_path.with_suffix(".json.tmp")      # exec reads it meanwhile
                tmp.write_text(json.dumps(spec))
                os.replace(tmp, spec_path)
            if rec.netns_path:
                self._network().rename(rec.id, name)
            self.event(rec, "rename", oldName=cur.name)
        return rec

    # -- networks of a created container

    def reconnect(self, name_or_id: str, networks: Sequence[str], aliases: Sequence[str], *,
                  ipv4_addresses: Mapping[str, str] | None = None,
                  ipv6_addresses: Mapping[str, str] | None = None,
                  endpoints: Mapping[str, base.EndpointConfig] | None = None) -> records.Record:
        """Give a container that was created and not started yet, or has exited, other networks
        and aliases (`docker network connect` between create and start, as compose does, or of a
        stopped container, which dockerd records for its next start), and fixed
        addresses on them (None: those it has, on the networks it keeps), and the interface
        settings `endpoints` names (its MAC address, link-local addresses, gateway priority and
        own aliases on a network; those it has stay on the networks it keeps). Its runtime container and network
        namespace are dropped now, with its addresses (inspect shows its networks without one, as
        dockerd a stopped container's); its start makes them again (as after a reboot), attached
        to the new networks, where a fixed address is checked. Its exit code and times stay."""
        rec = self._load(name_or_id)
        with self.lock(rec.id):
            rec = self.refresh(self._load(rec.id))
            if rec.status not in ("created", "exited"):
                raise rterrors.Conflict(f"container {rec.name} is {rec.status}: its networks change here only "
                                        "while it does not run", hint="stop it first, or connect it while it runs")
            nets = tuple(dict.fromkeys(networks)) or ("none",)   # disconnected from all, until a connect
            if not rec.netns_path or (nets != ("none",) and set(nets) & {"none", "host"}):
                raise rterrors.InvalidArgument(f"container {rec.name}: only a container on bridge networks can be "
                                               "connected to other bridge networks")
            self.oci(rec.runtime).delete(rec.id, force=True)
            _wait_pid(rec.conmon_pid, 10)
            self.paths(rec.id).conmon.exit_file(rec.id).unlink(missing_ok=True)    # not an exit: a re-plan
            self._network().detach(rec.id)
            v4 = rec.config.ipv4_addresses if ipv4_addresses is None else ipv4_addresses
            v6 = rec.config.ipv6_addresses if ipv6_addresses is None else ipv6_addresses
            cfg = dataclasses.replace(rec.config, networks=nets, aliases=tuple(aliases),
                                      ipv4_addresses={n: a for n, a in v4.items() if n in nets},
                                      ipv6_addresses={n: a for n, a in v6.items() if n in nets})
            cfg = base.with_endpoints(cfg, {n: e for n, e in (endpoints or {}).items() if n in nets})
            rec = dataclasses.replace(rec, pid=None, conmon_pid=None, config=cfg, ip_addresses={}, ip6_addresses={},
                                      published=())
            self._save(rec)
            return rec

    def connect_running(self, name_or_id: str, network: str, aliases: Sequence[str] = (), *,
                        ipv4: str | None = None, ipv6: str | None = None,
                        endpoint: base.EndpointConfig | None = None) -> records.Record:
        """`docker network connect` of a running container: one more interface in its namespace
        (network.py NetworkManager.connect), at the fixed addresses `ipv4`/`ipv6` when given, with
        the interface settings of `endpoint` and `aliases`, its names on that network alone (as
        Docker's, an endpoint's: not on its other networks, gone with a disconnect), kept in its
        record for its next starts."""
        rec = self._load(name_or_id)
        with self.lock(rec.id):
            rec = self.refresh(self._load(rec.id))
            self._live_bridge(rec)
            kept = self.networks_of(rec)
            if network in kept:
                raise rterrors.Conflict(f"container {rec.name} is already connected to network {network}")
            own = endpoint or base.EndpointConfig()
            own = dataclasses.replace(own, aliases=tuple(dict.fromkeys((*own.aliases, *aliases))))
            att = self._network().connect(rec.id, network, own.aliases, address=ipv4, address6=ipv6, mac=own.mac,
                                          link_local=own.link_local, gw_priority=own.gw_priority)
            cfg = dataclasses.replace(rec.config, networks=(*kept, network),
                                      ipv4_addresses={**rec.config.ipv4_addresses, **({network: ipv4} if ipv4 else {})},
                                      ipv6_addresses={**rec.config.ipv6_addresses, **({network: ipv6} if ipv6 else {})})
            cfg = base.with_endpoints(cfg, {network: own})
            rec = _with_addresses(dataclasses.replace(rec, config=cfg), att)
            self._save(rec)
            return rec

    def disconnect_running(self, name_or_id: str, network: str) -> records.Record:
        """`docker network disconnect` of a running container: its interface there is deleted,
        and the ports it served, with the default route, move to the network that serves them
        now (network.py NetworkManager.disconnect): its record says where they are forwarded."""
        rec = self._load(name_or_id)
        with self.lock(rec.id):
            rec = self.refresh(self._load(rec.id))
            self._live_bridge(rec)
            on = self.networks_of(rec)
            if network not in on:
                raise rterrors.NotFound(f"container {rec.name} is not connected to network {network}")
            att = self._network().disconnect(rec.id, network)
            cfg = dataclasses.replace(rec.config, networks=tuple(n for n in on if n != network) or ("none",),
                                      ipv4_addresses={k: v for k, v in rec.config.ipv4_addresses.items() if k != network},
                                      ipv6_addresses={k: v for k, v in rec.config.ipv6_addresses.items() if k != network})
            cfg = base.with_endpoints(cfg, {network: base.EndpointConfig()})
            rec = _with_addresses(dataclasses.replace(rec, config=cfg), att)
            self._save(rec)
            return rec

    @staticmethod
    def networks_of(rec: records.Record) -> tuple[str, ...]:
        """The bridge networks a container with a namespace of its own is on, by its record: those
        it names; the default network when it names none, as Docker's container created without
        a network is on the default bridge (and is so by name once a connect adds another, so a
        disconnect of that other leaves it there); none when it was disconnected from every one
        ("none": its namespace kept, with its loopback alone, as Docker's)."""
        from reconciler.runtime.native.network import network

        return tuple(n for n in rec.config.networks if n != "none") if rec.config.networks else (network.DEFAULT_NETWORK,)

    @staticmethod
    def _live_bridge(rec: records.Record) -> None:
        """A running container with a namespace of the bridge networking: on bridge networks, or
        disconnected from every one ("none", its namespace kept)."""
        if rec.status != "running":
            raise rterrors.Conflict(f"container {rec.name} is {rec.status}, not running")
        nets = set(rec.config.networks)
        if not rec.netns_path or "host" in nets or ("none" in nets and nets != {"none"}):
            raise rterrors.InvalidArgument(f"container {rec.name}: only a container on bridge networks can be "
                                           "connected to other bridge networks")

    # -- pause

    def pause(self, name_or_id: str, *, freeze: bool = True) -> records.Record:
        """`docker pause` (`freeze`) or `unpause`: the cgroup freezer (`runc pause` / `resume`), and
        the record saying so, where every reader looks first (`Record.is_paused`: the cgroup is read
        only for a record that says paused); journalled as Docker's `pause` / `unpause` events.
        Conflict when the container is not running, or is paused (not paused) already."""
        rec = self._load(name_or_id)
        with self.lock(rec.id):
            rec = self.refresh(self._load(rec.id))
            if rec.status != "running":
                raise rterrors.Conflict(f"Container {rec.id} is not running")
            if rec.is_paused() == freeze:
                raise rterrors.Conflict(f"Container {rec.id} is {'already' if freeze else 'not'} paused")
            rt = self.oci(rec.runtime)
            if freeze:
                # recorded first: a process killed between the two leaves a record that says paused
                # over a cgroup that is not frozen, which reads as not paused (never the reverse)
                rec = self.update(rec.id, lambda r: dataclasses.replace(r, paused=True, cgroup_prefix=self._prefix(r)))
                try:
                    rt.pause(rec.id)
                except BaseException:
                    # runc may have frozen the cgroup before the failure (a ^C or SIGTERM while it
                    # returned): thaw it, or a record saying "not paused" hides a frozen container
                    with contextlib.suppress(Exception):
                        if cgroups.frozen(self._prefix(rec), rec.id):
                            rt.resume(rec.id)
                    self.update(rec.id, lambda r: dataclasses.replace(r, paused=False))
                    raise
            else:
                rt.resume(rec.id)
                rec = self.update(rec.id, lambda r: dataclasses.replace(r, paused=False))
            self.event(rec, "pause" if freeze else "unpause")
            return rec

    # -- limits (docker update)

    def update_config(self, name_or_id: str, update: base.ResourceUpdate) -> records.Record:
        """`docker update` of a container (`update` checked first: `limits.checked`): its limits
        and restart policy merged over its own (`limits.merged`), set now on the cgroups of its
        runtime container where it has one (running, paused, or created and waiting for its
        start: `runc update`), written into its bundle for its next starts, and recorded
        (inspect shows them); journalled as Docker's `update` event."""
        from reconciler.runtime import limits
        from reconciler.runtime.native.containers import bundle

        rec = self.get(name_or_id)
        with self.lock(rec.id):
            rec = self.get(rec.id)
            resources, restart = limits.merged(rec.config.resources, rec.config.restart, update,
                                               auto_remove=rec.auto_remove)
            live = bundle.live_resources(resources)         # its own checks too (a memory limit too small)
            if rec.status == "running" or (rec.status == "created" and rec.conmon_alive() and rec.main_alive()):
                self.oci(rec.runtime).update(rec.id, live)
            spec_path = self.paths(rec.id).config_json
            with contextlib.suppress(FileNotFoundError):    # a bundle a reboot took (secrets): it starts no more
                spec = bundle.with_resources(json.loads(spec_path.read_text()), resources)
                tmp = spec_path.with_suffix(".json.tmp")     # a start reads it meanwhile
                tmp.write_text(json.dumps(spec))
                os.replace(tmp, spec_path)

            def apply(r: records.Record) -> records.Record:
                return dataclasses.replace(r, config=dataclasses.replace(r.config, resources=resources, restart=restart))

            new = self.update(rec.id, apply)
        self.event(new, "update")
        return new

    # -- the file system, for docker cp

    def open_root(self, name_or_id: str, *, live: bool = True) -> int:
        """A directory fd of the container's `/`: a running container's own view
        (`/proc/<pid>/root`, its volumes, binds and tmpfs included), else (or with `live`
        false: its own files only, as `docker export` wants them) its overlay rootfs (mounted
        again if a reboot took the mount). The caller closes it."""
        rec = self.get(name_or_id)
        fd = self._open_live_root(rec) if live else -1
        if fd >= 0:
            return fd
        p = self.paths(rec.id)
        with self.lock(rec.id):
            if not mounts.is_mounted(p.rootfs):
                self._mount_rootfs(rec)
        return os.open(p.rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def open_view(self, name_or_id: str) -> tuple[int, int]:
        """What `docker cp` reads and writes: (an fd of the container's `/`, an fd to close with
        it, or -1). A running container's own view (`/proc/<pid>/root`); a stopped one's rootfs
        with the bind mounts its start makes (volumes, binds, its hosts, hostname and
        resolv.conf: its bundle's) on it, as dockerd mounts them for a copy, in a mount namespace
        of its own (`mounts.private_view`: nothing is mounted on the host, nothing can leak) --
        a file copied into a volume of a created container is in the volume when it starts."""
        rec = self.get(name_or_id)
        fd = self._open_live_root(rec)
        if fd >= 0:
            return fd, -1
        os.close(self.open_root(rec.id, live=False))           # its rootfs mounted (again)
        p = self.paths(rec.id)
        try:
            spec = json.loads((p.bundle / "config.json").read_bytes())
        except (OSError, ValueError):
            spec = {}
        binds = [(m["destination"], Path(m["source"]), "ro" in m.get("options", ()))
                 for m in spec.get("mounts") or () if m.get("type") == "bind" and os.path.exists(m.get("source", ""))]
        if not binds:
            return os.open(p.rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), -1
        return mounts.private_view(p.rootfs, binds)

    @staticmethod
    def _open_live_root(rec: records.Record) -> int:
        """An fd of a running container's own `/` (`/proc/<pid>/root`), or -1."""
        if rec.status != "running" or not rec.pid:
            return -1
        try:
            fd = os.open(f"/proc/{rec.pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return -1
        if procs.alive(rec.pid, rec.pid_start, rec.boot_id):
            return fd                       # still the container's process: not a reused pid
        os.close(fd)
        return -1

    def _mount_rootfs(self, rec: records.Record) -> None:
        """Mount a container's overlay again (a reboot or an unmount took it). An upper mounted
        volatile (`run --rm`) is mounted so again while the host has not booted since its
        processes started (nothing it wrote can be lost); after a reboot, maybe a crash, its
        files may be incomplete, and it is refused (the kernel's advice: throw it away)."""
        p = self.paths(rec.id)
        volatile = mounts.volatile_marker(p.work).exists()
        if volatile:
            if rec.boot_id != procs.boot_id():
                raise rterrors.Conflict(
                    f"container {rec.name}: its file system was written without syncs (run --rm) and the host "
                    "has restarted since, so its files may be incomplete", hint=f"remove it: reconcile rm {rec.name}")
            mounts.clear_volatile(p.work)
        mounts.mount_overlay([Path(d) for d in reversed(rec.lowerdirs)], p.upper, p.work, p.rootfs, volatile=volatile)
