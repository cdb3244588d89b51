"""How the native engine names its links, and which links are its own: one place for both.

An engine's links carry its name prefix P (1-7 of [a-z0-9], a letter first), then a marker
that says what they are:

    P-<network>     a bridge named after its network (lowercase letters, digits, '-'; 15 at most)
    P_<hex>         a bridge of a network whose name cannot be an interface name (hashed)
    Pv<hex>         a container's veth (hash of container id and network), 15 characters

A link is an engine's own only if it has one of these forms in full, not if it merely starts
with P: engines side by side may have prefixes where one begins the other (`rxc` and `rxc2`, or
`rxc` and `rxcv`), and each one's start-up recovery deletes the links of its forms that its
records do not name (`NetworkManager.recover`), as it removes the DOCKER-USER rules of such
bridges (`firewall.Firewall.remove_accepts`).

The forms of two prefixes never overlap. A name N of prefix P2 read as one of P's starts with P:
- P2 longer: P2 extends P, so N has a letter or digit of P2 where P's marker stands, never '-'
  or '_': only P's veth form `Pv<hex>` could take N, with P2 beginning `Pv`; then N's own marker
  falls inside that hex (a prefix has 7 characters at most, a veth name 15), and no marker is a
  hex digit.
- P2 shorter: P begins with P2, so N's marker stands where P has a letter or digit: only 'v'
  can, and N is P2's veth, all hex after the 'v', where P's marker would have to stand.
`tests/native/network/test_names.py` checks every pair of a set of prefixes made to collide.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["IFNAMSIZ", "PREFIX", "RESERVED", "bridge_name", "is_bridge", "is_veth", "veth_name"]

IFNAMSIZ = 15
PREFIX = re.compile(r"^[a-z][a-z0-9]{0,6}$")
# prefixes whose bridges would have the names of Docker's: `br-<network>` is what the DOCKER-USER
# rules leave to Docker's chains as its user networks' bridges (`br-+`, firewall.DOCKER_BRIDGES)
RESERVED = frozenset({"br"})
_VERBATIM = re.compile(r"^[a-z0-9-]+$")      # network names a bridge may carry as they are


def _short_hash(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def bridge_name(prefix: str, network: str) -> str:
    """`<prefix>-<network>` when it fits in 15 characters and the name is lowercase letters,
    digits and '-', else `<prefix>_<hash>`: a network named with '.', '_' or capitals (compose's
    `<project>_<name>`, Docker's names) gets no interface name that tools could read as a VLAN
    (`eth0.100`) or mangle. The verbatim form has '-' after the prefix and the hashed one '_',
    so they cannot collide."""
    verbatim = f"{prefix}-{network}"
    if len(verbatim) <= IFNAMSIZ and _VERBATIM.match(network):
        return verbatim
    return f"{prefix}_{_short_hash(network, IFNAMSIZ - len(prefix) - 1)}"


def veth_name(prefix: str, container_id: str, network: str) -> str:
    """The host end of a container's veth on `network`: `<prefix>v<hash>`, 15 characters."""
    return f"{prefix}v{_short_hash(container_id + '/' + network, IFNAMSIZ - len(prefix) - 1)}"


def is_bridge(prefix: str, name: str) -> bool:
    """Whether `name` has the form of a bridge of the engine with `prefix` (either form)."""
    if len(name) > IFNAMSIZ or not name.startswith(prefix) or len(name) < len(prefix) + 2:
        return False
    marker, rest = name[len(prefix)], name[len(prefix) + 1:]
    if marker == "-":
        return _VERBATIM.match(rest) is not None
    return marker == "_" and len(name) == IFNAMSIZ and _is_hex(rest)


def is_veth(prefix: str, name: str) -> bool:
    """Whether `name` has the form of a container veth of the engine with `prefix`."""
    return (len(name) == IFNAMSIZ and name.startswith(prefix) and name[len(prefix):len(prefix) + 1] == "v"
            and _is_hex(name[len(prefix) + 1:]))


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdef" for c in text)
