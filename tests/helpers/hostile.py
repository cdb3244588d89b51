"""Hostile tar archives built byte by byte (tarfile cannot write sparse members or oversized
headers), for the layer extractor's and the build's ADD tests.

Each returns an uncompressed tar; tests gzip it (a layer, or an `ADD x.tar.gz`).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

__all__ = [
    "escape_by_hardlink",
    "global_pax_keys",
    "pax_chain",
    "pax_declaring",
    "sparse_gnu",
    "sparse_map",
    "sparse_pax",
]

_END = b"\0" * 1024


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % tarfile.BLOCKSIZE)


def _file(name: str, data: bytes = b"") -> bytes:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info.tobuf(tarfile.USTAR_FORMAT) + _pad(data)


def _header(kind: bytes, data: bytes) -> bytes:
    """An extended header block (PAX 'x' or global 'g') with `data` as its records."""
    info = tarfile.TarInfo("././@PaxHeader")
    info.type, info.size = kind, len(data)
    return info.tobuf(tarfile.USTAR_FORMAT) + _pad(data)


def _record(key: str, value: str) -> bytes:
    """One PAX record "LEN key=value\\n", LEN counting itself."""
    body = f" {key}={value}\n".encode()
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n += 1
    return str(n).encode() + body


def escape_by_hardlink(outside: Path, victim: str, data: bytes) -> bytes:
    """Issue #14 item 1: symlink `a -> outside` (a host directory), hardlink `h -> a/victim`,
    then a regular file `h`: an extractor that follows `a` links `h` to the host's file and
    then writes `data` into its inode."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        link = tarfile.TarInfo("a")
        link.type, link.linkname = tarfile.SYMTYPE, str(outside)
        tar.addfile(link)
        hard = tarfile.TarInfo("h")
        hard.type, hard.linkname = tarfile.LNKTYPE, f"a/{victim}"
        tar.addfile(hard)
        reg = tarfile.TarInfo("h")
        reg.size = len(data)
        tar.addfile(reg, io.BytesIO(data))
    return out.getvalue()


def sparse_gnu(name: str, apparent: int) -> bytes:
    """An old-GNU sparse member ('S') of `apparent` bytes that stores no data at all: a
    1.5 KiB tar (under 100 bytes gzipped) that expands to `apparent` bytes of zeros."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.GNUTYPE_SPARSE
    block = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    block[483:495] = tarfile.itn(apparent, 12, tarfile.GNU_FORMAT)     # realsize
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % tarfile.calc_chksums(bytes(block))[0]
    return bytes(block) + _END


def sparse_pax(name: str, apparent: int, version: str) -> bytes:
    """A GNU PAX sparse member (format 0.0, 0.1 or 1.0) of `apparent` bytes, all hole."""
    info = tarfile.TarInfo(name)
    data = b""
    if version == "0.0":
        info.pax_headers = {"GNU.sparse.size": str(apparent), "GNU.sparse.numblocks": "1",
                            "GNU.sparse.offset": "0", "GNU.sparse.numbytes": "0"}
    elif version == "0.1":
        info.pax_headers = {"GNU.sparse.size": str(apparent), "GNU.sparse.numblocks": "1",
                            "GNU.sparse.map": "0,0"}
    else:
        info = tarfile.TarInfo(f"GNUSparseFile.0/{name}")
        info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": name,
                            "GNU.sparse.realsize": str(apparent)}
        data = _pad(b"1\n0\n0\n")
    info.size = len(data)
    return info.tobuf(tarfile.PAX_FORMAT) + data + _END


def sparse_map(entries: int) -> bytes:
    """A GNU 1.0 sparse member whose map lists `entries` (offset, size) pairs: a parser that
    reads the map before refusing holds a list as long as the stream."""
    info = tarfile.TarInfo("GNUSparseFile.0/big")
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "big",
                        "GNU.sparse.realsize": "0"}
    data = _pad(f"{entries}\n".encode() + b"0\n" * (2 * entries))
    info.size = len(data)
    return info.tobuf(tarfile.PAX_FORMAT) + data + _END


def pax_declaring(size: int) -> bytes:
    """Issue #14 item 5: a PAX header declaring `size` bytes (zeros, which compress to almost
    nothing), then a small file: tarfile reads a header's data in one request."""
    return _header(tarfile.XHDTYPE, b"\0" * size) + _file("f", b"x") + _END


def pax_chain(headers: int, each: int = (1 << 20) - 64) -> bytes:
    """`headers` PAX headers of `each` bytes chained before one file: each fits a bounded read,
    but tarfile parses the chain recursively, holding every header until the file."""
    one = _header(tarfile.XHDTYPE, _record("comment", "a" * (each - 20)))
    return one * headers + _file("f", b"x") + _END


def global_pax_keys(headers: int) -> bytes:
    """`headers` global PAX headers of 1 MiB, each before its own small file and each record a
    new key: tarfile keeps global keys for the rest of the archive, so they pile up."""
    per = (1 << 20) // 14                   # "14 k00000000=\n" is 14 bytes
    out = []
    for i in range(headers):
        records = "".join(f"14 k{key:08d}=\n" for key in range(i * per, (i + 1) * per)).encode()
        out.append(_header(tarfile.XGLTYPE, records) + _file(f"f{i}", b"x"))
    return b"".join(out) + _END
