"""Bridge networking made when first needed (backend.LazyNetwork, #21 memory at rest).

An engine opened as a pass opens it (opening.open_runtime: recovery, bridge networking plugged
in) makes no NetworkManager while nothing of bridge networking exists and its containers use
network "none": not to open, recover, observe, or run them. The first network made after that
works, and a container without networks still gets the default network, as with the manager
made up front; start-up recovery still finds what only the network side left (more of it:
test_crash_recovery.py), and with networks recorded, recovery and the list of networks read
their records without making the manager either.
"""

from __future__ import annotations

import ipaddress

import pytest

from reconciler.execution import observing
from reconciler.runtime import base, opening
from reconciler.runtime.native.backend import LazyNetwork, NativeRuntime
from reconciler.runtime.native.network import network
from tests.native.network.conftest import IMAGE, Harness
from tests.runtime.conftest import cleanup

pytestmark = [pytest.mark.root]


def test_no_manager_until_a_network_is_needed_then_one_that_works(harness: Harness, engine: NativeRuntime) -> None:
    cfg = harness.config
    place = opening.Place(root=cfg.root, run_dir=cfg.run_dir, name_prefix=cfg.name_prefix)
    rt = opening.open_runtime("native", place)          # crash recovery ran
    assert isinstance(rt, NativeRuntime)
    lazy = rt.network
    assert isinstance(lazy, LazyNetwork)
    rt.images = engine.images                           # the test's local image, no registry
    try:
        cid = rt.create_container(base.ContainerConfig(name="quiet", image=IMAGE, command=("sleep", "100"),
                                                       networks=("none",)))
        rt.start_container(cid)
        observed = observing.observe(rt)
        assert observed.networks == {}
        assert lazy._manager is None                    # nothing of bridge networking: not made

        rt.ensure_network(base.NetworkConfig(name="app", subnet=harness.subnet(0)))
        assert isinstance(lazy._manager, network.NetworkManager)
        assert [n.name for n in rt.list_networks()] == ["app"]
        on_app = rt.create_container(base.ContainerConfig(name="web", image=IMAGE, command=("sleep", "100"),
                                                          networks=("app",)))
        rt.start_container(on_app)
        address = rt.inspect_container(on_app).ip_addresses["app"]
        assert ipaddress.ip_address(address) in ipaddress.ip_network(harness.subnet(0))
        # no networks: the default one, as bridge networking plugged in always gave
        plain = rt.create_container(base.ContainerConfig(name="plain", image=IMAGE, command=("sleep", "100")))
        assert list(rt.inspect_container(plain).ip_addresses) == [network.DEFAULT_NETWORK]

        again = opening.open_runtime("native", place)   # network state now: it is looked at
        assert isinstance(again, NativeRuntime)
        assert isinstance(again.network, LazyNetwork)
        assert again.network.in_use()
        assert {n.name for n in again.list_networks()} == {"app", network.DEFAULT_NETWORK}
        assert [n.name for n in again.list_networks({"nope": "x"})] == []
        # recovery with nothing to recover and the list read the records: still no manager (#21)
        assert again.network._manager is None
        again.close()
        # only a leftover of the network side (hosts files of no container): recovery still finds it
        ghost = cfg.net_files_dir / "ghost"
        ghost.mkdir()
        opening.open_runtime("native", place).close()
        assert not ghost.exists()
    finally:
        cleanup(rt)                     # its networks too
