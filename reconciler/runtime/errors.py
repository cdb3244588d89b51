"""Errors every runtime backend raises, errdefs-style kinds the executor can act on.

    RuntimeBackendError (ReconcilerError)      root for native, docker and swarm backends
    ├── NotFound            the object does not exist (removal treats this as done)
    ├── AlreadyExists       a create found the name taken
    ├── Conflict            the object is in a state that forbids the call (remove a running one)
    │   └── PortInUse       a host port it publishes is taken (another program listens on it,
    │                       another container publishes it): the Engine API's 500, as dockerd's
    ├── InvalidArgument     the request itself is wrong (bad user name, port syntax)
    ├── Unavailable         the engine or a tool it needs is missing or not answering
    ├── ImageError          an image could not be pulled, verified or unpacked
    │   ├── RegistryUnavailable  its registry did not answer (transport error, 5xx, 408,
    │   │                   after the client's retries): its other tags would wait as long
    │   └── ImageNotFound   its registry knows no such repository or manifest (or denies that
    │                       one exists, as Docker Hub answers for a name it does not have)
    ├── RolloutFailed       a cluster engine rolled an update back, paused it, or did not
    │                       converge in time (a Swarm service; the message has its task error)
    └── Cancelled           the caller asked to stop (the reconciler got SIGTERM); what was
                            half done was undone

Backends translate library exceptions (httpx, pyroute2, subprocess, OSError) into these at
their boundary, and name the object they concern in the message.
"""

from __future__ import annotations

from reconciler.errors import ReconcilerError

__all__ = [
    "AlreadyExists",
    "Cancelled",
    "Conflict",
    "ImageError",
    "ImageNotFound",
    "InvalidArgument",
    "NotFound",
    "PortInUse",
    "RegistryUnavailable",
    "RolloutFailed",
    "RuntimeBackendError",
    "Unavailable",
    "from_registry",
]


class RuntimeBackendError(ReconcilerError):
    """Root of the runtime backends' errors."""


class NotFound(RuntimeBackendError):
    """The named object does not exist."""


class AlreadyExists(RuntimeBackendError):
    """An object with that name exists already."""


class Conflict(RuntimeBackendError):
    """The object's current state forbids the operation."""


class PortInUse(Conflict):
    """A host port the container publishes is taken: another program of the host listens on it,
    or another container publishes it. dockerd fails the start so with a 500 ("driver failed
    programming external connectivity ... address already in use" / "port is already
    allocated"), which the Engine API answers likewise (not a Conflict's 409, which clients take
    for a name in use or a state to wait out)."""


class InvalidArgument(RuntimeBackendError):
    """The request is wrong in itself; retrying the same request cannot succeed."""

    exit_code = 2


class Unavailable(RuntimeBackendError):
    """The engine, or a tool it needs (runc, conmon, nft), is missing or not answering."""


class ImageError(RuntimeBackendError):
    """An image could not be resolved, fetched, verified or unpacked."""


class RegistryUnavailable(ImageError):
    """The registry did not answer (a transport error, 5xx or 408 once the client's retries ran
    out): a pass asks it nothing more until the next one (execution/observing.py)."""


class ImageNotFound(ImageError):
    """The registry knows no such repository, tag or manifest (NAME_UNKNOWN, MANIFEST_UNKNOWN),
    or denies that it exists (DENIED: Docker Hub's answer to an anonymous pull of a name it
    does not have); `code` is the registry's. The Engine API answers a pull of it with
    dockerd's 404 and words."""

    def __init__(self, message: str, *, hint: str | None = None, code: str = "") -> None:
        super().__init__(message, hint=hint)
        self.code = code


class RolloutFailed(RuntimeBackendError):
    """A cluster engine's rollout did not end with every wanted copy running: it rolled the
    update back (`rolled_back`), paused it, or had not converged by the deadline."""

    def __init__(self, message: str, *, hint: str | None = None, rolled_back: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.rolled_back = rolled_back


class Cancelled(RuntimeBackendError):
    """The caller asked to stop: raised by a progress callback (the executor's, once the
    reconciler is stopping) and passed on by the runtime at its next safe point."""


def from_registry(exc: Exception, what: str | None = None) -> ImageError:
    """A registry client's error as the runtime's, for every backend that speaks to registries
    itself (native, swarm): RegistryUnavailable for its `Unavailable` (the registry did not
    answer), ImageNotFound for its `NotFound` and `Denied` (with the registry's code), else
    ImageError; `what` the caller was doing first, unless the message says it."""
    from reconciler.registry_client import errors as registry_errors  # raised by it: loaded already

    message = str(exc.args[0] if exc.args else exc)
    message = f"{what}: {message}" if what else message
    hint = getattr(exc, "hint", None)
    if isinstance(exc, registry_errors.NotFound | registry_errors.Denied):
        return ImageNotFound(message, hint=hint, code=str(getattr(exc, "code", "") or ""))
    kind = RegistryUnavailable if isinstance(exc, registry_errors.Unavailable) else ImageError
    return kind(message, hint=hint)
