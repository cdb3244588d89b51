"""The DNS wire format (RFC 1035, 3596, 6891) as far as the engine's resolver (`dnsd.py`) needs
it: a query's header and its one question read; an answer made of them, with A, AAAA or PTR
records, or only an rcode. Anything else the resolver forwards as the bytes it got.

Written here rather than taken from dnspython: the resolver is a long-lived process per engine,
and dnspython's import (its `dns.name` pulls `importlib.metadata` and `email`) would more than
double its memory (about 14 MB of RSS, 65 ms at each start) for the few fields read and written
here. The resolver's tests ask it with real clients (busybox `nslookup`, a TCP and a UDP query).
"""

from __future__ import annotations

import ipaddress
import struct

from reconciler._dataclass import dataclass

__all__ = ["AAAA", "NXDOMAIN", "PTR", "SERVFAIL", "A", "Query", "address_rdata", "answer", "name_rdata", "parse",
           "reverse_address"]

A, PTR, AAAA = 1, 12, 28
_OPT = 41
_IN = 1
NOERROR, SERVFAIL, NXDOMAIN = 0, 2, 3

_QR, _OPCODE, _AA, _TC, _RD, _RA = 0x8000, 0x7800, 0x0400, 0x0200, 0x0100, 0x0080
_HEADER = struct.Struct(">HHHHHH")
_PLAIN_UDP = 512            # a UDP answer's size limit without EDNS
_EDNS_UDP = 1232            # ours with it (the DNS flag day's size: no IP fragmentation)


@dataclass(frozen=True)
class Query:
    """One question of a query, as read off the wire."""

    id: int
    flags: int
    name: str               # lower case, no final dot ("" for the root)
    qtype: int
    qclass: int
    question: bytes         # the question section as sent (echoed: 0x20 case randomisation)
    udp_size: int           # how big a UDP answer may be: the client's EDNS size, else 512
    edns: bool


def parse(wire: bytes) -> Query | None:
    """The query in `wire`; None when it is not one query with one question."""
    if len(wire) < _HEADER.size:
        return None
    qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    if flags & _QR or qdcount != 1:
        return None
    try:
        name, end = _read_name(wire, _HEADER.size)
        qtype, qclass = struct.unpack_from(">HH", wire, end)
    except (ValueError, struct.error):
        return None
    question = wire[_HEADER.size:end + 4]
    udp_size, edns = _PLAIN_UDP, False
    offset = end + 4
    try:
        for i in range(ancount + nscount + arcount):
            _, offset = _read_name(wire, offset)
            rtype, rclass, _ttl, rdlength = struct.unpack_from(">HHIH", wire, offset)
            offset += 10 + rdlength
            if rtype == _OPT and i >= ancount + nscount:
                udp_size, edns = max(_PLAIN_UDP, min(rclass, _EDNS_UDP)), True
    except (ValueError, struct.error):
        pass                        # a broken additional section: answered as without EDNS
    return Query(qid, flags, name, qtype, qclass, question, udp_size, edns)


def answer(q: Query, records: list[bytes] | tuple[bytes, ...] = (), *, rcode: int = NOERROR,
           authoritative: bool = False, ttl: int = 600, udp: bool = True) -> bytes:
    """The answer to `q`: `records` (rdata of q's type: `address_rdata`, `name_rdata`) for its
    name, or none with `rcode`. Over UDP, what does not fit the client's size is left out and
    the answer marked truncated (the client asks again over TCP)."""
    flags = _QR | (q.flags & (_OPCODE | _RD)) | _RA | (_AA if authoritative else 0) | rcode
    opt = b"\x00" + struct.pack(">HHIH", _OPT, _EDNS_UDP, 0, 0) if q.edns else b""
    rrs = [b"\xc0\x0c" + struct.pack(">HHIH", q.qtype, _IN, ttl, len(r)) + r for r in records]
    limit = q.udp_size if udp else 65535
    while True:
        wire = _HEADER.pack(q.id, flags, 1, len(rrs), 0, 1 if opt else 0) + q.question + b"".join(rrs) + opt
        if len(wire) <= limit or not rrs:
            return wire
        rrs.pop()
        flags |= _TC


def address_rdata(address: str) -> bytes:
    """An A or AAAA record's data: the address's bytes."""
    return ipaddress.ip_address(address).packed


def name_rdata(name: str) -> bytes:
    """A PTR record's data: `name` as labels (no compression)."""
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("idna") if not label.isascii() else label.encode()
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad label in {name!r}")
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def reverse_address(name: str) -> str | None:
    """The address a PTR question's name asks about (`4.3.2.1.in-addr.arpa`, 32 nibbles of
    `ip6.arpa`), or None."""
    labels = name.lower().split(".")
    try:
        if labels[-2:] == ["in-addr", "arpa"] and len(labels) == 6:
            return str(ipaddress.IPv4Address(".".join(reversed(labels[:4]))))
        if labels[-2:] == ["ip6", "arpa"] and len(labels) == 34:
            nibbles = "".join(reversed(labels[:32]))
            return str(ipaddress.IPv6Address(int(nibbles, 16)))
    except ValueError:
        return None
    return None


def _read_name(wire: bytes, offset: int) -> tuple[str, int]:
    """The name at `offset` (compression pointers followed, never in a loop) and where it ends."""
    labels: list[str] = []
    end = -1
    jumps = 0
    while True:
        if offset >= len(wire):
            raise ValueError("name runs past the message")
        length = wire[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(wire) or jumps > 16:
                raise ValueError("bad compression pointer")
            if end < 0:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | wire[offset + 1]
            jumps += 1
            continue
        if length & 0xC0:
            raise ValueError("unknown label type")
        if length == 0:
            name = ".".join(labels).lower()
            if len(name) > 253:
                raise ValueError("name too long")
            return name, end if end >= 0 else offset + 1
        label = wire[offset + 1:offset + 1 + length]
        if len(label) != length:
            raise ValueError("label runs past the message")
        labels.append(label.decode("ascii", "replace"))
        offset += 1 + length
