"""A small token server (distribution's token auth spec) for a real docker-registry in tests.

The registry is configured with `auth: token: {realm, service, issuer, rootcertbundle}`; this
server signs RS256 JWTs with a test key whose self-signed certificate is the registry's root
bundle (the certificate travels in the JWT's `x5c` header). It implements both the GET
(`?service=&scope=`, Basic auth) and the OAuth2 POST (`grant_type=password|refresh_token`)
flows, grants the intersection of the requested and allowed actions, and records requests.
With `offline_tokens`, a request that asks for offline access (`access_type=offline` in the POST,
`offline_token=true` in the GET, as `docker login` asks) with a user's password also gets a
`refresh_token`, which the refresh-token grant then takes (what a login keeps as `identitytoken`).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

__all__ = ["TokenRequest", "TokenServer", "make_cert"]

SERVICE = "test-registry"
ISSUER = "test-token-issuer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_cert(workdir: Path) -> tuple[rsa.RSAPrivateKey, x509.Certificate, Path]:
    """A fresh RSA key and a self-signed CA certificate for it, written as PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reconciler test token signer")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = workdir / "token-signer.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


@dataclass
class TokenRequest:
    method: str
    scopes: list[str]
    user: str | None
    grant_type: str | None = None
    offline: bool = False


@dataclass
class TokenServer:
    """users: name → password; acl: name (None = anonymous) → allowed actions (any repo)."""

    workdir: Path
    users: dict[str, str] = field(default_factory=dict)
    acl: dict[str | None, tuple[str, ...]] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # token → user
    token_field: str = "token"  # "token" | "access_token" | "both"
    expires_in: int | None = 300
    oauth_post: bool = True
    offline_tokens: bool = False
    requests: list[TokenRequest] = field(default_factory=list)

    def start(self) -> TokenServer:
        self.key, self.cert, self.cert_path = make_cert(self.workdir)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                q = urllib.parse.parse_qs(url.query)
                user = None
                hdr = self.headers.get("Authorization", "")
                if hdr.startswith("Basic "):
                    name, _, pw = base64.b64decode(hdr[6:]).decode().partition(":")
                    if server.users.get(name) != pw:
                        server.requests.append(TokenRequest("GET", q.get("scope", []), name))
                        self._reply(401, {"details": "bad credentials"})
                        return
                    user = name
                scopes = [s for v in q.get("scope", []) for s in v.split(" ") if s]
                offline = q.get("offline_token") == ["true"]
                server.requests.append(TokenRequest("GET", scopes, user, offline=offline))
                self._reply(200, server.with_refresh(server.issue(user, scopes), user, offline))

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                form = urllib.parse.parse_qs(self.rfile.read(n).decode())
                grant = (form.get("grant_type") or [""])[0]
                scopes = [s for v in form.get("scope", []) for s in v.split(" ") if s]
                if not server.oauth_post:
                    server.requests.append(TokenRequest("POST", scopes, None, grant))
                    self._reply(404, {"details": "no oauth here"})
                    return
                user = None
                if grant == "password":
                    name = (form.get("username") or [""])[0]
                    if server.users.get(name) != (form.get("password") or [""])[0]:
                        server.requests.append(TokenRequest("POST", scopes, name, grant))
                        self._reply(401, {"details": "bad credentials"})
                        return
                    user = name
                elif grant == "refresh_token":
                    user = server.refresh_tokens.get((form.get("refresh_token") or [""])[0])
                    if user is None:
                        server.requests.append(TokenRequest("POST", scopes, None, grant))
                        self._reply(401, {"details": "bad refresh token"})
                        return
                offline = form.get("access_type") == ["offline"]
                server.requests.append(TokenRequest("POST", scopes, user, grant, offline=offline))
                doc = server.issue(user, scopes)
                doc.pop("token", None)
                doc.setdefault("access_token", doc.get("access_token") or server.sign(user, scopes))
                self._reply(200, server.with_refresh(doc, user, offline and grant == "password"))

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self.realm = f"http://127.0.0.1:{self.port}/token"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def registry_auth(self) -> dict[str, Any]:
        """The `auth:` section for RegistryServer."""
        return {"token": {"realm": self.realm, "service": SERVICE, "issuer": ISSUER,
                          "rootcertbundle": str(self.cert_path)}}

    def granted(self, user: str | None, scope: str) -> dict[str, Any] | None:
        parts = scope.split(":")
        if len(parts) < 3 or parts[0] != "repository":
            return None
        name, actions = ":".join(parts[1:-1]), parts[-1].split(",")
        allowed = set(self.acl.get(user, ()))
        return {"type": "repository", "name": name, "actions": [a for a in actions if a in allowed]}

    def sign(self, user: str | None, scopes: list[str]) -> str:
        now = int(time.time())
        access = [g for g in (self.granted(user, s) for s in scopes) if g is not None]
        header = {"typ": "JWT", "alg": "RS256",
                  "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]}
        claims = {"iss": ISSUER, "sub": user or "", "aud": SERVICE, "exp": now + 600, "nbf": now - 10,
                  "iat": now, "jti": secrets.token_hex(8), "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        sig = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(sig)}"

    def with_refresh(self, doc: dict[str, Any], user: str | None, offline: bool) -> dict[str, Any]:
        """`doc` with a new refresh token for `user` when offline access was asked and is given."""
        if self.offline_tokens and offline and user is not None:
            token = secrets.token_hex(16)
            self.refresh_tokens[token] = user
            doc["refresh_token"] = token
        return doc

    def issue(self, user: str | None, scopes: list[str]) -> dict[str, Any]:
        tok = self.sign(user, scopes)
        doc: dict[str, Any] = {}
        if self.token_field in ("token", "both"):
            doc["token"] = tok
        if self.token_field in ("access_token", "both"):
            doc["access_token"] = tok
        if self.expires_in is not None:
            doc["expires_in"] = self.expires_in
        return doc
