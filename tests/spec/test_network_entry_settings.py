"""A container's own settings on one of its networks (the manifest's `networks:` entries, compose's
`services.*.networks.*` keys): `macAddress`, `linkLocalIPs`, `gwPriority` and `priority`; their
load-time checks (file:line:field), what the spec hash takes of them, and the order `priority` gives."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler import spec
from reconciler.spec.errors import SpecError

NETWORKS = """\
apiVersion: reconciler/v1
kind: Network
metadata: {name: back}
spec: {subnet: 10.61.0.0/24}
---
apiVersion: reconciler/v1
kind: Network
metadata: {name: front}
spec: {}
"""
HEAD = NETWORKS.count("\n")     # the container documents start below (each: `---` and 6 lines)


def _load(tmp_path: Path, *entries: str) -> spec.DesiredState:
    docs = [NETWORKS, *(textwrap.dedent(f"""\
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: c{i}}}
        spec:
          image: busybox:1.36
          networks: [{entry}]
        """) for i, entry in enumerate(entries))]
    (tmp_path / "m.yaml").write_text("---\n".join(docs))
    return spec.load(tmp_path)


def test_the_settings_load_normalised_by_network(tmp_path: Path) -> None:
    c = _load(tmp_path, "front, {name: back, macAddress: 02-42-AC-11-00-02, "
                        "linkLocalIPs: [169.254.1.2, 'FE80::2'], gwPriority: -3}").containers["c0"]
    assert c.networks == ("front", "back")
    assert dict(c.mac_addresses) == {"back": "02:42:ac:11:00:02"}
    assert dict(c.link_local_ips) == {"back": ("169.254.1.2", "fe80::2")}
    assert dict(c.gw_priorities) == {"back": -3}


def test_each_setting_is_hashed_when_set_and_old_hashes_stay(tmp_path: Path) -> None:
    plain = _load(tmp_path, "front, back").containers["c0"].spec_hash
    assert _load(tmp_path, "front, {name: back}").containers["c0"].spec_hash == plain
    assert _load(tmp_path, "front, {name: back, gwPriority: 0, priority: 0}").containers["c0"].spec_hash == plain
    hashes = {plain}
    for entry in ("{name: back, macAddress: '02:42:ac:11:00:02'}", "{name: back, macAddress: '02:42:ac:11:00:03'}",
                  "{name: back, linkLocalIPs: [169.254.1.2]}", "{name: back, gwPriority: 1}"):
        hashes.add(_load(tmp_path, f"front, {entry}").containers["c0"].spec_hash)
    assert len(hashes) == 5


def test_priority_orders_the_networks_the_higher_first_ties_as_written(tmp_path: Path) -> None:
    state = _load(tmp_path, "front, {name: back, priority: 10}", "{name: front, priority: -1}, back",
                  "front, {name: back, priority: 0}")
    assert state.containers["c0"].networks == ("back", "front")
    assert state.containers["c1"].networks == ("back", "front")
    assert state.containers["c2"].networks == ("front", "back")
    # what a priority does is the order: the same order hashes the same
    assert state.containers["c2"].spec_hash == _load(tmp_path, "front, back").containers["c0"].spec_hash
    assert state.containers["c0"].spec_hash == _load(tmp_path, "back, front").containers["c0"].spec_hash


@pytest.mark.parametrize(("entries", "message"), [
    (["{name: back, macAddress: '03:42:ac:11:00:02'}"], "03:42:ac:11:00:02 is a multicast MAC address"),
    (["{name: back, macAddress: 'ff:ff:ff:ff:ff:ff'}"], "multicast MAC address"),
    (["{name: back, macAddress: '00:00:00:00:00:00'}"], "is not an interface's MAC address"),
    (["{name: back, macAddress: '02:42:ac:11:00:02:00:01'}"], "is not a MAC address of 6 octets"),
    (["{name: back, macAddress: '02:42:ac:11-00-02'}"], "is not a MAC address of 6 octets"),
    (["{name: back, macAddress: nonsense}"], "'nonsense' is not a MAC address"),
    (["{name: back, linkLocalIPs: [10.61.0.5]}"], "10.61.0.5 is not a link-local address (169.254.0.0/16 or fe80::/10)"),
    (["{name: back, linkLocalIPs: ['fd00::5']}"], "fd00::5 is not a link-local address"),
    (["{name: back, linkLocalIPs: [169.254.0.0]}"], "network or broadcast address of 169.254.0.0/16"),
    (["{name: back, linkLocalIPs: [nope]}"], "'nope' is not an IP address"),
    (["{name: back, linkLocalIPs: [169.254.1.1, 169.254.1.1]}"], "169.254.1.1 is listed twice"),
    (["{name: host, macAddress: '02:00:00:00:00:01'}"], "network host has no interface of the container's own; remove macAddress"),
    (["{name: none, gwPriority: 2}"], "network none has no interface of the container's own; remove gwPriority"),
    (["{name: back, macAddress: '02:00:00:00:00:01'}", "front, {name: back, macAddress: '02:00:00:00:00:01'}"],
     "02:00:00:00:00:01 is the MAC address of Container/c0 on back already"),
])
def test_mistakes_are_load_errors_at_their_line_naming_the_field(
        tmp_path: Path, entries: list[str], message: str) -> None:
    with pytest.raises(SpecError) as err:
        _load(tmp_path, *entries)
    text = str(err.value)
    assert message in text
    line = HEAD + 1 + 7 * (len(entries) - 1) + 6       # `networks:` is the last container's 6th line after `---`
    assert f"m.yaml:{line}:" in text, text
    assert "spec.networks[" in text, text


def test_the_same_mac_on_two_networks_of_one_host_is_fine(tmp_path: Path) -> None:
    state = _load(tmp_path, "{name: back, macAddress: '02:00:00:00:00:01'}", "{name: front, macAddress: '02:00:00:00:00:01'}")
    assert dict(state.containers["c1"].mac_addresses) == {"front": "02:00:00:00:00:01"}


def test_a_fixed_address_problem_is_reported_at_its_entry_whatever_the_priority_order(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        _load(tmp_path, "{name: front}, {name: back, ipv4Address: 10.62.0.9, priority: 5}")
    assert "spec.networks[1].ipv4Address" in str(err.value)


def test_a_schema_error_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        _load(tmp_path, "{name: back, gwPriority: high}")
    assert "gwPriority" in str(err.value)
    with pytest.raises(SpecError) as err:
        _load(tmp_path, "{name: back, macadress: '02:00:00:00:00:01'}")
    assert "macAddress" in str(err.value)           # did you mean


def test_replicas_cannot_share_a_mac_address(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(NETWORKS + textwrap.dedent("""\
        ---
        apiVersion: reconciler/v1
        kind: Container
        metadata: {name: web}
        spec: {image: "busybox:1.36", replicas: 2, networks: [{name: back, macAddress: '02:00:00:00:00:01'}]}
        """))
    with pytest.raises(SpecError, match="2 replicas cannot share one MAC address"):
        spec.load(tmp_path)
