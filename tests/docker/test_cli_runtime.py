"""`--runtime docker` on the container commands (#15): `run`, `ps`, `logs`, `exec`, `rm`, `start`,
`stop`, `restart`, `kill`, `wait`, `rename`, `port`, `top`, `stats`, `cp`, `images` and `pull` talk
to dockerd through the Runtime protocol and its capabilities (opened by
runtime.opening), and print the same table and JSON shape as on the native engine; what makes
no sense there is refused naming the command and the engine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.docker.conftest import TEST_LABEL, Cli, PulledImage, Scope

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]


def scenario(cli: Cli, image: str, prefix: str) -> dict[str, Any]:
    """The same commands on an engine; what they printed, with what differs by nature (ids,
    times, the command column docker's protocol lacks) left out."""
    label = f"{TEST_LABEL}={prefix}"
    web, job = f"{prefix}-web", f"{prefix}-job"
    fg = cli("run", "--rm", "-l", label, image, "sh", "-c", "echo out; echo err >&2; echo -n more; exit 3")
    bg = cli("run", "-d", "--name", web, "-l", label, "-e", "A=b", image, "sh", "-c", "echo started; sleep 1000")
    done = cli("run", "-d", "--name", job, "-l", label, "-l", f"job={prefix}", image, "sh", "-c", "echo bye; echo -n end; exit 5")
    brief = cli("run", "--rm", "-d", "--name", f"{prefix}-brief", "-l", label, image, "sleep", "0.3")
    assert brief.returncode == 0, brief.stderr
    assert bg.returncode == 0, bg.stderr
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 30
    while '"exited"' not in cli("ps", "-a", "-o", "json", "--filter", f"label=job={prefix}").stdout:
        assert time.monotonic() < deadline, f"{job} did not exit"
        time.sleep(0.2)
    while f"{prefix}-brief" in cli("ps", "-a", "--filter", f"label={label}").stdout:     # --rm -d: gone at its exit
        assert time.monotonic() < deadline, "the --rm -d container was not removed at its exit"
        time.sleep(0.2)
    table = cli("ps", "-a", "--filter", f"label={label}").stdout.splitlines()
    rows = json.loads(cli("ps", "-a", "-o", "json", "--filter", f"label={label}").stdout)
    ex = cli("exec", web, "sh", "-c", "echo $A; echo e >&2; exit 4")
    ex_as = cli("exec", "-u", "65534", "-w", "/bin", "-e", "X=1", web, "sh", "-c", "echo X=$X $(pwd) $(id -u)")
    missing = cli("exec", web, "nope")
    logs = [cli("logs", web).stdout, cli("logs", "--tail", "1", job).stdout]
    rm = cli("rm", "-f", web, job, f"{prefix}-nosuch")
    return {
        "run": (fg.returncode, fg.stdout, fg.stderr.splitlines()[-1:]),
        "detached": len(bg.stdout.strip()),
        "header": table[0].split(),
        "rows": len(table) - 1,
        "names": sorted(r["name"] for r in rows),
        "keys": sorted(rows[0]),
        "states": sorted((r["name"].removeprefix(prefix), r["status"], r["exit_code"], r["status_text"].split(" ")[0])
                         for r in rows),
        "labels": rows[0]["labels"].get(TEST_LABEL),
        "logs": logs,
        "exec": (ex.returncode, ex.stdout, ex.stderr),
        "exec_as": (ex_as.returncode, ex_as.stdout, ex_as.stderr),
        # dockerd writes its error into the output, the native engine on stderr
        "exec_missing": (missing.returncode, "OCI runtime exec failed: " in missing.stdout + missing.stderr),
        "rm": (rm.returncode, rm.stdout.split(), f"{prefix}-nosuch" in rm.stderr),
        "after": cli("ps", "-aq", "--filter", f"label={label}").stdout,
    }


def test_container_commands_on_docker_print_what_they_print_on_native(
        tmp_path: Path, scope: Scope, docker_image: PulledImage, native_cli: Cli, busybox_image: str) -> None:
    docker_cli = Cli(tmp_path / "docker", "docker")
    scope.containers += [f"{scope.prefix}-web", f"{scope.prefix}-job", f"{scope.prefix}-brief"]   # removed even on failure
    on_docker = scenario(docker_cli, docker_image.ref, scope.prefix)
    on_native = scenario(native_cli, busybox_image, scope.prefix)

    assert on_docker == on_native
    assert on_docker["run"] == (3, "out\nmore", ["err"])       # the last bytes as written: no newline
    assert on_docker["detached"] == 64
    assert on_docker["header"] == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert on_docker["names"] == [f"{scope.prefix}-job", f"{scope.prefix}-web"]
    assert on_docker["states"] == [("-job", "exited", 5, "Exited"), ("-web", "running", None, "Up")]
    assert on_docker["labels"] == scope.prefix
    assert on_docker["logs"] == ["started\n", "end"]          # --tail 1: the last line, as written
    assert on_docker["exec"] == (4, "b\n", "e\n")
    assert on_docker["exec_as"] == (0, "X=1 /bin 65534\n", "")
    assert on_docker["exec_missing"] == (126, True)
    assert on_docker["rm"] == (1, [f"{scope.prefix}-web", f"{scope.prefix}-job"], True)
    assert on_docker["after"] == ""
    assert not (tmp_path / "docker" / "root" / "state.db").exists()    # nothing of the native engine made


def everyday(cli: Cli, image: str, prefix: str, port: int, tmp: Path) -> dict[str, Any]:
    """restart, kill, wait, rename, port, top, stats and cp on an engine: what they printed and
    did, with what differs by nature (ids, pids, times, host ports, sizes) left out."""
    label = f"{TEST_LABEL}={prefix}"
    web, moved = f"{prefix}-web", f"{prefix}-moved"

    def pid() -> int:
        return int(json.loads(cli("stats", "--no-stream", "-o", "json", web).stdout or "[{}]")[0].get("pids", 0))

    started = cli("run", "-d", "--name", web, "-l", label, "-p", f"127.0.0.1:{port}:80", image, "sh", "-c",
                  "trap 'exit 3' TERM; trap 'echo got USR1' USR1; sleep 1000 & pid=$!; "
                  "while kill -0 $pid; do wait $pid; done")
    assert started.returncode == 0, started.stderr
    restart = cli("restart", "-t", "5", web, f"{prefix}-nosuch")
    kill_usr1 = cli("kill", "-s", "USR1", web)
    deadline = time.monotonic() + 20
    while "got USR1" not in cli("logs", web).stdout:
        assert time.monotonic() < deadline, "USR1 not handled"
        time.sleep(0.2)
    ports = cli("port", web).stdout.replace(str(port), "PORT")
    top = cli("top", web, "-o", "pid,comm").stdout.splitlines()
    stats = json.loads(cli("stats", "--no-stream", "-o", "json", web).stdout)
    (tmp / "in.txt").write_text("to and fro\n")
    cp_in = cli("cp", str(tmp / "in.txt"), f"{web}:/tmp/")
    cp_out = cli("cp", f"{web}:/tmp/in.txt", str(tmp / "out.txt"))
    renamed = cli("rename", web, moved)
    killed = cli("kill", "-s", "TERM", moved)
    waited = cli("wait", moved, f"{prefix}-nosuch")
    rm = cli("rm", moved)
    return {
        "restart": (restart.returncode, restart.stdout, f"{prefix}-nosuch" in restart.stderr),
        "kill": (kill_usr1.returncode, kill_usr1.stdout.replace(prefix, "")),
        "port": ports,
        "top": (top[0].split(), sorted(line.split()[1] for line in top[1:])),
        "stats": (sorted(stats[0]), stats[0]["name"].replace(prefix, ""), stats[0]["pids"] >= 2,
                  stats[0]["memory_limit"] > 0),
        "cp": (cp_in.returncode, cp_out.returncode, (tmp / "out.txt").read_text()),
        "rename": (renamed.returncode, renamed.stdout),
        "killed": (killed.returncode, killed.stdout.replace(prefix, "")),
        "wait": (waited.returncode, waited.stdout, f"{prefix}-nosuch" in waited.stderr),
        "rm": rm.returncode,
        "pid_gone": pid() == 0,
    }


def test_the_everyday_commands_do_on_docker_what_they_do_on_native(
        tmp_path: Path, scope: Scope, docker_image: PulledImage, native_cli: Cli, busybox_image: str) -> None:
    """restart, kill, wait, rename, port, top, stats and cp through the Engine API (base.Restarting,
    Inspecting, ProcessListing, Statistics, PathCopying on the Docker backend) print and do what
    they print and do on the native engine."""
    from tests.helpers.ports import publish_ports

    docker_port, native_port = publish_ports(2)
    scope.containers += [f"{scope.prefix}-web", f"{scope.prefix}-moved"]   # removed even on failure
    (tmp_path / "d").mkdir()
    (tmp_path / "n").mkdir()
    on_docker = everyday(Cli(tmp_path / "docker", "docker"), docker_image.ref, scope.prefix, docker_port,
                         tmp_path / "d")
    on_native = everyday(native_cli, busybox_image, scope.prefix, native_port, tmp_path / "n")
    assert on_docker["port"] == "80/tcp -> 127.0.0.1:PORT\n"
    assert on_native == on_docker
    assert on_docker["restart"] == (1, f"{scope.prefix}-web\n", True)
    assert on_docker["top"] == (["PID", "COMMAND"], ["sh", "sleep"])
    assert on_docker["cp"] == (0, 0, "to and fro\n")
    assert on_docker["wait"] == (1, "3\n", True)          # its TERM trap's code


def test_images_and_pull_on_docker(tmp_path: Path, docker_image: PulledImage) -> None:
    cli = Cli(tmp_path, "docker")
    pulled = cli("pull", "-q", docker_image.ref)
    assert (pulled.returncode, pulled.stdout) == (0, f"{docker_image.ref}\n"), pulled.stderr
    rows = json.loads(cli("images", "-o", "json").stdout)
    ours = [r for r in rows if f"{r['repository']}:{r['tag']}" == docker_image.ref]
    assert len(ours) == 1
    assert sorted(ours[0]) == ["created", "digest", "id", "repository", "size", "tag"]


@pytest.mark.parametrize(("argv", "hint"), [
    (("run", "--runtime", "swarm", "IMAGE", "true"), "reconcile apply --runtime swarm"),
    (("create", "--runtime", "swarm", "IMAGE", "true"), "reconcile apply --runtime swarm"),
    (("exec", "--runtime", "fake", "web", "true"), "runs no process"),
    (("inspect", "--runtime", "docker", "web"), "docker inspect"),
    (("exec", "--runtime", "docker", "-t", "web", "true"), "docker exec -it"),
    (("system", "--runtime", "docker", "df"), "docker system df"),
    (("system", "prune", "--runtime", "fake", "-f"), "keeps nothing on disk"),
    (("container", "prune", "--runtime", "docker", "-f"), "docker container prune"),
    (("top", "--runtime", "fake", "web"), "runs no process"),
])
def test_what_makes_no_sense_on_an_engine_is_refused_naming_both(tmp_path: Path, argv: tuple[str, ...],
                                                                 hint: str) -> None:
    env = {**os.environ, "RECONCILER_ROOT": str(tmp_path / "root")}
    proc = subprocess.run([sys.executable, "-m", "reconciler", *argv], cwd=REPO, env=env, capture_output=True,
                          text=True, check=False, timeout=60)
    assert proc.returncode == (125 if argv[0] in ("run", "create") else 2)     # their own failure: docker's
    assert f"reconcile {argv[0]}" in proc.stderr
    assert f"--runtime {argv[argv.index('--runtime') + 1]}" in proc.stderr
    assert hint in proc.stderr


def test_create_on_docker_leaves_a_created_container_that_start_runs(
        tmp_path: Path, scope: Scope, docker_image: PulledImage) -> None:
    """`reconcile create --runtime docker`, as docker create: the container made, not started, its
    full id printed; `start` runs it; `--rm`: dockerd removes it at its exit (its AutoRemove)."""
    import re

    cli = Cli(tmp_path, "docker")
    label = f"{TEST_LABEL}={scope.prefix}"
    made, gone = scope.name("containers", "made"), scope.name("containers", "gone")
    created = cli("create", "--name", made, "-l", label, "-e", "X=on docker", docker_image.ref, "sh", "-c", "echo $X")
    assert created.returncode == 0, created.stderr
    assert re.fullmatch(r"[0-9a-f]{64}\n", created.stdout)

    def docker(*args: str) -> str:
        return subprocess.run(["docker", *args], capture_output=True, text=True, check=True, timeout=60).stdout

    assert docker("inspect", "-f", "{{.Id}} {{.State.Status}}", made) == f"{created.stdout.strip()} created\n"
    assert cli("start", made).stdout == f"{made}\n"
    assert docker("wait", made) == "0\n"
    assert cli("logs", made).stdout == "on docker\n"
    assert cli("create", "--rm", "--name", gone, "-l", label, docker_image.ref, "sleep", "0.2").returncode == 0
    assert docker("inspect", "-f", "{{.HostConfig.AutoRemove}}", gone) == "true\n"
    assert cli("start", gone).returncode == 0
    deadline = time.monotonic() + 30
    while gone in docker("ps", "-a", "--format", "{{.Names}}").split():
        assert time.monotonic() < deadline, f"{gone} was not removed at its exit"
        time.sleep(0.2)
    taken = cli("create", "--name", made, docker_image.ref)
    assert taken.returncode == 1                            # the engine refused it: docker create's 1
    assert made in taken.stderr


def test_run_rm_on_docker_takes_the_containers_anonymous_volumes_along(
        tmp_path: Path, scope: Scope, docker_image: PulledImage) -> None:
    """`reconcile run --rm --runtime docker` of an image with a VOLUME, in the foreground: the
    volume dockerd made for the container goes with it, as `docker run --rm` removes it."""
    base, image = scope.name("containers", "base"), f"{scope.prefix}-withvolume:1"
    scope.images.append(image)
    subprocess.run(["docker", "create", "--name", base, docker_image.ref, "true"], capture_output=True, check=True)
    subprocess.run(["docker", "commit", "-c", "VOLUME /anon", base, image], capture_output=True, check=True)
    token = f"written-by-{scope.prefix}"
    before = set(subprocess.run(["docker", "volume", "ls", "-q"], capture_output=True, text=True, check=True).stdout.split())
    ran = Cli(tmp_path, "docker")("run", "--rm", image, "sh", "-c", f"echo {token} > /anon/t")
    assert ran.returncode == 0, ran.stderr
    after = set(subprocess.run(["docker", "volume", "ls", "-q"], capture_output=True, text=True, check=True).stdout.split())
    left = []
    for vol in after - before:
        mountpoint = subprocess.run(["docker", "volume", "inspect", "-f", "{{.Mountpoint}}", vol],
                                    capture_output=True, text=True, check=False).stdout.strip()
        if mountpoint and Path(mountpoint, "t").exists() and token in Path(mountpoint, "t").read_text():
            left.append(vol)
            subprocess.run(["docker", "volume", "rm", vol], capture_output=True, check=False)
    assert left == []


def sized(cli: Cli, image: str, prefix: str) -> dict[str, Any]:
    """`ps -s` on an engine, of a container that wrote 100000 bytes: what it printed."""
    label = f"{TEST_LABEL}={prefix}"
    ran = cli("run", "--name", f"{prefix}-writer", "--network", "none", "-l", label, image, "sh", "-c",
              "head -c 100000 /dev/zero > /blob")
    assert ran.returncode == 0, ran.stderr
    table = cli("ps", "-a", "-s", "--filter", f"label={label}").stdout.splitlines()
    rows = json.loads(cli("ps", "-a", "-s", "-o", "json", "--filter", f"label={label}").stdout)
    template = cli("ps", "-a", "--format", "{{.Names}} {{.Size}}", "--filter", f"label={label}")
    # on dockerd, what the docker CLI prints of it too (where there is one)
    theirs = subprocess.run(["docker", "ps", "-a", "-s", "--filter", f"label={label}", "--format", "{{.Size}}"],
                            capture_output=True, text=True, check=True).stdout \
        if cli.runtime == "docker" and shutil.which("docker") else None
    cli("rm", f"{prefix}-writer")
    return {"header": table[0].split()[-2:], "size": table[1].split("   ")[-1], "docker": theirs,
            "json": [(r["size_rw"], r["size_root_fs"] - r["size_rw"] > 1_000_000) for r in rows],
            "template": (template.returncode, template.stdout.replace(prefix, ""), template.stderr)}


def test_ps_size_on_docker_is_dockerd_s_and_the_native_engine_s_alike(
        tmp_path: Path, scope: Scope, docker_image: PulledImage, native_cli: Cli, busybox_image: str) -> None:
    """`ps -s --runtime docker` asks dockerd's sizes (`size=1`), and prints them as docker's CLI
    does; the native engine measures the same container the same (dockerd's measure: what was
    written, not its blocks), and the same busybox image has the same size on both."""
    scope.containers.append(f"{scope.prefix}-writer")        # removed even on failure
    on_docker = sized(Cli(tmp_path / "docker", "docker"), docker_image.ref, scope.prefix)
    on_native = sized(native_cli, busybox_image, scope.prefix)
    assert on_docker["header"] == ["NAMES", "SIZE"]
    assert on_docker["size"].startswith("100kB (virtual ")
    assert on_docker["json"] == [(100_000, True)]
    assert on_docker["template"] == (0, f"-writer {on_docker['size']}\n", "")
    assert on_docker["docker"] in (f"{on_docker['size']}\n", None)      # docker ps -s's own words
    assert on_native == on_docker | {"docker": None}
