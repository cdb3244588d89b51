"""`reconcile save` / `reconcile load`: images moved without a registry, to and from Docker.

Real parts: the session registry, the native store, the host's dockerd (docker load / save /
run), and `reconcile run` on a native engine of the test's own.
"""

from __future__ import annotations

import gzip
import io
import json
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.runtime import errors
from reconciler.runtime.native.build import push as build_push
from reconciler.runtime.native.images import archive, images
from tests.native.images.conftest import native_config

pytestmark = [pytest.mark.registry]


def docker_ok() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "version"], capture_output=True, check=False).returncode == 0


needs_docker = pytest.mark.skipif(not docker_ok(), reason="needs a running dockerd")


@pytest.fixture
def docker_names() -> Iterator[list[str]]:
    """Image names a test gives dockerd; removed afterwards (only those)."""
    names: list[str] = []
    yield names
    for n in names:
        subprocess.run(["docker", "rmi", "-f", n], capture_output=True, check=False)


def stored(tmp_path: Path, name: str) -> images.ImageStore:
    return images.ImageStore(native_config(tmp_path / name))


def pulled(tmp_path: Path, busybox_image: str, tag: str) -> images.ImageStore:
    store = stored(tmp_path, "a")
    store.pull(busybox_image)
    build_push.tag(store, busybox_image, tag)
    return store


def save_bytes(store: images.ImageStore, refs: list[str], fmt: str = "docker-archive") -> bytes:
    out = io.BytesIO()
    archive.save(store, refs, out, fmt=fmt)
    return out.getvalue()


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def blobs(store: images.ImageStore) -> set[str]:
    return set(store.content.digests())


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_round_trip_keeps_every_digest_and_tag(tmp_path: Path, busybox_image: str, fmt: str) -> None:
    tag = f"example.test/moved/bb{secrets.token_hex(3)}:v1"
    a = pulled(tmp_path, busybox_image, tag)
    data = save_bytes(a, [tag], fmt)
    names = members(data)
    assert ("manifest.json" in names) == (fmt == "docker-archive")
    assert "index.json" in names
    assert "oci-layout" in names
    b = stored(tmp_path, "b")
    loaded = archive.load(b, io.BytesIO(gzip.compress(data)))        # a compressed archive too
    src, dst = a.get(tag), b.get(tag)
    assert [x.id for x in loaded] == [src.id] == [dst.id]
    assert dst.digest == src.digest                                  # the same manifest digest
    assert dst.layers == src.layers
    assert loaded[0].tags == (tag,)
    assert (Path(b.layer_dirs(dst.id)[-1]) / "bin" / "busybox").is_file()


def test_layers_are_shared_once_and_sent_as_stored(tmp_path: Path, busybox_image: str) -> None:
    a = pulled(tmp_path, busybox_image, "example.test/x/one:1")
    build_push.tag(a, busybox_image, "example.test/x/two:2")
    names = members(save_bytes(a, ["example.test/x/one:1", "example.test/x/two:2"]))
    rec = a.layer_records("example.test/x/one:1")[0]
    assert names[f"blobs/sha256/{rec.digest[7:]}"] == a.content.blob_path(rec.digest).read_bytes()
    manifest = json.loads(names["manifest.json"])
    assert [m["RepoTags"] for m in manifest] == [["example.test/x/one:1"], ["example.test/x/two:2"]]
    assert len([n for n in names if n.startswith("blobs/")]) == 3   # layer + config + manifest, once


def hostile(data: bytes, edit: str) -> bytes:
    """`data` (a saved archive) damaged the way `edit` says."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as src, tarfile.open(fileobj=out, mode="w") as tar:
        for m in src:
            body = src.extractfile(m).read() if m.isfile() else b""  # type: ignore[union-attr]
            if edit == "bad-digest" and m.name.startswith("blobs/") and len(body) > 1000:
                body = body[:-1] + bytes([body[-1] ^ 1])
            if edit == "escape" and m.name == "oci-layout":
                m.name = "../../escape"
            m.size = len(body)
            tar.addfile(m, io.BytesIO(body))
    raw = out.getvalue()
    return raw[: len(raw) // 2] if edit == "truncated" else raw


@pytest.mark.parametrize("edit", ["bad-digest", "escape", "truncated"])
def test_a_hostile_archive_is_refused_and_leaves_nothing(tmp_path: Path, busybox_image: str, edit: str) -> None:
    a = pulled(tmp_path, busybox_image, "example.test/h/img:1")
    data = hostile(save_bytes(a, ["example.test/h/img:1"]), edit)
    b = stored(tmp_path, "b")
    before = blobs(b)
    with pytest.raises(errors.ImageError) as exc:
        archive.load(b, io.BytesIO(data))
    assert exc.value.hint                                            # says what to do
    assert blobs(b) == before
    assert b.list() == []
    assert not (tmp_path / "escape").exists()
    assert list(b.content.ingest_dir.iterdir()) == []


@needs_docker
def test_docker_loads_and_runs_what_reconcile_saved(tmp_path: Path, busybox_image: str,
                                                    docker_names: list[str]) -> None:
    tag = f"reconciler-test/saved{secrets.token_hex(4)}:1"
    a = pulled(tmp_path, busybox_image, tag)
    docker_names.append(tag)
    path = tmp_path / "img.tar"
    path.write_bytes(save_bytes(a, [tag]))
    load = subprocess.run(["docker", "load", "-i", str(path)], capture_output=True, text=True, check=False)
    assert load.returncode == 0, load.stderr
    run = subprocess.run(["docker", "run", "--rm", "--network", "none", tag, "echo", "from reconciler"],
                         capture_output=True, text=True, check=False, timeout=120)
    assert run.stdout.strip() == "from reconciler", run.stderr
    inspect = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", tag],
                             capture_output=True, text=True, check=True)
    assert inspect.stdout.strip() == a.get(tag).id                   # the same image id on both


@needs_docker
@pytest.mark.root
def test_reconcile_loads_and_runs_what_docker_saved(tmp_path: Path, busybox_image: str, docker_names: list[str],
                                                   host: object, capfd: pytest.CaptureFixture[str]) -> None:
    tag = f"reconciler-test/dsaved{secrets.token_hex(4)}:1"
    docker_names += [busybox_image, tag]
    subprocess.run(["docker", "pull", busybox_image], capture_output=True, check=True, timeout=120)
    subprocess.run(["docker", "tag", busybox_image, tag], check=True)
    path = tmp_path / "docker.tar"
    subprocess.run(["docker", "save", "-o", str(path), tag], check=True, timeout=120)
    engine = [a for a in host.cli_args() if a not in ("--runtime", "native")]   # type: ignore[attr-defined]
    capfd.readouterr()
    assert main(["load", "-i", str(path), *engine]) == 0
    out = capfd.readouterr().out
    assert f"Loaded image: {tag}\n" in out
    assert "docker.io/" not in out
    assert main(["run", "--rm", "--network", "none", *engine, tag, "echo", "moved by archive"]) == 0
    assert "moved by archive" in capfd.readouterr().out


@pytest.mark.parametrize("name", ["xfr.example/oci/named:2", "2"])
def test_an_oci_layout_named_by_ref_name_alone(tmp_path: Path, busybox_image: str, name: str) -> None:
    """An OCI layout whose index names the image only in org.opencontainers.image.ref.name (as
    skopeo and buildah write it, without containerd's annotation): a full reference names the
    loaded image; a tag alone (the image-layout spec allows it) names no repository: untagged."""
    a = pulled(tmp_path, busybox_image, "xfr.example/oci/src:1")
    files = members(save_bytes(a, ["xfr.example/oci/src:1"], "oci-archive"))
    index = json.loads(files["index.json"])
    index["manifests"][0]["annotations"] = {"org.opencontainers.image.ref.name": name}
    files["index.json"] = json.dumps(index).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    b = stored(tmp_path, "b")
    said: list[str] = []
    loaded = archive.load(b, io.BytesIO(out.getvalue()), progress=said.append)
    if "/" in name:
        assert loaded[0].tags == (name,)
        assert b.image_id(name) == loaded[0].id
    else:
        assert loaded[0].tags == ()
        assert any("only by the tag '2'" in m for m in said), said


@pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman")
@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_reconcile_loads_what_podman_saved(tmp_path: Path, busybox_image: str, fmt: str) -> None:
    # podman with a storage of the test's own (vfs, no daemon): never the host's /var/lib/containers
    runroot = Path(tempfile.mkdtemp(prefix="rpr", dir="/tmp"))           # podman: at most 50 characters
    podman = ["podman", "--root", str(tmp_path / "proot"), "--runroot", str(runroot),
              "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"]
    tag = f"localhost/x/xfr-frompodman{secrets.token_hex(3)}:1"
    try:
        pulled = subprocess.run([*podman, "pull", "--tls-verify=false", busybox_image], capture_output=True,
                                text=True, check=False, timeout=120)
        assert pulled.returncode == 0, pulled.stderr
        subprocess.run([*podman, "tag", busybox_image, tag], capture_output=True, check=True)
        path = tmp_path / "podman.tar"
        subprocess.run([*podman, "save", "--format", fmt, "-o", str(path), tag], capture_output=True, check=True,
                       timeout=120)
        b = stored(tmp_path, "b")
        with open(path, "rb") as f:
            loaded = archive.load(b, f)
        assert (Path(b.layer_dirs(loaded[0].id)[-1]) / "bin" / "busybox").is_file()
        # docker-archive: RepoTags; oci-archive: podman's full reference in the OCI standard
        # annotation org.opencontainers.image.ref.name (podman load names the image by it)
        assert loaded[0].tags == (tag,)
        assert b.image_id(tag) == loaded[0].id
        if fmt == "oci-archive":
            index = json.loads(members(path.read_bytes())["index.json"])
            assert index["manifests"][0]["annotations"] == {"org.opencontainers.image.ref.name": tag}
    finally:
        subprocess.run([*podman, "rmi", "-a", "-f"], capture_output=True, check=False, timeout=120)
        shutil.rmtree(runroot, ignore_errors=True)


def test_save_to_a_reader_that_goes_away_fails(tmp_path: Path, busybox_image: str) -> None:
    """`reconcile save IMG | head -c 100`: the archive was not written whole, so the command
    fails (141, 128 + SIGPIPE, as docker save and podman save), never 0: `save | ssh host load`
    whose far end died must not look like a move done."""
    store = pulled(tmp_path, busybox_image, "local/whole:1")
    cfg = store.config
    proc = subprocess.run(
        f"{sys.executable} -m reconciler save --root {cfg.root} --run-dir {cfg.run_dir} "
        f"--name-prefix {cfg.name_prefix} local/whole:1 | head -c 100 >/dev/null; echo ${{PIPESTATUS[0]}}",
        shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.strip() == "141", proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_oci_layout_tarred_from_inside_its_directory(tmp_path: Path, busybox_image: str) -> None:
    """`tar -C LAYOUT -cf image.tar .` (how an OCI layout is usually packed by hand) names every
    member `./...` and starts with the directory `.` itself, and a dot file stays a dot file:
    the archive loads, with the tag its index names."""
    a = pulled(tmp_path, busybox_image, "xfr.example/oci/dots:1")
    layout = tmp_path / "layout"
    with tarfile.open(fileobj=io.BytesIO(save_bytes(a, ["xfr.example/oci/dots:1"], "oci-archive"))) as tar:
        tar.extractall(layout, filter="data")
    (layout / ".keep").write_text("not an image file")
    packed = tmp_path / "image.tar"
    subprocess.run(["tar", "-C", str(layout), "-cf", str(packed), "."], check=True)
    with tarfile.open(packed) as tar:
        names = tar.getnames()
    assert {".", "./index.json", "./.keep"} <= set(names)
    b = stored(tmp_path, "b")
    with packed.open("rb") as f:
        loaded = archive.load(b, f)
    assert loaded[0].tags == ("xfr.example/oci/dots:1",)
    assert b.image_id("xfr.example/oci/dots:1") == a.image_id("xfr.example/oci/dots:1")
