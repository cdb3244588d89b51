"""Compose's per-network keys of a service (`mac_address`, `link_local_ips`, `gw_priority`,
`priority`) and the service-level `mac_address`, translated into the manifest's network entries as
docker compose applies them (compose-go's NetworksByPriority, compose's prepareContainerMACAddress),
and the mistakes reported at the compose key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler import spec
from reconciler.spec.errors import SpecError


def _load(tmp_path: Path, text: str) -> spec.DesiredState:
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(text))
    return spec.load(tmp_path)


def test_each_key_becomes_the_entrys_and_priority_orders_the_networks(tmp_path: Path) -> None:
    web = _load(tmp_path, """\
        name: shop
        services:
          web:
            image: busybox:1.36
            networks:
              alpha:
              back: {mac_address: '02:42:AC:11:00:09', link_local_ips: [169.254.8.1, 'fe80::8'], gw_priority: 100}
              front: {priority: 5, gw_priority: 0}
              zulu: {priority: 5}
        networks: {alpha: {}, back: {}, front: {}, zulu: {}}
        """).containers["shop-web-1"]
    # the higher priority first, ties by name (compose-go's NetworksByPriority)
    assert web.networks == ("shop_front", "shop_zulu", "shop_alpha", "shop_back")
    assert dict(web.mac_addresses) == {"shop_back": "02:42:ac:11:00:09"}
    assert dict(web.link_local_ips) == {"shop_back": ("169.254.8.1", "fe80::8")}
    assert dict(web.gw_priorities) == {"shop_back": 100}


def test_without_the_keys_the_hash_is_as_before(tmp_path: Path) -> None:
    text = """\
        name: shop
        services:
          web:
            image: busybox:1.36
            networks: {back: {X}, front: {}}
        networks: {back: {}, front: {}}
        """
    plain = _load(tmp_path, text.replace("{X}", "{}")).containers["shop-web-1"]
    same = _load(tmp_path, text.replace("{X}", "{priority: 0, gw_priority: 0, link_local_ips: []}")).containers["shop-web-1"]
    assert same.spec_hash == plain.spec_hash
    moved = _load(tmp_path, text.replace("{X}", "{gw_priority: 1}")).containers["shop-web-1"]
    assert moved.spec_hash != plain.spec_hash


def test_the_service_level_mac_address_goes_to_the_main_network(tmp_path: Path) -> None:
    state = _load(tmp_path, """\
        name: shop
        services:
          one:
            image: busybox:1.36
            mac_address: '02:00:00:00:00:01'
          two:
            image: busybox:1.36
            mac_address: '02:00:00:00:00:02'
            networks:
              back:
              front: {priority: 1}
          three:
            image: busybox:1.36
            mac_address: '02:00:00:00:00:03'
            networks:
              back: {mac_address: '02:00:00:00:00:03'}
        networks: {back: {}, front: {}}
        """)
    assert dict(state.containers["shop-one-1"].mac_addresses) == {"shop_default": "02:00:00:00:00:01"}
    assert dict(state.containers["shop-two-1"].mac_addresses) == {"shop_front": "02:00:00:00:00:02"}
    assert dict(state.containers["shop-three-1"].mac_addresses) == {"shop_back": "02:00:00:00:00:03"}


@pytest.mark.parametrize(("service", "line", "message"), [
    ("""\
        mac_address: '02:00:00:00:00:01'
        networks: {back: {mac_address: '02:00:00:00:00:02'}}""", 5,
     "services.web.mac_address: the service-level mac_address 02:00:00:00:00:01 differs from the mac_address "
     "02:00:00:00:00:02 of its main network back"),
    ("""\
        mac_address: '02:00:00:00:00:01'
        network_mode: host""", 5, "services.web.mac_address: mac_address conflicts with network_mode 'host'"),
    ("""\
        networks: {back: {mac_address: '01:00:5e:00:00:01'}}""", 5,
     "services.web.networks.back.mac_address: 01:00:5e:00:00:01 is a multicast MAC address"),
    ("""\
        mac_address: 'zz'""", 5, "services.web.mac_address: 'zz' is not a MAC address"),
    ("""\
        networks: {back: {link_local_ips: [10.0.0.1]}}""", 5,
     "services.web.networks.back.link_local_ips[0]: 10.0.0.1 is not a link-local address"),
    ("""\
        networks: {back: {priority: 1.5}}""", 5, "services.web.networks.back.priority: priority must be a whole number"),
    ("""\
        networks: {back: {interface_name: eth3}}""", 5, "services.web.networks.back.interface_name: not supported yet"),
])
def test_mistakes_are_reported_at_the_compose_key(tmp_path: Path, service: str, line: int, message: str) -> None:
    body = textwrap.indent(textwrap.dedent(service), " " * 4)
    text = f"name: shop\nservices:\n  web:\n    image: busybox:1.36\n{body}\nnetworks: {{back: {{}}}}\n"
    (tmp_path / "compose.yaml").write_text(text)
    with pytest.raises(SpecError) as err:
        spec.load(tmp_path)
    assert message in str(err.value)
    assert f"compose.yaml:{line}:" in str(err.value), str(err.value)


def test_two_services_with_one_mac_on_a_network_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="02:00:00:00:00:01 is the MAC address of Container/shop-a-1 on shop_default already"):
        _load(tmp_path, """\
            name: shop
            services:
              a: {image: 'busybox:1.36', mac_address: '02:00:00:00:00:01'}
              b: {image: 'busybox:1.36', mac_address: '02:00:00:00:00:01'}
            """)
