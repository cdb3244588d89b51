"""Stopping is bounded: SIGTERM / SIGINT to `reconcile --once` (a real process) during a long pass.

The containers' PID 1 traps SIGTERM, notes it in a bind-mounted directory and goes on, so each
stop waits out its stopTimeout: a pass that replaces them all is long, and a note says when a
stop is in flight. Once `/marks/obey` exists they exit on SIGTERM, so the reruns are quick.

- one signal: the stop in flight and the rest of its replacement finish, nothing new starts,
  the process exits 143 within the bound (that stop timeout plus a few seconds), the pass is
  `interrupted` in the history, and the next `--once` converges with nothing left over;
- a second signal: the process exits at once (130 for SIGINT), the stop in flight is dropped,
  and the next `--once` recovers and converges, recording the dropped pass as interrupted;
- a health gate being waited for: not waited out; the unverified update is rolled back;
- a pull: cancelled at a chunk boundary, leaving no partial download and no lease.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler._sqlite import Database
from reconciler.state import history as hist
from tests.agent.conftest import wait_for
from tests.execution.helpers import STOP_MARGIN, trapping_app
from tests.helpers.fault_server import Fault, FaultProxy
from tests.helpers.host import Host, assert_holds_exactly
from tests.helpers.registry import RegistryServer

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]



def argv(host: Host, m: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "reconciler", "apply", str(m), *host.cli_args(), *extra]


class Once:
    """A `reconcile --once` process, its output in files."""

    def __init__(self, cmd: list[str], out: Path) -> None:
        self.out, self.err = out.with_suffix(".out"), out.with_suffix(".err")
        with self.out.open("wb") as o, self.err.open("wb") as e:
            self.proc = subprocess.Popen(cmd, stdout=o, stderr=e)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 120) -> int:
        return self.proc.wait(timeout)

    def output(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def runs() -> Iterator[list[Once]]:
    """Processes a test started: killed (by pid) at teardown if still running."""
    started: list[Once] = []
    try:
        yield started
    finally:
        for r in started:
            r.kill()


def once(host: Host, m: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv(host, m, *extra), capture_output=True, text=True, timeout=300, check=False)


def generations(h: Host) -> dict[str, tuple[str | None, str]]:
    """name -> (GEN, status) of every container record."""
    rt = h.runtime()
    try:
        return {r.name: (r.config.env.get("GEN"), r.status) for r in rt.containers.records()}
    finally:
        rt.close()


def results(h: Host) -> list[str]:
    """The history's pass results, newest first."""
    return [p.result for p in hist.HistoryStore(Database(h.config.root / "state.db"), "default").list()]


def marked(marks: Path) -> list[str]:
    return sorted(p.name for p in marks.iterdir() if p.name != "obey")


def rerun_finishes(host: Host, m: Path, marks: Path, names: list[str]) -> None:
    """The containers obey SIGTERM again; the next --once finishes the update, leaks nothing,
    and the interrupted pass stays on record below the converged one."""
    (marks / "obey").touch()
    rerun = once(host, m)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert {n: g for n, (g, _) in generations(host).items()} == dict.fromkeys(names, "2")
    assert_holds_exactly(host.config, names, network="stop")
    assert results(host)[:2] == ["converged", "interrupted"]


def test_one_signal_finishes_the_stop_in_flight_then_exits_within_the_bound(
        tmp_path: Path, host: Host, busybox_image: str, runs: list[Once]) -> None:
    m, marks = tmp_path / "m", tmp_path / "marks"
    marks.mkdir()
    names = [f"c{i}" for i in range(4)]
    trapping_app(m, busybox_image, host.subnet, marks, names, 1)
    first = once(host, m)
    assert first.returncode == 0, first.stdout + first.stderr

    trapping_app(m, busybox_image, host.subnet, marks, names, 2)  # each replacement waits out 3 s
    r = Once(argv(host, m, "--parallel", "1"), tmp_path / "second")
    runs.append(r)
    [stopping] = wait_for("a stop in flight", lambda: marked(marks))
    signalled = time.monotonic()
    r.signal(signal.SIGTERM)
    code = r.wait()
    took = time.monotonic() - signalled
    out = r.output()
    print(f"exited {took:.2f}s after SIGTERM, the stop in flight having a 3 s timeout")
    assert code == 143, out
    assert took < 3 + STOP_MARGIN, f"exited {took:.1f}s after SIGTERM\n{out}"
    assert "stopping after the current action; send the signal again to stop now" in out
    assert "pass_stopping" in out
    assert "interrupted" in out
    # the replacement in flight completed; the others were not started (still running, untouched)
    done = stopping.removesuffix("-1")
    gens = generations(host)
    assert gens[done] == ("2", "running"), gens
    assert {n: g for n, g in gens.items() if n != done} == {n: ("1", "running") for n in names if n != done}
    assert marked(marks) == [stopping]
    assert results(host)[0] == "interrupted"

    rerun_finishes(host, m, marks, names)


def test_a_second_signal_stops_at_once_and_the_next_run_recovers(
        tmp_path: Path, host: Host, busybox_image: str, runs: list[Once]) -> None:
    m, marks = tmp_path / "m", tmp_path / "marks"
    marks.mkdir()
    names = ["a", "b"]
    trapping_app(m, busybox_image, host.subnet, marks, names, 1, stop_timeout="30s")
    (marks / "obey").touch()
    first = once(host, m)
    assert first.returncode == 0, first.stdout + first.stderr
    (marks / "obey").unlink()

    trapping_app(m, busybox_image, host.subnet, marks, names, 2, stop_timeout="30s")
    r = Once(argv(host, m, "--parallel", "1"), tmp_path / "second")
    runs.append(r)
    wait_for("a stop in flight", lambda: marked(marks))
    r.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert r.proc.poll() is None                      # the first signal waits for the 30 s stop
    signalled = time.monotonic()
    r.signal(signal.SIGINT)
    code = r.wait()
    took = time.monotonic() - signalled
    out = r.output()
    print(f"exited {took:.2f}s after the second signal")
    assert code == 130, out
    assert took < 3, f"exited {took:.1f}s after the second signal\n{out}"
    assert "stopping_now" in out
    assert results(host)[0] == "running"              # on record, never finished

    rerun_finishes(host, m, marks, names)


def test_a_health_gate_is_not_waited_out_the_unverified_update_is_rolled_back(
        tmp_path: Path, host: Host, busybox_image: str, runs: list[Once]) -> None:
    m, marks = tmp_path / "m", tmp_path / "marks"
    marks.mkdir()
    (marks / "obey").touch()
    (marks / "healthy-1").touch()
    # healthy once /marks/healthy-GEN exists; never unhealthy meanwhile (retries)
    gate = ("healthcheck: {test: [CMD-SHELL, 'test -f /marks/healthy-$GEN'], interval: 0.5s, retries: 1000}",
            "update: {healthTimeout: 2m}")
    trapping_app(m, busybox_image, host.subnet, marks, ["web"], 1, extra=gate)
    first = once(host, m)
    assert first.returncode == 0, first.stdout + first.stderr

    trapping_app(m, busybox_image, host.subnet, marks, ["web"], 2, extra=gate)
    r = Once(argv(host, m), tmp_path / "second")
    runs.append(r)
    wait_for("the new container waited for", lambda: generations(host).get("web") == ("2", "running"))
    time.sleep(1)
    signalled = time.monotonic()
    r.signal(signal.SIGTERM)
    code = r.wait()
    took = time.monotonic() - signalled
    out = r.output()
    print(f"exited {took:.2f}s after SIGTERM during a health gate")
    assert code == 143, out
    assert took < STOP_MARGIN, f"exited {took:.1f}s after SIGTERM (health timeout 2m)\n{out}"
    assert "rolled back to the previous container" in out
    assert generations(host) == {"web": ("1", "running")}
    assert results(host)[0] == "interrupted"

    (marks / "healthy-2").touch()
    rerun = once(host, m)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert generations(host) == {"web": ("2", "running")}
    assert_holds_exactly(host.config, ["web"], network="stop")


def test_a_pull_is_cancelled_at_a_chunk_boundary_leaving_no_partial_blob(
        tmp_path: Path, host: Host, busybox_image: str, registry: RegistryServer, runs: list[Once]) -> None:
    proxy = FaultProxy(registry.port).start()
    try:
        # blobs at 4 KiB every 0.1 s: about half a minute for the layer
        proxy.add(Fault("slow", path="/blobs/sha256:", times=100, chunk=4096, delay=0.1))
        image = f"{proxy.host}/{busybox_image.split('/', 1)[1]}"
        m, marks = tmp_path / "m", tmp_path / "marks"
        marks.mkdir()
        (marks / "obey").touch()
        trapping_app(m, image, host.subnet, marks, ["web"], 1)
        r = Once(argv(host, m), tmp_path / "pull")
        runs.append(r)
        ingest = host.config.root / "ingest"
        wait_for("a download under way", lambda: any(p.stat().st_size > 0 for p in ingest.glob("*/data")))
        signalled = time.monotonic()
        r.signal(signal.SIGTERM)
        code = r.wait()
        took = time.monotonic() - signalled
        out = r.output()
        print(f"exited {took:.2f}s after SIGTERM during a pull")
        assert code == 143, out
        assert took < STOP_MARGIN, f"exited {took:.1f}s after SIGTERM\n{out}"
        assert "the reconciler is stopping" in out
        assert list(ingest.iterdir()) == []                       # no partial download kept
        db = Database(host.config.root / "state.db")
        assert db.connect().execute("SELECT COUNT(*) FROM pull_leases").fetchone()[0] == 0
        assert db.connect().execute("SELECT COUNT(*) FROM images").fetchone()[0] == 0
        assert results(host)[0] == "interrupted"

        proxy.faults.clear()
        rerun = once(host, m)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert generations(host) == {"web": ("1", "running")}
        assert_holds_exactly(host.config, ["web"], network="stop")
    finally:
        proxy.stop()
