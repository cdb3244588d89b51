"""What `reconcile ps` shows of the native engine's containers: the rules records.py applies to
its Records, and a reader that applies them to the state DB's rows without building any (#21).

    argv_of(image_config, command, args)    Entrypoint + Cmd after the overrides (Docker's rule)
    config_env(image_env, env)              a container's environment over its image's (Docker's Config.Env)
    command_text(argv)                      the COMMAND column: shlex.join's text
    summary_fields(...)                     the fields of one `ps` row (records.summary)
    mount_list(...), network_list(...)      its mounts and networks, as docker's `ps --format` names them
    image_healthcheck(image_config, own)    a container's healthcheck over its image's, as Docker merges them
    health_now(status, health)              its health as shown: `unhealthy` once stopped, as dockerd's
    probes(test)                            whether a healthcheck test runs a probe (not NONE)
    restart_pending(status, restarting, ...)  a restart waits its back-off in a process that lives
    paused(status, recorded, prefix, cid)   the engine paused it and its cgroup is frozen
    settled(status, conmon_pid)             a record no look at conmon or /proc can change
    watched(cid, conmon..., exits)          its monitor runs and wrote no exit: as recorded
    holds_secrets(secret_env, mount_types)  what an exited container loses with a reboot
    read(root, run_dir, name_prefix)        every container's summary, newest first, or None
    add_sizes(root, rows)                   `ps -s`: the rows' size_rw and size_root_fs (sizes.py)

`read` is what `ps` without an agent runs first: the rows as JSON (jsonscan: no `json`, no
`re`), no Record, ContainerConfig or other dataclass built, no NativeConfig, no _sqlite. It
answers only when every record is what observation would find now (each running container's
monitor checked by pid, start time and boot id, as records.py does); any record that a look
could change, an exited one with secrets, a root or run dir that another engine claims, a
database of a newer format or one it cannot open read-only: None, and the RecordStore answers
(refreshing, recording exits, refusing in its own words).

Stdlib `os` only at import (sqlite3's C core and shlex when reading).
"""

from __future__ import annotations

import os

from reconciler.runtime.native import locations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any, TypeVar

    _T = TypeVar("_T")

__all__ = ["add_sizes", "argv_of", "attached_networks", "command_text", "config_env", "forwarded", "health_now", "holds_secrets",
           "image_healthcheck", "mount_list", "network_list", "paused", "port_text", "probes", "read", "restart_pending",
           "settled", "summary_fields", "watched"]

# Docker's defaults a container's bundle is made with (bundle.py), which inspect shows too (its
# HostConfig's ShmSize, MaskedPaths, ReadonlyPaths: inspection.py), here to keep that reader light
DEFAULT_SHM_SIZE = 64 << 20         # bytes of /dev/shm
MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)
READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
)


def argv_of(image_config: Mapping[str, Any], command: Iterable[str] | None,
            args: Iterable[str] | None) -> tuple[str, ...]:
    """Entrypoint + Cmd: a given entrypoint (`command`) drops the image's Cmd (Docker's rule); an
    empty one (compose's `entrypoint: []`) drops the image's Entrypoint and keeps its Cmd, as
    dockerd merges an empty Entrypoint."""
    entrypoint = list(command) if command is not None else list(image_config.get("Entrypoint") or [])
    if args is not None:
        cmd = list(args)
    elif command:
        cmd = []
    else:
        cmd = list(image_config.get("Cmd") or [])
    return tuple(entrypoint + cmd)


def config_env(image_env: Iterable[str] | None, env: Mapping[str, str]) -> list[str]:
    """A container's environment over its image's, as dockerd merges them into Config.Env: its
    own variables first, then those of its image it does not name (one value per name: a user's
    PATH replaces the image's). The process gets this over PATH and HOSTNAME (bundle.merge_env);
    inspect shows it."""
    own = [f"{k}={v}" for k, v in env.items()]
    return own + [item for item in image_env or () if item.partition("=")[0] not in env]


def forwarded(status: str, published: Sequence[_T]) -> Sequence[_T]:
    """The ports a container publishes now, as ps, inspect and the engine's observation show
    them: its record's `published` while it runs, none otherwise, as Docker shows an exited
    container's. (A container that died while no engine watched keeps `published` in its record
    until an engine learns of it; its rules forward to nothing meanwhile.)"""
    return published if status == "running" else ()


def health_now(status: str, health: str | None) -> str | None:
    """A container's health as ps, inspect and the engine's observation show it: its record's
    while it runs (or was never started), `unhealthy` once it stopped (exited, dead, waiting for
    a restart), as dockerd sets it at every exit (`docker inspect` after `docker stop`); None
    without a healthcheck. (A record keeps the status its last probe saw; its next start makes
    it `starting`.)"""
    return health if health is None or status in ("running", "created") else "unhealthy"


def port_text(ports: Iterable[tuple[str, int, int, str]]) -> str:
    """The PORTS column: host_ip:host_port->container_port/protocol, comma-separated."""
    return ", ".join(f"{ip}:{host}->{container}/{protocol}" for ip, host, container, protocol in ports)


def mount_list(mounts: Iterable[tuple[str, str, str]]) -> list[dict[str, str]]:
    """A container's volume and bind mounts ((type, source, target) each), as `ps` rows keep
    them (docker's Mounts and LocalVolumes: `ps --format`): its tmpfs mounts are not among
    them, as dockerd lists none of `--tmpfs` (inspection.mount_points)."""
    return [{"type": t, "source": s, "target": d} for t, s, d in mounts if t in ("volume", "bind")]


def attached_networks(netns: str | None, networks: Sequence[str]) -> list[str]:
    """The bridge networks a container is on by its record alone (`Record.attached_networks`):
    those its config names (which a connect and a disconnect keep, of a stopped one too), the
    default one when it names none; none when it has no namespace of its own (host, none) or
    joins another's."""
    if not netns or (networks and networks[0].startswith("container:")):
        return []
    return [n for n in networks if n not in ("none", "host")] if networks else ["default"]


def network_list(netns: str | None, networks: Sequence[str], addresses: Iterable[str]) -> list[str]:
    """The networks docker's `ps` names for a container (its Networks: NetworkSettings'): each
    network it is on (`attached_networks`: a stopped one's too, connected while stopped, which has
    no address there before its start, as dockerd lists it) and any other it holds an address on;
    "host" or "none" for one in those modes; none for one that joins another's namespace."""
    if not netns:
        if tuple(networks) == ("host",):
            return ["host"]
        return ["none"] if tuple(networks) in ((), ("none",)) else []
    return sorted({*attached_networks(netns, networks), *addresses})      # sorted, as docker's CLI prints them


def summary_fields(*, id: str, image: str, argv: Iterable[str], created: str, status: str,
                   restarting: bool, paused: bool, exit_code: int | None, health: str | None, ports: str,
                   name: str, labels: Mapping[str, str], restart_count: int, started_at: str | None,
                   finished_at: str | None, health_stale: bool, health_probed_at: str | None,
                   mounts: Sequence[Mapping[str, str]] = (), networks: Sequence[str] = ()) -> dict[str, Any]:
    """What `ps` shows of a container, as JSON values (listing.py makes its rows of these): an
    exited container whose restart is pending (`restart_pending`) is "restarting", a running one
    that is paused (`paused`) "paused", Docker's State; `health_stale` and `health_probed_at`:
    healthtimes.stale and last_probe; `mounts` (mount_list) and `networks` (network_list)."""
    if restarting and status == "exited":
        status = "restarting"
    elif paused and status == "running":
        status = "paused"
    return {
        "id": id, "image": image, "command": command_text(argv), "created": created,
        "status": status, "exit_code": exit_code,
        "health": health, "ports": ports, "name": name, "labels": dict(labels), "restart_count": restart_count,
        "started_at": started_at, "finished_at": finished_at,
        "health_stale": health_stale, "health_probed_at": health_probed_at,
        "mounts": [dict(m) for m in mounts], "networks": list(networks),
    }


# -- health: what a status that no probe observed lately is worth

def image_healthcheck(image_config: Mapping[str, Any], own: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The healthcheck a container runs, as the keys and units of a container config's
    healthcheck (base.Healthcheck: test, interval, timeout, retries, start_period, and
    start_interval when set, in seconds): `own` (the config's, as its JSON; None: it has
    none) over the image's HEALTHCHECK (its config's durations in ns), an empty test and a
    timing of 0 the image's, Docker's defaults where neither names one; None when there is no
    test. base.healthcheck_of's rule (tests/runtime/test_healthcheck_merge.py), without a
    dataclass."""
    img = image_config.get("Healthcheck") or {}
    own = own or {}
    test = tuple(own.get("test") or img.get("Test") or ())
    if not test:
        return None
    ns = 1e9
    out: dict[str, Any] = {"test": test}
    for key, image_key, default in (("interval", "Interval", 30.0), ("timeout", "Timeout", 30.0),
                                    ("start_period", "StartPeriod", 0.0), ("start_interval", "StartInterval", 0.0)):
        out[key] = own.get(key) or (img.get(image_key) or 0) / ns or default
    out["retries"] = int(own.get("retries") or img.get("Retries") or 3)
    if not out["start_interval"]:
        del out["start_interval"]       # as base.config_to_json leaves it out
    return out


def probes(test: Sequence[str]) -> bool:
    """Whether a healthcheck with this test runs a probe (Docker's `NONE` disables the image's)."""
    return bool(test) and test[0] != "NONE"


# the characters shlex.quote leaves a word as it is with (its pattern: [^\w@%+=:,./-], ASCII)
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-")


def command_text(argv: Iterable[str]) -> str:
    """shlex.join(argv). shlex is imported only for a word that needs quotes: it imports `re`
    and compiles its pattern (~1/4 of `ps`'s start-up without an agent, #21), and words that
    need none (most commands) are joined as they are, as shlex.quote returns them."""
    words = list(argv)
    if all(w and _PLAIN.issuperset(w) for w in words):
        return " ".join(words)
    import shlex

    return shlex.join(words)


def settled(status: str, conmon_pid: int | None) -> bool:
    """Whether no look at conmon or /proc can change a record: it is neither running nor
    created, or created with no runtime container (its start makes one)."""
    return status not in ("running", "created") or (status == "created" and conmon_pid is None)


def watched(cid: str, conmon_pid: int | None, conmon_start: int | None, boot_id: str | None,
            exits: set[str]) -> str | None:
    """Whether a running (or created) container is as recorded: conmon listed no exit file for
    it (`exits`: the names in its exits dir, listed just now) and its monitor still runs (pid,
    start time and boot id: procs.state; a monitor that just ended still counts until reaped).
    The monitor's state letter when it is (Z: ended, not yet reaped), else None."""
    from reconciler.runtime.native import procs

    return procs.state(conmon_pid, conmon_start, boot_id) if cid not in exits and conmon_pid else None


def restart_pending(status: str, restarting: bool, restarter_pid: int | None, restarter_start: int | None,
                    restarter_boot: str | None) -> bool:
    """Whether an exited container's restart is pending: a restart manager decided it and waits
    its back-off (`restarting`), and the process that manager runs in (the record names it, as it
    names conmon: pid, start time, boot id) still lives. A restart manager clears its flags when it
    stops; one killed (kill -9, a crash) takes its pending restarts with it, and the flag it left
    means nothing: no process will restart the container (the next engine start's boot may)."""
    if status != "exited" or not restarting:
        return False
    from reconciler.runtime.native import procs

    return procs.alive(restarter_pid, restarter_start, restarter_boot)


def paused(status: str, recorded: bool, prefix: str, cid: str) -> bool:
    """Whether a container is paused: the engine paused it (the record says so: pause and unpause
    write it, `docker pause` and a commit's pause alike) and its cgroup is frozen still. Only a
    record that says paused costs a look at its cgroup, so `ps` reads no file for the others; a
    freeze nobody recorded (`runc pause` by hand) is not seen."""
    if status != "running" or not recorded:
        return False
    from reconciler.runtime.native.containers import cgroups  # pathlib: only for a paused one

    return cgroups.frozen(prefix, cid)


def holds_secrets(secret_env: Iterable[str], mount_types: Iterable[str]) -> bool:
    """Secret files or SOPS env values: what is kept on the container's own tmpfs only (and is
    gone after a reboot: records.py then marks an exited container dead)."""
    return bool(list(secret_env)) or any(t == "secret" for t in mount_types)


def read(root: str, run_dir: str, name_prefix: str, *,
         measure: Callable[[Mapping[str, Any]], bool] | None = None) -> list[dict[str, Any]] | None:
    """Every container's summary_fields, newest first, read from the state DB of `root` when
    each is what observation finds now; None when the RecordStore must answer (see above).
    `measure`: the rows (`ps -s`) that get their sizes (`add_sizes`)."""
    if not _names_hold(root, run_dir, name_prefix):
        return None
    rows = _rows(os.path.join(root, "state.db"))
    if rows is None:
        return None
    from reconciler import jsonscan

    try:
        with os.scandir(os.path.join(run_dir, "exits")) as entries:
            exits = {e.name for e in entries}
    except OSError:
        exits = set()
    import time

    found, image_ids, now = [], {}, time.time()
    for text in rows:
        d = jsonscan.loads(text)
        row = _summary(d, exits, name_prefix, now)
        if row is None:
            return None
        found.append(row)
        image_ids[row["id"]] = d.get("image_id")
    if measure is not None:
        add_sizes(root, [(r, image_ids[r["id"]]) for r in found if measure(r)])
    return sorted(found, key=lambda s: s["created"], reverse=True)


def add_sizes(root: str, rows: Iterable[tuple[dict[str, Any], str | None]]) -> None:
    """`ps -s`: each row of (row, its container's image id) given its `size_rw` and `size_root_fs`,
    Docker's SizeRw and SizeRootFs (sizes.measure: the CLI's read and the agent's alike)."""
    rows = list(rows)
    if not rows:
        return
    from reconciler.runtime.native.containers import sizes

    measured = sizes.measure(root, ((r["id"], image_id) for r, image_id in rows))
    for r, _ in rows:
        r["size_rw"], r["size_root_fs"] = measured[r["id"]]


def _names_hold(root: str, run_dir: str, name_prefix: str) -> bool:
    """Whether the run dir records no other state root, and the root no other prefix (the
    checks NativeConfig.check_names makes; a refusal is said by it)."""
    return (_recorded(os.path.join(run_dir, locations.ROOT_FILE)) in (None, os.path.abspath(root))
            and _recorded(os.path.join(root, locations.PREFIX_FILE)) in (None, name_prefix))


def _recorded(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip() or None
    except FileNotFoundError:
        return None


def _rows(path: str) -> list[str] | None:
    """The records' JSON from the database at `path` (dbformat.query: read-only, its format
    checked); None when it cannot be read so."""
    from reconciler import dbformat

    rows = dbformat.query(path, "SELECT data FROM containers")
    return None if rows is None else [data for (data,) in rows]


def _summary(d: Mapping[str, Any], exits: set[str], name_prefix: str, now: float) -> dict[str, Any] | None:
    """The summary of one record (its JSON), or None when a look could change it."""
    try:
        return _summary_of(d, exits, name_prefix, now)
    except (KeyError, TypeError, AttributeError):  # a record of another shape: the Record reads it
        return None


def _summary_of(d: Mapping[str, Any], exits: set[str], name_prefix: str, now: float) -> dict[str, Any] | None:
    status, config = d["status"], d["config"]
    if not settled(status, d.get("conmon_pid")) and not watched(
            d["id"], d.get("conmon_pid"), d.get("conmon_start"), d.get("boot_id"), exits):
        return None
    if status == "exited" and holds_secrets(config.get("secret_env") or (),
                                            (m.get("type") for m in config.get("mounts") or ())):
        return None
    ports = forwarded(status, d.get("published") or ())     # as forwarded now, never as asked
    # the healthcheck records.effective_healthcheck finds: the config's over the image's
    hc = image_healthcheck(d.get("image_config") or {}, config.get("healthcheck"))
    probed, stale = None, False
    if hc is not None and probes(hc["test"]):
        from reconciler import healthtimes  # (a row without a healthcheck loads none of it, #21)

        probed = healthtimes.last_probe(d.get("health_log") or (), d.get("started_at"))
        stale = healthtimes.stale(status, hc["interval"], hc["timeout"], hc["start_period"], d.get("started_at"),
                                  probed, now)
    return summary_fields(
        id=d["id"], image=d["image"], argv=argv_of(d.get("image_config") or {}, config.get("command"),
                                                   config.get("args")),
        created=d["created"], status=status,
        restarting=restart_pending(status, bool(d.get("restarting")), d.get("restarter_pid"),
                                   d.get("restarter_start"), d.get("restarter_boot")),
        paused=paused(status, bool(d.get("paused")), d.get("cgroup_prefix") or name_prefix, d["id"]),
        exit_code=d.get("exit_code"),
        health=health_now(status, d.get("health")), name=d["name"], labels=config.get("labels") or {},
        restart_count=int(d.get("restart_count") or 0), started_at=d.get("started_at"),
        finished_at=d.get("finished_at"), health_stale=stale, health_probed_at=probed,
        ports=port_text((p["host_ip"], p["host_port"], p["container_port"], p["protocol"]) for p in ports),
        mounts=mount_list((m.get("type", ""), m.get("source", ""), m.get("target", ""))
                          for m in config.get("mounts") or ()),
        networks=network_list(d.get("netns_path"), config.get("networks") or (), d.get("ip_addresses") or {}))
