"""Run a command to completion and measure the peak memory of that one process.

The command is started by a small launcher process, which reaps it with `os.wait4` and
reports its `ru_maxrss`. Two things would blur the number otherwise: Linux carries the
high-water RSS of the address space a process had before `exec` (with vfork, the test
worker's own peak), and RUSAGE_CHILDREN is a running maximum over every child reaped so far.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Measured", "run_measured"]

_LAUNCHER = """
import os, subprocess, sys, time
report, timeout, argv = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
proc = subprocess.Popen(argv)
deadline = time.monotonic() + timeout
while True:
    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    if pid:
        break
    if time.monotonic() > deadline:
        proc.kill()
        pid, status, usage = os.wait4(proc.pid, 0)
        break
    time.sleep(0.05)
with open(report, "w") as f:
    f.write(str(usage.ru_maxrss * 1024))
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass(frozen=True)
class Measured:
    returncode: int
    stdout: str
    stderr: str
    peak_rss: int       # bytes


def run_measured(argv: list[str], workdir: Path, *, timeout: float = 300.0) -> Measured:
    """Run `argv` to completion (killed, by the launcher, after `timeout` seconds); its exit
    code, output and peak resident set size."""
    report = workdir / "measured.rss"
    done = subprocess.run([sys.executable, "-c", _LAUNCHER, str(report), str(timeout), *argv],
                          capture_output=True, text=True, check=False, timeout=timeout + 30)
    return Measured(done.returncode, done.stdout, done.stderr, int(report.read_text()))
