"""Errors the manifest sources raise, classified for the controller loop.

    SourceError (ReconcilerError)                  root of every source failure
    ├── SourceUnavailable (TemporaryError)         may pass by itself: remote unreachable,
    │                                              timeout, a file vanished mid-scan; the loop
    │                                              retries with backoff, the last good
    │                                              revision stays readable
    └── SourceInvalid (TerminalError)              needs a change of input or configuration:
                                                   unknown ref, missing sub-path, refused
                                                   credentials, directory too large

git and OS exceptions are translated at this boundary. Messages name the source (URLs without
credentials, never tokens or key contents) and say what to do next.
"""

from __future__ import annotations

from reconciler.errors import ReconcilerError, TemporaryError, TerminalError

__all__ = ["SourceError", "SourceInvalid", "SourceUnavailable"]


class SourceError(ReconcilerError):
    """Root of the sources' errors."""


class SourceUnavailable(SourceError, TemporaryError):
    """The source could not be read now; retrying later may succeed."""


class SourceInvalid(SourceError, TerminalError):
    """The source's configuration or content is wrong; retrying the same input cannot help."""
