"""#20: the agent builds an Image whose manifest declares `build.secrets` (a SOPS-encrypted file
decrypted with the agent's key, and a variable of the agent's environment) on the native engine:
the step sees both, and neither value is in the agent's log, its API answers or its state root."""

from __future__ import annotations

import gzip
import hashlib
import json
import secrets
import textwrap
from pathlib import Path

import pytest

from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.config import NativeConfig
from tests.agent.conftest import AgentProc, wait_for
from tests.helpers.sops_files import encrypt_dotenv, new_age_key

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]


def test_agent_builds_with_manifest_secrets_and_keeps_none(
    tmp_path: Path, native_agent: AgentProc, busybox_image: str,
) -> None:
    a = native_agent
    m = tmp_path / "m"
    key = new_age_key()
    sealed = "sealed-" + secrets.token_hex(16)
    token = "tok-" + secrets.token_hex(16)
    (m / "sealed.env").write_bytes(encrypt_dotenv({"SEALED": sealed}, key.recipient))
    (m / "app").mkdir()
    (m / "app" / "Dockerfile").write_text(textwrap.dedent(f"""\
        FROM {busybox_image}
        RUN --mount=type=secret,id=sealed,required=true --mount=type=secret,id=token,required=true \\
            sha512sum /run/secrets/sealed /run/secrets/token > /hashes
        CMD ["sleep", "3600"]
        """))
    (m / "app.yaml").write_text(textwrap.dedent("""\
        apiVersion: reconciler/v1
        kind: Image
        metadata: {name: app}
        spec:
          build:
            context: ./app
            secrets:
              - {id: sealed, file: sealed.env}
              - {id: token, env: AGENT_BUILD_TOKEN_20}
        ---
        apiVersion: reconciler/v1
        kind: Container
        metadata: {name: app}
        spec:
          image: app
          networks: [none]
        """))
    a.config["decryption"] = {"provider": "sops", "age_key_file": str(key.write(tmp_path / "age.key"))}
    a.start(env={"AGENT_BUILD_TOKEN_20": token})

    def hashes() -> list[str] | None:
        rt = NativeRuntime(NativeConfig(root=a.root, run_dir=a.run_dir, name_prefix=a.prefix))
        try:
            running = [c for c in rt.list_containers({"reconciler.owner": "host"}) if str(c.status) == "running"]
            if not running:
                return None
            return [line.split()[0] for line in rt.exec("app", ["cat", "/hashes"]).stdout.decode().splitlines()]
        finally:
            rt.close()

    got = wait_for("app built and running", hashes, timeout=90)
    assert got == [hashlib.sha512(f"SEALED={sealed}\n".encode()).hexdigest(), hashlib.sha512(token.encode()).hexdigest()]
    answers = json.dumps([a.status(), a.source("host")])
    a.stop()
    for value in (sealed, token):
        assert value not in a.log()
        assert value not in answers
        holders = [p for p in a.root.rglob("*") if p.is_file() and not p.is_symlink() and value.encode() in _plain(p)]
        assert holders == []


def _plain(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
