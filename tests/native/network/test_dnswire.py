"""The embedded DNS server's wire format (network/dnswire.py) read and written as an independent
implementation (dnspython) writes and reads it: queries with and without EDNS, answers of
every record type the server gives, truncation to the client's UDP size, hostile input."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

from reconciler.runtime.native.network import dnswire


def _query(name: str, rdtype: str, *, edns: bool = False, payload: int = 1232) -> bytes:
    q = dns.message.make_query(name, rdtype, use_edns=0 if edns else False, payload=payload)
    return bytes(q.to_wire())


def test_a_query_read_and_answered_as_dnspython_reads_it() -> None:
    wire = _query("Web.Shop", "A")
    q = dnswire.parse(wire)
    assert q is not None
    assert (q.name, q.qtype, q.edns, q.udp_size) == ("web.shop", dnswire.A, False, 512)
    out = dns.message.from_wire(dnswire.answer(q, [dnswire.address_rdata("10.1.0.2"),
                                                   dnswire.address_rdata("10.1.0.3")], authoritative=True))
    sent = dns.message.from_wire(wire)
    assert out.id == sent.id
    assert out.flags & dns.flags.QR
    assert out.flags & dns.flags.AA
    assert out.flags & dns.flags.RA
    assert out.flags & dns.flags.RD                                   # the client's RD echoed
    assert str(out.question[0].name) == "Web.Shop."                   # the question as sent (0x20)
    assert sorted(r.address for r in out.answer[0]) == ["10.1.0.2", "10.1.0.3"]
    assert out.answer[0].ttl == 600


def test_aaaa_ptr_nxdomain_and_servfail() -> None:
    q6 = dnswire.parse(_query("db", "AAAA", edns=True))
    assert q6 is not None
    assert (q6.qtype, q6.edns) == (dnswire.AAAA, True)
    out = dns.message.from_wire(dnswire.answer(q6, [dnswire.address_rdata("fd00::5")]))
    assert [r.address for r in out.answer[0]] == ["fd00::5"]
    assert out.edns == 0                                              # EDNS answered with EDNS

    for address in ("10.1.0.2", "fd00::5"):
        reverse = dns.reversename.from_address(address).to_text()
        qp = dnswire.parse(_query(reverse, "PTR"))
        assert qp is not None
        assert dnswire.reverse_address(qp.name) == address
        out = dns.message.from_wire(dnswire.answer(qp, [dnswire.name_rdata("web.shop")]))
        assert [str(r.target) for r in out.answer[0]] == ["web.shop."]
    assert dnswire.reverse_address("1.2.3.in-addr.arpa") is None
    assert dnswire.reverse_address("x.2.3.4.in-addr.arpa") is None

    qn = dnswire.parse(_query("nowhere", "A"))
    assert qn is not None
    for rcode, want in ((dnswire.NXDOMAIN, dns.rcode.NXDOMAIN), (dnswire.SERVFAIL, dns.rcode.SERVFAIL)):
        out = dns.message.from_wire(dnswire.answer(qn, rcode=rcode))
        assert (out.rcode(), out.answer) == (want, [])


@pytest.mark.parametrize(("edns", "limit"), [(False, 512), (True, 1232)])
def test_a_udp_answer_too_big_for_the_client_is_cut_and_marked_truncated(edns: bool, limit: int) -> None:
    q = dnswire.parse(_query("scaled", "AAAA", edns=edns, payload=4096))
    assert q is not None
    many = [dnswire.address_rdata(f"fd00::{i:x}") for i in range(1, 120)]
    udp = dnswire.answer(q, many)
    assert len(udp) <= limit
    out = dns.message.from_wire(udp)
    assert out.flags & dns.flags.TC
    assert 0 < len(out.answer[0]) < len(many)
    tcp = dns.message.from_wire(dnswire.answer(q, many, udp=False))        # over TCP: all of them
    assert not tcp.flags & dns.flags.TC
    assert len(tcp.answer[0]) == len(many)


def test_what_is_not_one_query_is_not_read() -> None:
    wire = _query("web", "A")
    answer = dns.message.make_response(dns.message.from_wire(wire))
    assert dnswire.parse(bytes(answer.to_wire())) is None                # an answer, not a query
    assert dnswire.parse(b"") is None
    assert dnswire.parse(wire[:15]) is None                               # cut in its name
    looped = wire[:12] + b"\xc0\x0c" + b"\x00\x01\x00\x01"                # a pointer to itself
    assert dnswire.parse(looped) is None
    pointed = wire[:12] + b"\x03web\x00\x00\x01\x00\x01"
    q = dnswire.parse(pointed)
    assert q is not None
    assert q.name == "web"
