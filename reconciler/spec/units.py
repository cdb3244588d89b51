"""Parsers for the small value syntaxes of manifests: durations, sizes, CPUs, ports, mounts.

Each parser returns the value or raises `ValueError` with a message meant for the user; the
loader turns that into a located Problem.
"""

from __future__ import annotations

import ipaddress
import re

from reconciler import limitranges

__all__ = [
    "parse_cpus",
    "parse_docker_size",
    "parse_duration",
    "parse_memory",
    "parse_port",
    "parse_publish",
    "parse_restart",
    "parse_size",
]

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_MEMORY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(b|k|m|g|t|K|M|G|T|Ki|Mi|Gi|Ti)?$")
_MEMORY_UNITS = {
    None: 1, "b": 1,
    "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,         # Docker's --memory units
    "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,     # Kubernetes binary
    "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,                # Kubernetes decimal
}
MIN_MEMORY = limitranges.MIN_MEMORY     # Docker's minimum memory limit and reservation (6 MiB)
MAX_DURATION = 365 * 24 * 3600.0


def parse_duration(value: str | float) -> float:
    """`10s`, `1m30s`, `500ms`, `2h`, or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a valid duration (like 10s, 1m30s or 500ms)")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        pos, seconds = 0, 0.0
        for m in _DURATION_PART.finditer(value):
            if m.start() != pos:
                break
            seconds += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
            pos = m.end()
        if pos != len(value) or not value:
            raise ValueError(f"{value!r} is not a valid duration (like 10s, 1m30s or 500ms)")
    if not 0 <= seconds <= MAX_DURATION:
        raise ValueError(f"duration {value!r} is out of range (0s to 8760h)")
    return seconds


def parse_size(value: str | float, what: str = "size") -> int:
    """Bytes from `256Mi`, `1Gi`, `500M`, `512m` (Docker's binary m) or an integer: any positive
    amount, as Docker takes a /dev/shm's or a tmpfs's size (the kernel rounds it up to whole pages;
    0, which Docker reads as "not set", is the field left out here)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a valid memory size (like 256Mi, 1Gi, 512m or a number of bytes)")
    if isinstance(value, int | float):      # JSON Schema's "integer" admits 1e9 and 512.0
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value!r} is not a valid memory size (like 256Mi, 1Gi, 512m or a number of bytes)")
        amount = int(value)
    else:
        m = _MEMORY.match(value)
        if m is None:
            raise ValueError(f"{value!r} is not a valid memory size (like 256Mi, 1Gi, 512m or a number of bytes)")
        amount = int(float(m.group(1)) * _MEMORY_UNITS[m.group(2)])
    if amount < 1:
        raise ValueError(f"{what} {value!r} is not a positive number of bytes (leave it out for the default)")
    return amount


def parse_memory(value: str | float, what: str = "memory limit") -> int:
    """A memory limit or reservation (`what`, for the message) in bytes, as `parse_size` reads it:
    at least 6Mi, Docker's minimum for --memory and --memory-reservation. Only these have it: a
    cgroup limit that small leaves the container no room to start, a tmpfs that small is a small
    tmpfs."""
    amount = parse_size(value, what)
    if amount < MIN_MEMORY:
        raise ValueError(f"{what} {value!r} is below the minimum of 6Mi")
    return amount


_DOCKER_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$", re.IGNORECASE)


def parse_docker_size(value: str) -> int:
    """Bytes from a size as the docker CLI writes it (`512`, `64k`, `32m`, `1g`, `1GiB`): binary
    units whatever the case, unlike a manifest's `M` (decimal, Kubernetes' meaning)."""
    m = _DOCKER_SIZE.match(value.strip())
    if not m:
        raise ValueError(f"{value!r} is not a valid size (like 512, 64k, 32m or 1g)")
    return int(float(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()])


def parse_cpus(value: str | float) -> float:
    """CPUs from `0.5`, `2` or millicpus `500m`."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a valid CPU amount (like 0.5, 2 or 500m)")
    try:
        if isinstance(value, str) and value.endswith("m"):
            cpus = int(value[:-1]) / 1000
        else:
            cpus = float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid CPU amount (like 0.5, 2 or 500m)") from None
    if not 0.001 <= cpus <= 1024:
        raise ValueError(f"CPU amount {value!r} is out of range (0.001 to 1024)")
    return cpus


def parse_restart(value: str) -> tuple[str, int]:
    """`no`, `always`, `unless-stopped`, `on-failure` or `on-failure:N`."""
    if value in ("no", "always", "unless-stopped", "on-failure"):
        return value, 0
    name, _, count = value.partition(":")
    if name == "on-failure" and count.isdigit() and len(count) <= 6:
        return name, int(count)
    raise ValueError(f"{value!r} is not a valid restart policy (no, on-failure[:N], always or unless-stopped)")


def _port_number(text: str, what: str, spec: str) -> int:
    if not text.isdigit() or len(text) > 5:
        raise ValueError(f"{spec!r}: {what} {text!r} is not a number")
    number = int(text)
    if not 1 <= number <= 65535:
        raise ValueError(f"{spec!r}: {what} {number} is out of range (1-65535)")
    return number


def parse_port(spec: str, *, chosen: bool = False) -> tuple[str, int, int, str]:
    """`[host_ip:]host_port:container_port[/tcp|udp]` -> (host_ip, host_port, container_port, proto).
    `chosen`: the host port may be left out (`80`, `:80`, `127.0.0.1::80`), 0: the engine
    chooses a free one (`docker run -p`'s forms; a manifest names its host port, or says so in the
    long form)."""
    body, slash, proto = spec.partition("/")
    if not slash:
        proto = "tcp"
    if proto not in ("tcp", "udp"):
        raise ValueError(f"{spec!r}: protocol {proto!r} is not tcp or udp")
    host_ip = "0.0.0.0"  # noqa: S104 - Docker publishes on all addresses by default
    if body.startswith("["):                            # [::1]:8080:80
        end = body.find("]")
        if end < 0 or body[end + 1 : end + 2] != ":":
            raise ValueError(f"{spec!r} is not a valid port ([hostIP:]hostPort:containerPort[/tcp|udp])")
        host_ip, body = body[1:end], body[end + 2 :]
        parts = body.split(":")
    else:
        parts = body.split(":")
        if len(parts) == 3:
            host_ip, parts = parts[0], parts[1:]
    if len(parts) == 1 and chosen:
        parts = ["", *parts]
    if len(parts) == 1:
        raise ValueError(f"{spec!r} has no host port; write hostPort:containerPort (like 8080:80)")
    if len(parts) != 2:
        raise ValueError(f"{spec!r} is not a valid port ([hostIP:]hostPort:containerPort[/tcp|udp])")
    try:
        ipaddress.ip_address(host_ip)
    except ValueError:
        raise ValueError(f"{spec!r}: host IP {host_ip!r} is not an IP address") from None
    host_port = 0 if chosen and not parts[0] else _port_number(parts[0], "host port", spec)
    container_port = _port_number(parts[1], "container port", spec)
    return host_ip, host_port, container_port, proto


def parse_publish(spec: str) -> tuple[str, int, int, str]:
    """`docker run -p`'s `[[host_ip:][host_port]:]container_port[/tcp|udp]`: `parse_port`'s form,
    its host port optional (0: the engine chooses one)."""
    return parse_port(spec, chosen=True)
