"""Fixtures for the build tests: a native engine per test (own root, run dir, name prefix),
a context directory, and a `build()` that runs the builder and collects its progress lines."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reconciler.runtime.native.build import builder
from reconciler.runtime.native.config import NativeConfig
from reconciler.runtime.native.containers import cgroups, containers, mounts
from reconciler.runtime.native.images import images
from tests.runtime.conftest import leftovers, new_prefix


@dataclass
class Engine:
    config: NativeConfig
    store: images.ImageStore
    manager: containers.ContainerManager
    builder: builder.Builder
    lines: list[str] = field(default_factory=list)

    def build(self, ctx: Path, *, dockerfile: str = "Dockerfile", **kw: Any) -> builder.BuildResult:
        self.lines.clear()
        opts = builder.BuildOptions(context=str(ctx), dockerfile=dockerfile, **kw)
        return self.builder.build(opts, self.lines.append)

    def run(self, image: str, *cmd: str, **kw: Any) -> tuple[int, str]:
        """Run `image` (its own command unless `cmd`) to completion; exit code and output."""
        from reconciler.runtime import base
        from reconciler.runtime.native.containers import logs

        info = self.store.get(image)
        cfg = base.ContainerConfig(name="t" + secrets.token_hex(4), image=image, networks=("none",),
                                   args=tuple(cmd) if cmd else None, **kw)
        rec = self.manager.create(cfg, image_id=info.id,
                                  image_config=self.store.image_config(info.id).get("config") or {},
                                  lowerdirs=self.store.layer_dirs(info.id))
        try:
            self.manager.start(rec.id)
            code = self.manager.wait(rec.id, timeout=60)
            out = "\n".join(x.data.decode() for x in logs.read_logs(self.manager.paths(rec.id).log))
        finally:
            self.manager.remove(rec.id, force=True)
        return code, out

    def config_of(self, image: str) -> dict[str, Any]:
        return self.store.image_config(self.store.get(image).id)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    config = NativeConfig(root=tmp_path / "root", run_dir=tmp_path / "run",
                          name_prefix=new_prefix())
    manager = containers.ContainerManager(config)
    store = images.ImageStore(config, container_image_ids=lambda: {r.image_id for r in manager.records()})
    eng = Engine(config, store, manager, builder.Builder(store, manager))
    try:
        yield eng
    finally:
        _cleanup(config, manager)
    assert leftovers(config) == []


def _cleanup(config: NativeConfig, manager: containers.ContainerManager) -> None:
    """Remove every container and mount a failed test may have left."""
    for rec in manager.records():
        try:
            manager.remove(rec.id, force=True)
        except Exception:  # best effort: the leftovers check reports what remains
            continue
    for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
        mp = line.split(" ")[4]
        if mp.startswith((str(config.root), str(config.run_dir))):
            mounts.unmount(Path(mp))
    cgroups.remove(config.name_prefix, None, config.locks_dir)


@pytest.fixture
def context_dir(tmp_path: Path) -> Callable[..., Path]:
    """context_dir({"Dockerfile": "...", "a.txt": "..."}) -> a fresh context directory."""
    count = [0]

    def make(files: dict[str, str | bytes]) -> Path:
        count[0] += 1
        d = tmp_path / f"ctx{count[0]}"
        d.mkdir()
        for name, data in files.items():
            p = d / name
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, bytes):
                p.write_bytes(data)
            else:
                p.write_text(data)
        return d

    return make
