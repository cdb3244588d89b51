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

A layer whose blob this pull is downloading is unpacked while it downloads (`Follow`): the
extractor reads the ingest file as it grows (the committed blob once it is renamed) until it
has read the blob's `size` bytes; the pulling process tells it, by a line on its stdin, when
the download ended and how. A download that failed stops it at once, and a download that
ended while the file the extractor holds is short (a replaced ingest) makes it give up: both
are answered "stream". Its result is believed only once the download was verified (the
registry client hashes every byte it writes) and committed, and the DiffID check of the
decompressed stream holds as for any layer, so a snapshot is never made of bytes that are not
the layer's; the caller discards the snapshot dir and unpacks the committed blob when the
streamed attempt failed in any way (the layer is refused only by that second attempt).

The protocol is JSON lines over the worker's stdin and stdout (fd 1 is pointed at stderr inside
the worker, so nothing else can write to the channel): {"ready": true} once, then per layer the
job (with an "id") and {"ok": result} or {"error": kind, ...}; between them, for a followed
blob, {"end": id, "ok": bool} (a line naming another job is stale and ignored). A worker that
exits before it is ready (an interpreter that cannot import this package) is replaced by the
calling thread, as without extractors. Errors cross as LayerError (message and hint),
NeedsLowers, "stream" (StreamFailed), or OSError (errno, so a full disk is still DiskFull for
the caller).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

from reconciler._dataclass import asdict, dataclass
from reconciler.runtime import errors
from reconciler.runtime.native.images import layers

if TYPE_CHECKING:
    from concurrent.futures import Future  # brings logging: not in the extractor's start-up

__all__ = ["Extractors", "Follow", "StreamFailed", "main"]

_STOP_TIMEOUT = 10.0
_PR_SET_PDEATHSIG = 1
_POLL = 0.01            # how often a follower at the end of a growing file looks again (s)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Follow:
    """A blob still downloading: read `paths` in order (the ingest file, then the committed
    blob) until `size` bytes were read; `download` completes when the download ends."""

    paths: tuple[Path, ...]
    size: int
    download: Future[None]


class StreamFailed(Exception):
    """Following a download failed (it failed, or the file read was not the one committed):
    discard what was unpacked and unpack the committed blob (or say why the download failed)."""


class Extractors:
    """`n` extractor processes, started at once (their interpreters start while the blobs
    download); `apply` runs one layer in an idle one. Close it (or use `with`) to end them."""

    def __init__(self, n: int) -> None:
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._workers: list[_Worker] = []
        self._ids = itertools.count()
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

    def apply(self, blob: Path | Follow, dest: Path, *, lowers: Sequence[Path] = (), lowers_pending: bool = False,
              expected_diff_id: str | None = None, limits: layers.Limits | None = None,
              compressed_size: int | None = None) -> layers.ApplyResult:
        """`layers.apply_layer` of the blob file `blob` (or of a blob still downloading:
        `Follow`, StreamFailed if that fails) into `dest`, in an extractor process; in this
        thread if the extractor could not start (an interpreter that cannot import this
        package), as without extractors (a followed blob is then waited for)."""
        job: dict[str, Any] = {
            "id": next(self._ids), "dest": str(dest), "lowers": [str(p) for p in lowers],
            "lowers_pending": lowers_pending, "expected_diff_id": expected_diff_id,
            "limits": asdict(limits or layers.Limits()), "compressed_size": compressed_size}
        if isinstance(blob, Follow):
            job["follow"] = {"paths": [str(p) for p in blob.paths], "size": blob.size}
        else:
            job["blob"] = str(blob)
        worker = self._idle.get()
        try:
            if isinstance(blob, Follow):
                return worker.call(job, blob.download)
            return worker.call(job)
        except _NotStarted:
            if isinstance(blob, Follow):
                raise StreamFailed("no extractor process to follow the download") from None
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
        self._writing = threading.Lock()      # a job, or the end of a followed download

    def call(self, job: dict[str, Any], download: Future[None] | None = None) -> layers.ApplyResult:
        if self.started is None:
            self.started = bool(self.answers.readline())
        if not self.started:
            raise _NotStarted
        if self.broken is not None:
            raise _died(self.broken)
        try:
            self._send(job)
            if download is not None:
                download.add_done_callback(lambda f: self._ended(job["id"], f))
            line = self.answers.readline()
        except OSError:
            line = b""
        if not line:
            self.broken = f"the extractor process {self.proc.pid} died (exit status {self.proc.wait()})"
            raise _died(self.broken)
        return _result(json.loads(line))

    def _send(self, msg: dict[str, Any]) -> None:
        with self._writing:
            self.jobs.write(json.dumps(msg).encode() + b"\n")
            self.jobs.flush()

    def _ended(self, job: int, download: Future[None]) -> None:
        """Tell the worker how the download it follows for `job` ended (from the thread that
        ended it; a worker already gone, or past that job, does not mind)."""
        ok = not download.cancelled() and download.exception() is None
        with contextlib.suppress(OSError, ValueError):
            self._send({"end": job, "ok": ok})

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
                                  unpacked=r["unpacked"], implicit_dirs=tuple(r["implicit_dirs"]))
    kind = msg["error"]
    if kind == "stream":
        raise StreamFailed(msg["message"])
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
    lines = _Lines(0)
    while line := lines.next():
        job = json.loads(line)
        if "end" in job:
            continue                # the end of a download followed by a job already answered
        out.write(json.dumps(_run(job, lines)).encode() + b"\n")
        out.flush()


def _die_with_parent(parent: int) -> None:
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:      # the parent died before the prctl
        os._exit(1)


class _Lines:
    """Lines from a pipe fd, with a timeout (a follower waits on it for more bytes)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

    def next(self, timeout: float | None = None) -> bytes | None:
        """The next line; b"" at EOF; None if none came within `timeout` seconds."""
        while b"\n" not in self.buf:
            if timeout is not None and not select.select([self.fd], [], [], timeout)[0]:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return b""
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line


class _Aborted(Exception):
    """The followed download failed (or the pulling process hung up)."""


class _Short(Exception):
    """The download ended and the file read holds fewer bytes than the blob."""


class _Follower:
    """The blob of a `Follow` job as a file read while it is written: a read blocks until its
    bytes are there (or the blob's `size` was read)."""

    def __init__(self, spec: dict[str, Any], job: int, control: _Lines) -> None:
        self.paths = [Path(p) for p in spec["paths"]]
        self.size: int = spec["size"]
        self.job = job
        self.control = control
        self.pos = 0
        self.fd = -1
        self.ended = False      # the download ended well: no byte will come that is not here

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def read(self, n: int = -1) -> bytes:
        """`n` bytes (fewer only at the end of the blob), waiting for them to be written."""
        want = self.size - self.pos if n < 0 else min(n, self.size - self.pos)
        parts: list[bytes] = []
        while want:
            data = self._pread(want)
            if not data:
                self._wait()
                continue
            parts.append(data)
            self.pos += len(data)
            want -= len(data)
        return b"".join(parts)

    def _pread(self, n: int) -> bytes:
        if self.fd < 0:
            for p in self.paths:
                with contextlib.suppress(FileNotFoundError):
                    self.fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
                    break
            if self.fd < 0:
                return b""
        return os.pread(self.fd, min(n, _CHUNK), self.pos)

    def _wait(self) -> None:
        if self.ended:
            raise _Short("the download ended and the file read holds fewer bytes than the blob")
        line = self.control.next(_POLL)
        if line is None:
            return
        if line == b"":
            raise _Aborted("the pulling process hung up")
        msg = json.loads(line)
        if msg.get("end") == self.job:
            if not msg["ok"]:
                raise _Aborted("the download failed")
            self.ended = True


def _run(job: dict[str, Any], control: _Lines | None = None) -> dict[str, Any]:
    try:
        if "follow" in job:
            res = _follow(job, control or _Lines(0))
        else:
            with open(job["blob"], "rb") as blob:
                res = _apply(blob, job)
    except (_Aborted, _Short) as exc:
        return {"error": "stream", "message": str(exc)}
    except layers.NeedsLowers as exc:
        return {"error": "needs-lowers", "message": str(exc)}
    except layers.LayerError as exc:
        return {"error": "layer", "message": exc.message, "hint": exc.hint}
    except OSError as exc:
        return {"error": "os", "errno": exc.errno, "message": exc.strerror or str(exc),
                "filename": None if exc.filename is None else str(exc.filename)}
    except Exception as exc:  # noqa: BLE001 - any other failure is the layer's, said with its type
        return {"error": "layer", "message": f"unpacking the layer failed: {type(exc).__name__}: {exc}"}
    return {"ok": {"diff_id": res.diff_id, "size": res.size, "entries": res.entries, "unpacked": res.unpacked,
                   "implicit_dirs": list(res.implicit_dirs)}}


def _follow(job: dict[str, Any], control: _Lines) -> layers.ApplyResult:
    """Unpack a blob as it downloads (the caller believes the result once the download is
    verified and committed)."""
    blob = _Follower(job["follow"], job["id"], control)
    try:
        return _apply(cast("BinaryIO", blob), job)
    finally:
        blob.close()


def _apply(blob: BinaryIO, job: dict[str, Any]) -> layers.ApplyResult:
    return layers.apply_layer(blob, Path(job["dest"]), lowers=[Path(p) for p in job["lowers"]],
                              lowers_pending=job["lowers_pending"], expected_diff_id=job["expected_diff_id"],
                              limits=layers.Limits(**job["limits"]), compressed_size=job["compressed_size"])
