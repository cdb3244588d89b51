"""What a full file system looks like to the user (reconciler.diskfull): the kernel's and
SQLite's ways of saying it are recognised, and the error names the file system it is about.
The end-to-end faults (a real tmpfs that fills up) are in tests/native/test_diskfull.py."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import pytest

from reconciler import diskfull
from reconciler.errors import DiskFull


def mount_of(path: Path) -> str:
    """The mount point of `path`, as df finds it (walking up while the device stays the same)."""
    p = path.resolve()
    while p != p.parent and os.stat(p.parent).st_dev == os.stat(p).st_dev:
        p = p.parent
    return str(p)


@pytest.mark.parametrize(("exc", "full"), [
    (OSError(errno.ENOSPC, "No space left on device"), True),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
    (OSError(errno.EACCES, "Permission denied"), False),
    (ValueError("no space"), False),
])
def test_kernel_errors_that_mean_full(exc: Exception, full: bool) -> None:
    assert diskfull.is_disk_full(exc) is full


def test_sqlite_full_is_recognised_by_its_code(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "t.db")
    db.execute("CREATE TABLE t (x BLOB)")
    db.execute("PRAGMA max_page_count = 2")           # SQLite's own way to be full: SQLITE_FULL
    with pytest.raises(sqlite3.Error) as caught:
        db.execute("INSERT INTO t VALUES (zeroblob(100000))")
    db.close()
    assert diskfull.is_disk_full(caught.value)
    with pytest.raises(sqlite3.Error) as other:
        sqlite3.connect(":memory:").execute("SELECT * FROM missing")
    assert not diskfull.is_disk_full(other.value, tmp_path)    # not full: an I/O-free error


def test_the_error_names_the_file_system_the_need_and_what_to_do(tmp_path: Path) -> None:
    target = tmp_path / "not" / "created" / "yet"            # the nearest existing parent counts
    err = diskfull.translate(OSError(errno.ENOSPC, "No space left on device", str(target)),
                             "writing blob sha256:0123456789ab to somewhere", needed=12_600_000)
    assert isinstance(err, DiskFull)
    assert err.exit_code == 3
    fs = diskfull.file_system(tmp_path)
    assert fs.mount == mount_of(tmp_path)
    assert fs.total > 0
    assert err.message.startswith(f"no space left on {fs.mount} ({fs.type}, ")
    assert err.message.endswith("while writing blob sha256:0123456789ab to somewhere; it needs at least 12.6MB")
    assert err.hint is not None
    assert err.hint.startswith(f"free at least 12.6MB on {fs.mount} ")
    assert err.path == target


def test_a_quota_is_not_called_a_full_disk(tmp_path: Path) -> None:
    err = diskfull.translate(OSError(errno.EDQUOT, "Disk quota exceeded"), "writing x", tmp_path)
    assert err is not None
    assert err.quota
    assert err.message.startswith("the disk quota is used up on ")
    assert diskfull.translate(OSError(errno.EIO, "I/O error"), "writing x", tmp_path) is None
