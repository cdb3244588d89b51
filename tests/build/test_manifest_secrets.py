"""#20: an Image manifest's `build.secrets` (files, sops-encrypted files, environment variables),
`build.ssh` and `build.allow`, given by `reconcile apply` to the native builder; the secrets
reach RUN --mount=type=secret and nothing of them (not even a digest) is stored anywhere."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import secrets
import socket
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.runtime.native.images import images
from tests.execution.helpers import write
from tests.helpers.host import Host
from tests.helpers.sops_files import encrypt_dotenv, new_age_key

pytestmark = [pytest.mark.root, pytest.mark.registry]

DOCKERFILE = """
    FROM {base}
    RUN --mount=type=secret,id=npmrc,required=true --mount=type=secret,id=token,required=true \\
        --mount=type=secret,id=sealed,required=true \\
        sha512sum /run/secrets/npmrc /run/secrets/token /run/secrets/sealed > /hashes
    RUN --security=insecure --mount=type=ssh,required=true test -S "$SSH_AUTH_SOCK" && echo ok > /insecure-ssh
    CMD ["sleep", "3600"]
    """

MANIFEST = """
    apiVersion: reconciler/v1
    kind: Image
    metadata: {name: app}
    spec:
      build:
        context: ./app
        secrets:
          - {id: npmrc, file: ./secrets/npmrc}
          - {id: token, env: BUILD_TOKEN_20}
          - {id: sealed, file: ./secrets/sealed.env}
        ssh: [{socket: ./agent.sock}]
        allow: [security.insecure]
    ---
    apiVersion: reconciler/v1
    kind: Container
    metadata: {name: app}
    spec:
      image: app
      networks: [none]
    """


@pytest.fixture
def agent_socket(tmp_path: Path) -> Iterator[Path]:
    """A listening Unix socket where the manifest names its SSH agent (the step only tests it)."""
    path = tmp_path / "m" / "agent.sock"
    path.parent.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        dfd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
        try:
            s.bind(f"/proc/self/fd/{dfd}/{path.name}")      # (tmp paths can exceed sun_path)
        finally:
            os.close(dfd)
        s.listen(1)
        yield path


def _blob(store: images.ImageStore, digest: str) -> bytes:
    with store.content.open(digest) as f:
        data: bytes = f.read()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _files_under(*tops: Path) -> Iterator[tuple[Path, bytes]]:
    for top in tops:
        for dirpath, _dirs, files in os.walk(top):
            for name in files:
                path = Path(dirpath, name)
                if path.is_symlink() or not path.is_file():
                    continue
                data = path.read_bytes()
                yield path, gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def test_manifest_secrets_reach_the_build_and_nothing_keeps_them(
    tmp_path: Path, host: Host, busybox_image: str, agent_socket: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    m = agent_socket.parent
    npmrc = f"//registry.local/:_authToken=npm-{secrets.token_hex(16)}\n"
    token = "tok-" + secrets.token_hex(16)
    sealed_value = "sealed-" + secrets.token_hex(16)
    key = new_age_key()
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key.write(tmp_path / "age.key")))
    monkeypatch.setenv("BUILD_TOKEN_20", token)
    write(m, "app.yaml", MANIFEST)
    write(m / "app", "Dockerfile", DOCKERFILE.format(base=busybox_image))
    write(m / "secrets", "npmrc", npmrc)
    (m / "secrets" / "sealed.env").write_bytes(encrypt_dotenv({"SEALED": sealed_value}, key.recipient))
    sealed_plain = f"SEALED={sealed_value}\n"

    assert host.cli("apply", str(m)) == 0
    rt = host.runtime()
    assert rt.inspect_container("app").status == "running"
    hashes = rt.exec("app", ["cat", "/hashes", "/insecure-ssh"]).stdout.decode().splitlines()
    assert [line.split()[0] for line in hashes[:3]] == [
        hashlib.sha512(v.encode()).hexdigest() for v in (npmrc, token, sealed_plain)]
    assert hashes[3] == "ok"                    # allow: and ssh: reached the builder too

    # the secrets' bytes: in no layer tar, config or history of the image, nowhere under the
    # state root or the run dir; and no sha256 of them either (nothing stores a secret's digest)
    needles = [v.encode() for v in (npmrc.strip(), token, sealed_value)]
    needles += [hashlib.sha256(v.encode()).hexdigest().encode() for v in (npmrc, token, sealed_plain)]
    store = rt._store_images.store
    image = store.get("localhost/app:latest")
    config = _blob(store, image.id)
    assert json.loads(config)["history"]
    layers = [_blob(store, rec.digest) for rec in store.layer_records(image.id)]
    assert len(layers) == 3
    for layer in layers:
        with tarfile.open(fileobj=io.BytesIO(layer)) as t:
            members = t.getnames()
        assert not any(n.startswith(("run/secrets", "run/buildkit")) for n in members)
    for blob in [config, *layers]:
        assert not any(n in blob for n in needles)
    for path, data in _files_under(host.config.root, host.config.run_dir):
        assert not any(n in data for n in needles), path

    # decided: a secret is no build input (no digest of it is kept), so a changed secret alone
    # rebuilds nothing; change the Dockerfile or an arg to rebuild with the new one
    write(m / "secrets", "npmrc", "changed\n")
    assert host.cli("diff", str(m)) == 0


def test_build_secret_problems_name_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("UNSET_20", raising=False)
    monkeypatch.delenv("SOPS_AGE_KEY_FILE", raising=False)
    monkeypatch.delenv("SOPS_AGE_KEY", raising=False)
    m = tmp_path / "m"
    write(m / "app", "Dockerfile", "FROM scratch\n")
    (m / "plain").write_text("x")
    (m / "sealed.env").write_bytes(encrypt_dotenv({"A": "b"}, new_age_key().recipient))
    (m / "not-a-socket").write_text("")
    write(m, "app.yaml", """
        apiVersion: reconciler/v1
        kind: Image
        metadata: {name: app}
        spec:
          build:
            context: ./app
            secrets:
              - {id: a, file: ./missing}
              - {id: b, env: UNSET_20}
              - {id: a, file: ./plain}
              - {id: c, file: ./plain, env: HOME}
              - {id: d}
              - {id: e, file: ./sealed.env}
            ssh: [{socket: ./not-a-socket}]
        """)
    assert main(["validate", str(m)]) == 2
    err = "".join(capsys.readouterr())
    y = m / "app.yaml"
    for line, text in [
        (8, f"{y}:8:23: Image/app: spec.build.secrets[0].file: secret 'a': cannot read './missing' "
            f"(resolved to {m}/missing): No such file or directory"),
        (9, f"{y}:9:22: Image/app: spec.build.secrets[1].env: secret 'b': the environment variable UNSET_20 is not set"),
        (10, f"{y}:10:14: Image/app: spec.build.secrets[2].id: secret id 'a' is listed twice"),
        (11, f"{y}:11:9: Image/app: spec.build.secrets[3]: secret 'c': give file: FILE or env: VARIABLE (one of them)"),
        (12, f"{y}:12:9: Image/app: spec.build.secrets[4]: secret 'd': give file: FILE or env: VARIABLE"),
        (13, f"{y}:13:23: Image/app: spec.build.secrets[5].file: secret 'e': './sealed.env': sealed.env is SOPS-encrypted and "
             "no decryption key is configured"),
        (14, f"{y}:14:20: Image/app: spec.build.ssh[0].socket: ssh 'default': {m}/not-a-socket is not an SSH agent socket"),
    ]:
        assert text in err, (line, err)


def test_restricted_policy_refuses_env_secrets_outside_files_and_entitlements(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENT_TOKEN_20", "x")
    outside = tmp_path / "outside"
    outside.write_text("x")
    m = tmp_path / "m"
    write(m / "app", "Dockerfile", "FROM scratch\n")
    write(m, "app.yaml", f"""
        apiVersion: reconciler/v1
        kind: Image
        metadata: {{name: app}}
        spec:
          build:
            context: ./app
            secrets:
              - {{id: a, env: AGENT_TOKEN_20}}
              - {{id: b, file: {outside}}}
            allow: [security.insecure]
        """)
    assert main(["validate", str(m), "--policy", "restricted"]) == 2
    err = "".join(capsys.readouterr())
    assert ("spec.build.secrets[0].env: reading the agent's environment variable AGENT_TOKEN_20 is refused by "
            "policy 'restricted' (rule secretEnv: none)") in err
    assert f"spec.build.secrets[1].file: secret file {outside} is outside the source root" in err
    assert ("spec.build.allow[0]: build entitlement security.insecure is refused by policy 'restricted' "
            "(rule buildAllow: none)") in err
    policy = write(tmp_path, "policy.yaml", f"""
        filePrefixes: [{tmp_path}]
        secretEnv: [AGENT_TOKEN_*]
        buildAllow: [security.insecure]
        """)
    assert main(["validate", str(m), "--policy", str(policy)]) == 0


COMPOSE = """
    services:
      app:
        build:
          context: ./app
          secrets:
            - npmrc
            - source: token
              target: npm-token
        command: ["sleep", "3600"]
        network_mode: none
        stop_grace_period: 1s
    secrets:
      npmrc: {file: ./npmrc}
      token: {environment: BUILD_TOKEN_20}
    """

COMPOSE_DOCKERFILE = """
    FROM {base}
    RUN --mount=type=secret,id=npmrc,required=true --mount=type=secret,id=npm-token,required=true \\
        sha512sum /run/secrets/npmrc /run/secrets/npm-token > /hashes
    """


def test_a_compose_build_secrets_target_is_the_id_the_dockerfile_mounts(
    tmp_path: Path, host: Host, busybox_image: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docker compose passes a build secret's `target` to BuildKit as its id (`source` names the
    top-level secret): `RUN --mount=type=secret,id=npm-token` gets the `token` secret. It was
    refused: "not supported yet: build.secrets target"."""
    for var in ("COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE"):
        monkeypatch.delenv(var, raising=False)
    npmrc, token = f"npm-{secrets.token_hex(16)}\n", "tok-" + secrets.token_hex(16)
    monkeypatch.setenv("BUILD_TOKEN_20", token)
    project = tmp_path / "shop"
    write(project, "compose.yaml", COMPOSE)
    write(project / "app", "Dockerfile", COMPOSE_DOCKERFILE.format(base=busybox_image))
    (project / "npmrc").write_text(npmrc)
    assert host.cli("apply", str(project)) == 0
    rt = host.runtime()
    hashes = rt.exec("shop-app-1", ["cat", "/hashes"]).stdout.decode().splitlines()
    assert [line.split()[0] for line in hashes] == [hashlib.sha512(v.encode()).hexdigest() for v in (npmrc, token)]
