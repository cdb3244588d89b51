"""Packet filtering and NAT for native networks: one nft table of our own, plus iptables accepts.

The nft table `ip <prefix>` is a pure function of the network records (networks, endpoints,
published ports) and is replaced as a whole in one `nft -f` transaction on every change, so it
is always exactly what the DB says: "ensure" by construction, and start-up recovery is a
re-render. Rules (CNI bridge + portmap, shared/reference/runtime-internals.md §6):

- prerouting (dstnat) and output (-100: nft 1.0.6 refuses `dstnat` on output) jump to
  `hostports` for local destinations: `[ip daddr H] tcp dport P dnat to C:p`.
- postrouting (srcnat): egress masquerade for non-internal networks, `127.0.0.0/8`
  masquerade towards our bridges (with `route_localnet`, so 127.0.0.1:P works), and hairpin
  masquerade of DNAT'ed traffic from a bridge's own subnet back onto it.
- forward (filter - 10): a bridge of ours takes from any other interface (our other networks,
  another engine's, Docker's or Podman's bridges, the uplink) only replies and what is DNAT'ed to
  a published port, as Docker's isolation chains isolate its networks, and internal networks
  have no way out. A drop here is final for every base chain (Docker's FORWARD accepts of what
  its containers send anywhere but their own bridge come after it).

Dual-stack networks get the same rules for IPv6 in a second table of ours, `ip6 <prefix>`, in the
same transaction (and that table is deleted in it when no network has IPv6). Ports published on
[::1] have no rule: the kernel cannot route a DNAT'ed ::1 connection (no `route_localnet` for
IPv6), so a userland proxy serves them (`portproxy`); a port on [::] skips ::1 for that reason.

An `accept` in our table cannot override another engine's FORWARD policy DROP (Docker's), so
each bridge also gets iptables accepts in DOCKER-USER (or FORWARD when Docker is absent),
through the iptables CLI so they land in whichever backend Docker uses; they are removed with
`-D` when the network goes. DOCKER-USER runs before Docker's isolation chains, so an accept of
all that leaves our bridge carried our containers past them (to the containers of a Docker
`--internal` network, to unpublished ports on its user networks): what goes to Docker's bridges
(`docker0`, `br-+`) RETURNs first, and Docker's own chains decide about it as about any traffic
of the host that is not Docker's (replies and published ports accepted, the rest dropped by its
isolation or its FORWARD policy). In FORWARD (no DOCKER-USER) a RETURN is that chain's policy.

The nft scripts run through libnftables, the library the `nft` CLI is made of, in this process
(`nftlib.Nft`): one `nft -f -` process per change cost ~20 ms of wall time (7 ms of its CPU) under the
network manager's lock, where the library takes ~1.3 ms for the same 50-port table (#21).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.runtime import errors
from reconciler.runtime.native.network import ipam, names, nftlib

if TYPE_CHECKING:
    import subprocess

__all__ = ["Firewall"]

_COMMENT_TAG = "reconciler"
# Docker's bridges as iptables names them: docker0 and its user networks' br-<id> (a prefix
# "br" would name bridges like these: NetworkManager refuses it, names.RESERVED)
DOCKER_BRIDGES = ("docker0", "br-+")


def _run(argv: Sequence[str], *, input_text: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    # here: start-up recovery looks at the nft rules (unforwarded) with no process to spawn (#21)
    import shutil
    import subprocess

    if shutil.which(argv[0]) is None:
        raise errors.Unavailable(
            f"{argv[0]} is not installed", hint="run scripts/install-system-deps.sh (Debian: nftables, iptables)",
        )
    try:
        proc = subprocess.run(list(argv), input=input_text, capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise errors.Unavailable(f"{' '.join(argv[:3])} failed: {exc}") from exc
    if check and proc.returncode != 0:
        raise errors.Unavailable(
            f"{' '.join(argv)} failed (exit {proc.returncode}): {proc.stderr.strip()[:500]}",
        )
    return proc


def _q(text: str) -> str:
    return '"' + text.replace('"', "") + '"'


def _port_rule(family: str, p: ipam.PortRecord) -> str:
    """A published port's rule in the `hostports` chain, as nft lists it too."""
    if p.host_ip == ipam.ANY_IP:
        dst = ""
    elif p.host_ip == ipam.ANY_IP6:
        dst = "ip6 daddr != ::1 "       # ::1 is the proxy's
    else:
        dst = f"{family} daddr {p.host_ip} "
    target = f"[{p.address}]" if family == "ip6" else p.address
    return f"{dst}{p.protocol} dport {p.host_port} dnat to {target}:{p.container_port} comment {_q(p.container_id[:12])}"


class Firewall:
    """Our nft table and the iptables accepts for our bridges: the names of `prefix`'s bridge forms
    (`names.is_bridge`), never any name that merely starts with it (another engine's prefix may)."""

    def __init__(self, prefix: str, applied: Path | None = None) -> None:
        self.prefix = prefix
        self.table = prefix
        # the digest of the ruleset applied last: in `applied` (a file in the run dir, written
        # under the rules' lock every process of the engine takes) when given, else in memory
        self._applied = applied
        self._last: str | None = None
        self._nft = nftlib.Nft()

    # nft ----------------------------------------------------------------------------------

    def render(
        self,
        networks: Sequence[ipam.NetworkRecord],
        ports: Sequence[ipam.PortRecord],
    ) -> str:
        """Both tables as one `nft -f` script (idempotent preambles included): `ip <prefix>`,
        and `ip6 <prefix>` while a network has IPv6 (else the preamble deletes it)."""
        t = self.table
        out = [f"table ip {t}", f"delete table ip {t}", f"table ip {t} {{"]
        out += self._nat_chains("ip", ports=[p for p in ports if ":" not in p.host_ip],
                                subnets=[(n, n.subnet) for n in networks], localhost=True)
        out += self._forward_chain(networks)
        out.append("}")
        out += [f"table ip6 {t}", f"delete table ip6 {t}"]
        dual = [n for n in networks if n.subnet6]
        if dual:
            out.append(f"table ip6 {t} {{")
            out += self._nat_chains("ip6", ports=[p for p in ports if ":" in p.host_ip and p.host_ip != "::1"],
                                    subnets=[(n, str(n.subnet6)) for n in dual], localhost=False)
            out += self._forward_chain(dual)
            out.append("}")
        return "\n".join(out) + "\n"

    @staticmethod
    def _nat_chains(
        family: str,
        *,
        ports: Sequence[ipam.PortRecord],
        subnets: Sequence[tuple[ipam.NetworkRecord, str]],
        localhost: bool,
    ) -> list[str]:
        out = ["  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;"]
        out.append("    fib daddr type local jump hostports\n  }")
        out.append("  chain output {\n    type nat hook output priority -100; policy accept;")
        out.append("    fib daddr type local jump hostports\n  }")
        out.append("  chain hostports {")
        out += [f"    {_port_rule(family, p)}" for p in ports]
        out.append("  }")
        out.append("  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;")
        for n, subnet in subnets:
            br = _q(n.bridge)
            if not n.internal:
                out.append(f"    {family} saddr {subnet} oifname != {br} masquerade comment {_q('egress ' + n.name)}")
            if localhost:
                out.append(f"    oifname {br} ip saddr 127.0.0.0/8 masquerade comment {_q('localhost ' + n.name)}")
            out.append(
                f"    oifname {br} {family} saddr {subnet} ct status dnat masquerade comment {_q('hairpin ' + n.name)}",
            )
        out.append("  }")
        return out

    @staticmethod
    def _forward_chain(networks: Sequence[ipam.NetworkRecord]) -> list[str]:
        """Isolation, as Docker's DOCKER-ISOLATION chains isolate its networks: what a bridge of
        ours is sent from any other interface (another network of ours, another engine's, Docker's
        `docker0`, `br-<id>` or a bridge named by `com.docker.network.bridge.name`, Podman's, the
        uplink) is dropped unless it is DNAT'ed to a published port or a reply. The rule names our
        bridge as the output, never the sender's interface, so no other engine's names are needed;
        a drop is final for every base chain on the hook, whatever another engine's FORWARD
        rules accept after it (Docker's `-i br-x ! -o br-x -j ACCEPT`). What leaves our bridges
        is left alone: egress, and replies coming back."""
        out = ["  chain forward {\n    type filter hook forward priority filter - 10; policy accept;"]
        for n in networks:
            br = _q(n.bridge)
            if n.internal:
                out.append(f"    iifname {br} oifname != {br} drop comment {_q('internal ' + n.name)}")
                out.append(f"    oifname {br} iifname != {br} drop comment {_q('internal ' + n.name)}")
        if any(not n.internal for n in networks):
            # published ports connect networks the way the host's own addresses do
            out.append("    ct status dnat accept")
            out.append("    ct state established,related accept")
            for n in networks:
                if not n.internal:
                    br = _q(n.bridge)
                    out.append(f"    oifname {br} iifname != {br} drop comment {_q('isolate ' + n.name)}")
        out.append("  }")
        return out

    def apply(
        self, networks: Sequence[ipam.NetworkRecord], ports: Sequence[ipam.PortRecord], *, force: bool = False,
    ) -> None:
        """Replace our table with the ruleset for these records (one atomic transaction).

        Skipped when the very same ruleset was applied last (an attach without ports changes
        nothing), unless `force` (start-up recovery, network changes). Last by any process of
        the engine, when the Firewall has its `applied` file: a ruleset this process applied
        before another one applied its own (a CLI's stop beside an agent) is applied again,
        where a memory of its own had skipped it (the port of the container the agent started
        again stayed dark). The caller holds the rules' lock."""
        if not networks:
            self.delete_table()
            return
        text = self.render(networks, ports)
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest == self._applied_last() and not force:
            return
        self._mark(None)
        self._nft.run(text)
        self._mark(digest)

    def delete_table(self) -> None:
        """Delete our tables (`ip` and `ip6`) where present: each made if missing, then deleted,
        in one transaction."""
        self._mark(None)
        t = self.table
        self._nft.run(f"table ip {t}\ndelete table ip {t}\ntable ip6 {t}\ndelete table ip6 {t}\n")

    def _applied_last(self) -> str | None:
        if self._applied is None:
            return self._last
        try:
            return self._applied.read_text()
        except OSError:
            return None

    def _mark(self, digest: str | None) -> None:
        """Note the ruleset applied last (None: none known, before a change that may fail)."""
        self._last = digest
        if self._applied is None:
            return
        if digest is None:
            self._applied.unlink(missing_ok=True)
        else:
            self._applied.write_text(digest)

    def table_exists(self) -> bool:
        return nftlib.table_exists(self.table, nft=self._nft)

    def unforwarded(self, ports: Sequence[ipam.PortRecord]) -> list[ipam.PortRecord] | None:
        """Of the ports forwarded now (`ipam.forwarded_ports`), those the kernel has no rule for
        (another program deleted it: `nft flush chain`, a rule deleted by hand): one listing of
        our table (and of the ip6 one when an IPv6 port is forwarded), as nft lists the rules we
        render. None when our table is gone."""
        listed = nftlib.listed(self.table, nft=self._nft)
        if listed is None:
            return None
        if any(":" in p.host_ip and p.host_ip != "::1" for p in ports):
            listed += nftlib.listed(self.table, "ip6", nft=self._nft) or ""
        rules = {line.strip() for line in listed.splitlines()}
        return [p for p in ports if p.host_ip != "::1"
                and _port_rule("ip6" if ":" in p.host_ip else "ip", p) not in rules]

    # iptables -----------------------------------------------------------------------------

    @staticmethod
    def _listing() -> tuple[str, list[list[str]]]:
        """The chain our accepts go in (DOCKER-USER, else FORWARD) and its rules, each as
        `iptables -S` words (`-A CHAIN ...`): one iptables process."""
        proc = _run(["iptables", "-w", "-S", "DOCKER-USER"], check=False)
        chain = "DOCKER-USER"
        if proc.returncode != 0:
            chain = "FORWARD"
            proc = _run(["iptables", "-w", "-S", chain], check=False)
        return chain, [line.split() for line in proc.stdout.splitlines()] if proc.returncode == 0 else []

    @staticmethod
    def _rules_for(bridge: str, *, internal: bool) -> list[list[str]]:
        """The rules of `bridge`, in their order in the chain, written as `iptables -S` prints
        them. A non-internal network's containers are accepted wherever they go, but to Docker's
        bridges: there the RETURNs, first, leave them to Docker's own chains (its isolation, an
        internal network's drops, the published ports it accepts, its FORWARD policy), as they
        leave any traffic of the host that is not Docker's; replies and what our DNAT sent in are
        accepted towards the bridge."""
        comment = ["-m", "comment", "--comment", _COMMENT_TAG]
        if internal:
            return [["-i", bridge, "-o", bridge, *comment, "-j", "ACCEPT"]]
        return [
            *(["-i", bridge, "-o", docker, *comment, "-j", "RETURN"] for docker in DOCKER_BRIDGES),
            ["-i", bridge, *comment, "-j", "ACCEPT"],
            ["-o", bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED,DNAT", *comment, "-j", "ACCEPT"],
        ]

    def ensure_accepts(self, network: ipam.NetworkRecord) -> None:
        """Make `network`'s bridge's rules what `_rules_for` says, in that order: left alone when
        they are (one `iptables -S`), else those there taken out and all inserted again at the
        top, so a RETURN is never behind the accept it guards (an engine before the RETURNs, or
        one of the rules deleted by hand)."""
        chain, listed = self._listing()
        rules = self._rules_for(network.bridge, internal=network.internal)
        found = [listed.index(["-A", chain, *r]) if ["-A", chain, *r] in listed else -1 for r in rules]
        if -1 not in found and found == sorted(found):
            return
        for rule, at in zip(rules, found, strict=True):
            if at >= 0:
                _run(["iptables", "-w", "-D", chain, *rule], check=False)
        for rule in reversed(rules):
            _run(["iptables", "-w", "-I", chain, "1", *rule])

    def remove_accepts(self, bridges: Iterable[str] | None = None) -> int:
        """Delete our accept rules for `bridges` (None: every bridge of our forms)."""
        wanted = set(bridges) if bridges is not None else None
        removed = 0
        for chain in ("DOCKER-USER", "FORWARD"):
            proc = _run(["iptables", "-w", "-S", chain], check=False)
            if proc.returncode != 0:
                continue
            for line in proc.stdout.splitlines():
                words = line.split()
                if len(words) < 3 or words[0] != "-A" or _COMMENT_TAG not in words:
                    continue
                ifaces = {words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-i", "-o")}
                ours = {i for i in ifaces if names.is_bridge(self.prefix, i) and (wanted is None or i in wanted)}
                if not ours:
                    continue
                _run(["iptables", "-w", "-D", *words[1:]], check=False)
                removed += 1
        return removed

    def accept_bridges(self) -> set[str]:
        """Bridges of our forms that have accept rules now."""
        found: set[str] = set()
        for chain in ("DOCKER-USER", "FORWARD"):
            proc = _run(["iptables", "-w", "-S", chain], check=False)
            for line in proc.stdout.splitlines() if proc.returncode == 0 else ():
                words = line.split()
                found |= {words[i + 1] for i, w in enumerate(words[:-1])
                          if w in ("-i", "-o") and names.is_bridge(self.prefix, words[i + 1])}
        return found
