"""Private address blocks for tests, each handed to one test only.

Tests run side by side (pytest-xdist workers, and other suites on the same host), and every
bridge a test's engine makes is a route for the whole host. A block picked at random can land on
a neighbour's (CI once failed on exactly that: two tests drew the same /24), so blocks are
leased: under an flock on a file shared by every process of the host, a /22 of 10.200-254.x.x is
chosen that no live lease holds and no address or route on the host overlaps, and recorded with
the leasing process's pid. A lease ends when `release` is called or when its process is gone
(the next leaser drops it), so a killed worker never strands a block for long.

A /22 serves every shape tests use: the whole /22 as a pool, its first /23 as a pool, its first
/24 as a subnet, its upper /24s for a test's own namespaces.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import secrets
import subprocess
from pathlib import Path

__all__ = ["lease_block", "release", "routed"]

LEASES = Path("/tmp/reconciler-test-subnets.json")
LOCK = Path("/tmp/reconciler-test-subnets.lock")


def routed() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the host has an address or a route in."""
    out: list[ipaddress.IPv4Network] = []
    for args in (["ip", "-4", "-o", "addr", "show"], ["ip", "-4", "route", "show", "table", "all"]):
        text = subprocess.run(args, capture_output=True, text=True, check=False).stdout
        for word in text.split():
            if "/" in word and word[0].isdigit():
                try:
                    out.append(ipaddress.IPv4Network(word, strict=False))
                except ValueError:
                    continue
    return [n for n in out if n.prefixlen > 0]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read() -> dict[str, int]:
    try:
        data = json.loads(LEASES.read_text())
    except (OSError, ValueError):
        return {}
    return {k: int(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write(leases: dict[str, int]) -> None:
    tmp = LEASES.with_suffix(f".{os.getpid()}")
    tmp.write_text(json.dumps(leases))
    os.replace(tmp, LEASES)


def lease_block() -> ipaddress.IPv4Network:
    """A /22 of 10.200-254.x.x that no other test holds and the host does not route."""
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        leases = {k: pid for k, pid in _read().items() if _alive(pid)}
        used = routed() + [ipaddress.IPv4Network(k) for k in leases]
        for _ in range(10_000):
            block = ipaddress.IPv4Network(f"10.{200 + secrets.randbelow(55)}.{4 * secrets.randbelow(64)}.0/22")
            if not any(block.overlaps(u) for u in used):
                leases[str(block)] = os.getpid()
                _write(leases)
                return block
        raise RuntimeError("no free /22 in 10.200.0.0-10.254.255.255 for a test")


def release(block: ipaddress.IPv4Network | str) -> None:
    """End the lease on `block` (a /22 from `lease_block`, or any network inside it)."""
    net = ipaddress.IPv4Network(str(block), strict=False)
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        leases = _read()
        for k in [k for k in leases if ipaddress.IPv4Network(k).overlaps(net)]:
            del leases[k]
        _write(leases)
