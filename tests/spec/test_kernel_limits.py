"""`sysctls`, `ulimits`, `shmSize`, `extraHosts` and `dns` on a Container: what loads, what is refused, and that adding the fields
did not change the spec hash of containers that do not use them (no recreate on upgrade).

That the engines apply them is tests/runtime/test_conformance.py
(test_sysctls_and_ulimits_are_set_in_the_container, test_shm_size,
test_extra_hosts_and_dns_on_and_off_networks).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler import spec

HEAD = "apiVersion: reconciler/v1\nkind: Container\nmetadata: {name: web}\nspec:\n  image: 127.0.0.1:5000/demo/web:1\n"


def load(tmp_path: Path, body: str) -> spec.DesiredState:
    (tmp_path / "m.yaml").write_text(HEAD + body)
    return spec.load(tmp_path)


def problems(tmp_path: Path, body: str) -> list[str]:
    with pytest.raises(spec.SpecError) as info:
        load(tmp_path, body)
    return [str(p).replace(str(tmp_path) + os.sep, "") for p in info.value.problems]


def test_sysctls_and_ulimits_load_into_the_model(tmp_path: Path) -> None:
    c = load(tmp_path, "  sysctls: {net.core.somaxconn: 1024, kernel.shmmax: '65536', fs.mqueue.msg_max: 20}\n"
                       "  ulimits: {nproc: 512, nofile: {soft: 1024, hard: 4096}, core: -1}\n").containers["web"]
    assert dict(c.sysctls) == {"fs.mqueue.msg_max": "20", "kernel.shmmax": "65536", "net.core.somaxconn": "1024"}
    assert c.ulimits == (spec.models.Ulimit("core", -1, -1), spec.models.Ulimit("nofile", 1024, 4096),
                         spec.models.Ulimit("nproc", 512, 512))


def test_they_are_hashed_when_set_and_leave_other_containers_hashes_as_they_were(tmp_path: Path) -> None:
    # the hash reconciler gave this container before sysctls and ulimits existed
    before = "bcd03ac106c6b9c3529608900c4f91e1a386ceb40ee6dda83611ad7ac591bba6"
    assert load(tmp_path, "  capAdd: [NET_ADMIN]\n").containers["web"].spec_hash == before
    with_sysctl = load(tmp_path, "  capAdd: [NET_ADMIN]\n  sysctls: {net.core.somaxconn: 1024}\n").containers["web"]
    with_ulimit = load(tmp_path, "  capAdd: [NET_ADMIN]\n  ulimits: {nofile: 1024}\n").containers["web"]
    with_shm = load(tmp_path, "  capAdd: [NET_ADMIN]\n  shmSize: 256Mi\n").containers["web"]
    assert with_shm.shm_size == 256 << 20
    assert len({before, with_sysctl.spec_hash, with_ulimit.spec_hash, with_shm.spec_hash}) == 4


def test_host_wide_sysctls_and_bad_limits_are_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, "  sysctls: {vm.swappiness: 10, kernel.pid_max: 100000, net.ipv4.ip_forward: 1}\n"
                              "  networks: [host]\n"
                              "  ulimits: {nofile: {soft: 4096, hard: 1024}, stack: {soft: -1, hard: 10}}\n") == [
        "m.yaml:6:13: Container/web: spec.sysctls.vm.swappiness: vm.swappiness is not a namespaced sysctl: it would change the "
        "whole host; only net.*, fs.mqueue.* and kernel.msgmax/msgmnb/msgmni/sem/shmall/shmmax/shmmni/shm_rmid_forced can be set per container",
        "m.yaml:6:32: Container/web: spec.sysctls.kernel.pid_max: kernel.pid_max is not a namespaced sysctl: it would change the "
        "whole host; only net.*, fs.mqueue.* and kernel.msgmax/msgmnb/msgmni/sem/shmall/shmmax/shmmni/shm_rmid_forced can be set per container",
        "m.yaml:6:56: Container/web: spec.sysctls.net.ipv4.ip_forward: net.ipv4.ip_forward would change the host's network "
        "stack (network host); remove it or use a network of the container's own",
        "m.yaml:8:21: Container/web: spec.ulimits.nofile: soft limit 4096 is above the hard limit 1024; lower soft or raise hard",
        "m.yaml:8:54: Container/web: spec.ulimits.stack: soft limit -1 is above the hard limit 10; lower soft or raise hard",
    ]
    assert problems(tmp_path, "  ulimits: {bogus: 1}\n") == [
        "m.yaml:6:12: Container/web: spec.ulimits: 'bogus' is not one of as, core, cpu, data, fsize, locks, memlock, msgqueue, "
        "nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack",
    ]


def test_extra_hosts_and_dns(tmp_path: Path) -> None:
    c = load(tmp_path, "  extraHosts: ['db.internal:10.0.0.5', 'old=10.0.0.6', 'v6:[fd00::1]', 'gw:host-gateway']\n"
                       "  dns: [1.1.1.1]\n  dnsSearch: [corp.example]\n").containers["web"]
    assert c.extra_hosts == ("db.internal:10.0.0.5", "old:10.0.0.6", "v6:fd00::1", "gw:host-gateway")
    assert (c.dns, c.dns_search) == (("1.1.1.1",), ("corp.example",))
    assert problems(tmp_path, "  extraHosts: ['db:nowhere', 'gw:host-gateway', 'plain']\n  dns: [dns.google]\n") == [
        "m.yaml:6:49: Container/web: spec.extraHosts[2]: 'plain' is not a valid NAME:ADDRESS (like db.internal:10.0.0.5)",
        "m.yaml:7:9: Container/web: spec.dns[0]: 'dns.google' is not an IP address",
    ]
    assert problems(tmp_path, "  extraHosts: ['db:nowhere', 'gw:host-gateway']\n  dns: [dns.google]\n") == [
        "m.yaml:6:16: Container/web: spec.extraHosts[0]: 'nowhere' is not an IP address",
        "m.yaml:7:9: Container/web: spec.dns[0]: 'dns.google' is not an IP address",
    ]


def test_tmpfs_size_and_mode(tmp_path: Path) -> None:
    body = "  volumes: ['data:/data', {type: tmpfs, target: /t}]\n---\napiVersion: reconciler/v1\nkind: Volume\nmetadata: {name: data}\n"
    # the hash reconciler gave this container before tmpfs options existed
    assert load(tmp_path, body).containers["web"].spec_hash == "bbf41ce897c4b68dc9b5238413297077e6637b34eec92ed5aea97ce813a678d3"
    sized = load(tmp_path, body.replace("{type: tmpfs, target: /t}", "{type: tmpfs, target: /t, size: 64m, mode: '1770'}"))
    mount = sized.containers["web"].volumes[1]
    assert mount == spec.models.VolumeMount("tmpfs", "", "/t", False, ("size=67108864", "mode=1770"))
    assert sized.containers["web"].spec_hash != "bbf41ce897c4b68dc9b5238413297077e6637b34eec92ed5aea97ce813a678d3"
    assert problems(tmp_path, body.replace("'data:/data', ", "{type: volume, source: data, target: /data, size: 1Gi}, ")) == [
        "m.yaml:6:57: Container/web: spec.volumes[0].size: size is a tmpfs setting; a volume mount has none",
    ]


def test_small_sizes_load_only_memory_limits_have_dockers_minimum(tmp_path: Path) -> None:
    # /dev/shm and a tmpfs take any positive size, as Docker's do (the kernel rounds up to a page)
    c = load(tmp_path, "  shmSize: 1Mi\n  volumes: [{type: tmpfs, target: /t, size: 2Mi}, {type: tmpfs, target: /u, size: 1}]\n"
                       "  resources: {memory: 6Mi, reservations: {memory: 1Ki}}\n").containers["web"]
    assert c.shm_size == 1 << 20
    assert [m.options for m in c.volumes] == [("size=2097152",), ("size=1",)]
    assert c.reservations == spec.models.Reservations(memory=1 << 10, cpus=None)   # the scheduler's
    assert problems(tmp_path, "  shmSize: 0Mi\n  volumes: [{type: tmpfs, target: /t, size: '0'}]\n") == [
        "m.yaml:6:12: Container/web: spec.shmSize: shm size '0Mi' is not a positive number of bytes (leave it out for the default)",
        "m.yaml:7:45: Container/web: spec.volumes[0].size: tmpfs size '0' is not a positive number of bytes (leave it out for the default)",
    ]
    # a memory limit or reservation below 6Mi is refused (by dockerd too), each named as what it is;
    # a swap under a refused limit is not compared with it
    assert problems(tmp_path, "  resources: {memory: 1Mi, memoryReservation: 2Mi, memorySwap: 4Mi}\n") == [
        "m.yaml:6:23: Container/web: spec.resources.memory: memory limit '1Mi' is below the minimum of 6Mi",
        "m.yaml:6:47: Container/web: spec.resources.memoryReservation: memory reservation '2Mi' is below the minimum of 6Mi",
    ]


def test_cpu_shares_cpuset_and_memory_reservation(tmp_path: Path) -> None:
    body = "  resources: {memory: 256Mi, cpus: 0.5}\n"
    # the hash reconciler gave this container before these resources existed
    assert load(tmp_path, body).containers["web"].spec_hash == "ecdf984a80f04382163549f5ec5a1e608b76dfeabbd764c0dbfacf8c80573070"
    more = load(tmp_path, "  resources: {memory: 256Mi, cpus: 0.5, memoryReservation: 64Mi, cpuShares: 512, cpuset: '0-1,3'}\n")
    assert more.containers["web"].resources == spec.models.Resources(256 << 20, 0.5, None, 64 << 20, 512, "0-1,3")
    assert more.containers["web"].spec_hash != "ecdf984a80f04382163549f5ec5a1e608b76dfeabbd764c0dbfacf8c80573070"


def test_memory_swap(tmp_path: Path) -> None:
    c = load(tmp_path, "  resources: {memory: 256Mi, memorySwap: 1Gi}\n").containers["web"]
    assert (c.resources.memory, c.resources.memory_swap) == (256 << 20, 1 << 30)
    assert load(tmp_path, "  resources: {memory: 256Mi, memorySwap: -1}\n").containers["web"].resources.memory_swap == -1
    assert problems(tmp_path, "  resources: {memorySwap: 1Gi}\n") == [
        "m.yaml:6:27: Container/web: spec.resources.memorySwap: memorySwap needs a memory limit; set resources.memory too"]
    assert problems(tmp_path, "  resources: {memory: 1Gi, memorySwap: 256Mi}\n") == [
        "m.yaml:6:40: Container/web: spec.resources.memorySwap: memorySwap counts memory plus swap: it cannot be below memory"]


def test_cfs_numbers_memory_nodes_and_blkio_weight_load_and_each_change_recreates(tmp_path: Path) -> None:
    """resources.cpuPeriod, cpuQuota, cpusetMems and blkioWeight (docker run's --cpu-period,
    --cpu-quota, --cpuset-mems, --blkio-weight): a manifest could not say them, only `update` and
    the Engine API could. Each is in the spec hash (a change is drift that recreates the
    container, as for the other limits); a container without them keeps its hash."""
    body = "  resources: {memory: 256Mi, cpuset: '0'}\n"
    # the hash reconciler gave this container before these fields existed
    before = "45d7cf9f7aa932eec0bdefaaffed77e07d8e111e286b4670c5e1415834cba2ba"
    assert load(tmp_path, body).containers["web"].spec_hash == before
    fields = "cpuPeriod: 50000, cpuQuota: 25000, cpusetMems: '0', blkioWeight: 300"
    c = load(tmp_path, f"  resources: {{memory: 256Mi, cpuset: '0', {fields}}}\n").containers["web"]
    assert c.resources == spec.models.Resources(256 << 20, None, None, cpuset="0", cpu_period=50000,
                                                 cpu_quota=25000, cpuset_mems="0", blkio_weight=300)
    hashes = {before, c.spec_hash}
    for changed in ("cpuPeriod: 60000", "cpuQuota: -1", "cpusetMems: '0-0'", "blkioWeight: 500"):
        key = changed.partition(":")[0]
        edited = ", ".join(changed if f.startswith(key + ":") else f for f in fields.split(", "))
        hashes.add(load(tmp_path, f"  resources: {{memory: 256Mi, cpuset: '0', {edited}}}\n").containers["web"].spec_hash)
    assert len(hashes) == 6


def test_cfs_numbers_memory_nodes_and_blkio_weight_out_of_range_are_located_errors(tmp_path: Path) -> None:
    """dockerd's ranges, in its words (`limitranges`, the engines' too), checked at load: the
    manifest is refused naming file, line and field, before anything is made (a wrong value was
    a failed create, or runc's error at the start)."""
    assert problems(tmp_path, "  resources:\n    cpuPeriod: 999\n    cpuQuota: 999\n    cpusetMems: '3-1'\n"
                              "    blkioWeight: 1001\n") == [
        "m.yaml:7:16: Container/web: spec.resources.cpuPeriod: 999: CPU cfs period can not be less than 1ms "
        "(i.e. 1000) or larger than 1s (i.e. 1000000); give the period in microseconds, 1000 to 1000000",
        "m.yaml:8:15: Container/web: spec.resources.cpuQuota: 999: CPU cfs quota can not be less than 1ms "
        "(i.e. 1000); give the quota in microseconds, 1000 or more (-1: no limit)",
        "m.yaml:9:17: Container/web: spec.resources.cpusetMems: Invalid value 3-1 for cpuset mems: invalid "
        "format: 3-1; give numbers and ascending ranges, like 0-2,4",
        "m.yaml:10:18: Container/web: spec.resources.blkioWeight: 1001: Range of blkio weight is from 10 to 1000; "
        "give a weight from 10 to 1000",
    ]
    assert problems(tmp_path, "  resources: {cpus: 0.5, cpuQuota: 50000}\n") == [
        "m.yaml:6:36: Container/web: spec.resources.cpuQuota: Conflicting options: Nano CPUs and CPU Quota cannot "
        "both be set; give cpus, or cpuPeriod and cpuQuota (cpus: 0.5 is cpuQuota 50000 per cpuPeriod 100000)"]
    # the bounds themselves are fine, and a negative quota is no limit
    c = load(tmp_path, "  resources: {cpuPeriod: 1000000, cpuQuota: -1, blkioWeight: 10}\n").containers["web"]
    assert (c.resources.cpu_period, c.resources.cpu_quota, c.resources.blkio_weight) == (1_000_000, -1, 10)


def test_swarm_refuses_them_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`validate --runtime swarm`: no Swarm service has them; the refusal names the field."""
    from reconciler.cli.main import main

    (tmp_path / "m.yaml").write_text(HEAD + "  resources: {cpuPeriod: 50000, blkioWeight: 300}\n")
    assert main(["validate", "--runtime", "swarm", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    for field, what in (("cpuPeriod", "CFS period"), ("blkioWeight", "block I/O weight")):
        assert f"m.yaml:1:1: Container/web: spec.resources.{field}: a Swarm service has no {what}; limit its CPUs" \
            in out + err, out + err


def test_cpu_shares_bounds_of_the_schema_are_the_engines(tmp_path: Path) -> None:
    """resources.cpuShares' bounds in the schema (a manifest's error at validate) are the ones
    the engines refuse an update by (`limitranges.CPU_SHARES`, runc's words): one rule."""
    import json

    from reconciler import limitranges

    schema = json.loads((Path(spec.__file__).parent / "schemas" / "container.json").read_text())
    shares = next(v for k, v in _walk(schema) if k == "cpuShares")
    assert (shares["minimum"], shares["maximum"]) == limitranges.CPU_SHARES
    low, high = limitranges.CPU_SHARES
    assert limitranges.cpu_shares(low) is limitranges.cpu_shares(high) is None
    assert limitranges.cpu_shares(low - 1) == f"the minimum allowed cpu-shares is {low}"
    assert limitranges.cpu_shares(high + 1) == f"the maximum allowed cpu-shares is {high}"
    assert any("at least 2" in p for p in problems(tmp_path, "  resources: {cpuShares: 1}\n"))


def _walk(node: object) -> list[tuple[str, dict]]:
    """Every (key, object) of a JSON document, depth first."""
    out: list[tuple[str, dict]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(v, dict):
                out.append((k, v))
            out.extend(_walk(v))
    elif isinstance(node, list):
        for v in node:
            out.extend(_walk(v))
    return out
