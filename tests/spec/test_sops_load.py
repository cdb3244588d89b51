"""SOPS-encrypted env files while manifests load (#22 "SOPS/age secrets"): `reconcile validate`
and `apply` (`--once`) decrypt them in memory with the key of `--sops-age-key-file` or
SOPS_AGE_KEY_FILE; a missing, unreadable or wrong key and a tampered file are validation errors
(exit 2, nothing changed) naming the manifest and the env file. After an apply the container has
the values, and the plaintext is in no revision copy, no state database row, no output.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from pathlib import Path

import pytest

from reconciler import spec
from reconciler.cli.main import main
from reconciler.runtime.fake import FakeRuntime
from reconciler.spec import hashing, sops
from reconciler.state import inventory
from tests.execution.helpers import container_doc, fake_root
from tests.helpers.sops_files import AgeKey, encrypt_dotenv, new_age_key


@pytest.fixture(autouse=True)
def _no_ambient_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def key(tmp_path: Path) -> tuple[AgeKey, Path]:
    k = new_age_key()
    return k, k.write(tmp_path / "age.key")


def _source(tmp: Path, recipient: str) -> tuple[Path, dict[str, str]]:
    values = {"DB_PASSWORD": "pw-" + secrets.token_hex(12), "API_TOKEN": "tok-" + secrets.token_hex(12)}
    src = tmp / "src"
    src.mkdir()
    (src / "secrets.env").write_bytes(encrypt_dotenv(values, recipient))
    (src / "app.yaml").write_text(container_doc("web", extra="command: [sleep, '3600']\n"
                                                "envFiles: [secrets.env]\nenv: {PLAIN: visible}\n"))
    return src, values


def _keyed(root: Path, plain: bytes) -> str:
    """The digest that stands for a decrypted file's values: HMAC-SHA256 of its plaintext (as
    sops prints it) under the state root's key."""
    key = (root / sops.DIGEST_KEY_FILE).read_bytes()
    return "hmac-sha256:" + hmac.new(key, plain, hashlib.sha256).hexdigest()


def _dotenv(values: dict[str, str]) -> bytes:
    return "".join(f"{k}={v}\n" for k, v in values.items()).encode()


def _files_holding(root: Path, needles: list[str]) -> set[str]:
    found = set()
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath, name)
            data = p.read_bytes()
            if any(n.encode() in data for n in needles):
                found.add(str(p.relative_to(root)).split(os.sep)[0])
    return found


def test_validate_decrypts_with_the_flag(tmp_path: Path, key: tuple[AgeKey, Path]) -> None:
    k, key_file = key
    src, values = _source(tmp_path, k.recipient)
    assert main(["validate", str(src), "--sops-age-key-file", str(key_file)]) == 0
    desired = spec.load(src, decryption=sops.load_keys(str(key_file)))
    env = desired.containers["web"].env
    assert {name: env[name] for name in values} == values
    assert env["PLAIN"] == "visible"


def test_apply_with_sops_age_key_file_gives_the_container_its_env_and_keeps_no_plaintext(
    tmp_path: Path, key: tuple[AgeKey, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    k, key_file = key
    src, values = _source(tmp_path, k.recipient)
    root = fake_root(tmp_path)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key_file))
    assert main(["--once", str(src), "--root", str(root), "--runtime", "fake", "-o", "json"]) == 0
    config = FakeRuntime.at_root(root).config_of("web")
    key_file = root / sops.DIGEST_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600                   # the root's key, made now
    assert len(key_file.read_bytes()) == 32
    digest = _keyed(root, _dotenv(values))
    assert config.secret_env == dict.fromkeys(values, digest)                # keys and the values' keyed digest
    assert not set(values) & set(config.env)                                 # never the values
    assert config.env["PLAIN"] == "visible"
    out = capsys.readouterr()
    needles = list(values.values())
    assert not any(n in out.out or n in out.err for n in needles)
    assert (root / "revisions").is_dir()
    # the revision copy keeps the encrypted file, the database neither values nor their hashes,
    # the engine's record and the rollback env the keys only (docs/security.md, "Where the values go")
    masked = [inventory.mask_value(k, v) for k, v in values.items()]
    assert _files_holding(root, needles + masked) == set()
    assert json.loads(next((root / "inventory-env").iterdir()).read_text())["env"] == {"PLAIN": "visible"}
    copies = [p for p in (root / "revisions").rglob("secrets.env")]
    assert copies
    assert all(p.read_bytes() == (src / "secrets.env").read_bytes() for p in copies)


def test_missing_key_is_a_validation_error_naming_the_file(
    tmp_path: Path, key: tuple[AgeKey, Path], capsys: pytest.CaptureFixture[str],
) -> None:
    k, _ = key
    src, _ = _source(tmp_path, k.recipient)
    root = fake_root(tmp_path)
    assert main(["apply", str(src), "--root", str(root), "--runtime", "fake"]) == 2
    err = capsys.readouterr().err
    assert f"{src / 'app.yaml'}:" in err
    assert ("Container/web: spec.envFiles[0]: env file 'secrets.env': secrets.env is SOPS-encrypted and no "
            "decryption key is configured") in err
    assert FakeRuntime.at_root(root).list_containers() == []            # nothing changed


def test_tampered_file_is_a_mac_mismatch_naming_the_file(
    tmp_path: Path, key: tuple[AgeKey, Path], capsys: pytest.CaptureFixture[str],
) -> None:
    """Swapping two lines keeps every value decryptable (each is bound to its own key) but not
    the MAC, which covers the values in order."""
    k, key_file = key
    src, _ = _source(tmp_path, k.recipient)
    lines = (src / "secrets.env").read_text().splitlines(keepends=True)
    (src / "secrets.env").write_text("".join([lines[1], lines[0], *lines[2:]]))
    assert main(["validate", str(src), "--sops-age-key-file", str(key_file)]) == 2
    err = capsys.readouterr().out
    assert "spec.envFiles[0]: env file 'secrets.env': secrets.env: MAC mismatch" in err


def test_wrong_or_unreadable_key(tmp_path: Path, key: tuple[AgeKey, Path], capsys: pytest.CaptureFixture[str]) -> None:
    k, _ = key
    src, _ = _source(tmp_path, k.recipient)
    other = new_age_key().write(tmp_path / "other.key")
    assert main(["validate", str(src), "--sops-age-key-file", str(other)]) == 2
    err = capsys.readouterr().out
    assert f"secrets.env: none of its master keys opens with the configured keys (--sops-age-key-file {other})" in err
    assert f"age {k.recipient}" in err
    assert main(["validate", str(src), "--sops-age-key-file", str(tmp_path / "nope.key")]) == 2
    assert f"cannot read the age key file {tmp_path / 'nope.key'}" in capsys.readouterr().err


def test_a_sops_json_file_is_not_an_env_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real sops CLI's age-encrypted JSON, named as an env file: decrypted, then refused."""
    fix = Path(__file__).resolve().parents[1] / "fixtures" / "sops" / "age"
    src = tmp_path / "src"
    src.mkdir()
    (src / "example.json").write_bytes((fix / "example.json").read_bytes())
    (src / "app.yaml").write_text(container_doc("web", extra="envFiles: [example.json]\n"))
    assert main(["validate", str(src), "--sops-age-key-file", str(fix / "keys.txt"), "-o", "json"]) == 2
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert [p["message"] for p in problems] == [
        "env file 'example.json' is a SOPS json file; envFiles take dotenv files: encrypt KEY=VALUE lines "
        "in a file named *.env"]


def test_compose_dotenv_and_env_file_decrypt(tmp_path: Path, key: tuple[AgeKey, Path]) -> None:
    """doco-cd's pattern: a compose project whose `.env` (interpolation) and `env_file` sops
    encrypted; `apply --once` gives the service both; `convert` (which prints manifests) refuses."""
    k, key_file = key
    proj = tmp_path / "shop"
    proj.mkdir()
    tag, password = "1", "pw-" + secrets.token_hex(12)
    (proj / ".env").write_bytes(encrypt_dotenv({"WEB_TAG": tag}, k.recipient))
    (proj / "db.env").write_bytes(encrypt_dotenv({"DB_PASSWORD": password}, k.recipient))
    (proj / "plain.env").write_text("DB_USER=shop\nDB_HOST=db\n")
    (proj / "db.env").write_bytes(encrypt_dotenv({"DB_PASSWORD": password, "DB_HOST": "x", "DB_USER": "y"},
                                                 k.recipient))
    (proj / "compose.yaml").write_text("services:\n  web:\n    image: registry.local:5000/shop/web:${WEB_TAG}\n"
                                       "    env_file: [plain.env, db.env]\n    environment: {DB_HOST: db2}\n"
                                       "    command: [sleep, '3600']\n")
    root = fake_root(tmp_path)
    keys = sops.at_root(sops.load_keys(str(key_file)), root)
    desired = spec.load(proj, decryption=keys)
    web = next(iter(desired.containers.values()))
    assert web.image == "registry.local:5000/shop/web:1"
    assert web.env["DB_PASSWORD"] == password
    # the encrypted env_file's keys are secret (as an encrypted envFiles entry's), unless
    # environment: sets them after it; they stand as the keyed digest of the file's values
    digest = _keyed(root, _dotenv({"DB_PASSWORD": password, "DB_HOST": "x", "DB_USER": "y"}))
    assert web.secret_env == {"DB_PASSWORD": digest, "DB_USER": digest}
    assert (web.env["DB_USER"], web.env["DB_HOST"]) == ("y", "db2")
    # encrypted again with the same values (new ciphertext, IVs, MAC; `sops updatekeys`): the same
    (proj / "db.env").write_bytes(encrypt_dotenv({"DB_PASSWORD": password, "DB_HOST": "x", "DB_USER": "y"},
                                                 k.recipient))
    (proj / ".env").write_bytes(encrypt_dotenv({"WEB_TAG": tag}, k.recipient))
    again = next(iter(spec.load(proj, decryption=keys).containers.values()))
    assert (again.secret_env, again.spec_hash) == (web.secret_env, web.spec_hash)
    FakeRuntime.at_root(root).publish("registry.local:5000/shop/web:1")
    assert main(["--once", str(proj), "--root", str(root), "--runtime", "fake",
                 "--sops-age-key-file", str(key_file)]) == 0
    assert _files_holding(root, [password, inventory.mask_value("DB_PASSWORD", password)]) == set()

    with pytest.raises(spec.SpecError) as caught:
        spec.load(proj)
    messages = [p.message for p in caught.value.problems]
    assert any(f"the .env file {proj / '.env'}: .env is SOPS-encrypted and no decryption key is configured" in m
               for m in messages), messages
    with pytest.raises(spec.SpecError, match=r"env file .*db.env: db.env is SOPS-encrypted"):
        spec.convert(proj)


def test_a_sops_encrypted_manifest_is_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real sops CLI's YAML in the manifests' directory: one problem naming it, not a
    schema error per field."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "example.yaml").write_bytes((Path(__file__).resolve().parents[1] / "fixtures" / "sops" / "age"
                                        / "example.yaml").read_bytes())
    (src / "app.yaml").write_text(container_doc("web"))
    assert main(["validate", str(src), "-o", "json"]) == 2
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert len(problems) == 1, problems
    assert problems[0]["file"] == str(src / "example.yaml")
    assert problems[0]["message"].startswith("a SOPS-encrypted file: manifests are read as written, never decrypted")


# -- secrets: files for a tmpfs of the container's own -----------------------------------------------

def _secret_source(tmp: Path, recipient: str, secrets_yaml: str) -> tuple[Path, str]:
    from tests.helpers.sops_files import encrypt_binary

    value = "sv-" + secrets.token_hex(12)
    src = tmp / "src"
    src.mkdir()
    (src / "db.password").write_bytes(encrypt_binary(value.encode(), recipient))
    (src / "plain.conf").write_text("level=1\n")
    (src / "app.yaml").write_text(container_doc("web", extra="command: [sleep, '3600']\n" + secrets_yaml))
    return src, value


def test_secrets_load_decrypted_and_never_in_hash_document_or_record(
    tmp_path: Path, key: tuple[AgeKey, Path], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from reconciler.state import inventory

    k, key_file = key
    src, value = _secret_source(tmp_path, k.recipient, "secrets:\n- {source: db.password}\n"
                                "- {source: plain.conf, target: /etc/app.conf, mode: 0440, uid: 7}\n")
    root = fake_root(tmp_path)
    desired = spec.load(src, decryption=sops.at_root(sops.load_keys(str(key_file)), root))
    web = desired.containers["web"]
    assert [(s.target, s.mode, s.uid, s.data) for s in web.secrets] == [
        ("/run/secrets/db.password", 0o400, 0, value.encode()), ("/etc/app.conf", 0o440, 7, b"level=1\n")]
    assert value not in repr(web)
    doc = json.dumps(inventory.spec_document(web))
    assert "db.password" in doc
    assert value not in doc
    assert "data" not in inventory.spec_document(web)["secrets"][0]
    # the spec hash takes the keyed digest of the decrypted content: the same file, another
    # key, the same hash; the file encrypted again, the same hash
    assert web.secrets[0].digest == _keyed(root, value.encode())
    assert web.secrets[1].digest == hashing.file_digest(b"level=1\n")
    other = new_age_key()
    both = sops.at_root(sops.Keys(age_identities=(k.identity, other.identity)), root)
    assert web.spec_hash == spec.load(src, decryption=both).containers["web"].spec_hash
    # without a state root (`validate`): the stored file's digest stands for it
    assert spec.load(src, decryption=sops.load_keys(str(key_file))).containers["web"].secrets[0].digest == \
        hashing.file_digest((src / "db.password").read_bytes())
    from tests.helpers.sops_files import encrypt_binary

    (src / "db.password").write_bytes(encrypt_binary(value.encode(), other.recipient))
    assert web.spec_hash == spec.load(src, decryption=both).containers["web"].spec_hash
    (src / "db.password").write_bytes(encrypt_binary(value.encode(), k.recipient))

    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key_file))
    assert main(["apply", str(src), "--root", str(root), "--runtime", "fake"]) == 0
    mounts = FakeRuntime.at_root(root).config_of("web").mounts
    assert [(m.type, m.target, m.options[:3]) for m in mounts] == [
        ("secret", "/run/secrets/db.password", ("mode=0400", "uid=0", "gid=0")),
        ("secret", "/etc/app.conf", ("mode=0440", "uid=7", "gid=0"))]
    assert [m.options[3] for m in mounts] == [f"digest={s.digest}" for s in web.secrets]   # the keyed one
    assert all(m.data is None for m in mounts)                  # a record never has the content
    assert _files_holding(root, [value]) == set()


def test_secret_problems(tmp_path: Path, key: tuple[AgeKey, Path], capsys: pytest.CaptureFixture[str]) -> None:
    k, _ = key
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    src, _ = _secret_source(tmp_path, k.recipient, f"volumes: ['./plain.conf:/etc/x:ro']\nsecrets:\n"
                            "- {source: db.password}\n- {source: missing.txt}\n- {source: plain.conf, target: etc/y}\n"
                            "- {source: plain.conf, target: /etc/x}\n"
                            f"- {{source: {outside}}}\n")
    assert main(["validate", str(src), "--policy", "restricted", "-o", "json"]) == 2
    got = sorted((p["field"], p["message"]) for p in json.loads(capsys.readouterr().out)["problems"])
    assert [f for f, _ in got] == ["spec.secrets[0].source", "spec.secrets[1].source", "spec.secrets[2].target",
                                   "spec.secrets[3].target", "spec.secrets[4].source"]
    messages = dict(got)
    assert "db.password is SOPS-encrypted and no decryption key is configured" in messages["spec.secrets[0].source"]
    assert messages["spec.secrets[1].source"].startswith("secret file 'missing.txt' not found")
    assert messages["spec.secrets[2].target"] == "secret target 'etc/y' must be an absolute path"
    assert messages["spec.secrets[3].target"] == "secret target '/etc/x' is mounted twice"
    assert "rule filePrefixes" in messages["spec.secrets[4].source"]


def test_the_docker_backend_binds_a_plain_secret_file_and_refuses_a_decrypted_one(tmp_path: Path) -> None:
    from reconciler.runtime import base
    from reconciler.runtime import errors as rterrors
    from reconciler.runtime.docker import backend

    plain = tmp_path / "token"
    plain.write_bytes(b"v")
    assert backend._mount(base.Mount(type="secret", target="/run/secrets/x", source=str(plain), read_only=True,
                                     data=b"v")) == {"Type": "bind", "Target": "/run/secrets/x",
                                                     "Source": str(plain), "ReadOnly": True}
    with pytest.raises(rterrors.InvalidArgument, match="the secret file /run/secrets/x needs the native engine"):
        backend._mount(base.Mount(type="secret", target="/run/secrets/x", source=str(plain), data=b"decrypted"))


def test_docker_and_swarm_refuse_env_values_from_sops_files(tmp_path: Path, key: tuple[AgeKey, Path]) -> None:
    """Docker writes a container's env to its config.v2.json, a Swarm service's env is in its
    spec on every manager: a SOPS env value goes to neither, with what to do instead."""
    from reconciler.execution import translate
    from reconciler.runtime import errors as rterrors
    from reconciler.runtime.docker import backend
    from reconciler.runtime.swarm import services

    k, key_file = key
    src, _values = _source(tmp_path, k.recipient)
    web = spec.load(src, decryption=sops.load_keys(str(key_file))).containers["web"]
    config = translate.container_config(web, name="web", labels={})
    with pytest.raises(rterrors.InvalidArgument, match="env API_TOKEN, DB_PASSWORD came from a SOPS-encrypted") as caught:
        backend.container_body(config)
    assert "use the native runtime" in (caught.value.hint or "")
    with pytest.raises(rterrors.InvalidArgument, match="env API_TOKEN, DB_PASSWORD came from a SOPS-encrypted") as caught:
        services._container_spec(config, {}, {})
    assert "secret file (spec.secrets)" in (caught.value.hint or "")


def test_compose_secrets_and_configs_become_secret_files(tmp_path: Path, key: tuple[AgeKey, Path],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """compose's `secrets:`/`configs:` with `file:` (one sops-encrypted): the same tmpfs files."""
    from tests.helpers.sops_files import encrypt_binary

    k, key_file = key
    proj = tmp_path / "shop"
    proj.mkdir()
    value = "cs-" + secrets.token_hex(8)
    (proj / "db.password.enc").write_bytes(encrypt_binary(value.encode(), k.recipient))
    (proj / "nginx.conf").write_text("worker_processes 1;\n")
    (proj / "compose.yaml").write_text(
        "services:\n  web:\n    image: registry.local:5000/shop/web:1\n"
        "    secrets: [db_password, {source: db_password, target: again, uid: '33', mode: 0440}]\n"
        "    configs: [{source: nginx, target: /etc/nginx/nginx.conf}]\n"
        "secrets:\n  db_password: {file: ./db.password.enc}\n"
        "configs:\n  nginx: {file: ./nginx.conf}\n  unused: {environment: X}\n")
    web = next(iter(spec.load(proj, decryption=sops.load_keys(str(key_file))).containers.values()))
    assert [(s.target, s.mode, s.uid, s.data) for s in web.secrets] == [
        ("/run/secrets/db_password", 0o400, 0, value.encode()),
        ("/run/secrets/again", 0o440, 33, value.encode()),
        ("/etc/nginx/nginx.conf", 0o444, 0, b"worker_processes 1;\n")]

    (proj / "compose.yaml").write_text("services:\n  web:\n    image: registry.local:5000/shop/web:1\n"
                                       "    secrets: [token, nope]\nsecrets:\n  token: {environment: TOKEN}\n")
    monkeypatch.delenv("TOKEN", raising=False)
    with pytest.raises(spec.SpecError) as caught:
        spec.load(proj)
    assert sorted(p.message for p in caught.value.problems) == [
        "refers to undefined secret 'nope'; declare it under the top-level secrets:",
        "the environment variable TOKEN is not set in the reconciler's environment; set it there, or take the "
        "secret from a file (source:)"]


def test_a_rollback_gets_a_secret_only_from_the_same_stored_file(tmp_path: Path, key: tuple[AgeKey, Path]) -> None:
    """The planner gives a stop-first rollback the new content only where the previous
    container's secret came from the same file (digest): a changed secret is not passed off as
    the old one (the rollback then fails, saying no record keeps a secret)."""
    from reconciler.execution import translate
    from reconciler.planning import planner
    from reconciler.runtime import base

    k, key_file = key
    src, value = _secret_source(tmp_path, k.recipient, "secrets:\n- {source: db.password}\n- {source: plain.conf}\n")
    web = spec.load(src, decryption=sops.load_keys(str(key_file))).containers["web"]
    before = base.config_to_json(translate.container_config(web, name="web", labels={}))
    assert "data" not in json.dumps(before)
    (src / "plain.conf").write_text("level=2\n")                            # this one changes
    after = spec.load(src, decryption=sops.load_keys(str(key_file))).containers["web"]
    kept = planner._unchanged_secrets(before, after)
    assert kept.by_target == {"/run/secrets/db.password": value.encode()}
    assert value not in repr(kept)


def test_sops_env_values_are_marked_secret_and_hash_as_their_files_values(
        tmp_path: Path, key: tuple[AgeKey, Path]) -> None:
    """A key from a SOPS env file is in `secret_env` with the keyed digest of the file's values,
    unless a plain file or `env` later sets it; the spec hash and the inventory's document take
    that digest, not the value: a value cannot be guessed from its hash (nor from its digest,
    without the state root's key). The same values encrypted again (`sops updatekeys`, a key
    rotation: new ciphertext, IVs and MAC) hash the same: nothing to replace. A changed value
    changes the hash. (Before, the encrypted file's digest stood for the values: each new
    encryption replaced the containers using it, and diff said the env changed.)"""
    from reconciler.execution import translate
    from reconciler.planning import planner
    from reconciler.runtime import base

    k, key_file = key
    src, values = _source(tmp_path, k.recipient)
    (src / "plain.env").write_text("API_TOKEN=overridden\n")
    doc = (src / "app.yaml").read_text().replace("envFiles: [secrets.env]", "envFiles: [secrets.env, plain.env]")
    (src / "app.yaml").write_text(doc)
    root = tmp_path / "root"
    keys = sops.at_root(sops.load_keys(str(key_file)), root)
    web = spec.load(src, decryption=keys).containers["web"]
    digest = _keyed(root, _dotenv(values))
    assert web.secret_env == {"DB_PASSWORD": digest}                        # API_TOKEN: the plain file's
    assert web.env["DB_PASSWORD"] == values["DB_PASSWORD"]
    assert digest != "hmac-sha256:" + hashlib.sha256(_dotenv(values)).hexdigest()
    document = json.dumps(inventory.spec_document(web))
    assert values["DB_PASSWORD"] not in document
    assert inventory.mask_value("DB_PASSWORD", values["DB_PASSWORD"]) not in document
    config = base.config_to_json(translate.container_config(web, name="web", labels={}))
    assert values["DB_PASSWORD"] not in json.dumps(config)
    assert config["secret_env"] == {"DB_PASSWORD": digest}

    # the same values encrypted again (a new data key, ciphertext, IVs and MAC), then to a new
    # recipient (a key rotation): the same digest, the same hash, the same inventory document
    stored = (src / "secrets.env").read_bytes()
    (src / "secrets.env").write_bytes(encrypt_dotenv(values, k.recipient))
    assert (src / "secrets.env").read_bytes() != stored
    again = spec.load(src, decryption=keys).containers["web"]
    assert (again.env, again.secret_env, again.spec_hash) == (web.env, web.secret_env, web.spec_hash)
    assert planner.field_changes(inventory.spec_document(web), inventory.spec_document(again)) == ()
    rotated = new_age_key()
    (src / "secrets.env").write_bytes(encrypt_dotenv(values, rotated.recipient))
    assert spec.load(src, decryption=sops.at_root(sops.Keys(age_identities=(rotated.identity,)), root)
                     ).containers["web"].spec_hash == web.spec_hash
    # a rollback gets the value where the previous container's key came from the same values
    assert planner._unchanged_secrets(config, again).env == {"DB_PASSWORD": values["DB_PASSWORD"]}

    # a changed value: another digest, another hash (a replacement), and no rollback value
    (src / "secrets.env").write_bytes(encrypt_dotenv({**values, "DB_PASSWORD": "pw-new"}, k.recipient))
    changed = spec.load(src, decryption=keys).containers["web"]
    assert changed.spec_hash != web.spec_hash
    assert changed.secret_env["DB_PASSWORD"] != digest
    assert [c.path for c in planner.field_changes(inventory.spec_document(web), inventory.spec_document(changed))] \
        == ["env.DB_PASSWORD", "secret_env"]
    assert planner._unchanged_secrets(config, changed).env == {}
    # another state root: another key, so its digests tell nothing of this one's
    elsewhere = spec.load(src, decryption=sops.at_root(keys, tmp_path / "other-root")).containers["web"]
    assert elsewhere.secret_env["DB_PASSWORD"] != changed.secret_env["DB_PASSWORD"]
