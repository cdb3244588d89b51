"""Which links are an engine's own: its names' forms in full, never a name that merely starts
with its prefix (a neighbour's prefix may begin with it: `rxc` and `rxc2`, `rxc` and `rxcv`)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from reconciler.runtime import errors
from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.network import names, network

# prefixes made to collide: each begins another, with the markers ('v' above all) and hex
# digits after it, at every length up to the longest a prefix may have
_PREFIXES = sorted({"rxc", "rxc2", "rxcv", "rxcv1", "rxcvv", "rxca", "rxcaf", "rxc0", "r", "rv", "rva",
                    "rvv", "ra", "a", "av", "avv", "avvvvvv", "a1", "a12", "af", "afv", "rxcv123", "rxcvab"}
                   | {"".join(t) for t in itertools.product("av", "av0f", "v0-_")
                      if names.PREFIX.match("".join(t))})
_NETWORKS = ("n", "n2", "a-b", "v0", "ab-", "x-1-2-3", "a-rather-long-network", "A_b", "web.1", "UPPER")
_CONTAINERS = ("c" * 64, "0" * 64, "deadbeef", "ctr-1")


def _made(prefix: str) -> tuple[set[str], set[str]]:
    bridges = {names.bridge_name(prefix, n) for n in _NETWORKS}
    veths = {names.veth_name(prefix, c, n) for c in _CONTAINERS for n in _NETWORKS}
    return bridges, veths


def test_every_prefix_owns_its_own_names_and_no_other_prefixes() -> None:
    assert all(names.PREFIX.match(p) for p in _PREFIXES)
    made = {p: _made(p) for p in _PREFIXES}
    for p, (bridges, veths) in made.items():
        assert all(len(n) <= names.IFNAMSIZ for n in bridges | veths)
        assert all(names.is_bridge(p, b) and not names.is_veth(p, b) for b in bridges), p
        assert all(names.is_veth(p, v) and not names.is_bridge(p, v) for v in veths), p
    for p, q in itertools.permutations(_PREFIXES, 2):
        theirs = made[q][0] | made[q][1]
        assert not theirs & (made[p][0] | made[p][1]), (p, q)        # no name two engines make
        taken = {n for n in theirs if names.is_bridge(p, n) or names.is_veth(p, n)}
        assert not taken, f"prefix {p!r} would take {sorted(taken)} of prefix {q!r}"


def test_the_forms_are_read_in_full() -> None:
    assert names.is_bridge("rxc", "rxc-n2")
    assert names.is_bridge("rxc", "rxc_0123456789a")
    assert not names.is_bridge("rxc", "rxc2-n2")                     # the neighbour of the report
    assert not names.is_veth("rxc", "rxc2v0123456789")
    assert not names.is_bridge("rxc", "rxc_0123")                     # a hashed name is 15 long
    assert not names.is_bridge("rxc", "rxc_0123456789g")
    assert not names.is_bridge("rxc", "rxc-")
    assert not names.is_bridge("rxc", "rxc-Web")
    assert not names.is_veth("rxc", "rxcvleak")
    assert not names.is_veth("rxc", "rxcv0123456789ab")               # 16: no interface name
    assert names.is_veth("rxc", "rxcv0123456789a")


def test_no_prefix_names_a_link_as_docker_names_its_bridges(tmp_path: Path) -> None:
    """Traffic to `docker0` and `br-+` is left to Docker's rules (firewall.DOCKER_BRIDGES): a
    prefix whose bridges would be named so (`br-<network>`) is refused before anything is made."""
    for p in _PREFIXES:
        for n in _made(p)[0] | _made(p)[1]:
            assert n != "docker0"
            assert not n.startswith("br-")
    config = NativeConfig(root=tmp_path / "root", run_dir=tmp_path / "run", name_prefix="br")
    with pytest.raises(errors.InvalidArgument, match="Docker"):
        network.NetworkManager(config)
    assert not (tmp_path / "root").exists()
