"""SOPS decryption (spec/sops.py, #22 "SOPS/age secrets") against files the real `sops` CLI wrote.

The fixtures (tests/fixtures/sops/README.md) come unchanged from the getsops/sops repository:
YAML, JSON and binary files sops 3.7.1 encrypted to an age recipient whose identity is
`age/keys.txt`, and dotenv, YAML and JSON files sops 3.13.1 encrypted to its functional-test
PGP key. Each decrypts with its MAC verified; a changed value, a value changed in clear, a
missing MAC, a missing or wrong key are errors that say what is wrong.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pyrage
import pytest
import yaml

from reconciler.spec import sops

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "sops"
AGE_RECIPIENT = "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw"
PGP_FP = "FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4"


@pytest.fixture(scope="module")
def age_keys() -> sops.Keys:
    return sops.Keys(age_identities=sops.read_age_identities(str(FIX / "age" / "keys.txt")), where="test key")


@pytest.fixture(scope="module")
def pgp_keys(tmp_path_factory: pytest.TempPathFactory) -> sops.Keys:
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed")
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    subprocess.run(["gpg", "--batch", "--quiet", "--homedir", str(home), "--import",
                    str(FIX / "pgp" / "sops_functional_tests_key.asc")], check=True, capture_output=True)
    yield sops.Keys(gnupg_home=str(home), use_gpg=True, where="test gnupg home")
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False, capture_output=True)


def _read(rel: str) -> bytes:
    return (FIX / rel).read_bytes()


# -- files the real sops CLI encrypted --------------------------------------------------------------

def test_age_yaml_decrypts_with_every_value_type(age_keys: sops.Keys) -> None:
    content = _read("age/example.yaml")
    assert sops.is_encrypted("example.yaml", content)
    out = sops.decrypt("example.yaml", content, age_keys)
    assert out.format == "yaml"
    doc = yaml.safe_load(out.data)
    assert doc["myapp1"] == "t00m4nys3cr3tzupdated"
    assert doc["app2"]["db"] == {"user": "eve", "password": "c4r1b0u"}
    assert doc["app2"]["key"].startswith("-----BEGIN RSA PRIVATE KEY-----\n")         # a multi-line value
    assert doc["number"] == 1234568000.0                                               # type:float
    assert doc["somebooleans"] == [True, False]                                        # type:bool
    assert doc["an_array"][:2] == ["secretuser1", "secretuser2"]                       # list items share the path
    assert doc["this"]["is"]["a"]["nested"]["value"] == "with something secret in it"
    assert doc["nested_unencrypted"] == {"this": {"is": {"all": "going to remain in clear text"}}}
    assert "sops" not in doc
    assert b"ENC[" not in out.data


def test_age_json_decrypts(age_keys: sops.Keys) -> None:
    out = sops.decrypt("example.json", _read("age/example.json"), age_keys)
    doc = json.loads(out.data)
    assert out.format == "json"
    assert doc["firstName"] == "John"
    assert doc["age"] == 25.4
    assert doc["phoneNumbers"][1] == {"number": "646 555-4567", "type": "office"}
    assert doc["anEmptyValue"] == ""
    assert "sops" not in doc


def test_age_binary_decrypts_to_the_file(age_keys: sops.Keys) -> None:
    out = sops.decrypt("example.txt", _read("age/example.txt"), age_keys)
    assert out.format == "binary"
    assert out.data.startswith(b"Welcome to SOPS!\n\nSOPS is a manager of encrypted files")


def test_pgp_dotenv_yaml_json_decrypt_as_sops_functional_tests_expect(pgp_keys: sops.Keys) -> None:
    env = sops.decrypt("format.enc.env", _read("pgp/format.enc.env"), pgp_keys)
    assert (env.format, env.data, env.pairs) == ("dotenv", b"foo = bar\n", (("foo ", " bar"),))
    renamed = sops.decrypt("web.env.enc", _read("pgp/format.enc.env"), pgp_keys)    # known by its sops_mac line
    assert (renamed.format, renamed.pairs) == ("dotenv", (("foo ", " bar"),))
    assert sops.decrypt("format.enc.yaml", _read("pgp/format.enc.yaml"), pgp_keys).data == b"foo: bar\n"
    assert json.loads(sops.decrypt("format.enc.json", _read("pgp/format.enc.json"), pgp_keys).data) == {"foo": "bar"}


def test_plain_files_are_not_sops_files() -> None:
    assert not sops.is_encrypted("app.env", b"A=1\nsops=no\n")
    assert not sops.is_encrypted("a.yaml", b"sops: [1]\n")
    assert not sops.is_encrypted("a.json", b'{"data": "sops"}')
    assert sops.is_encrypted("no_mac.yaml", _read("pgp/no_mac.yaml"))


# -- refusals ---------------------------------------------------------------------------------------

def test_changed_ciphertext_is_refused(age_keys: sops.Keys) -> None:
    text = _read("age/example.yaml").decode()
    m = re.search(r"myapp1: ENC\[AES256_GCM,data:(.)", text)
    assert m is not None
    flipped = text[:m.start(1)] + ("A" if m.group(1) != "A" else "B") + text[m.end(1):]
    with pytest.raises(sops.SopsError, match=r"value at myapp1: does not decrypt .*changed after sops encrypted it"):
        sops.decrypt("example.yaml", flipped.encode(), age_keys)


def test_value_moved_to_another_key_is_refused(age_keys: sops.Keys) -> None:
    """The key path is the additional data: a ciphertext copied under another key fails."""
    doc = yaml.safe_load(_read("age/example.yaml"))
    doc["app2"]["db"]["user"] = doc["app2"]["db"]["password"]
    with pytest.raises(sops.SopsError, match=r"value at app2:db:user: does not decrypt"):
        sops.decrypt("example.yaml", yaml.safe_dump(doc, sort_keys=False).encode(), age_keys)


def test_clear_value_changed_is_a_mac_mismatch(age_keys: sops.Keys) -> None:
    """A value sops left in clear (`_unencrypted` suffix) is covered by the MAC only."""
    text = _read("age/example.yaml").decode()
    changed = text.replace("going to remain in clear text", "going to be changed by someone")
    assert changed != text
    with pytest.raises(sops.SopsError, match=r"example.yaml: MAC mismatch"):
        sops.decrypt("example.yaml", changed.encode(), age_keys)


def test_removed_value_is_a_mac_mismatch(age_keys: sops.Keys) -> None:
    doc = json.loads(_read("age/example.json"))
    del doc["lastName"]
    with pytest.raises(sops.SopsError, match=r"MAC mismatch"):
        sops.decrypt("example.json", json.dumps(doc).encode(), age_keys)


def test_missing_mac_is_refused(pgp_keys: sops.Keys) -> None:
    with pytest.raises(sops.SopsError, match=r"no lastmodified or mac"):
        sops.decrypt("no_mac.yaml", _read("pgp/no_mac.yaml"), pgp_keys)


def test_no_key_configured_says_how_to_configure_one() -> None:
    with pytest.raises(sops.SopsError, match=r"example.yaml is SOPS-encrypted and no decryption key is configured; "
                                             r"set `decryption: \{provider: sops, age_key_file: PATH\}`"):
        sops.decrypt("example.yaml", _read("age/example.yaml"), None)


def test_wrong_age_key_names_the_recipients() -> None:
    other = sops.Keys(age_identities=(str(pyrage.x25519.Identity.generate()),), where="age_key_file /k")
    with pytest.raises(sops.SopsError, match=rf"none of its master keys opens .*age_key_file /k.*age {AGE_RECIPIENT}"):
        sops.decrypt("example.yaml", _read("age/example.yaml"), other)


def test_ini_is_refused(age_keys: sops.Keys) -> None:
    assert sops.is_encrypted("example.ini", _read("age/example.ini"))
    with pytest.raises(sops.SopsError, match="INI files are not supported"):
        sops.decrypt("example.ini", _read("age/example.ini"), age_keys)


def test_age_key_file_must_hold_identities(tmp_path: Path) -> None:
    bad = tmp_path / "k.txt"
    bad.write_text("# created\nnot-a-key\n")
    with pytest.raises(sops.SopsError, match=r"line 2 is not an age identity"):
        sops.read_age_identities(str(bad))
    with pytest.raises(sops.SopsError, match=r"cannot read the age key file"):
        sops.read_age_identities(str(tmp_path / "missing"))


def test_pgp_without_the_secret_key_names_the_fingerprint(tmp_path: Path) -> None:
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed")
    home = tmp_path / "empty-gnupg"
    home.mkdir(mode=0o700)
    keys = sops.Keys(gnupg_home=str(home), use_gpg=True, where="gnupg_home")
    try:
        with pytest.raises(sops.SopsError, match=rf"format.enc.yaml: none of its master keys opens .*pgp {PGP_FP}"):
            sops.decrypt("format.enc.yaml", _read("pgp/format.enc.yaml"), keys)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False, capture_output=True)
