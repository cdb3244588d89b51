"""Container log rotation (max size x max files) with conmon's ctl fifo, and reading across it.

The container writes numbered lines in bursts and waits on a gate file after each one, so
every rotation happens at a known point: after the follower has seen the burst, with a
partial line (a conmon `P` record) at the end of the file that is rotated away.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.runtime import base
from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.containers import health, logs
from tests.runtime.conftest import cleanup, leftovers, make_native

pytestmark = [pytest.mark.root, pytest.mark.registry]

REPO = Path(__file__).resolve().parents[3]

MAX_SIZE = 64 * 1024
MAX_FILES = 3
PER_BURST = 64                  # lines per burst
BURSTS = 100                    # ~1.5 MiB in all
PAD = "x" * 160
# a burst in conmon's format: "<35-byte time> stdout F line-N-PAD\n" per line, plus the partials
BURST_BYTES = PER_BURST * (45 + len("line-000000-") + len(PAD)) + 2 * 64

SCRIPT = f"""
printf 'half-start-'
i=0; b=0
while [ $b -lt {BURSTS} ]; do
  echo "rest-$b"
  j=0
  while [ $j -lt {PER_BURST} ]; do i=$((i+1)); echo "line-$i-{PAD}"; j=$((j+1)); done
  printf 'half-%d-' $b
  while [ ! -e /gate/$b ]; do sleep 0.01; done
  b=$((b+1))
done
echo end
"""


def expected_lines() -> list[str]:
    out = ["half-start-rest-0"]
    for b in range(BURSTS):
        out += [f"line-{b * PER_BURST + j + 1}-{PAD}" for j in range(PER_BURST)]
        out.append(f"half-{b}-" + (f"rest-{b + 1}" if b + 1 < BURSTS else "end"))
    return out


@pytest.fixture
def native(request: pytest.FixtureRequest, tmp_path: Path, busybox_image: str) -> Iterator[tuple[NativeRuntime, str]]:
    """A native engine rotating at MAX_SIZE; the param is conmon's own cap (the backstop)."""
    rt, ref = make_native(tmp_path, busybox_image, log_max_size=MAX_SIZE, log_max_files=MAX_FILES,
                          log_size_max=getattr(request, "param", None))
    try:
        yield rt, ref
    finally:
        cleanup(rt)
        left = leftovers(rt.config)
        rt.close()
        assert left == [], left


def _wait(cond: object, what: str, timeout: float = 60.0) -> None:
    """Wait for a condition the container or the follower reaches (not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.005)


def _files(log: Path) -> list[Path]:
    return [*logs.rotated_files(log), *([log] if log.exists() else [])]


def _partial(log: Path) -> str:
    """The partial line at the end of the log: the text of its last `P` records, joined across
    its files (oldest first, the pin of a file conmon cut in its place). conmon writes a partial
    in as many records as its reads cut it into: a burst it reads late (a busy machine) can end
    one 8 KiB read inside `half-N-` (CI failed once waiting for " P half-15-" whole)."""
    files = [*logs.rotated_files(log), logs.pin_path(log), log]
    seen: set[int] = set()
    records: list[bytes] = []
    for f in files:
        try:
            ino = f.stat().st_ino
        except FileNotFoundError:
            continue
        if ino not in seen:
            seen.add(ino)
            records += f.read_bytes().splitlines()
    parts: list[str] = []
    for rec in reversed(records):
        _, _, tag, text = [*rec.split(b" ", 3), b"", b"", b""][:4]
        if tag != b"P":
            break
        parts.append(text.decode())
    return "".join(reversed(parts))


# 96 KiB: conmon's own cut (its count is not reset by our rotations) also strikes between
# rotations, in the middle of bursts; the pin keeps what it drops
@pytest.mark.parametrize("native", [None, 96 * 1024], indirect=True, ids=["rotation", "with-conmon-cuts"])
def test_rotation_keeps_max_files_and_reads_across_them(native: tuple[NativeRuntime, str], tmp_path: Path,
                                                        request: pytest.FixtureRequest) -> None:
    rt, image = native
    gate = tmp_path / "gate"
    gate.mkdir()
    cid = rt.create_container(base.ContainerConfig(
        name="chatty", image=image, command=("sh", "-c", SCRIPT), networks=("none",),
        mounts=(base.Mount(type="bind", source=str(gate), target="/gate", read_only=True),),
    ))
    log = rt.containers.paths(cid).log
    followed: list[str] = []
    follower_done = threading.Event()

    def follow() -> None:
        try:
            for line in rt.logs(cid, follow=True):
                followed.append(line.data.decode())
        finally:
            follower_done.set()

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    rt.start_container(cid)
    # the supervision loop's path: the health checker's tick, its clock 10 s on per call
    clock = itertools.count(0, 10)
    checker = health.HealthChecker(rt.containers, clock=lambda: float(next(clock)))
    partial_at_boundary = conmon_cuts = 0
    after: int | None = None
    for b in range(BURSTS):
        last = f"line-{(b + 1) * PER_BURST}-{PAD}"
        _wait(lambda last=last: bool(followed) and followed[-1] == last, f"the follower to see burst {b}")
        half = f"half-{b}-"
        _wait(lambda half=half: log.exists() and _partial(log) == half, f"the partial line of burst {b}")
        before = log.stat().st_ino
        if after is not None and before != after:
            conmon_cuts += 1                    # conmon replaced the file during the burst
        checker.tick()
        if not log.exists() or log.stat().st_ino != before:
            partial_at_boundary += 1            # rotated right after a P record
            assert (log.parent / "ctr.log.1").read_bytes().splitlines()[-1].split(b" ", 3)[2] == b"P"
            assert _partial(log) == half
            # conmon reopens when it reads the ctl fifo; a burst it reads first would go on in
            # ctr.log.1 (correct, but then this burst's rotation point is not the known one)
            _wait(log.exists, f"conmon to reopen the log after burst {b}")
        after = log.stat().st_ino
        (gate / str(b)).touch()
    assert rt.wait_container(cid, timeout=60) == 0
    reader.join(timeout=30)
    assert follower_done.is_set()

    expected = expected_lines()
    # the follower saw every line once, in order, partial lines joined across the rotations
    assert followed == expected
    assert partial_at_boundary >= 10
    if request.node.callspec.id == "with-conmon-cuts":
        assert conmon_cuts >= 3
    else:
        assert conmon_cuts == 0

    files = _files(log)
    assert 2 <= len(files) <= MAX_FILES
    assert [p.name for p in files] == [f"ctr.log.{n}" for n in range(len(files) - 1, 0, -1)] + ["ctr.log"]
    for p in files:
        assert p.stat().st_size <= MAX_SIZE + BURST_BYTES, (p, p.stat().st_size)

    lines = [ln.data.decode() for ln in rt.logs(cid)]
    # the newest lines, in order; the oldest kept line may have lost its first part with the
    # file that held it (as with Docker's rotated json files)
    assert len(lines) > PER_BURST * 2
    assert lines[1:] == expected[len(expected) - len(lines) + 1:]
    assert expected[len(expected) - len(lines)].endswith(lines[0])
    # --tail across files: more lines than the current file holds
    in_current = log.read_bytes().count(b"\n")
    for n in (1, in_current + 5, len(lines) - 1, len(lines) + 100):
        assert [ln.data.decode() for ln in rt.logs(cid, tail=n)] == lines[-n:]
    assert [ln.data.decode() for ln in rt.logs(cid, tail=0)] == []


def test_no_rotation_below_the_size_nor_for_stopped_containers(native: tuple[NativeRuntime, str]) -> None:
    rt, image = native
    cid = rt.create_container(base.ContainerConfig(
        name="quiet", image=image, command=("sh", "-c", "echo one; echo two; sleep 1000"), networks=("none",)))
    rt.start_container(cid)
    log = rt.containers.paths(cid).log
    _wait(lambda: log.exists() and log.read_bytes().count(b"\n") == 2, "two lines")
    assert rt.rotate_logs() == []
    rt.stop_container(cid, timeout=1)
    with open(log, "ab") as f:               # grown past the size while nothing writes it
        f.write(b"2026-01-01T00:00:00.000000000+00:00 stdout F filler\n" * (MAX_SIZE // 40))
    assert rt.rotate_logs() == []
    assert logs.rotated_files(log) == []
    assert [ln.data for ln in rt.logs(cid, tail=1)] == [b"filler"]


@pytest.mark.parametrize("native", [96 * 1024], indirect=True, ids=["conmon-cuts-at-96k"])
def test_a_conmon_cut_of_the_file_a_rotation_just_made_loses_nothing(native: tuple[NativeRuntime, str],
                                                                     tmp_path: Path) -> None:
    """conmon counts toward its own cut (96 KiB here) across the reopens a rotation asks: ~67 KiB
    before a rotation and ~45 KiB after it, conmon cuts the fresh file a third of the way into
    the second burst, before any later supervision step. The rotation pinned that file as soon as
    conmon made it (in place of the pin an earlier step made, as an agent's steps every 2 s do),
    so the lines it held are still read (unpinned, they were gone with it)."""
    rt, image = native
    gate = tmp_path / "gate"
    gate.mkdir()
    script = ("echo start; while [ ! -e /gate/pin ]; do sleep 0.01; done; "
              f"i=0; while [ $i -lt 310 ]; do i=$((i+1)); echo \"line-$i-{PAD}\"; done; "
              f"while [ ! -e /gate/go ]; do sleep 0.01; done; "
              f"while [ $i -lt 520 ]; do i=$((i+1)); echo \"line-$i-{PAD}\"; done; sleep 1000")
    cid = rt.create_container(base.ContainerConfig(
        name="cut", image=image, command=("sh", "-c", script), networks=("none",),
        mounts=(base.Mount(type="bind", source=str(gate), target="/gate", read_only=True),)))
    rt.start_container(cid)
    log = rt.containers.paths(cid).log
    expected = ["start", *(f"line-{i}-{PAD}" for i in range(1, 521))]

    def read() -> list[str]:
        return [ln.data.decode() for ln in rt.logs(cid)]      # (a line conmon read in two is joined)

    _wait(lambda: read() == expected[:1], "its first line")
    assert rt.rotate_logs() == []                                # a supervision step: the file pinned
    assert logs.pin_path(log).stat().st_ino == log.stat().st_ino
    (gate / "pin").touch()
    _wait(lambda: read() == expected[:311], "the first burst")
    assert log.stat().st_size >= MAX_SIZE
    assert rt.rotate_logs() == [cid]
    _wait(log.exists, "conmon's fresh file")
    fresh = log.stat().st_ino
    assert logs.pin_path(log).stat().st_ino == fresh           # pinned at once
    (gate / "go").touch()
    _wait(lambda: read()[-1] == expected[-1], "the second burst")
    assert log.stat().st_ino != fresh                            # conmon cut the fresh file
    assert read() == expected
    assert rt.rotate_logs() == [cid]                             # the cut file rotated in
    assert read() == expected


def test_follow_continues_into_the_new_file(native: tuple[NativeRuntime, str], tmp_path: Path) -> None:
    """A follower started before the rotation keeps reading the renamed file to its end, then
    the fresh one; a second rotation while it waits is read too."""
    rt, image = native
    gate = tmp_path / "gate"
    gate.mkdir()
    big = "y" * 1000
    script = ("i=0; while [ $i -lt 3 ]; do j=0; while [ $j -lt 80 ]; do "
              f"echo \"$i-$j-{big}\"; j=$((j+1)); done; "
              "while [ ! -e /gate/$i ]; do sleep 0.01; done; i=$((i+1)); done")
    cid = rt.create_container(base.ContainerConfig(
        name="rot", image=image, command=("sh", "-c", script), networks=("none",),
        mounts=(base.Mount(type="bind", source=str(gate), target="/gate", read_only=True),)))
    rt.start_container(cid)
    log = rt.containers.paths(cid).log
    seen: list[str] = []
    it = rt.logs(cid, follow=True)
    for _ in range(80):
        seen.append(next(it).data.decode())
    assert rt.rotate_logs() == [cid]
    (gate / "0").touch()
    for _ in range(80):
        seen.append(next(it).data.decode())
    _wait(lambda: log.exists() and log.stat().st_size >= 80 * 1000, "the second burst in the new file")
    assert rt.rotate_logs() == [cid]
    (gate / "1").touch()
    _wait(lambda: log.exists() and log.stat().st_size >= 80 * 1000, "the third burst in the new file")
    assert rt.rotate_logs() == [cid]
    (gate / "2").touch()
    seen += [ln.data.decode() for ln in it]
    assert seen == [f"{i}-{j}-{big}" for i in range(3) for j in range(80)]
    assert len(logs.rotated_files(log)) == MAX_FILES - 1     # the first burst's file is gone
    kept = list(rt.logs(cid))
    assert [ln.data.decode() for ln in kept] == seen[80:]
    # --since a time in the newest rotated file: the older file's lines are left out
    assert [ln.data.decode() for ln in rt.logs(cid, since=kept[80].time)] == seen[160:]
    # `reconcile logs --tail` as a user runs it, across the two rotated files
    env = {**os.environ, "RECONCILER_ROOT": str(rt.config.root), "RECONCILER_RUN_DIR": str(rt.config.run_dir),
           "RECONCILER_PREFIX": rt.config.name_prefix}
    out = subprocess.run([sys.executable, "-m", "reconciler", "logs", "--tail", "100", "rot"], cwd=REPO, env=env,
                         capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.splitlines() == seen[-100:]


def test_a_containers_own_max_size_and_max_file_win_over_the_engines(native: tuple[NativeRuntime, str]) -> None:
    """`logging: {driver: json-file, options: {max-size: 8k, max-file: '2'}}` (#16): that container's
    log rotates at 8 KiB and keeps two files, while the engine rotates at MAX_SIZE (64 KiB)."""
    rt, image = native
    script = f"i=0; while [ $i -lt 200 ]; do echo \"$i-{PAD}\"; i=$((i+1)); done; sleep 1000"   # ~40 KiB
    own = rt.create_container(base.ContainerConfig(
        name="own", image=image, command=("sh", "-c", script), networks=("none",),
        log_driver="json-file", log_options={"max-size": "8k", "max-file": "2"}))
    engine = rt.create_container(base.ContainerConfig(
        name="engine", image=image, command=("sh", "-c", script), networks=("none",)))
    for cid in (own, engine):
        rt.start_container(cid)
        log = rt.containers.paths(cid).log
        _wait(lambda log=log: log.exists() and log.read_bytes().count(b"\n") >= 200, "200 lines")
    assert rt.rotate_logs() == [own]                 # 40 KiB: past 8 KiB, below 64 KiB
    own_log = rt.containers.paths(own).log
    assert logs.rotated_files(own_log) == [own_log.with_name(own_log.name + ".1")]
    _wait(own_log.exists, "conmon reopening the log")
    with open(own_log, "ab") as f:                   # past 8 KiB again (the container only sleeps now)
        f.write(b"2026-01-01T00:00:00.000000000+00:00 stdout F filler\n" * 200)
    assert rt.rotate_logs() == [own]
    assert len(logs.rotated_files(own_log)) == 1     # max-file 2: the current file and one rotated
