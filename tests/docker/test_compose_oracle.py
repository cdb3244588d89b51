"""Docker's own compose is the oracle: the same compose project brought up by `docker-compose`
(Debian's docker-compose 1.29 package) and by `reconcile apply --runtime docker` makes
containers that `docker inspect` shows the same, field by field.

Each project under tests/compose/oracle/ runs twice on the host's dockerd, under two project
names, with its own subnets and host port (IMAGE, SUBNET_*, PORT are interpolated). What is
compared: image, command, entrypoint, environment, mounts, published ports, networks and
aliases, restart policy, user, working directory, hostname, healthcheck, stop signal and
timeout, terminal and open stdin, read-only root, init, capabilities, security options, sysctls, ulimits, /dev/shm size, CPU shares and set, memory limit, swap and reservation, extra hosts, DNS
servers, search domains and options, OOM score adjustment, supplementary groups, and labels. Names that carry the project name (volumes,
networks) are compared with it replaced, and what each tool adds of its own is left out:
reconciler's `reconciler.*` labels, compose's config-hash/version/working_dir/config_files
labels, and the container-id alias Docker gives every container. Teardown removes both projects
(`docker-compose down -v` and the reconciler owner's objects), even when the test fails.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import string
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli.main import main
from reconciler.runtime import errors as rterrors
from reconciler.runtime.docker import DockerRuntime
from reconciler.spec import units
from tests.docker.conftest import PulledImage
from tests.helpers import subnets
from tests.helpers.registry import free_port

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.slow]

ORACLE = Path(__file__).resolve().parents[1] / "compose" / "oracle"
PROJECTS = sorted(p.name for p in ORACLE.iterdir() if p.is_dir())
COMPOSE = shutil.which("docker-compose")
# labels each tool stamps for itself: not part of what the compose file says
OWN_LABELS = ("reconciler.", "com.docker.compose.config-hash", "com.docker.compose.version",
              "com.docker.compose.project.", "com.docker.compose.depends_on", "com.docker.compose.image")


# Differences README.md documents ("Where reconciler differs"), per (project, service): the field
# must differ (so a fix shows up here), and only it.
KNOWN: dict[tuple[str, str], dict[str, str]] = {
    ("app", "web"): {"networks": "aliases apply on every network of a container, not only on the one naming them"},
}


def _rand() -> str:
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(5))


class Run:
    """One bring-up of a project: its name, environment and, after `up`, its containers."""

    def __init__(self, name: str, image: str, subnets_: list[str]) -> None:
        self.name = name
        self.env = {"IMAGE": image, "PORT": str(free_port()), "SUBNET_FRONT": subnets_[0], "SUBNET_BACK": subnets_[1],
                    "COMPOSE_PROJECT_NAME": name}

    def containers(self, docker: DockerRuntime) -> dict[tuple[str, str], dict[str, Any]]:
        out = {}
        for c in docker.api.container_list({"com.docker.compose.project": self.name}):
            attrs = docker.api.container_inspect(c["Id"])
            labels = attrs["Config"]["Labels"]
            out[(labels["com.docker.compose.service"], labels["com.docker.compose.container-number"])] = attrs
        return out


def _compose(run: Run, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "DOCKER_HOST": "unix:///var/run/docker.sock", **run.env}
    return subprocess.run([str(COMPOSE), "--project-directory", str(project), "-f", str(project / "compose.yaml"),
                           "-p", run.name, *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def _norm(value: Any, run: Run) -> Any:
    text = json.dumps(value, sort_keys=True).replace(run.name, "PROJECT").replace(run.env["PORT"], "PORT")
    return json.loads(text)


def _tmpfs_options(text: str) -> dict[str, Any]:
    opts = dict(o.partition("=")[::2] for o in text.split(",") if o)
    return {"size": units.parse_docker_size(opts["size"]) if "size" in opts else None, "mode": opts.get("mode"),
            "ro": "ro" in opts}


def view(attrs: dict[str, Any], run: Run) -> dict[str, Any]:
    """What the compose file decides about a container, as `docker inspect` shows it."""
    cfg, host = attrs["Config"], attrs["HostConfig"]
    short = attrs["Id"][:12]
    mounts = sorted((m["Type"], m.get("Name") or m.get("Source", ""), m["Destination"], m["RW"])
                    for m in attrs["Mounts"] if m["Type"] != "tmpfs")
    # tmpfs: compose 1.29 sends HostConfig.Tmpfs ("size=64m,mode=1770"), reconciler HostConfig.Mounts
    tmpfs = {dest: _tmpfs_options(opts) for dest, opts in (host.get("Tmpfs") or {}).items()}
    for m in host.get("Mounts") or []:
        if m["Type"] == "tmpfs":
            o = m.get("TmpfsOptions") or {}
            tmpfs[m["Target"]] = {"size": o.get("SizeBytes"), "mode": f"{o['Mode']:o}" if "Mode" in o else None,
                                  "ro": bool(m.get("ReadOnly"))}
    networks = {name: sorted(a for a in (net.get("Aliases") or ()) if a not in (short, attrs["Name"].lstrip("/")))
                for name, net in attrs["NetworkSettings"]["Networks"].items()}
    return _norm({
        "image": cfg["Image"], "cmd": cfg["Cmd"], "entrypoint": cfg["Entrypoint"], "env": sorted(cfg["Env"]),
        "user": cfg["User"], "workdir": cfg["WorkingDir"], "hostname": cfg["Hostname"] if cfg["Hostname"] != short else "",
        "healthcheck": cfg.get("Healthcheck"), "tty": cfg["Tty"], "stdin": cfg["OpenStdin"], "stop_signal": cfg.get("StopSignal"),
        "labels": {k: v for k, v in cfg["Labels"].items() if not k.startswith(OWN_LABELS)},
        "mounts": sorted(mounts), "tmpfs": tmpfs, "ports": host.get("PortBindings") or {}, "networks": networks,
        "restart": host["RestartPolicy"], "read_only": host["ReadonlyRootfs"], "init": bool(host.get("Init")),
        "sysctls": host.get("Sysctls") or {}, "ulimits": sorted(host.get("Ulimits") or [], key=lambda u: u["Name"]),
        "shm_size": host.get("ShmSize"), "extra_hosts": sorted(host.get("ExtraHosts") or []),
        "dns": host.get("Dns") or [], "cpu_shares": host.get("CpuShares") or 0,
        "cpuset": host.get("CpusetCpus") or "", "memory_reservation": host.get("MemoryReservation") or 0,
        "memory": host.get("Memory") or 0, "memory_swap": host.get("MemorySwap") or 0, "dns_search": host.get("DnsSearch") or [],
        "dns_options": host.get("DnsOptions") or [], "oom_score_adj": host.get("OomScoreAdj") or 0,
        "group_add": host.get("GroupAdd") or [], "stop_timeout": cfg.get("StopTimeout") or 10,     # unset: Docker's 10 s
        # Docker takes capabilities with or without CAP_ (reconciler writes it, compose passes them as written)
        "cap_add": sorted(c.removeprefix("CAP_") for c in host.get("CapAdd") or []),
        "cap_drop": sorted(c.removeprefix("CAP_") for c in host.get("CapDrop") or []),
        "security_opt": host.get("SecurityOpt") or [],
    }, run)


def _remove_project(docker: DockerRuntime, name: str) -> None:
    """Every container, network and volume of project `name` (each removal on its own)."""
    removals = [(docker.api.container_remove, c["Id"]) for c in docker.api.container_list({"com.docker.compose.project": name})]
    removals += [(docker.remove_network, n.name) for n in docker.list_networks(None) if n.name.startswith(name + "_")]
    removals += [(docker.remove_volume, v.name) for v in docker.list_volumes(None) if v.name.startswith(name + "_")]
    for remove, what in removals:
        try:
            if remove == docker.api.container_remove:
                docker.api.container_remove(what, force=True, volumes=False)
            else:
                remove(what)
        except rterrors.RuntimeBackendError:
            pass


@pytest.fixture
def runs(docker: DockerRuntime, docker_image: PulledImage, tmp_path: Path) -> Iterator[tuple[Run, Run, Path]]:
    if COMPOSE is None:
        pytest.skip("docker-compose (Debian's docker-compose package) is not installed")
    block = subnets.lease_block()
    nets = [str(n) for n in block.subnets(new_prefix=24)]
    base = "oracle" + _rand()
    theirs, ours = Run(base + "c", docker_image.ref, nets[:2]), Run(base + "r", docker_image.ref, nets[2:])
    root = tmp_path / "root"
    try:
        yield theirs, ours, root
    finally:
        for run in (theirs, ours):
            _remove_project(docker, run.name)
        subnets.release(block)


@pytest.mark.parametrize("name", PROJECTS)
def test_docker_compose_and_reconciler_make_the_same_containers(
    name: str, runs: tuple[Run, Run, Path], docker: DockerRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    theirs, ours, root = runs
    project = tmp_path / name
    shutil.copytree(ORACLE / name, project)
    up = _compose(theirs, project, "up", "-d", "--no-build")
    assert up.returncode == 0, up.stderr

    for var in ("COMPOSE_FILE", "COMPOSE_PROFILES", "GREETING"):
        monkeypatch.delenv(var, raising=False)
    for key, value in ours.env.items():
        monkeypatch.setenv(key, value)
    assert main(["apply", str(project), "--root", str(root), "--runtime", "docker", "--owner", ours.name]) == 0

    want, got = theirs.containers(docker), ours.containers(docker)
    assert sorted(got) == sorted(want)
    for key in sorted(want):
        mine, docker_compose = view(got[key], ours), view(want[key], theirs)
        known = KNOWN.get((name, key[0]), {})
        assert sorted(k for k in known if mine[k] == docker_compose[k]) == [], f"{key}: fixed? remove it from KNOWN"
        assert {k: v for k, v in mine.items() if v != docker_compose[k] and k not in known} == \
            {k: v for k, v in docker_compose.items() if v != mine[k] and k not in known}, key
