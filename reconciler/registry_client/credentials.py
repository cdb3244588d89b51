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
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reconciler._dataclass import dataclass, field
from reconciler.registry_client import errors

__all__ = ["DOCKER_HUB_KEY", "Credential", "CredentialStore", "from_auth_config", "server_key", "to_auth_config"]

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


def server_key(registry: str) -> str:
    """The key a registry's credentials are stored under."""
    return DOCKER_HUB_KEY if registry in _HUB_ALIASES else registry


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


def _run_helper(argv: list[str], stdin: str) -> tuple[int, str]:
    try:
        p = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        raise errors.CredentialError(
            f"credential helper {argv[0]} is not installed",
            hint=f"install {argv[0]} or remove it from ~/.docker/config.json",
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
        if docker_config is None:
            base = self._env.get("DOCKER_CONFIG")
            docker_config = Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"
        self._docker_config = docker_config
        if auth_file is None:
            env_file = self._env.get("REGISTRY_AUTH_FILE")
            xdg = self._env.get("XDG_RUNTIME_DIR")
            if env_file:
                auth_file = Path(env_file)
            elif xdg:
                auth_file = Path(xdg) / "containers" / "auth.json"
        self._auth_file = auth_file
        self._run = runner or _run_helper

    def get(self, registry: str) -> Credential | None:
        """Credentials for `registry` (host[:port] as in a reference), or None (anonymous)."""
        for key, cred in self._static.items():
            if _matches(key, registry):
                return cred
        env_cfg = self._env.get("DOCKER_AUTH_CONFIG")
        if env_cfg:
            try:
                doc = json.loads(env_cfg)
            except ValueError:
                raise errors.CredentialError("DOCKER_AUTH_CONFIG is not valid JSON") from None
            found = self._from_auths(doc, registry, "DOCKER_AUTH_CONFIG")
            if found:
                return found
        doc = self._load(self._docker_config)
        if doc:
            helpers = doc.get("credHelpers") or {}
            for key, helper in helpers.items():
                if _matches(key, registry):
                    return self._helper(str(helper), registry)
            if doc.get("credsStore"):
                found = self._helper(str(doc["credsStore"]), registry)
                if found:
                    return found
            found = self._from_auths(doc, registry, str(self._docker_config))
            if found:
                return found
        if self._auth_file is not None:
            doc = self._load(self._auth_file)
            if doc:
                return self._from_auths(doc, registry, str(self._auth_file))
        return None

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
