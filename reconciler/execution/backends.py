"""Open the runtime named by `--runtime`; each backend is imported only when chosen.

    native  the embedded engine (reconciler.runtime.native.backend.NativeRuntime)
    fake    in-memory engine whose state is a JSON file under --root: for tests and dry runs
            of the reconciler's own logic, it runs no process
"""

from __future__ import annotations

import importlib
from pathlib import Path

from reconciler.runtime import base
from reconciler.runtime import errors as rterrors

__all__ = ["RUNTIMES", "open_runtime"]

RUNTIMES = ("native", "fake")


def open_runtime(name: str, *, root: Path, run_dir: Path | None = None) -> base.Runtime:
    """The runtime `name` keeping its state under `root` (and `run_dir` for native)."""
    if name == "fake":
        from reconciler.runtime import fake

        return fake.FakeRuntime.at_root(root)
    if name == "native":
        try:
            backend = importlib.import_module("reconciler.runtime.native.backend")
        except ImportError as exc:
            raise rterrors.Unavailable(
                "the native runtime is not available in this build",
                hint="use --runtime fake to exercise the reconciler without an engine",
            ) from exc
        from reconciler.runtime.native.config import NativeConfig

        config = NativeConfig(root=root, run_dir=run_dir or NativeConfig().run_dir)
        runtime: base.Runtime = backend.NativeRuntime(config)
        return runtime
    raise rterrors.InvalidArgument(f"unknown runtime {name!r}", hint=f"choose one of {', '.join(RUNTIMES)}")
