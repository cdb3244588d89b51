"""`ipv6` on a Network (#18): the manifest field, its checks and hash, compose's enable_ipv6."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler import spec
from reconciler.spec.errors import SpecError


def _network(tmp_path: Path, body: str) -> spec.models.Network:
    (tmp_path / "n.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Network\nmetadata: {name: shop}\n" + (f"spec: {body}\n" if body else ""))
    return spec.load(tmp_path).networks["shop"]


def test_ipv6_loads_with_or_without_a_subnet_and_changes_no_ipv4_hash(tmp_path: Path) -> None:
    plain = _network(tmp_path, "")
    assert (plain.ipv6, plain.ipv6_subnet) == (False, None)
    assert _network(tmp_path, "{ipv6: false}").spec_hash == plain.spec_hash     # old networks keep their hash
    pooled = _network(tmp_path, "{ipv6: true}")
    assert (pooled.ipv6, pooled.ipv6_subnet) == (True, None)
    given = _network(tmp_path, "{ipv6: true, ipv6Subnet: 'fd12:3456:789a:1::/64'}")
    assert given.ipv6_subnet == "fd12:3456:789a:1::/64"
    assert len({plain.spec_hash, pooled.spec_hash, given.spec_hash}) == 3


@pytest.mark.parametrize(("body", "message"), [
    ("{ipv6Subnet: 'fd12:3456:789a:1::/64'}", "needs ipv6: true"),
    ("{ipv6: true, ipv6Subnet: '10.1.0.0/24'}", "not an IPv6 network"),
    ("{subnet: 'fd12:3456:789a:1::/64'}", "set ipv6: true and ipv6Subnet"),
])
def test_ipv6_mistakes_are_load_errors(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        _network(tmp_path, body)
    assert message in str(err.value)


def test_compose_enable_ipv6_and_an_ipam_v6_subnet_map_onto_ipv6(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(textwrap.dedent("""\
        name: shop
        services:
          web: {image: busybox, networks: [dual, pooled]}
        networks:
          dual:
            enable_ipv6: true
            ipam:
              config:
                - {subnet: 10.77.0.0/24}
                - {subnet: "fd12:3456:789a:1::/64"}
          pooled: {enable_ipv6: true}
        """))
    nets = spec.load(tmp_path).networks
    assert (nets["shop_dual"].ipv6, nets["shop_dual"].ipv6_subnet, nets["shop_dual"].subnet) == (
        True, "fd12:3456:789a:1::/64", "10.77.0.0/24")
    assert (nets["shop_pooled"].ipv6, nets["shop_pooled"].ipv6_subnet) == (True, None)
