"""docker top and the prune commands against the native engine's Engine API: top lists the
container's own processes (from its cgroup), prune removes what nothing uses and keeps the rest."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.api.test_engine_api import docker
from tests.api.test_engine_api import engine_api as engine_api  # the fixture
from tests.api.test_engine_api import pytestmark as pytestmark  # root, registry, docker CLI
from tests.helpers.host import Host


def reclaimed_mb(printed: str) -> float:
    """The docker CLI's "Total reclaimed space: 1.065MB" (decimal units) in MB."""
    size = printed.rpartition("Total reclaimed space: ")[2].split()[0]
    units = {"B": 1e-6, "kB": 1e-3, "MB": 1.0, "GB": 1e3}
    unit = next(u for u in sorted(units, key=len, reverse=True) if size.endswith(u))
    return float(size.removesuffix(unit)) * units[unit]


def test_docker_top_and_prune(engine_api: str, host: Host, busybox_image: str) -> None:
    docker(engine_api, "pull", busybox_image)
    net, idle = f"{host.config.name_prefix}u", f"{host.config.name_prefix}i"
    docker(engine_api, "network", "create", "--subnet", host.subnet, net)
    docker(engine_api, "network", "create", idle)
    docker(engine_api, "volume", "create", "kept")
    docker(engine_api, "volume", "create", "spare")
    docker(engine_api, "run", "-d", "--name", "live", "--network", net, "-v", "kept:/data", busybox_image,
           "sh", "-c", "sleep 3600 & sleep 3601")
    docker(engine_api, "run", "--name", "done1", "--network", "none", busybox_image,
           "sh", "-c", "head -c 1048576 /dev/zero > /big")            # a MiB in its writable layer
    docker(engine_api, "run", "--name", "done2", "--network", "none", "-l", "keep=yes", busybox_image, "true")
    try:
        top = docker(engine_api, "top", "live").stdout.splitlines()
        assert top[0].split()[:2] == ["UID", "PID"]
        commands = sorted(line.split(None, 7)[7] for line in top[1:])
        assert commands == ["sleep 3600", "sleep 3601"]           # its own (sh ran the last one with exec)
        assert "sleep 3600" in docker(engine_api, "top", "live", "-o", "pid,args").stdout

        pruned = docker(engine_api, "container", "prune", "-f", "--filter", "label!=keep").stdout
        names = docker(engine_api, "ps", "-a", "--format", "{{.Names}}").stdout.split()
        assert "done1" not in names
        assert "done2" in names                                       # label!=keep: left
        assert "live" in names                                        # running: kept
        assert reclaimed_mb(pruned) >= 1.048, pruned                # its writable layer's, not 0
        docker(engine_api, "container", "prune", "-f")
        assert docker(engine_api, "ps", "-a", "--format", "{{.Names}}").stdout.split() == ["live"]

        spare = docker(engine_api, "volume", "inspect", "-f", "{{.Mountpoint}}", "spare").stdout.strip()
        (Path(spare) / "data").write_bytes(b"x" * 2 * 1024 * 1024)
        reclaimed = docker(engine_api, "volume", "prune", "-f").stdout
        assert reclaimed_mb(reclaimed) >= 2.097, reclaimed          # the volume's data, as dockerd
        assert docker(engine_api, "volume", "ls", "-q").stdout.split() == ["kept"]    # in use: kept
        docker(engine_api, "network", "prune", "-f")
        nets = docker(engine_api, "network", "ls", "--format", "{{.Name}}").stdout.split()
        assert net in nets
        assert idle not in nets

        docker(engine_api, "image", "prune", "-f")                    # dangling only: every image has a tag
        docker(engine_api, "image", "prune", "-a", "-f")              # unused: the one "live" runs is kept
        assert docker(engine_api, "images", "-q").stdout.split() != []
        docker(engine_api, "rm", "-f", "live", "done2")
        removed = docker(engine_api, "image", "prune", "-a", "-f").stdout
        assert f"untagged: {busybox_image}" in removed
        assert docker(engine_api, "images", "-q").stdout.split() == []
    finally:
        docker(engine_api, "rm", "-f", "live", "done1", "done2", check=False)
        docker(engine_api, "volume", "rm", "kept", "spare", check=False)
        docker(engine_api, "network", "rm", net, idle, check=False)


def test_docker_system_df_and_the_network_filter(engine_api: str, host: Host, busybox_image: str) -> None:
    import json

    net = f"{host.config.name_prefix}d"
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "network", "create", "--subnet", host.subnet, net)
    docker(engine_api, "run", "-d", "--name", "writer", "--network", net, "-v", "dfdata:/data", busybox_image,
           "sh", "-c", "head -c 3000000 /dev/zero > /data/f; head -c 2000000 /dev/zero > /rw; sleep 3600")
    docker(engine_api, "run", "-d", "--name", "apart", "--network", "none", busybox_image, "sleep", "3600")
    try:
        assert docker(engine_api, "ps", "--filter", f"network={net}", "--format", "{{.Names}}").stdout.split() \
            == ["writer"]
        for _ in range(50):
            if docker(engine_api, "exec", "writer", "test", "-e", "/rw", check=False).returncode == 0:
                break
        rows = {}
        for line in docker(engine_api, "system", "df", "-v", "--format", "{{json .}}").stdout.splitlines():
            rows.update(json.loads(line))
        volumes = {v["Name"]: v for v in rows["Volumes"]}
        assert volumes["dfdata"]["Links"] == "1"
        assert volumes["dfdata"]["Size"].endswith("MB")                     # the 3 MB file
        containers = {c["Names"]: c for c in rows["Containers"]}
        assert containers["writer"]["Size"].endswith("MB")                  # its writable layer
        assert len(rows["Images"]) == 1
        assert rows["Images"][0]["Containers"] == "2"
        # the image's size is its layer unpacked, as dockerd counts it (find: every non-directory's
        # size, each inode once), in df, the list and inspect alike
        found = subprocess.run(["find", *map(str, (host.config.root / "snapshots").glob("*/fs")), "!", "-type", "d",
                                "-printf", "%i %s\n"], capture_output=True, text=True, check=True).stdout
        unpacked = sum(int(size) for size in dict(line.split() for line in found.splitlines()).values())
        assert int(docker(engine_api, "image", "inspect", "-f", "{{.Size}}", busybox_image).stdout) == unpacked
        listed = docker(engine_api, "images", "--format", "{{.Size}}", busybox_image).stdout.strip()
        assert rows["Images"][0]["Size"] == listed == f"{unpacked / 1e6:.3g}MB"
    finally:
        docker(engine_api, "rm", "-f", "writer", "apart", check=False)
        docker(engine_api, "volume", "rm", "dfdata", check=False)
        docker(engine_api, "network", "rm", net, check=False)
