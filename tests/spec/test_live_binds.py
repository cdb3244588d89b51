"""`spec.load(copy, live=DIR)`: the manifests are a revision copy, their relative binds are DIR's.

Two copies of one source (differing in another file) give the same bind sources and spec hashes;
what is checked, hashed and refused by policy is the live file the container will mount, not the
copy's (the copy may not even hold it).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler import spec
from reconciler.spec import policy

WEB = """\
apiVersion: reconciler/v1
kind: Container
metadata: {name: web}
spec:
  image: 127.0.0.1:5000/shop/web:1
  envFiles: [app.env]
  volumes: ['./data:/data', './conf/app.conf:/etc/app.conf:ro', '/srv/abs:/abs']
"""


@pytest.fixture
def live(tmp_path: Path) -> Path:
    d = tmp_path / "live"
    (d / "data").mkdir(parents=True)
    (d / "conf").mkdir()
    (d / "conf" / "app.conf").write_text("v1\n")
    (d / "app.env").write_text("MODE=x\n")
    (d / "web.yaml").write_text(WEB)
    return d


def copy(live: Path, name: str, **extra: str) -> Path:
    """A revision copy of `live` as a directory source writes it: files only, no empty directories."""
    dest = live.parent / "sources" / name
    dest.mkdir(parents=True)
    for f in ("web.yaml", "app.env"):
        shutil.copy(live / f, dest / f)
    (dest / "conf").mkdir()
    shutil.copy(live / "conf" / "app.conf", dest / "conf" / "app.conf")
    for rel, text in extra.items():
        (dest / rel).write_text(text)
    return dest


def test_copies_of_one_source_bind_the_live_paths_with_one_hash(live: Path) -> None:
    one = spec.load(copy(live, "r1"), live=live).containers["web"]
    two = spec.load(copy(live, "r2", notes="other\n"), live=live).containers["web"]
    assert [m.source for m in one.volumes] == [str(live / "data"), str(live / "conf" / "app.conf"), "/srv/abs"]
    assert one.env_files == (str(live / "app.env"),)
    assert two.spec_hash == one.spec_hash
    # the content hashed is the live file's, the one the container mounts
    (live / "conf" / "app.conf").write_text("v2\n")
    assert spec.load(copy(live, "r3"), live=live).containers["web"].spec_hash != one.spec_hash
    # without `live`, a copy binds itself (apply DIR: the directory given is live)
    r4 = copy(live, "r4")
    (r4 / "data").mkdir()
    alone = spec.load(r4).containers["web"]
    assert alone.volumes[1].source == str(live.parent / "sources" / "r4" / "conf" / "app.conf")


def test_a_bind_source_missing_from_the_live_directory_names_the_live_path(live: Path) -> None:
    snap = copy(live, "r1")
    shutil.rmtree(live / "data")
    with pytest.raises(spec.SpecError) as e:
        spec.load(snap, live=live)
    assert [p.message for p in e.value.problems] == [
        f"bind source './data' does not exist (resolved to {live / 'data'})"]


def test_policy_checks_binds_where_they_are_mounted(live: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    snap = copy(live, "r1")
    (snap / "web.yaml").write_text(WEB.replace(", '/srv/abs:/abs'", "").replace("./data:/data", "./data:/data:ro"))
    spec.load(snap, live=live, policy=policy.RESTRICTED)             # beneath the live directory
    # the live data directory leads out of the source: refused, though the copy has none of it
    shutil.rmtree(live / "data")
    (live / "data").symlink_to(outside)
    with pytest.raises(spec.SpecError) as e:
        spec.load(snap, live=live, policy=policy.RESTRICTED)
    assert len(e.value.problems) == 1
    message = e.value.problems[0].message
    assert message.startswith(f"bind source {live / 'data'} (which leads to {outside}) is outside the source "
                              f"root {live} and refused by policy 'restricted'"), message


IMAGE = """\
apiVersion: reconciler/v1
kind: Image
metadata: {name: app}
spec:
  build: {context: ./app}
"""


def test_copies_of_one_source_build_from_the_copy_with_one_image_hash(tmp_path: Path) -> None:
    live = tmp_path / "live"
    (live / "app").mkdir(parents=True)
    (live / "app" / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    (live / "image.yaml").write_text(IMAGE)

    def revision(name: str, **extra: str) -> Path:
        dest = tmp_path / "sources" / name
        shutil.copytree(live, dest)
        for rel, text in extra.items():
            (dest / rel).write_text(text)
        return dest

    r1, r2 = revision("r1"), revision("r2", notes="other\n")
    one, two = spec.load(r1, live=live).images["app"], spec.load(r2, live=live).images["app"]
    assert one.build is not None
    assert one.build.context == str(r1 / "app")          # what this revision says is what is built
    assert two.spec_hash == one.spec_hash                # a new copy is not a new build
    (live / "app" / "Dockerfile").write_text("FROM scratch\nCOPY . /srv/\n")
    assert spec.load(revision("r3"), live=live).images["app"].spec_hash != one.spec_hash
