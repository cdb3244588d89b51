"""`reconcile version`: the version of this reconciler and of what it runs on, as `docker version`
and `kubectl version` print it (`-o json|yaml` for programs; `reconcile --version` is one line)."""

from __future__ import annotations

from reconciler.cli import fastpath

# annotations only: what the read-only commands import at start-up stays small (#21)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any


__all__ = ["register", "run"]


# what it takes, for its parser and the fast path alike (cli/fastpath.py)
SPEC = fastpath.Spec(engine=False, runtime=False)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("version", help="print the version (and the manifest API, Python, OCI runtimes)",
                                   description="Print the reconciler's version, the manifest apiVersion it reads, "
                                   "the Python it runs on and the OCI runtimes found on PATH.")
    SPEC.add_to(parser, "version")
    parser.set_defaults(run=run, no_logging=True)


def _runtime_version(binary: str) -> str | None:
    """`runc --version`'s first line's version (None when not installed or it fails)."""
    import shutil
    import subprocess

    path = shutil.which(binary)
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = out.splitlines()[0] if out else ""
    return first.split()[-1] if first.split() else None


def run(args: argparse.Namespace) -> int:
    import platform

    from reconciler import __version__
    from reconciler.cli import output

    runtimes = {name: _runtime_version(name) for name in ("runc", "crun")}
    doc = {"version": __version__, "apiVersion": "reconciler/v1", "python": platform.python_version(),
           "os": platform.system().lower(), "arch": platform.machine(),
           "ociRuntimes": runtimes}
    output.render(args, doc, lambda: output.print_table(
        [{"what": "reconcile", "value": doc["version"]}, {"what": "apiVersion", "value": doc["apiVersion"]},
         {"what": "python", "value": doc["python"]}, {"what": "os/arch", "value": f"{doc['os']}/{doc['arch']}"},
         *({"what": name, "value": v or "not found"} for name, v in runtimes.items())],
        [("COMPONENT", "what"), ("VERSION", "value")]))
    return 0
