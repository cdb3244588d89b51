"""SOPS-encrypted files, decrypted in memory with age identities (pyrage) or gpg.

A file that `sops --encrypt` wrote keeps its structure and replaces each value by
`ENC[AES256_GCM,data:<b64>,iv:<b64>,tag:<b64>,type:<str|int|float|bool|bytes|time|comment>]`:
AES-256-GCM under one random 32-byte data key, a 32-byte nonce, and as additional data the
value's path (the mapping keys from the top, each followed by ":"; list indices are not part
of it). The data key is kept in the file's metadata (`sops:` in YAML/JSON, `sops_*` lines in a
dotenv file), encrypted once per master key: an armored age file per `age` recipient, an
armored PGP message per `pgp` fingerprint. The metadata's `mac` is, encrypted the same way with
`lastmodified` as additional data, the upper-case hex SHA-512 of every value in walk order
(the values a crypt rule leaves in clear included, unless `mac_only_encrypted`), so a value
removed, added, reordered or replaced is found.

    decrypt(name, content, keys) -> Decrypted      raises SopsError (what is wrong, what to do)

The format follows the file name as sops chooses it: `.env` dotenv, `.yaml`/`.yml` YAML,
`.json` JSON, anything else a binary file (JSON holding `data` and `sops`). INI files, key
groups split with Shamir's scheme, and cloud KMS keys are refused with a message saying so.
Nothing here writes to disk; gpg gets the data key's PGP message on stdin and prints the key
on a pipe.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from reconciler._dataclass import dataclass, field
from reconciler.spec.sopskeys import (
    DIGEST_KEY_FILE,
    KeyConfigError,
    Keys,
    SopsError,
    at_root,
    load_keys,
    read_age_identities,
)

__all__ = ["DIGEST_KEY_FILE", "Decrypted", "KeyConfigError", "Keys", "SopsError", "at_root", "decrypt",
           "is_encrypted", "load_keys", "read_age_identities"]

_ENC = re.compile(r"^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]")
_UNSUPPORTED_KEYS = ("kms", "gcp_kms", "azure_kv", "hc_vault", "hckms")
_RULES = ("unencrypted_suffix", "encrypted_suffix", "unencrypted_regex", "encrypted_regex",
          "unencrypted_comment_regex", "encrypted_comment_regex")
_MAC_ONLY_ENCRYPTED_INIT = hashlib.sha256(b"sops").digest()
_GPG_TIMEOUT = 30.0


@dataclass(frozen=True)
class Decrypted:
    """A decrypted file: its format and its plaintext as `sops --decrypt` prints it (comments
    and the YAML/JSON layout aside); `pairs` holds a dotenv file's KEY/value pairs in order;
    `digest` what stands for the values where they must not be (`Keys.digest`: set by the
    loader, which knows the state root)."""

    format: str                     # "dotenv" | "yaml" | "json" | "binary"
    data: bytes = field(repr=False)
    pairs: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    digest: str = ""


# -- detection -------------------------------------------------------------------------------

def _format(name: str, text: str = "") -> str:
    """The format sops gives the file by its name; a dotenv file is also known by its
    `sops_mac=` line (`web.env.enc`)."""
    ext = os.path.splitext(name)[1].lower()
    if ext == ".env" or os.path.basename(name) == ".env" or re.search(r"(?m)^sops_mac=", text):
        return "dotenv"
    return {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".ini": "ini"}.get(ext, "binary")


def is_encrypted(name: str, content: bytes) -> bool:
    """Whether `content` is a SOPS file: it has sops metadata (`sops:` holding a version,
    lastmodified or mac, or `sops_version=`/`sops_mac=` lines). A file whose `mac` was removed
    still counts, so that decrypting it fails instead of its ENC[...] strings being used."""
    if b"sops" not in content:
        return False
    if re.search(rb"(?m)^sops_(mac|version|lastmodified)=", content):
        return True
    if re.search(rb"(?m)^\[sops\]", content):
        return True
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    try:
        docs = [json.loads(text)] if text.lstrip().startswith("{") else _yaml(text)
    except (ValueError, yaml.YAMLError):
        return False
    meta = docs[0].get("sops") if docs and isinstance(docs[0], dict) else None
    return isinstance(meta, dict) and any(k in meta for k in ("mac", "version", "lastmodified"))


# -- loading the stores ------------------------------------------------------------------------

def _yaml(text: str) -> list[Any]:
    """YAML documents as sops reads them: yaml.v3's YAML 1.2 scalars (`yes`, `on` and timestamps
    are strings), which the MAC of a value left in clear depends on; compose reads YAML so too."""
    from reconciler.spec.compose import _Yaml12Loader

    return list(yaml.load_all(text, _Yaml12Loader))


def _load(fmt: str, text: str) -> tuple[list[Any], dict[str, Any]]:
    """The file's documents (each a mapping, `sops` removed) and its metadata."""
    if fmt == "dotenv":
        return _load_dotenv(text)
    if fmt == "ini":
        raise SopsError("INI files are not supported; encrypt the settings as YAML, JSON or dotenv")
    try:
        docs = [json.loads(text)] if fmt in ("json", "binary") else _yaml(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise SopsError(f"not a SOPS {fmt} file: {str(exc).splitlines()[0]}") from None
    docs = [d for d in docs if d is not None]
    if not docs or not all(isinstance(d, dict) for d in docs):
        raise SopsError(f"not a SOPS {fmt} file: every document must be a mapping")
    meta = docs[0].get("sops")
    if not isinstance(meta, dict):
        raise SopsError("no sops metadata (a top-level `sops` mapping): encrypt the file with sops")
    return [{k: v for k, v in d.items() if k != "sops"} for d in docs], meta


def _load_dotenv(text: str) -> tuple[list[Any], dict[str, Any]]:
    branch: dict[str, Any] = {}
    flat: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), 1):
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.partition("=")
        if not eq:
            raise SopsError(f"line {number} is not KEY=VALUE")
        value = value.replace("\\n", "\n")
        if key.startswith("sops_"):
            flat[key.removeprefix("sops_")] = value
        else:
            branch[key] = value
    return [branch], _unflatten(flat)


def _unflatten(flat: Mapping[str, str]) -> dict[str, Any]:
    """`pgp__list_0__map_fp` -> {"pgp": [{"fp": ...}]}, as sops flattens metadata."""
    root: dict[Any, Any] = {}
    for key, value in flat.items():
        parts = re.split(r"(__map_|__list_)", key)
        tokens: list[Any] = [parts[0]]
        for sep, part in zip(parts[1::2], parts[2::2], strict=True):
            if sep == "__list_" and not part.isdigit():
                raise SopsError(f"the flattened sops metadata key {key!r} has a bad list index")
            tokens.append(int(part) if sep == "__list_" else part)
        node = root
        for token in tokens[:-1]:
            child = node.setdefault(token, {})
            if not isinstance(child, dict):
                raise SopsError(f"the flattened sops metadata key {key!r} clashes with another")
            node = child
        node[tokens[-1]] = value
    out: dict[str, Any] = _lists(root)
    return out


def _lists(node: Any) -> Any:
    """Mappings keyed 0..n-1 (from `__list_N`) back into lists."""
    if not isinstance(node, dict):
        return node
    out = {k: _lists(v) for k, v in node.items()}
    if out and all(isinstance(k, int) for k in out):
        if sorted(out) != list(range(len(out))):
            raise SopsError("the flattened sops metadata has an incomplete list")
        return [out[i] for i in range(len(out))]
    return out


# -- the data key ----------------------------------------------------------------------------------

def _data_key(meta: Mapping[str, Any], keys: Keys | None, where: str) -> bytes:
    groups = meta.get("key_groups")
    if groups:
        if len(groups) != 1:
            raise SopsError(f"the data key is split over {len(groups)} key groups (Shamir); that is not "
                            "supported: re-encrypt the file with one key group")
        group = groups[0]
    else:
        group = meta
    ages = [k for k in group.get("age") or () if isinstance(k, dict)]
    pgps = [k for k in group.get("pgp") or () if isinstance(k, dict)]
    others = [k for k in _UNSUPPORTED_KEYS if group.get(k)]
    if keys is None or not (keys.age_identities or (pgps and keys.gpg())):
        raise SopsError(f"{where} is SOPS-encrypted and no decryption key is configured; set "
                        "`decryption: {provider: sops, age_key_file: PATH}` in the agent config "
                        "(for apply/validate: --sops-age-key-file PATH or SOPS_AGE_KEY_FILE)")
    tried: list[str] = []
    for entry in ages:
        tried.append(f"age {entry.get('recipient', '?')}")
        key = _open_age(str(entry.get("enc", "")), keys.age_identities)
        if key is not None:
            return _check_key(key, where)
    for entry in pgps:
        tried.append(f"pgp {entry.get('fp', '?')}")
        key = _open_pgp(str(entry.get("enc", "")), keys) if keys.gpg() else None
        if key is not None:
            return _check_key(key, where)
    tried += [f"{k} (not supported)" for k in others]
    listed = "; ".join(tried) or "none"
    raise SopsError(f"{where}: none of its master keys opens with the configured keys "
                    f"({keys.where or 'decryption'}); it is encrypted to: {listed}. Add the matching "
                    "age identity to the key file, or re-encrypt the file to your recipient")


def _check_key(key: bytes, where: str) -> bytes:
    if len(key) != 32:
        raise SopsError(f"{where}: its data key is {len(key)} bytes, not 32")
    return key


def _open_age(armored: str, identities: tuple[str, ...]) -> bytes | None:
    if not identities or not armored:
        return None
    import pyrage

    parsed = []
    for text in identities:
        try:
            parsed.append(pyrage.x25519.Identity.from_str(text))
        except pyrage.IdentityError:
            continue            # another kind of identity (plugin, post-quantum): not for pyrage
    try:
        return bytes(pyrage.decrypt(armored.encode(), parsed)) if parsed else None
    except pyrage.DecryptError:
        return None


def _open_pgp(armored: str, keys: Keys) -> bytes | None:
    gpg = shutil.which("gpg")
    if gpg is None or not armored:
        return None
    env = dict(os.environ)
    if keys.gnupg_home:
        env["GNUPGHOME"] = keys.gnupg_home
    try:
        done = subprocess.run([gpg, "--batch", "--quiet", "--no-tty", "--decrypt"], input=armored.encode(),
                              capture_output=True, env=env, timeout=_GPG_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


# -- values and the MAC -----------------------------------------------------------------------------

def _open_value(value: str, key: bytes, aad: str) -> tuple[bytes, str]:
    """The plaintext bytes and type of one ENC[...] value; InvalidTag -> SopsError."""
    if value == "":
        return b"", "str"
    m = _ENC.match(value)
    if m is None:
        raise SopsError(f"the value at {aad or '/'} is not an ENC[AES256_GCM,...] value")
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        data, iv, tag = (base64.b64decode(m.group(i), validate=True) for i in (1, 2, 3))
        return AESGCM(key).decrypt(iv, data + tag, aad.encode()), m.group(4)
    except (binascii.Error, ValueError, InvalidTag):
        raise SopsError(f"the value at {aad or '/'} does not decrypt with the file's data key: the file "
                        "was changed after sops encrypted it; restore it from git or re-encrypt it") from None


def _typed(plain: bytes, kind: str, aad: str) -> Any:
    try:
        if kind in ("str", "time"):
            return plain.decode("utf-8")
        if kind == "bytes":
            return plain
        if kind == "int":
            return int(plain)
        if kind == "float":
            return float(plain)
        if kind == "bool":
            return _parse_bool(plain.decode())
    except ValueError:
        pass
    raise SopsError(f"the value at {aad} has type {kind!r} that its plaintext does not match")


def _parse_bool(text: str) -> bool:
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(text)


def _to_bytes(value: Any) -> bytes:
    """A value as the MAC hashes it (sops' ToBytes: Go's formatting of each type)."""
    if isinstance(value, bool):
        return b"True" if value else b"False"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        text = format(decimal.Decimal(repr(value)), "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text.encode()
    if isinstance(value, bytes):
        return value
    return str(value).encode()


@dataclass
class _Walk:
    """One pass over the documents: decrypts what the rules say is encrypted, hashes for the MAC."""

    key: bytes
    meta: Mapping[str, Any]
    mac: Any = field(default_factory=hashlib.sha512)

    def __post_init__(self) -> None:
        if self.meta.get("unencrypted_comment_regex") or self.meta.get("encrypted_comment_regex"):
            raise SopsError("files encrypted with a comment regex rule are not supported; "
                            "use a suffix or a key regex")
        if sum(bool(self.meta.get(r)) for r in _RULES) > 1:
            raise SopsError("the metadata names more than one of " + ", ".join(_RULES))
        self.only_encrypted = _truthy(self.meta.get("mac_only_encrypted"))
        if self.only_encrypted:
            self.mac.update(_MAC_ONLY_ENCRYPTED_INIT)

    def encrypted(self, path: list[str]) -> bool:
        m = self.meta
        unenc_suffix = m.get("unencrypted_suffix") or ("" if any(m.get(r) for r in _RULES) else "_unencrypted")
        if unenc_suffix:
            return not any(p.endswith(unenc_suffix) for p in path)
        if m.get("encrypted_suffix"):
            return any(p.endswith(m["encrypted_suffix"]) for p in path)
        if m.get("unencrypted_regex"):
            return not any(re.search(m["unencrypted_regex"], p) for p in path)
        if m.get("encrypted_regex"):
            return any(re.search(m["encrypted_regex"], p) for p in path)
        return True

    def value(self, node: Any, path: list[str]) -> Any:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if not isinstance(k, str):
                    raise SopsError(f"a key at {':'.join(path) or '/'} is not a string ({k!r})")
                out[k] = self.value(v, [*path, k])
            return out
        if isinstance(node, list):
            return [self.value(v, path) for v in node]
        if node is None:
            return None
        encrypted = self.encrypted(path)
        value = node
        if encrypted:
            aad = "".join(p + ":" for p in path)
            if not isinstance(node, str):
                raise SopsError(f"the value at {aad} should be encrypted but is a {type(node).__name__}: "
                                "the file was changed after sops encrypted it")
            value = _typed(*_open_value(node, self.key, aad), aad)
        if encrypted or not self.only_encrypted:
            self.mac.update(_to_bytes(value))
        return value

    def verify(self, stored: Any, lastmodified: str, where: str) -> None:
        plain, _ = _open_value(str(stored or ""), self.key, lastmodified) if stored else (b"", "str")
        computed = self.mac.hexdigest().upper()
        if not hmac.compare_digest(plain, computed.encode()):
            raise SopsError(f"{where}: MAC mismatch: its values are not the ones sops encrypted (changed, "
                            "added, removed or reordered after encryption); restore the file from git or "
                            "re-encrypt it with sops")


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1", "t"))


# -- output ------------------------------------------------------------------------------------------

def _emit(fmt: str, docs: list[dict[str, Any]]) -> Decrypted:
    if fmt == "dotenv":
        pairs = tuple((k, v if isinstance(v, str) else _to_bytes(v).decode()) for k, v in docs[0].items())
        text = "".join(f"{k}={v.replace(chr(10), chr(92) + 'n')}\n" for k, v in pairs)
        return Decrypted("dotenv", text.encode(), pairs)
    if fmt == "binary":
        data = docs[0].get("data")
        if set(docs[0]) != {"data"} or not isinstance(data, str | bytes):
            raise SopsError("a binary SOPS file holds one `data` value; name a structured file .json or .yaml")
        return Decrypted("binary", data.encode() if isinstance(data, str) else data)
    if fmt == "json":
        return Decrypted("json", (json.dumps(docs[0], indent=4, ensure_ascii=False, default=_bytes_json) + "\n").encode())
    return Decrypted("yaml", yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, allow_unicode=True).encode())


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks (`|`), as sops prints them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _bytes_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(type(value).__name__)


def _walk_docs(walk: _Walk, docs: list[Any]) -> Iterator[dict[str, Any]]:
    for doc in docs:
        yield walk.value(doc, [])


def decrypt(name: str, content: bytes, keys: Keys | None) -> Decrypted:
    """Decrypt the SOPS file `name` (its format follows the name) held in `content`."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise SopsError("a SOPS file is UTF-8 text; this one is not") from None
    fmt = _format(name, text)
    docs, meta = _load(fmt, text)
    if fmt == "binary" and set(docs[0]) != {"data"}:
        fmt = "json"            # a structured file named without .json: sops -d would need --input-type
    lastmodified = meta.get("lastmodified")
    if not isinstance(lastmodified, str) or "mac" not in meta:
        raise SopsError("its sops metadata has no lastmodified or mac: encrypt the file with sops")
    key = _data_key(meta, keys, os.path.basename(name))
    walk = _Walk(key, meta)
    plain = list(_walk_docs(walk, docs))
    walk.verify(meta.get("mac"), lastmodified, os.path.basename(name))
    return _emit(fmt, plain)
