"""`reconcile image import`: a filesystem tarball as an image of one layer, as `docker import`;
compared with the host's real dockerd importing the same tar."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import hostile
from tests.helpers.images import Entry, busybox_layer, layer_tar
from tests.native.containers.test_cli import REPO, Reconcile, cli  # noqa: F401 - the fixture

pytestmark = pytest.mark.root

CHANGES = ('CMD ["/bin/busybox", "echo", "from-cmd"]', "ENV A=1 B=two", "EXPOSE 8080/udp", "LABEL made.by=test",
           "USER 1000:1000", "WORKDIR /home/app", "VOLUME /data", "ONBUILD RUN true", "ENTRYPOINT []")
COMPARED = ("Cmd", "Env", "ExposedPorts", "Labels", "User", "WorkingDir", "Volumes", "OnBuild")


def have_dockerd() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "version"], capture_output=True, timeout=60, check=False).returncode == 0


def store_files(root: Path) -> set[str]:
    """What the store holds on disk: blobs, ingests, snapshots (debris too)."""
    out = set()
    for top in ("blobs", "ingest", "snapshots"):
        d = root / top
        if d.exists():
            out |= {str(p.relative_to(root)) for p in d.rglob("*") if not p.is_dir() or p.parent.name == "snapshots"}
    return out


def root_of(tmp: Path) -> Path:
    from tests.native.containers.test_cli import native_config_of

    return native_config_of(tmp).root


@pytest.fixture
def busybox_tar(tmp_path: Path) -> Path:
    path = tmp_path / "busybox-rootfs.tar"
    path.write_bytes(busybox_layer())
    return path


def test_import_is_dockerds_layer_config_and_history(cli: tuple[Reconcile, Path], busybox_tar: Path) -> None:  # noqa: F811
    reconcile, _ = cli
    args = [a for c in CHANGES for a in ("-c", c)]
    image_id = reconcile("image", "import", *args, "-m", "made by a test", str(busybox_tar),
                         "local/imported:1").stdout.strip()
    assert image_id.startswith("sha256:")
    assert len(image_id) == 71
    ours = json.loads(reconcile("image", "inspect", "local/imported:1").stdout)[0]
    assert ours["Id"] == image_id
    # the layer's DiffID is the digest of the tar as given, as dockerd's
    assert ours["RootFS"]["Layers"] == ["sha256:" + hashlib.sha256(busybox_tar.read_bytes()).hexdigest()]
    assert (ours["Os"], ours["Architecture"]) == ("linux", {"x86_64": "amd64", "aarch64": "arm64"}.get(
        os.uname().machine, os.uname().machine))
    assert ours["Config"]["Env"] == ["A=1", "B=two"]
    assert ours["Config"]["Cmd"] == ["/bin/busybox", "echo", "from-cmd"]
    history = reconcile("image", "history", "--no-trunc", "--format", "{{.Comment}}|{{.CreatedBy}}",
                        "local/imported:1").stdout
    assert history == "made by a test|\n"                        # one step: the comment, no command
    created = json.loads(reconcile("image", "inspect", "-f", "{{json .Created}}", "local/imported:1").stdout)
    assert abs(time.time() - _unix(created)) < 120                 # created now

    if have_dockerd():
        dockerd_id = subprocess.run(["docker", "import", *args, "-m", "made by a test", str(busybox_tar)],
                                    capture_output=True, text=True, timeout=120, check=True).stdout.strip()
        try:
            theirs = json.loads(subprocess.run(["docker", "image", "inspect", dockerd_id], capture_output=True,
                                               text=True, timeout=60, check=True).stdout)[0]
            their_history = subprocess.run(["docker", "history", "--no-trunc", "--format",
                                            "{{.Comment}}|{{.CreatedBy}}", dockerd_id], capture_output=True,
                                           text=True, timeout=60, check=True).stdout
        finally:
            subprocess.run(["docker", "rmi", dockerd_id], capture_output=True, timeout=60, check=False)
        assert ours["RootFS"]["Layers"] == theirs["RootFS"]["Layers"]
        assert ours["Size"] == theirs["Size"]                      # unpacked, as docker counts it
        assert (ours["Os"], ours["Architecture"]) == (theirs["Os"], theirs["Architecture"])
        for key in COMPARED:
            assert ours["Config"].get(key) == theirs["Config"].get(key), key
        assert not ours["Config"].get("Entrypoint")
        assert not theirs["Config"].get("Entrypoint")
        assert their_history == history

    # it runs: the default command the change set, and a command given
    assert reconcile("run", "--rm", "--network", "none", "local/imported:1").stdout == "from-cmd\n"
    assert reconcile("run", "--rm", "--network", "none", "local/imported:1", "/bin/busybox", "true").returncode == 0
    assert reconcile("run", "--rm", "--network", "none", "local/imported:1", "id", "-u").stdout == "1000\n"


def _unix(created: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(created.replace("Z", "+00:00")[:26] + "+00:00").timestamp()


def test_import_from_stdin_compressed_untagged_and_for_a_platform(cli: tuple[Reconcile, Path],  # noqa: F811
                                                                  busybox_tar: Path) -> None:
    reconcile, tmp = cli
    tar = busybox_tar.read_bytes()
    proc = subprocess.run([sys.executable, "-m", "reconciler", "image", "import",
                           "--platform", "linux/arm64", "-"], input=gzip.compress(tar), capture_output=True,
                          cwd=REPO, timeout=120, check=False, env={**os.environ, **_env(tmp)})
    assert proc.returncode == 0, proc.stderr
    image_id = proc.stdout.decode().strip()
    doc = json.loads(reconcile("image", "inspect", image_id).stdout)[0]
    assert doc["RepoTags"] == []                                   # no reference: dangling, as docker's
    assert doc["Architecture"] == "arm64"
    assert doc["RootFS"]["Layers"] == ["sha256:" + hashlib.sha256(tar).hexdigest()]    # of the tar, not the gzip
    history = reconcile("image", "history", "--format", "{{.Comment}}", image_id).stdout
    assert history == "Imported from -\n"                          # dockerd's words for a body or a file
    assert reconcile("images", "-q", "--no-trunc").stdout.strip() == image_id
    # commit's change set (dockerd 20.10's import refuses STOPSIGNAL; commit and newer dockerd take it)
    reconcile("image", "import", "-c", "STOPSIGNAL SIGQUIT", str(busybox_tar), "local/signalled:1")
    assert reconcile("image", "inspect", "-f", "{{.Config.StopSignal}}", "local/signalled:1").stdout == "SIGQUIT\n"


def _env(tmp: Path) -> dict[str, str]:
    from tests.native.containers.test_cli import native_config_of

    config = native_config_of(tmp)
    return {"RECONCILER_ROOT": str(config.root), "RECONCILER_RUN_DIR": str(config.run_dir),
            "RECONCILER_PREFIX": config.name_prefix}


@contextlib.contextmanager
def serving_file(path: Path) -> Iterator[str]:
    """A loopback http server of `path`'s directory; its base URL."""
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(path.parent))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_import_from_a_url(cli: tuple[Reconcile, Path], busybox_tar: Path) -> None:  # noqa: F811
    reconcile, _ = cli
    with serving_file(busybox_tar) as base:
        url = f"{base}/{busybox_tar.name}"
        reconcile("image", "import", url, "local/fetched")
        missing = reconcile("image", "import", f"{base}/nothing.tar", check=False)
    assert missing.returncode == 1
    assert "404" in missing.stderr
    history = reconcile("image", "history", "--format", "{{.Comment}}", "local/fetched:latest").stdout
    assert history == f"Imported from {url}\n"
    assert reconcile("run", "--rm", "--network", "none", "local/fetched", "/bin/busybox", "true").returncode == 0


def test_hostile_or_bad_tars_are_refused_and_leave_nothing(cli: tuple[Reconcile, Path], tmp_path: Path) -> None:  # noqa: F811
    reconcile, tmp = cli
    root = root_of(tmp)
    reconcile("images")                                            # the store made
    before = store_files(root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("untouched")
    bad = {
        "escape": (layer_tar([Entry("../../escaped", b"x")]), "escaped"),
        "hardlink": (hostile.escape_by_hardlink(outside, "victim", b"overwritten"), None),
        "twice": (layer_tar([Entry("f", b"1"), Entry("f", b"2")]), None),
        "garbage": (b"not a tar at all " * 100, "not a valid tar"),
        "truncated": (gzip.compress(busybox_layer())[:50_000], "truncated"),
        "empty": (b"", "empty"),
    }
    for name, (data, words) in bad.items():
        path = tmp_path / f"{name}.tar"
        path.write_bytes(data)
        proc = reconcile("image", "import", str(path), f"local/{name}:1", check=False)
        assert proc.returncode == 1, (name, proc.stderr)
        assert "cannot import the tarball" in proc.stderr, (name, proc.stderr)
        assert "nothing was imported" in proc.stderr
        if words:
            assert words in proc.stderr, (name, proc.stderr)
        assert store_files(root) == before, name                   # no blob, snapshot or debris
    assert (outside / "victim").read_text() == "untouched"
    assert not (tmp_path.parent / "escaped").exists()
    assert reconcile("images", "-a", "-q").stdout == ""
    refused = reconcile("image", "import", "-c", "RUN rm -rf /", str(tmp_path / "garbage.tar"), check=False)
    assert refused.returncode == 2
    assert "invalid change" in refused.stderr
    assert store_files(root) == before


def test_a_killed_import_leaves_nothing(cli: tuple[Reconcile, Path], busybox_tar: Path) -> None:  # noqa: F811
    reconcile, tmp = cli
    root = root_of(tmp)
    reconcile("images")
    before = store_files(root)
    data = busybox_tar.read_bytes()
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", "image", "import", "-", "local/killed:1"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
                            env={**os.environ, **_env(tmp)})
    try:
        assert proc.stdin is not None
        proc.stdin.write(data[: len(data) // 2])
        proc.stdin.flush()
        deadline = time.monotonic() + 30
        while not _reading_blob_dir(proc.pid, root):              # it has the unnamed blob open, half written
            assert proc.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()  # type: ignore[union-attr]
    assert store_files(root) == before
    assert reconcile("images", "-a", "-q").stdout == ""


def _reading_blob_dir(pid: int, root: Path) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    with contextlib.suppress(OSError):
        for fd in fds.iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd).startswith(str(root / "blobs" / "sha256") + "/"):      # the blob being written
                    return True
    return False


def test_import_tar_written_by_tar(cli: tuple[Reconcile, Path], tmp_path: Path) -> None:  # noqa: F811
    """`tar -C DIR -c .` (a `./` root entry, GNU format), what a user packs a rootfs with."""
    reconcile, _ = cli
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", rootfs / "bin" / "busybox")
    (rootfs / "hello").write_text("hi\n")
    archive = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(archive), "."], check=True)
    with tarfile.open(archive) as tar:
        assert tar.getnames()[0] == "."
    reconcile("image", "import", str(archive), "local/tarred:1")
    out = reconcile("run", "--rm", "--network", "none", "local/tarred:1", "/bin/busybox", "cat", "/hello").stdout
    assert out == "hi\n"
