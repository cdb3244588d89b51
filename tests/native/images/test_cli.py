"""`reconcile pull / images / rmi / image inspect / image prune` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.images import layer_tar

from .conftest import DIR, Entry

pytestmark = [pytest.mark.root, pytest.mark.registry]


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", *args[:1], "--root", str(tmp_path / "root"),
                           "--run-dir", str(tmp_path / "run"), *args[1:]],
                          capture_output=True, text=True, check=False, timeout=120)


def image_cli(tmp_path: Path, sub: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", "image", sub, "--root", str(tmp_path / "root"),
                           "--run-dir", str(tmp_path / "run"), *args],
                          capture_output=True, text=True, check=False, timeout=120)


def test_pull_images_inspect_rmi_prune(tmp_path: Path, push: Callable[..., str]) -> None:
    base = layer_tar([Entry("etc", type=DIR, mode=0o755), Entry("etc/hostname", b"x\n")])
    ref = push([base, layer_tar([Entry("app", b"1")])], config={"Cmd": ["/app"]})
    other = push([base, layer_tar([Entry("app", b"2")])])

    first = cli(tmp_path, "pull", ref)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].startswith("latest: Pulling from ")
    assert sum(line.endswith(": Pull complete") for line in lines) == 2
    assert any(line.startswith("Digest: sha256:") for line in lines)
    assert f"Status: Downloaded newer image for {ref}" in lines
    assert lines[-1] == ref

    second = cli(tmp_path, "pull", other)
    assert second.returncode == 0, second.stderr
    assert sum(line.endswith(": Already exists") for line in second.stdout.splitlines()) == 1

    again = cli(tmp_path, "pull", ref)
    assert f"Status: Image is up to date for {ref}" in again.stdout

    table = cli(tmp_path, "images")
    assert table.returncode == 0
    header, *rows = table.stdout.splitlines()
    assert header.split()[:3] == ["REPOSITORY", "TAG", "IMAGE"]
    assert len(rows) == 2
    listed = json.loads(cli(tmp_path, "images", "--output", "json").stdout)
    assert {f"{r['repository']}:{r['tag']}" for r in listed} == {ref, other}

    doc = json.loads(image_cli(tmp_path, "inspect", ref).stdout)[0]
    assert doc["Config"]["Cmd"] == ["/app"]
    assert len(doc["RootFS"]["Layers"]) == 2
    assert doc["RepoTags"] == [ref]

    rmi = cli(tmp_path, "rmi", ref)
    assert rmi.returncode == 0
    assert rmi.stdout.splitlines()[0] == f"Untagged: {ref}"
    assert rmi.stdout.splitlines()[1].startswith("Deleted: sha256:")
    missing = cli(tmp_path, "rmi", ref)
    assert missing.returncode == 1
    assert "not found" in missing.stderr

    prune = image_cli(tmp_path, "prune", "-a", "-f")
    assert prune.returncode == 0
    assert "deleted: sha256:" in prune.stdout
    assert json.loads(cli(tmp_path, "images", "-o", "json").stdout) == []
    assert list((tmp_path / "root" / "snapshots").iterdir()) == []


def test_pull_errors_are_clear(tmp_path: Path, push: Callable[..., str]) -> None:
    ref = push([layer_tar([Entry("a", b"a")])])
    bad = cli(tmp_path, "pull", ref.rsplit(":", 1)[0] + ":missing")
    assert bad.returncode != 0
    assert "not found" in bad.stderr
    usage = cli(tmp_path, "pull", "Bad Ref")
    assert usage.returncode == 2
    assert "invalid image reference" in usage.stderr


def test_progress_redraws_bars_on_a_terminal_and_prints_plain_lines_otherwise() -> None:
    import io

    from reconciler.cli.cmd_pull import Progress

    events = [("resolve", {"ref": "r.local/app:1", "digest": "sha256:" + "d" * 64}),
              ("layer-done", {"digest": "sha256:" + "a" * 64, "status": "exists"}),
              ("layer-start", {"digest": "sha256:" + "b" * 64, "size": 2000}),
              ("layer-progress", {"digest": "sha256:" + "b" * 64, "done": 1000, "total": 2000}),
              ("layer-downloaded", {"digest": "sha256:" + "b" * 64}),
              ("extract", {"digest": "sha256:" + "b" * 64, "status": "extracting"}),
              ("layer-done", {"digest": "sha256:" + "b" * 64, "status": "downloaded"})]
    tty, plain = io.StringIO(), io.StringIO()
    for out, is_tty in ((tty, True), (plain, False)):
        p = Progress("r.local/app:1", out, tty=is_tty, interval=0)
        for e, d in events:
            p(e, d)
    assert plain.getvalue().splitlines() == [
        "1: Pulling from app",
        "aaaaaaaaaaaa: Already exists",
        "bbbbbbbbbbbb: Pulling fs layer",
        "bbbbbbbbbbbb: Download complete",
        "bbbbbbbbbbbb: Extracting",
        "bbbbbbbbbbbb: Pull complete",
    ]
    assert "\x1b[2A" in tty.getvalue()          # lines redrawn in place
    assert "Downloading [" in tty.getvalue()
