"""Volume driver options (`spec.driver`, `spec.driverOpts`): the native engine's volumes are
directories of its own, so it refuses them naming the fields, and makes nothing; but a local
bind volume, which it binds to its directory. (The docker runtime: tests/docker/test_containers.py;
Swarm: tests/swarm.)"""

from __future__ import annotations

import io
import tarfile
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


def test_the_native_engine_binds_a_local_bind_volume_to_its_directory(tmp_path: Path) -> None:
    """`type: none, o: bind, device: /DIR` (compose's local bind volume): the volume is the
    directory, filled from the image when empty, written through, and left when removed."""
    shared = tmp_path / "shared"
    shared.mkdir()
    opts = {"type": "none", "o": "bind", "device": str(shared)}
    rt, image = make_native(tmp_path / "engine")
    try:
        with pytest.raises(errors.InvalidArgument, match=r"the device .*/missing to bind is not a directory"):
            rt.ensure_volume(base.VolumeConfig("gone", driver_opts={**opts, "device": str(tmp_path / "missing")}))
        assert rt.list_volumes() == []
        rt.ensure_volume(base.VolumeConfig("shared", driver_opts=opts))
        mount = (base.Mount(type="volume", source="shared", target="/bin"),)      # the image's /bin: copied up
        cid = rt.create_container(base.ContainerConfig(
            name="writer", image=image, command=("/bin/sh", "-c", "echo kept > /bin/written"), networks=("none",),
            mounts=mount))
        rt.start_container(cid)
        assert rt.wait_container(cid, timeout=30) == 0
        assert (shared / "written").read_text() == "kept\n"
        assert (shared / "sh").exists()
        rt.remove_container(cid)
        empty = io.BytesIO()
        tarfile.open(fileobj=empty, mode="w").close()
        empty.seek(0)
        with pytest.raises(errors.Conflict, match=r"volume shared binds .*/shared: an import does not write there"):
            rt.import_volume("shared", empty, helper_image=image)      # it would replace the directory
        rt.remove_volume("shared")
        assert (shared / "written").read_text() == "kept\n"        # the directory is the user's: left
    finally:
        cleanup(rt)


def test_a_volume_whose_data_was_deleted_is_refused_not_made_again_empty(tmp_path: Path) -> None:
    """Its data is made before its record commits, so a recorded volume without it lost it: a
    container mounting it gets a clear error saying what to do, not a new empty directory that
    hides the loss; once removed, it is made again (empty, or from a backup)."""
    import shutil

    rt, image = make_native(tmp_path)
    try:
        rt.ensure_volume(base.VolumeConfig("precious"))
        data = Path(next(v.mountpoint for v in rt.list_volumes() if v.name == "precious"))
        (data / "ledger").write_text("1")
        shutil.rmtree(data.parent)                               # deleted outside the engine
        [seen] = rt.list_volumes()                               # observed so, in the refusal's words
        assert seen.problem == "data directory gone (deleted outside the engine)"
        assert "reconcile volume rm precious" in str(seen.hint)
        mount = (base.Mount(type="volume", source="precious", target="/data"),)
        with pytest.raises(errors.Conflict, match=r"volume precious: data directory gone \(deleted outside the engine\): /") as err:
            rt.create_container(base.ContainerConfig(name="reader", image=image, command=("true",),
                                                     networks=("none",), mounts=mount))
        assert "reconcile volume rm precious" in str(err.value.hint)
        assert not data.exists()
        assert [c.name for c in rt.list_containers()] == []
        rt.remove_volume("precious")
        rt.ensure_volume(base.VolumeConfig("precious"))
        assert data.is_dir()
        assert list(data.iterdir()) == []
        assert [(v.problem, v.hint) for v in rt.list_volumes()] == [(None, None)]
    finally:
        cleanup(rt)
