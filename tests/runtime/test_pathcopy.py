"""`docker cp`'s client half (runtime/pathcopy.py): where a copy lands, as moby's CopyInfo rules
decide it, and the host side's unpacking of what an engine sends, which never writes outside the
destination whatever the archive holds (an engine's archive is not trusted: a Docker or Podman
engine, a container's crafted files)."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.runtime import errors, pathcopy
from reconciler.runtime.pathcopy import CopyInfo


@pytest.mark.parametrize(("arg", "split"), [
    ("web:/etc/hosts", ("web", "/etc/hosts")), ("web:etc", ("web", "etc")), ("/abs:olute", ("", "/abs:olute")),
    ("./file:name.txt", ("", "./file:name.txt")), ("plain", ("", "plain")), ("-", ("", "-")),
])
def test_split_arg_tells_a_container_path_from_a_local_one(arg: str, split: tuple[str, str]) -> None:
    assert pathcopy.split_arg(arg) == split


@pytest.mark.parametrize(("src", "dst", "landing"), [
    (CopyInfo("/s/f"), CopyInfo("/d", exists=True, is_dir=True), ("/d", None)),          # into the directory
    (CopyInfo("/s/f"), CopyInfo("/d/g", exists=True), ("/d", ("f", "g"))),               # over the file
    (CopyInfo("/s/f"), CopyInfo("/d/new"), ("/d", ("f", "new"))),                        # a new file
    (CopyInfo("/s/dir", is_dir=True), CopyInfo("/d/new"), ("/d", ("dir", "new"))),       # a new directory
    (CopyInfo("/s/dir/.", is_dir=True), CopyInfo("/d/new"), ("/d", (".", "new"))),       # its content, renamed
    (CopyInfo("/s/link", rebase="name"), CopyInfo("/d/new"), ("/d", ("name", "new"))),  # -L: the link's name
])
def test_prepare_lands_a_copy_where_docker_cp_does(src: CopyInfo, dst: CopyInfo,
                                                   landing: tuple[str, tuple[str, str] | None]) -> None:
    assert pathcopy.prepare(src, dst) == landing


def test_prepare_refuses_what_docker_cp_refuses() -> None:
    with pytest.raises(errors.InvalidArgument, match="cannot copy directory"):
        pathcopy.prepare(CopyInfo("/s/dir", is_dir=True), CopyInfo("/d/file", exists=True))
    with pytest.raises(errors.NotFound, match="no such directory"):
        pathcopy.prepare(CopyInfo("/s/f"), CopyInfo("/d/missing/"))


class _Engine:
    """An engine that sends one crafted archive for any path (what pathcopy reads of one)."""

    def __init__(self, archive: bytes, mode: int) -> None:
        self.archive, self.mode = archive, mode

    def stat_path(self, name: str, path: str) -> dict[str, Any]:
        return {"name": path.rsplit("/", 1)[-1], "mode": self.mode, "size": 0, "linkTarget": ""}

    def read_archive(self, name: str, path: str) -> tuple[dict[str, Any], Iterator[bytes]]:
        return self.stat_path(name, path), iter([self.archive[:700], self.archive[700:]])


def _tar(*entries: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for e in entries:
            tar.addfile(e, io.BytesIO(data) if e.isreg() else None)
    return buf.getvalue()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", size: int = 0) -> tarfile.TarInfo:
    e = tarfile.TarInfo(name)
    e.type, e.linkname, e.size, e.mode = kind, link, size, 0o644
    return e


@pytest.mark.parametrize("case", ["dot-dot", "through-a-symlink-it-made", "hard-link-out"])
def test_nothing_is_written_outside_the_destination(tmp_path: Path, case: str) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    outside = tmp_path / "outside"          # (where a regression would write: the test's own)
    outside.mkdir()
    (outside / "secret").write_text("s")
    entries = {
        "dot-dot": (_entry("d", tarfile.DIRTYPE), _entry("../outside/escaped", size=3)),
        "through-a-symlink-it-made": (_entry("d", tarfile.DIRTYPE), _entry("d/up", tarfile.SYMTYPE, link=str(outside)),
                                      _entry("d/up/escaped", size=3)),
        "hard-link-out": (_entry("d", tarfile.DIRTYPE), _entry("d/hard", tarfile.LNKTYPE, link="../outside/secret")),
    }[case]
    engine = _Engine(_tar(*entries, data=b"bad"), pathcopy.GO_DIR)
    with pytest.raises(errors.InvalidArgument, match="outside"):
        pathcopy.copy_from(engine, "ctr", "/d", str(dest))
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert not (dest / "d" / "hard").exists()


def test_a_symlink_at_the_destination_is_replaced_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "f").symlink_to(victim)
    engine = _Engine(_tar(_entry("f", size=3), data=b"new"), 0o644)
    moved, where = pathcopy.copy_from(engine, "ctr", "/f", str(dest) + "/")
    assert (dest / "f").read_text() == "new"
    assert not (dest / "f").is_symlink()
    assert victim.read_text() == "keep"
    assert (moved, where) == (len(engine.archive), str(dest) + "/")     # docker's count: the whole archive


def test_a_directory_is_not_replaced_by_a_file_nor_a_file_by_a_directory(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / "d" / "x").mkdir(parents=True)
    (dest / "d" / "y").write_text("y")
    onto_dir = _Engine(_tar(_entry("d", tarfile.DIRTYPE), _entry("d/x", size=1), data=b"1"), pathcopy.GO_DIR)
    with pytest.raises(errors.InvalidArgument, match="cannot overwrite directory"):
        pathcopy.copy_from(onto_dir, "ctr", "/d", str(dest))
    onto_file = _Engine(_tar(_entry("d", tarfile.DIRTYPE), _entry("d/y", tarfile.DIRTYPE)), pathcopy.GO_DIR)
    with pytest.raises(errors.InvalidArgument, match="cannot overwrite non-directory"):
        pathcopy.copy_from(onto_file, "ctr", "/d", str(dest))
    assert (dest / "d" / "x").is_dir()
    assert (dest / "d" / "y").read_text() == "y"


def test_the_host_tar_names_and_ends_as_dockers(tmp_path: Path) -> None:
    """What goes to an engine: entries named from the destination, whole-second times, and no
    padding past the two end blocks (Go's writer; the bytes `Successfully copied` counts)."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"abc")
    os.utime(tmp_path / "src" / "f", (1_600_000_000.7, 1_600_000_000.7))
    got: dict[str, bytes] = {}

    class Receiver:
        def stat_path(self, name: str, path: str) -> dict[str, Any]:
            raise errors.NotFound(f"Could not find the file {path} in container {name}")

        def write_archive(self, name: str, path: str, src: Any, *, copy_uid_gid: bool = False) -> None:
            got[path] = src.read()

    moved, where = pathcopy.copy_to(Receiver(), "ctr", str(tmp_path / "src"), "/tmp/new")
    assert where == "ctr:/tmp/new"
    assert list(got) == ["/tmp"]
    assert moved == len(got["/tmp"]) == 512 + 512 + 512 + 1024          # dir, file header and data, the end
    with tarfile.open(fileobj=io.BytesIO(got["/tmp"])) as tar:
        assert [(m.name, m.mtime) for m in tar] == [("new", int(os.stat(tmp_path / "src").st_mtime)),
                                                    ("new/f", 1_600_000_000)]
