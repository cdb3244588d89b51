"""Basic and token (Bearer) auth against real docker-registry instances."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.registry_client import Credential, CredentialStore, RegistryClient, errors
from tests.helpers.registry import RegistryServer
from tests.helpers.token_server import TokenServer
from tests.registry_client.conftest import USERS
from tests.registry_client.imagegen import make_image

pytestmark = pytest.mark.registry


def store(tmp_path: Path, **creds: Credential) -> CredentialStore:
    """Only the given credentials: no ~/.docker/config.json, no environment."""
    return CredentialStore(static=creds, docker_config=tmp_path / "none.json", env={})


def creds_for(host: str, user: str, password: str | None = None) -> dict[str, Credential]:
    return {host: Credential(user, USERS[user] if password is None else password)}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def push(c: RegistryClient, ref: str, seed: bytes | None = None) -> tuple[str, dict[str, bytes]]:
    m, blobs = make_image(seed=seed)
    c.push_image(ref, m, lambda d: blobs[d.digest])
    return m.descriptor.digest, blobs


def pull_all(c: RegistryClient, ref: str) -> bytes:
    plan = c.pull_plan(ref, "linux/amd64")
    out = io.BytesIO()
    for d in plan.layers:
        c.fetch_blob(ref, d, out)
    return plan.manifest.raw


# -- Basic ---------------------------------------------------------------------------------


def test_basic_anonymous_is_told_to_log_in(basic_registry: RegistryServer, tmp_path: Path) -> None:
    with RegistryClient(credentials=store(tmp_path)) as c, pytest.raises(errors.Unauthorized) as ei:
        c.resolve(f"{basic_registry.host}/b/x:latest")
    assert f"run docker login {basic_registry.host}" in str(ei.value)


def test_basic_push_then_pull_with_credentials(basic_registry: RegistryServer, tmp_path: Path) -> None:
    ref = f"{basic_registry.host}/b/app:v1"
    with RegistryClient(credentials=store(tmp_path, **creds_for(basic_registry.host, "alice"))) as c:
        digest, _ = push(c, ref)
        assert c.resolve(ref).digest == digest
        assert pull_all(c, ref)
        assert c.list_tags(ref) == ["v1"]


def test_basic_wrong_password_is_refused(basic_registry: RegistryServer, tmp_path: Path) -> None:
    with RegistryClient(credentials=store(tmp_path, **creds_for(basic_registry.host, "alice", "wrong"))) as c, pytest.raises(errors.Unauthorized) as ei:
        c.list_tags(f"{basic_registry.host}/b/app")
    assert "refused" in str(ei.value)
    assert "wrong" not in str(ei.value)


# -- Token ---------------------------------------------------------------------------------


def test_token_push_uses_oauth_post_and_anonymous_pull_uses_get(
    token_registry: RegistryServer, token_server: TokenServer, tmp_path: Path
) -> None:
    ref = f"{token_registry.host}/t/app:v1"
    with RegistryClient(credentials=store(tmp_path, **creds_for(token_registry.host, "alice"))) as c:
        digest, _ = push(c, ref)
    assert token_server.requests, "no token was requested"
    assert all(r.method == "POST" and r.grant_type == "password" and r.user == "alice"
               for r in token_server.requests)
    assert any("repository:t/app:pull,push" in r.scopes for r in token_server.requests)
    token_server.requests.clear()
    with RegistryClient(credentials=store(tmp_path)) as c:
        assert c.resolve(ref).digest == digest
        pull_all(c, ref)
    assert {(r.method, r.user) for r in token_server.requests} == {("GET", None)}
    assert len(token_server.requests) == 1, "the token for one scope must be cached"


def test_token_get_fallback_with_basic_when_no_oauth(
    token_registry: RegistryServer, token_server: TokenServer, tmp_path: Path
) -> None:
    token_server.oauth_post = False
    ref = f"{token_registry.host}/t/fallback:v1"
    with RegistryClient(credentials=store(tmp_path, **creds_for(token_registry.host, "alice"))) as c:
        digest, _ = push(c, ref)
        assert c.resolve(ref).digest == digest
    methods = [(r.method, r.user) for r in token_server.requests]
    assert ("POST", None) in methods
    assert ("GET", "alice") in methods


def test_token_access_token_only_and_default_expiry(
    token_registry: RegistryServer, token_server: TokenServer, tmp_path: Path
) -> None:
    ref = f"{token_registry.host}/t/expiry:v1"
    with RegistryClient(credentials=store(tmp_path, **creds_for(token_registry.host, "alice"))) as c:
        push(c, ref)
    token_server.token_field = "access_token"
    token_server.expires_in = None
    token_server.requests.clear()
    clock = FakeClock()
    with RegistryClient(credentials=store(tmp_path), clock=clock) as c:
        c.resolve(ref)
        assert len(token_server.requests) == 1
        clock.now += 30
        c.resolve(ref)
        assert len(token_server.requests) == 1, "token reused within its 60 s default lifetime"
        clock.now += 31
        c.resolve(ref)
        assert len(token_server.requests) == 2, "token renewed after the 60 s default expiry"


def test_pull_only_account_push_is_denied_after_rerequest(
    token_registry: RegistryServer, token_server: TokenServer, tmp_path: Path
) -> None:
    ref = f"{token_registry.host}/t/readonly:v1"
    with RegistryClient(credentials=store(tmp_path, **creds_for(token_registry.host, "reader"))) as c, pytest.raises(errors.Denied) as ei:
        push(c, ref)
    assert "docker login" in str(ei.value)
    push_requests = [r for r in token_server.requests if any(":pull,push" in s for s in r.scopes)]
    assert len(push_requests) >= 2, "insufficient_scope must drop the token and ask again once"


def test_identity_token_uses_refresh_grant(
    token_registry: RegistryServer, token_server: TokenServer, tmp_path: Path
) -> None:
    token_server.refresh_tokens = {"refresh-123": "alice"}
    ref = f"{token_registry.host}/t/ident:v1"
    cred = {token_registry.host: Credential("", "", identity_token="refresh-123")}
    with RegistryClient(credentials=store(tmp_path, **cred)) as c:
        push(c, ref)
    assert {(r.method, r.grant_type, r.user) for r in token_server.requests} == {("POST", "refresh_token", "alice")}


def test_cross_repo_mount_asks_pull_on_source(
    token_registry: RegistryServer, token_server: TokenServer, tmp_path: Path
) -> None:
    src, dst = f"{token_registry.host}/t/src:v1", f"{token_registry.host}/t/dst:v1"
    with RegistryClient(credentials=store(tmp_path, **creds_for(token_registry.host, "alice"))) as c:
        m, blobs = make_image()
        c.push_image(src, m, lambda d: blobs[d.digest])
        how = [c.push_blob(dst, d, blobs[d.digest], mount_from="t/src") for d in m.layers]
        assert how == ["mounted"]
        c.push_image(dst, m, lambda d: blobs[d.digest])
        assert c.resolve(dst).digest == m.descriptor.digest
    assert any("repository:t/src:pull" in r.scopes and "repository:t/dst:pull,push" in r.scopes
               for r in token_server.requests)


def test_token_anonymous_push_is_unauthorized_with_login_hint(
    token_registry: RegistryServer, token_server: TokenServer, tmp_path: Path
) -> None:
    token_server.acl[None] = ()
    with RegistryClient(credentials=store(tmp_path)) as c, pytest.raises((errors.Unauthorized, errors.Denied)) as ei:
        c.resolve(f"{token_registry.host}/t/private:v1")
    assert f"docker login {token_registry.host}" in str(ei.value)


def test_token_server_refusing_credentials_says_what_to_do(
    token_registry: RegistryServer, token_server: TokenServer, tmp_path: Path
) -> None:
    with RegistryClient(credentials=store(tmp_path, **creds_for(token_registry.host, "alice", "bad"))) as c, \
            pytest.raises(errors.Unauthorized) as ei:
        c.resolve(f"{token_registry.host}/t/any:v1")
    assert f"docker login {token_registry.host}" in str(ei.value)
    assert "bad" not in ei.value.message


def test_loopback_is_plain_http_and_other_hosts_https(tmp_path: Path) -> None:
    with RegistryClient(credentials=store(tmp_path), insecure_hosts=["reg.lan:5000"]) as c:
        assert c.base_url("127.0.0.5:5000") == "http://127.0.0.5:5000"
        assert c.base_url("localhost:5000") == "http://localhost:5000"
        assert c.base_url("[::1]:5000") == "http://[::1]:5000"
        assert c.base_url("reg.lan:5000") == "http://reg.lan:5000"
        assert c.base_url("ghcr.io") == "https://ghcr.io"
        assert c.base_url("127.example.com") == "https://127.example.com"


def test_concurrent_downloads_share_one_token(
    token_registry: RegistryServer, token_server: TokenServer, tmp_path: Path
) -> None:
    from tests.helpers import images
    from tests.registry_client.imagegen import make_image as mk

    layers = [images.layer_tar([images.Entry(f"f{i}", bytes([i]) * 100_000)]) for i in range(8)]
    m, blobs = mk(layers)
    ref = f"{token_registry.host}/t/parallel:v1"
    with RegistryClient(credentials=store(tmp_path, **creds_for(token_registry.host, "alice"))) as c:
        c.push_image(ref, m, lambda d: blobs[d.digest])
    token_server.requests.clear()
    got: dict[str, io.BytesIO] = {}

    class Sink(io.BytesIO):
        def close(self) -> None:  # keep the bytes readable after fetch_blobs closes the sink
            pass

    def open_sink(d: object) -> io.BytesIO:
        got[d.digest] = Sink()  # type: ignore[attr-defined]
        return got[d.digest]  # type: ignore[attr-defined]

    with RegistryClient(credentials=store(tmp_path)) as c:
        c.fetch_blobs(ref, m.layers, open_sink, concurrency=8)
    assert {k: v.getvalue() for k, v in got.items()} == {d.digest: blobs[d.digest] for d in m.layers}
    assert len(token_server.requests) == 1


# -- where a token may be asked for, and for how long it is kept (#14) ----------------------------


@pytest.fixture(scope="module")
def http_realm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TokenServer, RegistryServer]]:
    """A token-auth registry whose realm is `http://0.0.0.0:PORT/token`. Linux connects 0.0.0.0
    to this host, but it is no loopback address: it stands for a token server elsewhere on the
    network without traffic leaving the machine."""
    work = tmp_path_factory.mktemp("http-realm")
    tokens = TokenServer(work, users=dict(USERS), acl={None: ("pull",), "alice": ("pull", "push")}).start()
    auth = tokens.registry_auth()
    auth["token"]["realm"] = f"http://0.0.0.0:{tokens.port}/token"
    server = RegistryServer(work, auth=auth)
    try:
        server.start()
        yield tokens, server
    finally:
        server.stop()
        tokens.stop()


def test_a_plain_http_realm_off_loopback_is_refused_before_anything_is_sent(
    http_realm: tuple[TokenServer, RegistryServer], tmp_path: Path
) -> None:
    tokens, registry = http_realm
    tokens.requests.clear()
    for creds in (creds_for(registry.host, "alice"), {}):       # a password, or an anonymous request
        with RegistryClient(credentials=store(tmp_path, **creds)) as c, pytest.raises(errors.Unauthorized) as ei:
            c.resolve(f"{registry.host}/t/app:v1")
        assert ei.value.code == "INSECURE_REALM"
        assert f"http://0.0.0.0:{tokens.port}/token" in ei.value.message
        assert "https" in (ei.value.hint or "")
    assert tokens.requests == []                 # alice's password never went there, nor anything else


def test_a_plain_http_realm_on_an_insecure_registrys_host_is_used(
    http_realm: tuple[TokenServer, RegistryServer], tmp_path: Path
) -> None:
    tokens, registry = http_realm
    tokens.requests.clear()
    named = f"0.0.0.0:{registry.port}"           # the registry, named insecure: its realm's host is the same
    with RegistryClient(credentials=store(tmp_path, **creds_for(named, "alice")), insecure_hosts=[named]) as c:
        digest, _ = push(c, f"{named}/t/insecure:v1")
    assert {r.user for r in tokens.requests} == {"alice"}         # asked, with her password
    # the realm's own host:port named insecure
    with RegistryClient(credentials=store(tmp_path), insecure_hosts=[f"0.0.0.0:{tokens.port}"]) as c:
        assert c.resolve(f"{registry.host}/t/insecure:v1").digest == digest


@pytest.mark.parametrize(("expires_in", "lifetime"), [
    (10**9, 3600.0),                 # kept an hour at most
    (1, 10.0),                       # and 10 s at least
    (float("nan"), 60.0),            # json.loads reads NaN and Infinity: the spec's default
    (float("inf"), 60.0),
    (-5, 60.0),
    ("300", 300.0),
], ids=["huge", "tiny", "nan", "infinity", "negative", "string"])
def test_a_token_is_kept_for_its_lifetime_within_bounds(
    token_registry: RegistryServer, token_server: TokenServer, tmp_path: Path, expires_in: object, lifetime: float
) -> None:
    ref = f"{token_registry.host}/t/lifetime:v1"
    with RegistryClient(credentials=store(tmp_path, **creds_for(token_registry.host, "alice"))) as c:
        push(c, ref)
    token_server.expires_in = expires_in  # type: ignore[assignment]
    token_server.requests.clear()
    clock = FakeClock()
    with RegistryClient(credentials=store(tmp_path), clock=clock) as c:
        c.resolve(ref)
        clock.now += lifetime * 0.85     # renewed a little early: 10 s, or a tenth, before it ends
        c.resolve(ref)
        assert len(token_server.requests) == 1, "the token is still good"
        clock.now += lifetime * 0.15 + 1
        c.resolve(ref)
        assert len(token_server.requests) == 2, "the token is asked for again"
