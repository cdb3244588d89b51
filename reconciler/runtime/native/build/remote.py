"""ADD's remote sources: a URL (downloaded) and a git repository (cloned), as BuildKit does.

- A URL (`http://`, `https://`) is downloaded once per build step into a directory of the
  step's own, as one file named after the last component of the URL's path (`__unnamed__`
  when it has none), mode 0600, its mtime the response's Last-Modified (the time of the
  download without one). It is never unpacked. `--checksum=sha256:<hex>` (or sha384/sha512)
  is verified before anything is copied. The download is capped at the image layers' size
  limit and times out; redirects are followed.
- A git URL (`git://`, `git@host:path`, `ssh://`, `github.com/...`, or an http(s) URL whose
  path ends in `.git`), with an optional `#ref[:subdir]` fragment, is cloned with the git
  CLI (the ref checked out detached; without one, the remote HEAD), and the tree (or subdir)
  is what ADD copies: files 0644 or 0755 as git records them, directories 0755, without the
  `.git` directory unless `--keep-git-dir`. `--checksum` on a git source is the commit SHA
  (or a prefix of it).

Errors never show a URL's user:password.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import posixpath
import re
import shutil
import stat
import subprocess
import urllib.parse
from pathlib import Path

from reconciler._dataclass import dataclass
from reconciler.runtime.native.build import dockerfile

__all__ = ["Fetched", "clone", "download", "is_git", "is_url"]

_TIMEOUT = 120.0
_CHUNK = 1 << 20
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_ALGORITHMS = ("sha256", "sha384", "sha512")


@dataclass(frozen=True)
class Fetched:
    """What a remote source gave: a directory holding it, the name under it that ADD copies
    ("" for the directory itself), and what identifies the content (for the cache key)."""

    root: Path
    name: str
    identity: str


def redact(url: str) -> str:
    """The URL without user:password@ (for messages)."""
    return _USERINFO.sub(r"\g<scheme>***@", url)


def is_git(src: str) -> bool:
    """Whether ADD takes `src` for a git repository (BuildKit's rules)."""
    if src.startswith(("git://", "git@", "ssh://", "github.com/")):
        return True
    if src.startswith(("http://", "https://")):
        return urllib.parse.urlsplit(src).path.endswith(".git")
    return False


def is_url(src: str) -> bool:
    return src.startswith(("http://", "https://")) and not is_git(src)


def _checksum(spec: str) -> tuple[str, str]:
    algo, _, value = spec.partition(":")
    if algo not in _ALGORITHMS or not re.fullmatch(r"[0-9a-f]+", value or "x"):
        raise dockerfile.DockerfileError(f"--checksum={spec}: give ALGORITHM:HEX, ALGORITHM one of "
                                         + ", ".join(_ALGORITHMS))
    return algo, value


def download(url: str, into: Path, *, checksum: str | None, max_size: int) -> Fetched:
    """Download `url` into the directory `into` (see the module docstring)."""
    algo, want = _checksum(checksum) if checksum else ("sha256", "")
    base = posixpath.basename(urllib.parse.urlsplit(url).path)
    name = base if base not in ("", ".", "..") else "__unnamed__"
    path = into / name
    h = hashlib.new(algo)
    size = 0
    # here, not at import: every build imports this module, few download (urllib.request
    # brings http.client and ssl: ~0.1 s of a rebuild's start-up)
    from urllib import error as url_error
    from urllib import request as url_request

    request = url_request.Request(url, headers={"User-Agent": "reconciler-build"})  # noqa: S310 - http(s) only (is_url)
    try:
        with url_request.urlopen(request, timeout=_TIMEOUT) as resp, open(path, "wb") as out:  # noqa: S310
            modified = resp.headers.get("Last-Modified")
            while chunk := resp.read(_CHUNK):
                size += len(chunk)
                if size > max_size:
                    raise dockerfile.DockerfileError(f"ADD {redact(url)}: larger than {max_size} bytes",
                                                     hint="download it in a RUN step, or raise the layer size limit")
                h.update(chunk)
                out.write(chunk)
    except url_error.HTTPError as exc:
        raise dockerfile.DockerfileError(f"ADD {redact(url)}: the server answered {exc.code} {exc.reason}",
                                         hint="check the URL") from None
    except (url_error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise dockerfile.DockerfileError(f"ADD {redact(url)}: cannot download it: {reason}",
                                         hint="check the URL and that the build host reaches it") from None
    got = h.hexdigest()
    if want and got != want:
        raise dockerfile.DockerfileError(f"ADD {redact(url)}: digest mismatch: the content is {algo}:{got}, "
                                         f"--checksum says {algo}:{want}",
                                         hint="the file changed at its source, or the checksum is wrong")
    os.chmod(path, 0o600)
    mtime = _http_date(modified)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return Fetched(into, name, f"url {redact(url)} {algo}:{got} {mtime}")


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def clone(src: str, into: Path, *, keep_git_dir: bool, checksum: str | None) -> Fetched:
    """Clone the git URL `src` (`#ref[:subdir]`) into `into`/repo (see the module docstring)."""
    url, _, fragment = src.partition("#")
    ref, _, subdir = fragment.partition(":")
    repo = into / "repo"
    _git(["clone", "--quiet", "--no-checkout", "--", url, str(repo)], src)
    commit = _resolve(repo, ref or "HEAD", src)
    if checksum and not commit.startswith(checksum):
        raise dockerfile.DockerfileError(f"ADD {redact(url)}: the commit is {commit}, --checksum says {checksum}",
                                         hint="the ref moved, or the checksum is wrong")
    _git(["-C", str(repo), "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit], src)
    _git(["-C", str(repo), "submodule", "update", "--init", "--recursive", "--quiet"], src)
    if not keep_git_dir:
        shutil.rmtree(repo / ".git")
    _normalize_modes(repo)
    name = posixpath.normpath(subdir.strip("/")) if subdir else ""
    if name.startswith(".."):
        raise dockerfile.DockerfileError(f"ADD {redact(url)}: the subdirectory {subdir!r} is outside the repository")
    return Fetched(repo, "" if name == "." else name, f"git {redact(url)} {commit} {subdir} {keep_git_dir}")


def _resolve(repo: Path, ref: str, src: str) -> str:
    """The commit `ref` names in the clone: a tag, a commit, the default or another branch."""
    for candidate in (ref, f"origin/{ref}"):
        try:
            return _git(["-C", str(repo), "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}"], src)
        except dockerfile.DockerfileError:
            continue
    raise dockerfile.DockerfileError(f"ADD {redact(src)}: the ref {ref!r} is not in the repository",
                                     hint="give a branch, tag or commit after #")


def _git(args: list[str], src: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env |= {"LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}
    try:
        # no hook, no fsmonitor program and no local path as a submodule's remote, whatever the
        # repository (or a submodule's) configuration says: git runs nothing but itself
        proc = subprocess.run(["git", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
                               "-c", "protocol.file.allow=never", *args], env=env, capture_output=True, text=True,
                              timeout=_TIMEOUT,
                              stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError:
        raise dockerfile.DockerfileError("ADD of a git repository needs the git program", hint="install git") from None
    except subprocess.TimeoutExpired:
        raise dockerfile.DockerfileError(f"ADD {redact(src)}: git {args[0]} took longer than {_TIMEOUT:.0f} s") from None
    if proc.returncode == 0:
        return proc.stdout.strip()
    detail = redact(" ".join(proc.stderr.split()))[-400:]
    raise dockerfile.DockerfileError(f"ADD {redact(src)}: git {args[0] if args[0] != '-C' else args[2]} failed: {detail}",
                                     hint="check the repository URL and that the build host reaches it")


def _normalize_modes(root: Path) -> None:
    """Git's modes whatever the umask: files 0644 or 0755, directories 0755."""
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)  # noqa: S103 - as a checkout makes them with umask 022
        for name in filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                os.chmod(p, 0o755 if st.st_mode & 0o100 else 0o644)
