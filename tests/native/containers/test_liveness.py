"""What `ps` says is what runs: a container whose processes are gone, zombies, someone else's
(a reused pid) or from another boot reads as exited, never as running (#13)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.runtime.native import procs
from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.containers import records, restart
from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.registry]


def test_alive_knows_a_zombie_a_reused_pid_and_another_boot() -> None:
    child = subprocess.Popen(["sleep", "60"])
    try:
        start = procs.start_time(child.pid)
        assert start is not None
        assert procs.alive(child.pid, start, procs.boot_id())
        assert not procs.alive(child.pid, start + 1, procs.boot_id())     # the pid, another process
        assert not procs.alive(child.pid, start, "another-boot")
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not procs.alive(child.pid, start)                         # a zombie not reaped yet
    finally:
        child.kill()
        child.wait()
    assert not procs.alive(child.pid, start)


def run_box(host: Host, image: str) -> str:
    args = [a for a in host.cli_args() if a not in ("--runtime", "native")]
    assert main(["run", "-d", "--name", "box", "--network", "none", *args, image, "sleep", "3600"]) == 0
    return "box"


def test_a_container_whose_processes_died_with_their_monitor_reads_exited(host: Host, busybox_image: str) -> None:
    run_box(host, busybox_image)
    rt = host.runtime()
    try:
        rec = rt.containers.get("box")
        assert rec.status == "running"
        assert rec.boot_id == procs.boot_id()
        os.kill(rec.conmon_pid, signal.SIGKILL)          # the host "rebooted": monitor and process gone
        os.kill(rec.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while rt.inspect_container("box").status.value == "running":
            assert time.monotonic() < deadline, "still reported running"
            time.sleep(0.05)
        assert rt.inspect_container("box").status.value == "exited"
    finally:
        rt.close()


def test_a_reused_pid_or_another_boot_is_not_the_container(host: Host, busybox_image: str,
                                                           capfd: pytest.CaptureFixture[str]) -> None:
    run_box(host, busybox_image)
    rt = host.runtime()
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        rec = rt.containers.get("box")
        # the records of another boot, as a real reboot leaves them
        rt.containers.update("box", lambda r: dataclasses.replace(r, boot_id="an-earlier-boot"))
        assert rt.containers.get("box").status == "exited"
        # the same after a pid was reused by another process: an unrelated live process stands
        # where the container and its monitor were recorded
        os.kill(rec.pid, signal.SIGKILL)
        os.kill(rec.conmon_pid, signal.SIGKILL)
    finally:
        stranger.kill()
        stranger.wait()
        rt.close()
    args = [a for a in host.cli_args() if a not in ("--runtime", "native")]
    capfd.readouterr()
    assert main(["ps", "-a", "-o", "json", *args]) == 0
    rows = json.loads(capfd.readouterr().out)
    assert [str(r.get("Status", r.get("status", ""))).split()[0].lower() for r in rows] == ["exited"]


def test_pid_reuse_is_caught_by_the_start_time(host: Host, busybox_image: str) -> None:
    run_box(host, busybox_image)
    rt = host.runtime()
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        rec = rt.containers.get("box")
        os.kill(rec.pid, signal.SIGKILL)
        os.kill(rec.conmon_pid, signal.SIGKILL)
        time.sleep(0.2)
        # pretend both pids were handed to the stranger (a real reuse after a reboot)
        rt.containers.update("box", lambda r: dataclasses.replace(
            r, pid=stranger.pid, conmon_pid=stranger.pid, status="running"))
        assert rt.containers.get("box").status == "exited"
    finally:
        stranger.kill()
        stranger.wait()
        rt.close()


def run_ticker(host: Host, image: str, restart: str) -> None:
    args = [a for a in host.cli_args() if a not in ("--runtime", "native")]
    assert main(["run", "-d", "--name", "box", "--network", "none", "--restart", restart, *args, image,
                 "sh", "-c", "while true; do echo tick; sleep 0.1; done"]) == 0


def kill_monitor(rt: NativeRuntime) -> records.Record:
    rec = rt.containers.get("box")
    assert rec.status == "running"
    assert rec.conmon_pid
    os.kill(rec.conmon_pid, signal.SIGKILL)              # the container's process lives on
    deadline = time.monotonic() + 10
    while procs.alive(rec.conmon_pid, rec.conmon_start):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return rec


def test_a_container_whose_monitor_was_killed_is_ended_and_restarted_by_the_agents_watch(
        host: Host, busybox_image: str) -> None:
    run_ticker(host, busybox_image, "always")
    rt = host.runtime()
    stop = threading.Event()
    watcher = threading.Thread(target=rt.restart_manager.watch, args=(stop,), daemon=True)
    try:
        before = kill_monitor(rt)
        assert rt.containers.unmonitored(rt.containers.get("box"))
        assert rt.inspect_container("box").status.value == "running"     # true: its process runs
        watcher.start()
        deadline = time.monotonic() + 3 * restart.SWEEP + 10
        while (rec := rt.containers.get("box")).restart_count == 0 or rec.status != "running":
            assert time.monotonic() < deadline, "the lost monitor was not noticed"
            time.sleep(0.05)
        assert not procs.alive(before.pid, before.pid_start)          # the unmonitored process was ended
        assert rec.conmon_alive()
        assert rec.main_alive()
        assert rec.conmon_pid != before.conmon_pid
        seen = len(list(rt.logs("box")))
        deadline = time.monotonic() + 10
        while len(list(rt.logs("box"))) <= seen:                            # its output is read again
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        stop.set()
        if watcher.is_alive():
            watcher.join(timeout=10)
        rt.close()


def test_an_engine_start_ends_a_container_left_without_a_monitor_with_its_exit_and_reason(
        host: Host, busybox_image: str) -> None:
    run_ticker(host, busybox_image, "no")                             # so that nothing starts it again
    rt = host.runtime()
    try:
        before = kill_monitor(rt)
        assert rt.restart_manager.boot() == []                       # what --once and the agent do first
        assert not procs.alive(before.pid, before.pid_start)
        state = rt.inspect_container("box")
        assert (state.status.value, state.exit_code) == ("exited", 137)
        assert state.error is not None
        assert "monitor" in state.error
        assert "monitor" in rt.inspect_document("box")["State"]["Error"]   # docker inspect's field
    finally:
        rt.close()


def test_an_engine_start_looks_at_each_running_monitor_once(host: Host, busybox_image: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The look for killed monitors trusts the refresh that preceded it (the records' look found
    the monitor running, not a zombie): one /proc read a running container, not two (#21)."""
    run_ticker(host, busybox_image, "always")
    rt = host.runtime()
    try:
        monitor = rt.containers.get("box").conmon_pid
        time.sleep(records.FRESH_FOR)                   # past any reuse: boot's records() refreshes
        reads: list[int] = []
        stat = procs._stat
        monkeypatch.setattr(procs, "_stat", lambda pid: reads.append(pid) or stat(pid))
        assert rt.restart_manager.boot() == []
        assert reads == [monitor]
        monkeypatch.undo()
        assert rt.inspect_container("box").status.value == "running"
    finally:
        rt.close()


def test_an_engine_start_brings_a_container_left_without_a_monitor_back_by_its_policy(
        host: Host, busybox_image: str) -> None:
    run_ticker(host, busybox_image, "on-failure")
    rt = host.runtime()
    try:
        before = kill_monitor(rt)
        assert rt.restart_manager.boot() == [before.id]               # on-failure: 137 is a failure
        assert not procs.alive(before.pid, before.pid_start)
        rec = rt.containers.get("box")
        assert rec.status == "running"
        assert rec.conmon_pid != before.conmon_pid                    # a new monitor
        assert rec.restart_count == 1                                 # counted as a restart
        assert rec.error is None
    finally:
        rt.close()


def test_a_container_that_died_while_no_engine_watched_shows_no_published_port(
        host: Host, busybox_image: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Killed after `apply` ended (no agent, no engine running): conmon records the exit, and ps
    and inspect show it exited and publishing nothing, as Docker shows an exited container,
    though its record still lists the ports no engine has taken back yet."""
    from tests.helpers.ports import publish_port

    port = publish_port()
    m = tmp_path / "m"
    m.mkdir()
    (m / "web.yaml").write_text(f"""
apiVersion: reconciler/v1
kind: Network
metadata: {{name: pnet}}
spec: {{subnet: {host.subnet}}}
---
apiVersion: reconciler/v1
kind: Container
metadata: {{name: web}}
spec:
  image: {busybox_image}
  command: [httpd, -f, -p, "80", -h, /etc]
  networks: [pnet]
  ports: ["127.0.0.1:{port}:80"]
""")
    assert host.cli("apply", str(m)) == 0
    rec = records.RecordStore(host.config).get("web")
    assert [p.host_port for p in rec.published] == [port]
    os.kill(rec.pid, signal.SIGKILL)                    # nothing of reconciler runs to see it
    deadline = time.monotonic() + 10
    while not (host.config.run_dir / "exits" / rec.id).exists():
        assert time.monotonic() < deadline, "conmon wrote no exit file"
        time.sleep(0.05)
    assert records.RecordStore(host.config).get("web").published      # not taken back by anyone yet
    capsys.readouterr()
    args = [a for a in host.cli_args() if a not in ("--runtime", "native")]
    assert main(["ps", "-a", "-o", "json", *args]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["name"], row["status"], row["ports"]) == ("web", "exited", "")
    assert main(["inspect", "web", *args]) == 0
    (doc,) = json.loads(capsys.readouterr().out)
    assert doc["State"]["Status"] == "exited"
    assert doc["NetworkSettings"]["Ports"] == {}
    assert doc["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}


def test_status_without_an_agent_sees_a_container_killed_since_the_last_pass(
        host: Host, busybox_image: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No agent: `status` judges the containers the last pass applied as they are now (the
    records as `ps` reads them, the pass's own rule with the inventory's restart policy): one
    killed since is `down now`, the owner degraded, exit 1; one whose `restart: no` lets it stay
    exited is fine. (It showed the last pass's `ok` alone.)"""
    m = tmp_path / "m"
    m.mkdir()
    (m / "app.yaml").write_text(f"""
apiVersion: reconciler/v1
kind: Container
metadata: {{name: web}}
spec: {{image: {busybox_image}, command: [sleep, "3600"], networks: [none], restart: always}}
---
apiVersion: reconciler/v1
kind: Container
metadata: {{name: once}}
spec: {{image: {busybox_image}, command: [sleep, "3600"], networks: [none], restart: "no"}}
""")
    assert host.cli("apply", str(m)) == 0
    args = [a for a in host.cli_args() if a not in ("--runtime", "native")]
    capsys.readouterr()
    assert main(["status", *args]) == 0
    assert "owner default: ok" in capsys.readouterr().out
    store = records.RecordStore(host.config)
    for name in ("web", "once"):
        os.kill(store.get(name).pid, signal.SIGKILL)    # nothing of reconciler runs to see it
    deadline = time.monotonic() + 10
    while {r.status for r in records.RecordStore(host.config).records()} != {"exited"}:
        assert time.monotonic() < deadline, "still running"
        time.sleep(0.05)
    capsys.readouterr()
    assert main(["status", *args]) == 1
    out = capsys.readouterr().out
    assert "owner default: degraded (last pass #" in out
    assert "down now: container web: exited (exit code 137) but its restart policy is always" in out
    assert "container once" not in out
    assert main(["status", "-o", "json", *args]) == 1
    (owner,) = json.loads(capsys.readouterr().out)["owners"]
    assert owner["state"] == "degraded"
    assert owner["reasons"] == ["down now: container web: exited (exit code 137) but its restart policy is always"]


def test_a_container_stopped_after_a_healthy_probe_reads_unhealthy_as_dockerd_says(
        host: Host, busybox_image: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`docker stop` leaves dockerd's State.Health.Status `unhealthy`; the native engine kept the
    status of the last probe, and `reconcile status` showed `exited ... healthy` for a container
    left stopped. ps (its rows read without a record: summaries.py), inspect and observation
    say `unhealthy` now, and a start makes it `starting` again."""
    args = [a for a in host.cli_args() if a not in ("--runtime", "native")]
    assert main(["run", "-d", "--name", "box", "--network", "none", "--health-cmd", "true", *args, busybox_image,
                 "sleep", "3600"]) == 0
    rt = host.runtime()
    try:
        assert rt.health_checker.probe(rt.containers.get("box").id) == "healthy"
        rt.stop_container("box", timeout=0)
        assert rt.inspect_container("box").health == "unhealthy"
    finally:
        rt.close()
    capsys.readouterr()
    assert main(["ps", "-a", "-o", "json", *args]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["status"], row["health"]) == ("exited", "unhealthy")
    assert main(["inspect", "box", *args]) == 0
    (doc,) = json.loads(capsys.readouterr().out)
    assert doc["State"]["Health"]["Status"] == "unhealthy"
    assert main(["start", "box", *args]) == 0
    capsys.readouterr()
    assert main(["inspect", "box", *args]) == 0
    (doc,) = json.loads(capsys.readouterr().out)
    assert doc["State"]["Health"]["Status"] == "starting"
