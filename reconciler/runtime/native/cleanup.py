"""conmon's exit command for an AutoRemove container: its removal when no engine process runs.

    python -m reconciler.runtime.native.cleanup ROOT RUN_DIR PREFIX OCI_RUNTIME ID

Who removes such a container, and when, is containers/autoremove.py's rule; this is the part
that needs the whole engine (the container and its anonymous volumes, `remove_exited`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str]) -> int:
    """Remove the exited AutoRemove container argv names unless an engine process supervises.
    It goes on in a child of its own: conmon waits for its exit command before it ends, and the
    removal waits for conmon's end (the container's monitor) before it deletes its files."""
    root, run_dir, prefix, oci_runtime, cid = argv
    if os.fork():
        return 0
    os.setsid()
    os.chdir("/")                   # not the container's bundle dir (conmon's), which the removal deletes
    from reconciler.runtime import errors as rterrors
    from reconciler.runtime.native.backend import NativeRuntime
    from reconciler.runtime.native.config import NativeConfig
    from reconciler.runtime.native.containers import autoremove, cgroups

    with autoremove.unsupervised(Path(run_dir)) as alone:
        if not alone:
            return 0                    # a supervisor's restart manager removes it
        cgroups.leave_monitors(prefix)  # conmon's group, which the removal's last step removes
        rt = NativeRuntime(NativeConfig(root=Path(root), run_dir=Path(run_dir), name_prefix=prefix,
                                        oci_runtime=oci_runtime))
        try:
            rec = rt.containers.get(cid)         # refreshed: conmon wrote the exit file first
            if rec.auto_remove and rec.status in ("exited", "dead"):
                rt.remove_exited(cid)
        except rterrors.NotFound:
            pass                                 # removed meanwhile (rm -f)
        finally:
            rt.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
