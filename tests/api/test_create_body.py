"""The Engine API reads back what reconciler's Docker backend writes: `config_from_create` of
`container_body(cfg)` is `cfg`, for every field of ContainerConfig the native engine honours.

The Docker backend is the client of `reconcile engine-api` in `--runtime docker` (and docker run
and compose send the same fields): a field the reader drops is a setting silently lost between
reconciler and its own engine (fixed addresses, log rotation, `stopTimeout: 0` were).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from reconciler.api.engine import Endpoint, HttpError, config_from_create, endpoint_settings
from reconciler.runtime import base
from reconciler.runtime.docker.backend import container_body, endpoint_config

# The fields no create body carries, and why. A field added to ContainerConfig later must be set
# in FULL below, and then either come back through the body or be listed here with its reason.
NOT_CARRIED = {
    "replicas": "Swarm's: a service's copies (a single engine runs one container)",
    "update": "Swarm's: a service's rollout",
    "global_mode": "Swarm's: a global service",
    "constraints": "Swarm's: service placement",
    "spread": "Swarm's: service placement",
    "reservations": "Swarm's: service reservations",
    "job": "a single engine waits for a job's exit itself; Swarm's replicated-job mode",
    "rollback": "Swarm's: a service's rollback",
    "service_labels": "Swarm's: the service's own labels, beside its copies'",
    "endpoint_mode": "Swarm's: how a service's name resolves (vip or dnsrr)",
    "secret_env": "container_body refuses it: Docker writes a container's environment to disk",
    "image_id": "the Docker backend's create names the image from it (DockerRuntime._pinned_image), not the body",
}
# Within fields, not carried either: Mount.relative (a manifest's notion: the source is absolute
# by then), Mount.data and secret mounts (a file secret goes as a read-only bind, content is copied
# into the created container: DockerRuntime._copy_secrets), PortMapping.ingress (Swarm's),
# a fraction of stop_timeout (Docker's StopTimeout is whole seconds: the backend rounds up), a
# tmpfs size other than in bytes (sent as SizeBytes), networks after the first (each sent by a
# network connect: test_the_connect_body_carries_each_further_networks_addresses). Docker has no
# container-wide aliases: every alias is an endpoint's, so `aliases` (a manifest's, on every
# network) go in each endpoint's Aliases and come back as that network's own (`network_aliases`).

FULL = base.ContainerConfig(
    name="web", image="reg:5000/web:1", image_id="sha256:" + "b" * 64, command=("/bin/app",), args=("-v",),
    env={"A": "1", "B": "x=y"},
    user="1000:1000", workdir="/srv", hostname="h", labels={"l": "1"},
    ports=(base.PortMapping(container_port=80, host_port=8080, host_ip="127.0.0.1"),
           base.PortMapping(container_port=53, host_port=0, protocol="udp")),
    networks=("net", "other"), aliases=("w", "www"),
    mounts=(base.Mount(type="volume", target="/data", source="vol", options=("nocopy",)),
            base.Mount(type="bind", target="/etc/x", source="/srv/x", read_only=True, options=("rshared",)),
            base.Mount(type="tmpfs", target="/tmp", options=("size=67108864", "mode=1777"))),
    restart=base.RestartPolicy(name="on-failure", max_retries=3),
    healthcheck=base.Healthcheck(test=("CMD", "true"), interval=2.0, timeout=1.0, retries=2, start_period=0.5,
                                 start_interval=0.25),
    resources=base.Resources(memory=1 << 26, cpus=0.5, pids=64, memory_reservation=1 << 25, cpu_shares=512,
                             cpuset="0", memory_swap=1 << 27),
    read_only=True, cap_add=("NET_ADMIN",), cap_drop=("MKNOD",), stop_signal="SIGQUIT", stop_timeout=0.0, init=True,
    replicas=2, update=base.UpdateConfig(order="start-first"), global_mode=True, constraints=("node.role==manager",),
    spread=("node.labels.zone",), sysctls={"net.core.somaxconn": "1024"},
    ulimits=(base.Ulimit(name="nofile", soft=1024, hard=2048),), shm_size=1 << 20, extra_hosts=("db:10.0.0.2",),
    dns=("10.0.0.53",), dns_search=("lan",), tty=True, stdin_open=True, stdin_once=True, no_new_privileges=True,
    dns_options=("ndots:1",), oom_score_adj=100, group_add=("audio",), privileged=True,
    devices=("/dev/fuse:/dev/fuse:rwm",), domainname="example", reservations=base.Resources(memory=1 << 20),
    secret_env={"KEY": "sha256:" + "a" * 64},
    ipv4_addresses={"net": "10.0.0.9", "other": "10.0.1.7"}, ipv6_addresses={"net": "fd00::9", "other": "fd00:1::7"},
    log_driver="json-file", log_options={"max-size": "1m", "max-file": "2"},
    mac_addresses={"net": "02:00:00:00:00:01", "other": "02:00:00:00:00:02"},
    link_local_ips={"net": ("169.254.0.9", "fe80::9"), "other": ("169.254.1.7",)}, gw_priorities={"net": 3, "other": -2},
    network_aliases={"net": ("n",), "other": ("o",)}, links=("db:database",), job=True,
    rollback=base.UpdateConfig(order="stop-first", parallelism=2), service_labels={"team": "a"}, endpoint_mode="vip")


def _default(f: dataclasses.Field[Any]) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]


def test_a_create_body_reads_back_every_field_the_docker_backend_writes() -> None:
    fields = {f.name: f for f in dataclasses.fields(base.ContainerConfig)}
    assert set(NOT_CARRIED) <= set(fields)
    for f in fields.values():            # every field differs from its default: a new one must be set above
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            assert getattr(FULL, f.name) != _default(f), f"set {f.name} in FULL"
    with pytest.raises(Exception, match="SOPS"):
        container_body(FULL)
    sent = dataclasses.replace(FULL, secret_env={})
    back = config_from_create("web", container_body(sent))
    first = "net"                        # the create body names the first network; the others are connects
    expected = dataclasses.replace(
        FULL, **{name: _default(fields[name]) for name in NOT_CARRIED}, networks=(first,),
        ipv4_addresses={first: FULL.ipv4_addresses[first]}, ipv6_addresses={first: FULL.ipv6_addresses[first]},
        **{key: {first: getattr(FULL, key)[first]} for key in ("mac_addresses", "link_local_ips", "gw_priorities")},
        aliases=(), network_aliases={first: (*FULL.aliases, *FULL.network_aliases[first])})
    assert back == expected
    # an engine before Engine API 1.44: the first network's MAC as the container's, read back as its own
    assert config_from_create("web", container_body(sent, container_mac=True)) == expected


def test_the_connect_body_carries_each_further_networks_addresses() -> None:
    for net in FULL.networks[1:]:
        assert endpoint_settings(endpoint_config(FULL, net)) == Endpoint(
            (*FULL.aliases, *FULL.network_aliases[net]), FULL.ipv4_addresses[net], FULL.ipv6_addresses[net], FULL.mac_addresses[net],
            FULL.link_local_ips[net], FULL.gw_priorities[net])
    assert endpoint_settings(None) == Endpoint((), None, None)


@pytest.mark.parametrize(("create", "words"), [
    ({"MacAddress": "03:00:00:00:00:01", "HostConfig": {"NetworkMode": "n"}}, "MacAddress: 03:00:00:00:00:01 is a multicast"),
    ({"MacAddress": "02:00:00:00:00:01", "HostConfig": {"NetworkMode": "host"}},
     "conflicting options: mac-address and the network mode"),
    ({"MacAddress": "02:00:00:00:00:01", "HostConfig": {"NetworkMode": "n"},
      "NetworkingConfig": {"EndpointsConfig": {"n": {"MacAddress": "02:00:00:00:00:02"}}}},
     "the container-wide MAC address must match the endpoint-specific MAC address"),
    ({"HostConfig": {"NetworkMode": "n"},
      "NetworkingConfig": {"EndpointsConfig": {"n": {"IPAMConfig": {"LinkLocalIPs": ["10.0.0.1"]}}}}},
     "IPAMConfig.LinkLocalIPs: 10.0.0.1 is not a link-local address"),
    ({"HostConfig": {"NetworkMode": "n"}, "NetworkingConfig": {"EndpointsConfig": {"n": {"GwPriority": "high"}}}},
     "GwPriority 'high' is not a whole number"),
    ({"NetworkingConfig": {"EndpointsConfig": {"bridge": {"Aliases": ["web"]}}}},      # dockerd's words
     "network-scoped alias is supported only for containers in user defined networks"),
])
def test_an_endpoints_own_settings_are_checked_as_a_manifests(create: dict[str, Any], words: str) -> None:
    with pytest.raises(HttpError, match=words):
        config_from_create("c", {"Image": "img", **create})


def test_a_mac_on_the_default_bridge_is_the_default_networks() -> None:
    cfg = config_from_create("c", {"Image": "img", "MacAddress": "02:00:00:00:00:05"})
    assert (cfg.networks, dict(cfg.mac_addresses)) == ((), {"default": "02:00:00:00:00:05"})


def body(**host: Any) -> dict[str, Any]:
    return {"Image": "img", "HostConfig": host}


def test_stop_timeout_0_is_0_and_absent_is_dockers_10() -> None:
    assert config_from_create("c", {**body(), "StopTimeout": 0}).stop_timeout == 0.0
    assert config_from_create("c", {**body(), "StopTimeout": None}).stop_timeout == 10.0
    assert config_from_create("c", body()).stop_timeout == 10.0
    with pytest.raises(HttpError, match="StopTimeout"):
        config_from_create("c", {**body(), "StopTimeout": -1})


@pytest.mark.parametrize(("log_config", "words"), [
    ({"Type": "syslog", "Config": {}}, "log driver 'syslog' is not supported by the native engine"),
    ({"Type": "none"}, "log driver 'none' is not supported"),
    ({"Type": "json-file", "Config": {"compress": "true"}}, "unknown log opt 'compress'"),
    ({"Type": "local", "Config": {"max-size": "big"}}, "log opt max-size: 'big' is not a valid size"),
    ({"Type": "", "Config": {"max-file": "0"}}, "log opt max-file"),
])
def test_a_log_config_the_native_engine_cannot_honour_is_refused(log_config: dict[str, Any], words: str) -> None:
    with pytest.raises(HttpError, match=words) as caught:
        config_from_create("c", body(LogConfig=log_config))
    assert caught.value.code == 400


def test_a_log_config_it_honours_is_kept_and_the_docker_clis_empty_one_is_the_default() -> None:
    kept = config_from_create("c", body(LogConfig={"Type": "local", "Config": {"max-size": "10m", "max-file": "3"}}))
    assert (kept.log_driver, kept.log_options) == ("local", {"max-size": "10m", "max-file": "3"})
    plain = config_from_create("c", body(LogConfig={"Type": "", "Config": None}))     # docker run without --log-*
    assert (plain.log_driver, plain.log_options) == (None, {})


def test_a_fixed_address_needs_a_network_the_container_joins() -> None:
    on_default = {**body(), "NetworkingConfig": {"EndpointsConfig": {"bridge": {"IPAMConfig": {"IPv4Address": "10.0.0.9"}}}}}
    with pytest.raises(HttpError, match="user defined networks only"):
        config_from_create("c", on_default)
    elsewhere = {**body(NetworkMode="net"),
                 "NetworkingConfig": {"EndpointsConfig": {"nope": {"IPAMConfig": {"IPv6Address": "fd00::9"}}}}}
    with pytest.raises(HttpError, match="nope"):
        config_from_create("c", elsewhere)
    empty = {**body(NetworkMode="net"),                 # compose v1 sends an empty IPAMConfig
             "NetworkingConfig": {"EndpointsConfig": {"net": {"IPAMConfig": {}, "Aliases": None}}}}
    assert config_from_create("c", empty).ipv4_addresses == {}


def test_a_healthcheck_without_test_or_timings_is_the_images_as_dockerd_keeps_it() -> None:
    """`docker run --health-interval 1s IMG` sends an empty Test with a timing: the image's test
    with that timing (a 0 is the image's too); an empty test and no timing is no healthcheck of its own."""
    timings = config_from_create("web", {"Image": "i", "Healthcheck": {"Test": [], "Interval": 10**9,
                                                                     "StartInterval": 10**8}})
    assert timings.healthcheck == base.Healthcheck((), interval=1.0, timeout=0.0, retries=0, start_period=0.0,
                                                   start_interval=0.1)
    assert base.healthcheck_of(timings.healthcheck, {"Test": ["CMD", "check"], "Timeout": 3 * 10**9, "Retries": 5}) \
        == base.Healthcheck(("CMD", "check"), interval=1.0, timeout=3.0, retries=5, start_period=0.0, start_interval=0.1)
    assert config_from_create("web", {"Image": "i", "Healthcheck": {"Test": []}}).healthcheck is None
    bare = config_from_create("web", {"Image": "i", "Healthcheck": {"Test": ["CMD", "true"]}}).healthcheck
    assert bare is not None
    assert base.healthcheck_of(bare, None) == base.Healthcheck(("CMD", "true"))     # Docker's defaults
