from __future__ import annotations

import os
import random
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from reconciler.errors import TemporaryError, TerminalError
from reconciler.sources import errors
from reconciler.sources import git as gitsrc
from tests.sources.gitrepos import GitHTTPServer, Upstream, git
from tests.sources.wakes import Wakes

WEB = "kind: Container\nmetadata: {name: web}\nspec: {image: busybox:1}\n"


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    up = Upstream(tmp_path / "remote")
    up.commit({"web.yaml": WEB}, "first")
    return up


def source(tmp_path: Path, url: str | Path, **kw: object) -> gitsrc.GitSource:
    return gitsrc.GitSource(str(url), cache_dir=tmp_path / "cache", **kw)  # type: ignore[arg-type]


@pytest.fixture
def http(tmp_path: Path) -> Iterator[GitHTTPServer]:
    server = GitHTTPServer(tmp_path / "remote")
    try:
        yield server
    finally:
        server.stop()


def test_a_branch_follows_new_commits_and_keeps_old_worktrees(tmp_path: Path, upstream: Upstream) -> None:
    src = source(tmp_path, upstream.bare, branch="main")
    first = src.fetch()
    assert first.id == git(upstream.work, "rev-parse", "HEAD")
    assert (first.path / "web.yaml").read_text() == WEB
    assert src.fetch() == first  # nothing new: same revision, same directory
    second_sha = upstream.commit({"web.yaml": WEB.replace("busybox:1", "busybox:2")}, "bump")
    second = src.fetch()
    assert second.id == second_sha
    assert "busybox:2" in (second.path / "web.yaml").read_text()
    assert (first.path / "web.yaml").read_text() == WEB  # the previous revision is still readable
    assert git(tmp_path / "cache" / "repo.git", "rev-parse", "--is-shallow-repository") == "true"


def test_no_branch_follows_the_remote_head(tmp_path: Path, upstream: Upstream) -> None:
    rev = source(tmp_path, upstream.bare).fetch()
    assert rev.id == git(upstream.work, "rev-parse", "HEAD")


def test_an_annotated_tag_resolves_to_its_commit(tmp_path: Path, upstream: Upstream) -> None:
    tagged = git(upstream.work, "rev-parse", "HEAD")
    upstream.tag("v1", message="release 1")
    upstream.commit({"web.yaml": WEB + "# after the tag\n"}, "later")
    rev = source(tmp_path, upstream.bare, tag="v1").fetch()
    assert rev.id == tagged
    assert (rev.path / "web.yaml").read_text() == WEB


def test_a_pinned_commit_is_fetched_even_when_the_branch_moved_on(tmp_path: Path, upstream: Upstream) -> None:
    pinned = git(upstream.work, "rev-parse", "HEAD")
    upstream.commit({"web.yaml": WEB + "# newer\n"}, "newer")
    rev = source(tmp_path, upstream.bare, commit=pinned).fetch()
    assert rev.id == pinned
    assert (rev.path / "web.yaml").read_text() == WEB


def test_a_force_push_rewriting_history_is_followed(tmp_path: Path, upstream: Upstream) -> None:
    src = source(tmp_path, upstream.bare, branch="main")
    upstream.commit({"db.yaml": "kind: Container\n"}, "add db")
    before = src.fetch()
    git(upstream.work, "reset", "--quiet", "--hard", "HEAD~1")
    rewritten = upstream.commit({"cache.yaml": "kind: Container\n"}, "add cache instead", push=False)
    upstream.push(force=True)
    after = src.fetch()
    assert after.id == rewritten != before.id
    assert sorted(p.name for p in after.path.iterdir() if not p.name.startswith(".")) == ["cache.yaml", "web.yaml"]


def test_a_sub_path_is_the_revision_directory(tmp_path: Path, upstream: Upstream) -> None:
    upstream.commit({"deploy/prod/web.yaml": WEB, "deploy/staging/web.yaml": WEB, "README.md": "hi\n"})
    rev = source(tmp_path, upstream.bare, branch="main", path="deploy/prod/").fetch()
    assert rev.path.name == "prod"
    assert rev.origin == f"{upstream.bare}@{rev.id[:12]}:deploy/prod"
    assert [p.name for p in rev.path.iterdir()] == ["web.yaml"]
    assert rev.name == "prod"


@pytest.mark.parametrize(("url", "path", "name"), [
    ("https://git.example/team/shop.git", "", "shop"),
    ("https://git.example/team/shop/", "", "shop"),
    ("ssh://git@git.example:2222/team/shop.git", "", "shop"),
    ("git@git.example:team/shop.git", "", "shop"),
    ("/srv/repos/shop", "", "shop"),
    ("https://git.example/team/shop.git", "deploy/prod", "prod"),
])
def test_a_revision_is_named_as_a_clone_of_it_would_be(tmp_path: Path, url: str, path: str, name: str) -> None:
    """What `git clone URL` names its directory: a compose project's default name."""
    assert source(tmp_path, url, path=path).directory_name == name


def test_a_missing_sub_path_is_terminal(tmp_path: Path, upstream: Upstream) -> None:
    with pytest.raises(errors.SourceInvalid, match="no directory 'deploy'") as info:
        source(tmp_path, upstream.bare, branch="main", path="deploy").fetch()
    assert isinstance(info.value, TerminalError)


def test_an_unknown_branch_is_terminal(tmp_path: Path, upstream: Upstream) -> None:
    with pytest.raises(errors.SourceInvalid, match="refs/heads/nope not found") as info:
        source(tmp_path, upstream.bare, branch="nope").fetch()
    assert isinstance(info.value, TerminalError)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"branch": "main", "tag": "v1"}, "one of branch, tag or commit"),
        ({"commit": "abc123"}, "full hexadecimal"),
        ({"path": "../etc"}, "inside the repository"),
    ],
)
def test_bad_configuration_is_refused_up_front(tmp_path: Path, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(errors.SourceInvalid, match=message):
        source(tmp_path, "https://example.invalid/x.git", **kwargs)


def test_an_unreachable_remote_is_temporary_and_keeps_the_last_good_revision(
    tmp_path: Path, upstream: Upstream
) -> None:
    server = GitHTTPServer(tmp_path / "remote")
    src = source(tmp_path, server.url("manifests.git"), branch="main")
    try:
        good = src.fetch()
    finally:
        server.stop()  # the port now refuses connections
    with pytest.raises(errors.SourceUnavailable) as info:
        src.fetch()
    assert isinstance(info.value, TemporaryError)
    assert "127.0.0.1" in str(info.value)
    assert src.last_revision == good
    assert (good.path / "web.yaml").read_text() == WEB


def test_an_https_token_from_a_file_authenticates_and_never_shows(tmp_path: Path, upstream: Upstream) -> None:
    token = "tok-" + "".join(random.choice("abcdef0123456789") for _ in range(24))
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    server = GitHTTPServer(tmp_path / "remote", token=token)
    try:
        with capture_logs() as logs:
            src = source(tmp_path, server.url("manifests.git"), branch="main", token_file=token_file)
            rev = src.fetch()
            assert (rev.path / "web.yaml").read_text() == WEB
            assert server.seen_auth  # the token really travelled, in a header
            token_file.write_text("wrong-" + token)  # rotated to a bad one: read again per fetch
            with pytest.raises(errors.SourceInvalid, match="credentials refused") as info:
                src.fetch()
            token_file.write_text(token)
            server.stop()
            with pytest.raises(errors.SourceUnavailable) as unreachable:
                src.fetch()
    finally:
        server.stop()
    texts = [str(info.value), repr(info.value), str(unreachable.value), repr(src), repr(logs)]
    for text in texts:
        assert token not in text
    # nor on any git command line, where other users could read it from /proc
    assert all(token not in arg for arg in [src.url, *map(str, src.__dict__.values())])


def test_the_token_is_not_sent_to_another_host_after_a_redirect(tmp_path: Path, upstream: Upstream) -> None:
    token = "tok-never-leaves-its-host"
    token_file = tmp_path / "token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    elsewhere = GitHTTPServer(tmp_path / "remote", token=token)  # asks for credentials too
    here = GitHTTPServer(tmp_path / "remote", redirect=f"http://127.0.0.1:{elsewhere.port}")
    try:
        src = source(tmp_path, here.url("manifests.git"), branch="main", token_file=token_file)
        with pytest.raises(errors.SourceInvalid, match="credentials refused"):
            src.fetch()
        assert elsewhere.seen_auth == []  # git asked for the other host's credentials: none given
    finally:
        here.stop()
        elsewhere.stop()


def test_a_token_needs_an_http_url(tmp_path: Path) -> None:
    with pytest.raises(errors.SourceInvalid, match="HTTP"):
        source(tmp_path, "ssh://git@example.invalid/x.git", token_file=tmp_path / "token")


def test_url_credentials_are_refused_and_redacted(tmp_path: Path) -> None:
    with pytest.raises(errors.SourceInvalid, match="token_file") as info:
        source(tmp_path, "http://user:s3cr3t@127.0.0.1:9/repo.git", branch="main", timeout=30)
    assert "s3cr3t" not in str(info.value)
    assert "http://***@127.0.0.1:9/repo.git" in str(info.value)


def test_an_ssh_key_file_is_handed_to_ssh(tmp_path: Path, upstream: Upstream) -> None:
    # no sshd here: a stand-in `ssh` records its arguments and runs the remote command
    # locally, so git's real ssh transport is exercised end to end
    log = tmp_path / "ssh-args"
    fake_ssh = tmp_path / "ssh"
    fake_ssh.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {log}\nfor last; do :; done\nexec sh -c "$last"\n')
    fake_ssh.chmod(fake_ssh.stat().st_mode | stat.S_IXUSR)
    key = tmp_path / "id_ed25519"
    key.write_text("not really a key\n")
    src = source(tmp_path, f"ssh://git@127.0.0.1{upstream.bare}", branch="main", ssh_key_file=key, ssh=str(fake_ssh))
    rev = src.fetch()
    assert (rev.path / "web.yaml").read_text() == WEB
    args = log.read_text().splitlines()
    assert args[:2] == ["-i", str(key)]
    assert "IdentitiesOnly=yes" in args
    assert "BatchMode=yes" in args


def test_old_worktrees_are_removed_unless_retained(tmp_path: Path, upstream: Upstream) -> None:
    src = source(tmp_path, upstream.bare, branch="main", keep=1)
    applied = src.fetch()
    src.retain([applied.id])
    revs = [src.fetch()]
    for i in range(2):
        upstream.commit({"web.yaml": WEB + f"# {i}\n"})
        revs.append(src.fetch())
    assert applied.path.is_dir()
    assert not revs[1].path.exists()
    assert revs[2].path.is_dir()
    listed = git(tmp_path / "cache" / "repo.git", "worktree", "list", "--porcelain")
    assert str(revs[1].path) not in listed  # git's own bookkeeping was pruned too
    assert sorted(os.listdir(tmp_path / "cache" / "worktrees")) == sorted({applied.id, revs[2].id})


def test_place_moves_the_one_checkout_and_keeps_what_nobody_committed(tmp_path: Path, upstream: Upstream) -> None:
    upstream.commit({"app/web.yaml": WEB, "app/app.conf": "v1\n", "app/data/seed": "s1\n"})
    src = source(tmp_path, upstream.bare, branch="main", path="app", keep=1)
    first = src.fetch()
    assert first.live == tmp_path / "cache" / "checkout" / "app"      # not in any revision's worktree
    assert not first.live.exists()                                   # placed by `place`, not by a fetch
    src.place(first)
    assert (first.live / "app.conf").read_text() == "v1\n"
    (first.live / "data" / "written").write_text("a container's\n")  # as through a bind of ./data
    (first.live / "data" / "seed").write_text("changed in place\n")

    upstream.commit({"app/app.conf": "v2\n", "app/data/seed": "s2\n", "app/notes": "n\n"})
    second = src.fetch()
    assert (second.live, (second.live / "app.conf").read_text()) == (first.live, "v1\n")    # not yet placed
    src.place(second)
    assert (second.live / "app.conf").read_text() == "v2\n"
    assert (second.live / "data" / "seed").read_text() == "s2\n"      # committed files are the commit's
    assert (second.live / "data" / "written").read_text() == "a container's\n"  # the rest stays
    for i in range(2):                                               # old worktrees go; the checkout stays
        upstream.commit({"app/notes": f"{i}\n"})
        src.place(src.fetch())
    assert not first.path.exists()
    assert (second.live / "data" / "written").exists()
    src.place(first)                                                 # back to an older commit (a rollback)
    assert (first.live / "app.conf").read_text() == "v1\n"
    assert not (first.live / "notes").exists()
    assert (first.live / "data" / "written").exists()


def test_a_checkout_directory_that_is_no_checkout_is_left_alone(tmp_path: Path, upstream: Upstream) -> None:
    src = source(tmp_path, upstream.bare, branch="main")
    rev = src.fetch()
    assert rev.live is not None
    rev.live.mkdir()
    (rev.live / "db").write_text("precious\n")
    with pytest.raises(errors.SourceUnavailable, match="is not a git checkout of this source but holds files"):
        src.place(rev)
    assert (rev.live / "db").read_text() == "precious\n"


def test_polling_wakes_when_the_branch_moves(tmp_path: Path, upstream: Upstream) -> None:
    src = source(tmp_path, upstream.bare, branch="main", poll_interval=0.05, jitter=0.5)
    src.fetch()
    wakes = Wakes()
    with src.watch(wakes) as watch:
        assert not watch.poll()  # nothing moved since the fetch
        moved = upstream.commit({"web.yaml": WEB + "# moved\n"})
        reason = wakes.wait(1)[0]
    assert f"refs/heads/main is at {moved[:12]}" in reason


def test_polling_follows_a_moved_tag(tmp_path: Path, upstream: Upstream) -> None:
    upstream.tag("prod", message="prod")
    src = source(tmp_path, upstream.bare, tag="prod", poll_interval=3600.0)
    src.fetch()
    with src.watch(Wakes()) as watch:
        assert not watch.poll()
        upstream.commit({"web.yaml": WEB + "# v2\n"})
        upstream.tag("prod", message="prod moved")
        assert watch.poll()


def test_poll_delays_are_jittered_around_the_interval(tmp_path: Path) -> None:
    src = source(tmp_path, "https://example.invalid/x.git", poll_interval=100.0, jitter=0.1, rng=random.Random(1))
    delays = [src.next_poll_delay() for _ in range(100)]
    assert all(90.0 <= d <= 110.0 for d in delays)
    assert len(set(delays)) > 50


def test_the_source_over_http_fetches(tmp_path: Path, upstream: Upstream, http: GitHTTPServer) -> None:
    rev = source(tmp_path, http.url("manifests.git"), branch="main").fetch()
    assert rev.id == git(upstream.work, "rev-parse", "HEAD")


def test_a_failed_poll_does_not_wake(tmp_path: Path) -> None:
    src = source(tmp_path, "http://127.0.0.1:9/unreachable.git", branch="main", poll_interval=3600.0)
    wakes = Wakes()
    with src.watch(wakes) as watch:
        assert not watch.poll()
    assert wakes.reasons == []


def test_polling_wakes_while_the_last_fetch_is_behind_the_remote(tmp_path: Path, upstream: Upstream) -> None:
    # level-based: as long as the fetched commit differs from the remote's, every poll wakes
    src = source(tmp_path, upstream.bare, branch="main", poll_interval=3600.0)
    with src.watch(Wakes()) as watch:
        assert watch.poll()  # never fetched
        src.fetch()
        assert not watch.poll()
        upstream.commit({"web.yaml": WEB + "# new\n"})
        assert watch.poll()
        assert watch.poll()  # still behind: wakes again
        src.fetch()
        assert not watch.poll()


def test_a_checkout_rewritten_by_a_container_runs_no_hook_of_its_own(tmp_path: Path, upstream: Upstream) -> None:
    """A container with a writable bind of the checkout (`./:/src`) points its `.git` at a
    directory it made, whose config names a hooks directory with a post-checkout hook: the next
    placement must run no program of the checkout's (it ran as root on the host), check out the
    commit and mend the `.git` link."""
    src = source(tmp_path, upstream.bare, branch="main")
    first = src.fetch()
    src.place(first)
    co = first.live
    assert co is not None
    marker = tmp_path / "HOOK_RAN"
    evil = co / "evil"
    (evil / "hooks").mkdir(parents=True)
    (evil / "objects" / "info").mkdir(parents=True)
    (evil / "refs").mkdir()
    (evil / "HEAD").write_text(git(upstream.bare, "rev-parse", "HEAD") + "\n")
    (evil / "config").write_text("[core]\n\trepositoryformatversion = 0\n\thooksPath = evil/hooks\n"
                                 f"\tfsmonitor = {evil / 'hooks' / 'post-checkout'}\n")
    (evil / "objects" / "info" / "alternates").write_text(str(upstream.bare / "objects") + "\n")
    hook = evil / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\nid > {marker}\n")
    hook.chmod(0o755)
    (co / ".git").write_text("gitdir: evil\n")

    upstream.commit({"web.yaml": WEB.replace("busybox:1", "busybox:2")}, "next")
    second = src.fetch()
    src.place(second)
    assert not marker.exists()
    assert (co / "web.yaml").read_text() == WEB.replace("busybox:1", "busybox:2")
    assert (co / ".git").read_text().startswith("gitdir: ")
    assert (co / ".git").read_text().strip() != "gitdir: evil"
    src.place(first)                                                 # and back: still no hook
    assert not marker.exists()
    assert (co / "web.yaml").read_text() == WEB
