"""What a container's interfaces are as the kernel has them now: their MAC and IP addresses,
read inside its network namespace (inspect's `MacAddress` and link-local addresses report the
kernel's, not what the records asked for).

Read by a short-lived thread that joins the namespace (setns(2) moves the calling thread only),
with ioctls on a socket made there (SIOCGIFCONF: every IPv4 address and the interface holding
it; SIOCGIFHWADDR: a MAC) and `/proc/thread-self/net/if_inet6` (the IPv6 addresses, their scope
and flags): the standard library only, no netlink library, so `reconcile inspect` stays within
its start-up budget (it imports no pyroute2: tests/native/containers/test_cli.py).
"""

from __future__ import annotations

import array
import fcntl
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["LINK_SCOPE", "NODAD", "in_thread", "inside", "interfaces", "setns"]

_SIOCGIFCONF = 0x8912
_SIOCGIFHWADDR = 0x8927
_IFREQ = 40                 # sizeof(struct ifreq) on 64-bit Linux
_CLONE_NEWNET = 0x40000000
LINK_SCOPE = 0x20           # if_inet6's scope of an fe80::/10 address (IPV6_ADDR_LINKLOCAL)
NODAD = 0x02                # IFA_F_NODAD: an address the engine added (the kernel's own fe80:: has DAD)
_T = TypeVar("_T")


def setns(fd: int) -> None:
    """The calling thread (only) into the network namespace open at `fd`."""
    if hasattr(os, "setns"):                        # Python 3.12
        os.setns(fd, _CLONE_NEWNET)
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def inside(netns: str, make: Callable[[], _T]) -> _T:
    """`make()` run by the calling thread inside the namespace at `netns`, then back home."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(target)
        finally:
            os.close(target)
        try:
            return make()
        finally:
            setns(home)
    finally:
        os.close(home)


def in_thread(netns: str, make: Callable[[], _T]) -> _T:
    """`inside` in a thread of its own, which ends right after (a thread that could not go
    back to the host's namespace must not do other work)."""
    out: list[_T] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            out.append(inside(netns, make))
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=work, name="netns-work", daemon=True)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return out[0]


def _ipv4(sock: socket.socket) -> dict[str, list[str]]:
    """Every IPv4 address by the interface that holds it (SIOCGIFCONF lists secondary ones too)."""
    size = 64 * _IFREQ
    while True:
        buf = array.array("B", bytes(size))
        ifc = struct.pack("iL", size, buf.buffer_info()[0])
        used = struct.unpack("iL", fcntl.ioctl(sock.fileno(), _SIOCGIFCONF, ifc))[0]
        if used < size:
            break
        size *= 2                                   # (full: there may be more)
    data = buf.tobytes()
    out: dict[str, list[str]] = {}
    for i in range(0, used, _IFREQ):
        name = data[i:i + 16].split(b"\0", 1)[0].decode()
        out.setdefault(name.split(":", 1)[0], []).append(socket.inet_ntoa(data[i + 20:i + 24]))
    return out


def _ipv6() -> dict[str, list[tuple[str, int, int]]]:
    """Every IPv6 address as (address, scope, flags) by interface."""
    out: dict[str, list[tuple[str, int, int]]] = {}
    try:
        with open("/proc/thread-self/net/if_inet6") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:                       # IPv6 off in the kernel
        return out
    for line in lines:
        hexaddr, _index, _plen, scope, flags, name = line.split()
        text = socket.inet_ntop(socket.AF_INET6, bytes.fromhex(hexaddr))
        out.setdefault(name, []).append((text, int(scope, 16), int(flags, 16)))
    return out


def _read(names: list[str]) -> dict[str, dict[str, Any]]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        v4 = _ipv4(sock)
        v6 = _ipv6()
        out: dict[str, dict[str, Any]] = {}
        for name in names:
            try:
                raw = fcntl.ioctl(sock.fileno(), _SIOCGIFHWADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue                            # no such interface
            mac = ":".join(f"{b:02x}" for b in raw[18:24])
            out[name] = {"mac": mac, "ipv4": tuple(v4.get(name, ())), "ipv6": tuple(v6.get(name, ()))}
        return out


def _names() -> list[str]:
    with open("/proc/thread-self/net/dev") as fh:
        return [line.split(":", 1)[0].strip() for line in fh.read().splitlines()[2:]]


def interfaces(netns_path: str) -> dict[str, dict[str, Any]]:
    """Each interface of the namespace at `netns_path` but `lo`, by name: its `mac` (lower-case
    colon form), `ipv4` (addresses) and `ipv6` ((address, scope, flags) each). Empty when the
    namespace is gone or cannot be joined (no CAP_SYS_ADMIN)."""
    found: list[dict[str, dict[str, Any]]] = []

    def work() -> None:
        try:
            home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            os.close(home)
            return
        try:
            try:
                setns(target)
            except OSError:
                return
            try:
                found.append(_read([n for n in _names() if n != "lo"]))
            finally:
                setns(home)                # a thread that cannot go back ends here anyway
        except OSError:
            return
        finally:
            os.close(target)
            os.close(home)

    worker = threading.Thread(target=work, name="netns-read", daemon=True)
    worker.start()
    worker.join()
    return found[0] if found else {}
