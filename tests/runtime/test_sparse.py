"""runtime/sparse.py: zeros written as holes (whole aligned 4 KiB blocks, however the writes are
cut), and holes read as zeros without reading them; the bytes are always the bytes."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from reconciler.runtime import sparse


def _data(rnd: random.Random) -> bytes:
    parts = []
    for _ in range(rnd.randint(0, 24)):
        if rnd.random() < 0.5:
            parts.append(bytes(rnd.choice([1, 100, 4095, 4096, 4097, 8192, 70000, 1 << 20, 3 << 20])))
        else:
            parts.append(rnd.randbytes(rnd.choice([1, 10, 511, 4096, 5000, 100000])))
    return b"".join(parts)


def test_holes_are_the_whole_aligned_blocks_of_zeros() -> None:
    data = b"x" + bytes(3 * 4096) + b"y" + bytes(5000)
    assert list(sparse.holes(data, 0)) == [(4096, 3 * 4096)]        # the run's blocks inside it
    assert list(sparse.holes(data, 4095)) == [(1, 3 * 4096 + 1)]     # as the file's offsets align them
    assert list(sparse.holes(bytes(5000), 100)) == []                 # 5000 zeros hold no aligned block there
    assert list(sparse.holes(bytes(9000), 100)) == [(3996, 3996 + 4096)]
    assert list(sparse.holes(b"x" * 9000, 0)) == []


@pytest.mark.parametrize("seed", range(40))
def test_what_is_written_reads_back_and_its_zero_blocks_are_holes(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    data = _data(rnd)
    with open(tmp_path / "f", "wb") as f:
        w = sparse.Writer(f)
        pos = 0
        while pos < len(data):
            n = rnd.choice([1, 512, 10240, 1 << 20, 3 << 20])
            w.write(data[pos:pos + n])
            pos += n
        w.flush()
    assert (tmp_path / "f").read_bytes() == data
    fd = os.open(tmp_path / "g", os.O_WRONLY | os.O_CREAT)
    put, skip = sparse.fd_writer(fd)
    for at in range(0, len(data), 1 << 20):
        sparse.write(data[at:at + (1 << 20)], at, put, skip)
    os.ftruncate(fd, len(data))
    os.close(fd)
    assert (tmp_path / "g").read_bytes() == data


def test_a_gib_of_zeros_takes_no_disk_and_reads_back_unread(tmp_path: Path) -> None:
    with open(tmp_path / "f", "wb") as f:
        w = sparse.Writer(f)
        record = bytes(10240)                  # as tarfile writes its stream
        for _ in range((1 << 30) // len(record)):
            w.write(record)
        w.write(b"end")
        w.flush()
    st = os.stat(tmp_path / "f")
    assert st.st_size == (1 << 30) - (1 << 30) % 10240 + 3
    assert st.st_blocks * 512 <= 64 << 10, st.st_blocks
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        reader = sparse.Reader(fd)
        total, tail = 0, b""
        while chunk := reader.read(16384):
            assert len(chunk) == 16384 or total + len(chunk) == st.st_size    # whole reads until the end
            total += len(chunk)
            tail = (tail + chunk)[-3:]
        assert (total, tail) == (st.st_size, b"end")
    finally:
        os.close(fd)


@pytest.mark.parametrize("seed", range(20))
def test_the_reader_gives_a_files_bytes_holes_and_all(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    size = rnd.choice([0, 1, 4096, 100000, 5 << 20])
    expect = bytearray(size)
    with open(tmp_path / "f", "wb") as f:
        f.truncate(size)
        for _ in range(rnd.randint(0, 12) if size else 0):
            at = rnd.randrange(size)
            piece = rnd.randbytes(min(rnd.choice([1, 5000, 200000]), size - at))
            f.seek(at)
            f.write(piece)
            expect[at:at + len(piece)] = piece
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        reader = sparse.Reader(fd)
        got = bytearray()
        while chunk := reader.read(rnd.choice([1, 16384, 1 << 20])):
            got += chunk
    finally:
        os.close(fd)
    assert got == expect
