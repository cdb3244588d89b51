"""Spec models → runtime value types (the only place that knows both), and the config codec.

A backend knows nothing of manifests: it gets a `ContainerConfig` whose labels already carry
ownership. The codec turns a `ContainerConfig` into JSON and back, so the inventory can keep
the exact config a container was created with and a rollback can re-create it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from reconciler.runtime import base
from reconciler.spec import models

__all__ = [
    "config_from_json",
    "config_to_json",
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
                              start_period=c.healthcheck.start_period)
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
                                     protocol=p.protocol, host_ip=p.host_ip) for p in c.ports),
        networks=tuple(c.networks),
        aliases=tuple(c.aliases),
        mounts=tuple(base.Mount(type=m.type, target=m.target, source=m.source, read_only=m.read_only)
                     for m in c.volumes),
        restart=base.RestartPolicy(name=c.restart.name, max_retries=c.restart.max_retries),
        healthcheck=hc,
        resources=base.Resources(memory=c.resources.memory, cpus=c.resources.cpus, pids=c.resources.pids),
        read_only=c.read_only,
        cap_add=tuple(c.cap_add),
        cap_drop=tuple(c.cap_drop),
        stop_signal=c.stop_signal,
        stop_timeout=c.stop_timeout,
        init=c.init,
    )


def network_config(n: models.Network | None, *, name: str, labels: Mapping[str, str]) -> base.NetworkConfig:
    if n is None:
        return base.NetworkConfig(name=name, labels=dict(labels))
    return base.NetworkConfig(name=name, subnet=n.subnet, gateway=n.gateway, internal=n.internal,
                              mtu=n.mtu, labels=dict(labels))


def volume_config(name: str, *, labels: Mapping[str, str]) -> base.VolumeConfig:
    return base.VolumeConfig(name=name, labels=dict(labels))


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def config_to_json(config: base.ContainerConfig) -> dict[str, Any]:
    """Plain JSON data of a container config (for the inventory)."""
    out: dict[str, Any] = _jsonable(config)
    return out


def _tuple(v: Any) -> tuple[str, ...] | None:
    return None if v is None else tuple(v)


def config_from_json(d: Mapping[str, Any]) -> base.ContainerConfig:
    """The inverse of `config_to_json`."""
    hc = d.get("healthcheck")
    return base.ContainerConfig(
        name=d["name"],
        image=d["image"],
        command=_tuple(d.get("command")),
        args=_tuple(d.get("args")),
        env=dict(d.get("env") or {}),
        user=d.get("user"),
        workdir=d.get("workdir"),
        hostname=d.get("hostname"),
        labels=dict(d.get("labels") or {}),
        ports=tuple(base.PortMapping(**p) for p in d.get("ports") or ()),
        networks=tuple(d.get("networks") or ()),
        aliases=tuple(d.get("aliases") or ()),
        mounts=tuple(base.Mount(**{**m, "options": tuple(m.get("options") or ())})
                     for m in d.get("mounts") or ()),
        restart=base.RestartPolicy(**(d.get("restart") or {})),
        healthcheck=base.Healthcheck(**{**hc, "test": tuple(hc["test"])}) if hc else None,
        resources=base.Resources(**(d.get("resources") or {})),
        read_only=bool(d.get("read_only", False)),
        cap_add=tuple(d.get("cap_add") or ()),
        cap_drop=tuple(d.get("cap_drop") or ()),
        stop_signal=d.get("stop_signal"),
        stop_timeout=float(d.get("stop_timeout", 10.0)),
        init=bool(d.get("init", False)),
    )
