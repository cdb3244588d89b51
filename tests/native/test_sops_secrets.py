"""Secret files from SOPS on the native engine (#22 "SOPS/age secrets"): `secrets:` puts a file
into the container from a tmpfs of its own, 0400 and read-only, decrypted in memory while the
manifests load. One is the real sops CLI's age-encrypted binary file (tests/fixtures/sops), one a
random value; the random value is nowhere under the state root or the run dir but in that tmpfs,
and the tmpfs goes with the container. After a reboot the secret is gone with the tmpfs: the
container is reported dead and `--once` makes it again, secret included.
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.runtime.native.containers import mounts
from reconciler.state.inventory import mask_value
from tests.execution.helpers import write
from tests.helpers.host import Host, reboot
from tests.helpers.sops_files import encrypt_binary, encrypt_dotenv, new_age_key

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "sops" / "age"


def _holders(top: Path, needle: bytes) -> set[str]:
    """Files under `top` (mount points followed, as the host sees them) that hold `needle`."""
    out = set()
    for dirpath, _, files in os.walk(top):
        for name in files:
            p = Path(dirpath, name)
            try:
                if stat.S_ISREG(p.lstat().st_mode) and needle in p.read_bytes():
                    out.add(str(p.relative_to(top)))
            except OSError:
                continue
    return out


def _exec(host: Host, *argv: str) -> tuple[int, str]:
    rt = host.runtime()
    try:
        res = rt.exec("web", list(argv))
        return res.exit_code, (res.stdout + res.stderr).decode()
    finally:
        rt.close()


def test_secret_files_on_a_tmpfs_of_their_own(host: Host, busybox_image: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    key = new_age_key()
    key_file = key.write(tmp_path / "age.key")
    # the real CLI's file is encrypted to the fixtures' key: both identities in one key file
    key_file.write_text(key_file.read_text() + (FIX / "keys.txt").read_text())
    m = tmp_path / "m"
    value = "pw-" + secrets.token_hex(16)
    env_value = "env-" + secrets.token_hex(16)
    m.mkdir()
    (m / "db.password").write_bytes(encrypt_binary(value.encode(), key.recipient))
    (m / "welcome.txt").write_bytes((FIX / "example.txt").read_bytes())
    (m / "app.env").write_bytes(encrypt_dotenv({"MODE": "prod", "API_KEY": env_value}, key.recipient))
    write(m, "app.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: web}}
        spec:
          image: {busybox_image}
          command: [sleep, "3600"]
          networks: [none]
          restart: always
          envFiles: [app.env]
          secrets:
            - {{source: db.password}}
            - {{source: welcome.txt, target: /etc/app/welcome.txt, mode: "0440", uid: 1000, gid: 1000}}
        """)
    apply = ["apply", str(m), "--sops-age-key-file", str(key_file)]
    capsys.readouterr()
    assert host.cli(*apply) == 0
    assert main(["inspect", "web", *host.cli_args()[:-2]]) == 0                 # no --runtime

    assert _exec(host, "cat", "/run/secrets/db.password") == (0, value)
    code, out = _exec(host, "cat", "/etc/app/welcome.txt")
    assert (code, out.splitlines()[0]) == (0, "Welcome to SOPS!")           # the real sops CLI's file
    assert _exec(host, "stat", "-c", "%a %u %g", "/run/secrets/db.password") == (0, "400 0 0\n")
    assert _exec(host, "stat", "-c", "%a %u %g", "/etc/app/welcome.txt") == (0, "440 1000 1000\n")
    code, _ = _exec(host, "sh", "-c", "echo x > /run/secrets/db.password")
    assert code != 0                                                        # read-only
    assert _exec(host, "sh", "-c", "echo $MODE") == (0, "prod\n")
    assert _exec(host, "sh", "-c", "echo $API_KEY") == (0, env_value + "\n")
    assert _exec(host, "sh", "-c", "cat /proc/1/environ")[1].count(f"API_KEY={env_value}") == 1

    cid = host.ids()["web"]
    tmpfs = host.config.root / "containers" / cid / "secrets"
    assert mounts.is_mounted(tmpfs)
    assert stat.S_IMODE(tmpfs.stat().st_mode) == 0o700
    # the value is in the container's own tmpfs and nowhere else the engine keeps things
    assert _holders(host.config.root, value.encode()) == {f"containers/{cid}/secrets/0"}
    assert _holders(host.config.run_dir, value.encode()) == set()
    # so is an env value from a SOPS file: the bundle (config.json) is on that tmpfs, the record,
    # the rollback env and the database keep the key and the file's digest
    masked = mask_value("API_KEY", env_value).encode()
    assert _holders(host.config.root, env_value.encode()) == {f"containers/{cid}/secrets/config.json"}
    assert _holders(host.config.root, masked) == set()
    assert _holders(host.config.run_dir, env_value.encode()) == set()
    # stopped and started again (as its restart policy does): a new runtime container from the
    # same bundle, still on the tmpfs
    rt = host.runtime()
    try:
        rt.stop_container("web", timeout=1)
        rt.start_container("web")
    finally:
        rt.close()
    assert _exec(host, "sh", "-c", "echo $API_KEY") == (0, env_value + "\n")
    assert _holders(host.config.root, env_value.encode()) == {f"containers/{cid}/secrets/config.json"}
    assert _holders(host.config.run_dir, env_value.encode()) == set()
    out = capsys.readouterr()
    assert env_value not in out.out + out.err
    assert "API_KEY" not in out.out

    # a reboot takes the tmpfs: the container is dead (it cannot start without its secrets) and
    # --once makes it again from the manifests
    reboot(host.config)
    rt = host.runtime()
    try:
        assert rt.inspect_container("web").status == "dead"
    finally:
        rt.close()
    assert not mounts.is_mounted(tmpfs)
    assert host.cli(*apply) == 0
    assert host.ids()["web"] != cid
    assert _exec(host, "cat", "/run/secrets/db.password") == (0, value)
    assert _exec(host, "sh", "-c", "echo $API_KEY") == (0, env_value + "\n")
    assert _holders(host.config.root, env_value.encode()) == {f"containers/{host.ids()['web']}/secrets/config.json"}

    # removing the container unmounts its tmpfs (the host fixture also fails on any mount left)
    again = host.config.root / "containers" / host.ids()["web"] / "secrets"
    assert mounts.is_mounted(again)
    rt = host.runtime()
    try:
        rt.remove_container("web", force=True)
    finally:
        rt.close()
    assert not mounts.is_mounted(again)
    assert not again.exists()


def test_a_failed_update_rolls_back_to_the_previous_container_with_its_secret(
        host: Host, busybox_image: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No record keeps a secret's content, but the secret file did not change: the rollback of a
    stop-first update that never becomes healthy gets the content the manifests gave again."""
    key = new_age_key()
    key_file = key.write(tmp_path / "age.key")
    m = tmp_path / "m"
    value = "rb-" + secrets.token_hex(16)
    m.mkdir()
    (m / "db.password").write_bytes(encrypt_binary(value.encode(), key.recipient))

    def manifest(check: str) -> None:
        write(m, "app.yaml", f"""
            apiVersion: reconciler/v1
            kind: Container
            metadata: {{name: web}}
            spec:
              image: {busybox_image}
              command: [sleep, "3600"]
              networks: [none]
              secrets: [{{source: db.password}}]
              healthcheck: {{test: [CMD, "{check}"], interval: 1s, retries: 1}}
              update: {{healthTimeout: 4s}}
            """)

    manifest("true")
    apply = ["apply", str(m), "--sops-age-key-file", str(key_file)]
    assert host.cli(*apply) == 0
    manifest("false")                                   # the new container never becomes healthy
    capsys.readouterr()
    assert host.cli(*apply) == 1
    assert "rolled back to the previous container" in capsys.readouterr().out
    assert _exec(host, "cat", "/run/secrets/db.password") == (0, value)


def test_a_rollback_gets_a_sops_env_value_from_the_same_file_only(
        host: Host, busybox_image: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No record keeps an env value from a SOPS file: the rollback of a failed stop-first update
    takes it from the manifests when the file is the one the previous container was made from,
    and fails saying why when that file changed too."""
    key = new_age_key()
    key_file = key.write(tmp_path / "age.key")
    m = tmp_path / "m"
    value = "rb-" + secrets.token_hex(16)
    m.mkdir()
    (m / "app.env").write_bytes(encrypt_dotenv({"API_KEY": value}, key.recipient))

    def manifest(check: str) -> None:
        write(m, "app.yaml", f"""
            apiVersion: reconciler/v1
            kind: Container
            metadata: {{name: web}}
            spec:
              image: {busybox_image}
              command: [sleep, "3600"]
              networks: [none]
              envFiles: [app.env]
              healthcheck: {{test: [CMD, "{check}"], interval: 1s, retries: 1}}
              update: {{healthTimeout: 4s}}
            """)

    manifest("true")
    apply = ["apply", str(m), "--sops-age-key-file", str(key_file)]
    assert host.cli(*apply) == 0
    manifest("false")                                   # the new container never becomes healthy
    capsys.readouterr()
    assert host.cli(*apply) == 1
    assert "rolled back to the previous container" in capsys.readouterr().out
    assert _exec(host, "sh", "-c", "echo $API_KEY") == (0, value + "\n")
    assert _holders(host.config.root, value.encode()) == {f"containers/{host.ids()['web']}/secrets/config.json"}
    assert _holders(host.config.run_dir, value.encode()) == set()

    manifest("true")
    assert host.cli(*apply) == 0
    (m / "app.env").write_bytes(encrypt_dotenv({"API_KEY": "new-" + value}, key.recipient))
    manifest("false")                                   # a new value and a new container that fails
    capsys.readouterr()
    assert host.cli(*apply) == 1
    out = capsys.readouterr().out
    assert "rollback failed too" in out
    assert "API_KEY came from a SOPS-encrypted env file that changed since" in out
    assert value not in out


def test_a_container_whose_only_secrets_are_sops_env_values(host: Host, busybox_image: str, tmp_path: Path) -> None:
    """No secret file, one env value from a SOPS file: its record says so (the SOPS keys), so an
    exec's process file, which holds the container's env, is written on the container's tmpfs,
    and after a reboot the container is dead (its bundle went with the tmpfs) and `--once` makes
    it again with the value. (The records read their config back without those keys: the exec
    file went to the run dir and a rebooted container stayed `exited`, which no start could
    run.)"""
    import threading

    key = new_age_key()
    key_file = key.write(tmp_path / "age.key")
    m = tmp_path / "m"
    value = "only-" + secrets.token_hex(16)
    m.mkdir()
    (m / "app.env").write_bytes(encrypt_dotenv({"API_KEY": value}, key.recipient))
    write(m, "app.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: web}}
        spec:
          image: {busybox_image}
          command: [sleep, "3600"]
          networks: [none]
          restart: always
          envFiles: [app.env]
        """)
    apply = ["apply", str(m), "--sops-age-key-file", str(key_file)]
    assert host.cli(*apply) == 0
    cid = host.ids()["web"]
    tmpfs = host.config.root / "containers" / cid / "secrets"
    assert mounts.is_mounted(tmpfs)

    # while an exec runs, its process file (the container's env with the value) is on the tmpfs
    done = threading.Event()
    seen: dict[str, set[str]] = {}

    def look() -> None:
        deadline = time.monotonic() + 10
        while not done.is_set() and time.monotonic() < deadline:
            run_dir = _holders(host.config.run_dir, value.encode())
            on_tmpfs = {p for p in _holders(host.config.root, value.encode()) if "/exec-" in p}
            if run_dir or on_tmpfs:
                seen["run_dir"], seen["tmpfs"] = run_dir, on_tmpfs
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=look)
    watcher.start()
    try:
        assert _exec(host, "sh", "-c", "sleep 1; echo $API_KEY") == (0, value + "\n")
    finally:
        done.set()
        watcher.join()
    assert seen.get("run_dir") == set()
    assert seen.get("tmpfs")
    assert all(p.startswith(f"containers/{cid}/secrets/exec-") for p in seen["tmpfs"])

    reboot(host.config)
    rt = host.runtime()
    try:
        assert rt.inspect_container("web").status == "dead"
    finally:
        rt.close()
    assert host.cli(*apply) == 0
    assert host.ids()["web"] != cid
    assert _exec(host, "sh", "-c", "echo $API_KEY") == (0, value + "\n")


def test_files_encrypted_again_with_the_same_values_replace_nothing(
        host: Host, busybox_image: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Flux users encrypt files again routinely (`sops updatekeys`, a new recipient, a rotated
    data key): new ciphertext, IVs and MAC, the same values. `diff` says in sync and `apply`
    leaves the container as it is; only a changed value replaces it. The digests that stand for
    the values are keyed with the state root's own key (mode 0600), so a label, a record or the
    state DB tells nothing of a value without it. (Before, the encrypted file's digest stood
    for the values: each new encryption replaced the container, and diff said `env` changed.)"""
    key = new_age_key()
    key_file = key.write(tmp_path / "age.key")
    m = tmp_path / "m"
    m.mkdir()
    value, env_value = "pw-" + secrets.token_hex(16), "env-" + secrets.token_hex(16)
    (m / "db.password").write_bytes(encrypt_binary(value.encode(), key.recipient))
    (m / "app.env").write_bytes(encrypt_dotenv({"MODE": "prod", "API_KEY": env_value}, key.recipient))
    write(m, "app.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: web}}
        spec:
          image: {busybox_image}
          command: [sleep, "3600"]
          networks: [none]
          envFiles: [app.env]
          secrets: [{{source: db.password}}]
        """)
    apply = ["apply", str(m), "--sops-age-key-file", str(key_file)]
    diff = ["diff", str(m), "--sops-age-key-file", str(key_file)]
    assert host.cli(*apply) == 0
    cid = host.ids()["web"]
    digest_key = host.config.root / "secret-digest.key"
    assert stat.S_IMODE(digest_key.stat().st_mode) == 0o600
    assert len(digest_key.read_bytes()) == 32

    # encrypted again, then to a new recipient as well (a key rotation: both identities known)
    rotated = new_age_key()
    key_file.write_text(key_file.read_text() + rotated.identity + "\n")
    for recipient in (key.recipient, rotated.recipient):
        (m / "db.password").write_bytes(encrypt_binary(value.encode(), recipient))
        (m / "app.env").write_bytes(encrypt_dotenv({"MODE": "prod", "API_KEY": env_value}, recipient))
        capsys.readouterr()
        assert host.cli(*diff) == 0, capsys.readouterr().out
        assert host.cli(*apply) == 0
        assert host.ids()["web"] == cid
    out = capsys.readouterr().out
    assert "container:web" not in out

    # a changed value: diff names the field, apply replaces the container with the new value
    changed = "env2-" + secrets.token_hex(16)
    (m / "app.env").write_bytes(encrypt_dotenv({"MODE": "prod", "API_KEY": changed}, rotated.recipient))
    capsys.readouterr()
    assert host.cli(*diff) == 1
    out = capsys.readouterr().out
    assert "spec hash changed: env, secret_env" in out, out
    assert changed not in out
    assert host.cli(*apply) == 0
    assert host.ids()["web"] != cid
    cid = host.ids()["web"]
    assert _exec(host, "sh", "-c", "echo $API_KEY") == (0, changed + "\n")
    assert _exec(host, "cat", "/run/secrets/db.password") == (0, value)
    # the values are in the container's tmpfs only, the key of their digests in its own file
    assert _holders(host.config.root, changed.encode()) == {f"containers/{cid}/secrets/config.json"}
    assert _holders(host.config.root, value.encode()) == {f"containers/{cid}/secrets/0"}
