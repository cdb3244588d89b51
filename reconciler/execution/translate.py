"""Spec models → runtime value types (the only place that knows both).

A backend knows nothing of manifests: it gets a `ContainerConfig` whose labels already carry
ownership. The JSON codec of a `ContainerConfig` (what the inventory keeps so that a rollback
can re-create a container exactly) is `runtime.base.config_to_json` / `config_from_json`.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.runtime import base
from reconciler.spec import models

__all__ = [
    "container_config",
    "network_config",
    "volume_config",
]


def container_config(
    c: models.Container, *, name: str, labels: Mapping[str, str], image: str | None = None,
) -> base.ContainerConfig:
    """The runtime config of container `c`, created as `name` with `labels`."""
    hc = None
    if c.healthcheck is not None:
        hc = base.Healthcheck(test=tuple(c.healthcheck.test), interval=c.healthcheck.interval,
                              timeout=c.healthcheck.timeout, retries=c.healthcheck.retries,
                              start_period=c.healthcheck.start_period,
                              start_interval=c.healthcheck.start_interval)
    return base.ContainerConfig(
        name=name,
        image=image or c.image,
        command=c.command,
        args=c.args,
        env=dict(c.env),
        user=c.user,
        workdir=c.workdir,
        hostname=c.hostname,
        labels=dict(labels),
        ports=tuple(base.PortMapping(container_port=p.container_port, host_port=p.host_port,
                                     protocol=p.protocol, host_ip=p.host_ip, ingress=p.ingress)
                    for p in c.ports),
        networks=tuple(c.networks),
        aliases=tuple(c.aliases),
        mounts=tuple(base.Mount(type=m.type, target=m.target, source=m.source, read_only=m.read_only,
                                options=tuple(m.options), relative=m.relative) for m in c.volumes) + tuple(
            base.Mount(type="secret", target=s.target, source=s.source, read_only=True,
                       options=(f"mode={s.mode:04o}", f"uid={s.uid}", f"gid={s.gid}", f"digest={s.digest}"),
                       data=s.data)
            for s in c.secrets),
        restart=base.RestartPolicy(name=c.restart.name, max_retries=c.restart.max_retries, delay=c.restart_delay,
                                   window=c.restart_window),
        healthcheck=hc,
        resources=base.Resources(memory=c.resources.memory, cpus=c.resources.cpus, pids=c.resources.pids,
                                 memory_reservation=c.resources.memory_reservation,
                                 cpu_shares=c.resources.cpu_shares, cpuset=c.resources.cpuset,
                                 memory_swap=c.resources.memory_swap, cpu_period=c.resources.cpu_period,
                                 cpu_quota=c.resources.cpu_quota, cpuset_mems=c.resources.cpuset_mems,
                                 blkio_weight=c.resources.blkio_weight),
        read_only=c.read_only,
        cap_add=tuple(c.cap_add),
        cap_drop=tuple(c.cap_drop),
        stop_signal=c.stop_signal,
        stop_timeout=c.stop_timeout,
        init=c.init,
        replicas=c.replicas,
        update=base.UpdateConfig(order=c.update.order, on_failure=c.update.on_failure, monitor=c.update.min_ready,
                                 parallelism=1 if c.update.parallelism is None else c.update.parallelism,
                                 delay=c.update.delay, max_failure_ratio=c.update.max_failure_ratio),
        global_mode=c.global_mode,
        constraints=c.placement.swarm_constraints(),
        spread=c.placement.preferences,
        sysctls=dict(c.sysctls),
        ulimits=tuple(base.Ulimit(u.name, u.soft, u.hard) for u in c.ulimits),
        shm_size=c.shm_size,
        extra_hosts=tuple(c.extra_hosts),
        dns=tuple(c.dns),
        dns_search=tuple(c.dns_search),
        tty=c.tty,
        stdin_open=c.stdin_open,
        no_new_privileges=c.no_new_privileges,
        dns_options=tuple(c.dns_options),
        oom_score_adj=c.oom_score_adj,
        group_add=tuple(c.group_add),
        privileged=c.privileged,
        domainname=c.domainname,
        devices=tuple(c.devices),
        reservations=base.Resources() if c.reservations is None else base.Resources(
            memory=c.reservations.memory, cpus=c.reservations.cpus),
        secret_env=dict(c.secret_env),
        ipv4_addresses=dict(c.ipv4_addresses),
        ipv6_addresses=dict(c.ipv6_addresses),
        mac_addresses=dict(c.mac_addresses),
        link_local_ips={n: tuple(ips) for n, ips in c.link_local_ips.items()},
        gw_priorities=dict(c.gw_priorities),
        log_driver=c.logging.driver if c.logging else None,
        log_options=dict(c.logging.options) if c.logging else {},
        job=c.job,
        rollback=None if c.rollback is None else base.UpdateConfig(
            order=c.rollback.order or c.update.order, on_failure=c.rollback.on_failure,
            monitor=c.update.min_ready if c.rollback.min_ready is None else c.rollback.min_ready,
            parallelism=c.rollback.parallelism, delay=c.rollback.delay, max_failure_ratio=c.rollback.max_failure_ratio),
        service_labels=dict(c.service_labels),
        endpoint_mode=c.endpoint_mode,
    )


def network_config(n: models.Network | None, *, name: str, labels: Mapping[str, str]) -> base.NetworkConfig:
    if n is None:
        return base.NetworkConfig(name=name, labels=dict(labels))
    return base.NetworkConfig(name=name, subnet=n.subnet, gateway=n.gateway, internal=n.internal,
                              mtu=n.mtu, labels=dict(labels), ipv6=n.ipv6, ipv6_subnet=n.ipv6_subnet,
                              driver_opts=dict(n.driver_opts))


def volume_config(name: str, *, labels: Mapping[str, str], v: models.Volume | None = None) -> base.VolumeConfig:
    if v is None:           # mounted, not declared
        return base.VolumeConfig(name=name, labels=dict(labels))
    return base.VolumeConfig(name=name, labels=dict(labels), driver=v.driver, driver_opts=dict(v.driver_opts))
