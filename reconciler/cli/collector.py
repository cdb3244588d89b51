"""The cyclic garbage collector paused while a one-shot command starts (#21).

A command's imports, its manifests' models and the engine's records are many objects and no
garbage cycles worth a collection; the collector's passes over them cost a `reconcile run`
~8 ms of CPU and a no-op `reconcile --once` at 500 containers ~3 %. `paused()` turns it off
until `resume()`, which a command calls once it starts its real work (a container started, a
pass's first action) and which runs at the latest when the block ends. The read-only listings
(`ps`, `images`, `inspect`: main.READ_ONLY), whose work is bounded by what they list, keep it
off to their end (`off()`: their passes were ~4 % of a `ps`).

Stdlib `gc` only: `ps` imports this (contextlib would bring functools and collections).
"""

from __future__ import annotations

import gc

__all__ = ["off", "paused", "resume"]


def off() -> None:
    """The collector off for the rest of this process (a short read-only command's)."""
    gc.disable()


class paused:                  # used as a function: `with collector.paused():`
    """Off within the block (unless `resume()` came first), on again at its end."""

    __slots__ = ()

    def __enter__(self) -> None:
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        resume()


def resume() -> None:
    """The collector on again (if off), what was made meanwhile moved to its oldest generation
    unscanned: freeze resets the count that would start a pass over all of it at the next
    allocation."""
    if gc.isenabled():
        return
    gc.freeze()
    gc.unfreeze()
    gc.enable()
