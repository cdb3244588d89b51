"""The agent's C heap (glibc's malloc): two arenas, and free pages given back after a pass.

glibc gives a thread that allocates while another holds an arena an arena of its own (up to 8
per core) and keeps what is freed in each for reuse. The agent is a dozen mostly idle threads
(controller, supervision, source watchers, API) in one long-lived process: at rest with 20
containers it held 15 arenas and 11 MiB of freed memory that nothing used (#21). So, as the
agent starts, before its threads do:

- `limit_arenas()`: at most `ARENAS` arenas (glibc's M_ARENA_MAX, what MALLOC_ARENA_MAX sets);
  the agent's threads take turns on a pass, they do not contend for malloc. A MALLOC_ARENA_MAX
  in the environment wins (the operator's choice);

and after each pass, `release()`: malloc_trim(0) gives the freed pages inside the arenas back
to the kernel (free() alone only shrinks the top of the heap). It costs what it gives back: 0.1
ms after a pass that freed little, 40 ms for 32 MiB (measured here), after the pass's work.
Then the shared libraries' pages that only this process maps go back too (madvise
MADV_PAGEOUT, Linux 5.4+): clean pages of code and read-only data, which the next use reads
again from the file; the kernel leaves alone a page another process maps, and reclaims a
written page only to swap. jsonschema-rs's library had 6.5 MiB resident at rest, touched by its
import and the validators' compilation; a pass brings back about 1 MiB of it (#21).

Both are no-ops (False) with a C library or kernel that lacks them (musl, Linux before 5.4).
"""

from __future__ import annotations

import ctypes
import functools
import os
from typing import Any

__all__ = ["ARENAS", "limit_arenas", "page_out_libraries", "release"]

ARENAS = 2
_M_ARENA_MAX = -8           # glibc's malloc.h
_MADV_PAGEOUT = 21          # linux/mman.h


@functools.cache
def _libc() -> Any:
    return ctypes.CDLL(None)


def limit_arenas(arenas: int = ARENAS) -> bool:
    """At most `arenas` malloc arenas for the process (True when set); call before threads
    start. Left as it is when the environment sets MALLOC_ARENA_MAX."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas) == 1)


def release() -> bool:
    """Give the heap's free pages back to the kernel (True when some were), then the pages of
    shared libraries no other process maps (`page_out_libraries`)."""
    trim = getattr(_libc(), "malloc_trim", None)
    trimmed = trim is not None and bool(trim(0) == 1)
    page_out_libraries()
    return trimmed


def page_out_libraries() -> int:
    """Ask the kernel to reclaim the resident pages of the process's shared libraries (a path
    with `.so`) that no other process maps; how many mappings it accepted (0 where the kernel or
    C library cannot)."""
    madvise = getattr(_libc(), "madvise", None)
    if madvise is None:
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    done = 0
    for lo, hi in _library_mappings():
        if madvise(lo, hi - lo, _MADV_PAGEOUT) != 0:
            return done                 # EINVAL: a kernel without MADV_PAGEOUT; the rest would too
        done += 1
    return done


def _library_mappings() -> list[tuple[int, int]]:
    """The address ranges of /proc/self/maps that map a shared library file."""
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and (fields[5].rstrip().endswith(".so") or ".so." in fields[5]):
                lo, hi = fields[0].split("-")
                ranges.append((int(lo, 16), int(hi, 16)))
    return ranges
