"""Signal names as Docker takes them (`--stop-signal`, STOPSIGNAL, `kill -s`): stdlib only, so
the builder checks a STOPSIGNAL without loading the OCI bundle (#21: an unchanged rebuild
loads no container code)."""

from __future__ import annotations

import signal as _signal

from reconciler.runtime import errors as rterrors

__all__ = ["parse_signal"]


def parse_signal(value: str | int | None, default: int = _signal.SIGTERM) -> int:
    """`SIGTERM`, `TERM`, `15`, `SIGRTMIN+3` -> signal number."""
    if value is None or value == "":
        return int(default)
    if isinstance(value, int):
        return value
    v = value.strip().upper()
    if v.isdigit():
        return int(v)
    if not v.startswith("SIG"):
        v = "SIG" + v
    if v.startswith("SIGRTMIN+"):
        return int(_signal.SIGRTMIN) + int(v.split("+", 1)[1])
    if v.startswith("SIGRTMAX-"):
        return int(_signal.SIGRTMAX) - int(v.split("-", 1)[1])
    try:
        return int(_signal.Signals[v])
    except KeyError:
        raise rterrors.InvalidArgument(f"unknown signal {value}") from None
