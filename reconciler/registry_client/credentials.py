"""Where registry credentials come from, in the order the Docker CLI and Podman use.

CredentialStore().get(registry) looks in:

1. credentials given to the constructor (`static={"host:port": Credential(...)}`);
2. `DOCKER_AUTH_CONFIG` (a JSON document with an `auths` map, as in config.json);
3. the Docker config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
   `credHelpers[host]`, then `credsStore`, then `auths[host]` (both through the
   docker-credential-<name> helper protocol: `get` with the server URL on stdin);
4. Podman's auth file (`$REGISTRY_AUTH_FILE`, else `${XDG_RUNTIME_DIR}/containers/auth.json`).

Docker Hub's key is `https://index.docker.io/v1/` (also matched: docker.io, index.docker.io,
registry-1.docker.io). Other keys match by host[:port] after dropping a scheme and path.
A username of `<token>` (or an `identitytoken` entry) means the secret is an identity token,
exchanged with the OAuth2 refresh-token grant.

The write side, `reconcile login` and `logout` (as `docker login`/`logout` write them), is here
too, beside the reading, so the file's format has one home: `save(registry, cred)` runs the
registry's helper (`credHelpers[host]`, else `credsStore`: `docker-credential-<name> store`,
with an empty `auths[key]` entry left in the file as docker leaves one), else writes
`auths[key].auth` (base64 `user:password`, or `identitytoken` for a token server's refresh
token) into the Docker config; `erase(registry)` runs the helper's `erase` and drops every
`auths` entry the reading would match. The file is replaced atomically (a temporary file in its
directory, renamed over it; a symlink's target is what is replaced), mode 0600, keeping every
other key it had.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reconciler._dataclass import dataclass, field
from reconciler.registry_client import errors

__all__ = [
    "DOCKER_HUB_KEY",
    "Credential",
    "CredentialStore",
    "Saved",
    "docker_config_path",
    "from_auth_config",
    "login_registry",
    "server_key",
    "to_auth_config",
]

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}
_NOT_FOUND = "credentials not found in native keychain"
IDENTITY_TOKEN_USER = "<token>"  # noqa: S105 - a marker username, not a secret


@dataclass(frozen=True)
class Credential:
    """A username and secret; `identity_token` set means use the OAuth2 refresh-token grant."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str | None = field(default=None, repr=False)

    @property
    def is_identity_token(self) -> bool:
        return self.identity_token is not None


@dataclass(frozen=True)
class Saved:
    """Where `CredentialStore.save` put credentials: `where` is the helper
    (`docker-credential-NAME`) or the config file's path; `in_clear` says a password was written
    into the file (docker's warning about unencrypted storage)."""

    where: str
    in_clear: bool


def server_key(registry: str) -> str:
    """The key a registry's credentials are stored under."""
    return DOCKER_HUB_KEY if registry in _HUB_ALIASES else registry


def login_registry(server: str | None) -> str:
    """The registry `docker login SERVER` means: Docker Hub (`docker.io`) for none, or for one of
    its names; else SERVER's host[:port], a scheme and a path dropped (`http://h:5000/v2/` is
    `h:5000`: docker/cli ConvertToHostname). Its key is `server_key` of it."""
    if not server:
        return "docker.io"
    host = _hostname(server.strip())
    if not host or any(c.isspace() or c in "@?#\\" for c in host):
        raise errors.CredentialError(f"invalid registry address {server!r}",
                                     hint="give the registry as HOST[:PORT], as in an image reference")
    return "docker.io" if host in _HUB_ALIASES else host


def _hostname(key: str) -> str:
    """`https://host:port/v1/` → `host:port` (docker/cli ConvertToHostname)."""
    k = key
    for prefix in ("http://", "https://"):
        if k.startswith(prefix):
            k = k[len(prefix) :]
    return k.split("/", 1)[0]


def _matches(key: str, registry: str) -> bool:
    if registry in _HUB_ALIASES:
        return key == DOCKER_HUB_KEY or _hostname(key) in _HUB_ALIASES
    return key == registry or _hostname(key) == registry


def _decode_entry(entry: Mapping[str, Any], where: str) -> Credential | None:
    ident = entry.get("identitytoken")
    auth = entry.get("auth")
    user, password = "", ""
    if auth:
        try:
            decoded = base64.b64decode(str(auth), validate=False).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise errors.CredentialError(f"invalid base64 `auth` entry in {where}") from None
        user, _, password = decoded.partition(":")
        password = password.strip("\x00")
    elif entry.get("username"):
        user, password = str(entry["username"]), str(entry.get("password", ""))
    if ident:
        return Credential(user, "", identity_token=str(ident))
    if user or password:
        if user == IDENTITY_TOKEN_USER:
            return Credential("", "", identity_token=password)
        return Credential(user, password)
    return None


def from_auth_config(doc: Mapping[str, Any]) -> Credential | None:
    """Docker's AuthConfig (what an Engine API client sends base64-encoded in `X-Registry-Auth`,
    and `docker login` in the body of `/auth`): username + password, `auth`, or identitytoken."""
    return _decode_entry(doc, "the request's registry auth")


def to_auth_config(cred: Credential, registry: str) -> dict[str, str]:
    """`cred` as Docker's AuthConfig for `registry` (what `from_auth_config` reads): what an
    Engine API client sends, base64-encoded in `X-Registry-Auth`, for the engine to pull or push
    with (the docker CLI's form: `serveraddress` is the key the credentials are stored under)."""
    doc = {"serveraddress": server_key(registry)}
    if cred.identity_token is not None:
        doc["identitytoken"] = cred.identity_token
    else:
        doc.update(username=cred.username, password=cred.password)
    return doc


Runner = Callable[[list[str], str], "tuple[int, str]"]


def docker_config_path(env: Mapping[str, str] | None = None) -> Path:
    """The Docker client's config file, as the docker CLI finds it: `$DOCKER_CONFIG/config.json`,
    else `~/.docker/config.json` (`env`: os.environ when None). Its credentials are read here;
    its other settings (`detachKeys`: cli/attaching.py) by whoever needs them, from this path."""
    base = (os.environ if env is None else env).get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def _run_helper(argv: list[str], stdin: str) -> tuple[int, str]:
    try:
        p = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        raise errors.CredentialError(
            f"credential helper {argv[0]} is not installed",
            hint=f"install {argv[0]} or remove it from the Docker config ($DOCKER_CONFIG/config.json, "
                 "else ~/.docker/config.json)",
        ) from None
    except subprocess.TimeoutExpired:
        raise errors.CredentialError(f"credential helper {argv[0]} timed out") from None
    if p.returncode == 0:
        return 0, p.stdout or ""
    return p.returncode, (p.stdout or "") + (p.stderr or "")


class CredentialStore:
    """Looks up credentials per registry host; see the module docstring for the order."""

    def __init__(
        self,
        *,
        static: Mapping[str, Credential] | None = None,
        docker_config: Path | None = None,
        auth_file: Path | None = None,
        env: Mapping[str, str] | None = None,
        runner: Runner | None = None,
    ) -> None:
        self._env = os.environ if env is None else env
        self._static = dict(static or {})
        self._docker_config = docker_config_path(self._env) if docker_config is None else docker_config
        if auth_file is None:
            env_file = self._env.get("REGISTRY_AUTH_FILE")
            xdg = self._env.get("XDG_RUNTIME_DIR")
            if env_file:
                auth_file = Path(env_file)
            elif xdg:
                auth_file = Path(xdg) / "containers" / "auth.json"
        self._auth_file = auth_file
        self._run = runner or _run_helper

    @property
    def docker_config(self) -> Path:
        """The Docker config file this store reads and `save`/`erase` write."""
        return self._docker_config

    def get(self, registry: str) -> Credential | None:
        """Credentials for `registry` (host[:port] as in a reference), or None (anonymous)."""
        for key, cred in self._static.items():
            if _matches(key, registry):
                return cred
        found = self._from_env(registry)
        if found:
            return found
        found = self.stored(registry)
        if found:
            return found
        return self._from_auth_file(registry)

    def stored(self, registry: str) -> Credential | None:
        """What the Docker config alone holds for `registry`: its helper's (`credHelpers[host]`,
        else `credsStore`), else `auths`: what `docker login` wrote and `save` writes."""
        doc = self._load(self._docker_config)
        if not doc:
            return None
        for key, helper in _helpers(doc).items():
            if _matches(key, registry):
                return self._helper(str(helper), registry)
        if doc.get("credsStore"):
            found = self._helper(str(doc["credsStore"]), registry)
            if found:
                return found
        return self._from_auths(doc, registry, str(self._docker_config))

    def elsewhere(self, registry: str) -> list[str]:
        """The places outside the Docker config that hold credentials for `registry`, which
        `save` and `erase` leave alone: `DOCKER_AUTH_CONFIG` (read before the Docker config, so
        it wins over a login) and Podman's auth file (read after it: `podman logout`)."""
        places = ["DOCKER_AUTH_CONFIG"] if self._from_env(registry) else []
        if self._from_auth_file(registry):
            places.append(str(self._auth_file))
        return places

    def _from_env(self, registry: str) -> Credential | None:
        env_cfg = self._env.get("DOCKER_AUTH_CONFIG")
        if not env_cfg:
            return None
        try:
            doc = json.loads(env_cfg)
        except ValueError:
            raise errors.CredentialError("DOCKER_AUTH_CONFIG is not valid JSON") from None
        return self._from_auths(doc, registry, "DOCKER_AUTH_CONFIG") if isinstance(doc, dict) else None

    def _from_auth_file(self, registry: str) -> Credential | None:
        if self._auth_file is None:
            return None
        doc = self._load(self._auth_file)
        return self._from_auths(doc, registry, str(self._auth_file)) if doc else None

    # -- the write side: `reconcile login` / `logout` --------------------------------------------

    def save(self, registry: str, cred: Credential) -> Saved:
        """Keep `cred` for `registry` where `docker login` would: the registry's helper
        (`docker-credential-<name> store`; the file gets an empty `auths` entry, as docker's),
        else `auths[key]` in the Docker config. An identity token is kept in place of the password
        (`identitytoken`; a helper's username `<token>`)."""
        key = server_key(registry)
        doc = self._load_for_update()
        auths = _auths_for_update(doc, self._docker_config)
        helper = _helper_for(doc, registry)
        if helper is not None:
            binary = f"docker-credential-{helper}"
            token = cred.identity_token
            payload = {"ServerURL": key, "Username": IDENTITY_TOKEN_USER if token is not None else cred.username,
                       "Secret": token if token is not None else cred.password}
            code, out = self._run([binary, "store"], json.dumps(payload))
            if code != 0:
                raise errors.CredentialError(
                    f"credential helper {binary} could not store the credentials for {key} (exit {code})"
                    + _said(out), hint=f"check that {binary} works, or remove it from {self._docker_config}")
            if auths.get(key) != {}:
                auths[key] = {}
                _write_config(self._docker_config, doc)
            return Saved(binary, in_clear=False)
        entry: dict[str, str] = {}
        if cred.username or cred.password:
            entry["auth"] = base64.b64encode(f"{cred.username}:{cred.password}".encode()).decode()
        if cred.identity_token is not None:
            entry["identitytoken"] = cred.identity_token
        changed = auths.get(key) != entry
        if changed:
            auths[key] = entry
            _write_config(self._docker_config, doc)
        return Saved(str(self._docker_config), in_clear=changed and bool(cred.password))

    def erase(self, registry: str) -> None:
        """Forget what the Docker config holds for `registry`, as `docker logout`: the helper's
        `erase` for its key (and the `http://`, `https://` forms docker tries too; "not found" is
        no error), and every `auths` entry `get` would match. CredentialError when the helper
        failed (what it could, it erased; the file's entries are gone)."""
        key = server_key(registry)
        doc = self._load_for_update()
        auths = _auths_for_update(doc, self._docker_config)
        failed: list[str] = []
        helper = _helper_for(doc, registry)
        binary = f"docker-credential-{helper}"
        hint = f"erase them with `echo {key} | {binary} erase`"
        if helper is not None:
            forms = [key] if key == DOCKER_HUB_KEY else [key, f"http://{key}", f"https://{key}"]
            for form in forms:
                try:
                    code, out = self._run([binary, "erase"], form)
                except errors.CredentialError as exc:   # not installed, timed out: the file's entries still go
                    failed.append(exc.message)
                    hint = exc.hint or hint
                    break
                if code != 0 and _NOT_FOUND not in out:
                    failed.append(f"{form}: exit {code}{_said(out)}")
        gone = [k for k in auths if _matches(k, registry)]
        for k in gone:
            del auths[k]
        if gone:
            _write_config(self._docker_config, doc)
        if failed:
            raise errors.CredentialError(f"{binary} could not erase the credentials for {key}: " + "; ".join(failed),
                                         hint=hint)

    def _load_for_update(self) -> dict[str, Any]:
        """The Docker config to change: {} when there is none; an error (nothing written) when
        it is not a JSON object, so a file this cannot read is never replaced."""
        doc = self._load(self._docker_config)
        if doc is None and self._docker_config.exists():
            raise errors.CredentialError(f"{self._docker_config} is not a JSON object",
                                         hint=f"fix or remove {self._docker_config}")
        return doc or {}

    def _load(self, path: Path) -> dict[str, Any] | None:
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise errors.CredentialError(f"cannot read {path}: {e.strerror}") from None
        try:
            doc = json.loads(text)
        except ValueError:
            raise errors.CredentialError(f"{path} is not valid JSON", hint=f"fix or remove {path}") from None
        return doc if isinstance(doc, dict) else None

    def _from_auths(self, doc: Mapping[str, Any], registry: str, where: str) -> Credential | None:
        auths = doc.get("auths") or {}
        if not isinstance(auths, dict):
            return None
        exact = [k for k in auths if k == server_key(registry)]
        for key in exact + [k for k in auths if k not in exact]:
            if _matches(key, registry) and isinstance(auths[key], dict):
                cred = _decode_entry(auths[key], where)
                if cred:
                    return cred
        return None

    def _helper(self, name: str, registry: str) -> Credential | None:
        binary = f"docker-credential-{name}"
        code, out = self._run([binary, "get"], server_key(registry))
        if code != 0:
            if _NOT_FOUND in out:
                return None
            raise errors.CredentialError(
                f"credential helper {binary} failed for {registry} (exit {code})",
                hint=f"check `echo {server_key(registry)} | {binary} get`",
            )
        try:
            doc = json.loads(out)
            user, secret = str(doc.get("Username", "")), str(doc.get("Secret", ""))
        except (ValueError, AttributeError):
            raise errors.CredentialError(f"credential helper {binary} printed invalid JSON") from None
        if user == IDENTITY_TOKEN_USER:
            return Credential("", "", identity_token=secret)
        return Credential(user, secret) if (user or secret) else None


def _helpers(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    helpers = doc.get("credHelpers")
    return helpers if isinstance(helpers, dict) else {}


def _helper_for(doc: Mapping[str, Any], registry: str) -> str | None:
    """The helper that keeps `registry`'s credentials: `credHelpers[host]`, else `credsStore`."""
    for key, helper in _helpers(doc).items():
        if _matches(key, registry):
            return str(helper)
    return str(doc["credsStore"]) if doc.get("credsStore") else None


def _auths_for_update(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    auths = doc.setdefault("auths", {})
    if not isinstance(auths, dict):
        raise errors.CredentialError(f"`auths` in {path} is not a JSON object", hint=f"fix or remove {path}")
    return auths


def _said(out: str) -> str:
    """What a helper printed when it failed, short (a message, never the secret it was given)."""
    text = " ".join(out.split())
    return f": {text[:200]}" if text else ""


def _write_config(path: Path, doc: Mapping[str, Any]) -> None:
    """Replace the Docker config at `path` with `doc`: written to a temporary file in the same
    directory, flushed, renamed over it, so a reader sees the old file or the new one whole. Mode
    0600 (it holds secrets), the old file's owner kept where we may (a root `login` into a
    user's DOCKER_CONFIG); a symlink's target is what is replaced (docker's Save does the same);
    the directory is made 0700 when missing."""
    target = Path(os.path.realpath(path))
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            old = target.stat()
        except FileNotFoundError:
            old = None
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                os.fchmod(f.fileno(), 0o600)
                if old is not None and (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                    try:
                        os.fchown(f.fileno(), old.st_uid, old.st_gid)
                    except PermissionError:
                        pass
                f.write(json.dumps(doc, indent="\t"))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        dirfd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)
    except OSError as e:
        raise errors.CredentialError(f"cannot write {path}: {e.strerror}",
                                     hint=f"check the permissions of {target.parent}") from None
