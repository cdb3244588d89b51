"""Manifest reading takes regular files only, and only from inside the source (issue 14, item 6).

A manifest that is a FIFO, or a symlink to one or to a character device, used to block `validate`
(and the agent's worker) forever. Each case runs the real `reconcile validate` in a subprocess;
the timeout only turns a hang into a failure instead of a stuck test run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler import spec
from reconciler.spec import reading

REPO = Path(__file__).resolve().parent.parent.parent
GOOD = "apiVersion: reconciler/v1\nkind: Volume\nmetadata: {name: data}\n"


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "reconciler", "validate", str(path)], capture_output=True,
                          text=True, timeout=120, env=env, stdin=subprocess.DEVNULL, check=False)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    d = tmp_path / "src"
    d.mkdir()
    (d / "good.yaml").write_text(GOOD)
    return d


def test_a_fifo_manifest_is_refused_without_blocking(src: Path) -> None:
    os.mkfifo(src / "pipe.yaml")
    proc = validate(src)
    assert proc.returncode == 2
    assert f"{src}/pipe.yaml:0:0: a FIFO, not a regular file; manifests must be regular files" in proc.stdout


def test_a_fifo_named_directly_is_refused_too(src: Path) -> None:
    os.mkfifo(src / "pipe.yaml")
    proc = validate(src / "pipe.yaml")
    assert proc.returncode == 2
    assert "a FIFO, not a regular file" in proc.stdout


def test_a_symlink_to_a_fifo_inside_the_source_is_refused(src: Path) -> None:
    os.mkfifo(src / "pipe")
    (src / "web.yaml").symlink_to("pipe")
    proc = validate(src)
    assert proc.returncode == 2
    assert f"{src}/web.yaml:0:0: a FIFO, not a regular file" in proc.stdout


def test_a_symlink_to_dev_zero_is_refused(src: Path) -> None:
    (src / "zero.yaml").symlink_to("/dev/zero")
    proc = validate(src)
    assert proc.returncode == 2
    assert f"{src}/zero.yaml:0:0: a symlink that leads outside the source directory {src} (to /dev/zero)" in proc.stdout


def test_a_character_device_named_directly_is_refused(tmp_path: Path) -> None:
    proc = validate(Path("/dev/zero"))
    assert proc.returncode == 2
    assert "/dev/zero:0:0: a character device, not a regular file" in proc.stdout


def test_a_symlink_leaving_the_source_is_refused_and_one_inside_is_read(src: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere.yaml").write_text(GOOD.replace("name: data", "name: loot"))
    (src / "out.yaml").symlink_to("../elsewhere.yaml")
    (src / "sub").mkdir()
    (src / "sub" / "inner.txt").write_text(GOOD.replace("name: data", "name: inner"))
    (src / "in.yaml").symlink_to("sub/inner.txt")          # a link inside the source is fine
    with pytest.raises(spec.SpecError) as info:
        spec.load(src)
    assert [str(p) for p in info.value.problems] == [
        f"{src}/out.yaml:0:0: a symlink that leads outside the source directory {src} (to "
        f"{tmp_path}/elsewhere.yaml); manifests must be files inside the source: copy the file in instead of linking it",
    ]
    (src / "out.yaml").unlink()
    assert sorted(spec.load(src).volumes) == ["data", "inner"]


def test_the_manifest_file_count_is_limited(src: Path) -> None:
    for i in range(5):
        (src / f"v{i}.yaml").write_text(GOOD.replace("name: data", f"name: v{i}"))
    with pytest.raises(spec.SpecError, match="more than 3 manifest files"):
        spec.load(src, limits=reading.Limits(files=3))
    assert len(spec.load(src, limits=reading.Limits(files=6)).volumes) == 6
