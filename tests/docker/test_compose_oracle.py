"""Docker's own compose is the oracle: the same compose project brought up by `docker-compose`
(Debian's docker-compose 1.29 package) and by `reconcile apply --runtime docker` makes
containers that `docker inspect` shows the same, field by field.

Each project under tests/compose/oracle/ runs twice on the host's dockerd, under two project
names, with its own subnets, fixed address and host port (IMAGE, SUBNET_*, ADDR_BACK, PORT are interpolated). What is
compared: image, command, entrypoint, environment, mounts, published ports, networks,
aliases and fixed addresses, restart policy, user, working directory, hostname, domain name, healthcheck, stop signal and
timeout, terminal and open stdin, read-only root, init, capabilities, security options, sysctls, ulimits, /dev/shm size, CPU shares and set, memory limit, swap and reservation, extra hosts, DNS
servers, search domains and options, OOM score adjustment, supplementary groups, log driver and options, and labels. Names that carry the project name (volumes,
networks) are compared with it replaced, an anonymous volume (`- /path`: a random name in compose) by
type and target only, and what each tool adds of its own is left out:
reconciler's `reconciler.*` labels, compose's config-hash/version labels (the project's
working_dir and config_files are compared: both tools are given the files by absolute path, which
docker compose v2 always writes), and the container-id alias Docker gives every container. Teardown removes both projects
(their containers with compose's anonymous volumes, their networks and volumes), even when the test fails.

The corpus (tests/compose/corpus/*, real-world-shaped projects) runs through the same comparison
after a rewrite that lets it run here, the same for both tools (`runnable`): every image is the
local test image, every entrypoint a shell that sleeps (the images' programs are not there; the
`command:` stays as written and is compared), a healthcheck's test `true` every second, every
published host port and fixed subnet one of the test's own (PORT_n, SUBNET_n), a
`container_name` prefixed with the project name, external networks and volumes made by the
test under names of its own, `configs:` and the top-level `name:` left out (docker-compose 1.29
ignores the first on one host and refuses the second; the project name is the run's). A project that builds an image is skipped (no image to run), and
so is one docker-compose 1.29 itself refuses or cannot bring up here (`config`/`up` fail: the
reason is its own message); docker-compose runs with `--compatibility`, so `deploy:` replicas
and resources mean what they mean to docker compose v2 and reconciler.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
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
from tests.helpers.compose_corpus import Rewrite, runnable, variables
from tests.helpers.ports import publish_ports
from tests.helpers.registry import free_port

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.slow]

ORACLE = Path(__file__).resolve().parents[1] / "compose" / "oracle"
CORPUS = Path(__file__).resolve().parents[1] / "compose" / "corpus"
PROJECTS = sorted(p.name for p in ORACLE.iterdir() if p.is_dir())
CORPUS_PROJECTS = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
COMPOSE = shutil.which("docker-compose")
# labels each tool stamps for itself: not part of what the compose file says
OWN_LABELS = ("reconciler.", "com.docker.compose.config-hash", "com.docker.compose.version",
              "com.docker.compose.project.environment_file", "com.docker.compose.depends_on",
              "com.docker.compose.image")


# Differences README.md documents ("Where reconciler differs"), per (project, service): the field
# must differ (so a fix shows up here), and only it.
KNOWN: dict[tuple[str, str], dict[str, str]] = {
    ("app", "web"): {"networks": "aliases apply on every network of a container, not only on the one naming them"},
    ("app", "cache"): {"sysctls": "the domain name also goes as the kernel.domainname sysctl: runc 1.1 leaves "
                                  "Domainname unapplied (docker-compose's container has none)"},
}


def _rand() -> str:
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(5))


class Run:
    """One bring-up of a project: its name, environment and, after `up`, its containers."""

    def __init__(self, name: str, image: str, subnets_: list[str], extra: dict[str, str] | None = None) -> None:
        self.name = name
        self.env = {"IMAGE": image, "PORT": str(free_port()), "SUBNET_FRONT": subnets_[0], "SUBNET_BACK": subnets_[1],
                    "ADDR_BACK": str(ipaddress.IPv4Network(subnets_[1]).network_address + 200),
                    "COMPOSE_PROJECT_NAME": name, **(extra or {})}
        # values that differ between the two runs, by the name they are compared under
        self.own = {v: k for k, v in self.env.items() if k.startswith(("PORT", "SUBNET", "ADDR"))}

    def containers(self, docker: DockerRuntime) -> dict[tuple[str, str], dict[str, Any]]:
        out = {}
        for c in docker.api.container_list({"com.docker.compose.project": self.name}):
            attrs = docker.api.container_inspect(c["Id"])
            labels = attrs["Config"]["Labels"]
            out[(labels["com.docker.compose.service"], labels["com.docker.compose.container-number"])] = attrs
        return out


def _compose(run: Run, project: Path, *args: str, files: tuple[str, ...] = ("compose.yaml",),
             compat: bool = False) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "DOCKER_HOST": "unix:///var/run/docker.sock", **run.env}
    names = [a for f in files for a in ("-f", str(project / f))]
    return subprocess.run([str(COMPOSE), *(["--compatibility"] if compat else []), "--project-directory", str(project),
                           *names, "-p", run.name, *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def _norm(value: Any, run: Run) -> Any:
    text = json.dumps(value, sort_keys=True).replace(run.name, "PROJECT")
    for own in sorted(run.own, key=len, reverse=True):
        text = text.replace(own, run.own[own])
    return json.loads(text)


def _tmpfs_options(text: str) -> dict[str, Any]:
    opts = dict(o.partition("=")[::2] for o in text.split(",") if o)
    return {"size": units.parse_docker_size(opts["size"]) if "size" in opts else None, "mode": opts.get("mode"),
            "ro": "ro" in opts}


# Docker's defaults for a healthcheck's timings left out: the same check whether sent or not
_HC_DEFAULTS = {"Interval": 30_000_000_000, "Timeout": 30_000_000_000, "Retries": 3, "StartPeriod": 0}


def _healthcheck(hc: dict[str, Any] | None) -> dict[str, Any] | None:
    if not hc or hc.get("Test", [None])[:1] == ["NONE"]:
        return hc
    return {**_HC_DEFAULTS, **{k: v for k, v in hc.items() if v}}


# an anonymous volume's name: Docker's is random, reconciler's its container's (anonymous_name)
_ANONYMOUS = re.compile(r"[0-9a-f]{64}|.+-anon-[0-9a-f]{12}")


def _mount_source(mount: dict[str, Any]) -> str:
    name: str = mount.get("Name") or mount.get("Source", "")
    return "ANONYMOUS" if mount["Type"] == "volume" and _ANONYMOUS.fullmatch(name) else name


def view(attrs: dict[str, Any], run: Run) -> dict[str, Any]:
    """What the compose file decides about a container, as `docker inspect` shows it."""
    cfg, host = attrs["Config"], attrs["HostConfig"]
    short = attrs["Id"][:12]
    mounts = sorted((m["Type"], _mount_source(m), m["Destination"], m["RW"]) for m in attrs["Mounts"] if m["Type"] != "tmpfs")
    # tmpfs: compose 1.29 sends HostConfig.Tmpfs ("size=64m,mode=1770"), reconciler HostConfig.Mounts
    tmpfs = {dest: _tmpfs_options(opts) for dest, opts in (host.get("Tmpfs") or {}).items()}
    for m in host.get("Mounts") or []:
        if m["Type"] == "tmpfs":
            o = m.get("TmpfsOptions") or {}
            tmpfs[m["Target"]] = {"size": o.get("SizeBytes"), "mode": f"{o['Mode']:o}" if "Mode" in o else None,
                                  "ro": bool(m.get("ReadOnly"))}
    networks = {name: sorted(a for a in (net.get("Aliases") or ()) if a not in (short, attrs["Name"].lstrip("/")))
                for name, net in attrs["NetworkSettings"]["Networks"].items()}
    # the addresses asked for (ipv4_address); those Docker chose depend on the order of creation
    fixed = {name: (net.get("IPAMConfig") or {}).get("IPv4Address") or ""
             for name, net in attrs["NetworkSettings"]["Networks"].items()}
    return _norm({
        "image": cfg["Image"], "cmd": cfg["Cmd"], "entrypoint": cfg["Entrypoint"], "env": sorted(cfg["Env"]),
        "user": cfg["User"], "workdir": cfg["WorkingDir"], "hostname": cfg["Hostname"] if cfg["Hostname"] != short else "", "domainname": cfg.get("Domainname") or "",
        "healthcheck": _healthcheck(cfg.get("Healthcheck")), "tty": cfg["Tty"], "stdin": cfg["OpenStdin"], "stop_signal": cfg.get("StopSignal"),
        "labels": {k: v for k, v in cfg["Labels"].items() if not k.startswith(OWN_LABELS)},
        "mounts": sorted(mounts), "tmpfs": tmpfs, "ports": host.get("PortBindings") or {}, "networks": networks, "fixed": fixed,
        # a restart policy named "" is Docker's "no"
        "restart": {**host["RestartPolicy"], "Name": host["RestartPolicy"]["Name"] or "no"}, "read_only": host["ReadonlyRootfs"], "init": bool(host.get("Init")),
        "sysctls": host.get("Sysctls") or {}, "ulimits": sorted(host.get("Ulimits") or [], key=lambda u: u["Name"]),
        "shm_size": host.get("ShmSize"), "extra_hosts": sorted(host.get("ExtraHosts") or []),
        "dns": host.get("Dns") or [], "cpu_shares": host.get("CpuShares") or 0,
        "cpu_period": host.get("CpuPeriod") or 0, "cpu_quota": host.get("CpuQuota") or 0,
        "blkio_weight": host.get("BlkioWeight") or 0,
        "cpuset": host.get("CpusetCpus") or "", "memory_reservation": host.get("MemoryReservation") or 0,
        "memory": host.get("Memory") or 0, "memory_swap": host.get("MemorySwap") or 0, "dns_search": host.get("DnsSearch") or [],
        "dns_options": host.get("DnsOptions") or [], "oom_score_adj": host.get("OomScoreAdj") or 0,
        "group_add": host.get("GroupAdd") or [], "stop_timeout": cfg.get("StopTimeout") or 10,     # unset: Docker's 10 s
        # Docker takes capabilities with or without CAP_ (reconciler writes it, compose passes them as written)
        "cap_add": sorted(c.removeprefix("CAP_") for c in host.get("CapAdd") or []),
        "cap_drop": sorted(c.removeprefix("CAP_") for c in host.get("CapDrop") or []),
        "security_opt": host.get("SecurityOpt") or [],
        "log_config": host.get("LogConfig"),
    }, run)


def _remove_project(docker: DockerRuntime, name: str) -> None:
    """Every container, network and volume of project `name` (each removal on its own)."""
    removals = [(docker.api.container_remove, c["Id"]) for c in docker.api.container_list({"com.docker.compose.project": name})]
    removals += [(docker.remove_network, n.name) for n in docker.list_networks(None) if n.name.startswith(name + "_")]
    # a project's volumes, then reconciler's anonymous ones (named after their container); removing a
    # container with its volumes removes docker-compose's (and no named volume)
    removals += [(docker.remove_volume, v.name) for v in docker.list_volumes(None) if v.name.startswith((name + "_", name + "-"))]
    for remove, what in removals:
        try:
            if remove == docker.api.container_remove:
                docker.api.container_remove(what, force=True, volumes=True)
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


# -- the corpus ---------------------------------------------------------------------------------


def _why(stderr: str) -> str:
    """docker-compose's own reason, from its output."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("You might be seeing", "For more on"))]
    start = next((i for i, line in enumerate(lines) if "rror" in line), 0)
    return " ".join(lines[start:start + 2]) or "no output"


@contextlib.contextmanager
def _corpus_runs(docker: DockerRuntime, image: str, rewrite: Rewrite) -> Iterator[tuple[Run, Run]]:
    block = subnets.lease_block()
    nets = [str(n) for n in block.subnets(new_prefix=26)]
    base = "oracle" + _rand()
    made: list[tuple[str, str]] = []
    runs: list[Run] = []
    try:
        for i, tag in enumerate("cr"):
            ports = publish_ports(rewrite.ports)
            extra = {f"PORT_{n}": str(p) for n, p in enumerate(ports)}
            extra |= {f"SUBNET_{n}": nets[4 + 4 * i + n] for n in range(rewrite.subnets)}
            runs.append(Run(base + tag, image, nets[8 * i:8 * i + 2], extra))
        for kind, name in rewrite.externals:
            if kind == "networks":
                docker.api.network_create({"Name": name, "Driver": "bridge", "Labels": {"test": base}})
            else:
                docker.api.volume_create({"Name": name, "Labels": {"test": base}})
            made.append((kind, name))
        yield runs[0], runs[1]
    finally:
        for run in runs:
            _remove_project(docker, run.name)
        for kind, name in made:
            try:
                (docker.remove_network if kind == "networks" else docker.remove_volume)(name)
            except rterrors.RuntimeBackendError:
                pass
        subnets.release(block)


@pytest.mark.parametrize("name", CORPUS_PROJECTS)
def test_corpus_project_matches_docker_compose(
    name: str, docker: DockerRuntime, docker_image: PulledImage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    if COMPOSE is None:
        pytest.skip("docker-compose (Debian's docker-compose package) is not installed")
    expected = json.loads((CORPUS / name / "expected.json").read_text())
    tree = tmp_path / name
    shutil.copytree(CORPUS / name, tree)
    project = tree / expected.get("dir", "")
    rewrite = runnable(tree, "oracle" + _rand())
    if rewrite.builds:
        pytest.skip(f"{name}: services {', '.join(rewrite.builds)} build their image (build:); the oracle runs "
                    "the local test image only")
    files = tuple(f for f in (*COMPOSE_FILES, "compose.override.yaml", "docker-compose.override.yml")
                  if (project / f).is_file())
    with _corpus_runs(docker, docker_image.ref, rewrite) as (theirs, ours):
        checked = _compose(theirs, project, "config", "-q", files=files, compat=True)
        if checked.returncode != 0:
            pytest.skip(f"{name}: docker-compose 1.29 refuses the project: {_why(checked.stderr)}")
        up = _compose(theirs, project, "up", "-d", "--no-build", files=files, compat=True)
        if up.returncode != 0:
            pytest.skip(f"{name}: docker-compose 1.29 cannot bring it up here: {_why(up.stderr)}")
        for var in variables(tree) | {"COMPOSE_FILE", "COMPOSE_PROFILES"}:
            if var not in ours.env:
                monkeypatch.delenv(var, raising=False)
        for key, value in ours.env.items():
            monkeypatch.setenv(key, value)
        assert main(["apply", str(project), "--root", str(tmp_path / "root"), "--runtime", "docker",
                     "--owner", ours.name]) == 0
        want, got = theirs.containers(docker), ours.containers(docker)
        assert sorted(got) == sorted(want)
        for key in sorted(want):
            mine, docker_compose = view(got[key], ours), view(want[key], theirs)
            known = KNOWN.get((name, key[0]), {})
            assert sorted(k for k in known if mine[k] == docker_compose[k]) == [], f"{key}: fixed? remove it from KNOWN"
            assert {k: v for k, v in mine.items() if v != docker_compose[k] and k not in known} == \
                {k: v for k, v in docker_compose.items() if v != mine[k] and k not in known}, key
