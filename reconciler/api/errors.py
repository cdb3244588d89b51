"""Errors of the API: what the server answers with a status code, what the client raises."""

from __future__ import annotations

from reconciler.errors import ReconcilerError, TemporaryError, TerminalError

__all__ = ["AgentUnreachable", "ApiError", "BadRequest", "Conflict", "MethodNotAllowed", "NotFound",
           "PayloadTooLarge", "Unauthorized"]


class ApiError(TerminalError):
    """A request the agent refused; `status` is the HTTP status it answers with."""

    status = 500


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class NotFound(ApiError):
    status = 404


class MethodNotAllowed(ApiError):
    status = 405


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class AgentUnreachable(TemporaryError):
    """No agent answers on the socket (not running, or another root's)."""


def from_status(status: int, message: str, hint: str | None = None) -> ReconcilerError:
    """The client-side error for an error reply."""
    cls: type[ApiError] = {400: BadRequest, 404: NotFound, 409: Conflict, 413: PayloadTooLarge}.get(status, ApiError)
    return cls(message, hint=hint)
