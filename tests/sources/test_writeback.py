"""Write-back into real git repositories: the marked line's tag changes and nothing else in the
file does; the commit (message template, author) reaches the branch where a second clone sees
it; a push that loses a race to another push is made again on the new head."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from reconciler.sources import errors, writeback
from reconciler.sources.git import GitSource
from tests.sources.gitrepos import Upstream, git

MANIFEST = (
    "# the shop's web tier\r\n"
    "apiVersion: reconciler/v1\r\n"
    "kind: Container\r\n"
    "metadata: {name: web}   # keep this comment\r\n"
    "spec:\r\n"
    "  image:\r\n"
    "    track: 'reg.local:5000/shop/web:1.4.1'    # {\"$imagepolicy\": \"web\"}\r\n"
    "    policy: {semver: \">=1.4 <2\"}\r\n"
    "  env: {OTHER: reg.local:5000/shop/web:1.4.1}\r\n"
    "---\r\n"
    "apiVersion: reconciler/v1\r\n"
    "kind: Container\r\n"
    "metadata: {name: api}\r\n"
    "spec:\r\n"
    "  image:\r\n"
    "    track: reg.local:5000/shop/web:1.4.1 # {\"$imagepolicy\": \"api\"}\r\n"
    "    policy: {semver: \"~1.4\"}\r\n"
)
EDIT = writeback.Edit(file="web.yaml", container="web", repository="reg.local:5000/shop/web", tag="1.9.0",
                      old="1.4.1")


def test_only_the_tag_on_the_marked_line_of_that_container_changes() -> None:
    new, done = writeback.edit_text(MANIFEST, [EDIT])
    assert done == [EDIT]
    assert new == MANIFEST.replace("'reg.local:5000/shop/web:1.4.1'", "'reg.local:5000/shop/web:1.9.0'")
    assert writeback.edit_text(new, [EDIT]) == (new, [])           # already so: nothing to do


def test_a_line_without_the_marker_is_never_edited() -> None:
    unmarked = MANIFEST.replace(' # {"$imagepolicy": "api"}', "")
    edit = writeback.Edit(file="web.yaml", container="api", repository="reg.local:5000/shop/web", tag="1.4.9")
    assert writeback.edit_text(unmarked, [edit]) == (unmarked, [])


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    up = Upstream(tmp_path / "forge", "shop")
    up.commit({"hosts/web1/web.yaml": MANIFEST, "README": "shop\n"}, "first")
    return up


def source(tmp_path: Path, up: Upstream) -> GitSource:
    src = GitSource(str(up.bare), cache_dir=tmp_path / "cache", branch="main", path="hosts/web1")
    src.fetch()
    return src


SETTINGS = writeback.Settings(branch="main", message="images: $containers\n\n$updates\n(source $source)",
                              author_name="Image Bot", author_email="bot@example.invalid")


def test_the_commit_reaches_the_branch_and_a_second_clone_sees_it(tmp_path: Path, upstream: Upstream) -> None:
    src = source(tmp_path, upstream)
    pushed = writeback.write_back(src, "shop", [EDIT], SETTINGS)
    assert pushed is not None
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", str(upstream.bare), str(clone))
    assert git(clone, "rev-parse", "HEAD") == pushed
    text = (clone / "hosts/web1/web.yaml").read_bytes().decode()
    assert text == MANIFEST.replace("'reg.local:5000/shop/web:1.4.1'", "'reg.local:5000/shop/web:1.9.0'")
    assert git(clone, "log", "-1", "--format=%an <%ae>%n%B") == (
        "Image Bot <bot@example.invalid>\nimages: web\n\n- web: reg.local:5000/shop/web:1.4.1 -> 1.9.0\n(source shop)")
    assert git(clone, "diff", "--name-only", "HEAD~1", "HEAD") == "hosts/web1/web.yaml"
    # the branch says so already: nothing is committed
    assert writeback.write_back(src, "shop", [EDIT], SETTINGS) is None
    git(clone, "pull", "--quiet")
    assert git(clone, "rev-parse", "HEAD") == pushed


def race_hook(bare: Path, other: str, flag: Path) -> None:
    """A pre-receive hook that, the first time, moves main to `other` (someone else's push landing
    while ours is received): the server's compare-and-swap of the ref then refuses ours."""
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\n"
        f"if [ ! -e '{flag}' ]; then\n"
        f"  touch '{flag}'\n"
        "  env -u GIT_QUARANTINE_PATH -u GIT_OBJECT_DIRECTORY -u GIT_ALTERNATE_OBJECT_DIRECTORIES "
        f"git --git-dir='{bare}' update-ref refs/heads/main {other}\n"
        "fi\n"
        "exit 0\n")
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)


def test_a_push_conflict_is_retried_on_the_new_head(tmp_path: Path, upstream: Upstream) -> None:
    src = source(tmp_path, upstream)
    # someone else's commit, on a side branch for now (the hook moves main to it mid-push)
    git(upstream.work, "checkout", "--quiet", "-b", "other")
    other = upstream.commit({"README": "shop, edited meanwhile\n"}, "someone else", push=False)
    upstream.push(ref="other")
    race_hook(upstream.bare, other, tmp_path / "raced")

    pushed = writeback.write_back(src, "shop", [EDIT], SETTINGS)
    assert (tmp_path / "raced").exists()                        # the first push did lose the race
    assert pushed is not None
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", str(upstream.bare), str(clone))
    assert git(clone, "rev-parse", "HEAD") == pushed
    assert git(clone, "rev-parse", "HEAD~1") == other           # made again on the new head
    assert (clone / "README").read_text() == "shop, edited meanwhile\n"
    assert "shop/web:1.9.0'" in (clone / "hosts/web1/web.yaml").read_text()


def test_a_refused_push_is_not_retried_and_says_why(tmp_path: Path, upstream: Upstream) -> None:
    src = source(tmp_path, upstream)
    hook = upstream.bare / "hooks" / "pre-receive"
    calls = tmp_path / "calls"
    hook.write_text(f"#!/bin/sh\necho x >> '{calls}'\necho 'branch protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    with pytest.raises(errors.SourceUnavailable, match="branch protected"):
        writeback.write_back(src, "shop", [EDIT], SETTINGS)
    assert calls.read_text() == "x\n"                           # no race: tried once
    assert list((tmp_path / "cache").glob("write-back-*")) == []   # no worktree left behind


OLD_DIGEST = "sha256:" + "a" * 64
NEW_DIGEST = "sha256:" + "b" * 64
FLUX = (
    "# Flux's marker forms (#22): NS:NAME, and the :tag, :name and :digest fields\n"
    "kind: Container\n"
    "metadata: {name: web}\n"
    "spec:\n"
    "  image:\n"
    "    track: reg.local:5000/shop/web:1.4.1  # {\"$imagepolicy\": \"flux-system:web\"}\n"
    "  env:\n"
    "    WEB_VERSION: \"1.4.1\"   # {\"$imagepolicy\": \"flux-system:web:tag\"}   keep this\n"
    "    WEB_IMAGE: 'reg.local:5000/shop/old'  #{\"$imagepolicy\":\"flux-system:web:name\"}\n"
    f"    WEB_DIGEST: {OLD_DIGEST} # {{\"$imagepolicy\": \"flux-system:web:digest\"}}\n"
    f"    PINNED: reg.local:5000/shop/web:1.4.1@{OLD_DIGEST} # {{\"$imagepolicy\": \"web\"}}\n"
    "  args:\n"
    "    - 1.4.1 # {\"$imagepolicy\": \"flux-system:web:tag\"}\n"
    "    - 1.4.1 # {\"$imagepolicy\": \"flux-system:api:tag\"}\n"
    "    - 1.4.1 # {\"$imagepolicy\": \"flux-system:web:size\"}\n"
)
FLUX_EDIT = writeback.Edit(file="web.yaml", container="web", repository="reg.local:5000/shop/web", tag="1.9.0",
                           old="1.4.1", digest=NEW_DIGEST)
FLUX_AFTER = (
    FLUX.replace("web:1.4.1  #", "web:1.9.0  #")
    .replace('"1.4.1"   #', '"1.9.0"   #')
    .replace("'reg.local:5000/shop/old'", "'reg.local:5000/shop/web'")
    .replace(f"WEB_DIGEST: {OLD_DIGEST}", f"WEB_DIGEST: {NEW_DIGEST}")
    .replace(f"web:1.4.1@{OLD_DIGEST}", f"web:1.9.0@{NEW_DIGEST}")
    .replace("- 1.4.1 # {\"$imagepolicy\": \"flux-system:web:tag\"}", "- 1.9.0 # {\"$imagepolicy\": \"flux-system:web:tag\"}")
)


def test_flux_marker_fields_set_the_tag_the_name_or_the_digest() -> None:
    """As Flux's setters: NS:NAME the full reference (a digest pin follows), :tag, :name and
    :digest the line's value; another container's marker and an unknown field are left alone."""
    new, done = writeback.edit_text(FLUX, [FLUX_EDIT])
    assert done == [FLUX_EDIT]
    assert new == FLUX_AFTER
    assert writeback.edit_text(new, [FLUX_EDIT]) == (new, [])
    # no digest known: a :digest line stays, a pinned reference loses its (now wrong) pin
    unknown = writeback.Edit(file="web.yaml", container="web", repository="reg.local:5000/shop/web", tag="1.9.0")
    new, _ = writeback.edit_text(FLUX, [unknown])
    assert f"WEB_DIGEST: {OLD_DIGEST} #" in new
    assert "PINNED: reg.local:5000/shop/web:1.9.0 #" in new


def test_flux_markers_are_written_back_to_a_real_repository(tmp_path: Path) -> None:
    up = Upstream(tmp_path / "forge", "shop")
    up.commit({"hosts/web1/web.yaml": FLUX}, "first")
    src = source(tmp_path, up)
    pushed = writeback.write_back(src, "shop", [FLUX_EDIT], SETTINGS)
    assert pushed is not None
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", str(up.bare), str(clone))
    assert git(clone, "rev-parse", "HEAD") == pushed
    assert (clone / "hosts/web1/web.yaml").read_text() == FLUX_AFTER
