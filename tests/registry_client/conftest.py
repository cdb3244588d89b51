"""Registries with auth for the registry client tests: htpasswd Basic and token (JWT) auth."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from tests.helpers.registry import RegistryServer
from tests.helpers.token_server import TokenServer

USERS = {"alice": "alice-secret", "reader": "reader-secret"}


def write_htpasswd(path: Path, users: dict[str, str]) -> Path:
    """docker-registry accepts only bcrypt htpasswd lines."""
    lines = [f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=5)).decode()}" for u, p in users.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    work = tmp_path_factory.mktemp("basic-registry")
    htpasswd = write_htpasswd(work / "htpasswd", USERS)
    server = RegistryServer(work, auth={"htpasswd": {"realm": "test-realm", "path": str(htpasswd)}}).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _token_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TokenServer, RegistryServer]]:
    work = tmp_path_factory.mktemp("token-registry")
    tokens = TokenServer(work, users=dict(USERS)).start()
    server = RegistryServer(work, auth=tokens.registry_auth())
    try:
        server.start()
        yield tokens, server
    finally:
        server.stop()
        tokens.stop()


@pytest.fixture
def token_server(_token_pair: tuple[TokenServer, RegistryServer]) -> TokenServer:
    """The token server, reset to defaults for each test (anonymous pull, alice push)."""
    tokens = _token_pair[0]
    tokens.acl = {None: ("pull",), "alice": ("pull", "push"), "reader": ("pull",)}
    tokens.token_field = "token"
    tokens.expires_in = 300
    tokens.oauth_post = True
    tokens.offline_tokens = False
    tokens.refresh_tokens = {}
    tokens.requests.clear()
    return tokens


@pytest.fixture
def token_registry(_token_pair: tuple[TokenServer, RegistryServer], token_server: TokenServer) -> RegistryServer:
    return _token_pair[1]
