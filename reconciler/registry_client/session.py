"""The session of a RegistryClient: one pooled httpx.Client, auth, errors and retries.

Pull and push (pull.py, push.py) are requests sent through it; `RegistryClient` (client.py)
is all three in one object.

* Auth is per API host: a learnt challenge (Basic or Bearer) is applied before each request;
  a 401 re-learns it and retries once. Authorization is only ever attached to requests whose
  URL is on the registry's own API host (never on a redirect or upload Location elsewhere,
  never to a descriptor's `urls`); httpx also drops it on cross-origin redirects.
* Retries: transport errors, 5xx and 408 are retried with backoff (`backoff * 2**n`, capped),
  429 only when `Retry-After` is at most `max_retry_after`; auth, denied and unknown errors
  are not retried.
* Transports are made on first use, one per scheme: plain http (loopback and insecure
  registries) never negotiates TLS, so a pull from one loads no CA bundle (~35 ms of every
  pull, #21); https is verified against the CA bundle as before.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Self, TypeVar

import httpx

from reconciler.registry_client import auth, credentials, errors, references

__all__ = ["MAX_MANIFEST_SIZE", "Session"]

MAX_MANIFEST_SIZE = 4 * 1048 * 1048  # containerd's MaxManifestSize
_T = TypeVar("_T")


class _Transports(httpx.BaseTransport):
    """The network transports, one per URL scheme, each made on its first request."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        self._made: dict[str, httpx.HTTPTransport] = {}
        self._lock = threading.Lock()

    def _for(self, scheme: str) -> httpx.HTTPTransport:
        with self._lock:
            t = self._made.get(scheme)
            if t is None:
                # plain http has no TLS to verify: its transport loads no CA bundle
                t = httpx.HTTPTransport(verify=scheme != "http", limits=self._limits, trust_env=False)
                self._made[scheme] = t
            return t

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._for(request.url.scheme).handle_request(request)

    def close(self) -> None:
        with self._lock:
            made, self._made = list(self._made.values()), {}
        for t in made:
            t.close()


class _Retry(Exception):
    """Internal: this attempt failed in a retryable way."""

    def __init__(self, error: errors.RegistryError, delay: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.delay = delay


def _host_of(url: httpx.URL) -> str:
    host = url.host
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{url.port}" if url.port else host


class Session:
    """The connection to registries that pulls and pushes go through: the pooled HTTP client,
    the learnt auth challenges and tokens, error translation and bounded retries. Its
    arguments are RegistryClient's (client.py)."""

    def __init__(
        self,
        *,
        credentials: credentials.CredentialStore | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
        insecure_hosts: tuple[str, ...] | list[str] = (),
        max_retry_after: float = 60.0,
        max_manifest_size: int = MAX_MANIFEST_SIZE,
        max_connections: int = 16,
        download_concurrency: int = 3,
        clock: Callable[[], float] = time.monotonic,
        user_agent: str = "reconciler-registry-client/0.1",
    ) -> None:
        self.credentials = credentials if credentials is not None else credentials_default()
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.insecure_hosts = frozenset(insecure_hosts)
        self.max_retry_after = max_retry_after
        self.max_manifest_size = max_manifest_size
        self.download_concurrency = download_concurrency
        self.clock = clock
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.Client(
            transport=transport if transport is not None else _Transports(limits),
            timeout=httpx.Timeout(timeout),
            limits=limits,
            headers={"User-Agent": user_agent},
            follow_redirects=False,
            max_redirects=10,
            trust_env=False,
        )
        self._tokens = auth.TokenCache(clock)
        self._challenges: dict[str, auth.Challenge] = {}
        self._refresh_tokens: dict[str, str] = {}     # API host -> a login's refresh token (check_login)
        self._lock = threading.Lock()
        # Registry `Warning: 299` headers (deduplicated, for the user; never acted upon) and the
        # last rate-limit headers seen per registry host (ratelimit-limit/-remaining).
        self.warnings: list[str] = []
        self.rate_limits: dict[str, dict[str, str]] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- URLs and auth ---------------------------------------------------------------------

    def base_url(self, host: str) -> str:
        return f"{'http' if self._plain_http(host) else 'https'}://{host}"

    def _plain_http(self, host: str) -> bool:
        """Whether `host` (host[:port]) is spoken to in clear: loopback, or named insecure."""
        return references.is_loopback(host) or host in self.insecure_hosts

    def _http_realm_ok(self, realm: httpx.URL, registry_host: str) -> bool:
        """A token realm may be plain http on a host spoken to in clear anyway, or on the host
        (any port) of a registry named insecure; anywhere else credentials would leak."""
        if self._plain_http(_host_of(realm)):
            return True
        return self._plain_http(registry_host) and realm.host == httpx.URL(f"http://{registry_host}").host

    def _url(self, ref: references.Reference, kind: str, tail: str) -> str:
        return f"{self.base_url(ref.api_host)}/v2/{ref.repository}/{kind}/{tail}"

    def _credential(self, ref: references.Reference) -> credentials.Credential | None:
        return self.credentials.get(ref.registry)

    def _auth_header(self, ref: references.Reference, scopes: list[str], offline: bool = False) -> str | None:
        host = ref.api_host
        with self._lock:
            challenge = self._challenges.get(host)
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            cred = self._credential(ref)
            if cred is None or cred.identity_token is not None:
                return None
            return auth.basic_header(cred)
        if challenge.scheme == "bearer":
            key = (host, " ".join(sorted(scopes)))
            tok = self._tokens.get(key)
            if tok is None:
                with self._tokens.key_lock(key):
                    tok = self._tokens.get(key)
                    if tok is None:
                        tok = auth.fetch_token(
                            self._http, challenge, scopes, self._credential(ref),
                            registry=ref.registry, clock=self.clock,
                            http_realm_ok=lambda url: self._http_realm_ok(url, host), offline=offline,
                        )
                        self._tokens.put(key, tok)
                        if tok.refresh_token is not None:
                            with self._lock:
                                self._refresh_tokens[host] = tok.refresh_token
            return f"Bearer {tok.value}"
        return None

    def _learn(
        self, ref: references.Reference, resp: httpx.Response, scopes: list[str], refused: bool
    ) -> list[str] | None:
        """Learn the challenge of a 401; returns the scopes to use, or None if unusable.
        `refused`: the request carried our credentials/token (so a cached token is stale);
        otherwise a token another thread just fetched is kept."""
        challenges = auth.parse_challenges(resp.headers.get_list("www-authenticate"))
        chosen = next((c for c in challenges if c.scheme == "bearer"), None)
        chosen = chosen or next((c for c in challenges if c.scheme == "basic"), None)
        if chosen is None:
            return None
        host = ref.api_host
        with self._lock:
            self._challenges[host] = chosen
        merged = list(scopes)
        for s in chosen.scopes:
            if s not in merged:
                merged.append(s)
        if refused:
            self._tokens.drop((host, " ".join(sorted(scopes))))
            self._tokens.drop((host, " ".join(sorted(merged))))
        return merged

    def _scopes(self, ref: references.Reference, push: bool = False, extra: tuple[str, ...] = ()) -> list[str]:
        actions = "pull,push" if push else "pull"
        return [f"repository:{ref.repository}:{actions}", *extra]

    def _send(
        self,
        method: str,
        ref: references.Reference,
        url: str,
        *,
        scopes: list[str],
        headers: dict[str, str] | None = None,
        content: bytes | Iterator[bytes] | None = None,
        body_factory: Callable[[], bytes | Iterator[bytes]] | None = None,
        stream: bool = False,
        follow_redirects: bool = False,
        offline: bool = False,
    ) -> httpx.Response:
        """One request with auth (and one re-auth on 401). Returns the response (any status);
        raises httpx.TransportError for transport failures. Streamed responses must be closed.
        `offline`: a token asked for is asked with a refresh token (check_login)."""
        target = httpx.URL(url)
        own_host = _host_of(target) == ref.api_host
        for attempt in (0, 1):
            hdrs = dict(headers or {})
            if own_host:
                value = self._auth_header(ref, scopes, offline)
                if value:
                    hdrs["Authorization"] = value
            body = body_factory() if body_factory is not None else content
            req = self._http.build_request(method, target, headers=hdrs, content=body)
            resp = self._http.send(req, stream=stream, follow_redirects=follow_redirects)
            self._note_warnings(resp)
            if resp.status_code != 401 or attempt == 1 or not own_host:
                return resp
            if _host_of(resp.url) != ref.api_host:
                return resp  # a 401 from a redirect target: never send our credentials there
            merged = self._learn(ref, resp, scopes, refused="Authorization" in hdrs)
            if merged is None:
                return resp
            if body_factory is None and content is not None and not isinstance(content, bytes):
                return resp  # a one-shot body cannot be resent
            scopes = merged
            resp.close()
        raise AssertionError("unreachable")

    def _note_warnings(self, resp: httpx.Response) -> None:
        for w in resp.headers.get_list("warning"):
            if w.startswith("299") and w not in self.warnings:
                with self._lock:
                    if w not in self.warnings:
                        self.warnings.append(w)
        limits = {k: resp.headers[k] for k in ("ratelimit-limit", "ratelimit-remaining") if k in resp.headers}
        if limits:
            with self._lock:
                self.rate_limits[_host_of(resp.request.url)] = limits

    # -- errors and retries ------------------------------------------------------------------

    def _error(self, resp: httpx.Response, ref: references.Reference, what: str) -> errors.RegistryError:
        """Translate an error response into our error tree (caller decides about retrying)."""
        status = resp.status_code
        code, message = None, ""
        try:
            if not resp.is_stream_consumed:
                resp.read()
            doc = json.loads(resp.content[:65536]) if resp.content else None
            if isinstance(doc, dict) and isinstance(doc.get("errors"), list) and doc["errors"]:
                first = doc["errors"][0]
                code = str(first.get("code") or "") or None
                message = str(first.get("message") or "")
        except (ValueError, httpx.HTTPError, httpx.StreamError):
            pass
        detail = f" ({code}: {message})" if code else ""
        host = ref.registry
        if status == 401:
            params = {k: v for c in auth.parse_challenges(resp.headers.get_list("www-authenticate"))
                      for k, v in c.params.items()}
            if params.get("error") == "insufficient_scope":
                return errors.Denied(
                    f"{what}: {host} granted less access than needed ({params.get('scope', '?')}){detail}",
                    code=code or "DENIED", status=status,
                    hint=f"the account in use may not do this on {ref.name}; run docker login {host} with one that may",
                )
            cred = self._credential(ref)
            hint = (f"run docker login {host}" if cred is None
                    else f"the stored credentials for {host} were refused; run docker login {host}")
            return errors.Unauthorized(f"{what}: authentication required by {host}{detail}",
                                       code=code, hint=hint, status=status)
        if status == 403:
            return errors.Denied(f"{what}: access denied by {host}{detail}", code=code,
                                 hint=f"check that your account may access {ref.name}; run docker login {host}",
                                 status=status)
        if status == 404:
            return errors.NotFound(f"{what}: not found{detail}", code=code or "NAME_UNKNOWN", status=status)
        if status == 429:
            ra = _retry_after(resp)
            return errors.TooManyRequests(
                f"{what}: {host} is rate limiting requests{detail}", retry_after=ra, code=code,
                hint=f"wait {ra:.0f}s" if ra is not None else "wait, or log in for a higher limit",
                status=status,
            )
        if status >= 500 or status == 408:
            return errors.Unavailable(f"{what}: {host} answered HTTP {status}{detail}", code=code, status=status)
        return errors.RegistryError(f"{what}: {host} answered HTTP {status}{detail}", code=code, status=status)

    def _retryable(self, resp: httpx.Response, ref: references.Reference, what: str) -> None:
        """Raise _Retry for a retryable status (after reading the body), else nothing."""
        if resp.status_code >= 500 or resp.status_code == 408:
            raise _Retry(self._error(resp, ref, what))
        if resp.status_code == 429:
            err = self._error(resp, ref, what)
            assert isinstance(err, errors.TooManyRequests)
            if err.retry_after is not None and err.retry_after <= self.max_retry_after:
                raise _Retry(err, delay=err.retry_after)
            raise err

    def _run(self, what: str, ref: references.Reference, fn: Callable[[int], _T]) -> _T:
        """Run fn(attempt) with bounded retries for _Retry and transport errors."""
        last: errors.RegistryError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
                if isinstance(last, errors.TooManyRequests) and last.retry_after is not None:
                    delay = last.retry_after
                self.sleep(delay)
            try:
                return fn(attempt)
            except _Retry as r:
                last = r.error
            except httpx.TransportError as e:
                last = errors.Unavailable(f"{what}: {ref.api_host}: {type(e).__name__}: {e}")
            except httpx.TooManyRedirects:
                raise errors.RegistryError(f"{what}: too many redirects", code="TOO_MANY_REDIRECTS") from None
        assert last is not None
        last.message += f" (gave up after {self.retries + 1} attempts)"
        raise last

    # -- login ---------------------------------------------------------------------------------

    def check_login(self, registry: str) -> str | None:
        """What `docker login` asks: does `registry` accept the credentials this client has for
        it? One GET /v2/ through the auth flow (with a token of no scope where the registry uses
        tokens, asked for with a refresh token, as dockerd's login asks). Returns the refresh
        token the token server gave (docker keeps it as the login's `identitytoken`, in place of
        the password), or None. Raises RegistryError: Unauthorized "incorrect username or
        password" when the registry or its token server refused the credentials."""
        ref = references.Reference(registry=registry, repository="library/login")
        what = f"log in to {registry}"

        def attempt(_: int) -> None:
            resp = self._send("GET", ref, f"{self.base_url(ref.api_host)}/v2/", scopes=[], offline=True)
            resp.read()
            self._retryable(resp, ref, what)
            if resp.status_code != 200:
                raise self._error(resp, ref, what)

        try:
            self._run(what, ref, attempt)
        except errors.Unauthorized as exc:
            if exc.status not in (401, 403):
                raise                   # not a refusal: a realm refused as insecure, no token sent
            raise errors.Unauthorized(
                f"{what}: unauthorized: incorrect username or password", status=exc.status,
                hint=f"check the username and the password (or access token) for {registry}",
            ) from None
        with self._lock:
            return self._refresh_tokens.get(ref.api_host)


# -- helpers ---------------------------------------------------------------------------------


def credentials_default() -> credentials.CredentialStore:
    return credentials.CredentialStore()


def _ref(ref: references.Reference | str) -> references.Reference:
    return references.parse(ref) if isinstance(ref, str) else ref


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
