"""Volume driver options (`spec.driver`, `spec.driverOpts`): the native engine's volumes are
directories of its own, so it refuses them naming the fields, and makes nothing. (The docker
runtime: tests/docker/test_containers.py; Swarm: tests/swarm.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.runtime import base, errors
from tests.runtime.conftest import cleanup, make_native


@pytest.mark.parametrize("config", [
    base.VolumeConfig("scratch", driver_opts={"type": "tmpfs", "device": "tmpfs"}),
    base.VolumeConfig("scratch", driver="nfs"),
])
def test_the_native_engine_refuses_driver_options_naming_the_fields(tmp_path: Path, config: base.VolumeConfig) -> None:
    rt, _ = make_native(tmp_path)
    try:
        with pytest.raises(errors.InvalidArgument, match=r"spec.driver and spec.driverOpts need the docker or swarm"):
            rt.ensure_volume(config)
        assert rt.list_volumes() == []
        assert rt.ensure_volume(base.VolumeConfig("plain")).name == "plain"
    finally:
        cleanup(rt)
