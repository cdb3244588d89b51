"""examples/manifests/build builds, pushes and runs (its registry moved to the test's one)."""

from __future__ import annotations

import shutil
import time
import urllib.request
from pathlib import Path

import pytest

from reconciler import spec
from reconciler._sqlite import Database
from reconciler.execution import passes
from tests.helpers import images
from tests.helpers.host import Host
from tests.helpers.ports import publish_port
from tests.helpers.registry import RegistryServer

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parent.parent.parent / "examples" / "manifests" / "build"


def get(url: str) -> str:
    for _ in range(50):
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return str(resp.read().decode())
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


def test_the_build_example_builds_pushes_and_serves(tmp_path: Path, host: Host, registry: RegistryServer) -> None:
    layout = tmp_path / "busybox"
    images.write_layout(layout, [images.busybox_layer()])
    images.push_layout(layout, f"{registry.host}/demo/busybox:latest")
    port = publish_port()
    example = tmp_path / "example"
    shutil.copytree(EXAMPLE, example)
    for f in (example / "build.yaml", example / "web" / "Dockerfile"):
        f.write_text(f.read_text().replace("127.0.0.1:5000", registry.host).replace(":8082:", f":{port}:"))

    rt = host.runtime()
    try:
        desired = spec.load(example)
        result = passes.run_pass(desired, rt, Database(host.config.root / "state.db"), passes.PassOptions())
        assert result.converged, result.plan.render()
        kinds = [str(a.kind) for a in result.plan.actions]
        assert kinds[:2] == ["build-image", "push-image"]
        assert get(f"http://127.0.0.1:{port}/index.html").strip() == "hi from a built image"
        pushed = rt.resolve_digest(f"{registry.host}/demo/web:dev")
        assert pushed == rt.inspect_image(f"{registry.host}/demo/web:dev").digest
        again = passes.run_pass(spec.load(example), rt, Database(host.config.root / "state.db"), passes.PassOptions())
        assert again.plan.is_empty(), again.plan.render()
    finally:
        rt.close()
