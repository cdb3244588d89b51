"""Reading container records costs O(changes) (#21): the rows are read again only when the
version the triggers keep has moved, a row is parsed again only when its JSON changed, and the
supervision loops poll what changed instead of refreshing every record every 200 ms."""

from __future__ import annotations

import os
import signal
import time

import pytest

from reconciler.cli.main import main
from reconciler.runtime.native.containers import health, recovery, restart
from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.registry]

ROWS = "SELECT id, data FROM containers"


def cli(host: Host, command: str, *argv: str) -> None:
    args = [a for a in host.cli_args() if a not in ("--runtime", "native")]
    assert main([command, *args, *argv]) == 0


def test_records_are_read_and_parsed_again_only_when_they_change(host: Host, busybox_image: str) -> None:
    cli(host, "run", "-d", "--name", "a", "--network", "none", busybox_image, "sleep", "3600")
    cli(host, "run", "-d", "--name", "b", "--network", "none", busybox_image, "sleep", "3600")
    rt = host.runtime()
    statements: list[str] = []
    conn = rt.containers.db.connect()
    try:
        first = rt.containers.stored()
        assert [r.name for r in first] == ["b", "a"]                    # newest first, as ps lists
        conn.set_trace_callback(statements.append)
        assert rt.containers.stored() is first                         # nothing changed: no row read
        assert [r.status for r in rt.containers.records()] == ["running", "running"]
        recovery.recover(rt)                                            # nothing to recover: no row read
        assert not [s for s in statements if ROWS in s], statements
        cli(host, "stop", "-t", "0", "b")                               # another connection writes
        after = rt.containers.stored()
        assert after is not first
        assert [s for s in statements if ROWS in s] == [ROWS]
        by_name = {r.name: r for r in after}
        assert by_name["b"].status == "exited"
        assert by_name["a"] is first[1]                                 # its JSON did not change: not parsed
    finally:
        conn.set_trace_callback(None)
        rt.close()


def test_an_idle_health_tick_reads_no_record_and_a_due_probe_still_runs(host: Host, busybox_image: str) -> None:
    cli(host, "run", "-d", "--name", "hc", "--network", "none", "--health-cmd", "true", "--health-interval", "5s",
        busybox_image, "sleep", "3600")
    cli(host, "run", "-d", "--name", "plain", "--network", "none", busybox_image, "sleep", "3600")
    rt = host.runtime()
    now = [1000.0]
    checker = health.HealthChecker(rt.containers, clock=lambda: now[0])
    statements: list[str] = []
    conn = rt.containers.db.connect()
    try:
        checker.tick()                                                  # reads the records, schedules hc
        conn.set_trace_callback(statements.append)
        checker.tick()
        checker.tick()
        assert statements == ["SELECT n FROM containers_version"] * 2  # the version, nothing else
        now[0] += 6                                                     # hc's interval passed
        checker.tick()
        assert rt.containers.get("hc").health == "healthy"
        assert rt.containers.get("plain").health is None
    finally:
        conn.set_trace_callback(None)
        rt.close()


def test_a_tick_for_new_exit_files_refreshes_their_containers_and_the_sweep_all(host: Host,
                                                                                busybox_image: str) -> None:
    """While a pass stops many containers, the exits dir changes at every poll: those ticks
    refresh the containers that have an exit file, not all; the sweep (every 2 s) refreshes
    all, and finds one whose processes vanished without one."""
    cli(host, "run", "-d", "--name", "ends", "--network", "none", busybox_image, "sh", "-c", "exit 3")
    cli(host, "run", "-d", "--name", "lost", "--network", "none", busybox_image, "sleep", "3600")
    rt = host.runtime()
    try:
        lost = rt.containers.get("lost")
        os.kill(lost.conmon_pid or 0, signal.SIGKILL)               # a reboot's doing: no exit file
        os.kill(lost.pid or 0, signal.SIGKILL)
        ends = next(r for r in rt.containers.stored() if r.name == "ends")
        deadline = time.monotonic() + 10
        while ends.id not in rt.containers.exit_files() or lost.main_alive() or lost.conmon_alive():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        manager = restart.RestartManager(rt.containers)
        manager.tick(full=False)
        status = {r.name: (r.status, r.exit_code) for r in rt.containers.stored()}
        assert status == {"ends": ("exited", 3), "lost": ("running", None)}
        manager.tick()
        status = {r.name: (r.status, r.exit_code) for r in rt.containers.stored()}
        assert status == {"ends": ("exited", 3), "lost": ("exited", 255)}
    finally:
        rt.close()


def test_a_pass_refreshes_each_record_once_and_an_exit_is_still_seen(host: Host, busybox_image: str) -> None:
    """A pass asks for the records at engine start, to observe, and for its summary: they are
    refreshed from conmon's files and /proc once, and again as soon as conmon writes an exit."""
    for name in ("a", "b", "c"):
        cli(host, "run", "-d", "--name", name, "--network", "none", busybox_image, "sleep", "3600")
    rt = host.runtime()
    try:
        store = rt.containers
        assert [r.status for r in store.records()] == ["running"] * 3
        refreshed = store.refreshes
        assert [r.status for r in store.records()] == ["running"] * 3
        assert [s.status.value for s in rt.list_containers()] == ["running"] * 3
        assert store.refreshes == refreshed                             # nothing changed: none again
        victim = store.get("b")
        os.kill(victim.pid or 0, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while victim.id not in store.exit_files():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert {r.name: r.status for r in store.records()} == {"a": "running", "b": "exited", "c": "running"}
    finally:
        rt.close()


def test_a_record_is_stored_without_its_defaults_and_read_back_whole(host: Host, busybox_image: str) -> None:
    """A record's JSON leaves out the fields at their defaults and its config's keys at an empty
    config's values (#21: half the text every engine start parses), always keeps what `ps`
    reads from the row itself, and reads back equal; a record in the earlier, whole form reads
    the same."""
    import dataclasses
    import json

    from reconciler.runtime import base
    from reconciler.runtime.native.containers import records

    cli(host, "run", "-d", "--name", "lean", "--network", "none", "-l", "k=v", busybox_image, "sleep", "3600")
    rt = host.runtime()
    try:
        rec = rt.containers.get("lean")
        text = rt.containers.db.connect().execute("SELECT data FROM containers WHERE id = ?", (rec.id,)).fetchone()[0]
        stored = json.loads(text)
        assert {"id", "name", "image", "created", "status", "config"} <= set(stored)
        assert sorted({"oom_killed", "restart_count", "health_log"} & set(stored)) == []      # at their defaults
        assert sorted({"sysctls", "resources", "cap_add"} & set(stored["config"])) == []
        assert stored["config"]["labels"]["k"] == "v"
        assert records.Record.from_json(text) == rec
        # the whole form, every field and config key written, as records were before
        whole = {f.name: getattr(rec, f.name) for f in dataclasses.fields(rec)}
        whole.update(config=base.config_to_json(rec.config), published=[], health_log=[])
        assert records.Record.from_json(json.dumps(whole)) == records.Record.from_json(text)
        # a created container's row says so (ps reads `status` from the row)
        made = dataclasses.replace(rec, status="created")
        assert json.loads(made.to_json())["status"] == "created"
    finally:
        rt.close()
