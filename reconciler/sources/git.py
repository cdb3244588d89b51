"""A git repository of manifests, driven through the `git` CLI.

One bare repository per source under `<cache_dir>/repo.git` receives only what is deployed:
`git fetch [--depth 1] URL +<ref>:refs/reconciler/target` (a forced refspec, so a force-push
that rewrites history is followed like any other move). The commit is checked out as a
detached worktree `<cache_dir>/worktrees/<sha>/`, created under a temporary name and moved
into place, so a revision directory is complete or absent. Old worktrees are removed except
the most recent `keep` and those `retain()`ed (the last applied one), so when the remote is
unreachable or the new commit does not load, the last good revision stays readable.

Containers never mount those: a bind source named relative to the manifests resolves in one
checkout per source, `<cache_dir>/checkout/` (`Revision.live`), which `place(revision)` moves
to the revision's commit before the agent loads or applies it (`git checkout --force`: committed
files become the commit's; files nobody committed, such as what a container wrote into a bound
directory, stay).

Auth: an SSH private key file (`GIT_SSH_COMMAND=ssh -i KEY -o IdentitiesOnly=yes -o
BatchMode=yes`, optionally with a known_hosts file and strict checking), or an HTTPS token read
from a file at every fetch (so rotation needs no restart) by a credential helper configured
for the repository's scheme://host:port only (through `GIT_CONFIG_*` variables): the token is
never on a command line or in the environment (both visible in /proc), never in a URL, never
sent to another host a redirect leads to, never in a message or log line. Error text from git
is redacted (token, URL credentials) before it reaches an exception.

Errors: an unknown ref, a missing sub-path or refused credentials are terminal
(`SourceInvalid`); anything else (connection refused, DNS, timeouts, a missing local path) is
temporary (`SourceUnavailable`) and the loop retries with backoff.

`watch()` polls `git ls-remote` every `poll_interval` seconds +/- `jitter` and wakes when the
remote ref differs from the last fetched commit (Argo CD and Flux poll the same way; webhooks,
see `webhook.py`, only make it faster).
"""

from __future__ import annotations

import base64
import os
import random
import re
import shlex
import shutil
import stat
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path, PurePosixPath

from reconciler import logs
from reconciler.sources import base, errors

__all__ = ["GitSource", "GitWatch", "redact_url", "url_credentials"]

_HEX = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_TARGET = "refs/reconciler/target"
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_REF_MISSING = (
    "couldn't find remote ref",
    "not our ref",
    "unadvertised object",
    "no such remote ref",
    "invalid refspec",
    "remote did not send all necessary objects",
)
_AUTH_FAILED = (
    "authentication failed",
    "permission denied (publickey",
    "could not read username",
    "could not read password",
    "returned error: 401",
    "returned error: 403",
    "the requested url returned error: 401",
    "host key verification failed",
)
# variables that would make git print headers (the token), ask a person, clash with our
# configuration, or point git at another repository (the agent run from a git hook)
_DROPPED_ENV = (
    "GIT_TRACE", "GIT_CURL_VERBOSE", "GIT_ASKPASS", "SSH_ASKPASS",
    "GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_", "GIT_CONFIG_PARAMETERS",
    "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_CEILING_DIRECTORIES",
)


# A git credential helper (run by git through sh): answers `get` with the user name and the
# token file's first line. The token thus travels file -> helper -> git over a pipe, never
# through an argument list, the environment, or a header configured for every host.
_CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || exit 0; '
    'printf "username=%s\\npassword=%s\\n" "$RECONCILER_GIT_USERNAME" "$(head -n 1 "$RECONCILER_GIT_TOKEN_FILE" | tr -d "\\r\\t ")"; }; f'
)


def url_credentials(url: str) -> str | None:
    """Why `url` may not be used (it carries a secret), or None.

    git puts the URL on its command line at every fetch and poll, where `ps` shows it to every
    user: an http(s) URL with any user info (`https://TOKEN@host` is how some forges take a
    token) and any URL with a password are refused. `ssh://git@host/...` (a user name) is fine.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        has_password = parts.password is not None
    except ValueError:
        return None
    if has_password or (parts.scheme.lower() in ("http", "https") and parts.username is not None):
        return (f"the git URL {redact_url(url)} carries credentials, which would show on git's command line "
                "(ps, /proc) at every poll; remove them from the URL and put the token in a file only the "
                "agent can read (chmod 600), named by the source's git.token_file (token_username for the "
                "user name)")
    return None


def redact_url(url: str) -> str:
    """The URL without user:password@ (for messages and logs)."""
    return _USERINFO.sub(r"\g<scheme>***@", url)


class GitSource:
    """Manifests from one ref (branch, tag or commit) and sub-path of a git repository."""

    def __init__(
        self,
        url: str,
        *,
        cache_dir: Path,  # repo.git and worktrees/ live here; owned by this source alone
        branch: str | None = None,  # exactly one of branch/tag/commit, or none: the remote HEAD
        tag: str | None = None,
        commit: str | None = None,  # a full SHA; fetched alone where the server allows it
        path: str = "",  # sub-path of the repository holding the manifests
        shallow: bool = True,  # --depth 1: only the deployed commit's objects
        poll_interval: float = 180.0,  # seconds between ls-remote polls (doco-cd's default)
        jitter: float = 0.2,  # +/- fraction of the interval, so many agents do not poll together
        ssh_key_file: Path | None = None,
        known_hosts_file: Path | None = None,  # with it, unknown host keys are refused
        token_file: Path | None = None,  # HTTPS token, read at every fetch
        token_username: str = "x-access-token",  # noqa: S107 - a user name; GitLab OAuth wants "oauth2"
        timeout: float = 300.0,  # per git command
        max_bytes: int = 64 * 1024 * 1024,  # the directory source's limits, for the files under `path`
        max_files: int = 10_000,
        keep: int = 3,  # most recent worktrees kept besides retained ones
        git: str = "git",
        ssh: str = "ssh",  # the ssh program GIT_SSH_COMMAND runs
        rng: random.Random | None = None,  # injected by tests
    ) -> None:
        if sum(x is not None for x in (branch, tag, commit)) > 1:
            raise errors.SourceInvalid("a git source takes one of branch, tag or commit", hint="remove the others")
        if commit is not None and not _HEX.match(commit):
            raise errors.SourceInvalid(
                f"commit {commit!r} is not a full hexadecimal commit id",
                hint="use the full 40-character SHA (git rev-parse <commit>)",
            )
        sub = PurePosixPath(path.strip("/")) if path.strip("/") else PurePosixPath()
        if sub.is_absolute() or ".." in sub.parts or any(p.startswith("-") for p in sub.parts):
            raise errors.SourceInvalid(f"sub-path {path!r} must be relative, inside the repository")
        if ssh_key_file is not None and token_file is not None:
            raise errors.SourceInvalid("a git source takes an SSH key or an HTTPS token, not both")
        refused = url_credentials(url)
        if refused is not None:
            raise errors.SourceInvalid(refused, hint="use token_file (HTTPS) or ssh_key_file (SSH)")
        parts = urllib.parse.urlsplit(url)
        if token_file is not None and parts.scheme not in ("http", "https"):
            raise errors.SourceInvalid(
                f"a token authenticates HTTP(S) only, not {redact_url(url)}",
                hint="use an https:// URL with the token, or an SSH key with an ssh:// URL",
            )
        # credentials are scoped to the repository's scheme, host and port: git asks again for
        # the host a redirect leads to, and gets nothing there
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        self._credential_scope = f"{parts.scheme}://{netloc}{f':{parts.port}' if parts.port else ''}"
        self.url = url
        self.cache_dir = Path(cache_dir)
        self.branch, self.tag, self.commit = branch, tag, commit
        self.subpath = str(sub) if sub.parts else ""
        self.shallow = shallow
        self.poll_interval = poll_interval
        self.jitter = jitter
        self.ssh_key_file = ssh_key_file
        self.known_hosts_file = known_hosts_file
        self.token_file = token_file
        self.token_username = token_username
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.keep = keep
        self._git = git
        self._ssh = ssh
        self._rng = rng or random.Random()  # noqa: S311 - poll jitter, not cryptography
        self._lock = threading.Lock()
        self._recent: list[str] = []
        self._retained: set[str] = set()
        self.last_revision: base.Revision | None = None  # the last successful fetch
        self._placed: str | None = None  # the commit `checkout` shows (None: not known yet)
        self._log = logs.get_logger("reconciler.sources.git").bind(url=redact_url(url), ref=self.ref_name)

    def __repr__(self) -> str:
        return f"GitSource({redact_url(self.url)!r}, ref={self.ref_name!r}, path={self.subpath!r})"

    @property
    def ref_name(self) -> str:
        """The followed ref as a full name (`refs/heads/main`), `HEAD`, or the pinned commit."""
        if self.branch is not None:
            return self.branch if self.branch.startswith("refs/") else f"refs/heads/{self.branch}"
        if self.tag is not None:
            return self.tag if self.tag.startswith("refs/") else f"refs/tags/{self.tag}"
        return self.commit if self.commit is not None else "HEAD"

    @property
    def repo(self) -> Path:
        return self.cache_dir / "repo.git"

    @property
    def worktrees(self) -> Path:
        return self.cache_dir / "worktrees"

    @property
    def checkout(self) -> Path:
        """The one checkout bind sources resolve in (see the module doc)."""
        return self.cache_dir / "checkout"

    # -- fetch ------------------------------------------------------------------------------

    def fetch(self) -> base.Revision:
        with self._lock:
            started = time.monotonic()
            self._ensure_repo()
            sha = self._fetch_commit()
            self._check_subpath(sha)
            self._check_limits(sha)
            tree = self._checkout(sha)
            path = tree / self.subpath if self.subpath else tree
            if sha in self._recent:
                self._recent.remove(sha)
            self._recent.insert(0, sha)
            self._collect()
            rev = self._revision(sha, path)
            self.last_revision = rev
            self._log.info("git_fetched", commit=sha, duration_s=round(time.monotonic() - started, 3))
            return rev

    def _revision(self, sha: str, path: Path) -> base.Revision:
        origin = f"{redact_url(self.url)}@{sha[:12]}" + (f":{self.subpath}" if self.subpath else "")
        live = self.checkout / self.subpath if self.subpath else self.checkout
        return base.Revision(id=sha, path=path, origin=origin, live=live, name=self.directory_name)

    def revision(self, id: str) -> base.Revision | None:
        """A commit fetched before and still in the local repository, checked out again (its
        worktree kept, or made anew); None when the repository no longer has it. Asks no remote."""
        if _HEX.match(id) is None:
            return None
        with self._lock:
            if not (self.repo / "HEAD").is_file() or self._try(["cat-file", "-e", f"{id}^{{commit}}"]) is None:
                return None
            try:
                self._check_subpath(id)
                self._check_limits(id)
                tree = self._checkout(id)
            except errors.SourceError:
                return None
            return self._revision(id, tree / self.subpath if self.subpath else tree)

    @property
    def directory_name(self) -> str:
        """The name of the directory `git clone URL` makes (or of the sub-path in it)."""
        if self.subpath:
            return PurePosixPath(self.subpath).name
        tail = urllib.parse.urlsplit(self.url).path.rstrip("/") if "://" in self.url else self.url.rstrip("/")
        return re.split(r"[/:]", tail)[-1].removesuffix(".git")

    def retain(self, ids: Collection[str]) -> None:
        with self._lock:
            self._retained = set(ids)
            self._collect()

    def place(self, revision: base.Revision) -> None:
        with self._lock:
            if self._placed == revision.id:
                return
            self._place(revision.id)
            self._placed = revision.id

    def _place(self, sha: str) -> None:
        co = self.checkout
        admin = self._admin_dir()
        if admin is not None and co.is_dir() and not co.is_symlink():
            # the repository named outright, never found through the checkout's own `.git`: a
            # container with a writable bind of the checkout can rewrite that file to point git
            # at a directory it made (its config's core.hooksPath: a hook run as root on the host)
            self._run(["--git-dir", str(admin), "--work-tree", str(co), "checkout", "--quiet", "--force", "--detach",
                       sha], git_dir=False)
            self._mend_link(co, admin)
            return
        if co.exists() and any(co.iterdir()):
            raise errors.SourceUnavailable(
                f"{co} is not a git checkout of this source but holds files (what containers wrote?)",
                hint=f"move its content away and remove {co}; the next pass checks the source out there again",
            )
        co.parent.mkdir(parents=True, exist_ok=True)
        self._run(["worktree", "add", "--quiet", "--detach", "--force", str(co), sha])

    def _admin_dir(self) -> Path | None:
        """The bare repository's own directory of the live checkout (`git worktree add` made it),
        found by its link back to the checkout, which only git and the agent write; None before
        the first checkout."""
        want = str(self.checkout / ".git")
        try:
            entries = list(os.scandir(self.repo / "worktrees"))
        except FileNotFoundError:
            return None
        for entry in entries:
            try:
                if (Path(entry.path) / "gitdir").read_text().strip() == want:
                    return Path(entry.path)
            except OSError:
                continue
        return None

    @staticmethod
    def _mend_link(co: Path, admin: Path) -> None:
        """The checkout's `.git` as git wrote it (`gitdir: ADMIN`), whatever was left there."""
        link = co / ".git"
        text = f"gitdir: {admin}\n"
        try:
            if link.is_file() and not link.is_symlink() and link.read_text() == text:
                return
        except OSError:
            pass
        if link.is_dir() and not link.is_symlink():
            shutil.rmtree(link)
        else:
            link.unlink(missing_ok=True)
        link.write_text(text)

    def _ensure_repo(self) -> None:
        if (self.repo / "HEAD").is_file():
            return
        self.cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._run(["init", "--quiet", "--bare", str(self.repo)], git_dir=False)

    def _fetch_commit(self) -> str:
        depth = ["--depth", "1"] if self.shallow else []
        if self.commit is not None:
            try:
                self._run(["fetch", "--quiet", "--no-tags", *depth, "--", self.url, f"{self.commit}:{_TARGET}"], network=True)
            except errors.SourceInvalid:
                # the server refuses unadvertised commits: fetch every branch and tag in full
                self._run(
                    ["fetch", "--quiet", "--force", "--", self.url,
                     "+refs/heads/*:refs/reconciler/heads/*", "+refs/tags/*:refs/reconciler/tags/*"],
                    network=True,
                )
                if self._try(["cat-file", "-e", f"{self.commit}^{{commit}}"]) is None:
                    raise errors.SourceInvalid(
                        f"commit {self.commit} is not in {redact_url(self.url)}",
                        hint="check the pinned commit id; it must be reachable from a branch or tag",
                    ) from None
                self._run(["update-ref", _TARGET, self.commit])
        else:
            self._run(["fetch", "--quiet", "--no-tags", "--force", *depth, "--", self.url, f"+{self.ref_name}:{_TARGET}"], network=True)
        return self._run(["rev-parse", "--verify", "--quiet", f"{_TARGET}^{{commit}}"]).strip()

    def _check_subpath(self, sha: str) -> None:
        if not self.subpath:
            return
        kind = self._try(["cat-file", "-t", f"{sha}:{self.subpath}"])
        if kind is None or kind.strip() != "tree":
            raise errors.SourceInvalid(
                f"{redact_url(self.url)} at {sha[:12]} has no directory {self.subpath!r}",
                hint="fix the source's path, or add the directory to the repository",
            )

    def _check_limits(self, sha: str) -> None:
        """Refuse a commit whose manifest directory holds more than the directory source's limits
        (counted from the tree before anything is checked out)."""
        treeish = f"{sha}:{self.subpath}" if self.subpath else sha
        out = self._run(["ls-tree", "-r", "-l", "-z", treeish])
        files = total = 0
        for entry in out.split("\0"):
            meta, _, _name = entry.partition("\t")
            fields = meta.split()
            if len(fields) != 4 or fields[1] != "blob":
                continue
            files += 1
            total += int(fields[3]) if fields[3].isdigit() else 0
            if files > self.max_files or total > self.max_bytes:
                raise errors.SourceInvalid(
                    f"{redact_url(self.url)} at {sha[:12]}: {self.subpath or 'the repository'} holds more than "
                    f"{self.max_files} files or {self.max_bytes} bytes",
                    hint="point the source's path at the manifests' directory, or move large files out of it",
                )

    def _checkout(self, sha: str) -> Path:
        dest = self.worktrees / sha
        if dest.is_dir():
            return dest
        self.worktrees.mkdir(mode=0o700, parents=True, exist_ok=True)   # checkouts: private
        tmp = self.worktrees / f".tmp-{sha[:12]}-{uuid.uuid4().hex[:8]}"
        try:
            self._run(["worktree", "add", "--quiet", "--detach", "--force", str(tmp), sha])
            self._run(["worktree", "move", str(tmp), str(dest)])
        except errors.SourceError:
            self._remove_worktree(tmp)
            raise
        return dest

    def _collect(self) -> None:
        keep = set(self._recent[: self.keep]) | self._retained
        del self._recent[self.keep :]
        try:
            entries = list(os.scandir(self.worktrees))
        except FileNotFoundError:
            return
        removed = False
        for entry in entries:
            if entry.name not in keep and entry.is_dir(follow_symlinks=False):
                self._remove_worktree(Path(entry.path))
                removed = True
        if removed:
            self._try(["worktree", "prune"])

    def _remove_worktree(self, path: Path) -> None:
        if self._try(["worktree", "remove", "--force", "--force", str(path)]) is None:
            shutil.rmtree(path, ignore_errors=True)

    # -- running git ------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_ENV)}
        env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C", LANGUAGE="C", GCM_INTERACTIVE="never")
        if self.ssh_key_file is not None:
            opts = ["-i", str(self.ssh_key_file), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
            if self.known_hosts_file is not None:
                opts += ["-o", f"UserKnownHostsFile={self.known_hosts_file}", "-o", "StrictHostKeyChecking=yes"]
            env["GIT_SSH_COMMAND"] = shlex.join([self._ssh, *opts])
        if self._token() is not None:  # validates the file; the helper reads it itself
            key = f"credential.{self._credential_scope}.helper"
            env.update(
                GIT_CONFIG_COUNT="2",
                GIT_CONFIG_KEY_0=key,
                GIT_CONFIG_VALUE_0="",  # an empty value drops helpers configured elsewhere
                GIT_CONFIG_KEY_1=key,
                GIT_CONFIG_VALUE_1=_CREDENTIAL_HELPER,
                RECONCILER_GIT_USERNAME=self.token_username,
                RECONCILER_GIT_TOKEN_FILE=str(self.token_file.absolute() if self.token_file else ""),
            )
        return env

    def _token(self) -> str | None:
        if self.token_file is None:
            return None
        try:
            fd = os.open(self.token_file, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
            try:
                st = os.fstat(fd)
                token = os.read(fd, 64 << 10).decode("utf-8", "replace").strip() if stat.S_ISREG(st.st_mode) else ""
            finally:
                os.close(fd)
        except OSError as e:
            raise errors.SourceInvalid(
                f"cannot read the token file {self.token_file}: {e.strerror}",
                hint="check the path and that the agent's user can read it",
            ) from None
        if not stat.S_ISREG(st.st_mode):
            raise errors.SourceInvalid(f"the token file {self.token_file} is not a regular file")
        if st.st_mode & 0o077:
            raise errors.SourceInvalid(
                f"the token file {self.token_file} can be read by other users (mode {stat.S_IMODE(st.st_mode):04o})",
                hint=f"chmod 600 {self.token_file} (and rotate the token if others could read it)",
            )
        if not token or "\n" in token:
            raise errors.SourceInvalid(f"the token file {self.token_file} must hold one token on one line")
        return token

    def _redact(self, text: str) -> str:
        text = redact_url(text)
        if self.token_file is not None:
            try:
                token = self.token_file.read_text().strip()
            except OSError:
                token = ""
            if token:
                text = text.replace(token, "***")
                text = text.replace(base64.b64encode(f"{self.token_username}:{token}".encode()).decode(), "***")
        return text

    def run_git(self, args: Sequence[str], *, git_dir: bool = True, network: bool = False, check: bool = True) -> str:
        """git `args` on this source's repository (`git_dir`), with its credentials when `network`;
        its output. Failures raise like a fetch's (redacted), or give "" with `check=False`."""
        if check:
            return self._run(args, git_dir=git_dir, network=network)
        try:
            return self._run(args, git_dir=git_dir, network=network)
        except errors.SourceError:
            return ""

    def _try(self, args: Sequence[str]) -> str | None:
        try:
            return self._run(args)
        except errors.SourceError:
            return None

    def _run(self, args: Sequence[str], *, git_dir: bool = True, network: bool = False) -> str:
        # no hook and no fsmonitor program, whatever a configuration says: git runs nothing but itself
        argv = [self._git, "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false"]
        if git_dir:
            argv += ["--git-dir", str(self.repo)]
        argv += list(args)
        env: Mapping[str, str] = self._env() if network else {
            k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_ENV)
        } | {"LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"}
        what = f"git {args[0]}"
        try:
            proc = subprocess.run(
                argv, env=dict(env), capture_output=True, text=True, timeout=self.timeout, check=False,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise errors.SourceInvalid(f"the git program {self._git!r} was not found", hint="install git") from None
        except subprocess.TimeoutExpired:
            raise errors.SourceUnavailable(
                f"{what} from {redact_url(self.url)} took longer than {self.timeout:.0f} s",
                hint="the loop retries; check the network or raise the source's timeout",
            ) from None
        if proc.returncode == 0:
            return proc.stdout
        detail = self._redact(" ".join(proc.stderr.split()))[-600:]
        low = detail.lower()
        where = redact_url(self.url)
        if network and any(s in low for s in _AUTH_FAILED):
            raise errors.SourceInvalid(
                f"{what} from {where}: credentials refused ({detail})",
                hint="check the source's token file or SSH key and its access to the repository",
            )
        if network and any(s in low for s in _REF_MISSING):
            raise errors.SourceInvalid(
                f"{what} from {where}: {self.ref_name} not found ({detail})",
                hint="check the source's branch, tag or commit",
            )
        if network:
            raise errors.SourceUnavailable(
                f"{what} from {where} failed: {detail}",
                hint="the loop retries with backoff; the last good revision stays applied",
            )
        raise errors.SourceUnavailable(f"{what} in {self.repo} failed: {detail}")

    # -- watch ------------------------------------------------------------------------------

    def remote_commit(self) -> str | None:
        """The commit the followed ref points to on the remote now (ls-remote); None: no such ref."""
        if self.commit is not None:
            return self.commit
        ref = self.ref_name
        patterns = [ref, f"{ref}^{{}}"] if ref.startswith("refs/tags/") else [ref]
        out = self._run(["ls-remote", "--", self.url, *patterns], git_dir=False, network=True)
        found: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, name = line.partition("\t")
            found[name.strip()] = sha.strip()
        return found.get(f"{ref}^{{}}") or found.get(ref)

    def watch(self, wake: base.Wake) -> GitWatch:
        return GitWatch(self, wake)

    def next_poll_delay(self) -> float:
        j = self.jitter
        return max(0.0, self.poll_interval * (1.0 + self._rng.uniform(-j, j)))


class GitWatch:
    """Polls the remote with ls-remote; wakes when the ref moved away from the last fetch."""

    def __init__(self, source: GitSource, wake: base.Wake) -> None:
        self._source = source
        self._wake = wake
        self._closing = threading.Event()
        self._log = logs.get_logger("reconciler.sources.git").bind(url=redact_url(source.url), ref=source.ref_name)
        self._thread = threading.Thread(target=self._loop, name=f"git poll {redact_url(source.url)}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closing.set()
        self._thread.join()

    def __enter__(self) -> GitWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _loop(self) -> None:
        if self._source.commit is not None:
            return  # a pinned commit never moves
        while not self._closing.wait(self._source.next_poll_delay()):
            self.poll()

    def poll(self) -> bool:
        """One ls-remote; True (and a wake) if the remote commit differs from the last fetch."""
        try:
            remote = self._source.remote_commit()
        except errors.SourceError as e:
            self._log.warning("git_poll_failed", error=str(e))
            return False
        last = self._source.last_revision
        if remote is None or (last is not None and last.id == remote):
            return False
        reason = f"git {redact_url(self._source.url)}: {self._source.ref_name} is at {remote[:12]}"
        try:
            self._wake(reason)
        except Exception:  # noqa: BLE001 - a failing callback must not kill the poller
            self._log.exception("git_wake_failed")
        return True
