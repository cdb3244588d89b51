"""DockerRuntime containers against the host's real dockerd: lifecycle, config, logs, exec."""

from __future__ import annotations

import ipaddress
import os
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.runtime import base, errors
from reconciler.runtime.docker import DockerRuntime, api
from reconciler.runtime.docker.backend import container_state
from tests.docker.conftest import Engine, PulledImage, Scope, rand
from tests.helpers import images
from tests.helpers.registry import RegistryServer

pytestmark = [pytest.mark.docker, pytest.mark.registry]


def make(scope: Scope, image: PulledImage, suffix: str, args: list[str] | None, **kw: Any) -> str:
    name = scope.name("containers", suffix)
    labels = {**scope.labels, **kw.pop("labels", {})}
    scope.runtime.create_container(base.ContainerConfig(
        name=name, image=image.ref, args=tuple(args) if args is not None else None,
        labels=labels, **kw))
    return name


def run(scope: Scope, image: PulledImage, suffix: str, script: str, **kw: Any) -> str:
    name = make(scope, image, suffix, ["sh", "-c", script], **kw)
    scope.runtime.start_container(name)
    return name


def stdout(rt: DockerRuntime, name: str) -> list[str]:
    return [ln.data.decode() for ln in rt.logs(name) if ln.stream == "stdout"]


def until(pred: Any, what: str, limit: float = 60.0) -> None:
    """Poll a condition (not a timing assertion: the limit only bounds a hung engine)."""
    deadline = time.monotonic() + limit
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def test_lifecycle_and_exit_codes(engine: Engine) -> None:
    docker, docker_image, scope = engine.rt, engine.image, engine.scope
    three = make(scope, docker_image, "three", ["sh", "-c", "exit 3"])
    created = docker.inspect_container(three)
    assert created.status == base.ContainerStatus.CREATED
    assert created.exit_code is None
    assert created.started_at is None
    assert created.name == three
    assert created.image == docker_image.ref
    assert created.image_id == docker.inspect_image(docker_image.ref).id
    assert created.labels == scope.labels
    docker.start_container(three)
    assert docker.wait_container(three) == 3
    done = docker.inspect_container(three)
    assert done.status == base.ContainerStatus.EXITED
    assert done.exit_code == 3
    assert done.finished_at is not None
    assert done.pid is None

    sleeper = run(scope, docker_image, "sleep", "sleep 600")
    state = docker.inspect_container(sleeper)
    assert state.status == base.ContainerStatus.RUNNING
    assert state.pid
    docker.start_container(sleeper)    # already running: a no-op, as the protocol wants
    docker.kill_container(sleeper)
    assert docker.wait_container(sleeper) == 137
    assert docker.inspect_container(sleeper).exit_code == 137
    with pytest.raises(errors.Conflict):
        docker.kill_container(sleeper)   # not running

    # stop: sh as pid 1 ignores SIGTERM, so the engine kills it after the timeout
    docker.start_container(sleeper)
    docker.stop_container(sleeper, timeout=0)
    assert docker.inspect_container(sleeper).status == base.ContainerStatus.EXITED
    docker.stop_container(sleeper, timeout=0)   # already stopped: no-op

    listed = {c.name for c in docker.list_containers(scope.labels)}
    assert listed == {three, sleeper}
    docker.remove_container(three)
    with pytest.raises(errors.NotFound):
        docker.inspect_container(three)
    with pytest.raises(errors.NotFound):
        docker.remove_container(three)


def test_wait_timeout_on_running_container(engine: Engine) -> None:
    docker, docker_image, scope = engine.rt, engine.image, engine.scope
    name = run(scope, docker_image, "w", "sleep 600")
    with pytest.raises(errors.Unavailable):   # as the native engine does
        docker.wait_container(name, timeout=0.5)
    assert docker.inspect_container(name).status == base.ContainerStatus.RUNNING


def test_env_user_workdir_hostname(engine: Engine) -> None:
    docker, docker_image, scope = engine.rt, engine.image, engine.scope
    name = run(scope, docker_image, "env", 'echo "$FOO|$BAR"; id -u; id -g; pwd; hostname',
               env={"FOO": "foo value", "BAR": "b=r"}, user="1000:1000", workdir="/home/app",
               hostname="myhost")
    assert docker.wait_container(name) == 0
    assert stdout(docker, name) == ["foo value|b=r", "1000", "1000", "/home/app", "myhost"]


def test_entrypoint_overrides_image_cmd(engine: Engine) -> None:
    docker, docker_image, scope = engine.rt, engine.image, engine.scope
    # command= replaces the Entrypoint and, as in Docker, drops the image's Cmd
    name = make(scope, docker_image, "ep", None, command=("echo", "from-entrypoint"))
    docker.start_container(name)
    assert docker.wait_container(name) == 0
    assert stdout(docker, name) == ["from-entrypoint"]
    both = make(scope, docker_image, "epargs", ["a", "b"], command=("echo",))
    docker.start_container(both)
    docker.wait_container(both)
    assert stdout(docker, both) == ["a b"]


def test_logs_streams_tail_since_follow(engine: Engine) -> None:
    docker, docker_image, scope = engine.rt, engine.image, engine.scope
    name = run(scope, docker_image, "logs", "echo one; echo two >&2; echo three; printf 'no-newline'")
    docker.wait_container(name)
    lines = list(docker.logs(name))
    # the engine copies stdout and stderr separately, so only the order within a stream holds
    assert [ln.data for ln in lines if ln.stream == "stdout"] == [b"one", b"three", b"no-newline"]
    assert [ln.data for ln in lines if ln.stream == "stderr"] == [b"two"]
    assert all(len(ln.time.split(".")[1]) == 10 and ln.time.endswith("Z") for ln in lines)
    assert len(list(docker.logs(name, tail=2))) == 2      # tail counts both streams
    assert [ln.data for ln in docker.logs(name, tail=0)] == []
    out = [ln for ln in lines if ln.stream == "stdout"]
    since = [ln.data for ln in docker.logs(name, since=out[1].time) if ln.stream == "stdout"]
    if engine.kind == "podman":    # podman cuts `since` to whole seconds
        assert since[-2:] == [b"three", b"no-newline"]
    else:
        assert since == [b"three", b"no-newline"]
    assert list(docker.logs(name, since="2999-01-01T00:00:00Z")) == []

    # follow: lines arrive while the container runs and the iterator ends when it exits
    slow = run(scope, docker_image, "follow", "echo start; sleep 1; echo end")
    assert [ln.data for ln in docker.logs(slow, follow=True)] == [b"start", b"end"]


def test_long_lines_are_reassembled(engine: Engine) -> None:
    docker, docker_image, scope = engine.rt, engine.image, engine.scope
    # json-file splits lines over 16 KiB into partial messages; logs() joins them again
    name = run(scope, docker_image, "long", "head -c 40000 /dev/zero | tr '\\0' x; echo; echo after")
    docker.wait_container(name)
    assert [ln.data for ln in docker.logs(name)] == [b"x" * 40000, b"after"]


def test_exec(engine: Engine) -> None:
    docker, docker_image, scope = engine.rt, engine.image, engine.scope
    name = run(scope, docker_image, "exec", "sleep 600")
    res = docker.exec(name, ["sh", "-c", "echo out; echo err >&2; exit 5"])
    assert res == base.ExecResult(exit_code=5, stdout=b"out\n", stderr=b"err\n")
    assert docker.exec(name, ["cat", "/proc/1/cmdline"]).stdout == b"sleep\x00600\x00"   # sh exec'd its last command
    big = docker.exec(name, ["sh", "-c", "head -c 200000 /dev/zero"])
    assert big.exit_code == 0
    assert big.stdout == b"\0" * 200000
    tty = docker.exec(name, ["echo", "hi"], tty=True)
    assert tty.exit_code == 0
    assert tty.stdout == b"hi\r\n"
    docker.kill_container(name)
    docker.wait_container(name)
    with pytest.raises(errors.Conflict):
        docker.exec(name, ["true"])


def test_healthcheck_healthy_and_unhealthy(docker: DockerRuntime, docker_image: PulledImage, scope: Scope) -> None:
    def hc(*test: str) -> base.Healthcheck:
        return base.Healthcheck(test=test, interval=0.2, timeout=5.0, retries=1)

    good = run(scope, docker_image, "good", "touch /tmp/ok; sleep 600", healthcheck=hc("CMD", "test", "-e", "/tmp/ok"))
    bad = run(scope, docker_image, "bad", "sleep 600", healthcheck=hc("CMD-SHELL", "exit 1"))
    plain = run(scope, docker_image, "plain", "sleep 600")
    until(lambda: docker.inspect_container(good).health == "healthy", "healthy")
    until(lambda: docker.inspect_container(bad).health == "unhealthy", "unhealthy")
    assert docker.inspect_container(plain).health is None


def test_published_port_is_reachable(docker: DockerRuntime, docker_image: PulledImage, scope: Scope) -> None:
    from tests.helpers.ports import publish_port
    from tests.helpers.registry import wait_http

    port = publish_port()
    name = run(scope, docker_image, "web", "mkdir -p /www && echo hello-port > /www/index.html && httpd -f -p 8080 -h /www",
               ports=(base.PortMapping(8080, port, host_ip="127.0.0.1"),))
    assert docker.inspect_container(name).ports == (base.PortMapping(8080, port, "tcp", "127.0.0.1"),)
    wait_http("127.0.0.1", port, "/index.html", timeout=30)
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10) as resp:
        assert resp.read() == b"hello-port\n"


def test_a_port_without_a_host_port_is_published_on_one_the_engine_chooses(engine: Engine) -> None:
    """Host port 0 goes as HostPort "": Docker and Podman choose the port; inspect reads back their choice."""
    import urllib.request

    rt, scope = engine.rt, engine.scope
    name = run(scope, engine.image, "web", "mkdir -p /www && echo hello-chosen > /www/index.html && httpd -f -p 8080 -h /www",
               ports=(base.PortMapping(8080, 0, host_ip="127.0.0.1"),))
    [port] = rt.inspect_container(name).ports
    assert (port.container_port, port.protocol, port.host_ip) == (8080, "tcp", "127.0.0.1")
    assert port.host_port not in (0, 8080)

    def answered() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port.host_port}/index.html", timeout=3) as resp:
                return bool(resp.read() == b"hello-chosen\n")
        except OSError:
            return False
    until(answered, f"an answer on the chosen port {port.host_port}", limit=30)


def test_a_container_joining_anothers_network_reaches_it_on_loopback(engine: Engine) -> None:
    """compose's `network_mode: service:web`: `networks: [container:WEB]` is HostConfig.NetworkMode
    container:WEB, so the sidecar shares web's namespace and reaches its server on 127.0.0.1."""
    docker, docker_image, scope = engine.rt, engine.image, engine.scope
    web = run(scope, docker_image, "web", "mkdir -p /srv && echo joined > /srv/index.html && exec httpd -f -p 8000 -h /srv")
    sidecar = run(scope, docker_image, "sidecar", "sleep 600", networks=(f"container:{web}",))
    web_id = docker.inspect_container(web).id
    assert docker.api.container_inspect(sidecar)["HostConfig"]["NetworkMode"] == f"container:{web_id}"

    def answered() -> bool:
        res = docker.exec(sidecar, ["timeout", "3", "wget", "-qO-", "http://127.0.0.1:8000/"])
        return (res.exit_code, res.stdout) == (0, b"joined\n")
    try:
        until(answered, "web's server on the sidecar's loopback")
    finally:
        docker.remove_container(sidecar, force=True)      # first: Podman keeps web while a container joins it


def test_volume_survives_recreation(engine: Engine) -> None:
    docker, docker_image, scope = engine.rt, engine.image, engine.scope
    vol = scope.name("volumes", "data")
    state = docker.ensure_volume(base.VolumeConfig(vol, labels=scope.labels))
    assert state.name == vol
    assert state.labels == scope.labels
    assert state.mountpoint
    assert docker.ensure_volume(base.VolumeConfig(vol, labels=scope.labels)) == state
    with pytest.raises(errors.Conflict):
        docker.ensure_volume(base.VolumeConfig(vol, labels={"other": "x"}))
    mount = (base.Mount("volume", "/data", vol),)
    first = run(scope, docker_image, "v1", "echo kept > /data/file", mounts=mount)
    assert docker.wait_container(first) == 0
    docker.remove_container(first)
    second = run(scope, docker_image, "v2", "cat /data/file", mounts=mount)
    assert docker.wait_container(second) == 0
    assert stdout(docker, second) == ["kept"]
    assert [v.name for v in docker.list_volumes(scope.labels)] == [vol]
    with pytest.raises(errors.Conflict):
        docker.remove_volume(vol)    # still used by `second`
    docker.remove_container(second)
    docker.remove_volume(vol)
    with pytest.raises(errors.NotFound):
        docker.remove_volume(vol)


def test_bind_tmpfs_readonly_caps(docker: DockerRuntime, docker_image: PulledImage, scope: Scope, tmp_path: Any) -> None:
    (tmp_path / "in.txt").write_text("from-host\n")
    caps = "touch /scratch/c; chown 1000 /scratch/c 2>/dev/null && echo can-chown || echo no-chown; " \
           "hostname other 2>/dev/null && echo can-sethostname || echo no-sethostname"
    name = run(
        scope, docker_image, "ro",
        "cat /host/in.txt; touch /rootfile 2>/dev/null && echo rw || echo ro; "
        "echo t > /scratch/f && grep -c /scratch /proc/mounts; touch /host/x 2>/dev/null || echo host-ro; "
        + caps,
        mounts=(base.Mount("bind", "/host", str(tmp_path), read_only=True),
                base.Mount("tmpfs", "/scratch", options=("size=1m", "mode=1777"))),
        read_only=True, cap_drop=("CHOWN",))
    assert docker.wait_container(name) == 0
    assert stdout(docker, name) == ["from-host", "ro", "1", "host-ro", "no-chown", "no-sethostname"]
    # the defaults, and an added capability
    added = run(scope, docker_image, "caps", "mkdir /scratch; " + caps, cap_add=("SYS_ADMIN",))
    assert docker.wait_container(added) == 0
    assert stdout(docker, added) == ["can-chown", "can-sethostname"]


def test_resources_restart_stop_signal_init(docker: DockerRuntime, docker_image: PulledImage, scope: Scope) -> None:
    name = run(scope, docker_image, "res", "sleep 600",
               resources=base.Resources(memory=64 << 20, cpus=0.5, pids=50),
               restart=base.RestartPolicy("on-failure", 2), stop_signal="SIGUSR1", stop_timeout=7,
               init=True)
    raw = docker.api.container_inspect(name)
    host = raw["HostConfig"]
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (64 << 20, 500_000_000, 50)
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert (raw["Config"]["StopSignal"], raw["Config"]["StopTimeout"], host["Init"]) == ("SIGUSR1", 7, True)
    # observable inside: the memory limit, and an init process as pid 1
    mem = docker.exec(name, ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]).stdout
    if not mem:
        mem = docker.exec(name, ["cat", "/sys/fs/cgroup/memory.max"]).stdout
    assert int(mem) == 64 << 20
    assert docker.exec(name, ["cat", "/proc/1/cmdline"]).stdout.split(b"\0")[0].endswith(b"init")


def test_restart_policy_counts_restarts(docker: DockerRuntime, docker_image: PulledImage, scope: Scope) -> None:
    name = run(scope, docker_image, "crash", "exit 1", restart=base.RestartPolicy("on-failure", 2))
    until(lambda: docker.inspect_container(name).restart_count == 2
          and docker.inspect_container(name).status == base.ContainerStatus.EXITED, "two restarts")
    state = docker.inspect_container(name)
    assert state.exit_code == 1
    assert not state.manually_stopped
    always = run(scope, docker_image, "always", "sleep 600", restart=base.RestartPolicy("always"))
    docker.stop_container(always, timeout=0)
    assert docker.inspect_container(always).manually_stopped
    # on-failure stopped by hand: exit 137 and retries left, yet Docker did not restart it
    retry = run(scope, docker_image, "retry", "sleep 600", restart=base.RestartPolicy("on-failure"))
    docker.stop_container(retry, timeout=0)
    state = docker.inspect_container(retry)
    assert (state.status, state.exit_code) == (base.ContainerStatus.EXITED, 137)
    assert state.manually_stopped


def test_error_mapping(engine: Engine) -> None:
    docker, docker_image, scope = engine.rt, engine.image, engine.scope
    missing = scope.prefix + "-missing"
    for call in (docker.inspect_container, docker.start_container, docker.remove_container,
                 docker.stop_container, docker.kill_container, docker.logs):
        with pytest.raises(errors.NotFound):
            call(missing)
    name = make(scope, docker_image, "dup", ["true"])
    with pytest.raises(errors.AlreadyExists):
        make(scope, docker_image, "dup", ["true"])
    running = run(scope, docker_image, "busy", "sleep 600")
    with pytest.raises(errors.Conflict):
        docker.remove_container(running)
    docker.remove_container(running, force=True)
    with pytest.raises(errors.InvalidArgument):   # server-side: a relative mount target
        make(scope, docker_image, "bad", ["true"], mounts=(base.Mount("tmpfs", "relative"),))
    with pytest.raises(errors.InvalidArgument):   # client-side: caught before the engine
        make(scope, docker_image, "bad2", ["true"], ports=(base.PortMapping(80, 0, "icmp"),))
    with pytest.raises(errors.NotFound):
        docker.create_container(base.ContainerConfig(
            name=scope.name("containers", "noimg"), image=f"{docker_image.ref}-absent", labels=scope.labels))
    with pytest.raises(errors.Conflict):   # by id (never just an untag): used by a container
        docker.remove_image(docker.inspect_image(docker_image.ref).id)
    assert docker.inspect_container(name).status == base.ContainerStatus.CREATED


def test_unavailable_engine(tmp_path: Any) -> None:
    rt = DockerRuntime(str(tmp_path / "no.sock"))
    try:
        with pytest.raises(errors.Unavailable) as info:
            rt.list_containers()
        assert "no.sock" in str(info.value)
    finally:
        rt.close()


def test_list_containers_by_selector(docker: DockerRuntime, docker_image: PulledImage, scope: Scope) -> None:
    names = {make(scope, docker_image, f"l{i}", ["true"], labels={"tier": "a"}) for i in range(6)}
    other = make(scope, docker_image, "other", ["true"], labels={"tier": "b"})
    listed = docker.list_containers({**scope.labels, "tier": "a"})
    assert {c.name for c in listed} == names
    assert all(c.status == base.ContainerStatus.CREATED for c in listed)
    assert {c.name for c in docker.list_containers(scope.labels)} == names | {other}
    images = docker.list_images()
    assert docker.inspect_image(docker_image.ref).id in {i.id for i in images}


def test_a_volume_is_made_with_its_driver_options(engine: Engine) -> None:
    docker, docker_image, scope = engine.rt, engine.image, engine.scope
    vol = scope.name("volumes", "scratch")
    opts = {"type": "tmpfs", "device": "tmpfs", "o": "nr_inodes=777"}     # (podman takes size= for a quota)
    docker.ensure_volume(base.VolumeConfig(vol, labels=scope.labels, driver_opts=opts))
    assert docker.api.volume_inspect(vol)["Options"] == opts
    name = run(scope, docker_image, "scratch", "grep ' /scratch ' /proc/mounts", mounts=(base.Mount("volume", "/scratch", vol),))
    assert docker.wait_container(name) == 0
    (line,) = stdout(docker, name)
    assert line.split()[2] == "tmpfs"
    assert "nr_inodes=777" in line


def test_fixed_addresses_on_the_first_and_a_second_network(engine: Engine) -> None:
    """`networks: [{name, ipv4Address}]` (#16): the address asked for, on the network given at
    create and on one connected after it, on dockerd and on Podman alike."""
    docker, docker_image, scope = engine.rt, engine.image, engine.scope
    first, second = scope.name("networks", "fixa"), scope.name("networks", "fixb")
    subnets = {first: ipaddress.IPv4Network(scope.subnet()), second: ipaddress.IPv4Network(scope.subnet())}
    for net, subnet in subnets.items():
        docker.ensure_network(base.NetworkConfig(net, subnet=str(subnet), internal=True, labels=scope.labels))
    want = {net: str(subnet.network_address + 42) for net, subnet in subnets.items()}
    name = run(scope, docker_image, "fixed", "sleep 600", networks=(first, second), ipv4_addresses=want)
    assert docker.inspect_container(name).ip_addresses == want


def test_a_healthcheck_without_test_runs_the_images_with_its_timings(
        engine: Engine, registry: RegistryServer, tmp_path: Path) -> None:
    """The image checks every hour; the container keeps its test and checks every 0.2 s. dockerd
    merges them itself; Podman 4.3 would make a container with no healthcheck at all (the image's
    dropped too), so its backend sends the merged one. An image without HEALTHCHECK: none."""
    images.write_layout(tmp_path / "layout", [images.busybox_layer()], config={
        "Cmd": ["/bin/sh"], "Env": ["PATH=/bin"],
        "Healthcheck": {"Test": ["CMD-SHELL", "test -f /tmp/ready"], "Interval": 3600 * 10**9,
                        "Timeout": 7 * 10**9, "Retries": 5}})
    ref = f"{registry.host}/dockertest-{rand(6)}/hc:latest"
    images.push_layout(tmp_path / "layout", ref, fmt="v2s2")   # Podman reads no HEALTHCHECK of an OCI image
    rt, scope = engine.rt, engine.scope
    rt.pull_image(ref)
    scope.images.append(ref)
    timings = base.Healthcheck((), interval=0.2, timeout=0, retries=0, start_period=0)
    name = run(scope, PulledImage(ref, ""), "inherit", "touch /tmp/ready; sleep 600", healthcheck=timings,
               networks=("none",))
    assert rt.api.container_inspect(name)["Config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", "test -f /tmp/ready"], "Interval": 200_000_000, "Timeout": 7 * 10**9, "Retries": 5}
    if engine.kind == "docker":                 # Podman's checks run from the session's loop (podman.py)
        until(lambda: rt.inspect_container(name).health == "healthy", "healthy at the container's interval", 30)
    assert rt.inspect_container(name).first_probe == 0.2
    none = run(scope, engine.image, "none", "sleep 600", healthcheck=timings, networks=("none",))
    assert rt.inspect_container(none).health is None          # an image without HEALTHCHECK: none, as Docker


def test_a_start_interval_is_refused_by_an_engine_without_it(engine: Engine) -> None:
    """Docker 20.10 (API 1.41) and Podman 4.3 drop StartInterval without a word: refused, nothing made."""
    rt, scope = engine.rt, engine.scope
    if api.at_least(str(rt.api.version().get("ApiVersion")), "1.44"):
        pytest.skip("this engine has start intervals")
    hc = base.Healthcheck(("CMD", "true"), interval=60, start_period=60, start_interval=0.5)
    with pytest.raises(errors.InvalidArgument, match=r"healthcheck.startInterval needs Engine API 1.44 \(Docker 25"):
        make(scope, engine.image, "quick", ["sleep", "600"], healthcheck=hc, networks=("none",))
    assert rt.list_containers(scope.labels) == []


def attached_run(rt: DockerRuntime, name: str, image: str) -> tuple[dict[str, list[tuple[bytes, bool]]], int]:
    """A container started attached (`started_attached`, `reconcile run` in the foreground): its
    output by stream as (bytes, newline) and its exit code; removed after."""
    cid = rt.create_container(base.ContainerConfig(
        name=name, image=image, args=("sh", "-c", "echo out; echo err >&2; printf more; exit 3"), networks=("none",)))
    try:
        got: dict[str, list[tuple[bytes, bool]]] = {"stdout": [], "stderr": []}
        with rt.started_attached(cid) as lines:
            for line in lines:
                got[line.stream].append((line.data, line.newline))
        return got, rt.wait_container(cid)
    finally:
        rt.remove_container(cid, force=True)


def test_a_run_attached_before_its_start_gets_every_byte_and_its_exit_code(
        scope: Scope, docker_image: PulledImage) -> None:
    """Every run, the last bytes too (written without a newline: a logs follow can end before
    dockerd logs them, seen under load), as `docker run` prints them."""
    for i in range(5):
        got, code = attached_run(scope.runtime, scope.name("containers", f"attached{i}"), docker_image.ref)
        assert got == {"stdout": [(b"out", True), (b"more", False)], "stderr": [(b"err", True)]}, i
        assert code == 3


def test_a_stale_bind_is_looked_for_only_through_the_containers_own_process(engine: Engine, tmp_path: Path) -> None:
    """The pid an engine reports names the container's process only when the engine runs here,
    in this pid namespace; an engine elsewhere (a TCP or forwarded socket) reports a pid that is
    some other process here, whose root is not the container's: it is not looked into (the
    process's cgroup must name the container), else its files would be taken for the container's."""
    conf, decoy = tmp_path / "app.conf", tmp_path / "decoy.conf"
    conf.write_text("v1\n")
    decoy.write_text("a host file at the bind's target\n")
    name = make(engine.scope, engine.image, "stalebind", ["sleep", "1000"],
                mounts=(base.Mount(type="bind", source=str(conf), target=str(decoy)),))
    engine.rt.start_container(name)
    attrs = engine.rt.api.container_inspect(name)
    assert container_state(attrs).stale_binds == ()
    (tmp_path / "app.conf.new").write_text("v2\n")
    (tmp_path / "app.conf.new").rename(conf)                   # as an editor saves
    attrs = engine.rt.api.container_inspect(name)
    assert container_state(attrs).stale_binds == (str(conf),)
    elsewhere = {**attrs, "State": {**attrs["State"], "Pid": os.getpid()}}     # here, a process of this test
    assert container_state(elsewhere).stale_binds == ()
