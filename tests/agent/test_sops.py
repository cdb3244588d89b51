"""A real agent (fake engine) with a SOPS-encrypted env file in its directory source (#22
"SOPS/age secrets"): without `decryption:` the revision is refused with the env file named;
the config gains `decryption: {provider: sops, age_key_file: ...}` and a reload (SIGHUP) lets the
same revision through; a tampered file is refused and the last good revision stays. The
plaintext is in no revision copy, no state database row, no log line, no API answer.
"""

from __future__ import annotations

import json
import secrets
import signal
from pathlib import Path

from reconciler.runtime.fake import FakeRuntime
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
    wait_for("web created with the decrypted value", lambda: env_of(a.root, "web").get("DB_PASSWORD") == value)
    good = a.source("local")["revision"]

    # a tampered file: refused with the file named, the container keeps the last good revision
    lines = (m / "db.env").read_text().splitlines(keepends=True)
    other = encrypt_dotenv({"DB_PASSWORD": "x"}, key.recipient).decode().splitlines(keepends=True)
    (m / "db.env").write_text("".join([other[0], *lines[1:]]))    # a value from another file: another data key
    problems = wait_for("tampered file refused", lambda: a.source("local")["problems"])
    assert "env file 'db.env': the value at DB_PASSWORD: does not decrypt" in problems[0]
    assert a.source("local")["revision"] == good
    assert env_of(a.root, "web")["DB_PASSWORD"] == value

    status = json.dumps([a.status(), a.source("local")])
    a.stop()
    assert value not in a.log()
    assert value not in status
    holders = sorted({str(p.relative_to(a.root)).split("/")[0] for p in a.root.rglob("*")
                      if p.is_file() and value.encode() in p.read_bytes()})
    # the engine's record of the container and the rollback env (docs/security.md): nothing else
    assert holders == ["fake-runtime.json", "inventory-env"]
