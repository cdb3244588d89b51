"""A container's fixed address on a network (#16 item: ipv4_address): the manifest form
`networks: [{name, ipv4Address, ipv6Address}]`, its load-time checks (file:line), its hash, and
compose's `ipv4_address` / `ipv6_address` mapped onto it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler import spec
from reconciler.spec.errors import SpecError

NETWORK = """\
apiVersion: reconciler/v1
kind: Network
metadata: {name: back}
spec: {subnet: 10.61.0.0/24, ipv6: true, ipv6Subnet: 'fd12:3456:789a:1::/64'}
"""


def _load(tmp_path: Path, *containers: str) -> spec.DesiredState:
    docs = [NETWORK, *(textwrap.dedent(f"""\
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: c{i}}}
        spec:
          image: busybox:1.36
          networks: [{entry}]
        """) for i, entry in enumerate(containers))]
    (tmp_path / "m.yaml").write_text("---\n".join(docs))
    return spec.load(tmp_path)


def test_a_fixed_address_loads_is_hashed_and_leaves_other_hashes_alone(tmp_path: Path) -> None:
    plain = _load(tmp_path, "back").containers["c0"]
    assert _load(tmp_path, "{name: back}").containers["c0"].spec_hash == plain.spec_hash
    fixed = _load(tmp_path, "{name: back, ipv4Address: 10.61.0.10, ipv6Address: 'fd12:3456:789a:1::a'}").containers["c0"]
    assert fixed.networks == ("back",)
    assert dict(fixed.ipv4_addresses) == {"back": "10.61.0.10"}
    assert dict(fixed.ipv6_addresses) == {"back": "fd12:3456:789a:1::a"}
    moved = _load(tmp_path, "{name: back, ipv4Address: 10.61.0.11}").containers["c0"]
    assert len({plain.spec_hash, fixed.spec_hash, moved.spec_hash}) == 3


@pytest.mark.parametrize(("entries", "message"), [
    (["{name: back, ipv4Address: 10.62.0.10}"], "10.62.0.10 is outside the subnet 10.61.0.0/24 of network back"),
    (["{name: back, ipv4Address: 10.61.0.1}"], "10.61.0.1 is the network address, broadcast address or gateway"),
    (["{name: back, ipv4Address: 10.61.0.255}"], "broadcast address"),
    (["{name: back, ipv4Address: 'fd00::1'}"], "'fd00::1' is not an IPv4 address"),
    (["{name: back, ipv6Address: 'fd99::5'}"], "fd99::5 is outside the subnet fd12:3456:789a:1::/64"),
    (["{name: back, ipv4Address: 10.61.0.9}", "{name: back, ipv4Address: 10.61.0.9}"],
     "10.61.0.9 is the fixed address of Container/c0 on back already"),
    (["{name: host, ipv4Address: 10.61.0.9}"], "network host has no address of the container's own"),
])
def test_fixed_address_mistakes_are_load_errors_at_their_line(tmp_path: Path, entries: list[str], message: str) -> None:
    with pytest.raises(SpecError) as err:
        _load(tmp_path, *entries)
    text = str(err.value)
    assert message in text
    last = len(entries) - 1
    line = 11 + 7 * last             # the network's 4 lines, then 7 per container (`---` first), `networks:` its 7th
    assert f"m.yaml:{line}:" in text, text


def test_replicas_cannot_share_a_fixed_address(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(NETWORK + textwrap.dedent("""\
        ---
        apiVersion: reconciler/v1
        kind: Container
        metadata: {name: web}
        spec: {image: "busybox:1.36", replicas: 2, networks: [{name: back, ipv4Address: 10.61.0.10}]}
        """))
    with pytest.raises(SpecError, match="2 replicas cannot share one fixed address"):
        spec.load(tmp_path)


def test_compose_ipv4_and_ipv6_address_become_the_entry_addresses(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(textwrap.dedent("""\
        name: shop
        services:
          web:
            image: busybox:1.36
            networks:
              back: {ipv4_address: 10.61.0.10, ipv6_address: 'fd12:3456:789a:1::a', aliases: [www]}
              front:
        networks:
          back:
            enable_ipv6: true
            ipam: {config: [{subnet: 10.61.0.0/24}, {subnet: 'fd12:3456:789a:1::/64'}]}
          front: {}
        """))
    web = spec.load(tmp_path).containers["shop-web-1"]
    assert web.networks == ("shop_back", "shop_front")
    assert dict(web.ipv4_addresses) == {"shop_back": "10.61.0.10"}
    assert dict(web.ipv6_addresses) == {"shop_back": "fd12:3456:789a:1::a"}
    assert web.aliases == ("web", "www")
