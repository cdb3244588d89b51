"""SOPS dotenv files with values of a test's own choosing, encrypted to a fresh age key.

The decryptor is proven against files the real `sops` CLI wrote (tests/spec/test_sops.py, with
tests/fixtures/sops/). Tests that must search a state root for a secret need a unique random
value instead of the fixtures' "bar", so this writes the same format sops does: each value
AES-256-GCM under a random data key with a 32-byte nonce and `KEY:` as additional data, the
data key as an armored age file to the recipient, the SHA-512 MAC of the values encrypted under
`lastmodified`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pyrage
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

LASTMODIFIED = "2026-12-04T07:00:00Z"


@dataclass(frozen=True)
class AgeKey:
    identity: str
    recipient: str

    def write(self, path: Path) -> Path:
        path.write_text(f"# created: {LASTMODIFIED}\n# public key: {self.recipient}\n{self.identity}\n")
        path.chmod(0o600)
        return path


def new_age_key() -> AgeKey:
    ident = pyrage.x25519.Identity.generate()
    return AgeKey(str(ident), str(ident.to_public()))


def _seal(key: bytes, plain: bytes, aad: str, kind: str = "str") -> str:
    iv = os.urandom(32)
    out = AESGCM(key).encrypt(iv, plain, aad.encode())
    b64 = base64.b64encode
    return f"ENC[AES256_GCM,data:{b64(out[:-16]).decode()},iv:{b64(iv).decode()},tag:{b64(out[-16:]).decode()},type:{kind}]"


def _armor(data: bytes) -> str:
    body = "\n".join(textwrap.wrap(base64.b64encode(data).decode(), 64))
    return f"-----BEGIN AGE ENCRYPTED FILE-----\n{body}\n-----END AGE ENCRYPTED FILE-----\n"


def encrypt_dotenv(pairs: dict[str, str], recipient: str) -> bytes:
    """A dotenv file as `sops --encrypt --age RECIPIENT` writes it."""
    data_key = os.urandom(32)
    mac = hashlib.sha512()
    lines = []
    for key, value in pairs.items():
        lines.append(f"{key}={_seal(data_key, value.encode(), key + ':')}")
        mac.update(value.encode())
    enc = _armor(pyrage.encrypt(data_key, [pyrage.x25519.Recipient.from_str(recipient)]))
    lines += [
        "sops_age__list_0__map_enc=" + enc.replace("\n", "\\n"),
        f"sops_age__list_0__map_recipient={recipient}",
        f"sops_lastmodified={LASTMODIFIED}",
        f"sops_mac={_seal(data_key, mac.hexdigest().upper().encode(), LASTMODIFIED)}",
        "sops_unencrypted_suffix=_unencrypted",
        "sops_version=3.9.4",
    ]
    return ("\n".join(lines) + "\n").encode()


def encrypt_binary(data: bytes, recipient: str) -> bytes:
    """A binary file as `sops --encrypt --age RECIPIENT FILE` writes it (a JSON document)."""
    import json

    data_key = os.urandom(32)
    mac = hashlib.sha512(data).hexdigest().upper()
    doc = {
        "data": _seal(data_key, data, "data:"),
        "sops": {
            "age": [{"recipient": recipient,
                     "enc": _armor(pyrage.encrypt(data_key, [pyrage.x25519.Recipient.from_str(recipient)]))}],
            "lastmodified": LASTMODIFIED,
            "mac": _seal(data_key, mac.encode(), LASTMODIFIED),
            "unencrypted_suffix": "_unencrypted",
            "version": "3.9.4",
        },
    }
    return (json.dumps(doc, indent="\t") + "\n").encode()
