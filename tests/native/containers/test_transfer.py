"""Moving a container (config, rootfs changes, image, volume data) and a volume between two
engines with `reconcile container export/import` and `reconcile volume export/import`."""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.host import Host, native_host

pytestmark = [pytest.mark.root, pytest.mark.registry]

REPO = Path(__file__).resolve().parents[3]
Reconcile = Callable[..., subprocess.CompletedProcess[bytes]]


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[tuple[Reconcile, Reconcile]]:
    """`reconcile` bound to two engines of the test's own (two hosts, as far as state goes), each
    torn down by the shared Host helper (containers, networks the import made, volumes)."""

    def bound(h: Host) -> Reconcile:
        env = {**os.environ, "RECONCILER_ROOT": str(h.config.root), "RECONCILER_RUN_DIR": str(h.config.run_dir),
               "RECONCILER_PREFIX": h.config.name_prefix}

        def reconcile(*args: str, stdin: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
            proc = subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=REPO, env=env, input=stdin,
                                  capture_output=True, check=False, timeout=180)
            if check and proc.returncode != 0:
                raise AssertionError(f"reconcile {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()}")
            return proc
        reconcile.env = env         # type: ignore[attr-defined] # (for a test's own Popen)
        return reconcile

    with native_host(tmp_path / "a") as a, native_host(tmp_path / "b") as b:
        yield bound(a), bound(b)


def test_a_stopped_container_moves_with_its_changes_and_volume(
        engines: tuple[Reconcile, Reconcile], busybox_image: str, tmp_path: Path) -> None:
    a, b = engines
    a("run", "-d", "--name", "app", "-v", "appdata:/data", "-e", "MODE=moved", busybox_image, "sh", "-c",
      "echo rootfs-change > /etc/motd; rm /bin/vi; echo volume-data > /data/v; "
      "chown 1000:1000 /data/v; sleep 3600")
    for _ in range(300):
        if a("exec", "app", "cat", "/data/v", check=False).returncode == 0:
            break
    refused = a("container", "export", "app", "-o", str(tmp_path / "app.tar"), check=False)
    assert refused.returncode == 1
    assert b"--leave-running" in refused.stderr                # a running container needs a choice
    assert not (tmp_path / "app.tar").exists()
    a("stop", "app")
    a("container", "export", "app", "-o", str(tmp_path / "app.tar"))

    out = b("container", "import", "-i", str(tmp_path / "app.tar"), "--start").stdout.decode().strip()
    assert len(out) == 64
    probe = b("exec", "app", "sh", "-c", "cat /etc/motd /data/v; echo $MODE; ls /bin/vi 2>&1; stat -c %u /data/v")
    lines = probe.stdout.decode().splitlines()
    assert lines[:3] == ["rootfs-change", "volume-data", "moved"]
    assert "vi" in lines[3]
    assert "No such file" in lines[3] or "can't" in lines[3]
    assert lines[4] == "1000"                                   # owners kept
    # it shows the image it was created with, as docker ps does, and runs the one it moved with
    # (its changes committed on top; ps said its id, sha256:...)
    assert [r["image"] for r in json.loads(b("ps", "-a", "-o", "json").stdout)] == [busybox_image]
    doc = json.loads(b("inspect", "app").stdout)[0]
    assert doc["Config"]["Image"] == busybox_image
    assert doc["Image"] in {i["id"] for i in json.loads(b("images", "-o", "json").stdout)}
    assert b("ps", "-a").stdout.decode().splitlines()[1].split()[1] == busybox_image
    again = b("container", "import", "-i", str(tmp_path / "app.tar"), check=False)
    assert again.returncode == 1
    assert b"exists here" in again.stderr                      # never overwrites a container or volume


def test_a_volume_another_running_container_uses_is_refused(
        engines: tuple[Reconcile, Reconcile], busybox_image: str, tmp_path: Path) -> None:
    """`container export` refuses while another container that mounts one of the volumes it
    copies runs (the data could change under the archive), as `volume export` refuses, with
    what to do: stop that one, or leave the volumes out; --leave-running pauses the exported
    container only, so it does not lift this."""
    a, _ = engines
    a("run", "-d", "--name", "writer", "-v", "shared:/data", busybox_image, "sleep", "3600")
    a("run", "--name", "app", "-v", "shared:/data", "-v", "own:/own", busybox_image, "true")
    for flags in ((), ("--leave-running",)):
        refused = a("container", "export", *flags, "app", "-o", str(tmp_path / "app.tar"), check=False)
        assert refused.returncode == 1, refused.stderr
        said = refused.stderr.decode()
        assert "volume shared is used by running container writer" in said
        assert "stop writer first" in said
        assert "--without-volumes" in said
        assert not (tmp_path / "app.tar").exists()
    volume = a("volume", "export", "shared", check=False)
    assert volume.returncode == 1
    assert b"volume shared is used by running container writer" in volume.stderr
    a("container", "export", "--without-volumes", "app", "-o", str(tmp_path / "app.tar"))
    a("volume", "export", "own", "-o", str(tmp_path / "own.tar"))        # no running container mounts it
    a("stop", "-t", "0", "writer")
    a("container", "export", "app", "-o", str(tmp_path / "app.tar"))


def test_a_volume_moves_by_tar_stream(engines: tuple[Reconcile, Reconcile], busybox_image: str) -> None:
    a, b = engines
    a("run", "--rm", "-v", "shared:/v", busybox_image, "sh", "-c",
      "mkdir -p /v/sub && echo one > /v/sub/f && ln -s sub/f /v/link && chmod 0600 /v/sub/f")
    stream = a("volume", "export", "shared").stdout
    b("volume", "import", "shared", stdin=stream)
    out = b("run", "--rm", "-v", "shared:/v", busybox_image, "sh", "-c",
            "cat /v/link; stat -c %a /v/sub/f").stdout.decode().split()
    assert out == ["one", "600"]
    assert b"shared" in b("volume", "ls").stdout
    refused = b("volume", "import", "shared", stdin=stream, check=False)
    assert refused.returncode == 1
    assert b"not empty" in refused.stderr


def test_a_volume_keeps_its_root_owner_mode_xattrs_and_holes(
        engines: tuple[Reconcile, Reconcile], busybox_image: str, tmp_path: Path) -> None:
    """The volume's own directory (what the container sees at the mount point) keeps its owner,
    mode and xattrs, through `container export/import` as through `volume export/import`: a
    non-root container that owns its data directory reads it on the new host. Files keep their
    xattrs (PAX SCHILY.xattr.*), and a sparse file's holes are holes again."""
    a, b = engines
    a("run", "--rm", "-v", "data:/data", busybox_image, "sh", "-c",
      "chown 1000:1000 /data && chmod 750 /data && echo mine > /data/f && chown 1000:1000 /data/f "
      "&& chmod 600 /data/f && dd if=/dev/zero of=/data/sparse bs=1M seek=16 count=1 2>/dev/null")
    a_data = tmp_path / "a" / "root" / "volumes" / "data" / "_data"
    os.setxattr(a_data / "f", "user.origin", b"\xffhost-a")
    os.setxattr(a_data, "user.root", b"kept")
    a("run", "--name", "app", "-u", "1000:1000", "-v", "data:/data", busybox_image, "cat", "/data/f")
    a("container", "export", "app", "-o", str(tmp_path / "app.tar"))
    b("container", "import", "-i", str(tmp_path / "app.tar"))
    stream = a("volume", "export", "data").stdout
    b("volume", "import", "copy", stdin=stream)
    for vol in ("data", "copy"):
        out = b("run", "--rm", "-u", "1000:1000", "-v", f"{vol}:/data", busybox_image, "sh", "-c",
                "stat -c '%u:%g %a' /data; cat /data/f").stdout.decode().split("\n")
        assert out[:2] == ["1000:1000 750", "mine"], (vol, out)
        data = tmp_path / "b" / "root" / "volumes" / vol / "_data"
        assert os.getxattr(data / "f", "user.origin") == b"\xffhost-a"
        assert os.getxattr(data, "user.root") == b"kept"
        st = os.stat(data / "sparse")
        assert st.st_size == 17 << 20
        assert st.st_blocks * 512 < 4 << 20, st.st_blocks        # not 17 MiB written
        # a PAX mtime is a decimal the kernel takes in ns: equal to the microsecond, not to the float
        assert abs(os.stat(data).st_mtime_ns - os.stat(a_data).st_mtime_ns) < 1_000


def header_of(path: Path) -> dict[str, Any]:
    with tarfile.open(path) as tar:
        return json.loads(tar.extractfile("reconciler-container.json").read())  # type: ignore[union-attr,no-any-return]


def test_an_archive_without_its_image_finds_it_here_or_pulls_it_by_digest(
        engines: tuple[Reconcile, Reconcile], busybox_image: str, tmp_path: Path) -> None:
    """`container export --no-with-image` names the container's own image (its id, the registry
    digest it was pulled by, its name), not an image committed on the exporting host that no
    other host has: the import pulls it by that digest where it is missing, finds it by id where
    it is (pulled by tag), runs the name's image with a note when neither the id nor the digest
    can be had, and otherwise says which image is missing and what to do, leaving nothing. A
    container that changed its root filesystem is refused (the archive would leave that out)
    unless --discard-changes."""
    a, b = engines
    a("run", "--name", "app", "-v", "data:/data", busybox_image, "sh", "-c", "echo v > /data/v")
    before = a("images", "-q").stdout.split()
    a("container", "export", "--no-with-image", "app", "-o", str(tmp_path / "app.tar"))
    assert a("images", "-q").stdout.split() == before                  # no image committed and left here
    header = header_of(tmp_path / "app.tar")
    with tarfile.open(tmp_path / "app.tar") as tar:
        assert "image.tar" not in tar.getnames()
    repo = busybox_image.rsplit(":", 1)[0]
    assert [d.split("@")[0] for d in header["image_digests"]] == [repo]

    pulled = b("container", "import", "-i", str(tmp_path / "app.tar"))          # nothing here: pulled
    assert f"pulling {repo}@sha256:".encode() in pulled.stderr
    image = json.loads(b("inspect", "app").stdout)[0]["Image"]
    assert image == header["image_id"]
    b("pull", busybox_image)                                                     # by its tag too
    again = b("container", "import", "--name", "app2", "--volume-prefix", "c-", "-i", str(tmp_path / "app.tar"))
    assert b"pulling" not in again.stderr                                        # found by id

    def elsewhere(h: dict[str, Any], name: str) -> None:
        h["image_id"] = "sha256:" + "1" * 64
        h["image_digests"] = [f"{repo.rsplit('/', 1)[0]}/nothere@sha256:" + "2" * 64]
        h["image"] = name
    edit_archive(tmp_path / "app.tar", tmp_path / "named.tar", header=lambda h: elsewhere(h, busybox_image))
    named = b("container", "import", "--name", "app3", "--volume-prefix", "d-", "-i", str(tmp_path / "named.tar"))
    assert f"note: image {busybox_image} here is {image}".encode() in named.stderr
    edit_archive(tmp_path / "app.tar", tmp_path / "gone.tar", header=lambda h: elsewhere(h, f"{repo}-gone:1"))
    listed = [b(*cmd, "-q").stdout.split() for cmd in (("ps", "-a"), ("images",), ("volume", "ls"))]
    gone = b("container", "import", "--name", "app4", "--volume-prefix", "e-", "-i", str(tmp_path / "gone.tar"),
             check=False)
    said = gone.stderr.decode()
    assert gone.returncode == 1, said
    assert f"this host has no image {repo}-gone:1 (sha256:{'1' * 64})" in said
    assert f"reconcile pull {repo}-gone:1" in said
    assert "nothing was imported" in said
    assert [b(*cmd, "-q").stdout.split() for cmd in (("ps", "-a"), ("images",), ("volume", "ls"))] == listed

    a("run", "--name", "changed", busybox_image, "sh", "-c", "echo x > /etc/motd; rm /etc/passwd; mkdir /made")
    refused = a("container", "export", "--no-with-image", "changed", "-o", str(tmp_path / "changed.tar"), check=False)
    assert refused.returncode == 1
    assert b"changed its root filesystem (/etc/motd, /etc/passwd (deleted), /made)" in refused.stderr
    assert b"--discard-changes" in refused.stderr
    a("container", "export", "--no-with-image", "--discard-changes", "changed", "-o", str(tmp_path / "changed.tar"))
    b("container", "import", "-i", str(tmp_path / "changed.tar"))
    assert json.loads(b("inspect", "changed").stdout)[0]["Image"] == image      # the image as it is


def test_a_sparse_file_keeps_its_holes_through_the_archives(
        engines: tuple[Reconcile, Reconcile], busybox_image: str, tmp_path: Path) -> None:
    """A 1 GiB sparse file with a byte in every 64 KiB of its first 16 MiB: the archive carries it
    as zeros (tarfile writes no sparse members), which `--compress zstd` takes to almost nothing
    and an archive written to `-o FILE` keeps as holes; each import writes its whole 4 KiB blocks
    of zeros as holes again (not only its whole MiBs of zeros), so it takes about what it took."""
    a, b = engines
    a("run", "--name", "app", "-v", "data:/data", busybox_image, "true")
    written = [k * 65536 + 1000 for k in range(256)] + [(1 << 30) - 1]
    with open(tmp_path / "a" / "root" / "volumes" / "data" / "_data" / "big", "wb") as f:
        f.truncate(1 << 30)
        for at in written:
            f.seek(at)
            f.write(b"x")
    a("container", "export", "app", "-o", str(tmp_path / "app.tar"))
    a("container", "export", "--compress", "zstd", "app", "-o", str(tmp_path / "app.tar.zst"))
    plain, packed = os.stat(tmp_path / "app.tar"), os.stat(tmp_path / "app.tar.zst")
    assert plain.st_size > 1 << 30
    assert plain.st_blocks * 512 < 16 << 20, plain.st_blocks         # the archive file keeps the holes
    assert packed.st_size < 8 << 20, packed.st_size                  # zstd: the zeros compressed away
    b("container", "import", "-i", str(tmp_path / "app.tar"))
    b("container", "import", "--name", "app2", "--volume-prefix", "c-", "-i", str(tmp_path / "app.tar.zst"))
    b("volume", "import", "piped", stdin=a("volume", "export", "--compress", "zstd", "data").stdout)
    for vol in ("data", "c-data", "piped"):
        path = tmp_path / "b" / "root" / "volumes" / vol / "_data" / "big"
        st = os.stat(path)
        assert st.st_size == 1 << 30
        assert st.st_blocks * 512 < 4 << 20, (vol, st.st_blocks)        # ~1 MiB, as on host a: not 16 MiB
        with open(path, "rb") as f:
            for at in written[::37]:
                f.seek(at - 1)
                assert f.read(3) == (b"\0x\0" if at < (1 << 30) - 1 else b"\0x"), (vol, at)


def edit_archive(src: Path, dst: Path, header: Callable[[dict[str, Any]], None] | None = None,
                 members: Callable[[str, bytes], bytes | None] | None = None) -> None:
    """A copy of the container archive `src` at `dst`, its header changed in place by `header`
    and each other member's bytes replaced by what `members` returns for it (None: left out)."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as tout:
        for m in tin:
            data = tin.extractfile(m).read()       # type: ignore[union-attr]
            if m.name == "reconciler-container.json" and header is not None:
                doc = json.loads(data)
                header(doc)
                data = json.dumps(doc).encode()
            elif members is not None:
                changed = members(m.name, data)
                if changed is None:
                    continue
                data = changed
            m.size = len(data)
            tout.addfile(m, io.BytesIO(data))


def test_an_archive_asking_for_the_host_is_refused_unless_allowed(
        engines: tuple[Reconcile, Reconcile], busybox_image: str, tmp_path: Path) -> None:
    """An archive from elsewhere grants no host access unasked: privileged, added capabilities,
    the host network, devices, binds of host paths, this host's volumes and a rank above the
    host's processes (a negative oomScoreAdj) are refused, listed
    by what the archive asks, before anything is made; --allow-host-access creates it."""
    a, b = engines
    a("run", "--name", "app", "-v", "data:/data", busybox_image, "true")
    a("container", "export", "app", "-o", str(tmp_path / "app.tar"))
    b("run", "--rm", "-v", "theirs:/x", busybox_image, "true")       # a volume of the importing host

    def hostile(h: dict[str, Any]) -> None:
        c = h["config"]
        c.update(privileged=True, cap_add=["ALL", "CHOWN"], networks=["host"], devices=["/dev/kmsg:/dev/kmsg:rwm"])
        c["mounts"] += [{"type": "bind", "source": "/", "target": "/host"},
                        {"type": "volume", "source": "theirs", "target": "/theirs"}]

    edit_archive(tmp_path / "app.tar", tmp_path / "hostile.tar", hostile)
    images = b("images", "-q").stdout
    refused = b("container", "import", "--start", "-i", str(tmp_path / "hostile.tar"), check=False)
    assert refused.returncode == 2, refused.stderr
    err = refused.stderr.decode()
    for asked in ("privileged: a privileged container is refused", "capAdd[0]: every capability refused",
                  "networks[0]: the host network namespace is refused", "devices[0]: the host device /dev/kmsg",
                  "volumes[1]: a bind of the host path / at /host", "volumes[2]: volume theirs at /theirs is this host's",
                  "--allow-host-access"):
        assert asked in err, err
    assert "CHOWN" not in err                                   # Docker's default set asks for nothing
    assert b("ps", "-a", "-q").stdout == b""
    assert b("images", "-q").stdout == images
    assert b("volume", "ls", "-q").stdout.split() == [b"theirs"]
    # (this host's root may not lower an oom_score_adj itself: no import of this one with the flag)
    edit_archive(tmp_path / "app.tar", tmp_path / "oom.tar",
                 lambda h: h["config"].update(oom_score_adj=-1000, log_driver="gelf"))
    refused = b("container", "import", "-i", str(tmp_path / "oom.tar"), check=False)
    assert refused.returncode == 2, refused.stderr
    assert b"oomScoreAdj: oomScoreAdj -1000 (the OOM killer would take the host's processes" in refused.stderr
    assert b"logging.driver: the log driver gelf is refused" in refused.stderr
    assert b("ps", "-a", "-q").stdout == b""
    b("container", "import", "--allow-host-access", "-i", str(tmp_path / "hostile.tar"))
    assert b"app" in b("ps", "-a").stdout


def test_a_failed_or_interrupted_import_leaves_nothing(
        engines: tuple[Reconcile, Reconcile], busybox_image: str, tmp_path: Path) -> None:
    """What an import made (the image it loaded, the volumes, the container) goes again when it
    fails: a damaged volume, a start that fails, a SIGTERM once the image is in; a network the
    container needs and this host lacks is found before anything is loaded."""
    a, b = engines
    a("run", "--name", "app", "-v", "data:/data", busybox_image, "sh", "-c",
      "dd if=/dev/urandom of=/data/f bs=1k count=200 2>/dev/null")
    a("container", "export", "app", "-o", str(tmp_path / "app.tar"))

    def left() -> list[list[bytes]]:
        return [b(*cmd, "-q").stdout.split() for cmd in (("ps", "-a"), ("images",), ("volume", "ls"))]

    nothing: list[list[bytes]] = [[], [], []]
    edit_archive(tmp_path / "app.tar", tmp_path / "cut.tar",
                 members=lambda n, d: d[:len(d) // 2] if n.startswith("volumes/") else d)
    failed = b("container", "import", "-i", str(tmp_path / "cut.tar"), check=False)
    assert failed.returncode != 0
    assert left() == nothing, failed.stderr

    edit_archive(tmp_path / "app.tar", tmp_path / "nonet.tar", lambda h: h["config"].update(networks=["elsewhere"]))
    failed = b("container", "import", "-i", str(tmp_path / "nonet.tar"), check=False)
    assert failed.returncode == 1
    assert b"network elsewhere, which this host does not have" in failed.stderr
    assert b"loading the image" not in failed.stderr            # found first
    assert left() == nothing

    edit_archive(tmp_path / "app.tar", tmp_path / "nostart.tar",
                 lambda h: h["config"].update(command=["/nonexistent"], args=[]))
    failed = b("container", "import", "--start", "-i", str(tmp_path / "nostart.tar"), check=False)
    assert failed.returncode != 0
    assert b"/nonexistent" in failed.stderr
    assert left() == nothing
    a("container", "export", "--without-volumes", "app", "-o", str(tmp_path / "novolumes.tar"))
    edit_archive(tmp_path / "novolumes.tar", tmp_path / "novolumes-nostart.tar",
                 lambda h: h["config"].update(command=["/nonexistent"], args=[]))
    failed = b("container", "import", "--start", "-i", str(tmp_path / "novolumes-nostart.tar"), check=False)
    assert failed.returncode != 0
    assert left() == nothing                                      # nor the empty volume it mounted

    raw = (tmp_path / "app.tar").read_bytes()
    with tarfile.open(tmp_path / "app.tar") as tar:
        volume_at = next(m.offset_data for m in tar if m.name.startswith("volumes/"))
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", "container", "import"], cwd=REPO,
                            env=b.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,  # type: ignore[attr-defined]
                            stderr=subprocess.PIPE)
    try:
        assert proc.stdin is not None
        proc.stdin.write(raw[:volume_at + (64 << 10)])            # the header, the image, part of the volume
        proc.stdin.flush()
        said = [proc.stderr.readline() for _ in range(2)]         # type: ignore[union-attr]
        assert said == [b"loading the image\n", b"restoring volume data\n"]
        assert b("images", "-q").stdout.split()                   # loaded, the volume on its way: stopped
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err
    assert left() == nothing


def test_a_refused_volume_import_leaves_nothing_and_speaks_of_volumes(
        engines: tuple[Reconcile, Reconcile], busybox_image: str, tmp_path: Path) -> None:
    """A volume archive the extractor refuses (a path out of the root, a hardlink out of it, a
    header declaring a huge size, an empty file) makes no volume, and says so in a volume's
    words: no layer, image, blob or pull."""
    _, b = engines
    traversal = io.BytesIO()
    with tarfile.open(fileobj=traversal, mode="w") as tar:
        info = tarfile.TarInfo("../../etc/evil")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    hardlink = io.BytesIO()
    with tarfile.open(fileobj=hardlink, mode="w") as tar:
        info = tarfile.TarInfo("h")
        info.type, info.linkname = tarfile.LNKTYPE, "/etc/passwd"
        tar.addfile(info)
    huge = tarfile.TarInfo("PaxHeaders/x")
    huge.type, huge.size = tarfile.XHDTYPE, 512 << 20
    cases = {"traversal": (traversal.getvalue(), "outside the volume's root"),
             "hardlink": (hardlink.getvalue(), "does not exist in the archive"),
             "huge": (huge.tobuf(format=tarfile.USTAR_FORMAT) + bytes(10240), "declares 536870912 bytes"),
             "empty": (b"", "the archive is not a valid tar stream")}
    for name, (data, says) in cases.items():
        refused = b("volume", "import", name, stdin=data, check=False)
        err = refused.stderr.decode()
        assert refused.returncode == 1, err
        assert f"volume {name}: the archive is refused" in err, err
        assert says in err, err
        assert "nothing was imported" in err, err
        for word in ("layer", "image", "blob", "pull"):
            assert word not in err, err
    assert b("volume", "ls", "-q").stdout.split() == []
    b("run", "--rm", "-v", "kept:/data", busybox_image, "true")    # one that was there (empty) stays
    assert b("volume", "import", "kept", stdin=b"", check=False).returncode == 1
    assert b("volume", "ls", "-q").stdout.split() == [b"kept"]


def test_anonymous_volumes_get_new_names_and_named_ones_a_prefix(
        engines: tuple[Reconcile, Reconcile], busybox_image: str, tmp_path: Path) -> None:
    """An anonymous volume (an image's VOLUME) comes across anonymous, under a new name, so a
    second copy of the container (`--name`) gets one of its own; a named volume the host has
    already is refused, naming --volume-prefix, which imports the archive's under new names."""
    a, b = engines
    a("run", "--name", "base", busybox_image, "true")
    a("commit", "-c", "VOLUME /anon", "base", "local/withvolume:1")
    a("run", "--name", "app", "-v", "named:/named", "local/withvolume:1", "sh", "-c",
      "echo anon > /anon/f; echo named > /named/f")
    a("container", "export", "app", "-o", str(tmp_path / "app.tar"))

    def mounts(h: Reconcile, name: str) -> dict[str, str]:
        [doc] = json.loads(h("inspect", name).stdout)
        return {m["Destination"]: m["Name"] for m in doc["Mounts"]}

    def labels(h: Reconcile, vol: str) -> dict[str, str]:
        [doc] = json.loads(h("volume", "inspect", vol).stdout)
        return dict(doc["Labels"])

    def data(h: str, vol: str) -> str:
        return (tmp_path / h / "root" / "volumes" / vol / "_data" / "f").read_text()

    first = mounts(a, "app")
    b("container", "import", "-i", str(tmp_path / "app.tar"))
    one = mounts(b, "app")
    assert one["/named"] == "named"
    assert one["/anon"] != first["/anon"]
    assert "com.docker.volume.anonymous" in labels(b, one["/anon"])
    assert (data("b", one["/anon"]), data("b", "named")) == ("anon\n", "named\n")
    taken = b("container", "import", "--name", "app2", "-i", str(tmp_path / "app.tar"), check=False)
    assert taken.returncode == 1
    assert b"volume named exists here" in taken.stderr
    assert b"--volume-prefix" in taken.stderr
    b("container", "import", "--name", "app2", "--volume-prefix", "app2-", "-i", str(tmp_path / "app.tar"))
    two = mounts(b, "app2")
    assert two["/named"] == "app2-named"
    assert two["/anon"] not in (one["/anon"], first["/anon"])
    assert "com.docker.volume.anonymous" in labels(b, two["/anon"])
    assert (data("b", two["/anon"]), data("b", "app2-named")) == ("anon\n", "named\n")
    assert sorted(b("volume", "ls", "-q").stdout.split()) == sorted(
        v.encode() for v in ("named", "app2-named", one["/anon"], two["/anon"]))


def docker_ok() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "version"], capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not docker_ok(), reason="needs a running dockerd")
def test_a_container_moves_from_the_native_engine_to_docker(
        engines: tuple[Reconcile, Reconcile], busybox_image: str, tmp_path: Path) -> None:
    a, _ = engines
    tag = secrets.token_hex(4)
    name, vol = f"rtmove{tag}", f"rtmovevol{tag}"
    a("run", "-d", "--name", "app", "-v", f"{vol}:/data", busybox_image, "sh", "-c",
      "echo native-change > /etc/motd; echo native-volume > /data/v; chown 1000:1000 /data; chmod 750 /data; "
      "sleep 3600")
    for _ in range(300):
        if a("exec", "app", "cat", "/data/v", check=False).returncode == 0:
            break
    a("container", "export", "--leave-running", "app", "-o", str(tmp_path / "app.tar"))
    image = ""
    try:
        a("container", "import", "--runtime", "docker", "--name", name, "-i", str(tmp_path / "app.tar"))
        mountpoint = subprocess.run(["docker", "volume", "inspect", "-f", "{{.Mountpoint}}", vol],
                                    capture_output=True, text=True, check=True).stdout.strip()
        st = os.stat(mountpoint)        # the import's doing (dockerd's start may copy the image's /data over it)
        assert (st.st_uid, st.st_gid, oct(st.st_mode & 0o7777)) == (1000, 1000, "0o750")
        subprocess.run(["docker", "start", name], capture_output=True, check=True, timeout=60)
        out = subprocess.run(["docker", "exec", name, "cat", "/etc/motd", "/data/v"],
                             capture_output=True, text=True, check=False, timeout=60)
        assert out.stdout.split() == ["native-change", "native-volume"], out.stderr
        out = subprocess.run(["docker", "exec", name, "stat", "-c", "%u:%g %a", "/data"],
                             capture_output=True, text=True, check=False, timeout=60)
        assert out.stdout.strip() == "1000:1000 750", out.stderr    # the volume's own directory too
        image = subprocess.run(["docker", "inspect", "--format", "{{.Image}}", name],
                               capture_output=True, text=True, check=True).stdout.strip()
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
        subprocess.run(["docker", "volume", "rm", "-f", vol], capture_output=True, check=False)
        if image:
            subprocess.run(["docker", "rmi", "-f", image], capture_output=True, check=False)


def test_a_container_moves_into_the_native_engines_engine_api(
        engines: tuple[Reconcile, Reconcile], busybox_image: str, tmp_path: Path) -> None:
    """`container import --runtime docker` pointed at the native engine's own Engine API: the
    volume's data goes through a helper container that never runs (entrypoint /nonexistent),
    whose create dockerd answers (the process is made at the start): the native API did too
    late, after its create had failed on the missing executable."""
    a, b = engines
    a("run", "-d", "--name", "app", "-v", "data:/data", busybox_image, "sh", "-c",
      "[ -e /data/v ] || { echo api-change > /etc/motd; echo api-volume > /data/v; chown 1000:1000 /data; "
      "chmod 750 /data; }; exec sleep 3600")
    for _ in range(300):
        if a("exec", "app", "stat", "-c", "%a", "/data", check=False).stdout == b"750\n":
            break
    a("stop", "-t", "0", "app")
    a("container", "export", "app", "-o", str(tmp_path / "app.tar"))
    sock = tmp_path / "api.sock"
    with (tmp_path / "api.log").open("wb") as log:
        api = subprocess.Popen([sys.executable, "-m", "reconciler", "engine-api", "--socket", str(sock)], cwd=REPO,
                               env=b.env, stdout=subprocess.DEVNULL, stderr=log)  # type: ignore[attr-defined]
    try:
        for _ in range(600):
            if sock.exists():
                break
            assert api.poll() is None, (tmp_path / "api.log").read_text()
            time.sleep(0.05)
        moved = subprocess.run([sys.executable, "-m", "reconciler", "container", "import", "--runtime", "docker",
                                "--name", "moved", "-i", str(tmp_path / "app.tar")], cwd=REPO, capture_output=True,
                               env={**b.env, "DOCKER_HOST": f"unix://{sock}"}, timeout=180)  # type: ignore[attr-defined]
        assert moved.returncode == 0, moved.stderr.decode()
    finally:
        api.terminate()
        api.wait(timeout=30)
    assert b("ps", "-a", "-q").stdout.split() == [moved.stdout.strip()[:12]]       # the helper went
    b("start", "moved")
    out = b("exec", "moved", "sh", "-c", "cat /etc/motd /data/v; stat -c '%u:%g %a' /data").stdout.decode()
    assert out.splitlines() == ["api-change", "api-volume", "1000:1000 750"]


def test_a_volume_changed_in_the_archive_is_refused(
        engines: tuple[Reconcile, Reconcile], busybox_image: str, tmp_path: Path) -> None:
    """Each volume's tar is checked against the digest the header records: a flipped byte of
    its data is refused and nothing stays; an archive without digests (an older version's)
    imports with a note."""
    a, b = engines
    a("run", "--rm", "-v", "data:/data", busybox_image, "sh", "-c",
      "dd if=/dev/urandom of=/data/f bs=1k count=200 2>/dev/null")
    a("run", "--name", "app", "-v", "data:/data", busybox_image, "true")
    a("container", "export", "app", "-o", str(tmp_path / "app.tar"))

    def flip(name: str, data: bytes) -> bytes:
        if not name.startswith("volumes/"):
            return data
        middle = len(data) // 2
        return data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1:]

    edit_archive(tmp_path / "app.tar", tmp_path / "flipped.tar", members=flip)
    refused = b("container", "import", "-i", str(tmp_path / "flipped.tar"), check=False)
    assert refused.returncode == 1
    assert b"volume data's data in the archive is damaged" in refused.stderr
    assert [b(*cmd, "-q").stdout.split() for cmd in (("ps", "-a"), ("images",), ("volume", "ls"))] == [[], [], []]
    edit_archive(tmp_path / "app.tar", tmp_path / "old.tar", lambda h: h.pop("digests"))
    old = b("container", "import", "-i", str(tmp_path / "old.tar"))
    assert b"note: the archive records no digest of volume data" in old.stderr
    data = ("root", "volumes", "data", "_data", "f")
    assert tmp_path.joinpath("b", *data).read_bytes() == tmp_path.joinpath("a", *data).read_bytes()


def test_bad_container_archives_are_clear_errors_and_compressed_ones_import(
        engines: tuple[Reconcile, Reconcile], busybox_image: str, tmp_path: Path) -> None:
    """Not an archive, not a container archive, a truncated one: an error saying so (exit 2 for
    what is no container archive, 1 for a damaged one), never a traceback; a gzip or zstd
    compressed export imports as `load` takes compressed archives."""
    import gzip

    import zstandard

    a, b = engines
    a("run", "--name", "app", busybox_image, "true")
    a("container", "export", "app", "-o", str(tmp_path / "app.tar"))
    raw = (tmp_path / "app.tar").read_bytes()
    (tmp_path / "garbage").write_bytes(os.urandom(5000))
    (tmp_path / "cut-header").write_bytes(raw[:700])                  # inside the header's JSON
    (tmp_path / "cut-image").write_bytes(raw[:len(raw) // 2])
    (tmp_path / "plain.tar").write_bytes(b"")
    with tarfile.open(tmp_path / "plain.tar", "w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    (tmp_path / "cut.tar.gz").write_bytes(gzip.compress(raw)[:len(raw) // 4])
    for path, code, says in (("/dev/null", 2, "not a container archive: empty file"),
                             (tmp_path / "garbage", 2, "not a container archive"),
                             (tmp_path / "plain.tar", 2, "not a container archive (no reconciler-container.json"),
                             (tmp_path / "cut-header", 1, "the container archive is damaged"),
                             (tmp_path / "cut-image", 1, "damaged"),
                             (tmp_path / "cut.tar.gz", 1, "damaged")):
        out = b("container", "import", "-i", str(path), check=False)
        assert (out.returncode, b"Traceback" in out.stderr) == (code, False), (path, out.stderr)
        assert says.encode() in out.stderr, (path, out.stderr)
        assert [b(*cmd, "-q").stdout.split() for cmd in (("ps", "-a"), ("images",))] == [[], []], path
    (tmp_path / "app.tar.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "app.tar.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    b("container", "import", "-i", str(tmp_path / "app.tar.gz"))
    b("container", "import", "--name", "again", stdin=(tmp_path / "app.tar.zst").read_bytes())
    assert b"again" in b("ps", "-a").stdout


@pytest.mark.skipif(not docker_ok(), reason="needs a running dockerd")
def test_a_failed_import_into_docker_leaves_nothing(
        engines: tuple[Reconcile, Reconcile], busybox_image: str, tmp_path: Path) -> None:
    """The image an import loaded into dockerd goes again with the rest when the import fails."""
    a, _ = engines
    tag = secrets.token_hex(4)
    name, vol = f"rtmove{tag}", f"rtmovevol{tag}"
    a("run", "--name", "app", "-v", f"{vol}:/data", busybox_image, "sh", "-c",
      "dd if=/dev/urandom of=/data/f bs=1k count=200 2>/dev/null")
    a("container", "export", "app", "-o", str(tmp_path / "app.tar"))
    with tarfile.open(tmp_path / "app.tar") as tar:
        image = json.loads(tar.extractfile("reconciler-container.json").read())["image_id"]  # type: ignore[union-attr]
    edit_archive(tmp_path / "app.tar", tmp_path / "cut.tar",
                 members=lambda n, d: d[:len(d) // 2] if n.startswith("volumes/") else d)
    try:
        failed = a("container", "import", "--runtime", "docker", "--name", name, "-i", str(tmp_path / "cut.tar"),
                   check=False)
        assert failed.returncode != 0
        assert b"loading the image" in failed.stderr
        for kind, what in (("image", image), ("volume", vol), ("container", name)):
            gone = subprocess.run(["docker", kind, "inspect", what], capture_output=True, check=False)
            assert gone.returncode != 0, f"{kind} {what} left in dockerd: {failed.stderr.decode()}"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
        subprocess.run(["docker", "volume", "rm", "-f", vol], capture_output=True, check=False)
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True, check=False)
