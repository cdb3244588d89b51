"""Crash safety: `reconcile --once` killed with SIGKILL at random points of a 20-container converge.

Each round changes every container (recreate) or starts from no containers, runs the CLI as a
real process, kills it after a seeded random delay, reruns it to completion (exit 0) and then
checks the host holds exactly the 20 desired containers: no extra records, rootfs mounts,
namespaces, veths, address allocations, conmon monitors, cgroups or bundle dirs, and the named
volume's data unchanged. Start-up recovery (runtime/native/containers/recovery.py) is what makes it pass.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.execution.helpers import write
from tests.helpers.host import Host, assert_holds_exactly
from tests.helpers.ports import publish_ports

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]

N = 20
ROUNDS = 20
SEED = 20261127


def apply_argv(host: Host, source: Path) -> list[str]:
    """`reconcile apply` as a separate process (so that it can be killed)."""
    return [sys.executable, "-m", "reconciler", "apply", str(source), *host.cli_args(), "--parallel", "8"]


def manifests(m: Path, image: str, subnet: str, ports: list[int], generation: int) -> None:
    write(m, "base.yaml", f"""
        apiVersion: reconciler/v1
        kind: Network
        metadata: {{name: crash}}
        spec: {{subnet: {subnet}}}
        ---
        apiVersion: reconciler/v1
        kind: Volume
        metadata: {{name: data}}
        spec: {{}}
        """)
    docs = []
    for i in range(N):
        docs.append(f"""---
apiVersion: reconciler/v1
kind: Container
metadata: {{name: c{i:02d}}}
spec:
  image: {image}
  command: [sh, -c, "trap 'exit 0' TERM; sleep 3600 & wait"]
  env: {{GENERATION: "{generation}"}}
  networks: [crash]
  ports: ["127.0.0.1:{ports[i]}:80/tcp"]
  volumes: ["data:/data"]
  stopTimeout: 1s
""")
    (m / "containers.yaml").write_text("".join(docs))


def remove_all(h: Host) -> None:
    rt = h.runtime()
    try:
        for rec in rt.containers.records():
            rt.remove_container(rec.id, force=True)
    finally:
        rt.close()


def snapshot(h: Host) -> dict[str, tuple[str, str | None]]:
    """name -> (container id, GENERATION) of every record."""
    rt = h.runtime()
    try:
        return {r.name: (r.id, r.config.env.get("GENERATION")) for r in rt.containers.records()}
    finally:
        rt.close()


def generations(h: Host) -> set[str | None]:
    return {g for _, g in snapshot(h).values()}


def check_converged(h: Host, volume_file: Path, payload: str) -> None:
    assert_holds_exactly(h.config, [f"c{i:02d}" for i in range(N)], network="crash")
    assert volume_file.read_text() == payload


def test_kill_9_during_converge_then_rerun_converges_without_leaks(
        tmp_path: Path, host: Host, busybox_image: str) -> None:
    rng = random.Random(SEED)
    m = tmp_path / "m"
    ports = publish_ports(N)
    manifests(m, busybox_image, host.subnet, ports, 0)
    first = subprocess.run(apply_argv(host, m), capture_output=True, text=True, timeout=600, check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    remove_all(host)                                               # how long creating all takes
    began = time.monotonic()
    fresh = subprocess.run(apply_argv(host, m), capture_output=True, text=True, timeout=600, check=False)
    full_create = time.monotonic() - began
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    manifests(m, busybox_image, host.subnet, ports, -1)           # how long a recreate of all takes
    began = time.monotonic()
    again = subprocess.run(apply_argv(host, m), capture_output=True, text=True, timeout=600, check=False)
    full_recreate = time.monotonic() - began
    assert again.returncode == 0, again.stdout + again.stderr
    rt = host.runtime()
    try:
        volume_file = rt.containers.volumes.data_dir("data") / "keep.txt"
    finally:
        rt.close()
    payload = secrets.token_hex(64)
    volume_file.write_text(payload)
    check_converged(host, volume_file, payload)

    interrupted = recovered = 0
    late = 0.0          # added to the kill's delay after a kill that came before the pass changed anything
    for generation in range(1, ROUNDS + 1):
        if generation % 2 == 0:              # every other round converges from no containers at all
            remove_all(host)
        manifests(m, busybox_image, host.subnet, ports, generation)
        before = snapshot(host)
        proc = subprocess.Popen(apply_argv(host, m), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        full = full_create if generation % 2 == 0 else full_recreate
        time.sleep(late + rng.uniform(0.3, full))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        after = snapshot(host)
        done = len(after) == N and {g for _, g in after.values()} == {str(generation)}
        interrupted += after != before and not done
        # a loaded machine starts the process slower than the calibration's: aim later next time
        # (and earlier again after a kill that came once all was done), so the kills land
        late = min(late + 0.3, full) if after == before else max(late - 0.3, 0.0) if done else late
        rerun = subprocess.run(apply_argv(host, m), capture_output=True, text=True, timeout=600, check=False)
        assert rerun.returncode == 0, f"round {generation}: {rerun.stdout}{rerun.stderr}"
        recovered += "crash recovery done" in rerun.stdout + rerun.stderr
        try:
            check_converged(host, volume_file, payload)
        except AssertionError as e:
            rt = host.runtime()
            try:
                down = [(r.name, r.status, r.exit_code, r.finished_at, r.started_at, r.config.env.get("GENERATION"))
                        for r in rt.containers.records() if r.status != "running"]
            finally:
                rt.close()
            raise AssertionError(f"round {generation} (done before the rerun: {done}): {down}\n"
                                 f"{rerun.stdout}{rerun.stderr[-6000:]}") from e
        assert generations(host) == {str(generation)}
    print(f"{interrupted} of {ROUNDS} kills interrupted a converge; {recovered} reruns collected leftovers")
    # the kills did land inside converges (a CI run under other tests' load saw 4 of 20 land: the
    # aim adapts to the load, but a round's converge takes a second or two and the load moves)
    assert interrupted >= ROUNDS // 5


def test_a_container_whose_start_was_cut_short_is_started_by_the_next_pass(
        tmp_path: Path, host: Host, busybox_image: str) -> None:
    """A CLI killed between `runc create` and the start leaves a container whose init ended
    before its command ran: exited, no start time (what a round of the test above once left,
    code 1). The next pass starts it, whatever its restart policy says of an exit, and says
    converged only once it runs: it never ran, so `restart: no` does not leave it stopped."""
    m = tmp_path / "m"
    write(m, "job.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: job}}
        spec: {{image: {busybox_image}, command: [sleep, "3600"], restart: "no", stopSignal: SIGKILL}}
        """)
    assert subprocess.run(apply_argv(host, m), capture_output=True, check=False, timeout=120).returncode == 0
    rt = host.runtime()
    try:                                    # the same container again, its start cut short
        config = rt.containers.get("job").config
        rt.remove_container("job", force=True)
        cid = rt.create_container(config)
        made = rt.containers.get(cid)
        assert made.status == "created"
        assert made.pid is not None
        os.kill(made.pid, signal.SIGKILL)   # runc's init, waiting for the start that never comes
        for _ in range(100):                # conmon sees it end and writes its exit file
            cut = rt.containers.get(cid)
            if cut.status == "exited":
                break
            time.sleep(0.05)
        assert (cut.status, cut.started_at) == ("exited", None)
    finally:
        rt.close()

    rerun = subprocess.run(apply_argv(host, m), capture_output=True, text=True, check=False, timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "exited before its start finished" in rerun.stdout         # the start's cause
    rt = host.runtime()
    try:
        now = rt.containers.get("job")
        assert (now.id, now.status) == (cid, "running")
        assert now.started_at is not None
    finally:
        rt.close()
