"""Registry authentication: challenge parsing, Basic, and the Bearer token flow.

The client sends a request with what it already knows for the host (a cached token for the
scopes, or Basic); on 401 it parses `WWW-Authenticate` and, for Bearer, asks the realm for a
token (OAuth2 POST when it has a secret, falling back to GET on 400/401/403/404/405; anonymous
GET otherwise), caches it per (host, scopes) for `expires_in` (default 60 s) and retries once.
`error="insufficient_scope"` / `invalid_token` drops the cached token before re-asking.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import httpx

from reconciler.registry_client import credentials, errors

__all__ = ["Challenge", "Token", "TokenCache", "basic_header", "fetch_token", "parse_challenges"]

DEFAULT_EXPIRES_IN = 60.0
CLIENT_ID = "reconciler"


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower-case: "bearer", "basic"
    params: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def scopes(self) -> list[str]:
        s = self.params.get("scope", "")
        return [x for x in s.split(" ") if x]


def _skip_ws(s: str, i: int) -> int:
    while i < len(s) and s[i] in " \t":
        i += 1
    return i


def _token(s: str, i: int) -> tuple[str, int]:
    j = i
    while j < len(s) and s[j] not in " \t,=\"":
        j += 1
    return s[i:j], j


def _quoted(s: str, i: int) -> tuple[str, int]:
    # s[i] == '"'
    out = []
    i += 1
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            out.append(s[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    return "".join(out), i


def parse_challenges(headers: Iterable[str]) -> list[Challenge]:
    """Parse WWW-Authenticate values (RFC 7235): several challenges per header, quoted
    parameter values that may contain commas and escaped quotes."""
    out: list[Challenge] = []
    for header in headers:
        s, i = header, 0
        current: Challenge | None = None
        while i < len(s):
            i = _skip_ws(s, i)
            if i < len(s) and s[i] == ",":
                i += 1
                continue
            word, j = _token(s, i)
            if not word:
                i = j + 1
                continue
            k = _skip_ws(s, j)
            if k < len(s) and s[k] == "=" and current is not None:
                k = _skip_ws(s, k + 1)
                if k < len(s) and s[k] == '"':
                    value, k = _quoted(s, k)
                else:
                    value, k = _token(s, k)
                current.params[word.lower()] = value
                i = k
            else:
                current = Challenge(word.lower(), {})
                out.append(current)
                i = j
    return out


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    expires_at: float


class TokenCache:
    """Tokens per (host, scope string) with expiry; thread-safe; one fetch per key at a time."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[tuple[str, str], Token] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}

    def key_lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def get(self, key: tuple[str, str]) -> Token | None:
        with self._lock:
            tok = self._tokens.get(key)
            if tok is not None and tok.expires_at <= self._clock():
                del self._tokens[key]
                return None
            return tok

    def put(self, key: tuple[str, str], token: Token) -> None:
        with self._lock:
            self._tokens[key] = token

    def drop(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._tokens.pop(key, None)


def basic_header(cred: credentials.Credential) -> str:
    raw = f"{cred.username}:{cred.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def fetch_token(
    http: httpx.Client,
    challenge: Challenge,
    scopes: list[str],
    cred: credentials.Credential | None,
    *,
    registry: str,
    clock: Callable[[], float] = time.monotonic,
) -> Token:
    """Ask the challenge's realm for a token covering `scopes`."""
    realm = challenge.params.get("realm")
    if not realm:
        raise errors.Unauthorized(f"{registry} sent a Bearer challenge without a realm")
    service = challenge.params.get("service")
    started = clock()
    resp: httpx.Response | None = None
    try:
        if cred is not None and (cred.password or cred.identity_token):
            form = {"client_id": CLIENT_ID, "scope": " ".join(scopes)}
            if service:
                form["service"] = service
            if cred.identity_token is not None:
                form.update(grant_type="refresh_token", refresh_token=cred.identity_token)
            else:
                form.update(grant_type="password", username=cred.username, password=cred.password)
            resp = http.post(realm, data=form)
            if resp.status_code in (400, 401, 403, 404, 405) and cred.identity_token is None:
                resp = None  # this server has no OAuth2 POST: use GET with Basic auth
        if resp is None:
            params: list[tuple[str, str | int | float | bool | None]] = [("scope", s) for s in scopes]
            if service:
                params.insert(0, ("service", service))
            headers = {}
            if cred is not None and cred.identity_token is None and (cred.username or cred.password):
                headers["Authorization"] = basic_header(cred)
            resp = http.get(realm, params=params, headers=headers)
    except httpx.HTTPError as e:
        raise errors.Unavailable(f"token server for {registry} unreachable: {type(e).__name__}: {e}") from None
    if resp.status_code in (401, 403):
        hint = f"run docker login {registry}" if cred is None else f"check the credentials for {registry} (docker login {registry})"
        raise errors.Unauthorized(
            f"token server for {registry} refused the credentials (HTTP {resp.status_code})",
            hint=hint, status=resp.status_code,
        )
    if resp.status_code >= 400:
        cls = errors.Unavailable if resp.status_code >= 500 else errors.Unauthorized
        raise cls(f"token server for {registry} answered HTTP {resp.status_code}", status=resp.status_code)
    try:
        doc = resp.json()
        value = doc.get("token") or doc.get("access_token")
        expires_in = float(doc.get("expires_in") or DEFAULT_EXPIRES_IN)
    except (ValueError, AttributeError, TypeError):
        raise errors.Unauthorized(f"token server for {registry} sent an invalid token response") from None
    if not isinstance(value, str) or not value:
        raise errors.Unauthorized(f"token server for {registry} sent no token")
    if expires_in <= 0:
        expires_in = DEFAULT_EXPIRES_IN
    # Renew a little early so a token does not expire between check and use.
    return Token(value, started + max(expires_in - min(10.0, expires_in / 10), 1.0))
