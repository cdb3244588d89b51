"""The root of every error reconciler raises on purpose, and how the loop classifies them.

    ReconcilerError                 root: anything the package raises deliberately
    ├── TemporaryError(delay)       retry later with backoff (registry down, lock busy)
    └── TerminalError               retrying cannot help until the input changes
                                    (invalid manifests, unknown image, bad configuration)

Each package has its own root that derives from one of these (spec.errors.SpecError,
registry_client.errors.RegistryError, runtime.errors.RuntimeBackendError, ...). Library
exceptions (httpx, pyroute2, subprocess) are translated at the package boundary and never
escape it. Messages never carry secrets and, where they can, say what to do next.
"""

from __future__ import annotations

__all__ = ["ReconcilerError", "TemporaryError", "TerminalError"]


class ReconcilerError(Exception):
    """Root of the deliberate errors; `hint` says what the user can do next."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class TemporaryError(ReconcilerError):
    """A failure that may pass: the loop retries after `delay` seconds (or its own backoff)."""

    def __init__(self, message: str, *, delay: float | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.delay = delay


class TerminalError(ReconcilerError):
    """A failure that needs a change of input; the loop waits for the next trigger."""

    exit_code = 2
