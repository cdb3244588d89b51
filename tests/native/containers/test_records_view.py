"""What `records()` reports is never older than the last write to the records (#flaky agent
restart): its refreshed records are reused only while the rows they were made of are the rows
the state DB holds. These tests need no container: the records are rows written by hand, their
"processes" this test's own (alive, with the right start time and boot id)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from reconciler.runtime import base
from reconciler.runtime.native import procs
from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.containers import records


def _config(tmp_path: Path) -> NativeConfig:
    return NativeConfig(root=tmp_path / "root", run_dir=tmp_path / "run", name_prefix="rv")


def _created(store: records.RecordStore, name: str) -> records.Record:
    """A created container whose monitor runs (this process plays both its processes)."""
    me = os.getpid()
    rec = records.Record(
        id=f"{name}0000", name=name, image="img", image_id="sha256:" + "0" * 64, created=records.now(),
        config=base.ContainerConfig(name=name, image="img"), image_config={}, lowerdirs=(), hostname=name,
        stop_signal=15, status="created", pid=me, conmon_pid=me, pid_start=procs.start_time(me),
        conmon_start=procs.start_time(me), boot_id=procs.boot_id())
    with store.db.tx() as conn:
        conn.execute("INSERT INTO containers (id, name, data) VALUES (?, ?, ?)", (rec.id, rec.name, rec.to_json()))
    return rec


@pytest.mark.parametrize("watched", [False, True], ids=["within FRESH_FOR", "every monitor watched"])
def test_a_start_saved_while_records_are_refreshed_is_seen_by_the_next_look(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, watched: bool) -> None:
    """The agent's API thread lists the containers (a status poll) while a pass's START saves
    `a` running. The listing refreshed the rows it read before the save; if its refreshed
    records were kept for the rows as they are after it, every later observation said `a` was
    created, and every START found it running and did nothing: degraded for good while the
    restart watch vouched for those rows (`monitored`)."""
    store = records.RecordStore(_config(tmp_path))
    a = _created(store, "a")
    writer = records.RecordStore(_config(tmp_path))        # the START: another thread's connection
    refresh = store.refresh
    started = dataclasses.replace(a, status="running", started_at=records.now())

    def refresh_while_a_starts(rec: records.Record, *, exits: set[str] | None = None,
                               seen: set[tuple[str, int | None]] | None = None) -> records.Record:
        if rec.id == a.id and rec.status == "created":
            writer.update(a.id, lambda _: started)       # committed after the rows were read
        return refresh(rec, exits=exits, seen=seen)

    monkeypatch.setattr(store, "refresh", refresh_while_a_starts)
    assert [r.status for r in store.records()] == ["created"]      # the rows it read said so
    monkeypatch.setattr(store, "refresh", refresh)
    assert [r.status for r in store.stored()] == ["running"]
    if watched:
        store.monitored = store.stored()                 # what the restart watch does on a new version
    assert [r.status for r in store.records()] == ["running"]      # the look after the save


def test_an_exit_the_refresh_recorded_itself_is_not_refreshed_again(tmp_path: Path) -> None:
    """The other side of the rule: a refresh's own write (an exit it read from conmon's file)
    moves the version too, and the records it made are what the DB now holds, so the next look
    reuses them without refreshing anything again."""
    config = _config(tmp_path)
    store = records.RecordStore(config)
    a = _created(store, "a")
    _created(store, "b")                                 # its monitor runs: each refresh looks
    exits = config.run_dir / "exits"
    exits.mkdir(parents=True)
    (exits / a.id).write_text("0")                       # conmon's exit file: code 0
    looked = [(r.name, r.status, r.exit_code) for r in store.records()]
    assert looked == [("b", "created", None), ("a", "exited", 0)]
    refreshes, reads = store.refreshes, store.row_reads
    assert [(r.name, r.status, r.exit_code) for r in store.records()] == looked
    assert (store.refreshes, store.row_reads) == (refreshes, reads)


def test_a_record_reads_back_every_field_of_its_config(tmp_path: Path) -> None:
    """A record's config comes back as it was saved, every field of it: the SOPS env keys
    (`secret_env`) among them, which say the container's bundle and exec files live on its
    tmpfs and that a reboot took them. (Records read their config with a copy of the reader that
    knew fewer fields, so a container whose only secrets were SOPS env values read back as one
    without secrets.) Only what a record never keeps is missing: a secret file's content and
    the values of the SOPS keys."""
    full = base.ContainerConfig(
        name="web", image="reg:5000/web:1", image_id="sha256:" + "b" * 64, command=("/bin/app",), args=("-v",),
        env={"A": "1", "KEY": "v"}, user="1000", workdir="/srv", hostname="h", labels={"l": "1"},
        ports=(base.PortMapping(container_port=80, host_port=8080, host_ip="127.0.0.1"),),
        networks=("net",), aliases=("w",),
        mounts=(base.Mount(type="secret", target="/run/secrets/s", source="s", options=("mode=0400",),
                           data=b"secret"),
                base.Mount(type="bind", target="/etc/x", source="/srv/x", read_only=True)),
        restart=base.RestartPolicy(name="on-failure", max_retries=3),
        healthcheck=base.Healthcheck(test=("CMD", "true"), interval=2.0, timeout=1.0, retries=2),
        resources=base.Resources(memory=1 << 26, cpus=0.5, pids=64), read_only=True, cap_add=("NET_ADMIN",),
        cap_drop=("MKNOD",), stop_signal="SIGQUIT", stop_timeout=3.0, init=True, replicas=2,
        update=base.UpdateConfig(order="start-first"), global_mode=True, constraints=("node.role==manager",),
        spread=("node.labels.zone",), sysctls={"net.core.somaxconn": "1024"},
        ulimits=(base.Ulimit(name="nofile", soft=1024, hard=2048),), shm_size=1 << 20, extra_hosts=("db:10.0.0.2",),
        dns=("10.0.0.53",), dns_search=("lan",), tty=True, stdin_open=True, stdin_once=True, no_new_privileges=True,
        dns_options=("ndots:1",), oom_score_adj=100, group_add=("audio",), privileged=True,
        devices=("/dev/fuse:/dev/fuse:rwm",), domainname="example", reservations=base.Resources(memory=1 << 20),
        secret_env={"KEY": "sha256:" + "a" * 64}, ipv4_addresses={"net": "10.0.0.9"},
        ipv6_addresses={"net": "fd00::9"}, mac_addresses={"net": "02:42:0a:00:00:09"},
        link_local_ips={"net": ("169.254.7.7",)}, gw_priorities={"net": 3}, log_driver="json-file", log_options={"max-size": "1m"},
        network_aliases={"net": ("n",)}, links=("db:database",), job=True,
        rollback=base.UpdateConfig(order="stop-first", parallelism=2), service_labels={"team": "a"}, endpoint_mode="vip")
    # every field differs from its default (a field added later must be added here too)
    for f in dataclasses.fields(base.ContainerConfig):
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            assert getattr(full, f.name) != default, f"set {f.name} in this test"
    store = records.RecordStore(_config(tmp_path))
    rec = dataclasses.replace(_created(store, "web"), config=full)
    back = records.Record.from_json(rec.to_json()).config
    kept = dataclasses.replace(full, env={"A": "1"},
                               mounts=(dataclasses.replace(full.mounts[0], data=None), full.mounts[1]))
    assert back == kept
    assert back.mounts[0].data is None
    assert records.has_secrets(back)
    only_env = dataclasses.replace(full, mounts=())
    assert records.has_secrets(records.Record.from_json(dataclasses.replace(rec, config=only_env).to_json()).config)
