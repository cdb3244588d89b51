"""A stop signal is taken wherever the main thread is in its wait (stopping.py).

A handler runs between two bytecodes of the main thread, wherever that thread is: one that
takes a lock the thread holds at that moment waits for itself forever. CI once saw an agent that
never stopped after SIGTERM: its handler set a threading.Event while the main thread was inside
that Event's wait, holding its lock. Here a child process raises the signal at each step (each
line and call, stdlib's included) of the main thread's wait in turn, on a new Stopper each
time, and must see every wait end.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import signal, sys
    from reconciler.execution import stopping

    step = [0, 0]                        # the step the signal goes at, the steps so far

    def tracer(frame, event, arg):
        if event in ("call", "line", "return"):
            step[1] += 1
            if step[1] == step[0]:
                signal.raise_signal(signal.SIGTERM)     # its handler runs at the next check
        return tracer

    stop = stopping.Stopper().install()
    sys.settrace(tracer)
    stop.sleep(0.15)                     # no signal: how many steps one whole wait takes
    sys.settrace(None)
    stop.restore()
    steps = step[1]
    for at in range(1, steps + 1):
        stop = stopping.Stopper().install()
        step[:] = [at, 0]
        sys.settrace(tracer)
        stop.sleep(0.15)
        sys.settrace(None)
        stop.restore()
        if not stop():
            print("missed at step", at, "of", steps, flush=True)
            sys.exit(1)
    print("stopped", steps, flush=True)
""")


def test_a_signal_at_any_step_of_the_main_threads_wait_stops_it(tmp_path: Path) -> None:
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD], cwd=REPO, capture_output=True, text=True,
                              timeout=30, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"a signal left the wait hanging: {e.stdout!r}") from None
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("stopped"), proc.stdout
    assert int(proc.stdout.split()[1]) > 3, proc.stdout       # the wait had steps to hit
