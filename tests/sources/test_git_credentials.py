"""Credentials never reach a command line (issue 14, item 9).

A git URL with `user:token@` put the token on git's argv at every poll, where `ps` shows it to
every user. Such URLs are refused when the agent config loads and when a GitSource is made, the
error pointing at `token_file`; with `token_file`, a real fetch from git http-backend on 127.0.0.1
(slowed down so the git processes live long enough to be seen) is sampled through /proc: no
process of ours has the token in its argv or its environment.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.agent import config as agentcfg
from reconciler.sources import errors
from reconciler.sources import git as gitsrc
from tests.sources.gitrepos import GitHTTPServer, Upstream

TOKEN = "tok-5f1c0e9a7d3b42c8a61e"
WEB = "kind: Volume\nmetadata: {name: data}\n"


@pytest.mark.parametrize("url", [
    f"https://ci:{TOKEN}@git.example/ops/shop.git",
    f"https://{TOKEN}@git.example/ops/shop.git",
    f"http://x-access-token:{TOKEN}@127.0.0.1:8080/shop.git",
    f"ssh://git:{TOKEN}@git.example/ops/shop.git",
])
def test_a_url_with_credentials_is_refused_at_config_load(url: str) -> None:
    text = f"sources:\n  - name: shop\n    git: {{url: '{url}', branch: main}}\n"
    with pytest.raises(agentcfg.ConfigError) as info:
        agentcfg.parse_config(text, where="agent.yaml")
    message = str(info.value)
    assert "agent.yaml:2: sources.0: git.url: the git URL" in message
    assert "carries credentials" in message
    assert "git.token_file" in message
    assert TOKEN not in message


def test_a_url_with_credentials_is_refused_by_the_source(tmp_path: Path) -> None:
    with pytest.raises(errors.SourceInvalid, match="token_file") as info:
        gitsrc.GitSource(f"https://ci:{TOKEN}@git.example/x.git", cache_dir=tmp_path)
    assert TOKEN not in str(info.value)


def test_urls_without_secrets_are_accepted() -> None:
    cfg = agentcfg.parse_config(
        "sources:\n"
        "  - {name: a, git: {url: 'ssh://git@git.example/ops/a.git'}}\n"
        "  - {name: b, git: {url: 'git@git.example:ops/b.git'}}\n"
        "  - {name: c, git: {url: 'https://git.example/ops/c.git', token_file: /etc/reconciler/c.token}}\n"
    )
    assert [s.name for s in cfg.sources] == ["a", "b", "c"]


@pytest.fixture
def slow_forge(tmp_path: Path) -> Iterator[GitHTTPServer]:
    up = Upstream(tmp_path / "remote")
    up.commit({"web.yaml": WEB}, "first")
    server = GitHTTPServer(tmp_path / "remote", token=TOKEN)
    base: Any = server._httpd.RequestHandlerClass

    class Slow(base):  # type: ignore[misc,valid-type]
        def _cgi(self) -> None:
            time.sleep(0.4)           # keep git's processes alive long enough to be sampled
            super()._cgi()

    server._httpd.RequestHandlerClass = Slow
    try:
        yield server
    finally:
        server.stop()


def _descendants(root: int) -> dict[int, tuple[bytes, bytes]]:
    """(cmdline, environ) of every live process below `root`."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    parents[int(entry)] = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    out: dict[int, tuple[bytes, bytes]] = {}
    for pid in parents:
        p, seen = pid, 0
        while p in parents and p != root and seen < 64:
            p, seen = parents[p], seen + 1
        if p == root and pid != root:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read()
                with open(f"/proc/{pid}/environ", "rb") as f:
                    environ = f.read()
            except OSError:
                continue
            out[pid] = (cmdline, environ)
    return out


def test_a_fetch_with_a_token_file_never_shows_the_token_in_argv_or_environment(
    tmp_path: Path, slow_forge: GitHTTPServer,
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    src = gitsrc.GitSource(slow_forge.url("manifests.git"), cache_dir=tmp_path / "cache", branch="main",
                           token_file=token_file)
    seen: dict[int, tuple[bytes, bytes]] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            seen.update(_descendants(os.getpid()))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        rev = src.fetch()
        assert src.remote_commit() == rev.id                    # a poll (ls-remote) too
    finally:
        done.set()
        sampler.join()
    assert (rev.path / "web.yaml").read_text() == WEB
    assert slow_forge.seen_auth                                 # the token did travel, in a header
    cmdlines = [cmd.replace(b"\0", b" ") for cmd, _ in seen.values()]
    assert any(b"remote-http" in c for c in cmdlines), cmdlines   # the sampler saw git at work
    assert any(b" fetch " in c for c in cmdlines), cmdlines
    for cmdline, environ in seen.values():
        assert TOKEN.encode() not in cmdline
        assert TOKEN.encode() not in environ


def test_a_token_file_others_can_read_is_refused(tmp_path: Path, slow_forge: GitHTTPServer) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o644)
    src = gitsrc.GitSource(slow_forge.url("manifests.git"), cache_dir=tmp_path / "cache", branch="main",
                           token_file=token_file)
    with pytest.raises(errors.SourceInvalid, match=r"can be read by other users \(mode 0644\)") as info:
        src.fetch()
    assert f"chmod 600 {token_file}" in str(info.value)
    assert slow_forge.seen_auth == []


def test_a_git_source_has_the_directory_sources_limits(tmp_path: Path) -> None:
    up = Upstream(tmp_path / "remote")
    up.commit({f"hosts/web1/v{i}.yaml": WEB for i in range(4)} | {"other/big.bin": "x" * 5000}, "many")
    few = gitsrc.GitSource(str(up.bare), cache_dir=tmp_path / "c1", branch="main", path="hosts/web1", max_files=3)
    with pytest.raises(errors.SourceInvalid, match="hosts/web1 holds more than 3 files or"):
        few.fetch()
    assert not (tmp_path / "c1" / "worktrees").exists() or not any((tmp_path / "c1" / "worktrees").iterdir())
    small = gitsrc.GitSource(str(up.bare), cache_dir=tmp_path / "c2", branch="main", max_bytes=4000)
    with pytest.raises(errors.SourceInvalid, match="the repository holds more than"):
        small.fetch()
    fine = gitsrc.GitSource(str(up.bare), cache_dir=tmp_path / "c3", branch="main", path="hosts/web1", max_files=4)
    assert len(list(fine.fetch().path.iterdir())) == 4
