"""A long-lived engine's pulls, each in a process of its own (#21).

A pull maps a great deal that a process serving containers has no use for once the image is
stored: the registry client's httpx, httpcore, h11 and idna, the TLS library (libssl,
libcrypto) and its context, the fast inflaters (python-isal, zstandard), and the heap their
objects leave. Python cannot unload a module, so an agent that pulled once kept ~5.4 MiB more
at rest (PSS, 50 containers: 36.3 against 30.9 MiB for the same agent whose images were there
before it started). With `NativeConfig.pull_aside` (the agent and `reconcile engine-api` set it) the image store asks
`presence` first, in its own process (a tag it holds, confirmed by one plain HEAD: no
registry client), and runs every pull that needs the registry client here:

- `pull(config, ref, progress)`: this interpreter started again without site (`-I -S`) on the
  caller's sys.path, the request (the store's settings and the reference) on its stdin; it
  opens the same store and pulls with the store's own code (the same locks, the same
  security checks of every layer, the same resumable downloads: the store is shared by
  processes already, as the CLI's are). Its answer is JSON lines on its stdout: each progress
  event, then the image id or the error (its kind among reconciler's errors, message and
  hint), which `pull` raises as that kind. Its stderr is the caller's (its log lines).
- a progress callback that raises (the executor's, once the agent is stopping) ends the
  helper with SIGTERM, which makes it cancel at its next safe point as the agent's own pull
  would (`Cancelled`), and is raised; so does any other error of the caller while it waits.
  A helper killed outright leaves what a killed agent would: partial downloads, resumed by
  the next pull, and extraction debris, which the store's recovery removes.
- an answer that is not one of these (the helper could not start, died, wrote nonsense) is an
  ImageError that says so: the pull failed, nothing is taken for stored.
"""

from __future__ import annotations

import json
import sys

from reconciler.runtime import errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from reconciler.runtime import base
    from reconciler.runtime.native.config import NativeConfig

__all__ = ["pull", "serve"]

STOP_WAIT = 60.0        # seconds a helper told to stop may take to cancel before it is killed

_HELPER = """
import json, sys
sys.path[:] = json.loads(sys.argv[1])
from reconciler.runtime.native.images import aside
aside.serve()
"""


def pull(config: NativeConfig, ref: str, progress: base.ProgressCallback | None,
         auth: Mapping[str, Any] | None = None) -> str:
    """Pull `ref` into the store at `config` in a helper process; the id of the stored image.
    `auth`: the store's (an Engine API client's AuthConfig), given to the helper on its stdin.
    Raises what the pull raised, as that kind (ImageError, RegistryUnavailable, Cancelled,
    DiskFull, ...)."""
    import subprocess  # here: a CLI that never pulls aside does not load it for this module

    from reconciler._dataclass import dataclasses

    # the store's settings, every field of its config but the process's own (its DB, pull_aside)
    settings = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                if f.name not in ("_db", "pull_aside")}
    request = {"config": {k: str(v) if k in ("root", "run_dir") else v for k, v in settings.items()}, "ref": ref,
               "auth": dict(auth) if auth else None}
    try:
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _HELPER, json.dumps(_path())],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
    except OSError as exc:
        raise errors.ImageError(f"pulling {ref}: cannot start the pull process: {exc.strerror}") from None
    answer: dict[str, Any] | None = None
    garbled = False
    try:
        assert proc.stdin is not None
        assert proc.stdout is not None
        with proc.stdin:
            proc.stdin.write(json.dumps(request).encode() + b"\n")
        for line in proc.stdout:        # read to the end, whatever comes: a helper never waits on a full pipe
            try:
                msg = json.loads(line)
            except ValueError:
                garbled = True
                continue
            if isinstance(msg, dict) and isinstance(msg.get("progress"), list) and len(msg["progress"]) == 2:
                if progress is not None and not garbled:
                    progress(str(msg["progress"][0]), msg["progress"][1])
            elif isinstance(msg, dict):
                answer = msg
            else:
                garbled = True
        code = proc.wait()
        if garbled:
            answer = None
    except BaseException:
        _stop(proc)
        raise
    finally:
        if proc.stdout is not None:
            proc.stdout.close()
    if isinstance(answer, dict) and code == 0 and isinstance(answer.get("image"), str):
        return str(answer["image"])
    failed = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(failed, dict):
        raise _as_raised(failed, ref)
    raise errors.ImageError(f"pulling {ref}: the pull process ended (exit status {code}) without an answer",
                            hint="its log lines are the agent's; the next pass tries again")


def _path() -> list[str]:
    """The helper's sys.path: the caller's, then the directory that holds this package. Without
    site the helper runs no .pth file, so a package an import hook finds (an editable install's
    finder) would be missing from the caller's path alone."""
    import os

    import reconciler

    return [*sys.path, os.path.dirname(os.path.dirname(os.path.abspath(reconciler.__file__)))]


def _stop(proc: Any) -> None:
    """End the helper: SIGTERM (it cancels at its next safe point), SIGKILL after STOP_WAIT."""
    import subprocess

    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _as_raised(failed: dict[str, Any], ref: str) -> Exception:
    """The helper's error as the kind it was: one of reconciler's errors (runtime ones first),
    made with its message and hint; an ImageError naming the kind when it is not one."""
    from pathlib import Path

    from reconciler import errors as base_errors

    kind, message, hint = failed.get("kind"), str(failed.get("message") or ""), failed.get("hint")
    hint = hint if isinstance(hint, str) else None
    given = failed.get("extra")
    extra: dict[str, Any] = dict(given) if isinstance(given, dict) else {}
    if isinstance(extra.get("path"), str):
        extra["path"] = Path(extra["path"])            # DiskFull's
    for module in (errors, base_errors):
        cls = getattr(module, kind, None) if isinstance(kind, str) and kind.isidentifier() else None
        if isinstance(cls, type) and issubclass(cls, base_errors.ReconcilerError):
            for kwargs in (extra, {}):
                try:
                    return cls(message, hint=hint, **kwargs)
                except TypeError:
                    continue
            break
    return errors.ImageError(f"pulling {ref}: {message or 'the pull process failed'}", hint=hint)


def serve() -> None:
    """The helper: one request on stdin, progress and then the answer as JSON lines on stdout."""
    import signal
    from pathlib import Path

    from reconciler import errors as base_errors
    from reconciler import logs
    from reconciler.runtime.native.config import NativeConfig
    from reconciler.runtime.native.images import images

    out = sys.stdout
    stopping: list[int] = []

    def stop(signum: int, _frame: Any) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def write(msg: dict[str, Any]) -> None:
        out.write(json.dumps(msg, default=str) + "\n")
        out.flush()

    request = json.loads(sys.stdin.readline())
    ref = str(request["ref"])

    def progress(event: str, detail: Any) -> None:
        if stopping:
            raise errors.Cancelled(f"pull of {ref} stopped: the engine is stopping", hint="the next pass pulls it again")
        write({"progress": [event, detail]})

    logs.configure_logging(level="warning", json=True)
    settings = dict(request["config"])
    settings["root"], settings["run_dir"] = Path(settings["root"]), Path(settings["run_dir"])
    config = NativeConfig(**settings)       # pull_aside False: this process pulls itself
    try:
        store = images.ImageStore(config)
        info = store.pull(ref, progress=progress, auth=request.get("auth") or None)
        write({"image": info.id})
    except base_errors.ReconcilerError as exc:
        extra = {k: str(v) if k == "path" and v is not None else v for k, v in vars(exc).items()
                 if k not in ("message", "hint") and isinstance(v, (str, int, float, bool, Path, type(None)))}
        write({"error": {"kind": type(exc).__name__, "message": exc.message, "hint": exc.hint, "extra": extra}})
    except Exception as exc:  # noqa: BLE001 - said to the caller, which raises it as an ImageError
        write({"error": {"kind": "", "message": f"{type(exc).__name__}: {exc}"}})
    finally:
        config.db().close()
