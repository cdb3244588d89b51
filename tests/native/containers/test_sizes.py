"""A tree's size as dockerd counts it (moby's pkg/directory.Size, what `ps -s`, `system df` and
the prunes' SpaceReclaimed say): checked against GNU find on the same tree, which lists every
entry without following a link."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from reconciler.runtime.native.containers import sizes


def find_count(path: Path) -> int:
    """The oracle: st_size of every entry but directories, each inode once (find -P: no link
    followed)."""
    out = subprocess.run(["find", "-P", str(path), "-mindepth", "1", "-printf", "%D %i %s %y\n"],
                         check=True, capture_output=True, text=True).stdout
    seen: dict[tuple[str, str], int] = {}
    for line in out.splitlines():
        dev, ino, size, kind = line.split()
        if kind != "d":
            seen[(dev, ino)] = int(size)
    return sum(seen.values())


def test_a_tree_counts_files_links_and_whiteouts_once_and_no_directory(tmp_path: Path) -> None:
    """Hard links once (also one whose other name is outside the tree), a symlink's own size and
    not its target's (a link to a big directory outside is not walked), a whiteout (0/0 device),
    a FIFO, deep nesting; directories' own sizes are not counted."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "huge").write_bytes(b"x" * 500_000)
    tree = tmp_path / "upper"
    deep = tree / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (tree / "a" / "f").write_bytes(b"1" * 1000)
    os.link(tree / "a" / "f", deep / "f-again")                 # same inode: once
    os.link(outside / "huge", tree / "shared")                  # linked from outside: counted once here
    (deep / "g").write_bytes(b"2" * 12345)
    os.symlink("../../f", deep / "rel")                         # the link's own bytes (7)
    os.symlink(str(outside), tree / "to-outside")               # a directory link: not followed
    os.mknod(tree / "gone", 0o600 | 0o020000, os.makedev(0, 0))  # an overlay whiteout
    os.mkfifo(tree / "pipe")

    assert sizes.tree_size(tree) == find_count(tree) == 1000 + 500_000 + 12345 + len("../../f") + len(str(outside))


def test_a_tree_not_there_or_not_a_directory_is_zero_and_a_system_tree_matches_find(tmp_path: Path) -> None:
    assert sizes.tree_size(tmp_path / "missing") == 0
    (tmp_path / "file").write_bytes(b"abc")
    assert sizes.tree_size(tmp_path / "file") == 0               # as os.walk of a file: nothing under it
    assert sizes.tree_size(tmp_path) == 3
    system = Path("/usr/share/zoneinfo")
    assert sizes.tree_size(system) == find_count(system)
    writable = tmp_path / "containers" / "c1" / "upper"
    writable.mkdir(parents=True)
    (writable / "w").write_bytes(b"w" * 77)
    assert sizes.writable(tmp_path, "c1") == 77
