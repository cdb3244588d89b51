"""nft scripts run by libnftables (libnftables(3)) in this process, as `nft -f -` runs them.

libnftables is the library the `nft` CLI is made of (Debian's libnftables1, which nftables
depends on); it is loaded with ctypes on first use. One `nft` process per change cost ~20 ms of
wall time where the library takes ~1.3 ms for the same 50-port table, and a look for our table
~0.1 ms once loaded (~1.7 ms with the load), so start-up recovery can afford it (#21). Its
Python binding, python3-nftables, is a Debian package a virtualenv cannot import (not on PyPI),
and wraps these same calls.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from reconciler.runtime import errors

__all__ = ["Nft", "listed", "table_exists"]

# one libnftables call at a time in this process (reentrant: a context's finalizer may run from
# the garbage collector in a thread that holds it, between two calls)
_CALLS = threading.RLock()


class Nft:
    """A libnftables context (libnftables(3)): nft scripts run in this process, as `nft -f -`
    runs them, errors worded as nft words them. One call at a time in the process, whatever the
    context (`_CALLS`): the library's contexts are not thread-safe, and it keeps some state of
    its own beside them. The library is the `nftables` package's own (the CLI links it), loaded
    on the first call."""

    _lib: Any = None

    def __init__(self) -> None:
        self._ctx: int | None = None

    @classmethod
    def _load(cls) -> Any:
        if cls._lib is None:
            import ctypes

            try:
                lib = ctypes.CDLL("libnftables.so.1")
            except OSError as exc:
                raise errors.Unavailable(
                    f"libnftables is not installed ({exc})",
                    hint="run scripts/install-system-deps.sh (Debian: nftables, libnftables1)") from None
            lib.nft_ctx_new.restype = ctypes.c_void_p
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            cls._lib = lib
        return cls._lib

    def run(self, script: str, *, check: bool = True) -> bool:
        """Run `script` as one transaction: whether it succeeded; with `check`, errors.Unavailable
        in nft's words when it did not."""
        return self._run(script, check=check) is not None

    def listing(self, script: str) -> str | None:
        """What a listing (`list table ip T`) prints, as the `nft` CLI prints it; None when it
        failed (no such table)."""
        return self._run(script, check=False)

    def _run(self, script: str, *, check: bool) -> str | None:
        """Its output when it succeeded, else None (or errors.Unavailable with `check`)."""
        lib = self._load()
        with _CALLS:
            if self._ctx is None:
                ctx = lib.nft_ctx_new(0)            # NFT_CTX_DEFAULT
                if not ctx:
                    raise errors.Unavailable("libnftables could not make a context")
                lib.nft_ctx_buffer_output(ctx)      # listings are not printed on our stdout
                lib.nft_ctx_buffer_error(ctx)
                weakref.finalize(self, _free, lib, ctx)
                self._ctx = ctx
            rc = lib.nft_run_cmd_from_buffer(self._ctx, script.encode())
            out = lib.nft_ctx_get_output_buffer(self._ctx) or b""     # a listing's text (read empties it)
            if rc != 0:
                # read (which empties it) whether or not it is raised: the next error is its own
                words = (lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode(errors="replace").strip()
            if rc != 0 and check:
                raise errors.Unavailable(f"nft -f failed: {words[:500] or 'no message'}")
            return out.decode(errors="replace") if rc == 0 else None


def _free(lib: Any, ctx: int) -> None:
    with _CALLS:
        lib.nft_ctx_free(ctx)


def table_exists(table: str, family: str = "ip", *, nft: Nft | None = None) -> bool:
    """Whether the kernel has table `family table` (a listing, whose text is not kept)."""
    return (nft or Nft()).run(f"list table {family} {table}\n", check=False)


def listed(table: str, family: str = "ip", *, nft: Nft | None = None) -> str | None:
    """Table `family table` as `nft list table` prints it; None when the kernel has no such table."""
    return (nft or Nft()).listing(f"list table {family} {table}\n")
