"""`reconcile info` and `reconcile system info`: the engine as `docker info` shows it, from what is
observed (the containers checked against their processes, as `ps` sees them) and what the host
says (/proc, os.uname, the cgroup mounts), in docker info's layout, by docker's template fields,
and `--runtime docker` the Docker engine's own /info."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.native.containers.test_cli import Reconcile
from tests.native.containers.test_cli import cli as cli  # the fixture
from tests.native.containers.test_cli import pytestmark as pytestmark

FIELDS = ("{{.Containers}} {{.ContainersRunning}} {{.ContainersPaused}} {{.ContainersStopped}} {{.Images}} "
          "{{.Driver}} {{.CgroupDriver}} {{.CgroupVersion}} {{.DefaultRuntime}} {{.NCPU}} {{.MemTotal}} "
          "{{.KernelVersion}} {{.Architecture}} {{.Name}} {{.OSType}} {{.DockerRootDir}}")


def _cgroup_version() -> str:
    """What the cgroup mounts say: cgroup2 mounted on /sys/fs/cgroup is v2."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == "/sys/fs/cgroup":
                return "2" if line.split(" - ", 1)[1].split()[0] == "cgroup2" else "1"
    return "1"


def _mem_total() -> int:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))


def _fstype(path: Path) -> str:
    return subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "--target", str(path)], capture_output=True, text=True,
                          check=True).stdout.strip()


def _until(what: str, check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_info_counts_what_runs_and_says_what_the_host_is(cli: tuple[Reconcile, Path], busybox_image: str) -> None:
    """`docker info` was no command of reconciler's (`reconcile info`: invalid choice). Now its
    counts are the containers as observed: one running, one paused, one that exited, and one whose
    process was killed behind the engine's back (its record still said running: it is stopped, as
    `ps` says); the host's facts are what /proc, os.uname and the cgroup mounts say."""
    reconcile, tmp = cli
    reconcile("run", "-d", "--name", "up", "--network", "none", busybox_image, "sleep", "1000")
    reconcile("run", "-d", "--name", "held", "--network", "none", busybox_image, "sleep", "1000")
    reconcile("pause", "held")
    reconcile("run", "--name", "done", "--network", "none", busybox_image, "true")
    reconcile("run", "-d", "--name", "shot", "--network", "none", busybox_image, "sleep", "1000")
    pid, cid = reconcile("inspect", "-f", "{{.State.Pid}} {{.Id}}", "shot").stdout.split()
    os.kill(int(pid), signal.SIGKILL)   # the container's own process, which this test started
    # its monitor saw the exit (its exit file); its record, which nothing read since, says running
    _until("conmon wrote shot's exit", lambda: (tmp / "run" / "exits" / cid).exists())

    said = reconcile("info", "-f", FIELDS).stdout.split()
    assert "shot exited" in reconcile("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout
    uname = os.uname()
    assert said == ["4", "1", "1", "2", "1", "overlay2", "cgroupfs", _cgroup_version(),
                    os.environ.get("RECONCILER_OCI_RUNTIME", "runc"), str(len(os.sched_getaffinity(0))),
                    str(_mem_total()), uname.release, uname.machine, uname.nodename, "linux", str(tmp / "root")]
    assert reconcile("system", "info", "-f", FIELDS).stdout.split() == said

    doc = json.loads(reconcile("info", "-o", "json").stdout)
    assert set(doc["Runtimes"]) == {n for n in ("runc", "crun") if shutil.which(n) or
                                    shutil.which(n, path="/usr/sbin:/usr/bin:/sbin:/bin")}
    assert doc["DriverStatus"] == [["Backing Filesystem", {"ext4": "extfs"}.get(_fstype(tmp / "root"),
                                                                               _fstype(tmp / "root"))]]
    with open("/etc/os-release") as f:
        pretty = next(line.split("=", 1)[1].strip().strip('"') for line in f if line.startswith("PRETTY_NAME="))
    assert doc["OperatingSystem"] == pretty
    assert doc["RegistryConfig"]["InsecureRegistryCIDRs"] == ["127.0.0.0/8", "::1/128"]
    # dockerd's warnings, where they hold here: the swap limit's file of the memory cgroup
    swap = (os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes") if _cgroup_version() == "1"
            else None)
    if swap is not None:
        assert ("WARNING: No swap limit support" in doc["Warnings"]) == (not swap)
        assert doc["SwapLimit"] is swap
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert ("WARNING: IPv4 forwarding is disabled" in doc["Warnings"]) == (f.read().strip() != "1")

    one = json.loads(reconcile("info", "--format", "json").stdout)        # docker's: the document and ClientInfo
    assert one["ClientInfo"]["Version"] == reconcile("--version").stdout.split()[-1]
    assert {k: v for k, v in one.items() if k != "ClientInfo"} == doc
    reconcile("unpause", "held")


def test_info_prints_docker_infos_layout(cli: tuple[Reconcile, Path], busybox_image: str) -> None:
    """The text is docker info's: a Client: section, then Server: with the counts indented under
    Containers, and the labels both print in the order the docker CLI prints them for dockerd;
    the warnings on stderr. A bad template is refused as docker info refuses it (64)."""
    reconcile, _ = cli
    reconcile("run", "-d", "--name", "up", "--network", "none", busybox_image, "sleep", "1000")
    done = reconcile("info")
    text = done.stdout
    assert text.startswith("Client:\n Version:    ")
    server = text[text.index("\nServer:\n") + 1:]
    assert server.startswith("Server:\n Containers: 1\n  Running: 1\n  Paused: 0\n  Stopped: 0\n Images: 1\n"
                             " Server Version: reconciler-")
    assert text.endswith(" Live Restore Enabled: false\n\n")
    assert done.stderr == "".join(f"{w}\n" for w in json.loads(reconcile("info", "-o", "json").stdout)["Warnings"])

    def labels(out: str) -> list[str]:
        part = out[out.index("Server:\n"):]
        return [line.split(":")[0].strip() for line in part.splitlines() if line.startswith(" ") and ":" in line]

    dockers = subprocess.run(["docker", "info"], capture_output=True, text=True, check=True, timeout=60).stdout
    ours, theirs = labels(text), labels(dockers)
    common = [label for label in ours if label in theirs]
    assert len(common) > 25
    assert common == [label for label in theirs if label in common]        # the same order

    refused = reconcile("info", "-f", "{{.Nope", check=False)
    assert refused.returncode == 64
    assert "template parsing error" in refused.stderr
    assert reconcile("info", "--runtime", "fake", check=False).returncode == 2


def test_info_makes_no_engine_on_an_empty_root(cli: tuple[Reconcile, Path]) -> None:
    """A read command: on a state root that holds no engine it prints zero counts and creates nothing."""
    reconcile, tmp = cli
    assert reconcile("info", "-f", "{{.Containers}} {{.Images}}").stdout == "0 0\n"
    assert not (tmp / "root" / "state.db").exists()


@pytest.mark.docker
def test_info_of_the_docker_engine_is_its_own(cli: tuple[Reconcile, Path]) -> None:
    """`--runtime docker` prints the Docker engine's own /info, through its Engine API: docker's
    fields, and its text in the same layout as `docker info` prints it (counts and the runtimes,
    whose order docker leaves to Go's map, aside: other tests change them meanwhile)."""
    reconcile, _ = cli
    fields = "{{.ServerVersion}} {{.ID}} {{.DockerRootDir}} {{.Driver}} {{.CgroupVersion}} {{.NCPU}}"
    theirs = subprocess.run(["docker", "info", "-f", fields], capture_output=True, text=True, check=True,
                            timeout=60).stdout
    assert reconcile("info", "--runtime", "docker", "-f", fields).stdout == theirs
    assert reconcile("system", "info", "--runtime", "docker", "-f", fields).stdout == theirs
    moving = ("Containers:", "Running:", "Paused:", "Stopped:", "Images:", "Runtimes:")

    def server(out: str) -> list[str]:
        return [line for line in out[out.index("Server:\n"):].splitlines() if not line.strip().startswith(moving)]

    dockers = subprocess.run(["docker", "info"], capture_output=True, text=True, check=True, timeout=60).stdout
    assert server(reconcile("info", "--runtime", "docker").stdout) == server(dockers)
