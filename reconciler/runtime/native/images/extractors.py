"""Extractor processes: a pull's layers unpacked outside the pulling process (#21).

Python threads share one interpreter lock, so layers unpacked by threads of the pulling process
take turns at the tar parsing and the per-file system calls. A pull of enough bytes starts a
few extractor processes instead (`Extractors`), each running `layers.apply_layer`, the same
code with the same confinement (openat2 in the snapshot dir, limits, DiffID check), on one
layer at a time: the blob is read from the content store by path and unpacked into the
snapshot dir the pulling process made; the snapshot is still committed by the pulling process,
in chain order. The extractors hold no lock and no other file of the pulling process
(close_fds), share its credentials and umask, ignore SIGINT (the pull decides what a ^C
stops) and die with it (PR_SET_PDEATHSIG): a killed pull leaves only its `extract-*` debris.

The protocol is JSON lines over the worker's stdin and stdout (fd 1 is pointed at stderr inside
the worker, so nothing else can write to the channel): {"ready": true} once, then per layer the
job and {"ok": result} or {"error": kind, ...}. A worker that exits before it is ready (an
interpreter that cannot import this package) is replaced by the calling thread, as without
extractors. Errors cross as LayerError (message and hint),
NeedsLowers, or OSError (errno, so a full disk is still DiskFull for the caller).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from reconciler.runtime import errors
from reconciler.runtime.native.images import layers

__all__ = ["Extractors", "main"]

_STOP_TIMEOUT = 10.0
_PR_SET_PDEATHSIG = 1


class Extractors:
    """`n` extractor processes, started at once (their interpreters start while the blobs
    download); `apply` runs one layer in an idle one. Close it (or use `with`) to end them."""

    def __init__(self, n: int) -> None:
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._workers: list[_Worker] = []
        try:
            for _ in range(max(1, n)):
                self._workers.append(_Worker())
        except BaseException:
            self.close()
            raise
        for w in self._workers:
            self._idle.put(w)

    def __enter__(self) -> Extractors:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def apply(self, blob: Path, dest: Path, *, lowers: Sequence[Path] = (), lowers_pending: bool = False,
              expected_diff_id: str | None = None, limits: layers.Limits | None = None,
              compressed_size: int | None = None) -> layers.ApplyResult:
        """`layers.apply_layer` of the blob file `blob` into `dest`, in an extractor process;
        in this thread if the extractor could not start (an interpreter that cannot import
        this package), as without extractors."""
        job = {"blob": str(blob), "dest": str(dest), "lowers": [str(p) for p in lowers],
               "lowers_pending": lowers_pending, "expected_diff_id": expected_diff_id,
               "limits": asdict(limits or layers.Limits()), "compressed_size": compressed_size}
        worker = self._idle.get()
        try:
            return worker.call(job)
        except _NotStarted:
            with open(blob, "rb") as f:
                return _apply(f, job)
        finally:
            self._idle.put(worker)

    def close(self) -> None:
        """End every worker: EOF on every stdin first (they end side by side), then each is
        waited for, and SIGKILLed if it has not exited in time (a worker still unpacking
        finishes its layer first)."""
        for w in self._workers:
            w.hang_up()
        for w in self._workers:
            w.stop()


class _Worker:
    def __init__(self) -> None:
        import reconciler

        top = str(Path(reconciler.__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (top, os.environ.get("PYTHONPATH")) if p)}
        code = "from reconciler.runtime.native.images.extractors import main; main()"
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(os.getpid())], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, close_fds=True)
        self.jobs = cast("IO[bytes]", self.proc.stdin)          # both pipes, as asked
        self.answers = cast("IO[bytes]", self.proc.stdout)
        self.broken: str | None = None
        self.started: bool | None = None      # None: its "ready" line not read yet

    def call(self, job: dict[str, Any]) -> layers.ApplyResult:
        if self.started is None:
            self.started = bool(self.answers.readline())
        if not self.started:
            raise _NotStarted
        if self.broken is not None:
            raise _died(self.broken)
        try:
            self.jobs.write(json.dumps(job).encode() + b"\n")
            self.jobs.flush()
            line = self.answers.readline()
        except OSError:
            line = b""
        if not line:
            self.broken = f"the extractor process {self.proc.pid} died (exit status {self.proc.wait()})"
            raise _died(self.broken)
        return _result(json.loads(line))

    def hang_up(self) -> None:
        with contextlib.suppress(OSError):
            self.jobs.close()

    def stop(self) -> None:
        self.hang_up()
        try:
            self.proc.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.answers.close()


class _NotStarted(Exception):
    """The extractor exited before it was ready (its stderr says why)."""


def _died(what: str) -> errors.ImageError:
    return errors.ImageError(f"{what} while unpacking a layer",
                             hint="pull again; if it keeps happening, look for an out-of-memory kill in the kernel log")


def _result(msg: dict[str, Any]) -> layers.ApplyResult:
    if "ok" in msg:
        r = msg["ok"]
        return layers.ApplyResult(diff_id=r["diff_id"], size=r["size"], entries=r["entries"],
                                  implicit_dirs=tuple(r["implicit_dirs"]))
    kind = msg["error"]
    if kind == "needs-lowers":
        raise layers.NeedsLowers(msg["message"])
    if kind == "os":
        raise OSError(msg["errno"], msg["message"], msg.get("filename"))
    raise layers.LayerError(msg["message"], hint=msg.get("hint"))


# -- the worker side ---------------------------------------------------------------------------


def main() -> None:
    """The extractor process: one job per line on stdin, one answer per line, until EOF."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)           # a stray print must not corrupt the channel
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(int(sys.argv[1]))
    out.write(b'{"ready": true}\n')
    out.flush()
    for line in sys.stdin.buffer:
        out.write(json.dumps(_run(json.loads(line))).encode() + b"\n")
        out.flush()


def _die_with_parent(parent: int) -> None:
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:      # the parent died before the prctl
        os._exit(1)


def _run(job: dict[str, Any]) -> dict[str, Any]:
    try:
        with open(job["blob"], "rb") as blob:
            res = _apply(blob, job)
    except layers.NeedsLowers as exc:
        return {"error": "needs-lowers", "message": str(exc)}
    except layers.LayerError as exc:
        return {"error": "layer", "message": exc.message, "hint": exc.hint}
    except OSError as exc:
        return {"error": "os", "errno": exc.errno, "message": exc.strerror or str(exc),
                "filename": None if exc.filename is None else str(exc.filename)}
    except Exception as exc:  # noqa: BLE001 - any other failure is the layer's, said with its type
        return {"error": "layer", "message": f"unpacking the layer failed: {type(exc).__name__}: {exc}"}
    return {"ok": {"diff_id": res.diff_id, "size": res.size, "entries": res.entries,
                   "implicit_dirs": list(res.implicit_dirs)}}


def _apply(blob: BinaryIO, job: dict[str, Any]) -> layers.ApplyResult:
    return layers.apply_layer(blob, Path(job["dest"]), lowers=[Path(p) for p in job["lowers"]],
                              lowers_pending=job["lowers_pending"], expected_diff_id=job["expected_diff_id"],
                              limits=layers.Limits(**job["limits"]), compressed_size=job["compressed_size"])
