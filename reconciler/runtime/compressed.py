"""An archive stream decompressed when it is gzip or zstd (sniffed from its first bytes), for
the commands that read archives from a file or a pipe: `load` (runtime/native/images/archive.py)
and `container import` (runtime/moving.py), on any engine; and compressed (`compressing`) for
`container export` and `volume export --compress`, whose archives `container import` and
`volume import` (the layer extractor) read compressed or not."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from typing import IO, Any, cast

__all__ = ["COMPRESSIONS", "GZIP", "ZSTD", "compressing", "open_stream"]

COMPRESSIONS = ("none", "zstd", "gzip")

GZIP = b"\x1f\x8b"
ZSTD = b"\x28\xb5\x2f\xfd"


class _Passing(io.RawIOBase):
    """The archive stream as a raw reader (tarfile asks for blocks; the buffer over it peeks).
    From a pipe it takes what has come (`read1`), so a stream that pauses is read up to where it
    paused, not up to the buffer's next 64 KiB."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self._read = getattr(raw, "read1", raw.read)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._read(len(b))
        b[: len(data)] = data
        return len(data)


def open_stream(src: IO[bytes]) -> tuple[IO[bytes], Callable[[], None]]:
    """`src` decompressed if it is gzip or zstd (sniffed), as a plain byte stream, and what
    closes the decompressor (not `src`)."""
    buffered = io.BufferedReader(_Passing(src), 1 << 16)
    head = buffered.peek(4)[:4]
    if head.startswith(GZIP):
        import gzip

        g = gzip.GzipFile(fileobj=buffered, mode="rb")
        return cast(IO[bytes], g), g.close
    if head.startswith(ZSTD):
        import zstandard

        z = zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)
        return z, z.close
    return buffered, lambda: None


@contextlib.contextmanager
def compressing(out: IO[bytes], how: str) -> Iterator[IO[bytes]]:
    """`out` behind a compressor (`how`: one of COMPRESSIONS), whose end is written when the block
    ends without an error (`out` is the caller's: left open). zstd at level 3 takes the zeros a
    sparse file's holes are carried as to ~32 KiB a GiB in about 0.4 s, gzip (level 6, as the
    gzip command) to ~1 MiB a GiB in about 8 s."""
    if how == "none":
        yield out
        return
    if how == "gzip":
        import gzip

        g = gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0)
        yield cast(IO[bytes], g)
        g.close()                       # (the trailer; `out` stays open)
        return
    if how != "zstd":
        raise ValueError(f"unknown compression {how!r}")
    import zstandard

    z = zstandard.ZstdCompressor(level=3).stream_writer(out, closefd=False)
    yield cast(IO[bytes], z)
    z.close()  # type: ignore[no-untyped-call]  # (the frame's end; `out` stays open)
