"""#20 item 2: ADD of URLs (a real HTTP server on loopback), of git repositories (a repository
served on loopback over git's dumb HTTP protocol), and of local tar.gz/xz/zst archives."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import secrets
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.runtime import errors as rterrors
from reconciler.runtime.native.build import push
from tests.build import corpus, test_corpus
from tests.build.conftest import Engine
from tests.helpers.registry import RegistryServer

pytestmark = [pytest.mark.root, pytest.mark.registry]

Ctx = Callable[..., Path]
MTIME = 1_500_000_000          # Fri, 14 Jul 2017 02:40:00 GMT
BODY = b"downloaded content\n"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A directory served on 127.0.0.1 (Last-Modified: the files' mtimes); its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _publish(root: Path, name: str, data: bytes) -> None:
    (root / name).write_bytes(data)
    os.utime(root / name, (MTIME, MTIME))


def _git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def _repository(www: Path, work: Path) -> str:
    """A repository with a tag v1 (and a later commit on main), served bare over dumb HTTP;
    the commit v1 names."""
    work.mkdir()
    _git("init", "-q", "-b", "main", cwd=work)
    (work / "app").mkdir()
    (work / "app" / "main.sh").write_text("#!/bin/sh\necho v1\n")
    os.chmod(work / "app" / "main.sh", 0o700)
    (work / "README").write_text("readme v1\n")
    _git("add", "-A", cwd=work)
    _git("commit", "-q", "-m", "v1", cwd=work)
    _git("tag", "v1", cwd=work)
    v1 = _git("rev-parse", "HEAD", cwd=work)
    (work / "README").write_text("readme v2\n")
    _git("commit", "-q", "-am", "v2", cwd=work)
    _git("clone", "-q", "--bare", str(work), str(www / "repo.git"), cwd=work)
    _git("update-server-info", cwd=www / "repo.git")
    return v1


def test_add_url_downloads_with_mode_0600_and_last_modified(
    engine: Engine, context_dir: Ctx, busybox_image: str, served: tuple[str, Path],
) -> None:
    base, www = served
    _publish(www, "file.txt", BODY)
    _publish(www, "data.tar.gz", corpus.archives()["archive.tar.gz"])
    digest = hashlib.sha256(BODY).hexdigest()
    ctx = context_dir({"Dockerfile": f"""FROM {busybox_image}
ADD {base}/file.txt /dl/
ADD --checksum=sha256:{digest} --chown=1000:1000 {base}/file.txt /dl/renamed
ADD {base}/data.tar.gz /dl/
ADD {base}/ /dl/unnamed/
"""})
    engine.build(ctx, tags=("localhost/addurl:1",))
    code, out = engine.run("localhost/addurl:1", "sh", "-c",
                           "cd /dl && stat -c '%n %a %u:%g %Y' file.txt renamed data.tar.gz && cat file.txt"
                           " && ls unnamed")
    assert code == 0, out
    assert out.splitlines() == [
        f"file.txt 600 0:0 {MTIME}", f"renamed 600 1000:1000 {MTIME}",
        f"data.tar.gz 600 0:0 {MTIME}",         # a URL's archive is not unpacked
        "downloaded content", "__unnamed__",
    ]


def test_add_url_checksum_mismatch_fails_the_step(
    engine: Engine, context_dir: Ctx, busybox_image: str, served: tuple[str, Path],
) -> None:
    base, www = served
    _publish(www, "file.txt", BODY)
    wrong = "0" * 64
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nADD --checksum=sha256:{wrong} {base}/file.txt /f\n"})
    with pytest.raises(rterrors.RuntimeBackendError, match=f"digest mismatch: the content is sha256:{hashlib.sha256(BODY).hexdigest()}"):
        engine.build(ctx, tags=("localhost/addurl:2",))
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nADD {base}/missing.txt /f\n"})
    with pytest.raises(rterrors.RuntimeBackendError, match="the server answered 404"):
        engine.build(ctx, tags=("localhost/addurl:3",))


@pytest.mark.parametrize(("dockerfile", "message"), [
    ("COPY {base}/file.txt /f\n", "source can't be a URL for COPY"),
    ("ADD --checksum=sha256:{zeros} a.txt /f\n", "checksum can't be specified for non-HTTP(S) sources"),
    ("ADD --keep-git-dir=true {base}/file.txt /f\n", "--keep-git-dir is only for git sources"),
])
def test_remote_flags_are_checked(
    engine: Engine, context_dir: Ctx, busybox_image: str, served: tuple[str, Path], dockerfile: str, message: str,
) -> None:
    base, www = served
    _publish(www, "file.txt", BODY)
    text = f"FROM {busybox_image}\n" + dockerfile.format(base=base, zeros="0" * 64)
    ctx = context_dir({"Dockerfile": text, "a.txt": "a"})
    with pytest.raises(rterrors.RuntimeBackendError, match=message.replace("(", r"\(").replace(")", r"\)")):
        engine.build(ctx, tags=("localhost/addurl:4",))


def test_add_git_repository(
    engine: Engine, context_dir: Ctx, busybox_image: str, served: tuple[str, Path], tmp_path: Path,
) -> None:
    base, www = served
    v1 = _repository(www, tmp_path / "work")
    ctx = context_dir({"Dockerfile": f"""FROM {busybox_image}
ADD {base}/repo.git#v1 /src
ADD --keep-git-dir=true {base}/repo.git /kept/
ADD --checksum={v1[:12]} {base}/repo.git#v1:app /app-only
"""})
    engine.build(ctx, tags=("localhost/addgit:1",))
    code, out = engine.run("localhost/addgit:1", "sh", "-c",
                           "cat /src/README /kept/README && stat -c '%n %a %u:%g' /src /src/app /src/app/main.sh"
                           " /src/README && ls -a /src && ls -a /app-only && test -d /kept/.git && cat /kept/.git/HEAD")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[:6] == ["readme v1", "readme v2", "/src 755 0:0", "/src/app 755 0:0", "/src/app/main.sh 755 0:0",
                         "/src/README 644 0:0"]
    assert lines[6:] == [".", "..", "README", "app", ".", "..", "main.sh", lines[-1]]
    assert len(lines[-1]) == 40        # a detached HEAD: the commit

    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nADD --checksum={'f' * 40} {base}/repo.git#v1 /src\n"})
    with pytest.raises(rterrors.RuntimeBackendError, match=f"the commit is {v1}"):
        engine.build(ctx, tags=("localhost/addgit:2",))
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nADD {base}/repo.git#nope /src\n"})
    with pytest.raises(rterrors.RuntimeBackendError, match="the ref 'nope' is not in the repository"):
        engine.build(ctx, tags=("localhost/addgit:3",))


def test_add_unpacks_local_archives_of_every_compression(
    engine: Engine, context_dir: Ctx, busybox_image: str,
) -> None:
    files: dict[str, str | bytes] = dict(corpus.archives())
    lines = [f"ADD {name} /{name.replace('.', '-')}/" for name in files]
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\n" + "\n".join(lines) + "\n", **files})
    engine.build(ctx, tags=("localhost/addtar:1",))
    dirs = [f"/{name.replace('.', '-')}" for name in files]
    code, out = engine.run("localhost/addtar:1", "sh", "-c",
                           " && ".join(f"stat -c '%a %u:%g' {d}/pkg {d}/pkg/etc.conf && cat {d}/pkg/bin/tool" for d in dirs))
    assert code == 0, out
    assert out.splitlines() == ["750 0:0", "640 42:42", "#!/bin/sh", "echo tool"] * len(dirs)


@pytest.mark.docker
def test_add_url_matches_docker(
    engine: Engine, context_dir: Ctx, busybox_image: str, served: tuple[str, Path], registry: RegistryServer,
    docker_refs: list[str],
) -> None:
    """dockerd's own ADD of the same URL: the same file (mode, owner, content) and mtime, and
    the same history text."""
    test_corpus._docker_ready()
    base, www = served
    _publish(www, "file.txt", BODY)
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nADD {base}/file.txt /dl/\nADD {base}/file.txt /dl/named\n"})
    repo = f"{registry.host}/addurl{secrets.token_hex(3)}"
    theirs, ours = f"{repo}/docker:1", f"{repo}/native:1"
    docker_refs.extend([theirs, ours])
    built = test_corpus.build(docker_refs, "-t", theirs, str(ctx))
    assert built.returncode == 0, built.stderr
    engine.build(ctx, tags=(ours,))
    push.push(engine.store, ours)
    test_corpus.docker("pull", "-q", ours)
    assert test_corpus.file_tree(ours) == test_corpus.file_tree(theirs)
    stat_cmd = ("run", "--rm", "--network", "none", "--entrypoint", "stat")
    want = test_corpus.docker(*stat_cmd, theirs, "-c", "%n %Y", "/dl/file.txt", "/dl/named").stdout
    got = test_corpus.docker(*stat_cmd, ours, "-c", "%n %Y", "/dl/file.txt", "/dl/named").stdout
    assert got == want == f"/dl/file.txt {MTIME}\n/dl/named {MTIME}\n"
    # the history names the download as dockerd does (`ADD file:<tarsum> in /dl/ `)
    history = ("history", "--no-trunc", "--format", "{{.CreatedBy}}")
    assert test_corpus.docker(*history, ours).stdout == test_corpus.docker(*history, theirs).stdout


docker_refs = test_corpus.docker_refs
