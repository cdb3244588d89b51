"""Host ports for tests that publish a container's port.

A published port is a DNAT rule for every process of the host, so it must never be a port the
kernel may hand to some other test's socket meanwhile: ports come from below the ephemeral
range (/proc/sys/net/ipv4/ip_local_port_range, 32768 up here), picked at random and checked
free. A port the kernel chose (`bind(0)`) is fine for a server of the test's own, never for
publishing: another test's client could be redirected into this test's container.

A port free now can still be chosen by a neighbour a moment later (a published port holds no
socket, so the neighbour's check cannot see it): ports are leased like address blocks
(tests/helpers/leases.py), owned by the leasing pid and dropped when that process is gone.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

from tests.helpers import leases

__all__ = ["publish_port", "publish_ports"]

LOW = 20000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _free(port: int) -> bool:
    for host in ("127.0.0.1", "0.0.0.0"):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def publish_ports(n: int) -> list[int]:
    """`n` distinct free ports below the ephemeral range that no other live test holds."""
    top = _ephemeral_start()
    with leases.held("ports") as live:
        chosen: list[int] = []
        while len(chosen) < n:
            port = LOW + secrets.randbelow(top - LOW)
            if port not in chosen and str(port) not in live and _free(port):
                chosen.append(port)
        live.update((str(port), os.getpid()) for port in chosen)
    return chosen


def publish_port() -> int:
    return publish_ports(1)[0]
