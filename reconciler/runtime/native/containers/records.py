"""Container records: what the engine knows about each container, read cheaply.

A record is a row of the state DB (`containers`: id, name and the `Record` as JSON). Reading
records is what `ps`, `inspect`, `logs` and every pass's observation do, so this module imports
only what reading needs, not the lifecycle's bundle, mounts, networking, health or restart code:
`RecordStore` loads records, and `containers.ContainerManager` adds the lifecycle on top of it.

Rediscovery: records say what we last knew; `refresh()` reads conmon's exit file (written
even while no engine process runs) and /proc, so a restarted engine learns about exits that
happened meanwhile.

Reading is O(changes): triggers bump a version number (`containers_version`) with every write
to the table, by any process, so `stored()` re-reads the rows only when it moved, and parses
only the rows whose JSON changed. The supervision loops wait on events instead of refreshing
every record every tick: the restart manager on the monitors' pidfds (monitors.py), the health
checker on a heap of deadlines. `row_reads` and `refreshes` count the work, for tests and bench.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler import healthtimes
from reconciler._dataclass import dataclass, dataclasses, field
from reconciler.runtime import base
from reconciler.runtime import errors as rterrors
from reconciler.runtime.native import journal, procs
from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.containers import cgroups, conmon, logs, summaries

if TYPE_CHECKING:
    import sqlite3

    from reconciler.runtime.native.containers import oci

__all__ = [
    "Paths",
    "Record",
    "RecordStore",
    "effective_healthcheck",
    "exposed_ports",
    "has_secrets",
    "now",
    "process_argv",
    "published_ports",
    "summary",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS containers_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS containers_inserted AFTER INSERT ON containers BEGIN
    INSERT INTO containers_version (id, n) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS containers_updated AFTER UPDATE ON containers BEGIN
    INSERT INTO containers_version (id, n) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS containers_deleted AFTER DELETE ON containers BEGIN
    INSERT INTO containers_version (id, n) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = n + 1;
END;
"""

# How long `records()` reuses the records it refreshed while nothing changed (records.records)
FRESH_FOR = 1.0
_NONE_SEEN: tuple[float, frozenset[tuple[str, int | None]]] = (float("-inf"), frozenset())


def now() -> str:
    """RFC 3339 UTC with microseconds, as stored in records."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ns_time(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------------------- records

def process_argv(image_config: Mapping[str, Any], config: base.ContainerConfig) -> tuple[str, ...]:
    """Entrypoint + Cmd: a given entrypoint drops the image's Cmd (Docker's rule: summaries.argv_of)."""
    argv = summaries.argv_of(image_config, config.command, config.args)
    if not argv:
        raise rterrors.InvalidArgument(
            f"container {config.name}: no command specified",
            hint="the image has neither Entrypoint nor Cmd; give a command",
        )
    return argv


def exposed_ports(config: base.ContainerConfig, image_config: Mapping[str, Any],
                  exposed: tuple[str, ...] = ()) -> list[str]:
    """Docker's Config.ExposedPorts of a container, "port/protocol" each: its own (`--expose`), its
    image's (EXPOSE) and those it publishes (which the docker CLI adds), as dockerd merges them."""
    keys = [*exposed, *(image_config.get("ExposedPorts") or {}),
            *(f"{p.container_port}/{p.protocol}" for p in config.ports)]
    return list(dict.fromkeys(k if "/" in k else f"{k}/tcp" for k in map(str, keys)))


def published_ports(config: base.ContainerConfig, image_config: Mapping[str, Any], exposed: tuple[str, ...] = (),
                    publish_all: bool = False) -> tuple[base.PortMapping, ...]:
    """The ports a container publishes: its config's, and with `publish_all` (Docker's
    PublishAllPorts: `run -P`) every port it or its image exposes that those do not bind, on every
    address, on a host port the engine chooses (dockerd's rule; tcp and udp: the native engine
    publishes no sctp)."""
    if not publish_all:
        return config.ports
    bound = {(p.container_port, p.protocol) for p in config.ports}
    extra = []
    for key in exposed_ports(config, image_config, exposed):
        port, _, protocol = key.partition("/")
        if port.isdigit() and protocol in ("tcp", "udp") and (int(port), protocol) not in bound:
            extra.append(base.PortMapping(container_port=int(port), host_port=0, protocol=protocol))
    return (*config.ports, *extra)


@dataclass(frozen=True)
class Record:
    """What the engine knows about one container (persisted as JSON in the state DB)."""

    id: str
    name: str
    image: str
    image_id: str
    created: str
    config: base.ContainerConfig
    image_config: Mapping[str, Any]
    lowerdirs: tuple[str, ...]               # bottom first
    hostname: str
    stop_signal: int
    runtime: str = "runc"
    status: str = "created"                  # base.ContainerStatus values
    pid: int | None = None
    conmon_pid: int | None = None
    exit_code: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    oom_killed: bool = False
    restart_count: int = 0
    # the back-off the restart manager waited before its last restart (seconds; 0: none since a
    # start or stop by hand): the next one doubles it, whichever process makes it (restart.py)
    restart_delay: float = 0.0
    manually_stopped: bool = False
    health: str | None = None
    health_failures: int = 0
    health_log: tuple[Mapping[str, Any], ...] = ()
    ip_addresses: Mapping[str, str] = field(default_factory=dict)
    netns_path: str | None = None
    ip6_addresses: Mapping[str, str] = field(default_factory=dict)    # dual-stack networks
    restarting: bool = False                 # in restart backoff (set by the RestartManager): see restart_pending
    cgroup_prefix: str = ""                  # parent cgroup name (the creating engine's prefix)
    terminal: bool = False                   # main process on a pseudo-terminal (run -t)
    stdin: bool = False                      # main process stdin kept open for attach (run -i)
    # who `pid` and `conmon_pid` are (procs.alive): their start times and the boot they ran in
    pid_start: int | None = None
    conmon_start: int | None = None
    boot_id: str | None = None
    error: str | None = None                 # why the engine ended it (State.Error), None otherwise
    # the published ports as the kernel forwards them now (what ps and inspect show): a host port 0
    # of the config is the one chosen; none while no network serves them
    published: tuple[base.PortMapping, ...] = ()
    # the process whose restart manager set `restarting` (procs.alive): its pid, start time, boot
    restarter_pid: int | None = None
    restarter_start: int | None = None
    restarter_boot: str | None = None
    paused: bool = False                     # paused by the engine (its cgroup frozen): see is_paused
    # removed, with its anonymous volumes, by the engine that learns of its exit or finds it exited at
    # its start (Docker's HostConfig.AutoRemove: `docker run --rm`); never with a restart policy
    auto_remove: bool = False
    exposed: tuple[str, ...] = ()            # its own exposed ports ("80/tcp": Docker's Config.ExposedPorts)
    publish_all: bool = False                # every exposed port published (Docker's PublishAllPorts: run -P)

    def ports(self) -> tuple[base.PortMapping, ...]:
        """The ports its attachment publishes (`published_ports`)."""
        return published_ports(self.config, self.image_config, self.exposed, self.publish_all)

    def restart_pending(self) -> bool:
        """An exited container whose restart waits its back-off in a restart manager that lives
        (summaries.restart_pending: the one rule for ps, inspect and observation)."""
        return summaries.restart_pending(self.status, self.restarting, self.restarter_pid, self.restarter_start,
                                         self.restarter_boot)

    def runs(self) -> bool:
        """Running (paused too), or restarting: its restart pending (what dockerd's IsRunning
        counts; `rmi` refuses to delete the image of such a container, even forced)."""
        return self.status == "running" or self.restart_pending()

    def is_paused(self) -> bool:
        """A running container the engine paused, its cgroup frozen still (summaries.paused: the
        one rule for ps, inspect and observation; a cgroup read only where the record says paused)."""
        return summaries.paused(self.status, self.paused, self.cgroup_prefix, self.id)

    def health_seen(self, hc: base.Healthcheck | None, now: float | None = None) -> tuple[bool, str | None]:
        """Whether its health status is stale at `now` (default: now), and when a probe last
        observed it in this run (healthtimes.stale and last_probe: the one rule for ps,
        inspect, observation and the health checker); `hc`: its effective_healthcheck, which
        the caller has at hand."""
        probed = healthtimes.last_probe(self.health_log, self.started_at)
        if hc is None or self.status != "running":
            return False, probed
        return healthtimes.stale(self.status, hc.interval, hc.timeout, hc.start_period, self.started_at, probed,
                                      time.time() if now is None else now), probed

    def main_alive(self) -> bool:
        # a zombie still counts until reaped (conmon reaps it and writes the exit file meanwhile)
        return procs.alive(self.pid, self.pid_start, self.boot_id, zombie_ok=True)

    def conmon_alive(self) -> bool:
        # a conmon that ended is a zombie until PID 1 reaps it: its exit file is (being) written
        return procs.alive(self.conmon_pid, self.conmon_start, self.boot_id, zombie_ok=True)

    def to_json(self) -> str:
        """The record as stored: its fields and its config's that differ from their defaults
        (`_DEFAULTS`, `_CONFIG_DEFAULTS`), compact. Half the text of every field written: a pass
        parses every record at each engine start, 25 -> 13.7 ms at 500 with config_from_json's (#21); a reader of any
        version fills the rest in with the same defaults."""
        # field by field, not dataclasses.asdict: that deep-copies the config and the image's
        # config only for them to be replaced below (1.6 ms of a create's CPU per save)
        d = {f.name: v for f in dataclasses.fields(self) if (v := getattr(self, f.name)) != _DEFAULTS.get(f.name, _NONE)}
        config = base.config_to_json(self.config)           # no secret content (base.py)
        d["config"] = {k: v for k, v in config.items() if k not in _CONFIG_DEFAULTS or v != _CONFIG_DEFAULTS[k]}
        d["image_config"] = dict(self.image_config)
        for name in ("ip_addresses", "ip6_addresses"):
            if name in d:
                d[name] = dict(d[name])
        if "health_log" in d:
            d["health_log"] = [dict(x) for x in self.health_log]
        if "published" in d:
            d["published"] = [dataclasses.asdict(p) for p in self.published]
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Record:
        d = json.loads(text)
        d["config"] = base.config_from_json(d["config"])     # its one inverse (a key left out: its default)
        d["lowerdirs"] = tuple(d.get("lowerdirs") or ())
        d["health_log"] = tuple(d.get("health_log") or ())
        d["published"] = tuple(base.PortMapping(**p) for p in d.get("published") or ())
        d["exposed"] = tuple(d.get("exposed") or ())
        return cls(**{k: v for k, v in d.items() if k in _FIELDS})

    def state(self) -> base.ContainerState:
        status = base.ContainerStatus(self.status)
        if self.restart_pending():
            status = base.ContainerStatus.RESTARTING
        hc = effective_healthcheck(self)
        stale, probed = self.health_seen(hc)
        networks = self.attached_networks()
        return base.ContainerState(
            id=self.id, name=self.name, image=self.image, image_id=self.image_id,
            labels=dict(self.config.labels), status=status, created=self.created,
            exit_code=self.exit_code, started_at=self.started_at, finished_at=self.finished_at,
            pid=self.pid if self.status == "running" else None, oom_killed=self.oom_killed,
            health=summaries.health_now(self.status, self.health), restart_count=self.restart_count,
            ip_addresses=dict(self.ip_addresses), ports=tuple(summaries.forwarded(self.status, self.published)),
            manually_stopped=self.manually_stopped, error=self.error, ip6_addresses=dict(self.ip6_addresses),
            paused=self.is_paused(), health_stale=stale, health_probed_at=probed,
            first_probe=None if hc is None or self.health is None else base.first_probe(hc),
            stale_binds=self._stale_binds(),
            networks=dict.fromkeys(networks, ""), aliases=dict.fromkeys(networks, tuple(self.config.aliases)),
        )

    def attached_networks(self) -> list[str]:
        """The bridge networks it is on, by its record alone (ContainerManager.networks_of's
        rule: those its config names, which a connect and a disconnect keep; the default one when
        it names none; none when it joins another's namespace, the host's, or was disconnected
        from every one), where its starts attach it. A network is never removed while a
        container is attached (ipam.remove_network): the one of a name is the one it is on."""
        return summaries.attached_networks(self.netns_path, self.config.networks)

    def _stale_binds(self) -> tuple[str, ...]:
        """Its bind sources that are no longer what it runs with (volumes.stale_binds)."""
        if self.status != "running" or not self.pid or not any(m.type == "bind" for m in self.config.mounts):
            return ()
        from reconciler.runtime.native.volumes import volumes  # a container with binds only

        return volumes.stale_binds(self.config.mounts, self.pid)

    def command_line(self) -> list[str]:
        """The container's argv (Entrypoint + Cmd after overrides); [] when it has none."""
        try:
            return list(process_argv(self.image_config, self.config))
        except rterrors.RuntimeBackendError:
            return []


_FIELDS = frozenset(f.name for f in dataclasses.fields(Record))     # what from_json keeps of a record's JSON
_NONE = object()
# what to_json leaves out: a field at its default, and a config's key at an empty config's value
# (`status` always written: summaries.read takes it from the row itself)
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(Record)
                             if f.default is not dataclasses.MISSING and f.name != "status"}
_DEFAULTS.update({f.name: f.default_factory() for f in dataclasses.fields(Record)
                  if f.default_factory is not dataclasses.MISSING})
_CONFIG_DEFAULTS = {k: v for k, v in base.config_to_json(base.ContainerConfig(name="", image="")).items()
                    if k not in ("name", "image")}


@dataclass(frozen=True)
class Paths:
    """Every host path of one container."""

    dir: Path
    run_dir: Path
    cid: str

    @property
    def rootfs(self) -> Path:
        return self.dir / "rootfs"

    @property
    def upper(self) -> Path:
        return self.dir / "upper"

    @property
    def work(self) -> Path:
        return self.dir / "work"

    @property
    def log(self) -> Path:
        return self.dir / "ctr.log"

    @property
    def bundle(self) -> Path:
        """The OCI bundle dir (config.json; conmon's pidfile, ctl, logs of the runtime): the
        container's dir, or its secrets tmpfs when config.json holds env values from a
        SOPS-encrypted file (they stay in memory: `Manager._prepare`)."""
        return self.secrets if (self.secrets / "config.json").is_file() else self.dir

    @property
    def config_json(self) -> Path:
        return self.bundle / "config.json"

    @property
    def secrets(self) -> Path:
        """The container's own tmpfs holding its secret files (RAM only; gone with a reboot)."""
        return self.dir / "secrets"

    @property
    def conmon(self) -> conmon.ConmonPaths:
        return conmon.ConmonPaths(
            bundle=self.bundle, log_path=self.log, exit_dir=self.run_dir / "exits",
            persist_dir=self.run_dir / "conmon" / self.cid, socket_dir=self.run_dir / "conmon",
        )


def has_secrets(config: base.ContainerConfig) -> bool:
    """Secret files or SOPS env values: what is kept on the container's own tmpfs only."""
    return summaries.holds_secrets(config.secret_env, (m.type for m in config.mounts))


def summary(rec: Record) -> dict[str, Any]:
    """What `ps` shows of a container, as JSON values: the CLI makes its rows of these, whether
    it read the records itself or the agent served them (GET /v1/containers)."""
    base.ContainerStatus(rec.status)        # a status this version knows
    ports = summaries.forwarded(rec.status, rec.published)     # as forwarded now, never as asked
    stale, probed = rec.health_seen(effective_healthcheck(rec))
    return summaries.summary_fields(
        id=rec.id, image=rec.image, argv=rec.command_line(), created=rec.created, status=rec.status,
        restarting=rec.restart_pending(), paused=rec.is_paused(), exit_code=rec.exit_code, health=summaries.health_now(rec.status, rec.health),
        name=rec.name,
        labels=rec.config.labels, restart_count=rec.restart_count, started_at=rec.started_at,
        finished_at=rec.finished_at, health_stale=stale, health_probed_at=probed,
        ports=summaries.port_text((p.host_ip, p.host_port, p.container_port, p.protocol) for p in ports),
        mounts=summaries.mount_list((m.type, m.source, m.target) for m in rec.config.mounts),
        networks=summaries.network_list(rec.netns_path, rec.config.networks, rec.ip_addresses))


def effective_healthcheck(rec: Record) -> base.Healthcheck | None:
    """The container's healthcheck over its image's, as Docker merges them (`base.healthcheck_of`);
    None when there is none or it is NONE."""
    return base.healthcheck_of(rec.config.healthcheck, rec.image_config.get("Healthcheck"))


# ---------------------------------------------------------------------------- store

class RecordStore:
    """The container records of an engine's state DB, kept up to date with what conmon and
    /proc say (`refresh`). Creates nothing but its table: `ps` and `inspect` read through it."""

    def __init__(self, config: NativeConfig, *, oci_runtime: str | None = None) -> None:
        config.check_names()            # another root's run dir, or this root with another prefix
        self.config = config
        self.db = config.db()
        self.db.ensure_schema("native.containers", SCHEMA)
        self.runtime_name = oci_runtime or config.oci_runtime
        self._runtimes: dict[str, oci.OciRuntime] = {}
        # parsed records: id -> (its JSON, the Record), and the records of one version, newest
        # first. Replaced whole, never mutated: threads share them without a lock
        self._parsed: dict[str, tuple[str, Record]] = {}
        self._stored: tuple[int, tuple[Record, ...]] | None = None
        # the refreshed records of the last `records()`: (the stored ones, exit files, when, them)
        self._fresh_cache: tuple[tuple[Record, ...], set[str], float, tuple[Record, ...]] | None = None
        # the stored records whose every monitor a running restart watch holds a pidfd of
        self.monitored: tuple[Record, ...] | None = None
        # (when, {(id, conmon pid)}): the monitors the last refresh of every record found running
        self._monitors_seen: tuple[float, frozenset[tuple[str, int | None]]] = _NONE_SEEN
        # the engine's event journal (its table is made now: never inside a transaction, where
        # its DDL would end the caller's)
        self.journal = journal.Journal(self.db)
        # the work done, observable: full reads of the rows (`stored` when the version moved) and
        # records brought up to date from conmon's files and /proc (`refresh` of a live one)
        self.row_reads = 0
        self.refreshes = 0

    def oci(self, name: str | None = None) -> oci.OciRuntime:
        """The OCI runtime `name` (runc, crun; the one for new containers by default)."""
        # the lifecycle's module: reading needs it only for a created container whose conmon is gone
        from reconciler.runtime.native.containers import oci as oci_mod

        name = name or self.runtime_name
        if name not in self._runtimes:
            self._runtimes[name] = oci_mod.OciRuntime.find(name, self.config.run_dir / name)
        return self._runtimes[name]

    def paths(self, cid: str) -> Paths:
        return Paths(dir=self.config.root / "containers" / cid, run_dir=self.config.run_dir, cid=cid)

    def _prefix(self, rec: Record) -> str:
        return rec.cgroup_prefix or self.config.name_prefix

    def event(self, rec: Record, action: str, *, conn: sqlite3.Connection | None = None, **extra: Any) -> None:
        """Journal a lifecycle step of `rec` with Docker's attributes (its labels, image, name):
        whichever process sees it first (`refresh` learns of exits) writes it (journal.py)."""
        attrs = {**rec.config.labels, "image": rec.config.image, "name": rec.name, **extra}
        self.journal.record("container", action, rec.id, attrs, conn=conn)

    def network_event(self, rec: Record, action: str, *, conn: sqlite3.Connection | None = None) -> None:
        """Journal Docker's network `connect` (at a start, before its `start`) or `disconnect`
        (at the end of a run, after its `die`) of `rec` on each network it is on, as dockerd
        journals them around every run: its bridge networks (`attached_networks`: the default
        one too), else `none` or `host`; none for one that joins another's namespace or was
        disconnected from every network. The actor is the network's id, its attributes the
        container, the network's name and its driver (`null` for none), as Docker's; `none` and
        `host`, of which the engine keeps no record, are named by their name, which the Engine
        API makes their id of (`ipam.predefined_id`): a `run --network none` hashes nothing (#21)."""
        modes = rec.config.networks
        named: dict[str, str] = {}          # network -> its journalled actor
        kind = "bridge"
        if rec.netns_path:
            nets = rec.attached_networks()
            if nets:
                from reconciler.runtime.native.network import ipam

                ids = ipam.network_ids(conn or self.db.connect())
                named = {n: ids[n] for n in nets if n in ids}
        elif modes == ("host",):
            named, kind = {"host": "host"}, "host"
        elif modes in ((), ("none",)):
            named, kind = {"none": "none"}, "null"
        for name, actor in named.items():
            self.journal.record("network", action, actor, {"container": rec.id, "name": name, "type": kind}, conn=conn)

    def _save(self, rec: Record, *, event: str | None = None, connect: bool = False) -> None:
        """Store `rec`; with `event`, journal it in the same transaction: a process that reads
        the stored record (`refresh`, which journals an exit) finds the event there before its own.
        `connect`: its networks' `connect` (network_event) journalled first, in that transaction too."""
        with self.db.tx() as conn:
            conn.execute("UPDATE containers SET data = ? WHERE id = ?", (rec.to_json(), rec.id))
            if connect:
                self.network_event(rec, "connect", conn=conn)
            if event is not None:
                self.event(rec, event, conn=conn)

    def _load(self, name_or_id: str) -> Record:
        key = name_or_id.lstrip("/")
        conn = self.db.connect()
        row = conn.execute("SELECT id, data FROM containers WHERE id = ? OR name = ?", (key, key)).fetchone()
        if row is None and len(key) >= 3 and re.fullmatch(r"[0-9a-f]+", key):
            rows = conn.execute("SELECT id, data FROM containers WHERE id LIKE ?", (key + "%",)).fetchall()
            if len(rows) > 1:
                raise rterrors.InvalidArgument(f"container id prefix {key} is ambiguous")
            row = rows[0] if rows else None
        if row is None:
            raise rterrors.NotFound(f"No such container: {name_or_id}")
        return self._parse(row["id"], row["data"])

    def _parse(self, cid: str, text: str) -> Record:
        """The record stored as `text`: parsed once for as long as the stored JSON stays the same."""
        known = self._parsed.get(cid)
        return known[1] if known is not None and known[0] == text else Record.from_json(text)

    def version(self) -> int:
        """A number that changes with every write to the container records, by any process."""
        row = self.db.connect().execute("SELECT n FROM containers_version").fetchone()
        return int(row[0]) if row is not None else 0

    def exit_files(self) -> set[str]:
        """The ids conmon wrote an exit file for (the names in its exits dir; none is read)."""
        try:
            with os.scandir(self.config.run_dir / "exits") as entries:
                return {e.name for e in entries}
        except OSError:
            return set()

    def stored(self) -> tuple[Record, ...]:
        """Every record as the DB holds it (not refreshed), newest first. The rows are read only
        when the version moved, and only the ones whose JSON changed are parsed again."""
        version = self.version()          # first: rows read after it are at least this new
        cached = self._stored
        if cached is not None and cached[0] == version:
            return cached[1]
        self.row_reads += 1
        parsed = {row["id"]: (row["data"], self._parse(row["id"], row["data"]))
                  for row in self.db.connect().execute("SELECT id, data FROM containers")}
        recs = tuple(sorted((rec for _, rec in parsed.values()), key=lambda r: r.created, reverse=True))
        self._parsed, self._stored = parsed, (version, recs)
        return recs

    def update(self, name_or_id: str, fn: Callable[[Record], Record]) -> Record:
        """Read-modify-write of a record (used by health checks and the restart manager)."""
        rec = self._load(name_or_id)
        with self.db.tx() as conn:
            row = conn.execute("SELECT data FROM containers WHERE id = ?", (rec.id,)).fetchone()
            if row is None:
                raise rterrors.NotFound(f"No such container: {name_or_id}")
            new = fn(Record.from_json(row["data"]))
            conn.execute("UPDATE containers SET data = ? WHERE id = ?", (new.to_json(), rec.id))
        return new

    def refresh(self, rec: Record, *, exits: set[str] | None = None,
                seen: set[tuple[str, int | None]] | None = None) -> Record:
        """Bring a record up to date with conmon's exit file and the runtime's state. `exits`:
        the names in conmon's exits dir, listed just now (no exit file is opened for the others);
        `seen` gets (id, conmon pid) when the look found its monitor running."""
        return self._secrets_lost(self._refresh(rec, exits, seen))

    def monitor_seen(self, rec: Record) -> bool:
        """Whether the last `records()`, a refresh of every record at most FRESH_FOR ago (not
        the reuse of an earlier one), found this record's monitor running: the engine start's
        look for killed monitors, which follows it, then reads no /proc again (#21: one read a
        container, not two). After a `records()` that reused its records, every monitor is
        looked at again: one that ended since (the watch's pidfd woke its tick) is seen."""
        at, seen = self._monitors_seen
        return (rec.id, rec.conmon_pid) in seen and time.monotonic() - at < FRESH_FOR

    def _secrets_lost(self, rec: Record) -> Record:
        """An exited container whose secret files' tmpfs is gone (a reboot) cannot run again:
        it is `dead`, which the planner recreates from the manifests (with the secrets)."""
        if rec.status != "exited" or not has_secrets(rec.config):
            return rec
        from reconciler.runtime.native.containers import (
            mounts,  # only for such a one: ps stays light
        )

        if mounts.is_mounted(self.paths(rec.id).secrets):
            return rec
        new = dataclasses.replace(rec, status="dead", error="its secret files or SOPS env values were in memory "
                                  "only and are gone (the host rebooted); it is re-created from its manifests")
        self._save(new)
        return new

    def _refresh(self, rec: Record, exits: set[str] | None = None,
                 seen: set[tuple[str, int | None]] | None = None) -> Record:
        if summaries.settled(rec.status, rec.conmon_pid):
            return rec              # (a created one: reconnect() dropped its runtime container)
        self.refreshes += 1
        ex = None
        # no exit file listed and its monitor runs, or (no listing) no exit file read and its
        # monitor runs: as recorded (one /proc read; its paths not even made: the bundle's is a stat)
        monitor = summaries.watched(rec.id, rec.conmon_pid, rec.conmon_start, rec.boot_id, exits) \
            if exits is not None else None
        if monitor is None:
            p = self.paths(rec.id).conmon
            ex = conmon.read_exit(p, rec.id)
            monitor = procs.state(rec.conmon_pid, rec.conmon_start, rec.boot_id) if ex is None else None
        if monitor is not None:
            if seen is not None and monitor != "Z":     # (a zombie monitor: ended, not yet reaped)
                seen.add((rec.id, rec.conmon_pid))
            return rec
        if ex is None and rec.conmon_pid and (
                rec.status == "created" or not rec.main_alive()):
            # conmon writes the exit file, then ends: it may have done both since the first read,
            # or be ending now. Only a killed conmon (a reboot) leaves none: give it half a second
            # once, before the container is taken for lost
            for _ in range(10):
                ex = conmon.read_exit(p, rec.id)
                if ex is not None:
                    break
                time.sleep(0.05)
        new = rec
        if ex is not None:
            code, ns = ex
            oom = conmon.was_oom_killed(p) or (code == 137 and cgroups.oom_kill_count(self._prefix(rec), rec.id) > 0)
            new = dataclasses.replace(rec, status="exited", exit_code=code, finished_at=_ns_time(ns),
                                      oom_killed=oom, pid=None)
        elif rec.status == "running" and not rec.main_alive() and not rec.conmon_alive():
            # no exit file and neither process (gone, a zombie, another process with the pid, or
            # from an earlier boot): the host rebooted, or conmon was killed with the container
            new = dataclasses.replace(rec, status="exited", exit_code=255, finished_at=now(), pid=None)
        elif rec.status == "created" and rec.conmon_pid and not rec.conmon_alive():
            st = self.oci(rec.runtime).state(rec.id)
            if st is None or st.get("status") == "stopped":
                new = dataclasses.replace(rec, status="exited", exit_code=255, finished_at=now(), pid=None)
        if new is not rec:
            with self.db.tx() as conn:
                row = conn.execute("SELECT data FROM containers WHERE id = ?", (rec.id,)).fetchone()
                if row is not None:
                    cur = Record.from_json(row["data"])
                    if cur.status == rec.status and cur.pid == rec.pid:
                        conn.execute("UPDATE containers SET data = ? WHERE id = ?", (new.to_json(), rec.id))
                        if new.oom_killed:
                            self.event(new, "oom", conn=conn)
                        self.event(new, "die", conn=conn, exitCode=new.exit_code)
                        if rec.status == "running":         # a run ended: its networks released
                            self.network_event(new, "disconnect", conn=conn)
                    else:
                        new = cur
        return new

    def get(self, name_or_id: str) -> Record:
        return self.refresh(self._load(name_or_id))

    def records(self, selector: Mapping[str, str] | None = None) -> list[Record]:
        """The records (those whose labels match `selector`), newest first, each refreshed.

        One pass asks several times (engine start, observation, the summary): the refreshed
        records are reused while the rows they were made of are the rows stored (the version:
        a write by any thread or process meanwhile is never hidden), conmon wrote no exit file
        and removed none (one scandir of its exits dir), and either they are at most FRESH_FOR
        old (a monitor killed without an exit file is seen that late at most) or a restart
        manager's watch holds a pidfd of every monitor of these records (`monitored`): a
        monitor that ends is then refreshed by that watch, which moves the version."""
        return [r for r in self._fresh() if not selector or base.labels_match(r.config.labels, selector)]

    def _fresh(self) -> tuple[Record, ...]:
        stored, exits, at = self.stored(), self.exit_files(), time.monotonic()
        cached = self._fresh_cache
        if cached is not None and cached[0] is stored and cached[1] == exits and (
                at - cached[2] < FRESH_FOR or self.monitored is stored):
            self._monitors_seen = _NONE_SEEN    # a monitor may have ended since: monitor_seen() looks again
            return cached[3]
        seen: set[tuple[str, int | None]] = set()
        recs = tuple(self.refresh(r, exits=exits, seen=seen) for r in stored)
        self._monitors_seen = (at, frozenset(seen))
        # keyed by the rows these records are: the rows as they are now when they are what the
        # refreshes made of them (one that recorded an exit moved the version, and the next look
        # refreshes nothing again), else the rows they were made of. Never the later rows alone:
        # a write by another thread or process meanwhile (a pass's start while the API lists)
        # would then be missing from every look until the version moved again
        after = self.stored()
        self._fresh_cache = (after if after == recs else stored, exits, at, recs)
        return recs

    def logs(
        self, name_or_id: str, *, follow: bool = False, since: str | None = None, tail: int | None = None,
    ) -> Iterator[base.LogLine]:
        """The container's output (k8s-file log and its rotated files); `follow` until it stops."""
        rec = self.get(name_or_id)

        def running() -> bool:
            try:
                return self.get(rec.id).status in ("running", "created")
            except rterrors.NotFound:
                return False

        return logs.read_logs(self.paths(rec.id).log, follow=follow, since=since, tail=tail, is_running=running,
                              idle=self.until_exit(rec))

    @staticmethod
    def until_exit(rec: Record) -> Callable[[float], object]:
        """A pause of a log follower: up to its seconds, ended by the exit of the container's
        monitor (conmon exits right after writing the exit file), so `run` and `logs -f` return
        when the container ends, not a poll later."""
        monitor = [rec.conmon_pid] if rec.conmon_alive() else []

        def pause(seconds: float) -> None:
            if monitor and procs.wait_gone(monitor[0], seconds):
                monitor.clear()         # gone: later pauses sleep (no spin if its container lives on)
            elif not monitor:
                time.sleep(seconds)
        return pause
