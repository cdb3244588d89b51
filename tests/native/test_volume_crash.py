"""Crash safety of named volumes: a removal and a copy-up killed midway (kill -9).

Each kill is made exact by the engine's own step for it made to kill its process (a removal:
the deletion of the data moved aside, or the commit after the move), or by a `cp` that copies
part of the image's files and then kills its process group, as a kill of `reconcile apply`'s
group during a copy-up does. What is left must be put right by the next engine start (or the
next removal, or the next pass), never kept as a volume's data, nor left on disk unseen.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from reconciler.runtime import base, opening
from tests.conftest import RegistryServer
from tests.execution.helpers import write
from tests.helpers import images
from tests.helpers.host import Host

pytestmark = pytest.mark.root

# `reconcile ARGS...` in a process that kills itself (SIGKILL) at the volume removal's deletion
# of the data it moved aside (after the commit), or right after the move (before the commit)
KILLED_AT = """
import os, shutil, signal, sys
from reconciler.cli.main import main

step, args = sys.argv[1], sys.argv[2:]

def killed(*a, **kw):
    os.kill(os.getpid(), signal.SIGKILL)

if step == "rmtree":
    shutil.rmtree = killed
else:
    rename = os.rename

    def moved_then_killed(src, dst, *a, **kw):
        rename(src, dst, *a, **kw)
        if "/.removed-" in str(dst):
            killed()

    os.rename = moved_then_killed
sys.exit(main(args))
"""


def engine_flags(host: Host) -> list[str]:
    """The flags naming the test's engine, for the commands that take no --runtime."""
    return [a for a in host.cli_args() if a not in ("--runtime", "native")]


def volume_with_data(host: Host, name: str) -> Path:
    rt = host.runtime()
    try:
        rt.ensure_volume(base.VolumeConfig(name=name))
        data = rt.containers.volumes.data_dir(name)
    finally:
        rt.close()
    (data / "ledger").write_text("42")
    return data


def killed_removal(host: Host, step: str, name: str) -> None:
    proc = subprocess.run([sys.executable, "-c", KILLED_AT, step, "volume", "rm", name, *engine_flags(host)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr


def volume_ls(host: Host) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", "volume", "ls", *engine_flags(host)],
                          capture_output=True, text=True, timeout=60, check=True)


def engine_start(host: Host) -> None:
    place = opening.Place(root=host.config.root, run_dir=host.config.run_dir, name_prefix=host.config.name_prefix)
    opening.open_runtime("native", place).close()


def aside(host: Host) -> list[str]:
    return sorted(e for e in os.listdir(host.config.root / "volumes") if e.startswith(".removed-"))


@pytest.mark.parametrize("next_step", ["engine start", "volume rm"])
def test_a_removal_killed_before_it_deleted_the_data_leaves_it_listed_then_swept(
        host: Host, next_step: str) -> None:
    """Killed after the commit, before the data moved aside was deleted: the volume is gone, its
    data is not. Before, nothing ever deleted it, nor said it was there."""
    volume_with_data(host, "data")
    volume_with_data(host, "other")
    killed_removal(host, "rmtree", "data")
    assert [e.rsplit("-", 1)[0] for e in aside(host)] == [".removed-data"]
    listed = volume_ls(host)
    assert "data" not in listed.stdout.split()
    assert "note: the data of removed volume(s) data is still on disk" in listed.stderr
    if next_step == "engine start":
        engine_start(host)
    else:
        subprocess.run([sys.executable, "-m", "reconciler", "volume", "rm", "other", *engine_flags(host)],
                       capture_output=True, timeout=60, check=True)
    assert aside(host) == []
    assert "note:" not in volume_ls(host).stderr


def test_a_removal_killed_before_its_commit_gets_the_volume_back_whole(host: Host) -> None:
    """Killed between the move aside and the commit: the record is there, its directory is not
    (the volume reads as lost). The next engine start puts the directory back."""
    volume_with_data(host, "data")
    killed_removal(host, "rename", "data")
    assert "data directory gone" in volume_ls(host).stdout
    engine_start(host)
    assert aside(host) == []
    listed = volume_ls(host)
    assert listed.stdout.split()[-2:] == ["local", "data"]
    assert (host.config.root / "volumes" / "data" / "_data" / "ledger").read_text() == "42"


FILES = 25

# a `cp` that copies the first 14 entries of a copy-up's source (a volume's: the destination
# under <root>/volumes), then kills its process group: `reconcile apply` and itself, as a kill
# of the group during the copy does; any other copy is the real one
CP = """#!/bin/sh
dest="$4"
case "$dest" in
  */volumes/*) ;;
  *) exec {cp} "$@" ;;
esac
n=0
for f in "${{3%/.}}"/*; do
  n=$((n + 1))
  [ "$n" -gt 14 ] && break
  {cp} -a "$f" "$dest"
done
kill -KILL 0
"""


def seeded_image(registry: RegistryServer, tmp_path: Path) -> str:
    """busybox with /seed: 25 files, the directory owned by 1000:1000, mode 0750."""
    seed = [images.Entry("seed", type=tarfile.DIRTYPE, mode=0o750, uid=1000, gid=1000)]
    seed += [images.Entry(f"seed/f{i:02d}", f"file {i}\n".encode() * 1000) for i in range(FILES)]
    layout = tmp_path / "layout"
    images.write_layout(layout, [images.busybox_layer(seed)])
    ref = f"{registry.host}/test/seeded:latest"
    images.push_layout(layout, ref)
    return ref


# `reconcile ARGS...` killed (SIGKILL) as it moves the 6th entry of a whole copy-up into the
# volume (renames out of `_populated`)
KILLED_MOVING = """
import os, signal, sys
from reconciler.cli.main import main

rename, moved = os.rename, []

def rename_then_killed(src, dst, *a, **kw):
    if "/_populated/" in str(src):
        moved.append(src)
        if len(moved) == 6:
            os.kill(os.getpid(), signal.SIGKILL)
    rename(src, dst, *a, **kw)

os.rename = rename_then_killed
sys.exit(main(sys.argv[1:]))
"""


def seeded_app(tmp_path: Path, image: str) -> Path:
    m = tmp_path / "m"
    write(m, "app.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: app}}
        spec:
          image: {image}
          command: [sleep, "3600"]
          volumes: ["seed:/seed"]
          stopSignal: SIGKILL
        ---
        apiVersion: reconciler/v1
        kind: Volume
        metadata: {{name: seed}}
        """)
    return m


def filled_whole(host: Host, m: Path) -> None:
    """The next pass converges, the volume holding the image's 25 files, with the owner and mode
    of its directory, and nothing of the copy left beside `_data`."""
    argv = [sys.executable, "-m", "reconciler", "apply", str(m), *host.cli_args()]
    again = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    volume = host.config.root / "volumes" / "seed"
    data = volume / "_data"
    assert sorted(p.name for p in data.iterdir()) == [f"f{i:02d}" for i in range(FILES)]
    assert all((data / f"f{i:02d}").read_bytes() == f"file {i}\n".encode() * 1000 for i in range(FILES))
    st = data.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o750)
    assert sorted(p.name for p in volume.iterdir()) == ["_data"]


def test_a_copy_up_killed_midway_is_made_again_whole(host: Host, registry: RegistryServer, tmp_path: Path) -> None:
    """`reconcile apply` of a container whose new volume is filled from its image's /seed,
    killed (its process group) with 14 of the 25 files copied. Before, the copy went into the
    live `_data`, and the next pass took the 14 files for the volume's content (not empty: no
    copy-up) and said converged."""
    m = seeded_app(tmp_path, seeded_image(registry, tmp_path))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real_cp = shutil.which("cp")
    assert real_cp is not None
    (bin_dir / "cp").write_text(CP.format(cp=real_cp))
    (bin_dir / "cp").chmod(0o755)
    argv = [sys.executable, "-m", "reconciler", "apply", str(m), *host.cli_args()]
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    killed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False,
                            start_new_session=True)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    volume = host.config.root / "volumes" / "seed"
    copied = [p for p in volume.rglob("f*") if p.is_file()]
    assert len(copied) == 14                                     # the copy was cut short
    filled_whole(host, m)


def test_a_copy_up_killed_while_it_moves_into_the_volume_is_finished(
        host: Host, registry: RegistryServer, tmp_path: Path) -> None:
    """Killed after the copy was whole, while its entries moved into `_data` (5 of 25 there):
    the next pass moves the rest, not a copy again over a volume it takes for filled."""
    m = seeded_app(tmp_path, seeded_image(registry, tmp_path))
    killed = subprocess.run([sys.executable, "-c", KILLED_MOVING, "apply", str(m), *host.cli_args()],
                            capture_output=True, text=True, timeout=300, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert len(list((host.config.root / "volumes" / "seed" / "_data").iterdir())) == 5
    filled_whole(host, m)
