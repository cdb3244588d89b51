"""`/containers/{id}/stats` of the native engine's Engine API, from the container's cgroup files
and network namespace: what `docker stats --no-stream` shows, and docker-py's one-shot and
streamed stats."""

from __future__ import annotations

import ipaddress
import json
import time

import pytest

from tests.api.test_engine_api import docker
from tests.api.test_engine_api import engine_api as engine_api  # the fixture
from tests.api.test_engine_api import pytestmark as pytestmark  # root, registry, docker CLI
from tests.helpers.host import Host

MiB = 1 << 20


def _size(text: str) -> float:
    """`30MiB`, `1.2kB`, `0B` as docker stats prints them, in bytes."""
    units = {"B": 1, "kB": 1e3, "KiB": 1024, "MB": 1e6, "MiB": MiB, "GB": 1e9, "GiB": 1 << 30}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    raise AssertionError(f"not a size: {text}")


def test_docker_stats_shows_cgroup_usage(engine_api: str, host: Host, busybox_image: str) -> None:
    net = f"{host.config.name_prefix}s"
    gateway = str(next(ipaddress.ip_network(host.subnet).hosts()))
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "network", "create", "--subnet", host.subnet, net)
    try:
        docker(engine_api, "run", "-d", "--name", "busy", "--network", net, "--memory", "64m", "--pids-limit", "50",
               busybox_image, "sh", "-c", f"ping -c 3 -W 1 {gateway}; head -c 30000000 /dev/zero > /dev/shm/fill; "
               "while :; do :; done")
        docker(engine_api, "run", "-d", "--name", "idle", "--network", "none", busybox_image, "sleep", "3600")
        time.sleep(4)                                   # the pings are sent, the memory filled
        rows = {}
        for line in docker(engine_api, "stats", "--no-stream", "--format", "{{json .}}").stdout.splitlines():
            row = json.loads(line)
            rows[row["Name"]] = row
        assert sorted(rows) == ["busy", "idle"]         # every running container, by name
        busy, idle = rows["busy"], rows["idle"]
        assert float(busy["CPUPerc"].rstrip("%")) > 5       # a busy loop (on a loaded host: part of a CPU)
        assert float(idle["CPUPerc"].rstrip("%")) < 1
        used, limit = busy["MemUsage"].split(" / ")
        assert _size(limit) == 64 * MiB                     # its --memory
        assert 28 * MiB < _size(used) < 64 * MiB            # the 30 MB file in /dev/shm (tmpfs: memory)
        assert 40 < float(busy["MemPerc"].rstrip("%")) < 100
        assert _size(idle["MemUsage"].split(" / ")[1]) > 64 * MiB   # no limit: the host's memory
        assert busy["PIDs"] == "1"                          # sh alone: its loop is a builtin
        rx, tx = busy["NetIO"].split(" / ")
        assert min(_size(tx), _size(rx)) >= 3 * 98          # three pings and their replies
        assert idle["NetIO"] == "0B / 0B"                   # network none: no interface but lo
        docker(engine_api, "stop", "-t", "0", "idle")
        stopped = json.loads(docker(engine_api, "stats", "--no-stream", "--format", "{{json .}}", "idle").stdout)
        assert stopped["CPUPerc"] == "0.00%"
    finally:
        docker(engine_api, "rm", "-f", "busy", "idle", check=False)
        docker(engine_api, "network", "rm", net, check=False)


def test_docker_py_stats_one_shot_and_streamed(engine_api: str, busybox_image: str) -> None:
    docker_py = pytest.importorskip("docker")
    client = docker_py.DockerClient(base_url=f"unix://{engine_api}", version="1.41", timeout=60)  # no hang
    try:
        client.images.pull(busybox_image)
        c = client.containers.run(busybox_image, ["sh", "-c", "while :; do :; done"], name="pystats",
                                  network_mode="none", detach=True, pids_limit=20)
        one = c.stats(stream=False)
        assert one["name"] == "/pystats"
        assert one["id"] == c.id
        assert one["pids_stats"] == {"current": 1, "limit": 20}
        used = one["cpu_stats"]["cpu_usage"]["total_usage"] - one["precpu_stats"]["cpu_usage"]["total_usage"]
        assert used > 0.02e9                                # the busy loop ran between the two samples
        assert one["cpu_stats"]["system_cpu_usage"] > one["precpu_stats"]["system_cpu_usage"] > 0
        quick = c.stats(stream=False, one_shot=True)        # no wait: no previous sample
        assert quick["precpu_stats"]["cpu_usage"]["total_usage"] == 0
        stream = c.stats(stream=True, decode=True)
        first, second = next(stream), next(stream)
        stream.close()
        assert second["precpu_stats"] == first["cpu_stats"]
        assert second["cpu_stats"]["cpu_usage"]["total_usage"] > first["cpu_stats"]["cpu_usage"]["total_usage"]
        c.remove(force=True)                                # force=True: docker-py sends "True"
        assert client.containers.list(all=True) == []
    finally:
        client.close()
