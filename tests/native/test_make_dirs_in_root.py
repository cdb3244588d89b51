"""openat2.make_dirs_in_root: mkdir -p inside a tree, symlinks followed as RESOLVE_IN_ROOT
follows them (also to directories still missing), nothing made or opened outside the tree (the
builder's WORKDIR and COPY destinations, build/context.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.runtime.native import openat2


def _made(root: Path, path: str) -> Path:
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        made = openat2.make_dirs_in_root(fd, path, lambda pfd, name: os.mkdir(name, 0o755, dir_fd=pfd))
        try:
            return Path(os.readlink(f"/proc/self/fd/{made}"))
        finally:
            os.close(made)
    finally:
        os.close(fd)


def test_links_are_followed_inside_the_tree_to_directories_still_missing(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "app").symlink_to("/srv/app")                       # absolute: from the tree's root
    (root / "up").symlink_to("../../../outside")                # `..` stops at the tree's root
    (root / "loop").symlink_to("loop")
    assert _made(root, "app/x/y") == root / "srv" / "app" / "x" / "y"
    assert _made(root, "/up/z") == root / "outside" / "z"
    assert list(outside.iterdir()) == []                        # nothing made outside
    with pytest.raises(OSError) as loop:
        _made(root, "loop/a")
    assert loop.value.errno == 40                               # ELOOP
    (root / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        _made(root, "file/a")
