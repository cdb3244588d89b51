"""A real agent (fake engine) with a SOPS-encrypted env file in its directory source (#22
"SOPS/age secrets"): without `decryption:` the revision is refused with the env file named;
the config gains `decryption: {provider: sops, age_key_file: ...}` and a reload (SIGHUP) lets the
same revision through; a tampered file is refused and the last good revision stays. The
plaintext is in no revision copy, no state database row, no log line, no API answer. The config
takes a top-level key, a source's own key, or `provider: none` for a source.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import signal
import stat
from pathlib import Path

import pytest

from reconciler.agent.config import ConfigError, parse_config
from reconciler.runtime import errors as rterrors
from reconciler.runtime.fake import FakeRuntime
from reconciler.spec import sops
from reconciler.state.inventory import mask_value
from tests.agent.conftest import AgentProc, wait_for
from tests.agent.test_directory import env_of
from tests.execution.helpers import IMG, container_doc, write
from tests.helpers.sops_files import encrypt_dotenv, new_age_key


def test_agent_decrypts_with_its_configured_key_and_keeps_no_plaintext(tmp_path: Path, agents: list[AgentProc]) -> None:
    key = new_age_key()
    key_file = key.write(tmp_path / "age.key")
    m = tmp_path / "m"
    value = "pw-" + secrets.token_hex(16)
    m.mkdir()
    (m / "db.env").write_bytes(encrypt_dotenv({"DB_PASSWORD": value}, key.recipient))
    write(m, "web.yaml", container_doc("web", extra="envFiles: [db.env]\nenv: {V: '1'}"))
    a = AgentProc(tmp_path / "agent", sources=[{"name": "local", "directory": str(m)}])
    a.tmp.mkdir(parents=True)
    FakeRuntime.at_root(a.root).publish(IMG)
    agents.append(a.start())

    problems = wait_for("refused without a key", lambda: a.source("local")["problems"])
    assert len(problems) == 1, problems
    assert f"{m / 'web.yaml'}:" in problems[0]
    assert "spec.envFiles[0]: env file 'db.env': db.env is SOPS-encrypted and no decryption key is configured" \
        in problems[0]

    a.write_config(decryption={"provider": "sops", "age_key_file": str(key_file)})
    a.signal(signal.SIGHUP)
    wait_for("web created with the decrypted value", lambda: secret_env_of(a.root, "web"))
    digest = keyed(a.root, f"DB_PASSWORD={value}\n".encode())     # of the values, under the root's key
    assert secret_env_of(a.root, "web") == {"DB_PASSWORD": digest}
    assert env_of(a.root, "web") == {"V": "1"}          # the fake engine keeps the key's digest, no value
    good = wait_for("the pass recorded as applied", lambda: a.source("local")["revision"])   # after the create
    web = FakeRuntime.at_root(a.root).inspect_container("web").id

    # the same value encrypted again (`sops updatekeys`, a key rotation: a new ciphertext, IV and
    # MAC): a new revision whose pass replaces nothing, and the plan says in sync (before, the
    # container was replaced for "spec hash changed: env")
    (m / "db.env").write_bytes(encrypt_dotenv({"DB_PASSWORD": value}, key.recipient))
    again = wait_for("the new revision applied", lambda: (r := a.source("local"))["revision"] != good
                     and r["last_result"] == "converged" and r["revision"])
    assert FakeRuntime.at_root(a.root).inspect_container("web").id == web
    assert secret_env_of(a.root, "web") == {"DB_PASSWORD": digest}
    # a pass event is published only for a pass with something to do
    assert [e for e in a.events() if e["type"] == "pass" and e.get("revision") == again] == []
    plan = a.api.get("/v1/plan?source=local")
    assert plan["in_sync"] is True, plan["rendered"]
    good = again

    # a tampered file: refused with the file named, the container keeps the last good revision
    lines = (m / "db.env").read_text().splitlines(keepends=True)
    other = encrypt_dotenv({"DB_PASSWORD": "x"}, key.recipient).decode().splitlines(keepends=True)
    (m / "db.env").write_text("".join([other[0], *lines[1:]]))    # a value from another file: another data key
    problems = wait_for("tampered file refused", lambda: a.source("local")["problems"])
    assert "env file 'db.env': the value at DB_PASSWORD: does not decrypt" in problems[0]
    assert a.source("local")["revision"] == good
    assert secret_env_of(a.root, "web") == {"DB_PASSWORD": digest}

    status = json.dumps([a.status(), a.source("local")])
    a.stop()
    assert value not in a.log()
    assert value not in status
    needles = [value.encode(), mask_value("DB_PASSWORD", value).encode()]
    holders = sorted({str(p.relative_to(a.root)).split("/")[0] for p in a.root.rglob("*")
                      if p.is_file() and any(n in p.read_bytes() for n in needles)})
    # neither the engine's record, nor the rollback env, nor the database (docs/security.md)
    assert holders == []


def keyed(root: Path, plain: bytes) -> str:
    """What stands for a SOPS file's values in records: HMAC-SHA256 of the plaintext under the
    state root's key (made with mode 0600 when the first SOPS file was met)."""
    key_file = root / sops.DIGEST_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    return "hmac-sha256:" + hmac.new(key_file.read_bytes(), plain, hashlib.sha256).hexdigest()


def secret_env_of(root: Path, name: str) -> dict[str, str]:
    """The keys of the container's env from SOPS files, with their files' digests ({}: none yet)."""
    try:
        return dict(FakeRuntime.at_root(root).config_of(name).secret_env)
    except rterrors.NotFound:
        return {}


def test_config_decryption_top_level_and_per_source(tmp_path: Path) -> None:
    host, team = new_age_key(), new_age_key()
    host_file, team_file = host.write(tmp_path / "host.key"), team.write(tmp_path / "team.key")
    text = (f"decryption: {{provider: sops, age_key_file: {host_file}}}\n"
            "sources:\n"
            f"  - {{name: local, directory: {tmp_path}}}\n"
            f"  - {{name: team, directory: {tmp_path}, decryption: {{provider: sops, age_key_file: {team_file}}}}}\n"
            f"  - {{name: plain, directory: {tmp_path}, decryption: {{provider: none}}}}\n")
    cfg = parse_config(text, where="agent.yaml")
    assert cfg.decryption is not None
    assert cfg.decryption.age_identities == (host.identity,)
    keys = {s.name: s.keys(cfg.decryption) for s in cfg.sources}
    assert keys["local"] == cfg.decryption
    assert keys["team"] is not None
    assert keys["team"].age_identities == (team.identity,)
    assert keys["plain"] is None
    assert host.identity not in repr(cfg)                      # never in a log line that prints the config

    with pytest.raises(ConfigError, match=r"agent.yaml:1: decryption: cannot read the age key file /nope"):
        parse_config("decryption: {provider: sops, age_key_file: /nope}\nsources: []\n", where="agent.yaml")
    with pytest.raises(ConfigError, match=r"agent.yaml:1: decryption: provider sops needs age_key_file"):
        parse_config("decryption: {provider: sops}\nsources: []\n", where="agent.yaml")
    (tmp_path / "x").write_text("# empty\n")
    with pytest.raises(ConfigError, match=rf"agent.yaml:2: sources.0: {tmp_path / 'x'} holds no age identity"):
        parse_config(f"sources:\n  - name: a\n    directory: {tmp_path}\n"
                     f"    decryption: {{provider: sops, age_key_file: {tmp_path / 'x'}}}\n", where="agent.yaml")


def test_a_source_with_its_own_key_and_one_without(tmp_path: Path, agents: list[AgentProc]) -> None:
    """The team's file opens in the team's source only: the host's key (top level) does not
    open it when someone copies it into another source."""
    host, team = new_age_key(), new_age_key()
    value = "team-" + secrets.token_hex(12)
    for name in ("local", "team"):
        d = tmp_path / name
        d.mkdir()
        (d / "t.env").write_bytes(encrypt_dotenv({"TOKEN": value}, team.recipient))
        write(d, "app.yaml", container_doc(f"app-{name}", extra="envFiles: [t.env]"))
    a = AgentProc(tmp_path / "agent",
                  decryption={"provider": "sops", "age_key_file": str(host.write(tmp_path / "host.key"))},
                  sources=[{"name": "local", "directory": str(tmp_path / "local")},
                           {"name": "team", "directory": str(tmp_path / "team"),
                            "decryption": {"provider": "sops", "age_key_file": str(team.write(tmp_path / "team.key"))}}])
    a.tmp.mkdir(parents=True)
    FakeRuntime.at_root(a.root).publish(IMG)
    agents.append(a.start())
    wait_for("the team's app has its token", lambda: "TOKEN" in secret_env_of(a.root, "app-team"))
    problems = wait_for("the copy refused", lambda: a.source("local")["problems"])
    assert f"env file 't.env': t.env: none of its master keys opens with the configured keys (decryption.age_key_file {tmp_path / 'host.key'})" in problems[0]
    assert secret_env_of(a.root, "app-local") == {}
