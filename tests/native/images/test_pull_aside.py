"""Pulls in a helper process (images/aside.py), as the agent's store makes them, against the
session's real registry: what is stored, the progress relayed, the errors as their kinds, a
cancel and a helper killed mid-pull leaving nothing half made, and a caller that never loads
the registry client."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.runtime import errors
from reconciler.runtime.native.images import images
from tests.helpers.images import layer_tar

from .conftest import Entry, native_config

pytestmark = [pytest.mark.root, pytest.mark.registry]

REPO = Path(__file__).resolve().parents[3]


def _aside_store(tmp_path: Path) -> images.ImageStore:
    return images.ImageStore(dataclasses.replace(native_config(tmp_path), pull_aside=True))


def _layers(n: int, size: int) -> list[bytes]:
    return [layer_tar([Entry(f"f{i}", data=os.urandom(size))]) for i in range(n)]


def _layer_digests(layout: Path) -> list[str]:
    """The layer digests of the one image in an OCI layout."""
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_text())
    return [layer["digest"] for layer in manifest["layers"]]


def _helpers() -> list[int]:
    """This process's children that are pull helpers."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if ppid == os.getpid() and b"aside.serve()" in cmd:
            found.append(int(pid))
    return found


def test_a_pull_aside_stores_what_a_pull_here_stores_and_relays_its_progress(
        tmp_path: Path, push: Callable[..., str]) -> None:
    ref = push(_layers(3, 20_000))
    aside = _aside_store(tmp_path / "a")
    events: list[tuple[str, Any]] = []
    info = aside.pull(ref, progress=lambda e, d: events.append((e, d)))
    here = images.ImageStore(native_config(tmp_path / "b")).pull(ref)
    assert (info.id, info.digest, info.repo_tags) == (here.id, here.digest, here.repo_tags)
    assert aside.layer_dirs(info.id)
    kinds = [e for e, _ in events]
    assert kinds[0] == "resolve"
    assert "done" in kinds
    assert any(isinstance(d, dict) and d.get("digest") for _, d in events)
    assert not _helpers()
    # present and confirmed by one HEAD: answered here, no helper, the same image
    again: list[str] = []
    assert aside.pull(ref, progress=lambda e, d: again.append(e)).id == info.id
    assert again == ["resolve", "done"]


def test_a_caller_that_pulls_aside_never_loads_the_registry_client(
        tmp_path: Path, push: Callable[..., str]) -> None:
    ref = push(_layers(2, 5_000))
    script = textwrap.dedent("""
        import dataclasses, sys
        from pathlib import Path
        from reconciler.runtime.native.config import NativeConfig
        from reconciler.runtime.native.images import images
        cfg = NativeConfig(root=Path(sys.argv[1]), run_dir=Path(sys.argv[2]), name_prefix=sys.argv[3], pull_aside=True)
        store = images.ImageStore(cfg)
        info = store.pull(sys.argv[4])
        print(info.id, [m for m in ("httpx", "httpcore", "ssl", "isal", "zstandard",
                                    "reconciler.registry_client.client") if m in sys.modules])
    """)
    cfg = native_config(tmp_path)
    done = subprocess.run([sys.executable, "-c", script, str(cfg.root), str(cfg.run_dir), cfg.name_prefix, ref],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    image_id, loaded = done.stdout.split(" ", 1)
    assert image_id.startswith("sha256:")
    assert loaded.strip() == "[]"


def test_the_helpers_errors_are_raised_as_their_kinds(tmp_path: Path, push: Callable[..., str],
                                                       registry: Any) -> None:
    ref = push(_layers(1, 1_000))
    missing = ref.rsplit(":", 1)[0] + ":no-such-tag"
    aside = _aside_store(tmp_path / "a")
    here = images.ImageStore(native_config(tmp_path / "b"))
    with pytest.raises(errors.RuntimeBackendError) as far:
        aside.pull(missing)
    with pytest.raises(errors.RuntimeBackendError) as near:
        here.pull(missing)
    assert type(far.value) is type(near.value)
    assert far.value.message == near.value.message
    assert far.value.hint == near.value.hint
    with pytest.raises(errors.RegistryUnavailable):        # nothing listens there
        aside.pull("127.0.0.1:9/nobody/img:latest")
    assert not _helpers()


@pytest.mark.parametrize("interrupt", ["cancel", "kill"])
def test_an_interrupted_pull_ends_its_helper_and_the_next_pull_completes(
        tmp_path: Path, push: Callable[..., str], interrupt: str) -> None:
    """A progress callback that raises (the executor's, as the agent stops) ends the helper and
    is raised; a helper SIGKILLed mid-pull fails the pull as a pull that ended without an answer.
    Either way no helper is left, nothing is taken for stored, and the next pull completes."""
    ref = push(_layers(6, 300_000))
    aside = _aside_store(tmp_path)
    killed: list[int] = []

    def progress(event: str, detail: Any) -> None:
        if event == "resolve":
            return
        if interrupt == "cancel":
            raise errors.Cancelled("stopping", hint="the next pass pulls it again")
        for pid in _helpers() if not killed else ():
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    raised: type[Exception] = errors.Cancelled if interrupt == "cancel" else errors.ImageError
    with pytest.raises(raised, match="stopping" if interrupt == "cancel" else "without an answer"):
        aside.pull(ref, progress=progress)
    assert killed or interrupt == "cancel"
    assert not _helpers()
    with pytest.raises(errors.NotFound):
        aside.get(ref)
    info = aside.pull(ref)
    assert len(aside.layer_dirs(info.id)) == 6


def test_a_caller_that_finds_reconciler_through_an_import_hook_pulls_aside(
        tmp_path: Path, push: Callable[..., str]) -> None:
    """As an editable install's finder does: reconciler is on no sys.path entry of the caller, an
    import hook finds it; the helper, started without site (no .pth runs), still finds it."""
    ref = push(_layers(1, 2_000))
    script = textwrap.dedent("""
        import importlib.abc, importlib.util, sys
        from pathlib import Path
        repo = sys.argv[5]
        sys.path[:] = [p for p in sys.path if p not in ("", ".", repo)]
        class Finder(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "reconciler":
                    return importlib.util.spec_from_file_location(
                        name, f"{repo}/reconciler/__init__.py", submodule_search_locations=[f"{repo}/reconciler"])
                return None
        sys.meta_path.insert(0, Finder())
        from reconciler.runtime.native.config import NativeConfig
        from reconciler.runtime.native.images import images
        cfg = NativeConfig(root=Path(sys.argv[1]), run_dir=Path(sys.argv[2]), name_prefix=sys.argv[3], pull_aside=True)
        print(images.ImageStore(cfg).pull(sys.argv[4]).id, repo in sys.path)
    """)
    cfg = native_config(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", script, str(cfg.root), str(cfg.run_dir), cfg.name_prefix, ref,
                           str(REPO)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    image_id, on_path = done.stdout.split()
    assert image_id.startswith("sha256:")
    assert on_path == "False"


def test_pulls_in_several_processes_share_the_roots_download_cap(
        tmp_path: Path, push: Callable[..., str], registry: Any) -> None:
    """Two pulls at once, each in a helper process, each allowed 3 downloads: the root's cap of 2
    (`max_root_downloads`, flock'd slots) holds across both processes at the registry's door."""
    from tests.helpers.fault_server import Fault, FaultProxy

    refs = [push(_layers(4, 150_000)) for _ in range(2)]
    layers = "|".join(d for ref in refs for d in _layer_digests(push.layouts[ref]))  # type: ignore[attr-defined]
    proxy = FaultProxy(int(registry.host.rsplit(":", 1)[1])).start()
    proxy.track_blobs = layers          # the layers' downloads: the config blob is fetched outside the cap
    try:
        proxy.add(Fault("slow", path=layers, times=100, chunk=16384, delay=0.02))
        cfg = dataclasses.replace(native_config(tmp_path), pull_aside=True, max_concurrent_downloads=3,
                                  max_root_downloads=2)
        store = images.ImageStore(cfg)
        failed: list[BaseException] = []

        def pull(ref: str) -> None:
            try:
                store.pull(ref.replace(registry.host, proxy.host))
            except BaseException as exc:
                failed.append(exc)

        threads = [threading.Thread(target=pull, args=(r,)) for r in refs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not failed
        assert len(proxy.requests(path="/blobs/sha256:", method="GET")) >= 8
        assert proxy.max_blobs_in_flight == 2
    finally:
        proxy.stop()
