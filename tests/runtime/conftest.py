"""The `runtime` fixture: every conformance test runs against each backend (native for now).

The native engine gets its own state root, run dir, name prefix and subnet pool per test (with
bridge networking, as `reconcile` opens it), and the loops an
agent would run (restart policies, healthchecks) run in background threads, so that it
behaves like a Docker daemon seen through the Runtime protocol. Teardown removes every
container and network, then fails the test if a mount, a conmon process, a cgroup, a container
directory, a link, an nft table or an iptables rule of the test's prefix is left.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import secrets
import tarfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from reconciler.runtime import base
from reconciler.runtime import errors as rterrors
from reconciler.runtime.native import cgroups, mounts, network
from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.config import NativeConfig
from tests.docker import conformance as docker_conformance
from tests.helpers import images

BUSYBOX_CONFIG: dict[str, Any] = {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]}


class LayerDirImages:
    """Images as extracted layer directories (used until the native image store is present)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.images: dict[str, tuple[str, dict[str, Any], list[Path]]] = {}

    def add(self, ref: str, layers: list[bytes], config: Mapping[str, Any]) -> None:
        dirs = []
        for i, raw in enumerate(layers):
            d = self.root / f"{len(self.images)}-{i}"
            d.mkdir(parents=True)
            import io

            with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
                tar.extractall(d, filter="fully_trusted")  # our own test layer
            dirs.append(d)
        image_id = "sha256:" + secrets.token_hex(32)
        self.images[ref] = (image_id, {"config": dict(config), "rootfs": {"type": "layers"}}, dirs)

    def resolve(self, ref: str) -> tuple[str, Mapping[str, Any], list[Path]]:
        if ref not in self.images:
            raise rterrors.NotFound(f"no such image: {ref}")
        return self.images[ref]


def _have_image_store() -> bool:
    return importlib.util.find_spec("reconciler.runtime.native.images") is not None


def new_prefix() -> str:
    return "rt" + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(3))


def native_config(tmp: Path, prefix: str | None = None) -> NativeConfig:
    return NativeConfig(root=tmp / "root", run_dir=tmp / "run", name_prefix=prefix or new_prefix())


def leftovers(config: NativeConfig) -> list[str]:
    """Everything of this engine instance that is still on the host."""
    found: list[str] = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split(" ")[4]
            if mp.startswith((str(config.root), str(config.run_dir))):
                found.append(f"mount {mp}")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"conmon" in cmdline.split(b"\0")[0] and str(config.run_dir).encode() in cmdline:
            found.append(f"conmon pid {pid}")
    for h in cgroups.hierarchies():
        if (h / config.name_prefix).exists():
            found.append(f"cgroup {h / config.name_prefix}")
    cdir = config.root / "containers"
    if cdir.exists():
        found += [f"container dir {d}" for d in cdir.iterdir()]
    return found


def net_leftovers(prefix: str) -> list[str]:
    """Host network objects of this engine instance: links, its nft table, iptables rules."""
    import subprocess

    from reconciler.runtime.native import netlink

    with netlink.host() as h:
        found = [f"link {x.name}" for x in h.links() if x.name.startswith(prefix)]
    if subprocess.run(["nft", "list", "table", "ip", prefix], capture_output=True, check=False).returncode == 0:
        found.append(f"nft table ip {prefix}")
    rules = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, check=True).stdout
    return found + [f"iptables {r}" for r in rules.splitlines() if prefix in r]


def remove_networks(rt: NativeRuntime) -> None:
    """Remove the engine's networks and let recovery delete whatever they left (after cleanup)."""
    if not isinstance(rt.network, network.NetworkManager):
        return
    for n in rt.list_networks():
        try:
            rt.remove_network(n.name)
        except Exception:
            continue
    rt.network.recover([])


def cleanup(rt: NativeRuntime) -> None:
    """Remove every container and whatever a failed test left behind."""
    for rec in rt.containers.records():
        try:
            rt.containers.remove(rec.id, force=True)
        except Exception:
            continue
    config = rt.config
    for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
        mp = line.split(" ")[4]
        if mp.startswith((str(config.root), str(config.run_dir))):
            mounts.unmount(Path(mp))
    cgroups.remove(config.name_prefix)


def private_pool() -> str:
    """A /22 of 10.200-254 for one test's networks (other tests pick theirs the same way)."""
    return f"10.{200 + secrets.randbelow(55)}.{4 * secrets.randbelow(64)}.0/22"


def make_native(tmp: Path, busybox_ref: str | None = None, *, networking: bool = False,
                **kw: Any) -> tuple[NativeRuntime, str]:
    """A native engine on `tmp`; with `networking`, bridge networks from a private pool."""
    config = native_config(tmp, kw.pop("prefix", None))
    if networking:
        config = dataclasses.replace(config, subnet_pool=private_pool())
        kw["network"] = network.NetworkManager(config)
    if busybox_ref is not None and _have_image_store():
        rt = NativeRuntime(config, **kw)
        rt.pull_image(busybox_ref)
        return rt, busybox_ref
    source = LayerDirImages(tmp / "images")
    source.add("test/busybox:latest", [images.busybox_layer()], BUSYBOX_CONFIG)
    return NativeRuntime(config, images=source, **kw), "test/busybox:latest"


class Loops:
    """What the agent runs for a native engine: restart policies and healthchecks."""

    def __init__(self, rt: NativeRuntime) -> None:
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=rt.restart_manager.watch, args=(self.stop,), kwargs={"poll": 0.05}, daemon=True),
            threading.Thread(target=rt.health_checker.watch, args=(self.stop,), kwargs={"poll": 0.05}, daemon=True),
        ]
        for t in self.threads:
            t.start()

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


@pytest.fixture(params=["native", pytest.param("docker", marks=pytest.mark.docker)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[base.Runtime, str]]:
    """(runtime, busybox image reference) for each backend."""
    if request.param == "docker":
        yield from docker_conformance.docker_backend(request)
        return
    if os.geteuid() != 0:
        pytest.skip("the native runtime needs root")
    rt, ref = make_native(tmp_path, request.getfixturevalue("busybox_image") if _have_image_store() else None,
                          networking=True)
    loops = Loops(rt)
    try:
        yield rt, ref
    finally:
        loops.close()
        cleanup(rt)
        remove_networks(rt)
        left = leftovers(rt.config) + net_leftovers(rt.config.name_prefix)
        rt.close()
        assert left == [], f"left on the host: {left}"


@pytest.fixture
def runtime(backend: tuple[base.Runtime, str]) -> base.Runtime:
    return backend[0]


@pytest.fixture
def image(backend: tuple[base.Runtime, str]) -> str:
    return backend[1]
