"""What a container made through the Engine API does after its create, as on dockerd 20.10 (docker
CLI 28, docker-py 7): AutoRemove is the container's own (the engine that watches its exit removes
it, also after the Engine API was restarted), a detached `docker run` leaves no server thread
behind, `docker build -q` prints the image id, `--entrypoint ""`, `-P`/`--expose`, `-e NAME`
without a value, and the words of dockerd's errors."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.test_engine_api import REPO, docker, engine_args, request
from tests.api.test_engine_api import pytestmark as pytestmark  # root, registry, docker CLI
from tests.helpers.host import Host


@contextlib.contextmanager
def serving(host: Host, tmp_path: Path, name: str = "docker.sock") -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`reconcile engine-api` on the test's engine, as the `engine_api` fixture; its socket and process."""
    sock = tmp_path / name
    with (tmp_path / f"{name}.log").open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "reconciler", "engine-api", "--socket", str(sock),
                                 *engine_args(host)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert proc.poll() is None, (tmp_path / f"{name}.log").read_text()
            assert time.monotonic() < deadline, "the engine API did not start"
            time.sleep(0.05)
        yield str(sock), proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _until(what: str, check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():           # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _names(sock: str) -> list[str]:
    return docker(sock, "ps", "-a", "--format", "{{.Names}}").stdout.split()


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_auto_remove_is_the_containers_own_and_survives_an_engine_api_restart(
        host: Host, tmp_path: Path, busybox_image: str) -> None:
    docker_py = pytest.importorskip("docker")
    with serving(host, tmp_path) as (sock, _):
        docker(sock, "pull", busybox_image)
        # docker-py: run(detach=True, auto_remove=True) sends no wait: the engine removes it at its exit
        client = docker_py.DockerClient(base_url=f"unix://{sock}", version="1.41")
        try:
            c = client.containers.run(busybox_image, ["sleep", "0.5"], name="pyrm", network_mode="none",
                                      detach=True, auto_remove=True)
            assert c.attrs["HostConfig"]["AutoRemove"] is True
            _until("docker-py's auto_remove container removed at its exit", lambda: "pyrm" not in _names(sock))
            client.containers.run(busybox_image, ["true"], name="pyrm", network_mode="none", detach=True,
                                  auto_remove=True)        # its name is free again
            _until("the second one removed too", lambda: "pyrm" not in _names(sock))
            # dockerd refuses a restart policy with AutoRemove, at create (400) and at update (409)
            with pytest.raises(docker_py.errors.APIError) as refused:
                client.api.create_container(busybox_image, ["true"], host_config=client.api.create_host_config(
                    auto_remove=True, restart_policy={"Name": "always"}, network_mode="none"))
            assert refused.value.status_code == 400
            assert "can't create 'AutoRemove' container with restart policy" in str(refused.value)
        finally:
            client.close()
        # docker create --rm + docker start: removed at its exit, with no client waiting
        docker(sock, "create", "--rm", "--name", "later", "--network", "none", busybox_image, "sleep", "0.5")
        assert docker(sock, "inspect", "-f", "{{.HostConfig.AutoRemove}}", "later").stdout.strip() == "true"
        update = docker(sock, "update", "--restart", "always", "later", check=False)
        assert update.returncode != 0
        assert "Restart policy cannot be updated because AutoRemove is enabled for the container" in update.stderr
        docker(sock, "start", "later")
        _until("create --rm + start removed at its exit", lambda: "later" not in _names(sock))
        # a restart by hand is no exit of its own: the --rm container runs again, as dockerd's
        docker(sock, "run", "-d", "--rm", "--name", "again", "--network", "none", busybox_image, "sleep", "60")
        for _ in range(3):
            docker(sock, "restart", "-t", "0", "again")
            time.sleep(0.5)                 # the watch has seen the stop's exit by now
            assert docker(sock, "inspect", "-f", "{{.State.Status}}", "again").stdout.strip() == "running"
        docker(sock, "rm", "-f", "again")
        # recorded, not remembered: one that exits while no engine runs is removed at the next start
        docker(sock, "run", "-d", "--rm", "--name", "orphan", "--network", "none", busybox_image, "sleep", "2")
        assert _names(sock) == ["orphan"]
    time.sleep(3)               # it exited meanwhile, with no engine to see it
    with serving(host, tmp_path) as (sock, _):
        _until("an AutoRemove container that exited unwatched removed at engine start",
               lambda: _names(sock) == [], timeout=10)
        fg = docker(sock, "run", "--rm", "--network", "none", busybox_image, "sh", "-c", "exit 3", check=False)
        assert fg.returncode == 3               # the exit code, though the engine removed it meanwhile
        assert _names(sock) == []
        # one whose start fails is removed too, as dockerd removes it
        bad = docker(sock, "run", "--rm", "--name", "nostart", "--network", "none", busybox_image, "/nonexistent",
                     check=False)
        assert bad.returncode != 0
        assert "/nonexistent" in bad.stderr
        assert _names(sock) == []


def test_a_detached_run_leaves_no_thread_waiting_for_its_exit(host: Host, tmp_path: Path,
                                                              busybox_image: str) -> None:
    with serving(host, tmp_path) as (sock, proc):
        docker(sock, "pull", busybox_image)
        docker(sock, "run", "--rm", "--network", "none", busybox_image, "true")    # every part loaded once
        time.sleep(1)
        idle = _threads(proc.pid)
        before = _cpu(proc.pid)
        time.sleep(3)
        idle_cpu = _cpu(proc.pid) - before
        for i in range(5):
            docker(sock, "run", "-d", "--name", f"bg{i}", "--network", "none", busybox_image, "sleep", "3600")
        # the CLI sends `wait` before the start and closes it once detached: its thread ends
        _until(f"the engine API's threads back to {idle}", lambda: _threads(proc.pid) <= idle, timeout=5)
        before = _cpu(proc.pid)
        time.sleep(3)
        busy_cpu = _cpu(proc.pid) - before
        # nothing polls for the 5 of them (a thread each polling every 0.1 s cost 0.12 s here)
        assert busy_cpu <= idle_cpu + 0.06, (idle_cpu, busy_cpu)
        # a client that waits is answered at the exit, by the exit's event (no poll between)
        started = time.monotonic()
        docker(sock, "stop", "-t", "0", "bg0")
        assert docker(sock, "wait", "bg0").stdout.strip() == "137"
        waiter = subprocess.Popen(["docker", "wait", "bg1"], stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, "DOCKER_HOST": f"unix://{sock}"})
        time.sleep(1)
        docker(sock, "kill", "bg1")
        out, _ = waiter.communicate(timeout=20)
        assert out.strip() == "137"
        assert time.monotonic() - started < 20
        docker(sock, "rm", "-f", *(f"bg{i}" for i in range(5)))


def _build(sock: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}", "DOCKER_BUILDKIT": "0"}   # the classic API
    env.pop("DOCKER_CONTEXT", None)
    return subprocess.run(["docker", "build", *args], capture_output=True, text=True, env=env, timeout=300,
                          check=False)


def _image(sock: str, tmp_path: Path, busybox_image: str, tag: str = "local/entry:1", *, quiet: bool = False
           ) -> tuple[Path, str, subprocess.CompletedProcess[str]]:
    """An image with an entrypoint, exposed ports and an environment of its own, built by `docker build`:
    its context, its id and the build's output."""
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(f"""FROM {busybox_image}
ENV FROM_IMAGE=image PATH=/usr/local/bin:/bin
ENTRYPOINT ["false"]
EXPOSE 8080 9090/udp
""")
    built = _build(sock, *(("-q",) if quiet else ()), "-t", tag, str(ctx))
    assert built.returncode == 0, built.stderr
    return ctx, docker(sock, "image", "inspect", "-f", "{{.Id}}", tag).stdout.strip(), built


def test_a_quiet_build_answers_the_image_id(host: Host, tmp_path: Path, busybox_image: str) -> None:
    docker_py = pytest.importorskip("docker")
    with serving(host, tmp_path) as (sock, _):
        ctx, image_id, built = _image(sock, tmp_path, busybox_image, quiet=True)
        assert built.stdout == image_id + "\n"                   # `docker build -q` prints the id, as with dockerd
        client = docker_py.DockerClient(base_url=f"unix://{sock}", version="1.41", timeout=300)
        try:
            image, _ = client.images.build(path=str(ctx), tag="local/entry:2", quiet=True)   # no BuildError
            assert image.id == image_id
        finally:
            client.close()


def test_an_empty_entrypoint_resets_the_images(host: Host, tmp_path: Path, busybox_image: str) -> None:
    with serving(host, tmp_path) as (sock, _):
        _image(sock, tmp_path, busybox_image)
        # `--entrypoint ""`: the CLI sends [""], which dockerd reads as "not the image's"
        out = docker(sock, "run", "--rm", "--network", "none", "--entrypoint", "", "local/entry:1", "echo", "reset")
        assert out.stdout == "reset\n"
        docker(sock, "create", "--name", "none", "--network", "none", "--entrypoint", "", "local/entry:1", "true")
        doc = json.loads(docker(sock, "inspect", "none").stdout)[0]
        assert (doc["Config"]["Entrypoint"], doc["Config"]["Cmd"], doc["Path"]) == (None, ["true"], "true")
        docker(sock, "rm", "none")
        alone = docker(sock, "run", "--rm", "--network", "none", "--entrypoint", "", "local/entry:1", check=False)
        assert alone.returncode != 0                # neither its entrypoint nor the image's Cmd: nothing to run
        assert "no command specified" in alone.stderr


def test_publish_all_publishes_every_exposed_port(host: Host, tmp_path: Path, busybox_image: str) -> None:
    with serving(host, tmp_path) as (sock, _):
        _image(sock, tmp_path, busybox_image)
        # -P: every port the image and the container expose (--expose), on host ports the engine chooses
        docker(sock, "run", "-d", "--name", "pub", "-P", "--expose", "7070", "-p", "127.0.0.1::8080",
               "--entrypoint", "", "local/entry:1", "sleep", "3600")
        doc = json.loads(docker(sock, "inspect", "pub").stdout)[0]
        assert doc["HostConfig"]["PublishAllPorts"] is True
        assert doc["HostConfig"]["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
        assert set(doc["Config"]["ExposedPorts"]) == {"7070/tcp", "8080/tcp", "9090/udp"}
        ports = doc["NetworkSettings"]["Ports"]
        assert set(ports) == {"7070/tcp", "8080/tcp", "9090/udp"}
        assert [b["HostIp"] for b in ports["8080/tcp"]] == ["127.0.0.1"]        # as bound: not once more
        assert all(int(b[0]["HostPort"]) > 0 for b in ports.values())
        shown = docker(sock, "port", "pub").stdout
        assert "7070/tcp -> 0.0.0.0:" in shown
        assert "9090/udp -> 0.0.0.0:" in shown
        docker(sock, "stop", "-t", "0", "pub")
        docker(sock, "start", "pub")            # published again at its next start
        again = json.loads(docker(sock, "inspect", "-f", "{{json .NetworkSettings.Ports}}", "pub").stdout)
        assert set(again) == {"7070/tcp", "8080/tcp", "9090/udp"}
        docker(sock, "rm", "-f", "pub")
        # --expose alone publishes nothing
        docker(sock, "run", "-d", "--name", "quiet", "--expose", "7070", "--network", "none", "--entrypoint", "",
               "local/entry:1", "sleep", "3600")
        doc = json.loads(docker(sock, "inspect", "quiet").stdout)[0]
        assert set(doc["Config"]["ExposedPorts"]) == {"7070/tcp", "8080/tcp", "9090/udp"}
        assert (doc["HostConfig"]["PublishAllPorts"], doc["NetworkSettings"]["Ports"]) == (False, {})
        docker(sock, "rm", "-f", "quiet")


def test_env_is_merged_by_name_and_a_bare_name_is_left_out(host: Host, tmp_path: Path, busybox_image: str) -> None:
    with serving(host, tmp_path) as (sock, _):
        _image(sock, tmp_path, busybox_image)
        # `-e NAME` with NAME unset here: the CLI sends "NAME", which dockerd leaves out of the environment
        env = {k: v for k, v in os.environ.items() if k != "UNSET_HERE"}
        ran = subprocess.run(["docker", "run", "--name", "envs", "--network", "none", "--entrypoint", "",
                              "-e", "UNSET_HERE", "-e", "PATH=/bin:/sbin", "-e", "MINE=1", "local/entry:1",
                              "sh", "-c", 'echo "${UNSET_HERE-unset} $PATH $FROM_IMAGE $MINE"'],
                             capture_output=True, text=True, env={**env, "DOCKER_HOST": f"unix://{sock}"},
                             timeout=120, check=True)
        assert ran.stdout == "unset /bin:/sbin image 1\n"
        shown = json.loads(docker(sock, "inspect", "-f", "{{json .Config.Env}}", "envs").stdout)
        assert [e for e in shown if e.startswith("PATH=")] == ["PATH=/bin:/sbin"]     # the user's replaces the image's
        assert shown.index("MINE=1") < shown.index("FROM_IMAGE=image")     # the user's first, then the image's
        docker(sock, "rm", "envs")


def test_errors_have_dockerds_words(host: Host, tmp_path: Path, busybox_image: str) -> None:
    with serving(host, tmp_path) as (sock, _):
        gone = docker(sock, "rm", "nope", check=False)
        assert "No such container: nope" in gone.stderr
        tag = docker(sock, "tag", "missing", "other", check=False)
        assert tag.returncode != 0
        assert "No such image: missing:latest" in tag.stderr
        code, _, body = request(sock, "GET", "/v1.41/nothing/here")
        assert (code, json.loads(body)) == (404, {"message": "page not found"})
        code, _, body = request(sock, "GET", "/v1.41/containers/x/nonsense")
        assert (code, json.loads(body)) == (404, {"message": "page not found"})
        code, _, body = request(sock, "GET", "/v1.41/swarm")
        assert code == 501                          # a route of Docker's the engine does not serve: named
        docker(sock, "pull", busybox_image)
        docker(sock, "create", "--name", "quiet", "--network", "none", busybox_image, "true")
        code, _, body = request(sock, "GET", "/v1.41/containers/quiet/logs?stdout=0&stderr=0")
        assert code == 400
        assert json.loads(body)["message"] == "Bad parameters: you must choose at least one stream"
        docker(sock, "rm", "quiet")


def test_a_missing_executable_fails_the_start_not_the_create(host: Host, tmp_path: Path, busybox_image: str) -> None:
    """As dockerd: the create makes no process, so a container whose executable is missing is
    created (and a file can be copied into it: `container import --runtime docker` unpacks a
    volume's data through such a helper); its start fails saying why, the container left created
    with exit code 127 and the error in State.Error; `run --rm` of it leaves nothing."""
    with serving(host, tmp_path) as (sock, _):
        docker(sock, "pull", busybox_image)
        docker(sock, "create", "--name", "nocmd", "--network", "none", "-v", "helper:/restore", busybox_image,
               "/nonexistent")
        (tmp_path / "copied").write_text("into the volume\n")
        docker(sock, "cp", str(tmp_path / "copied"), "nocmd:/restore/copied")
        start = docker(sock, "start", "nocmd", check=False)
        assert start.returncode != 0
        assert 'exec: "/nonexistent": stat /nonexistent: no such file or directory' in start.stderr
        state = json.loads(docker(sock, "inspect", "nocmd").stdout)[0]["State"]
        assert (state["Status"], state["ExitCode"]) == ("created", 127)
        assert "/nonexistent" in state["Error"]
        out = docker(sock, "run", "--rm", "--network", "none", "-v", "helper:/restore", busybox_image,
                     "cat", "/restore/copied").stdout
        assert out == "into the volume\n"
        bad = docker(sock, "run", "--rm", "--name", "nostart", "--network", "none", busybox_image, "/nonexistent",
                     check=False)
        assert bad.returncode == 127            # the docker CLI's code for a missing command, as with dockerd
        docker(sock, "rm", "nocmd")
        assert _names(sock) == []
        docker(sock, "volume", "rm", "helper")


def test_removing_a_running_container_says_what_to_do(host: Host, tmp_path: Path, busybox_image: str) -> None:
    """`docker rm` of a running container said `container NAME is running` (the engine's hint,
    stop it or force, was not in the API's error); now dockerd's words, which say it."""
    with serving(host, tmp_path) as (sock, _):
        docker(sock, "pull", busybox_image)
        cid = docker(sock, "run", "-d", "--name", "up", "--network", "none", busybox_image, "sleep", "300").stdout.strip()
        refused = docker(sock, "rm", "up", check=False)
        assert refused.returncode == 1
        assert (f"You cannot remove a running container {cid}. Stop the container before attempting removal or "
                "force remove") in refused.stderr
        docker(sock, "pause", "up")
        assert "You cannot remove a paused container" in docker(sock, "rm", "up", check=False).stderr
        docker(sock, "rm", "-f", "up")


def test_info_and_version_say_what_dockerd_says(host: Host, tmp_path: Path) -> None:
    """`docker info` said `Swarm:` with nothing after it and no kernel, log driver or cgroup
    version (`docker info -f '{{.Swarm.LocalNodeState}}'`, which scripts ask before a stack
    deploy, was empty), and `docker version` `OS/Arch: linux/` and `minimum version ` (the
    CLI prints the Engine component's details)."""
    import platform

    with serving(host, tmp_path) as (sock, _):
        info = docker(sock, "info", "-f", "{{.Swarm.LocalNodeState}} {{.LoggingDriver}} {{.KernelVersion}} "
                                          "{{.CgroupVersion}} {{.Plugins.Volume}}").stdout.split()
        assert info[:3] == ["inactive", "json-file", platform.release()]
        assert info[3] in ("1", "2")
        assert info[4] == "[local]"
        assert "Swarm: inactive" in docker(sock, "info").stdout
        version = docker(sock, "version").stdout
        server = version[version.index("Server:"):]
        assert "minimum version 1.24" in server
        assert f"OS/Arch:          linux/{ {'x86_64': 'amd64', 'aarch64': 'arm64'}.get(platform.machine())}" in server


def test_info_is_the_clis_document(host: Host, tmp_path: Path, busybox_image: str) -> None:
    """The Engine API's /info and `reconcile info` are built by one function (engineinfo.py): the
    same document for the same engine (its containers counted as observed: one running, one paused,
    one exited), whichever asks; before, the CLI had no `info` and /info counted by its own code."""
    with serving(host, tmp_path) as (sock, _):
        docker(sock, "pull", busybox_image)
        docker(sock, "run", "-d", "--name", "up", "--network", "none", busybox_image, "sleep", "300")
        docker(sock, "run", "-d", "--name", "held", "--network", "none", busybox_image, "sleep", "300")
        docker(sock, "pause", "held")
        docker(sock, "run", "--name", "done", "--network", "none", busybox_image, "true")
        code, _, body = request(sock, "GET", "/v1.41/info")
        assert code == 200
        served = json.loads(body)
        cli = subprocess.run([sys.executable, "-m", "reconciler", "info", "-o", "json", *engine_args(host)], cwd=REPO,
                             capture_output=True, text=True, check=True, timeout=60)
        assert json.loads(cli.stdout) == served
        assert [served[k] for k in ("Containers", "ContainersRunning", "ContainersPaused", "ContainersStopped",
                                    "Images")] == [3, 1, 1, 1, 1]
        docker(sock, "unpause", "held")
        docker(sock, "rm", "-f", "up", "held", "done")


def _says(*argv: str) -> dict[str, str]:
    """`version` and `commit` as a program's `--version` prints them (`runc version 1.1.5`,
    `commit: ...`; tini: `tini version 0.19.0 - git.XXXX`)."""
    out = subprocess.run([*argv, "--version"], capture_output=True, text=True, check=True, timeout=30).stdout
    first = out.splitlines()[0].split()
    commit = next((line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("commit: ")),
                  first[4].removeprefix("git.") if len(first) > 4 else "")
    return {"version": first[2], "commit": commit}


def test_version_and_info_name_the_engines_own_programs(host: Host, tmp_path: Path) -> None:
    """`docker version` showed the Engine alone and `docker info` empty `runc version` and `Init
    Binary` lines, where dockerd lists containerd, runc and docker-init with their versions. Now
    the programs the engine runs containers with, each as its binary reports itself: conmon (the
    monitor, containerd's counterpart), runc and the init `--init` mounts, and info's
    `Runtimes`, `DefaultRuntime`, `RuncCommit`, `InitBinary` and `InitCommit` from them."""
    runc = shutil.which("runc") or "/usr/sbin/runc"
    init = os.path.realpath(shutil.which("tini-static") or shutil.which("docker-init") or "")
    want = {"conmon": _says("conmon"), "runc": _says(runc), "docker-init": _says(init)}
    with serving(host, tmp_path) as (sock, _):
        code, _, body = request(sock, "GET", "/v1.41/version")
        assert code == 200
        components = json.loads(body)["Components"]
        assert [c["Name"] for c in components] == ["Engine", "conmon", "runc", "docker-init"]
        for c in components[1:]:
            assert (c["Version"], c["Details"]["GitCommit"]) == (want[c["Name"]]["version"],
                                                                 want[c["Name"]]["commit"]), c
        server = docker(sock, "version").stdout.partition("Server:")[2]
        assert f" runc:\n  Version:          {want['runc']['version']}\n" in server
        assert f"  GitCommit:        {want['runc']['commit']}\n" in server
        assert " conmon:\n" in server

        info = json.loads(docker(sock, "info", "-f", "{{json .}}").stdout)
        # the OCI runtimes on this host (crun too, where it is installed), runc the default
        assert info["Runtimes"] == {name: {"path": path} for name in ("runc", "crun")
                                    if (path := shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin"))}
        assert info["DefaultRuntime"] == "runc"
        assert info["RuncCommit"] == {"ID": want["runc"]["commit"], "Expected": want["runc"]["commit"]}
        assert (info["InitBinary"], info["InitCommit"]["ID"]) == (init, want["docker-init"]["commit"])
        text = docker(sock, "info").stdout
        assert f" runc version: {want['runc']['commit']}\n" in text      # no "(expected: ...)" after it
        assert f" Init Binary: {init}\n" in text


def test_a_bind_mode_dockerd_does_not_know_is_refused(host: Host, tmp_path: Path, busybox_image: str) -> None:
    """`-v SRC:DST:MODE` with a mode dockerd refuses (`r0` for `ro`, two of a kind) was taken and
    the mode dropped: the typo mounted read-write. Now dockerd's 400, `invalid mode: MODE`,
    nothing made; the modes dockerd takes (SELinux labels, consistency) still run."""
    src = tmp_path / "src"
    src.mkdir()
    with serving(host, tmp_path) as (sock, _):
        docker(sock, "pull", busybox_image)
        for mode in ("r0", "ro,rw", "rw,zz"):
            ran = docker(sock, "run", "--rm", "--network", "none", "-v", f"{src}:/x:{mode}", busybox_image, "true",
                         check=False)
            assert ran.returncode == 125, ran.stderr
            assert f"invalid mode: {mode}" in ran.stderr
        assert docker(sock, "ps", "-aq").stdout.strip() == ""
        ran = docker(sock, "run", "--rm", "--network", "none", "-v", f"{src}:/x:ro,z,cached", busybox_image,
                     "touch", "/x/f", check=False)
        assert ran.returncode == 1                   # read-only, as asked
        assert "Read-only file system" in ran.stderr


def test_ps_size_shows_what_a_container_wrote(host: Host, tmp_path: Path, busybox_image: str) -> None:
    """`docker ps -s` showed `0B` for every container (the list's SizeRw and SizeRootFs were
    always 0): now its writable layer's size, and with its image's (`virtual`), as dockerd: the
    bytes of its files (it counted their blocks, and its directories', `324kB` for this one)."""
    with serving(host, tmp_path) as (sock, _):
        docker(sock, "pull", busybox_image)
        docker(sock, "run", "-d", "--name", "writer", "--network", "none", busybox_image, "sh", "-c",
               "dd if=/dev/zero of=/blob bs=1024 count=300 2>/dev/null; sleep 300")
        deadline = time.monotonic() + 20
        while True:
            size = docker(sock, "ps", "-s", "--format", "{{.Size}}").stdout.strip()
            written = re.match(r"([\d.]+)kB \(virtual ([\d.]+)MB\)$", size)
            if (written and float(written.group(1)) >= 307) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert written, size
        assert written.group(1) == "307", size          # 300 KiB (307200 bytes) as dockerd counts it: not blocks
        assert float(written.group(2)) > 1, size                # and the image's
        docker(sock, "rm", "-f", "writer")
