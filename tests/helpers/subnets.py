"""Private address blocks for tests, each handed to one test only.

Tests run side by side (pytest-xdist workers, and other suites on the same host), and every
bridge a test's engine makes is a route for the whole host. A block picked at random can land on
a neighbour's (CI once failed on exactly that: two tests drew the same /24), so blocks are
leased (tests/helpers/leases.py): a /22 of 10.200-254.x.x is chosen that no live lease holds and
no address or route on the host overlaps. A lease ends when `release` is called or when its
process is gone.

A /22 serves every shape tests use: the whole /22 as a pool, its first /23 as a pool, its first
/24 as a subnet, its upper /24s for a test's own namespaces.

IPv6 blocks are leased the same way (kind "subnets6"): a /48 of the ULA range fd00::/8 with a
random global ID, whose /64s a test gives its dual-stack networks.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import subprocess

from tests.helpers import leases

__all__ = ["lease_block", "lease_block6", "release", "release6", "routed", "routed6"]



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


def lease_block() -> ipaddress.IPv4Network:
    """A /22 of 10.200-254.x.x that no other test holds and the host does not route."""
    with leases.held("subnets") as live:
        used = routed() + [ipaddress.IPv4Network(k) for k in live]
        for _ in range(10_000):
            block = ipaddress.IPv4Network(f"10.{200 + secrets.randbelow(55)}.{4 * secrets.randbelow(64)}.0/22")
            if not any(block.overlaps(u) for u in used):
                live[str(block)] = os.getpid()
                return block
        raise RuntimeError("no free /22 in 10.200.0.0-10.254.255.255 for a test")


def release(block: ipaddress.IPv4Network | str) -> None:
    """End the lease on `block` (a /22 from `lease_block`, or any network inside it)."""
    net = ipaddress.IPv4Network(str(block), strict=False)
    with leases.held("subnets") as live:
        for k in [k for k in live if ipaddress.IPv4Network(k).overlaps(net)]:
            del live[k]


def routed6() -> list[ipaddress.IPv6Network]:
    """Every IPv6 network the host has an address or a route in (but the default route)."""
    out: list[ipaddress.IPv6Network] = []
    for args in (["ip", "-6", "-o", "addr", "show"], ["ip", "-6", "route", "show", "table", "all"]):
        text = subprocess.run(args, capture_output=True, text=True, check=False).stdout
        for word in text.split():
            if ":" in word:
                try:
                    out.append(ipaddress.IPv6Network(word, strict=False))
                except ValueError:
                    continue
    return [n for n in out if n.prefixlen > 0]


def lease_block6() -> ipaddress.IPv6Network:
    """A /48 of fd00::/8 that no other test holds and the host does not route."""
    with leases.held("subnets6") as live:
        used = routed6() + [ipaddress.IPv6Network(k) for k in live]
        for _ in range(10_000):
            block = ipaddress.IPv6Network((0xFD << 120 | secrets.randbits(40) << 80, 48))
            if not any(block.overlaps(u) for u in used):
                live[str(block)] = os.getpid()
                return block
        raise RuntimeError("no free /48 in fd00::/8 for a test")


def release6(block: ipaddress.IPv6Network | str) -> None:
    """End the lease on `block` (a /48 from `lease_block6`, or any network inside it)."""
    net = ipaddress.IPv6Network(str(block), strict=False)
    with leases.held("subnets6") as live:
        for k in [k for k in live if ipaddress.IPv6Network(k).overlaps(net)]:
            del live[k]
