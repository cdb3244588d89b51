"""Settings a Docker client sends reach the native engine through its Engine API, and come back
in inspect, driven by the real docker CLI: fixed addresses (create and network connect), a stop
timeout of 0, log options, a network's MTU."""

from __future__ import annotations

import ipaddress
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_engine_api import docker, engine_api, serving  # noqa: F401 - the fixture
from tests.helpers import subnets
from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.registry,
              pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")]


def _inspect(sock: str, name: str) -> Any:
    return json.loads(docker(sock, "inspect", name).stdout)[0]


def test_a_container_connected_before_its_first_start_keeps_its_extra_hosts_and_dns(
        engine_api: str, host: Host, busybox_image: str) -> None:  # noqa: F811
    """Compose connects a service's other networks between create and start: the start makes the
    container's attachment again, with everything it was created with (it once lost these)."""
    other4 = str(list(ipaddress.IPv4Network(host.config.subnet_pool).subnets(new_prefix=24))[1])
    net, other = f"{host.config.name_prefix}h", f"{host.config.name_prefix}i"
    docker(engine_api, "network", "create", "--subnet", host.subnet, net)
    docker(engine_api, "network", "create", "--subnet", other4, other)
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "create", "--name", "resolving", "--network", net, "--add-host", "db.internal:10.1.2.3",
           "--dns", "192.0.2.53", "--dns-search", "corp.example", "--dns-option", "ndots:3",
           busybox_image, "sleep", "3600")
    docker(engine_api, "network", "connect", other, "resolving")
    docker(engine_api, "start", "resolving")
    hosts = docker(engine_api, "exec", "resolving", "cat", "/etc/hosts").stdout
    assert "10.1.2.3\tdb.internal" in hosts.splitlines()
    resolv = docker(engine_api, "exec", "resolving", "cat", "/etc/resolv.conf").stdout.splitlines()
    assert "search corp.example" in resolv
    assert "options ndots:3" in resolv
    doc = _inspect(engine_api, "resolving")
    assert sorted(doc["NetworkSettings"]["Networks"]) == sorted([net, other])
    assert {k: doc["HostConfig"][k] for k in ("ExtraHosts", "Dns", "DnsSearch", "DnsOptions")} == {
        "ExtraHosts": ["db.internal:10.1.2.3"], "Dns": ["192.0.2.53"], "DnsSearch": ["corp.example"],
        "DnsOptions": ["ndots:3"]}
    docker(engine_api, "rm", "-f", "resolving")
    docker(engine_api, "network", "rm", net, other)


def test_fixed_addresses_a_stop_timeout_of_0_and_log_options_are_honoured(
        engine_api: str, host: Host, busybox_image: str) -> None:  # noqa: F811
    block6 = subnets.lease_block6()
    try:
        first6, second6 = (str(s) for s in list(block6.subnets(new_prefix=64))[:2])
        other4 = str(list(ipaddress.IPv4Network(host.config.subnet_pool).subnets(new_prefix=24))[1])
        net, other = f"{host.config.name_prefix}f", f"{host.config.name_prefix}g"
        docker(engine_api, "network", "create", "--ipv6", "--subnet", host.subnet, "--subnet", first6, net)
        docker(engine_api, "network", "create", "--ipv6", "--subnet", other4, "--subnet", second6, other)
        ip4, ip6 = _nth(host.subnet, 9), _nth(first6, 9)
        docker(engine_api, "pull", busybox_image)
        docker(engine_api, "run", "-d", "--name", "fixed", "--network", net, "--ip", ip4, "--ip6", ip6,
               "--stop-timeout", "0", "--log-driver", "json-file", "--log-opt", "max-size=1m",
               "--log-opt", "max-file=2", busybox_image, "sleep", "3600")
        doc = _inspect(engine_api, "fixed")
        ep = doc["NetworkSettings"]["Networks"][net]
        assert (ep["IPAddress"], ep["GlobalIPv6Address"]) == (ip4, ip6)
        assert ep["IPAMConfig"] == {"IPv4Address": ip4, "IPv6Address": ip6}
        assert doc["Config"]["StopTimeout"] == 0
        assert doc["HostConfig"]["LogConfig"] == {"Type": "json-file",
                                                  "Config": {"max-size": "1m", "max-file": "2"}}
        assert ip4 in docker(engine_api, "exec", "fixed", "ip", "addr", "show", "eth0").stdout

        # network connect --ip of a running container: that address, an IPv6 one chosen, kept for its next start
        at = _nth(other4, 7)
        docker(engine_api, "network", "connect", "--ip", at, other, "fixed")
        joined = _inspect(engine_api, "fixed")["NetworkSettings"]["Networks"][other]
        assert (joined["IPAddress"], joined["IPAMConfig"]) == (at, {"IPv4Address": at})
        assert ipaddress.IPv6Address(joined["GlobalIPv6Address"]) in ipaddress.IPv6Network(second6)
        assert at in docker(engine_api, "exec", "fixed", "ip", "addr", "show", "eth1").stdout

        began = time.monotonic()
        docker(engine_api, "stop", "fixed")     # sleep as PID 1 ignores SIGTERM: killed at once, not after 10 s
        assert time.monotonic() - began < 5
        docker(engine_api, "start", "fixed")
        nets = _inspect(engine_api, "fixed")["NetworkSettings"]["Networks"]
        assert {n: (e["IPAddress"], e["GlobalIPv6Address"] if n == net else "") for n, e in nets.items()} == {
            net: (ip4, ip6), other: (at, "")}
        docker(engine_api, "network", "disconnect", other, "fixed")
        docker(engine_api, "rm", "-f", "fixed")

        # connected before its first start (what compose does): the address is its own at the start
        docker(engine_api, "create", "--name", "later", "--network", net, busybox_image, "sleep", "3600")
        docker(engine_api, "network", "connect", "--ip6", _nth(second6, 5), other, "later")
        docker(engine_api, "start", "later")
        later = _inspect(engine_api, "later")["NetworkSettings"]["Networks"][other]
        assert (later["GlobalIPv6Address"], later["IPAMConfig"]) == (_nth(second6, 5), {"IPv6Address": _nth(second6, 5)})
        docker(engine_api, "rm", "-f", "later")

        refused = docker(engine_api, "run", "-d", "--network", net, "--log-driver", "syslog", busybox_image, "true",
                         check=False)
        assert refused.returncode != 0
        assert "log driver 'syslog' is not supported by the native engine" in refused.stderr
        docker(engine_api, "network", "rm", net, other)
    finally:
        subnets.release6(block6)


def _nth(subnet: str, n: int) -> str:
    return str(ipaddress.ip_network(subnet)[n])


def test_a_networks_mtu_is_its_bridges_and_other_driver_options_are_refused(
        engine_api: str, host: Host, busybox_image: str) -> None:  # noqa: F811
    net = f"{host.config.name_prefix}m"
    docker(engine_api, "network", "create", "--subnet", host.subnet, "-o", "com.docker.network.driver.mtu=1400", net)
    seen = json.loads(docker(engine_api, "network", "inspect", net).stdout)[0]
    assert seen["Options"] == {"com.docker.network.driver.mtu": "1400"}
    docker(engine_api, "pull", busybox_image)
    out = docker(engine_api, "run", "--rm", "--network", net, busybox_image, "cat", "/sys/class/net/eth0/mtu").stdout
    assert out.strip() == "1400"
    docker(engine_api, "network", "rm", net)
    refused = docker(engine_api, "network", "create", "-o", "com.docker.network.bridge.name=br-x", net, check=False)
    assert refused.returncode != 0
    assert "network option 'com.docker.network.bridge.name' is not supported" in refused.stderr


def test_what_the_native_engine_would_not_apply_is_refused_naming_it(engine_api: str, busybox_image: str) -> None:  # noqa: F811
    """`docker run --pid host` ran in a PID namespace of its own, `--volumes-from` mounted
    nothing, `--security-opt seccomp=unconfined` kept the filter, `--gpus` had none, each without
    a word: a setting the create body carried and the engine dropped. Each is now a 400 naming
    it, nothing made; what the engine has anyway is taken (`apparmor=unconfined`: it applies no
    AppArmor profile; `--userns host`: it remaps none), and `--cpu-quota` is the CFS limit,
    kept in docker's numbers as dockerd keeps it."""
    docker(engine_api, "pull", busybox_image)
    for flags, words in ((("--pid", "host"), 'PidMode "host"'), (("--ipc", "host"), 'IpcMode "host"'),
                         (("--uts", "host"), 'UTSMode "host"'), (("--volumes-from", "other"), 'VolumesFrom ["other"]'),
                         (("--security-opt", "seccomp=unconfined"), 'SecurityOpt "seccomp=unconfined"'),
                         (("--gpus", "all"), "DeviceRequests"), (("--memory-swappiness", "10"), "MemorySwappiness 10")):
        ran = docker(engine_api, "run", "--rm", "--network", "none", *flags, busybox_image, "true", check=False)
        assert ran.returncode == 125, (flags, ran.stderr)
        assert words in ran.stderr, (flags, ran.stderr)
        assert "not supported by the native engine" in ran.stderr
    assert docker(engine_api, "ps", "-aq").stdout.strip() == ""
    docker(engine_api, "run", "--rm", "--network", "none", "--security-opt", "apparmor=unconfined", "--userns", "host",
           busybox_image, "true")
    # one OCI runtime: the engine's (runc here) is taken by name, another refused as dockerd refuses it
    docker(engine_api, "run", "--rm", "--network", "none", "--runtime", "runc", busybox_image, "true")
    other = docker(engine_api, "run", "--rm", "--network", "none", "--runtime", "crun", busybox_image, "true", check=False)
    assert other.returncode == 125
    assert "Unknown runtime specified crun: this engine runs runc" in other.stderr
    assert docker(engine_api, "ps", "-aq").stdout.strip() == ""
    docker(engine_api, "create", "--name", "quota", "--network", "none", "--cpu-quota", "50000", busybox_image, "true")
    shown = docker(engine_api, "inspect", "-f", "{{.HostConfig.NanoCpus}} {{.HostConfig.CpuQuota}}", "quota")
    assert shown.stdout.split() == ["0", "50000"]
    docker(engine_api, "rm", "quota")


@pytest.mark.skipif(shutil.which("crun") is None, reason="needs crun")
def test_a_container_asks_for_the_engines_oci_runtime_or_is_refused(
        host: Host, busybox_image: str, tmp_path: Path) -> None:
    """An engine on crun took `docker create --runtime runc` and made a crun container (its
    inspect said crun): now only the engine's own runtime may be named, another is dockerd's 400."""
    with serving(host, tmp_path / "crun.sock", "--oci-runtime", "crun") as sock:
        docker(sock, "pull", busybox_image)
        refused = docker(sock, "create", "--network", "none", "--runtime", "runc", busybox_image, "true",
                         check=False)
        assert refused.returncode != 0
        assert "Unknown runtime specified runc: this engine runs crun" in refused.stderr
        assert docker(sock, "ps", "-aq").stdout.strip() == ""
        # (crun itself creates nothing on this hybrid-cgroup host: the engine says so; the runc
        # engine's own name is taken in the test above)
