"""What `ps` says is what runs: a container whose processes are gone, zombies, someone else's
(a reused pid) or from another boot reads as exited, never as running (#13)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.runtime.native import procs
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
