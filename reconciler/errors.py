"""The root of every error reconciler raises on purpose, and how the loop classifies them.

    ReconcilerError                 root: anything the package raises deliberately
    ├── TemporaryError(delay)       retry later with backoff (registry down, lock busy)
    │   └── DiskFull                a file system the engine writes is full or over quota
    │                               (exit code 3; made by reconciler.diskfull)
    └── TerminalError               retrying cannot help until the input changes
                                    (invalid manifests, unknown image, bad configuration)

Each package has its own root that derives from one of these (spec.errors.SpecError,
registry_client.errors.RegistryError, runtime.errors.RuntimeBackendError, ...). Library
exceptions (httpx, pyroute2, subprocess) are translated at the package boundary and never
escape it. Messages never carry secrets and, where they can, say what to do next.
"""

from __future__ import annotations

TYPE_CHECKING = False            # no typing import: every CLI start loads this module (#21)
if TYPE_CHECKING:
    from pathlib import Path  # annotations only: every CLI start imports this module

__all__ = ["DiskFull", "ReconcilerError", "TemporaryError", "TerminalError"]


class ReconcilerError(Exception):
    """Root of the deliberate errors; `hint` says what the user can do next, notes
    (`add_note`) what else went wrong meanwhile."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        lines = [self.message]
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        lines += [f"  note: {n}" for n in getattr(self, "__notes__", ())]
        return "\n".join(lines)


class TemporaryError(ReconcilerError):
    """A failure that may pass: the loop retries after `delay` seconds (or its own backoff)."""

    def __init__(self, message: str, *, delay: float | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.delay = delay


class TerminalError(ReconcilerError):
    """A failure that needs a change of input; the loop waits for the next trigger."""

    exit_code = 2


class DiskFull(TemporaryError):
    """No space left (ENOSPC), the quota used up (EDQUOT), or SQLite's "database or disk is
    full", while writing `path` (None: not known); `needed` is how many bytes the operation
    needed, when known.
    Whatever was half-written is removed before this is raised. The loop retries it like any
    temporary error (space may come back); the CLI exits 3."""

    exit_code = 3

    def __init__(self, message: str, *, path: Path | None, needed: int | None = None, quota: bool = False,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path
        self.needed = needed
        self.quota = quota          # EDQUOT: the user's quota, not the file system, is used up
