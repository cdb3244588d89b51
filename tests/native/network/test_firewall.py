"""The rules applied through libnftables in the engine's process, observed with the nft CLI."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from reconciler.runtime import base, errors
from reconciler.runtime.native.network import firewall, ipam
from tests.native.network.conftest import Harness


def _listed(family: str, table: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nft", "list", "table", family, table], capture_output=True, text=True, check=False)


def test_rules_applied_in_process_are_the_kernels_and_refusals_keep_nfts_words(
        harness: Harness, capfd: pytest.CaptureFixture[str]) -> None:
    """What apply renders is in the kernel as `nft` lists it; a refused script raises nft's own
    words for it alone (an earlier refusal's are not carried over into the next); a listing
    prints nothing on the engine's stdout; delete_table takes both tables (ip and ip6)."""
    t = harness.prefix
    nets = [ipam.NetworkRecord("n1", "1", f"{t}-n1", "10.250.1.0/24", "10.250.1.1", False, 1500,
                               subnet6="fd00:250:1::/64", gateway6="fd00:250:1::1")]
    ports = [ipam.PortRecord("tcp", "127.0.0.1", 18080, "c" * 64, 80, "10.250.1.2", "n1")]
    fw = firewall.Firewall(t)
    assert not fw.table_exists()
    fw.apply(nets, ports)
    assert "ip daddr 127.0.0.1 tcp dport 18080 dnat to 10.250.1.2:80" in _listed("ip", t).stdout
    assert _listed("ip6", t).returncode == 0
    assert fw.table_exists()
    assert capfd.readouterr().out == ""         # table_exists' listing stayed in the library's buffer

    with pytest.raises(errors.Unavailable) as refused:
        fw._nft.run(f"add rule ip {t} nosuchchain accept\n")
    assert "nosuchchain" in str(refused.value)
    assert not fw._nft.run("bogus words here\n", check=False)
    with pytest.raises(errors.Unavailable) as second:
        fw._nft.run(f"add rule ip {t} otherchain accept\n")
    assert "otherchain" in str(second.value)
    assert "bogus" not in str(second.value)
    assert "nosuchchain" not in str(second.value)
    assert "dnat to 10.250.1.2:80" in _listed("ip", t).stdout      # a refused script changed nothing

    fw.delete_table()
    assert not fw.table_exists()
    assert _listed("ip", t).returncode != 0
    assert _listed("ip6", t).returncode != 0
    fw.delete_table()                           # nothing to delete: no error


@pytest.mark.root
def test_a_bridges_returns_to_dockers_bridges_stand_before_its_accept(harness: Harness,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-internal network's rules leave what goes to Docker's bridges to Docker's chains
    (RETURN) before they accept the rest: rules of an engine from before the RETURNs, or with
    one deleted by hand, are put back in that order; rules in order are left alone."""
    m = harness.manager
    bridge = m.ensure_network(base.NetworkConfig(name="order")).bridge
    record = m._ipam.network("order")
    assert record is not None
    chain = firewall.Firewall._listing()[0]

    def ours() -> list[list[str]]:
        return [w[2:] for w in firewall.Firewall._listing()[1] if bridge in w]

    want = firewall.Firewall._rules_for(bridge, internal=False)
    assert [r[-1] for r in want] == ["RETURN", "RETURN", "ACCEPT", "ACCEPT"]
    assert ours() == want
    for rule in want[:2]:                       # as an engine before the RETURNs left them
        subprocess.run(["iptables", "-w", "-D", chain, *rule], check=True)
    m._fw.ensure_accepts(record)
    assert ours() == want
    subprocess.run(["iptables", "-w", "-D", chain, *want[2]], check=True)      # the accept deleted by hand
    m._fw.ensure_accepts(record)
    assert ours() == want                       # not inserted above the RETURNs

    calls: list[list[str]] = []
    run = firewall._run

    def spied(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        calls.append(list(argv))
        return run(argv, **kw)

    monkeypatch.setattr(firewall, "_run", spied)
    m._fw.ensure_accepts(record)
    assert calls                                # listed: nothing inserted or deleted
    assert [c for c in calls if "-S" not in c] == []
