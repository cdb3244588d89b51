"""A container config as JSON (base.config_to_json) and back (config_from_json): what records,
the inventory and the fake engine keep. A key a document lacks reads as the field's default,
which is what lets a record leave out every key at an empty config's value (#21)."""

from __future__ import annotations

import dataclasses

from reconciler.runtime import base


def test_every_field_is_read_back_and_a_key_left_out_is_its_default() -> None:
    names = {f.name for f in dataclasses.fields(base.ContainerConfig)}
    assert set(base._FROM_JSON) == names                # a field added must say how it reads back
    assert base.config_from_json({"name": "x", "image": "y"}) == base.ContainerConfig(name="x", image="y")
    empty = base.config_to_json(base.ContainerConfig(name="x", image="y"))
    for key in sorted(set(empty) - {"name", "image"}):  # each key alone: its own default again
        assert base.config_from_json({"name": "x", "image": "y", key: empty[key]}) == \
            base.ContainerConfig(name="x", image="y"), key


def test_a_config_with_every_field_set_reads_back_equal() -> None:
    config = base.ContainerConfig(
        name="web", image="registry:5000/app:1", image_id="sha256:" + "1" * 64, command=("sh", "-c"), args=("echo hi",), env={"A": "1"},
        user="1000:1000", workdir="/srv", hostname="box", labels={"k": "v"},
        ports=(base.PortMapping(80, 8080, "udp", "127.0.0.1"),), networks=("lan", "db"), aliases=("api",),
        mounts=(base.Mount("volume", "/data", "data", True, ("nocopy",)), base.Mount("tmpfs", "/t", options=("size=1m",))),
        restart=base.RestartPolicy("on-failure", 3, 5.0, 60.0),
        healthcheck=base.Healthcheck(("CMD", "true"), 5.0, 2.0, 4, 1.0, 0.5),
        resources=base.Resources(memory=64 << 20, cpus=0.5, pids=30, memory_reservation=32 << 20, cpu_shares=512,
                                 cpuset="0", memory_swap=-1),
        read_only=True, cap_add=("NET_ADMIN",), cap_drop=("ALL",), stop_signal="SIGINT", stop_timeout=3.0,
        init=True, replicas=2, update=base.UpdateConfig("start-first", "pause", 5.0, 2, 1.0, 0.25), global_mode=False,
        constraints=("node.role==worker",), spread=("node.labels.zone",), sysctls={"net.ipv4.ip_forward": "1"},
        ulimits=(base.Ulimit("nofile", 1024, 2048),), shm_size=1 << 20, extra_hosts=("h:10.0.0.1",),
        dns=("10.0.0.53",), dns_search=("example.test",), tty=True, stdin_open=True, stdin_once=True,
        no_new_privileges=True,
        dns_options=("ndots:1",), oom_score_adj=100, group_add=("audio",), privileged=True, devices=("/dev/null",),
        domainname="example.test", reservations=base.Resources(memory=16 << 20), ipv4_addresses={"lan": "10.1.0.5"},
        ipv6_addresses={"lan": "fd00::5"}, log_driver="json-file", log_options={"max-size": "1m"},
        mac_addresses={"lan": "02:42:ac:11:00:02"}, link_local_ips={"lan": ("169.254.1.1",)},
        gw_priorities={"db": 10}, job=True, network_aliases={"db": ("primary",)}, links=("cache:kv",),
        rollback=base.UpdateConfig("stop-first", "continue", 2.0, 0, 3.0, 0.5), service_labels={"team": "shop"},
        endpoint_mode="vip",
    )
    assert {f.name for f in dataclasses.fields(config) if getattr(config, f.name) ==
            getattr(base.ContainerConfig(name="", image=""), f.name)} <= {"global_mode", "secret_env"}
    assert base.config_from_json(base.config_to_json(config)) == config
