"""Registry authentication: challenge parsing, Basic, and the Bearer token flow.

The client sends a request with what it already knows for the host (a cached token for the
scopes, or Basic); on 401 it parses `WWW-Authenticate` and, for Bearer, asks the realm for a
token (OAuth2 POST when it has a secret, falling back to GET on 400/401/403/404/405; anonymous
GET otherwise), caches it per (host, scopes) for `expires_in` (default 60 s, clamped to 10 s..1 h)
and retries once. `error="insufficient_scope"` / `invalid_token` drops the cached token before
re-asking.

`offline=True` (`docker login`'s check) asks for a refresh token as well, as dockerd's login does
(`access_type=offline` in the OAuth2 POST, `offline_token=true` in the GET); a token server that
gives one (`refresh_token`) lets the login keep that identity token instead of the password.

The realm comes from the registry's answer, so it is checked before anything is sent to it:
only `https`, unless the caller's `http_realm_ok` says this host may be spoken to in clear
(the client allows loopback and registries named insecure). Otherwise a registry, or whoever
sits on its plain-http path, could send passwords and tokens to any http URL.
"""

from __future__ import annotations

import base64
import math
import threading
import time
from collections.abc import Callable, Iterable

import httpx

from reconciler._dataclass import dataclass, field
from reconciler.registry_client import credentials, errors

__all__ = ["Challenge", "Token", "TokenCache", "basic_header", "fetch_token", "parse_challenges"]

DEFAULT_EXPIRES_IN = 60.0      # the token spec's value when the server names none
MIN_EXPIRES_IN = 10.0          # a shorter one would make every request ask for a token
MAX_EXPIRES_IN = 3600.0        # a longer one is asked again after an hour anyway
CLIENT_ID = "reconciler"


@dataclass(frozen=True)
class Challenge:
    """A registry's WWW-Authenticate challenge: its scheme and parameters."""

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
    """A bearer token and when it expires."""

    value: str = field(repr=False)
    expires_at: float
    refresh_token: str | None = field(default=None, repr=False)   # asked for with `offline`


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
    http_realm_ok: Callable[[httpx.URL], bool] = lambda url: False,
    offline: bool = False,
) -> Token:
    """Ask the challenge's realm for a token covering `scopes`; an http realm only where
    `http_realm_ok` allows it; with `offline`, a refresh token too (see the module docstring)."""
    realm = _realm(challenge, registry, http_realm_ok)
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
                if offline:
                    form["access_type"] = "offline"
            resp = http.post(realm, data=form)
            if resp.status_code in (400, 401, 403, 404, 405) and cred.identity_token is None:
                resp = None  # this server has no OAuth2 POST: use GET with Basic auth
        if resp is None:
            params: list[tuple[str, str | int | float | bool | None]] = [("scope", s) for s in scopes]
            if service:
                params.insert(0, ("service", service))
            if offline:
                params += [("offline_token", "true"), ("client_id", CLIENT_ID)]
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
        expires_in = _expires_in(doc.get("expires_in"))
        refresh = doc.get("refresh_token")
    except (ValueError, AttributeError, TypeError):
        raise errors.Unauthorized(f"token server for {registry} sent an invalid token response") from None
    if not isinstance(value, str) or not value:
        raise errors.Unauthorized(f"token server for {registry} sent no token")
    # Renew a little early so a token does not expire between check and use.
    return Token(value, started + max(expires_in - min(10.0, expires_in / 10), 1.0),
                 refresh_token=refresh if isinstance(refresh, str) and refresh else None)


def _realm(challenge: Challenge, registry: str, http_realm_ok: Callable[[httpx.URL], bool]) -> str:
    """The challenge's realm, if credentials and tokens may go there."""
    realm = challenge.params.get("realm")
    if not realm:
        raise errors.Unauthorized(f"{registry} sent a Bearer challenge without a realm")
    try:
        url = httpx.URL(realm)
    except httpx.InvalidURL:
        url = None
    if url is None or not url.host or url.scheme not in ("https", "http"):
        raise errors.Unauthorized(f"{registry} sent a Bearer realm that is not an http(s) URL: {realm[:200]!r}",
                                  code="INSECURE_REALM")
    if url.scheme == "http" and not http_realm_ok(url):
        raise errors.Unauthorized(
            f"{registry} asks for a token at {realm[:200]}, which is plain http: refused, since credentials "
            "and tokens would cross the network in clear",
            code="INSECURE_REALM",
            hint="the registry's token server must use https; plain http is accepted only on loopback, on a "
                 "host named insecure, and on the host of a registry named insecure",
        )
    return realm


def _expires_in(value: object) -> float:
    """A token's lifetime in seconds: the spec's default when the server names none (or zero, a
    negative number, NaN, infinity or no number), else clamped to MIN..MAX_EXPIRES_IN."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return DEFAULT_EXPIRES_IN
    try:
        seconds = float(value)
    except ValueError:
        return DEFAULT_EXPIRES_IN
    if not math.isfinite(seconds) or seconds <= 0:
        return DEFAULT_EXPIRES_IN
    return min(max(seconds, MIN_EXPIRES_IN), MAX_EXPIRES_IN)
