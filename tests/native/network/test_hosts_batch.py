"""Peers' hosts files in a batch (NetworkManager.batch, the executor's pass): a new container's
name reaches them within a second and at the batch's end, a removed one leaves them at once, and
a process killed while names waited leaves a mark that start-up recovery acts on."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reconciler.runtime import base
from reconciler.runtime.native.containers import recovery
from reconciler.runtime.native.network import network, stale
from tests.native.network.conftest import Harness

pytestmark = [pytest.mark.root]

REPO = Path(__file__).resolve().parents[3]


def _hosts(harness: Harness, cid: str) -> str:
    return (harness.config.run_dir / "net" / cid / "hosts").read_text()


def _names(harness: Harness, cid: str) -> set[str]:
    return {n for line in _hosts(harness, cid).splitlines()[6:] for n in line.split("\t", 1)[1].split()}


def _marks(harness: Harness) -> list[str]:
    d = harness.config.net_stale_dir
    return sorted(os.listdir(d)) if d.is_dir() else []


def test_a_new_name_reaches_the_peers_after_the_timers_delay_and_at_the_end_of_the_batch(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    # 3 s instead of 1: what this test reads right after an attach is read well within it on a
    # loaded host
    monkeypatch.setattr(network, "_STALE_PEERS_MAX", 3.0)
    m = harness.manager
    m.ensure_network(base.NetworkConfig(name="lan", subnet=harness.subnet(0)))
    m.attach("ctr-a", name="alpha", hostname="alpha", networks=["lan"])
    with m.batch():
        m.attach("ctr-b", name="bravo", hostname="bravo", networks=["lan"])
        assert "alpha" in _names(harness, "ctr-b")          # its own file names every peer at once
        assert "bravo" not in _names(harness, "ctr-a")      # its peers' wait (one rewrite for many)
        assert [n.split(".")[0] for n in _marks(harness)] == [str(os.getpid())]
        assert stale.dead_marks(harness.config) == []           # held: its process lives
        deadline = time.monotonic() + 10
        while "bravo" not in _names(harness, "ctr-a") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "bravo" in _names(harness, "ctr-a")          # the timer
        assert _marks(harness) == []
        m.attach("ctr-c", name="charlie", hostname="charlie", networks=["lan"])
        assert "charlie" not in _names(harness, "ctr-a")
    assert "charlie" in _names(harness, "ctr-a")            # the batch's end
    assert "charlie" in _names(harness, "ctr-b")
    assert _names(harness, "ctr-c") >= {"alpha", "bravo"}
    assert _marks(harness) == []


def test_a_removed_or_renamed_container_leaves_its_peers_at_once_in_a_batch(harness: Harness) -> None:
    m = harness.manager
    m.ensure_network(base.NetworkConfig(name="lan", subnet=harness.subnet(0)))
    # host name: the short id, as the engine gives a container without one (a host name given
    # stays a name its peers know through a rename, as on dockerd)
    for cid, name in (("ctr-a", "alpha"), ("ctr-b", "bravo"), ("ctr-c", "charlie")):
        m.attach(cid, name=name, hostname=cid, networks=["lan"])
    with m.batch():
        m.attach("ctr-d", name="delta", hostname="ctr-d", networks=["lan"])
        m.detach("ctr-b")
        # the removal rewrote the network's files whole: the waiting name went with it
        assert "bravo" not in _names(harness, "ctr-a")
        assert "delta" in _names(harness, "ctr-a")
        assert _marks(harness) == []
        m.rename("ctr-c", "carol")
        assert "carol" in _names(harness, "ctr-a")
        assert "charlie" not in _names(harness, "ctr-a")


def test_a_process_killed_while_names_waited_is_repaired_by_start_up_recovery(harness: Harness) -> None:
    m = harness.manager
    m.ensure_network(base.NetworkConfig(name="lan", subnet=harness.subnet(0)))
    m.attach("ctr-a", name="alpha", hostname="alpha", networks=["lan"])
    c = harness.config
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from reconciler.runtime.native.config import NativeConfig
        from reconciler.runtime.native.network import network
        network._STALE_PEERS_MAX = 600.0        # no timer before the kill, however loaded the host
        m = network.NetworkManager(NativeConfig(root=Path({str(c.root)!r}), run_dir=Path({str(c.run_dir)!r}),
                                                name_prefix={c.name_prefix!r}, subnet_pool={c.subnet_pool!r}))
        with m.batch():
            m.attach("ctr-k", name="kilo", hostname="kilo", networks=["lan"])
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == -9, proc.stderr
    assert "kilo" not in _names(harness, "ctr-a")
    assert len(stale.dead_marks(c)) == 1
    known = {"ctr-a", "ctr-k"}
    assert recovery._network_leftovers(c, known)          # what makes a start-up run the network's recovery

    network.NetworkManager(harness.make_config()).recover(sorted(known))

    assert "kilo" in _names(harness, "ctr-a")
    assert _marks(harness) == []
    assert not recovery._network_leftovers(c, known)


def test_a_rewrite_that_fails_at_the_end_of_a_batch_is_said_and_done_by_the_next(harness: Harness) -> None:
    m = harness.manager
    m.ensure_network(base.NetworkConfig(name="lan", subnet=harness.subnet(0)))
    m.attach("ctr-a", name="alpha", hostname="alpha", networks=["lan"])
    hosts = harness.config.run_dir / "net" / "ctr-a" / "hosts"
    with m.batch():
        m.attach("ctr-b", name="bravo", hostname="bravo", networks=["lan"])
        hosts.unlink()
        hosts.mkdir()                   # the peer's file cannot be written now
    # the pass's end raised nothing (its actions are done); the names still wait, marked
    assert len(_marks(harness)) == 1
    assert stale.dead_marks(harness.config) == []           # held by this live process
    hosts.rmdir()
    with m.batch():
        pass
    assert "bravo" in _names(harness, "ctr-a")
    assert _marks(harness) == []
