"""`reconcile pull / images / rmi / image inspect / image prune` as a user runs them."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.runtime.native.images import images
from tests.helpers.images import layer_tar, push_layout

from .conftest import DIR, Entry, native_config, write_layout

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


class _CountingProxy:
    """A real HTTP server on loopback in front of the registry: forwards every request and
    records (method, path), so a test sees each request a CLI process makes."""

    def __init__(self, upstream: str) -> None:
        self.requests: list[tuple[str, str]] = []
        self.agents: list[str] = []         # their User-Agent headers
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                proxy.requests.append((self.command, self.path))
                proxy.agents.append(self.headers.get("User-Agent", ""))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                conn = http.client.HTTPConnection(upstream, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(k, v)
                    length = resp.getheader("Content-Length") if self.command == "HEAD" else None
                    self.send_header("Content-Length", length or str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_HEAD = _forward

            def log_message(self, *_args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def test_repull_of_a_present_tag_is_one_head_or_none_and_opens_no_store(
    tmp_path: Path, push: Callable[..., str],
) -> None:
    pushed = push([layer_tar([Entry("a", b"1")]), layer_tar([Entry("b", b"2")])])
    registry, path = pushed.split("/", 1)
    proxy = _CountingProxy(registry)
    try:
        ref = f"{proxy.host}/{path}"
        assert cli(tmp_path, "pull", "-q", ref).returncode == 0
        # debris of a dead extraction: opening the image store would sweep it
        debris = tmp_path / "root" / "snapshots" / "extract-4194305-dead"
        debris.mkdir()
        repo, tag = path.rsplit(":", 1)

        proxy.requests.clear()
        again = cli(tmp_path, "pull", ref)
        assert again.returncode == 0, again.stderr
        assert proxy.requests == [("HEAD", f"/v2/{repo}/manifests/{tag}")]
        assert f"Status: Image is up to date for {ref}" in again.stdout
        assert again.stdout.splitlines()[-1] == ref
        assert debris.is_dir(), "the re-pull opened the image store"

        # its everyday form takes the CLI's fast path: no parser, no image store, no registry client,
        proxy.requests.clear()
        fast = subprocess.run([sys.executable, "-X", "importtime", "-m", "reconciler", "pull", ref],
                              env={**os.environ, "RECONCILER_ROOT": str(tmp_path / "root"),
                                   "RECONCILER_RUN_DIR": str(tmp_path / "run")},
                              capture_output=True, text=True, check=False, timeout=120)
        assert (fast.returncode, fast.stdout) == (0, again.stdout), fast.stderr[-2000:]
        assert proxy.requests == [("HEAD", f"/v2/{repo}/manifests/{tag}")]
        loaded = {ln.rsplit("|", 1)[1].strip() for ln in fast.stderr.splitlines() if ln.startswith("import time:")}
        # nor the engine's config and place (the state root is all it reads), nor socket's enums;
        # nor a dataclass (a Reference, the content store's), typing, pathlib, shutil, json, re,
        # threading, or sqlite3's and datetime's Python modules (#21: their C cores do the work)
        assert sorted(loaded & {"argparse", "reconciler.runtime.native.images.images", "httpx",
                                "reconciler.runtime.native.config", "reconciler.runtime.opening", "selectors",
                                "dataclasses", "typing", "pathlib", "shutil", "json", "re", "threading", "sqlite3",
                                "datetime", "reconciler.runtime.native.images.content",
                                "reconciler.registry_client.references", "reconciler.registry_client.models"}) == []

        proxy.requests.clear()
        missing = cli(tmp_path, "pull", "-q", "--pull=missing", ref)
        assert (missing.returncode, missing.stdout, proxy.requests) == (0, f"{ref}\n", [])

        # a snapshot gone: the image is not present, the full pull makes it whole again
        snaps = [p for p in (tmp_path / "root" / "snapshots").iterdir() if not p.name.startswith("extract-")]
        shutil.rmtree(snaps[0])
        proxy.requests.clear()
        redo = cli(tmp_path, "pull", "--pull=missing", ref)
        assert redo.returncode == 0, redo.stderr
        assert "Pull complete" in redo.stdout
        assert snaps[0].is_dir()

        # the tag moved: one HEAD says so, and the full pull takes the new image
        layout = tmp_path / "moved"
        write_layout(layout, [layer_tar([Entry("c", b"3")])], tag=tag)
        push_layout(layout, pushed, tag=tag)
        proxy.requests.clear()
        moved = cli(tmp_path, "pull", ref)
        assert moved.returncode == 0, moved.stderr
        assert f"Status: Downloaded newer image for {ref}" in moved.stdout
    finally:
        proxy.close()


def test_a_warm_store_answers_a_present_tag_with_the_plain_head_too(tmp_path: Path, push: Callable[..., str]) -> None:
    """The agent's re-pull (ImageStore.pull in a warm process, default registry client) is the
    same plain HEAD as the CLI's, not a new httpx client per pull."""
    registry, path = push([layer_tar([Entry("a", b"1")])]).split("/", 1)
    proxy = _CountingProxy(registry)
    try:
        ref = f"{proxy.host}/{path}"
        store = images.ImageStore(native_config(tmp_path))
        info = store.pull(ref)
        proxy.requests.clear()
        proxy.agents.clear()
        assert store.pull(ref) == info
        repo, tag = path.rsplit(":", 1)
        assert (proxy.requests, proxy.agents) == ([("HEAD", f"/v2/{repo}/manifests/{tag}")], ["reconciler"])
    finally:
        proxy.close()
