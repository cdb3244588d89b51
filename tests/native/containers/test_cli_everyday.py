"""The everyday docker commands beyond run/ps/logs/exec, run as a user runs them against a real
native engine (`reconcile restart`, `kill`, ...): each checked by what it did to the container
(its process, its exit code, its files), and by what it printed and exited with, as docker's."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli.main import main
from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.registry]


class Cli:
    """`reconcile CMD [engine flags] ARGS...` in this process against the test's engine: exit
    code, stdout, stderr."""

    def __init__(self, host: Host, capsys: pytest.CaptureFixture[str]) -> None:
        self.host = host
        self.capsys = capsys

    def __call__(self, command: str, *args: str, runtime: bool = True) -> tuple[int, str, str]:
        words = command.split()         # `system df`: the flags after the subcommand
        flags = self.host.cli_args() if runtime else self.host.cli_args()[:-2]      # (commit: no --runtime)
        self.capsys.readouterr()
        code = main([*words, *flags, *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, command: str, *args: str, runtime: bool = True) -> str:
        code, out, err = self(command, *args, runtime=runtime)
        assert code == 0, f"reconcile {command} {' '.join(args)} exited {code}: {err}"
        return out

    def inspect(self, name: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.ok("inspect", name))[0]
        return doc

    def state(self, name: str) -> dict[str, Any]:
        state: dict[str, Any] = self.inspect(name)["State"]
        return state


@pytest.fixture
def cli(host: Host, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(host, capsys)


def until(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def autoremoved(cli: Cli, name: str) -> None:
    """Wait until the AutoRemove container `name` is removed and conmon's exit command that removed
    it has ended (it holds the engine's cgroup parent while it runs, which the fixture checks)."""
    until(f"{name} removed", lambda: name not in [r["name"] for r in json.loads(cli.ok("ps", "-a", "-o", "json"))])
    root = str(cli.host.config.root).encode()

    def cleaning() -> bool:
        for pid in os.listdir("/proc"):
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if b"reconciler.runtime.native.cleanup" in argv and root in argv:
                    return True
        return False
    until("the exit command ended", lambda: not cleaning())


TRAP = "trap 'echo got TERM; exit 3' TERM; trap 'echo got USR1' USR1; while true; do sleep 0.1; done"


def test_restart_runs_a_new_process_and_keeps_an_autoremove_container(cli: Cli, busybox_image: str) -> None:
    cli.ok("run", "-d", "--name", "web", busybox_image, "sh", "-c", TRAP)
    cli.ok("run", "-d", "--rm", "--name", "gone", busybox_image, "sleep", "1000")
    cli.ok("run", "-d", "--name", "done", busybox_image, "sleep", "1000")
    cli.ok("stop", "-t", "0", "done")
    before = {n: cli.state(n) for n in ("web", "gone", "done")}

    code, out, err = cli("restart", "-t", "1", "web", "nosuch", "gone", "done")
    assert code == 1                                   # nosuch failed, the others restarted
    assert out.split() == ["web", "gone", "done"]
    assert "No such container: nosuch" in err
    for name, was in before.items():
        now = cli.state(name)
        assert now["Running"] is True, name
        assert now["Pid"] != was["Pid"], name
        assert now["StartedAt"] > was["StartedAt"], name
    assert "got TERM" in cli.ok("logs", "web")          # stopped by its stop signal first
    assert cli.state("web")["Restarting"] is False
    # a restart by hand of an AutoRemove container keeps it, as dockerd's: its stop removed nothing
    time.sleep(0.5)                                    # (conmon's exit command would have acted by now)
    assert cli.state("gone")["Running"] is True
    cli.ok("stop", "-t", "0", "gone")
    autoremoved(cli, "gone")


def test_kill_sends_the_signal_and_the_exit_code_says_which(cli: Cli, busybox_image: str) -> None:
    cli.ok("run", "-d", "--name", "trapper", busybox_image, "sh", "-c", TRAP)
    cli.ok("run", "-d", "--name", "sleeper", busybox_image, "sleep", "1000")

    assert cli("kill", "-s", "USR1", "trapper") == (0, "trapper\n", "")
    until("the USR1 trap", lambda: "got USR1" in cli.ok("logs", "trapper"))
    assert cli.state("trapper")["Running"] is True      # a signal it handles ends nothing
    assert cli("kill", "--signal", "SIGTERM", "trapper")[0] == 0
    until("trapper exits", lambda: cli.state("trapper")["Status"] == "exited")
    assert cli.state("trapper")["ExitCode"] == 3        # its TERM trap's code

    code, out, err = cli("kill", "sleeper", "trapper", "nosuch")
    assert (code, out) == (1, "sleeper\n")              # default KILL; the others said, as docker's
    assert "trapper is not running" in err
    assert "No such container: nosuch" in err
    state = cli.state("sleeper")
    assert (state["Status"], state["ExitCode"]) == ("exited", 137)      # 128 + SIGKILL

    cli.ok("start", "sleeper")
    code, out, err = cli("kill", "-s", "BOGUS", "sleeper")
    assert (code, out) == (1, "")
    assert "unknown signal BOGUS" in err
    assert cli.state("sleeper")["Running"] is True


def test_wait_prints_each_exit_code_in_order_and_says_what_it_cannot_find(
        cli: Cli, host: Host, busybox_image: str, tmp_path: Path) -> None:
    from reconciler.runtime import base

    # Host.cli runs `run` on the test's engine (its flags after `run IMG CMD...` were CMD's)
    assert host.cli("run", "-d", "--name", "made-by-host-cli", "--network", "none", busybox_image, "true") == 0
    assert "made-by-host-cli" in cli.ok("ps", "-a", "--format", "{{.Names}}").split()
    # (seconds to spare: under a loaded machine's CI the creates below took more than one)
    cli.ok("run", "-d", "--name", "slow", busybox_image, "sh", "-c", "sleep 3; exit 7")
    # brief ends after slow, while it is waited for: removed then (AutoRemove), its code is the journal's
    cli.ok("run", "-d", "--rm", "--name", "brief", busybox_image, "sh", "-c", "sleep 4; exit 5")
    cli.ok("run", "-d", "--name", "done", busybox_image, "sh", "-c", "exit 3")
    rt = host.runtime()
    try:
        rt.create_container(base.ContainerConfig(name="made", image=busybox_image, networks=("none",)))
    finally:
        rt.close()
    assert cli.state("slow")["Running"] is True
    code, out, err = cli("wait", "slow", "nosuch", "brief", "done", "made")
    assert code == 1                                     # (slow's 7: it waited for slow's exit)
    # brief, an AutoRemove container, is gone once it exits: its code is its last exit's (journalled);
    # made, never started, does not run: 0 at once, as docker wait answers a created container
    assert out.split() == ["7", "5", "3", "0"], err
    assert "No such container: nosuch" in err, err
    autoremoved(cli, "brief")

    # a read-only command: on a root with no engine it finds nothing and makes nothing
    empty = tmp_path / "no-engine"
    assert main(["wait", "--root", str(empty), "--run-dir", str(tmp_path / "no-run"), "x"]) == 1
    assert not empty.exists()
    assert not (tmp_path / "no-run").exists()


def test_rename_keeps_the_container_running_under_its_new_name(cli: Cli, busybox_image: str) -> None:
    cid = cli.ok("run", "-d", "--name", "old", busybox_image, "sleep", "1000").strip()
    cli.ok("run", "-d", "--name", "other", busybox_image, "sleep", "1000")
    pid = cli.state("old")["Pid"]

    assert cli("rename", "old", "new") == (0, "", "")
    doc = json.loads(cli.ok("inspect", "new"))[0]
    assert (doc["Id"], doc["Name"], doc["State"]["Pid"]) == (cid, "/new", pid)      # the same process
    assert "No such container: old" in cli("inspect", "old")[2]
    assert cli.ok("exec", "new", "hostname").strip() == cid[:12]

    for args, words in ((("new", "other"), "a container named other exists already"),
                        (("new", "new"), "same name as its current name"),
                        (("new", "bad name"), "invalid container name"),
                        (("nosuch", "x"), "No such container: nosuch")):
        code, out, err = cli("rename", *args)
        assert (code, out) == (1, ""), args
        assert words in err, (args, err)
    assert cli.state("new")["Running"] is True
    assert json.loads(cli.ok("inspect", cid[:8]))[0]["Name"] == "/new"       # an id prefix names it too


def test_port_lists_what_the_container_publishes_as_docker_port(cli: Cli, busybox_image: str) -> None:
    from tests.helpers.ports import publish_ports

    tcp, udp = publish_ports(2)
    cli.ok("run", "-d", "--name", "web", "-p", f"127.0.0.1:{tcp}:80", "-p", f"{udp}:53/udp", busybox_image,
           "sleep", "1000")
    assert cli("port", "web") == (0, f"53/udp -> 0.0.0.0:{udp}\n80/tcp -> 127.0.0.1:{tcp}\n", "")
    assert cli("port", "web", "80") == (0, f"127.0.0.1:{tcp}\n", "")
    assert cli("port", "web", "80/tcp") == (0, f"127.0.0.1:{tcp}\n", "")
    assert cli("port", "web", "53/udp") == (0, f"0.0.0.0:{udp}\n", "")
    assert cli("port", "web", "53") == (1, "", "error: No public port '53' published for web\n")
    assert cli("port", "web", "http")[0] == 1
    assert "No such container: nosuch" in cli("port", "nosuch")[2]
    assert json.loads(cli.ok("port", "-o", "json", "web", "80")) == [
        {"port": "80/tcp", "host_ip": "127.0.0.1", "host_port": str(tcp)}]
    assert [b["port"] for b in json.loads(cli.ok("port", "-o", "json", "web"))] == ["53/udp", "80/tcp"]
    cli.ok("stop", "-t", "0", "web")
    assert cli("port", "web") == (0, "", "")            # a stopped container publishes nothing, as Docker's


def test_top_lists_the_containers_processes_with_the_ps_options_given(cli: Cli, busybox_image: str) -> None:
    cli.ok("run", "-d", "--name", "web", busybox_image, "sh", "-c", "sleep 1000 & exec sleep 1001")
    until("both sleeps", lambda: cli.ok("top", "web").count("sleep 100") == 2)
    lines = cli.ok("top", "web").splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert lines[0].startswith("UID" + " " * 17 + "PID" + " " * 17)          # docker top's alignment
    pids = {int(line.split()[1]) for line in lines[1:]}
    main_pid = cli.state("web")["Pid"]
    assert main_pid in pids
    assert len(pids) == 2
    cid = cli.inspect("web")["Id"]
    cgroup = next(Path("/sys/fs/cgroup").glob(f"pids/{cli.host.config.name_prefix}/**/{cid}/cgroup.procs"))
    assert pids == {int(p) for p in cgroup.read_text().split()}           # the container's, no other
    assert sorted(lines[1:], key=lambda line: int(line.split()[1]))[0].split()[7:] == ["sleep", "1001"]

    as_data = json.loads(cli.ok("top", "-o", "json", "web"))       # the Engine API's answer
    assert as_data["Titles"] == lines[0].split()
    assert {int(row[1]) for row in as_data["Processes"]} == pids
    custom = cli.ok("top", "web", "-o", "pid,comm").splitlines()
    assert custom[0].split() == ["PID", "COMMAND"]
    assert sorted(row.split()[1] for row in custom[1:]) == ["sleep", "sleep"]
    code, _, err = cli("top", "web", "-o", "comm")
    assert code == 1
    assert "no PID column" in err

    cli.ok("stop", "-t", "0", "web")
    code, out, err = cli("top", "web")
    assert (code, out) == (1, "")
    assert "is not running" in err


def _cgroup_file(cli: Cli, controller: str, cid: str, name: str) -> str:
    return next(Path("/sys/fs/cgroup").glob(f"{controller}/{cli.host.config.name_prefix}/**/{cid}/{name}")).read_text()


def _fetched(url: str) -> int:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return len(resp.read())
    except OSError:
        return -1


def test_stats_are_the_cgroups_numbers_as_docker_stats_computes_them(cli: Cli, busybox_image: str) -> None:
    import os

    cli.ok("run", "-d", "--name", "hog", "-m", "64m", "--tmpfs", "/t", busybox_image, "sh", "-c",
           "dd if=/dev/zero of=/t/f bs=1M count=8 2>/dev/null; touch /t/done; while :; do :; done")
    cli.ok("run", "-d", "--name", "idle", busybox_image, "sh", "-c",
           "head -c 50000 /bin/busybox > /tmp/blob; exec httpd -f -p 80 -h /tmp")
    cli.ok("run", "-d", "--name", "off", busybox_image, "true")
    until("hog's 8 MiB", lambda: cli("exec", "hog", "test", "-e", "/t/done")[0] == 0)
    hog, idle = cli.inspect("hog")["Id"], cli.inspect("idle")
    address = next(iter(idle["NetworkSettings"]["Networks"].values()))["IPAddress"]
    until("idle serves", lambda: cli("exec", "idle", "test", "-e", "/tmp/blob")[0] == 0)
    until("its blob fetched", lambda: _fetched(f"http://{address}/blob") == 50000)
    until("off exits", lambda: cli.state("off")["Status"] == "exited")

    rows = {r["name"]: r for r in json.loads(cli.ok("stats", "--no-stream", "-o", "json", "hog", "idle", "off"))}
    peak = int(_cgroup_file(cli, "memory", hog, "memory.max_usage_in_bytes"))
    assert rows["hog"]["memory_limit"] == 64 * 2**20 == int(_cgroup_file(cli, "memory", hog, "memory.limit_in_bytes"))
    assert 8 * 2**20 <= rows["hog"]["memory_usage"] <= peak             # its tmpfs file is its memory
    assert rows["hog"]["memory_percent"] == round(rows["hog"]["memory_usage"] / (64 * 2**20) * 100, 2)
    assert rows["hog"]["pids"] == int(_cgroup_file(cli, "pids", hog, "pids.current")) == 1
    assert 20 <= rows["hog"]["cpu_percent"] <= 100 * (os.cpu_count() or 1) + 5     # a CPU-bound loop
    assert rows["idle"]["cpu_percent"] < 5
    dev = Path(f"/proc/{idle['State']['Pid']}/net/dev").read_text().splitlines()[2:]
    eth0 = next(line.split(":", 1)[1].split() for line in dev if line.strip().startswith("eth0:"))
    assert 50000 < rows["idle"]["net_tx"] <= int(eth0[8])               # the blob it sent, as counted
    assert 0 < rows["idle"]["net_rx"] <= int(eth0[0])                   # the request
    blkio = _cgroup_file(cli, "blkio", hog, "blkio.throttle.io_service_bytes_recursive")
    assert rows["hog"]["block_write"] == sum(int(line.split()[2]) for line in blkio.splitlines()
                                             if line.split()[1:2] == ["Write"])
    assert {k: v for k, v in rows["off"].items() if k not in ("id", "name")} == {
        "cpu_percent": 0.0, "memory_usage": 0, "memory_limit": 0, "memory_percent": 0.0, "net_rx": 0, "net_tx": 0,
        "block_read": 0, "block_write": 0, "pids": 0}                   # not running: zeros, as dockerd's

    table = cli.ok("stats", "--no-stream", "hog", "off").splitlines()
    # docker's columns and tabwriter (a column its widest cell plus 3, 10 at least)
    assert table[0].startswith("CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O   ")
    assert table[0].split("   ")[-2:] == ["BLOCK I/O", "PIDS"]
    assert table[1].startswith(f"{hog[:12]}   hog       ")
    assert " / 64MiB   " in table[1]
    assert table[2].split()[1:] == ["off", "0.00%", "0B", "/", "0B", "0.00%", "0B", "/", "0B", "0B", "/", "0B", "0"]
    # without names: the running ones (-a: all), newest first
    assert [line.split()[1] for line in cli.ok("stats", "--no-stream").splitlines()[1:]] == ["idle", "hog"]
    assert [line.split()[1] for line in cli.ok("stats", "--no-stream", "-a").splitlines()[1:]] == ["off", "idle", "hog"]
    assert cli("stats", "--no-stream", "hog", "nosuch") == (1, "", "error: No such container: nosuch\n")
    cli.ok("rm", "-f", "hog")               # (its busy loop)


def test_stats_formats_sizes_as_the_docker_cli() -> None:
    from reconciler import printing

    assert [printing.binary_size(n) for n in (0, 580, 499712, 25276182528, 64 * 2**20)] == \
        ["0B", "580B", "488KiB", "23.54GiB", "64MiB"]
    assert [printing.human_size(n) for n in (0, 648, 1090, 2048, 999500, 12_345_678)] == \
        ["0B", "648B", "1.09kB", "2.05kB", "1e+03kB", "12.3MB"]


def test_cp_both_ways_keeps_bytes_modes_and_owners_as_docker_cp(
        cli: Cli, busybox_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    import io
    import sys
    import tarfile

    cli.ok("run", "-d", "--name", "box", busybox_image, "sh", "-c",
           "mkdir -p /d/sub; head -c 3000 /bin/busybox > /d/f; echo x > /d/sub/g; chown 1234:5678 /d/f; "
           "chmod 640 /d/f; ln -s /d/f /d/link; exec sleep 1000")
    cli.ok("run", "-d", "--name", "app", "-u", "app", busybox_image, "sleep", "1000")
    until("box's files", lambda: cli("exec", "box", "test", "-L", "/d/link")[0] == 0)
    blob = Path("/bin/busybox").read_bytes()[:3000]
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)

    # out of the container: its bytes, mode and time; owned by who copies (docker cp's NoLchown)
    assert cli("cp", "box:/d/f", "f.out") == (0, "", "")           # not a terminal: nothing said
    assert (here / "f.out").read_bytes() == blob
    st = os.stat(here / "f.out")
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o640, os.geteuid(), os.getegid())
    assert int(st.st_mtime) == int(cli.ok("exec", "box", "stat", "-c", "%Y", "/d/f"))
    cli.ok("cp", "box:/d", ".")                                     # a directory: into the one there
    assert (here / "d" / "sub" / "g").read_text() == "x\n"
    assert os.readlink(here / "d" / "link") == "/d/f"               # a symlink stays one
    cli.ok("cp", "box:/d/.", "flat")                                # its content, under a new name
    assert sorted(p.name for p in (here / "flat").iterdir()) == ["f", "link", "sub"]
    cli.ok("cp", "-L", "box:/d/link", "followed")                   # -L: the target, named as the link
    assert (here / "followed").read_bytes() == blob
    code, out, err = cli("cp", "box:/d", "f.out")
    assert (code, out) == (1, "")
    assert "cannot copy directory" in err
    assert cli("cp", "box:/nope", "x")[2].startswith("error: Could not find the file /nope in container box")

    # into it: the files' owners, modes and bytes as they are here; -a: the container's user's
    src = tmp_path / "src"
    (src / "inner").mkdir(parents=True)
    (src / "inner" / "a").write_bytes(blob)
    os.chmod(src / "inner" / "a", 0o604)
    os.chown(src / "inner" / "a", 4321, 8765)
    (src / "t").write_text("top\n")
    cli.ok("cp", str(src / "inner" / "a"), "box:/tmp/")
    cli.ok("cp", str(src), "box:/tmp/copied")
    stat_a = "stat -c '%a %u:%g %s' /tmp/a /tmp/copied/inner/a; sha256sum /tmp/a | head -c 64"
    assert cli.ok("exec", "box", "sh", "-c", stat_a).split() == [
        "604", "4321:8765", "3000", "604", "4321:8765", "3000", hashlib.sha256(blob).hexdigest()]
    assert cli.ok("exec", "box", "cat", "/tmp/copied/t") == "top\n"
    cli.ok("cp", "-a", str(src / "t"), "app:/tmp/t")
    cli.ok("cp", str(src / "t"), "app:/tmp/t.plain")
    assert cli.ok("exec", "app", "stat", "-c", "%u:%g", "/tmp/t", "/tmp/t.plain").split() == ["1000:1000", "0:0"]
    code, _, err = cli("cp", str(src / "t"), "box:/nowhere/x")
    assert code == 1
    assert "Could not find the file /nowhere in container box" in err

    # `-` both ways: a tar on stdout, and one from stdin unpacked into a directory
    out, captured = io.BytesIO(), sys.stdout
    wrapper = io.TextIOWrapper(out)
    sys.stdout = wrapper
    try:
        assert main(["cp", *cli.host.cli_args(), "box:/d/sub", "-"]) == 0
        wrapper.flush()
        written = out.getvalue()
    finally:
        sys.stdout = captured
    with tarfile.open(fileobj=io.BytesIO(written)) as tar:
        assert sorted(tar.getnames()) == ["sub", "sub/g"]
    given = io.BytesIO()
    with tarfile.open(fileobj=given, mode="w") as tar:
        info = tarfile.TarInfo("in/piped")
        info.size, info.mode, info.uid = 5, 0o600, 77
        tar.addfile(info, io.BytesIO(b"piped"))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(given.getvalue())))
    assert cli("cp", "-", "box:/tmp") == (0, "", "")
    assert cli.ok("exec", "box", "sh", "-c", "stat -c '%a %u' /tmp/in/piped; cat /tmp/in/piped").split() == \
        ["600", "77", "piped"]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(given.getvalue())))
    code, _, err = cli("cp", "-", "box:/tmp/a")
    assert code == 1
    assert 'destination "box:/tmp/a" must be a directory' in err

    # a stopped container: copied into and out of, its files where its next start finds them
    cli.ok("stop", "-t", "0", "box")
    cli.ok("cp", str(src / "t"), "box:/d/while-stopped")
    cli.ok("cp", "box:/d/while-stopped", "back")
    assert (here / "back").read_text() == "top\n"
    cli.ok("start", "box")
    assert cli.ok("exec", "box", "cat", "/d/while-stopped") == "top\n"


def _upper_bytes(host: Host, cid: str) -> int:
    from reconciler.runtime.native.containers import sizes

    return sizes.writable(host.config.root, cid)


def test_system_df_counts_what_the_engine_holds(cli: Cli, host: Host, busybox_image: str) -> None:
    from reconciler.runtime import base

    cli.ok("run", "-d", "--name", "up", "-v", "data:/data", busybox_image, "sh", "-c",
           "dd if=/dev/zero of=/data/z bs=1k count=100 2>/dev/null; exec sleep 1000")
    cli.ok("run", "--name", "down", busybox_image, "dd", "if=/dev/zero", "of=/big", "bs=1M", "count=1")
    rt = host.runtime()
    try:
        spare = rt.ensure_volume(base.VolumeConfig(name="spare"))
        Path(spare.mountpoint, "s").write_bytes(b"s" * 50_000)
        image = rt.inspect_image(busybox_image)
    finally:
        rt.close()
    until("up's data", lambda: cli("exec", "up", "test", "-s", "/data/z")[0] == 0)
    down = _upper_bytes(host, cli.inspect("down")["Id"])
    up = _upper_bytes(host, cli.inspect("up")["Id"])
    assert down >= 2**20

    rows = {r["type"]: r for r in json.loads(cli.ok("system df", "-o", "json"))}
    assert rows["Images"] == {"type": "Images", "total": 1, "active": 1, "size": image.size, "reclaimable": 0}
    assert rows["Containers"] == {"type": "Containers", "total": 2, "active": 1, "size": up + down,
                                  "reclaimable": down}           # the stopped one's writable layer
    volumes = rows["Local Volumes"]
    assert (volumes["total"], volumes["active"]) == (2, 1)
    assert volumes["size"] >= 100 * 1024 + 50_000
    assert 50_000 <= volumes["reclaimable"] < 100 * 1024        # the spare one, which nothing mounts
    assert rows["Build Cache"] == {"type": "Build Cache", "total": 0, "active": 0, "size": 0, "reclaimable": 0}

    table = cli.ok("system df").splitlines()
    assert table[0] == "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE"     # docker's, to the space
    assert table[1].split()[:3] == ["Images", "1", "1"]
    assert table[1].endswith("0B (0%)")
    assert table[2].split()[-1] == f"({down * 100 // (up + down)}%)"
    assert table[4].split() == ["Build", "Cache", "0", "0", "0B", "0B"]
    code, _, err = cli("system df", "--runtime", "docker", runtime=False)
    assert code == 2
    assert "docker system df" in err


def test_system_prune_removes_only_what_nothing_uses(
        cli: Cli, host: Host, busybox_image: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    from reconciler.runtime import base

    up = cli.ok("run", "-d", "--name", "up", "-v", "mounted:/m", busybox_image, "sleep", "1000").strip()
    down = cli.ok("run", "-d", "--name", "down", busybox_image, "sh", "-c", "echo x > /x").strip()
    cli.ok("network", "create", "spare", runtime=False)
    cli.ok("network", "create", "busy", runtime=False)
    cli.ok("run", "-d", "--name", "on-busy", "--network", "busy", busybox_image, "sleep", "1000")
    rt = host.runtime()
    try:
        made = rt.create_container(base.ContainerConfig(name="made", image=busybox_image, networks=("none",)))
        rt.ensure_volume(base.VolumeConfig(name="named"))
        rt.ensure_volume(base.VolumeConfig(name="anon", labels={base.ANONYMOUS_VOLUME_LABEL: ""}))
    finally:
        rt.close()
    until("down exits", lambda: cli.state("down")["Status"] == "exited")
    dangling = cli.ok("commit", "down", runtime=False).strip()           # no tag: dangling
    kept = cli.ok("commit", "down", "kept:1", runtime=False).strip()      # tagged, used by none

    def names() -> tuple[list[str], list[str], list[str]]:
        return (sorted(r["name"] for r in json.loads(cli.ok("ps", "-a", "-o", "json"))),
                sorted(n["name"] for n in json.loads(cli.ok("network ls", "-o", "json", runtime=False))),
                sorted(v["name"] for v in json.loads(cli.ok("volume ls", "-o", "json", runtime=False))))

    before = names()
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    code, out, _ = cli("system prune", "--volumes", runtime=False)
    assert (code, names()) == (0, before)                                # not confirmed: nothing removed
    assert out == ("WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least "
                   "one container\n  - all anonymous volumes not used by at least one container\n  - all dangling "
                   "images\n\nAre you sure you want to continue? [y/N] ")

    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    code, out, _ = cli("system prune", "--volumes", runtime=False)
    assert code == 0
    report = out.split("[y/N] ", 1)[1]
    assert report.startswith("Deleted Containers:\n")
    assert sorted(report.split("\n\n")[0].splitlines()[1:]) == sorted([down, made])
    assert "\n\nDeleted Networks:\nspare\n\nDeleted Volumes:\nanon\n\nDeleted Images:\n" in report
    assert f"deleted: {dangling}" in report
    assert report.splitlines()[-1].startswith("Total reclaimed space: ")
    containers, networks, volumes = names()
    assert containers == ["on-busy", "up"]                               # running ones stay
    assert "busy" in networks
    assert "spare" not in networks
    assert volumes == ["mounted", "named"]                               # a named volume stays, as docker's
    images = {i["repository"]: i["id"] for i in json.loads(cli.ok("images", "-o", "json", runtime=False))}
    assert images["kept"] == kept                                        # tagged: not dangling
    assert dangling not in images.values()

    cli.ok("rm", "-f", "up")
    assert cli("system prune", "-a", "-f", runtime=False)[0] == 0       # -a: every image no container uses
    remaining = {i["repository"]: i["id"] for i in json.loads(cli.ok("images", "-o", "json", runtime=False))}
    assert "kept" not in remaining
    assert busybox_image.rsplit(":", 1)[0] in remaining                 # on-busy runs it
    assert up not in cli.ok("ps", "-aq", "--no-trunc")


def test_container_prune_removes_the_stopped_containers_a_filter_selects(
        cli: Cli, busybox_image: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    cli.ok("run", "-d", "--name", "up", busybox_image, "sleep", "1000")
    cli.ok("run", "--name", "old", "-l", "tier=batch", busybox_image, "true")
    cli.ok("run", "--name", "other", busybox_image, "true")
    old = cli.inspect("old")["Id"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    code, out, _ = cli("container prune", "--filter", "label=tier=batch")
    assert code == 0
    assert out.startswith("WARNING! This will remove all stopped containers.\nAre you sure you want to continue? "
                          f"[y/N] Deleted Containers:\n{old}\n\nTotal reclaimed space: ")
    assert sorted(r["name"] for r in json.loads(cli.ok("ps", "-a", "-o", "json"))) == ["other", "up"]
    code, out, _ = cli("container prune", "-f")
    assert code == 0
    assert out.startswith("Deleted Containers:\n")
    assert out.endswith("\n\nTotal reclaimed space: " + out.rsplit(": ", 1)[1])
    assert [r["name"] for r in json.loads(cli.ok("ps", "-a", "-o", "json"))] == ["up"]
    assert cli("container prune", "-f") == (0, "Total reclaimed space: 0B\n", "")
    code, _, err = cli("container prune", "-f", "--filter", "name=x")
    assert code == 2
    assert "invalid filter 'name=x'" in err
