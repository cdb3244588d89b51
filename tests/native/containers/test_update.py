"""`reconcile update`, as `docker update`: new limits on a running container's cgroups at once
(read back from the kernel), on a stopped one's at its next start, shown by inspect; dockerd's
errors and words; a container manifests own is changed with a warning that it is drift, which a
pass leaves as it is (the spec hash is the manifest's, not what the container has now)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.execution.helpers import write
from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.registry]

MiB = 1 << 20


def cli(host: Host, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`reconcile ARGS` on the test's engine, in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = host.cli(*args)
    out, err = capsys.readouterr()
    return code, out, err


def kernel(host: Host, name: str) -> dict[str, str]:
    """The container's limits as its cgroups hold them now (v1 controllers of this hybrid host)."""
    rt = host.runtime()
    try:
        cid = rt.containers.get(name).id
    finally:
        rt.close()
    group = f"{host.config.name_prefix}/{cid}"
    files = {"memory": f"memory/{group}/memory.limit_in_bytes", "memsw": f"memory/{group}/memory.memsw.limit_in_bytes",
             "reservation": f"memory/{group}/memory.soft_limit_in_bytes", "quota": f"cpu/{group}/cpu.cfs_quota_us",
             "period": f"cpu/{group}/cpu.cfs_period_us", "shares": f"cpu/{group}/cpu.shares",
             "pids": f"pids/{group}/pids.max"}
    return {k: (Path("/sys/fs/cgroup") / f).read_text().strip() for k, f in files.items()}


def host_config(host: Host, capsys: pytest.CaptureFixture[str], name: str) -> dict[str, object]:
    code, out, _ = cli(host, capsys, "inspect", name)
    assert code == 0
    doc: dict[str, object] = json.loads(out)[0]["HostConfig"]
    return doc


def test_update_sets_a_running_containers_cgroups_now(
        host: Host, busybox_image: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert host.cli("run", "-d", "--name", "box", "--network", "none", "-m", "64m", "--pids-limit", "50",
                    busybox_image, "sleep", "3600") == 0
    before = kernel(host, "box")
    assert (before["memory"], before["quota"], before["pids"]) == (str(64 * MiB), "-1", "50")

    code, out, err = cli(host, capsys, "update", "--memory", "96m", "--memory-swap", "128m", "--memory-reservation",
                         "32m", "--cpus", "0.5", "--pids-limit", "70", "-c", "512", "--restart", "on-failure:3", "box")
    assert (code, out, err) == (0, "box\n", "")                 # its name, as docker update prints it
    now = kernel(host, "box")
    assert now == {"memory": str(96 * MiB), "memsw": str(128 * MiB), "reservation": str(32 * MiB), "quota": "50000",
                   "period": "100000", "shares": "512", "pids": "70"}
    hc = host_config(host, capsys, "box")
    assert (hc["Memory"], hc["MemorySwap"], hc["MemoryReservation"], hc["NanoCpus"], hc["PidsLimit"],
            hc["CpuShares"]) == (96 * MiB, 128 * MiB, 32 * MiB, 500_000_000, 70, 512)
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}

    # -1: no pids limit, unlimited swap; a name not found is said, the others are changed (exit 1)
    code, out, err = cli(host, capsys, "update", "--pids-limit", "-1", "--memory-swap", "-1", "nosuch", "box")
    assert (code, out) == (1, "box\n")
    assert "error: No such container: nosuch" in err
    now = kernel(host, "box")
    assert (now["pids"], int(now["memsw"]) > 1 << 40) == ("max", True)

    # dockerd's errors, in its words: wrong in itself (exit 2, nothing changed), or not fitting what it has (1)
    code, out, err = cli(host, capsys, "update", "--memory", "16m", "--memory-reservation", "32m", "box")
    assert (code, out) == (2, "")
    assert "Minimum memory limit can not be less than memory reservation limit, see usage" in err
    code, _, err = cli(host, capsys, "update", "--memory", "20m", "box")      # below the reservation it has
    assert code == 1
    assert "Minimum memory limit can not be less than memory reservation limit" in err
    code, _, err = cli(host, capsys, "update", "--memory", "4m", "box")
    assert (code, err.splitlines()[0]) == (2, "error: Minimum memory limit allowed is 6MB")
    code, _, err = cli(host, capsys, "update", "--cpu-quota", "20000", "box")
    assert code == 1
    assert "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set" in err
    code, _, err = cli(host, capsys, "update", "box")
    assert (code, err.splitlines()[0]) == (2, "error: you must provide one or more flags when using this command")
    assert kernel(host, "box")["memory"] == str(96 * MiB)                      # none of them changed it


def test_update_of_a_stopped_container_applies_at_its_start(
        host: Host, busybox_image: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert host.cli("run", "-d", "--name", "box", "--network", "none", "-m", "64m", busybox_image,
                    "sleep", "3600") == 0
    assert host.cli("stop", "-t", "0", "box") == 0
    code, out, _ = cli(host, capsys, "update", "--memory", "80m", "--cpu-period", "50000", "--cpu-quota", "25000",
                       "--pids-limit", "20", "box")
    assert (code, out) == (0, "box\n")
    hc = host_config(host, capsys, "box")
    assert (hc["Memory"], hc["CpuPeriod"], hc["CpuQuota"], hc["PidsLimit"]) == (80 * MiB, 50000, 25000, 20)

    assert host.cli("start", "box") == 0
    now = kernel(host, "box")
    assert (now["memory"], now["period"], now["quota"], now["pids"]) == (str(80 * MiB), "50000", "25000", "20")


def test_update_of_a_container_manifests_own_warns_that_it_is_drift_a_pass_leaves(
        host: Host, busybox_image: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "m", "web.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: web}}
        spec:
          image: {busybox_image}
          command: [sleep, "3600"]
          networks: [none]
          resources: {{memory: 64Mi}}
        """)
    assert host.cli("apply", str(tmp_path / "m")) == 0
    made = host.ids()["web"]
    code, out, err = cli(host, capsys, "update", "--memory", "96m", "web")
    assert (code, out) == (0, "web\n")
    assert "warning: web belongs to owner 'default' (Container web of its manifests): this change is drift" in err
    assert "lasts until the container is recreated" in err
    assert kernel(host, "web")["memory"] == str(96 * MiB)

    assert host.cli("apply", str(tmp_path / "m")) == 0                          # as `compose up`: left as it is
    assert host.ids()["web"] == made
    assert kernel(host, "web")["memory"] == str(96 * MiB)
