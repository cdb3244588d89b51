"""Native-only container behaviour: what is (not) left on the host, rediscovery after the engine
dies, the OCI runtime choice, the bundle it writes, restart backoff and health start period."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.runtime import base
from reconciler.runtime import errors as rterrors
from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.containers import (
    autoremove,
    cgroups,
    conmon,
    health,
    logs,
    mounts,
    oci,
    restart,
)
from reconciler.runtime.native.volumes import volumes
from tests.helpers import images
from tests.helpers.registry import RegistryServer
from tests.runtime.conftest import cleanup, leftovers, make_native

pytestmark = [pytest.mark.root]

REPO = Path(__file__).resolve().parents[3]
NONE = ("none",)


@pytest.fixture
def native(tmp_path: Path, busybox_image: str) -> Iterator[tuple[NativeRuntime, str]]:
    rt, ref = make_native(tmp_path, busybox_image)
    try:
        yield rt, ref
    finally:
        cleanup(rt)
        left = leftovers(rt.config)
        rt.close()
        assert left == [], left


def _cfg(image: str, name: str, *cmd: str, **kw: object) -> base.ContainerConfig:
    kw.setdefault("networks", NONE)
    return base.ContainerConfig(name=name, image=image, command=tuple(cmd), **kw)  # type: ignore[arg-type]


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that is not ours counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):     # gone before the open, or reaped in the read
        return False
    return "State:\tZ" not in status


def _mounts_under(path: Path) -> list[str]:
    return [ln.split(" ")[4] for ln in Path("/proc/self/mountinfo").read_text().splitlines()
            if ln.split(" ")[4].startswith(str(path))]


def test_bad_entrypoint_fails_create_and_leaves_nothing(native: tuple[NativeRuntime, str]) -> None:
    rt, image = native
    with pytest.raises(rterrors.InvalidArgument) as err:
        rt.create_container(_cfg(image, "bad", "/nonexistent"))
    assert "/nonexistent" in str(err.value)
    assert "no such file or directory" in str(err.value)
    assert rt.list_containers() == []
    assert leftovers(rt.config) == []
    assert list((rt.config.root / "containers").iterdir()) == []
    assert list((rt.config.run_dir / "exits").iterdir()) == []
    assert not any((h / rt.config.name_prefix).exists() for h in cgroups.hierarchies())


def test_a_bind_source_deleted_while_stopped_is_made_again_at_start(native: tuple[NativeRuntime, str],
                                                                     tmp_path: Path) -> None:
    """A `-v /host:/ctr` bind whose host directory was deleted while the container was stopped (a
    cleanup, a reboot's tmpfs): its start makes the directory again, as dockerd's does, instead of
    failing (and every restart after it) with runc's "error mounting". A source that cannot be made
    (a dangling link in its place) fails the start with an error that names the mounts, not the
    command."""
    rt, image = native
    src = tmp_path / "host" / "data"
    cid = rt.create_container(_cfg(image, "bound", "sh", "-c", "touch /data/mark; exec sleep 1000",
                                   mounts=(base.Mount(type="bind", source=str(src), target="/data"),)))
    assert src.is_dir()                                 # made at create
    rt.start_container(cid)
    rt.stop_container(cid, timeout=0)
    (src / "mark").unlink(missing_ok=True)
    src.rmdir()
    src.parent.rmdir()
    rt.start_container(cid)
    assert rt.containers.get(cid).status == "running"
    deadline = time.monotonic() + 10
    while not (src / "mark").exists():                  # the container writes into the new directory
        assert time.monotonic() < deadline
        time.sleep(0.05)
    rt.stop_container(cid, timeout=0)
    (src / "mark").unlink()
    src.rmdir()
    src.symlink_to(tmp_path / "nowhere")
    with pytest.raises(rterrors.InvalidArgument) as err:
        rt.start_container(cid)
    assert "cannot mount the container's volumes" in str(err.value)
    assert "check its mounts" in (err.value.hint or "")
    assert rt.containers.get(cid).status == "exited"


def test_a_bind_source_replaced_or_deleted_while_it_runs_is_reported(native: tuple[NativeRuntime, str],
                                                                       tmp_path: Path) -> None:
    """A running container keeps what it mounted: a bind-mounted file an editor saves (a new file
    renamed over the old one) or a bound directory deleted leaves it with the old one, what it
    writes there lost at its stop. Its state names those sources (`stale_binds`), a pass notes
    it, and a stop and start mounts what is there now."""
    rt, image = native
    conf, data = tmp_path / "app.conf", tmp_path / "data"
    conf.write_text("v1\n")
    data.mkdir()
    cid = rt.create_container(_cfg(image, "binds", "sleep", "1000", mounts=(
        base.Mount(type="bind", source=str(conf), target="/etc/app.conf", read_only=True),
        base.Mount(type="bind", source=str(data), target="/data"))))
    rt.start_container(cid)

    def stale() -> tuple[str, ...]:
        return next(c.stale_binds for c in rt.list_containers() if c.id == cid)

    assert stale() == ()
    (tmp_path / "app.conf.new").write_text("v2\n")
    os.rename(tmp_path / "app.conf.new", conf)            # as an editor saves
    assert rt.exec(cid, ["cat", "/etc/app.conf"]).stdout == b"v1\n"
    assert stale() == (str(conf),)
    data.rmdir()
    assert stale() == (str(conf), str(data))
    conf.write_text("v3\n")                              # written in place: the same file, still stale
    assert stale() == (str(conf), str(data))
    assert rt.inspect_document(cid)["State"]["StaleBinds"] == [str(conf), str(data)]     # inspect says so too

    rt.stop_container(cid, timeout=0)
    assert stale() == ()                                   # it does not run: nothing it holds
    rt.start_container(cid)
    assert stale() == ()
    assert "StaleBinds" not in rt.inspect_document(cid)["State"]
    assert rt.exec(cid, ["cat", "/etc/app.conf"]).stdout == b"v3\n"


def test_a_removal_leaves_the_shared_cgroup_parent_to_a_create_under_way(native: tuple[NativeRuntime, str]) -> None:
    """Every container's groups sit under one `/<prefix>` parent. A removal that took the parent
    while another create had made it but not yet its own leaf failed that create ("openat2
    .../cpuset/<prefix>/cpuset.cpus: no such file or directory", seen in CI with a parallel pass);
    a create under way (another thread or process holding `creating`) keeps it, and the removal
    after it takes it."""
    rt, image = native
    prefix, locks = rt.config.name_prefix, rt.config.locks_dir
    parents = lambda: [h for h in cgroups.hierarchies() if (h / prefix).is_dir()]  # noqa: E731
    first = rt.create_container(_cfg(image, "first", "true"))
    assert parents()
    with cgroups.creating(locks, prefix):
        rt.remove_container(first, force=True)
        assert parents(), "the parent a create under way needs was removed"
        assert cgroups.leaf_dirs(prefix, first) == []
    last = rt.create_container(_cfg(image, "last", "true"))
    rt.remove_container(last, force=True)
    assert parents() == []


def test_remove_leaves_no_mount_process_or_directory(native: tuple[NativeRuntime, str]) -> None:
    rt, image = native
    cid = rt.create_container(_cfg(image, "gone", "sleep", "1000",
                                   mounts=(base.Mount(type="volume", source="keep", target="/data"),)))
    rt.start_container(cid)
    rec = rt.containers.get(cid)
    cdir = rt.containers.paths(cid).dir
    assert _mounts_under(cdir) == [str(cdir / "rootfs")]
    assert cgroups.leaf_dirs(rt.config.name_prefix, cid)
    pid, conmon_pid = rec.pid, rec.conmon_pid
    assert pid
    assert conmon_pid
    # conmon left the engine's cgroup for its own (stopping the engine must not kill it)
    memory_line = next(ln for ln in Path(f"/proc/{conmon_pid}/cgroup").read_text().splitlines() if ":memory:" in ln)
    assert memory_line.endswith(f"/{rt.config.name_prefix}/conmon")
    rt.remove_container(cid, force=True)
    assert not cdir.exists()
    assert _mounts_under(rt.config.root) == []
    for p in (pid, conmon_pid):
        assert not _alive(p), p
    assert not any((h / rt.config.name_prefix).exists() for h in cgroups.hierarchies())
    assert not (rt.config.run_dir / "conmon" / cid).exists()
    assert oci.OciRuntime.find("runc", rt.config.run_dir / "runc").state(cid) is None
    assert [v.name for v in rt.list_volumes()] == ["keep"]          # named volumes stay



def test_stop_and_remove_end_the_process_when_the_runtime_lost_the_container(
        native: tuple[NativeRuntime, str]) -> None:
    """runc's state dir deleted under a running container (a cleanup script, a tmpfs lost): runc
    says the container does not exist, while its process runs on. A stop and a removal end that
    process all the same (known by its pid, start time and boot id): a removal that believed
    runc left it running beside its replacement, on the same volume."""
    rt, image = native
    for name, end in (("stopped", "stop"), ("removed", "remove")):
        cid = rt.create_container(_cfg(image, name, "sleep", "1000",
                                       mounts=(base.Mount(type="volume", source="shared", target="/data"),)))
        rt.start_container(cid)
        rec = rt.containers.get(cid)
        pid, conmon_pid = rec.pid, rec.conmon_pid
        state = rt.config.run_dir / "runc" / cid
        assert state.is_dir()
        subprocess.run(["rm", "-rf", str(state)], check=True)
        assert oci.OciRuntime.find("runc", rt.config.run_dir / "runc").state(cid) is None
        if end == "stop":
            rt.stop_container(cid, timeout=1)
            assert rt.inspect_container(cid).status == "exited"
        else:
            rt.remove_container(cid, force=True)
            assert rt.containers.paths(cid).dir.exists() is False
        for p in (pid, conmon_pid):
            assert not _alive(p), (end, p)
        if end == "stop":
            rt.remove_container(cid)
    assert _mounts_under(rt.config.root) == []

@pytest.fixture
def logged_runc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `runc` first on PATH that appends its arguments to a file, then is the real runc."""
    real = oci.OciRuntime.find("runc", tmp_path).path
    bindir, log = tmp_path / "bin", tmp_path / "runc-calls"
    bindir.mkdir()
    (bindir / "runc").write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {real} "$@"\n')
    (bindir / "runc").chmod(0o755)
    log.touch()
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return log


def _ended(rt: NativeRuntime, image: str, name: str) -> str:
    cid = rt.create_container(_cfg(image, name, "true"))
    rt.start_container(cid)
    assert rt.wait_container(cid) == 0
    assert cgroups.leaf_dirs(rt.config.name_prefix, cid)        # runc's groups outlive the process
    return cid


def test_removing_an_ended_container_runs_no_runtime_process(
        logged_runc: Path, native: tuple[NativeRuntime, str]) -> None:
    """#21 (`run --rm`): the removal of a container whose processes ended does what `runc delete`
    does (its cgroups, runc's state dir) without a runc process, and leaves nothing."""
    rt, image = native
    cid = _ended(rt, image, "gone")
    before = logged_runc.read_text().splitlines()
    assert any(line.startswith("--root") and " create " in f" {line} " for line in before)  # the log works
    rt.remove_container(cid)
    assert logged_runc.read_text().splitlines() == before       # no runc delete (nor state)
    assert not (rt.config.run_dir / "runc" / cid).exists()
    assert cgroups.leaf_dirs(rt.config.name_prefix, cid) == []


def test_starting_a_created_container_runs_no_runtime_process(
        logged_runc: Path, native: tuple[NativeRuntime, str]) -> None:
    """#21 (`run`): the start of a created runc container does what `runc start` does (reads
    the exec fifo its init waits on, then removes it) without a runc process: the container's
    process runs, and runc itself reports it running."""
    rt, image = native
    cid = rt.create_container(_cfg(image, "quick", "sh", "-c", "echo started; sleep 1000"))
    fifo = rt.config.run_dir / "runc" / cid / "exec.fifo"
    assert fifo.exists()
    rt.start_container(cid)
    calls = logged_runc.read_text().splitlines()
    assert any(" create " in f" {line} " for line in calls)              # the log works
    assert not any(" start " in f" {line} " for line in calls), calls
    assert not fifo.exists()
    state = oci.OciRuntime.find("runc", rt.config.run_dir / "runc").state(cid)
    assert state is not None
    assert state["status"] == "running"
    assert rt.containers.get(cid).status == "running"
    deadline = time.monotonic() + 10
    while b"started" not in rt.containers.paths(cid).log.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert b"started" in rt.containers.paths(cid).log.read_bytes()


def test_an_init_awaits_its_start_while_it_holds_the_exec_fifo_whatever_its_name(
        native: tuple[NativeRuntime, str], tmp_path: Path) -> None:
    """The start's judgement of whether the init still waits (else it counts as released, and
    the fifo is removed) is the init's hold on the exec fifo, not its name: a process that holds
    the fifo waits whatever it is called; runc's init holds it until its exec, not after."""
    fifo = tmp_path / "exec.fifo"
    os.mkfifo(fifo)
    ident = (fifo.stat().st_dev, fifo.stat().st_ino)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, sys, time
        fd = os.open({str(fifo)!r}, os.O_PATH)
        print("held", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"held\n"
        assert Path(f"/proc/{holder.pid}/comm").read_text().strip() != "runc:[2:INIT]"
        assert oci._awaiting_start(holder.pid, ident)
        assert not oci._awaiting_start(os.getpid(), ident)
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    rt, image = native
    cid = rt.create_container(_cfg(image, "held", "sleep", "1000"))
    rec = rt.containers.get(cid)
    assert rec.pid
    runc_fifo = (rt.config.run_dir / "runc" / cid / "exec.fifo").stat()
    assert oci._awaiting_start(rec.pid, (runc_fifo.st_dev, runc_fifo.st_ino))
    rt.start_container(cid)           # returns once the exec closed the init's end of the fifo
    assert not oci._awaiting_start(rec.pid, (runc_fifo.st_dev, runc_fifo.st_ino))


def test_a_start_killed_after_releasing_the_init_is_finished_by_the_next_start(
        native: tuple[NativeRuntime, str]) -> None:
    """A process killed (SIGKILL) between reading the exec fifo and removing it leaves a running
    container whose fifo runc still reads as "created"; the next start (the rerun's) finishes
    that start, as `runc start` run as its own process would have: it returns, at once, and
    the container runs. It never waits on a fifo nobody will write to again."""
    rt, image = native
    cid = rt.create_container(_cfg(image, "half", "sleep", "1000"))
    rec = rt.containers.get(cid)
    assert rec.pid
    assert Path(f"/proc/{rec.pid}/comm").read_text().strip() == "runc:[2:INIT]"   # what the start reads
    fifo = rt.config.run_dir / "runc" / cid / "exec.fifo"
    fd = os.open(fifo, os.O_RDONLY)          # the killed start: the byte read, the fifo kept
    try:
        assert os.read(fd, 1)
    finally:
        os.close(fd)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{rec.pid}/comm").read_text().strip() != "sleep" and time.monotonic() < deadline:
        time.sleep(0.01)
    runtime = rt.containers.oci(rec.runtime)
    done = threading.Event()
    starter = threading.Thread(target=lambda: (runtime.start(cid, alive=lambda: _alive(rec.pid or 0),
                                                             pid=rec.pid), done.set()), daemon=True)
    starter.start()
    starter.join(10)
    assert done.is_set(), "the start waited on a fifo nobody writes to"
    assert not fifo.exists()
    state = runtime.state(cid)
    assert state is not None
    assert state["status"] == "running"


def test_a_start_whose_init_process_ended_is_left_to_the_runtime(
        logged_runc: Path, native: tuple[NativeRuntime, str]) -> None:
    """Where the shortcut cannot be certain (the created container's init process ended before
    its start), the start neither waits forever on the fifo nor claims success: `runc start`
    is asked, and its refusal is raised."""
    rt, image = native
    cid = rt.create_container(_cfg(image, "dead", "true"))
    rec = rt.containers.get(cid)
    assert rec.pid
    os.kill(rec.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _alive(rec.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    runtime = rt.containers.oci(rec.runtime)
    with pytest.raises(rterrors.RuntimeBackendError):
        runtime.start(cid, alive=lambda: _alive(rec.pid or 0), pid=rec.pid)
    assert any(" start " in f" {line} " for line in logged_runc.read_text().splitlines())


def test_the_runtime_is_not_given_the_engines_notify_socket(tmp_path: Path, busybox_image: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent under systemd's Type=notify (contrib/reconciler.service) has NOTIFY_SOCKET: a
    `runc start` given it binds a socket in a directory that only a create given it makes, and
    fails. conmon and the runtime's commands run without it."""
    rt, image = make_native(tmp_path, busybox_image)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    try:
        cid = rt.create_container(_cfg(image, "notified", "sleep", "1000"))
        runtime = rt.containers.oci("runc")
        runtime.start(cid)                  # `runc start` itself (no `alive`: not the fifo shortcut)
        state = runtime.state(cid)
        assert state is not None
        assert state["status"] == "running"
    finally:
        cleanup(rt)
        left = leftovers(rt.config)
        rt.close()
    assert left == [], left


def test_a_volatile_container_mounts_again_in_the_same_boot_only(native: tuple[NativeRuntime, str]) -> None:
    """A container created `volatile` (`run --rm`) whose rootfs was unmounted starts again (the
    kernel's mark cleared: nothing it wrote can be lost in this boot); after a reboot (its
    record's boot id is not the host's) it is refused with what to do, not mounted."""
    rt, image = native
    mgr = rt.containers
    image_id, image_cfg, layer_dirs = rt.images.resolve(image)
    rec = mgr.create(_cfg(image, "vol", "sh", "-c", "cat /kept 2>/dev/null; echo kept-it > /kept"), image_id=image_id,
                     image_config=image_cfg.get("config") or {}, lowerdirs=layer_dirs, volatile=True)
    p = mgr.paths(rec.id)
    rt.start_container(rec.id)
    assert rt.wait_container(rec.id) == 0
    mounts.unmount(p.rootfs)
    assert mounts.volatile_marker(p.work).exists()
    rt.start_container(rec.id)                      # same boot: mounted again, the file it wrote is there
    assert rt.wait_container(rec.id) == 0
    assert b"kept-it" in p.log.read_bytes()
    assert "volatile" in next(ln for ln in Path("/proc/self/mountinfo").read_text().splitlines()
                              if ln.split(" ")[4] == str(p.rootfs))
    mounts.unmount(p.rootfs)
    mgr.update(rec.id, lambda r: dataclasses.replace(r, boot_id="an-earlier-boot"))    # as after a reboot
    with pytest.raises(rterrors.Conflict) as err:
        rt.start_container(rec.id)
    assert "may be incomplete" in str(err.value)
    assert "reconcile rm vol" in (err.value.hint or "")
    assert not mounts.is_mounted(p.rootfs)


def test_an_ended_container_with_a_child_cgroup_is_removed_by_the_runtime(
        logged_runc: Path, native: tuple[NativeRuntime, str]) -> None:
    """Where the shortcut is not certain (a group the container made inside its own, which a
    plain rmdir cannot remove), `runc delete` removes the container, and nothing is left."""
    rt, image = native
    cid = _ended(rt, image, "nested")
    leaf = cgroups.leaf_dirs(rt.config.name_prefix, cid)[0]
    (leaf / "child").mkdir()
    rt.remove_container(cid)
    assert any(" delete --force " in f" {line} " for line in logged_runc.read_text().splitlines())
    assert not leaf.exists()
    assert not (rt.config.run_dir / "runc" / cid).exists()


def test_a_log_follower_returns_when_the_container_ends_not_a_poll_later(native: tuple[NativeRuntime, str]) -> None:
    """#21 (`run` in the foreground, `logs -f`, through the agent too): the follower's pause ends
    when the container's monitor does, so even with an hour between looks it returns with the
    whole output once the container ended."""
    rt, image = native
    cid = rt.create_container(_cfg(image, "brief", "sh", "-c", "echo one; sleep 0.3; echo two"))
    rt.start_container(cid)
    mgr = rt.containers
    got: list[bytes] = []
    follower = threading.Thread(target=lambda: got.extend(
        line.data for line in logs.read_logs(mgr.paths(cid).log, follow=True, poll=3600,
                                             is_running=lambda: mgr.get(cid).status in ("running", "created"),
                                             idle=mgr.until_exit(mgr.get(cid)))), daemon=True)
    follower.start()
    follower.join(timeout=60)
    assert not follower.is_alive(), "the follower slept through the exit"
    assert got == [b"one", b"two"]
    assert rt.wait_container(cid) == 0


def test_bundle_has_docker_defaults(native: tuple[NativeRuntime, str]) -> None:
    rt, image = native
    cid = rt.create_container(_cfg(image, "spec", "true", cap_add=("NET_ADMIN",), cap_drop=("MKNOD",),
                                   read_only=True, resources=base.Resources(memory=64 << 20, pids=50)))
    spec = json.loads(rt.containers.paths(cid).config_json.read_text())
    caps = spec["process"]["capabilities"]["bounding"]
    assert "CAP_NET_ADMIN" in caps
    assert "CAP_MKNOD" not in caps
    assert "CAP_SYS_ADMIN" not in caps
    assert spec["root"]["readonly"] is True
    assert "/proc/kcore" in spec["linux"]["maskedPaths"]
    assert "/proc/sys" in spec["linux"]["readonlyPaths"]
    assert {m["destination"] for m in spec["mounts"]} >= {"/proc", "/dev", "/dev/pts", "/sys", "/dev/shm",
                                                         "/etc/hosts", "/etc/resolv.conf", "/etc/hostname"}
    assert spec["linux"]["resources"]["devices"][0] == {"allow": False, "access": "rwm"}
    assert spec["linux"]["resources"]["memory"]["limit"] == 64 << 20
    assert spec["linux"]["resources"]["pids"]["limit"] == 50
    assert spec["linux"]["cgroupsPath"] == f"/{rt.config.name_prefix}/{cid}"
    assert "rlimits" not in spec["process"]      # inherit: root here lacks CAP_SYS_RESOURCE
    assert {"type": "network"} in spec["linux"]["namespaces"]


def test_host_network_shares_the_hosts_interfaces(native: tuple[NativeRuntime, str]) -> None:
    rt, image = native
    # A link of this test's own on the host (other tests add and remove theirs meanwhile).
    mark, peer = f"{rt.config.name_prefix}hn0", f"{rt.config.name_prefix}hn1"
    subprocess.run(["ip", "link", "add", mark, "type", "veth", "peer", "name", peer], check=True)
    try:
        cid = rt.create_container(_cfg(image, "hostnet", "sh", "-c", "ls /sys/class/net", networks=("host",)))
        rt.start_container(cid)
        assert rt.wait_container(cid, timeout=30) == 0
        inside = {ln.data.decode() for ln in rt.logs(cid)}
    finally:
        subprocess.run(["ip", "link", "del", mark], check=True)
    assert {mark, peer, "lo"} <= inside


def test_none_network_has_only_loopback(native: tuple[NativeRuntime, str]) -> None:
    rt, image = native
    cid = rt.create_container(_cfg(image, "nonet", "ls", "/sys/class/net"))
    rt.start_container(cid)
    rt.wait_container(cid, timeout=30)
    assert [ln.data for ln in rt.logs(cid)] == [b"lo"]


def test_crun_on_a_hybrid_host_is_reported_clearly(tmp_path: Path, busybox_image: str) -> None:
    if (cgroups.CGROUP_ROOT / "cgroup.controllers").exists() or not (cgroups.CGROUP_ROOT / "unified").is_dir():
        pytest.skip("not a hybrid cgroup host")
    rt, image = make_native(tmp_path, busybox_image, oci_runtime="crun")
    try:
        with pytest.raises(rterrors.Unavailable) as err:
            rt.create_container(_cfg(image, "crun", "true"))
        assert "hybrid" in str(err.value)
        assert "runc" in str(err.value)            # the hint names the way out
        assert rt.list_containers() == []
    finally:
        cleanup(rt)
        assert leftovers(rt.config) == []
        rt.close()


def test_oom_file_from_conmon(native: tuple[NativeRuntime, str], tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    rt, image = native
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    cid = rt.create_container(_cfg(image, "oom", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1",
                                   resources=base.Resources(memory=32 << 20)))
    rt.start_container(cid)
    assert rt.wait_container(cid, timeout=60) == 137
    assert conmon.was_oom_killed(rt.containers.paths(cid).conmon)
    assert rt.inspect_document(cid)["State"]["OOMKilled"] is True
    assert list(cwd.iterdir()) == []          # conmon's relative "oom" file stays in the bundle


ENGINE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from reconciler.runtime import base
    from reconciler.runtime.native.backend import NativeRuntime
    from reconciler.runtime.native.config import NativeConfig
    root, run, prefix, image = sys.argv[1:5]
    rt = NativeRuntime(NativeConfig(root=Path(root), run_dir=Path(run), name_prefix=prefix))
    for name, cmd in (("long", ["sleep", "1000"]), ("short", ["sh", "-c", "sleep 2; exit 4"])):
        cid = rt.create_container(base.ContainerConfig(name=name, image=image, command=tuple(cmd), networks=("none",)))
        rt.start_container(cid)
    print("started", flush=True)
    time.sleep(1000)
""")


def test_engine_killed_then_rediscovered(tmp_path: Path, busybox_image: str) -> None:
    rt, image = make_native(tmp_path, busybox_image)          # pulls the image into the shared root
    config = rt.config
    rt.close()
    proc = subprocess.Popen([sys.executable, "-c", ENGINE, str(config.root), str(config.run_dir),
                             config.name_prefix, image], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(2.5)                                       # "short" exits while no engine runs
        again = NativeRuntime(config)
        try:
            long_ = again.inspect_container("long")
            assert long_.status == base.ContainerStatus.RUNNING
            short = again.inspect_container("short")
            assert short.status == base.ContainerStatus.EXITED
            assert short.exit_code == 4
            assert again.wait_container("short", timeout=5) == 4
            again.stop_container("long", timeout=1)
            assert again.inspect_container("long").exit_code == 137
            again.start_container("short")                    # a stopped container starts again
            assert again.wait_container("short", timeout=30) == 4
        finally:
            cleanup(again)
            left = leftovers(config)
            again.close()
            assert left == [], left
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_restart_backoff_doubles_and_resets(native: tuple[NativeRuntime, str]) -> None:
    rt, image = native
    clock = [1000.0]
    rm = restart.RestartManager(rt.containers, clock=lambda: clock[0])
    cid = rt.create_container(_cfg(image, "loop", "sh", "-c", "exit 1", restart=base.RestartPolicy("always")))
    rt.start_container(cid)
    delays = []
    for _ in range(4):
        rt.wait_container(cid, timeout=30)
        delay = rm.handle_exit(cid)
        assert delay is not None
        delays.append(delay)
        assert rt.inspect_container(cid).status == base.ContainerStatus.RESTARTING
        assert rm.tick() == []                                # not due yet
        clock[0] += delay
        assert rm.tick() == [cid]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert rt.inspect_container(cid).restart_count == 4
    rt.stop_container(cid, timeout=0)
    assert rm.handle_exit(cid) is None                        # a manual stop cancels


def test_the_backoff_outlives_the_restart_manager(native: tuple[NativeRuntime, str]) -> None:
    """An agent restarted while a container crash-loops (a new restart manager, as a new agent
    process makes): its engine start does not run the container at once, and the next restart
    waits twice the last back-off (kept in the record), not 100 ms again. A stop by hand and a
    start by hand forget it, as dockerd's restart manager is reset by them."""
    rt, image = native
    clock = [1000.0]
    rm = restart.RestartManager(rt.containers, clock=lambda: clock[0])
    cid = rt.create_container(_cfg(image, "loop", "sh", "-c", "exit 1", restart=base.RestartPolicy("always")))
    rt.start_container(cid)
    for _ in range(3):
        rt.wait_container(cid, timeout=30)
        delay = rm.handle_exit(cid)
        assert delay is not None
        clock[0] += delay
        assert rm.tick() == [cid]
    rt.wait_container(cid, timeout=30)                        # exits again: the agent restarts meanwhile
    again = restart.RestartManager(rt.containers, clock=lambda: clock[0])
    assert again.boot() == []                                 # not at once: its back-off first
    # scheduled by the boot itself, and restarting from there on: a pass that looks before the
    # watch's first tick (the agent's first pass, a `--once`) leaves it to the restart manager
    # instead of starting it by hand, which forgot the back-off
    assert again.pending()
    assert rt.inspect_container(cid).status == "restarting"
    assert rt.containers.get(cid).restart_delay == pytest.approx(0.4)
    due = again.next_due()
    assert due is not None
    assert 0.1 <= due <= 0.8                                  # twice 0.4, less the time since the exit
    assert again.tick() == []                                 # not due yet
    clock[0] += 0.8
    assert again.tick() == [cid]
    assert rt.inspect_container(cid).restart_count == 4
    rt.wait_container(cid, timeout=30)
    rt.stop_container(cid, timeout=0)                         # by hand: the back-off is forgotten
    rt.start_container(cid)
    rt.wait_container(cid, timeout=30)
    assert restart.RestartManager(rt.containers, clock=lambda: clock[0]).handle_exit(cid) == pytest.approx(0.1)


def test_a_start_leaves_a_container_in_its_back_off_to_the_restart_manager(native: tuple[NativeRuntime, str]) -> None:
    """A pass's start (the executor's `start_container`) of a crash-looping container whose
    restart waits its back-off (the exit handled after the pass observed it exited) leaves it
    to the restart manager, as dockerd answers the start of a restarting container 304: before,
    it started it at once and forgot the back-off. So is one whose exit a running watch has not
    looked at yet (a pass can see it first). `restart` starts it at once, as dockerd's."""
    rt, image = native
    clock = [1000.0]
    rm = restart.RestartManager(rt.containers, clock=lambda: clock[0])
    cid = rt.create_container(_cfg(image, "loop", "sh", "-c", "exit 1", restart=base.RestartPolicy("always")))
    rt.start_container(cid)
    for _ in range(3):
        rt.wait_container(cid, timeout=30)
        delay = rm.handle_exit(cid)
        assert delay is not None
        clock[0] += delay
        assert rm.tick() == [cid]
    rt.wait_container(cid, timeout=30)
    started = rt.containers.get(cid).started_at
    with autoremove.supervising(rt.config.run_dir):           # a watch runs (an agent's) and has not looked yet
        rt.start_container(cid)                               # the pass's start, seen exited
    assert (rt.containers.get(cid).status, rt.containers.get(cid).started_at) == ("exited", started)
    assert rm.handle_exit(cid) == pytest.approx(0.8)         # its restart waits 0.8 s
    rt.start_container(cid)                                   # the pass's start, seen exited a moment before
    rec = rt.containers.get(cid)
    assert (rec.status, rec.started_at, rec.restart_delay) == ("exited", started, pytest.approx(0.4))
    assert rt.inspect_container(cid).status == "restarting"
    clock[0] += 0.8
    assert rm.tick() == [cid]                                 # the restart manager's restart, its back-off kept
    assert rt.containers.get(cid).restart_delay == pytest.approx(0.8)
    rt.wait_container(cid, timeout=30)
    assert rm.handle_exit(cid) == pytest.approx(1.6)
    rt.restart_container(cid)                                 # by hand, at once: its back-off forgotten
    rec = rt.containers.get(cid)
    assert rec.status in ("running", "exited")
    assert rec.started_at != started
    assert rec.restart_delay == 0


def test_a_stop_by_hand_between_a_restarts_decision_and_its_start_wins(native: tuple[NativeRuntime, str]) -> None:
    """A restart due for an exited `always` container, and a `stop` by hand landing just after
    the restart manager looked at the record: the container stays stopped (the decision is
    made again under the container's lock). The conformance suite's always-then-stop test hit
    this window on CI."""
    rt, image = native
    clock = [1000.0]
    cid = rt.create_container(_cfg(image, "loop", "sh", "-c", "exit 1", restart=base.RestartPolicy("always")))
    rt.start_container(cid)
    rt.wait_container(cid, timeout=30)

    class StopByHandMeanwhile:
        """The engine's containers, where a stop by hand comes as soon as the restart manager
        reads the record or starts the container (whichever it does first)."""

        armed = False

        def __getattr__(self, name: str) -> object:
            return getattr(rt.containers, name)

        def _stop(self) -> None:
            if self.armed:
                self.armed = False
                rt.stop_container(cid, timeout=0)

        def get(self, name_or_id: str) -> object:
            rec = rt.containers.get(name_or_id)
            self._stop()
            return rec

        def start(self, name_or_id: str, **kwargs: object) -> object:
            self._stop()
            return rt.containers.start(name_or_id, **kwargs)  # type: ignore[arg-type]

    meanwhile = StopByHandMeanwhile()
    rm = restart.RestartManager(meanwhile, clock=lambda: clock[0])  # type: ignore[arg-type]
    delay = rm.handle_exit(cid)
    assert delay is not None
    clock[0] += delay
    meanwhile.armed = True
    assert rm.tick(ids=[]) == []
    state = rt.inspect_container(cid)
    assert state.status == base.ContainerStatus.EXITED
    assert state.manually_stopped
    assert state.restart_count == 0


def test_backoff_rules() -> None:
    assert restart.next_delay(0, 0) == 0.1
    assert restart.next_delay(0.1, 1) == 0.2
    assert restart.next_delay(40, 1) == 60
    assert restart.next_delay(60, 1) == 60
    assert restart.next_delay(60, 10) == 0.1                  # ran 10 s: reset


def test_an_images_volume_is_a_new_anonymous_volume_filled_from_the_image(
        native: tuple[NativeRuntime, str], registry: RegistryServer, tmp_path: Path) -> None:
    """A VOLUME of the image that the container mounts nothing at gets a volume of its own, as
    dockerd makes one: filled from the image, labelled anonymous, gone with `rm -v`. Its data
    went into the container's writable layer before (and with the container)."""
    rt, _ = native
    layout = tmp_path / "vol-layout"
    images.write_layout(layout, [images.busybox_layer([
        images.Entry("vol", type=tarfile.DIRTYPE, mode=0o755), images.Entry("vol/seed", b"from the image\n")])],
        config={"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "Volumes": {"/vol": {}, "/data": {}}})
    ref = f"{registry.host}/lifecycle/vol:1"
    images.push_layout(layout, ref)
    rt.pull_image(ref)
    cid = rt.create_container(_cfg(ref, "v", "sh", "-c", "cat /vol/seed; echo kept > /vol/new",
                                   mounts=(base.Mount(type="tmpfs", target="/data"),)))
    mounts = {m.target: m for m in rt.containers.get(cid).config.mounts}
    assert mounts["/data"].type == "tmpfs"                  # mounted by the container: no volume there
    vol = mounts["/vol"].source
    assert mounts["/vol"].type == "volume"
    assert volumes.ANONYMOUS_LABEL in {v.name: v for v in rt.list_volumes()}[vol].labels
    rt.start_container(cid)
    assert rt.wait_container(cid, timeout=30) == 0
    assert [ln.data for ln in rt.logs(cid)] == [b"from the image"]
    assert (rt.containers.volumes.data_dir(vol) / "new").read_text() == "kept\n"
    rt.remove_container(cid, volumes=True)
    assert vol not in {v.name for v in rt.list_volumes()}


def test_an_engine_start_counts_its_restarts_so_on_failure_gives_up(native: tuple[NativeRuntime, str]) -> None:
    """Each engine start (every `--once` without an agent) that runs a failed container again
    counts a restart, as the restart manager does: `on-failure:2` gives up after two, however
    many engine starts there are (it retried without end). One that ended with an earlier boot
    (the reboot's kill) is started uncounted, as dockerd starts it."""
    rt, image = native
    cid = rt.create_container(_cfg(image, "f2", "sh", "-c", "exit 1", restart=base.RestartPolicy("on-failure", 2)))
    rt.start_container(cid)
    rt.wait_container(cid, timeout=30)
    for count in (1, 2):
        assert restart.RestartManager(rt.containers).boot() == [cid]
        rt.wait_container(cid, timeout=30)
        assert rt.inspect_container(cid).restart_count == count
    assert restart.RestartManager(rt.containers).boot() == []              # on-failure:2 gave up
    assert rt.inspect_container(cid).restart_count == 2

    rebooted = rt.create_container(_cfg(image, "r", "sh", "-c", "exit 1", restart=base.RestartPolicy("always")))
    rt.start_container(rebooted)
    rt.wait_container(rebooted, timeout=30)
    rt.containers.update(rebooted, lambda r: dataclasses.replace(r, boot_id="an-earlier-boot"))
    assert restart.RestartManager(rt.containers).boot() == [rebooted]
    assert rt.inspect_container(rebooted).restart_count == 0


def test_boot_starts_what_the_restart_rule_runs(native: tuple[NativeRuntime, str]) -> None:
    rt, image = native
    gave_up = rt.create_container(_cfg(image, "f3", "sh", "-c", "exit 1", restart=base.RestartPolicy("on-failure", 1)))
    rt.start_container(gave_up)
    rt.wait_container(gave_up, timeout=30)
    rm = restart.RestartManager(rt.containers)
    assert rm.handle_exit(gave_up) is not None                # its one retry ...
    time.sleep(0.2)
    assert rm.tick() == [gave_up]
    rt.wait_container(gave_up, timeout=30)                    # ... failed too: on-failure:1 gave up
    assert rt.inspect_container(gave_up).restart_count == 1
    ids = {}
    for name, pol in (("a", "always"), ("u", "unless-stopped"), ("n", "no")):
        ids[name] = rt.create_container(_cfg(image, name, "sleep", "1000", restart=base.RestartPolicy(pol)))
        rt.start_container(ids[name])
        rt.stop_container(ids[name], timeout=0)
    cid = rt.create_container(_cfg(image, "u2", "sh", "-c", "exit 1", restart=base.RestartPolicy("unless-stopped")))
    rt.start_container(cid)
    rt.wait_container(cid, timeout=30)                        # died, not stopped by hand
    killed = rt.create_container(_cfg(image, "k", "sleep", "1000", restart=base.RestartPolicy("unless-stopped")))
    rt.start_container(killed)
    rt.kill_container(killed, "KILL")                         # Docker: a kill is a stop by hand
    # on-failure (the planner's rule too, and Docker's at daemon start): a failure runs again,
    # a clean exit or a policy that gave up does not
    failed, clean = (rt.create_container(_cfg(image, n, "sh", "-c", f"exit {code}",
                                              restart=base.RestartPolicy("on-failure")))
                     for n, code in (("f1", 1), ("f0", 0)))
    for c in (failed, clean):
        rt.start_container(c)
        rt.wait_container(c, timeout=30)
    started = restart.RestartManager(rt.containers).boot()
    assert sorted(started) == sorted([ids["a"], cid, failed])


def test_health_failures_in_start_period_do_not_count(native: tuple[NativeRuntime, str]) -> None:
    rt, image = native
    hc = base.Healthcheck(test=("CMD", "false"), interval=1, timeout=5, retries=1, start_period=3600)
    cid = rt.create_container(_cfg(image, "grace", "sleep", "1000", healthcheck=hc))
    rt.start_container(cid)
    checker = health.HealthChecker(rt.containers)
    assert checker.probe(cid) == "starting"
    assert checker.probe(cid) == "starting"
    doc = rt.inspect_document(cid)["State"]["Health"]
    assert doc["FailingStreak"] == 0
    assert [e["ExitCode"] for e in doc["Log"]] == [1, 1]


def test_health_timeout_counts_as_failure(native: tuple[NativeRuntime, str]) -> None:
    rt, image = native
    hc = base.Healthcheck(test=("CMD-SHELL", "sleep 10"), interval=1, timeout=0.5, retries=1)
    cid = rt.create_container(_cfg(image, "slowcheck", "sleep", "1000", healthcheck=hc))
    rt.start_container(cid)
    assert health.HealthChecker(rt.containers).probe(cid) == "unhealthy"
    assert "timeout" in rt.inspect_document(cid)["State"]["Health"]["Log"][-1]["Output"]



def test_log_size_cap_keeps_the_newest_lines(tmp_path: Path, busybox_image: str) -> None:
    rt, image = make_native(tmp_path, busybox_image, log_size_max=4096)
    try:
        cid = rt.create_container(_cfg(image, "chatty", "sh", "-c",
                                       "for i in $(seq 300); do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxx; done"))
        rt.start_container(cid)
        rt.wait_container(cid, timeout=30)
        assert rt.containers.paths(cid).log.stat().st_size <= 4096
        lines = [ln.data.decode() for ln in rt.logs(cid)]
        assert lines[-1] == "line-300-xxxxxxxxxxxxxxxxxxxxxxxx"
        assert "line-1-xxxxxxxxxxxxxxxxxxxxxxxx" not in lines
    finally:
        cleanup(rt)
        assert leftovers(rt.config) == []
        rt.close()


def test_parallel_create_start_remove(native: tuple[NativeRuntime, str]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    rt, image = native

    def one(i: int) -> str:
        cid = rt.create_container(_cfg(image, f"par{i}", "sleep", "1000"))
        rt.start_container(cid)
        return cid

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(one, range(12)))
    assert {c.status for c in rt.list_containers()} == {base.ContainerStatus.RUNNING}
    assert len(set(ids)) == 12
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda cid: rt.remove_container(cid, force=True), ids))
    assert rt.list_containers() == []


def test_restart_tick_survives_a_container_removed_after_the_listing(native: tuple[NativeRuntime, str]) -> None:
    rt, image = native

    class RemovedAfterListing:
        """The engine as a concurrent `rm` makes it: an exited container goes right after the listing."""

        def __getattr__(self, attr: str) -> object:
            return getattr(rt.containers, attr)

        def records(self, selector: object = None) -> list[object]:
            recs = rt.containers.records()
            for r in recs:
                rt.containers.remove(r.id, force=True)
            return list(recs)

    cid = rt.create_container(_cfg(image, "gone", "sh", "-c", "exit 1", restart=base.RestartPolicy("always")))
    rt.start_container(cid)
    rt.wait_container(cid, timeout=30)
    rm = restart.RestartManager(RemovedAfterListing())  # type: ignore[arg-type]
    assert rm.tick() == []                                    # no NotFound out of the watch loop
    assert rm.next_due() is None
    with pytest.raises(rterrors.NotFound):
        rt.inspect_container(cid)


@pytest.mark.parametrize("how", ["stop", "kill TERM", "kill 9"])
def test_a_paused_container_gets_its_signal_and_is_thawed(native: tuple[NativeRuntime, str], how: str) -> None:
    """As Docker does: a signal to a paused container is followed by its thaw, so a stop ends it
    at once when it handles the signal (a frozen one acts on none: the stop waited its whole
    timeout, then a SIGKILL that a v1 freezer also holds until the thaw)."""
    rt, img = native
    rt.create_container(_cfg(img, "frozen", "sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done",
                             stop_timeout=20.0))
    rt.start_container("frozen")
    time.sleep(0.3)                             # the trap is set
    rt.containers.pause("frozen")
    assert rt.containers.get("frozen").is_paused()
    started = time.monotonic()
    if how == "stop":
        rt.stop_container("frozen")
    else:
        rt.containers.kill("frozen", 9 if how == "kill 9" else "TERM")
        assert rt.containers.wait("frozen", timeout=10) == (137 if how == "kill 9" else 0)
    took = time.monotonic() - started
    rec = rt.containers.get("frozen")
    assert rec.status == "exited"
    assert rec.exit_code == (137 if how == "kill 9" else 0)   # its own TERM handler ran
    assert not rec.is_paused()
    assert not rec.paused
    assert took < 8, f"took {took:.1f}s"


@pytest.mark.parametrize("tty", [False, True])
def test_an_exec_that_times_out_leaves_no_files(native: tuple[NativeRuntime, str], tty: bool) -> None:
    """A timed exec (a healthcheck probe) that outlives its timeout is killed, and its process
    spec (which holds the container's environment), pid file and runtime log go with it, as when it
    ends: a hung healthcheck must not add files to /run at each interval."""
    from reconciler.runtime.native.containers import execs

    rt, image = native
    cid = rt.create_container(_cfg(image, "hang", "sleep", "600"))
    rt.start_container(cid)
    spool = rt.config.run_dir / "conmon"
    before = sorted(p.name for p in spool.glob("exec-*")) if spool.is_dir() else []
    with pytest.raises(TimeoutError):
        execs.run(rt.containers, cid, ["sleep", "30"], tty=tty, timeout=0.5, until_exit=False)
    assert sorted(p.name for p in spool.glob("exec-*")) == before
    assert rt.exec(cid, ["true"]).exit_code == 0        # and the container is none the worse
