"""Logging set-up: configured once, by the CLI entry point, never by library code.

Console rendering on a TTY, JSON lines otherwise (structlog's best practice). Library modules
get their logger from `get_logger(name)` (not `structlog.get_logger`) and bind context
(`reconcile_id`, `revision`, `resource`).

Importing structlog costs 0.1-0.2 s of a CLI process (it brings asyncio, ssl and, where it is
installed, rich), more than a pass with nothing to do (#21). So `configure_logging` only
records the set-up while structlog is not imported yet, and the first line that passes the
level filter imports and configures it, exactly as an eager set-up would have: the same
processors, the same stream (the `sys.stderr` of the call), the same TTY choice. A process
that logs nothing at its level (a no-op `--once` logs its pass at `info`, below the default
`warning`) never imports structlog.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from typing import TYPE_CHECKING, Any, TextIO, cast

from reconciler._dataclass import dataclass

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from types import ModuleType

    from structlog.typing import FilteringBoundLogger

__all__ = ["bound_context", "configure_logging", "configured_structlog", "get_logger", "reset"]

# the `logging` module's levels, which structlog's filtering loggers use (not imported: 5 ms)
_DEBUG, _INFO, _WARNING, _ERROR, _CRITICAL = 10, 20, 30, 40, 50
_LEVELS = {"debug": _DEBUG, "info": _INFO, "warning": _WARNING, "error": _ERROR}
# the level of each method of structlog's filtering logger that the proxy can skip on its own
_METHOD_LEVELS = {"debug": _DEBUG, "info": _INFO, "msg": _INFO, "warning": _WARNING, "warn": _WARNING,
                  "error": _ERROR, "err": _ERROR, "exception": _ERROR, "critical": _CRITICAL, "fatal": _CRITICAL}


@dataclass(frozen=True)
class _SetUp:
    """What `configure_logging` was asked for, with the stream and TTY answer of its call."""

    level: int
    json: bool
    colors: bool
    stream: TextIO


_pending: _SetUp | None = None       # recorded, not applied yet (structlog not imported)
# `bound_context` while structlog is not imported: merged into each line of `get_logger`'s loggers
_bound: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar("reconciler_logs_bound", default=None)


def configure_logging(*, level: str = "info", json: bool | None = None) -> None:
    """Configure structlog for the process; `json=None` picks JSON when stderr is not a TTY.
    Applied at once when structlog is loaded already, else at the first line that is logged."""
    global _pending
    tty = sys.stderr.isatty()
    setup = _SetUp(level=_LEVELS.get(level, _INFO), json=not tty if json is None else json,
                   colors=tty, stream=sys.stderr)
    if "structlog" in sys.modules:
        _pending = None
        _apply(setup)
    else:
        _pending = setup


def _apply(setup: _SetUp) -> None:
    import structlog

    renderer: structlog.typing.Processor
    if setup.json:
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=setup.colors)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.dict_tracebacks if setup.json else structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(setup.level),
        logger_factory=structlog.PrintLoggerFactory(file=setup.stream),
        cache_logger_on_first_use=True,
    )


def configured_structlog() -> ModuleType:
    """structlog, with the recorded set-up applied (unless something configured it since)."""
    global _pending
    import structlog

    setup = _pending
    if setup is not None:
        if not structlog.is_configured():
            _apply(setup)
        _pending = None
    return structlog


def reset() -> None:
    """Forget any set-up, recorded or applied (tests: each has its own stderr)."""
    global _pending
    _pending = None
    if "structlog" in sys.modules:
        import structlog  # waits for an import in flight in another thread

        structlog.reset_defaults()


class _Logger:
    """A logger that loads structlog at its first line the recorded level lets through."""

    __slots__ = ("_context", "_name")

    def __init__(self, name: str | None, context: dict[str, Any]) -> None:
        self._name = name
        self._context = context

    def bind(self, **values: Any) -> _Logger:
        return _Logger(self._name, {**self._context, **values})

    def _real(self) -> Any:
        structlog = configured_structlog()
        logger = structlog.get_logger(self._name) if self._name is not None else structlog.get_logger()
        context = {**(_bound.get() or {}), **self._context}     # bound values win, as over contextvars
        return logger.bind(**context) if context else logger

    def __getattr__(self, attr: str) -> Any:
        setup, level = _pending, _METHOD_LEVELS.get(attr)
        if setup is not None and level is not None and level < setup.level:
            return _skip
        return getattr(self._real(), attr)


@contextlib.contextmanager
def bound_context(**values: Any) -> Iterator[None]:
    """structlog's `bound_contextvars(**values)`: every line logged inside carries `values`.
    While structlog is not imported they are kept here and added to the lines of `get_logger`'s
    loggers, so a process that logs nothing at its level (an idle agent at `warning`) never
    imports structlog for them (#21), and a first line inside still carries them."""
    if "structlog" in sys.modules:
        # imported, or being imported by another thread (partially initialized: no `contextvars`
        # yet, seen killing an agent's pass thread): the import statement waits for it to finish
        from structlog import contextvars as structlog_contextvars

        with structlog_contextvars.bound_contextvars(**values):
            yield
        return
    token = _bound.set({**(_bound.get() or {}), **values})
    try:
        yield
    finally:
        _bound.reset(token)


def _skip(*args: Any, **kwargs: Any) -> None:
    """A line below the recorded level: dropped, as structlog's filtering logger would."""


def get_logger(name: str | None = None, **context: Any) -> FilteringBoundLogger:
    """A logger named `name` (structlog's `get_logger`), cheap until it logs a line."""
    return cast("FilteringBoundLogger", _Logger(name, context))
