"""Zeros written as holes: a file's whole blocks of zeros are skipped with a seek instead of
written, as `cp --sparse=auto` and GNU tar's extraction of sparse members leave them, so a sparse
file that a tar stream carries expanded takes no more disk where it lands than it did where it
came from.

Python's tarfile reads GNU sparse members but writes none, and the layer extractor refuses them
(docs/security.md, Hostile archives), so the archives of `container export` and `volume export`
carry a sparse file's holes as zeros: `volume import` (and a container import's volumes, through
the layer extractor's `holes`) writes them as holes again here; the export's own files (the
volume archives it spools under the state root, an archive written to `-o FILE`) are written
through `Writer`; on the way, zstd compresses them away (`--compress zstd`: ~32 KiB a GiB).

Stdlib only: the CLI's archive output imports it.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from typing import IO, Any

__all__ = ["BLOCK", "Reader", "Writer", "fd_writer", "holes", "write"]

BLOCK = 4096                    # a hole is whole blocks of the file, at offsets a multiple of this
_ZERO_BLOCK = bytes(BLOCK)
_STRIDE = 16 * BLOCK
_ZERO_STRIDE = bytes(_STRIDE)
_CHUNK = 1 << 20                # what Writer gathers before it looks for holes


def holes(data: bytes | bytearray, offset: int) -> Iterator[tuple[int, int]]:
    """The (start, end) spans of `data` (to be written at file offset `offset`) that are whole
    aligned blocks of zeros: what a sparse write skips. `bytes.find` and `startswith` do the
    scanning, so data without zeros costs one fast search."""
    pos, n = 0, len(data)
    while pos < n:
        z = data.find(_ZERO_BLOCK, pos)
        if z < 0:
            return
        start = z + (-(offset + z)) % BLOCK          # the first block boundary in the run
        end = start
        while end + _STRIDE <= n and data.startswith(_ZERO_STRIDE, end):       # (a long run: fewer steps)
            end += _STRIDE
        while end + BLOCK <= n and data.startswith(_ZERO_BLOCK, end):
            end += BLOCK
        if end > start:
            yield start, end
            pos = end
        else:
            pos = start         # the run holds no whole block: look on from the boundary
    return


def write(data: bytes | bytearray, offset: int, put: Callable[[memoryview], None],
          skip: Callable[[int], None]) -> bool:
    """Write `data` at file offset `offset` (where the file's position is) by `put` (all of what
    it is given), its whole blocks of zeros by `skip` (a seek forward); whether it ended with a
    hole (the writer then sets the file's length: a seek past the end does not)."""
    view = memoryview(data)
    pos = 0
    for start, end in holes(data, offset):
        if start > pos:
            put(view[pos:start])
        skip(end - start)
        pos = end
    if pos < len(data):
        put(view[pos:])
        return False
    return pos > 0


def fd_writer(fd: int) -> tuple[Callable[[memoryview], None], Callable[[int], None]]:
    """`write`'s `put` and `skip` on a file descriptor."""

    def put(view: memoryview) -> None:
        while view:
            view = view[os.write(fd, view):]

    def skip(n: int) -> None:
        os.lseek(fd, n, os.SEEK_CUR)

    return put, skip


class Writer:
    """A buffered file object (opened for writing, at its start or where it is) that leaves its
    whole blocks of zeros as holes: writes are gathered up to 1 MiB so that blocks across small
    writes (tarfile writes 10 KiB records) are seen whole. `flush` writes what is gathered and
    sets the file's length; call it before the file is closed."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self._offset = f.tell()
        self._parts: list[bytes] = []
        self._size = 0
        self._hole_at_end = False

    def write(self, data: Any) -> int:
        self._parts.append(bytes(data))
        self._size += len(data)
        if self._size >= _CHUNK:
            gathered = b"".join(self._parts)
            cut = len(gathered) - (self._offset + len(gathered)) % BLOCK     # up to a block boundary
            self._emit(gathered[:cut] if cut < len(gathered) else gathered)
            self._parts = [gathered[cut:]] if cut < len(gathered) else []
            self._size = len(gathered) - cut
        return len(data)

    def flush(self) -> None:
        if self._parts:
            self._emit(b"".join(self._parts))
            self._parts, self._size = [], 0
        if self._hole_at_end:
            self._f.truncate(self._offset)          # (a hole at the end: the file's length)
            self._hole_at_end = False
        self._f.flush()

    def tell(self) -> int:
        return self._offset + self._size

    def _emit(self, data: bytes) -> None:
        if data:
            self._hole_at_end = write(data, self._offset, self._put, self._skip)
            self._offset += len(data)

    def _put(self, view: memoryview) -> None:
        self._f.write(view)             # (a buffered file writes it all)

    def _skip(self, n: int) -> None:
        self._f.seek(n, os.SEEK_CUR)


class Reader:
    """A file's content from where `fd` is, read by `read(n)` (n bytes until its end), its holes
    (SEEK_DATA/SEEK_HOLE) given as zeros without being read: a GiB of holes costs no reads and
    no page cache (tar's copy of a sparse file in a volume; an export's spooled archive). A file
    system without SEEK_DATA has no holes here: everything is read."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pos = os.lseek(fd, 0, os.SEEK_CUR)
        self._end = os.fstat(fd).st_size
        self._hole_until = -1            # [pos, hole_until): zeros; then data until data_until
        self._data_until = -1

    def read(self, n: int = -1) -> bytes:
        want = self._end - self._pos if n < 0 else min(n, self._end - self._pos)
        pieces = []
        while want > 0:
            if self._pos >= self._data_until:
                self._map()
            if self._pos < self._hole_until:
                k = min(want, self._hole_until - self._pos)
                pieces.append(bytes(k))
            else:
                piece = os.pread(self._fd, min(want, self._data_until - self._pos), self._pos)
                if not piece:
                    break                   # (the file shrank: the caller sees a short read)
                k = len(piece)
                pieces.append(piece)
            self._pos += k
            want -= k
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _map(self) -> None:
        """The hole at the position (maybe none) and the data after it."""
        try:
            data = os.lseek(self._fd, self._pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno != errno.ENXIO:            # (no SEEK_DATA here: all of it is data)
                self._hole_until, self._data_until = self._pos, self._end
                return
            data = self._end                        # a hole up to the end
        try:
            hole = os.lseek(self._fd, data, os.SEEK_HOLE) if data < self._end else self._end
        except OSError:
            hole = self._end
        self._hole_until, self._data_until = data, max(hole, data)
