"""mounts.py against the real kernel: overlay order, whiteouts, read-only views, many layers,
binds, tmpfs, and unmount tolerance."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.runtime.native.containers import mounts

pytestmark = pytest.mark.root


@pytest.fixture
def targets(tmp_path: Path) -> Iterator[list[Path]]:
    """Mount points the test may use; whatever is still mounted there is unmounted at the end."""
    made: list[Path] = []
    yield made
    for t in reversed(made):
        while mounts.is_mounted(t):
            mounts.unmount(t)


def _target(targets: list[Path], path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    targets.append(path)
    return path


def _layer(base: Path, name: str, files: dict[str, bytes]) -> Path:
    d = base / name
    d.mkdir(parents=True)
    for rel, data in files.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_bytes(data)
    return d


def test_overlay_top_most_first_whiteout_and_opaque(tmp_path: Path, targets: list[Path]) -> None:
    bottom = _layer(tmp_path, "l0", {"f": b"bottom", "gone": b"x", "etc/a": b"a", "etc/b": b"b"})
    top = _layer(tmp_path, "l1", {"f": b"top", "etc/c": b"c"})
    os.mknod(top / "gone", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    os.setxattr(top / "etc", "trusted.overlay.opaque", b"y")
    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir()
    work.mkdir()
    merged = _target(targets, tmp_path / "merged")

    mounts.mount_overlay([top, bottom], upper, work, merged)

    assert mounts.is_mounted(merged)
    assert (merged / "f").read_bytes() == b"top"
    assert not (merged / "gone").exists()
    assert sorted(os.listdir(merged / "etc")) == ["c"]
    (merged / "new").write_bytes(b"n")
    assert (upper / "new").read_bytes() == b"n"
    mounts.unmount(merged)
    assert not mounts.is_mounted(merged)


def test_read_only_overlay_refuses_writes(tmp_path: Path, targets: list[Path]) -> None:
    a = _layer(tmp_path, "a", {"x": b"1"})
    b = _layer(tmp_path, "b", {"y": b"2"})
    merged = _target(targets, tmp_path / "m")
    mounts.mount_overlay([b, a], None, None, merged)
    assert sorted(os.listdir(merged)) == ["x", "y"]
    with pytest.raises(OSError) as exc:
        (merged / "z").write_bytes(b"no")
    assert exc.value.errno == errno.EROFS


def test_single_layer_read_only_view(tmp_path: Path, targets: list[Path]) -> None:
    a = _layer(tmp_path, "a", {"x": b"1"})
    merged = _target(targets, tmp_path / "m")
    mounts.mount_overlay([a], None, None, merged)
    assert (merged / "x").read_bytes() == b"1"
    with pytest.raises(OSError):
        (merged / "z").write_bytes(b"no")


def test_two_hundred_layers_mount_and_order_holds(tmp_path: Path, targets: list[Path]) -> None:
    # 200 absolute paths of ~80 bytes would never fit a 4095-byte option string.
    base = tmp_path / ("long-directory-name-" * 3)
    layers = [_layer(base, f"layer-{i:04d}", {f"f{i}": b"", "who": str(i).encode()}) for i in range(200)]
    upper, work = tmp_path / "u", tmp_path / "w"
    upper.mkdir()
    work.mkdir()
    merged = _target(targets, tmp_path / "m")
    mounts.mount_overlay(list(reversed(layers)), upper, work, merged)
    assert (merged / "who").read_bytes() == b"199"
    assert len(os.listdir(merged)) == 201


def test_over_the_kernel_limit_is_a_clear_error(tmp_path: Path, targets: list[Path]) -> None:
    merged = _target(targets, tmp_path / "m")
    with pytest.raises(mounts.MountError, match="exceed the kernel limit of 500"):
        mounts.mount_overlay([tmp_path] * 501, None, None, merged)
    assert not mounts.is_mounted(merged)


def test_bad_lower_reports_the_kernel_message(tmp_path: Path, targets: list[Path]) -> None:
    merged = _target(targets, tmp_path / "m")
    with pytest.raises(mounts.MountError) as exc:
        mounts.mount_overlay([tmp_path / "missing", tmp_path / "missing2"], None, None, merged)
    assert "missing" in str(exc.value)


def test_unmount_tolerates_not_mounted_and_missing(tmp_path: Path) -> None:
    mounts.unmount(tmp_path)
    mounts.unmount(tmp_path / "does-not-exist")


def test_unmount_busy_falls_back_to_lazy(tmp_path: Path, targets: list[Path]) -> None:
    src = _layer(tmp_path, "src", {"x": b"1"})
    dst = _target(targets, tmp_path / "dst")
    mounts.bind_mount(src, dst)
    fd = os.open(dst / "x", os.O_RDONLY)
    try:
        with pytest.raises(mounts.MountError) as exc:
            mounts.unmount(dst, lazy_fallback=False)
        assert exc.value.errno == errno.EBUSY
        mounts.unmount(dst)
        assert not mounts.is_mounted(dst)
    finally:
        os.close(fd)


def test_bind_mount_read_only_is_recursive(tmp_path: Path, targets: list[Path]) -> None:
    src = _layer(tmp_path, "src", {"x": b"1", "sub/.keep": b""})
    inner = _target(targets, src / "sub")
    mounts.mount_tmpfs(inner, ["size=1m"])
    (inner / "t").write_bytes(b"t")
    dst = _target(targets, tmp_path / "dst")
    mounts.bind_mount(src, dst, read_only=True)
    targets.append(dst / "sub")
    assert (dst / "x").read_bytes() == b"1"
    assert (dst / "sub" / "t").read_bytes() == b"t"
    for p in (dst / "y", dst / "sub" / "y"):
        with pytest.raises(OSError) as exc:
            p.write_bytes(b"no")
        assert exc.value.errno == errno.EROFS
    (src / "y").write_bytes(b"rw source still writable")


def test_tmpfs_options_and_attributes(tmp_path: Path, targets: list[Path]) -> None:
    dst = _target(targets, tmp_path / "t")
    mounts.mount_tmpfs(dst, ["size=1m", "mode=1777", "nosuid,nodev", "rw"])
    assert stat.S_IMODE(os.stat(dst).st_mode) == 0o1777
    with open("/proc/self/mountinfo") as f:
        line = next(ln for ln in f if f" {dst} " in ln)
    assert "nosuid" in line
    assert "nodev" in line
    assert "size=1024k" in line
    with pytest.raises(OSError) as exc:
        (dst / "big").write_bytes(b"x" * (2 << 20))
    assert exc.value.errno == errno.ENOSPC
