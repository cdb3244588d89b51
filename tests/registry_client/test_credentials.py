"""Credential lookup (Docker config, helpers, DOCKER_AUTH_CONFIG, Podman auth.json) and
WWW-Authenticate parsing."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from reconciler.registry_client import Credential, CredentialStore, RegistryClient, auth, errors
from tests.helpers.registry import RegistryServer
from tests.registry_client.conftest import USERS
from tests.registry_client.imagegen import make_image


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def write_config(path: Path, doc: dict[str, object]) -> Path:
    path.write_text(json.dumps(doc))
    return path


def helper(bin_dir: Path, name: str, script: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    p = bin_dir / f"docker-credential-{name}"
    p.write_text("#!/bin/sh\n" + script)
    p.chmod(0o755)


def test_auths_entry_decodes_user_and_password(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "config.json", {"auths": {
        "reg.example:5000": {"auth": b64("bob:pa:ss\x00")},
        "https://index.docker.io/v1/": {"auth": b64("hubuser:hubpw")},
        "https://legacy.example/v2/": {"auth": b64("old:pw")},
        "tok.example": {"identitytoken": "refresh-abc"},
    }})
    s = CredentialStore(docker_config=cfg, env={})
    assert s.get("reg.example:5000") == Credential("bob", "pa:ss")
    assert s.get("docker.io") == Credential("hubuser", "hubpw")
    assert s.get("index.docker.io") == Credential("hubuser", "hubpw")
    assert s.get("legacy.example") == Credential("old", "pw")
    assert s.get("tok.example") == Credential("", "", identity_token="refresh-abc")
    assert s.get("other.example") is None
    assert "pa:ss" not in repr(s.get("reg.example:5000"))


def test_cred_helpers_and_creds_store_use_the_helper_protocol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    helper(bin_dir, "special", 'read url; echo "{\\"ServerURL\\":\\"$url\\",\\"Username\\":\\"sp-$url\\",\\"Secret\\":\\"s1\\"}"\n')
    helper(bin_dir, "store", 'read url\nif [ "$url" = "https://index.docker.io/v1/" ]; then '
           'echo \'{"Username":"<token>","Secret":"idtok"}\'; else echo "credentials not found in native keychain"; exit 1; fi\n')
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    cfg = write_config(tmp_path / "config.json", {
        "credHelpers": {"special.example": "special"}, "credsStore": "store",
        "auths": {"plain.example": {"auth": b64("p:q")}},
    })
    s = CredentialStore(docker_config=cfg, env={})
    assert s.get("special.example") == Credential("sp-special.example", "s1")
    assert s.get("docker.io") == Credential("", "", identity_token="idtok")
    assert s.get("plain.example") == Credential("p", "q"), "not found in the store falls back to auths"


def test_failing_or_missing_helper_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    helper(bin_dir, "broken", "echo 'keychain locked' >&2; exit 3\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    cfg = write_config(tmp_path / "config.json", {"credHelpers": {"a.example": "broken", "b.example": "absent"}})
    s = CredentialStore(docker_config=cfg, env={})
    with pytest.raises(errors.CredentialError) as ei:
        s.get("a.example")
    assert "docker-credential-broken" in str(ei.value)
    with pytest.raises(errors.CredentialError) as ei:
        s.get("b.example")
    assert "not installed" in str(ei.value)


def test_docker_auth_config_env_and_podman_auth_json(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "config.json", {"auths": {"r.example": {"auth": b64("file:pw")}}})
    (tmp_path / "run" / "containers").mkdir(parents=True)
    write_config(tmp_path / "run" / "containers" / "auth.json",
                 {"auths": {"podman.example": {"auth": b64("pod:man")}}})
    env = {"DOCKER_AUTH_CONFIG": json.dumps({"auths": {"r.example": {"auth": b64("env:pw")}}}),
           "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    s = CredentialStore(docker_config=cfg, env=env)
    assert s.get("r.example") == Credential("env", "pw")
    assert s.get("podman.example") == Credential("pod", "man")
    env2 = {"DOCKER_CONFIG": str(tmp_path), "REGISTRY_AUTH_FILE": str(tmp_path / "run" / "containers" / "auth.json")}
    s2 = CredentialStore(env=env2)
    assert s2.get("r.example") == Credential("file", "pw")
    assert s2.get("podman.example") == Credential("pod", "man")


def test_invalid_config_is_reported_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(errors.CredentialError) as ei:
        CredentialStore(docker_config=bad, env={}).get("x.example")
    assert str(bad) in str(ei.value)


@pytest.mark.registry
def test_client_uses_docker_config_for_basic_auth(basic_registry: RegistryServer, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "config.json",
                       {"auths": {basic_registry.host: {"auth": b64(f"alice:{USERS['alice']}")}}})
    ref = f"{basic_registry.host}/cfg/app:v1"
    m, blobs = make_image()
    with RegistryClient(credentials=CredentialStore(docker_config=cfg, env={})) as c:
        c.push_image(ref, m, lambda d: blobs[d.digest])
        assert c.resolve(ref) == m.descriptor
    with RegistryClient(credentials=CredentialStore(docker_config=tmp_path / "none", env={})) as c, \
            pytest.raises(errors.Unauthorized):
        c.resolve(ref)


# -- WWW-Authenticate ------------------------------------------------------------------------


def test_challenge_with_quoted_commas_and_several_challenges() -> None:
    header = ('Bearer realm="https://auth.example/token",service="registry.example",'
              'scope="repository:samalba/my-app:pull,push repository:other:pull", Basic realm="x\\"y"')
    got = auth.parse_challenges([header])
    assert [c.scheme for c in got] == ["bearer", "basic"]
    assert got[0].params == {"realm": "https://auth.example/token", "service": "registry.example",
                             "scope": "repository:samalba/my-app:pull,push repository:other:pull"}
    assert got[0].scopes == ["repository:samalba/my-app:pull,push", "repository:other:pull"]
    assert got[1].params == {"realm": 'x"y'}


def test_challenge_error_and_unquoted_values() -> None:
    got = auth.parse_challenges(['Bearer realm=https://a/t, error="insufficient_scope",scope=repository:x:push',
                                 "Basic"])
    assert got[0].params["error"] == "insufficient_scope"
    assert got[0].params["realm"] == "https://a/t"
    assert got[0].scopes == ["repository:x:push"]
    assert got[1].scheme == "basic"


def test_an_engine_is_sent_the_credentials_as_dockers_auth_config() -> None:
    """What `X-Registry-Auth` carries (the Docker and Swarm backends send it): read back as the
    native Engine API reads it, with the key a credential is stored under as its server."""
    from reconciler.registry_client import credentials

    basic = credentials.to_auth_config(Credential("alice", "s3cret"), "127.0.0.1:5000")
    assert basic == {"serveraddress": "127.0.0.1:5000", "username": "alice", "password": "s3cret"}
    assert credentials.from_auth_config(basic) == Credential("alice", "s3cret")
    token = credentials.to_auth_config(Credential("", "", identity_token="tok"), "docker.io")
    assert token == {"serveraddress": credentials.DOCKER_HUB_KEY, "identitytoken": "tok"}
    assert credentials.from_auth_config(token) == Credential("", "", identity_token="tok")
