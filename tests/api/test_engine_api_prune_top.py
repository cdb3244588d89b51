"""docker top and the prune commands against the native engine's Engine API: top lists the
container's own processes (from its cgroup), prune removes what nothing uses and keeps the rest."""

from __future__ import annotations

from tests.api.test_engine_api import docker
from tests.api.test_engine_api import engine_api as engine_api  # the fixture
from tests.api.test_engine_api import pytestmark as pytestmark  # root, registry, docker CLI
from tests.helpers.host import Host


def test_docker_top_and_prune(engine_api: str, host: Host, busybox_image: str) -> None:
    docker(engine_api, "pull", busybox_image)
    net, idle = f"{host.config.name_prefix}u", f"{host.config.name_prefix}i"
    docker(engine_api, "network", "create", "--subnet", host.subnet, net)
    docker(engine_api, "network", "create", idle)
    docker(engine_api, "volume", "create", "kept")
    docker(engine_api, "volume", "create", "spare")
    docker(engine_api, "run", "-d", "--name", "live", "--network", net, "-v", "kept:/data", busybox_image,
           "sh", "-c", "sleep 3600 & sleep 3601")
    docker(engine_api, "run", "--name", "done1", "--network", "none", busybox_image, "true")
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
        assert "Total reclaimed space" in pruned
        docker(engine_api, "container", "prune", "-f")
        assert docker(engine_api, "ps", "-a", "--format", "{{.Names}}").stdout.split() == ["live"]

        docker(engine_api, "volume", "prune", "-f")
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
